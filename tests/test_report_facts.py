"""The report facts kept for closed business days (table report_facts), on SQLite and PostgreSQL.

docs/reports.md, "How it reads the database": a report stores the per-visit facts of every
*final* day of its period (before the hall's business day, every visit ended) and later
reports read them instead of the visits. tests/test_reports.py checks every figure against
an independent oracle computed on the fly, cold and warm; this file checks the rules around
storing: only final days are stored, a stored day that no longer matches its visits is
computed again, nothing that depends on the configuration is stored, purge deletes the facts
with their visits, a read-only database still gets its report, and ``queuehall report
--prepare`` stores them ahead of time. Every report here is compared with the same report
computed without stored facts (``stored_facts=False``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from queuehall.broker import storage
from queuehall.broker.config import HallConfig
from queuehall.broker.reports import GROUPS, FactDays, Report, ReportBuilder
from queuehall.broker.storage import Store, make_engine, migrate
from sqlalchemy import Engine, delete, func, select, update

from tests.test_reports import (
    History,
    _naive,
    at,
    insert_history,
    migrated_engine,
    report_config,
    stored_days,
)

D1, D2, D3, D4 = date(2025, 11, 3), date(2025, 11, 4), date(2025, 11, 5), date(2025, 11, 6)  # Mon-Thu


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> HallConfig:
    return report_config(tmp_path_factory.mktemp("cfg"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    yield from migrated_engine(db_url)


def day_history(days: tuple[date, ...], first_id: int = 1) -> History:
    """Six served tickets a day (one sent to the fee window and back), a cancellation, and a no-show."""
    h = History(first_id=first_id)
    for day in days:
        for k in range(6):
            t = h.ticket(day, "passport" if k % 2 else "move_in", at(day, 9, 10 * k))
            done = h.serve(t, t.visits[0], t.issued_at + timedelta(minutes=5 + 7 * k), 1 if k % 2 else 2,
                           300 + 30 * k, "transferred" if k == 1 else "finished")
            if k == 1:
                fee = h.visit(t, "fees", done)
                done = h.serve(t, fee, done + timedelta(minutes=4), 9, 120, "transferred")
                h.serve(t, h.visit(t, "passport", done), done + timedelta(minutes=2), 1, 200)
        t = h.ticket(day, "consult", at(day, 10))
        h.end(t, t.visits[0], at(day, 10, 30), "cancelled")
        t = h.ticket(day, "consult", at(day, 11))
        h.call(t.visits[0], at(day, 11, 20), 2, recalls=1)
        h.end(t, t.visits[0], at(day, 11, 23), "no_show")
    return h


def visits_per_day(engine: Engine) -> dict[date, int]:
    v = storage.visits
    with engine.connect() as conn:
        return {d: n for d, n in conn.execute(select(v.c.business_day, func.count()).group_by(v.c.business_day))}


def report(engine: Engine, config: HallConfig, start: date, end: date, now: datetime,
           groups: tuple[str, ...] = GROUPS) -> tuple[FactDays, dict[str, Report]]:
    """Reports with stored facts for ``groups``, each checked equal to the one computed on the fly; and where
    the first of them took its facts from (``parallel``: whether one of them, a grouping read from the facts
    rather than from report days, read on a second connection)."""
    reps: dict[str, Report] = {}
    first: FactDays | None = None
    parallel = False
    for g in groups:
        b = ReportBuilder(engine, config)
        reps[g] = b.build(start, end, g, now=now)
        first = first or b.fact_days
        parallel = parallel or b.fact_days.parallel
    live = ReportBuilder(engine, config, stored_facts=False)
    for g, rep in reps.items():
        assert rep.to_dict() == live.build(start, end, g, now=now).to_dict(), g
    assert first is not None
    return replace(first, parallel=parallel), reps


def test_only_final_days_are_stored(engine: Engine, config: HallConfig) -> None:
    h = day_history((D1, D2, D3))
    waiting = h.ticket(D2, "move_in", at(D2, 16, 50))  # left waiting at closing: D2 is not final
    insert_history(engine, h, with_plan=False)
    today = at(D3, 12)  # D3 is the hall's business day: not final either, though every visit has ended

    days, _ = report(engine, config, D1, D3, today, ("service",))
    assert (days.stored, days.prepared, days.live) == ([], [D1], [D1, D2, D3])
    assert stored_days(engine) == {D1: visits_per_day(engine)[D1]}
    days, _ = report(engine, config, D1, D3, today)  # warm: D1 read, the others on the fly again
    assert (days.stored, days.prepared, days.live) == ([D1], [], [D2, D3])

    # The citizen gives up after closing (the broker ends the visit): now D2 is final and is stored.
    ended = at(D2, 17, 30)
    with engine.begin() as conn:
        conn.execute(update(storage.visits).where(storage.visits.c.id == waiting.visits[0].id)
                     .values(ended_at=_naive(ended), outcome="cancelled"))
        conn.execute(update(storage.tickets).where(storage.tickets.c.id == waiting.id)
                     .values(status="cancelled", status_at=_naive(ended)))
    days, _ = report(engine, config, D1, D3, today)
    assert (days.stored, days.prepared, days.live) == ([D1], [D2], [D2, D3])
    # The next morning D3 is over too.
    days, reps = report(engine, config, D1, D3, at(D4, 8))
    assert (days.stored, days.prepared, days.live) == ([D1, D2], [D3], [D3])
    assert days.parallel  # the second connection read all three days stored
    assert stored_days(engine) == visits_per_day(engine)
    assert reps["service"].total["cancelled"] == 4 and reps["service"].total["open"] == 0


def test_a_stored_day_that_no_longer_matches_its_visits_is_computed_again(engine: Engine,
                                                                          config: HallConfig) -> None:
    insert_history(engine, day_history((D1, D2)), with_plan=False)
    now = at(D4, 9)
    report(engine, config, D1, D2, now, ("service",))
    assert stored_days(engine) == visits_per_day(engine)
    # Visits written to D1 after it was stored (say by a broker whose clock was a day behind) ...
    late = day_history((D1,), first_id=500)
    late.tickets = [replace(t, number=t.number + 100) for t in late.tickets]  # numbers of their own
    insert_history(engine, late, with_plan=False)
    days, reps = report(engine, config, D1, D2, now, ("day", "service"))
    assert (days.stale, days.prepared) == ([D1], [D1])
    assert stored_days(engine) == visits_per_day(engine)
    assert reps["day"].rows[0]["visits"] == 2 * reps["day"].rows[1]["visits"]
    # ... or deleted behind its back.
    with engine.begin() as conn:
        conn.execute(delete(storage.visits).where(storage.visits.c.ticket_id >= 500))
    days, reps = report(engine, config, D1, D2, now, ("day",))
    assert (days.stale, days.prepared) == ([D1], [D1]) and stored_days(engine) == visits_per_day(engine)
    assert reps["day"].rows[0]["visits"] == reps["day"].rows[1]["visits"]


def test_stored_facts_follow_the_configuration(engine: Engine, config: HallConfig) -> None:
    """Targets, time zone and departments are applied when the report reads the facts, so a changed
    configuration changes the report of stored days exactly as it changes one computed on the fly."""
    insert_history(engine, day_history((D1, D2)), with_plan=False)
    now = at(D4, 9)
    _, before = report(engine, config, D1, D2, now, ("service", "hour"))
    assert set(stored_days(engine)) == {D1, D2}
    strict = replace(config, timezone="Europe/Berlin",
                     services=tuple(replace(s, target_wait_minutes=10) for s in config.services))
    days, after = report(engine, strict, D1, D2, now, ("service", "hour"))
    assert days.stored == [D1, D2] and not days.live and days.parallel  # the other figures on a second connection
    assert after["service"].total["sla_within"] < before["service"].total["sla_within"]
    assert [r["group"] for r in after["hour"].rows] != [r["group"] for r in before["hour"].rows]


def test_purge_deletes_the_facts_with_their_visits(engine: Engine, config: HallConfig) -> None:
    today = datetime.now(UTC).astimezone(ZoneInfo(config.timezone)).date()
    old, old2, recent = today - timedelta(days=400), today - timedelta(days=399), today - timedelta(days=20)
    h = day_history((old, old2, recent))
    kept = h.ticket(old2, "move_in", at(old2, 16))  # still open: purge keeps it, and old2 is never final
    insert_history(engine, h, with_plan=False)
    done = ReportBuilder(engine, config).prepare(old, recent)
    assert done["prepared"] == [old.isoformat(), recent.isoformat()] and done["not_final"] == [old2.isoformat()]
    limit = today - timedelta(days=config.retention_days)
    Store(engine).purge(limit, retention_days=config.retention_days, today=today)
    assert stored_days(engine) == {recent: visits_per_day(engine)[recent]}
    with engine.connect() as conn:
        left = conn.execute(select(storage.visits.c.id).where(storage.visits.c.business_day < limit)).scalars()
        assert list(left) == [kept.visits[0].id]
    report(engine, config, old, recent, datetime.now(UTC), ("service",))


def test_storing_leaves_the_connection_as_it_was(tmp_path: Path, config: HallConfig) -> None:
    """SQLite stores the facts without an fsync per day; the connection goes back to the pool (where the
    journal may take it) with its own synchronous level."""
    eng = make_engine(f"sqlite:///{tmp_path / 'hall.db'}")
    migrate(eng)
    insert_history(eng, day_history((D1, D2)), with_plan=False)
    ReportBuilder(eng, config, parallel=False).build(D1, D2, now=at(D4, 9))
    assert set(stored_days(eng)) == {D1, D2}
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL, as make_engine set it
    eng.dispose()


def test_a_read_only_database_reads_the_stored_facts(tmp_path: Path, config: HallConfig) -> None:
    """A report of a database it cannot write (a SQLite file opened read-only) stores nothing, reads what
    is stored and computes the rest on the fly."""
    path = tmp_path / "hall.db"
    rw = make_engine(f"sqlite:///{path}")
    migrate(rw)
    insert_history(rw, day_history((D1, D2)), with_plan=False)
    ReportBuilder(rw, config).prepare(D1, D1, now=at(D4, 9))
    assert set(stored_days(rw)) == {D1}
    ro = make_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        days, _ = report(ro, config, D1, D2, at(D4, 9))
        assert (days.stored, days.live, days.prepared) == ([D1], [D2], [])
        assert days.skipped and "readonly" in days.skipped.replace(" ", "")
    finally:
        ro.dispose()
    assert set(stored_days(rw)) == {D1}
    rw.dispose()


def test_prepare_command(engine: Engine, config: HallConfig, capsys: pytest.CaptureFixture[str]) -> None:
    from queuehall.cli import main

    h = day_history((D1, D2, D3))
    h.ticket(D2, "move_in", at(D2, 16, 50))  # still waiting: D2 is not final
    insert_history(engine, h, with_plan=False)
    db = ["--db", engine.url.render_as_string(hide_password=False), "--config", config.source]
    assert main(["report", "--prepare", *db, "--day", D1.isoformat()]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"status": "ok", "from": D1.isoformat(), "to": D1.isoformat(), "prepared": [D1.isoformat()],
                   "already": 0, "not_final": []}
    assert main(["report", "--prepare", *db]) == 0  # every day before today
    out = json.loads(capsys.readouterr().out)
    assert (out["from"], out["prepared"], out["already"], out["not_final"]) == (
        D1.isoformat(), [D3.isoformat()], 1, [D2.isoformat()])
    assert stored_days(engine) == {d: n for d, n in visits_per_day(engine).items() if d != D2}
    assert main(["report", "--prepare", *db, "--day", "2025-13-01"]) == 2
    assert "REPORT_BAD_DATE" in capsys.readouterr().err


def test_a_day_stored_meanwhile_by_another_run_is_stored_once(engine: Engine, config: HallConfig,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Two runs storing the same day: the one that finds its rows there already skips them."""
    insert_history(engine, day_history((D1,)), with_plan=False)
    now = at(D4, 9)
    late = ReportBuilder(engine, config)
    with engine.connect() as conn:
        plan = late._plan(conn, D1, D1, now, write=True)  # D1 not stored yet: to be stored
    assert plan.todo == [D1]
    ReportBuilder(engine, config).prepare(D1, D1, now=now)  # meanwhile another run stores it
    monkeypatch.setattr(late, "_plan", lambda *args, **kw: plan)
    rep = late.build(D1, D1, "counter", now=now)  # a grouping read from the facts (not from report days)
    assert late.fact_days.prepared == [D1] and stored_days(engine) == visits_per_day(engine)
    assert rep.to_dict() == ReportBuilder(engine, config, stored_facts=False).build(D1, D1, "counter",
                                                                                    now=now).to_dict()
