"""Reports on waits, service times, counters and clerks, computed as SQL aggregates.

Reads the database directly (a copy away from the hall works just as well) and never
talks to the broker. Every figure follows the definitions in docs/reports.md; the
function computing it names the definition it implements.

Percentiles are nearest-rank (the value at rank ⌈p·n⌉ of the sorted sample), computed
in SQL with window functions, so SQLite and PostgreSQL give the same numbers.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Float, Integer, and_, case, func, literal, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from broker.config import HallConfig
from broker.hours import OpeningHours
from broker.storage import events, tickets, visits

GROUPS = ("service", "counter", "clerk", "department", "hour", "day")
SAME_DAY_TARGET = 0.80  # 当天办结率要在80以上


# ---------------------------------------------------------------- portable SQL pieces


class _Seconds(FunctionElement):
    """Seconds from ``start`` to ``end`` (two naive-UTC timestamps)."""

    type = Float()
    inherit_cache = True
    name = "qh_seconds"


@compiles(_Seconds, "sqlite")
def _seconds_sqlite(el: _Seconds, compiler: Any, **kw: Any) -> str:
    start, end = list(el.clauses)
    return f"((julianday({compiler.process(end, **kw)}) - julianday({compiler.process(start, **kw)})) * 86400.0)"


@compiles(_Seconds, "postgresql")
def _seconds_pg(el: _Seconds, compiler: Any, **kw: Any) -> str:
    start, end = list(el.clauses)
    return f"EXTRACT(EPOCH FROM ({compiler.process(end, **kw)} - {compiler.process(start, **kw)}))"


class _LocalPart(FunctionElement):
    """The local hour (``part='hour'``) or weekday (0 = Sunday) of a naive-UTC timestamp."""

    type = Integer()
    inherit_cache = True
    name = "qh_local_part"

    def __init__(self, col: Any, offset_minutes: int, part: str) -> None:
        self.offset_minutes = offset_minutes
        self.part = part
        super().__init__(col)


@compiles(_LocalPart, "sqlite")
def _local_sqlite(el: _LocalPart, compiler: Any, **kw: Any) -> str:
    fmt = "%H" if el.part == "hour" else "%w"
    col = compiler.process(next(iter(el.clauses)), **kw)
    return f"CAST(strftime('{fmt}', {col}, '{el.offset_minutes:+d} minutes') AS INTEGER)"


@compiles(_LocalPart, "postgresql")
def _local_pg(el: _LocalPart, compiler: Any, **kw: Any) -> str:
    part = "HOUR" if el.part == "hour" else "DOW"
    col = compiler.process(next(iter(el.clauses)), **kw)
    return f"CAST(EXTRACT({part} FROM {col} + INTERVAL '{el.offset_minutes} minutes') AS INTEGER)"


# ---------------------------------------------------------------- the report


@dataclass
class Report:
    """Everything one ``queuehall report`` run computed."""

    start: date
    end: date
    group: str
    timezone: str
    totals: dict[str, Any]
    rows: list[dict[str, Any]]
    counters: list[dict[str, Any]]
    clerks: list[dict[str, Any]]
    hourly: list[dict[str, Any]] = field(default_factory=list)
    heatmap: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"period": {"from": self.start.isoformat(), "to": self.end.isoformat(), "timezone": self.timezone},
                "group": self.group, "totals": self.totals, "rows": self.rows, "counters": self.counters,
                "clerks": self.clerks, "hourly": self.hourly, "heatmap": self.heatmap, "notes": self.notes}


def _wait_end() -> ColumnElement[Any]:
    # docs/reports.md "Wait time": issue (or entry into the queue) to first call; a no-show's to its last call.
    return case((visits.c.outcome == "no_show", visits.c.last_called_at), else_=visits.c.first_called_at)


def _wait_seconds() -> ColumnElement[Any]:
    return _Seconds(visits.c.entered_at, _wait_end())


def _service_seconds() -> ColumnElement[Any]:
    return _Seconds(visits.c.serving_at, visits.c.ended_at)


class ReportBuilder:
    """Computes a :class:`Report` for one period from a database."""

    def __init__(self, engine: Engine, config: HallConfig) -> None:
        self.engine = engine
        self.config = config
        self.tz = ZoneInfo(config.timezone)
        self.hours = OpeningHours(config.hours, config.timezone)

    def offset_minutes(self, day: date) -> int:
        off = datetime(day.year, day.month, day.day, 12, tzinfo=self.tz).utcoffset() or timedelta(0)
        return int(off.total_seconds() // 60)

    def group_expr(self, group: str, start: date) -> ColumnElement[Any]:
        if group == "service":
            return visits.c.service
        if group == "counter":
            return visits.c.counter
        if group == "clerk":
            return visits.c.clerk
        if group == "day":
            return visits.c.business_day
        if group == "hour":
            return _LocalPart(visits.c.entered_at, self.offset_minutes(start), "hour")
        if group == "department":
            whens = [(visits.c.service == s.code, literal(s.department)) for s in self.config.services]
            return case(*whens, else_=literal("?")) if whens else literal("?")
        raise ValueError(f"unknown group {group!r}; expected one of {', '.join(GROUPS)}")

    def _in_period(self, start: date, end: date) -> ColumnElement[bool]:
        return and_(visits.c.business_day >= start, visits.c.business_day <= end)

    def _percentiles(self, conn: Any, group: ColumnElement[Any] | None, value: ColumnElement[Any],
                     where: ColumnElement[bool]) -> dict[Any, dict[str, float]]:
        """Nearest-rank median and 90th percentile of ``value`` per group, in SQL."""
        g = (group if group is not None else literal(0)).label("g")
        v = value.label("v")
        inner = select(g, v).where(where).subquery()
        ranked = select(
            inner.c.g, inner.c.v,
            func.row_number().over(partition_by=inner.c.g, order_by=inner.c.v).label("rn"),
            func.count().over(partition_by=inner.c.g).label("n"),
        ).subquery()
        # ⌈p·n⌉ with integer arithmetic: (n+1)/2 and (9n+9)/10.
        q = select(
            ranked.c.g,
            func.max(case((ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.v))).label("p50"),
            func.max(case((ranked.c.rn == (ranked.c.n * 9 + 9) // 10, ranked.c.v))).label("p90"),
        ).group_by(ranked.c.g)
        return {r.g: {"p50": r.p50, "p90": r.p90} for r in conn.execute(q)}

    def _visit_figures(self, conn: Any, group: ColumnElement[Any] | None, start: date, end: date
                       ) -> dict[Any, dict[str, Any]]:
        period = self._in_period(start, end)
        g = (group if group is not None else literal(0)).label("g")
        wait = _wait_seconds()
        served = visits.c.serving_at.isnot(None) & visits.c.outcome.in_(["finished", "transferred"])
        waited = _wait_end().isnot(None)
        target = case(*[(visits.c.service == s.code, literal(s.target_wait_minutes * 60.0))
                        for s in self.config.services], else_=literal(1e12))
        q = select(
            g,
            func.count().label("visits"),
            func.sum(case((visits.c.outcome == "finished", 1), else_=0)).label("finished"),
            func.sum(case((visits.c.outcome == "no_show", 1), else_=0)).label("no_show"),
            func.sum(case((visits.c.outcome == "transferred", 1), else_=0)).label("transferred_out"),
            func.sum(case((visits.c.outcome == "cancelled", 1), else_=0)).label("cancelled"),
            func.sum(case((visits.c.outcome == "voided", 1), else_=0)).label("voided"),
            func.sum(case((waited, 1), else_=0)).label("called"),
            func.avg(case((waited, wait))).label("wait_avg"),
            func.max(case((waited, wait))).label("wait_max"),
            func.sum(case((and_(waited, wait <= target), 1), else_=0)).label("within_target"),
            func.sum(case((served, 1), else_=0)).label("served_n"),
            func.avg(case((served, _service_seconds()))).label("service_avg"),
        ).where(period).group_by(g)
        out: dict[Any, dict[str, Any]] = {}
        for r in conn.execute(q):
            out[r.g] = {
                "visits": r.visits, "finished": r.finished or 0, "no_show": r.no_show or 0,
                "transferred_out": r.transferred_out or 0, "cancelled": r.cancelled or 0, "voided": r.voided or 0,
                "called": r.called or 0,
                "wait_avg_min": _minutes(r.wait_avg), "wait_max_min": _minutes(r.wait_max),
                "sla_share": round((r.within_target or 0) / r.called, 4) if r.called else None,
                "service_avg_min": _minutes(r.service_avg),
            }
        waits = self._percentiles(conn, group, wait, and_(period, waited))
        services = self._percentiles(conn, group, _service_seconds(), and_(period, served))
        for key, row in out.items():
            row["wait_median_min"] = _minutes((waits.get(key) or {}).get("p50"))
            row["wait_p90_min"] = _minutes((waits.get(key) or {}).get("p90"))
            row["service_p90_min"] = _minutes((services.get(key) or {}).get("p90"))
        return out

    def _ticket_totals(self, conn: Any, start: date, end: date) -> dict[str, Any]:
        """docs/reports.md "Tickets": counted by the ticket's final status, on its issue day."""
        period = and_(tickets.c.business_day >= start, tickets.c.business_day <= end)
        row = conn.execute(select(
            func.count().label("issued"),
            func.sum(case((tickets.c.status == "finished", 1), else_=0)).label("served"),
            func.sum(case((tickets.c.status == "no_show", 1), else_=0)).label("no_show"),
            func.sum(case((tickets.c.status == "cancelled", 1), else_=0)).label("cancelled"),
            func.sum(case((tickets.c.status == "voided", 1), else_=0)).label("voided"),
            func.sum(case((tickets.c.status.in_(["waiting", "called", "serving"]), 1), else_=0)).label("open"),
        ).where(period)).one()
        transferred = conn.execute(select(func.count(func.distinct(visits.c.ticket_id))).where(
            and_(self._in_period(start, end), visits.c.outcome == "transferred"))).scalar() or 0
        on_the_spot = [s.code for s in self.config.services if s.promised_days == 0]
        # Same-day completion (当天办结): finished tickets of on-the-spot matters, over all finished.
        same_day = conn.execute(select(func.count()).select_from(tickets).where(
            and_(period, tickets.c.status == "finished", tickets.c.queue_service.in_(on_the_spot)))).scalar() or 0
        served = row.served or 0
        return {
            "issued": row.issued or 0, "served": served, "no_show": row.no_show or 0,
            "cancelled": row.cancelled or 0, "voided": row.voided or 0, "open": row.open or 0,
            "transferred": transferred,
            "same_day_completed": same_day,
            "same_day_rate": round(same_day / served, 4) if served else None,
            "same_day_target": SAME_DAY_TARGET,
            "same_day_meets_target": (same_day / served >= SAME_DAY_TARGET) if served else None,
        }

    def _promised(self, conn: Any, start: date, end: date) -> dict[str, Any]:
        """docs/reports.md "Promised completion": due dates of matters accepted in the period."""
        hours = self.hours
        promised = {s.code: s.promised_days for s in self.config.services if s.promised_days > 0}
        rows = conn.execute(select(tickets.c.business_day, tickets.c.queue_service, func.count().label("n"))
                            .where(and_(tickets.c.business_day >= start, tickets.c.business_day <= end,
                                        tickets.c.status == "finished",
                                        tickets.c.queue_service.in_(list(promised))))
                            .group_by(tickets.c.business_day, tickets.c.queue_service)).all()
        accepted = 0
        due_by_end = 0
        for r in rows:
            accepted += r.n
            if _add_working_days(hours, r.business_day, promised[r.queue_service]) <= end:
                due_by_end += r.n
        # On-the-spot matters still open when their day ended are past their promise.
        on_the_spot = [s.code for s in self.config.services if s.promised_days == 0]
        late = conn.execute(select(func.count()).select_from(tickets).where(and_(
            tickets.c.business_day >= start, tickets.c.business_day <= end,
            tickets.c.queue_service.in_(on_the_spot),
            tickets.c.status.in_(["waiting", "called", "serving"])))).scalar() or 0
        return {"matters_accepted_with_promise": accepted, "matters_due_by_period_end": due_by_end,
                "on_the_spot_not_finished": late}

    def _counter_time(self, conn: Any, start: date, end: date, now: datetime) -> list[dict[str, Any]]:
        """docs/reports.md "Counter time": open, paused by reason, busy with a citizen, idle."""
        rows = conn.execute(select(events.c.counter, events.c.type, events.c.at, events.c.data)
                            .where(and_(events.c.business_day >= start, events.c.business_day <= end,
                                        events.c.type.in_(["counter_signed_in", "counter_signed_out",
                                                           "counter_paused", "counter_resumed"])))
                            .order_by(events.c.seq)).all()
        acc: dict[int, dict[str, Any]] = {}
        state: dict[int, tuple[str, datetime, str | None]] = {}  # counter -> (open|paused, since, reason)
        for r in rows:
            at = r.at.replace(tzinfo=UTC)
            a = acc.setdefault(r.counter, {"open_s": 0.0, "paused_s": {}})
            prev = state.get(r.counter)
            if prev is not None:
                day_end = self._day_end(prev[1])
                self._accumulate(a, prev, min(at, day_end))
            if r.type == "counter_signed_out":
                state.pop(r.counter, None)
            elif r.type == "counter_paused":
                state[r.counter] = ("paused", at, json.loads(r.data).get("reason"))
            elif r.type == "counter_resumed" or r.type == "counter_signed_in":
                if r.type == "counter_signed_in" and prev is not None and prev[0] == "paused":
                    state[r.counter] = ("paused", at, prev[2])  # a takeover keeps the pause
                else:
                    state[r.counter] = ("open", at, None)
        for counter, prev in state.items():
            self._accumulate(acc[counter], prev, min(now, self._day_end(prev[1])))
        period = self._in_period(start, end)
        busy = {r.counter: (r.busy or 0.0, r.serving or 0.0) for r in conn.execute(
            select(visits.c.counter,
                   func.sum(_Seconds(visits.c.first_called_at, visits.c.ended_at)).label("busy"),
                   func.sum(case((visits.c.serving_at.isnot(None),
                                  _Seconds(visits.c.serving_at, visits.c.ended_at)))).label("serving"))
            .where(and_(period, visits.c.counter.isnot(None), visits.c.first_called_at.isnot(None),
                        visits.c.ended_at.isnot(None))).group_by(visits.c.counter))}
        out = []
        for counter in sorted(set(acc) | set(busy)):
            a = acc.get(counter, {"open_s": 0.0, "paused_s": {}})
            b, s = busy.get(counter, (0.0, 0.0))
            out.append({"counter": counter, "open_min": _minutes(a["open_s"]),
                        "busy_min": _minutes(b), "serving_min": _minutes(s),
                        "idle_min": _minutes(max(0.0, a["open_s"] - b)),
                        "paused_min": _minutes(sum(a["paused_s"].values())),
                        "paused_by_reason_min": {k: _minutes(v) for k, v in sorted(a["paused_s"].items())}})
        return out

    def _day_end(self, at: datetime) -> datetime:
        """Closing time of ``at``'s business day: a counter left signed in overnight stops counting then."""
        local = at.astimezone(self.tz)
        periods = self.hours.periods_on(local.date())
        if periods:
            close = datetime.combine(local.date(), periods[-1].end, tzinfo=self.tz).astimezone(UTC)
            if close > at:
                return close
        return datetime(local.year, local.month, local.day, tzinfo=self.tz).astimezone(UTC) + timedelta(days=1)

    @staticmethod
    def _accumulate(a: dict[str, Any], prev: tuple[str, datetime, str | None], until: datetime) -> None:
        seconds = max(0.0, (until - prev[1]).total_seconds())
        if prev[0] == "open":
            a["open_s"] += seconds
        else:
            a["paused_s"][prev[2] or "?"] = a["paused_s"].get(prev[2] or "?", 0.0) + seconds

    def _clerks(self, conn: Any, start: date, end: date) -> list[dict[str, Any]]:
        """docs/reports.md "Clerks": finished visits and average service time per clerk and post."""
        served = visits.c.serving_at.isnot(None) & visits.c.outcome.in_(["finished", "transferred"])
        q = (select(visits.c.clerk, visits.c.post,
                    func.sum(case((visits.c.outcome == "finished", 1), else_=0)).label("finished"),
                    func.sum(case((visits.c.outcome == "no_show", 1), else_=0)).label("no_show"),
                    func.avg(case((served, _service_seconds()))).label("service_avg"))
             .where(and_(self._in_period(start, end), visits.c.clerk.isnot(None)))
             .group_by(visits.c.clerk, visits.c.post).order_by(visits.c.clerk, visits.c.post))
        names = {c.id: c.name for c in self.config.clerks}
        return [{"clerk": r.clerk, "name_zh": names[r.clerk].zh if r.clerk in names else r.clerk,
                 "post": r.post, "finished": r.finished or 0, "no_show": r.no_show or 0,
                 "service_avg_min": _minutes(r.service_avg)} for r in conn.execute(q)]

    def _hourly(self, conn: Any, start: date, end: date) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        off = self.offset_minutes(start)
        first = visits.c.seq == 1
        arrivals = {r.h: r.n for r in conn.execute(
            select(_LocalPart(visits.c.entered_at, off, "hour").label("h"), func.count().label("n"))
            .where(and_(self._in_period(start, end), first)).group_by("h"))}
        served = {r.h: r.n for r in conn.execute(
            select(_LocalPart(visits.c.ended_at, off, "hour").label("h"), func.count().label("n"))
            .where(and_(self._in_period(start, end), visits.c.outcome == "finished")).group_by("h"))}
        hourly = [{"hour": h, "arrivals": arrivals.get(h, 0), "served": served.get(h, 0)}
                  for h in sorted(set(arrivals) | set(served))]
        heat = [{"weekday": r.d, "hour": r.h, "arrivals": r.n} for r in conn.execute(
            select(_LocalPart(visits.c.entered_at, off, "dow").label("d"),
                   _LocalPart(visits.c.entered_at, off, "hour").label("h"), func.count().label("n"))
            .where(and_(self._in_period(start, end), first)).group_by("d", "h"))]
        return hourly, heat

    def build(self, start: date, end: date, group: str = "service", now: datetime | None = None) -> Report:
        """The report for business days ``start``..``end`` (inclusive), rows grouped by ``group``."""
        if group not in GROUPS:
            raise ValueError(f"unknown group {group!r}; expected one of {', '.join(GROUPS)}")
        if end < start:
            raise ValueError("the period ends before it starts")
        now = now or datetime.now(UTC)
        with self.engine.connect() as conn:
            totals = self._ticket_totals(conn, start, end)
            overall = self._visit_figures(conn, None, start, end).get(0, {})
            totals.update({k: v for k, v in overall.items() if k not in totals})
            totals.update(self._promised(conn, start, end))
            grouped = self._visit_figures(conn, self.group_expr(group, start), start, end)
            counters = self._counter_time(conn, start, end, now)
            clerks = self._clerks(conn, start, end)
            hourly, heat = self._hourly(conn, start, end)
        rows = [{"group": _key(k), **self._label(group, k), **v} for k, v in sorted(grouped.items(),
                                                                                    key=lambda kv: _sort(kv[0]))]
        return Report(start, end, group, self.config.timezone, totals, rows, counters, clerks, hourly, heat,
                      notes=["Percentiles are nearest-rank. Matters with a promised completion time are "
                             "completed in the back office after the ticket; queuehall records their acceptance "
                             "and due date, not the back-office completion."])

    def _label(self, group: str, key: Any) -> dict[str, str]:
        if group == "service":
            s = self.config.service(str(key))
            return {"name_zh": s.name.zh, "name_en": s.name.en} if s else {}
        if group == "department":
            d = next((d for d in self.config.departments if d.code == key), None)
            return {"name_zh": d.name.zh, "name_en": d.name.en} if d else {}
        if group == "counter" and key is not None:
            c = self.config.counter(int(key))
            return {"name_zh": c.name.zh, "name_en": c.name.en} if c else {}
        if group == "clerk" and key is not None:
            c = self.config.clerk(str(key))
            return {"name_zh": c.name.zh, "name_en": c.name.en} if c else {}
        return {}


