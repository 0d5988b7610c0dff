"""Reports against histories whose figures are known in advance, on SQLite and PostgreSQL.

Three kinds of evidence:

* a synthetic history (three business days, ~150 tickets, every way a ticket can end)
  inserted with SQLAlchemy Core, and an oracle that computes every figure again in plain
  Python from the same Python objects — nearest-rank percentiles with exact fractions,
  working days from a hand-written holiday table, counter time from a hand-written plan;
* a morning driven through the real engine (Hall + ManualClock + Store) whose figures
  were worked out by hand, so the report reads exactly what the engine wrote;
* the ``queuehall report`` and ``queuehall purge`` commands: formats, exit codes, output.

Definitions: docs/reports.md.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from queuehall.broker import storage
from queuehall.broker.config import HallConfig, load_config
from queuehall.broker.reports import (
    GROUPS,
    Report,
    ReportBuilder,
    ReportError,
    offset_segments,
    parse_period,
    to_csv,
    to_table,
    to_xlsx,
)
from queuehall.broker.storage import Store, load_hall, make_engine, migrate, open_store
from sqlalchemy import Engine, delete, func, insert, select

from queuehall.clock import ManualClock
from queuehall.errors import HallError
from tests.hall_factory import install_pins

TZ = ZoneInfo("Asia/Shanghai")

CONFIG_TOML = """
[hall]
name = { zh = "报表测试大厅", en = "Report test hall" }
timezone = "Asia/Shanghai"
retention_days = 190

[calling]
max_recalls = 2
noshow_grace_minutes = 30
noshow_reinstate = "back"
over_wait_minutes = 0
priority_streak = 2

[hours]
mon = ["08:30-11:30", "13:30-17:00"]
tue = ["08:30-11:30", "13:30-17:00"]
wed = ["08:30-11:30", "13:30-17:00"]
thu = ["08:30-11:30", "13:30-17:00"]
fri = ["08:30-11:30", "13:30-17:00"]
sat = []
sun = []
chinese_calendar = true
makeup_hours = ["08:30-11:30", "13:30-17:00"]

[[department]]
code = "exit_entry"
name = { zh = "出入境", en = "Exit-entry" }

[[department]]
code = "household"
name = { zh = "户政", en = "Household registration" }

[[department]]
code = "finance"
name = { zh = "统一收费", en = "Fees" }

[[service]]
code = "passport"
prefix = "A"
name = { zh = "护照", en = "Passport" }
department = "exit_entry"
promised_days = 15
target_wait_minutes = 40

[[service]]
code = "move_in"
prefix = "B"
name = { zh = "户口迁入", en = "Moving in" }
department = "household"
promised_days = 0
target_wait_minutes = 20

[[service]]
code = "consult"
prefix = "Z"
name = { zh = "咨询", en = "Enquiries" }
department = "household"
promised_days = 0
target_wait_minutes = 15

[[service]]
code = "fees"
prefix = "F"
name = { zh = "缴费", en = "Fees" }
department = "finance"
promised_days = 0
target_wait_minutes = 10

[[clerk]]
id = "c1a"
name = { zh = "王丽", en = "Wang Li" }

[[clerk]]
id = "c1b"
name = { zh = "张敏", en = "Zhang Min" }

[[clerk]]
id = "c2a"
name = { zh = "陈静", en = "Chen Jing" }

[[clerk]]
id = "c2b"
name = { zh = "黄伟", en = "Huang Wei" }

[[clerk]]
id = "c9a"
name = { zh = "郑凯", en = "Zheng Kai" }

[[clerk]]
id = "c9b"
name = { zh = "宋佳", en = "Song Jia" }

[[counter]]
number = 1
name = { zh = "1号窗口", en = "Window 1" }
services = ["passport", "move_in"]
clerk_a = "c1a"
clerk_b = "c1b"

[[counter]]
number = 2
name = { zh = "2号窗口", en = "Window 2" }
services = ["move_in", "consult"]
clerk_a = "c2a"
clerk_b = "c2b"

[[counter]]
number = 9
name = { zh = "收费窗口", en = "Fee window" }
services = ["fees"]
clerk_a = "c9a"
clerk_b = "c9b"

[[pause_reason]]
code = "break"
name = { zh = "休息", en = "Break" }

[[pause_reason]]
code = "supervisor"
name = { zh = "请示领导", en = "Consulting a supervisor" }
"""

TARGET_MIN = {"passport": 40, "move_in": 20, "consult": 15, "fees": 10}  # "retired" has none
PROMISED_DAYS = {"passport": 15, "move_in": 0, "consult": 0, "fees": 0}
DEPARTMENT = {"passport": "exit_entry", "move_in": "household", "consult": "household", "fees": "finance"}
COUNTER_NAMES = {1: "1号窗口", 2: "2号窗口", 9: "收费窗口"}
CLERK_NAMES = {"c1a": "王丽", "c1b": "张敏", "c2a": "陈静", "c2b": "黄伟", "c9a": "郑凯", "c9b": "宋佳"}

# The synthetic history: three business days around China's 2025 National Day holiday.
DAY0, DAY1, DAY2 = date(2025, 9, 29), date(2025, 9, 30), date(2025, 10, 9)  # Mon, Tue, Thu
BEFORE, AFTER = date(2025, 9, 26), date(2025, 10, 10)  # outside the reported period
PERIOD = (DAY0, DAY2)
NOW = datetime(2025, 10, 29, 12, 0, tzinfo=TZ)  # the moment the report describes

# Working days for promised time limits, written out by hand (国务院办公厅 2025 holiday notice):
# 1–8 October off, Sunday 28 September and Saturday 11 October are make-up working days.
HOLIDAYS_2025 = {date(2025, 10, d) for d in range(1, 9)}
MAKEUP_2025 = {date(2025, 9, 28), date(2025, 10, 11)}


def report_config(folder: Path) -> HallConfig:
    """The reports' test hall (CONFIG_TOML), written into ``folder`` and loaded."""
    path = folder / "hall.toml"
    path.write_text(CONFIG_TOML, encoding="utf-8")
    return load_config(path)


