"""Portable SQL pieces (SQLite and PostgreSQL): Unix milliseconds of a timestamp, the hall-local hour and
weekday of one, counting under a condition, and the TEMP table of the facts computed on the fly."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from queuehall.broker.storage import report_facts
from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    Table,
    case,
    func,
    literal_column,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.types import Integer


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
