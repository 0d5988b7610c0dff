"""Closing the business day (docs/calling-rules.md "Closing the business day") and the one rule for
no-shows in memory and after a restart (issue 14, items 2 and 7).

On the simulated clock: across midnight, a weekend, a holiday, and a broker stopped at 16:00 and
started the next morning (real broker, real SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, timedelta
from typing import Any

import pytest
import zmq
from queuehall.broker import storage
from queuehall.broker.config import Hours
from queuehall.broker.engine import Hall
from queuehall.broker.model import Event
from queuehall.broker.reports import ReportBuilder
from queuehall.broker.storage import load_hall, open_store
from sqlalchemy import select

from queuehall.client import BrokerClient, CommandRefused, Link
from queuehall.clock import ManualClock
from queuehall.errors import HallError
from queuehall.protocol import TOPIC_HEARTBEAT, decode_publication
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, MirrorTap, broker_snapshot, recv_within, wait_in_step
from tests.hall_factory import DAY, TUESDAY, install_pins, local, memory_pins, small_config

manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture

WEDNESDAY = TUESDAY + timedelta(days=1)
FRIDAY = TUESDAY + timedelta(days=3)
MONDAY = TUESDAY + timedelta(days=6)
PIN = "1234"


def weekdays_only(**kw: Any):
    """small_config open Monday to Friday 08:30-11:30, 13:30-17:00 (closed at the weekend)."""
    cfg = small_config()
    hours = Hours(weekly=tuple(tuple(DAY) if i < 5 else () for i in range(7)), chinese_calendar=True,
                  closed_days=frozenset(kw.pop("closed_days", ())), working_days=frozenset(),
                  makeup_hours=tuple(DAY))
    return replace(cfg, hours=hours, **kw)


class Bench:
    def __init__(self, start, config=None) -> None:
        self.clock = ManualClock(start)
        cfg = config or small_config()
        self.hall = Hall(cfg, self.clock, pins=memory_pins(cfg))
        self.events: list[Event] = []
        self.hall.listeners.append(self.events.append)

    def do(self, command: str, **args: Any) -> dict[str, Any]:
        return self.hall.execute(command, args)

    def busy_day(self) -> dict[str, str]:
        """Waiting, called, serving, transferred, paused counter and a no-show: every kind of open record."""
        labels = {k: self.do("take_ticket", service=s)["ticket"]["label"]
                  for k, s in (("called", "P"), ("waiting", "P"), ("serving", "H"), ("fee", "P"), ("missed", "P"))}
        self.do("sign_in", counter=1, clerk="c1a", pin=PIN)
        self.do("sign_in", counter=2, clerk="c2a", pin=PIN)
        self.do("sign_in", counter=9, clerk="c9a", pin=PIN)
        self.do("call_ticket", counter=1, ticket=labels["missed"], reason="预约")
        self.do("no_show", counter=1)
        self.do("call_ticket", counter=1, ticket=labels["fee"], reason="预约")
        self.do("transfer", counter=1, service="FEE")  # now waiting at the fee counter
        self.do("call_ticket", counter=1, ticket=labels["called"], reason="预约")
        self.do("call_next", counter=2)
        self.do("start", counter=2)
        self.do("pause", counter=9, reason="break")
        return labels


def open_records(hall: Hall) -> tuple[list[str], list[int]]:
    tickets = sorted(t.label for t in hall.tickets.values())
    return tickets, [n for n, c in hall.counters.items() if c.state != "closed"]


def test_the_day_closes_after_the_last_session_plus_the_grace_and_the_next_day_starts_clean() -> None:
    b = Bench(local(TUESDAY, 16))
    labels = b.busy_day()
    assert b.hall.close_instant(TUESDAY) == local(TUESDAY, 18)  # 17:00 + close_after_minutes (60)
    b.clock.set(local(TUESDAY, 17, 59))
    assert b.hall.close_day_if_due() == [] and len(b.hall.tickets) == 5
    b.clock.set(local(TUESDAY, 18))
    assert b.hall.close_day_if_due() == [TUESDAY]
    assert open_records(b.hall) == ([], [])
    closing = [e for e in b.events if e.at == local(TUESDAY, 18)]
    assert [(e.type, e.data.get("previous") or e.data.get("reason")) for e in closing] == [
        ("ticket_closed_unserved", "called"), ("ticket_closed_unserved", "waiting"),
        ("ticket_closed_unserved", "serving"), ("ticket_closed_unserved", "waiting"),
        ("counter_signed_out", "day_closed"), ("counter_signed_out", "day_closed"),
        ("counter_signed_out", "day_closed"), ("day_closed", None)]
    assert [(e.counter, e.clerk) for e in closing[:3]] == [(1, "c1a"), (None, None), (2, "c2a")]
    done = closing[-1]
    assert (done.business_day, done.data["day"], done.data["unserved"], done.data["counters"]) == (
        TUESDAY, "2026-11-24", 4, [1, 2, 9])
    assert done.data["no_shows"] == [str(b.hall.last_ticket_id)]  # the missed one leaves the screens
    assert all(e.data["ticket"]["status"] == "closed_unserved" for e in closing[:4])
    assert b.hall.closed_through == TUESDAY and b.hall.close_day_if_due() == []  # once
    # After the close: the no-show of the closed day is gone (cancelling or reinstating it is unknown).
    with pytest.raises(HallError) as err:
        b.do("cancel_ticket", ticket=labels["missed"], reason="gone")
    assert err.value.code == "UNKNOWN_TICKET"
    # Across midnight: the next morning a counter signs in and calls without COUNTER_BUSY, and
    # today's A001 does not wait beside yesterday's.
    b.clock.set(local(WEDNESDAY, 8, 30))
    before = len(b.events)
    new = b.do("take_ticket", service="P")
    assert (new["ticket"]["label"], new["ahead"]) == ("A001", 0)
    assert [e.type for e in b.events[before:]] == ["ticket_issued"]  # nothing left to close at midnight
    b.do("sign_in", counter=1, clerk="c1a", pin=PIN)
    assert b.do("call_next", counter=1)["ticket"]["label"] == "A001"
    assert b.hall.find_ticket("A001").business_day == WEDNESDAY


def test_the_grace_ends_at_midnight_and_a_command_closes_first() -> None:
    cfg = small_config()
    cfg = replace(cfg, calling=replace(cfg.calling, close_after_minutes=12 * 60))
    b = Bench(local(TUESDAY, 16), cfg)
    b.do("take_ticket", service="P")
    assert b.hall.close_instant(TUESDAY) == local(WEDNESDAY, 0)
    b.clock.set(local(WEDNESDAY, 0, 1))
    with pytest.raises(HallError):
        b.do("take_ticket", service="P")  # refused (HALL_CLOSED), but the day was closed first
    assert [e.type for e in b.events[-2:]] == ["ticket_closed_unserved", "day_closed"]
    assert b.events[-1].at == local(WEDNESDAY, 0) and b.hall.tickets == {}


def test_across_a_weekend_friday_closes_at_its_own_time_and_the_weekend_leaves_no_record() -> None:
    b = Bench(local(FRIDAY, 16), weekdays_only())
    b.busy_day()
    b.clock.set(local(MONDAY, 9))  # the broker's heartbeat never ran over the weekend (down or idle)
    assert b.do("take_ticket", service="P")["ahead"] == 0
    closes = [e for e in b.events if e.type == "day_closed"]
    assert [(e.data["day"], e.at) for e in closes] == [(FRIDAY.isoformat(), local(FRIDAY, 18))]
    assert all(e.at == local(FRIDAY, 18) for e in b.events if e.type in ("ticket_closed_unserved",
                                                                         "counter_signed_out"))
    assert b.hall.closed_through == MONDAY - timedelta(days=1)
    # Monday evening closes Monday (a business day gets its day_closed even with nothing open).
    b.clock.set(local(MONDAY, 18))
    assert b.hall.close_day_if_due() == [MONDAY]
    assert b.events[-1].type == "day_closed" and b.events[-1].data["unserved"] == 1


def test_across_a_holiday_the_last_business_day_closes_and_the_holiday_adds_nothing() -> None:
    holiday = WEDNESDAY  # a day the hall declares closed (closed_days)
    b = Bench(local(TUESDAY, 16), weekdays_only(closed_days={holiday}))
    assert not b.hall.hours.periods_on(holiday) and b.hall.close_instant(holiday) == local(holiday + timedelta(1), 0)
    b.busy_day()
    b.clock.set(local(TUESDAY, 20))
    assert b.hall.close_day_if_due() == [TUESDAY]
    b.clock.set(local(holiday, 12))
    assert b.hall.close_day_if_due() == []
    b.clock.set(local(holiday + timedelta(days=1), 8, 30))  # Thursday morning
    assert b.hall.close_day_if_due() == []  # the holiday had nothing open and no hours: no record
    assert b.hall.closed_through == holiday
    assert [e.data["day"] for e in b.events if e.type == "day_closed"] == ["2026-11-24"]
    assert b.do("take_ticket", service="P")["ticket"]["label"] == "A001"


# ------------------------------------------------------------------------- real broker, real databases


def snapshot_state(endpoint: str) -> dict[str, Any]:
    """The parts of the broker's snapshot a restart must reproduce (no epoch, clock or devices)."""
    state = broker_snapshot(endpoint)["state"]
    return {k: state[k] for k in ("business_day", "services", "counters", "tickets", "recent_calls")}


