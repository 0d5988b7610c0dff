"""What the gateway shows, computed from the hall state a mirror holds (pure functions, no I/O).

Everything here is public: a ticket's page state carries no ticket id, no note, no clerk and no
other ticket; the hall and service views carry what the wall display shows. docs/web.md lists
every field.
"""

from __future__ import annotations

import math
from typing import Any
from zoneinfo import ZoneInfo

from queuehall.payloads import NO_TICKET, decode_ticket
from queuehall.protocol import parse_time
from queuehall.text import Bi

WAITING, CALLED, SERVING, NO_SHOW = "waiting", "called", "serving", "no_show"
ACTIVE = frozenset({WAITING, CALLED, SERVING})


def bi(zh: Any, en: Any) -> dict[str, str]:
    """The wire form of the :class:`~queuehall.text.Bi` of ``zh`` and ``en`` (None or a missing name: empty)."""
    return Bi(str(zh or ""), str(en or "")).to_dict()


def hall_view(state: dict[str, Any], *, connected: bool) -> dict[str, Any]:
    """``GET /api/v1/hall``: name, open or not, business day, counters open, people waiting."""
    hall = state.get("hall") or {}
    counters = state.get("counters") or {}
    services = state.get("services") or {}
    return {
        "name": bi(hall.get("name_zh"), hall.get("name_en")),
        "open": bool(hall.get("open")),
        "business_day": state.get("business_day"),
        "timezone": state.get("timezone"),
        "notice": bi(hall.get("notice_zh"), hall.get("notice_en")),
        "counters_open": sum(1 for c in counters.values() if c.get("state") != "closed"),
        "counters": len(counters),
        "waiting": sum(int(s.get("waiting") or 0) for s in services.values()),
        "connected": connected,
    }


def service_view(s: dict[str, Any]) -> dict[str, Any]:
    """One service for ``GET /api/v1/services``: names, materials, waiting count and estimate."""
    return {
        "code": s.get("code"),
        "name": bi(s.get("name_zh"), s.get("name_en")),
        "department": s.get("department"),
        "waiting": int(s.get("waiting") or 0),
        "estimated_wait_minutes": int(s.get("estimated_wait_minutes") or 0),
        "issue_state": s.get("issue_state"),
        "next_open": s.get("next_open"),
        "issued_today": s.get("issued_today"),
        "daily_cap": s.get("daily_cap"),
        "target_wait_minutes": s.get("target_wait_minutes"),
        "promised_days": s.get("promised_days"),
        "materials": [bi(m.get("zh"), m.get("en")) for m in s.get("materials") or []],
    }


def services_view(state: dict[str, Any]) -> list[dict[str, Any]]:
    services = state.get("services") or {}
    order = state.get("service_order") or list(services)
    return [service_view(services[c]) for c in order if c in services]


def queue_positions(state: dict[str, Any], service: str) -> dict[int, int]:
    """People ahead of each waiting ticket of ``service``'s queue, by ticket id.

    The queue's order is first come, first served (``queued_at``, then id); a normal ticket also has
    every waiting priority ticket ahead of it (the green channel is called first, within the hall's
    priority streak), a priority ticket only the priority tickets before it. It is an estimate, as
    the take reply's ``ahead`` is: counters may call out of order or serve several queues.
    """
    # The two fields picked out of every record cheaply, then only this queue's tickets decoded.
    records = (r for r in (state.get("tickets") or {}).values()
               if r.get("status") == WAITING and r.get("queue_service") == service)
    queue = sorted((t for t in map(decode_ticket, records) if t is not None and t.id is not None),
                   key=lambda t: t.queue_order)
    priority_total = sum(1 for t in queue if t.priority)
    out: dict[int, int] = {}
    priority_before = 0
    for i, t in enumerate(queue):
        tid = t.id or 0
        if t.priority:
            out[tid] = priority_before
            priority_before += 1
        else:
            # Everyone before it, plus the priority tickets that came after it.
            out[tid] = i + (priority_total - priority_before)
    return out


def estimate_minutes(service: dict[str, Any], ahead: int) -> int:
    """Minutes until a ticket with ``ahead`` people before it is called, from the service's own
    estimate for its whole queue (the broker's ``estimated_wait_minutes`` for ``waiting`` people)."""
    if ahead <= 0:
        return 0
    waiting = int(service.get("waiting") or 0)
    total = int(service.get("estimated_wait_minutes") or 0)
    if waiting <= 0 or total <= 0:
        return 0
    return max(1, math.ceil(total * ahead / waiting))


