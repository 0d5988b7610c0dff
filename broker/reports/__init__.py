"""Reports on tickets, waits, service times, counters and clerks, computed as SQL aggregates.

Reads the database directly (a copy away from the hall works just as well) and never
talks to the broker. Every figure follows its definition in docs/reports.md; the code
that computes it names the section it implements. Change one, change the other.

Every figure is an aggregate over per-visit *facts* (:meth:`ReportBuilder.facts_select`):
those of closed business days are stored in ``report_facts`` once and read back, the rest
are computed for each report (docs/reports.md "How it reads the database"); the groupings by service,
department and hall read the final days added up instead (report days, docs/reports.md "Report days"; the same
figures, tests/test_report_days.py). Percentiles are
nearest-rank (the value at rank ⌈p·n⌉ of the sorted sample): ``percentile_disc`` on
PostgreSQL; on SQLite, which sorts slowly, the values are sorted in Python. tests/test_reports.py
checks every figure on both databases against plain Python, with and without stored facts.

The parts, bottom up (each imports only those above it):

* ``common``   — groupings, formats, error codes (:class:`ReportError`), :class:`Report`, :class:`FactDays`
* ``sql``      — portable SQL pieces (Unix ms, hall-local hour and weekday) and the TEMP facts table
* ``facts``    — :class:`~queuehall.broker.reports.facts.FactReader`: the facts of a period, stored or live
* ``figures``  — visit and ticket figures, percentiles, same-day and promised completion
* ``counters`` — counter time, clerks, per hour and busy hours
* ``daily``    — report days: each hall's final business days of facts added up (report_days, report_day_times)
* ``days``     — the figures of the groupings by service, department and hall read from report days
* ``appointments`` — the appointment (预约) figures: bookings, check-in rate, punctuality, waits
* ``builder``  — :class:`ReportBuilder`: the whole report of a period
* ``render``   — the terminal table, CSV and Excel
* ``charts``   — PNG charts (matplotlib)
* ``cli``      — ``queuehall report`` and ``queuehall purge``

This package's names below are the public ones: import them from ``queuehall.broker.reports``.
"""

from __future__ import annotations

from queuehall.broker.reports.builder import ReportBuilder
from queuehall.broker.reports.charts import charts
from queuehall.broker.reports.cli import parse_period, register
from queuehall.broker.reports.common import (
    ERRORS,
    FORMATS,
    GROUPS,
    OPEN_STATUSES,
    SAME_DAY_TARGET,
    FactDays,
    Report,
    ReportError,
)
from queuehall.broker.reports.render import (
    CLERK_COLUMNS,
    COUNTER_COLUMNS,
    ROW_COLUMNS,
    ROW_FIGURES,
    to_csv,
    to_table,
    to_xlsx,
)
from queuehall.broker.reports.sql import FACT_COLUMNS, LIVE_FACTS, local_part, offset_segments, unix_ms

__all__ = [
    "CLERK_COLUMNS", "COUNTER_COLUMNS", "ERRORS", "FACT_COLUMNS", "FORMATS", "GROUPS", "LIVE_FACTS", "OPEN_STATUSES",
    "ROW_COLUMNS", "ROW_FIGURES", "SAME_DAY_TARGET", "FactDays", "Report", "ReportBuilder", "ReportError", "charts",
    "local_part", "offset_segments", "parse_period", "register", "to_csv", "to_table", "to_xlsx", "unix_ms",
]