def test_a_broker_stopped_at_16_00_closes_yesterday_when_it_starts_the_next_morning(
        start_broker: Callable[..., BrokerThread], manual_clock: ManualClock, db_url: str) -> None:
    manual_clock.set(local(TUESDAY, 16))
    bt = start_broker(db_url=db_url)
    c = BrokerClient(bt.endpoint)
    try:
        for _ in range(3):
            c.request("take_ticket", service="P")
        session = c.request("sign_in", counter=1, clerk="c1a", pin=PIN)["session"]
        c.request("call_next", counter=1, session=session)
        c.close()
        bt.stop()  # 16:00: the broker is stopped for the night
        manual_clock.set(local(WEDNESDAY, 8, 15))
        bt.start()
        c = BrokerClient(bt.endpoint)
        snap = broker_snapshot(bt.endpoint)["state"]
        assert snap["tickets"] == {} and all(k["state"] == "closed" for k in snap["counters"].values())
        # The counter is free this morning: no COUNTER_BUSY with yesterday's ticket.
        with pytest.raises(CommandRefused) as refused:
            c.request("call_next", counter=1, session=session)
        assert refused.value.code == "COUNTER_CLOSED"
        session = c.request("sign_in", counter=1, clerk="c1a", pin=PIN)["session"]
        with pytest.raises(CommandRefused) as refused:
            c.request("call_next", counter=1, session=session)
        assert refused.value.code == "QUEUE_EMPTY"
        manual_clock.set(local(WEDNESDAY, 8, 30))
        assert c.request("take_ticket", service="P")["ahead"] == 0
        assert bt.store is not None
        with bt.store.engine.connect() as conn:
            tk, ev = storage.tickets.c, storage.events.c
            rows = conn.execute(select(tk.business_day, tk.label, tk.status, tk.status_at).order_by(tk.id)).all()
            closes = conn.execute(select(ev.type, ev.at, ev.business_day).where(ev.at == rows[0].status_at)
                                  .order_by(ev.seq)).all()
        assert [(r.business_day, r.label, r.status) for r in rows] == [
            (TUESDAY, "A001", "closed_unserved"), (TUESDAY, "A002", "closed_unserved"),
            (TUESDAY, "A003", "closed_unserved"), (WEDNESDAY, "A001", "waiting")]
        assert rows[0].status_at == local(TUESDAY, 18).astimezone(UTC).replace(tzinfo=None)
        assert [r.type for r in closes] == ["ticket_closed_unserved"] * 3 + ["counter_signed_out", "day_closed"]
        assert {r.business_day for r in closes} == {TUESDAY}
        # A restart gives the same state.
        before = snapshot_state(bt.endpoint)
        c.close()
        bt.restart()
        c = BrokerClient(bt.endpoint)
        assert snapshot_state(bt.endpoint) == before
    finally:
        c.close()