def _add_working_days(hours: OpeningHours, day: date, n: int) -> date:
    d = day
    while n > 0:
        d += timedelta(days=1)
        if (hours.periods_on(d) and d.weekday() < 5) or d in hours.hours.working_days:
            n -= 1
    return d


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(float(seconds) / 60.0, 2)


def _key(k: Any) -> Any:
    return k.isoformat() if isinstance(k, date) else k


def _sort(k: Any) -> tuple[int, Any]:
    return (1, "") if k is None else (0, k if not isinstance(k, date) else k.isoformat())


# ---------------------------------------------------------------- output formats

_COLUMNS = ("group", "name_zh", "visits", "called", "finished", "no_show", "transferred_out", "cancelled",
            "wait_avg_min", "wait_median_min", "wait_p90_min", "wait_max_min", "sla_share", "service_avg_min",
            "service_p90_min")


def to_table(rep: Report) -> str:
    """A readable table for the terminal."""
    t = rep.totals
    lines = [f"queuehall report {rep.start} – {rep.end} ({rep.timezone}), by {rep.group}", "",
             f"issued {t['issued']}  served {t['served']}  no-show {t['no_show']}  transferred {t['transferred']}  "
             f"cancelled {t['cancelled']}  voided {t['voided']}  still open {t['open']}",
             f"wait avg {t.get('wait_avg_min')} min  median {t.get('wait_median_min')}  p90 {t.get('wait_p90_min')}  "
             f"max {t.get('wait_max_min')}  within target {_pct(t.get('sla_share'))}",
             f"service avg {t.get('service_avg_min')} min  p90 {t.get('service_p90_min')}",
             f"same-day completion {_pct(t['same_day_rate'])} (target ≥ 80%: "
             f"{'met' if t['same_day_meets_target'] else 'NOT met' if t['same_day_rate'] is not None else '—'})",
             ""]
    widths = [max(len(c), *(len(_cell(r.get(c))) for r in rep.rows)) if rep.rows else len(c) for c in _COLUMNS]
    lines.append("  ".join(c.ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)))
    for r in rep.rows:
        lines.append("  ".join(_cell(r.get(c)).ljust(w) for c, w in zip(_COLUMNS, widths, strict=True)))
    lines += ["", "counter  open  busy  serving  idle  paused (by reason)"]
    for c in rep.counters:
        lines.append(f"{c['counter']:>7}  {c['open_min']:>5}  {c['busy_min']:>5}  {c['serving_min']:>7}  "
                     f"{c['idle_min']:>5}  {c['paused_min']} {c['paused_by_reason_min']}")
    lines += ["", "clerk  post  finished  no-show  service avg (min)"]
    for c in rep.clerks:
        lines.append(f"{c['clerk']} {c['name_zh']}  {c['post']}  {c['finished']}  {c['no_show']}  "
                     f"{c['service_avg_min']}")
    return "\n".join(lines) + "\n"


