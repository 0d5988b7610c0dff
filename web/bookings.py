"""Appointments (预约) on the web gateway: the booking's own page (docs/web.md, "Bookings").

The hall's rules are the broker's (``slots``, ``book``, ``unbook``, ``checkin``, ``bookings`` and the query
``booking``; docs/protocol.md). Their REST endpoints are derived from the command schema (web/rest.py): the
gateway checks the API token's scope, passes the request on as a command with an id (derived from an
``Idempotency-Key`` when one is sent, so a retried booking is made once) and answers with the broker's result or
its refusal (its stable code, in both languages).

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
from datetime import datetime
from typing import Any

import qrcode
import qrcode.constants
from queuehall.web import rest
from queuehall.web.halls import ROOT
from queuehall.web.hub import BrokerDown, Hub, Refused
from queuehall.web.pages import _document, _e, _pair, message_page, unreachable_page
from queuehall.web.views import bi
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

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


async def page(request: Request) -> Response:
    """GET /b/{code}: the booking's confirmation page (404 page for an unknown code, 503 when the broker is
    unreachable)."""
    hub: Hub = request.app.state.hub
    state = hub.mirror.state
    hall = bi((state.get("hall") or {}).get("name_zh"), (state.get("hall") or {}).get("name_en"))
    headers = {"cache-control": "no-store"}
    code = request.path_params["code"]
    asked = False
    try:
        if not CODE_RE.fullmatch(code):
            raise Refused({"code": "BOOKING_NOT_FOUND"})
        limit = rest.code_limit(request)
        if limit is not None:
            raise Refused(limit)
        asked = True  # a code the broker was asked about: a wrong one counts against the address
        booking = (await hub.request("booking", code=code))["booking"]
    except BrokerDown:
        return HTMLResponse(unreachable_page(hall if hub.mirror.synced else None), status_code=503,
                            headers=headers)
    except Refused as err:
        if err.code == "BOOKING_CODE_LIMIT":  # the brake on guessing codes, per address (queuehall/guesses.py)
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
        if asked:
            rest.count_code(request, err.code)
        return HTMLResponse(message_page(
            bi("没有找到此预约", "Booking not found"),
            bi("请核对预约码（不含数字 0、1 和字母 O、I、L）。预约可能已属于其他大厅或已过期。",
               "Please check the code (codes never use 0, 1, O, I or L). It may be another hall's booking, or "
               "an old one."), hall if hub.mirror.synced else None), status_code=404, headers=headers)
    svc = (state.get("services") or {}).get(str(booking.get("service"))) or {}
    materials = [bi(m.get("zh"), m.get("en")) for m in svc.get("materials") or [] if isinstance(m, dict)]
    return HTMLResponse(booking_page(rest.with_page_qr(request, booking), hall, materials), headers=headers)


def booking_routes() -> list[BaseRoute]:
    """The booking's page (its REST endpoints: web/rest.py)."""
    return [Route("/b/{code}", page, methods=["GET"])]
