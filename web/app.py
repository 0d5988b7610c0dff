"""The web gateway's ASGI application (Starlette): ticket pages, the public REST API v1 and its streams.

:func:`create_app` builds it around a :class:`~queuehall.web.hub.Hub` (the broker connection);
``queuehall web`` (web/main.py) serves it with uvicorn. docs/web.md describes every address.

Other parts of the gateway plug in through :func:`create_app`'s ``routes`` and ``middleware`` and
add their endpoints to the OpenAPI document (``app.state.openapi``, web/openapi.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, ClassVar

import orjson
from queuehall.web import openapi, pages
from queuehall.web.errors import ApiError
from queuehall.web.hub import Hub
from queuehall.web.rating import rating_routes
from queuehall.web.tickets import RAW_SEND, Stream, TicketBoard, serve_stream
from queuehall.web.views import bi, hall_view, service_view, services_view
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from queuehall.clock import Clock, SystemClock
from queuehall.guesses import DEFAULT_WRONG_CODES_PER_MINUTE, WrongCodes

log = logging.getLogger("queuehall.web")

# What a page may load: only the gateway's own files; no referrer, so a ticket's address never
# leaves the phone in a Referer header.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
NO_STORE = {"cache-control": "no-store"}
@dataclass
class WebSettings:
    """Limits and addresses of one gateway (``queuehall web`` options)."""

    public_url: str = ""  # the base address phones use; "" = the hall's public_base_url
    max_body_bytes: int = 64 * 1024  # a request body larger than this is refused (413 MESSAGE_TOO_LARGE)
    max_streams: int = 20_000  # open ticket pages at most; more are refused (503 UNAVAILABLE)
    keepalive_seconds: float = 15.0  # a comment line on an idle stream (proxies close silent connections)
    write_timeout: float = 20.0  # a stream whose phone has not taken a write for this long is closed
    # Wrong booking codes per client address and minute (queuehall/guesses.py): the broker brakes devices, and
    # this gateway is one device standing for every citizen, so it brakes each citizen's address itself. One
    # brake may be shared by the halls of a city gateway (web/halls.py).
    code_brake: WrongCodes = field(default_factory=lambda: WrongCodes(DEFAULT_WRONG_CODES_PER_MINUTE))
    clock: Clock = field(default_factory=SystemClock)  # the brake's minute (tests inject theirs)


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes: at once by Content-Length, or as they arrive."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _too_large(self.limit, length)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise ApiError("MESSAGE_TOO_LARGE", extra={"limit_bytes": self.limit})
            return msg

        await self.app(scope, limited, send)


def _too_large(limit: int, length: bytes) -> Response:
    if not length.isdigit():
        return ApiError("BAD_REQUEST", detail="Content-Length is not a number").response()
    return ApiError("MESSAGE_TOO_LARGE", extra={"limit_bytes": limit}).response()


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json",
                    headers={**NO_STORE, **(headers or {})})


class EventStream:
    """``text/event-stream`` of one ticket's page states (Server-Sent Events).

    Sends the current state at once, then each new one (the board writes them: :class:`Stream`); a
    comment line after ``keepalive`` seconds of silence. A phone that does not take a write within
    ``write_timeout`` is disconnected (its browser reconnects when it wakes up); other pages never wait
    for it. The states go straight to the server's own ``send`` (:class:`Gateway` keeps it in the scope),
    past the middleware, which has nothing to do on a stream's body."""

    def __init__(self, board: TicketBoard, stream: Stream, settings: WebSettings) -> None:
        self.board = board
        self.stream = stream
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await serve_stream(self.stream, scope, receive, send, self.settings.write_timeout)
        finally:
            self.board.unsubscribe(self.stream)


