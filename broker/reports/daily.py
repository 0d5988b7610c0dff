"""Report days: each hall's business days of facts added up (docs/reports.md "How it reads the database",
"Report days"), so that a month's report, and a city's over every hall, adds up about 31 rows per hall and kind
instead of reading every visit.

A day is added up (:class:`Tally`) from the same facts every figure is defined on, when its facts are final
and stored (``report_days``, ``report_day_times``; migration 0011); days that are not (today, a day still going
on, a database that cannot be written) are added up on the fly the same way. What depends on the configuration
(targets, departments, promised days, the time zone) stays out of the stored rows and is applied when they are
read, as with the facts:

* counts and sums add up;
* the share called within the target wait: waits are counted per *minute* (the first whole minute at or above
  the wait), and targets are whole minutes, so "within T minutes" is the count of minutes up to T;
* nearest-rank percentiles: the counts per minute find the minute that holds the rank, and that minute's
  stored values (milliseconds) give the exact value, so a percentile equals the one sorted from every visit;
* per hour and busy hours: arrivals and ends per UTC quarter hour, turned into local hours and weekdays with
  the period's UTC offsets (every offset and change of today's zones is on a quarter hour; a zone where it is
  not is reported from the facts).

A stored day is read only while its visit count equals the visits the day has in the database (checked on
every report, from an index), so visits added or deleted behind the broker's back, or a purge, never leave a
wrong total: such a day is added up again. The engine gives all visits of a ticket their ticket's business
day (the no-shows of a day can no longer be reinstated after it), which is what lets tickets be counted per day.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from queuehall.broker.reports.common import _as_date
from queuehall.broker.reports.sql import _count, offset_segments, unix_ms
from queuehall.broker.storage import report_day_times, report_days, tickets, visits
from sqlalchemy import (
    BigInteger,
    Integer,
    String,
    Text,
    and_,
    case,
    cast,
    column,
    distinct,
    func,
    literal,
    literal_column,
    or_,
    select,
    tuple_,
    values,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.exc import DBAPIError

MINUTE_MS = 60_000
QUARTER_MS = 900_000
#: The groupings a report reads from report days; the others (counter, clerk, hour, day) read the facts.
DAILY_GROUPS = ("service", "department", "hall")
_OUTCOMES = (("finished", "finished"), ("no_show", "no_show"), ("transferred_out", "transferred"),
             ("cancelled", "cancelled"), ("voided", "voided"), ("closed_unserved", "closed_unserved"))
SERVICE_FIGURES = ("visits", "issued", "called", "served", "finished", "no_show", "transferred_out", "cancelled",
                   "voided", "closed_unserved", "open", "wait_sum", "wait_n", "service_sum", "service_n",
                   "first_finished")
COUNTER_FIGURES = ("called", "served", "finished", "no_show", "busy", "serving", "a_called", "a_finished",
                   "a_no_show", "a_timed", "a_us")


def minute_of(ms: int) -> int:
    """The first whole minute at or above ``ms``: a time is within T minutes exactly when this is ≤ T."""
    return -((-ms) // MINUTE_MS)


def quarters_exact(tz: ZoneInfo, start: date, end: date) -> bool:
    """Whether every UTC offset of ``tz`` in the period, and every change of it, falls on a quarter hour (then a
    UTC quarter hour lies in one local hour and weekday)."""
    return all(off % 15 == 0 and (until is None or (until.minute % 15 == 0 and not until.second))
               for until, off in offset_segments(tz, start, end))


def local_of_quarter(segments: list[tuple[Any, int]], q: int) -> tuple[int, int]:
    """(weekday with 0 = Sunday, hour) in local time of UTC quarter hour ``q``, as :func:`sql.local_part`."""
    ms = q * QUARTER_MS
    off = segments[-1][1]
    for until, o in segments[:-1]:
        if ms < unix_ms(until):
            off = o
            break
    shifted = ms + off * 60_000
    return (shifted // 86_400_000 + 4) % 7, shifted // 3_600_000 % 24


def _new_service() -> dict[str, Any]:
    return {**dict.fromkeys(SERVICE_FIGURES, 0), "wait_max": None}


@dataclass
class Tally:
    """Days of facts (and of tickets and visits) added up in Python: the rows of report_days
    (``days``: (hall, day, kind, key) -> data) and report_day_times (``times``: (hall, day, service, minute) ->
    [waits, services, first waits, elapsed, wait values, service values])."""

    days: dict[tuple[str, date, str, str], Any] = field(default_factory=dict)
    times: dict[tuple[str, date, str, int], list[Any]] = field(default_factory=dict)
    _went_on: dict[tuple[str, date, int], list[Any]] = field(default_factory=dict)

    def _row(self, hall: str, day: date, kind: str, key: str, make: Any) -> Any:
        k = (hall, day, kind, key)
        if k not in self.days:
            self.days[k] = make()
        return self.days[k]

    def visit(self, f: Any) -> None:
        """Note one visit of a ticket that went on after a visit (``seq > 1``, transferred or a no-show), for
        "Promised completion": its ticket is counted by the services it was served in (:meth:`finish`)."""
        w = self._went_on.setdefault((f.hall_id, _as_date(f.business_day), f.ticket_id), [False, False, set()])
        w[0] = w[0] or f.seq == 1
        w[1] = w[1] or f.outcome == "finished"
        if f.service_ms is not None:
            w[2].add(f.service)

    def ticket(self, hall: str, day: date, queue_service: str, status: str, n: int) -> None:
        """Add ``n`` tickets of ``day`` with this queue and final status ("Ticket figures")."""
        t = self._row(hall, day, "tickets", queue_service, dict)
        t[status] = t.get(status, 0) + n

    def assessed(self, hall: str, day: date, counter: Any, clerk: str, post: Any, called: int, finished: int,
                 no_show: int, timed: int, us: int) -> None:
        """Add the clerk assessment's visit counts and service microseconds (broker/satisfaction.py)."""
        c = self._row(hall, day, "counter", json.dumps([counter, clerk, post]),
                      lambda: {**dict.fromkeys(COUNTER_FIGURES, 0), "last": None})
        for k, n in (("a_called", called), ("a_finished", finished), ("a_no_show", no_show), ("a_timed", timed),
                     ("a_us", us)):
            c[k] += int(n)

    def finish(self) -> None:
        """Turn the per-ticket notes into day rows (call once, after the last fact)."""
        for (hall, day, _ticket), (first, finished, services) in self._went_on.items():
            if first and finished:
                w = self._row(hall, day, "went_on", "", dict)
                key = json.dumps(sorted(services))
                w[key] = w.get(key, 0) + 1
        self._went_on.clear()

    def pairs(self) -> set[tuple[str, date]]:
        return {(h, d) for h, d, _k, _key in self.days}

    def db_rows(self, pairs: set[tuple[str, date]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The rows of report_days and report_day_times for the (hall, day) ``pairs``."""
        days = [{"hall_id": h, "business_day": d, "kind": k, "key": key, "data": _dump(k, data)}
                for (h, d, k, key), data in self.days.items() if (h, d) in pairs]
        times = [{"hall_id": h, "business_day": d, "service": s, "minute": m, "waits": t[0], "services": t[1],
                  "first_waits": t[2], "elapsed": t[3], "wait_values": _values(t[4]),
                  "service_values": _values(t[5])}
                 for (h, d, s, m), t in self.times.items() if (h, d) in pairs]
        return days, times


def _values(v: list[int]) -> str | None:
    return ",".join(map(str, sorted(v))) if v else None


def _parse(text: str | None) -> list[int]:
    return list(map(int, text.split(","))) if text else []


def _dump(kind: str, data: Any) -> str:
    if kind == "hour":  # JSON object keys are text: quarter hours as [q, n] pairs
        data = {k: sorted(v.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)) for k, v in data.items()}
    return json.dumps(data, separators=(",", ":"))


def _load(kind: str, text: str) -> Any:
    data = json.loads(text)
    if kind == "hour":
        data = {k: {q: n for q, n in v} for k, v in data.items()}
    return data


@dataclass
class DayData:
    """The report days of some halls over a period: stored ones (valid: their visit count still holds) and ones
    added up on the fly (``tally``), merged. ``rows[hall]``: (day, kind, key, data); ``times[hall]``:
    (service, minute) -> [waits, services, first waits, elapsed] over the period."""

    start: date
    end: date
    halls: list[str]
    visits: dict[str, dict[date, int]] = field(default_factory=dict)
    stored: dict[str, set[date]] = field(default_factory=dict)
    rows: dict[str, list[tuple[date, str, str, Any]]] = field(default_factory=dict)
    times: dict[str, dict[tuple[str, int], list[int]]] = field(default_factory=dict)
    live_values: dict[tuple[str, str, int], tuple[list[int], list[int]]] = field(default_factory=dict)
    tallied: set[tuple[str, date]] = field(default_factory=set)
    invalid: set[tuple[str, date]] = field(default_factory=set)  # stored, but their visit count no longer holds

    @classmethod
    def read(cls, conn: Any, halls: list[str], start: date, end: date) -> DayData:
        """The visit count of every (hall, day) of the period, and the stored report days whose count holds:
        two queries for all the halls."""
        out = cls(start, end, halls)
        v, rd = visits.c, report_days.c
        for h, d, n in conn.execute(select(v.hall_id, v.business_day, func.count())
                                    .where(v.hall_id.in_(halls), v.business_day.between(start, end))
                                    .group_by(v.hall_id, v.business_day)):
            out.visits.setdefault(h, {})[_as_date(d)] = n
        found: dict[tuple[str, date], list[tuple[str, str, str]]] = defaultdict(list)
        for h, d, kind, key, data in conn.execute(
                select(rd.hall_id, rd.business_day, rd.kind, rd.key, rd.data)
                .where(rd.hall_id.in_(halls), rd.business_day.between(start, end))):
            found[(h, _as_date(d))].append((kind, key, data))
        for (h, d), rows in found.items():
            day_row = next((json.loads(data) for kind, _k, data in rows if kind == "day"), None)
            if day_row is None or day_row["visits"] != out.visits.get(h, {}).get(d):
                out.invalid.add((h, d))  # visits added or deleted since it was added up: added up again
                continue
            out.stored.setdefault(h, set()).add(d)
            out.rows.setdefault(h, []).extend((d, kind, key, _load(kind, data)) for kind, key, data in rows)
        return out

    def missing(self, hall: str) -> list[date]:
        """The days of ``hall`` with visits that have no stored report day (or one that no longer holds)."""
        have = self.stored.get(hall, set())
        return sorted(d for d in self.visits.get(hall, {}) if d not in have and (hall, d) not in self.tallied)

    def add(self, tally: Tally, pairs: set[tuple[str, date]]) -> None:
        """Take the (hall, day) ``pairs`` from ``tally`` (days added up on the fly, or just stored)."""
        for (h, d, kind, key), data in tally.days.items():
            if (h, d) in pairs:
                self.rows.setdefault(h, []).append((d, kind, key, data))
        for (h, d, s, m), t in tally.times.items():
            if (h, d) in pairs:
                acc = self.times.setdefault(h, {}).setdefault((s, m), [0, 0, 0, 0])
                for i in range(4):
                    acc[i] += t[i]
                w, sv = self.live_values.setdefault((h, s, m), ([], []))
                w.extend(t[4])
                sv.extend(t[5])
        for h, d in pairs:
            self.stored.get(h, set()).discard(d)
        self.tallied |= pairs

    def _stored_pairs(self) -> list[tuple[str, date]]:
        return sorted((h, d) for h, days in self.stored.items() for d in days if (h, d) not in self.tallied)

    def read_times(self, conn: Any) -> None:
        """The stored days' counts per service and minute, added up by the database: one query for all halls."""
        pairs = self._stored_pairs()
        if not pairs:
            return
        t = report_day_times.c
        q = (select(t.hall_id, t.service, t.minute, func.sum(t.waits), func.sum(t.services), func.sum(t.first_waits),
                    func.sum(t.elapsed))
             .where(t.hall_id.in_(self.halls), t.business_day.between(self.start, self.end))
             .group_by(t.hall_id, t.service, t.minute))
        if self.invalid or self.tallied:  # only the days that hold (usually all: no condition)
            q = q.where(tuple_(t.hall_id, t.business_day).in_(pairs))
        for h, s, m, *n in conn.execute(q):
            acc = self.times.setdefault(h, {}).setdefault((s, m), [0, 0, 0, 0])
            for i in range(4):
                acc[i] += int(n[i] or 0)

    def values(self, conn: Any, wanted: set[tuple[str, str, int]]) -> dict[tuple[str, str, int], tuple[list[int],
                                                                                                       list[int]]]:
        """The wait and service values (ms) of the stored and tallied days at each (hall, service, minute)."""
        out: dict[tuple[str, str, int], tuple[list[int], list[int]]] = {}
        for k in wanted:
            live = self.live_values.get(k)
            out[k] = (list(live[0]), list(live[1])) if live else ([], [])
        stored = {(h, d) for h, d in self._stored_pairs()}
        if wanted and stored:
            t = report_day_times.c
            cols = (t.hall_id, t.business_day, t.service, t.minute, t.wait_values, t.service_values)
            period = and_(t.hall_id.in_(sorted({h for h, _s, _m in wanted})),
                          t.business_day.between(self.start, self.end))
            if conn.dialect.name == "postgresql":  # a hash join on the list (an IN list of rows is an OR chain)
                w = values(column("h", String), column("s", String), column("m", Integer),
                           name="wanted").data(sorted(wanted))
                q = select(*cols).join(w, and_(t.hall_id == w.c.h, t.service == w.c.s, t.minute == w.c.m))
            else:
                q = select(*cols).where(tuple_(t.hall_id, t.service, t.minute).in_(sorted(wanted)))
            for h, d, s, m, w_text, sv in conn.execute(q.where(period)):
                if (h, _as_date(d)) in stored:
                    out[(h, s, m)][0].extend(_parse(w_text))
                    out[(h, s, m)][1].extend(_parse(sv))
        return out


def _minute(ms: Any) -> Any:
    """:func:`minute_of` in SQL (integer division, ``//``, truncates toward zero on both databases: for a time
    above zero, add 59,999 first)."""
    # Constants written into the statement: a GROUP BY over the expression must see the very same text.
    zero, below, minute = (literal_column(str(n), BigInteger()) for n in (0, MINUTE_MS - 1, MINUTE_MS))
    return case((ms > zero, (ms + below) // minute), else_=ms // minute)


def tally_facts(conn: Any, tally: Tally, f: Any, where: Any) -> None:
    """Add up the facts ``f`` (rows of report_facts, a table or a subquery) matching ``where`` into ``tally``,
    by the database: the same counts and sums as the SQL of figures.py and counters.py, per hall and day (and
    service, minute, counter, clerk, post or quarter hour). Only the visits of tickets that went on after a
    visit are read one by one (:meth:`Tally.visit`)."""
    c = f.c
    key = (c.hall_id, c.business_day)
    outcomes = [_count(c.outcome == o) for _k, o in _OUTCOMES]
    for h, d, service, *n in conn.execute(
            select(*key, c.service, func.count(), _count(c.seq == 1), func.count(c.first_wait_ms),
                   func.count(c.service_ms), *outcomes, _count(c.outcome.is_(None)), func.sum(c.wait_ms),
                   func.count(c.wait_ms), func.max(c.wait_ms), func.sum(c.service_ms), func.count(c.service_ms),
                   _count(and_(c.seq == 1, c.outcome == "finished", c.service_ms.isnot(None))))
            .where(where).group_by(*key, c.service)):
        row = dict(zip(("visits", "issued", "called", "served", *(k for k, _o in _OUTCOMES), "open", "wait_sum",
                        "wait_n", "wait_max", "service_sum", "service_n", "first_finished"), n, strict=True))
        row = {k: (v if k == "wait_max" else int(v or 0)) for k, v in row.items()}
        tally.days[(h, _as_date(d), "service", service)] = row
    for h, d, visits_n, moved in conn.execute(
            select(*key, func.count(), func.count(distinct(case((c.outcome == "transferred", c.ticket_id)))))
            .where(where).group_by(*key)):
        tally.days[(h, _as_date(d), "day", "")] = {"visits": int(visits_n), "transferred": int(moved)}
    pg = conn.dialect.name == "postgresql"
    for i, (col, with_values) in enumerate(((c.wait_ms, True), (c.service_ms, True), (c.first_wait_ms, False),
                                            (c.elapsed_ms, False))):
        m = _minute(col)
        values: Any = ((func.string_agg(cast(col, Text), aggregate_order_by(literal(","), col)) if pg
                        else func.group_concat(col)) if with_values else literal(None))
        for h, d, service, minute, n, text in conn.execute(
                select(*key, c.service, m, func.count(), values).where(and_(where, col.isnot(None)))
                .group_by(*key, c.service, m)):
            t = tally.times.setdefault((h, _as_date(d), service, int(minute)), [0, 0, 0, 0, [], []])
            t[i] = int(n)
            if with_values:
                t[4 + i] = _parse(text)  # sorted when written
    for h, d, counter, clerk, post, *n in conn.execute(
            select(*key, c.counter, c.clerk, c.post, func.count(), func.count(c.service_ms),
                   _count(c.outcome == "finished"), _count(c.outcome == "no_show"), func.sum(c.busy_ms),
                   func.sum(c.service_ms), func.max(case((c.counter.isnot(None), c.active_ms))))
            .where(and_(where, c.first_wait_ms.isnot(None))).group_by(*key, c.counter, c.clerk, c.post)):
        row = tally._row(h, _as_date(d), "counter", json.dumps([counter, clerk, post]),
                         lambda: {**dict.fromkeys(COUNTER_FIGURES, 0), "last": None})
        for k, v in zip(("called", "served", "finished", "no_show", "busy", "serving"), n, strict=False):
            row[k] = int(v or 0)
        row["last"] = None if n[6] is None else int(n[6])
    quarter_ms = literal_column(str(QUARTER_MS), BigInteger())
    for kind, q, cond in (("i", c.entered_ms // quarter_ms, c.seq == 1),
                          ("f", c.ended_ms // quarter_ms, c.outcome == "finished")):
        for h, d, quarter, n in conn.execute(select(*key, q, func.count()).where(and_(where, cond))
                                             .group_by(*key, q)):
            hours = tally._row(h, _as_date(d), "hour", "", lambda: {"i": {}, "f": {}})
            hours[kind][None if quarter is None else int(quarter)] = int(n)
    for r in conn.execute(select(c.hall_id, c.business_day, c.ticket_id, c.seq, c.outcome, c.service, c.service_ms)
                          .where(and_(where, or_(c.seq > 1, c.outcome.in_(["transferred", "no_show"]))))):
        tally.visit(r)


def tally_tickets(conn: Any, tally: Tally, where: Any) -> None:
    """The tickets of some days by day, queue and final status ("Ticket figures")."""
    t = tickets.c
    for h, d, qs, status, n in conn.execute(select(t.hall_id, t.business_day, t.queue_service, t.status, func.count())
                                            .where(where).group_by(t.hall_id, t.business_day, t.queue_service,
                                                                   t.status)):
        tally.ticket(h, _as_date(d), qs, status, n)


def tally_assessment(conn: Any, tally: Tally, where: Any) -> None:
    """The clerk assessment's visits of some days (broker/satisfaction.py :func:`assessment`): called, finished,
    no-shows and the exact service time in microseconds, per counter, clerk and post. PostgreSQL adds them up
    (interval seconds are exact numerics); SQLite, whose times are text, reads the called visits."""
    v = visits.c
    mine = and_(where, v.clerk.is_not(None))
    finished = v.outcome == "finished"
    timed = finished & v.serving_at.is_not(None) & v.ended_at.is_not(None)
    if conn.dialect.name == "postgresql":
        us = cast(func.extract("epoch", v.ended_at - v.serving_at) * 1_000_000, BigInteger)
        for r in conn.execute(
                select(v.hall_id, v.business_day, v.counter, v.clerk, v.post, func.count(),
                       func.count().filter(finished), func.count().filter(v.outcome == "no_show"),
                       func.count().filter(timed), func.sum(us).filter(timed))
                .where(mine).group_by(v.hall_id, v.business_day, v.counter, v.clerk, v.post)):
            tally.assessed(r[0], _as_date(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8], int(r[9] or 0))
        return
    step = timedelta(microseconds=1)
    for r in conn.execute(select(v.hall_id, v.business_day, v.counter, v.clerk, v.post, v.outcome, v.serving_at,
                                 v.ended_at).where(mine)):
        on_time = r.outcome == "finished" and r.serving_at is not None and r.ended_at is not None
        tally.assessed(r.hall_id, _as_date(r.business_day), r.counter, r.clerk, r.post, 1, r.outcome == "finished",
                       r.outcome == "no_show", on_time, (r.ended_at - r.serving_at) // step if on_time else 0)


def write_days(conn: Any, tally: Tally, pairs: set[tuple[str, date]]) -> str | None:
    """Store the report days ``pairs`` of ``tally`` (replacing what was stored for them) in one transaction;
    the error's first line if the database refused (a read-only file or replica: the days stay on the fly)."""
    if not pairs:
        return None
    pg = conn.dialect.name == "postgresql"
    from sqlalchemy.dialects import postgresql, sqlite

    dialect_insert: Any = postgresql.insert if pg else sqlite.insert
    day_rows, time_rows = tally.db_rows(pairs)
    by_hall: dict[str, list[date]] = defaultdict(list)
    for h, d in pairs:
        by_hall[h].append(d)
    try:
        with conn.begin():
            if pg:  # derived data: the commit need not wait for the WAL to reach the disk
                conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            for table in (report_days, report_day_times):
                for h, days in by_hall.items():
                    conn.execute(table.delete().where(table.c.hall_id == h, table.c.business_day.in_(days)))
            # Another report storing the same day at the same time writes the same rows.
            if day_rows:
                conn.execute(dialect_insert(report_days).on_conflict_do_nothing(), day_rows)
            if time_rows:
                conn.execute(dialect_insert(report_day_times).on_conflict_do_nothing(), time_rows)
    except DBAPIError as err:
        conn.rollback()
        return str(err.orig or err).splitlines()[0]
    return None