def migrated_engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url`` at the latest schema, disposed of afterwards (a fixture's body)."""
    eng = make_engine(db_url)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> HallConfig:
    return report_config(tmp_path_factory.mktemp("cfg"))


@pytest.fixture
def config_path(config: HallConfig) -> str:
    return config.source


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    yield from migrated_engine(db_url)


def at(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    """A local wall-clock time as an aware UTC datetime (how the engine keeps times)."""
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=TZ).astimezone(UTC)


# ---------------------------------------------------------------------------- the synthetic history


@dataclass
class V:
    """One visit, with the same fields as the visits table."""

    id: int
    ticket_id: int
    seq: int
    business_day: date
    service: str
    entered_at: datetime
    first_called_at: datetime | None = None
    last_called_at: datetime | None = None
    calls: int = 0
    serving_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    counter: int | None = None
    clerk: str | None = None
    post: str | None = None


@dataclass
class T:
    id: int
    business_day: date
    service: str
    number: int
    issued_at: datetime
    status: str = "waiting"
    visits: list[V] = field(default_factory=list)


def clerk_at(counter: int, when: datetime) -> str:
    """Who is signed in at ``counter`` at ``when`` (the counter plan below)."""
    local = when.astimezone(TZ)
    day = local.date()
    if counter == 1:
        return "c1b" if day == DAY1 else "c1a"
    if counter == 2:
        return "c2b" if day == DAY2 and time(10) <= local.time() < time(11, 30) else "c2a"
    return "c9a"


class History:
    """Builds tickets and visits the way the engine shapes them."""

    def __init__(self, first_id: int = 1) -> None:
        self.first_id = first_id
        self.tickets: list[T] = []
        self.visits: list[V] = []
        self.numbers: dict[tuple[date, str], int] = defaultdict(int)

    def ticket(self, day: date, service: str, issued: datetime) -> T:
        self.numbers[(day, service)] += 1
        t = T(self.first_id + len(self.tickets), day, service, self.numbers[(day, service)], issued)
        self.tickets.append(t)
        self.visit(t, service, issued)
        return t

    def visit(self, t: T, service: str, entered: datetime) -> V:
        v = V(self.first_id + len(self.visits), t.id, len(t.visits) + 1, t.business_day, service, entered)
        self.visits.append(v)
        t.visits.append(v)
        return v

    @staticmethod
    def call(v: V, when: datetime, counter: int, recalls: int = 0, gap: int = 60) -> None:
        v.first_called_at = when
        v.last_called_at = when + timedelta(seconds=recalls * gap)
        v.calls = 1 + recalls
        v.counter, v.clerk = counter, clerk_at(counter, when)
        v.post = "B" if v.clerk.endswith("b") else "A"

    @staticmethod
    def end(t: T, v: V, when: datetime, outcome: str) -> None:
        v.ended_at, v.outcome = when, outcome
        if outcome != "transferred":
            t.status = outcome

    def serve(self, t: T, v: V, called: datetime, counter: int, service_s: int, outcome: str = "finished",
              walk_s: int = 60) -> datetime:
        self.call(v, called, counter)
        v.serving_at = called + timedelta(seconds=walk_s)
        done = v.serving_at + timedelta(seconds=service_s)
        self.end(t, v, done, outcome)
        if outcome == "transferred":
            t.status = "waiting"
        return done


KINDS = ("finished", "finished", "finished", "no_show", "reinstated", "fee_trip", "transfer_called",
         "passport_to_consult", "cancel_waiting", "cancel_called", "voided", "waiting", "serving", "called",
         "retired", "finished", "no_show", "cancel_waiting")


OPEN_KINDS = ("waiting", "serving", "called")


def make_history(seed: int = 20251009) -> History:
    """About 50 tickets a day on DAY0..DAY2, a few outside the period, and fixed edge cases."""
    rng = random.Random(seed)
    h = History()
    for day in (BEFORE, DAY0, DAY1, DAY2, AFTER):
        n = 50 if day in (DAY0, DAY1, DAY2) else 4
        opening = at(day, 8, 30)
        issues = sorted(opening + timedelta(seconds=rng.randint(0, 8 * 3600)) for _ in range(n))
        for i, issued in enumerate(issues):
            kind = KINDS[(i + day.toordinal()) % len(KINDS)]
            if kind in OPEN_KINDS and day in (DAY0, DAY1):
                kind = "finished"  # only DAY2 has tickets left open: DAY0 and DAY1 are final (their facts stored)
            _one(h, rng, day, issued, kind)
    _edge_cases(h)
    return h


def _one(h: History, rng: random.Random, day: date, issued: datetime, kind: str) -> None:
    def later(t: datetime, lo: int, hi: int) -> datetime:
        return t + timedelta(seconds=rng.randint(lo, hi))

    wait = lambda: rng.randint(0, 75 * 60)  # noqa: E731
    service_s = lambda: rng.randint(120, 1500)  # noqa: E731
    if kind in ("finished", "retired"):
        service = "retired_permit" if kind == "retired" else rng.choice(["passport", "move_in", "consult"])
        counter = {"passport": 1, "move_in": rng.choice([1, 2]), "consult": 2, "retired_permit": 2}[service]
        t = h.ticket(day, service, issued)
        h.serve(t, t.visits[0], issued + timedelta(seconds=wait()), counter, service_s())
    elif kind in ("no_show", "reinstated"):
        service = rng.choice(["move_in", "consult"]) if kind == "no_show" else "move_in"
        t = h.ticket(day, service, issued)
        v = t.visits[0]
        recalls = rng.randint(0, 2)
        h.call(v, issued + timedelta(seconds=wait()), 2, recalls=recalls, gap=rng.randint(60, 150))
        h.end(t, v, v.last_called_at + timedelta(seconds=60), "no_show")
        if kind == "reinstated":
            v2 = h.visit(t, service, later(v.ended_at, 300, 1500))
            t.status = "waiting"
            h.serve(t, v2, v2.entered_at + timedelta(seconds=wait()), 2, service_s())
    elif kind == "fee_trip":
        t = h.ticket(day, "passport", issued)
        done = h.serve(t, t.visits[0], issued + timedelta(seconds=wait()), 1, service_s(), "transferred")
        fee = h.visit(t, "fees", done)
        done = h.serve(t, fee, later(done, 0, 900), 9, rng.randint(60, 300), "transferred")
        back = h.visit(t, "passport", done)
        h.serve(t, back, later(done, 0, 600), 1, rng.randint(60, 400))
    elif kind == "transfer_called":
        t = h.ticket(day, "move_in", issued)
        v = t.visits[0]
        h.call(v, issued + timedelta(seconds=wait()), 1)
        h.end(t, v, v.first_called_at + timedelta(seconds=90), "transferred")
        v2 = h.visit(t, "consult", v.ended_at)
        t.status = "waiting"
        h.serve(t, v2, later(v2.entered_at, 0, 1800), 2, service_s())
    elif kind == "passport_to_consult":
        t = h.ticket(day, "passport", issued)
        done = h.serve(t, t.visits[0], issued + timedelta(seconds=wait()), 1, service_s(), "transferred")
        v2 = h.visit(t, "consult", done)
        h.serve(t, v2, later(done, 0, 1200), 2, service_s())
    elif kind == "cancel_waiting":
        t = h.ticket(day, rng.choice(["passport", "move_in", "consult"]), issued)
        h.end(t, t.visits[0], issued + timedelta(seconds=rng.randint(60, 70 * 60)), "cancelled")
    elif kind == "cancel_called":
        t = h.ticket(day, "consult", issued)
        v = t.visits[0]
        h.call(v, issued + timedelta(seconds=wait()), 2)
        h.end(t, v, v.first_called_at + timedelta(seconds=120), "cancelled")
    elif kind == "voided":
        t = h.ticket(day, rng.choice(["passport", "move_in"]), issued)
        h.end(t, t.visits[0], issued + timedelta(seconds=10), "voided")
    elif kind == "waiting":  # still waiting when the report runs (left over at closing)
        h.ticket(day, rng.choice(["passport", "move_in"]), issued)
    elif kind == "serving":
        t = h.ticket(day, "consult", issued)
        v = t.visits[0]
        h.call(v, issued + timedelta(seconds=wait()), 2)
        v.serving_at = v.first_called_at + timedelta(seconds=45)
        t.status = "serving"
    elif kind == "called":
        t = h.ticket(day, "move_in", issued)
        h.call(t.visits[0], issued + timedelta(seconds=wait()), 1, recalls=1)
        t.status = "called"
    else:  # pragma: no cover - KINDS lists every kind handled above
        raise AssertionError(kind)


def _edge_cases(h: History) -> None:
    """Tickets on the boundaries of the definitions (DAY0)."""
    # Called after exactly the target (within) and one second later (not within).
    for seconds in (40 * 60, 40 * 60 + 1):
        t = h.ticket(DAY0, "passport", at(DAY0, 9, 2))
        h.serve(t, t.visits[0], t.issued_at + timedelta(seconds=seconds), 1, 600)
    # A no-show first called within its target, last called after it: within; its wait ends at the last call.
    t = h.ticket(DAY0, "consult", at(DAY0, 9, 5))
    h.call(t.visits[0], at(DAY0, 9, 19), 2, recalls=2, gap=75)
    h.end(t, t.visits[0], at(DAY0, 9, 22, 30), "no_show")
    # Gave up uncalled after exactly the target (not counted) and after target + 1 s (a miss).
    for seconds in (20 * 60, 20 * 60 + 1):
        t = h.ticket(DAY0, "move_in", at(DAY0, 10, 7))
        h.end(t, t.visits[0], t.issued_at + timedelta(seconds=seconds), "cancelled")
    # Window 2 works after closing on the day it is left signed in: its open time runs to 17:20.
    t = h.ticket(DAY0, "move_in", at(DAY0, 16, 40))
    h.serve(t, t.visits[0], at(DAY0, 17, 0), 2, 19 * 60)


# Counter events: (day, hh, mm, counter, type, clerk, reason). Expected times are worked out
# from this plan by hand in test_counter_time_follows_the_plan.
COUNTER_PLAN = [
    (BEFORE, 8, 30, 9, "counter_signed_in", "c9a", None),  # left on: carried into the period
    (BEFORE, 8, 30, 1, "counter_signed_in", "c1a", None),
    (BEFORE, 17, 0, 1, "counter_signed_out", "c1a", None),
    (DAY0, 8, 20, 1, "counter_signed_in", "c1a", None),
    (DAY0, 8, 30, 2, "counter_signed_in", "c2a", None),  # left on overnight
    (DAY0, 10, 0, 9, "counter_paused", "c9a", "supervisor"),
    (DAY0, 10, 30, 9, "counter_resumed", "c9a", None),
    (DAY0, 11, 30, 1, "counter_paused", "c1a", "break"),
    (DAY0, 13, 30, 1, "counter_resumed", "c1a", None),
    (DAY0, 17, 0, 9, "counter_signed_out", "c9a", None),
    (DAY0, 17, 10, 1, "counter_signed_out", "c1a", None),
    (DAY1, 8, 20, 1, "counter_signed_in", "c1b", None),
    (DAY1, 8, 30, 9, "counter_signed_in", "c9a", None),
    (DAY1, 10, 0, 1, "counter_paused", "c1b", "supervisor"),
    (DAY1, 10, 15, 1, "counter_resumed", "c1b", None),
    (DAY1, 11, 30, 1, "counter_paused", "c1b", "break"),
    (DAY1, 12, 0, 2, "counter_paused", "c2a", "break"),
    (DAY1, 13, 0, 2, "counter_resumed", "c2a", None),
    (DAY1, 13, 30, 1, "counter_resumed", "c1b", None),
    (DAY1, 16, 0, 2, "counter_signed_out", "c2a", None),
    (DAY1, 17, 0, 9, "counter_signed_out", "c9a", None),
    (DAY1, 17, 10, 1, "counter_signed_out", "c1b", None),
    (DAY2, 8, 20, 1, "counter_signed_in", "c1a", None),
    (DAY2, 8, 30, 9, "counter_signed_in", "c9a", None),
    (DAY2, 9, 0, 2, "counter_signed_in", "c2a", None),
    (DAY2, 10, 0, 2, "counter_signed_in", "c2b", None),  # takeover of an open counter
    (DAY2, 11, 0, 2, "counter_paused", "c2b", "break"),
    (DAY2, 11, 30, 2, "counter_signed_in", "c2a", None),  # takeover of a paused counter: stays paused
    (DAY2, 11, 30, 9, "counter_paused", "c9a", "break"),  # left paused
    (DAY2, 13, 30, 2, "counter_resumed", "c2a", None),
    (DAY2, 16, 30, 2, "counter_signed_out", "c2a", None),
    (DAY2, 17, 10, 1, "counter_signed_out", "c1a", None),
    (AFTER, 8, 20, 1, "counter_signed_in", "c1a", None),
    (AFTER, 17, 0, 1, "counter_signed_out", "c1a", None),
]


def _naive(d: datetime | None) -> datetime | None:
    return d.astimezone(UTC).replace(tzinfo=None) if d is not None else None


def insert_history(engine: Engine, h: History, with_plan: bool = True, hall: str = "main") -> None:
    """Write the history (and the counter plan's events) with Core executemany, shaped like the engine's."""
    ticket_rows, visit_rows = [], []
    for t in h.tickets:
        last = t.visits[-1]
        ticket_rows.append({
            "id": t.id, "business_day": t.business_day, "service": t.service, "number": t.number,
            "label": f"{t.service[0].upper()}{t.number:03d}", "priority": None,
            "issued_at": _naive(t.issued_at),
            "status": t.status, "queue_service": last.service, "queue_key": _naive(t.issued_at),
            "visit_id": last.id, "target_counter": None, "counter": last.counter, "recalls": 0,
            "issued_by": "kiosk-1", "status_at": _naive(last.ended_at or last.serving_at or last.entered_at)})
    for v in h.visits:
        row = {k: (_naive(x) if isinstance(x, datetime) else x) for k, x in asdict(v).items()}
        visit_rows.append({**row, "target_counter": None, "note": "", "out_of_order": None})
    event_rows = []
    for seq, (day, hh, mm, counter, type_, clerk, reason) in enumerate(COUNTER_PLAN, 1):
        data: dict[str, Any] = {"reason": reason} if reason else {}
        event_rows.append({"seq": seq, "at": _naive(at(day, hh, mm)), "business_day": day, "type": type_,
                           "ticket_id": None, "service": None, "counter": counter, "clerk": clerk,
                           "data": json.dumps(data)})
    for r in (*ticket_rows, *visit_rows, *event_rows):
        r["hall_id"] = hall
    with engine.begin() as conn:
        conn.execute(insert(storage.tickets), ticket_rows)
        conn.execute(insert(storage.visits), visit_rows)
        if with_plan:
            conn.execute(insert(storage.events), event_rows)


@pytest.fixture(scope="module")
def history() -> History:
    return make_history()


@pytest.fixture
def loaded(engine: Engine, history: History) -> Engine:
    insert_history(engine, history)
    return engine


# ---------------------------------------------------------------------------- the oracle (plain Python)


def nearest_rank(values: list[float], p: Fraction) -> float | None:
    """The value at rank ⌈p·n⌉ of the sorted sample (exact arithmetic)."""
    if not values:
        return None
    return sorted(values)[math.ceil(p * len(values)) - 1]


def minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 2)