class Gateway(Starlette):
    """The Starlette application, keeping the server's ``send`` in the scope for the event streams."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[RAW_SEND] = send
        await super().__call__(scope, receive, send)


class _Static:
    """The few static files, held in memory and served with a long cache life (addresses are versioned)."""

    TYPES: ClassVar[dict[str, str]] = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        for item in resources.files("queuehall.web").joinpath("static").iterdir():
            suffix = "." + item.name.rsplit(".", 1)[-1]
            if suffix in self.TYPES:
                self.files[item.name] = (item.read_bytes(), self.TYPES[suffix])

    async def serve(self, request: Request) -> Response:
        found = self.files.get(request.path_params["name"])
        if found is None:
            raise ApiError("NOT_FOUND", path=request.url.path)
        return Response(found[0], media_type=found[1], headers={"cache-control": "public, max-age=604800"})


def create_app(hub: Hub, settings: WebSettings | None = None, *, routes: Sequence[BaseRoute] = (),
               middleware: Sequence[Middleware] = (),
               on_startup: Sequence[Callable[[], Awaitable[None]]] = (),
               on_shutdown: Sequence[Callable[[], Awaitable[None]]] = ()) -> Starlette:
    """The gateway's application around ``hub`` (started and stopped with the application).

    ``routes`` and ``middleware`` are added to the gateway's own; ``on_startup``/``on_shutdown``
    run after the hub started and before it stops. ``app.state`` holds ``hub``, ``board`` (ticket
    pages), ``settings`` and ``openapi`` (the document served at /api/v1/openapi.json)."""
    settings = settings or WebSettings()
    board = TicketBoard(hub, settings.keepalive_seconds)
    static = _Static()

    def hall_name() -> dict[str, str]:
        h = hub.mirror.state.get("hall") or {}
        return bi(h.get("name_zh"), h.get("name_en"))

    def need_hall() -> None:
        """503 UNREACHABLE when the gateway has no current picture of the hall."""
        if not hub.ready:
            raise ApiError("UNREACHABLE")

    ticket_id = board.ticket_of

    # -- pages

    async def ticket_page(request: Request) -> Response:
        token = request.path_params["token"]
        try:
            tid = await ticket_id(token)
        except ApiError as err:
            page = pages.unreachable_page if err.status == 503 else pages.unknown_ticket_page
            return HTMLResponse(page(hall_name() if hub.mirror.synced else None), status_code=err.status,
                                headers=NO_STORE)
        state = board.state(tid)
        assert state is not None
        # On a city gateway the hall's prefix /h/<hall> (web/halls.py) is the root path: the page's script uses it.
        return HTMLResponse(pages.ticket_page(token, state, request.scope.get("root_path", "")), headers=NO_STORE)

    # -- the public API

    async def api_hall(request: Request) -> Response:
        if not hub.ready:
            extra = {"hall": hall_view(hub.mirror.state, connected=False)} if hub.mirror.state else {}
            raise ApiError("UNREACHABLE", extra=extra)
        return _json({"hall": hall_view(hub.mirror.state, connected=True)})

    async def api_services(request: Request) -> Response:
        need_hall()
        return _json({"services": services_view(hub.mirror.state)})

    async def api_service(request: Request) -> Response:
        need_hall()
        code = request.path_params["code"]
        s = (hub.mirror.state.get("services") or {}).get(code)
        if s is None:
            raise ApiError("UNKNOWN_SERVICE", service=code)
        return _json({"service": service_view(s)})

    async def api_ticket(request: Request) -> Response:
        tid = await ticket_id(request.path_params["token"])
        state = board.state(tid)
        if not hub.ready:  # the last known place, marked as such, with the code
            raise ApiError("UNREACHABLE", extra={"ticket": state})
        return _json({"ticket": state})

    async def api_ticket_events(request: Request) -> Response | EventStream:
        tid = await ticket_id(request.path_params["token"])
        if board.open_streams >= settings.max_streams:
            raise ApiError("UNAVAILABLE", detail="too many open pages", headers={"retry-after": "10"})
        # ?patch=1 (the ticket page): after the first state, only the fields that changed (docs/web.md).
        return EventStream(board, board.subscribe(tid, request.query_params.get("patch") == "1"), settings)

    async def api_openapi(request: Request) -> Response:
        return _json(request.app.state.openapi, headers={"cache-control": "public, max-age=300"})

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok" if hub.ready else "unreachable", "broker": hub.connected,
                      "synced": hub.mirror.synced, "open_pages": board.open_streams},
                     status=200 if hub.ready else 503)

    async def index(request: Request) -> Response:
        if not hub.mirror.synced:
            return HTMLResponse(pages.unreachable_page(), status_code=503, headers=NO_STORE)
        return HTMLResponse(pages.hall_page(hall_view(hub.mirror.state, connected=hub.ready),
                                            services_view(hub.mirror.state)), headers=NO_STORE)

    # -- errors

    def is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            err = ApiError("METHOD_NOT_ALLOWED", method=request.method)
        elif exc.status_code == 404:
            if not is_api(request):
                return HTMLResponse(pages.message_page(bi("没有此页面", "Page not found"),
                                                       bi("请检查网址。", "Please check the address.")),
                                    status_code=404)
            err = ApiError("NOT_FOUND", path=request.url.path)
        else:
            err = ApiError("BAD_REQUEST", exc.status_code, detail=str(exc.detail)[:200])
        return err.response()

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return ApiError("UNAVAILABLE", 500, detail=type(exc).__name__).response()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        for fn in on_startup:
            await fn()
        try:
            yield
        finally:
            for fn in on_shutdown:
                await fn()
            for subs in list(board.streams.values()):
                for s in list(subs):
                    s.close()
            await hub.stop()

    own: list[BaseRoute] = [
        Route("/", index),
        Route("/t/{token}", ticket_page),
        Route("/static/{name}", static.serve),
        Route("/healthz", healthz),
        Route("/api/v1/openapi.json", api_openapi),
        Route("/api/v1/hall", api_hall),
        Route("/api/v1/services", api_services),
        Route("/api/v1/services/{code}", api_service),
        Route("/api/v1/tickets/{token}", api_ticket),
        Route("/api/v1/tickets/{token}/events", api_ticket_events),
        *rating_routes(hub, board),  # 好差评 from the phone page (docs/evaluation.md)
    ]
    app = Gateway(
        routes=[*own, *routes],
        middleware=[Middleware(_Headers), Middleware(BodyLimit, limit=settings.max_body_bytes), *middleware],
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_error, Exception: on_crash},
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.board = board
    app.state.settings = settings
    app.state.openapi = openapi.document(settings.public_url)
    return app


class _Headers:
    """Adds :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                msg = dict(msg, headers=[*msg.get("headers", []), *self.extra])
            await send(msg)

        await self.app(scope, receive, with_headers)
