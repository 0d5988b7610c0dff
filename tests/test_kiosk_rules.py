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
