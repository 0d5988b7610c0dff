"""The gateway's view of the hall: a broker client bridged into asyncio.

The :class:`~queuehall.client.Link` runs in its own thread as in every screen (sockets, heartbeat,
snapshot + sequenced events, requests with ids and retries). Its callbacks never touch asyncio
objects directly: each one hands its data to the event loop with ``loop.call_soon_threadsafe``, so
the loop never blocks on ZeroMQ and the Link never waits for the loop.

The loop keeps a mirror of its own (:attr:`Hub.mirror`), fed with a copy of each snapshot the Link
loads and with the events the Link applied, in order. Only the loop thread reads or changes it,
so request handlers read it without locks. Listeners (the ticket pages' streams) are told after
every change, on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson

from queuehall.client import Link, StateMirror
from queuehall.protocol import Reply

log = logging.getLogger("queuehall.web.hub")

REQUEST_TIMEOUT = 5.0  # seconds a request to the broker may take, retries included (the Link retries)


class BrokerDown(Exception):
    """The broker did not answer (the gateway is cut off from the hall)."""


class Refused(Exception):
    """The broker refused a request: ``error`` is its ``{code, message_zh, message_en, details}``."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error
        self.code = str(error.get("code", "UNAVAILABLE"))
        super().__init__(self.code)


# A listener gets the mirror after a change: ``(mirror, msg)`` with the event applied, or ``(mirror,
# None)`` after a snapshot was loaded or the connection came or went (everything may have changed).
Listener = Callable[[StateMirror, dict[str, Any] | None], None]


class Hub:
    """One broker connection shared by every request and page of the gateway."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.mirror = StateMirror()  # the loop's own copy; see the module docstring
        self.connected = False
        self.listeners: list[Listener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._replies: dict[str, asyncio.Future[Reply | None]] = {}
        self._resyncs = 0  # the Link's snapshot count last copied

    # -- life cycle (on the loop)

    async def start(self) -> None:
        """Start the Link thread; its news reaches this loop from now on."""
        self._loop = asyncio.get_running_loop()
        self.link.on_event = self._link_event
        self.link.on_state = self._link_state
        self.link.on_connection = self._link_connection
        self.link.on_reply = self._link_reply
        self.link.start()

    async def stop(self) -> None:
        """Stop the Link (its thread is joined off the loop) and fail the requests still waiting."""
        await asyncio.get_running_loop().run_in_executor(None, self.link.stop)
        for fut in self._replies.values():
            if not fut.done():
                fut.set_result(None)
        self._replies.clear()

    @property
    def ready(self) -> bool:
        """Whether the gateway holds a current picture of the hall (connected and synchronised)."""
        return self.connected and self.mirror.synced

    # -- requests

    async def request(self, type_: str, timeout: float = REQUEST_TIMEOUT, request_id: str | None = None,
                      **args: Any) -> dict[str, Any]:
        """Run a broker command; return its result, raise :class:`Refused` or :class:`BrokerDown`.

        The Link sends it with a fresh id (or ``request_id``: the REST API's Idempotency-Key, so a
        client's retry after a lost answer is answered by the broker from its first reply) and retries
        with the same id, so a lost reply never makes the broker do the work twice. One id must not be
        asked twice at once (the second would take the first's place)."""
        assert self._loop is not None, "Hub.start() first"
        fut: asyncio.Future[Reply | None] = self._loop.create_future()
        # The id is chosen here, before the Link thread can possibly answer, so no reply is missed.
        from queuehall.protocol import new_id

        rid = request_id or new_id()
        self._replies[rid] = fut
        self.link.request(type_, request_id=rid, **args)
        try:
            rep = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            rep = None
        finally:
            self._replies.pop(rid, None)
        if rep is None:
            raise BrokerDown(type_)
        if not rep.ok:
            raise Refused(rep.error or {})
        return rep.result or {}

    # -- the Link's callbacks (on the Link thread): hand over to the loop, nothing else

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutting down)
            loop.call_soon_threadsafe(fn, *args)

    def _link_event(self, msg: dict[str, Any]) -> None:
        # Publications are never changed after decoding (mirrors replace records, never edit them),
        # so the loop may share the message with the Link's mirror.
        self._post(self._apply, msg)

    def _link_state(self, mirror: StateMirror) -> None:
        if self.link.resyncs != self._resyncs:
            # A snapshot was loaded: the loop gets a copy, as the Link's mirror changes in place.
            self._resyncs = self.link.resyncs
            copy = orjson.loads(orjson.dumps({"epoch": mirror.epoch, "seq": mirror.seq, "state": mirror.state}))
            self._post(self._load, copy)

    def _link_connection(self, up: bool) -> None:
        self._post(self._connection, up)

    def _link_reply(self, rid: str, rep: Reply | None) -> None:
        self._post(self._reply, rid, rep)

    # -- the same news, on the loop

    def _load(self, snapshot: dict[str, Any]) -> None:
        self.mirror.load(snapshot)
        self._notify(None)

    def _apply(self, msg: dict[str, Any]) -> None:
        # Events the Link applied before its snapshot reached the loop find this mirror out of step
        # ("resync"): the snapshot that follows them holds their effect.
        if self.mirror.apply(msg) == "applied":
            self._notify(msg)

    def _connection(self, up: bool) -> None:
        if up != self.connected:
            self.connected = up
            self._notify(None)

    def _reply(self, rid: str, rep: Reply | None) -> None:
        fut = self._replies.get(rid)
        if fut is not None and not fut.done():
            fut.set_result(rep)

    def _notify(self, msg: dict[str, Any] | None) -> None:
        for listener in list(self.listeners):
            try:
                listener(self.mirror, msg)
            except Exception:  # one broken listener must not starve the others
                log.exception("hub listener failed")