def test_a_running_broker_closes_the_day_from_its_heartbeat_and_the_screens_follow(
        start_broker: Callable[..., BrokerThread], manual_clock: ManualClock, db_url: str) -> None:
    manual_clock.set(local(TUESDAY, 16))
    bt = start_broker(db_url=db_url)
    link = Link(bt.endpoint, role="display")
    tap = MirrorTap(link)
    link.start()
    c = BrokerClient(bt.endpoint)
    try:
        wait_in_step(tap, bt.endpoint)
        c.request("sign_in", counter=1, clerk="c1a", pin=PIN)
        for _ in range(3):
            c.request("take_ticket", service="P")
        c.request("call_next", counter=1)
        c.request("no_show", counter=1)
        c.request("call_next", counter=1)
        tap.wait(lambda t: len(t.state["tickets"]) == 3, what="three tickets on the screen")
        manual_clock.set(local(TUESDAY, 18))  # no command: the heartbeat closes the day
        tap.wait(lambda t: t.state["tickets"] == {} and t.state["counters"]["1"]["state"] == "closed",
                 what="the closed day on the screen")
        assert any(m["event"]["type"] == "day_closed" for m in tap.events)
        wait_in_step(tap, bt.endpoint)
        before = snapshot_state(bt.endpoint)
        bt.restart()
        assert snapshot_state(bt.endpoint) == before
    finally:
        c.close()
        link.stop()


