"""The REST API behind API tokens and rate limits (remote tickets, check-in, counter actions, bookings, alerts, the
journal: every endpoint that sends a broker command, derived from the command schema in web/rest.py), and the
webhook deliveries, plugged into the gateway's application (docs/web.md).

:func:`parts` gives :func:`~queuehall.web.app.create_app` the routes, middleware and start/stop hooks;
:func:`document` adds the endpoints to the OpenAPI document. ``queuehall web`` (web/main.py) and the
tests build the gateway the same way.

Every write goes to the broker as a command with an id. With an ``Idempotency-Key`` header the id is
derived from the key (with the token and the operation), so a client retrying after a lost answer,
even after the gateway restarted, gets the original reply and the hall does the work once: the
broker remembers accepted commands by (client, id) for two days (docs/protocol.md, "Idempotency"),
and the gateway's client id is stable (``web-<name>``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from queuehall.web import rest
from queuehall.web.apitokens import TokenInfo, TokenStore, allows, allows_hall
from queuehall.web.bookings import booking_routes
from queuehall.web.errors import ApiError
from queuehall.web.hub import Hub
from queuehall.web.ratelimit import RateLimiter, RateLimitMiddleware, RateLimits
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.routing import BaseRoute

log = logging.getLogger("queuehall.web.integrations")


@dataclass
class IntegrationSettings:
    """What ``queuehall web`` adds to the gateway: its state file, rate limits and webhooks."""

    state: Path
    limits: RateLimits = field(default_factory=RateLimits)
    webhooks: bool = True  # run the webhook deliveries in the gateway
    broker: str | None = None  # for the webhook service's own connection
    security: Any = None
    # The names of the hall this application serves (a city gateway, web/halls.py): tokens with ``hall:``
    # scopes are valid only there. None: a gateway of one hall, where ``hall:`` scopes are not checked.
    hall: Callable[[], set[str]] | None = None
    owner: str | None = None  # this gateway in the webhook outbox's claims (web/outbox.py), unique per gateway


class Integrations:
    """The handlers, with the token store and the commands in flight (by request id)."""

    def __init__(self, tokens: TokenStore, hall: Callable[[], set[str]] | None = None) -> None:
        self.tokens = tokens
        self.hall = hall
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}

    # -- checks

    def authorise(self, request: Request, need: str, counter: int | None = None) -> TokenInfo:
        """The request's API token, if it allows ``need``: 401 UNAUTHORIZED without a valid one, 403
        TOKEN_SCOPE when its scopes do not allow it."""
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        info = self.tokens.verify(presented) if scheme.lower() == "bearer" else None
        if info is None:
            raise ApiError("UNAUTHORIZED", 401, headers={"www-authenticate": 'Bearer realm="queuehall"'})
        if self.hall is not None and not allows_hall(info.scopes, self.hall()):
            raise ApiError("TOKEN_SCOPE", 403, detail="it is a token of another hall")
        if not allows(info.scopes, need, counter):
            scope = f"counter:{counter}" if need == "counter" else need
            raise ApiError("TOKEN_SCOPE", 403, detail=f"it needs the scope {scope}")
        return info

    @staticmethod
    def request_id(request: Request, token: TokenInfo, operation: str) -> str | None:
        """The broker command id for an ``Idempotency-Key`` (None without one: a fresh id)."""
        return rest.request_id(request, token.id, operation)

    async def command(self, hub: Hub, type_: str, request_id: str | None, **args: Any) -> dict[str, Any]:
        """Run a broker command; the same request id twice at once runs once (both get its answer)."""
        if request_id is None:
            return await rest.run_command(hub, type_, None, args)
        fut = self._inflight.get(request_id)
        if fut is None:
            fut = self._inflight[request_id] = asyncio.ensure_future(rest.run_command(hub, type_, request_id, args))
            fut.add_done_callback(lambda _f: self._inflight.pop(request_id, None))
        return await asyncio.shield(fut)

    async def run(self, hub: Hub, type_: str, request_id: str | None, args: dict[str, Any]) -> dict[str, Any]:
        """:meth:`command` as the REST endpoints call it (web/rest.py)."""
        return await self.command(hub, type_, request_id, **args)

    @staticmethod
    async def body(request: Request) -> dict[str, Any]:
        """The JSON object sent (an empty body is an empty object); BAD_REQUEST otherwise."""
        return await rest.read_body(request)


def parts(settings: IntegrationSettings, *, clock: Callable[[], float] | None = None,
          limiter: RateLimiter | None = None) -> dict[str, Any]:
    """``create_app`` keyword arguments: routes, the rate-limit middleware and the webhook service's hooks.
    ``limiter``: buckets shared with other halls' applications (a city gateway), else new ones."""
    tokens = TokenStore(settings.state)
    api = Integrations(tokens, settings.hall)
    if limiter is None:
        limiter = RateLimiter(settings.limits, clock) if clock is not None else RateLimiter(settings.limits)
    routes: list[BaseRoute] = [
        *rest.routes(rest.WITH_TOKENS, api, api.run),  # every endpoint sending a command: web/rest.py
        *booking_routes(),  # the booking's page (预约): web/bookings.py
    ]
    starts: list[Callable[[], Awaitable[None]]] = []
    stops: list[Callable[[], Awaitable[None]]] = []
    if settings.webhooks:
        from queuehall.web.outbox import Outbox
        from queuehall.web.webhooks import WebhookService

        outbox = Outbox(settings.state, owner=settings.owner)
        service = WebhookService(outbox, settings.broker, security=settings.security)

        async def start() -> None:
            await asyncio.get_running_loop().run_in_executor(None, service.start)

        async def stop() -> None:
            await asyncio.get_running_loop().run_in_executor(None, service.stop)

        starts.append(start)
        stops.append(stop)
    # Booking pages are limited like the API: their codes must not be tried by the thousand.
    return {"routes": routes, "middleware": [Middleware(RateLimitMiddleware, limiter=limiter),
                                             Middleware(RateLimitMiddleware, limiter=limiter, prefix="/b/")],
            "on_startup": starts, "on_shutdown": stops}


# ---------------------------------------------------------------------------------------------- OpenAPI


def document(doc: dict[str, Any]) -> None:
    """Add the endpoints that come with the API tokens, generated from the command schema (web/rest.py), and the
    token security scheme to the OpenAPI document."""
    rest.document(doc, rest.WITH_TOKENS)
    rest.document(doc, rest.ON_THE_PAGE)  # rate-limited too, now
