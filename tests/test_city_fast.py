"""The city report's fast path (issue 18, docs/reports.md "A city's report") gives exactly the report of the
row-by-row path it replaced, on SQLite and PostgreSQL, over a realistic month of several halls: the clerk
assessment added up in the database (PostgreSQL), and no reading of every first visit when the period has no
appointment."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from queuehall.broker import satisfaction, storage
from queuehall.broker.reports import appointments as appointments_module
from queuehall.broker.reports.city import build_city, city_csv, city_table
from sqlalchemy import Engine, event, update

from tests import broker_fixtures

BENCH = broker_fixtures.ROOT / "bench"
HALLS = ("chaoyang", "haidian", "xuanwu")


@pytest.fixture
def city_month(db_url: str) -> Iterator[tuple[Engine, dict[str, Any]]]:
    """Three halls of config/beijing-exit-entry, each with a month of May generated in the shape the engine
    writes (bench/report_bench.py's loader, a seed of its own: arrivals, no-shows, transfers, counter events,
    clerks), their facts stored for the first two halls only (the city reads stored and computed days)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    import report_bench
    from queuehall.broker.config import load_config
    from queuehall.broker.reports import ReportBuilder

    engine = storage.make_engine(db_url)
    storage.migrate(engine)
    configs = {h: load_config(broker_fixtures.ROOT / "config" / "beijing-exit-entry" / f"{h}.toml") for h in HALLS}
    start, end = report_bench.MONTH
    for i, cfg in enumerate(configs.values()):
        loader = report_bench.Loader(cfg, 9_000, seed=2026 + i)
        loader.days = [d for d in loader.days if start <= d <= end]
        loader.load(engine)
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    for h in HALLS[:2]:
        ReportBuilder(engine, configs[h]).prepare(start, end, now)
    try:
        yield engine, {"configs": configs, "start": start, "end": end, "now": now}
    finally:
        engine.dispose()


def both_paths(engine: Engine, d: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The city report by the fast path (report days), then by the row-by-row one from the facts, one report
    after another (the code before issue 18's work)."""
    args = (engine, d["configs"], d["configs"][HALLS[0]], d["start"], d["end"], d["now"])
    fast = build_city(*args)
    with monkeypatch.context() as m:
        m.setattr(satisfaction, "assessment", partial(satisfaction.assessment, in_sql=False))
        m.setattr(appointments_module, "appointments", partial(appointments_module.appointments, look_first=False))
        slow = build_city(*args, workers=1, daily=False)
    return fast, slow


def test_the_fast_city_report_equals_the_row_by_row_one(city_month: tuple[Engine, dict[str, Any]],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    engine, d = city_month
    fast, slow = both_paths(engine, d, monkeypatch)
    assert fast.to_dict() == slow.to_dict()
    assert city_table(fast) == city_table(slow) and city_csv(fast) == city_csv(slow)
    # Not an empty comparison: every hall's figures and its clerks' assessment are there.
    assert [h["hall"] for h in fast.halls] == list(HALLS)
    assert all(h["served"] > 500 for h in fast.halls) and fast.city["issued"] == sum(h["issued"] for h in fast.halls)
    for h in HALLS:
        table = fast.reports[h].assessment
        assert len(table) >= 3 and all(r["finished"] for r in table)
        assert any(r["service_avg_min"] for r in table) and any(r["no_show_share"] for r in table)
        assert fast.reports[h].appointments == {}


def test_with_an_appointment_ticket_the_appointment_figures_are_read(city_month: tuple[Engine, dict[str, Any]],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    engine, d = city_month
    t = storage.tickets.c
    with engine.begin() as conn:  # one hall's ticket of the month came with a booking
        conn.execute(update(storage.tickets).where(t.hall_id == HALLS[1], t.id == 5)
                     .values(booking="Q1234", slot_at=datetime(2026, 5, 6, 1, 0)))
    fast, slow = both_paths(engine, d, monkeypatch)
    assert fast.to_dict() == slow.to_dict()
    kinds = {(w["service"], w["kind"]) for w in fast.reports[HALLS[1]].appointments["waits"]}
    assert ("all", "appointment") in kinds and ("all", "walk_in") in kinds
    assert fast.reports[HALLS[0]].appointments == {} and fast.city["hall"] == "all"


def test_without_appointments_no_visit_row_is_read_and_postgresql_adds_up_the_assessment(
        city_month: tuple[Engine, dict[str, Any]]) -> None:
    """What makes the city report fast: without appointments the first visits are not read at all, and on
    PostgreSQL the clerk assessment reads one row per clerk, not one per visit."""
    engine, d = city_month
    seen: list[tuple[str, int]] = []  # (statement, rows: psycopg counts them, sqlite3 says -1)

    def fetched(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "visits" in statement and "report_facts" not in statement:
            seen.append((statement, cursor.rowcount))

    event.listen(engine, "after_cursor_execute", fetched)
    try:
        cfg = d["configs"][HALLS[0]]
        assert appointments_module.appointments(engine, d["start"], d["end"], hall=HALLS[0]) == {}
        assert seen == []  # only tickets and bookings were looked at
        table = satisfaction.assessment(engine, cfg, d["start"], d["end"], d["end"], hall=HALLS[0])
        assert len(table) >= 3
        if engine.dialect.name == "postgresql":
            assert [n for _s, n in seen] == [len(table)]  # one row a clerk
            assert "GROUP BY" in seen[0][0]
        else:  # SQLite keeps reading the called visits row by row
            assert len(seen) == 1 and "GROUP BY" not in seen[0][0]
    finally:
        event.remove(engine, "after_cursor_execute", fetched)