def test_an_expired_no_show_is_the_same_live_and_after_a_restart(
        start_broker: Callable[..., BrokerThread], manual_clock: ManualClock, db_url: str) -> None:
    """Item 7: the heartbeat dropped a no-show from memory once its grace ended (cancel: UNKNOWN_TICKET),
    while a restart loaded it again (cancel: accepted). Now it stays until its day closes, both ways."""
    bt = start_broker(db_url=db_url)
    c = BrokerClient(bt.endpoint)
    try:
        c.request("sign_in", counter=1, clerk="c1a", pin=PIN)
        for _ in range(3):
            c.request("take_ticket", service="P")
            c.request("call_next", counter=1)
            c.request("no_show", counter=1)
        manual_clock.advance(minutes=45)  # past the 30 minutes' grace
        assert bt.broker is not None
        heartbeat_at(bt, "2026-11-24T01:45:00Z")  # the heartbeat used to drop the expired no-shows then
        assert sorted(t["label"] for t in snapshot_state(bt.endpoint)["tickets"].values()) == ["A001", "A002", "A003"]
        live = [c.request("cancel_ticket", ticket="A001", reason="left")["ticket"]["status"]]
        with pytest.raises(CommandRefused) as refused:
            c.request("reinstate", ticket="A002")
        live.append(refused.value.code)
        before = snapshot_state(bt.endpoint)
        assert sorted(t["label"] for t in before["tickets"].values()) == ["A002", "A003"]
        c.close()
        bt.restart()
        c = BrokerClient(bt.endpoint)
        assert snapshot_state(bt.endpoint) == before
        after = [c.request("cancel_ticket", ticket="A003", reason="left")["ticket"]["status"]]
        with pytest.raises(CommandRefused) as refused:
            c.request("reinstate", ticket="A002")
        after.append(refused.value.code)
        assert live == after == ["cancelled", "GRACE_EXPIRED"]
    finally:
        c.close()


def heartbeat_at(bt: BrokerThread, now: str) -> None:
    """Wait for a heartbeat of the broker stamped ``now`` (its heartbeat reads the clock once a second)."""
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.setsockopt(zmq.SUBSCRIBE, TOPIC_HEARTBEAT)
    sub.connect(f"tcp://127.0.0.1:{bt.port + 1}")
    try:
        for _ in range(50):
            frames = recv_within(sub, 5.0)
            assert frames is not None, "no heartbeat"
            if decode_publication(frames)[1].get("now") == now:
                return
        raise AssertionError(f"no heartbeat at {now}")
    finally:
        sub.close(0)


# ------------------------------------------------------------------------- reports


def test_reports_count_tickets_unserved_at_close_and_the_same_day_rate_counts_them(tmp_path: Any) -> None:
    cfg = small_config()
    cfg = replace(cfg, services=tuple(replace(s, promised_days=0) for s in cfg.services))  # all on the spot
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    install_pins(store, cfg)
    clock = ManualClock(local(TUESDAY, 9))
    hall = load_hall(cfg, clock, store)
    try:
        hall.execute("sign_in", {"counter": 1, "clerk": "c1a", "pin": PIN})
        for _ in range(4):
            hall.execute("take_ticket", {"service": "P"})
        hall.execute("call_next", {"counter": 1})
        hall.execute("start", {"counter": 1})
        hall.execute("finish", {"counter": 1})  # A001 served
        hall.execute("call_next", {"counter": 1})  # A002 called, still at the counter at the close
        clock.set(local(WEDNESDAY, 9))
        hall.close_day_if_due()
        rep = ReportBuilder(store.engine, cfg).build(TUESDAY, TUESDAY, "service", now=clock.now())
        assert (rep.tickets["served"], rep.tickets["closed_unserved"], rep.tickets["open"]) == (1, 3, 0)
        assert rep.total["closed_unserved"] == 3 and rep.total["open"] == 0
        # 1 served of 4 citizens: the three left at the close were not completed that day either.
        c = rep.completion
        assert (c["served"], c["closed_unserved"], c["same_day_completed"], c["same_day_rate"]) == (1, 3, 1, 0.25)
        assert c["same_day_meets_target"] is False and c["on_the_spot_unfinished"] == 3
        # The two never called waited from 09:00 to the close at 18:00, far past the 30 minutes' target.
        assert (rep.total["sla_within"], rep.total["sla_counted"]) == (2, 4)
    finally:
        store.close()


def test_close_after_minutes_is_read_from_the_hall_file_and_checked(tmp_path: Any) -> None:
    from queuehall.broker.config import DEFAULT_CONFIG, ConfigError, load_config

    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    assert "close_after_minutes" in text
    assert load_config(DEFAULT_CONFIG).calling.close_after_minutes == 60
    bad = tmp_path / "hall.toml"
    bad.write_text(text.replace("close_after_minutes = 60", "close_after_minutes = 900"), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert "calling.close_after_minutes" in str(err.value)




def test_a_ticket_page_says_the_hall_closed_before_the_number_was_served() -> None:
    from queuehall.web.views import texts

    head, detail = texts("closed_unserved", label="A001", ahead=None, minutes=None, counter=None,
                         transferred=False, service={"zh": "护照", "en": "Passports"})
    assert head["zh"] == "今日已闭厅，此号未能办理" and "closed" in head["en"]
    assert "重新取号" in detail["zh"] and detail["en"]
