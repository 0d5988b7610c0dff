"""好差评 and supervision in the reports (docs/evaluation.md "Reports", docs/supervision.md), and the daily
export of ratings for the province's 好差评 platform.

Read-only SQL over the ``ratings``, ``cases``, ``visits`` and ``events`` tables of a period of business days:

* satisfaction per clerk, counter, service and day: ratings per level, 好评率 (levels 3–5 over all
  ratings), defaults, 差评 cases opened, still open, overdue, called back (回访率 = cases called back over
  cases opened) and closed on time;
* the clerk assessment table (考核评比): finished visits, average service time, no-show share,
  satisfaction (好评率 and average level), alerts of the clerk's counters;
* alerts per day and rule (``alert_raised`` events).

``queuehall ratings export --day D [--out FILE]`` writes the day's ratings as JSON lines in the record format
of docs/evaluation.md.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from queuehall.broker.config import DEFAULT_HALL_ID, HallConfig
from queuehall.broker.hours import OpeningHours
from queuehall.broker.model import CASE_OPEN
from queuehall.broker.storage import cases, events, ratings, visits
from sqlalchemy import Engine, func, select, true

from queuehall.ratings import GOOD_LEVELS, RATING_LEVELS

DIMENSIONS = ("clerk", "counter", "service", "day")


def _iso(at: datetime | None) -> str | None:
    return at.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z") if at is not None else None


def _new() -> dict[str, Any]:
    return {"rated": 0, **{f"level_{n}": 0 for n in range(5, 0, -1)}, "defaults": 0, "good": 0, "level_sum": 0,
            "cases": 0, "cases_open": 0, "cases_overdue": 0, "called_back": 0, "closed_on_time": 0}


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    rated, n_cases = row["rated"], row["cases"]
    row["good_rate"] = round(row["good"] / rated, 4) if rated else None  # 好评率
    row["level_avg"] = round(row.pop("level_sum") / rated, 2) if rated else None
    row["callback_rate"] = round(row["called_back"] / n_cases, 4) if n_cases else None  # 回访率
    row["on_time_rate"] = round(row["closed_on_time"] / n_cases, 4) if n_cases else None
    return row


def _hall(table: Any, config: HallConfig, hall: Any) -> Any:
    """The condition on ``table`` for ``hall``'s records (``...``: ``config``'s hall; None: every hall)."""
    hall = config.hall_id if hall is ... else hall
    return table.c.hall_id == hall if hall is not None else true()


def satisfaction(engine: Engine, config: HallConfig, start: date, end: date, today: date,
                 hall: Any = ...) -> dict[str, Any]:
    """The satisfaction figures of ratings of business days ``start``..``end`` (see the module docstring);
    ``today`` decides which open cases are overdue. ``hall``: whose ratings (default ``config``'s hall;
    None: every hall's, a city's)."""
    by: dict[str, dict[Any, dict[str, Any]]] = {d: defaultdict(_new) for d in DIMENSIONS}
    total = _new()
    with engine.connect() as conn:
        rows = conn.execute(select(ratings).where(_hall(ratings, config, hall),
                                                  ratings.c.business_day.between(start, end))).all()
        case_rows = conn.execute(select(cases).where(_hall(cases, config, hall),
                                                     cases.c.business_day.between(start, end))).all()
    for r in rows:
        keys = {"clerk": r.clerk, "counter": r.counter, "service": r.service, "day": r.business_day.isoformat()}
        for acc in (total, *(by[d][keys[d]] for d in DIMENSIONS)):
            acc["rated"] += 1
            acc[f"level_{r.level}"] += 1
            acc["defaults"] += int(bool(r.is_default))
            acc["good"] += int(r.level in GOOD_LEVELS)
            acc["level_sum"] += r.level
    tz = OpeningHours(config.hours, config.timezone).tz
    for c in case_rows:
        keys = {"clerk": c.clerk, "counter": c.counter, "service": c.service, "day": c.business_day.isoformat()}
        closed_day = c.closed_at.replace(tzinfo=UTC).astimezone(tz).date() if c.closed_at is not None else None
        for acc in (total, *(by[d][keys[d]] for d in DIMENSIONS)):
            acc["cases"] += 1
            acc["cases_open"] += int(c.status == CASE_OPEN)
            acc["cases_overdue"] += int(c.status == CASE_OPEN and today > c.due_day)
            acc["called_back"] += int(c.callback_at is not None)
            acc["closed_on_time"] += int(closed_day is not None and closed_day <= c.due_day)
    out: dict[str, Any] = {"levels": {str(n): level.to_dict() for n, level in RATING_LEVELS.items()},
                           "total": _finish(total)}
    for d in DIMENSIONS:
        out[f"by_{d}"] = [{d: k, **_finish(v)} for k, v in sorted(by[d].items(), key=lambda kv: str(kv[0]))]
    return out


def alert_rows(engine: Engine, start: date, end: date, hall: str | None) -> list[tuple[date, str, dict[str, Any]]]:
    """The alerts raised in the period: (business day, rule, details), in order (``hall``'s; None: every hall's)."""
    mine = events.c.hall_id == hall if hall is not None else true()
    with engine.connect() as conn:
        rows = conn.execute(select(events.c.business_day, events.c.data)
                            .where(mine, (events.c.type == "alert_raised") & events.c.business_day.between(start, end))
                            .order_by(events.c.seq)).all()
    return [(r.business_day, str(json.loads(r.data).get("rule")), json.loads(r.data).get("details") or {})
            for r in rows]


def alerts_per_day(engine: Engine, start: date, end: date, hall: str | None = DEFAULT_HALL_ID,
                   alerts: list[tuple[date, str, dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Alerts raised per business day and rule: ``[{day, rule, raised}]`` (``hall``'s; None: every hall's;
    ``alerts``: its :func:`alert_rows`, already read)."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for day, rule, _details in (alerts if alerts is not None else alert_rows(engine, start, end, hall)):
        counts[(day.isoformat(), rule)] += 1
    return [{"day": d, "rule": r, "raised": n} for (d, r), n in sorted(counts.items())]


def _assessment_pg(conn: Any, mine: Any, rows: dict[str, dict[str, Any]]) -> None:
    """:func:`assessment`'s per-clerk visit counts and service seconds, added up by PostgreSQL instead of
    reading every called visit of the period into Python (a month of a busy hall: 140,000 rows, seconds
    apiece; docs/reports.md "A city's report"). The service seconds are summed exactly (numeric, to the
    microsecond), as the loop over the rows sums them in floating point: the same average to 10⁻¹⁰ s."""
    v = visits.c
    finished = v.outcome == "finished"
    timed = finished & v.serving_at.is_not(None) & v.ended_at.is_not(None)
    for r in conn.execute(
            select(v.clerk, func.count().label("called"), func.count().filter(finished).label("finished"),
                   func.count().filter(v.outcome == "no_show").label("no_show"),
                   func.sum(func.extract("epoch", v.ended_at - v.serving_at)).filter(timed).label("service_s"),
                   func.count().filter(timed).label("timed"))
            .where(mine).group_by(v.clerk)):
        acc = rows[r.clerk]
        for k in ("called", "finished", "no_show", "timed"):
            acc[k] += int(getattr(r, k))
        if r.service_s is not None:
            acc["service_s"] += float(r.service_s)


def assessment(engine: Engine, config: HallConfig, start: date, end: date, today: date,
               hall: Any = ..., in_sql: bool | None = None,
               visit_counts: dict[str, dict[str, Any]] | None = None,
               rated: dict[str, Any] | None = None,
               alerts: list[tuple[date, str, dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """The clerk assessment table (考核评比), one row per clerk who served or was rated in the period:
    ``finished``, ``service_avg_min`` (serving → end of finished visits), ``no_show_share`` (of visits
    called), ``rated``, ``good_rate``, ``level_avg``, ``cases``, ``callback_rate``, ``alerts`` (alerts naming
    the clerk, or their counter while they were the one last rated there).

    ``in_sql``: the visits added up by the database (None: on PostgreSQL, :func:`_assessment_pg`) or read
    row by row (SQLite, whose timestamps are text: the same figures, tests/test_city_fast.py).
    ``visit_counts``: those per-clerk figures (``called``, ``finished``, ``no_show``, ``timed``, ``service_s``)
    already added up from the report days (broker/reports/daily.py): the visits are not read. ``rated``: the
    period's :func:`satisfaction` figures of the hall, and ``alerts`` its :func:`alert_rows`, if the caller has
    them."""
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: {"called": 0, "finished": 0, "no_show": 0,
                                                           "service_s": 0.0, "timed": 0, "alerts": 0})
    hall = config.hall_id if hall is ... else hall
    mine = _hall(visits, config, hall) & visits.c.business_day.between(start, end) & visits.c.clerk.is_not(None)
    if visit_counts is not None:
        for who, counts in visit_counts.items():
            rows[who].update(counts)
    else:
        with engine.connect() as conn:
            if in_sql is None:
                in_sql = conn.dialect.name == "postgresql"
            if in_sql:
                _assessment_pg(conn, mine, rows)
            step = timedelta(microseconds=1)
            for v in [] if in_sql else conn.execute(
                    select(visits.c.clerk, visits.c.outcome, visits.c.serving_at, visits.c.ended_at).where(mine)):
                acc = rows[v.clerk]
                acc["called"] += 1
                if v.outcome == "finished":
                    acc["finished"] += 1
                    if v.serving_at is not None and v.ended_at is not None:
                        # Whole microseconds, added up exactly as PostgreSQL's numeric sum does.
                        acc["service_us"] = acc.get("service_us", 0) + (v.ended_at - v.serving_at) // step
                        acc["timed"] += 1
                elif v.outcome == "no_show":
                    acc["no_show"] += 1
            for acc in rows.values():
                if "service_us" in acc:
                    acc["service_s"] = acc.pop("service_us") / 1_000_000
    sat = {r["clerk"]: r for r in (rated or satisfaction(engine, config, start, end, today, hall=hall))["by_clerk"]}
    clerk_of_counter = {c.number: c.clerk_a for c in config.counters}
    for _day, _rule, details in (alerts if alerts is not None else alert_rows(engine, start, end, hall)):
        clerk = details.get("clerk") or (clerk_of_counter.get(details["counter"]) if details.get("counter") else None)
        if clerk:
            rows[clerk]["alerts"] += 1
    out = []
    for clerk in sorted(set(rows) | {k for k in sat if k}):
        acc, s = rows[clerk], sat.get(clerk) or _finish(_new())
        person = config.clerk(clerk)
        out.append({
            "clerk": clerk, "name_zh": person.name.zh if person else None,
            "finished": acc["finished"],
            "service_avg_min": round(acc["service_s"] / acc["timed"] / 60, 2) if acc["timed"] else None,
            "no_show_share": round(acc["no_show"] / acc["called"], 4) if acc["called"] else None,
            "rated": s["rated"], "good_rate": s["good_rate"], "level_avg": s["level_avg"], "cases": s["cases"],
            "callback_rate": s["callback_rate"], "alerts": acc["alerts"]})
    return out


def export_day(engine: Engine, day: date, hall: str = DEFAULT_HALL_ID) -> list[dict[str, Any]]:
    """The ratings of business day ``day`` in ``hall`` as records (docs/evaluation.md "Record format"), in
    rating order."""
    with engine.connect() as conn:
        rows = conn.execute(select(ratings).where(ratings.c.hall_id == hall, ratings.c.business_day == day)
                            .order_by(ratings.c.id)).all()
    out = []
    for r in rows:
        level = RATING_LEVELS[r.level]
        out.append({"id": r.id, "visit_id": r.visit_id, "ticket_id": r.ticket_id, "label": r.label,
                    "business_day": r.business_day.isoformat(), "service": r.service, "counter": r.counter,
                    "clerk": r.clerk, "post": r.post, "level": r.level, "level_zh": level.zh, "level_en": level.en,
                    "indicators": json.loads(r.indicators), "reason": r.reason, "channel": r.channel,
                    "is_default": bool(r.is_default), "rated_at": _iso(r.rated_at),
                    "visit_ended_at": _iso(r.visit_ended_at)})
    return out


def register(sub: Any) -> None:
    """``queuehall ratings export --day D [--out FILE] [--db URL]``."""
    p = sub.add_parser("ratings", help="好差评 records: the daily export for the province's platform")
    rs = p.add_subparsers(dest="ratings_cmd", required=True)
    e = rs.add_parser("export", help="the day's ratings as JSON lines (docs/evaluation.md, record format)")
    e.add_argument("--day", required=True, help="business day YYYY-MM-DD")
    e.add_argument("--db", default=None, help="SQLAlchemy URL (default: the local SQLite database)")
    e.add_argument("--config", default=None, help="hall configuration (default config/hall.toml)")
    e.add_argument("--out", default=None, help="output file (default: standard output)")
    e.set_defaults(func=_export_main)


def _export_main(args: Any) -> int:
    """0 written; 2 a bad day or an unusable database (message on standard error)."""
    import sys

    from queuehall.broker.reports.cli import ReportError, _fail, _open, parse_period

    try:
        day, _ = parse_period(args.day, None, None)
        engine, config = _open(args.db, args.config)
    except ReportError as err:
        return _fail("ratings export", err)
    try:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in export_day(engine, day, config.hall_id))
    finally:
        engine.dispose()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0
