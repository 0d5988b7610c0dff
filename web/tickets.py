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
import types
from collections import OrderedDict
from collections.abc import Awaitable, Coroutine, Generator
from typing import Any

import orjson
from queuehall.web.errors import ApiError
from queuehall.web.hub import BrokerDown, Hub, Refused
from queuehall.web.views import ACTIVE, CALLED, NO_SHOW, SERVING, WAITING, page_state, queue_positions
from starlette.types import Receive, Scope, Send

from queuehall.client import StateMirror

log = logging.getLogger("queuehall.web.tickets")

RAW_SEND = "queuehall.send"  # the scope's key for the server's own ``send`` (web/app.py ``Gateway``)

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
TOKEN_CACHE = 200_000  # tokens remembered (a busy hall issues a few thousand tickets a day)
UNKNOWN_SECONDS = 30.0  # a token the broker did not know is not asked about again for this long
ENDED_KEPT = 50_000  # ended tickets' last views kept for their pages
FANOUT_SLICE = 100  # pages refreshed per turn of the event loop (writes of the first go out meanwhile)


KEEPALIVE = b": keepalive\n\n"


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], blocker: Any) -> Generator[Any, Any, None]:
    """Finish, inside a task, a coroutine that was started by hand and stopped at ``blocker`` (what it
    yielded to the event loop): everything the task sends or throws in is passed on to it."""
    while True:
        try:
            sent = yield blocker
        except BaseException as exc:  # the task's cancellation (a write time-out) goes on into it
            try:
                blocker = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                blocker = coro.send(sent)
            except StopIteration:
                return


class Stream:
    """One open page: writes its frames straight to its connection, holding at most one unsent state.

    The fan-out calls the connection's ASGI ``send`` itself and drives it by hand: a write the socket
    takes at once (the usual case) costs no task switch, no future and no timer. Only a write the server
    cannot take (the phone stopped reading, its buffers are full) continues in a task of its own, with
    ``write_timeout``; meanwhile later states replace each other in :attr:`pending` (the newest, whole),
    so a stuck phone costs one state and never delays the others.

    ``patches``: after the first (whole) state, changes are sent as ``event: patch`` frames carrying only
    the fields that changed (the ticket page asks for them, ``?patch=1``; docs/web.md)."""

    __slots__ = ("_done", "_send", "_task", "busy", "closed", "patches", "pending", "tid", "write_timeout",
                 "wrote")

    def __init__(self, tid: int, patches: bool = False) -> None:
        self.tid = tid
        self.patches = patches
        self.pending: bytes | None = None  # a whole state not yet written (before attach, or while blocked)
        self.closed = False
        self.busy = False  # a write is under way in a task (the connection did not take it at once)
        self.wrote = False  # written since the last keep-alive round
        self.write_timeout = 20.0
        self._send: Send | None = None
        self._task: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None

    def attach(self, send: Send, write_timeout: float, preamble: bytes = b"") -> None:
        """The response has started: write ``preamble`` and the state waiting, from now on every state."""
        self._send = send
        self.write_timeout = write_timeout
        self._done = asyncio.get_running_loop().create_future()
        data, self.pending = preamble + (self.pending or b""), None
        if data:
            self._write(data)

    def offer(self, full: bytes, patch: bytes | None = None) -> None:
        """A new state: ``full`` the whole ``data:`` frame, ``patch`` the frame of what changed (if known)."""
        if self.closed:
            return
        if self._send is None or self.busy:
            self.pending = full  # replaces an unsent one: a patch on top of a lost one would be wrong
            return
        self._write(patch if patch is not None and self.patches else full)

    def keepalive(self) -> None:
        """A comment line, unless something was written since the last call (proxies close silent streams)."""
        if not self.wrote and self._send is not None and not self.busy and not self.closed:
            self._write(KEEPALIVE)
        self.wrote = False

    def _write(self, frame: bytes) -> None:
        assert self._send is not None
        self.wrote = True
        coro = self._send({"type": "http.response.body", "body": frame, "more_body": True})
        if not isinstance(coro, Coroutine):  # an ASGI send is a coroutine function; anything else: await it
            self.busy = True
            self._task = asyncio.ensure_future(self._finish_awaitable(coro))
            return
        try:
            blocker = coro.send(None)
        except StopIteration:
            return  # taken at once
        except Exception as exc:  # the connection failed under us
            log.info("a stream's write failed: %r", exc)
            self.close()
            return
        self.busy = True
        self._task = asyncio.ensure_future(self._finish(coro, blocker))

    async def _finish(self, coro: Coroutine[Any, Any, Any], blocker: Any) -> None:
        try:
            async with asyncio.timeout(self.write_timeout):
                await _resume(coro, blocker)
                while self.pending is not None and not self.closed and self._send is not None:
                    frame, self.pending = self.pending, None
                    await self._send({"type": "http.response.body", "body": frame, "more_body": True})
        except (TimeoutError, OSError) as exc:
            log.info("closed a stream that does not take writes: %r", exc)
            self.close()
        finally:
            self.busy = False

    async def _finish_awaitable(self, aw: Awaitable[None]) -> None:
        async def first() -> None:
            await aw

        await self._finish(first(), None)

    def close(self) -> None:
        self.closed = True
        if self._done is not None and not self._done.done():
            self._done.set_result(None)
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    async def wait_closed(self) -> None:
        if self._done is not None and not self.closed:
            await self._done


