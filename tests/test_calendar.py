"""The holiday calendar running out, said loudly: the broker's log at start, the ``status`` reply, a
``calendar_warning`` event for supervision and a banner on every signed-in counter.

The broker runs on a manual clock in 2029, a year no State Council notice covers (the ``holidays``
library carries them up to 2026), and, for contrast, in June 2026, which is covered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from queuehall.broker.config import DEFAULT_CONFIG, load_config
from queuehall.counter.model import CounterModel

from queuehall.cli import main
from queuehall.client import Link
from queuehall.clock import ManualClock
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, wait_until

manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture

TZ = ZoneInfo("Asia/Shanghai")
IN_2029 = datetime(2029, 3, 1, 9, 0, tzinfo=TZ)  # a Thursday, open
IN_JUNE_2026 = datetime(2026, 6, 2, 9, 0, tzinfo=TZ)  # a Tuesday; 60 days later is still 2026


def status(capsys: pytest.CaptureFixture[str], endpoint: str) -> dict[str, Any]:
    assert main(["status", "--broker", endpoint]) == 0
    return json.loads(capsys.readouterr().out)["result"]


def test_the_broker_warns_at_start_in_status_and_as_an_event(
        start_broker: Callable[..., BrokerThread], manual_clock: ManualClock,
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    manual_clock.set(IN_2029)
    with caplog.at_level(logging.WARNING, logger="queuehall.broker"):
        bt = start_broker(load_config(DEFAULT_CONFIG))
    logged = [r.getMessage() for r in caplog.records if "CALENDAR_NO_OFFICIAL_DATA" in r.getMessage()]
    assert len(logged) == 1 and "2029-03-01" in logged[0] and "[[hours.notice]]" in logged[0]

    cal = status(capsys, bt.endpoint)["calendar"]
    assert cal["warning"]["code"] == "CALENDAR_NO_OFFICIAL_DATA"
    assert cal["warning"]["details"]["first_day"] == "2029-03-01"
    assert "国务院办公厅2029年节假日安排" in cal["warning"]["message_zh"]
    assert cal["library"].startswith("holidays ") and cal["notice_years"] == []

    # Supervision: a subscriber hears the warning again when the next business day starts.
    events: list[dict[str, Any]] = []
    link = Link(bt.endpoint, role="display", name="supervision")
    link.on_event = lambda msg: events.append(msg["event"])
    link.start()
    try:
        wait_until(lambda: link.mirror.synced, what="the supervisor's first snapshot")
        assert link.mirror.state["calendar"]["warning"]["details"]["first_day"] == "2029-03-01"
        manual_clock.advance(hours=24)
        ev = wait_until(lambda: next((e for e in events if e["type"] == "calendar_warning"), None),
                        what="a calendar_warning event")
        assert ev["code"] == "CALENDAR_NO_OFFICIAL_DATA" and ev["details"]["first_day"] == "2029-03-02"
        assert link.mirror.state["calendar"]["warning"]["details"]["first_day"] == "2029-03-02"
    finally:
        link.stop()


def test_no_warning_while_official_data_covers_the_next_60_days(
        start_broker: Callable[..., BrokerThread], manual_clock: ManualClock,
        caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    manual_clock.set(IN_JUNE_2026)
    with caplog.at_level(logging.WARNING, logger="queuehall.broker"):
        bt = start_broker(load_config(DEFAULT_CONFIG))
    assert not [r for r in caplog.records if "CALENDAR" in r.getMessage()]
    cal = status(capsys, bt.endpoint)["calendar"]
    assert cal["warning"] is None and 2026 in cal["official_years"]


def test_every_signed_in_counter_shows_the_warning() -> None:
    model = CounterModel(4, lambda *a, **k: "r1", ManualClock(IN_2029))
    warning = {"code": "CALENDAR_NO_OFFICIAL_DATA", "message_zh": "节假日安排数据只到 —",
               "message_en": "Official holiday data ends on —", "details": {}}
    model.on_state({"calendar": {"warning": warning}, "counters": {}})
    assert model.calendar_warning_text() == ""  # the sign-in screen is not the place
    model.session, model.clerk = "s1", "c04a"
    assert model.calendar_warning_text() == "⚠ 节假日安排数据只到 —\nOfficial holiday data ends on —"
    model.toggle_language()
    assert model.calendar_warning_text().startswith("⚠ Official holiday data")
    model.on_state({"calendar": {"warning": None}, "counters": {}})
    assert model.calendar_warning_text() == ""
