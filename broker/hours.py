"""Opening hours: business days, breaks, statutory holidays and when issuing opens next.

Where the hall's holidays and make-up working days (调休) come from, first match wins
(docs/calling-rules.md "Opening hours and holidays"):

1. the hall's own ``closed_days`` and ``working_days``;
2. a year declared in hall.toml (``[[hours.notice]]``, copied from the State Council's notice);
3. the ``holidays`` library (python-holidays), for the years whose notice it carries;
4. for other years, the statutory holidays the law fixes (《全国年节及纪念日放假办法》) from the same
   library, without any in-lieu day or make-up working day, which only a notice can give.

Case 4 is a guess about the days around each holiday, so :meth:`OpeningHours.calendar_status`
reports it (the broker logs it, shows it in ``status``, on every counter and as an event).
This module is the hall's only calendar: the working days of promised completion dates
(:meth:`OpeningHours.promised_date`) come from it too, for the broker and the reports alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from queuehall.broker.config import Hours, Period

from queuehall.errors import HallError

log = logging.getLogger(__name__)

OPEN = "open"
BREAK = "break"
CLOSED = "closed"
PAST_CUTOFF = "past_cutoff"

_SEARCH_DAYS = 60  # the longest closure we look past (Spring Festival + extra closed days)
WARN_AHEAD_DAYS = 60  # official holiday data must cover today and this many days ahead


@dataclass(frozen=True)
class _LibraryYear:
    """What the holiday library says about one year."""

    holidays: frozenset[date]  # days off
    workdays: frozenset[date]  # make-up working days it lists under this year (may fall in the year before)
    official: bool  # the library carries this year's State Council notice


@lru_cache(maxsize=64)
def library_year(year: int) -> _LibraryYear:
    """The holiday library's China calendar for ``year`` (cached: building it takes ~1 ms).

    For a year whose State Council notice the library carries, its full arrangement (in-lieu days
    and make-up working days included); for any other year only the statutory holidays, with no
    in-lieu days (the library's own "observed" days are its estimate, not the notice).
    """
    china = _china_module()
    official = year in getattr(china.ChinaStaticHolidays, "special_public_holidays", {})
    cal = china.China(years=year, observed=official)
    return _LibraryYear(frozenset(cal), frozenset(cal.weekend_workdays) if official else frozenset(), official)


def _china_module() -> Any:
    """The holiday library's China module, without the library's list of every country.

    ``import holidays.countries.china`` first runs ``holidays/countries/__init__.py``, which imports
    all of the library's 250 countries: a fifth of a second (more on a busy machine) that a restarted
    broker paid before it could bind, while every screen waited (docs/benchmarks-history.md, Broker
    restart). The China module needs only the library's core, so it is loaded from its file under its
    own name; anything unexpected (another layout in a later version) falls back to the plain import."""
    import importlib.util
    import sys

    name = "holidays.countries.china"
    if name in sys.modules:
        return sys.modules[name]
    try:
        import holidays

        spec = importlib.util.spec_from_file_location(name, Path(holidays.__file__).parent / "countries" / "china.py")
        if spec is None or spec.loader is None:
            raise ImportError(name)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # as the plain import would: ``holidays.countries`` later finds it there
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    except Exception:
        log.debug("loading the holiday library's China module from its file failed", exc_info=True)
        import importlib

        return importlib.import_module(name)


def _library_holiday(day: date) -> bool:
    return day in library_year(day.year).holidays


def _library_workday(day: date) -> bool:
    # A notice's make-up days may fall in the year before (29 December for the next New Year).
    return day in library_year(day.year).workdays or day in library_year(day.year + 1).workdays


def library_version() -> str:
    """``holidays <version>``: named in the status reply so a stale library is easy to spot."""
    import holidays

    return f"holidays {holidays.__version__}"


@dataclass(frozen=True)
class IssueWindow:
    """Whether tickets may be issued now, and when issuing opens next (UTC, or None)."""

    state: str
    next_open: datetime | None
    # While open: when the present period ends (the session's end, UTC); the kiosk warns a wait past it.
    session_end: datetime | None = None


class OpeningHours:
    """Answers calendar questions for one hall. Pure: no I/O beyond the holiday table."""

    def __init__(self, hours: Hours, timezone: str) -> None:
        self.hours = hours
        self.tz = ZoneInfo(timezone)
        # Asked on every published service summary; the calendar of a day never changes.
        self._periods: dict[date, tuple[Period, ...]] = {}
        self._bounds: dict[date, tuple[tuple[datetime, datetime], ...]] = {}
        self._official: dict[date, bool | None] = {}
        self._promised: dict[tuple[date, int], date] = {}
        self._notice_years = frozenset(n.year for n in hours.notices)

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
        official = self.official_day(day)
        if official is True:
            return ()  # a statutory holiday or its in-lieu day
        if official is False and not weekly:
            return self.hours.makeup_hours  # a make-up working day on a normally closed day
        return weekly

    # -- the calendar ---------------------------------------------------------------------

    def official_day(self, day: date) -> bool | None:
        """True on a public holiday (or in-lieu day off), False on a make-up working day (调休上班),
        None on an ordinary day, from a declared notice or the library (not the hall's own days)."""
        if day not in self._official:
            self._official[day] = self._official_day(day)
        return self._official[day]

    def _official_day(self, day: date) -> bool | None:
        if not self.hours.chinese_calendar and not self.hours.notices:
            return None
        for n in self.hours.notices:  # a notice's dates may reach into the year around it
            if day in n.holidays:
                return True
            if day in n.working_days:
                return False
        if day.year in self._notice_years or not self.hours.chinese_calendar:
            return None  # the notice of this year lists every day that is not ordinary
        if _library_holiday(day):
            return True
        if _library_workday(day):
            return False
        if day.weekday() >= 5:
            # The library names the holidays, not the weekend they join (春节 2026: 15-23 February with
            # Saturday the 21st; 端午 2026: Friday 19 June "与周末连休"). A weekend day next to a holiday,
            # directly or through the rest of that weekend, is part of the break: closed.
            for step in (1, -1):
                d = day + timedelta(days=step)
                while d.weekday() >= 5 and not _library_workday(d) and not _library_holiday(d):
                    d += timedelta(days=step)
                if _library_holiday(d):
                    return True
        return None

    def is_working_day(self, day: date) -> bool:
        """A statutory working day (工作日) for promised time limits (限时办结): Monday to Friday except
        public holidays, plus make-up working days; the hall's ``closed_days`` never are and its
        ``working_days`` always are. The hall's opening days do not matter (Saturday hours do not
        shorten a promise)."""
        if day in self.hours.closed_days:
            return False
        if day in self.hours.working_days:
            return True
        official = self.official_day(day)
        if official is not None:
            return not official
        return day.weekday() < 5

    def promised_date(self, accepted: date, working_days: int) -> date | None:
        """The promised completion date: ``working_days`` working days after the day of acceptance
        (that day itself not counted); None for 0 days (completed on the spot). The one rule the
        broker sends with each ticket and the reports count past-due matters by."""
        if working_days <= 0:
            return None
        key = (accepted, working_days)
        if key not in self._promised:  # asked for every ticket the broker publishes
            d, left = accepted, working_days
            while left:
                d += timedelta(days=1)
                if self.is_working_day(d):
                    left -= 1
            self._promised[key] = d
        return self._promised[key]

    def covered(self, day: date) -> bool:
        """Whether official data (a declared notice, or the library's copy of one) covers ``day``;
        always true for a hall that does not follow the national calendar."""
        if not self.hours.chinese_calendar:
            return True
        return day.year in self._notice_years or library_year(day.year).official

    def calendar_status(self, today: date, ahead: int = WARN_AHEAD_DAYS) -> dict[str, Any]:
        """The calendar's sources and whether official data covers ``today`` and ``ahead`` days after.

        ``warning`` is None when it does, else the code ``CALENDAR_NO_OFFICIAL_DATA`` with a bilingual
        message naming the first day without data (as :meth:`HallError.to_dict` gives it).
        """
        years = sorted({y for y in range(today.year - 1, (today + timedelta(days=ahead)).year + 2)
                        if self.hours.chinese_calendar and library_year(y).official} | self._notice_years)
        gap = next((today + timedelta(days=n) for n in range(ahead + 1)
                    if not self.covered(today + timedelta(days=n))), None)
        warning = None
        if gap is not None:
            last = gap - timedelta(days=1)
            warning = HallError("CALENDAR_NO_OFFICIAL_DATA", first_day=gap.isoformat(), year=gap.year,
                                last_day=last.isoformat() if self.covered(last) else "—").to_dict()
        return {
            "follows_national_calendar": self.hours.chinese_calendar,
            "library": library_version() if self.hours.chinese_calendar else None,
            "notice_years": sorted(self._notice_years),
            "official_years": years,
            "checked_through": (today + timedelta(days=ahead)).isoformat(),
            "warning": warning,
        }

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
            return IssueWindow(OPEN, None, session_end=end)
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
