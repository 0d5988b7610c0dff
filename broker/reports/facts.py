"""The per-visit facts every figure is an aggregate of (docs/reports.md "How it reads the database"):
stored once in ``report_facts`` for closed business days, computed on the fly for the others."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from queuehall.broker.config import HallConfig
from queuehall.broker.hours import OpeningHours
from queuehall.broker.reports.common import (
    GROUPS,
    FactDays,
    ReportError,
    _as_date,
    _first_line,
)
from queuehall.broker.reports.sql import (
    FACT_COLUMNS,
    LIVE_FACTS,
    _Ms,
    local_part,
    unix_ms,
)
from queuehall.broker.storage import report_facts, visits
from sqlalchemy import (
    BigInteger,
    Engine,
    Select,
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
    true,
    union_all,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import ColumnElement


class FactReader:
    """The state of one report run and its facts: the base of :class:`ReportBuilder`'s parts."""

    def __init__(self, engine: Engine, config: HallConfig, *, materialize: bool | None = None,
                 stored_facts: bool = True, parallel: bool = True, city: bool = False, daily: bool = True) -> None:
        """``materialize``: put the facts computed on the fly in a TEMP table (default: where the
        database allows it) or compute them in every query (what a read-only PostgreSQL replica needs).
        ``stored_facts``: read (and fill) report_facts for the final business days of the period
        (docs/reports.md "How it reads the database"); False computes every day on the fly.
        ``parallel``: compute the counter, clerk and per-hour figures on a second connection in a
        second thread while the others are computed (docs/reports.md "How it reads the database");
        False: one after the other on one connection. An in-memory SQLite database has one
        connection only and is always read sequentially.
        ``city``: every hall of the database together (docs/city.md), under ``config``'s services and time
        zone, instead of the records of ``config``'s hall alone; such a report reads the facts the halls'
        own reports and ``--prepare`` stored but stores none, and has no counter or clerk figures (the
        halls' counters and clerks are their own).
        ``daily``: read the groupings by service, department and hall from report days (broker/reports/daily.py,
        docs/reports.md "Report days"); False computes them from the facts, as the other groupings."""
        self.engine = engine
        self.config = config
        #: The hall whose records are read (None: every hall, ``city``).
        self.hall: str | None = None if city else config.hall_id
        self.materialize = materialize
        self.stored_facts = stored_facts
        self.daily = daily
        self._has_days: bool | None = None
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
            v.hall_id, v.business_day, v.id.label("visit_id"), v.ticket_id, v.seq, v.service, v.counter, v.clerk,
            v.post,
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
            j.c.hall_id, j.c.business_day, j.c.visit_id, j.c.ticket_id, j.c.seq, j.c.service, j.c.counter,
            j.c.clerk, j.c.post,
            j.c.outcome, j.c.je.label("entered_ms"), j.c.jn.label("ended_ms"),
            case((j.c.jf.isnot(None), func.coalesce(j.c.jn, j.c.jc))).label("active_ms"),
            # "Wait time": to the first call, a no-show's to its last; NULL if never called.
            (case((j.c.outcome == "no_show", j.c.jl), else_=j.c.jf) - j.c.je).label("wait_ms"),
            (j.c.jf - j.c.je).label("first_wait_ms"),  # to the first call (SLA)
            case((served, j.c.jn - j.c.js)).label("service_ms"),  # "Service time" of a served visit
            (j.c.jn - j.c.jf).label("busy_ms"),  # first call to end (counter busy)
            case((uncalled, func.coalesce(j.c.jn, now_ms) - j.c.je)).label("elapsed_ms"),
        )

    def mine(self, table: Any) -> ColumnElement[bool]:
        """The condition on ``table`` (a table or the facts) for the records this report reads: its hall's."""
        return table.c.hall_id == self.hall if self.hall is not None else true()

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
        # A city report reads whole days stored (by every hall) and computes the others; each hall's own
        # reports and --prepare store its facts.
        write = write and self.hall is not None
        stored = dict(conn.execute(select(rf.business_day, func.count())
                                   .where(self.mine(report_facts), rf.business_day.between(start, end))
                                   .group_by(rf.business_day)).all())
        days.visits = dict(conn.execute(select(v.business_day, func.count())
                                        .where(self.mine(visits), v.business_day.between(start, end))
                                        .group_by(v.business_day)).all())
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
                    conn.execute(delete(report_facts).where(self.mine(report_facts), rf.business_day == d))
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
                    there = set(conn.execute(select(rf.business_day)
                                             .where(self.mine(report_facts), rf.business_day.in_(final))
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
        stored = dict(conn.execute(select(rf.business_day, func.count())
                                   .where(self.mine(report_facts), rf.business_day.in_(final))
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
        if self.hall is None:
            raise ReportError("REPORT_DATABASE", detail="facts are prepared hall by hall (--hall ID)")
        now = now or datetime.now(UTC)
        last = self.hours.business_day(now) - timedelta(days=1)
        end = min(end or last, last)
        if start is None:
            with self.engine.connect() as conn:
                first = conn.execute(select(func.min(visits.c.business_day)).where(self.mine(visits))).scalar()
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
            self._prepare_days(chunk, stop, now)
            chunk = stop + timedelta(days=1)
        return out

    def _prepare_days(self, start: date, end: date, now: datetime) -> None:
        """Add up and store the final days of the period that have no report day yet (broker/reports/daily.py),
        as a report grouped by service would."""
        from queuehall.broker.reports.daily import DayData

        days: Any = self  # every builder is a DayFigures (reports/days.py, which imports this module)
        if self.hall is None or not days.uses_days(start, end, "service"):
            return
        with self.engine.connect() as conn:
            data = DayData.read(conn, [self.hall], start, end)
        days.fill_days(data, start, end, now)

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
            stored: ColumnElement[bool] = and_(self.mine(report_facts), rf.business_day.between(start, end))
            if days.stale or days.live:
                stored = and_(stored, rf.business_day.not_in(sorted({*days.stale, *(days.live or ())})))
            parts.append(select(*(rf[c] for c in FACT_COLUMNS)).where(stored))
        temp = False
        if days.live is None or days.live or not parts:
            v = visits.c
            live = and_(self.mine(visits), v.business_day >= start, v.business_day <= end)
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
        if group == "hall":  # a city report (docs/city.md)
            return f.c.hall_id
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
