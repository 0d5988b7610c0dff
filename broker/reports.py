"""Reports on tickets, waits, service times, counters and clerks, computed as SQL aggregates.

Reads the database directly (a copy away from the hall works just as well) and never
talks to the broker. Every figure follows its definition in docs/reports.md; the code
that computes it names the section it implements. Change one, change the other.

Percentiles are nearest-rank (the value at rank ⌈p·n⌉ of the sorted sample), computed
in SQL (``row_number()`` on SQLite, ``percentile_disc`` on PostgreSQL), so both give the
same numbers; tests/test_reports.py checks every figure on both against plain Python.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from broker.config import HallConfig
from broker.hours import OpeningHours
from broker.storage import events, tickets, visits

GROUPS = ("service", "counter", "clerk", "department", "hour", "day")
FORMATS = ("table", "csv", "json", "xlsx", "png")
SAME_DAY_TARGET = 0.80  # 当天办结率要在80以上 (the hall's service rules)
OPEN_STATUSES = ("waiting", "called", "serving")
_COUNTER_EVENTS = ("counter_signed_in", "counter_signed_out", "counter_paused", "counter_resumed")

# Error codes of the report and purge commands: code -> (Chinese, English) with {placeholders}.
ERRORS: dict[str, tuple[str, str]] = {
    "REPORT_BAD_DATE": ("日期格式错误：{value}（应为 YYYY-MM-DD）", "Bad date {value!r}: expected YYYY-MM-DD"),
    "REPORT_NO_PERIOD": ("请用 --day 或 --from [--to] 指定统计期间", "Give the period with --day or --from [--to]"),
    "REPORT_BAD_PERIOD": ("统计期间有误：{detail}", "Bad period: {detail}"),
    "REPORT_BAD_GROUP": ("不能按“{group}”分组，可选：{choices}", "Cannot group by {group!r}; choose one of {choices}"),
    "REPORT_NEEDS_OUT": ("{format} 格式需要 --out 指定输出文件", "--format {format} needs --out FILE"),
    "REPORT_NO_DATABASE": ("数据库不存在：{path}", "No database at {path}"),
    "REPORT_DATABASE": ("无法读取数据库：{detail}", "Cannot read the database: {detail}"),
    "REPORT_CONFIG": ("配置文件有误：{detail}", "Bad hall configuration: {detail}"),
}


class ReportError(ValueError):
    """A report or purge request that cannot be carried out: stable ``code`` + bilingual message."""

    def __init__(self, code: str, **details: Any) -> None:
        zh, en = ERRORS[code]
        self.code = code
        self.details = details
        self.message_zh = zh.format(**details)
        self.message_en = en.format(**details)
        super().__init__(f"{code}: {self.message_en}")

    def to_dict(self) -> dict[str, Any]:
        """The error as the CLI prints it: code, both messages and the details."""
        return {"code": self.code, "message_zh": self.message_zh, "message_en": self.message_en,
                "details": {k: str(v) for k, v in self.details.items()}}


# ---------------------------------------------------------------- portable SQL pieces


class _Epoch(FunctionElement):
    """Seconds since an epoch of a naive-UTC timestamp (NULL stays NULL); only differences are meaningful."""

    type = Float()
    inherit_cache = True
    name = "qh_epoch"


@compiles(_Epoch, "sqlite")
def _epoch_sqlite(el: _Epoch, compiler: Any, **kw: Any) -> str:
    # julianday() counts whole milliseconds internally; times 86400 it is exact to ~30 µs.
    return f"(julianday({compiler.process(next(iter(el.clauses)), **kw)}) * 86400.0)"


@compiles(_Epoch, "postgresql")
def _epoch_pg(el: _Epoch, compiler: Any, **kw: Any) -> str:
    # date_part() is float8; EXTRACT() is numeric, several times slower over every visit of a month.
    return f"date_part('epoch', {compiler.process(next(iter(el.clauses)), **kw)})"


class _Diff(FunctionElement):
    """``end - start`` of two :class:`_Epoch` values, in seconds rounded to the millisecond.

    The rounding removes SQLite's floating-point noise, so a wait of exactly the target
    compares equal to it, and both databases give the same number.
    """

    type = Float()
    inherit_cache = True
    name = "qh_diff"


@compiles(_Diff, "sqlite")
def _diff_sqlite(el: _Diff, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in el.clauses)
    return f"ROUND(({end}) - ({start}), 3)"


@compiles(_Diff, "postgresql")
def _diff_pg(el: _Diff, compiler: Any, **kw: Any) -> str:
    start, end = (compiler.process(c, **kw) for c in el.clauses)
    return f"(ROUND((({end}) - ({start})) * 1000.0) / 1000.0)"  # round(float8) has no digits argument


class _LocalPart(FunctionElement):
    """The local hour (``part='hour'``) or weekday (0 = Sunday) of a naive-UTC timestamp at a fixed offset."""

    type = Integer()
    inherit_cache = False  # the offset and part are not clauses: never share a cached compilation
    name = "qh_local_part"

    def __init__(self, col: Any, offset_minutes: int, part: str) -> None:
        self.offset_minutes = offset_minutes
        self.part = part
        super().__init__(col)


@compiles(_LocalPart, "sqlite")
def _local_sqlite(el: _LocalPart, compiler: Any, **kw: Any) -> str:
    # Integer arithmetic on the stored text 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's fixed format):
    # exact, and several times cheaper than strftime() on every visit of a month.
    col = compiler.process(next(iter(el.clauses)), **kw)
    minute = (f"(CAST(substr({col}, 12, 2) AS INTEGER) * 60 + CAST(substr({col}, 15, 2) AS INTEGER)"
              f" + {int(el.offset_minutes)} + 1440)")  # local minute of the day, + 1440 (a day later)
    if el.part == "hour":
        return f"(({minute} % 1440) / 60)"
    # julianday('YYYY-MM-DD') + 1.5, truncated, mod 7 is the weekday with 0 = Sunday.
    return f"((CAST(julianday(substr({col}, 1, 10)) + 1.5 AS INTEGER) + {minute} / 1440 - 1) % 7)"


@compiles(_LocalPart, "postgresql")
def _local_pg(el: _LocalPart, compiler: Any, **kw: Any) -> str:
    part = "hour" if el.part == "hour" else "dow"
    col = compiler.process(next(iter(el.clauses)), **kw)
    return f"CAST(date_part('{part}', {col} + INTERVAL '{int(el.offset_minutes)} minutes') AS INTEGER)"


def offset_segments(tz: ZoneInfo, start: date, end: date) -> list[tuple[datetime | None, int]]:
    """The zone's UTC offsets (minutes) in force from ``start`` to ``end``: ``[(until_utc_naive, offset)]``.

    The last segment has ``until`` None. One segment for a zone without daylight saving time
    (Asia/Shanghai); a DST change inside the period starts a new segment at the exact minute.
    """
    def off(at: datetime) -> int:
        return int((at.astimezone(tz).utcoffset() or timedelta(0)).total_seconds() // 60)

    t = datetime.combine(start - timedelta(days=1), time(), tzinfo=UTC)
    stop = datetime.combine(end + timedelta(days=2), time(), tzinfo=UTC)
    segments: list[tuple[datetime | None, int]] = []
    current = off(t)
    while t < stop:
        nxt = t + timedelta(days=1)
        if off(nxt) != current:
            lo, hi = t, nxt  # the change is in (lo, hi]: bisect to the minute
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(second=0, microsecond=0)
                if mid <= lo:
                    break
                if off(mid) == current:
                    lo = mid
                else:
                    hi = mid
            segments.append((hi.replace(tzinfo=None), current))
            current = off(hi)
        t = nxt
    segments.append((None, current))
    return segments


def local_part(col: Any, tz: ZoneInfo, start: date, end: date, part: str) -> ColumnElement[Any]:
    """``col``'s local hour or weekday (0 = Sunday) in ``tz``, right across DST changes in the period."""
    segs = offset_segments(tz, start, end)
    if len(segs) == 1:
        return _LocalPart(col, segs[0][1], part)
    return case(*[(col < until, _LocalPart(col, off, part)) for until, off in segs[:-1]],
                else_=_LocalPart(col, segs[-1][1], part))