def secs(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds()


def in_period(d: date) -> bool:
    return PERIOD[0] <= d <= PERIOD[1]


def wait_of(v: V) -> float | None:
    end = v.last_called_at if v.outcome == "no_show" else v.first_called_at
    return None if end is None else secs(v.entered_at, end)


def served(v: V) -> bool:
    return v.serving_at is not None and v.outcome in ("finished", "transferred")


def expected_row(vs: list[V], now: datetime) -> dict[str, Any]:
    waits = [w for v in vs if (w := wait_of(v)) is not None]
    service = [secs(v.serving_at, v.ended_at) for v in vs if served(v)]  # type: ignore[arg-type]
    within = counted = 0
    for v in vs:
        target = TARGET_MIN.get(v.service)
        if target is None:
            continue
        if v.first_called_at is not None:
            counted += 1
            within += secs(v.entered_at, v.first_called_at) <= target * 60
        elif v.outcome in (None, "cancelled", "closed_unserved") and \
                secs(v.entered_at, v.ended_at or now) > target * 60:
            counted += 1
    return {
        "visits": len(vs), "issued": sum(v.seq == 1 for v in vs),
        "called": sum(v.first_called_at is not None for v in vs), "served": sum(served(v) for v in vs),
        "finished": sum(v.outcome == "finished" for v in vs),
        "no_show": sum(v.outcome == "no_show" for v in vs),
        "transferred_out": sum(v.outcome == "transferred" for v in vs),
        "cancelled": sum(v.outcome == "cancelled" for v in vs),
        "voided": sum(v.outcome == "voided" for v in vs),
        "open": sum(v.outcome is None for v in vs),
        "wait_avg_min": minutes(sum(waits) / len(waits)) if waits else None,
        "wait_median_min": minutes(nearest_rank(waits, Fraction(1, 2))),
        "wait_p90_min": minutes(nearest_rank(waits, Fraction(9, 10))),
        "wait_max_min": minutes(max(waits)) if waits else None,
        "sla_within": within, "sla_counted": counted,
        "sla_share": round(within / counted, 4) if counted else None,
        "service_avg_min": minutes(sum(service) / len(service)) if service else None,
        "service_p90_min": minutes(nearest_rank(service, Fraction(9, 10))),
    }


GROUP_KEY: dict[str, Callable[[V], Any]] = {
    "service": lambda v: v.service,
    "counter": lambda v: v.counter,
    "clerk": lambda v: v.clerk,
    "department": lambda v: DEPARTMENT.get(v.service, "?"),
    "hour": lambda v: v.entered_at.astimezone(TZ).hour,
    "day": lambda v: v.business_day.isoformat(),
}


def expected_rows(h: History, group: str, now: datetime) -> dict[Any, dict[str, Any]]:
    by: dict[Any, list[V]] = defaultdict(list)
    for v in h.visits:
        if in_period(v.business_day):
            by[GROUP_KEY[group](v)].append(v)
    return {k: expected_row(vs, now) for k, vs in by.items()}


def is_working_day(d: date) -> bool:
    return d in MAKEUP_2025 or (d.weekday() < 5 and d not in HOLIDAYS_2025)


def add_working_days(d: date, n: int) -> date:
    while n:
        d += timedelta(days=1)
        n -= is_working_day(d)
    return d


def assert_figures(actual: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    """Counts, shares and percentiles exactly; averages to the rounding of the last digit."""
    for k, want in expected.items():
        got = actual[k]
        if k in ("wait_avg_min", "service_avg_min") and want is not None:
            assert got == pytest.approx(want, abs=0.0100001), f"{where}: {k}"
        else:
            assert got == want, f"{where}: {k} is {got!r}, expected {want!r}"


# ---------------------------------------------------------------------------- known answers: Core history
# ---------------------------------------------------------------------------- known answers: Core history
#
# Creating a PostgreSQL database costs seconds, so the synthetic history is loaded once per backend and
# every figure is checked against it as a subtest of test_known_history.


def check_coverage(h: History) -> None:
    """The oracle is only as good as its data: every outcome and status must be present in the period."""
    vs = [v for v in h.visits if in_period(v.business_day)]
    assert {v.outcome for v in vs} == {None, "finished", "no_show", "transferred", "cancelled", "voided"}
    assert {t.status for t in h.tickets if in_period(t.business_day)} == {
        "waiting", "called", "serving", "finished", "no_show", "cancelled", "voided"}
    assert {v.post for v in vs if v.post} == {"A", "B"}
    assert any(v.seq == 3 for v in vs) and any(v.service not in TARGET_MIN for v in vs)
    assert len(vs) > 150


def check_ticket_figures(rep: Report, h: History) -> None:
    ts = [t for t in h.tickets if in_period(t.business_day)]
    assert rep.tickets == {
        "issued": len(ts),
        "served": sum(t.status == "finished" for t in ts),
        "no_show": sum(t.status == "no_show" for t in ts),
        "cancelled": sum(t.status == "cancelled" for t in ts),
        "voided": sum(t.status == "voided" for t in ts),
        "open": sum(t.status in ("waiting", "called", "serving") for t in ts),
        "closed_unserved": sum(t.status == "closed_unserved" for t in ts),
        "transferred": sum(any(v.outcome == "transferred" for v in t.visits) for t in ts),
    }


def check_total(rep: Report, h: History) -> None:
    assert rep.total["group"] == "all"
    assert_figures(rep.total, expected_row([v for v in h.visits if in_period(v.business_day)], NOW), "total")


def check_grouping(rep: Report, h: History, group: str) -> None:
    want = expected_rows(h, group, NOW)
    got = {r["group"]: r for r in rep.rows}
    assert set(got) == set(want)
    for key, row in want.items():
        assert_figures(got[key], row, f"{group}={key}")
    # Rows are sorted by key with the "no counter/clerk" row last, and carry names from the config.
    keys = [r["group"] for r in rep.rows]
    assert keys == sorted(k for k in keys if k is not None) + [None] * keys.count(None)
    names = {"service": {"passport": "护照", "fees": "缴费", "retired_permit": None},
             "counter": {**COUNTER_NAMES, None: None},
             "clerk": {**{k: n for k, n in CLERK_NAMES.items() if k != "c9b"}, None: None},
             "department": {"exit_entry": "出入境", "finance": "统一收费", "?": None}}.get(group, {})
    for key, name in names.items():
        assert got[key]["name_zh"] == name, (group, key)
    # The groups add up to the total.
    for k in ("visits", "called", "served", "finished", "no_show", "open", "sla_within", "sla_counted"):
        assert sum(r[k] for r in rep.rows) == rep.total[k], k


def check_completion(rep: Report, last_day: Report, h: History) -> None:
    finished = [t for t in h.tickets if in_period(t.business_day) and t.status == "finished"]
    promised = [t for t in finished if any(served(v) and PROMISED_DAYS.get(v.service, 0) for v in t.visits)]
    due = [add_working_days(t.business_day, 15) for t in promised]
    assert sorted(set(due)) == [date(2025, 10, 27), date(2025, 10, 28), date(2025, 10, 29)]  # by hand
    unfinished = [t for t in h.tickets if in_period(t.business_day) and t.status in
                  ("waiting", "called", "serving", "closed_unserved") and PROMISED_DAYS.get(t.visits[-1].service) == 0]
    same_day = len(finished) - len(promised)
    unserved = sum(t.status == "closed_unserved" for t in h.tickets if in_period(t.business_day))
    base = len(finished) + unserved
    assert rep.completion == {
        "served": len(finished), "closed_unserved": unserved, "same_day_completed": same_day,
        "same_day_rate": round(same_day / base, 4), "same_day_target": 0.8,
        "same_day_meets_target": same_day / base >= 0.8,
        "promised_accepted": len(promised),
        "promised_past_due": sum(d < NOW.date() for d in due),  # DAY2's fall due on NOW's date: not past
        "on_the_spot_unfinished": len(unfinished),
    }
    assert 0 < rep.completion["promised_past_due"] < len(promised) and unfinished
    # Reported on the period's last day itself, nothing is past due and the open tickets are not late yet.
    assert last_day.completion["promised_past_due"] == 0
    assert last_day.completion["on_the_spot_unfinished"] == 0


def check_counter_time(rep: Report, h: History) -> None:
    got = {c["counter"]: c for c in rep.counters}
    vs = [v for v in h.visits if in_period(v.business_day) and v.first_called_at and v.counter]

    def last_activity(counter: int, day: date) -> datetime:
        ends = [v.ended_at or v.last_called_at for v in vs if v.counter == counter and v.business_day == day]
        return max([at(day, 17), *ends])  # type: ignore[list-item]

    m = 60.0
    open_s = {
        # 08:20–11:30 and 13:30–17:10 on DAY0; DAY1 also paused 10:00–10:15; DAY2 08:20–17:10.
        1: (190 + 220) * m + (100 + 75 + 220) * m + 530 * m,
        # Left on overnight on DAY0: up to its last ticket's end (17:20, after closing); on DAY1 it counts
        # from opening (08:30) to its pause at 12:00 and 13:00–16:00; DAY2 09:00–11:00 and 13:30–16:30.
        2: secs(at(DAY0, 8, 30), last_activity(2, DAY0)) + (210 + 180) * m + (120 + 180) * m,
        # Carried in from 26 September: DAY0 counts from opening; DAY1 08:30–17:00; DAY2 08:30–11:30.
        9: (90 + 390) * m + 510 * m + 180 * m,
    }
    paused_s = {
        1: {"break": 240 * m, "supervisor": 15 * m},
        2: {"break": 60 * m + 150 * m},  # the takeover at 11:30 keeps the pause until 13:30
        9: {"break": secs(at(DAY2, 11, 30), last_activity(9, DAY2)), "supervisor": 30 * m},
    }
    assert last_activity(2, DAY0) >= at(DAY0, 17, 20)
    assert set(got) == {1, 2, 9}
    for n in (1, 2, 9):
        ended = [v for v in vs if v.counter == n and v.ended_at]
        busy = sum(secs(v.first_called_at, v.ended_at) for v in ended)  # type: ignore[arg-type]
        serving = sum(secs(v.serving_at, v.ended_at) for v in ended if v.serving_at)  # type: ignore[arg-type]
        assert got[n]["open_min"] == minutes(open_s[n]), n
        assert got[n]["paused_by_reason_min"] == {k: minutes(s) for k, s in sorted(paused_s[n].items())}, n
        assert got[n]["paused_min"] == minutes(sum(paused_s[n].values())), n
        assert got[n]["busy_min"] == pytest.approx(minutes(busy), abs=0.0100001), n
        assert got[n]["serving_min"] == pytest.approx(minutes(serving), abs=0.0100001), n
        assert got[n]["idle_min"] == pytest.approx(minutes(max(0.0, open_s[n] - busy)), abs=0.0100001), n
        assert got[n]["name_zh"] == COUNTER_NAMES[n]


def check_clerks(rep: Report, h: History) -> None:
    by: dict[tuple[str, str], list[V]] = defaultdict(list)
    for v in h.visits:
        if in_period(v.business_day) and v.clerk and v.first_called_at:
            by[(v.clerk, v.post)].append(v)  # type: ignore[index]
    want = []
    for (clerk, post), vs in sorted(by.items()):
        svc = [secs(v.serving_at, v.ended_at) for v in vs if served(v)]  # type: ignore[arg-type]
        want.append({"clerk": clerk, "name_zh": CLERK_NAMES[clerk], "post": post, "called": len(vs),
                     "served": len(svc), "finished": sum(v.outcome == "finished" for v in vs),
                     "no_show": sum(v.outcome == "no_show" for v in vs),
                     "service_avg_min": minutes(sum(svc) / len(svc)) if svc else None})
    assert ("c2a", "A") in by and ("c2b", "B") in by and ("c1b", "B") in by
    assert [(c["clerk"], c["post"]) for c in rep.clerks] == [(w["clerk"], w["post"]) for w in want]
    for got, exp in zip(rep.clerks, want, strict=True):
        assert_figures(got, exp, f"clerk {exp['clerk']}/{exp['post']}")


def check_hourly(rep: Report, h: History) -> None:
    arrivals: dict[int, int] = defaultdict(int)
    finished: dict[int, int] = defaultdict(int)
    heat: dict[tuple[int, int], int] = defaultdict(int)
    for v in h.visits:
        if not in_period(v.business_day):
            continue
        if v.seq == 1:
            local = v.entered_at.astimezone(TZ)
            arrivals[local.hour] += 1
            heat[(local.isoweekday() % 7, local.hour)] += 1  # 0 = Sunday
        if v.outcome == "finished":
            finished[v.ended_at.astimezone(TZ).hour] += 1  # type: ignore[union-attr]
    hours = sorted(set(arrivals) | set(finished))
    assert rep.hourly == [{"hour": h, "arrivals": arrivals[h], "served": finished[h]} for h in hours]
    assert rep.heatmap == [{"weekday": d, "hour": h, "arrivals": n} for (d, h), n in sorted(heat.items())]
    assert {c["weekday"] for c in rep.heatmap} == {1, 2, 4}  # Monday, Tuesday, Thursday


def check_empty_period(b: ReportBuilder) -> None:
    rep = b.build(date(2025, 10, 3), date(2025, 10, 5), "service", now=NOW)
    assert rep.rows == [] and rep.clerks == [] and rep.hourly == []
    assert rep.tickets["issued"] == 0 and rep.completion["same_day_rate"] is None
    assert rep.total["wait_avg_min"] is None and rep.total["visits"] == 0
    # Window 9 was left paused on 9 October: the holiday has no opening hours, so nothing counts.
    assert rep.counters == []
    assert "tickets 号票: issued 0" in to_table(rep)


def check_formats(rep: Report, h: History, tmp_path: Path) -> None:
    from openpyxl import load_workbook

    want = expected_rows(h, "service", NOW)
    table = to_table(rep)
    assert "护照" in table and "当天办结率" in table and "paused by reason" in table
    rows = list(csv.DictReader(io.StringIO(to_csv(rep))))
    assert [r["group"] for r in rows] == [*(r["group"] for r in rep.rows), "all"]
    assert int(rows[-1]["visits"]) == rep.total["visits"]
    passport = next(r for r in rows if r["group"] == "passport")
    assert float(passport["wait_p90_min"]) == want["passport"]["wait_p90_min"]
    assert int(passport["sla_within"]) == want["passport"]["sla_within"]

    data = json.loads(json.dumps(rep.to_dict(), ensure_ascii=False, default=str))
    assert data["period"] == {"from": "2025-09-29", "to": "2025-10-09", "timezone": "Asia/Shanghai"}
    assert data["as_of"] == "2025-10-29T04:00:00Z"
    assert data["tickets"] == rep.tickets and data["total"]["visits"] == rep.total["visits"]

    xlsx = tmp_path / "r.xlsx"
    to_xlsx(rep, str(xlsx))
    wb = load_workbook(xlsx, read_only=True)
    assert wb.sheetnames == ["by service", "summary", "counters", "clerks", "per hour"]
    sheet = list(wb["by service"].iter_rows(values_only=True))
    assert list(sheet[0][:4]) == ["group", "name_zh", "name_en", "visits"]
    assert sheet[-1][0] == "all" and sheet[-1][3] == rep.total["visits"]
    summary = {r[0]: r[1] for r in wb["summary"].iter_rows(values_only=True)}
    assert summary["issued"] == rep.tickets["issued"]
    assert summary["same_day_rate"] == rep.completion["same_day_rate"]
    assert len(list(wb["counters"].iter_rows())) == 1 + len(rep.counters)
    wb.close()


def check_wait_samples(engine: Engine, config: HallConfig, h: History) -> None:
    want: dict[str, list[float]] = defaultdict(list)
    for v in h.visits:
        if in_period(v.business_day) and (w := wait_of(v)) is not None:
            want[v.service].append(w / 60)
    got = ReportBuilder(engine, config).wait_samples(*PERIOD)
    assert list(got) == sorted(want)
    for service, waits in got.items():
        assert waits == pytest.approx(sorted(want[service]), abs=1e-6), service


def check_report_command(url: str, config_path: str, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    db = ["--db", url, "--config", config_path]
    code, out, _ = run_cli(capsys, "report", *db, "--from", "2025-09-29", "--to", "2025-10-09")
    assert code == 0 and "queuehall report 统计报表 2025-09-29 – 2025-10-09" in out and "护照" in out
    code, out, _ = run_cli(capsys, "report", *db, "--day", "2025-09-30", "--group", "counter",
                           "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["group"] == "counter" and data["period"]["from"] == "2025-09-30"
    assert {r["group"] for r in data["rows"]} == {1, 2, 9, None}
    code, out, _ = run_cli(capsys, "report", *db, "--day", "2025-09-29", "--group", "department",
                           "--format", "csv", "--out", str(tmp_path / "d.csv"))
    assert code == 0 and out.strip() == str(tmp_path / "d.csv")
    groups = [r["group"] for r in csv.DictReader((tmp_path / "d.csv").open(encoding="utf-8"))]
    assert groups == ["?", "exit_entry", "finance", "household", "all"]
    code, out, _ = run_cli(capsys, "report", *db, "--day", "2025-09-29", "--format", "xlsx",
                           "--out", str(tmp_path / "c.xlsx"))
    assert code == 0 and (tmp_path / "c.xlsx").stat().st_size > 4000
    if not url.startswith("sqlite"):
        return  # the charts' data comes from wait_samples (checked on every backend); draw them once
    code, out, _ = run_cli(capsys, "report", *db, "--from", "2025-09-29", "--to", "2025-10-09",
                           "--format", "png", "--out", str(tmp_path / "png"))
    paths = out.split()
    assert code == 0
    assert [Path(p).name for p in paths] == ["wait_by_service.png", "per_hour.png", "heatmap.png"]
    for p in paths:
        img = Image.open(p).convert("L")
        assert img.width >= 800 and img.height >= 300
        lo, hi = img.getextrema()
        assert hi - lo > 100 and len(img.getcolors(1 << 16) or []) > 20  # drawn, not blank


def check_dst(engine: Engine, config: HallConfig) -> None:
    """Berlin leaves summer time at 01:00 UTC on Sunday 26 October 2025: 09:00 local is 07:00 UTC before
    and 08:00 UTC after. Both days' 09:00 arrivals must land in hour 9, and on the right weekday."""
    from dataclasses import replace

    berlin = ZoneInfo("Europe/Berlin")
    assert offset_segments(berlin, date(2025, 10, 20), date(2025, 10, 31)) == [
        (datetime(2025, 10, 26, 1, 0), 120), (None, 60)]
    assert offset_segments(TZ, date(2025, 1, 1), date(2025, 12, 31)) == [(None, 480)]
    h = History(first_id=10_000)
    for day in (date(2025, 10, 25), date(2025, 10, 27)):  # Saturday in summer time, Monday in winter time
        for hh, mm in ((9, 0), (9, 59), (10, 0)):
            t = h.ticket(day, "consult", datetime(day.year, day.month, day.day, hh, mm, tzinfo=berlin))
            h.serve(t, t.visits[0], t.issued_at + timedelta(minutes=5), 2, 300)
    insert_history(engine, h, with_plan=False)
    cfg = replace(config, timezone="Europe/Berlin")
    days = (date(2025, 10, 25), date(2025, 10, 27))
    cold = ReportBuilder(engine, cfg)  # stores both days: the facts keep UTC times, the hours come on reading
    reps = [cold.build(*days, "hour", now=NOW), ReportBuilder(engine, cfg).build(*days, "hour", now=NOW),
            ReportBuilder(engine, cfg, stored_facts=False).build(*days, "hour", now=NOW)]
    assert cold.fact_days.prepared == list(days)
    for rep in reps:
        assert [(r["group"], r["visits"]) for r in rep.rows] == [(9, 4), (10, 2)]
        assert [(c["weekday"], c["hour"], c["arrivals"]) for c in rep.heatmap] == [
            (1, 9, 2), (1, 10, 1), (6, 9, 2), (6, 10, 1)]


def check_percentile_ranks(engine: Engine, config: HallConfig) -> None:
    """Group sizes where ⌈0.9·n⌉ in floating point is off by one (0.9 × 70 = 63.00000000000001): the
    90th percentile of 70 values is the 63rd, not the 64th. Waits of 1..70, 100..109 and 200 minutes."""
    day = date(2025, 11, 3)
    h = History(first_id=30_000)
    for service, minutes_ in (("move_in", range(1, 71)), ("consult", range(100, 110)), ("passport", [200])):
        for m in minutes_:
            t = h.ticket(day, service, at(day, 9))
            h.serve(t, t.visits[0], t.issued_at + timedelta(minutes=m), 1, 60 * (m % 7 + 1))
    insert_history(engine, h, with_plan=False)
    rep = ReportBuilder(engine, config).build(day, day, "service", now=NOW)
    rows = {r["group"]: r for r in rep.rows}
    assert (rows["move_in"]["wait_median_min"], rows["move_in"]["wait_p90_min"]) == (35, 63)
    assert (rows["consult"]["wait_median_min"], rows["consult"]["wait_p90_min"]) == (104, 108)
    assert (rows["passport"]["wait_median_min"], rows["passport"]["wait_p90_min"]) == (200, 200)
    # All 81: ranks ⌈40.5⌉ = 41 and ⌈72.9⌉ = 73 of 1..70, 100..109, 200.
    assert (rep.total["wait_median_min"], rep.total["wait_p90_min"]) == (41, 102)
    service = sorted(60 * (m % 7 + 1) for m in range(1, 71))
    assert rows["move_in"]["service_p90_min"] == service[63 - 1] / 60


def check_without_temp_table(engine: Engine, config: HallConfig) -> None:
    """The facts computed inside every query (a read-only replica) give the same report (two groupings:
    one by a column, one by an expression; the facts are the same for all)."""
    for group in ("department", "counter"):
        kept = ReportBuilder(engine, config).build(*PERIOD, group, now=NOW).to_dict()
        inline = ReportBuilder(engine, config, materialize=False).build(*PERIOD, group, now=NOW).to_dict()
        assert inline == kept, group


def stored_days(engine: Engine) -> dict[date, int]:
    """The business days in report_facts, with their number of facts."""
    rf = storage.report_facts
    with engine.connect() as conn:
        rows = conn.execute(select(rf.c.business_day, func.count()).group_by(rf.c.business_day)).all()
    return {d: n for d, n in rows}


def clear_facts(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in (storage.report_facts, storage.report_days, storage.report_day_times):
            conn.execute(delete(table))  # the stored days too: the next report starts cold


def visits_on(h: History, day: date) -> int:
    return sum(v.business_day == day for v in h.visits)


def check_run(reports: dict[str, Report], h: History, subtests: pytest.Subtests, run: str) -> None:
    """Every figure of every grouping against the oracle."""
    rep = reports["service"]
    with subtests.test("ticket figures", run=run):
        check_ticket_figures(rep, h)
    with subtests.test("wait, service and SLA figures of the whole period", run=run):
        check_total(rep, h)
    for group in GROUPS:
        with subtests.test("grouping", group=group, run=run):
            check_grouping(reports[group], h, group)
    with subtests.test("counter time", run=run):
        check_counter_time(rep, h)
    with subtests.test("clerks by post", run=run):
        check_clerks(rep, h)
    with subtests.test("per hour and heatmap", run=run):
        check_hourly(rep, h)


def test_known_history(loaded: Engine, config: HallConfig, config_path: str, history: History, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str], subtests: pytest.Subtests) -> None:
    """Every figure, every grouping and every format against the oracle, on this backend, three ways: every
    day computed on the fly (``live``); *cold*, the first report, which stores the facts of the final days
    DAY0 and DAY1 (DAY2 still has open tickets); *warm*, which reads them back (docs/reports.md "How it
    reads the database"). All three must give the very same report."""
    live = ReportBuilder(loaded, config, stored_facts=False)
    runs: dict[str, dict[str, Report]] = {"live": {g: live.build(*PERIOD, g, now=NOW) for g in GROUPS},
                                          "cold": {}, "warm": {}}
    assert stored_days(loaded) == {}, "stored_facts=False stores nothing"
    for g in GROUPS:
        clear_facts(loaded)
        cold = ReportBuilder(loaded, config)
        runs["cold"][g] = cold.build(*PERIOD, g, now=NOW)
        assert (cold.fact_days.stored, cold.fact_days.prepared, cold.fact_days.live) == (
            [], [DAY0, DAY1], [DAY0, DAY1, DAY2])
        warm = ReportBuilder(loaded, config)
        runs["warm"][g] = warm.build(*PERIOD, g, now=NOW)
        assert (warm.fact_days.stored, warm.fact_days.prepared, warm.fact_days.live) == ([DAY0, DAY1], [], [DAY2])
    assert stored_days(loaded) == {DAY0: visits_on(history, DAY0), DAY1: visits_on(history, DAY1)}
    with subtests.test("history covers every case"):
        check_coverage(history)
    for run, reports in runs.items():
        check_run(reports, history, subtests, run)
        with subtests.test("the same report as on the fly", run=run):
            assert {g: r.to_dict() for g, r in reports.items()} == {
                g: r.to_dict() for g, r in runs["live"].items()}
    b = ReportBuilder(loaded, config)
    rep = runs["warm"]["service"]
    with subtests.test("same-day completion and promised matters"):
        check_completion(rep, b.build(DAY2, DAY2, "service", now=at(DAY2, 16)), history)
        check_completion(runs["live"]["service"], live.build(DAY2, DAY2, "service", now=at(DAY2, 16)), history)
    with subtests.test("a period without data"):
        check_empty_period(b)
    with subtests.test("formats"):
        check_formats(rep, history, tmp_path)
    with subtests.test("chart data"):
        check_wait_samples(loaded, config, history)
    with subtests.test("report command"):
        check_report_command(db_file_url(loaded), config_path, tmp_path, capsys)
    with subtests.test("local hours across a DST change"):
        check_dst(loaded, config)
    with subtests.test("the same figures without a TEMP table"):
        check_without_temp_table(loaded, config)
    with subtests.test("percentile ranks"):
        check_percentile_ranks(loaded, config)


def test_due_dates_count_statutory_working_days(config: HallConfig) -> None:
    b = ReportBuilder(make_engine("sqlite://"), config)
    assert b.due_date(date(2025, 9, 26), 1) == date(2025, 9, 28)  # Sunday make-up day counts
    assert b.due_date(date(2025, 9, 30), 1) == date(2025, 10, 9)  # National Day week does not
    assert b.due_date(date(2025, 9, 29), 15) == date(2025, 10, 27)
    assert b.due_date(date(2025, 10, 9), 15) == date(2025, 10, 29)  # Saturday 11 October counts
    assert b.due_date(date(2025, 10, 9), 0) == date(2025, 10, 9)
    for d in (date(2025, 9, 27) + timedelta(days=i) for i in range(40)):
        assert b.is_working_day(d) == is_working_day(d), d


def test_builder_refuses_bad_arguments(config: HallConfig) -> None:
    b = ReportBuilder(make_engine("sqlite://"), config)
    with pytest.raises(ReportError) as err:
        b.build(DAY0, DAY0, "weekday")
    assert err.value.code == "REPORT_BAD_GROUP" and "分组" in err.value.message_zh
    with pytest.raises(ReportError) as err:
        b.build(DAY2, DAY0)
    assert err.value.code == "REPORT_BAD_PERIOD"
    assert parse_period("2025-09-29", None, None) == (DAY0, DAY0)
    assert parse_period(None, "2025-09-29", None) == (DAY0, DAY0)
    assert parse_period(None, "2025-09-29", "2025-10-09") == PERIOD
    for args, code in [((None, None, None), "REPORT_NO_PERIOD"),
                       (("2025-13-01", None, None), "REPORT_BAD_DATE"),
                       (("2025-09-29", "2025-09-29", None), "REPORT_BAD_PERIOD"),
                       ((None, "2025-10-09", "2025-09-29"), "REPORT_BAD_PERIOD"),
                       ((None, None, "2025-09-29"), "REPORT_NO_PERIOD")]:
        with pytest.raises(ReportError) as err:
            parse_period(*args)
        assert err.value.code == code, args


# ---------------------------------------------------------------------------- known answers: the engine


MORNING = date(2025, 10, 9)  # a Thursday, an ordinary working day


def test_a_morning_through_the_engine(db_url: str, config: HallConfig) -> None:
    """Every figure of this morning was worked out by hand from the script below."""
    clock = ManualClock(at(MORNING, 8, 25))
    store = open_store(db_url)
    try:
        install_pins(store, config, {"c1a": "1111", "c2b": "2222", "c9a": "9991"})
        hall = load_hall(config, clock, store)

        def do(hh: int, mm: int, command: str, **args: Any) -> dict[str, Any]:
            clock.set(at(MORNING, hh, mm))
            return hall.execute(command, args)

        do(8, 25, "sign_in", counter=1, clerk="c1a", pin="1111")
        do(8, 25, "sign_in", counter=2, clerk="c2b", pin="2222")  # the B post covers window 2
        do(8, 25, "sign_in", counter=9, clerk="c9a", pin="9991")
        do(8, 30, "take_ticket", service="passport")  # A001
        do(8, 31, "take_ticket", service="move_in")  # B001
        do(8, 32, "take_ticket", service="move_in")  # B002
        do(8, 33, "take_ticket", service="consult")  # Z001
        assert do(8, 35, "call_next", counter=1)["ticket"]["label"] == "A001"  # waited 5
        do(8, 36, "start", counter=1)
        do(8, 40, "transfer", counter=1, service="fees", note="缴费")  # served 4
        assert do(8, 41, "call_next", counter=2)["ticket"]["label"] == "B001"  # waited 10
        do(8, 42, "start", counter=2)
        assert do(8, 45, "call_next", counter=9)["ticket"]["label"] == "A001"  # fee visit waited 5
        do(8, 46, "start", counter=9)
        do(8, 48, "transfer", counter=9, service="passport", to_counter=1)  # served 2
        assert do(8, 49, "call_next", counter=1)["ticket"]["label"] == "A001"  # waited 1
        do(8, 50, "start", counter=1)
        do(8, 50, "finish", counter=2)  # B001 served 8
        assert do(8, 51, "call_next", counter=2)["ticket"]["label"] == "B002"  # first call after 19
        do(8, 52, "recall", counter=2)
        do(8, 53, "recall", counter=2)  # last call after 21
        assert do(8, 54, "recall", counter=2)["no_show"] is True
        do(8, 56, "reinstate", ticket="B002", counter=2)
        assert do(8, 57, "call_next", counter=2)["ticket"]["label"] == "B002"  # waited 1
        do(8, 58, "start", counter=2)
        do(9, 0, "finish", counter=1)  # A001 served 10
        do(9, 5, "finish", counter=2)  # B002 served 7
        do(9, 5, "pause", counter=2, reason="break")
        do(9, 10, "take_ticket", service="move_in")  # B003
        do(9, 11, "cancel_ticket", ticket="B003", reason="left")  # gave up after 1 min: not counted
        do(9, 12, "take_ticket", service="passport")  # A002, still waiting at 09:40 (28 < 40 min)
        do(9, 20, "resume", counter=2)
        assert do(9, 21, "call_next", counter=2)["ticket"]["label"] == "Z001"  # waited 48 > 15
        do(9, 22, "start", counter=2)
        do(9, 30, "finish", counter=2)  # Z001 served 8
        do(9, 35, "sign_out", counter=9)
        builder = ReportBuilder(store.engine, config)
        rep = builder.build(MORNING, MORNING, "service", now=at(MORNING, 9, 40))
        by_clerk = builder.build(MORNING, MORNING, "clerk", now=at(MORNING, 9, 40))
    finally:
        store.close()

    assert rep.tickets == {"issued": 6, "served": 4, "no_show": 0, "cancelled": 1, "voided": 0, "open": 1,
                           "closed_unserved": 0, "transferred": 1}
    # Waits [5, 5, 1, 10, 21, 1, 48]: mean 13, nearest-rank median (4th of 7) 5, p90 (7th) 48.
    # Service [4, 2, 10, 8, 7, 8]: mean 6.5, p90 (6th of 6) 10. Within target: all but Z001 (6 of 7).
    t = rep.total
    assert (t["visits"], t["issued"], t["called"], t["served"], t["finished"], t["no_show"],
            t["transferred_out"], t["cancelled"], t["open"]) == (9, 6, 7, 6, 4, 1, 2, 1, 1)
    assert (t["wait_avg_min"], t["wait_median_min"], t["wait_p90_min"], t["wait_max_min"]) == (13, 5, 48, 48)
    assert (t["service_avg_min"], t["service_p90_min"]) == (6.5, 10)
    assert (t["sla_within"], t["sla_counted"], t["sla_share"]) == (6, 7, round(6 / 7, 4))
    rows = {r["group"]: r for r in rep.rows}
    passport = rows["passport"]
    assert (passport["visits"], passport["wait_avg_min"], passport["open"]) == (3, 3, 1)
    assert (rows["fees"]["wait_max_min"], rows["fees"]["service_avg_min"]) == (5, 2)
    assert (rows["move_in"]["wait_median_min"], rows["move_in"]["no_show"], rows["move_in"]["cancelled"]) == (
        10, 1, 1)
    assert rows["consult"]["sla_share"] == 0
    # Same-day completion: A001 was a passport application (15 working days), the other three on the spot.
    assert rep.completion["same_day_completed"] == 3 and rep.completion["same_day_rate"] == 0.75
    assert rep.completion["same_day_meets_target"] is False and rep.completion["promised_accepted"] == 1
    counters = {c["counter"]: c for c in rep.counters}
    assert counters[1] == {"counter": 1, "name_zh": "1号窗口", "open_min": 75.0, "busy_min": 16.0,
                           "serving_min": 14.0, "idle_min": 59.0, "paused_min": 0.0,
                           "paused_by_reason_min": {}}
    assert (counters[2]["open_min"], counters[2]["busy_min"], counters[2]["serving_min"],
            counters[2]["idle_min"], counters[2]["paused_by_reason_min"]) == (60, 29, 23, 31, {"break": 15})
    assert (counters[9]["open_min"], counters[9]["busy_min"], counters[9]["idle_min"]) == (70, 3, 67)
    assert [(c["clerk"], c["post"], c["called"], c["served"], c["finished"], c["no_show"],
             c["service_avg_min"]) for c in by_clerk.clerks] == [
        ("c1a", "A", 2, 2, 1, 0, 7.0), ("c2b", "B", 4, 3, 3, 1, 7.67), ("c9a", "A", 1, 1, 0, 0, 2.0)]
    assert rep.hourly == [{"hour": 8, "arrivals": 4, "served": 1}, {"hour": 9, "arrivals": 2, "served": 3}]


# ---------------------------------------------------------------------------- the command line


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from queuehall.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def db_file_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory, history: History) -> str:
    """A SQLite file with the synthetic history, for command-line checks that do not depend on the backend."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'hall.db'}"
    eng = make_engine(url)
    migrate(eng)
    insert_history(eng, history)
    eng.dispose()
    return url


@pytest.mark.parametrize(("args", "code"), [
    (["--day", "2025-02-30"], "REPORT_BAD_DATE"),
    ([], "REPORT_NO_PERIOD"),
    (["--from", "2025-10-09", "--to", "2025-09-29"], "REPORT_BAD_PERIOD"),
    (["--day", "2025-09-29", "--to", "2025-09-30"], "REPORT_BAD_PERIOD"),
    (["--day", "2025-09-29", "--group", "weekday"], "REPORT_BAD_GROUP"),
    (["--day", "2025-09-29", "--format", "xlsx"], "REPORT_NEEDS_OUT"),
])
def test_report_command_refuses_bad_arguments(sqlite_db: str, config_path: str,
                                              capsys: pytest.CaptureFixture[str], args: list[str],
                                              code: str) -> None:
    rc, out, err = run_cli(capsys, "report", "--db", sqlite_db, "--config", config_path, *args)
    assert rc == 2 and out == ""
    assert err.startswith(f"queuehall report: {code}: ") and " / " in err


def test_report_command_never_creates_a_database(tmp_path: Path, config_path: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.db"
    rc, _, err = run_cli(capsys, "report", "--db", f"sqlite:///{missing}", "--config", config_path,
                         "--day", "2025-09-29")
    assert rc == 2 and "REPORT_NO_DATABASE" in err and "数据库不存在" in err and not missing.exists()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    rc, _, err = run_cli(capsys, "report", "--db", f"sqlite:///{empty}", "--config", config_path,
                         "--day", "2025-09-29")
    assert rc == 2 and "REPORT_DATABASE" in err and "not a queuehall database" in err
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text("[hall]\nretention_days = 10\n", encoding="utf-8")
    rc, _, err = run_cli(capsys, "purge", "--db", f"sqlite:///{empty}", "--config", str(bad_cfg),
                         "--before", "2020-01-01")
    assert rc == 2 and "REPORT_CONFIG" in err


def test_the_installed_command_runs(sqlite_db: str, config_path: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "queuehall.cli", "report", "--db", sqlite_db,
                           "--config", config_path, "--day", "2025-10-09", "--format", "csv"],
                          capture_output=True, text=True, encoding="utf-8", timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert list(csv.DictReader(io.StringIO(proc.stdout)))[-1]["group"] == "all"


# ---------------------------------------------------------------------------- purge


def test_purge_keeps_the_retention_period_and_says_what_it_deleted(
        engine: Engine, config: HallConfig, config_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    today = datetime.now(UTC).astimezone(TZ).date()
    old, recent = today - timedelta(days=400), today - timedelta(days=20)
    h = History()
    done = h.ticket(old, "passport", at(old, 9))  # closed, old: deleted with its visits and events
    end = h.serve(done, done.visits[0], at(old, 9, 10), 1, 300, "transferred")
    h.serve(done, h.visit(done, "fees", end), at(old, 9, 20), 9, 60)
    h.ticket(old, "move_in", at(old, 10))  # old but still waiting: kept
    kept = h.ticket(recent, "move_in", at(recent, 9))  # inside retention: kept
    h.serve(kept, kept.visits[0], at(recent, 9, 5), 2, 300)
    insert_history(engine, h, with_plan=False)
    with engine.begin() as conn:
        conn.execute(insert(storage.events), [
            {"hall_id": "main", "seq": i, "at": _naive(at(d, 9)), "business_day": d, "type": "ticket_issued",
             "ticket_id": None, "service": None, "counter": None, "clerk": None, "data": "{}"}
            for i, d in enumerate((old, old, recent), 1)])
    db = ["--db", db_file_url(engine), "--config", config_path]
    limit = today - timedelta(days=config.retention_days)

    with pytest.raises(HallError) as refused_here:
        Store(engine).purge(limit + timedelta(days=1), retention_days=config.retention_days, today=today)
    assert refused_here.value.code == "RETENTION"
    rc, out, _ = run_cli(capsys, "purge", *db, "--before", (limit + timedelta(days=1)).isoformat())
    refused = json.loads(out)
    assert rc == 1 and refused["status"] == "error" and refused["error"]["code"] == "RETENTION"
    assert "190" in refused["error"]["message_zh"] and limit.isoformat() in refused["error"]["message_en"]

    rc, out, err = run_cli(capsys, "purge", *db, "--before", "last week")
    assert rc == 2 and out == "" and "REPORT_BAD_DATE" in err

    rc, out, _ = run_cli(capsys, "purge", *db, "--before", limit.isoformat())
    result = json.loads(out)
    assert rc == 0 and result["status"] == "ok" and result["before"] == limit.isoformat()
    assert result["deleted"] == {"tickets": 1, "visits": 2, "events": 2, "requests": 0, "bookings": 0}
    with engine.connect() as conn:
        left = conn.execute(select(storage.tickets.c.business_day, storage.tickets.c.status)
                            .order_by(storage.tickets.c.id)).all()
        visits_left = conn.execute(select(func.count()).select_from(storage.visits)).scalar()
        events_left = conn.execute(select(storage.events.c.business_day)).scalars().all()
    assert [tuple(r) for r in left] == [(old, "waiting"), (recent, "finished")]
    assert visits_left == 2 and events_left == [recent]
    # Nothing older is left: a second purge deletes nothing and says so.
    rc, out, _ = run_cli(capsys, "purge", *db, "--before", limit.isoformat())
    assert rc == 0 and json.loads(out)["deleted"] == {"tickets": 0, "visits": 0, "events": 0, "requests": 0,
                                                      "bookings": 0}


def test_purge_honours_the_halls_longer_retention_recorded_by_its_broker(
        engine: Engine, config: HallConfig, config_path: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A purge run from another machine with a shorter ``retention_days`` than the hall's keeps the hall's."""
    today = datetime.now(UTC).astimezone(TZ).date()
    old = today - timedelta(days=300)
    h = History()
    done = h.ticket(old, "passport", at(old, 9))
    h.serve(done, done.visits[0], at(old, 9, 10), 1, 300)
    insert_history(engine, h, with_plan=False)
    assert config.retention_days == 190 and Store(engine).stored_retention() is None
    # The hall's broker keeps 400 days; it records that at start.
    hall_config = replace(config, retention_days=400)
    load_hall(hall_config, ManualClock(datetime.now(UTC)), Store(engine))
    assert Store(engine).stored_retention() == 400
    db = ["--db", db_file_url(engine), "--config", config_path]  # this machine's hall.toml says 190

    rc, out, _ = run_cli(capsys, "purge", *db, "--before", (today - timedelta(days=250)).isoformat())
    refused = json.loads(out)
    assert rc == 1 and refused["error"]["code"] == "RETENTION" and "400" in refused["error"]["message_en"]
    with pytest.raises(HallError):
        Store(engine).purge(today - timedelta(days=250), retention_days=190, today=today)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(storage.tickets)).scalar() == 1  # nothing deleted

    # The hall's own state is not touched by the record: a rebuilt hall sees no extra state.
    hall = load_hall(hall_config, ManualClock(datetime.now(UTC)), Store(engine))
    assert storage.RETENTION_KEY not in hall.state

    # A longer --config than the recorded period wins as well.
    long_cfg = tmp_path / "long.toml"
    long_cfg.write_text(Path(config_path).read_text(encoding="utf-8").replace(
        "retention_days = 190", "retention_days = 500"), encoding="utf-8")
    rc, out, _ = run_cli(capsys, "purge", "--db", db_file_url(engine), "--config", str(long_cfg),
                         "--before", (today - timedelta(days=450)).isoformat())
    assert rc == 1 and "500" in json.loads(out)["error"]["message_en"]

    # Past the hall's 400 days the purge runs, and says which period it honoured.
    rc, out, _ = run_cli(capsys, "purge", *db, "--before", (today - timedelta(days=400)).isoformat())
    assert rc == 0 and json.loads(out)["retention_days"] == 400

    # The hall's broker restarted with 190 days: then 190 is the hall's period.
    load_hall(config, ManualClock(datetime.now(UTC)), Store(engine))
    rc, out, _ = run_cli(capsys, "purge", *db, "--before", (today - timedelta(days=250)).isoformat())
    assert rc == 0 and json.loads(out)["deleted"]["tickets"] == 1
