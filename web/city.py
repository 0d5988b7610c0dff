"""The city-wide wait page (issue 18; docs/web.md "The city page"): every hall's state live on one page.

A city gateway connects to several brokers, one per hall (``queuehall web --broker dongcheng=10.1.0.2:5555
--broker haidian=10.2.0.2:5555 ...``): each is a :class:`~queuehall.web.hub.Hub` with its own mirror. The
page at ``/city`` lists every hall, open or closed with its next opening, and per service the people
waiting and the estimated wait, so a citizen can choose the least busy hall; the same view is
``GET /api/v1/city`` and its live stream ``GET /api/v1/city/events``.

Cost: a hall's view is computed once per change of that hall (changes within ``FLUSH_SECONDS`` are taken
together), compared with the last one, and only a hall whose view changed is sent, encoded once for every
open page: ``event: halls`` with the changed halls' views (the page merges them by ``key``). Each open page
is a :class:`~queuehall.web.tickets.Stream` (one write per page, no task per page).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from queuehall.web.hub import Hub
from queuehall.web.pages import ASSET_VERSION, _e
from queuehall.web.tickets import Stream, serve_stream
from queuehall.web.views import bi
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from queuehall.text import JSON_SCHEMA as BI_SCHEMA

FLUSH_SECONDS = 0.05  # a hall's changes within this long are sent together (a call is several events)
MAX_CITY_STREAMS = 20_000


def parse_broker(value: str) -> tuple[str | None, str]:
    """``[KEY=]HOST:PORT[,HOST:PORT]`` -> (KEY or None, the address(es)); ValueError when malformed. KEY names
    the hall on the city page until its broker says its own id (docs/web.md); a comma-separated list is a
    primary/standby pair of that hall's brokers, as for every client."""
    name, sep, addrs = value.rpartition("=")
    key = name.strip() if sep else None
    for addr in addrs.split(","):
        host, colon, port = addr.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or (sep and not key):
            raise ValueError(f"--broker {value!r}: expected [HALL=]HOST:PORT, e.g. haidian=10.2.0.2:5555")
    if key is not None and not all(c.isalnum() or c in "._-" for c in key):
        raise ValueError(f"--broker {value!r}: a hall's key has letters, digits, '.', '_' or '-'")
    return key, addrs.strip()


def hall_view(key: str, state: dict[str, Any], *, connected: bool) -> dict[str, Any]:
    """One hall as the city page shows it, from its broker's mirror (public fields only).

    ``id`` is the hall's own id from its broker (``hall.id`` of the snapshot, hall.toml ``[hall] id``)
    when it has one, else ``key`` (the gateway's name for it); ``open`` and ``next_open`` (the earliest
    next opening of its services while closed); per service ``waiting``, ``estimated_wait_minutes``,
    ``issue_state`` and ``next_open``."""
    hall = state.get("hall") or {}
    services = state.get("services") or {}
    order = state.get("service_order") or list(services)
    rows = []
    for code in order:
        s = services.get(code)
        if s is None:
            continue
        rows.append({"code": code, "name": bi(s.get("name_zh"), s.get("name_en")),
                     "waiting": int(s.get("waiting") or 0),
                     "estimated_wait_minutes": int(s.get("estimated_wait_minutes") or 0),
                     "issue_state": s.get("issue_state"), "next_open": s.get("next_open")})
    is_open = bool(hall.get("open"))
    upcoming = sorted(str(r["next_open"]) for r in rows if r["next_open"])
    counters = state.get("counters") or {}
    address = None
    if hall.get("address_zh") or hall.get("address_en"):
        address = bi(hall.get("address_zh"), hall.get("address_en"))
    name = bi(hall.get("name_zh") or key, hall.get("name_en") or key)
    return {
        "key": key, "id": str(hall.get("id") or key), "name": name, "address": address,
        "connected": connected, "known": bool(state), "open": is_open,
        "next_open": None if is_open or not upcoming else upcoming[0],
        "timezone": state.get("timezone"),
        "waiting": sum(r["waiting"] for r in rows),
        "counters_open": sum(1 for c in counters.values() if c.get("state") == "open"),
        "services": rows,
    }


