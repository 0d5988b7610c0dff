"""Opening hours: weekly periods, breaks, cut-offs, caps, statutory holidays and make-up days.

The calendar facts come from the real ``chinesecalendar`` package (2026: National Day
1–7 October with make-up Sundays/Saturdays 20 September and 10 October; Spring Festival
15–23 February). Every refusal's ``next_open`` is checked in the hall's local time.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, date, datetime, time
from typing import Any

import pytest
from queuehall.broker.config import HallConfig, Hours, Period
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


def test_a_year_the_calendar_does_not_cover_uses_weekly_hours(caplog: pytest.LogCaptureFixture) -> None:
    oh = OpeningHours(small_config().hours, "Asia/Shanghai")
    with caplog.at_level(logging.WARNING, logger="queuehall.broker.hours"):
        assert oh.periods_on(date(2035, 10, 1)) == tuple(DAY)  # a Monday; National Day unknown for 2035
        assert oh.periods_on(date(2035, 10, 2)) == tuple(DAY)
        assert oh.periods_on(date(2035, 9, 30)) == ()  # a Sunday
    warnings = [r for r in caplog.records if "2035" in r.getMessage()]
    assert len(warnings) == 1  # said once per year, not once per question
    assert take(small_config(), local(date(2035, 10, 1), 10))["ticket"]["business_day"] == "2035-10-01"


def test_no_opening_within_the_search_horizon_gives_no_next_open() -> None:
    never = hours(weekly=tuple(() for _ in range(7)), chinese_calendar=False, makeup_hours=MORNING)
    window = OpeningHours(never, "Asia/Shanghai").issue_window(local(TUESDAY, 10))
    assert (window.state, window.next_open) == (CLOSED, None)
    code, next_open = refusal(small_config(hours=never), local(TUESDAY, 10))
    assert code == "HALL_CLOSED" and next_open == "—"