def _cell(v: Any) -> str:
    return "—" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


def to_csv(rep: Report) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["group", "name_zh", "name_en", *_COLUMNS[2:], "voided"],
                       extrasaction="ignore")
    w.writeheader()
    for r in rep.rows:
        w.writerow(r)
    return buf.getvalue()


def to_xlsx(rep: Report, path: str) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = f"by {rep.group}"
    cols = ["group", "name_zh", "name_en", *_COLUMNS[2:]]
    ws.append(cols)
    for r in rep.rows:
        ws.append([r.get(c) for c in cols])
    tot = wb.create_sheet("totals")
    for k, v in rep.totals.items():
        tot.append([k, json.dumps(v) if isinstance(v, dict) else v])
    cs = wb.create_sheet("counters")
    cs.append(["counter", "open_min", "busy_min", "serving_min", "idle_min", "paused_min", "paused_by_reason"])
    for c in rep.counters:
        cs.append([c["counter"], c["open_min"], c["busy_min"], c["serving_min"], c["idle_min"], c["paused_min"],
                   json.dumps(c["paused_by_reason_min"], ensure_ascii=False)])
    ks = wb.create_sheet("clerks")
    ks.append(["clerk", "name_zh", "post", "finished", "no_show", "service_avg_min"])
    for c in rep.clerks:
        ks.append([c["clerk"], c["name_zh"], c["post"], c["finished"], c["no_show"], c["service_avg_min"]])
    wb.save(path)