class CityBoard:
    """Every hall's view, kept current from its hub, and the open city pages' streams."""

    def __init__(self, halls: list[tuple[str, Hub]], keepalive_seconds: float = 15.0,
                 write_timeout: float = 20.0) -> None:
        self.halls = halls
        self.views: list[dict[str, Any]] = [hall_view(key, {}, connected=False) for key, _ in halls]
        self.streams: set[Stream] = set()
        self.keepalive_seconds = keepalive_seconds
        self.write_timeout = write_timeout
        self.changes = 0  # hall views sent (for the benchmark and tests)
        self._dirty: set[int] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._started: list[Hub] = []  # the hubs this board started (not the gateway's own)
        for i, (_key, hub) in enumerate(halls):
            hub.listeners.append(self._listener(i))

    def _listener(self, i: int) -> Callable[[Any, Any], None]:
        def changed(_mirror: Any, _msg: Any) -> None:
            self._changed(i)

        return changed

    def _changed(self, i: int) -> None:
        self._dirty.add(i)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def _view(self, i: int) -> dict[str, Any]:
        key, hub = self.halls[i]
        return hall_view(key, hub.mirror.state, connected=hub.ready)

    def flush(self) -> None:
        """Recompute the halls that changed; send the ones whose view did change to every open page."""
        self._flush = None
        dirty, self._dirty = self._dirty, set()
        changed = []
        for i in sorted(dirty):
            v = self._view(i)
            if v != self.views[i]:
                self.views[i] = v
                changed.append(v)
        if not changed:
            return
        self.changes += len(changed)
        if not self.streams:
            return
        full = self.frame()
        patch = b"event: halls\ndata: " + orjson.dumps({"halls": changed}) + b"\n\n"
        for stream in list(self.streams):
            stream.offer(full, patch)

    def city(self) -> dict[str, Any]:
        return {"halls": self.views}

    def frame(self) -> bytes:
        return b"data: " + orjson.dumps(self.city()) + b"\n\n"

    def subscribe(self) -> Stream:
        stream = Stream(0, patches=True)
        self.streams.add(stream)
        stream.offer(self.frame())
        if self._keepalive is None or self._keepalive.done():
            self._keepalive = asyncio.get_running_loop().create_task(self._keepalives())
        return stream

    def unsubscribe(self, stream: Stream) -> None:
        stream.close()
        self.streams.discard(stream)

    async def _keepalives(self) -> None:
        while self.streams:
            await asyncio.sleep(self.keepalive_seconds)
            for stream in list(self.streams):
                stream.keepalive()

    async def start(self) -> None:
        """Start the halls' hubs that are not the gateway's own (that one starts with the application)."""
        for _key, hub in self.halls:
            if hub._loop is None:
                self._started.append(hub)
                await hub.start()
        for i in range(len(self.halls)):
            self._changed(i)

    async def stop(self) -> None:
        for stream in list(self.streams):
            stream.close()
        if self._flush is not None:
            self._flush.cancel()
        for hub in self._started:
            with contextlib.suppress(Exception):
                await hub.stop()
        self._started.clear()


class _CityStream:
    """``text/event-stream`` of the city view: the whole view, then ``event: halls`` with what changed."""

    def __init__(self, board: CityBoard) -> None:
        self.board = board

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = self.board.subscribe()
        try:
            await serve_stream(stream, scope, receive, send, self.board.write_timeout)
        finally:
            self.board.unsubscribe(stream)


def _minutes(v: int) -> str:
    return f"约 {v} 分钟" if v else "无需等候"