def page_state(view: dict[str, Any], state: dict[str, Any], *, ahead: int | None, connected: bool) -> dict[str, Any]:
    """A ticket as its own page shows it (``GET /api/v1/tickets/{token}`` and its event stream).

    ``view`` is the broker's public ticket view (live from the mirror, or as it was when it ended);
    ``ahead`` its place from :func:`queue_positions` while it waits."""
    t = decode_ticket(view) or NO_TICKET
    status = t.status
    queue_service = t.queue_service or t.service
    services = state.get("services") or {}
    service = services.get(queue_service) or {}
    hall = state.get("hall") or {}
    counter_no = t.counter
    counter = None
    if counter_no is not None and status in (CALLED, SERVING, NO_SHOW):
        c = (state.get("counters") or {}).get(str(counter_no)) or {}
        counter = {"number": counter_no, "name": bi(c.get("name_zh") or f"{counter_no}号窗口",
                                                      c.get("name_en") or f"Counter {counter_no}")}
    waiting = status == WAITING
    place = ahead if waiting and ahead is not None else None
    transferred = bool(t.service and t.service != queue_service) or t.target_counter is not None
    minutes = estimate_minutes(service, place) if place is not None else None
    headline, detail = texts(status, label=t.label, ahead=place, minutes=minutes,
                             counter=counter_no, transferred=transferred, service=t.service_name.to_dict())
    check_in_by = None
    wire = t.record  # times are passed on as the broker wrote them
    if t.channel == "remote" and not t.checked_in and status == WAITING:
        # A remote ticket lapses unless its holder checks in at a kiosk by then (docs/web.md, remote tickets).
        check_in_by = wire.get("arrive_by")
        at = _local_time(check_in_by, str(state.get("timezone") or "Asia/Shanghai"))
        detail = bi(f"请于 {at} 前到大厅签到，逾期作废。{detail['zh']}",
                    f"Check in at the hall by {at}, or the ticket lapses. {detail['en']}")
    return {
        "label": t.label,
        "status": status,
        "active": status in ACTIVE,
        "service": {"code": queue_service, **bi(t.service_name.zh or service.get("name_zh"),
                                                t.service_name.en or service.get("name_en"))},
        # Sent on from the service it was issued for, or to one counter: it waits again, keeping its place.
        "transferred": transferred,
        "priority": bool(t.priority),
        "ahead": place,
        "estimated_wait_minutes": minutes,
        "headline": headline,
        "detail": detail,
        "counter": counter,
        "calls": t.calls,
        "called_at": wire.get("called_at") if status in (CALLED, SERVING) else None,
        "issued_at": wire.get("issued_at"),
        "business_day": t.business_day or None,
        "materials": [bi(m.get("zh"), m.get("en")) for m in service.get("materials") or []],
        "hall": bi(hall.get("name_zh"), hall.get("name_en")),
        "connected": connected,
        "check_in_by": check_in_by,  # a remote ticket not yet checked in: the deadline (UTC), else null
    }


def _local_time(iso: Any, timezone: str) -> str:
    """``HH:MM`` in the hall's time zone of a UTC ISO time (``?`` when it cannot be read)."""
    at = parse_time(iso)
    if at is None:
        return "?"
    try:
        return at.astimezone(ZoneInfo(timezone)).strftime("%H:%M")
    except (ValueError, KeyError):
        return "?"


def texts(status: str, *, label: str, ahead: int | None, minutes: int | None, counter: Any,
          transferred: bool, service: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The page's two lines for a ticket in ``status``, in Chinese and English (headline, detail)."""
    if status == WAITING:
        if ahead is None:
            head = bi("请等候叫号", "Please wait for your number")
        elif ahead == 0:
            head = bi("下一位就是您", "You are next")
        else:
            head = bi(f"前面还有 {ahead} 人", f"{ahead} {'person' if ahead == 1 else 'people'} ahead of you")
        wait = bi(f"预计等候约 {minutes} 分钟", f"Estimated wait: about {minutes} min") if minutes else bi(
            "请留意叫号", "Please listen for your number")
        if transferred:
            wait = bi(f"已转至“{service['zh']}”，保留原排队顺序。{wait['zh']}",
                      f"Sent on to {service['en']}; your place is kept. {wait['en']}")
        return head, wait
    if status == CALLED:
        return (bi(f"请到 {counter} 号窗口", f"Please go to window {counter}"),
                bi(f"正在叫您的号 {label}", f"Your number {label} is being called"))
    if status == SERVING:
        return (bi(f"正在 {counter} 号窗口办理", f"Being served at window {counter}"),
                bi("请在窗口办理业务", "Your visit is under way"))
    if status == "finished":
        return bi("办理完毕，谢谢！", "Your visit is finished. Thank you!"), bi("欢迎再次光临", "Goodbye")
    if status == NO_SHOW:
        if counter is None:
            return bi("您已过号", "You missed your call"), bi("请到窗口咨询", "Please ask at a counter")
        return (bi("您已过号", "You missed your call"),
                bi(f"请尽快到 {counter} 号窗口说明，可恢复排队",
                   f"Please go to window {counter} soon to rejoin the queue"))
    if status == "cancelled":
        return bi("此号已取消", "This ticket was cancelled"), bi("如需办理请重新取号", "Take a new ticket to be served")
    if status == "closed_unserved":  # docs/calling-rules.md "Closing the business day"
        return (bi("今日已闭厅，此号未能办理", "The hall closed for the day before your number was served"),
                bi("请在办公时间重新取号", "Please take a new ticket during opening hours"))
    if status == "voided":
        return (bi("此号已作废", "This ticket was withdrawn"),
                bi("请向工作人员咨询或重新取号", "Please ask the staff or take a new ticket"))
    return bi("此号已结束", "This ticket is closed"), bi("如需办理请重新取号", "Take a new ticket to be served")
