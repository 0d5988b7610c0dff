"""The manager's alerts (docs/supervision.md): each rule raised and cleared on the simulated hall clock,
recorded by the engine's ``alert`` command (journaled), acknowledged with a note; the broker publishes
``alert_raised`` at once after the command that caused it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from queuehall.broker.alerts import AlertMonitor, AlertRules, conditions

from queuehall.client import BrokerClient
from queuehall.errors import HallError
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, wait_until
from tests.hall_factory import small_config
from tests.test_engine_rules import Bench

# The test hall's day (2026-11-24) has no official calendar data for 2027 within 60 days: that rule is
# tested on its own.
RULES = AlertRules(enabled=True, calendar=False)

start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture


def check(b: Bench, monitor: AlertMonitor, devices: dict[str, Any] | None = None) -> tuple[set[str], set[str]]:
    raised, cleared = monitor.check(b.hall, devices or {}, b.clock.now())
    if raised or cleared:
        b.hall.record_alerts(raised, cleared)
    return set(raised), set(cleared)


def test_wait_over_target_and_no_open_counter() -> None:
    b = Bench()  # services' target wait: 30 min
    m = AlertMonitor(RULES)
    assert check(b, m) == (set(), set())
    b.take("P")
    assert check(b, m) == ({"no_open_counter:P"}, set())
    b.open(1)
    assert check(b, m) == (set(), {"no_open_counter:P"})
    b.clock.advance(minutes=30)
    assert check(b, m) == (set(), set())  # exactly the target is not over it
    b.clock.advance(seconds=1)
    assert check(b, m) == ({"wait_over_target:P"}, set())
    assert b.events[-1].type == "alert_raised" and b.events[-1].data["rule"] == "wait_over_target"
    b.call(1)
    assert check(b, m) == (set(), {"wait_over_target:P"})
    assert b.events[-1].type == "alert_cleared"


def test_an_on_the_spot_queue_that_runs_past_the_sessions_end() -> None:
    """承诺时限: a 即办件 (promised_days = 0) queue whose estimated time to clear runs past the end of the
    opening period now under way; a service with a promised completion time (P, 5 days) is not alerted."""
    cfg = small_config()
    cfg = replace(cfg, services=tuple(replace(s, promised_days=0, avg_service_minutes=5) if s.code == "FEE" else s
                                      for s in cfg.services))
    b = Bench(cfg, start=(10, 30))  # the morning ends at 11:30: one hour left
    m = AlertMonitor(RULES)
    b.open(9)  # the fee counter, alone on FEE
    b.open(1)
    for _ in range(12):
        b.take("FEE")
        b.take("P")
    assert b.hall.estimated_wait_minutes("FEE", 12) == 60
    assert check(b, m) == (set(), set())  # 60 min: done by 11:30 exactly
    b.take("FEE")
    raised, _ = check(b, m)
    assert raised == {"promise_at_risk:FEE"}
    details = m.active["promise_at_risk:FEE"]
    assert details["waiting"] == 13 and details["clear_minutes"] == 65
    assert details["session_ends"].startswith("2026-11-24T03:30")  # 11:30 in Beijing, UTC
    b.call(9)
    assert check(b, m) == (set(), {"promise_at_risk:FEE"})
    b.take("FEE")  # 65 min again: held, unless the rule is off
    assert "promise_at_risk:FEE" in conditions(b.hall, {}, b.clock.now(), RULES)
    assert "promise_at_risk:FEE" not in conditions(b.hall, {}, b.clock.now(), replace(RULES, promise_at_risk=False))


def test_a_long_pause_and_a_ticket_for_a_closed_counter() -> None:
    b = Bench()
    m = AlertMonitor(replace(RULES, paused_minutes=10))
    b.open(1)
    b.open(2)
    b.do("pause", counter=2, reason="break")
    b.clock.advance(minutes=10, seconds=1)
    assert check(b, m) == ({"counter_paused:2"}, set())
    b.do("resume", counter=2)
    assert check(b, m) == (set(), {"counter_paused:2"})
    b.take("H")
    b.call(1)
    b.do("transfer", counter=1, to_counter=2)
    b.do("sign_out", counter=2)
    assert check(b, m) == ({"counter_unstaffed:2"}, set())


def test_bad_ratings_overdue_cases_and_offline_devices() -> None:
    b = Bench(small_config(rating=replace(small_config().rating, case_working_days=1)))
    m = AlertMonitor(RULES)
    b.take("P")
    b.open(1)
    label = b.serve(1)
    case = b.do("rate", ticket=label, level=1)["case"]["id"]
    assert check(b, m) == ({f"bad_rating:{case}"}, set())
    b.do("case_callback", case=case, note="已回访")
    assert check(b, m) == (set(), {f"bad_rating:{case}"})
    b.clock.advance(days=2)
    assert f"case_overdue:{case}" in check(b, m)[0]
    devices = {"k/1": {"role": "kiosk", "name": "kiosk-1", "online": False},
               "c/1": {"role": "counter", "name": "counter-1", "online": False}}
    assert check(b, m, devices)[0] == {"device_offline:kiosk-1"}  # counters are watched by sign-in instead
    devices["k/1"]["online"] = True
    assert check(b, m, devices)[1] == {"device_offline:kiosk-1"}


def test_rules_can_be_switched_off_and_the_calendar_warning_is_one() -> None:
    b = Bench()
    b.take("P")
    assert conditions(b.hall, {}, b.clock.now(), replace(RULES, no_open_counter=False)) == {}
    assert "calendar:official_data" in conditions(b.hall, {}, b.clock.now(), AlertRules(),
                                                  "CALENDAR_NO_OFFICIAL_DATA")


def test_acknowledge_with_a_note_and_state_survives() -> None:
    b = Bench()
    m = AlertMonitor(RULES)
    b.take("P")
    check(b, m)
    with pytest.raises(HallError) as info:
        b.do("alert_ack", key="no_open_counter:P", note=" ")
    assert info.value.code == "BAD_REQUEST"
    with pytest.raises(HallError) as info:
        b.do("alert_ack", key="nope", note="x")
    assert info.value.code == "UNKNOWN_ALERT"
    reply = b.do("alert_ack", key="no_open_counter:P", note="已安排B岗到岗", by="mgr")
    assert reply["alert"]["ack"]["note"] == "已安排B岗到岗"
    assert b.hall.active_alerts()["no_open_counter:P"]["ack"]["by"] == "mgr"
    # A raise of an active key, or a clear of an unknown one, changes nothing.
    assert b.hall.record_alerts({"no_open_counter:P": {"rule": "no_open_counter"}}, ["x"]) == {
        "raised": [], "cleared": []}


def test_the_broker_raises_an_alert_right_after_the_command(start_broker: Callable[..., BrokerThread]) -> None:
    bt = start_broker(small_config(alerts=RULES))
    c = BrokerClient(bt.endpoint, timeout=3.0)
    try:
        c.request("take_ticket", service="P")
        alerts = wait_until(lambda: c.request("alerts")["alerts"], what="the alert")
        assert [a["key"] for a in alerts] == ["no_open_counter:P"]
        c.request("alert_ack", key="no_open_counter:P", note="马上开窗")
        c.request("sign_in", counter=1, clerk="c1a", pin="1234")
        wait_until(lambda: c.request("alerts")["alerts"] == [], what="the alert to clear")
        assert bt.store is not None
        kinds = [e["type"] for e in bt.store.events_since(0) if e["type"].startswith("alert_")]
        assert kinds == ["alert_raised", "alert_acknowledged", "alert_cleared"]
    finally:
        c.close()


def test_a_printer_fault_is_alerted_until_the_printer_is_ok() -> None:
    b = Bench()
    m = AlertMonitor(RULES)
    b.hall.execute("printer_fault", {"code": "PAPER_OUT", "name": "取号机1"}, client="kiosk-1/abc")
    raised, _ = check(b, m)
    assert raised == {"printer_fault:取号机1"}
    assert m.active["printer_fault:取号机1"]["code"] == "PAPER_OUT"
    b.hall.execute("printer_ok", {}, client="kiosk-1/abc")
    assert check(b, m) == (set(), {"printer_fault:取号机1"})
