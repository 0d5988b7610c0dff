"""Property tests: random days in the hall, on a real database, with restarts.

Hypothesis draws random sequences of operations — kiosk and counter commands, clock
jumps (minutes to days, across midnight and into closed hours) and restarts (the hall
rebuilt from the database mid-sequence) — weighted so that a sequence of 20–60 operations
makes a busy hall. After every operation the invariants below are checked against the
engine *and* the database:

* numbers are unique and gapless per service and business day;
* no ticket is lost: every issued ticket is open in the engine or terminal in the database,
  and the engine's open tickets are exactly the database's;
* no ticket is served twice, and each ticket's visits form one unbroken chain;
* nothing is in two places: a ticket is at most at one counter, a counter has at most one
  ticket, and a ticket at a counter is called or being served;
* a restart changes nothing (the rebuilt hall equals the one before);
* call_next obeys the calling rules: over-wait tickets first, then the counter's services in
  order, priority tickets but never more than ``priority_streak`` in a row while a normal
  ticket waited, then first come first served (checked against an independent model).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from queuehall.broker import storage
from queuehall.broker.engine import Hall
from queuehall.broker.model import ACTIVE, CALLED, FINISHED, NO_SHOW, SERVING, WAITING, Ticket
from queuehall.broker.storage import Store, load_hall, open_store
from sqlalchemy import func, select

from queuehall.clock import ManualClock
from queuehall.errors import HallError
from tests.hall_factory import TUESDAY, install_pins, local, small_config

BASE = small_config()
# Over-wait on (45 min) so the first rule is exercised; streak 2, 2 recalls, 30 min grace as in the factory.
CFG = replace(BASE, calling=replace(BASE.calling, over_wait_minutes=45))
STREAK = CFG.calling.priority_streak
COUNTERS = (1, 2, 9)
CLERKS = {c.number: (c.clerk_a, c.clerk_b) for c in CFG.counters}
# No fsync per commit: these tests restart cleanly, they do not pull the plug (and CI disks are slow).
SYNC = "OFF"
PREFIX = {s.code: s.prefix for s in CFG.services}
TERMINAL = frozenset({FINISHED, NO_SHOW, "cancelled", "voided", "closed_unserved"})
# Refusals a random sequence may legitimately run into; anything else (STORAGE above all) fails the test.
EXPECTED = frozenset({
    "HALL_CLOSED", "HALL_BREAK", "PAST_CUTOFF", "PRIORITY_NOT_ALLOWED", "CLERK_ELSEWHERE", "COUNTER_OCCUPIED",
    "COUNTER_CLOSED", "COUNTER_PAUSED", "COUNTER_NOT_PAUSED", "COUNTER_BUSY", "QUEUE_EMPTY", "NOTHING_CALLED",
    "NOT_SERVING", "ALREADY_SERVING", "NOT_WAITING", "NOT_SERVED_HERE", "NOT_NO_SHOW", "GRACE_EXPIRED",
    "CANNOT_CANCEL", "SAME_QUEUE", "SERVICE_CLOSED", "UNKNOWN_TICKET",
})


def memory(hall: Hall) -> dict[str, Any]:
    """The engine's state as a restart must reproduce it (request replies are checked by retries)."""
    return copy.deepcopy({
        "snapshot": hall.snapshot(), "tickets": hall.tickets, "visits": hall.visits, "counters": hall.counters,
        "state": hall.state, "recent_calls": list(hall.recent_calls),
        "last": (hall.last_ticket_id, hall.last_visit_id, hall.last_event_seq),
        "numbers": {k: v for k, v in hall.numbers.items() if k[0] == hall.hours.business_day(hall.clock.now())},
    })


def wipe(store: Store) -> None:
    """Empty every hall table (a fresh hall for the next example, without re-migrating)."""
    with store.engine.begin() as conn:
        for table in reversed(storage.metadata.sorted_tables):
            conn.execute(table.delete())


