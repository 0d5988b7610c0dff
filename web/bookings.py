"""Appointments (预约) on the web gateway: the REST endpoints and the booking's own page (docs/web.md, "Bookings").

The hall's rules are the broker's (``slots``, ``book``, ``unbook``, ``checkin``, ``bookings`` and the query
``booking``; docs/protocol.md): the gateway checks the API token's scope, passes the request on as a command
with an id (derived from an ``Idempotency-Key`` when one is sent, so a retried booking is made once) and answers
with the broker's result or its refusal (its stable code, in both languages).

| endpoint | scope |
|---|---|
| ``GET /api/v1/services/{code}/slots?date=YYYY-MM-DD`` | none (public, rate-limited) |
| ``POST /api/v1/bookings`` ``{service, slot, contact?}`` | ``kiosk`` (a mini program, 一网通办) |
| ``GET /api/v1/bookings/{code}`` | ``kiosk`` |
| ``DELETE /api/v1/bookings/{code}`` | ``kiosk`` |
| ``POST /api/v1/bookings/{code}/check-in`` | ``kiosk`` |
| ``GET /api/v1/bookings?date=YYYY-MM-DD&service=`` | ``admin`` (the day's list: it shows masked contacts) |
| ``GET /b/{code}`` | none: the confirmation page (code, QR code, slot, service, materials) |

The page shows nothing personal (never the contact, not even masked) and is rate-limited like the API.
"""

from __future__ import annotations

import contextlib
import re
from datetime import date, datetime
from typing import Any

import orjson
import qrcode
import qrcode.constants
from queuehall.web import openapi
from queuehall.web.errors import ApiError
from queuehall.web.halls import ROOT
from queuehall.web.hub import BrokerDown, Hub, Refused
from queuehall.web.pages import _document, _e, _pair, message_page, unreachable_page
from queuehall.web.views import bi
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
CODE_RE = re.compile(r"[A-Za-z0-9-]{4,32}")
_WEEKDAYS_ZH = "一二三四五六日"
_WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_STATES = {
    "booked": bi("预约成功", "Booked"),
    "checked_in": bi("已签到", "Checked in"),
    "cancelled": bi("预约已取消", "This booking was cancelled"),
    "no_show": bi("预约已过期（未签到）", "Expired: not checked in"),
}


def _json(obj: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json",
                    headers={"cache-control": "no-store"})


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


