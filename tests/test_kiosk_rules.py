"""Kiosk rules from issue 15 on the kiosk model alone (no Qt, no sockets): every page returns to a
clean start after idle; the service page shows the service's description; the wait estimate warns
past the session's end and never says "无需等候" for a service no open counter serves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from queuehall.kiosk.model import KioskModel, KioskSettings, PrinterHealth, Screen

from queuehall.clock import ManualClock

NOW = datetime(2026, 11, 24, 1, 14, tzinfo=UTC)  # 09:14 in the hall
SETTINGS = KioskSettings(return_ms=400, message_ms=500, print_failed_ms=600, idle_ms=60_000, status_ms=60_000)


def _svc(code: str, dept: str, issue_state: str = "open", **kw: Any) -> dict[str, Any]:
    return {"code": code, "name_zh": code, "name_en": code, "department": dept, "waiting": 0,
            "estimated_wait_minutes": 0, "issue_state": issue_state, "next_open": None, "materials": [],
            "promised_days": 0, "priority_classes": [], **kw}


def _state(issue_state: str = "open", **services: dict[str, Any]) -> dict[str, Any]:
    svcs = services or {"P": _svc("P", "a", issue_state), "H": _svc("H", "b", issue_state)}
    return {"timezone": "Asia/Shanghai", "services": svcs, "service_order": list(svcs),
            "departments": [{"code": "a", "name_zh": "甲", "name_en": "A"},
                            {"code": "b", "name_zh": "乙", "name_en": "B"}],
            "hall": {"name_zh": "测试大厅", "name_en": "Test Hall"}}


def _model(state: dict[str, Any] | None = None) -> KioskModel:
    m = KioskModel(settings=SETTINGS, clock=ManualClock(NOW).now)
    m.on_state(state or _state())
    m.on_printer_status(PrinterHealth(None))
    return m


def test_a_clean_start_page_never_times_out_but_a_used_one_does() -> None:
    m = _model()
    assert m.screen == Screen.START and m.clean and m.timeout_ms() is None
    m.set_language("en")
    m.select_department("b")
    assert not m.clean and m.timeout_ms() == 60_000
    m.on_timeout()
    assert m.clean and (m.language, m.department) == ("zh", "a")


def test_closed_and_out_of_service_pages_return_to_a_clean_start() -> None:
    m = _model(_state("past_cutoff"))
    m.set_language("en")
    m.select_department("b")
    assert m.screen == Screen.CLOSED and m.timeout_ms() == 60_000
    m.on_timeout()
    assert m.clean and m.timeout_ms() is None
    m.set_language("en")
    m.on_connection(False)
    assert m.screen == Screen.OUT_OF_SERVICE and m.timeout_ms() == 60_000
    m.on_timeout()
    assert m.language == "zh"
    m.on_printer_status(PrinterHealth("PAPER_OUT"))
    m.on_connection(True)
    m.set_language("en")
    assert m.screen == Screen.ASK_STAFF and m.timeout_ms() == 60_000
    m.on_timeout()
    assert m.clean


def test_every_other_page_keeps_its_own_hold_time() -> None:
    m = _model()
    assert m.tap_service("P") and m.timeout_ms() == 60_000
    m.on_timeout()
    assert m.screen == Screen.START and m.clean
    m.open_settings()
    assert m.screen == Screen.PIN and m.timeout_ms() == 60_000
    m.on_timeout()
    assert not m.settings_open and m.clean
    assert m.timeout_ms(Screen.CONFIRMATION) == 400 and m.timeout_ms(Screen.MESSAGE) == 500
    assert m.timeout_ms(Screen.PRINT_FAILED) == 600


def _staffed_state(*, counter_state: str = "open", waiting: int = 0, minutes: int = 0,
                   session_ends: str | None = "2026-11-24T03:30:00Z") -> dict[str, Any]:
    svc = _svc("M", "a", waiting=waiting, estimated_wait_minutes=minutes, session_ends=session_ends,
               description={"zh": "迁入每人缴纳卫生费12元。", "en": "A sanitation fee of 12 yuan per person."})
    state = _state(M=svc)
    state["counters"] = {"4": {"number": 4, "services": ["M"], "state": counter_state}}
    return state


def test_the_service_page_carries_the_description() -> None:
    card = _model(_staffed_state()).card("M")
    assert card is not None and card.description is not None
    assert card.description.zh == "迁入每人缴纳卫生费12元。" and "12 yuan" in card.description.en
    assert _model().card("P").description is None  # type: ignore[union-attr]


def test_a_wait_past_the_session_end_says_so() -> None:
    # 09:14, a morning that ends at 11:30 (136 minutes left), an estimate of 288 minutes.
    card = _model(_staffed_state(waiting=40, minutes=288)).card("M")
    assert card is not None and card.wait.zh == "约 288 分钟，超过 11:30 下班时间"
    assert card.wait.en == "about 288 min, past 11:30 closing"
    assert card.wait_note is not None and "11:30" in card.wait_note.zh and "11:30" in card.wait_note.en
    card = _model(_staffed_state(waiting=10, minutes=60)).card("M")
    assert card is not None and card.wait.zh == "约 60 分钟" and card.wait_note is None


def test_no_wait_is_never_promised_where_no_counter_is_open() -> None:
    card = _model(_staffed_state(counter_state="closed")).card("M")
    assert card is not None and card.staffed is False
    assert card.wait.zh == "暂无窗口办理" and card.wait_note is not None
    card = _model(_staffed_state(counter_state="paused")).card("M")  # a paused counter comes back
    assert card is not None and card.staffed and card.wait.zh == "无需等候"
    card = _model().card("P")  # a state without counters: not guessed
    assert card is not None and card.staffed is None and card.wait.zh == "无需等候"


def test_an_appointment_ticket_is_printed_with_its_mark() -> None:
    """A ticket with ``appointment: true`` (a booking checked in on time) prints the 预约 badge with its slot's
    start; every other ticket, a late check-in's included, prints none."""
    from queuehall.kiosk.model import Issued
    from queuehall.kiosk.ticket import TicketContent

    m = _model()
    base = {"id": 1, "label": "A001", "service": "P", "issued_at": "2026-11-24T01:50:00Z", "priority": None}
    booked = m.ticket_fields(Issued(ticket=dict(base, appointment=True, slot="2026-11-24T10:00"), ahead=0,
                                    wait_minutes=0, fields={}))
    assert booked["appointment_slot"] == "10:00"
    assert TicketContent(**booked).appointment_mark == ("预约 · 10:00", "Appointment · 10:00")
    plain = m.ticket_fields(Issued(ticket=base, ahead=0, wait_minutes=0, fields={}))
    assert plain["appointment_slot"] is None and TicketContent(**plain).appointment_mark is None