class HallRun:
    """One hall on one database, driven one operation at a time, with a model to check it against."""

    def __init__(self, store: Store) -> None:
        wipe(store)
        install_pins(store, CFG)
        self.engine = store.engine
        self.clock = ManualClock(local(TUESDAY, 8, 30))
        self.hall = load_hall(CFG, self.clock, store)
        self.sessions: dict[int, str] = {}
        self.issued: set[int] = set()
        self.finished: set[int] = set()
        self.numbers: dict[tuple[Any, str], int] = {}  # the model's numbering, independent of the engine
        self.streak: dict[str, int] = {}  # the model's run of priority calls per service
        self.last_request: tuple[datetime, str, dict[str, Any], str, dict[str, Any]] | None = None
        self.requests = 0
        for n in COUNTERS:  # the day starts with every counter staffed; operations sign out and in again
            self.sign_in(n, 0, False)

    def apply(self, op: tuple[Any, ...]) -> None:
        """Run one operation ``(name, *args)``, then check every invariant."""
        if op[0] not in ("advance", "next_day_at"):
            # The running broker's heartbeat closes a day whose closing time passed; then the model's
            # expectations (who is next, which counters are open) hold for the state that command meets.
            self.hall.close_day_if_due()
        getattr(self, op[0])(*op[1:])
        self.nothing_in_two_places()
        self.database_agrees()
        self.closed_days_are_closed()

    # ------------------------------------------------------------------ helpers

    def run(self, command: str, args: dict[str, Any], *, request: bool = False) -> dict[str, Any] | None:
        """Execute; an expected refusal returns None, anything else must succeed."""
        kw: dict[str, Any] = {}
        if request:
            self.requests += 1
            kw = {"client": "kiosk-1", "request_id": f"r{self.requests}"}
        try:
            reply = self.hall.execute(command, args, **kw)
        except HallError as err:
            assert err.code in EXPECTED, (command, args, err)
            return None
        if request:
            self.last_request = (self.clock.now(), command, args, kw["request_id"], reply)
        return reply

    def counter_args(self, counter: int) -> dict[str, Any]:
        args: dict[str, Any] = {"counter": counter}
        if counter in self.sessions:
            args["session"] = self.sessions[counter]
        return args

    def tickets_in(self, *statuses: str) -> list[Ticket]:
        return sorted((t for t in self.hall.tickets.values() if t.status in statuses), key=lambda t: t.id)

    def busy_counter(self, pick: int, *statuses: str) -> int | None:
        """A counter holding a ticket (in one of ``statuses``, if given), or None."""
        busy = [n for n, c in sorted(self.hall.counters.items()) if c.ticket_id is not None and (
            not statuses or self.hall.tickets[c.ticket_id].status in statuses)]
        return busy[pick % len(busy)] if busy else None

    def note_call(self, t: dict[str, Any]) -> None:
        """Count a call towards its queue's run of priority calls made while a normal ticket waited."""
        service = t["queue_service"]
        normal_waits = t["priority"] and any(
            w.status == WAITING and not w.priority and w.queue_service == service for w in self.hall.tickets.values())
        self.streak[service] = self.streak.get(service, 0) + 1 if normal_waits else 0

    def expected_pick(self, counter: int) -> tuple[Ticket | None, str, list[Ticket]]:
        """What call_next must call at ``counter`` by docs/calling-rules.md, and why."""
        cfg = self.hall.counter_config[counter]
        now = self.clock.now()
        eligible = [t for t in self.hall.tickets.values() if t.status == WAITING and (
            t.target_counter == counter or (t.target_counter is None and t.queue_service in cfg.services))]
        if not eligible:
            return None, "empty", eligible

        def entered(t: Ticket) -> datetime:
            return self.hall.visits[t.visit_id].entered_at

        over = [t for t in eligible if now - entered(t) > timedelta(minutes=CFG.calling.over_wait_minutes)]
        if over:
            return min(over, key=lambda t: (entered(t), t.id)), "over_wait", eligible
        order = [*cfg.services, *sorted({t.queue_service for t in eligible} - set(cfg.services))]
        service = next(s for s in order if any(t.queue_service == s for t in eligible))
        queue = sorted((t for t in eligible if t.queue_service == service), key=lambda t: (t.queue_key, t.id))
        prio = [t for t in queue if t.priority]
        normal = [t for t in queue if not t.priority]
        if prio and (not normal or self.streak.get(service, 0) < STREAK):
            return prio[0], "priority", eligible
        return (normal or prio)[0], "normal", eligible

    # ------------------------------------------------------------------ kiosk

    def take(self, service: str, priority: str | None, request: bool, count: int) -> None:
        """Take ``count`` tickets; each number must be the model's next for the service and day."""
        for _ in range(count):
            reply = self.run("take_ticket", {"service": service, "priority": priority}, request=request)
            if reply is None:
                return
            t = reply["ticket"]
            key = (self.hall.hours.business_day(self.clock.now()), service)
            self.numbers[key] = self.numbers.get(key, 0) + 1
            assert t["label"] == f"{PREFIX[service]}{self.numbers[key]:03d}", (t, self.numbers[key])
            assert t["business_day"] == key[0].isoformat()
            assert t["id"] not in self.issued
            self.issued.add(t["id"])

    def rush(self, service: str, priority: int, normal: int) -> None:
        """A group arrives: ``priority`` elderly and ``normal`` other citizens for one service, mixed."""
        for i in range(max(priority, normal)):
            if i < normal:
                self.take(service, None, False, 1)
            if i < priority:
                self.take(service, "elderly", True, 1)

    def retry(self) -> None:
        """A kiosk retries its last request (its reply was lost): same answer, nothing issued."""
        if self.last_request is None:
            return
        at, command, args, rid, reply = self.last_request
        if self.clock.now() - at > timedelta(days=1):  # replies are reloaded for two days only
            return
        before = (self.hall.last_ticket_id, self.hall.last_event_seq)
        assert self.hall.execute(command, args, client="kiosk-1", request_id=rid) == reply
        assert (self.hall.last_ticket_id, self.hall.last_event_seq) == before

    def cancel(self, pick: int) -> None:
        pool = self.tickets_in(WAITING, CALLED, SERVING, NO_SHOW)
        if pool:
            self.run("cancel_ticket", {"ticket": str(pool[pick % len(pool)].id), "reason": "left"})

    def void(self, pick: int) -> None:
        pool = self.tickets_in(WAITING)
        if pool:
            self.run("void_ticket", {"ticket": str(pool[pick % len(pool)].id), "reason": "paper jam"})

    def reinstate(self, pick: int, by_label: bool) -> None:
        pool = self.tickets_in(NO_SHOW)
        if pool:
            t = pool[pick % len(pool)]
            self.run("reinstate", {"ticket": t.label if by_label else str(t.id)})

    # ------------------------------------------------------------------ counters

    def sign_in(self, counter: int, post: int, takeover: bool) -> None:
        clerk = CLERKS[counter][post]
        reply = self.run("sign_in", {"counter": counter, "clerk": clerk, "pin": "1234", "takeover": takeover})
        if reply is not None:
            self.sessions[counter] = reply["session"]

    def sign_out(self, counter: int) -> None:
        if self.run("sign_out", self.counter_args(counter)) is not None:
            self.sessions.pop(counter, None)

    def pause_or_resume(self, counter: int, resume: bool) -> None:
        if resume:
            self.run("resume", self.counter_args(counter))
        else:
            self.run("pause", {**self.counter_args(counter), "reason": "break"})

    def serve(self, counter: int, steps: int, minutes: int) -> None:
        """The counter's next natural steps: reopen if needed, call the next ticket, start, finish."""
        for _ in range(steps):
            c = self.hall.counters[counter]
            t = self.hall.tickets.get(c.ticket_id) if c.ticket_id is not None else None
            if c.state == "closed":
                self.sign_in(counter, 0, False)
            elif c.state == "paused":
                self.run("resume", self.counter_args(counter))
            elif t is None:
                self.call_next(counter)
            else:
                self.counter_step(counter, "start" if t.status == CALLED else "finish")
            self.clock.advance(minutes=minutes)

    def call_next(self, counter: int) -> None:
        """Call next at ``counter``; the engine must call exactly the ticket the model expects."""
        state = self.hall.counters[counter]
        free = state.state == "open" and state.ticket_id is None
        expected, why, eligible = self.expected_pick(counter) if free else (None, "busy", [])
        reply = self.run("call_next", self.counter_args(counter))
        if reply is None:
            assert expected is None, (why, expected)
            return
        t = reply["ticket"]
        assert free and expected is not None, (why, t)
        assert t["id"] == expected.id, (why, t["label"], expected.label)
        if why == "over_wait":  # nobody who waited longer was passed over
            limit = self.clock.now() - timedelta(minutes=CFG.calling.over_wait_minutes)
            longest = min(self.hall.visits[e.visit_id].entered_at for e in eligible)
            assert longest < limit and self.hall.visits[self.hall.tickets[t["id"]].visit_id].entered_at == longest
        elif t["priority"] and any(not e.priority and e.queue_service == t["queue_service"] for e in eligible):
            assert self.streak.get(t["queue_service"], 0) < STREAK  # the streak cap while a normal one waited
        self.note_call(t)

    def call_ticket(self, counter: int, pick: int) -> None:
        pool = self.tickets_in(WAITING)
        if not pool:
            return
        t = pool[pick % len(pool)]
        reply = self.run("call_ticket", {**self.counter_args(counter), "ticket": t.label, "reason": "预约"})
        if reply is not None:
            self.note_call(reply["ticket"])

    def counter_step(self, counter: int, command: str) -> None:
        reply = self.run(command, self.counter_args(counter))
        if reply is not None and command == "finish":
            tid = reply["ticket"]["id"]
            assert tid not in self.finished, "served twice"
            self.finished.add(tid)

    def at_busy_counter(self, pick: int, command: str) -> None:
        counter = self.busy_counter(pick, SERVING if command == "finish" else CALLED)
        if counter is not None:
            self.counter_step(counter, command)

    def transfer(self, pick: int, service: str, to_counter: int | None) -> None:
        """Send a busy counter's ticket to ``service`` (only, or at ``to_counter``) or to ``to_counter`` only."""
        counter = self.busy_counter(pick)
        if counter is None:
            return
        args = {**self.counter_args(counter), "note": "转办"}
        if to_counter:
            args["to_counter"] = to_counter
        if not to_counter or pick % 2:
            args["service"] = service
        self.run("transfer", args)

    # ------------------------------------------------------------------ time and restarts

    def advance(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    def next_day_at(self, hour: int) -> None:
        """Jump to a local hour of the next day: before opening, in the break, after closing, or open."""
        day = self.hall.hours.business_day(self.clock.now()) + timedelta(days=1)
        self.clock.set(local(day, hour, 45 if hour == 8 else 0))

    def restart(self) -> None:
        """Rebuild the hall from the database, as a new broker process would; nothing may change."""
        self.hall.close_day_if_due()  # what the running broker's heartbeat does; a restart must agree
        before = memory(self.hall)
        self.hall.journal.close()  # type: ignore[attr-defined]  # drops every connection, as a process exit does
        self.hall = load_hall(CFG, self.clock, Store(self.engine))
        assert memory(self.hall) == before

    # ------------------------------------------------------------------ invariants

    def nothing_in_two_places(self) -> None:
        """A ticket is at one counter at most, a counter holds one ticket at most, and only while it is live."""
        held = [c.ticket_id for c in self.hall.counters.values() if c.ticket_id is not None]
        assert len(held) == len(set(held)), "a ticket at two counters"
        for n, c in self.hall.counters.items():
            if c.ticket_id is not None:
                t = self.hall.tickets.get(c.ticket_id)
                assert t is not None and t.status in (CALLED, SERVING) and t.counter == n, (n, t)
                assert c.state != "closed"
        for t in self.hall.tickets.values():
            if t.status in (CALLED, SERVING):
                assert self.hall.counters[t.counter].ticket_id == t.id, t
            assert t.status in ACTIVE or t.status == NO_SHOW

    def closed_days_are_closed(self) -> None:
        """Once the closing time of a day passed and the close ran, nothing of that day or before is open."""
        hall = self.hall
        if hall.close_due():
            return  # the next command or heartbeat closes it
        closed = hall.closed_through
        assert closed is not None and closed >= hall.hours.business_day(self.clock.now()) - timedelta(days=1)
        for t in hall.tickets.values():
            if t.status in ACTIVE or t.status == NO_SHOW:
                assert t.status_at >= hall.close_instant(closed), (t, closed)
        for c in hall.counters.values():
            # A clerk may sign in after the close (until the next day's close signs them out).
            assert c.state == "closed" or c.since >= hall.close_instant(closed), (c, closed)

    def database_agrees(self) -> None:
        """Numbering, ticket fates, visit chains and counters in the database match the engine and the model."""
        tk, vs = storage.tickets, storage.visits
        with self.engine.connect() as conn:
            per_day = conn.execute(select(
                tk.c.business_day, tk.c.service, func.count(), func.count(tk.c.number.distinct()),
                func.min(tk.c.number), func.max(tk.c.number)).group_by(tk.c.business_day, tk.c.service)).all()
            rows = {r.id: r for r in conn.execute(select(tk.c.id, tk.c.status, tk.c.status_at, tk.c.visit_id,
                                                         tk.c.counter, tk.c.queue_service))}
            twice = conn.execute(select(vs.c.ticket_id).where(vs.c.outcome == FINISHED).group_by(vs.c.ticket_id)
                                 .having(func.count() > 1)).all()
            visits = conn.execute(select(vs.c.id, vs.c.ticket_id, vs.c.seq, vs.c.ended_at, vs.c.outcome)
                                  .order_by(vs.c.ticket_id, vs.c.seq)).all()
            counters = {r.number: r for r in conn.execute(select(storage.counter_state))}
        # Numbers: unique and gapless per service and business day (the model agrees on the last one).
        for day, service, n, distinct, low, high in per_day:
            assert n == distinct == high and low == 1, (day, service, n, distinct, high)
            assert self.numbers.get((day, service)) == high
        # No ticket lost: every issued ticket is stored, open in the engine or terminal in the database.
        assert set(rows) == self.issued
        closed = self.hall.closed_through
        assert closed is not None  # load_hall closes (or notes) every day due
        for tid, r in rows.items():
            t = self.hall.tickets.get(tid)
            # The no-shows of a day not yet closed are in memory; a closed day's leave with its close. A day
            # whose closing time passed closes at the next command (or heartbeat): until then they linger.
            day = self.hall.hours.business_day(r.status_at.replace(tzinfo=UTC)) if r.status_at else None
            must = r.status in ACTIVE or (r.status == NO_SHOW and day is not None and day > closed)
            if must or (t is not None and r.status == NO_SHOW):
                assert t is not None and (t.status, t.visit_id, t.counter, t.queue_service) == (
                    r.status, r.visit_id, r.counter, r.queue_service), (tid, r, t)
            else:
                assert t is None and r.status in TERMINAL, (tid, r.status)
        # Never served twice; finished tickets are exactly the ones the counters finished.
        assert twice == []
        assert {tid for tid, r in rows.items() if r.status == FINISHED} == self.finished
        # Visits: one unbroken chain per ticket; only an open ticket's current visit is still open.
        chains: dict[int, list[Any]] = {}
        for v in visits:
            chains.setdefault(v.ticket_id, []).append(v)
        assert set(chains) == set(rows)
        for tid, chain in chains.items():
            assert [v.seq for v in chain] == list(range(1, len(chain) + 1)), tid
            assert chain[-1].id == rows[tid].visit_id
            assert all(v.ended_at is not None and v.outcome in ("transferred", NO_SHOW) for v in chain[:-1]), tid
            assert (chain[-1].ended_at is None) == (rows[tid].status in ACTIVE), tid
        # The counters in the database are the engine's.
        for n, c in self.hall.counters.items():
            if n in counters:
                assert (counters[n].state, counters[n].ticket_id, counters[n].session) == (
                    c.state, c.ticket_id, c.session)
            else:
                assert c.state == "closed" and c.ticket_id is None


PICK = st.integers(0, 63)  # an index into whatever is eligible when the operation runs
COUNTER = st.sampled_from(COUNTERS)
OPERATIONS: dict[str, tuple[int, list[st.SearchStrategy[Any]]]] = {  # name: (weight, argument strategies)
    "take": (22, [st.sampled_from(["P", "P", "H", "FEE"]),
                  st.sampled_from([None, None, "elderly", "elderly", "military"]),
                  st.booleans(), st.integers(1, 4)]),
    "rush": (6, [st.sampled_from(["P", "H"]), st.integers(0, 4), st.integers(0, 3)]),
    "serve": (22, [COUNTER, st.integers(1, 3), st.sampled_from([0, 1, 2, 5, 10])]),
    "call_next": (4, [COUNTER]),
    "call_ticket": (3, [COUNTER, PICK]),
    "at_busy_counter": (10, [PICK, st.sampled_from(["recall", "recall", "no_show", "no_show", "start", "finish"])]),
    "counter_step": (2, [COUNTER, st.sampled_from(["recall", "no_show", "start", "finish"])]),
    "transfer": (8, [PICK, st.sampled_from(["FEE", "FEE", "P", "H"]), st.sampled_from([None, None, 1, 2, 9])]),
    "cancel": (3, [PICK]),
    "void": (1, [PICK]),
    "reinstate": (3, [PICK, st.booleans()]),
    "sign_in": (3, [COUNTER, st.sampled_from([0, 0, 1]), st.booleans()]),
    "sign_out": (3, [COUNTER]),
    "pause_or_resume": (4, [COUNTER, st.booleans()]),
    "advance": (9, [st.sampled_from([1, 2, 3, 5, 5, 8, 8, 13, 20, 31, 46, 60, 90, 300, 1440, 4320])]),
    "next_day_at": (2, [st.sampled_from([0, 8, 9, 9, 10, 11, 12, 14, 14, 16, 17, 20])]),
    "restart": (5, []),
    "retry": (2, []),
}
# One branch per unit of weight; the operation's name is part of the drawn tuple, so a failing
# example prints as a readable list like [("take", "P", None, False, 2), ("serve", 1, 3, 0), ...].
OPERATION = st.one_of([st.tuples(st.just(name), *args)
                       for name, (weight, args) in OPERATIONS.items() for _ in range(weight)])


def run_sequences(db_url: str, examples: int, length: int) -> None:
    """Run ``examples`` random sequences of up to ``length`` operations on one migrated database."""
    store = open_store(db_url, sqlite_synchronous=SYNC)

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(ops=st.lists(OPERATION, min_size=length // 2, max_size=length))
    def sequences(ops: list[tuple[Any, ...]]) -> None:
        run = HallRun(store)
        for op in ops:
            run.apply(op)
        run.restart()  # every sequence ends with a restart as well

    try:
        sequences()
    finally:
        store.close()


def test_random_days_keep_every_invariant(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        run_sequences(db_url, examples=25, length=60)
    else:  # PostgreSQL: the same operations, a smaller run
        run_sequences(db_url, examples=5, length=40)
