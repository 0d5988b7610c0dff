"""A small, fully known hall for rule tests (independent of config/hall.toml)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from queuehall.broker.alerts import AlertRules
from queuehall.broker.config import (
    Calling,
    Clerk,
    Counter,
    Department,
    HallConfig,
    Hours,
    PauseReason,
    Period,
    PriorityClass,
    Service,
    Text,
)
from queuehall.broker.engine import MemoryPins

from queuehall.pins import Cost, hash_pin
from queuehall.simulation import DEMO_PINS

TZ = ZoneInfo("Asia/Shanghai")
DAY = [Period(time(8, 30), time(11, 30)), Period(time(13, 30), time(17, 0))]
# A Tuesday that is an ordinary working day in China's calendar.
TUESDAY = date(2026, 11, 24)
# Every clerk of small_config() signs in with this PIN; the default hall's clerks with DEMO_PINS.
PIN = "1234"
# A scrypt cost that takes microseconds: the tests sign in thousands of times (the format is the same).
TEST_COST = Cost(n=16, r=1, p=1)


def pin_of(clerk: str) -> str:
    """The PIN the tests give ``clerk``: its demonstration PIN, else :data:`PIN`."""
    return DEMO_PINS.get(clerk, PIN)


def memory_pins(config: HallConfig, pins: dict[str, str] | None = None) -> MemoryPins:
    """Every clerk's PIN (``pins`` or :func:`pin_of`) hashed, for a hall without a database."""
    return MemoryPins({c.id: hash_pin((pins or {}).get(c.id) or pin_of(c.id), TEST_COST) for c in config.clerks})


def install_pins(store: object, config: HallConfig, pins: dict[str, str] | None = None) -> None:
    """Set every clerk's PIN (``pins`` or :func:`pin_of`) in a broker.storage.Store, unless already set
    (a restarted broker must find the records, and their generation, as they were)."""
    for c in config.clerks:
        if store.pin_record(c.id) is None:  # type: ignore[attr-defined]
            store.set_pin_hash(c.id, hash_pin((pins or {}).get(c.id) or pin_of(c.id), TEST_COST),  # type: ignore[attr-defined]
                               by="test")


def local(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ)


def service(code: str, prefix: str, **kw) -> Service:
    base = Service(code=code, prefix=prefix, name=Text(f"{code}业务", f"{code} service"), department="d",
                   materials=(Text("身份证", "ID card"),), promised_days=5, target_wait_minutes=30,
                   daily_cap=0, cutoff_minutes=30, priority_classes=("elderly",), avg_service_minutes=5)
    return replace(base, **kw)


def small_config(**kw) -> HallConfig:
    """Services P (A), H (B) and FEE (F); counters 1 (P, H), 2 (H), 9 (FEE).

    The alert rules are off here (a hall's default is on): tests of other things see only their own events;
    the rules' tests switch them on (``alerts=AlertRules(...)``)."""
    cfg = HallConfig(
        name=Text("测试大厅", "Test hall"), timezone="Asia/Shanghai", number_width=3, retention_days=190,
        ticket_footer=Text("请留意叫号", "Please listen for your number"),
        display_notice=Text("欢迎", "Welcome"),
        calling=Calling(max_recalls=2, noshow_grace_minutes=30, noshow_reinstate="back", over_wait_minutes=0,
                        priority_streak=2),
        hours=Hours(weekly=tuple(tuple(DAY) if i < 6 else () for i in range(7)), chinese_calendar=True,
                    closed_days=frozenset(), working_days=frozenset(), makeup_hours=tuple(DAY)),
        departments=(Department("d", Text("部门", "Dept")),),
        priority_classes=(PriorityClass("elderly", Text("老年人", "Elderly")),
                          PriorityClass("military", Text("军人", "Military"))),
        services=(service("P", "A"), service("H", "B"), service("FEE", "F", priority_classes=())),
        counters=(Counter(1, Text("1号窗口", "Counter 1"), ("P", "H"), clerk_a="c1a", clerk_b="c1b"),
                  Counter(2, Text("2号窗口", "Counter 2"), ("H",), clerk_a="c2a", clerk_b="c2b"),
                  Counter(9, Text("收费窗口", "Fee counter"), ("FEE",), clerk_a="c9a", clerk_b="c9b")),
        clerks=tuple(Clerk(i, Text(f"职员{i}", f"Clerk {i}"))
                     for i in ("c1a", "c1b", "c2a", "c2b", "c9a", "c9b")),
        pause_reasons=(PauseReason("break", Text("休息", "Break")),
                       PauseReason("supervisor", Text("请示领导", "Consulting a supervisor"))),
        alerts=AlertRules(enabled=False),
    )
    return replace(cfg, **kw)
