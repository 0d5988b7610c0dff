"""The REST API's write side: remote tickets, check-in and counter actions, behind API tokens and rate limits,
and the webhook deliveries, plugged into the gateway's application (docs/web.md).

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
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from queuehall.web import openapi
from queuehall.web.apitokens import TokenInfo, TokenStore, allows, allows_hall
from queuehall.web.bookings import booking_routes
from queuehall.web.errors import ApiError
from queuehall.web.hub import BrokerDown, Hub, Refused
from queuehall.web.ratelimit import RateLimiter, RateLimitMiddleware, RateLimits
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from queuehall.commands import COMMANDS as SCHEMA
from queuehall.commands import json_schema

log = logging.getLogger("queuehall.web.integrations")

IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII, no spaces
# REST verb -> broker command, for the counter of the token's scope: from the command schema, every command the
# web gateway may send that acts on a counter and nothing else (call-next, recall, no-show, start, finish).
COUNTER_ACTIONS = {name.replace("_", "-"): name for name, c in SCHEMA.items()
                   if "web" in c.roles and [p.name for p in c.params] == ["counter", "session"]}


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


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json",
                    headers={"cache-control": "no-store"})


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
        key = request.headers.get("idempotency-key")
        if key is None:
            return None
        if not IDEMPOTENCY_KEY_RE.fullmatch(key):
            raise ApiError("BAD_REQUEST", detail="Idempotency-Key must be 1 to 200 printable ASCII characters")
        digest = hashlib.sha256(f"{token.id}\n{operation}\n{key}".encode()).hexdigest()
        return f"idem-{digest[:40]}"

    async def command(self, hub: Hub, type_: str, request_id: str | None, **args: Any) -> dict[str, Any]:
        """Run a broker command; the same request id twice at once runs once (both get its answer)."""
        if request_id is None:
            return await self._run(hub, type_, None, args)
        fut = self._inflight.get(request_id)
        if fut is None:
            fut = self._inflight[request_id] = asyncio.ensure_future(self._run(hub, type_, request_id, args))
            fut.add_done_callback(lambda _f: self._inflight.pop(request_id, None))
        return await asyncio.shield(fut)

    @staticmethod
    async def _run(hub: Hub, type_: str, request_id: str | None, args: dict[str, Any]) -> dict[str, Any]:
        try:
            return await hub.request(type_, request_id=request_id, **args)
        except Refused as err:
            raise ApiError.from_error(err.error) from None
        except BrokerDown:
            raise ApiError("UNREACHABLE") from None

    @staticmethod
    async def body(request: Request) -> dict[str, Any]:
        """The JSON object sent (an empty body is an empty object); BAD_REQUEST otherwise."""
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError("BAD_REQUEST", detail=f"the body is not JSON: {str(exc)[:120]}") from None
        if not isinstance(obj, dict):
            raise ApiError("BAD_REQUEST", detail="the body must be a JSON object")
        return obj

    # -- handlers

    async def take_ticket(self, request: Request) -> Response:
        """POST /api/v1/tickets {service, priority?}: a remote ticket (scope kiosk)."""
        token = self.authorise(request, "kiosk")
        body = await self.body(request)
        service, priority = body.get("service"), body.get("priority")
        if not isinstance(service, str) or not service:
            raise ApiError("BAD_REQUEST", detail="service must be a service code (a string)")
        if priority is not None and not isinstance(priority, str):
            raise ApiError("BAD_REQUEST", detail="priority must be a priority class code (a string)")
        rid = self.request_id(request, token, "take")
        result = await self.command(request.app.state.hub, "take_ticket", rid, service=service, priority=priority,
                                    channel="remote")
        t = result["ticket"]
        return _json({"ticket": t, "ahead": result["ahead"], "estimated_wait_minutes": result["estimated_wait_minutes"],
                      "arrive_by": t.get("arrive_by"), "token": result.get("token"), "url": result.get("url")},
                     status=201)

    async def check_in(self, request: Request) -> Response:
        """POST /api/v1/tickets/{token}/check-in: the holder of a remote ticket arrived (scope kiosk)."""
        token = self.authorise(request, "kiosk")
        board = request.app.state.board
        try:
            tid = await board.resolve(request.path_params["token"])
        except BrokerDown:
            raise ApiError("UNREACHABLE") from None
        if tid is None:
            raise ApiError("UNKNOWN_TOKEN")
        rid = self.request_id(request, token, f"check-in {tid}")
        result = await self.command(request.app.state.hub, "check_in", rid, ticket=str(tid))
        return _json({"ticket": result["ticket"]})

    async def counter_action(self, request: Request) -> Response:
        """POST /api/v1/counters/{number}/{action}: a counter's call box (scope counter:N)."""
        action = COUNTER_ACTIONS.get(request.path_params["action"])
        if action is None:
            raise ApiError("NOT_FOUND", path=request.url.path)
        number = request.path_params["number"]
        token = self.authorise(request, "counter", number)
        await self.body(request)  # nothing to read, but a malformed body is still refused
        rid = self.request_id(request, token, f"{action} {number}")
        result = await self.command(request.app.state.hub, action, rid, counter=number)
        out: dict[str, Any] = {"ticket": result.get("ticket")}
        if "no_show" in result:
            out["no_show"] = result["no_show"]
        return _json(out)


