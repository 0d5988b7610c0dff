"""Report days (broker/reports/daily.py, docs/reports.md "Report days"): the figures read from a hall's business
days added up are exactly the figures computed from the facts, on SQLite and PostgreSQL, for a single hall and
for a city (every hall's report, the total, the rankings), and they stay right when the visits change after the
days were added up (a late visit, visits deleted behind the broker's back, a purge by retention)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from queuehall.broker import storage
from queuehall.broker.reports import ReportBuilder
from queuehall.broker.reports.city import build_city, city_csv, city_table
from sqlalchemy import Engine, delete, event, func, insert, select

from tests import broker_fixtures

BENCH = broker_fixtures.ROOT / "bench"
CITY = broker_fixtures.ROOT / "config" / "beijing-exit-entry"
HALLS = ("chaoyang", "haidian", "xuanwu")
EMPTY = "dongcheng"  # registered, no visit in the month
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
START, END = date(2026, 5, 1), date(2026, 5, 31)


@pytest.fixture
def city(db_url: str) -> Iterator[tuple[Engine, dict[str, Any]]]:
    """Three halls with a month of May in the engine's shape (bench/report_bench.py's loader, a seed each) and the
    last days of April, and a fourth hall registered without a visit. On 1 May (a Friday, a holiday) 朝阳 has a
    ticket at 07:50 Beijing time: 23:50 UTC on Thursday 30 April, stored in UTC; it belongs to 1 May, hour 7."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    import report_bench
    from queuehall.broker.config import load_config

    engine = storage.make_engine(db_url)
    storage.migrate(engine)
    configs = {h: load_config(CITY / f"{h}.toml") for h in (*HALLS, EMPTY)}
    for i, h in enumerate(HALLS):
        loader = report_bench.Loader(configs[h], 6_000, seed=7 + i)
        loader.days = [d for d in loader.days if START - timedelta(days=4) <= d <= END]
        loader.load(engine)
    with engine.begin() as conn:
        conn.execute(insert(storage.halls).values(id=EMPTY, name_zh="东城", name_en="Dongcheng",
                                                  registered_at=datetime(2026, 5, 1), started_at=datetime(2026, 5, 1)))
        early = datetime(2026, 4, 30, 23, 50)  # 07:50 in Beijing on 1 May
        copy_ticket(conn, HALLS[0], START, 9_000, shift=None, at=early)
    try:
        yield engine, configs
    finally:
        engine.dispose()


def copy_ticket(conn: Any, hall: str, day: date, new_id: int, shift: timedelta | None = None,
                at: datetime | None = None) -> None:
    """A new ticket ``new_id`` of ``hall`` on ``day``: a copy of the first ticket from that day on and its visits
    (1 May is a holiday: the next day's), moved by
    ``shift`` or to start at ``at`` (what a broker writing behind the others' back would add)."""
    t, v = storage.tickets, storage.visits
    first = conn.execute(select(t).where(t.c.hall_id == hall, t.c.business_day >= day)
                         .order_by(t.c.business_day, t.c.id)).first()
    rows = conn.execute(select(v).where(v.c.hall_id == hall, v.c.ticket_id == first.id).order_by(v.c.seq)).all()
    move = shift if shift is not None else (at - rows[0].entered_at if at is not None else timedelta(0))
    next_visit = conn.execute(select(func.max(v.c.id)).where(v.c.hall_id == hall)).scalar() + 1

    def moved(x: Any) -> Any:
        return None if x is None else x + move

    ticket = first._asdict()
    ticket.update(id=new_id, number=new_id, business_day=day, issued_at=moved(first.issued_at),
                  status_at=moved(first.status_at))
    if "token" in ticket:
        ticket["token"] = f"tok{new_id}"
    conn.execute(insert(t).values(**ticket))
    for i, r in enumerate(rows):
        visit = r._asdict()
        visit.update(id=next_visit + i, ticket_id=new_id, business_day=day,
                     **{k: moved(visit[k]) for k in ("entered_at", "first_called_at", "last_called_at", "serving_at",
                                                     "ended_at") if k in visit})
        conn.execute(insert(v).values(**visit))


def both(engine: Engine, configs: dict[str, Any], halls: list[str] | None = None) -> tuple[Any, Any]:
    """The city report from report days, and from the facts (daily=False: the code before report days)."""
    args = (engine, configs, configs[HALLS[0]], START, END, NOW)
    return build_city(*args, halls=halls), build_city(*args, halls=halls, daily=False, workers=1)


def same(fast: Any, slow: Any) -> None:
    assert fast.to_dict() == slow.to_dict()
    assert city_table(fast) == city_table(slow) and city_csv(fast) == city_csv(slow)


