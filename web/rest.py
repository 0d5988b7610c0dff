"""The REST API's endpoints that send a broker command, derived from the command schema (queuehall/commands.py).

An :class:`Endpoint` binds one command to an HTTP method and path and says what the gateway adds (the
arguments the path gives, those it sets itself, the shape of its answer). Everything else comes from the
schema, so a parameter added to a command changes the REST API and its OpenAPI document with no second edit:

* the arguments an endpoint takes, with their JSON types, required or not, and their values (``enum``): the
  command's parameters less those the path gives, the gateway sets (``fixed``) or does not offer (``hidden``);
  a GET takes them from the query string, any other method from a JSON object in the body;
* the API token scope it needs (:func:`queuehall.commands.web_scope`, from the command's roles);
* its error answers: the command's refusals (``errors``) by HTTP status (web/errors.py), with the token's,
  the rate limit's and the gateway's own.

Each request is checked against the schema as the broker checks a command (:func:`queuehall.commands.check_args`:
``BAD_REQUEST`` naming the argument, in Chinese and English), authorised, and sent with an id derived from its
``Idempotency-Key`` (a ``hall`` command); the broker's refusal is answered with its code and both messages.

:data:`ENDPOINTS` is the table; :data:`ELSEWHERE` names the commands of the ``web`` role that have no endpoint
here, and why. tests/test_web_rest.py checks that together they cover every command the ``web`` role may send.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import orjson
from queuehall.web import openapi
from queuehall.web.errors import HTTP_STATUS, ApiError
from queuehall.web.hub import BrokerDown, Hub, Refused
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from queuehall.commands import COMMANDS, Param, check_args, param_schema, web_scope
from queuehall.errors import HallError
from queuehall.guesses import CODE_COMMANDS, WRONG_CODE_ERRORS

IDEMPOTENCY_KEY_RE = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII, no spaces
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
BOOKING_CODE_RE = re.compile(r"[A-Za-z0-9-]{4,32}")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class Authoriser(Protocol):
    """What an endpoint with a token scope needs of the gateway's API tokens (web/integrations.py): the request's
    token (with its ``id``) if it allows ``need``, else :class:`ApiError` UNAUTHORIZED or TOKEN_SCOPE."""

    def authorise(self, request: Request, need: str, counter: int | None = None) -> Any: ...


# ---------------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class PathValue:
    """A path parameter that stands for an argument: its value as sent (``arg``), or what ``resolve`` makes of it
    (a ticket's page token -> the ticket's id). ``schema`` and ``errors`` document it."""

    arg: str
    schema: dict[str, Any]
    resolve: Callable[[Request, str], Awaitable[Any]] | None = None
    errors: tuple[str, ...] = ()
    description: str = ""


Reply = Callable[[Request, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Endpoint:
    """One REST endpoint sending the broker command ``command`` (see the module's docstring).

    ``path_values``: the path parameters, each standing for an argument (a :class:`PathValue`, or the
    argument's name when the value is sent as it is; the argument's type converts it). ``fixed``: arguments
    the gateway sets; ``hidden``: arguments not offered; ``require``: optional arguments this endpoint
    requires; ``checks``: further checks of an argument's value (raise :class:`ApiError`). ``reply`` shapes
    the answer from the broker's result (default: the result), sent with ``status``; ``response`` documents it.
    ``max_body``: a smaller limit of the body's bytes than the gateway's.
    """

    operation: str
    command: str
    method: str
    path: str
    summary: str
    path_values: Mapping[str, PathValue | str] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    hidden: tuple[str, ...] = ()
    require: tuple[str, ...] = ()
    checks: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    reply: Reply | None = None
    status: int = 200
    response: dict[str, Any] | None = None
    max_body: int | None = None
    key: str = ""  # the operation's name for Idempotency-Key (default: the command's)

    @property
    def scope(self) -> str:
        """The API token scope it needs: ``public`` (none), ``kiosk``, ``counter`` (``counter:N`` of the path's
        counter) or ``admin``, from the command's roles (:func:`queuehall.commands.web_scope`)."""
        return web_scope(self.command)

    def path_args(self) -> set[str]:
        return {v if isinstance(v, str) else v.arg for v in self.path_values.values()}

    def params(self) -> tuple[Param, ...]:
        """The command's parameters this endpoint takes from the query string or body (``require`` applied)."""
        skip = self.path_args() | set(self.fixed) | set(self.hidden)
        out = []
        for p in COMMANDS[self.command].params:
            if p.name in skip:
                continue
            if p.name in self.require and not p.required:
                p = Param(p.name, p.kind, True, p.empty, doc=p.doc, note=p.note, choices=p.choices,
                          separator=p.separator)
            out.append(p)
        return tuple(out)

    def body_schema(self) -> dict[str, Any]:
        """The JSON Schema of what it takes in the body (or the query string), from the command schema."""
        params = self.params()
        schema: dict[str, Any] = {"type": "object",
                                  "properties": {p.name: param_schema(p, lists=True) for p in params}}
        required = [p.name for p in params if p.required]
        if required:
            schema["required"] = required
        return schema

    def idempotency_operation(self, args: Mapping[str, Any]) -> str:
        """What an ``Idempotency-Key`` is kept for, with the token: the operation and the path's arguments."""
        return " ".join([self.key or self.command, *(str(args[a]) for a in sorted(self.path_args()))])


# -- what the endpoints add to the schema


def _date(value: Any) -> Any:
    if isinstance(value, str):
        if not DATE_RE.fullmatch(value):
            raise ApiError("BAD_REQUEST", detail="date must be a date YYYY-MM-DD")
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ApiError("BAD_REQUEST", detail=f"date is not a calendar date: {value}") from None
    return value


def _address(request: Request) -> str:
    client = request.client
    return client.host if client else "unknown"


def code_limit(request: Request) -> dict[str, Any] | None:
    """The ``BOOKING_CODE_LIMIT`` refusal (the broker's error object) when the request's client address gave
    too many wrong booking codes within the last minute (the gateway's brake, ``WebSettings.code_brake``), else
    None. The broker does not brake the gateway, which stands for every citizen (queuehall/guesses.py)."""
    settings = request.app.state.settings
    wait = settings.code_brake.wait_seconds(_address(request), settings.clock.now())
    if not wait:
        return None
    return HallError("BOOKING_CODE_LIMIT", retry_after=wait, per_minute=settings.code_brake.per_minute).to_dict()


def count_code(request: Request, refused: str) -> None:
    """Count a booking code refused with ``refused`` against the request's address, if it was a wrong guess."""
    if refused in WRONG_CODE_ERRORS:
        settings = request.app.state.settings
        settings.code_brake.wrong(_address(request), settings.clock.now())


async def _booking_code(request: Request, code: str) -> str:
    if not BOOKING_CODE_RE.fullmatch(code):
        raise ApiError("BOOKING_NOT_FOUND", booking=code[:40])
    return code


async def _ticket_of_token(request: Request, token: str) -> str:
    """The ticket a page token names, as the broker's ``ticket`` argument; UNKNOWN_TOKEN for none of today."""
    return str(await request.app.state.board.ticket_of(token))


_TOKEN_SCHEMA = {"type": "string", "pattern": TOKEN_RE.pattern}
PAGE_TOKEN = PathValue("ticket", _TOKEN_SCHEMA, _ticket_of_token, ("UNKNOWN_TOKEN",),
                       "The ticket's page token (from its QR code / take reply): 22+ URL-safe characters.")
BOOKING_CODE = PathValue("code", {"type": "string"}, _booking_code, ("BOOKING_NOT_FOUND",),
                         "The booking code (any case; dashes and spaces ignored).")


def booking_url(request: Request, code: str) -> str:
    """The booking page's address: under the gateway's public address (``--public-url``), else this request's."""
    base = str(getattr(request.app.state.settings, "public_url", "") or "").rstrip("/")
    if not base:
        base = str(request.base_url).rstrip("/")
    return f"{base}/b/{code}"


def with_page_qr(request: Request, booking: dict[str, Any]) -> dict[str, Any]:
    """``booking`` with ``qr`` set to its page's address under the gateway's public address (``--public-url``)
    when the gateway has one, so a phone's camera opens the page; else as the broker made it (its own
    ``public_base_url``'s page, or ``queuehall:booking:CODE``). The kiosk's scanner reads either."""
    if getattr(request.app.state.settings, "public_url", "") and booking.get("code"):
        return {**booking, "qr": booking_url(request, str(booking["code"]))}
    return booking


def _taken(request: Request, result: dict[str, Any]) -> dict[str, Any]:
    t = result["ticket"]
    return {"ticket": t, "ahead": result["ahead"], "estimated_wait_minutes": result["estimated_wait_minutes"],
            "arrive_by": t.get("arrive_by"), "token": result.get("token"), "url": result.get("url")}


def _with_page(request: Request, result: dict[str, Any]) -> dict[str, Any]:
    booking = with_page_qr(request, result["booking"])
    return {"booking": booking, "url": booking_url(request, str(booking["code"]))}


def _booking_checked_in(request: Request, result: dict[str, Any]) -> dict[str, Any]:
    return {"booking": result["booking"], "ticket": result["ticket"], "late": bool(result.get("late")),
            "ahead": result.get("ahead"), "estimated_wait_minutes": result.get("estimated_wait_minutes"),
            "url": result.get("url")}


def _counter_done(request: Request, result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ticket": result.get("ticket")}
    if "no_show" in result:
        out["no_show"] = result["no_show"]
    return out


def _rated(request: Request, result: dict[str, Any]) -> dict[str, Any]:
    r = result.get("rating") or {}
    # The phone learns its own rating back, not the clerk or the counter's internal numbers.
    return {"rating": {k: r.get(k) for k in ("label", "level", "level_zh", "level_en", "indicators", "channel",
                                               "rated_at")}}


def _only(*keys: str) -> Reply:
    return lambda request, result: {k: result.get(k) for k in keys}


_ref = openapi._ref
_WIRE_TICKET = {"type": "object", "description": "A ticket in the protocol's form (docs/protocol.md, Records); a "
                "remote ticket has channel, arrive_by and checked_in.", "additionalProperties": True,
                "properties": {"id": {"type": "integer"}, "label": {"type": "string"}, "status": {"type": "string"},
                               "service": {"type": "string"}, "channel": {"type": "string"},
                               "arrive_by": {"type": "string", "format": "date-time"},
                               "checked_in": {"type": "boolean"}}}
_BOOKING = {"type": "object", "description": "A booking (docs/protocol.md, \"Bookings\").",
            "additionalProperties": True,
            "properties": {
                "code": {"type": "string", "description": "10 characters of 23456789ABCDEFGHJKMNPQRSTUVWXYZ"},
                "hall": {"type": "string"}, "service": {"type": "string"},
                "service_name": _ref("Bilingual"),
                "slot": {"type": "string", "description": "the slot's start, YYYY-MM-DDTHH:MM in the hall's time"},
                "slot_end": {"type": "string"},
                "state": {"type": "string", "enum": ["booked", "checked_in", "cancelled", "no_show"]},
                "qr": {"type": "string", "description": "the QR code's content: the booking page's address "
                       "(…/b/<code>) when the hall's public address is known, else queuehall:booking:<code>; "
                       "the kiosk's scanner reads both"},
                "contact_masked": {"type": ["string", "null"], "description": "e.g. 138****5678"},
                "ticket": {"type": ["string", "null"], "description": "the ticket's number once checked in"},
                "checked_in_at": {"type": ["string", "null"], "format": "date-time"}}}
_SLOT = {"type": "object", "properties": {
    "start": {"type": "string"}, "end": {"type": "string"}, "capacity": {"type": "integer"},
    "booked": {"type": "integer"}, "free": {"type": "integer"}, "bookable": {"type": "boolean"}}}
_RATING = {"type": "object", "properties": {
    "label": {"type": "string"}, "level": {"type": "integer"}, "level_zh": {"type": "string"},
    "level_en": {"type": "string"}, "indicators": {"type": "array", "items": {"type": "string"}},
    "channel": {"type": "string"}, "rated_at": {"type": "string", "format": "date-time"}}}
SCHEMAS = {"WireTicket": _WIRE_TICKET, "Booking": _BOOKING, "Slot": _SLOT, "Rating": _RATING}


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


_BOOKING_AND_PAGE = _obj(booking=_ref("Booking"), url={"type": "string"})
_COUNTER_VERBS = {"call_next": "call-next", "recall": "recall", "no_show": "no-show", "start": "start",
                  "finish": "finish"}


def _counter_action(command: str) -> Endpoint:
    verb = _COUNTER_VERBS[command]
    return Endpoint(
        "counter" + "".join(w.capitalize() for w in verb.split("-")), command, "POST",
        f"/api/v1/counters/{{number}}/{verb}",
        f"Counter action {command} for counter {{number}} (an integration box)",
        path_values={"number": "counter"}, reply=_counter_done,
        response=_obj(ticket=_ref("WireTicket"), no_show={
            "type": "boolean", "description": "recall: true when the recall limit made it a no-show"}))


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("takeTicket", "take_ticket", "POST", "/api/v1/tickets",
             "Take a remote ticket (WeChat mini program, 一网通办); check in at the kiosk by arrive_by",
             fixed={"channel": "remote"}, reply=_taken, status=201, key="take", response=_obj(
                 ticket=_ref("WireTicket"), ahead={"type": "integer"}, estimated_wait_minutes={"type": "integer"},
                 arrive_by={"type": "string", "format": "date-time"},
                 token={"type": "string", "description": "the ticket's page token"},
                 url={"type": ["string", "null"], "description": "the ticket's page"})),
    Endpoint("checkIn", "check_in", "POST", "/api/v1/tickets/{token}/check-in",
             "Check a remote ticket in: its holder has arrived", path_values={"token": PAGE_TOKEN},
             reply=_only("ticket"), key="check-in", response=_obj(ticket=_ref("WireTicket"))),
    Endpoint("rateTicket", "rate", "POST", "/api/v1/tickets/{token}/rating",
             "Rate the ticket's last finished visit from its phone page (好差评); the page token is the credential",
             path_values={"token": PAGE_TOKEN}, fixed={"channel": "phone"}, hidden=("visit", "counter"),
             reply=_rated, response=_obj(rating=_ref("Rating")), max_body=4096),
    *(_counter_action(c) for c in _COUNTER_VERBS),
    Endpoint("listSlots", "slots", "GET", "/api/v1/services/{code}/slots",
             "A service's appointment slots on a day, with the places left", path_values={"code": "service"},
             require=("date",), checks={"date": _date},
             response=_obj(service={"type": "string"}, date={"type": "string"},
                           slots={"type": "array", "items": _ref("Slot")})),
    Endpoint("book", "book", "POST", "/api/v1/bookings", "Book a slot (WeChat mini program, 一网通办)",
             reply=_with_page, status=201, response=_BOOKING_AND_PAGE),
    Endpoint("listBookings", "bookings", "GET", "/api/v1/bookings",
             "The bookings of a day, by slot (the admin's list: it shows masked contacts)", require=("date",),
             checks={"date": _date}, reply=lambda request, result: {"date": result.get("date"),
                                                                     "bookings": result["bookings"]},
             response=_obj(date={"type": "string"}, bookings={"type": "array", "items": _ref("Booking")})),
    Endpoint("getBooking", "booking", "GET", "/api/v1/bookings/{code}", "One booking by its code",
             path_values={"code": BOOKING_CODE}, reply=_with_page, response=_BOOKING_AND_PAGE),
    Endpoint("unbook", "unbook", "DELETE", "/api/v1/bookings/{code}", "Cancel a booking",
             path_values={"code": BOOKING_CODE}, reply=_only("booking"), response=_obj(booking=_ref("Booking"))),
    Endpoint("checkInBooking", "checkin", "POST", "/api/v1/bookings/{code}/check-in",
             "The citizen arrived: check the booking in and issue its ticket (appointment: true unless late)",
             path_values={"code": BOOKING_CODE}, reply=_booking_checked_in, response=_obj(
                 booking=_ref("Booking"), ticket=_ref("WireTicket"), late={"type": "boolean"},
                 ahead={"type": ["integer", "null"]}, estimated_wait_minutes={"type": ["integer", "null"]},
                 url={"type": ["string", "null"]})),
    Endpoint("listAlerts", "alerts", "GET", "/api/v1/alerts", "The hall's active alerts (docs/supervision.md)",
             response=_obj(alerts={"type": "array", "items": {"type": "object"}})),
    Endpoint("ackAlert", "alert_ack", "POST", "/api/v1/alerts/{key}/ack",
             "Acknowledge an active alert with a note (docs/supervision.md)", path_values={"key": "key"},
             reply=_only("alert"), response=_obj(alert={"type": "object"})),
    Endpoint("getToday", "today", "GET", "/api/v1/today",
             "Today's completion and satisfaction so far, as the reports define them", response={"type": "object"}),
    Endpoint("listEvents", "events", "GET", "/api/v1/events",
             "The hall's journaled events after a journal_seq, oldest first, as published (no notes or reasons)",
             response=_obj(events={"type": "array", "items": {"type": "object"}}, last_seq={"type": "integer"},
                           journal={"type": "boolean"})),
)

# Commands the ``web`` role may send that have no endpoint of this table, and why.
ELSEWHERE: dict[str, str] = {
    "hello": "the gateway's own link to the broker",
    "ping": "the gateway's own link to the broker",
    "snapshot": "the gateway's own link: its mirror serves GET /api/v1/hall, /services and the ticket pages",
    "ticket_by_token": "GET /api/v1/tickets/{token} (web/app.py): the page's state from the gateway's mirror, "
                       "the token looked up once",
}


# ---------------------------------------------------------------------------------------------- requests


async def read_body(request: Request, limit: int | None = None) -> dict[str, Any]:
    """The JSON object sent (an empty body is an empty object); BAD_REQUEST otherwise."""
    raw = await request.body()
    if limit is not None and len(raw) > limit:
        raise ApiError("MESSAGE_TOO_LARGE", extra={"limit_bytes": limit})
    if not raw.strip():
        return {}
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError("BAD_REQUEST", detail=f"the body is not JSON: {str(exc)[:120]}") from None
    if not isinstance(obj, dict):
        raise ApiError("BAD_REQUEST", detail="the body must be a JSON object")
    return obj


def request_id(request: Request, token_id: str, operation: str) -> str | None:
    """The broker command id for an ``Idempotency-Key`` (None without one: a fresh id)."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise ApiError("BAD_REQUEST", detail="Idempotency-Key must be 1 to 200 printable ASCII characters")
    digest = hashlib.sha256(f"{token_id}\n{operation}\n{key}".encode()).hexdigest()
    return f"idem-{digest[:40]}"


def _typed(p: Param, raw: str) -> Any:
    """A query-string or path value as the argument's type (what does not convert is left for check_args)."""
    if p.kind is int and re.fullmatch(r"-?[0-9]{1,18}", raw):
        return int(raw)
    if p.kind is bool and raw in ("true", "false"):
        return raw == "true"
    return raw


def _lists(params: tuple[Param, ...], given: dict[str, Any]) -> dict[str, Any]:
    """A list of choices sent as a JSON array, joined as the broker takes it (``separator``)."""
    out = dict(given)
    for p in params:
        value = out.get(p.name)
        if p.separator is None or value is None or isinstance(value, str):
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ApiError("BAD_REQUEST", argument=p.name, detail=f"{p.name} must be a list of strings",
                           detail_zh=f"参数 {p.name} 应为字符串列表")
        out[p.name] = p.separator.join(value)
    return out


Run = Callable[[Hub, str, "str | None", dict[str, Any]], Awaitable[dict[str, Any]]]


async def run_command(hub: Hub, command: str, rid: str | None, args: dict[str, Any]) -> dict[str, Any]:
    """Send a broker command; its refusal as an ApiError with its code and both messages."""
    try:
        return await hub.request(command, request_id=rid, **args)
    except Refused as err:
        raise ApiError.from_error(err.error) from None
    except BrokerDown:
        raise ApiError("UNREACHABLE") from None


def handler(ep: Endpoint, tokens: Authoriser | None, run: Run = run_command) -> Callable[[Request],
                                                                                         Awaitable[Response]]:
    """The request handler of ``ep``: authorise, read and check the arguments, send, answer.

    ``tokens`` checks API tokens (None: only public endpoints can be served); ``run`` sends the command (the
    integrations' runs one request id once when it comes twice at once)."""
    command = COMMANDS[ep.command]
    by_name = {p.name: p for p in command.params}
    params = ep.params()
    scope = ep.scope

    async def handle(request: Request) -> Response:
        args: dict[str, Any] = dict(ep.fixed)
        plain = {name: v for name, v in ep.path_values.items() if isinstance(v, str)}
        for name, arg in plain.items():
            args[arg] = _typed(by_name[arg], str(request.path_params[name]))
        token = None
        if scope != "public":
            if tokens is None:
                raise ApiError("UNAUTHORIZED", 401)
            counter = args.get("counter") if scope == "counter" else None
            token = tokens.authorise(request, scope, counter if isinstance(counter, int) else None)
        for name, value in ep.path_values.items():
            if not isinstance(value, str):
                raw = str(request.path_params[name])
                args[value.arg] = await value.resolve(request, raw) if value.resolve else raw
        if ep.method == "GET":
            given: dict[str, Any] = {p.name: _typed(p, request.query_params[p.name]) for p in params
                                     if p.name in request.query_params}
        else:
            body = await read_body(request, ep.max_body)
            given = {p.name: body[p.name] for p in params if p.name in body}
        try:
            given = check_args(params, _lists(params, given))
        except HallError as err:  # as the broker would refuse it: BAD_REQUEST naming the argument
            raise ApiError.from_error(err.to_dict()) from None
        for name, check in ep.checks.items():
            if name in given:
                given[name] = check(given[name])
        args.update(given)
        rid = None
        if token is not None and command.kind == "hall":
            rid = request_id(request, token.id, ep.idempotency_operation(args))
        braked = ep.command in CODE_COMMANDS
        limit = code_limit(request) if braked else None
        if limit is not None:
            raise ApiError.from_error(limit)
        try:
            result = await run(request.app.state.hub, ep.command, rid, args)
        except ApiError as err:
            if braked:
                count_code(request, str(err.error["code"]))
            raise
        out = ep.reply(request, result) if ep.reply is not None else result
        return Response(orjson.dumps(out), status_code=ep.status, media_type="application/json",
                        headers={"cache-control": "no-store"})

    return handle


def routes(endpoints: tuple[Endpoint, ...], tokens: Authoriser | None, run: Run = run_command) -> list[BaseRoute]:
    """Starlette routes for ``endpoints`` (``{number}`` paths take integers)."""
    out: list[BaseRoute] = []
    for ep in endpoints:
        path = ep.path.replace("{number}", "{number:int}")
        out.append(Route(path, handler(ep, tokens, run), methods=[ep.method]))
    return out


def by_operation(operation: str) -> Endpoint:
    return next(ep for ep in ENDPOINTS if ep.operation == operation)


# ---------------------------------------------------------------------------------------------- OpenAPI

AUTH_CODES = {"UNAUTHORIZED": 401, "TOKEN_SCOPE": 403}
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
               "description": "Any 1-200 printable ASCII characters; a retry with the same key (and token) gets the "
                              "original answer and the hall does the work once (kept two days).",
               "schema": {"type": "string", "maxLength": 200}}