# ---------------------------------------------------------------- the report


@dataclass
class Report:
    """Everything one ``queuehall report`` run computed (figures defined in docs/reports.md)."""

    start: date
    end: date
    group: str
    timezone: str
    as_of: datetime
    tickets: dict[str, Any]
    completion: dict[str, Any]
    total: dict[str, Any]
    rows: list[dict[str, Any]]
    counters: list[dict[str, Any]]
    clerks: list[dict[str, Any]]
    hourly: list[dict[str, Any]] = field(default_factory=list)
    heatmap: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data (the ``--format json`` output)."""
        return {"period": {"from": self.start.isoformat(), "to": self.end.isoformat(), "timezone": self.timezone},
                "as_of": self.as_of.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "group": self.group, "tickets": self.tickets, "completion": self.completion,
                "total": self.total, "rows": self.rows, "counters": self.counters, "clerks": self.clerks,
                "hourly": self.hourly, "heatmap": self.heatmap, "notes": self.notes}


def _count(cond: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


# One row per visit of the period with everything the figures need, computed once (docs/reports.md
# "How it reads the database"): a TEMP table, so the stored times of a month of visits are parsed
# once, not once per figure (seconds on SQLite); a subquery where tables cannot be created (a
# read-only PostgreSQL replica).
FACTS = Table(
    "qh_report_facts", MetaData(),
    Column("ticket_id", Integer), Column("seq", Integer), Column("business_day", Date),
    Column("service", String), Column("counter", Integer), Column("clerk", String), Column("post", String),
    Column("outcome", String),
    Column("wait_s", Float),  # "Wait time": to the first call, a no-show's to its last; NULL if never called
    Column("first_wait_s", Float),  # to the first call (SLA); NULL if never called
    Column("service_s", Float),  # "Service time" of a served visit; NULL otherwise
    Column("busy_s", Float),  # first call to end (counter busy); NULL unless called and ended
    Column("elapsed_s", Float),  # never called, not voided: entry to end, or to now while waiting
    Column("target_s", Float),  # the service's target wait; NULL for a service no longer configured
    Column("last_activity", DateTime),  # end (or last call) of a called visit, for "Counter time"
    Column("hour_in", Integer), Column("dow_in", Integer),  # local hour and weekday of entry
    Column("hour_out", Integer),  # local hour of the end of a finished visit
    prefixes=["TEMPORARY"],
)


class ReportBuilder:
    """Computes a :class:`Report` for one period from a database."""

    def __init__(self, engine: Engine, config: HallConfig, *, materialize: bool | None = None) -> None:
        """``materialize``: put the period's visit facts in a TEMP table (default: where the database
        allows it) or compute them in every query (what a read-only PostgreSQL replica needs)."""
        self.engine = engine
        self.config = config
        self.materialize = materialize
        self.tz = ZoneInfo(config.timezone)
        self.hours = OpeningHours(config.hours, config.timezone)
        self._openings: dict[date, tuple[datetime, datetime] | None] = {}
        self._workdays: dict[date, bool] = {}
        self._offset: timedelta | None = None  # the period's one UTC offset, if it has only one

    # -- the facts --------------------------------------------------------------------------

    def facts_select(self, start: date, end: date, now: datetime) -> Select[Any]:
        """The visits of business days ``start``..``end`` as :data:`FACTS` rows (the definitions live here)."""
        v = visits.c
        now_db = now.astimezone(UTC).replace(tzinfo=None)
        targets = [(v.service == s.code, literal(s.target_wait_minutes * 60.0)) for s in self.config.services]
        called = v.first_called_at.isnot(None)
        inner = select(
            v.ticket_id, v.seq, v.business_day, v.service, v.counter, v.clerk, v.post, v.outcome,
            _Epoch(v.entered_at).label("je"), _Epoch(v.first_called_at).label("jf"),
            case((v.outcome == "no_show", _Epoch(v.last_called_at))).label("jl"),
            case((v.serving_at.isnot(None), _Epoch(v.serving_at))).label("js"),
            _Epoch(v.ended_at).label("jn"),
            (case(*targets, else_=literal(None)) if targets else literal(None)).label("target_s"),
            case((called, func.coalesce(v.ended_at, v.last_called_at))).label("last_activity"),
            local_part(v.entered_at, self.tz, start, end, "hour").label("hour_in"),
            local_part(v.entered_at, self.tz, start, end, "dow").label("dow_in"),
            case((v.outcome == "finished", local_part(v.ended_at, self.tz, start, end, "hour"))).label("hour_out"),
        ).where(and_(v.business_day >= start, v.business_day <= end))
        if self.engine.dialect.name == "sqlite":
            inner = inner.offset(0)  # not flattened: each timestamp is parsed once per visit
        j = inner.subquery("j")
        served = and_(j.c.js.isnot(None), j.c.outcome.in_(["finished", "transferred"]))
        uncalled = and_(j.c.jf.is_(None), or_(j.c.outcome.is_(None), j.c.outcome == "cancelled"))
        return select(
            j.c.ticket_id, j.c.seq, j.c.business_day, j.c.service, j.c.counter, j.c.clerk, j.c.post, j.c.outcome,
            _Diff(j.c.je, case((j.c.outcome == "no_show", j.c.jl), else_=j.c.jf)).label("wait_s"),
            _Diff(j.c.je, j.c.jf).label("first_wait_s"),
            case((served, _Diff(j.c.js, j.c.jn))).label("service_s"),
            _Diff(j.c.jf, j.c.jn).label("busy_s"),
            case((uncalled, _Diff(j.c.je, func.coalesce(j.c.jn, _Epoch(literal(now_db)))))).label("elapsed_s"),
            j.c.target_s, j.c.last_activity, j.c.hour_in, j.c.dow_in, j.c.hour_out)

    def _facts(self, conn: Any, start: date, end: date, now: datetime) -> Any:
        """:data:`FACTS` filled for the period, or the equivalent subquery where tables cannot be created."""
        q = self.facts_select(start, end, now)
        dialect = conn.dialect.name
        if dialect == "postgresql":
            # Sorts and the TEMP table of a month of visits in memory, not in temporary files.
            conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql("SET LOCAL temp_buffers = '64MB'")
            except DBAPIError:
                pass  # refused once a session has used temporary tables (a pooled connection): keep its size
        if not self._materialize(conn):
            return q.subquery("f")
        if dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA temp_store = MEMORY")
            conn.exec_driver_sql("DROP TABLE IF EXISTS temp.qh_report_facts")  # left by an interrupted report
        FACTS.create(conn)
        conn.execute(insert(FACTS).from_select([c.name for c in FACTS.c], q))
        return FACTS

    def _materialize(self, conn: Any) -> bool:
        if self.materialize is not None:
            return self.materialize
        if conn.dialect.name == "sqlite":
            return True
        if conn.dialect.name == "postgresql":  # a hot standby (read-only replica) cannot create tables
            return not conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar()
        return False

    # -- grouping ---------------------------------------------------------------------------

    def group_expr(self, f: Any, group: str) -> ColumnElement[Any]:
        """The expression over the facts ``f`` a visit is grouped by (docs/reports.md "Groupings")."""
        if group in ("service", "counter", "clerk"):
            return f.c[group]
        if group == "day":
            return f.c.business_day
        if group == "hour":
            return f.c.hour_in
        if group == "department":
            whens = [(f.c.service == s.code, literal(s.department)) for s in self.config.services]
            return case(*whens, else_=literal("?")) if whens else literal("?")
        raise ReportError("REPORT_BAD_GROUP", group=group, choices=", ".join(GROUPS))

    # -- visit figures ----------------------------------------------------------------------

    def _visit_figures(self, conn: Any, f: Any, group: ColumnElement[Any]
                       ) -> tuple[dict[Any, dict[str, Any]], dict[str, Any]]:
        """docs/reports.md "Visit figures", "Wait time", "Service time" and "Within target (SLA)":
        the rows per group, and the ``all`` row."""
        called = f.c.first_wait_s.isnot(None)
        counts = {
            "visits": func.count(), "issued": _count(f.c.seq == 1), "called": _count(called),
            "served": _count(f.c.service_s.isnot(None)),
            **{k: _count(f.c.outcome == o) for k, o in (("finished", "finished"), ("no_show", "no_show"),
                                                        ("transferred_out", "transferred"),
                                                        ("cancelled", "cancelled"), ("voided", "voided"))},
            "open": _count(f.c.outcome.is_(None)),
            "sla_within": _count(f.c.first_wait_s <= f.c.target_s),
            # Called, or not called after waiting longer than the target (cancelled, or still waiting).
            "sla_counted": _count(and_(f.c.target_s.isnot(None), or_(called, f.c.elapsed_s > f.c.target_s))),
        }
        sums = {"wait_sum": func.sum(f.c.wait_s), "wait_n": func.count(f.c.wait_s), "wait_max": func.max(f.c.wait_s),
                "service_sum": func.sum(f.c.service_s), "service_n": func.count(f.c.service_s)}
        q = select(group.label("g"), *(e.label(k) for k, e in {**counts, **sums}.items())).group_by(group)
        raw = {r.g: r._asdict() for r in conn.execute(q)}
        total: dict[str, Any] = {k: sum(r[k] for r in raw.values()) for k in (*counts, "wait_n", "service_n")}
        total["wait_sum"] = sum(float(r["wait_sum"] or 0) for r in raw.values())
        total["service_sum"] = sum(float(r["service_sum"] or 0) for r in raw.values())
        total["wait_max"] = max((r["wait_max"] for r in raw.values() if r["wait_max"] is not None), default=None)
        # Percentiles: the value at rank ⌈p·n⌉ (docs/reports.md "Percentiles"), n from the counts above.
        wait = self._ranked(conn, f, group, f.c.wait_s, {k: r["wait_n"] for k, r in raw.items()},
                            total["wait_n"], ((1, 2), (9, 10)))
        service = self._ranked(conn, f, group, f.c.service_s, {k: r["service_n"] for k, r in raw.items()},
                               total["service_n"], ((9, 10),))

        def pct(key: Any) -> dict[str, Any]:
            w, s = wait.get(key, {}), service.get(key, {})
            return {"w50": w.get((1, 2)), "w90": w.get((9, 10)), "s90": s.get((9, 10))}

        return {k: _row(r, pct(("g", k))) for k, r in raw.items()}, _row(total, pct(None))

    def _ranked(self, conn: Any, f: Any, group: ColumnElement[Any], value: Any, n: dict[Any, int], n_all: int,
                ps: tuple[tuple[int, int], ...]) -> dict[Any, dict[tuple[int, int], Any]]:
        """Nearest-rank percentiles ``ps`` (fractions a/b) of ``value``, per group and over all, in SQL:
        ``row_number()`` over the sorted values picks the value at rank ⌈n·a/b⌉ = (n·a + b − 1) / b.
        Returns ``{("g", key): {p: value}, None: {p: value}}``."""
        def rank(count: int, p: tuple[int, int]) -> int:
            return (count * p[0] + p[1] - 1) // p[1]

        out: dict[Any, dict[tuple[int, int], Any]] = {None: {}}
        if not n_all:
            return out
        if conn.dialect.name == "postgresql":
            return self._ranked_pg(conn, group, value, ps)
        want: dict[tuple[Any, int], list[tuple[int, int]]] = {}  # (group, rank) -> percentiles at that rank
        for key, count in n.items():
            for p in ps:
                if count:
                    want.setdefault((key, rank(count, p)), []).append(p)
        want_all: dict[int, list[tuple[int, int]]] = {}
        for p in ps:
            want_all.setdefault(rank(n_all, p), []).append(p)  # small n: p50 and p90 can be the same rank
        inner = select(group.label("g"), value.label("v"),
                       func.row_number().over(partition_by=group, order_by=value).label("r"),
                       func.row_number().over(order_by=value).label("a")).where(value.isnot(None)).subquery()
        q = select(inner.c.g, inner.c.v, inner.c.r, inner.c.a).where(
            or_(inner.c.r.in_(sorted({r for _, r in want})), inner.c.a.in_(sorted(want_all))))
        for row in conn.execute(q):
            for p in want.get((row.g, row.r), ()):
                out.setdefault(("g", row.g), {})[p] = row.v
            for p in want_all.get(row.a, ()):
                out[None][p] = row.v
        return out

    @staticmethod
    def _ranked_pg(conn: Any, group: ColumnElement[Any], value: Any, ps: tuple[tuple[int, int], ...]
                   ) -> dict[Any, dict[tuple[int, int], Any]]:
        """PostgreSQL: ``percentile_disc`` is nearest-rank and sorts each group apart (several times
        faster than a window over the month). It takes ⌈p·n⌉ in floating point, where 0.9·70 is
        63.000…01: asking for p − 10⁻¹² gives the exact rank for any n below 10¹¹."""
        from sqlalchemy.dialects.postgresql import array

        pct = func.percentile_disc(array([literal(a / b - 1e-12) for a, b in ps])).within_group(value)
        q = (select(group.label("g"), func.grouping(group).label("all"), pct.label("v"))
             .where(value.isnot(None)).group_by(func.grouping_sets(tuple_(group), tuple_())))
        out: dict[Any, dict[tuple[int, int], Any]] = {None: {}}
        for row in conn.execute(q):
            out[None if row.all else ("g", row.g)] = dict(zip(ps, row.v, strict=True))
        return out

    # -- ticket figures ---------------------------------------------------------------------

    def _ticket_figures(self, conn: Any, f: Any, start: date, end: date) -> dict[str, int]:
        """docs/reports.md "Ticket figures": each ticket once, by its final status, on its issue day."""
        period = and_(tickets.c.business_day >= start, tickets.c.business_day <= end)
        row = conn.execute(select(
            func.count().label("issued"),
            _count(tickets.c.status == "finished").label("served"),
            _count(tickets.c.status == "no_show").label("no_show"),
            _count(tickets.c.status == "cancelled").label("cancelled"),
            _count(tickets.c.status == "voided").label("voided"),
            _count(tickets.c.status.in_(OPEN_STATUSES)).label("open"),
        ).where(period)).one()
        transferred = conn.execute(select(func.count(func.distinct(f.c.ticket_id)))
                                   .where(f.c.outcome == "transferred")).scalar() or 0
        return {"issued": row.issued, "served": row.served, "no_show": row.no_show,
                "cancelled": row.cancelled, "voided": row.voided, "open": row.open, "transferred": transferred}

    def _completion(self, conn: Any, f: Any, start: date, end: date, served: int, as_of: date
                    ) -> dict[str, Any]:
        """docs/reports.md "Same-day completion" and "Promised completion"."""
        promised = {s.code: s.promised_days for s in self.config.services if s.promised_days > 0}
        period = and_(tickets.c.business_day >= start, tickets.c.business_day <= end)
        accepted = 0
        past_due = 0
        if promised:
            # Per ticket of the period (its first visit is in it): finished (only its last visit can be) and
            # the longest promise among its served visits. Grouping the facts by ticket needs no join with
            # the tickets table, which PostgreSQL would do as a month of index lookups.
            days = case(*[(and_(f.c.service == code, f.c.service_s.isnot(None)), literal(n))
                          for code, n in promised.items()], else_=literal(0))
            per_ticket = (select(func.min(f.c.business_day).label("day"), func.max(days).label("days"))
                          .group_by(f.c.ticket_id)
                          .having(and_(func.max(case((f.c.seq == 1, 1), else_=0)) == 1,
                                       func.max(case((f.c.outcome == "finished", 1), else_=0)) == 1,
                                       func.max(days) > 0)).subquery())
            rows = conn.execute(select(per_ticket.c.day, per_ticket.c.days, func.count().label("n"))
                                .group_by(per_ticket.c.day, per_ticket.c.days)).all()
            for r in rows:
                accepted += r.n
                if self.due_date(_as_date(r.day), int(r.days)) < as_of:
                    past_due += r.n
        on_the_spot = [s.code for s in self.config.services if s.promised_days == 0]
        unfinished = 0
        if on_the_spot:
            unfinished = conn.execute(select(func.count()).select_from(tickets).where(and_(
                period, tickets.c.business_day < as_of, tickets.c.queue_service.in_(on_the_spot),
                tickets.c.status.in_(OPEN_STATUSES)))).scalar() or 0
        same_day = served - accepted
        rate = round(same_day / served, 4) if served else None
        return {"served": served, "same_day_completed": same_day, "same_day_rate": rate,
                "same_day_target": SAME_DAY_TARGET,
                "same_day_meets_target": (same_day / served >= SAME_DAY_TARGET) if served else None,
                "promised_accepted": accepted, "promised_past_due": past_due,
                "on_the_spot_unfinished": unfinished}

    def due_date(self, accepted: date, working_days: int) -> date:
        """The promised completion date: ``working_days`` working days after the day of acceptance."""
        d = accepted
        n = working_days
        while n > 0:
            d += timedelta(days=1)
            if self.is_working_day(d):
                n -= 1
        return d

    def is_working_day(self, d: date) -> bool:
        """A statutory working day (工作日) for promised time limits; docs/reports.md "Promised completion".

        Monday–Friday except statutory holidays, plus make-up working days (调休), from the
        ``chinesecalendar`` package when the hall uses it (Monday–Friday for years it does
        not cover); the hall's own ``closed_days`` are never working days and its
        ``working_days`` always are.
        """
        if d not in self._workdays:  # chinesecalendar's lookup is slow; due dates ask for the same days
            self._workdays[d] = self._is_working_day(d)
        return self._workdays[d]

    def _is_working_day(self, d: date) -> bool:
        h = self.config.hours
        if d in h.closed_days:
            return False
        if d in h.working_days:
            return True
        if h.chinese_calendar:
            import chinese_calendar

            try:
                return bool(chinese_calendar.is_workday(d))
            except NotImplementedError:
                pass
        return d.weekday() < 5

    # -- counters ---------------------------------------------------------------------------

    def _opening(self, day: date) -> tuple[datetime, datetime] | None:
        """The day's first opening and last closing time (UTC), or None when the hall is closed."""
        if day not in self._openings:  # the holiday lookup is slow and asked once per counter state
            periods = self.hours.periods_on(day)
            self._openings[day] = None if not periods else (
                datetime.combine(day, periods[0].start, tzinfo=self.tz).astimezone(UTC),
                datetime.combine(day, periods[-1].end, tzinfo=self.tz).astimezone(UTC))
        return self._openings[day]

    def _day(self, at: datetime) -> date:
        """The business day of ``at`` (aware UTC); with one UTC offset for the period, without zoneinfo."""
        if self._offset is not None:
            return (at + self._offset).date()
        return self.hours.business_day(at)

    def _split(self, since: datetime, until: datetime, by_event: bool, first_day: date, last_day: date,
               activity: dict[date, datetime]) -> list[tuple[date, float]]:
        """docs/reports.md "Counter time": the seconds of one counter state, per business day.

        ``until`` is the counter's next event (``by_event``) or the report's ``now``.
        ``activity`` maps a day to the end of the counter's last ticket that day. Only days
        ``first_day``..``last_day`` are returned.
        """
        if until <= since:
            return []
        d0, d1 = self._day(since), self._day(until)
        if d0 == d1 and by_event:  # the usual case: two events of one day
            return [(d0, (until - since).total_seconds())] if first_day <= d0 <= last_day else []
        out: list[tuple[date, float]] = []
        d = max(d0, first_day)
        while d <= min(d1, last_day):
            hours = self._opening(d)
            begin = since if d == d0 else hours[0] if hours else None
            if begin is not None:
                if d == d1 and by_event:  # ended by the counter's own event that day: all of it
                    stop = until
                else:  # still on at the end of the day: up to closing or its last ticket's end
                    ends = [t for t in (hours[1] if hours else None, activity.get(d)) if t is not None]
                    stop = min(until, max(ends)) if ends else begin
                out.append((d, max(0.0, (stop - begin).total_seconds())))
            d += timedelta(days=1)
        return out

    def _counter_time(self, conn: Any, f: Any, start: date, end: date, now: datetime) -> list[dict[str, Any]]:
        """docs/reports.md "Counter time": open, paused by reason, busy, serving and idle, per counter."""
        kinds = events.c.type.in_(_COUNTER_EVENTS)
        cols = (events.c.seq, events.c.counter, events.c.type, events.c.at, events.c.data)
        # Each counter's state as the period begins: its last counter event before it.
        last = (select(func.max(events.c.seq)).where(and_(kinds, events.c.business_day < start))
                .group_by(events.c.counter).subquery())
        rows = conn.execute(select(*cols).where(events.c.seq.in_(select(last.c[0])))).all()
        rows += conn.execute(select(*cols).where(and_(kinds, events.c.business_day >= start,
                                                      events.c.business_day <= end))).all()
        rows.sort(key=lambda r: r[0])
        activity: dict[int, dict[date, datetime]] = {}
        busy: dict[int, list[float]] = {}
        for r in conn.execute(
                select(f.c.counter, f.c.business_day, func.sum(f.c.busy_s).label("busy"),
                       func.sum(f.c.service_s).label("serving"), func.max(f.c.last_activity).label("last"))
                .where(and_(f.c.counter.isnot(None), f.c.first_wait_s.isnot(None)))
                .group_by(f.c.counter, f.c.business_day)):
            activity.setdefault(r.counter, {})[_as_date(r.business_day)] = _as_utc(r.last)
            b = busy.setdefault(r.counter, [0.0, 0.0])
            b[0] += float(r.busy or 0)
            b[1] += float(r.serving or 0)
        segments = offset_segments(self.tz, start, end)
        self._offset = timedelta(minutes=segments[0][1]) if len(segments) == 1 else None
        acc: dict[int, dict[str, Any]] = {}
        state: dict[int, tuple[str, datetime, str | None]] = {}  # counter -> (open|paused, since, reason)

        def close(counter: int, until: datetime, by_event: bool) -> None:
            prev = state.get(counter)
            if prev is None:
                return
            a = acc[counter]
            for _day, seconds in self._split(prev[1], until, by_event, start, end, activity.get(counter, {})):
                if prev[0] == "open":
                    a["open_s"] += seconds
                else:
                    a["paused_s"][prev[2] or "?"] = a["paused_s"].get(prev[2] or "?", 0.0) + seconds

        for _seq, counter, type_, at_db, data in rows:
            if counter is None:
                continue
            if counter not in acc:
                acc[counter] = {"open_s": 0.0, "paused_s": {}}
            at = _as_utc(at_db)
            prev = state.get(counter)
            close(counter, at, True)
            if type_ == "counter_signed_out":
                state.pop(counter, None)
            elif type_ == "counter_paused":
                state[counter] = ("paused", at, json.loads(data).get("reason"))
            elif type_ == "counter_signed_in" and prev is not None and prev[0] == "paused":
                state[counter] = ("paused", at, prev[2])  # a takeover keeps the pause
            else:  # signed in, or resumed
                state[counter] = ("open", at, None)
        for counter in list(state):
            close(counter, now, False)
        out = []
        for counter in sorted(set(acc) | set(busy)):
            a = acc.get(counter, {"open_s": 0.0, "paused_s": {}})
            b, s = busy.get(counter, (0.0, 0.0))
            if not (a["open_s"] or any(a["paused_s"].values()) or b):
                continue  # e.g. left paused over a holiday: nothing happened here in the period
            cfg = self.config.counter(counter)
            out.append({"counter": counter, "name_zh": cfg.name.zh if cfg else None,
                        "open_min": _minutes(a["open_s"]), "busy_min": _minutes(b), "serving_min": _minutes(s),
                        "idle_min": _minutes(max(0.0, a["open_s"] - b)),
                        "paused_min": _minutes(sum(a["paused_s"].values())),
                        "paused_by_reason_min": {k: _minutes(v) for k, v in sorted(a["paused_s"].items())}})
        return out

    # -- clerks, hours ----------------------------------------------------------------------

    def _clerks(self, conn: Any, f: Any) -> list[dict[str, Any]]:
        """docs/reports.md "Clerks": called, served and finished visits, and service time, per clerk and post."""
        q = (select(f.c.clerk, f.c.post, func.count().label("called"),
                    _count(f.c.service_s.isnot(None)).label("served"),
                    _count(f.c.outcome == "finished").label("finished"),
                    _count(f.c.outcome == "no_show").label("no_show"),
                    func.avg(f.c.service_s).label("service_avg"))
             .where(and_(f.c.clerk.isnot(None), f.c.first_wait_s.isnot(None)))
             .group_by(f.c.clerk, f.c.post).order_by(f.c.clerk, f.c.post))
        names = {c.id: c.name for c in self.config.clerks}
        return [{"clerk": r.clerk, "name_zh": names[r.clerk].zh if r.clerk in names else r.clerk,
                 "post": r.post, "called": r.called, "served": r.served, "finished": r.finished,
                 "no_show": r.no_show, "service_avg_min": _minutes(r.service_avg)} for r in conn.execute(q)]

    def _hourly(self, conn: Any, f: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """docs/reports.md "Per hour and busy hours": tickets issued (first visits) by local weekday and hour
        of issue, and visits finished by local hour of their end."""
        arrivals: dict[int, int] = {}
        served: dict[int, int] = {}
        heat: dict[tuple[int, int], int] = {}
        for r in conn.execute(select(f.c.dow_in, f.c.hour_in, f.c.hour_out,
                                     _count(f.c.seq == 1).label("issued"),
                                     _count(f.c.outcome == "finished").label("finished"))
                              .group_by(f.c.dow_in, f.c.hour_in, f.c.hour_out)):
            if r.issued:
                arrivals[r.hour_in] = arrivals.get(r.hour_in, 0) + r.issued
                heat[(r.dow_in, r.hour_in)] = heat.get((r.dow_in, r.hour_in), 0) + r.issued
            if r.finished:
                served[r.hour_out] = served.get(r.hour_out, 0) + r.finished
        hourly = [{"hour": h, "arrivals": arrivals.get(h, 0), "served": served.get(h, 0)}
                  for h in sorted(set(arrivals) | set(served))]
        return hourly, [{"weekday": d, "hour": h, "arrivals": n} for (d, h), n in sorted(heat.items())]

    def wait_samples(self, start: date, end: date) -> dict[str, list[float]]:
        """Every visit's wait in minutes (docs/reports.md "Wait time"), per service, sorted: the data of
        the wait-distribution chart."""
        f = self.facts_select(start, end, datetime.now(UTC)).subquery()
        with self.engine.connect() as conn:
            rows = conn.execute(select(f.c.service, f.c.wait_s).where(f.c.wait_s.isnot(None))).all()
        out: dict[str, list[float]] = {}
        for r in rows:
            out.setdefault(r.service, []).append(float(r.wait_s) / 60.0)
        return {k: sorted(v) for k, v in sorted(out.items())}

    # -- the whole report -------------------------------------------------------------------

    def build(self, start: date, end: date, group: str = "service", now: datetime | None = None) -> Report:
        """The report for business days ``start``..``end`` (inclusive), rows grouped by ``group``.

        ``now`` (aware; default the system clock) is the moment the report describes: open
        counters count up to it, tickets still waiting have waited until it, and it decides
        which promised dates have passed. Raises :class:`ReportError` for an unknown group
        or a period that ends before it starts. Reads only; on SQLite it fills a TEMP table.
        """
        if group not in GROUPS:
            raise ReportError("REPORT_BAD_GROUP", group=group, choices=", ".join(GROUPS))
        if end < start:
            raise ReportError("REPORT_BAD_PERIOD", detail=f"{end.isoformat()} is before {start.isoformat()}")
        now = now or datetime.now(UTC)
        as_of = self.hours.business_day(now)
        with self.engine.connect() as conn:
            f: Any = None
            try:
                f = self._facts(conn, start, end, now)
                ticket_figures = self._ticket_figures(conn, f, start, end)
                completion = self._completion(conn, f, start, end, ticket_figures["served"], as_of)
                grouped, total = self._visit_figures(conn, f, self.group_expr(f, group))
                counters = self._counter_time(conn, f, start, end, now)
                clerks = self._clerks(conn, f)
                hourly, heat = self._hourly(conn, f)
            finally:
                conn.rollback()  # nothing to keep; on PostgreSQL this also drops the TEMP table
                if f is FACTS and conn.dialect.name == "sqlite":  # pysqlite ran the CREATE outside it
                    conn.exec_driver_sql("DROP TABLE IF EXISTS temp.qh_report_facts")
        rows = [{"group": _key(k), **self._label(group, k), **v}
                for k, v in sorted(grouped.items(), key=lambda kv: _sort(kv[0]))]
        return Report(start, end, group, self.config.timezone, now, ticket_figures, completion,
                      {"group": "all", **total}, rows, counters, clerks, hourly, heat,
                      notes=["Percentiles are nearest-rank.",
                             "Matters with a promised completion time are completed in the back office after "
                             "the ticket; queuehall records their acceptance and due date, not their completion."])

    def _label(self, group: str, key: Any) -> dict[str, str | None]:
        thing: Any = None
        if key is not None:
            if group == "service":
                thing = self.config.service(str(key))
            elif group == "department":
                thing = self.config.department(str(key))
            elif group == "counter":
                thing = self.config.counter(int(key))
            elif group == "clerk":
                thing = self.config.clerk(str(key))
        if thing is None:
            return {"name_zh": None, "name_en": None}
        return {"name_zh": thing.name.zh, "name_en": thing.name.en}


def _row(r: dict[str, Any], pct: dict[str, Any]) -> dict[str, Any]:
    """A row of visit figures from the SQL counts and sums of one group (or of all) and its percentiles."""
    return {
        **{k: int(r[k]) for k in ("visits", "issued", "called", "served", "finished", "no_show", "transferred_out",
                                   "cancelled", "voided", "open")},
        "wait_avg_min": _minutes(float(r["wait_sum"]) / r["wait_n"]) if r["wait_n"] else None,
        "wait_median_min": _minutes(pct.get("w50")), "wait_p90_min": _minutes(pct.get("w90")),
        "wait_max_min": _minutes(r["wait_max"]),
        "sla_within": int(r["sla_within"]), "sla_counted": int(r["sla_counted"]),
        "sla_share": round(r["sla_within"] / r["sla_counted"], 4) if r["sla_counted"] else None,
        "service_avg_min": _minutes(float(r["service_sum"]) / r["service_n"]) if r["service_n"] else None,
        "service_p90_min": _minutes(pct.get("s90")),
    }


def _as_date(v: Any) -> date:
    # A label over a subquery loses the Date type on SQLite: the value comes back as text.
    return v if isinstance(v, date) else date.fromisoformat(str(v))


def _as_utc(v: Any) -> datetime:
    # Naive UTC from the database (text on SQLite when an aggregate drops the column type).
    d = v if isinstance(v, datetime) else datetime.fromisoformat(str(v))
    return d.replace(tzinfo=UTC)


def _minutes(seconds: Any) -> float | None:
    return None if seconds is None else round(float(seconds) / 60.0, 2)


def _key(k: Any) -> Any:
    return k.isoformat() if isinstance(k, date) else k


def _sort(k: Any) -> tuple[int, Any]:
    return (1, "") if k is None else (0, k.isoformat() if isinstance(k, date) else k)


# ---------------------------------------------------------------- output formats

ROW_FIGURES = ("visits", "issued", "called", "served", "finished", "no_show", "transferred_out", "cancelled",
               "voided", "open", "wait_avg_min", "wait_median_min", "wait_p90_min", "wait_max_min", "sla_within",
               "sla_counted", "sla_share", "service_avg_min", "service_p90_min")
ROW_COLUMNS = ("group", "name_zh", "name_en", *ROW_FIGURES)
_TABLE_COLUMNS = ("group", "name_zh", "visits", "called", "served", "finished", "no_show", "transferred_out",
                  "cancelled", "wait_avg_min", "wait_median_min", "wait_p90_min", "wait_max_min", "sla_share",
                  "service_avg_min", "service_p90_min")
_TABLE_HEADINGS = ("group", "name", "visits", "called", "served", "finished", "no-show", "transf.", "cancel.",
                   "wait avg", "median", "p90", "max", "in SLA", "svc avg", "svc p90")
COUNTER_COLUMNS = ("counter", "name_zh", "open_min", "busy_min", "serving_min", "idle_min", "paused_min",
                   "paused_by_reason_min")
CLERK_COLUMNS = ("clerk", "name_zh", "post", "called", "served", "finished", "no_show", "service_avg_min")


def _width(s: str) -> int:
    """Terminal columns of ``s``: CJK characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s)


def _pad(s: str, width: int, right: bool = False) -> str:
    gap = " " * max(0, width - _width(s))
    return gap + s if right else s + gap


def _grid(headings: list[str], rows: list[list[str]], numeric_from: int) -> list[str]:
    widths = [max(_width(h), *(_width(r[i]) for r in rows)) if rows else _width(h) for i, h in enumerate(headings)]
    lines = ["  ".join(_pad(h, w, i >= numeric_from) for i, (h, w) in enumerate(zip(headings, widths, strict=True)))]
    lines += ["  ".join(_pad(c, w, i >= numeric_from) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
              for r in rows]
    return lines


def to_table(rep: Report) -> str:
    """The report as a readable text table for the terminal (times in minutes)."""
    t, c, a = rep.tickets, rep.completion, rep.total
    meets = {None: "—", True: "met 达标", False: "NOT met 未达标"}[c["same_day_meets_target"]]
    lines = [f"queuehall report 统计报表 {rep.start} – {rep.end} ({rep.timezone}), by {rep.group}", "",
             f"tickets 号票: issued {t['issued']}  served {t['served']}  no-show {t['no_show']}  "
             f"transferred {t['transferred']}  cancelled {t['cancelled']}  voided {t['voided']}  open {t['open']}",
             f"wait 等候 (min): avg {_cell(a['wait_avg_min'])}  median {_cell(a['wait_median_min'])}  "
             f"p90 {_cell(a['wait_p90_min'])}  max {_cell(a['wait_max_min'])}  "
             f"within target {_pct(a['sla_share'])} ({a['sla_within']}/{a['sla_counted']})",
             f"service 办理 (min): avg {_cell(a['service_avg_min'])}  p90 {_cell(a['service_p90_min'])}",
             f"same-day completion 当天办结率 {_pct(c['same_day_rate'])} ({c['same_day_completed']}/{c['served']}; "
             f"target ≥ {SAME_DAY_TARGET:.0%}: {meets})",
             f"promised matters 限时办结: accepted {c['promised_accepted']}  past due date {c['promised_past_due']}  "
             f"on-the-spot matters left unfinished {c['on_the_spot_unfinished']}", ""]
    body = [[_cell(r.get(k)) if k != "sla_share" else _pct(r.get(k)) for k in _TABLE_COLUMNS]
            for r in [*rep.rows, rep.total]]
    lines += _grid(list(_TABLE_HEADINGS), body, 2)
    if rep.counters:
        lines += ["", "counters 窗口 (min)"]
        lines += _grid(["counter", "name", "open", "busy", "serving", "idle", "paused", "paused by reason"],
                       [[str(x["counter"]), x["name_zh"] or "—", _cell(x["open_min"]), _cell(x["busy_min"]),
                         _cell(x["serving_min"]), _cell(x["idle_min"]), _cell(x["paused_min"]),
                         ", ".join(f"{k} {_cell(v)}" for k, v in x["paused_by_reason_min"].items()) or "—"]
                        for x in rep.counters], 2)
    if rep.clerks:
        lines += ["", "clerks 工作人员"]
        lines += _grid(["clerk", "name", "post", "called", "served", "finished", "no-show", "svc avg"],
                       [[x["clerk"], x["name_zh"], x["post"] or "—", str(x["called"]), str(x["served"]),
                         str(x["finished"]), str(x["no_show"]), _cell(x["service_avg_min"])] for x in rep.clerks], 3)
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _cell(v: Any) -> str:
    return "—" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


def to_csv(rep: Report) -> str:
    """The grouped rows and a last ``all`` row as CSV (UTF-8, header line, times in minutes)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(ROW_COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in [*rep.rows, rep.total]:
        w.writerow(r)
    return buf.getvalue()


def to_xlsx(rep: Report, path: str) -> None:
    """An Excel workbook: sheets by-group (rows + all), summary, counters, clerks and per-hour."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = f"by {rep.group}"
    ws.append(list(ROW_COLUMNS))
    for r in [*rep.rows, rep.total]:
        ws.append([r.get(c) for c in ROW_COLUMNS])
    summary = wb.create_sheet("summary")
    summary.append(["period", f"{rep.start.isoformat()} – {rep.end.isoformat()}"])
    summary.append(["timezone", rep.timezone])
    for k, v in [*rep.tickets.items(), *rep.completion.items()]:
        summary.append([k, v])
    cs = wb.create_sheet("counters")
    cs.append(list(COUNTER_COLUMNS))
    for c in rep.counters:
        cs.append([json.dumps(c[k], ensure_ascii=False) if isinstance(c[k], dict) else c[k] for k in COUNTER_COLUMNS])
    ks = wb.create_sheet("clerks")
    ks.append(list(CLERK_COLUMNS))
    for c in rep.clerks:
        ks.append([c[k] for k in CLERK_COLUMNS])
    hs = wb.create_sheet("per hour")
    hs.append(["hour", "arrivals", "served"])
    for h in rep.hourly:
        hs.append([h["hour"], h["arrivals"], h["served"]])
    wb.save(path)


def charts(rep: Report, engine: Engine, config: HallConfig, out_dir: str) -> list[str]:
    """PNG charts in ``out_dir``: wait distribution per service, arrivals and served per hour, busy-hours
    heatmap by weekday. Returns the paths written (a chart with no data is skipped)."""
    from pathlib import Path

    from matplotlib import font_manager, rc_context
    from matplotlib.figure import Figure  # not pyplot: no global state, no GUI backend, safe in any thread

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    cjk = [f.name for f in font_manager.fontManager.ttflist
           if any(k in f.name for k in ("WenQuanYi", "Noto Sans CJK", "Noto Serif CJK", "Source Han"))]
    with rc_context({"font.family": [cjk[0], "DejaVu Sans"]} if cjk else {}):
        return _draw(rep, engine, config, Path(out_dir), Figure)


def _draw(rep: Report, engine: Engine, config: HallConfig, out: Any, figure: Any) -> list[str]:
    paths = []
    by_service = ReportBuilder(engine, config).wait_samples(rep.start, rep.end)
    if by_service:
        names = {s.code: s.name.zh for s in config.services}
        order = sorted(by_service, key=lambda c: -len(by_service[c]))[:12][::-1]  # busiest on top
        fig = figure(figsize=(11, 0.5 * len(order) + 2))
        ax = fig.subplots()
        ax.boxplot([by_service[c] for c in order], orientation="horizontal",
                   tick_labels=[f"{names.get(c, c)} (n={len(by_service[c])})" for c in order],
                   whis=(10, 90), showfliers=False)
        for i, c in enumerate(order, start=1):
            s = config.service(c)
            if s:
                ax.plot([s.target_wait_minutes], [i], "r|", markersize=16, markeredgewidth=2)
        ax.set_xlabel("等候时间（分钟） wait (min) — box: quartiles, whiskers: 10th–90th percentile, red: target")
        ax.set_title(f"等候时间分布 Wait time by service {rep.start} – {rep.end}")
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        paths.append(str(out / "wait_by_service.png"))
        fig.savefig(paths[-1], dpi=100)
    if rep.hourly:
        fig = figure(figsize=(10, 4))
        ax = fig.subplots()
        hours = [h["hour"] for h in rep.hourly]
        ax.bar([h - 0.2 for h in hours], [h["arrivals"] for h in rep.hourly], width=0.4, label="取号 arrivals")
        ax.bar([h + 0.2 for h in hours], [h["served"] for h in rep.hourly], width=0.4, label="办结 served")
        ax.set_xticks(hours, [f"{h}:00" for h in hours])
        ax.set_xlabel("时 hour (local)")
        ax.set_ylabel("号票 tickets")
        ax.set_title(f"每小时取号与办结 Arrivals and served per hour {rep.start} – {rep.end}")
        ax.legend()
        fig.tight_layout()
        paths.append(str(out / "per_hour.png"))
        fig.savefig(paths[-1], dpi=100)
    if rep.heatmap:
        grid = [[0] * 24 for _ in range(7)]
        for cell in rep.heatmap:
            grid[(cell["weekday"] + 6) % 7][cell["hour"]] = cell["arrivals"]  # Monday first
        hours_used = [h for h in range(24) if any(grid[d][h] for d in range(7))]
        lo, hi = (min(hours_used), max(hours_used)) if hours_used else (8, 17)
        fig = figure(figsize=(10, 4))
        ax = fig.subplots()
        im = ax.imshow([row[lo:hi + 1] for row in grid], aspect="auto", cmap="YlOrRd")
        ax.set_yticks(range(7), ["一 Mon", "二 Tue", "三 Wed", "四 Thu", "五 Fri", "六 Sat", "日 Sun"])
        ax.set_xticks(range(hi - lo + 1), [f"{h}:00" for h in range(lo, hi + 1)])
        top = max(max(row) for row in grid) or 1
        for d in range(7):
            for h in range(lo, hi + 1):
                if grid[d][h]:  # white on the dark cells, black on the light ones
                    ax.text(h - lo, d, str(grid[d][h]), ha="center", va="center", fontsize=8,
                            color="white" if grid[d][h] > 0.6 * top else "black")
        ax.set_title(f"繁忙时段 Busy hours by weekday (tickets issued) {rep.start} – {rep.end}")
        fig.colorbar(im, ax=ax, label="号票 tickets")
        fig.tight_layout()
        paths.append(str(out / "heatmap.png"))
        fig.savefig(paths[-1], dpi=100)
    return paths


# ---------------------------------------------------------------- command line


def register(sub: Any) -> None:
    """Add ``queuehall report`` and ``queuehall purge`` to the command line (docs/reports.md)."""
    p = sub.add_parser("report", help="wait and service time reports from the database (docs/reports.md)")
    p.add_argument("--db", default=None, help="SQLAlchemy URL (default: the local SQLite database)")
    p.add_argument("--config", default=None, help="hall configuration (default config/hall.toml)")
    p.add_argument("--day", default=None, help="one business day YYYY-MM-DD")
    p.add_argument("--from", dest="start", default=None, help="first business day YYYY-MM-DD")
    p.add_argument("--to", dest="end", default=None, help="last business day YYYY-MM-DD (default: --from)")
    p.add_argument("--group", default="service", help=f"rows by: {', '.join(GROUPS)} (default service)")
    p.add_argument("--format", default="table", choices=FORMATS)
    p.add_argument("--out", default=None, help="output file (csv, json, xlsx) or folder (png); default stdout")
    p.set_defaults(func=_report_main)
    p = sub.add_parser("purge", help="delete records older than the retention period (docs/reports.md)")
    p.add_argument("--db", default=None, help="SQLAlchemy URL (default: the local SQLite database)")
    p.add_argument("--config", default=None, help="hall configuration (default config/hall.toml)")
    p.add_argument("--before", required=True, help="delete business days before YYYY-MM-DD")
    p.set_defaults(func=_purge_main)


def parse_period(day: str | None, start: str | None, end: str | None) -> tuple[date, date]:
    """The period of ``--day`` or ``--from``/``--to``; :class:`ReportError` when missing or malformed."""
    def parse(value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ReportError("REPORT_BAD_DATE", value=value) from None

    if day and (start or end):
        raise ReportError("REPORT_BAD_PERIOD", detail="--day cannot be combined with --from/--to")
    if day:
        d = parse(day)
        return d, d
    if not start:
        raise ReportError("REPORT_NO_PERIOD")
    s = parse(start)
    e = parse(end) if end else s
    if e < s:
        raise ReportError("REPORT_BAD_PERIOD", detail=f"--to {e.isoformat()} is before --from {s.isoformat()}")
    return s, e


def _open(db: str | None, config: str | None) -> tuple[Engine, HallConfig]:
    """The engine and configuration for the CLI; never creates a database that is not there."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from broker.config import DEFAULT_CONFIG, ConfigError, load_config
    from broker.storage import default_url, make_engine

    try:
        cfg = load_config(config or DEFAULT_CONFIG)
    except ConfigError as err:
        raise ReportError("REPORT_CONFIG", detail=str(err)) from None
    url = db or default_url()
    try:
        parsed = make_url(url)
    except SQLAlchemyError as err:
        raise ReportError("REPORT_DATABASE", detail=str(err)) from None
    if parsed.get_backend_name() == "sqlite":
        from pathlib import Path

        path = parsed.database or ""
        if path in ("", ":memory:") or not Path(path).is_file():
            raise ReportError("REPORT_NO_DATABASE", path=path or url)
    engine = make_engine(url)
    try:
        names = set(inspect(engine).get_table_names())
    except SQLAlchemyError as err:
        engine.dispose()
        raise ReportError("REPORT_DATABASE", detail=str(err).splitlines()[0]) from None
    missing = {"tickets", "visits", "events"} - names
    if missing:
        engine.dispose()
        raise ReportError("REPORT_DATABASE", detail=f"not a queuehall database (no {', '.join(sorted(missing))})")
    return engine, cfg


def _fail(command: str, err: ReportError) -> int:
    import sys

    print(f"queuehall {command}: {err.code}: {err.message_zh} / {err.message_en}", file=sys.stderr)
    return 2


def _report_main(args: Any) -> int:
    """``queuehall report``: 0 written, 2 bad arguments or unusable database (message on stderr)."""
    try:
        start, end = parse_period(args.day, args.start, args.end)
        if args.group not in GROUPS:
            raise ReportError("REPORT_BAD_GROUP", group=args.group, choices=", ".join(GROUPS))
        if args.format == "xlsx" and not args.out:
            raise ReportError("REPORT_NEEDS_OUT", format="xlsx")
        engine, config = _open(args.db, args.config)
    except ReportError as err:
        return _fail("report", err)
    try:
        rep = ReportBuilder(engine, config).build(start, end, args.group)
        if args.format == "table":
            _write(args.out, to_table(rep))
        elif args.format == "csv":
            _write(args.out, to_csv(rep))
        elif args.format == "json":
            _write(args.out, json.dumps(rep.to_dict(), ensure_ascii=False, indent=2, default=str) + "\n")
        elif args.format == "xlsx":
            to_xlsx(rep, args.out)
            print(args.out)
        else:
            for p in charts(rep, engine, config, args.out or "report-charts"):
                print(p)
    finally:
        engine.dispose()
    return 0


def _write(path: str | None, text: str) -> None:
    import sys

    if path:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        print(path)
    else:
        sys.stdout.write(text)


def _purge_main(args: Any) -> int:
    """``queuehall purge``: 0 deleted (JSON with counts), 1 refused (RETENTION, JSON), 2 bad arguments."""
    from broker.storage import Store
    from queuehall.errors import HallError

    try:
        try:
            before = date.fromisoformat(args.before)
        except ValueError:
            raise ReportError("REPORT_BAD_DATE", value=args.before) from None
        engine, config = _open(args.db, args.config)
    except ReportError as err:
        return _fail("purge", err)
    today = datetime.now(UTC).astimezone(ZoneInfo(config.timezone)).date()
    try:
        counts = Store(engine).purge(before, retention_days=config.retention_days, today=today)
    except HallError as err:
        print(json.dumps({"status": "error", "error": err.to_dict()}, ensure_ascii=False))
        return 1
    finally:
        engine.dispose()
    print(json.dumps({"status": "ok", "before": before.isoformat(), "retention_days": config.retention_days,
                      "deleted": counts}, ensure_ascii=False))
    return 0