def qr_svg(text: str, size: int = 220) -> str:
    """``text`` as a QR code (error correction M, the quiet zone included) in one inline SVG path: a few hundred
    bytes, drawn sharp at any size, no image file and no script (the page's CSP allows neither from elsewhere)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(text)
    code.make(fit=True)
    matrix = code.get_matrix()
    runs: list[str] = []
    for y, row in enumerate(matrix):
        x = 0
        while x < len(row):
            if row[x]:
                start = x
                while x < len(row) and row[x]:
                    x += 1
                runs.append(f"M{start} {y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    n = len(matrix)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {n} {n}" width="{size}" height="{size}" '
            f'shape-rendering="crispEdges" role="img" aria-label="{_e(text)}"><rect width="{n}" height="{n}" '
            f'fill="#fff"/><path fill="#000" d="{"".join(runs)}"/></svg>')


def spaced(code: str) -> str:
    """The code in groups of four, easier to read out and type: ``K7M3 Q9XP AB``."""
    return " ".join(code[i:i + 4] for i in range(0, len(code), 4))


def slot_text(slot: str, end: str = "") -> dict[str, str]:
    """``2026-12-08T10:00`` (and its end) as read: "2026年12月8日（周二）10:00–10:30" /
    "Tue 8 Dec 2026, 10:00–10:30"."""
    try:
        at = datetime.fromisoformat(slot)
    except ValueError:
        return bi(slot, slot)
    hm = at.strftime("%H:%M")
    with contextlib.suppress(ValueError):
        hm += "–" + datetime.fromisoformat(end).strftime("%H:%M") if end else ""
    d = at.date()
    return bi(f"{d.year}年{d.month}月{d.day}日（周{_WEEKDAYS_ZH[d.weekday()]}）{hm}",
              f"{_WEEKDAYS_EN[d.weekday()]} {d.day} {_MONTHS_EN[d.month - 1]} {d.year}, {hm}")


def booking_page(booking: dict[str, Any], hall: dict[str, str], materials: list[dict[str, str]]) -> str:
    """The booking's confirmation page: its state, code, QR code (``booking["qr"]``, what the kiosk scans), slot,
    service and the materials to bring; nothing personal."""
    state = str(booking.get("state") or "booked")
    raw = booking.get("service_name")
    name: dict[str, Any] = raw if isinstance(raw, dict) else {}
    service = bi(name.get("zh") or booking.get("service"), name.get("en") or booking.get("service"))
    code = str(booking.get("code") or "")
    when = slot_text(str(booking.get("slot") or ""), str(booking.get("slot_end") or ""))
    open_ = state == "booked"
    if open_:
        how = bi("到达大厅后，请在自助取号机上点“预约签到”扫描此二维码，或输入预约码。"
                 "请在预约时间前后签到，迟到将按普通号排队。",
                 "When you arrive, tap \"Appointment check-in\" on the hall's kiosk and scan this QR code, or type "
                 "the booking code. Check in around your time: if you are late, you queue as a walk-in.")
    elif state == "checked_in":
        label = str(booking.get("ticket") or "")
        how = bi(f"号码 {label}，请留意叫号。", f"Your number is {label}: please watch for it.") if label else \
            bi("请留意叫号。", "Please watch for your number.")
    else:
        how = bi("如需办理请重新预约，或到大厅取号。", "Book again, or take a ticket at the hall.")
    qr = (f'<div class="qr">{qr_svg(str(booking.get("qr") or f"queuehall:booking:{code}"))}</div>'
          if open_ else "")
    items = "".join(f'<li>{_e(m.get("zh"))}<span class="en">{_e(m.get("en"))}</span></li>' for m in materials)
    listed = (f'<section class="card"><h2>请备齐以下材料 <span class="en">Please bring</span></h2><ol>{items}</ol>'
              '</section>' if items and open_ else "")
    body = (f'<section class="card main booking status-{_e(state)}">'
            f'{_pair("p", "head", _STATES.get(state, bi(state, state)), "head")}'
            f'<p class="label">预约码 <span class="en">Booking code</span></p>'
            f'<p id="code" class="code">{_e(spaced(code))}</p>{qr}'
            f'{_pair("p", "slot", when, "slot")}{_pair("p", "svc", service, "svc")}'
            f'{_pair("p", "detail", how, "detail")}</section>{listed}'
            '<p class="meta">请保存本页或截图 <span class="en">Keep this page or take a screenshot</span></p>')
    return _document(f'{spaced(code)} · {_STATES.get(state, bi(state, state))["zh"]}', body, hall=hall)


class BookingApi:
    """The handlers; ``api`` is the gateway's :class:`~queuehall.web.integrations.Integrations` (token checks,
    idempotent commands, bodies)."""

    def __init__(self, api: Any) -> None:
        self.api = api

    @staticmethod
    def _date(value: str | None, name: str = "date") -> str:
        if value is None or not DATE_RE.fullmatch(value):
            raise ApiError("BAD_REQUEST", detail=f"{name} must be a date YYYY-MM-DD")
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ApiError("BAD_REQUEST", detail=f"{name} is not a calendar date: {value}") from None
        return value

    @staticmethod
    def _code(request: Request) -> str:
        code = request.path_params["code"]
        if not CODE_RE.fullmatch(code):
            raise ApiError("BOOKING_NOT_FOUND", booking=code[:40])
        return code

    async def slots(self, request: Request) -> Response:
        """GET /api/v1/services/{code}/slots?date=: the service's slots that day with the places left."""
        day = self._date(request.query_params.get("date"))
        result = await self.api.command(request.app.state.hub, "slots", None, service=request.path_params["code"],
                                        date=day)
        return _json(result)

    async def book(self, request: Request) -> Response:
        """POST /api/v1/bookings {service, slot, contact?} (scope kiosk): 201 with the booking and its page."""
        token = self.api.authorise(request, "kiosk")
        body = await self.api.body(request)
        service, slot, contact = body.get("service"), body.get("slot"), body.get("contact")
        if not isinstance(service, str) or not service:
            raise ApiError("BAD_REQUEST", detail="service must be a service code (a string)")
        if not isinstance(slot, str) or not slot:
            raise ApiError("BAD_REQUEST", detail="slot must be the slot's start, YYYY-MM-DDTHH:MM (hall time)")
        if contact is not None and not isinstance(contact, str):
            raise ApiError("BAD_REQUEST", detail="contact must be a phone or ID number (a string)")
        rid = self.api.request_id(request, token, "book")
        result = await self.api.command(request.app.state.hub, "book", rid, service=service, slot=slot,
                                        contact=contact)
        booking = with_page_qr(request, result["booking"])
        return _json({"booking": booking, "url": booking_url(request, str(booking["code"]))}, status=201)

    async def get(self, request: Request) -> Response:
        """GET /api/v1/bookings/{code} (scope kiosk)."""
        self.api.authorise(request, "kiosk")
        code = self._code(request)
        result = await self.api.command(request.app.state.hub, "booking", None, code=code)
        booking = with_page_qr(request, result["booking"])
        return _json({"booking": booking, "url": booking_url(request, str(booking["code"]))})

    async def unbook(self, request: Request) -> Response:
        """DELETE /api/v1/bookings/{code} (scope kiosk): the booking, cancelled."""
        token = self.api.authorise(request, "kiosk")
        code = self._code(request)
        rid = self.api.request_id(request, token, f"unbook {code}")
        result = await self.api.command(request.app.state.hub, "unbook", rid, code=code)
        return _json({"booking": result["booking"]})

    async def checkin(self, request: Request) -> Response:
        """POST /api/v1/bookings/{code}/check-in (scope kiosk): the citizen arrived; their ticket is issued."""
        token = self.api.authorise(request, "kiosk")
        code = self._code(request)
        await self.api.body(request)  # nothing to read, but a malformed body is still refused
        rid = self.api.request_id(request, token, f"checkin {code}")
        result = await self.api.command(request.app.state.hub, "checkin", rid, code=code)
        return _json({"booking": result["booking"], "ticket": result["ticket"], "late": bool(result.get("late")),
                      "ahead": result.get("ahead"), "estimated_wait_minutes": result.get("estimated_wait_minutes"),
                      "url": result.get("url")})

    async def day(self, request: Request) -> Response:
        """GET /api/v1/bookings?date=&service= (scope admin): the day's bookings, by slot."""
        self.api.authorise(request, "admin")
        day = self._date(request.query_params.get("date"))
        service = request.query_params.get("service") or None
        result = await self.api.command(request.app.state.hub, "bookings", None, date=day, service=service)
        return _json({"date": result.get("date", day), "bookings": result["bookings"]})

    async def page(self, request: Request) -> Response:
        """GET /b/{code}: the booking's confirmation page (404 page for an unknown code, 503 when the broker is
        unreachable)."""
        hub: Hub = request.app.state.hub
        state = hub.mirror.state
        hall = bi((state.get("hall") or {}).get("name_zh"), (state.get("hall") or {}).get("name_en"))
        headers = {"cache-control": "no-store"}
        code = request.path_params["code"]
        try:
            if not CODE_RE.fullmatch(code):
                raise Refused({"code": "BOOKING_NOT_FOUND"})
            booking = (await hub.request("booking", code=code))["booking"]
        except BrokerDown:
            return HTMLResponse(unreachable_page(hall if hub.mirror.synced else None), status_code=503,
                                headers=headers)
        except Refused as err:
            if err.code == "BOOKING_CODE_LIMIT":  # the broker's brake on guessing codes: the gateway is one device
                wait = str((err.error.get("details") or {}).get("retry_after") or 60)
                return HTMLResponse(message_page(
                    bi("请稍后再试", "Please try again later"),
                    bi(f"查询预约码的次数过多，请 {wait} 秒后再试。",
                       f"Too many booking codes were tried: please try again in {wait} s."),
                    hall if hub.mirror.synced else None), status_code=429, headers={**headers, "retry-after": wait})
            # A city gateway (web/halls.py) sends a code of another of its halls there: the code's hall tag says
            # another hall's (WRONG_HALL), or it is one character that may match this hall too (NOT_FOUND).
            locate = getattr(request.app.state, "locate_booking", None)
            if err.code in ("BOOKING_WRONG_HALL", "BOOKING_NOT_FOUND") and locate is not None:
                where = await locate(code)
                if where is not None:
                    return RedirectResponse(f"{request.scope.get(ROOT, '')}{where}/b/{code}", status_code=307,
                                            headers=headers)
            return HTMLResponse(message_page(
                bi("没有找到此预约", "Booking not found"),
                bi("请核对预约码（不含数字 0、1 和字母 O、I、L）。预约可能已属于其他大厅或已过期。",
                   "Please check the code (codes never use 0, 1, O, I or L). It may be another hall's booking, or "
                   "an old one."), hall if hub.mirror.synced else None), status_code=404, headers=headers)
        svc = (state.get("services") or {}).get(str(booking.get("service"))) or {}
        materials = [bi(m.get("zh"), m.get("en")) for m in svc.get("materials") or [] if isinstance(m, dict)]
        return HTMLResponse(booking_page(with_page_qr(request, booking), hall, materials), headers=headers)


