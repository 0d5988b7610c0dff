"""好差评 in the engine and its storage (docs/evaluation.md): rating a finished visit once, within the
window, by ticket, visit or counter; refusals with their codes; the hall default; 差评 cases with their
working-day deadline, call back and close; everything survives a restart on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from queuehall.broker.config import Rating as RatingRules
from queuehall.broker.storage import cases, load_hall, open_store, ratings
from sqlalchemy import select

from queuehall.clock import ManualClock
from queuehall.errors import HallError
from tests.hall_factory import TUESDAY, install_pins, local, small_config
from tests.test_engine_rules import Bench


def refused(b: Bench, code: str, command: str = "rate", **args: Any) -> HallError:
    with pytest.raises(HallError) as info:
        b.hall.execute(command, args)
    assert info.value.code == code, info.value
    assert info.value.message_zh and info.value.message_en
    return info.value


def served(b: Bench, counter: int = 1, service: str = "P") -> str:
    b.take(service)
    b.open(counter) if b.hall.counters[counter].state == "closed" else None
    return b.serve(counter, minutes=3)


def test_a_finished_visit_is_rated_once_and_the_event_keeps_the_reason_out() -> None:
    b = Bench()
    label = served(b)
    reply = b.do("rate", ticket=label, level=5, channel="counter_screen")
    r = reply["rating"]
    assert (r["label"], r["level"], r["level_zh"], r["counter"], r["clerk"], r["post"], r["service"]) == (
        label, 5, "非常满意", 1, "c1a", "A", "P")
    assert r["is_default"] is False and r["channel"] == "counter_screen" and "case" not in reply
    ev = b.events[-1]
    assert ev.type == "visit_rated" and ev.counter == 1 and ev.clerk == "c1a" and ev.data["level"] == 5
    assert "reason" not in ev.data
    err = refused(b, "ALREADY_RATED", ticket=label, level=1)
    assert label in err.message_zh
    refused(b, "ALREADY_RATED", counter=1, level=4)  # the evaluator box after the screen


def test_refusals_leave_the_state_unchanged() -> None:
    b = Bench()
    waiting = b.take("P")
    refused(b, "NOT_FINISHED", ticket=waiting, level=5)
    b.open(1)
    b.call(1)
    refused(b, "NOT_FINISHED", ticket=waiting, level=5)  # called, not finished
    refused(b, "NOTHING_TO_RATE", counter=1, level=5)
    refused(b, "UNKNOWN_TICKET", ticket="Z999", level=5)
    refused(b, "UNKNOWN_COUNTER", counter=77, level=5)
    refused(b, "BAD_REQUEST", level=5)  # no visit named
    b.do("start", counter=1)
    b.do("finish", counter=1)
    refused(b, "BAD_LEVEL", ticket=waiting, level=6)
    refused(b, "BAD_LEVEL", ticket=waiting, level=0)
    refused(b, "UNKNOWN_INDICATOR", ticket=waiting, level=1, indicators="speed")
    refused(b, "INDICATORS_LOW_ONLY", ticket=waiting, level=4, indicators="attitude")
    refused(b, "BAD_REQUEST", ticket=waiting, level=4, channel="fax")
    assert b.events[-1].type == "ticket_finished" and b.hall.last_rating_id == 0
    b.do("rate", ticket=waiting, level=2, indicators="attitude,efficiency", reason="态度冷淡")


def test_a_late_rating_is_refused_and_the_window_is_the_halls() -> None:
    b = Bench(small_config(rating=RatingRules(window_minutes=10)))
    label = served(b)
    b.clock.advance(minutes=10)
    assert b.do("rate", counter=1, level=4)["rating"]["label"] == label  # the last minute is in
    late = served(b)
    b.clock.advance(minutes=10, seconds=1)
    err = refused(b, "RATING_CLOSED", ticket=late, level=4)
    assert "10" in err.message_en
    refused(b, "NOTHING_TO_RATE", counter=1, level=4)


def test_the_counter_rates_its_last_finished_visit_and_a_ticket_its_last_visit() -> None:
    b = Bench()
    b.open(1)
    b.open(2)
    first = served(b, 1)
    second = served(b, 2, "H")
    assert b.do("rate", counter=1, level=3, channel="evaluator_box")["rating"]["label"] == first
    assert b.do("rate", counter=2, level=4)["rating"]["label"] == second
    visit = b.do("rate", ticket=served(b, 1), level=5)["rating"]["visit_id"]
    refused(b, "ALREADY_RATED", visit=visit, level=5)


def test_a_low_rating_opens_a_case_due_in_working_days() -> None:
    b = Bench()
    label = served(b)
    reply = b.do("rate", ticket=label, level=1, indicators="attitude", reason="不耐烦", channel="phone")
    case = reply["case"]
    # Tuesday 2026-11-24 + 15 working days (weekends off) = Tuesday 2026-12-15.
    assert case["due_day"] == "2026-12-15" and case["status"] == "open" and not case["overdue"]
    assert [e.type for e in b.events[-2:]] == ["visit_rated", "case_opened"]
    assert b.hall.open_cases()[0]["id"] == case["id"]
    refused(b, "CALLBACK_REQUIRED", "case_close", case=case["id"], finding="属实", rectification="批评教育")
    refused(b, "BAD_REQUEST", "case_callback", case=case["id"], note="  ")
    b.do("case_callback", case=case["id"], note="已电话回访，群众表示理解", by="mgr")
    refused(b, "BAD_REQUEST", "case_close", case=case["id"], finding="属实", rectification="")
    closed = b.do("case_close", case=case["id"], finding="属实", rectification="批评教育，限期整改", by="mgr")
    assert closed["on_time"] is True and closed["case"]["status"] == "closed"
    assert b.hall.open_cases() == []
    refused(b, "UNKNOWN_CASE", "case_callback", case=case["id"], note="again")


def test_an_open_case_past_its_due_day_is_overdue() -> None:
    b = Bench(small_config(rating=RatingRules(case_working_days=1)))
    b.do("rate", ticket=served(b), level=2)
    b.clock.advance(days=2)  # Thursday: due Wednesday
    assert b.hall.open_cases()[0]["overdue"] is True


def test_no_default_rating_unless_the_hall_sets_one() -> None:
    b = Bench()
    served(b)
    b.clock.advance(minutes=31)
    assert not b.hall.ratings_due()
    assert b.do("default_ratings") == {"rated": []}


def test_the_halls_default_is_given_after_the_window_and_marked() -> None:
    b = Bench(small_config(rating=RatingRules(window_minutes=5, default_level=4)))
    label = served(b)
    rated = served(b)
    b.do("rate", ticket=rated, level=5)
    assert not b.hall.ratings_due()
    b.clock.advance(minutes=6)
    assert b.hall.ratings_due()
    assert b.do("default_ratings") == {"rated": [label]}
    ev = b.events[-1]
    assert ev.type == "visit_rated" and ev.data["is_default"] is True and ev.data["channel"] == "default"
    assert not b.hall.ratings_due()
    refused(b, "ALREADY_RATED", ticket=label, level=1)


def test_ratings_and_cases_are_stored_and_survive_a_restart(db_url: str) -> None:
    cfg = small_config(rating=RatingRules(window_minutes=30))
    store = open_store(db_url, sqlite_synchronous="NORMAL")
    try:
        install_pins(store, cfg)
        clock = ManualClock(local(TUESDAY, 9, 0))
        hall = load_hall(cfg, clock, store)
        b = Bench.__new__(Bench)
        b.clock, b.hall, b.events = clock, hall, []
        rated = served(b)
        low = served(b)
        unrated = served(b)
        b.do("rate", ticket=rated, level=5, channel="counter_screen")
        case = b.do("rate", ticket=low, level=2, indicators="efficiency", reason="等太久", channel="phone")["case"]
        b.do("case_callback", case=case["id"], note="已回访")
        with store.engine.connect() as conn:
            rows = conn.execute(select(ratings).order_by(ratings.c.id)).all()
            stored_case = conn.execute(select(cases)).one()
        assert [(r.label, r.level, r.channel, r.clerk, r.post, r.counter, r.service) for r in rows] == [
            (rated, 5, "counter_screen", "c1a", "A", 1, "P"), (low, 2, "phone", "c1a", "A", 1, "P")]
        assert json.loads(rows[1].indicators) == ["efficiency"] and rows[1].reason == "等太久"
        assert stored_case.status == "open" and stored_case.callback_note == "已回访"
        assert stored_case.due_day == date(2026, 12, 15)
    finally:
        store.close()
    store = open_store(db_url, sqlite_synchronous="NORMAL")
    try:
        again = load_hall(cfg, clock, store)
        b2 = Bench.__new__(Bench)
        b2.clock, b2.hall, b2.events = clock, again, []
        assert [c["callback_note"] for c in again.open_cases()] == ["已回访"]
        refused(b2, "ALREADY_RATED", ticket=rated, level=1)
        refused(b2, "ALREADY_RATED", ticket=low, level=1)
        r = b2.do("rate", ticket=unrated, level=3)["rating"]
        assert r["id"] == 3
        b2.do("case_close", case=case["id"], finding="属实", rectification="增开窗口")
    finally:
        store.close()
    store = open_store(db_url, sqlite_synchronous="NORMAL")
    try:
        third = load_hall(cfg, clock, store)
        assert third.open_cases() == [] and third.last_case_id == 1 and third.last_rating_id == 3
    finally:
        store.close()


def test_the_rating_table_of_the_config_parses_and_exports() -> None:
    import tomllib

    from queuehall.broker.config import DEFAULT_CONFIG, ConfigError, _to_dict, parse_config

    data = tomllib.loads(Path(DEFAULT_CONFIG).read_text(encoding="utf-8"))
    assert parse_config(data, "x").rating == RatingRules()
    data["rating"] = {"window_minutes": 15, "default_level": 4, "case_working_days": 10}
    cfg = parse_config(data, "x")
    assert cfg.rating == RatingRules(15, 4, 10)
    assert parse_config(_to_dict(cfg), "x").rating == cfg.rating
    data["rating"] = {"default_level": 6}
    with pytest.raises(ConfigError) as info:
        parse_config(data, "x")
    assert "rating.default_level" in str(info.value)