def stored(engine: Engine, table: Any = storage.report_days) -> dict[str, set[date]]:
    with engine.connect() as conn:
        out: dict[str, set[date]] = {}
        for h, d in conn.execute(select(table.c.hall_id, table.c.business_day).distinct()):
            out.setdefault(h, set()).add(d if isinstance(d, date) else date.fromisoformat(str(d)))
        return out


def test_report_days_give_the_figures_of_the_facts(city: tuple[Engine, dict[str, Any]]) -> None:
    engine, configs = city
    # Cold: the halls' reports store their final days; then warm, read back. Both equal the facts' figures.
    fast, slow = both(engine, configs, [*HALLS, EMPTY])
    same(fast, slow)
    with engine.connect() as conn:  # every final day of the month with visits, of every hall, and no other
        v = storage.visits.c
        days_with_visits: dict[str, set[date]] = {}
        for h, d in conn.execute(select(v.hall_id, v.business_day).where(v.business_day.between(START, END))
                                 .distinct()):
            days_with_visits.setdefault(h, set()).add(d if isinstance(d, date) else date.fromisoformat(str(d)))
    assert stored(engine) == days_with_visits and all(len(d) >= 15 for d in days_with_visits.values())
    assert stored(engine) == stored(engine, storage.report_day_times)
    warm, _ = both(engine, configs, [*HALLS, EMPTY])
    same(warm, slow)
    # Not an empty comparison: real figures, the hall without visits, the early visit in local hour 7.
    assert all(h["served"] > 300 and h["wait_p90_min"] for h in fast.halls[:3])
    empty = fast.halls[3]
    assert empty["hall"] == EMPTY and empty["issued"] == 0 and empty["wait_avg_min"] is None
    assert all(r["hall"] != EMPTY for r in fast.rankings["wait_avg"])
    early = fast.reports[HALLS[0]]
    assert next(h for h in early.hourly if h["hour"] == 7)["arrivals"] == 1
    assert {"weekday": 5, "hour": 7, "arrivals": 1} in early.heatmap  # Friday 1 May, not Thursday 30 April
    assert early.counters and early.clerks and early.completion["promised_accepted"] > 0
    # Each hall's own report, by service and by department, against the facts.
    for h in HALLS:
        for group in ("service", "department"):
            a = ReportBuilder(engine, configs[h]).build(START, END, group, NOW)
            b = ReportBuilder(engine, configs[h], daily=False).build(START, END, group, NOW)
            assert a.to_dict() == b.to_dict(), (h, group)


def test_a_warm_city_report_reads_no_visit_fact(city: tuple[Engine, dict[str, Any]]) -> None:
    """With every day stored, the city's report reads report days and counts visits (an index), nothing else
    of the month: not one row of report_facts, not one visit."""
    engine, configs = city
    for h in HALLS:
        ReportBuilder(engine, configs[h]).prepare(START, END, NOW)
    assert set(stored(engine)) == set(HALLS)
    seen: list[str] = []

    def statement(conn: Any, cursor: Any, text: str, *_: Any) -> None:
        seen.append(text)

    event.listen(engine, "after_cursor_execute", statement)
    try:
        fast = build_city(engine, configs, configs[HALLS[0]], START, END, NOW)
    finally:
        event.remove(engine, "after_cursor_execute", statement)
    reads = [s for s in seen if "report_facts" in s]
    assert reads == [] and fast.city["issued"] == sum(h["issued"] for h in fast.halls) > 1000
    assert not [s for s in seen if "FROM visits" in s and "count(*)" not in s.lower()]


