"""Ticket pages: tokens to tickets, each ticket's page state, and the live streams of open pages.

A token is looked up once at the broker (``ticket_by_token``, a command of the ``web`` role) and
then remembered; tokens never travel on the broker's event channel, which every screen receives.
From then on the page state comes from the gateway's mirror: every event recomputes the pages of
the queues it touched, and a page whose state changed is sent the new state.

Each open page (:class:`Stream`) holds at most one unsent state, the newest: a phone that stops
reading costs one state, never a growing queue, and never delays the others.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from typing import Any

import orjson
from queuehall.web.hub import Hub, Refused
from queuehall.web.views import ACTIVE, NO_SHOW, page_state, queue_positions

from queuehall.client import StateMirror

log = logging.getLogger("queuehall.web.tickets")

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
TOKEN_CACHE = 200_000  # tokens remembered (a busy hall issues a few thousand tickets a day)
UNKNOWN_SECONDS = 30.0  # a token the broker did not know is not asked about again for this long
ENDED_KEPT = 50_000  # ended tickets' last views kept for their pages
FANOUT_SLICE = 100  # pages refreshed per turn of the event loop (writes of the first go out meanwhile)


class Stream:
    """One open page's subscription: the newest state not yet sent, and a way to wait for it."""

    __slots__ = ("_waiter", "closed", "pending", "sent", "tid")

    def __init__(self, tid: int) -> None:
        self.tid = tid
        self.pending: bytes | None = None
        self.sent: bytes | None = None
        self.closed = False
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, data: bytes) -> None:
        """Make ``data`` the next state to send (replacing one not yet sent)."""
        if data == (self.pending if self.pending is not None else self.sent):
            return
        self.pending = data
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def close(self) -> None:
        self.closed = True
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def next(self, timeout: float) -> bytes | None:
        """The next state to send, or None after ``timeout`` seconds without one (or when closed)."""
        if self.pending is None and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):  # no task per wait, unlike wait_for on 3.11
                    await self._waiter
            except TimeoutError:
                pass
            finally:
                self._waiter = None
        data, self.pending = self.pending, None
        if data is not None:
            self.sent = data
        return data


