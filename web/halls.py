"""A city gateway serving every hall it connects to (issue 18; docs/web.md "One gateway for every hall").

``queuehall web --broker dongcheng=… --broker haidian=…`` connects to one broker per hall. Each hall gets the
whole single-hall gateway of its own — ticket pages, the REST API, bookings, 好差评 and the supervision page —
built by :func:`~queuehall.web.app.create_app` around that hall's :class:`~queuehall.web.hub.Hub`, and served
under the prefix ``/h/<hall>``:

* ``/h/haidian/t/<token>`` is a ticket page of the Haidian hall, ``/h/haidian/api/v1/services`` its services,
  ``/h/haidian/b/<code>`` a booking page, ``/h/haidian/supervision`` its managers' page;
* ``<hall>`` is the name given on the command line (``--broker haidian=…``) or the hall's own id, as its broker
  reports it (hall.toml ``[hall] id``);
* every address without the prefix is the first hall's, exactly as a gateway of one hall serves it (the
  existing QR codes and integrations keep working), and the city page ``/city`` is there.

:class:`HallRouter` is the ASGI application in front: it picks the hall's application by the prefix and hands it
the request with the prefix moved into ``root_path`` (Starlette's routes then match the rest, and
``request.base_url`` includes the prefix), and it runs every hall application's start-up and shut-down.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson
from queuehall.web.hub import Hub

from queuehall.guesses import DEFAULT_WRONG_CODES_PER_MINUTE, WrongCodes

log = logging.getLogger("queuehall.web.halls")

PREFIX = "/h/"
ROOT = "queuehall.root"  # the scope's key for the gateway's own root path (before a hall's prefix)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class HallApp:
    """One hall of the gateway: its name on the command line (``key``), its broker connection and its
    application (:func:`~queuehall.web.app.create_app` around ``hub``)."""

    key: str
    hub: Hub
    app: Any  # a Starlette application

    def names(self) -> set[str]:
        """What selects this hall in an address: its key, and its own id once its broker said it."""
        own = (self.hub.mirror.state.get("hall") or {}).get("id")
        return {self.key, str(own)} if own else {self.key}


def hall_prefix(root_path: str, key: str) -> str:
    """The address prefix of hall ``key`` under a gateway served at ``root_path``."""
    return f"{root_path}{PREFIX}{key}"


class HallRouter:
    """The city gateway's ASGI application: ``/h/<hall>/…`` to that hall's application, the rest to the first's.

    Lifespan: every hall application's own start-up runs (its hub, its webhooks, …), the other halls' first and
    the first hall's last (it holds the city page, whose board then finds every hub running); shut-down in the
    reverse order."""

    def __init__(self, halls: list[HallApp]) -> None:
        if not halls:
            raise ValueError("a gateway needs at least one hall")
        self.halls = halls

    def find(self, name: str) -> HallApp | None:
        for h in self.halls:  # the keys first: a hall's id may not shadow another hall's key
            if h.key == name:
                return h
        for h in self.halls:
            if name in h.names():
                return h
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        inner = path[len(root):] if root and path.startswith(root) else path
        if scope["type"] not in ("http", "websocket") or not inner.startswith(PREFIX):
            await self.halls[0].app(dict(scope, **{ROOT: root}), receive, send)
            return
        name, slash, _rest = inner[len(PREFIX):].partition("/")
        hall = self.find(name)
        if hall is None:
            await _no_such_hall(scope, send, path)
            return
        if not slash:  # /h/haidian -> /h/haidian/ (the hall's own page)
            query = scope.get("query_string", b"").decode("latin-1")
            await _redirect(send, path + "/" + (f"?{query}" if query else ""))
            return
        # The prefix as written (the key or the hall's id) goes into root_path: the hall's routes match the rest.
        await hall.app(dict(scope, root_path=hall_prefix(root, name), **{ROOT: root}), receive, send)

    async def locate_booking(self, code: str) -> str | None:
        """The prefix ``/h/<hall>`` of the hall holding booking ``code``, asked of every connected hall at once
        (a hall answers another hall's code from its hall tag, without its database), or None."""
        import asyncio

        from queuehall.web.hub import BrokerDown, Refused

        async def ask(hall: HallApp) -> str | None:
            if not hall.hub.ready:
                return None
            try:
                await hall.hub.request("booking", code=code)
            except (BrokerDown, Refused):
                return None
            return PREFIX + hall.key

        found = await asyncio.gather(*(ask(h) for h in self.halls))
        return next((f for f in found if f is not None), None)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        stack = contextlib.AsyncExitStack()
        msg = await receive()
        assert msg["type"] == "lifespan.startup"
        try:
            for hall in [*self.halls[1:], self.halls[0]]:
                await stack.enter_async_context(hall.app.router.lifespan_context(hall.app))
        except BaseException as exc:
            log.exception("the gateway could not start")
            await stack.aclose()
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        msg = await receive()
        try:
            await stack.aclose()
        except BaseException as exc:
            log.exception("the gateway did not stop cleanly")
            await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


async def _redirect(send: Send, location: str) -> None:
    await send({"type": "http.response.start", "status": 307,
                "headers": [(b"location", location.encode("latin-1", "replace")), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def _no_such_hall(scope: Scope, send: Send, path: str) -> None:
    """404: ``NOT_FOUND`` (JSON) under ``/h/<hall>/api/``, else a bilingual page."""
    from queuehall.web.errors import ApiError
    from queuehall.web.pages import message_page

    if scope["type"] != "http":
        await send({"type": "websocket.close", "code": 1008})
        return
    if "/api/" in path:
        body = orjson.dumps({"status": "error", "error": ApiError("NOT_FOUND", path=path[:200]).error})
        kind = b"application/json"
    else:
        body = message_page({"zh": "没有此大厅", "en": "No such hall"},
                            {"zh": "请检查网址，或在各大厅排队情况页面 /city 选择大厅。",
                             "en": "Please check the address, or choose a hall on the page /city."}).encode()
        kind = b"text/html; charset=utf-8"
    await send({"type": "http.response.start", "status": 404, "headers": [
        (b"content-type", kind), (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


def build(halls: list[tuple[str, Hub]], *, state: Any, public_url: str = "", max_streams: int = 20_000,
          limits: Any = None, webhooks: bool = True, broker: str | None = None, security: Any = None,
          clock: Callable[[], float] | None = None, owner: str | None = None,
          wrong_codes: int = DEFAULT_WRONG_CODES_PER_MINUTE) -> HallRouter:
    """The gateway of ``queuehall web``: for each (key, hub) of ``halls`` the whole single-hall application
    (ticket pages, REST API, bookings, supervision), the first one also unprefixed with the city page.

    ``state``: the gateway's state (a path or URL, web/state.py) for API tokens, managers and webhooks;
    ``limits``: the REST rate limits, one set of buckets for the whole gateway; ``webhooks``: deliver the
    first hall's webhooks from this gateway (``broker``/``security``: that hall's broker, for the service's
    own connection); ``owner``: this gateway in the webhook outbox's claims (unique among the gateways
    sharing one state); ``wrong_codes``: the wrong booking codes a client address may give in a minute."""
    from queuehall.web import integrations
    from queuehall.web.app import WebSettings, create_app
    from queuehall.web.city import CityBoard, city_parts
    from queuehall.web.city import document as city_document
    from queuehall.web.ratelimit import RateLimiter, RateLimits
    from queuehall.web.supervision import ManagerStore, supervision_routes

    limits = limits or RateLimits()
    limiter = RateLimiter(limits, clock) if clock is not None else RateLimiter(limits)
    managers = ManagerStore(state)
    brake = WrongCodes(wrong_codes)  # wrong booking codes per address, all halls together (queuehall/guesses.py)
    base = public_url.rstrip("/")
    apps: list[HallApp] = []
    board = CityBoard(list(halls))
    for i, (key, hub) in enumerate(halls):
        hall = HallApp(key, hub, None)
        extra = integrations.IntegrationSettings(state=state, limits=limits, webhooks=webhooks and i == 0,
                                                 broker=broker, security=security, hall=hall.names, owner=owner)
        parts = integrations.parts(extra, limiter=limiter)
        # The manager's supervision page (docs/supervision.md), the accounts in the gateway's state.
        parts["routes"] = [*parts["routes"], *supervision_routes(hub, managers, secure=base.startswith("https://"),
                                                                 hall=hall.names)]
        if i == 0:  # the city page (docs/web.md): every hall this gateway connects to, live
            more = city_parts(board)
            parts["routes"] = [*parts["routes"], *more["routes"]]
            parts["on_startup"] = [*parts.get("on_startup", ()), *more["on_startup"]]
            parts["on_shutdown"] = [*more["on_shutdown"], *parts.get("on_shutdown", ())]
        own_url = base if i == 0 or not base else hall_prefix(base, key)
        settings = WebSettings(public_url=own_url, max_streams=max_streams, code_brake=brake)
        app = create_app(hub, settings, **parts)
        integrations.document(app.state.openapi)
        city_document(app.state.openapi)
        document(app.state.openapi, base, [k for k, _h in halls], key)
        hall.app = app
        apps.append(hall)
    router = HallRouter(apps)
    for hall in apps:  # a booking page of a code of another hall redirects there (web/bookings.py)
        hall.app.state.locate_booking = router.locate_booking
    return router


def document(doc: dict[str, Any], public_url: str, keys: list[str], own: str) -> None:
    """Name the per-hall addresses in the OpenAPI document: a second server ``{base}/h/{hall}`` whose
    variable lists the gateway's halls (every path of the document is served under it)."""
    servers = doc.setdefault("servers", [{"url": public_url or "/"}])
    servers[:] = [s for s in servers if "{hall}" not in s.get("url", "")]
    servers.append({"url": (public_url or "") + PREFIX + "{hall}",
                    "description": "the same API of one hall of a city gateway (docs/web.md)",
                    "variables": {"hall": {"default": own, "enum": keys,
                                           "description": "the hall: its --broker name or its own id"}}})