SCOPE_WORDS = {"public": "no token", "kiosk": "scope kiosk", "counter": "scope counter:N (N the path's counter)",
               "admin": "scope admin"}


def error_codes(ep: Endpoint, rate_limited: bool = True) -> dict[int, list[str]]:
    """The codes ``ep`` may answer with, by HTTP status: the schema's refusals of its command, the path's own,
    the token's, the rate limit's and the gateway's."""
    codes = ["BAD_REQUEST", *COMMANDS[ep.command].errors]
    for value in ep.path_values.values():
        if not isinstance(value, str):
            codes += value.errors
    if ep.scope != "public":
        codes += list(AUTH_CODES)
    if rate_limited:
        codes.append("RATE_LIMITED")
    if ep.method != "GET":
        codes.append("MESSAGE_TOO_LARGE")
    codes.append("UNREACHABLE")
    if COMMANDS[ep.command].kind == "hall":
        codes.append("STORAGE")
    out: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        status = AUTH_CODES.get(code) or (429 if code == "RATE_LIMITED" else HTTP_STATUS.get(code, 409))
        out.setdefault(status, []).append(code)
    return dict(sorted(out.items()))


def _error_answer(codes: list[str]) -> dict[str, Any]:
    schema = {"allOf": [_ref("Error"), {"type": "object", "properties": {"error": {
        "type": "object", "properties": {"code": {"type": "string", "enum": codes}}}}}]}
    return {"description": ", ".join(codes), "content": {"application/json": {"schema": schema}}}


