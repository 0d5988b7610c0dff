"""Reports on tickets, waits, service times, counters and clerks, computed as SQL aggregates.

Reads the database directly (a copy away from the hall works just as well) and never
talks to the broker. Every figure follows its definition in docs/reports.md; the code
that computes it names the section it implements. Change one, change the other.

Every figure is an aggregate over per-visit *facts* (:meth:`ReportBuilder.facts_select`):
those of closed business days are stored in ``report_facts`` once and read back, the rest
are computed for each report (docs/reports.md "How it reads the database"). Percentiles are
nearest-rank (the value at rank ⌈p·n⌉ of the sorted sample): ``percentile_disc`` on
PostgreSQL; on SQLite, which sorts slowly, the values are sorted in Python. tests/test_reports.py
checks every figure on both databases against plain Python, with and without stored facts.
"""

from __future__ import annotations

import csv
import io
import json
from bisect import bisect_right
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from queuehall.broker.config import HallConfig
from queuehall.broker.hours import OpeningHours
from queuehall.broker.storage import events, report_facts, tickets, visits
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    MetaData,
    Select,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    inspect,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.types import Integer

from queuehall.errors import QueuehallError

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


class ReportError(QueuehallError, ValueError):
    """A report or purge request that cannot be carried out: stable ``code`` + bilingual message."""

    def __init__(self, code: str, **details: Any) -> None:
        zh, en = ERRORS[code]
        super().__init__(code, zh.format(**details), en.format(**details), details,
                         text=f"{code}: {en.format(**details)}")

    def to_dict(self) -> dict[str, Any]:
        """The error as the CLI prints it: code, both messages and the details."""
        return {"code": self.code, "message_zh": self.message_zh, "message_en": self.message_en,
                "details": {k: str(v) for k, v in self.details.items()}}


# ---------------------------------------------------------------- portable SQL pieces


class _Ms(FunctionElement):
    """Unix time in whole milliseconds (an integer) of a naive-UTC timestamp; NULL stays NULL.

    Half a millisecond rounds up on both databases, so every duration is an exact integer
    difference and both give the same number.
    """

    type = BigInteger()
    inherit_cache = True
    name = "qh_ms"


@compiles(_Ms, "sqlite")
def _ms_sqlite(el: _Ms, compiler: Any, **kw: Any) -> str:
    # julianday() keeps whole milliseconds (rounded half up); times 86,400,000 and rounded it is that
    # count again, and 210,866,760,000,000 is 1970-01-01 00:00 as a Julian day in milliseconds.
    return (f"(CAST(ROUND(julianday({compiler.process(next(iter(el.clauses)), **kw)}) * 86400000.0) AS INTEGER)"
            " - 210866760000000)")


@compiles(_Ms, "postgresql")
def _ms_pg(el: _Ms, compiler: Any, **kw: Any) -> str:
    # date_part() is float8; EXTRACT() is numeric, several times slower over every visit of a month.
    return f"CAST(floor(date_part('epoch', {compiler.process(next(iter(el.clauses)), **kw)}) * 1000.0 + 0.5) AS BIGINT)"


def unix_ms(at: datetime) -> int:
    """``at`` (aware, or naive UTC) as Unix milliseconds, the way :class:`_Ms` computes it in SQL."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds + 500) // 1000


class _LocalPart(FunctionElement):
    """The local hour (``part='hour'``) or weekday (0 = Sunday) of Unix milliseconds at a fixed UTC offset."""

    type = Integer()
    inherit_cache = False  # the offset and part are not clauses: never share a cached compilation
    name = "qh_local_part"

    def __init__(self, col: Any, offset_minutes: int, part: str) -> None:
        self.offset_minutes = offset_minutes
        self.part = part
        super().__init__(col)


@compiles(_LocalPart)
def _local(el: _LocalPart, compiler: Any, **kw: Any) -> str:
    # Integer arithmetic, the same on both databases (integer / integer truncates; the values are positive).
    shifted = f"({compiler.process(next(iter(el.clauses)), **kw)} + {int(el.offset_minutes) * 60_000})"
    mod = "%%" if compiler.dialect.paramstyle in ("format", "pyformat") else "%"  # psycopg: % starts a parameter
    if el.part == "hour":
        return f"(({shifted} / 3600000) {mod} 24)"
    return f"((({shifted} / 86400000) + 4) {mod} 7)"  # 1 January 1970 was a Thursday (4)


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


def local_part(ms: Any, tz: ZoneInfo, start: date, end: date, part: str) -> ColumnElement[Any]:
    """The local hour or weekday (0 = Sunday) in ``tz`` of ``ms`` (Unix milliseconds), right across DST
    changes in the period."""
    segs = offset_segments(tz, start, end)
    if len(segs) == 1:
        return _LocalPart(ms, segs[0][1], part)
    return case(*[(ms < literal_column(str(unix_ms(until))), _LocalPart(ms, off, part))  # type: ignore[arg-type]
                  for until, off in segs[:-1]], else_=_LocalPart(ms, segs[-1][1], part))


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
    # 好差评 and supervision (broker/satisfaction.py, docs/evaluation.md): satisfaction per clerk, counter, service
    # and day; the clerk assessment table; alerts per day and rule. Empty for a database without ratings.
    satisfaction: dict[str, Any] = field(default_factory=dict)
    assessment: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data (the ``--format json`` output)."""
        return {"period": {"from": self.start.isoformat(), "to": self.end.isoformat(), "timezone": self.timezone},
                "as_of": self.as_of.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "group": self.group, "tickets": self.tickets, "completion": self.completion,
                "total": self.total, "rows": self.rows, "counters": self.counters, "clerks": self.clerks,
                "hourly": self.hourly, "heatmap": self.heatmap, "notes": self.notes,
                "satisfaction": self.satisfaction, "assessment": self.assessment, "alerts": self.alerts}


