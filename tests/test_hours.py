"""Opening hours: weekly periods, breaks, cut-offs, caps, statutory holidays and make-up days.

The calendar facts come from the real ``holidays`` package (2026: National Day
1–7 October with make-up Sundays/Saturdays 20 September and 10 October; Spring Festival
15–23 February). Every refusal's ``next_open`` is checked in the hall's local time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from queuehall.broker.config import HallConfig, Hours, Notice, Period
from queuehall.broker.engine import Hall
from queuehall.broker.hours import BREAK, CLOSED, OPEN, PAST_CUTOFF, OpeningHours

from queuehall.clock import ManualClock
from queuehall.errors import HallError
from tests.hall_factory import DAY, TUESDAY, TZ, local, small_config

MORNING = (Period(time(9, 0), time(12, 0)),)  # make-up hours distinct from the weekly ones
WEEKDAYS_ONLY = tuple(tuple(DAY) if i < 5 else () for i in range(7))


def hours(**kw: Any) -> Hours:
    return replace(small_config().hours, **kw)


def config(**kw: Any) -> HallConfig:
    return small_config(hours=hours(**kw))


def take(cfg: HallConfig, at: datetime, service: str = "P") -> dict[str, Any]:
    """Issue one ticket in a fresh hall at ``at``; HallError when refused."""
    return Hall(cfg, ManualClock(at)).execute("take_ticket", {"service": service})


def refusal(cfg: HallConfig, at: datetime, service: str = "P") -> tuple[str, str]:
    """The refusal code and local next_open of issuing at ``at``; checks the hall did not change."""
    hall = Hall(cfg, ManualClock(at))
    before = hall.snapshot()
    with pytest.raises(HallError) as info:
        hall.execute("take_ticket", {"service": service})
    assert hall.snapshot() == before and hall.numbers == {}
    err = info.value
    assert err.details["next_open"] in err.message_zh and err.details["next_open"] in err.message_en
    return err.code, err.details["next_open"]


def local_str(at: datetime | None) -> str | None:
    return at.astimezone(TZ).strftime("%Y-%m-%d %H:%M") if at else None


# ---------------------------------------------------------------------------------------------- a weekday


@pytest.mark.parametrize(("hh", "mm", "state", "next_open"), [
    (0, 0, CLOSED, "2026-11-24 08:30"),
    (8, 29, CLOSED, "2026-11-24 08:30"),
    (8, 30, OPEN, None),
    (11, 29, OPEN, None),
    (11, 30, BREAK, "2026-11-24 13:30"),
    (13, 29, BREAK, "2026-11-24 13:30"),
    (13, 30, OPEN, None),
    (16, 29, OPEN, None),
    (16, 30, PAST_CUTOFF, "2026-11-25 08:30"),
    (16, 59, PAST_CUTOFF, "2026-11-25 08:30"),
    (17, 0, CLOSED, "2026-11-25 08:30"),
    (23, 59, CLOSED, "2026-11-25 08:30"),
])
def test_weekday_states_at_the_boundaries(hh: int, mm: int, state: str, next_open: str | None) -> None:
    oh = OpeningHours(small_config().hours, "Asia/Shanghai")
    window = oh.issue_window(local(TUESDAY, hh, mm), cutoff_minutes=30)
    assert (window.state, local_str(window.next_open)) == (state, next_open)
    assert oh.is_open(local(TUESDAY, hh, mm)) == (state in (OPEN, PAST_CUTOFF))


def test_cutoff_is_per_service() -> None:
    oh = OpeningHours(small_config().hours, "Asia/Shanghai")
    assert oh.issue_window(local(TUESDAY, 16, 59), cutoff_minutes=0).state == OPEN
    assert oh.issue_window(local(TUESDAY, 16, 0), cutoff_minutes=90).state == PAST_CUTOFF
    cfg = small_config(services=tuple(replace(s, cutoff_minutes=0) if s.code == "FEE" else s
                                      for s in small_config().services))
    assert refusal(cfg, local(TUESDAY, 16, 45), "P") == ("PAST_CUTOFF", "2026-11-25 08:30")
    assert take(cfg, local(TUESDAY, 16, 45), "FEE")["ticket"]["label"] == "F001"


def test_refusal_codes_from_the_hall() -> None:
    cfg = small_config()
    assert refusal(cfg, local(TUESDAY, 7, 0)) == ("HALL_CLOSED", "2026-11-24 08:30")
    assert refusal(cfg, local(TUESDAY, 12, 15)) == ("HALL_BREAK", "2026-11-24 13:30")
    assert refusal(cfg, local(TUESDAY, 16, 40)) == ("PAST_CUTOFF", "2026-11-25 08:30")
    assert refusal(cfg, local(TUESDAY, 18, 0)) == ("HALL_CLOSED", "2026-11-25 08:30")
    saturday = date(2026, 11, 28)  # this hall opens Monday to Saturday
    assert take(cfg, local(saturday, 9))["ticket"]["business_day"] == "2026-11-28"
    assert refusal(cfg, local(saturday, 17, 30)) == ("HALL_CLOSED", "2026-11-30 08:30")
    assert refusal(cfg, local(date(2026, 11, 29), 10)) == ("HALL_CLOSED", "2026-11-30 08:30")


def test_a_cutoff_reaching_into_the_break_ends_issuing_at_the_break() -> None:
    afternoon = Period(time(13, 30), time(14, 0))
    short = hours(weekly=tuple((DAY[0], afternoon) if i < 6 else () for i in range(7)))
    oh = OpeningHours(short, "Asia/Shanghai")
    window = oh.issue_window(local(TUESDAY, 12, 0), cutoff_minutes=60)
    # Nothing more can be issued today: say so, rather than "break" with tomorrow's time.
    assert (window.state, local_str(window.next_open)) == (PAST_CUTOFF, "2026-11-25 08:30")
    assert oh.issue_window(local(TUESDAY, 12, 0), cutoff_minutes=20).state == BREAK
    assert refusal(small_config(hours=short), local(TUESDAY, 11, 45)) == ("PAST_CUTOFF", "2026-11-25 08:30")


@pytest.mark.parametrize(("day", "next_open"), [
    (TUESDAY, "2026-11-25 08:30"),
    (date(2026, 11, 28), "2026-11-30 08:30"),  # Saturday: Sunday is closed
    (date(2026, 9, 30), "2026-10-08 08:30"),  # the eve of National Day
])
def test_daily_cap_next_open_is_the_next_business_day(day: date, next_open: str) -> None:
    cfg = small_config(services=tuple(replace(s, daily_cap=1) for s in small_config().services))
    hall = Hall(cfg, ManualClock(local(day, 9)))
    assert hall.execute("take_ticket", {"service": "P"})["ticket"]["label"] == "A001"
    with pytest.raises(HallError) as info:
        hall.execute("take_ticket", {"service": "P"})
    assert info.value.code == "DAILY_CAP_REACHED" and info.value.details["next_open"] == next_open
    assert hall.execute("take_ticket", {"service": "H"})["ticket"]["label"] == "B001"
    assert hall.snapshot()["services"][0]["issue_state"] == "daily_cap"


def test_business_day_is_the_local_date() -> None:
    oh = OpeningHours(small_config().hours, "Asia/Shanghai")
    assert oh.business_day(local(TUESDAY, 23, 59)) == TUESDAY
    assert oh.business_day(local(date(2026, 11, 25), 0, 0)) == date(2026, 11, 25)
    # 16:30 UTC on the 24th is already 00:30 on the 25th in Beijing.
    assert oh.business_day(datetime(2026, 11, 24, 16, 30, tzinfo=UTC)) == date(2026, 11, 25)


# ---------------------------------------------------------------------------------------------- holidays


def test_national_day_is_closed() -> None:
    cfg = small_config()
    assert refusal(cfg, local(date(2026, 10, 1), 10)) == ("HALL_CLOSED", "2026-10-08 08:30")
    assert refusal(cfg, local(date(2026, 10, 3), 10)) == ("HALL_CLOSED", "2026-10-08 08:30")  # a Saturday
    assert refusal(cfg, local(date(2026, 9, 30), 17, 30)) == ("HALL_CLOSED", "2026-10-08 08:30")
    assert take(cfg, local(date(2026, 10, 8), 8, 30))["ticket"]["label"] == "A001"
    oh = OpeningHours(cfg.hours, "Asia/Shanghai")
    assert oh.periods_on(date(2026, 10, 1)) == () and oh.periods_on(date(2026, 10, 8)) == tuple(DAY)


def test_spring_festival_next_open_skips_the_whole_holiday() -> None:
    cfg = small_config()
    assert refusal(cfg, local(date(2026, 2, 14), 17, 30)) == ("HALL_CLOSED", "2026-02-24 08:30")
    assert refusal(cfg, local(date(2026, 2, 18), 10)) == ("HALL_CLOSED", "2026-02-24 08:30")


def test_makeup_sunday_opens_with_makeup_hours() -> None:
    cfg = config(makeup_hours=MORNING)
    sunday = date(2026, 9, 20)  # 调休上班 for National Day
    assert refusal(cfg, local(sunday, 8, 45)) == ("HALL_CLOSED", "2026-09-20 09:00")
    reply = take(cfg, local(sunday, 9, 0))
    assert reply["ticket"]["label"] == "A001" and reply["ticket"]["business_day"] == "2026-09-20"
    assert refusal(cfg, local(sunday, 11, 40)) == ("PAST_CUTOFF", "2026-09-21 08:30")
    assert refusal(cfg, local(sunday, 13, 30)) == ("HALL_CLOSED", "2026-09-21 08:30")
    # An ordinary Sunday stays closed; the Saturday before follows the weekly hours.
    assert refusal(cfg, local(date(2026, 9, 13), 10)) == ("HALL_CLOSED", "2026-09-14 08:30")
    assert refusal(cfg, local(date(2026, 9, 19), 17, 30)) == ("HALL_CLOSED", "2026-09-20 09:00")


def test_makeup_saturday_for_a_weekday_hall() -> None:
    cfg = config(weekly=WEEKDAYS_ONLY, makeup_hours=MORNING)
    assert take(cfg, local(date(2026, 10, 10), 9, 30))["ticket"]["business_day"] == "2026-10-10"
    assert refusal(cfg, local(date(2026, 10, 17), 9, 30)) == ("HALL_CLOSED", "2026-10-19 08:30")
    assert refusal(cfg, local(date(2026, 10, 9), 17, 30)) == ("HALL_CLOSED", "2026-10-10 09:00")


def test_config_closed_days_and_working_days() -> None:
    sunday = date(2026, 11, 29)
    cfg = config(closed_days=frozenset({TUESDAY}), working_days=frozenset({sunday, date(2026, 10, 2)}),
                 makeup_hours=MORNING)
    assert refusal(cfg, local(TUESDAY, 10)) == ("HALL_CLOSED", "2026-11-25 08:30")
    assert refusal(cfg, local(date(2026, 11, 23), 17, 30)) == ("HALL_CLOSED", "2026-11-25 08:30")
    assert take(cfg, local(sunday, 9, 15))["ticket"]["business_day"] == "2026-11-29"
    assert refusal(cfg, local(sunday, 8, 0)) == ("HALL_CLOSED", "2026-11-29 09:00")
    # A working day in the config wins over the statutory holiday; a weekday keeps its weekly hours.
    assert take(cfg, local(date(2026, 10, 2), 14))["ticket"]["business_day"] == "2026-10-02"
    assert refusal(cfg, local(date(2026, 10, 1), 17, 30)) == ("HALL_CLOSED", "2026-10-02 08:30")


def test_calendar_can_be_switched_off() -> None:
    cfg = config(chinese_calendar=False)
    assert take(cfg, local(date(2026, 10, 1), 10))["ticket"]["business_day"] == "2026-10-01"
    assert refusal(cfg, local(date(2026, 9, 20), 10)) == ("HALL_CLOSED", "2026-09-21 08:30")


def test_a_year_without_a_notice_closes_on_the_statutory_days_only() -> None:
    oh = OpeningHours(small_config().hours, "Asia/Shanghai")
    assert oh.periods_on(date(2035, 10, 1)) == ()  # a Monday: National Day, fixed by law
    assert oh.periods_on(date(2035, 10, 3)) == ()
    assert oh.periods_on(date(2035, 10, 4)) == tuple(DAY)  # no in-lieu day is guessed
    assert oh.periods_on(date(2035, 9, 30)) == ()  # a Sunday
    assert take(small_config(), local(date(2035, 10, 4), 10))["ticket"]["business_day"] == "2035-10-04"
    warning = oh.calendar_status(date(2035, 9, 1))["warning"]
    assert warning["code"] == "CALENDAR_NO_OFFICIAL_DATA" and warning["details"]["first_day"] == "2035-09-01"


# ---------------------------------------------------------------------------------------------- 2027


def test_new_years_day_2027_is_closed() -> None:
    """Friday 1 January 2027: closed by law although no library carries the 2027 notice yet; the
    weekend it joins too (the hall is open on Saturdays)."""
    cfg = small_config()
    assert refusal(cfg, local(date(2026, 12, 31), 17, 30)) == ("HALL_CLOSED", "2027-01-04 08:30")
    assert refusal(cfg, local(date(2027, 1, 1), 10)) == ("HALL_CLOSED", "2027-01-04 08:30")
    assert refusal(cfg, local(date(2027, 1, 2), 10)) == ("HALL_CLOSED", "2027-01-04 08:30")  # a Saturday
    assert take(cfg, local(date(2027, 1, 4), 8, 30))["ticket"]["business_day"] == "2027-01-04"


def test_spring_festival_2027_statutory_days_are_closed() -> None:
    """New Year's Eve (Friday 5 February) to the third day (Monday 8 February), by law; without the notice
    no make-up working day and no in-lieu day is invented, and the status says so."""
    cfg = small_config()
    oh = OpeningHours(cfg.hours, "Asia/Shanghai")
    assert [oh.periods_on(date(2027, 2, d)) == () for d in range(4, 10)] == [False, True, True, True, True, False]
    assert refusal(cfg, local(date(2027, 2, 4), 17, 30)) == ("HALL_CLOSED", "2027-02-09 08:30")
    assert refusal(cfg, local(date(2027, 2, 6), 10)) == ("HALL_CLOSED", "2027-02-09 08:30")
    assert oh.promised_date(date(2027, 2, 4), 1) == date(2027, 2, 9)
    assert oh.periods_on(date(2027, 1, 31)) == ()  # an ordinary Sunday: no make-up day is guessed
    assert oh.calendar_status(date(2027, 1, 20))["warning"]["details"]["first_day"] == "2027-01-20"


# A made-up arrangement, NOT the State Council's 2027 notice: it is only here to test that a declared
# year replaces the library (it moves the break and adds make-up days the library cannot know).
EXAMPLE_2027 = Notice(
    year=2027, title="test arrangement (not the official notice)",
    holidays=frozenset({date(2027, 1, 1)} | {date(2027, 2, d) for d in range(5, 13)}),
    working_days=frozenset({date(2027, 1, 31), date(2027, 2, 20)}))


def test_a_declared_notice_takes_precedence_over_the_library() -> None:
    cfg = config(notices=(EXAMPLE_2027,), makeup_hours=MORNING)
    oh = OpeningHours(cfg.hours, "Asia/Shanghai")
    # Closed on every declared day off, also those the library does not know (9-12 February).
    assert all(oh.periods_on(date(2027, 2, d)) == () for d in range(5, 13))
    assert refusal(cfg, local(date(2027, 2, 4), 17, 30)) == ("HALL_CLOSED", "2027-02-13 08:30")
    # Make-up working days open: Sunday 31 January with the make-up hours, Saturday 20 February as usual.
    assert oh.periods_on(date(2027, 1, 31)) == MORNING and oh.periods_on(date(2027, 2, 20)) == tuple(DAY)
    assert take(cfg, local(date(2027, 1, 31), 9, 30))["ticket"]["business_day"] == "2027-01-31"
    # The declared year is complete: what it does not list is an ordinary day (2 January, a Saturday).
    assert oh.periods_on(date(2027, 1, 2)) == tuple(DAY)
    # Working days for promised dates follow it too: the Sunday counts, the break does not.
    assert oh.is_working_day(date(2027, 1, 31)) and not oh.is_working_day(date(2027, 2, 10))
    assert oh.promised_date(date(2027, 2, 4), 1) == date(2027, 2, 15)
    # The hall's own days still come first.
    own = config(notices=(EXAMPLE_2027,), makeup_hours=MORNING, working_days=frozenset({date(2027, 2, 8)}))
    assert OpeningHours(own.hours, "Asia/Shanghai").periods_on(date(2027, 2, 8)) == tuple(DAY)
    # And the warning moves on to the first day no notice covers.
    assert oh.calendar_status(date(2026, 12, 7))["warning"] is None
    late = oh.calendar_status(date(2027, 11, 15))
    assert late["warning"]["details"]["first_day"] == "2028-01-01" and late["notice_years"] == [2027]


def test_calendar_warning_when_official_data_runs_out() -> None:
    oh = OpeningHours(small_config().hours, "Asia/Shanghai")
    assert oh.calendar_status(date(2026, 6, 1))["warning"] is None
    assert oh.calendar_status(date(2026, 11, 1))["warning"] is None  # 60 days ahead is 31 December
    w = oh.calendar_status(date(2026, 11, 2))["warning"]
    assert w["code"] == "CALENDAR_NO_OFFICIAL_DATA"
    assert w["details"] == {"first_day": "2027-01-01", "year": 2027, "last_day": "2026-12-31"}
    assert "2027" in w["message_zh"] and "[[hours.notice]]" in w["message_en"]
    in_2029 = oh.calendar_status(date(2029, 3, 1))
    assert in_2029["warning"]["details"] == {"first_day": "2029-03-01", "year": 2029, "last_day": "—"}
    assert 2026 not in in_2029["official_years"] and in_2029["library"].startswith("holidays ")
    off = OpeningHours(config(chinese_calendar=False).hours, "Asia/Shanghai")
    assert off.calendar_status(date(2029, 3, 1))["warning"] is None  # a hall that keeps its own calendar


def test_library_agrees_with_the_2026_notice() -> None:
    """The State Council's notice for 2026 as the library carries it (the days chinesecalendar 1.11 gave too)."""
    oh = OpeningHours(small_config().hours, "Asia/Shanghai")
    off = {date(2026, 1, d) for d in (1, 2, 3)} | {date(2026, 2, d) for d in range(15, 24)} \
        | {date(2026, 10, d) for d in range(1, 8)}
    for d in off:
        assert oh.official_day(d) is True, d
    for d in (date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 9, 20), date(2026, 10, 10)):
        assert oh.official_day(d) is False and oh.is_working_day(d), d


def test_no_opening_within_the_search_horizon_gives_no_next_open() -> None:
    never = hours(weekly=tuple(() for _ in range(7)), chinese_calendar=False, makeup_hours=MORNING)
    window = OpeningHours(never, "Asia/Shanghai").issue_window(local(TUESDAY, 10))
    assert (window.state, window.next_open) == (CLOSED, None)
    code, next_open = refusal(small_config(hours=never), local(TUESDAY, 10))
    assert code == "HALL_CLOSED" and next_open == "—"
