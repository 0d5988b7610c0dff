"""Opening hours: business days, breaks, statutory holidays and when issuing opens next.

Statutory holidays and make-up working days (调休) come from the ``chinesecalendar``
package when the hall enables it; the config adds its own closed days and working
days on top. Years the package does not cover fall back to the weekly hours.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from queuehall.broker.config import Hours, Period

log = logging.getLogger(__name__)

OPEN = "open"
BREAK = "break"
CLOSED = "closed"
PAST_CUTOFF = "past_cutoff"

_WARNED_YEARS: set[int] = set()  # warn once per process, not once per calendar lookup
_SEARCH_DAYS = 60  # the longest closure we look past (Spring Festival + extra closed days)


@dataclass(frozen=True)
class IssueWindow:
    """Whether tickets may be issued now, and when issuing opens next (UTC, or None)."""

    state: str
    next_open: datetime | None


class OpeningHours:
    """Answers calendar questions for one hall. Pure: no I/O beyond the holiday table."""

    def __init__(self, hours: Hours, timezone: str) -> None:
        self.hours = hours
        self.tz = ZoneInfo(timezone)
        # Asked on every published service summary; the calendar of a day never changes.
        self._periods: dict[date, tuple[Period, ...]] = {}
        self._bounds: dict[date, tuple[tuple[datetime, datetime], ...]] = {}

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.tz)

    def business_day(self, at: datetime) -> date:
        """The hall's local calendar date of ``at``; numbering restarts on each one."""
        return at.astimezone(self.tz).date()

    def periods_on(self, day: date) -> tuple[Period, ...]:
        """The opening periods of ``day`` after holidays, closed days and make-up days."""
        periods = self._periods.get(day)
        if periods is None:
            periods = self._periods[day] = self._periods_on(day)
        return periods

    def _bounds_on(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """:meth:`periods_on` as (start, end) instants in UTC."""
        bounds = self._bounds.get(day)
        if bounds is None:
            bounds = self._bounds[day] = tuple((self._at(day, p.start), self._at(day, p.end))
                                               for p in self.periods_on(day))
        return bounds

    def _periods_on(self, day: date) -> tuple[Period, ...]:
        if day in self.hours.closed_days:
            return ()
        weekly = self.hours.weekly[day.weekday()]
        if day in self.hours.working_days:
            return weekly or self.hours.makeup_hours
        if self.hours.chinese_calendar:
            detail = self._holiday_detail(day)
            if detail is not None:
                is_holiday, name = detail
                if is_holiday and name is not None:
                    return ()  # a statutory holiday or its in-lieu day
                if not is_holiday and not weekly:
                    return self.hours.makeup_hours  # a make-up working day on a normally closed day
        return weekly

    def _holiday_detail(self, day: date) -> tuple[bool, str | None] | None:
        import chinese_calendar

        try:
            return chinese_calendar.get_holiday_detail(day)
        except NotImplementedError:
            if day.year not in _WARNED_YEARS:
                _WARNED_YEARS.add(day.year)
                log.warning("chinesecalendar has no data for %s; using weekly hours only", day.year)
            return None

    def _at(self, day: date, t) -> datetime:
        return datetime.combine(day, t, tzinfo=self.tz).astimezone(UTC)

    def issue_window(self, at: datetime, cutoff_minutes: int = 0) -> IssueWindow:
        """Whether a ticket may be issued at ``at`` for a service with this cut-off."""
        day = self.business_day(at)
        periods = self._bounds_on(day)
        cutoff = timedelta(minutes=cutoff_minutes)
        state = CLOSED
        for i, (start, end) in enumerate(periods):
            last = i == len(periods) - 1
            if at < start:
                state = BREAK if i > 0 else CLOSED
                break
            if at < end:
                state = PAST_CUTOFF if last and at >= end - cutoff else OPEN
                break
        if state == OPEN:
            return IssueWindow(OPEN, None)
        nxt = self.next_issue_start(at, cutoff_minutes)
        if state == BREAK and (nxt is None or self.business_day(nxt) != day):
            state = PAST_CUTOFF  # the cut-off swallows the rest of the day: this break ends issuing today
        return IssueWindow(state, nxt)

    def next_issue_start(self, at: datetime, cutoff_minutes: int = 0) -> datetime | None:
        """The first moment after ``at`` when issuing opens (a period's start)."""
        day = self.business_day(at)
        for offset in range(_SEARCH_DAYS + 1):
            d = day + timedelta(days=offset)
            periods = self._bounds_on(d)
            for i, (start, end) in enumerate(periods):
                if i == len(periods) - 1:
                    end -= timedelta(minutes=cutoff_minutes)
                if start > at and start < end:
                    return start
        return None

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` falls inside an opening period (ignoring cut-offs)."""
        day = self.business_day(at)
        return any(start <= at < end for start, end in self._bounds_on(day))
