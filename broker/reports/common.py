"""What every part of the reports shares: the groupings and formats, the error codes, the
:class:`Report` a run computes, where its facts came from (:class:`FactDays`), and small value conversions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError

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
    "REPORT_UNKNOWN_HALL": ("数据库中没有大厅“{hall}”的记录（现有：{halls}）",
                            "No records of hall {hall!r} in this database (halls: {halls})"),
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
    # Appointments (预约, broker/reports/appointments.py): bookings per service and day, waits of appointment and
    # walk-in tickets. Empty for a period without bookings.
    appointments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data (the ``--format json`` output)."""
        return {"period": {"from": self.start.isoformat(), "to": self.end.isoformat(), "timezone": self.timezone},
                "as_of": self.as_of.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "group": self.group, "tickets": self.tickets, "completion": self.completion,
                "total": self.total, "rows": self.rows, "counters": self.counters, "clerks": self.clerks,
                "hourly": self.hourly, "heatmap": self.heatmap, "notes": self.notes,
                "satisfaction": self.satisfaction, "assessment": self.assessment, "alerts": self.alerts,
                "appointments": self.appointments}


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


def _first_line(err: DBAPIError) -> str:
    return str(err.orig or err).splitlines()[0]


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