def booking_routes(api: Any) -> list[BaseRoute]:
    """The routes of :class:`BookingApi` (``api``: the gateway's Integrations)."""
    b = BookingApi(api)
    return [
        Route("/api/v1/services/{code}/slots", b.slots, methods=["GET"]),
        Route("/api/v1/bookings", b.book, methods=["POST"]),
        Route("/api/v1/bookings", b.day, methods=["GET"]),
        Route("/api/v1/bookings/{code}", b.get, methods=["GET"]),
        Route("/api/v1/bookings/{code}", b.unbook, methods=["DELETE"]),
        Route("/api/v1/bookings/{code}/check-in", b.checkin, methods=["POST"]),
        Route("/b/{code}", b.page, methods=["GET"]),
    ]


# ---------------------------------------------------------------------------------------------- OpenAPI

_BOOKING = {"type": "object", "description": "A booking (docs/protocol.md, \"Bookings\").",
            "additionalProperties": True,
            "properties": {
                "code": {"type": "string", "description": "10 characters of 23456789ABCDEFGHJKMNPQRSTUVWXYZ"},
                "hall": {"type": "string"}, "service": {"type": "string"},
                "service_name": openapi._ref("Bilingual"),
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
    "booked": {"type": "integer"}, "free": {"type": "integer"}}}