class TicketBoard:
    """Token lookups, page states and the streams of open pages; lives on the event loop."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.tokens: OrderedDict[str, int] = OrderedDict()  # token -> ticket id, most recent last
        self.unknown: dict[str, float] = {}  # token -> monotonic time until which it stays unknown
        self.ended: OrderedDict[int, dict[str, Any]] = OrderedDict()  # ticket id -> its last view
        self.fresh: dict[int, dict[str, Any]] = {}  # looked up before the mirror heard of it
        self.seen: dict[int, dict[str, Any]] = {}  # open pages' tickets: the last live view
        self.day: str | None = None  # the newest business day seen: older days' tickets are forgotten
        self.streams: dict[int, set[Stream]] = {}
        self._inflight: dict[str, asyncio.Future[int | None]] = {}
        self._positions: dict[str, dict[int, int]] = {}  # queue -> ticket id -> ahead (this change)
        hub.listeners.append(self._on_change)

    # -- tokens

    async def resolve(self, token: str) -> int | None:
        """The ticket id of ``token``, or None when no ticket of today has it.

        Raises :class:`~queuehall.web.hub.BrokerDown` when the broker must be asked and cannot be."""
        if not TOKEN_RE.match(token):
            return None
        tid = self.tokens.get(token)
        if tid is not None:
            self.tokens.move_to_end(token)
            return tid
        until = self.unknown.get(token)
        if until is not None:
            if until > time.monotonic():
                return None
            del self.unknown[token]
        fut = self._inflight.get(token)
        if fut is None:  # many pages opening the same ticket at once ask the broker once
            fut = self._inflight[token] = asyncio.ensure_future(self._lookup(token))
            fut.add_done_callback(lambda _f: self._inflight.pop(token, None))
        return await asyncio.shield(fut)

    async def _lookup(self, token: str) -> int | None:
        try:
            result = await self.hub.request("ticket_by_token", token=token)
        except Refused as err:
            if err.code in ("UNKNOWN_TOKEN", "BAD_REQUEST"):
                if len(self.unknown) > TOKEN_CACHE:
                    self.unknown.clear()
                self.unknown[token] = time.monotonic() + UNKNOWN_SECONDS
                return None
            raise
        view = result["ticket"]
        tid = int(view["id"])
        self._remember(view)
        self.tokens[token] = tid
        if len(self.tokens) > TOKEN_CACHE:
            self.tokens.popitem(last=False)
        return tid

    def _remember(self, view: dict[str, Any]) -> None:
        """Keep a looked-up view the mirror may not have (yet, or any more)."""
        tid = int(view["id"])
        if view.get("status") in ACTIVE or view.get("status") == NO_SHOW:
            if str(tid) not in (self.hub.mirror.state.get("tickets") or {}) and tid not in self.ended:
                self.fresh[tid] = view
        elif tid not in self.ended:
            self._ended(view)

    def _ended(self, view: dict[str, Any]) -> None:
        tid = int(view["id"])
        self.fresh.pop(tid, None)
        self.ended[tid] = view
        self.ended.move_to_end(tid)
        while len(self.ended) > ENDED_KEPT:
            self.ended.popitem(last=False)

    def _new_day(self, day: str) -> None:
        """A new business day: tickets of earlier days that ended are forgotten with their tokens, so
        their pages answer "no such ticket" (an earlier day's ticket still open stays until it ends)."""
        self.day = day
        live = self.hub.mirror.state.get("tickets") or {}
        self.ended = OrderedDict((t, v) for t, v in self.ended.items() if str(v.get("business_day")) >= day)
        self.tokens = OrderedDict((k, t) for k, t in self.tokens.items()
                                  if str(t) in live or t in self.ended or t in self.fresh)

    # -- page states

    def view(self, tid: int) -> dict[str, Any] | None:
        """The newest public view of ticket ``tid`` the gateway knows."""
        live = (self.hub.mirror.state.get("tickets") or {}).get(str(tid))
        if live is not None:
            if tid in self.streams:
                self.seen[tid] = live
            return live
        return self.ended.get(tid) or self.fresh.get(tid)

    def state(self, tid: int) -> dict[str, Any] | None:
        """Ticket ``tid``'s page state (:func:`~queuehall.web.views.page_state`), or None if unknown."""
        view = self.view(tid)
        if view is None:
            return None
        ahead = None
        if view.get("status") == "waiting":
            queue = str(view.get("queue_service"))
            positions = self._positions.get(queue)
            if positions is None:
                positions = self._positions[queue] = queue_positions(self.hub.mirror.state, queue)
            ahead = positions.get(tid)
        return page_state(view, self.hub.mirror.state, ahead=ahead, connected=self.hub.ready)

    def encoded(self, tid: int) -> bytes | None:
        st = self.state(tid)
        return None if st is None else orjson.dumps(st)

    # -- streams

    def subscribe(self, tid: int) -> Stream:
        stream = Stream(tid)
        self.streams.setdefault(tid, set()).add(stream)
        data = self.encoded(tid)
        if data is not None:
            stream.offer(data)
        return stream

    def unsubscribe(self, stream: Stream) -> None:
        subs = self.streams.get(stream.tid)
        if subs is not None:
            subs.discard(stream)
            if not subs:
                del self.streams[stream.tid]
                self.seen.pop(stream.tid, None)

    @property
    def open_streams(self) -> int:
        return sum(len(s) for s in self.streams.values())

    def _on_change(self, mirror: StateMirror, msg: dict[str, Any] | None) -> None:
        """After each change of the mirror: note ended tickets, then refresh the pages it touched."""
        self._positions.clear()
        tickets = mirror.state.get("tickets") or {}
        ev = (msg or {}).get("event") or {}
        day = (ev.get("ticket") or {}).get("business_day") if isinstance(ev.get("ticket"), dict) else None
        day = day or (mirror.state.get("business_day") if msg is None else None)
        if day and (self.day is None or str(day) > self.day):
            self._new_day(str(day))
        if msg is None:
            touched: set[int] | None = None  # a snapshot or the connection: every page
            for tid in [t for t in self.fresh if str(t) in tickets]:
                del self.fresh[tid]
        else:
            touched = set()
            queues: set[str] = set((msg.get("set") or {}).get("services") or {})
            ev_ticket = ev.get("ticket") if isinstance(ev.get("ticket"), dict) else None
            if ev_ticket is not None:
                queues.update(str(ev_ticket.get(k)) for k in ("queue_service", "service") if ev_ticket.get(k))
                if ev.get("from_service"):
                    queues.add(str(ev["from_service"]))
                tid = int(ev_ticket["id"])
                touched.add(tid)
                if str(tid) not in tickets and ev_ticket.get("status") not in ACTIVE:
                    self._ended(ev_ticket)  # finished, cancelled, voided, or a no-show dropped
                else:
                    self.fresh.pop(tid, None)
            for tid_s, t in ((msg.get("set") or {}).get("tickets") or {}).items():
                touched.add(int(tid_s))
                queues.add(str(t.get("queue_service")))
            for tid_s in (msg.get("del") or {}).get("tickets") or []:
                tid = int(tid_s)
                touched.add(tid)
                if tid not in self.ended and tid in self.streams:
                    # Gone without a view of its end (an expired no-show): its last known view, ended.
                    last = self.fresh.pop(tid, None) or self.seen.pop(tid, None)
                    if last is not None:
                        self._ended(last)
            if queues:
                for tid in self.streams:
                    v = self.view(tid)
                    if v is not None and str(v.get("queue_service")) in queues:
                        touched.add(tid)
        first = [] if msg is None else [int(t) for t in (msg.get("set") or {}).get("tickets") or {}
                                        if int(t) in self.streams]
        rest = [t for t in self.streams if (touched is None or t in touched) and t not in first]
        # The tickets the event names first (the one just called), then the rest in slices with the loop
        # between them: pages already computed are written while the others wait their turn.
        self._refresh(first + rest)

    def _refresh(self, tids: list[int]) -> None:
        """Send the current state to the open pages of ``tids``, ``FANOUT_SLICE`` tickets per loop turn."""
        for tid in tids[:FANOUT_SLICE]:
            subs = self.streams.get(tid)
            data = self.encoded(tid) if subs else None
            if data is not None:
                for stream in list(subs or ()):
                    stream.offer(data)
        if len(tids) > FANOUT_SLICE:
            asyncio.get_running_loop().call_soon(self._refresh, tids[FANOUT_SLICE:])