def _count(cond: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.count().filter(cond)


FACT_COLUMNS = tuple(c.name for c in report_facts.columns)

# The facts of the period's visits that are not in report_facts (days still going on, or not final),
# computed for one report (docs/reports.md "How it reads the database"): a TEMP table with the
# columns of report_facts, so the stored times are parsed once, not once per figure; a subquery
# where tables cannot be created (a read-only PostgreSQL replica). On SQLite it has the primary key
# of report_facts (rows arrive in its order), so each final day is copied from it by a range.
LIVE_FACTS = {
    "sqlite": Table("qh_report_facts", MetaData(),
                    *(Column(c.name, c.type, primary_key=c.primary_key, autoincrement=False)
                      for c in report_facts.columns), sqlite_with_rowid=False, prefixes=["TEMPORARY"]),
    "postgresql": Table("qh_report_facts", MetaData(), *(Column(c.name, c.type) for c in report_facts.columns),
                        prefixes=["TEMPORARY"]),
}


@dataclass
class FactDays:
    """Where one run took the visit facts from (docs/reports.md "How it reads the database"): business
    days read from report_facts (``stored``), and days computed from the visits (``live``; None: the
    whole period, report_facts not used); of these, the days this run stored (``prepared``)."""

    stored: list[date] = field(default_factory=list)
    live: list[date] | None = None
    prepared: list[date] = field(default_factory=list)
    todo: list[date] = field(default_factory=list)  # live days to store if they are final
    visits: dict[date, int] = field(default_factory=dict)  # visits per day of the period
    stale: list[date] = field(default_factory=list)  # in report_facts, but no longer matching the visits
    skipped: str | None = None  # why nothing could be stored (e.g. a read-only database)
    parallel: bool = False  # part of the figures were computed on a second connection at the same time


class ReportBuilder:
    """Computes a :class:`Report` for one period from a database."""

    def __init__(self, engine: Engine, config: HallConfig, *, materialize: bool | None = None,
                 stored_facts: bool = True, parallel: bool = True) -> None:
        """``materialize``: put the facts computed on the fly in a TEMP table (default: where the
        database allows it) or compute them in every query (what a read-only PostgreSQL replica needs).
        ``stored_facts``: read (and fill) report_facts for the final business days of the period
        (docs/reports.md "How it reads the database"); False computes every day on the fly.
        ``parallel``: compute the counter, clerk and per-hour figures on a second connection in a
        second thread while the others are computed (docs/reports.md "How it reads the database");
        False: one after the other on one connection. An in-memory SQLite database has one
        connection only and is always read sequentially."""
        self.engine = engine
        self.config = config
        self.materialize = materialize
        self.stored_facts = stored_facts
        url = engine.url
        self.parallel = parallel and not (url.get_backend_name() == "sqlite" and (
            url.database in (None, "", ":memory:") or "mode=memory" in str(url)))
        self.tz = ZoneInfo(config.timezone)
        self.hours = OpeningHours(config.hours, config.timezone)
        self.fact_days = FactDays()  # of the last build (or wait_samples)
        self._openings: dict[date, tuple[int, int] | None] = {}
        self._offset: int | None = None  # the period's one UTC offset (ms), if it has only one
        self._period = (date.min, date.min)
        self._readonly: bool | None = None

    # -- the facts --------------------------------------------------------------------------

    def facts_select(self, days: ColumnElement[bool], now: datetime) -> Select[Any]:
        """The visits matching ``days`` (a condition on ``visits``) as rows of ``report_facts``, in its
        column order: the definitions of docs/reports.md "Wait time", "Service time", "Within target"
        and "Counter time" for one visit. ``now`` ends the wait of a visit still waiting."""
        v = visits.c
        inner = select(
            v.business_day, v.id.label("visit_id"), v.ticket_id, v.seq, v.service, v.counter, v.clerk, v.post,
            v.outcome, _Ms(v.entered_at).label("je"), _Ms(v.first_called_at).label("jf"),
            case((v.outcome == "no_show", _Ms(v.last_called_at))).label("jl"),
            _Ms(v.serving_at).label("js"), _Ms(v.ended_at).label("jn"),
            case((and_(v.ended_at.is_(None), v.first_called_at.isnot(None)), _Ms(v.last_called_at))).label("jc"),
        ).where(days)
        if self.engine.dialect.name == "sqlite":
            inner = inner.offset(0)  # not flattened: each timestamp is parsed once per visit
        j = inner.subquery("j")
        served = and_(j.c.js.isnot(None), j.c.outcome.in_(["finished", "transferred"]))
        # Never called: still waiting, cancelled, or left waiting when the business day closed.
        uncalled = and_(j.c.jf.is_(None), or_(j.c.outcome.is_(None), j.c.outcome.in_(["cancelled", "closed_unserved"])))
        now_ms = literal(unix_ms(now), BigInteger())
        return select(
            j.c.business_day, j.c.visit_id, j.c.ticket_id, j.c.seq, j.c.service, j.c.counter, j.c.clerk, j.c.post,
            j.c.outcome, j.c.je.label("entered_ms"), j.c.jn.label("ended_ms"),
            case((j.c.jf.isnot(None), func.coalesce(j.c.jn, j.c.jc))).label("active_ms"),
            # "Wait time": to the first call, a no-show's to its last; NULL if never called.
            (case((j.c.outcome == "no_show", j.c.jl), else_=j.c.jf) - j.c.je).label("wait_ms"),
            (j.c.jf - j.c.je).label("first_wait_ms"),  # to the first call (SLA)
            case((served, j.c.jn - j.c.js)).label("service_ms"),  # "Service time" of a served visit
            (j.c.jn - j.c.jf).label("busy_ms"),  # first call to end (counter busy)
            case((uncalled, func.coalesce(j.c.jn, now_ms) - j.c.je)).label("elapsed_ms"),
        )

    def _is_readonly(self, conn: Any) -> bool:
        """A PostgreSQL hot standby (read-only replica) can neither create tables nor fill report_facts."""
        if self._readonly is None:
            self._readonly = (conn.dialect.name == "postgresql"
                              and bool(conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar()))
        return self._readonly

    def _plan(self, conn: Any, start: date, end: date, now: datetime, write: bool) -> FactDays:
        """docs/reports.md "How it reads the database": which days of the period are read from report_facts,
        and which are computed on the fly (of those, the ones to store if they turn out final).

        A stored day whose number of facts no longer matches its visits (visits deleted or added
        behind the report's back) is dropped (``write``) and computed again."""
        rf, v = report_facts.c, visits.c
        days = FactDays(live=[])
        if not inspect(conn).has_table("report_facts"):  # a database older than migration 0004
            days.live = None
            return days
        as_of = self.hours.business_day(now)
        stored = dict(conn.execute(select(rf.business_day, func.count()).where(rf.business_day.between(start, end))
                                   .group_by(rf.business_day)).all())
        days.visits = dict(conn.execute(select(v.business_day, func.count())
                                        .where(v.business_day.between(start, end)).group_by(v.business_day)).all())
        days.stored = sorted(d for d, n in stored.items() if days.visits.get(d) == n)
        stale = days.stale = sorted(d for d, n in stored.items() if days.visits.get(d) != n)
        days.live = sorted(d for d in days.visits if d not in days.stored)
        # Only a day before the hall's business day can be final; whether it is shows once it is computed.
        todo = [d for d in days.live if d < as_of]
        if not write or not (stale or todo):
            return days
        readonly = self._is_readonly(conn)
        conn.rollback()
        if readonly:
            days.skipped = "read-only database"
            return days
        try:
            for d in stale:  # a transaction each: on SQLite the broker's commits wait for it
                with conn.begin():
                    conn.execute(delete(report_facts).where(rf.business_day == d))
        except DBAPIError as err:  # e.g. a read-only SQLite file: everything is computed on the fly
            conn.rollback()
            days.skipped = _first_line(err)
            return days
        days.todo = todo
        return days

    def _store(self, conn: Any, days: FactDays, source: Any) -> None:
        """Copy the facts of the final days among ``days.todo`` from the TEMP table ``source`` into
        report_facts, so they are parsed once (docs/reports.md "How it reads the database").

        A day is *final* when it is before the hall's business day and every one of its visits has
        ended: the engine never changes an ended visit and gives a new visit the business day it
        starts on, so nothing can change that day's facts any more. On SQLite each day is copied in
        a transaction of its own (the broker's commits wait for it, a few milliseconds); on
        PostgreSQL all in one, which commits (the TEMP table stays: :meth:`_facts` drops it)."""
        going_on = {_as_date(d) for (d,) in conn.execute(
            select(source.c.business_day).where(source.c.outcome.is_(None)).distinct())}
        final = [d for d in days.todo if d not in going_on]
        if not final:
            return
        pg = conn.dialect.name == "postgresql"
        from sqlalchemy.dialects import postgresql, sqlite

        dialect_insert: Any = postgresql.insert if pg else sqlite.insert

        rf = report_facts.c

        def copy(some: list[date]) -> None:
            ins = dialect_insert(report_facts).from_select(
                list(FACT_COLUMNS), select(source).where(source.c.business_day.in_(some)))
            # SQLite: another run storing the same day at the same time wrote the same rows.
            conn.execute(ins if pg else ins.on_conflict_do_nothing())

        try:
            if pg:
                # Derived data: the commit need not wait for the WAL to reach the disk.
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                with conn.begin_nested():  # a failure must not take the TEMP table with it
                    # One run stores at a time (reports still read): a plain INSERT of the days no other run
                    # stored meanwhile costs half an INSERT ... ON CONFLICT (0.4 s against 0.8 s a month).
                    conn.exec_driver_sql("LOCK TABLE report_facts IN SHARE ROW EXCLUSIVE MODE")
                    there = set(conn.execute(select(rf.business_day).where(rf.business_day.in_(final))
                                             .distinct()).scalars())
                    if [d for d in final if d not in there]:
                        copy([d for d in final if d not in there])
                conn.commit()
                self._pg_settings(conn)
            else:
                conn.commit()  # the TEMP table's rows (the level cannot change inside a transaction)
                # Derived data: no fsync for each day (WAL keeps the database consistent; a day lost in
                # a power cut fails the next report's check and is stored again).
                sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
                conn.exec_driver_sql("PRAGMA synchronous = NORMAL")
                conn.commit()
                try:
                    for d in final:
                        with conn.begin():
                            copy([d])
                finally:
                    conn.rollback()
                    conn.exec_driver_sql(f"PRAGMA synchronous = {int(sync)}")
        except DBAPIError as err:  # e.g. no INSERT privilege, or a read-only SQLite file
            if not pg:
                conn.rollback()
            days.skipped = _first_line(err)
            return
        stored = dict(conn.execute(select(rf.business_day, func.count()).where(rf.business_day.in_(final))
                                   .group_by(rf.business_day)).all())
        days.prepared = [d for d in final if stored.get(d) == days.visits.get(d)]

    @staticmethod
    def _pg_settings(conn: Any, first: bool = False) -> None:
        # Sorts and the TEMP table of a month of visits in memory, not in temporary files.
        conn.exec_driver_sql("SET LOCAL work_mem = '64MB'")
        if first:
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql("SET LOCAL temp_buffers = '64MB'")
            except DBAPIError:
                pass  # refused once a session has used temporary tables (a pooled connection): keep its size

    def prepare(self, start: date | None = None, end: date | None = None,
                now: datetime | None = None) -> dict[str, Any]:
        """Store the facts of the final business days from ``start`` to ``end`` (default: every day
        before the hall's business day at ``now``) in report_facts: what ``queuehall report --prepare``
        does nightly, so that no report has to. A month at a time. Returns the days stored now, how many
        were stored before and the days with visits that are not final yet. :class:`ReportError`
        REPORT_DATABASE when nothing can be stored (no report_facts table, a read-only database)."""
        now = now or datetime.now(UTC)
        last = self.hours.business_day(now) - timedelta(days=1)
        end = min(end or last, last)
        if start is None:
            with self.engine.connect() as conn:
                first = conn.execute(select(func.min(visits.c.business_day))).scalar()
            start = _as_date(first) if first is not None else end
        out: dict[str, Any] = {"from": start.isoformat(), "to": end.isoformat(), "prepared": [], "already": 0,
                               "not_final": []}
        chunk = start
        while chunk <= end:
            stop = min(end, chunk + timedelta(days=30))
            with self.engine.connect() as conn, self._facts(conn, chunk, stop, now, materialize=None):
                days = self.fact_days
            if days.live is None or days.skipped:
                detail = "no report_facts table (migrate the database)" if days.live is None else days.skipped
                raise ReportError("REPORT_DATABASE", detail=f"cannot store report facts: {detail}")
            out["prepared"] += [d.isoformat() for d in days.prepared]
            out["already"] += len(days.stored)
            out["not_final"] += [d.isoformat() for d in days.live if d not in days.prepared]
            chunk = stop + timedelta(days=1)
        return out

    @contextmanager
    def _facts(self, conn: Any, start: date, end: date, now: datetime, *, write: bool = True,
               materialize: bool | None = None, plan: FactDays | None = None) -> Iterator[Any]:
        """The facts of the period's visits as one FROM clause (columns of report_facts): stored days
        from report_facts, the others computed on the fly (and stored, ``write``, if they are final).
        ``plan``: which days are stored, as another connection just found (instead of :meth:`_plan`).
        Undone (TEMP table dropped) on exit; :attr:`fact_days` says which days came from where."""
        self._period = (start, end)
        days = plan or (self._plan(conn, start, end, now, write) if self.stored_facts else FactDays())
        self.fact_days = days
        dialect = conn.dialect.name
        if dialect == "postgresql":
            self._pg_settings(conn, first=True)
        parts: list[Select[Any]] = []
        rf = report_facts.c
        if days.stored:
            # A range of the primary key (an index scan on PostgreSQL, however long the history), without
            # the days computed on the fly: stale ones, and those this run is storing now.
            stored: ColumnElement[bool] = rf.business_day.between(start, end)
            if days.stale or days.live:
                stored = and_(stored, rf.business_day.not_in(sorted({*days.stale, *(days.live or ())})))
            parts.append(select(*(rf[c] for c in FACT_COLUMNS)).where(stored))
        temp = False
        if days.live is None or days.live or not parts:
            v = visits.c
            live = and_(v.business_day >= start, v.business_day <= end)
            if days.stored:
                live = and_(live, v.business_day.not_in(days.stored))
            q = self.facts_select(live, now)
            if self._materialize(conn) if materialize is None else materialize:
                if dialect == "sqlite":
                    conn.exec_driver_sql("PRAGMA temp_store = MEMORY")
                    conn.exec_driver_sql("DROP TABLE IF EXISTS temp.qh_report_facts")  # left by an interrupted run
                live_facts = LIVE_FACTS["sqlite" if dialect == "sqlite" else "postgresql"]
                live_facts.create(conn)
                temp = True
                conn.execute(insert(live_facts).from_select(list(FACT_COLUMNS), q))
                if days.todo:
                    self._store(conn, days, live_facts)
                q = select(live_facts)
            parts.append(q)
        try:
            yield (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("f")
        finally:
            conn.rollback()  # nothing else to keep
            if temp:  # committed on SQLite, and on PostgreSQL when facts were stored
                conn.exec_driver_sql("DROP TABLE IF EXISTS "
                                     + ("temp" if dialect == "sqlite" else "pg_temp") + ".qh_report_facts")
                conn.commit()

    def _materialize(self, conn: Any) -> bool:
        if self.materialize is not None:
            return self.materialize
        if conn.dialect.name == "sqlite":
            return True
        if conn.dialect.name == "postgresql":
            return not self._is_readonly(conn)
        return False

    # -- derived per-visit figures (they depend on the configuration, so they are not stored) --

    def _target(self, f: Any) -> ColumnElement[Any]:
        """The visit's target wait in ms ("Within target"); NULL for a service no longer configured."""
        if not self.config.services:
            return literal(None, BigInteger())
        return case({s.code: literal_column(str(s.target_wait_minutes * 60_000)) for s in self.config.services},
                    value=f.c.service, else_=literal(None, BigInteger()))

    def _local(self, ms: Any, part: str) -> ColumnElement[Any]:
        return local_part(ms, self.tz, *self._period, part)

    # -- grouping ---------------------------------------------------------------------------

    def group_expr(self, f: Any, group: str) -> ColumnElement[Any]:
        """The expression over the facts ``f`` a visit is grouped by (docs/reports.md "Groupings")."""
        if group in ("service", "counter", "clerk"):
            return f.c[group]
        if group == "day":
            return f.c.business_day
        if group == "hour":
            return self._local(f.c.entered_ms, "hour")
        if group == "department":
            if not self.config.services:
                return literal("?")
            return case({s.code: literal(s.department) for s in self.config.services}, value=f.c.service,
                        else_=literal("?"))
        raise ReportError("REPORT_BAD_GROUP", group=group, choices=", ".join(GROUPS))

    # -- visit figures ----------------------------------------------------------------------

    def _visit_figures(self, conn: Any, f: Any, group: ColumnElement[Any]
                       ) -> tuple[dict[Any, dict[str, Any]], dict[str, Any], dict[Any, dict[str, Any]]]:
        """docs/reports.md "Visit figures", "Wait time", "Service time" and "Within target (SLA)": the SQL
        counts and sums (ms) per group and of the ``all`` row, and the percentiles (:meth:`_percentiles`)
        that :func:`_row` adds to them."""
        called = f.c.first_wait_ms.isnot(None)
        target = self._target(f)
        counts = {
            "visits": func.count(), "issued": _count(f.c.seq == 1), "called": func.count(f.c.first_wait_ms),
            "served": func.count(f.c.service_ms),
            **{k: _count(f.c.outcome == o) for k, o in (("finished", "finished"), ("no_show", "no_show"),
                                                        ("transferred_out", "transferred"),
                                                        ("cancelled", "cancelled"), ("voided", "voided"),
                                                        ("closed_unserved", "closed_unserved"))},
            "open": _count(f.c.outcome.is_(None)),
            "sla_within": _count(f.c.first_wait_ms <= target),
            # Called, or not called after waiting longer than the target (cancelled, still waiting, or left
            # waiting at the day's close).
            "sla_counted": _count(case((called, target.isnot(None)), else_=f.c.elapsed_ms > target)),
        }
        sums = {"wait_sum": func.sum(f.c.wait_ms), "wait_n": func.count(f.c.wait_ms), "wait_max": func.max(f.c.wait_ms),
                "service_sum": func.sum(f.c.service_ms), "service_n": func.count(f.c.service_ms)}
        sqlite = conn.dialect.name == "sqlite"
        values = {"wait_values": func.group_concat(f.c.wait_ms), "service_values": func.group_concat(f.c.service_ms)}
        q = select(group.label("g"), *(e.label(k) for k, e in {**counts, **sums, **(values if sqlite else {})}.items())
                   ).group_by(group)
        raw = {r.g: r._asdict() for r in conn.execute(q)}
        total: dict[str, Any] = {k: sum(int(r[k] or 0) for r in raw.values())
                                 for k in (*counts, "wait_n", "service_n", "wait_sum", "service_sum")}
        total["wait_max"] = max((r["wait_max"] for r in raw.values() if r["wait_max"] is not None), default=None)
        pct = self._percentiles(raw) if sqlite else self._percentiles_pg(conn, f, group)
        return raw, total, pct

    @staticmethod
    def _percentiles(raw: dict[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
        """Nearest-rank median and 90th percentile of the wait, and 90th percentile of the service time, per
        group (key ``("g", group)``) and over all (key None), in ms (docs/reports.md "Percentiles"), from
        each group's values as SQLite lists them (``group_concat``, in no order). SQLite sorts slowly:
        the values are sorted here, and the percentiles of all groups together found in the sorted lists."""
        def values(text: str | None) -> list[int]:
            out = list(map(int, text.split(","))) if text else []
            out.sort()
            return out

        pct: dict[Any, dict[str, Any]] = {}
        waits, services = [], []
        for g, r in raw.items():
            w, sv = values(r.pop("wait_values")), values(r.pop("service_values"))
            pct[("g", g)] = {"w50": _rank(w, 1, 2), "w90": _rank(w, 9, 10), "s90": _rank(sv, 9, 10)}
            waits.append(w)
            services.append(sv)
        pct[None] = {"w50": _kth(waits, 1, 2), "w90": _kth(waits, 9, 10), "s90": _kth(services, 9, 10)}
        return pct

    @staticmethod
    def _percentiles_pg(conn: Any, f: Any, group: ColumnElement[Any]) -> dict[Any, dict[str, Any]]:
        """PostgreSQL: ``percentile_disc`` is nearest-rank and sorts each group apart (several times
        faster than a window over the month). It takes ⌈p·n⌉ in floating point, where 0.9·70 is
        63.000…01: asking for p − 10⁻¹² gives the exact rank for any n below 10¹¹."""
        from sqlalchemy.dialects.postgresql import array

        def disc(value: Any, *ps: float) -> Any:
            return func.percentile_disc(array([literal(p - 1e-12) for p in ps])).within_group(value)

        q = (select(group.label("g"), func.grouping(group).label("all"),
                    disc(f.c.wait_ms, 0.5, 0.9).label("w"), disc(f.c.service_ms, 0.9).label("s"))
             .group_by(func.grouping_sets(tuple_(group), tuple_())))
        out: dict[Any, dict[str, Any]] = {}
        for row in conn.execute(q):
            w = row.w or (None, None)
            out[None if row.all else ("g", row.g)] = {"w50": w[0], "w90": w[1], "s90": (row.s or (None,))[0]}
        return out

    # -- ticket figures ---------------------------------------------------------------------

    def _ticket_figures(self, conn: Any, f: Any, start: date, end: date) -> dict[str, int]:
        """docs/reports.md "Ticket figures": each ticket once, by its final status, on its issue day."""
        by_status: dict[str, int] = {}
        # Grouped by (day, status), the order of ix_tickets_day_status: no sort on SQLite.
        for _day, status, n in conn.execute(
                select(tickets.c.business_day, tickets.c.status, func.count())
                .where(tickets.c.business_day.between(start, end))
                .group_by(tickets.c.business_day, tickets.c.status)):
            by_status[status] = by_status.get(status, 0) + n
        transferred = conn.execute(select(func.count(func.distinct(f.c.ticket_id)))
                                   .where(f.c.outcome == "transferred")).scalar() or 0
        return {"issued": sum(by_status.values()), "served": by_status.get("finished", 0),
                "no_show": by_status.get("no_show", 0), "cancelled": by_status.get("cancelled", 0),
                "voided": by_status.get("voided", 0), "open": sum(by_status.get(s, 0) for s in OPEN_STATUSES),
                "closed_unserved": by_status.get("closed_unserved", 0), "transferred": transferred}

    def _completion(self, conn: Any, f: Any, start: date, end: date, served: int, closed_unserved: int,
                    as_of: date) -> dict[str, Any]:
        """docs/reports.md "Same-day completion" and "Promised completion"."""
        promised = {s.code: s.promised_days for s in self.config.services if s.promised_days > 0}
        period = and_(tickets.c.business_day >= start, tickets.c.business_day <= end)
        accepted = 0
        past_due = 0
        if promised:
            accepted_on: dict[tuple[date, int], int] = {}  # (acceptance day, promised days) -> tickets
            # A ticket of the period is its first visit's; it is served when a visit ended finished, which
            # only its last visit can. So a ticket whose first visit finished had no other: counted per
            # visit, per day (the order of report_facts: no sort on SQLite), one count per promise length.
            lengths: dict[int, list[str]] = {}
            for code, n in promised.items():
                lengths.setdefault(n, []).append(code)
            for day, *counts in conn.execute(
                    select(f.c.business_day, *(_count(f.c.service.in_(codes)) for codes in lengths.values()))
                    .where(and_(f.c.seq == 1, f.c.outcome == "finished", f.c.service_ms.isnot(None)))
                    .group_by(f.c.business_day)):
                for n_days, n in zip(lengths, counts, strict=True):
                    if n:
                        k = (_as_date(day), n_days)
                        accepted_on[k] = accepted_on.get(k, 0) + n
            # The others, per ticket: from the visits of tickets that went on after their first visit
            # (transferred, or a no-show reinstated); the longest promise among their served visits.
            days = case((f.c.service_ms.isnot(None),
                         case({code: literal(n) for code, n in promised.items()}, value=f.c.service,
                              else_=literal(0))), else_=literal(0))
            per_ticket = (select(func.max(case((f.c.seq == 1, f.c.business_day))).label("day"),
                                 func.max(days).label("days"))
                          .where(or_(f.c.seq > 1, f.c.outcome.in_(["transferred", "no_show"])))
                          .group_by(f.c.ticket_id)
                          .having(and_(func.max(case((f.c.seq == 1, 1), else_=0)) == 1,
                                       func.max(case((f.c.outcome == "finished", 1), else_=0)) == 1,
                                       func.max(days) > 0)).subquery())
            for day, n_days, n in conn.execute(select(per_ticket.c.day, per_ticket.c.days, func.count())
                                               .group_by(per_ticket.c.day, per_ticket.c.days)):
                k = (_as_date(day), int(n_days))
                accepted_on[k] = accepted_on.get(k, 0) + n
            for (day, n_days), n in accepted_on.items():
                accepted += n
                if self.due_date(day, n_days) < as_of:
                    past_due += n
        on_the_spot = [s.code for s in self.config.services if s.promised_days == 0]
        unfinished = 0
        if on_the_spot:
            # Left open past their day, or ended unserved when the day closed.
            unfinished = conn.execute(select(func.count()).select_from(tickets).where(and_(
                period, tickets.c.business_day < as_of, tickets.c.queue_service.in_(on_the_spot),
                tickets.c.status.in_((*OPEN_STATUSES, "closed_unserved"))))).scalar() or 0
        same_day = served - accepted
        # The citizens still waiting (or at a counter) when the day closed were not served that day either.
        base = served + closed_unserved
        rate = round(same_day / base, 4) if base else None
        return {"served": served, "closed_unserved": closed_unserved, "same_day_completed": same_day,
                "same_day_rate": rate, "same_day_target": SAME_DAY_TARGET,
                "same_day_meets_target": (same_day / base >= SAME_DAY_TARGET) if base else None,
                "promised_accepted": accepted, "promised_past_due": past_due,
                "on_the_spot_unfinished": unfinished}

    def due_date(self, accepted: date, working_days: int) -> date:
        """The promised completion date: ``working_days`` working days after the day of acceptance
        (the acceptance day itself for 0). The hall's one rule, :meth:`OpeningHours.promised_date`,
        which the broker also sends with every ticket: the counter shows the date reports count by."""
        return self.hours.promised_date(accepted, working_days) or accepted

    def is_working_day(self, d: date) -> bool:
        """A statutory working day (工作日) for promised time limits; docs/reports.md "Promised completion"
        (:meth:`OpeningHours.is_working_day`)."""
        return self.hours.is_working_day(d)

    # -- counters ---------------------------------------------------------------------------

    def _opening(self, day: date) -> tuple[int, int] | None:
        """The day's first opening and last closing time (Unix ms), or None when the hall is closed."""
        if day not in self._openings:  # the holiday lookup is slow and asked once per counter state
            periods = self.hours.periods_on(day)
            self._openings[day] = None if not periods else (
                unix_ms(datetime.combine(day, periods[0].start, tzinfo=self.tz)),
                unix_ms(datetime.combine(day, periods[-1].end, tzinfo=self.tz)))
        return self._openings[day]

    def _day(self, ms: int) -> date:
        """The business day of ``ms`` (Unix ms); with one UTC offset for the period, without zoneinfo."""
        if self._offset is not None:
            return date.fromordinal(_UNIX_ORDINAL + (ms + self._offset) // 86_400_000)
        return self.hours.business_day(_from_ms(ms))

    def _split(self, since: int, until: int, by_event: bool, first_day: date, last_day: date
               ) -> list[tuple[date, int, int, int | None]]:
        """docs/reports.md "Counter time": one counter state cut into business days, as
        ``(day, begin, stop, closing)`` in Unix ms. ``closing`` is None when the state ends at ``stop``;
        otherwise it lasted past its day, and counts up to the later of ``closing`` (the day's closing
        time) and the end of the counter's last ticket that day, but not beyond ``stop``.

        ``until`` is the counter's next event (``by_event``) or the report's ``now``. Only days
        ``first_day``..``last_day`` are returned.
        """
        if until <= since:
            return []
        d0, d1 = self._day(since), self._day(until)
        if d0 == d1 and by_event:  # the usual case: two events of one day
            return [(d0, since, until, None)] if first_day <= d0 <= last_day else []
        out: list[tuple[date, int, int, int | None]] = []
        d = max(d0, first_day)
        while d <= min(d1, last_day):
            hours = self._opening(d)
            begin = since if d == d0 else hours[0] if hours else None
            if begin is not None:
                if d == d1 and by_event:  # ended by the counter's own event that day: all of it
                    out.append((d, begin, until, None))
                else:  # still on at the end of the day: up to closing or its last ticket's end
                    out.append((d, begin, until, hours[1] if hours else begin))
            d += timedelta(days=1)
        return out

    def _called(self, conn: Any, f: Any) -> list[Any]:
        """The called visits' counts and times per counter, clerk and post: what "Counter time" and "Clerks"
        add up (one pass over the facts instead of two)."""
        return conn.execute(
            select(f.c.counter, f.c.clerk, f.c.post, func.count().label("called"),
                   func.count(f.c.service_ms).label("served"), _count(f.c.outcome == "finished").label("finished"),
                   _count(f.c.outcome == "no_show").label("no_show"), func.sum(f.c.busy_ms).label("busy"),
                   func.sum(f.c.service_ms).label("serving"))
            .where(f.c.first_wait_ms.isnot(None))
            .group_by(f.c.counter, f.c.clerk, f.c.post)).all()

    def _counter_time(self, conn: Any, f: Any, called: list[Any], start: date, end: date, now: datetime
                      ) -> list[dict[str, Any]]:
        """docs/reports.md "Counter time": open, paused by reason, busy, serving and idle, per counter."""
        kinds = events.c.type.in_(_COUNTER_EVENTS)
        # Times as Unix ms, parsed by the database; the payload only for a pause (its reason).
        cols = (events.c.seq, events.c.counter, events.c.type, _Ms(events.c.at),
                case((events.c.type == "counter_paused", events.c.data)))
        # Each counter's state as the period begins: its last counter event before it.
        last = (select(func.max(events.c.seq)).where(and_(kinds, events.c.business_day < start))
                .group_by(events.c.counter).subquery())
        rows = conn.execute(select(*cols).where(events.c.seq.in_(select(last.c[0])))).all()
        day: ColumnElement[Any] = events.c.business_day
        if conn.dialect.name == "postgresql":
            # Not the business-day index: PostgreSQL would read every event of the period through it
            # (0.2 s on a month of a busy hall) instead of the counter events through ix_events_type_seq.
            day = day + literal_column("0")
        rows += conn.execute(select(*cols).where(and_(kinds, day >= start, day <= end))).all()
        rows.sort(key=lambda r: r[0])
        busy: dict[int, list[int]] = {}  # ms busy and serving
        for r in called:
            if r.counter is not None:
                b = busy.setdefault(r.counter, [0, 0])
                b[0] += int(r.busy or 0)
                b[1] += int(r.serving or 0)
        segments = offset_segments(self.tz, start, end)
        self._offset = segments[0][1] * 60_000 if len(segments) == 1 else None
        # (counter, open|paused, reason, day, begin, stop, closing) of every state in the period.
        parts: list[tuple[int, str, str | None, date, int, int, int | None]] = []
        state: dict[int, tuple[str, int, str | None]] = {}  # counter -> (open|paused, since, reason)
        seen: set[int] = set()

        def close(counter: int, until: int, by_event: bool) -> None:
            prev = state.get(counter)
            if prev is not None:
                parts.extend((counter, prev[0], prev[2], *p) for p in self._split(prev[1], until, by_event, start, end))

        for _seq, counter, type_, at, data in rows:
            if counter is None:
                continue
            seen.add(counter)
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
        now_ms = unix_ms(now)
        for counter in list(state):
            close(counter, now_ms, False)
        # The end of a counter's last visit of a day matters only for a state that outlasts its day (a
        # counter left on overnight): one query reads just those days.
        found = self._last_activity(conn, f, {(p[0], p[3]) for p in parts if p[6] is not None})
        acc: dict[int, dict[str, Any]] = {c: {"open_s": 0.0, "paused_s": {}} for c in seen}
        for counter, kind, reason, d, begin, stop, closing in parts:
            if closing is not None:
                last_end = found.get((counter, d))
                stop = min(stop, max(closing, last_end) if last_end is not None else closing)
            seconds = max(0, stop - begin) / 1000.0
            a = acc[counter]
            if kind == "open":
                a["open_s"] += seconds
            else:
                a["paused_s"][reason or "?"] = a["paused_s"].get(reason or "?", 0.0) + seconds
        out = []
        for counter in sorted(set(acc) | set(busy)):
            a = acc.get(counter, {"open_s": 0.0, "paused_s": {}})
            busy_s, serving = (x / 1000.0 for x in busy.get(counter, (0, 0)))
            if not (a["open_s"] or any(a["paused_s"].values()) or busy_s):
                continue  # e.g. left paused over a holiday: nothing happened here in the period
            cfg = self.config.counter(counter)
            out.append({"counter": counter, "name_zh": cfg.name.zh if cfg else None,
                        "open_min": _minutes(a["open_s"]), "busy_min": _minutes(busy_s),
                        "serving_min": _minutes(serving),
                        "idle_min": _minutes(max(0.0, a["open_s"] - busy_s)),
                        "paused_min": _minutes(sum(a["paused_s"].values())),
                        "paused_by_reason_min": {k: _minutes(v) for k, v in sorted(a["paused_s"].items())}})
        return out

    @staticmethod
    def _last_activity(conn: Any, f: Any, wanted: set[tuple[int, date]]) -> dict[tuple[int, date], int]:
        """The end (or last call) of each counter's last called visit (Unix ms) on the (counter, business
        day) pairs ``wanted``."""
        found: dict[tuple[int, date], int] = {}
        if not wanted:
            return found
        counters = sorted({c for c, _ in wanted})
        days = sorted({d for _, d in wanted})
        for counter, day, last in conn.execute(
                select(f.c.counter, f.c.business_day, func.max(f.c.active_ms))
                .where(and_(f.c.first_wait_ms.isnot(None), f.c.counter.in_(counters), f.c.business_day.in_(days)))
                .group_by(f.c.counter, f.c.business_day)):
            if last is not None:
                found[(counter, _as_date(day))] = int(last)
        return found

    # -- clerks, hours ----------------------------------------------------------------------

    def _clerks(self, called: list[Any]) -> list[dict[str, Any]]:
        """docs/reports.md "Clerks": called, served and finished visits, and service time, per clerk and post."""
        per: dict[tuple[str, str | None], list[int]] = {}
        for r in called:
            if r.clerk is None:
                continue
            a = per.setdefault((r.clerk, r.post), [0, 0, 0, 0, 0])
            for i, n in enumerate((r.called, r.served, r.finished, r.no_show, r.serving or 0)):
                a[i] += int(n)
        names = {c.id: c.name for c in self.config.clerks}
        return [{"clerk": clerk, "name_zh": names[clerk].zh if clerk in names else clerk, "post": post,
                 "called": a[0], "served": a[1], "finished": a[2], "no_show": a[3],
                 "service_avg_min": _min_ms(a[4] / a[1]) if a[1] else None}
                for (clerk, post), a in sorted(per.items(), key=lambda kv: (kv[0][0], _sort(kv[0][1])))]

    def _hourly(self, conn: Any, f: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """docs/reports.md "Per hour and busy hours": tickets issued (first visits) by local weekday and hour
        of issue, and visits finished by local hour of their end."""
        arrivals: dict[int, int] = {}
        served: dict[int, int] = {}
        heat: dict[tuple[int, int], int] = {}
        # One integer key, weekday·10⁴ + hour in·10² + hour out (99: none): one sort on an integer (SQLite).
        key = (self._local(f.c.entered_ms, "dow") * 10_000 + self._local(f.c.entered_ms, "hour") * 100
               + func.coalesce(case((f.c.outcome == "finished", self._local(f.c.ended_ms, "hour"))), 99))
        for k, issued, finished in conn.execute(
                select(key.label("k"), _count(f.c.seq == 1), _count(f.c.outcome == "finished")).group_by(key)):
            dow, hour_in, hour_out = k // 10_000, k // 100 % 100, k % 100
            if issued:
                arrivals[hour_in] = arrivals.get(hour_in, 0) + issued
                heat[(dow, hour_in)] = heat.get((dow, hour_in), 0) + issued
            if finished:
                served[hour_out] = served.get(hour_out, 0) + finished
        hourly = [{"hour": h, "arrivals": arrivals.get(h, 0), "served": served.get(h, 0)}
                  for h in sorted(set(arrivals) | set(served))]
        return hourly, [{"weekday": d, "hour": h, "arrivals": n} for (d, h), n in sorted(heat.items())]

    def wait_samples(self, start: date, end: date, now: datetime | None = None) -> dict[str, list[float]]:
        """Every visit's wait in minutes (docs/reports.md "Wait time"), per service, sorted: the data of
        the wait-distribution chart. Reads stored facts but stores none."""
        out: dict[str, list[float]] = {}
        with self.engine.connect() as conn, \
                self._facts(conn, start, end, now or datetime.now(UTC), write=False, materialize=False) as f:
            for service, wait in conn.execute(select(f.c.service, f.c.wait_ms).where(f.c.wait_ms.isnot(None))):
                out.setdefault(service, []).append(wait / 60_000.0)
        return {k: sorted(v) for k, v in sorted(out.items())}

    # -- the whole report -------------------------------------------------------------------

    def build(self, start: date, end: date, group: str = "service", now: datetime | None = None) -> Report:
        """The report for business days ``start``..``end`` (inclusive), rows grouped by ``group``.

        ``now`` (aware; default the system clock) is the moment the report describes: open
        counters count up to it, tickets still waiting have waited until it, and it decides
        which promised dates have passed. Raises :class:`ReportError` for an unknown group
        or a period that ends before it starts. Writes only report_facts (the facts of final days
        not stored yet; docs/reports.md "How it reads the database") and a TEMP table; with
        ``parallel``, reads on a second connection in a second thread at the same time.
        """
        if group not in GROUPS:
            raise ReportError("REPORT_BAD_GROUP", group=group, choices=", ".join(GROUPS))
        if end < start:
            raise ReportError("REPORT_BAD_PERIOD", detail=f"{end.isoformat()} is before {start.isoformat()}")
        now = now or datetime.now(UTC)
        as_of = self.hours.business_day(now)
        with ThreadPoolExecutor(1, thread_name_prefix="report") if self.parallel else nullcontext() as pool:
            side = None
            with self.engine.connect() as conn, self._facts(conn, start, end, now) as f:
                if pool is not None and self._second_connection_pays():
                    days = self.fact_days
                    days.parallel = True
                    # What the second connection finds: the days stored before and those stored just now.
                    seen = FactDays(stored=sorted([*days.stored, *days.prepared]), visits=days.visits,
                                    stale=[d for d in days.stale if d not in days.prepared],
                                    live=[d for d in days.live or () if d not in days.prepared])
                    side = pool.submit(self._side_apart, start, end, now, seen)
                ticket_figures = self._ticket_figures(conn, f, start, end)
                completion = self._completion(conn, f, start, end, ticket_figures["served"],
                                              ticket_figures["closed_unserved"], as_of)
                grouped, total, pct = self._visit_figures(conn, f, self.group_expr(f, group))
                if side is None:
                    counters, clerks, hourly, heat = self._side(conn, f, start, end, now)
            if side is not None:
                counters, clerks, hourly, heat = side.result()
        rows = [{"group": _key(k), **self._label(group, k), **_row(v, pct.get(("g", k), {}))}
                for k, v in sorted(grouped.items(), key=lambda kv: _sort(kv[0]))]
        extra: dict[str, Any] = {}
        if "ratings" in self._tables():
            from queuehall.broker import satisfaction as sat

            extra = {"satisfaction": sat.satisfaction(self.engine, self.config, start, end, as_of),
                     "assessment": sat.assessment(self.engine, self.config, start, end, as_of),
                     "alerts": sat.alerts_per_day(self.engine, start, end)}
        return Report(start, end, group, self.config.timezone, now, ticket_figures, completion,
                      {"group": "all", **_row(total, pct.get(None, {}))}, rows, counters, clerks, hourly, heat,
                      **extra, notes=["Percentiles are nearest-rank.",
                             "Matters with a promised completion time are completed in the back office after "
                             "the ticket; queuehall records their acceptance and due date, not their completion."])

    def _tables(self) -> set[str]:
        """The database's tables (a database older than migration 0006 has no ratings)."""
        from sqlalchemy import inspect

        return set(inspect(self.engine).get_table_names())

    def _second_connection_pays(self) -> bool:
        """Whether a second connection would find (nearly) every day of the period stored. It stores
        nothing itself and computes the other days again: worth it for a day or two, not for a month."""
        days = self.fact_days
        if days.live is None:
            return False
        computed = sum(days.visits.get(d, 0) for d in days.live if d not in days.prepared)
        return computed * 5 <= sum(days.visits.values())

    def _side(self, conn: Any, f: Any, start: date, end: date, now: datetime) -> tuple[Any, Any, Any, Any]:
        """Counter time, clerks, per hour and busy hours: the figures that do not depend on the grouping,
        which :meth:`build` computes on a second connection at the same time as the others."""
        called = self._called(conn, f)
        counters = self._counter_time(conn, f, called, start, end, now)
        hourly, heat = self._hourly(conn, f)
        return counters, self._clerks(called), hourly, heat

    def _side_apart(self, start: date, end: date, now: datetime, plan: FactDays) -> tuple[Any, Any, Any, Any]:
        """:meth:`_side` on a connection of its own, by a builder of its own (no state shared with the
        other thread). It stores nothing: it reads the facts the other connection stored (``plan``), and
        computes the others itself, the same way (the same visits and ``now``)."""
        helper = ReportBuilder(self.engine, self.config, materialize=self.materialize,
                               stored_facts=self.stored_facts, parallel=False)
        with self.engine.connect() as conn, helper._facts(conn, start, end, now, write=False, plan=plan) as f:
            return helper._side(conn, f, start, end, now)

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


def _first_line(err: DBAPIError) -> str:
    return str(err.orig or err).splitlines()[0]


def _rank(values: list[int], a: int, b: int) -> int | None:
    """Nearest rank: the value at rank ⌈n·a/b⌉ = (n·a + b − 1) // b of the sorted ``values``."""
    return values[(len(values) * a + b - 1) // b - 1] if values else None


def _kth(samples: list[list[int]], a: int, b: int) -> int | None:
    """:func:`_rank` of all the sorted integer ``samples`` together, without merging them: the smallest
    value with at least that many values at or below it (a binary search over the values' range)."""
    n = sum(len(s) for s in samples)
    if not n:
        return None
    rank = (n * a + b - 1) // b
    lo, hi = min(s[0] for s in samples if s), max(s[-1] for s in samples if s)
    while lo < hi:  # integers: the first value whose count reaches the rank is one of the values
        mid = (lo + hi) // 2
        if sum(bisect_right(s, mid) for s in samples) >= rank:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _row(r: dict[str, Any], pct: dict[str, Any]) -> dict[str, Any]:
    """A row of visit figures from the SQL counts and sums (ms) of one group (or of all) and its percentiles."""
    return {
        **{k: int(r[k]) for k in ("visits", "issued", "called", "served", "finished", "no_show", "transferred_out",
                                   "cancelled", "voided", "closed_unserved", "open")},
        "wait_avg_min": _min_ms(int(r["wait_sum"] or 0) / r["wait_n"]) if r["wait_n"] else None,
        "wait_median_min": _min_ms(pct.get("w50")), "wait_p90_min": _min_ms(pct.get("w90")),
        "wait_max_min": _min_ms(r["wait_max"]),
        "sla_within": int(r["sla_within"]), "sla_counted": int(r["sla_counted"]),
        "sla_share": round(int(r["sla_within"]) / int(r["sla_counted"]), 4) if r["sla_counted"] else None,
        "service_avg_min": _min_ms(int(r["service_sum"] or 0) / r["service_n"]) if r["service_n"] else None,
        "service_p90_min": _min_ms(pct.get("s90")),
    }


def _as_date(v: Any) -> date:
    # A label over a subquery loses the Date type on SQLite: the value comes back as text.
    return v if isinstance(v, date) else date.fromisoformat(str(v))


_UNIX = datetime(1970, 1, 1, tzinfo=UTC)
_UNIX_ORDINAL = _UNIX.date().toordinal()


def _from_ms(ms: Any) -> datetime:
    return _UNIX + timedelta(milliseconds=int(ms))


def _minutes(seconds: Any) -> float | None:
    return None if seconds is None else round(float(seconds) / 60.0, 2)


def _min_ms(ms: Any) -> float | None:
    return None if ms is None else round(float(ms) / 60_000.0, 2)


def _key(k: Any) -> Any:
    return k.isoformat() if isinstance(k, date) else k


def _sort(k: Any) -> tuple[int, Any]:
    return (1, "") if k is None else (0, k.isoformat() if isinstance(k, date) else k)


# ---------------------------------------------------------------- output formats

ROW_FIGURES = ("visits", "issued", "called", "served", "finished", "no_show", "transferred_out", "cancelled",
               "voided", "closed_unserved", "open", "wait_avg_min", "wait_median_min", "wait_p90_min",
               "wait_max_min", "sla_within", "sla_counted", "sla_share", "service_avg_min", "service_p90_min")
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
             f"transferred {t['transferred']}  cancelled {t['cancelled']}  voided {t['voided']}  "
             f"unserved at close 闭厅未办结 {t['closed_unserved']}  open {t['open']}",
             f"wait 等候 (min): avg {_cell(a['wait_avg_min'])}  median {_cell(a['wait_median_min'])}  "
             f"p90 {_cell(a['wait_p90_min'])}  max {_cell(a['wait_max_min'])}  "
             f"within target {_pct(a['sla_share'])} ({a['sla_within']}/{a['sla_counted']})",
             f"service 办理 (min): avg {_cell(a['service_avg_min'])}  p90 {_cell(a['service_p90_min'])}",
             f"same-day completion 当天办结率 {_pct(c['same_day_rate'])} "
             f"({c['same_day_completed']}/{c['served'] + c['closed_unserved']}; "
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
    lines += _satisfaction_table(rep)
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _satisfaction_table(rep: Report) -> list[str]:
    """The 好差评 sections of the text report (docs/evaluation.md): per clerk and counter, the assessment, alerts."""
    if not (rep.satisfaction.get("total") or {}).get("rated") and not rep.alerts:
        return []
    lines: list[str] = []
    t = rep.satisfaction["total"]
    lines += ["", f"好差评 satisfaction: rated {t['rated']}  好评率 {_pct(t['good_rate'])}  defaults {t['defaults']}  "
                  f"差评 cases {t['cases']} (open {t['cases_open']}, overdue {t['cases_overdue']})  "
                  f"回访率 {_pct(t['callback_rate'])}  on time {_pct(t['on_time_rate'])}"]
    for dim in ("clerk", "counter", "service", "day"):
        rows = rep.satisfaction.get(f"by_{dim}") or []
        if rows:
            lines += ["", f"satisfaction by {dim}"]
            lines += _grid([dim, "rated", "5", "4", "3", "2", "1", "好评率", "cases", "open", "overdue", "回访率"],
                           [[str(r[dim]), str(r["rated"]), *(str(r[f"level_{n}"]) for n in range(5, 0, -1)),
                             _pct(r["good_rate"]), str(r["cases"]), str(r["cases_open"]), str(r["cases_overdue"]),
                             _pct(r["callback_rate"])] for r in rows], 1)
    if rep.assessment:
        lines += ["", "考核评比 clerk assessment"]
        lines += _grid(["clerk", "name", "finished", "svc avg", "no-show", "rated", "好评率", "avg", "cases",
                        "回访率", "alerts"],
                       [[x["clerk"], x["name_zh"] or "—", str(x["finished"]), _cell(x["service_avg_min"]),
                         _pct(x["no_show_share"]), str(x["rated"]), _pct(x["good_rate"]), _cell(x["level_avg"]),
                         str(x["cases"]), _pct(x["callback_rate"]), str(x["alerts"])] for x in rep.assessment], 2)
    if rep.alerts:
        lines += ["", "alerts 告警 per day and rule"]
        lines += _grid(["day", "rule", "raised"], [[a["day"], a["rule"], str(a["raised"])] for a in rep.alerts], 2)
    return lines


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
    if (rep.satisfaction.get("total") or {}).get("rated") or rep.alerts:  # 好差评 (docs/evaluation.md)
        for dim in ("clerk", "counter", "service", "day"):
            rows = rep.satisfaction.get(f"by_{dim}") or []
            sheet = wb.create_sheet(f"satisfaction by {dim}")
            cols = list(rows[0]) if rows else [dim]
            sheet.append(cols)
            for r in rows:
                sheet.append([r.get(c) for c in cols])
        sheet = wb.create_sheet("assessment")
        cols = list(rep.assessment[0]) if rep.assessment else ["clerk"]
        sheet.append(cols)
        for r in rep.assessment:
            sheet.append([r.get(c) for c in cols])
        sheet = wb.create_sheet("alerts")
        sheet.append(["day", "rule", "raised"])
        for a in rep.alerts:
            sheet.append([a["day"], a["rule"], a["raised"]])
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
    p.add_argument("--prepare", action="store_true",
                   help="only store the report facts of the closed business days (run nightly; with --day or "
                        "--from/--to just those days); prints JSON")
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
    from queuehall.broker.config import DEFAULT_CONFIG, ConfigError, load_config
    from queuehall.broker.storage import default_url, make_engine
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

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
    if args.prepare:
        return _prepare_main(args)
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


def _prepare_main(args: Any) -> int:
    """``queuehall report --prepare``: 0 stored (JSON: the days stored now, how many were already, the days
    not final yet), 2 bad arguments or a database where nothing can be stored (message on stderr)."""
    try:
        start = end = None
        if args.day or args.start or args.end:
            start, end = parse_period(args.day, args.start, args.end)
        engine, config = _open(args.db, args.config)
    except ReportError as err:
        return _fail("report", err)
    try:
        done = ReportBuilder(engine, config).prepare(start, end)
    except ReportError as err:
        return _fail("report", err)
    finally:
        engine.dispose()
    print(json.dumps({"status": "ok", **done}, ensure_ascii=False))
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
    from queuehall.broker.storage import Store

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
    store = Store(engine)
    try:
        # The longer of --config's period and the one the hall's broker recorded in the database.
        days = store.effective_retention(config.retention_days)
        counts = store.purge(before, retention_days=days, today=today)
    except HallError as err:
        print(json.dumps({"status": "error", "error": err.to_dict()}, ensure_ascii=False))
        return 1
    finally:
        engine.dispose()
    print(json.dumps({"status": "ok", "before": before.isoformat(), "retention_days": days,
                      "deleted": counts}, ensure_ascii=False))
    return 0