def charts(rep: Report, engine: Engine, config: HallConfig, out_dir: str) -> list[str]:
    """PNG charts: wait distribution per service, arrivals and served per hour, busy-hours heatmap."""
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    cjk = [f.name for f in font_manager.fontManager.ttflist
           if any(k in f.name for k in ("WenQuanYi", "Noto Sans CJK", "Noto Serif CJK"))]
    if cjk:
        plt.rcParams["font.family"] = [cjk[0], "DejaVu Sans"]
    paths = []
    waited = _wait_end().isnot(None)
    with engine.connect() as conn:
        rows = conn.execute(select(visits.c.service, _wait_seconds().label("w"))
                            .where(and_(visits.c.business_day >= rep.start, visits.c.business_day <= rep.end,
                                        waited))).all()
    by_service: dict[str, list[float]] = {}
    for r in rows:
        by_service.setdefault(r.service, []).append(r.w / 60.0)
    if by_service:
        names = {s.code: s.name.zh for s in config.services}
        order = sorted(by_service, key=lambda c: -len(by_service[c]))[:12]
        fig, ax = plt.subplots(figsize=(11, 0.5 * len(order) + 2))
        ax.boxplot([by_service[c] for c in order], vert=False, tick_labels=[names.get(c, c) for c in order],
                   showfliers=False)
        for i, c in enumerate(order, start=1):
            s = config.service(c)
            if s:
                ax.plot([s.target_wait_minutes], [i], "r|", markersize=14)
        ax.set_xlabel("等候时间（分钟） / wait (min) — red: target")
        ax.set_title(f"等候时间分布 Wait time by service {rep.start} – {rep.end}")
        fig.tight_layout()
        paths.append(str(Path(out_dir) / "wait_by_service.png"))
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    if rep.hourly:
        fig, ax = plt.subplots(figsize=(10, 4))
        hours = [h["hour"] for h in rep.hourly]
        ax.bar([h - 0.2 for h in hours], [h["arrivals"] for h in rep.hourly], width=0.4, label="取号 arrivals")
        ax.bar([h + 0.2 for h in hours], [h["served"] for h in rep.hourly], width=0.4, label="办结 served")
        ax.set_xticks(hours)
        ax.set_xlabel("时 hour")
        ax.set_title("每小时取号与办结 Arrivals and served per hour")
        ax.legend()
        fig.tight_layout()
        paths.append(str(Path(out_dir) / "per_hour.png"))
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    if rep.heatmap:
        grid = [[0] * 24 for _ in range(7)]
        for cell in rep.heatmap:
            grid[(cell["weekday"] + 6) % 7][cell["hour"]] = cell["arrivals"]  # Monday first
        hours_used = [h for h in range(24) if any(grid[d][h] for d in range(7))]
        lo, hi = (min(hours_used), max(hours_used)) if hours_used else (8, 17)
        fig, ax = plt.subplots(figsize=(10, 4))
        im = ax.imshow([row[lo:hi + 1] for row in grid], aspect="auto", cmap="YlOrRd")
        ax.set_yticks(range(7), ["一 Mon", "二 Tue", "三 Wed", "四 Thu", "五 Fri", "六 Sat", "日 Sun"])
        ax.set_xticks(range(hi - lo + 1), [str(h) for h in range(lo, hi + 1)])
        ax.set_title("繁忙时段 Busy hours by weekday (arrivals)")
        fig.colorbar(im)
        fig.tight_layout()
        paths.append(str(Path(out_dir) / "heatmap.png"))
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths


def register(sub: Any) -> None:
    """Add ``queuehall report`` and ``queuehall purge`` to the command line."""
    p = sub.add_parser("report", help="wait and service time reports from the database")
    p.add_argument("--db", default=None, help="SQLAlchemy URL (default: the local SQLite database)")
    p.add_argument("--config", default=None, help="hall configuration (default config/hall.toml)")
    p.add_argument("--day", default=None, help="one business day YYYY-MM-DD")
    p.add_argument("--from", dest="start", default=None, help="first business day YYYY-MM-DD")
    p.add_argument("--to", dest="end", default=None, help="last business day YYYY-MM-DD (default: --from)")
    p.add_argument("--group", default="service", choices=GROUPS)
    p.add_argument("--format", default="table", choices=["table", "csv", "json", "xlsx", "png"])
    p.add_argument("--out", default=None, help="output file (xlsx) or folder (png); default standard output")
    p.set_defaults(func=_report_main)
    p = sub.add_parser("purge", help="delete records older than the retention period")
    p.add_argument("--db", default=None)
    p.add_argument("--config", default=None)
    p.add_argument("--before", required=True, help="delete business days before YYYY-MM-DD")
    p.set_defaults(func=_purge_main)


def _period(args: Any) -> tuple[date, date]:
    try:
        if args.day:
            d = date.fromisoformat(args.day)
            return d, d
        if args.start:
            s = date.fromisoformat(args.start)
            return s, date.fromisoformat(args.end) if args.end else s
    except ValueError as err:
        raise SystemExit(f"queuehall report: bad date: {err}") from None
    raise SystemExit("queuehall report: give --day or --from [--to]")