_CODE = {"name": "code", "in": "path", "required": True, "description": "The booking code (any case; dashes "
         "and spaces ignored).", "schema": {"type": "string"}}
_DATE = {"name": "date", "in": "query", "required": True, "schema": {"type": "string", "format": "date"}}
_REFUSALS = ("BOOKING_CODE_INVALID, BOOKING_WRONG_HALL, BOOKING_WRONG_DAY, BOOKING_TOO_EARLY, "
             "BOOKING_ALREADY_CHECKED_IN, BOOKING_CANCELLED")


def document(doc: dict[str, Any], auth: list[dict[str, list[str]]], idempotency: dict[str, Any],
             common: dict[str, Any]) -> None:
    """Add the booking endpoints to the OpenAPI document (``auth``, ``idempotency``, ``common``: the
    integrations' security requirement, Idempotency-Key parameter and 401/403/429/503 answers)."""
    ref, ok, err = openapi._ref, openapi._ok, openapi._error
    schemas = {"Booking": _BOOKING, "Slot": _SLOT}
    booking_answer = {"description": "The booking and its page", "content": {"application/json": {"schema": {
        "type": "object", "properties": {"booking": ref("Booking"), "url": {"type": "string"}}}}}}
    openapi.add(doc, "/api/v1/services/{code}/slots", "get", {
        "summary": "A service's appointment slots on a day, with the places left (public)", "operationId": "listSlots",
        "parameters": [{"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}, _DATE],
        "responses": {"200": {"description": "The slots", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"service": {"type": "string"}, "date": {"type": "string"},
                                             "slots": {"type": "array", "items": ref("Slot")}}}}}},
                      "400": err("BAD_REQUEST"), "404": err("UNKNOWN_SERVICE"), "429": common["429"],
                      "503": common["503"]}}, schemas)
    openapi.add(doc, "/api/v1/bookings", "post", {
        "summary": "Book a slot (WeChat mini program, 一网通办); scope kiosk", "operationId": "book",
        "security": auth, "parameters": [idempotency],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["service", "slot"], "properties": {
                "service": {"type": "string"}, "slot": {"type": "string", "description": "YYYY-MM-DDTHH:MM"},
                "contact": {"type": "string", "description": "a phone or ID number, kept masked and hashed"}}}}}},
        "responses": {"201": booking_answer, "400": err("BAD_REQUEST"), "404": err("UNKNOWN_SERVICE"),
                      "409": err("SLOT_FULL, SLOT_CLOSED, SLOT_PAST, SLOT_UNKNOWN"), **common}})
    openapi.add(doc, "/api/v1/bookings", "get", {
        "summary": "The bookings of a day, by slot (the admin's list); scope admin", "operationId": "listBookings",
        "security": auth, "parameters": [_DATE, {"name": "service", "in": "query", "required": False,
                                                 "schema": {"type": "string"}}],
        "responses": {"200": ok("The day's bookings", "bookings", {"type": "array", "items": ref("Booking")}),
                      "400": err("BAD_REQUEST"), **common}})
    openapi.add(doc, "/api/v1/bookings/{code}", "get", {
        "summary": "One booking by its code; scope kiosk", "operationId": "getBooking", "security": auth,
        "parameters": [_CODE], "responses": {"200": booking_answer, "404": err("BOOKING_NOT_FOUND"), **common}})
    openapi.add(doc, "/api/v1/bookings/{code}", "delete", {
        "summary": "Cancel a booking; scope kiosk", "operationId": "unbook", "security": auth,
        "parameters": [_CODE, idempotency],
        "responses": {"200": ok("The booking, cancelled", "booking", ref("Booking")),
                      "404": err("BOOKING_NOT_FOUND"), "409": err(_REFUSALS), **common}})
    openapi.add(doc, "/api/v1/bookings/{code}/check-in", "post", {
        "summary": "The citizen arrived: check the booking in and issue its ticket; scope kiosk",
        "operationId": "checkInBooking", "security": auth, "parameters": [_CODE, idempotency],
        "responses": {"200": {"description": "The booking, its ticket (appointment: true unless late) and late",
                              "content": {"application/json": {"schema": {"type": "object", "properties": {
                                  "booking": ref("Booking"), "ticket": ref("WireTicket"), "late": {"type": "boolean"},
                                  "ahead": {"type": ["integer", "null"]},
                                  "estimated_wait_minutes": {"type": ["integer", "null"]},
                                  "url": {"type": ["string", "null"]}}}}}},
                      "404": err("BOOKING_NOT_FOUND"), "409": err(_REFUSALS), **common}})