def city_page(city: dict[str, Any]) -> str:
    """``/city``: every hall, rendered complete (it reads without scripts); ``static/city.js`` keeps it live."""
    cards = []
    for h in city["halls"]:
        state = (("open", "办公中", "Open") if h["open"] else ("closed", "暂停办公", "Closed"))
        if not h["connected"]:
            state = ("offline", "暂时无法连接", "Unreachable")
        rows = "".join(
            f'<tr><td>{_e(s["name"]["zh"])}<span class="en">{_e(s["name"]["en"])}</span></td>'
            f'<td class="n">{s["waiting"]}</td><td class="n">{_e(_minutes(s["estimated_wait_minutes"]))}</td></tr>'
            for s in h["services"])
        cards.append(
            f'<section class="hall st-{state[0]}" data-key="{_e(h["key"])}"><h2>{_e(h["name"]["zh"])}'
            f'<span class="en">{_e(h["name"]["en"])}</span></h2>'
            + (f'<p class="addr">{_e(h["address"]["zh"])}<span class="en">{_e(h["address"]["en"])}</span></p>'
               if h.get("address") else "")
            + f'<p class="state">{state[1]} <span class="en">{state[2]}</span> · 等候 {h["waiting"]} 人</p>'
            f'<table><tbody>{rows}</tbody></table></section>')
    body = "".join(cards) or '<p>没有大厅 <span class="en">No halls</span></p>'
    return ('<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            '<meta name="referrer" content="no-referrer"><title>各办事大厅排队情况 / Waiting at every hall</title>'
            f'<link rel="stylesheet" href="/static/city.css?v={ASSET_VERSION}">'
            f'<script src="/static/city.js?v={ASSET_VERSION}" defer></script></head><body>'
            '<header><h1>各办事大厅排队情况</h1><p>Waiting at every hall · 选择排队最少的大厅 Choose the least busy '
            'hall</p></header><main><div id="controls"></div><div id="offline" class="banner" hidden>'
            '连接中断，正在重新连接… <span class="en">Connection lost, reconnecting…</span></div>'
            f'<div id="halls">{body}</div></main></body></html>')


_BI = BI_SCHEMA  # queuehall.text.Bi on the wire
CITY_HALL_SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    "key": {"type": "string", "description": "the gateway's name for the hall (--broker KEY=...)"},
    "id": {"type": "string", "description": "the hall's own id (hall.toml [hall] id), else key"},
    "name": _BI, "address": {"oneOf": [_BI, {"type": "null"}]},
    "connected": {"type": "boolean"}, "known": {"type": "boolean"}, "open": {"type": "boolean"},
    "next_open": {"type": ["string", "null"], "format": "date-time"}, "timezone": {"type": ["string", "null"]},
    "waiting": {"type": "integer"}, "counters_open": {"type": "integer"},
    "services": {"type": "array", "items": {"type": "object", "properties": {
        "code": {"type": "string"}, "name": _BI, "waiting": {"type": "integer"},
        "estimated_wait_minutes": {"type": "integer"}, "issue_state": {"type": ["string", "null"]},
        "next_open": {"type": ["string", "null"], "format": "date-time"}}}}}}


def document(doc: dict[str, Any]) -> None:
    """Add the city page's two operations to the gateway's OpenAPI document (``app.state.openapi``)."""
    from queuehall.web import openapi

    halls = {"type": "array", "items": openapi._ref("CityHall")}
    openapi.add(doc, "/api/v1/city", "get", {
        "summary": "Every hall this gateway connects to: open or closed, people waiting and waits per service",
        "operationId": "getCity", "responses": {"200": openapi._ok("The halls, in --broker order", "halls", halls)}},
        {"CityHall": CITY_HALL_SCHEMA})
    openapi.add(doc, "/api/v1/city/events", "get", {
        "summary": "The city view live (Server-Sent Events): the whole view, then `event: halls` with the halls "
                   "that changed", "operationId": "cityEvents",
        "responses": {"200": {"description": "text/event-stream", "content": {"text/event-stream": {}}}}})


def city_parts(board: CityBoard) -> dict[str, Any]:
    """The city page's routes and start/stop hooks, for :func:`queuehall.web.app.create_app`."""
    from queuehall.web.errors import ApiError

    async def page(request: Request) -> Response:
        return HTMLResponse(city_page(board.city()), headers={"cache-control": "no-store"})

    async def api(request: Request) -> Response:
        return Response(orjson.dumps(board.city()), media_type="application/json",
                        headers={"cache-control": "no-store"})

    async def events(request: Request) -> Response | _CityStream:
        if len(board.streams) >= MAX_CITY_STREAMS:
            raise ApiError("UNAVAILABLE", detail="too many open pages", headers={"retry-after": "10"})
        return _CityStream(board)

    start: list[Callable[[], Awaitable[None]]] = [board.start]
    stop: list[Callable[[], Awaitable[None]]] = [board.stop]
    routes: list[BaseRoute] = [Route("/city", page), Route("/api/v1/city", api),
                               Route("/api/v1/city/events", events)]
    return {"routes": routes, "on_startup": start, "on_shutdown": stop}