def operation(ep: Endpoint, rate_limited: bool = True) -> dict[str, Any]:
    """The OpenAPI operation of ``ep``, generated from the command schema."""
    command = COMMANDS[ep.command]
    by_name = {p.name: p for p in command.params}
    parameters: list[dict[str, Any]] = []
    for name, value in ep.path_values.items():
        if isinstance(value, str):
            parameters.append({"name": name, "in": "path", "required": True,
                               "description": f"the command's argument {value}",
                               "schema": param_schema(by_name[value])})
        else:
            parameters.append({"name": name, "in": "path", "required": True, "description": value.description,
                               "schema": value.schema})
    body = ep.body_schema()
    if ep.method == "GET":
        required = set(body.get("required", ()))
        parameters += [{"name": name, "in": "query", "required": name in required, "schema": schema}
                       for name, schema in body["properties"].items()]
    if ep.scope != "public" and command.kind == "hall":
        parameters.append(IDEMPOTENCY)
    op: dict[str, Any] = {
        "summary": f"{ep.summary}; {SCOPE_WORDS[ep.scope]}", "operationId": ep.operation,
        "description": f"Sends the broker command `{ep.command}` ({command.doc}; docs/protocol.md)." + (
            f" The gateway sets {', '.join(f'{k}={v!r}' for k, v in ep.fixed.items())}." if ep.fixed else ""),
        "x-queuehall-command": ep.command, "x-queuehall-scope": ep.scope,
    }
    if parameters:
        op["parameters"] = parameters
    if ep.method != "GET" and body["properties"]:
        op["requestBody"] = {"required": bool(body.get("required")),
                             "content": {"application/json": {"schema": body}}}
    if ep.scope != "public":
        op["security"] = [{"apiToken": []}]
    ok: dict[str, Any] = {"description": f"The result of {ep.command}"}
    ok["content"] = {"application/json": {"schema": ep.response or {"type": "object"}}}
    op["responses"] = {str(ep.status): ok, **{str(status): _error_answer(codes)
                                              for status, codes in error_codes(ep, rate_limited).items()}}
    return op


def document(doc: dict[str, Any], endpoints: tuple[Endpoint, ...] = ENDPOINTS, rate_limited: bool = True) -> None:
    """Add ``endpoints``' operations, their schemas and the token security scheme to the OpenAPI document."""
    if any(ep.scope != "public" for ep in endpoints):
        doc["components"].setdefault("securitySchemes", {})["apiToken"] = {
            "type": "http", "scheme": "bearer", "bearerFormat": "qh_<id>_<secret>",
            "description": "An API token (queuehall web-token create) with the scope the operation names."}
    for ep in endpoints:
        openapi.add(doc, ep.path, ep.method, operation(ep, rate_limited), SCHEMAS)


# The endpoints every gateway has (web/rating.py mounts them with the ticket pages), and those that come with the
# API tokens (web/integrations.py).
ON_THE_PAGE = tuple(ep for ep in ENDPOINTS if ep.operation == "rateTicket")
WITH_TOKENS = tuple(ep for ep in ENDPOINTS if ep not in ON_THE_PAGE)
