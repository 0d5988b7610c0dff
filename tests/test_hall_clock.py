"""One hall clock on every screen: the broker's time, never the PC's.

Every broker here runs on a manual clock weeks or months away from this machine's clock (the "PC
clock" of the screens, which is real time): a screen that used its own clock would show waits of
thousands of minutes, promised dates counted from the wrong day and the wrong session screen. The
screens are built as their applications build them (the counter's model on ``link.hall_clock``, the
kiosk's model left to the window), so the tests fail if the wiring does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from queuehall.broker.config import DEFAULT_CONFIG, HallConfig, Period, load_config
from queuehall.broker.reports import ReportBuilder
from queuehall.counter.model import CounterModel
from queuehall.counter.window import CounterWindow
from queuehall.kiosk.model import KioskModel, KioskSettings, Screen
from queuehall.kiosk.printing import PrinterConfig
from queuehall.kiosk.window import KioskWindow, PrintService

from queuehall.client import BrokerClient, StateMirror
from queuehall.clock import HallClock, ManualClock
from queuehall.qtlink import QtLink
from tests.broker_fixtures import BrokerThread, sqlite_url
from tests.test_counter_gui import Terminal, settle, sign_in

TZ = ZoneInfo("Asia/Shanghai")


def hall_at(tmp_path: Path, when: datetime, config: HallConfig | None = None) -> tuple[BrokerThread, ManualClock]:
    clock = ManualClock(when)
    return BrokerThread(config or load_config(DEFAULT_CONFIG), sqlite_url(tmp_path / "hall.db"), clock).start(), clock


def in_step(screen_now: datetime, clock: ManualClock, slack: float = 10.0) -> bool:
    """The screen's time is the hall's (within the seconds that passed since the last heartbeat)."""
    return abs((screen_now - clock.now()).total_seconds()) < slack


# ---------------------------------------------------------------------------------------------- the clock


def test_the_hall_clock_is_the_brokers_time_advanced_on_the_monotonic_clock() -> None:
    mono = [100.0]
    pc = datetime(2026, 12, 7, 6, 11, tzinfo=UTC)  # 14:11 in the hall's zone: the PC's idea
    c = HallClock(monotonic=lambda: mono[0], fallback=lambda: pc)
    assert c.now() == pc and c.source == "system"  # before the broker is heard from
    c.observe("2026-11-24T04:05:00Z")  # 12:05 hall time
    mono[0] += 42.5
    assert c.now() == datetime(2026, 11, 24, 4, 5, 42, 500000, tzinfo=UTC) == c() and c.source == "broker"
    for junk in ("yesterday", None, datetime(2026, 1, 1)):  # a naive time is junk too
        c.observe(junk)
    assert c.now() == datetime(2026, 11, 24, 4, 5, 42, 500000, tzinfo=UTC)


def test_the_mirror_sets_the_hall_clock_from_snapshots_and_every_heartbeat() -> None:
    mono = [0.0]
    m = StateMirror(HallClock(monotonic=lambda: mono[0]))
    m.load({"epoch": "e1", "seq": 3, "state": {"now": "2026-11-24T04:05:00Z"}})
    assert m.hall_clock.now() == datetime(2026, 11, 24, 4, 5, tzinfo=UTC)
    m.apply({"type": "heartbeat", "epoch": "e1", "seq": 3, "now": "2026-11-24T04:06:00Z"})
    assert m.hall_clock.now() == datetime(2026, 11, 24, 4, 6, tzinfo=UTC)
    # A restarted broker (new epoch) still tells the time, while the mirror resynchronises.
    assert m.apply({"type": "heartbeat", "epoch": "e2", "seq": 0, "now": "2026-11-24T04:07:00Z"}) == "resync"
    assert m.hall_clock.now() == datetime(2026, 11, 24, 4, 7, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------- the counter


@pytest.fixture
def before_the_holidays(tmp_path: Path) -> Iterator[tuple[BrokerThread, ManualClock]]:
    """Thursday 2026-09-24 09:00: Mid-Autumn (Friday 25th) with its weekend, then the National Day break
    (1-7 October) lie ahead."""
    bt, clock = hall_at(tmp_path, datetime(2026, 9, 24, 9, 0, tzinfo=TZ))
    yield bt, clock
    bt.stop()


def test_a_counter_whose_pc_clock_is_off_shows_the_halls_waits_and_promised_date(
        qtbot: Any, before_the_holidays: tuple[BrokerThread, ManualClock]) -> None:
    bt, clock = before_the_holidays
    kiosk = BrokerClient(bt.endpoint, timeout=2.0)
    link = QtLink(bt.endpoint, role="counter", name="counter-4", counter=4)
    # As counter/main.py builds it: the link's hall clock, not the PC's.
    model = CounterModel(4, link.request, link.hall_clock)
    window = CounterWindow(link, model)
    qtbot.addWidget(window)
    window.resize(1366, 860)
    window.show()
    window.start()
    term = Terminal(window, model, link)
    try:
        qtbot.waitUntil(lambda: model.connected and bool(model.counter_record()), timeout=5000)
        label = kiosk.request("take_ticket", service="move_in")["ticket"]["label"]  # 5 working days
        clock.advance(minutes=20)
        qtbot.waitUntil(lambda: in_step(model.now(), clock) and bool(model.waiting_list()), timeout=5000)
        (row,) = model.waiting_list()
        assert (row.label, row.wait_minutes) == (label, 20)
        sign_in(qtbot, term, "c04a")
        window.model.call_next()
        settle(qtbot, term)
        qtbot.waitUntil(lambda: model.current_ticket() is not None, timeout=5000)
        # 25-27 September and 1-7 October are not working days: Mon 28, Tue 29, Wed 30, Thu 8, Fri 9 October.
        assert model.promised() == (date(2026, 10, 9), 5)
        assert ReportBuilder(bt.store.engine, bt.config).due_date(date(2026, 9, 24), 5) == date(2026, 10, 9)
        qtbot.waitUntil(lambda: window.promised_label.text() == "承诺办结：2026年10月9日（5 个工作日）",
                        timeout=5000)
        assert "已等候 20 分钟" in window.info_label.text()
        assert abs((datetime.now(UTC) - model.now()).total_seconds()) > 30 * 86400  # the PC is far off
    finally:
        link.stop()
        kiosk.close()


# ---------------------------------------------------------------------------------------------- the kiosk


def test_a_kiosk_whose_pc_clock_is_off_shows_the_halls_time_and_session(qtbot: Any, tmp_path: Path) -> None:
    """A hall open 09:00-12:30 and 14:30-17:30: at hall time 12:05 it is open (whatever the PC says),
    at 12:40 it is the lunch break until "today 14:30", not until a date counted from the PC's day."""
    cfg = load_config(DEFAULT_CONFIG)
    day = (Period(time(9, 0), time(12, 30)), Period(time(14, 30), time(17, 30)))
    cfg = replace(cfg, hours=replace(cfg.hours, weekly=tuple(day if i < 5 else () for i in range(7))))
    bt, clock = hall_at(tmp_path, datetime(2026, 11, 24, 12, 5, tzinfo=TZ), cfg)
    link = QtLink(bt.endpoint, role="kiosk", name="test-kiosk")
    printer = PrinterConfig(backend="file", path=str(tmp_path / "tickets.bin"), mode="text", paper_mm=80)
    model = KioskModel(settings=KioskSettings(idle_ms=60_000, status_ms=60_000))  # as kiosk/main.py builds it
    window = KioskWindow(link, PrintService(printer), model, printer_spec="file", broker_label=bt.endpoint)
    qtbot.addWidget(window)
    window.resize(1920, 1080)
    window.show()
    window.start()
    try:
        qtbot.waitUntil(lambda: model.screen == Screen.START and in_step(model.clock(), clock), timeout=8000)
        assert model.now_local().strftime("%H:%M") == "12:05"
        assert model.greeting().zh.startswith("中午好")
        qtbot.waitUntil(lambda: window.header.clock.text() == "12:05", timeout=3000)
        assert window.header.date.text() == "2026年11月24日 星期二"
        clock.advance(minutes=35)  # 12:40: the lunch break
        qtbot.waitUntil(lambda: model.screen == Screen.CLOSED, timeout=5000)
        reason, when = model.closed_info() or (None, None)
        assert reason is not None and reason.zh == "午间休息，暂停取号"
        assert when is not None and (when.zh, when.en) == ("今天 14:30", "today 14:30")
        clock.advance(timedelta(hours=5).total_seconds())  # 17:40: closed until tomorrow 09:00
        qtbot.waitUntil(lambda: (model.closed_info() or (None, None))[1] is not None
                        and model.closed_info()[1].zh == "明天 09:00", timeout=5000)  # type: ignore[index]
    finally:
        window.shutdown()
        bt.stop()