class TicketBoard:
    """Token lookups, page states and the streams of open pages; lives on the event loop."""

    def __init__(self, hub: Hub, keepalive_seconds: float = 15.0) -> None:
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
        self._services: dict[str, dict[str, Any]] = {}  # code -> the record its pages were last computed from
        self._services_seen: set[str] = set()  # codes compared by value in this change
        # Open pages' tickets: (the inputs of their state, the state, its whole ``data:`` frame).
        self.pages: dict[int, tuple[tuple[Any, ...], dict[str, Any], bytes]] = {}
        self.keepalive_seconds = keepalive_seconds
        self._keepalive: asyncio.Task[None] | None = None
        self._open = 0  # open streams, counted (asked on every new page)
        hub.listeners.append(self._on_change)

    # -- tokens

    async def ticket_of(self, token: str) -> int:
        """The ticket id of ``token`` for a request: ``UNKNOWN_TOKEN`` (404) when no ticket of today has it,
        ``UNREACHABLE`` (503) when the broker must be asked and cannot be."""
        try:
            tid = await self.resolve(token)
        except BrokerDown:
            raise ApiError("UNREACHABLE") from None
        if tid is None or self.view(tid) is None:
            raise ApiError("UNKNOWN_TOKEN")
        return tid

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

    def _ahead(self, tid: int, view: dict[str, Any]) -> int | None:
        if view.get("status") != WAITING:
            return None
        queue = str(view.get("queue_service"))
        positions = self._positions.get(queue)
        if positions is None:  # once per queue and change, shared by all its pages
            positions = self._positions[queue] = queue_positions(self.hub.mirror.state, queue)
        return positions.get(tid)

    def state(self, tid: int) -> dict[str, Any] | None:
        """Ticket ``tid``'s page state (:func:`~queuehall.web.views.page_state`), or None if unknown."""
        view = self.view(tid)
        if view is None:
            return None
        return page_state(view, self.hub.mirror.state, ahead=self._ahead(tid, view), connected=self.hub.ready)

    def _inputs(self, tid: int, view: dict[str, Any]) -> tuple[Any, ...]:
        """Everything a page state is computed from. The mirror replaces a ticket, service or counter
        record whenever it changes (never edits one), so an unchanged tuple means an unchanged page,
        found without computing it (most pages of most events)."""
        st = self.hub.mirror.state
        status = view.get("status")
        counter = None
        if status in (CALLED, SERVING, NO_SHOW):
            counter = (st.get("counters") or {}).get(str(view.get("counter")))
        hall = st.get("hall") or {}  # edited in place by the mirror: compared by value
        queue = str(view.get("queue_service") or view.get("service"))
        return (view, self._ahead(tid, view), self._service(queue), counter,
                hall.get("name_zh"), hall.get("name_en"), st.get("timezone"), self.hub.ready)

    def _service(self, code: str) -> dict[str, Any] | None:
        """The service record, as the same object while its values stay the same: most events publish their
        services again unchanged (a start, a sign-in), and its pages then compare equal by identity. Compared
        by value once per queue and event, not once per page."""
        svc: dict[str, Any] | None = (self.hub.mirror.state.get("services") or {}).get(code)
        if svc is None:
            return None
        if code not in self._services_seen:
            self._services_seen.add(code)
            same = self._services.get(code)
            if same is None or (same is not svc and same != svc):
                self._services[code] = svc
        return self._services.get(code, svc)

    def frames(self, tid: int) -> tuple[bytes, bytes | None] | None:
        """Ticket ``tid``'s page, encoded once for all its open pages: ``(whole, patch)`` when it changed
        since the last call (``patch`` None for the first), None when it did not (or is unknown)."""
        view = self.view(tid)
        if view is None:
            return None
        inputs = self._inputs(tid, view)
        old = self.pages.get(tid)
        if old is not None and old[0] == inputs:
            return None
        st = page_state(view, self.hub.mirror.state, ahead=inputs[1], connected=self.hub.ready)
        diff: dict[str, Any] | None = None
        if old is not None:
            diff = {k: v for k, v in st.items() if old[1].get(k) != v}
            if not diff:
                self.pages[tid] = (inputs, old[1], old[2])
                return None
        full = b"data: " + orjson.dumps(st) + b"\n\n"
        self.pages[tid] = (inputs, st, full)
        return full, None if diff is None else b"event: patch\ndata: " + orjson.dumps(diff) + b"\n\n"

    def encoded(self, tid: int) -> bytes | None:
        st = self.state(tid)
        return None if st is None else orjson.dumps(st)

    # -- streams

    def subscribe(self, tid: int, patches: bool = False) -> Stream:
        stream = Stream(tid, patches)
        self.streams.setdefault(tid, set()).add(stream)
        self._open += 1
        self.frames(tid)
        page = self.pages.get(tid)
        if page is not None:
            stream.offer(page[2])
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.get_running_loop().create_task(self._keepalives())
        return stream

    def unsubscribe(self, stream: Stream) -> None:
        stream.close()
        subs = self.streams.get(stream.tid)
        if subs is not None and stream in subs:
            subs.discard(stream)
            self._open -= 1
            if not subs:
                del self.streams[stream.tid]
                self.seen.pop(stream.tid, None)
                self.pages.pop(stream.tid, None)

    async def _keepalives(self) -> None:
        """A comment line on every stream silent for a round (one timer for all, not one per page)."""
        while self.streams:
            await asyncio.sleep(self.keepalive_seconds)
            for subs in list(self.streams.values()):
                for stream in list(subs):
                    stream.keepalive()

    @property
    def open_streams(self) -> int:
        return self._open

    def _on_change(self, mirror: StateMirror, msg: dict[str, Any] | None) -> None:
        """After each change of the mirror: note ended tickets, then refresh the pages it touched."""
        self._positions.clear()
        self._services_seen.clear()
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
        """Send the pages of ``tids`` what changed, ``FANOUT_SLICE`` tickets per turn of the event loop.

        Per ticket, the page is computed and encoded once (:meth:`frames`) for all its open pages, and
        not at all when nothing it depends on changed; per open page, one write of bytes made before."""
        streams = self.streams
        for tid in tids[:FANOUT_SLICE]:
            subs = streams.get(tid)
            if not subs:
                continue
            got = self.frames(tid)
            if got is not None:
                full, patch = got
                for stream in list(subs):
                    stream.offer(full, patch)
        if len(tids) > FANOUT_SLICE:
            asyncio.get_running_loop().call_soon(self._refresh, tids[FANOUT_SLICE:])


async def serve_stream(stream: Stream, scope: Scope, receive: Receive, send: Send, write_timeout: float) -> None:
    """Answer the request with ``stream`` (``text/event-stream``) until it is closed or the client goes away.

    The only reader of ``receive`` (the client went away: the stream is closed); a client that does not take
    the headers or a write within ``write_timeout`` is dropped. The caller unsubscribes ``stream`` afterwards.
    """
    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        stream.close()

    watcher = asyncio.ensure_future(watch())
    try:
        async with asyncio.timeout(write_timeout):
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-store"),
                (b"x-accel-buffering", b"no")]})
        stream.attach(scope.get(RAW_SEND, send), write_timeout, b"retry: 3000\n\n")
        await stream.wait_closed()
    except (TimeoutError, OSError) as exc:
        log.info("closed a stream that does not take writes: %r", exc)
    finally:
        watcher.cancel()