def _open(args: Any) -> tuple[Engine, HallConfig]:
    from broker.config import DEFAULT_CONFIG, load_config
    from broker.storage import default_url, make_engine

    return make_engine(args.db or default_url()), load_config(args.config or DEFAULT_CONFIG)


def _report_main(args: Any) -> int:
    import sys

    start, end = _period(args)
    engine, config = _open(args)
    rep = ReportBuilder(engine, config).build(start, end, args.group)
    if args.format == "table":
        sys.stdout.write(to_table(rep))
    elif args.format == "csv":
        _write(args.out, to_csv(rep))
    elif args.format == "json":
        _write(args.out, json.dumps(rep.to_dict(), ensure_ascii=False, indent=2, default=str) + "\n")
    elif args.format == "xlsx":
        if not args.out:
            raise SystemExit("queuehall report: --format xlsx needs --out FILE.xlsx")
        to_xlsx(rep, args.out)
        print(args.out)
    else:
        for p in charts(rep, engine, config, args.out or "report-charts"):
            print(p)
    return 0


def _write(path: str | None, text: str) -> None:
    import sys

    if path:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def _purge_main(args: Any) -> int:
    from broker.storage import Store
    from queuehall.errors import HallError

    engine, config = _open(args)
    try:
        before = date.fromisoformat(args.before)
    except ValueError as err:
        raise SystemExit(f"queuehall purge: bad date: {err}") from None
    today = datetime.now(UTC).astimezone(ZoneInfo(config.timezone)).date()
    try:
        counts = Store(engine).purge(before, retention_days=config.retention_days, today=today)
    except HallError as err:
        print(json.dumps({"status": "error", "error": err.to_dict()}, ensure_ascii=False))
        return 1
    print(json.dumps({"status": "ok", "deleted": counts, "before": before.isoformat()}, ensure_ascii=False))
    return 0