def test_report_days_follow_the_visits_changed_after_they_were_added_up(city: tuple[Engine, dict[str, Any]]) -> None:
    """A visit added to a stored day (a broker whose clock was a day behind), visits deleted behind the broker's
    back, and a purge by retention: every report still equals the one computed from the facts."""
    engine, configs = city
    fast, slow = both(engine, configs)
    same(fast, slow)
    day = date(2026, 5, 12)
    assert day in stored(engine)[HALLS[1]]
    with engine.begin() as conn:  # late: a copy of the day's first ticket, an hour later
        copy_ticket(conn, HALLS[1], day, 9_100, shift=timedelta(hours=1))
    late, slow = both(engine, configs)
    same(late, slow)
    assert late.reports[HALLS[1]].tickets["issued"] == fast.reports[HALLS[1]].tickets["issued"] + 1
    with engine.begin() as conn:  # deleted: a ticket and its visits of another stored day
        t, v = storage.tickets, storage.visits
        gone = conn.execute(select(t.c.id).where(t.c.hall_id == HALLS[2], t.c.business_day == date(2026, 5, 20))
                            .order_by(t.c.id.desc())).scalars().first()
        conn.execute(delete(v).where(v.c.hall_id == HALLS[2], v.c.ticket_id == gone))
        conn.execute(delete(t).where(t.c.hall_id == HALLS[2], t.c.id == gone))
        # and every ticket of a third stored day: its report days stay, with no visit left to match
        conn.execute(delete(v).where(v.c.hall_id == HALLS[2], v.c.business_day == date(2026, 5, 21)))
        conn.execute(delete(t).where(t.c.hall_id == HALLS[2], t.c.business_day == date(2026, 5, 21)))
    assert date(2026, 5, 21) in stored(engine)[HALLS[2]]
    fewer, slow = both(engine, configs)
    same(fewer, slow)
    same(both(engine, configs)[0], slow)  # again, the changed day stored anew: only the emptied day is off
    assert fewer.reports[HALLS[2]].tickets["issued"] < fast.reports[HALLS[2]].tickets["issued"] - 1
    # Purge by retention: the hall's days before 15 May go, with their facts and report days.
    counts = storage.Store(engine, HALLS[0]).purge(date(2026, 5, 15), retention_days=183, today=date(2026, 12, 7))
    assert counts["visits"] > 0
    assert min(stored(engine)[HALLS[0]]) >= date(2026, 5, 15)
    purged, slow = both(engine, configs)
    same(purged, slow)
    assert 0 < purged.reports[HALLS[0]].tickets["issued"] < fast.reports[HALLS[0]].tickets["issued"]


def test_queuehall_report_hall_all_writes_a_workbook_charts_and_each_halls_counters(
        city: tuple[Engine, dict[str, Any]], tmp_path: Any, capsys: pytest.CaptureFixture[str],
        artifacts_dir: Any) -> None:
    """``--hall all`` in every format: the workbook read back holds the JSON's figures (halls, rankings, each
    hall's rows, counters and clerks), the charts are drawn, and the text has each hall's counters and clerks."""
    import json

    from openpyxl import load_workbook

    from queuehall.cli import main

    engine, _configs = city
    url = engine.url.render_as_string(hide_password=False)
    base = ["report", "--db", url, "--config-dir", str(CITY), "--hall", "all", "--from", START.isoformat(),
            "--to", END.isoformat()]
    assert main([*base, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    book = tmp_path / "city.xlsx"
    assert main([*base, "--format", "xlsx", "--out", str(book)]) == 0
    wb = load_workbook(book, read_only=True)
    assert wb.sheetnames == ["halls", "rankings", "by service", "counters", "clerks"]
    rows = [list(r) for r in wb["halls"].iter_rows(values_only=True)]
    assert rows[0] == list(out["city"]) and [r[0] for r in rows[1:]] == [*(h["hall"] for h in out["halls"]), "all"]
    for got, want in zip(rows[1:], [*out["halls"], out["city"]], strict=True):
        assert got == [want.get(k) for k in rows[0]]  # a hall has no "halls" count
    ranks = list(wb["rankings"].iter_rows(values_only=True))[1:]
    assert ranks == [(name, r["rank"], r["hall"], r["name_zh"], r["value"])
                     for name, ranked in out["rankings"].items() for r in ranked]
    for sheet, part in (("counters", "counters"), ("clerks", "clerks"), ("by service", "rows")):
        got_rows = list(wb[sheet].iter_rows(values_only=True))[1:]
        want = [(h, x) for h, rep in out["reports"].items()
                for x in (rep[part] + ([rep["total"]] if part == "rows" else []))]
        assert len(got_rows) == len(want) > 10 and [r[0] for r in got_rows] == [h for h, _x in want]
    counters = list(wb["counters"].iter_rows(values_only=True))
    first = out["reports"][counters[1][0]]["counters"][0]
    assert counters[1][1:4] == (first["counter"], first["name_zh"], first["open_min"])
    charts = artifacts_dir / f"city_report_charts_{engine.dialect.name}"  # look at them
    assert main([*base, "--format", "png", "--out", str(charts)]) == 0
    drawn = sorted(p.name for p in charts.iterdir())
    assert drawn == ["halls_wait.png", "heatmap.png", "per_hour.png"]
    assert all((charts / p).stat().st_size > 10_000 for p in drawn)
    capsys.readouterr()
    assert main(base) == 0
    text = capsys.readouterr().out
    for h in HALLS:
        name = out["halls"][[x["hall"] for x in out["halls"]].index(h)]["name_zh"]
        assert f"counters 窗口 (min) — {name} ({h})" in text and f"clerks 工作人员 — {name} ({h})" in text