def parts(settings: IntegrationSettings, *, clock: Callable[[], float] | None = None,
          limiter: RateLimiter | None = None) -> dict[str, Any]:
    """``create_app`` keyword arguments: routes, the rate-limit middleware and the webhook service's hooks.
    ``limiter``: buckets shared with other halls' applications (a city gateway), else new ones."""
    tokens = TokenStore(settings.state)
    api = Integrations(tokens, settings.hall)
    if limiter is None:
        limiter = RateLimiter(settings.limits, clock) if clock is not None else RateLimiter(settings.limits)
    routes: list[BaseRoute] = [
        Route("/api/v1/tickets", api.take_ticket, methods=["POST"]),
        Route("/api/v1/tickets/{token}/check-in", api.check_in, methods=["POST"]),
        Route("/api/v1/counters/{number:int}/{action}", api.counter_action, methods=["POST"]),
        *booking_routes(api),  # appointments (预约): web/bookings.py
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

_AUTH: list[dict[str, list[str]]] = [{"apiToken": []}]
_IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
                "description": "Any 1-200 printable ASCII characters; a retry with the same key (and token) gets the "
                               "original answer and the hall does the work once (kept two days).",
                "schema": {"type": "string", "maxLength": 200}}
_TOKEN = {"name": "token", "in": "path", "required": True, "description": "The ticket's page token.",
          "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"}}
_COMMON = {"401": openapi._error("UNAUTHORIZED: no valid API token"),
           "403": openapi._error("TOKEN_SCOPE: the token's scopes do not allow it"),
           "429": openapi._error("RATE_LIMITED, with Retry-After (seconds)"),
           "503": openapi._error("UNREACHABLE: the broker cannot be reached; the command may be retried with "
                                 "the same Idempotency-Key")}
_WIRE_TICKET = {"type": "object", "description": "A ticket in the protocol's form (docs/protocol.md, Records); a "
                "remote ticket has channel, arrive_by and checked_in.", "additionalProperties": True,
                "properties": {"id": {"type": "integer"}, "label": {"type": "string"}, "status": {"type": "string"},
                               "service": {"type": "string"}, "channel": {"const": "remote"},
                               "arrive_by": {"type": "string", "format": "date-time"},
                               "checked_in": {"type": "boolean"}}}


def _take_body() -> dict[str, Any]:
    """take_ticket's arguments from the command schema, without the channel (the gateway's are remote)."""
    schema = json_schema("take_ticket")
    del schema["properties"]["channel"]
    return schema


def document(doc: dict[str, Any]) -> None:
    """Add the write side's operations and the token security scheme to the OpenAPI document."""
    doc["components"].setdefault("securitySchemes", {})["apiToken"] = {
        "type": "http", "scheme": "bearer", "bearerFormat": "qh_<id>_<secret>",
        "description": "An API token (queuehall web-token create) with the scope the operation names."}
    ref = openapi._ref
    openapi.add(doc, "/api/v1/tickets", "post", {
        "summary": "Take a remote ticket (WeChat mini program, 一网通办); scope kiosk", "operationId": "takeTicket",
        "security": _AUTH, "parameters": [_IDEMPOTENCY],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _take_body()}}},
        "responses": {
            "201": {"description": "The ticket; check in at the kiosk by arrive_by or it lapses",
                    "content": {"application/json": {"schema": {"type": "object", "properties": {
                        "ticket": ref("WireTicket"), "ahead": {"type": "integer"},
                        "estimated_wait_minutes": {"type": "integer"},
                        "arrive_by": {"type": "string", "format": "date-time"},
                        "token": {"type": "string", "description": "the ticket's page token"},
                        "url": {"type": ["string", "null"], "description": "the ticket's page"}}}}}},
            "400": openapi._error("BAD_REQUEST"), "404": openapi._error("UNKNOWN_SERVICE, UNKNOWN_PRIORITY"),
            "409": openapi._error("HALL_CLOSED, HALL_BREAK, PAST_CUTOFF, DAILY_CAP_REACHED, REMOTE_NOT_OFFERED, "
                                  "REMOTE_QUOTA_REACHED, PRIORITY_NOT_ALLOWED"), **_COMMON}},
        {"WireTicket": _WIRE_TICKET})
    openapi.add(doc, "/api/v1/tickets/{token}/check-in", "post", {
        "summary": "Check a remote ticket in: its holder has arrived; scope kiosk", "operationId": "checkIn",
        "security": _AUTH, "parameters": [_TOKEN, _IDEMPOTENCY],
        "responses": {"200": openapi._ok("The ticket, checked in", "ticket", ref("WireTicket")),
                      "404": openapi._error("UNKNOWN_TOKEN"),
                      "409": openapi._error("NOT_REMOTE, ALREADY_CHECKED_IN, REMOTE_LAPSED, NOT_WAITING"), **_COMMON}})
    from queuehall.web import bookings

    bookings.document(doc, _AUTH, _IDEMPOTENCY, _COMMON)
    for verb, command in COUNTER_ACTIONS.items():
        openapi.add(doc, f"/api/v1/counters/{{number}}/{verb}", "post", {
            "summary": f"Counter action {command} for counter {{number}} (an integration box); scope counter:N",
            "description": f"{SCHEMA[command].doc} (the broker command {command}, docs/protocol.md).",
            "operationId": "counter" + "".join(w.capitalize() for w in verb.split("-")),
            "security": _AUTH, "parameters": [
                {"name": "number", "in": "path", "required": True, "schema": {"type": "integer"}}, _IDEMPOTENCY],
            "responses": {
                "200": {"description": "The ticket acted on (recall: no_show true when the recall limit made it a "
                                       "no-show)", "content": {"application/json": {"schema": {
                                           "type": "object", "properties": {"ticket": ref("WireTicket"),
                                                                            "no_show": {"type": "boolean"}}}}}},
                "404": openapi._error("UNKNOWN_COUNTER"),
                "409": openapi._error("COUNTER_CLOSED, COUNTER_PAUSED, COUNTER_BUSY, QUEUE_EMPTY, NOTHING_CALLED, "
                                      "NOT_SERVING, ALREADY_SERVING"), **_COMMON}})
