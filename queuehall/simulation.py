"""A simulated busy day in the hall: citizens arrive, clerks call and serve.

Used by the headless demo, clerk training and tests. It drives the *real* broker
through the client library (every action is a protocol request), on a clock it
advances itself, so a morning runs in seconds and the same seed gives the same day.

The model (all rates per hour, times in minutes; docs/demo.md):

* arrivals per service follow a Poisson process whose rate follows the usual shape
  of a service hall's morning (a rush after opening, quieter before lunch);
* ~8 % of citizens who may take a green-channel ticket do;
* a called citizen arrives after 0.5–2 min; ~6 % never come: the clerk recalls
  up to the limit and the ticket becomes a no-show;
* service time is log-normal around the service's configured average;
* ~35 % of passport and Hong Kong/Macao applicants are sent to the fee window
  (统一收费) and back to the same counter to finish;
* counters pause for lunch (11:30–13:30) and one counter pauses mid-morning to
  consult a supervisor.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from queuehall.broker.config import HallConfig
from queuehall.broker.hours import OpeningHours
from queuehall.client import BrokerClient, CommandRefused
from queuehall.clock import ManualClock
from queuehall.pins import Cost, hash_pin

# Relative arrival rate by local hour: the morning rush after opening.
_SHAPE = {8: 1.3, 9: 1.5, 10: 1.1, 11: 0.6, 12: 0.0, 13: 1.0, 14: 1.2, 15: 1.0, 16: 0.7}
# Base arrivals per hour for a service, by code; others get 1/h.
_BASE_RATE = {"passport": 8, "hk_macao": 6, "document_pickup": 10, "newborn": 2, "move_in": 2, "move_out": 2,
              "pension_eligibility": 5, "insurance_subsidy": 2, "unemployment_registration": 3,
              "eia_approval": 0.7, "consult_complaint": 6}
FEE_SERVICES = ("passport", "hk_macao")
FEE_SERVICE = "unified_fees"

# The PINs of the demonstration hall's clerks (the default config/hall.toml). Only the demo, the
# simulation and the tests use them: install_demo_pins puts their hashes in a demo's own database.
# A real hall sets its own with ``queuehall clerks set-pin`` (docs/configuration.md).
DEMO_PINS: dict[str, str] = {
    "c01a": "4821", "c01b": "730915", "c02a": "2690", "c02b": "58136", "c03a": "9047", "c03b": "316482",
    "c04a": "7352", "c04b": "0618", "c05a": "84209", "c05b": "5573", "c06a": "192837", "c06b": "6604",
    "c07a": "3918", "c07b": "27451", "c08a": "8063", "c08b": "140297", "c09a": "4476", "c09b": "9125",
    "c10a": "60538", "c10b": "2247", "c11a": "7790", "c11b": "351864", "c12a": "1309", "c12b": "86152",
}
# A cheaper scrypt cost than a real hall's (queuehall.pins.DEFAULT_COST): the demo hashes every
# clerk's PIN at each start, and these PINs are public anyway.
DEMO_COST = Cost(n=2**10, r=8, p=1)


def install_demo_pins(store: Any, config: HallConfig, pins: Mapping[str, str] = DEMO_PINS,
                      cost: Cost = DEMO_COST) -> None:
    """Set the PIN of each clerk of ``config`` found in ``pins`` in ``store`` (a broker.storage.Store)."""
    for clerk in config.clerks:
        if clerk.id in pins:
            store.set_pin_hash(clerk.id, hash_pin(pins[clerk.id], cost), by="demo")


@dataclass(order=True)
class _Action:
    at: datetime
    order: int
    name: str = field(compare=False)
    run: Callable[[], None] = field(compare=False)


@dataclass
class DayStats:
    issued: int = 0
    refused_issue: int = 0
    calls: int = 0
    recalls: int = 0
    no_shows: int = 0
    finished: int = 0
    transfers: int = 0
    priority: int = 0
    pauses: int = 0
    errors: list[str] = field(default_factory=list)


class HallSimulation:
    """Schedules arrivals and clerk behaviour and runs them against a broker.

    ``take`` issues a ticket (default: through ``client``; the demo passes the kiosk
    screen's own flow instead). ``after_action`` runs after each step (the demo uses
    it to let the screens repaint and to take screenshots).
    """

    def __init__(self, config: HallConfig, client: BrokerClient, clock: ManualClock, *, day: date,
                 start: str = "08:25", end: str = "11:30", seed: int = 7,
                 take: Callable[[str, str | None], dict[str, Any] | None] | None = None,
                 after_action: Callable[[datetime, str], None] | None = None,
                 gui_counters: dict[int, Any] | None = None, pins: Mapping[str, str] = DEMO_PINS) -> None:
        self.config = config
        self.pins = pins
        self.client = client
        self.clock = clock
        self.tz = ZoneInfo(config.timezone)
        self.day = day
        self.start = self._local(start)
        self.end = self._local(end)
        self.rng = random.Random(seed)
        self.take = take or self._take_by_client
        self.after_action = after_action or (lambda at, name: None)
        self.gui_counters = gui_counters or {}
        self.stats = DayStats()
        self._queue: list[_Action] = []
        self._order = itertools.count()
        self.sessions: dict[int, str] = {}
        self.origin: dict[int, int] = {}  # ticket id -> counter to return to after paying
        self.counter_busy: set[int] = set()
        self.empty_polls = 0  # call_next answered "nobody waiting", in a row

    def _local(self, hhmm: str) -> datetime:
        h, m = (int(x) for x in hhmm.split(":"))
        return datetime(self.day.year, self.day.month, self.day.day, h, m, tzinfo=self.tz)

    def at(self, when: datetime, name: str, run: Callable[[], None]) -> None:
        heapq.heappush(self._queue, _Action(when, next(self._order), name, run))

    # ------------------------------------------------------------------ requests

    def request(self, type_: str, **args: Any) -> dict[str, Any] | None:
        """Run a command as the counter's terminal (its GUI if the demo gave one)."""
        counter = args.get("counter")
        gui = self.gui_counters.get(counter) if counter is not None else None
        if gui is not None:
            return gui(type_, args)
        if counter in self.sessions and type_ != "sign_in":
            args["session"] = self.sessions[counter]
        try:
            return self.client.request(type_, **args)
        except CommandRefused as err:
            if err.code not in ("QUEUE_EMPTY",):
                self.stats.errors.append(f"{type_}@{counter}: {err.code}")
            return None

    def _take_by_client(self, service: str, priority: str | None) -> dict[str, Any] | None:
        try:
            return self.client.request("take_ticket", service=service, priority=priority)
        except CommandRefused:
            return None

    # ------------------------------------------------------------------ the day

    def plan(self) -> None:
        """Schedule sign-ins, arrivals, pauses and the clerks' first calls."""
        open_at = self.start
        for cfg in self.config.counters:
            # Counter 4's A post is absent today: the B post covers (A、B岗).
            clerk = cfg.clerk_b if cfg.number == 4 else cfg.clerk_a
            self.at(open_at, f"sign in {cfg.number}", partial(self._sign_in, cfg.number, clerk))
            self.at(open_at + timedelta(minutes=6, seconds=cfg.number * 7), f"idle {cfg.number}",
                    partial(self._next, cfg.number))
        self._plan_arrivals()
        if self.end > self._local("11:30"):
            for cfg in self.config.counters:
                self.at(self._local("11:31"), f"lunch {cfg.number}", partial(self._lunch, cfg.number))
        paused = self.config.counters[min(6, len(self.config.counters) - 1)].number
        self.at(self._local("09:40"), f"pause {paused}", lambda: self._pause_for(paused, "consult_supervisor", 15))

    def _plan_arrivals(self) -> None:
        first = self._local("08:30")
        hours = OpeningHours(self.config.hours, self.config.timezone)
        for s in self.config.services:
            if s.code == FEE_SERVICE:
                continue
            base = _BASE_RATE.get(s.code, 1)
            t = first
            while t < self.end:
                rate = base * _SHAPE.get(t.astimezone(self.tz).hour, 0.0)
                if hours.issue_window(t, s.cutoff_minutes).state != "open":
                    rate = 0.0  # citizens come back when the hall opens
                if rate <= 0:
                    t += timedelta(minutes=10)
                    continue
                t += timedelta(minutes=self.rng.expovariate(rate / 60.0))
                if t >= self.end:
                    break
                prio = None
                if s.priority_classes and self.rng.random() < 0.08:
                    prio = self.rng.choice([p for p in s.priority_classes])
                self.at(t, f"arrive {s.code}", partial(self._arrive, s.code, prio))

    def run(self, until: datetime | None = None, progress: Callable[[datetime, DayStats], None] | None = None
            ) -> DayStats:
        """Execute every scheduled action up to ``until`` (default: the end plus 90 min to drain)."""
        stop = until or self.end + timedelta(minutes=90)
        last_report = None
        while self._queue and self._queue[0].at <= stop:
            if self._drained():
                break
            action = heapq.heappop(self._queue)
            if action.at > self.clock.now():
                self.clock.set(action.at)
            action.run()
            self.after_action(action.at, action.name)
            if progress is not None:
                minute = action.at.replace(second=0, microsecond=0)
                if last_report is None or minute - last_report >= timedelta(minutes=15):
                    last_report = minute
                    progress(action.at, self.stats)
        return self.stats

    def _drained(self) -> bool:
        """After the last arrival: every counter found nobody waiting, twice in a row, and none is busy."""
        return (self.clock.now() > self.end and not self.counter_busy
                and self.empty_polls >= 2 * len(self.config.counters))

    # ------------------------------------------------------------------ behaviour

    def _sign_in(self, counter: int, clerk: str) -> None:
        r = self.request("sign_in", counter=counter, clerk=clerk, pin=self.pins[clerk], takeover=True)
        if r is not None and "session" in r:
            self.sessions[counter] = r["session"]

    def _arrive(self, service: str, priority: str | None) -> None:
        r = self.take(service, priority)
        if r is None:
            self.stats.refused_issue += 1
            return
        self.stats.issued += 1
        self.stats.priority += bool(priority)

    def _later(self, minutes: float) -> datetime:
        return self.clock.now() + timedelta(minutes=minutes)

    def _next(self, counter: int) -> None:
        """An idle clerk presses Call next; if nobody waits, looks again in a minute."""
        if counter in self.counter_busy:
            return
        r = self.request("call_next", counter=counter)
        self.empty_polls = self.empty_polls + 1 if r is None or "ticket" not in r else 0
        if r is None or "ticket" not in r:
            if self.clock.now() < self.end + timedelta(minutes=80):
                self.at(self._later(1), f"idle {counter}", lambda: self._next(counter))
            return
        self.counter_busy.add(counter)
        self.stats.calls += 1
        ticket = r["ticket"]
        if self.rng.random() < 0.06:  # nobody comes
            self.at(self._later(1.0), f"recall {counter}", lambda: self._recall(counter))
        else:
            walk = self.rng.uniform(0.5, 2.0)
            self.at(self._later(walk), f"start {counter}", lambda: self._start(counter, ticket))

    def _recall(self, counter: int) -> None:
        r = self.request("recall", counter=counter)
        if r is None:
            self._free(counter)
            return
        if r.get("no_show"):
            self.stats.no_shows += 1
            self._free(counter)
        else:
            self.stats.recalls += 1
            self.at(self._later(1.0), f"recall {counter}", lambda: self._recall(counter))

    def _start(self, counter: int, ticket: dict[str, Any]) -> None:
        if self.request("start", counter=counter) is None:
            self._free(counter)
            return
        service = self.config.service(ticket["queue_service"])
        mean = service.avg_service_minutes if service else 8.0
        minutes = self.rng.lognormvariate(math.log(mean) - 0.08, 0.4)
        tid = ticket["id"]
        if ticket["queue_service"] == FEE_SERVICE and tid in self.origin:
            back = self.origin.pop(tid)
            self.at(self._later(minutes), f"back {counter}",
                    lambda: self._transfer(counter, to_counter=back, note="已缴费 / Paid"))
        elif (ticket["queue_service"] in FEE_SERVICES and ticket.get("target_counter") is None
              and self.rng.random() < 0.35):
            self.origin[tid] = counter
            self.at(self._later(minutes * 0.6), f"to fee {counter}",
                    lambda: self._transfer(counter, service=FEE_SERVICE, note="请缴纳证件费 / Please pay the fee"))
        else:
            self.at(self._later(minutes), f"finish {counter}", lambda: self._finish(counter))

    def _transfer(self, counter: int, **args: Any) -> None:
        if self.request("transfer", counter=counter, **args) is not None:
            self.stats.transfers += 1
        else:
            self.request("finish", counter=counter)
        self._free(counter)

    def _finish(self, counter: int) -> None:
        if self.request("finish", counter=counter) is not None:
            self.stats.finished += 1
        self._free(counter)

    def _free(self, counter: int) -> None:
        self.counter_busy.discard(counter)
        self.at(self._later(self.rng.uniform(0.1, 0.5)), f"idle {counter}", lambda: self._next(counter))

    def _lunch(self, counter: int) -> None:
        if counter in self.counter_busy:  # finish the citizen at the window first
            self.at(self._later(2), f"lunch {counter}", lambda: self._lunch(counter))
            return
        if self.clock.now() >= self._local("13:20"):
            return
        self.counter_busy.add(counter)  # nobody is called while at lunch
        if self.request("pause", counter=counter, reason="break") is not None:
            self.stats.pauses += 1
        self.at(self._local("13:30"), f"resume {counter}", lambda: self._resume(counter))

    def _pause_for(self, counter: int, reason: str, minutes: float) -> None:
        if counter in self.counter_busy:
            self.at(self._later(1), f"pause {counter}", lambda: self._pause_for(counter, reason, minutes))
            return
        self.counter_busy.add(counter)
        if self.request("pause", counter=counter, reason=reason) is not None:
            self.stats.pauses += 1
        self.at(self._later(minutes), f"resume {counter}", lambda: self._resume(counter))

    def _resume(self, counter: int) -> None:
        self.request("resume", counter=counter)
        self.counter_busy.discard(counter)
        self._next(counter)
