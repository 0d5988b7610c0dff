"""The hall engine: tickets, queues, counters and the calling rules.

Pure Python: no sockets, no Qt, no SQL. The broker feeds it commands and a
:class:`Journal` saves each accepted command's :class:`~broker.model.Change`
atomically *before* the engine applies it in memory, so a refused or failed command
leaves the state exactly as it was and nothing acknowledged is ever lost.

Each command is one method whose docstring is its specification; its name, typed parameters and
the roles that may send it are declared once in queuehall/commands.py (the command schema), and
``COMMANDS`` maps the wire names to the methods (docs/protocol.md lists the same). The calling rules are
described in docs/calling-rules.md and implemented in :meth:`Hall._pick`.
"""

from __future__ import annotations

import copy
import hmac
import inspect
import json
import math
import re
import secrets
from collections import deque
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from queuehall.broker.appointments import (
    QR_PREFIX,
    SlotPlan,
    code_problem,
    contact_check,
    hash_contact,
    mask_contact,
    new_code,
    new_contact_key,
    normalise_code,
    normalise_contact,
)
from queuehall.broker.config import Counter, HallConfig, Service
from queuehall.broker.hours import OPEN, OpeningHours
from queuehall.broker.model import (
    ACTIVE,
    BOOKED,
    BOOKING_CANCELLED,
    BOOKING_NO_SHOW,
    CALLED,
    CANCELLED,
    CASE_CLOSED,
    CASE_OPEN,
    CHANNEL_DEFAULT,
    CHECKED_IN,
    CLOSED_UNSERVED,
    COUNTER_CLOSED,
    COUNTER_OPEN,
    COUNTER_PAUSED,
    FINISHED,
    NO_SHOW,
    RATING_CHANNELS,
    SERVING,
    TRANSFERRED,
    VOIDED,
    WAITING,
    Booking,
    Case,
    Change,
    CounterState,
    Event,
    PinRecord,
    Ratable,
    Rating,
    Stored,
    Ticket,
    Visit,
)

from queuehall.clock import Clock
from queuehall.commands import COMMANDS as SCHEMA
from queuehall.commands import check_args, hall_commands
from queuehall.errors import HallError
from queuehall.pins import verify_pin
from queuehall.protocol import format_time, parse_time
from queuehall.ratings import LOW_LEVELS, RATING_INDICATORS, RATING_LEVELS

RECENT_CALLS = 30  # calls kept for the displays' history
_EWMA = 0.2  # weight of the newest service time in the estimate
_STATE_STREAK = "streak"
_STATE_APPT_STREAK = "appointment_streak"  # service -> appointment tickets called in a row while a walk-in waited
_STATE_WRR = "wrr"
_STATE_AVG = "avg_service_s"
# Remote tickets (docs/web.md): {"day": business day, "issued": {service: n}, "tickets": {id: {label, arrive_by,
# checked_in_at, lapsed}}}; journaled with the commands that change it, so quotas and deadlines survive restarts.
_STATE_REMOTE = "remote"
CHANNELS = ("kiosk", "remote")
# The manager's alerts (docs/supervision.md): {key: {rule, details, raised_at, ack: {at, by, note} | None}}; the
# broker's AlertMonitor decides, the ``alert`` command records (journaled: alerts survive restarts).
_STATE_ALERTS = "alerts"
# clerk -> {"failures": wrong PINs in a row, "generation": of the PIN record they were counted
# against, "locked_until": ISO time or None}; journaled like the rest of the state, so a lock
# survives a restart.
_STATE_LOCKS = "clerk_locks"
_MAX_REQUESTS = 200_000  # replies remembered for retries (a busy hall's few days)
# The reply recorded for a refused request whose refusal was committed (a wrong PIN): {_REFUSED: {"code", "details"}}.
_REFUSED = "__refused__"
_STATE_DAY_CLOSE = "day_close"  # the last business day closed: {"day": ISO date, "at": ISO instant}
TOKEN_BYTES = 16  # a ticket token carries 128 random bits
_STATE_PRINTERS = "printers"  # kiosk client id -> its printer-fault alert and reprint orders
_STATUS_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,39}")
# Finished visits are remembered this long after their rating window closed, so a late rating is refused as
# late (RATING_CLOSED) rather than as an unknown ticket; storage.load_hall loads the same horizon.
RATING_HORIZON = timedelta(hours=24)


def new_token() -> str:
    """A ticket page token: 128 bits from the operating system's CSPRNG, URL-safe (22 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


class Journal(Protocol):
    """Durable storage for accepted changes (broker.storage implements it with SQLAlchemy)."""

    def commit(self, change: Change) -> None:
        """Write ``change`` atomically; raise on failure (then nothing was written)."""
        ...


class PinSource(Protocol):
    """Where the engine reads a clerk's PIN hash at each sign-in (broker.storage reads the database,
    so a PIN set or a clerk unlocked with ``queuehall clerks`` counts at once, broker running or not)."""

    def pin_record(self, clerk: str) -> PinRecord | None:
        """The clerk's PIN record, or None when no PIN was set."""
        ...


class MemoryPins:
    """PIN records held in memory: for a hall with no database (rule tests, simulations)."""

    def __init__(self, hashes: dict[str, str] | None = None) -> None:
        self.records: dict[str, PinRecord] = {k: PinRecord(k, h, 1) for k, h in (hashes or {}).items()}

    def pin_record(self, clerk: str) -> PinRecord | None:
        return self.records.get(clerk)

    def set_hash(self, clerk: str, pin_hash: str) -> None:
        """Set a clerk's PIN hash (and void any lock, as ``queuehall clerks set-pin`` does)."""
        old = self.records.get(clerk)
        self.records[clerk] = PinRecord(clerk, pin_hash, old.generation + 1 if old else 1)

    def unlock(self, clerk: str) -> None:
        """Void the clerk's lock, as ``queuehall clerks unlock`` does."""
        old = self.records[clerk]
        self.records[clerk] = PinRecord(clerk, old.pin_hash, old.generation + 1)


class NullJournal:
    """Keeps nothing: for a hall that lives only in memory (rule tests, simulations)."""

    def commit(self, change: Change) -> None:
        return None


class _Tx:
    """Copies of the records a command touches; installed only after the journal commits."""

    def __init__(self, hall: Hall) -> None:
        self.hall = hall
        self.change = Change()
        self.now = hall.clock.now()
        self.rule = ""  # which calling rule chose the ticket (audit)
        self.day = hall.hours.business_day(self.now)
        # A refused command normally changes nothing; a wrong PIN is refused *and* counted (and
        # audited), so sign_in sets this to have the events and state of the refusal committed.
        self.keep_refused = False

    def ticket(self, tid: int) -> Ticket:
        if tid not in self.change.tickets:
            self.change.tickets[tid] = copy.copy(self.hall.tickets[tid])
        return self.change.tickets[tid]

    def visit(self, vid: int) -> Visit:
        if vid not in self.change.visits:
            self.change.visits[vid] = copy.copy(self.hall.visits[vid])
        return self.change.visits[vid]

    def counter(self, number: int) -> CounterState:
        if number not in self.change.counters:
            self.change.counters[number] = copy.copy(self.hall.counters[number])
        return self.change.counters[number]

    def state(self, key: str) -> Any:
        if key not in self.change.state:
            self.change.state[key] = copy.deepcopy(self.hall.state.get(key, {}))
        return self.change.state[key]

    def add_ticket(self, t: Ticket) -> None:
        self.change.tickets[t.id] = t
        self.change.new_tickets.add(t.id)

    def booking(self, code: str) -> Booking:
        if code not in self.change.bookings:
            self.change.bookings[code] = copy.copy(self.hall.booking_records[code])
        return self.change.bookings[code]

    def add_booking(self, b: Booking) -> None:
        self.change.bookings[b.code] = b
        self.change.new_bookings.add(b.code)

    def add_visit(self, v: Visit) -> None:
        self.change.visits[v.id] = v
        self.change.new_visits.add(v.id)

    def new_visit_id(self) -> int:
        return self.hall.last_visit_id + 1 + len(self.change.new_visits)

    def event(self, type_: str, *, ticket: Ticket | None = None, counter: int | None = None,
              clerk: str | None = None, **data: Any) -> Event:
        seq = self.hall.last_event_seq + 1 + len(self.change.events)
        if ticket is not None:
            data.setdefault("ticket", self.hall.ticket_view(ticket, tx=self))
        ev = Event(seq=seq, at=self.now, business_day=self.day, type=type_,
                   ticket_id=ticket.id if ticket else None,
                   service=ticket.queue_service if ticket else data.get("service"),
                   counter=counter, clerk=clerk, data=data)
        self.change.events.append(ev)
        return ev


# Checks run at every "call next" with the hall, the command's transaction, the counter and the candidates the queue
# index found (services, the oldest eligible ticket, the tickets of a service). A hall runs none; the tests register
# one that finds them again the slow way and compares (tests/publication_checks.py).
PICK_CHECKS: list[Callable[..., None]] = []


class Hall:
    """The authoritative state of one service hall."""

    def __init__(self, config: HallConfig, clock: Clock, journal: Journal | None = None,
                 stored: Stored | None = None, token_source: Callable[[], str] | None = None,
                 pins: PinSource | None = None, contact_key: bytes | None = None) -> None:
        self.config = config
        # The key of the bookings' contact hashes (broker/appointments.py hash_contact): the broker's, read from
        # its file outside the database (broker/main.py); a fresh one for a hall that is not a broker's.
        self.contact_key: bytes = contact_key if contact_key is not None else new_contact_key()
        self.clock = clock
        # Where ticket tokens come from: the CSPRNG, or a deterministic source a test injects.
        self.token_source: Callable[[], str] = token_source or new_token
        self.journal: Journal = journal or NullJournal()
        self.pins: PinSource = pins if pins is not None else MemoryPins()
        self.hours = OpeningHours(config.hours, config.timezone)
        self.services: dict[str, Service] = {s.code: s for s in config.services}
        self.counter_config: dict[int, Counter] = {c.number: c for c in config.counters}
        # Each counter's A and B post clerks as the screens get them (the counter's sign-in buttons).
        self._posts: dict[int, dict[str, dict[str, str]]] = {
            c.number: {post: {"clerk": k.id, "name_zh": k.name.zh, "name_en": k.name.en}
                       for post, k in (("A", config.clerk(c.clerk_a)), ("B", config.clerk(c.clerk_b))) if k}
            for c in config.counters}
        self.tickets: dict[int, Ticket] = {}
        self.visits: dict[int, Visit] = {}
        self.counters: dict[int, CounterState] = {n: CounterState(n) for n in self.counter_config}
        self.state: dict[str, Any] = {}
        self.numbers: dict[tuple[date, str], int] = {}
        # (client, request id) -> the reply; JSON text when it came from the database, decoded the first
        # time the request is retried.
        self.requests: dict[tuple[str, str], dict[str, Any] | str] = {}
        self.recent_calls: deque[Event] = deque(maxlen=RECENT_CALLS)
        self.last_ticket_id = 0
        self.last_visit_id = 0
        self.last_event_seq = 0
        self.listeners: list[Callable[[Event], None]] = []
        self._queues: dict[str, dict[int, Ticket]] = {}  # queue service -> waiting tickets by id
        self._queued_in: dict[int, str] = {}
        self._addressed: dict[int, dict[int, Ticket]] = {}  # counter -> waiting tickets sent to it
        # queue -> (entered, id) of its longest-waiting ticket addressed to no counter (None: there is
        # none); kept as tickets join, dropped when that ticket leaves, recomputed when "call next" asks.
        self._oldest: dict[str, tuple[datetime, int] | None] = {}
        self._addressed_to: dict[int, int] = {}
        self._by_token: dict[str, int] = {}  # token -> id of the tickets in memory (ticket_by_token)
        # 好差评 (docs/evaluation.md): finished visits within the rating horizon, in the order they ended,
        # and the open 差评 cases.
        self.ratable: dict[int, Ratable] = {}
        self.cases: dict[int, Case] = {}
        self.last_rating_id = 0
        self.last_case_id = 0
        # service -> (counter, share of that counter): a counter serving n services is 1/n of one for each.
        self._serving: dict[str, list[tuple[int, float]]] = {}
        for cfg in config.counters:
            for code in cfg.services:
                self._serving.setdefault(code, []).append((cfg.number, 1.0 / len(cfg.services)))
        self._capacity: dict[str, float] = {}  # cache, emptied whenever a counter's state changes
        # What the installed changes touched since the broker last published (it pops them).
        self.dirty_services: set[str] = set()
        self.dirty_counters: set[int] = set()
        # The last business day closed (:meth:`close_day_if_due`); None: no close recorded yet.
        self.closed_through: date | None = None
        self._next_close: datetime | None = None  # no close is due before this instant
        # Appointments (预约): the bookings of business days not yet closed (and of the last one closed), the
        # places taken per (service, slot start), the slots of each day, and where codes' random parts come from
        # (None: the CSPRNG; a test injects a function).
        self.booking_records: dict[str, Booking] = {}
        self._booked: dict[tuple[str, datetime], int] = {}
        self.slot_plan = SlotPlan(self.hours)
        self.code_source: Callable[[], str] | None = None
        if stored is not None:
            self._restore(stored)

    # ------------------------------------------------------------------ rebuild

    def _restore(self, stored: Stored) -> None:
        self.tickets = {t.id: t for t in stored.tickets}
        self.visits = {v.id: v for v in stored.visits}
        for c in stored.counters:
            if c.number in self.counters:
                self.counters[c.number] = c
        self.state = dict(stored.state)
        self.numbers = dict(stored.numbers)
        self.requests = dict(stored.requests)
        self.recent_calls.extend(stored.recent_calls[-RECENT_CALLS:])
        self.last_ticket_id = stored.last_ticket_id
        self.last_visit_id = stored.last_visit_id
        self.last_event_seq = stored.last_event_seq
        day = self.state.get(_STATE_DAY_CLOSE, {}).get("day")
        if day:
            self.closed_through = date.fromisoformat(day)
            # The rule the live hall follows: a closed day's no-shows leave memory with the close.
            for t in [t for t in self.tickets.values()
                      if t.status == NO_SHOW and self._day_of(t) <= self.closed_through]:
                del self.tickets[t.id]
                self.visits.pop(t.visit_id, None)
        for t in self.tickets.values():
            self._index(t)
            if t.token:
                self._by_token[t.token] = t.id
        self.ratable = {r.visit_id: r for r in sorted(stored.ratable, key=lambda r: (r.ended_at, r.visit_id))}
        self.cases = {c.id: c for c in stored.open_cases}
        self.last_rating_id = stored.last_rating_id
        self.last_case_id = stored.last_case_id
        for b in stored.bookings:
            self.booking_records[b.code] = b
            if b.state in (BOOKED, CHECKED_IN):
                key = (b.service, b.slot_at)
                self._booked[key] = self._booked.get(key, 0) + 1

    # ------------------------------------------------------------------ dispatch

    def execute(self, command: str, args: dict[str, Any] | None = None, *,
                client: str | None = None, request_id: str | None = None) -> dict[str, Any]:
        """Run one command and return its reply; raise :class:`HallError` when refused.

        A command carrying ``client`` and ``request_id`` that was already accepted
        returns the original reply without running again (retries are safe). So does one
        whose refusal was recorded (a wrong PIN, counted toward the clerk's lock): its retry
        raises the same refusal again instead of counting a second wrong PIN.
        """
        key = (client, request_id) if client and request_id else None
        if key is not None and key in self.requests:
            reply = self.requests[key]
            if isinstance(reply, str):
                reply = self.requests[key] = json.loads(reply)
            refused = reply.get(_REFUSED) if isinstance(reply, dict) else None
            if isinstance(refused, dict):
                raise HallError(refused["code"], **refused.get("details", {}))
            return reply
        self.close_day_if_due()  # a command never acts on a day that should be closed
        if not isinstance(command, str):  # an unhashable name would crash the lookup below
            raise HallError("BAD_REQUEST", detail="command must be a string")
        fn = COMMANDS.get(command)
        if fn is None:
            raise HallError("UNKNOWN_COMMAND", command=command)
        kwargs = check_args(_PARAMS[command], args if args is not None else {})
        tx = _Tx(self)
        if command in _TAKES_CLIENT:
            kwargs["client"] = client
        try:
            reply = fn(self, tx, **kwargs)
        except HallError as err:
            if tx.keep_refused:  # only the refusal's record: its events and state, nothing else
                # With the refusal as the request's reply, in the same transaction: a retry of the request
                # (same id) gets it again and is not counted again (docs/protocol.md, retries).
                request = (key[0], key[1], {_REFUSED: {"code": err.code, "details": err.details}}) if key else None
                self._commit(Change(events=tx.change.events, state=tx.change.state, request=request))
            raise
        if key is not None:
            tx.change.request = (key[0], key[1], reply)
        self._commit(tx.change)
        return reply

    def query(self, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """Answer one of the hall's questions (``slots``, ``bookings``: kind ``query`` in queuehall/commands.py)
        from its state, changing nothing and journaling nothing; raise :class:`HallError` when refused."""
        if name not in HALL_QUERIES:
            raise HallError("UNKNOWN_COMMAND", command=str(name))
        self.close_day_if_due()  # the answer is about a day that is closed when it should be
        kwargs = check_args(SCHEMA[name].params, args if args is not None else {})
        return getattr(self, name)(_Tx(self), **kwargs)

    def _commit(self, change: Change) -> None:
        """Journal ``change`` and install it; STORAGE (and nothing changed) if the journal refused."""
        try:
            self.journal.commit(change)
        except HallError:
            raise
        except Exception as exc:  # the database refused: nothing changed, tell the caller
            raise HallError("STORAGE", detail=str(exc)[:200], detail_zh=getattr(exc, "zh", str(exc)[:200])) from exc
        self._install(change)

    def _install(self, change: Change) -> None:
        for c in change.counters.values():
            old = self.counters.get(c.number)
            if old != c:  # every counter command copies its counter, changed or not
                self.dirty_counters.add(c.number)
            if old is None or (old.state == COUNTER_CLOSED) != (c.state == COUNTER_CLOSED):
                self.dirty_services.update(self.counter_config[c.number].services)  # their capacity changed
                self._capacity.clear()
        for t in change.tickets.values():
            self.dirty_services.update((t.service, t.queue_service))
            queued_in = self._queued_in.get(t.id)
            if queued_in is not None:
                self.dirty_services.add(queued_in)
            if t.counter is not None:  # the ticket is (or was last) shown at this counter
                self.dirty_counters.add(t.counter)
        self.tickets.update(change.tickets)
        self.visits.update(change.visits)
        self.counters.update(change.counters)
        self.state.update(change.state)
        for t in change.tickets.values():
            if t.id in change.new_tickets:
                self.numbers[(t.business_day, t.service)] = max(
                    self.numbers.get((t.business_day, t.service), 0), t.number)
                if t.token:
                    self._by_token[t.token] = t.id
        self.last_ticket_id = max([self.last_ticket_id, *change.new_tickets])
        self.last_visit_id = max([self.last_visit_id, *change.new_visits])
        if change.events:
            self.last_event_seq = change.events[-1].seq
        for b in change.bookings.values():
            before = self.booking_records.get(b.code)
            for rec, step in ((before, -1), (b, 1)):
                if rec is not None and rec.state in (BOOKED, CHECKED_IN):
                    place = (rec.service, rec.slot_at)
                    self._booked[place] = self._booked.get(place, 0) + step
            self.booking_records[b.code] = b
        if change.request is not None:
            self.requests[(change.request[0], change.request[1])] = change.request[2]
        self._install_ratings(change)
        # Memory holds open tickets and their current visit only; the database keeps the rest.
        for v in change.visits.values():
            holder = self.tickets.get(v.ticket_id)
            if holder is None or holder.visit_id != v.id:
                self.visits.pop(v.id, None)
        for t in change.tickets.values():
            if t.status not in ACTIVE and t.status != NO_SHOW:
                self.tickets.pop(t.id, None)
                self.visits.pop(t.visit_id, None)
                if t.token:
                    self._by_token.pop(t.token, None)
        for t in change.tickets.values():
            self._index(t)
        if len(self.requests) > _MAX_REQUESTS:
            for key in list(self.requests)[: len(self.requests) - _MAX_REQUESTS]:
                del self.requests[key]
        for ev in change.events:
            if ev.type == "ticket_called":
                self.recent_calls.append(ev)
            for listener in self.listeners:
                listener(ev)

    def _install_ratings(self, change: Change) -> None:
        """Finished visits become ratable, ratings mark theirs, cases open and close; old visits are forgotten."""
        for v in change.visits.values():
            if v.outcome == FINISHED and v.ended_at is not None and v.id not in self.ratable:
                t = change.tickets.get(v.ticket_id) or self.tickets.get(v.ticket_id)
                if t is not None:
                    self.ratable[v.id] = Ratable(v.id, t.id, t.label, v.business_day, v.service, v.counter,
                                                 v.clerk, v.post, v.ended_at)
        for r in change.ratings:
            entry = self.ratable.get(r.visit_id)
            if entry is not None:
                entry.rated = r.level
            self.last_rating_id = max(self.last_rating_id, r.id)
        for case in change.cases.values():
            if case.status == CASE_OPEN:
                self.cases[case.id] = case
            else:
                self.cases.pop(case.id, None)
        self.last_case_id = max([self.last_case_id, *change.new_cases])
        if self.ratable:
            horizon = self.rating_horizon(self.clock.now())
            while self.ratable:
                first = next(iter(self.ratable.values()))
                if first.ended_at >= horizon:
                    break
                del self.ratable[first.visit_id]

    def longest_waiting_since(self, service: str) -> datetime | None:
        """When the longest-waiting ticket of ``service``'s queue (addressed to no counter) joined it; None
        for an empty queue. The same cached value "call next" uses (cheap for the alert rules)."""
        if service not in self._oldest:
            self._oldest[service] = min(((self.visits[t.visit_id].entered_at, t.id)
                                         for t in self._queues.get(service, {}).values() if t.target_counter is None),
                                        default=None)
        first = self._oldest[service]
        return first[0] if first is not None else None

    def active_alerts(self) -> dict[str, dict[str, Any]]:
        """The alerts raised and not cleared: key -> {rule, details, raised_at, ack}."""
        return dict(self.state.get(_STATE_ALERTS, {}))

    def record_alerts(self, raised: dict[str, dict[str, Any]], cleared: list[str]) -> dict[str, Any]:
        """Record alerts raised and cleared (the broker's alert monitor, docs/supervision.md), journaled like a
        command but never sent by a device: events ``alert_raised`` (``key``, ``rule``, ``details``) and
        ``alert_cleared`` (``key``, ``rule``, ``raised_at``). A key raised already, or not active, is ignored.
        Raises HallError STORAGE when the journal refused (nothing changed)."""
        tx = _Tx(self)
        book = tx.state(_STATE_ALERTS)
        done_raised, done_cleared = [], []
        for key, details in raised.items():
            if key in book:
                continue
            rule = str(details.get("rule") or key.split(":", 1)[0])
            book[key] = {"rule": rule, "details": details, "raised_at": _iso(tx.now), "ack": None}
            tx.event("alert_raised", counter=details.get("counter"), service=details.get("service"), key=key,
                     rule=rule, details=details)
            done_raised.append(key)
        for key in cleared:
            entry = book.pop(key, None)
            if entry is None:
                continue
            tx.event("alert_cleared", counter=entry["details"].get("counter"),
                     service=entry["details"].get("service"), key=key, rule=entry["rule"],
                     raised_at=entry["raised_at"])
            done_cleared.append(key)
        if done_raised or done_cleared:
            try:
                self.journal.commit(tx.change)
            except Exception as exc:  # the database refused: nothing changed
                raise HallError("STORAGE", detail=str(exc)[:200]) from exc
            self._install(tx.change)
        return {"raised": done_raised, "cleared": done_cleared}

    def alert_ack(self, tx: _Tx, key: str, note: str, by: str | None = None) -> dict[str, Any]:
        """A manager acknowledges an active alert with a note (required); it stays until its condition ends.
        UNKNOWN_ALERT when it is not active. Event ``alert_acknowledged``."""
        book = tx.state(_STATE_ALERTS)
        entry = book.get(key)
        if entry is None:
            raise HallError("UNKNOWN_ALERT", key=key)
        entry["ack"] = {"at": _iso(tx.now), "by": by, "note": note.strip()}
        tx.event("alert_acknowledged", counter=entry["details"].get("counter"),
                 service=entry["details"].get("service"), key=key, rule=entry["rule"], note=note.strip(), by=by)
        return {"alert": dict(entry, key=key)}

    def rating_horizon(self, now: datetime) -> datetime:
        """Visits finished before this are forgotten for rating (storage.load_hall loads those after it)."""
        return now - timedelta(minutes=self.config.rating.window_minutes) - RATING_HORIZON

    # ------------------------------------------------------------------ closing the business day

    def close_day_if_due(self) -> list[date]:
        """Close every business day whose closing time has passed; return the days closed.

        A business day closes ``close_after_minutes`` after its last opening period ends,
        and at the latest at the next midnight (a day without opening hours closes then).
        Closing day D (docs/calling-rules.md "Closing the business day"):

        * every open ticket of D or before (waiting, called, serving; transferred and
          reinstated tickets wait too) ends ``closed_unserved`` with its open visit
          (event ``ticket_closed_unserved``, ``previous`` = its status before);
        * every counter still signed in is signed out (``counter_signed_out`` with
          ``reason: "day_closed"``); its session ends;
        * the no-shows of D leave memory (they can no longer be reinstated or cancelled);
        * the calling rules' per-day state (priority streaks, weight credits) restarts;
        * one ``day_closed`` event sums it up, and the day is recorded as closed.

        All of it is one journaled change, stamped at the closing time (not at the moment
        the broker noticed), so a broker that was down overnight closes yesterday the same
        way when it starts, and a restart rebuilds the same state. A day with nothing
        open and no opening hours is skipped without a record. Pure: driven by the clock.
        """
        now = self.clock.now()
        if self._next_close is not None and now < self._next_close:
            return []
        due = self._due_through(now)
        pending = self._open_days()
        last = self.closed_through
        if last is None:  # never closed: a new database, or one written before days were closed
            last = min([*pending, due + timedelta(days=1)]) - timedelta(days=1)
        closed: list[date] = []
        for day in sorted({d for d in pending if last < d <= due} | ({due} if due > last else set())):
            todo = self._open_days()
            if any(d <= day for d in todo) or (day == due and self.hours.periods_on(day)):
                self._close_day(day)
                closed.append(day)
        self.closed_through = max(last, due)
        self._next_close = self.close_instant(self.closed_through + timedelta(days=1))
        return closed

    def close_due(self) -> bool:
        """Whether :meth:`close_day_if_due` may have a day to close now (cheap: asked on every batch)."""
        return self._next_close is None or self.clock.now() >= self._next_close

    def close_instant(self, day: date) -> datetime:
        """When business day ``day`` closes (UTC): its last period's end plus ``close_after_minutes``,
        at the latest the next midnight; midnight for a day without opening hours."""
        midnight = datetime.combine(day + timedelta(days=1), time.min, tzinfo=self.hours.tz).astimezone(UTC)
        periods = self.hours.periods_on(day)
        if not periods:
            return midnight
        end = datetime.combine(day, max(p.end for p in periods), tzinfo=self.hours.tz).astimezone(UTC)
        return min(end + timedelta(minutes=self.config.calling.close_after_minutes), midnight)

    def _due_through(self, now: datetime) -> date:
        """The latest business day whose closing time is at or before ``now``."""
        today = self.hours.business_day(now)
        return today if now >= self.close_instant(today) else today - timedelta(days=1)

    def _day_of(self, t: Ticket) -> date:
        """The business day a ticket was last active on (its last change), which closes it."""
        return self.hours.business_day(t.status_at or t.issued_at)

    def _open_days(self) -> set[date]:
        """The business days of everything a close must end: open tickets, no-shows in memory,
        counters signed in."""
        days = {self._day_of(t) for t in self.tickets.values() if t.status in ACTIVE or t.status == NO_SHOW}
        days.update(self.hours.business_day(c.since) for c in self.counters.values()
                    if c.state != COUNTER_CLOSED and c.since is not None)
        days.update(b.slot_day for b in self.booking_records.values() if b.state == BOOKED)
        return days

    def _close_day(self, day: date) -> None:
        """Close business day ``day``: one journaled change (see :meth:`close_day_if_due`)."""
        tx = _Tx(self)
        tickets = sorted((t for t in self.tickets.values() if t.status in ACTIVE and self._day_of(t) <= day),
                         key=lambda t: t.id)
        counters = [c for c in self.counters.values() if c.state != COUNTER_CLOSED
                    and (c.since is None or self.hours.business_day(c.since) <= day)]
        no_shows = sorted(t.id for t in self.tickets.values() if t.status == NO_SHOW and self._day_of(t) <= day)
        # At the closing time; never before a change it ends (a database written before day closes existed).
        tx.now = max([self.close_instant(day), *(t.status_at for t in tickets if t.status_at),
                      *(c.since for c in counters if c.since)])
        tx.day = day
        for old in tickets:
            t = tx.ticket(old.id)
            at = t.counter if t.status in (CALLED, SERVING) else None
            clerk = self.counters[at].clerk if at is not None and at in self.counters else None
            previous = t.status
            self._end(tx, t, CLOSED_UNSERVED)
            tx.event("ticket_closed_unserved", ticket=t, counter=at, clerk=clerk, previous=previous)
        signed_out = []
        for cs in counters:
            c = tx.counter(cs.number)
            clerk = c.clerk
            c.state, c.clerk, c.post, c.session, c.pause_reason, c.ticket_id, c.since = (
                COUNTER_CLOSED, None, None, None, None, None, tx.now)
            signed_out.append(c.number)
            tx.event("counter_signed_out", counter=c.number, clerk=clerk, reason="day_closed")
        missed = sorted((b for b in self.booking_records.values() if b.state == BOOKED and b.slot_day <= day),
                        key=lambda b: (b.slot_at, b.code))
        for old_b in missed:  # 预约未到: booked, never checked in
            b = tx.booking(old_b.code)
            b.state, b.ended_at = BOOKING_NO_SHOW, tx.now
            tx.event("booking_no_show", service=b.service, booking=self.booking_event(b))
        for key in (_STATE_STREAK, _STATE_WRR, _STATE_APPT_STREAK):  # the calling rules' memory of the day
            if self.state.get(key):
                tx.change.state[key] = {}
        tx.change.state[_STATE_DAY_CLOSE] = {"day": day.isoformat(), "at": _iso(tx.now)}
        tx.event("day_closed", day=day.isoformat(), closed_at=_iso(tx.now), unserved=len(tickets),
                 counters=signed_out, no_shows=[str(i) for i in no_shows],
                 booking_no_shows=len(missed))
        try:
            self.journal.commit(tx.change)
        except HallError:
            raise
        except Exception as exc:  # nothing changed; the next command or heartbeat tries again
            raise HallError("STORAGE", detail=str(exc)[:200]) from exc
        self._install(tx.change)
        for tid in no_shows:
            t = self.tickets.pop(tid)
            self.visits.pop(t.visit_id, None)
            if t.token:
                self._by_token.pop(t.token, None)
        for code in [c for c, b in self.booking_records.items() if b.slot_day < day]:  # the closed day's stay a day
            del self.booking_records[code]
        for place in [p for p in self._booked if self.hours.business_day(p[1]) < day]:
            del self._booked[place]
        self.closed_through = day

    # ------------------------------------------------------------------ lookups

    def _service(self, code: str) -> Service:
        s = self.services.get(code)
        if s is None:
            raise HallError("UNKNOWN_SERVICE", service=code)
        return s

    def _counter(self, tx: _Tx, number: int, session: str | None = None) -> CounterState:
        if number not in self.counter_config:
            raise HallError("UNKNOWN_COUNTER", counter=number)
        c = tx.counter(number)
        if session is not None and c.session is not None and session != c.session:
            raise HallError("SESSION_ENDED", counter=number)
        return c

    def _open_counter(self, tx: _Tx, number: int, session: str | None) -> CounterState:
        c = self._counter(tx, number, session)
        if c.state == COUNTER_CLOSED:
            raise HallError("COUNTER_CLOSED", counter=number)
        if c.state == COUNTER_PAUSED:
            raise HallError("COUNTER_PAUSED", counter=number)
        return c

    def ticket_by_token(self, token: str) -> Ticket | None:
        """The ticket in memory (open, or a no-show of a day not yet closed) whose page token is ``token``."""
        tid = self._by_token.get(token)
        t = self.tickets.get(tid) if tid is not None else None
        if t is None or not isinstance(token, str) or not hmac.compare_digest(t.token or "", token):
            if tid is not None and t is None:
                del self._by_token[token]  # dropped from memory meanwhile
            return None
        return t

    def ticket_url(self, t: Ticket) -> str | None:
        """The ticket page's address, ``{public_base_url}/t/{token}`` (None without a public base URL)."""
        base = self.config.public_base_url
        return f"{base}/t/{t.token}" if base and t.token else None

    def find_ticket(self, ref: str | int, tx: _Tx | None = None) -> Ticket:
        """A ticket by id, or by label (the active one, else today's)."""
        pool = self.tickets if tx is None or not tx.change.tickets else {**self.tickets, **tx.change.tickets}
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdecimal()):  # "²".isdigit() but not int()
            t = pool.get(int(ref))
            if t is not None:
                return t
        label = str(ref).strip().upper()
        matches = [t for t in pool.values() if t.label == label]
        if matches:
            today = self.hours.business_day(self.clock.now())
            matches.sort(key=lambda t: (t.status in ACTIVE, t.business_day == today, t.id))
            return matches[-1]
        raise HallError("UNKNOWN_TICKET", ticket=ref)

    def _current(self, tx: _Tx, c: CounterState, *statuses: str) -> Ticket | None:
        if c.ticket_id is None:
            return None
        t = tx.ticket(c.ticket_id)
        return t if t.status in statuses else None

    def _eligible(self, tx: _Tx, counter: int) -> list[Ticket]:
        """Waiting tickets ``counter`` may call: addressed to it, or of a service it serves and
        addressed to no other counter. From the queue index, with this command's own changes."""
        cfg = self.counter_config[counter]
        pool: dict[int, Ticket] = dict(self._addressed.get(counter, {}))
        for code in cfg.services:
            for tid, t in self._queues.get(code, {}).items():
                if t.target_counter is None:
                    pool[tid] = t
        for tid, t in tx.change.tickets.items():
            pool.pop(tid, None)
            if t.status == WAITING and (t.target_counter == counter
                                        or (t.target_counter is None and t.queue_service in cfg.services)):
                pool[tid] = t
        return list(pool.values())

    def _walk_in_waits(self, tx: _Tx, service: str) -> bool:
        """Whether a walk-in (any ticket but an appointment whose slot has started) waits in ``service``'s
        queue, this command's changes included."""
        changed = tx.change.tickets

        def walk_in(t: Ticket) -> bool:
            return t.slot_at is None or t.slot_at > tx.now

        if any(t.status == WAITING and t.queue_service == service and walk_in(t) for t in changed.values()):
            return True
        return any(walk_in(t) for tid, t in self._queues.get(service, {}).items() if tid not in changed)

    def _normal_waits(self, tx: _Tx, service: str) -> bool:
        """Whether a normal (not priority) ticket waits in ``service``'s queue, this command included."""
        changed = tx.change.tickets
        if any(not t.priority and t.status == WAITING and t.queue_service == service for t in changed.values()):
            return True
        return any(not t.priority and tid not in changed for tid, t in self._queues.get(service, {}).items())

    # ------------------------------------------------------------------ views

    def ticket_view(self, t: Ticket, tx: _Tx | None = None, visit: Visit | None = None) -> dict[str, Any]:
        """The public description of a ticket (wire format, docs/protocol.md); ``visit``: its current
        visit when it is not in memory (a stored ticket). Never the token."""
        v = visit or (tx.change.visits.get(t.visit_id) if tx is not None else None) or self.visits.get(t.visit_id)
        s = self.services[t.queue_service]
        view = {
            "id": t.id,
            "label": t.label,
            "business_day": t.business_day.isoformat(),
            "service": t.service,
            "queue_service": t.queue_service,
            "service_name_zh": s.name.zh,
            "service_name_en": s.name.en,
            "priority": t.priority,
            "status": t.status,
            "issued_at": _iso(t.issued_at),
            "entered_at": _iso(v.entered_at) if v else None,
            "called_at": _iso(v.last_called_at) if v and v.last_called_at else None,
            "calls": v.calls if v else 0,
            "counter": t.counter,
            "target_counter": t.target_counter,
            "note": v.note if v else "",
            "queued_at": _iso(t.queue_key),  # FIFO position: transfers keep their issue time
            # 限时办结 of the queue's service, from the day of acceptance: screens show it, never compute it.
            "promised_days": s.promised_days,
            "promised_date": _date(self.hours.promised_date(t.business_day, s.promised_days)),
        }
        reg = (tx.change.state.get(_STATE_REMOTE) if tx is not None else None) or self.state.get(_STATE_REMOTE)
        remote = reg["tickets"].get(str(t.id)) if reg else None
        if remote is not None:  # only remote tickets carry these (docs/protocol.md)
            view.update(channel="remote", arrive_by=remote["arrive_by"],
                        checked_in=remote["checked_in_at"] is not None)
        if t.booking is not None:  # only appointment tickets carry these (never the code: a screen shows them)
            view.update(appointment=True, slot=self._local_slot(t.slot_at))
        return view

    def _local_slot(self, at: datetime | None) -> str | None:
        """A slot's start as the contract writes it: hall local time, ``YYYY-MM-DDTHH:MM``."""
        return at.astimezone(self.hours.tz).strftime("%Y-%m-%dT%H:%M") if at is not None else None

    def hall_identity(self) -> str:
        """What ties a booking code to this hall: its ``[hall] id`` when hall.toml names one (docs/city.md), else
        its name (every hall without an id is ``main`` in the database, so the id alone would not tell two
        such halls apart)."""
        return self.config.hall_id if self.config.hall_id_given else self.config.name.zh

    def booking_event(self, b: Booking) -> dict[str, Any]:
        """A booking as its events carry it, published to every screen: never the code (which checks in and
        cancels) nor the contact."""
        return {"service": b.service, "slot": self._local_slot(b.slot_at), "slot_end": self._local_slot(b.slot_end),
                "state": b.state, "late": b.late, "ticket": b.ticket_label}

    def booking_qr(self, code: str) -> str:
        """What a booking's QR code carries: its page on the web gateway, ``{public_base_url}/b/{code}``, when
        the hall's public address is known (a phone's camera opens it; the kiosk's scanner reads the code from
        it), else ``queuehall:booking:{code}`` (the kiosk's scanner only). The kiosk and :meth:`checkin` take
        both."""
        base = self.config.public_base_url
        return f"{base}/b/{code}" if base else f"{QR_PREFIX}{code}"

    def booking_view(self, b: Booking) -> dict[str, Any]:
        """A booking on the wire (docs/protocol.md "Booking"), in replies only: with its code and the masked
        contact, never the contact's hash."""
        s = self.services.get(b.service)
        return {"code": b.code, "hall": b.hall, "service": b.service,
                "service_name": {"zh": s.name.zh, "en": s.name.en} if s else None,
                "slot": self._local_slot(b.slot_at), "slot_end": self._local_slot(b.slot_end), "state": b.state,
                "qr": self.booking_qr(b.code),
                "contact_masked": b.contact_masked, "ticket": b.ticket_label,
                "checked_in_at": _iso(b.checked_in_at), "late": b.late, "booked_at": _iso(b.booked_at)}

    def queue(self, service: str) -> list[Ticket]:
        """Waiting tickets of one service queue, in FIFO order (priority not applied)."""
        return sorted(self._queues.get(service, {}).values(), key=lambda t: (t.queue_key, t.id))

    def _index(self, t: Ticket) -> None:
        """Keep the per-queue index of waiting tickets current (queue lengths are read on every event)."""
        old = self._queued_in.pop(t.id, None)
        if old is not None:
            self._queues[old].pop(t.id, None)
            oldest = self._oldest.get(old)
            if oldest is not None and oldest[1] == t.id:  # the queue's longest-waiting left it
                del self._oldest[old]
        was_for = self._addressed_to.pop(t.id, None)
        if was_for is not None:
            self._addressed[was_for].pop(t.id, None)
        current = self.tickets.get(t.id)
        if current is not None and current.status == WAITING:
            self._queues.setdefault(current.queue_service, {})[current.id] = current
            self._queued_in[current.id] = current.queue_service
            code = current.queue_service
            if current.target_counter is None and code in self._oldest:
                key = (self.visits[current.visit_id].entered_at, current.id)
                oldest = self._oldest[code]
                if oldest is None or key < oldest:
                    self._oldest[code] = key
            if current.target_counter is not None:
                self._addressed.setdefault(current.target_counter, {})[current.id] = current
                self._addressed_to[current.id] = current.target_counter

    def estimated_wait_minutes(self, service: str, ahead: int) -> int:
        """Minutes until a ticket with ``ahead`` people before it is called, from recent service times.

        Uses the average service time of the service (updated after every finished
        visit) divided among the counters open for it; a counter serving several
        services counts as a share of one.
        """
        if ahead <= 0:
            return 0
        avg = self.state.get(_STATE_AVG, {}).get(service, self.services[service].avg_service_minutes * 60)
        capacity = self._capacity.get(service)
        if capacity is None:
            serving = self._serving.get(service, [])
            capacity = sum(share for n, share in serving if self.counters[n].state != COUNTER_CLOSED)
            if capacity == 0:
                capacity = sum(share for _n, share in serving)
            self._capacity[service] = capacity
        return math.ceil(ahead * avg / max(capacity, 0.1) / 60)

    def service_summary(self, s: Service, now: datetime, *, with_tickets: bool = False) -> dict[str, Any]:
        """One service as screens see it: names, materials, queue length, estimate, issuing state."""
        waiting = len(self._queues.get(s.code, {}))
        window = self.hours.issue_window(now, s.cutoff_minutes)
        state = window.state
        issued = self.numbers.get((self.hours.business_day(now), s.code), 0)
        if state == OPEN and s.daily_cap and issued >= s.daily_cap:
            state = "daily_cap"
        out = {
            "code": s.code, "prefix": s.prefix, "name_zh": s.name.zh, "name_en": s.name.en,
            "department": s.department,
            "materials": [{"zh": m.zh, "en": m.en} for m in s.materials],
            "promised_days": s.promised_days, "target_wait_minutes": s.target_wait_minutes,
            "priority_classes": list(s.priority_classes),
            "waiting": waiting, "issued_today": issued, "daily_cap": s.daily_cap,
            "estimated_wait_minutes": self.estimated_wait_minutes(s.code, waiting),
            "issue_state": state,
            "next_open": _iso(window.next_open) if window.next_open else None,
            "session_ends": _iso(window.session_end) if window.session_end else None,
            # hall.toml's description (fees, eligibility): part of the 一次性告知 on the kiosk's service page.
            "description": {"zh": s.description.zh, "en": s.description.en} if s.description else None,
            "role": s.role,  # "fee": the hall's fee payment (统一收费), listed first when a clerk transfers
        }
        if with_tickets:
            out["tickets"] = [self.ticket_view(t) for t in self.queue(s.code)]
        return out

    def counter_public(self, number: int) -> dict[str, Any]:
        """One counter as screens see it: state, clerk on duty, current ticket."""
        cfg = self.counter_config[number]
        c = self.counters[number]
        clerk = self.config.clerk(c.clerk) if c.clerk else None
        t = self.tickets.get(c.ticket_id) if c.ticket_id else None
        return {
            "number": cfg.number, "name_zh": cfg.name.zh, "name_en": cfg.name.en,
            "services": list(cfg.services), "state": c.state, "clerk": c.clerk,
            "clerk_name_zh": clerk.name.zh if clerk else None,
            "clerk_name_en": clerk.name.en if clerk else None,
            "post": c.post, "pause_reason": c.pause_reason,
            # When the counter entered its state (a pause's start: the counter shows how long it lasts).
            "since": _iso(c.since) if c.since else None,
            "ticket": self.ticket_view(t) if t else None,
            "posts": self._posts[number],
        }

    def snapshot(self) -> dict[str, Any]:
        """The whole visible state: services with their queues, counters, recent calls."""
        now = self.clock.now()
        services = [self.service_summary(s, now, with_tickets=True) for s in self.config.services]
        counters = [self.counter_public(cfg.number) for cfg in self.config.counters]
        no_shows = [self.ticket_view(t) for t in self.tickets.values() if t.status == NO_SHOW]
        return {
            "now": _iso(now),
            "business_day": self.hours.business_day(now).isoformat(),
            "timezone": self.config.timezone,
            "calendar": self.hours.calendar_status(self.hours.business_day(now)),
            "hall": {"id": self.config.hall_id, "name_zh": self.config.name.zh, "name_en": self.config.name.en,
                     # [hall] address, for the city page of the web gateway (docs/web.md)
                     "address_zh": self.config.address.zh or None, "address_en": self.config.address.en or None,
                     "public_base_url": self.config.public_base_url or None,
                     "notice_zh": self.config.display_notice.zh, "notice_en": self.config.display_notice.en,
                     "footer_zh": self.config.ticket_footer.zh, "footer_en": self.config.ticket_footer.en,
                     "open": self.hours.is_open(now), "help_counter": self.config.help_counter,
                     # The recall that would make a no-show is warned about at the counter.
                     "max_recalls": self.config.calling.max_recalls,
                     "noshow_grace_minutes": self.config.calling.noshow_grace_minutes,
                     # Where a reinstated no-show goes (front or back): the counter's dialog says it.
                     "noshow_reinstate": self.config.calling.noshow_reinstate,
                     # [kiosk]: the kiosks' spoken guidance (docs/kiosk.md, "Spoken guidance").
                     "kiosk": {"voice_guidance": self.config.kiosk.voice_guidance,
                               "large_text_voice": self.config.kiosk.large_text_voice}},
            "departments": [{"code": d.code, "name_zh": d.name.zh, "name_en": d.name.en}
                            for d in self.config.departments],
            "priority_classes": [{"code": p.code, "name_zh": p.name.zh, "name_en": p.name.en}
                                 for p in self.config.priority_classes],
            "pause_reasons": [{"code": p.code, "name_zh": p.name.zh, "name_en": p.name.en}
                              for p in self.config.pause_reasons],
            "services": services,
            "counters": counters,
            "no_shows": no_shows,
            "printers": copy.deepcopy(self.state.get(_STATE_PRINTERS, {})),
            "recent_calls": [dict(ev.data, at=_iso(ev.at), seq=ev.seq, counter=ev.counter)
                             for ev in self.recent_calls],
        }

    # ------------------------------------------------------------------ calling rules

    def _pick(self, tx: _Tx, counter: int) -> Ticket | None:
        """The ticket "call next" would call at ``counter`` now (see docs/calling-rules.md).

        1. Eligible: waiting tickets addressed to this counter, or of a service it
           serves and not addressed to another counter.
        2. Over-wait: if any eligible ticket has waited in its queue longer than
           ``over_wait_minutes``, the longest-waiting of them is called.
        3. Service: the counter's first service (in configured order) that has
           eligible tickets; with weights, smooth weighted round robin among them.
        4a. Appointments: within the service, an appointment ticket whose slot has started (checked in on
           time) is called first, earliest slot first, unless ``appointments.streak`` of them were just
           called in a row while a walk-in waited; then a walk-in's turn (4b, 5).
        4b. Class: among walk-ins, the oldest priority ticket unless
           ``priority_streak`` priority tickets were just called in a row while a
           normal ticket waited; then the oldest normal ticket.
        5. FIFO: oldest queue position first (transfers keep their issue time).
        """
        cfg = self.counter_config[counter]
        # The command's own changes are not in the queue index: then look at every eligible ticket.
        found, oldest, tickets_of = (self._candidates_changed(tx, counter) if tx.change.tickets
                                     else self._candidates(counter))
        for check in PICK_CHECKS:
            check(self, tx, counter, found, oldest, tickets_of)
        if not found:
            return None
        rules = self.config.calling
        if rules.over_wait_minutes > 0 and oldest is not None:
            limit = tx.now - timedelta(minutes=rules.over_wait_minutes)
            # The longest-waiting eligible ticket is over the limit exactly when any is.
            if self._entered(tx, oldest) < limit:  # strictly longer than the limit
                tx.rule = "over_wait"
                return oldest
        order = list(cfg.services) + sorted(s for s in found if s not in cfg.services)
        present = [s for s in order if s in found]
        if cfg.weights:
            cw = tx.state(_STATE_WRR).setdefault(str(counter), {})
            total = sum(cfg.weights.get(s, 1) for s in present)
            for s in present:
                cw[s] = cw.get(s, 0) + cfg.weights.get(s, 1)
            service = max(present, key=lambda s: (cw[s], -order.index(s)))
            cw[service] -= total
        else:
            service = present[0]
        tickets = tickets_of(service)
        due = [t for t in tickets if t.slot_at is not None and t.slot_at <= tx.now]
        if due:
            walk_ins = len(due) < len(tickets)
            if not walk_ins or self.state.get(_STATE_APPT_STREAK, {}).get(service, 0) < \
                    self.config.appointments.streak:
                tx.rule = "appointment"
                return min(due, key=lambda t: (t.slot_at, t.queue_key, t.id))
            tickets = [t for t in tickets if t.slot_at is None or t.slot_at > tx.now]
        # Only the first of each class is called: no need to sort the queue.
        prio = min((t for t in tickets if t.priority), key=_fifo, default=None)
        normal = min((t for t in tickets if not t.priority), key=_fifo, default=None)
        streak = tx.state(_STATE_STREAK).get(service, 0)
        if prio is not None and (normal is None or streak < rules.priority_streak):
            tx.rule = "priority"
            return prio
        tx.rule = "fifo" if normal is not None else "priority"
        return normal if normal is not None else prio

    def _candidates(self, counter: int) -> tuple[list[str], Ticket | None, Callable[[str], list[Ticket]]]:
        """Eligible tickets for ``counter`` from the queue index (rule 1 of :meth:`_pick`), without
        walking every queue: the queues it serves with a ticket open to all or addressed to it, the
        longest-waiting eligible ticket, and a function listing one queue's eligible tickets."""
        cfg = self.counter_config[counter]
        addressed = list(self._addressed.get(counter, {}).values())
        present = {t.queue_service for t in addressed}
        ends: list[tuple[datetime, int]] = [(self.visits[t.visit_id].entered_at, t.id) for t in addressed]
        for code in cfg.services:
            if code not in self._oldest:
                self._oldest[code] = min(((self.visits[t.visit_id].entered_at, t.id)
                                          for t in self._queues.get(code, {}).values() if t.target_counter is None),
                                         default=None)
            first = self._oldest[code]
            if first is not None:
                present.add(code)
                ends.append(first)
        oldest = self.tickets[min(ends)[1]] if ends else None

        def tickets_of(code: str) -> list[Ticket]:
            mine = [t for t in addressed if t.queue_service == code]
            if code not in cfg.services:
                return mine
            return [t for t in self._queues.get(code, {}).values() if t.target_counter is None] + mine

        return list(present), oldest, tickets_of

    def _candidates_changed(self, tx: _Tx, counter: int
                            ) -> tuple[list[str], Ticket | None, Callable[[str], list[Ticket]]]:
        """:meth:`_candidates` for a command that already changed tickets: by looking at each one."""
        eligible = self._eligible(tx, counter)
        by_service: dict[str, list[Ticket]] = {}
        for t in eligible:
            by_service.setdefault(t.queue_service, []).append(t)
        oldest = min(eligible, key=lambda t: (self._entered(tx, t), t.id)) if eligible else None
        return list(by_service), oldest, lambda code: by_service.get(code, [])

    def _entered(self, tx: _Tx, t: Ticket) -> datetime:
        v = tx.change.visits.get(t.visit_id) if tx.change.visits else None
        return (v or self.visits[t.visit_id]).entered_at

    def _note_call(self, tx: _Tx, t: Ticket) -> None:
        if t.slot_at is not None and t.slot_at <= tx.now:  # an appointment's call: the priority streak stays
            appt = tx.state(_STATE_APPT_STREAK)
            appt[t.queue_service] = appt.get(t.queue_service, 0) + 1 if self._walk_in_waits(tx, t.queue_service) else 0
            return
        if self.state.get(_STATE_APPT_STREAK, {}).get(t.queue_service):  # a walk-in's turn ends the streak
            tx.state(_STATE_APPT_STREAK)[t.queue_service] = 0
        streaks = tx.state(_STATE_STREAK)
        # Only priority calls made while a normal ticket of the queue waits count towards the streak.
        normal_waits = bool(t.priority) and self._normal_waits(tx, t.queue_service)
        streaks[t.queue_service] = streaks.get(t.queue_service, 0) + 1 if normal_waits else 0

    def _call(self, tx: _Tx, c: CounterState, t: Ticket, out_of_order: str | None) -> dict[str, Any]:
        t.status = CALLED
        t.counter = c.number
        t.status_at = tx.now
        v = tx.visit(t.visit_id)
        v.calls += 1
        v.first_called_at = v.first_called_at or tx.now
        v.last_called_at = tx.now
        v.counter, v.clerk, v.post = c.number, c.clerk, c.post
        v.out_of_order = out_of_order
        c.ticket_id = t.id
        self._note_call(tx, t)
        # The rule that chose the ticket goes into the audit trail with the call.
        data: dict[str, Any] = {"kind": "call", "rule": "specific" if out_of_order else tx.rule}
        if out_of_order:
            data["reason"] = out_of_order
        ev = tx.event("ticket_called", ticket=t, counter=c.number, clerk=c.clerk, **data)
        return {"ticket": ev.data["ticket"], "counter": c.number}  # the same view: no need to build it twice

    # ------------------------------------------------------------------ commands: tickets

    def take_ticket(self, tx: _Tx, service: str, priority: str | None = None, channel: str | None = None,
                    client: str | None = None) -> dict[str, Any]:
        """Issue the next number of ``service`` for today.

        Refused outside opening hours (HALL_CLOSED), in a break (HALL_BREAK), after the
        service's cut-off (PAST_CUTOFF) or cap (DAILY_CAP_REACHED), each with the next
        time issuing opens; an unknown service or priority class, or a class the
        service does not offer, is refused too. Numbers run per service per business
        day without gaps: ``prefix`` + number zero-padded to ``number_width``.
        Replies with the ticket, how many are ahead and the estimated wait, the ticket's page
        token (128 random bits, only in this reply: never in an event) and, when the hall has a
        ``public_base_url``, the page's ``url`` for the QR code.

        ``channel: "remote"`` (a WeChat mini program or 一网通办 through the web gateway; default
        ``"kiosk"``) takes a *remote* ticket under the same rules, and two more: at most
        ``remote_quota`` remote tickets per service and business day (REMOTE_NOT_OFFERED when it is 0,
        REMOTE_QUOTA_REACHED when used up), and the holder must check in at the kiosk
        (:meth:`check_in`) within ``remote_arrival_minutes``, by the ticket's ``arrive_by``, or the
        ticket lapses (:meth:`lapse_remote`). A remote ticket queues from the moment it is taken.
        """
        if channel is not None and channel not in CHANNELS:
            raise HallError("BAD_REQUEST", detail=f"channel must be one of {', '.join(CHANNELS)}")
        s = self._service(service)
        if priority:
            if priority not in {p.code for p in self.config.priority_classes}:
                raise HallError("UNKNOWN_PRIORITY", priority=priority)
            if priority not in s.priority_classes:
                raise HallError("PRIORITY_NOT_ALLOWED", service=service, priority=priority)
        self._check_issuing(tx, s)
        remote = None
        if channel == "remote":
            quota, minutes = self.config.remote_rules(s)
            if quota == 0:
                raise HallError("REMOTE_NOT_OFFERED", service=service)
            remote = self._remote(tx)
            if remote["issued"].get(s.code, 0) >= quota:
                raise HallError("REMOTE_QUOTA_REACHED", service=service, quota=quota)
            remote["issued"][s.code] = remote["issued"].get(s.code, 0) + 1
        ticket, ahead = self._new_ticket(tx, s, priority, client)
        if remote is not None:
            remote["tickets"][str(ticket.id)] = {"label": ticket.label, "arrive_by": _iso(tx.now + timedelta(
                minutes=minutes)), "checked_in_at": None, "lapsed": False}
        return self._issued(tx, ticket, ahead)

    def _check_issuing(self, tx: _Tx, s: Service) -> None:
        """Refuse a ticket of ``s`` now: outside opening hours, in a break, past the cut-off or the daily cap."""
        window = self.hours.issue_window(tx.now, s.cutoff_minutes)
        next_open = self._local_str(window.next_open)
        if window.state != OPEN:
            code = {"break": "HALL_BREAK", "past_cutoff": "PAST_CUTOFF"}.get(window.state, "HALL_CLOSED")
            raise HallError(code, next_open=next_open, service=s.code)
        number = self.numbers.get((tx.day, s.code), 0) + 1
        if s.daily_cap and number > s.daily_cap:
            nxt = self.hours.next_issue_start(
                datetime.combine(tx.day + timedelta(days=1), datetime.min.time(), tzinfo=self.hours.tz),
                s.cutoff_minutes)
            raise HallError("DAILY_CAP_REACHED", next_open=self._local_str(nxt), service=s.code)

    def _new_ticket(self, tx: _Tx, s: Service, priority: str | None, client: str | None,
                    booking: Booking | None = None) -> tuple[Ticket, int]:
        """Add the next ticket of ``s`` (an appointment ticket of ``booking`` when given) and its first visit
        to the change; returns it and how many are ahead of it."""
        number = self.numbers.get((tx.day, s.code), 0) + 1
        queue = self._queues.get(s.code, {})
        if booking is not None:  # appointment tickets of earlier slots are ahead of one
            ahead = sum(1 for t in queue.values() if t.slot_at is not None and t.slot_at <= booking.slot_at)
        else:  # everyone waiting is ahead of a normal ticket; only green-channel tickets are ahead of one
            ahead = sum(1 for t in queue.values() if t.priority) if priority else len(queue)
        ticket = Ticket(
            id=self.last_ticket_id + 1, business_day=tx.day, service=s.code, number=number,
            label=f"{s.prefix}{number:0{self.config.number_width}d}", priority=priority or None,
            issued_at=tx.now, status=WAITING, queue_service=s.code, queue_key=tx.now,
            visit_id=tx.new_visit_id(), issued_by=client, status_at=tx.now, token=self.token_source(),
            booking=booking.code if booking is not None else None,
            slot_at=booking.slot_at if booking is not None else None)
        tx.add_visit(Visit(id=ticket.visit_id, ticket_id=ticket.id, seq=1, business_day=tx.day,
                           service=s.code, entered_at=tx.now))
        tx.add_ticket(ticket)
        return ticket, ahead

    def _issued(self, tx: _Tx, ticket: Ticket, ahead: int) -> dict[str, Any]:
        """The ``ticket_issued`` event and the issuing reply of a ticket just added."""
        wait = self.estimated_wait_minutes(ticket.service, ahead)
        ev = tx.event("ticket_issued", ticket=ticket, ahead=ahead, estimated_wait_minutes=wait)
        return {"ticket": ev.data["ticket"], "ahead": ahead, "estimated_wait_minutes": wait,
                "token": ticket.token, "url": self.ticket_url(ticket)}

    def _remote(self, tx: _Tx) -> dict[str, Any]:
        """This command's copy of the remote-ticket register, started afresh on a new business day (the
        counts restart; entries of tickets still open are kept, so they can still check in or lapse)."""
        reg = tx.state(_STATE_REMOTE)
        day = tx.day.isoformat()
        if reg.get("day") != day:
            old = reg.get("tickets", {})
            reg.clear()
            reg.update(day=day, issued={}, tickets={k: e for k, e in old.items() if int(k) in self.tickets
                                                    and self.tickets[int(k)].status in ACTIVE})
        return reg

    def remote_due(self) -> bool:
        """Whether a remote ticket is still waiting, not checked in, past its ``arrive_by``: then the
        broker runs :meth:`lapse_remote` (it asks on every heartbeat; this is cheap and changes nothing)."""
        reg = self.state.get(_STATE_REMOTE)
        if not reg:
            return False
        now = self.clock.now()
        for key, e in reg["tickets"].items():
            if e["checked_in_at"] is None and not e["lapsed"] and _parse_iso(e["arrive_by"]) < now:
                t = self.tickets.get(int(key))
                if t is not None and t.status == WAITING:
                    return True
        return False

    def check_in(self, tx: _Tx, ticket: str | int) -> dict[str, Any]:
        """The holder of a remote ticket has arrived: the kiosk scanned its QR code (or the web gateway was
        told so); from now on the ticket no longer lapses. Refused for a ticket not taken remotely
        (NOT_REMOTE), one checked in already (ALREADY_CHECKED_IN), one past its ``arrive_by`` or lapsed
        (REMOTE_LAPSED: its holder takes a new ticket), and one no longer open (NOT_WAITING)."""
        reg = self._remote(tx)
        try:
            t = self.find_ticket(ticket, tx)
        except HallError:
            label = str(ticket).strip().upper()
            gone = next((e for e in reg["tickets"].values() if e["label"] == label and e["lapsed"]), None)
            if gone is not None:  # lapsed tickets leave memory; the register still knows them today
                raise HallError("REMOTE_LAPSED", ticket=label,
                                arrive_by=self._local_str(_parse_iso(gone["arrive_by"]))) from None
            raise
        entry = reg["tickets"].get(str(t.id))
        if entry is None:
            raise HallError("NOT_REMOTE", ticket=t.label)
        if entry["checked_in_at"] is not None:
            raise HallError("ALREADY_CHECKED_IN", ticket=t.label)
        deadline = _parse_iso(entry["arrive_by"])
        if entry["lapsed"] or (t.status == WAITING and tx.now > deadline):
            raise HallError("REMOTE_LAPSED", ticket=t.label, arrive_by=self._local_str(deadline))
        if t.status not in ACTIVE:
            raise HallError("NOT_WAITING", ticket=t.label, status=t.status)
        entry["checked_in_at"] = _iso(tx.now)
        t = tx.ticket(t.id)  # in the change: its view (checked_in) is published again
        tx.event("ticket_checked_in", ticket=t)
        return {"ticket": self.ticket_view(t, tx=tx)}

    def lapse_remote(self, tx: _Tx) -> dict[str, Any]:
        """Cancel every remote ticket still waiting, not checked in, past its ``arrive_by`` (event
        ``ticket_cancelled`` with ``reason: "remote_lapsed"``); the broker runs it as soon as
        :meth:`remote_due`. A remote ticket called before its deadline does not lapse (its clerk marks
        it a no-show as any other). Replies with the labels that lapsed."""
        reg = self._remote(tx)
        lapsed = []
        for key, e in reg["tickets"].items():
            if e["checked_in_at"] is not None or e["lapsed"] or _parse_iso(e["arrive_by"]) >= tx.now:
                continue
            found = self.tickets.get(int(key))
            if found is None or found.status != WAITING:
                continue
            t = tx.ticket(found.id)
            self._end(tx, t, CANCELLED)
            e["lapsed"] = True
            tx.event("ticket_cancelled", ticket=t, reason="remote_lapsed")
            lapsed.append(t.label)
        return {"lapsed": lapsed}

    # ------------------------------------------------------------------ commands: appointments (预约)

    def _bookable_service(self, service: str) -> tuple[Service, int, int]:
        """The service, its slot minutes and bookable places per slot; BOOKING_NOT_OFFERED when it takes none."""
        s = self._service(service)
        offered, minutes, places = self.config.booking_rules(s)
        if not offered:
            raise HallError("BOOKING_NOT_OFFERED", service=service)
        return s, minutes, places

    def _day_arg(self, text: str) -> date:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise HallError("BAD_REQUEST", argument="date", detail="date must be YYYY-MM-DD",
                            detail_zh="参数 date 应为 YYYY-MM-DD 格式的日期") from None

    def slots(self, tx: _Tx, service: str, date: str | None = None) -> dict[str, Any]:
        """The booking slots of ``service`` on business day ``date`` (``YYYY-MM-DD``; default today), from the
        hall's opening hours and calendar (none on a holiday or closed day, none across the lunch break): each
        with ``start`` and ``end`` (hall local time ``YYYY-MM-DDTHH:MM``), ``capacity`` (bookable places: the
        slot's capacity less the walk-in share), ``booked``, ``free`` and ``bookable`` (not started, within
        ``book_ahead_days``). BOOKING_NOT_OFFERED for a service that takes no bookings. A query (:meth:`query`):
        nothing is journaled."""
        _s, minutes, places = self._bookable_service(service)
        day = self._day_arg(date) if date is not None else tx.day
        last = tx.day + timedelta(days=self.config.appointments.book_ahead_days)
        out = []
        ahead = day <= last
        for (start, _end), (shown, shown_end) in zip(self.slot_plan.starts(minutes, day),
                                                     self.slot_plan.shown(minutes, day), strict=True):
            n = self._booked.get((service, start), 0)
            out.append({"start": shown, "end": shown_end, "capacity": places, "booked": n,
                        "free": max(0, places - n), "bookable": ahead and start > tx.now})
        return {"service": service, "date": day.isoformat(), "slots": out}

    def book(self, tx: _Tx, service: str, slot: str, contact: str | None = None,
             client: str | None = None) -> dict[str, Any]:
        """Book a place in a slot of ``service``: ``slot`` is the slot's start in hall local time
        (``YYYY-MM-DDTHH:MM``). ``contact`` (optional): the citizen's mobile or ID number, kept only masked and
        as a salted hash (BAD_CONTACT when it is neither).

        Refused: a service taking no bookings (BOOKING_NOT_OFFERED); a time with no opening hours: a holiday,
        a closed day, the lunch break, before opening or after closing (SLOT_CLOSED); an open time that is no
        slot's start (SLOT_UNKNOWN); a slot already started (SLOT_PAST) or more than ``book_ahead_days`` ahead
        (SLOT_TOO_FAR); a slot whose bookable places are taken (SLOT_FULL). Replies with the booking and its
        code (10 characters; the QR carries ``queuehall:booking:<code>``). Event ``booking_made``."""
        s, minutes, places = self._bookable_service(service)
        try:
            local = datetime.strptime(slot.strip(), "%Y-%m-%dT%H:%M").replace(tzinfo=self.hours.tz)
        except ValueError:
            raise HallError("BAD_REQUEST", argument="slot", detail="slot must be YYYY-MM-DDTHH:MM (hall local time)",
                            detail_zh="参数 slot 应为 YYYY-MM-DDTHH:MM（大厅当地时间）") from None
        start = local.astimezone(UTC)
        day = local.date()
        shown = local.strftime("%Y-%m-%d %H:%M")
        found = self.slot_plan.find(minutes, day, start)
        if found is None:
            code = "SLOT_CLOSED" if self.slot_plan.why_not(minutes, day, start) == "closed" else "SLOT_UNKNOWN"
            raise HallError(code, slot=shown, service=service, minutes=minutes)
        if start <= tx.now:
            raise HallError("SLOT_PAST", slot=shown)
        days = self.config.appointments.book_ahead_days
        if day > tx.day + timedelta(days=days):
            raise HallError("SLOT_TOO_FAR", slot=shown, days=days)
        taken = self._booked.get((service, start), 0) + sum(
            1 for b in tx.change.bookings.values() if b.service == service and b.slot_at == start)
        if taken >= places:
            raise HallError("SLOT_FULL", slot=shown, service=service)
        masked = hashed = None
        if contact is not None:
            clean = normalise_contact(contact)
            if clean is None:
                raise HallError("BAD_CONTACT")
            masked, hashed = mask_contact(clean), hash_contact(clean, self.contact_key)
        hall = self.hall_identity()
        code = new_code(hall, self.code_source() if self.code_source else None)
        while code in self.booking_records or code in tx.change.bookings:  # 31**8 codes: a repeat is very rare
            code = new_code(hall)
        b = Booking(code=code, hall=hall, service=s.code, slot_day=day, slot_at=start, slot_end=found[1],
                    state=BOOKED, booked_at=tx.now, booked_by=client, contact_masked=masked, contact_hash=hashed)
        tx.add_booking(b)
        tx.event("booking_made", service=s.code, booking=self.booking_event(b))
        return {"booking": self.booking_view(b)}

    def _find_booking(self, tx: _Tx, code: str) -> Booking:
        """The booking a typed or scanned code names: BOOKING_CODE_INVALID for a code typed wrong (length,
        alphabet or check character), BOOKING_WRONG_HALL for another hall's code, BOOKING_NOT_FOUND for one
        this hall does not hold (never booked, or of a day closed before yesterday)."""
        clean = normalise_code(code)
        problem = code_problem(clean, self.hall_identity())
        if problem == "invalid":
            raise HallError("BOOKING_CODE_INVALID", booking=clean[:16])
        if problem == "other_hall":
            raise HallError("BOOKING_WRONG_HALL", booking=clean)
        if clean not in self.booking_records:
            raise HallError("BOOKING_NOT_FOUND", booking=clean)
        return tx.booking(clean)

    def unbook(self, tx: _Tx, code: str) -> dict[str, Any]:
        """Cancel a booking (its place is free again). Only a booking not yet checked in
        (BOOKING_ALREADY_CHECKED_IN), not cancelled (BOOKING_CANCELLED), of a slot not yet over
        (BOOKING_WRONG_DAY for a booking recorded as a no-show). Event ``booking_cancelled``."""
        b = self._find_booking(tx, code)
        self._booking_open(b)
        b.state, b.ended_at = BOOKING_CANCELLED, tx.now
        tx.event("booking_cancelled", service=b.service, booking=self.booking_event(b))
        return {"booking": self.booking_view(b)}

    def _booking_open(self, b: Booking) -> None:
        if b.state == CHECKED_IN:
            raise HallError("BOOKING_ALREADY_CHECKED_IN", booking=b.code, ticket=b.ticket_label or "—")
        if b.state == BOOKING_CANCELLED:
            raise HallError("BOOKING_CANCELLED", booking=b.code)
        if b.state == BOOKING_NO_SHOW:
            raise HallError("BOOKING_WRONG_DAY", booking=b.code, slot=self._local_str(b.slot_at))

    def checkin(self, tx: _Tx, code: str, contact: str | None = None, client: str | None = None) -> dict[str, Any]:
        """The citizen with a booking has arrived (the kiosk's keypad or barcode scanner, or the web gateway):
        issue their ticket. ``code`` is the booking code as typed (any case, spaces and dashes ignored) or the
        QR's ``queuehall:booking:<code>``; ``contact``, when given and the booking has one, must match it.

        Within the check-in window (``checkin_before_minutes`` before the slot's start to
        ``checkin_after_minutes`` after) the ticket is an *appointment ticket* (``appointment: true``), called
        ahead of walk-ins from its slot's start (docs/calling-rules.md "Appointments"); it is issued whatever
        the issuing hours, cut-off and cap (the place was booked). Later the citizen gets a normal ticket
        under the walk-in rules (``late: true``). Refused, with no ticket: a code typed wrong
        (BOOKING_CODE_INVALID), another hall's code (BOOKING_WRONG_HALL), an unknown one (BOOKING_NOT_FOUND),
        a booking checked in already (BOOKING_ALREADY_CHECKED_IN) or cancelled (BOOKING_CANCELLED), one of
        another day (BOOKING_WRONG_DAY), before the window opens (BOOKING_TOO_EARLY), a contact that does not
        match (BOOKING_CONTACT_MISMATCH) or cannot be checked (BOOKING_CONTACT_UNCHECKABLE: hashed under another
        contact key; check in without the contact). Events ``booking_checked_in`` and ``ticket_issued``."""
        b = self._find_booking(tx, code)
        self._booking_open(b)
        if b.slot_day != tx.day:
            raise HallError("BOOKING_WRONG_DAY", booking=b.code, slot=self._local_str(b.slot_at))
        if contact is not None and b.contact_hash is not None:
            clean = normalise_contact(contact)
            checked = "mismatch" if clean is None else contact_check(clean, b.contact_hash, self.contact_key)
            if checked == "unknown_key":
                raise HallError("BOOKING_CONTACT_UNCHECKABLE", booking=b.code)
            if checked != "match":
                raise HallError("BOOKING_CONTACT_MISMATCH", booking=b.code)
        rules = self.config.appointments
        opens = b.slot_at - timedelta(minutes=rules.checkin_before_minutes)
        if tx.now < opens:
            raise HallError("BOOKING_TOO_EARLY", booking=b.code, opens=self._local_str(opens)[-5:],
                            slot=self._local_str(b.slot_at))
        late = tx.now > b.slot_at + timedelta(minutes=rules.checkin_after_minutes)
        s = self._service(b.service)
        if late:
            self._check_issuing(tx, s)
            ticket, ahead = self._new_ticket(tx, s, None, client)
        else:
            ticket, ahead = self._new_ticket(tx, s, None, client, booking=b)
        b.state, b.checked_in_at, b.late = CHECKED_IN, tx.now, late
        b.ticket_id, b.ticket_label = ticket.id, ticket.label
        reply = self._issued(tx, ticket, ahead)
        tx.event("booking_checked_in", ticket=ticket, booking=self.booking_event(b), late=late)
        reply.update(booking=self.booking_view(b), late=late)
        return reply

    def bookings(self, tx: _Tx, date: str | None = None, service: str | None = None) -> dict[str, Any]:
        """The bookings of business day ``date`` (``YYYY-MM-DD``; default today; of ``service`` only when
        given), by slot: the admin's list of the day. The hall holds the days not yet closed and the last one
        closed; older days are in the reports. A query (:meth:`query`): nothing is journaled."""
        day = self._day_arg(date) if date is not None else tx.day
        if service is not None:
            self._service(service)
        found = sorted((b for b in self.booking_records.values()
                        if b.slot_day == day and (service is None or b.service == service)),
                       key=lambda b: (b.slot_at, b.service, b.booked_at, b.code))
        return {"date": day.isoformat(), "bookings": [self.booking_view(b) for b in found]}

    def booking(self, tx: _Tx, code: str) -> dict[str, Any]:
        """One booking by its code, as typed or scanned, found as :meth:`checkin` finds it (BOOKING_CODE_INVALID,
        BOOKING_WRONG_HALL, BOOKING_NOT_FOUND otherwise): the web gateway's booking page and
        ``GET /api/v1/bookings/{code}`` (docs/web.md). A query (:meth:`query`): nothing is journaled."""
        return {"booking": self.booking_view(self._find_booking(tx, code))}

    def void_ticket(self, tx: _Tx, ticket: str | int, reason: str, client: str | None = None) -> dict[str, Any]:
        """Withdraw a waiting ticket whose printing failed, so counters skip it.

        Only a ticket still waiting, and (when the caller is a kiosk) only one that
        kiosk issued. The number stays used: numbering never reuses a number.
        """
        t = tx.ticket(self.find_ticket(ticket, tx).id)
        if t.status != WAITING:
            raise HallError("NOT_WAITING", ticket=t.label, status=t.status)
        # With device keys the client id is "<device>/<run>": the same kiosk after a restart may void.
        if client is not None and t.issued_by is not None and \
                t.issued_by.split("/")[0] != client.split("/")[0]:
            raise HallError("FORBIDDEN", detail="only the issuing kiosk may void its ticket")
        self._end(tx, t, VOIDED)
        tx.event("ticket_voided", ticket=t, reason=reason)
        return {"ticket": self.ticket_view(t, tx=tx)}

    # ------------------------------------------------------------------ commands: printer faults and reprints

    def printer_fault(self, tx: _Tx, code: str, ticket: str | int | None = None, name: str | None = None,
                      client: str | None = None) -> dict[str, Any]:
        """The calling kiosk's printer failed: raise (or update) its printer-fault alert.

        ``code`` is the printer's status code (``PAPER_OUT``, ``PRINTER_OFFLINE``, ...: upper-case
        letters, digits and ``_``); ``ticket``, when given, is a number the kiosk issued and could not
        print: it stays waiting with its place in the queue and is listed in the alert as unprinted.
        ``name`` is the kiosk's name for staff. The alert lives in the state's ``printers`` table
        under the kiosk's client id until :meth:`printer_ok`; the help counter's screen shows it.
        """
        kiosk = self._kiosk_id(client)
        if not _STATUS_CODE.fullmatch(code):
            raise HallError("BAD_REQUEST", detail="code must be a printer status code such as PAPER_OUT")
        printers = tx.state(_STATE_PRINTERS)
        rec = _printer_record(printers, kiosk, name)
        t = None
        if ticket is not None:
            t = self.find_ticket(ticket, tx)
            if not any(u["id"] == t.id for u in rec["unprinted"]):
                rec["unprinted"].append({"id": t.id, "label": t.label, "service": t.service})
        since = (rec["fault"] or {}).get("since") or _iso(tx.now)
        rec["fault"] = {"code": code, "since": since}
        tx.event("printer_fault", ticket=t, kiosk=kiosk, name=rec["name"], code=code)
        return {"printer": rec}

    def printer_ok(self, tx: _Tx, name: str | None = None, client: str | None = None) -> dict[str, Any]:
        """The calling kiosk's printer works again: its printer-fault alert is cleared.

        The tickets the alert listed as unprinted stay in the queue (their holders were told their
        number and sent to the help counter, which may reprint them). Reprints still to do are
        kept. Without an alert this changes nothing and publishes nothing (``cleared`` false).
        """
        kiosk = self._kiosk_id(client)
        if (self.state.get(_STATE_PRINTERS, {}).get(kiosk) or {}).get("fault") is None:
            return {"cleared": False}
        printers = tx.state(_STATE_PRINTERS)
        rec = _printer_record(printers, kiosk, name)
        unprinted = rec["unprinted"]
        rec["fault"], rec["unprinted"] = None, []
        if not rec["reprints"]:
            del printers[kiosk]
        tx.event("printer_fault_cleared", kiosk=kiosk, name=rec["name"], unprinted=unprinted)
        return {"cleared": True}

    def reprint_ticket(self, tx: _Tx, ticket: str | int, counter: int | None = None, kiosk: str | None = None,
                       client: str | None = None) -> dict[str, Any]:
        """Authorise one more print of an open ticket (waiting, called, serving or a no-show) and send it
        to a kiosk, which prints it with the number of people now ahead and reports back
        (:meth:`reprint_done`).

        From a counter (``counter``): only the hall's ``help_counter`` when one is configured
        (NOT_HELP_COUNTER); the kiosk is ``kiosk`` (a kiosk's client id), by default the one that
        issued the ticket. From a kiosk (no ``counter``): the kiosk itself (its staff menu). The
        order waits in the kiosk's ``printers`` record, so a kiosk that was offline prints it when
        it is back. Replies with the ticket, the kiosk, ``ahead`` and ``estimated_wait_minutes``.
        """
        if counter is not None:
            self._counter(tx, counter)
            helper = self.config.help_counter
            if helper is not None and counter != helper:
                raise HallError("NOT_HELP_COUNTER", counter=counter, help_counter=helper)
            target = kiosk or None
        else:
            target = kiosk or client
        t = self.find_ticket(ticket, tx)  # the hall holds open tickets and no-shows only: others are unknown
        target = target or t.issued_by
        if not target:
            raise HallError("BAD_REQUEST", detail=f"{t.label} was not issued by a kiosk: name the kiosk")
        ahead = self._ahead(t)
        order = {"ticket": self.ticket_view(t, tx=tx), "ahead": ahead,
                 "estimated_wait_minutes": self.estimated_wait_minutes(t.queue_service, ahead),
                 "counter": counter, "at": _iso(tx.now)}
        printers = tx.state(_STATE_PRINTERS)
        rec = _printer_record(printers, target, None)
        rec["reprints"] = [r for r in rec["reprints"] if r["ticket"]["id"] != t.id] + [order]
        clerk = self.counters[counter].clerk if counter is not None else None
        tx.event("reprint_requested", ticket=t, counter=counter, clerk=clerk, kiosk=target, name=rec["name"])
        return {"ticket": order["ticket"], "kiosk": target, "ahead": ahead,
                "estimated_wait_minutes": order["estimated_wait_minutes"]}

    def reprint_done(self, tx: _Tx, ticket: str | int, code: str | None = None, name: str | None = None,
                     client: str | None = None) -> dict[str, Any]:
        """The calling kiosk carried out a reprint order for ``ticket``: printed (no ``code``; the
        ticket leaves the alert's unprinted list, event ``ticket_reprinted``) or failed with the printer
        status ``code`` (the order is dropped and the kiosk's printer-fault alert raised with the ticket
        unprinted, as :meth:`printer_fault`; the help counter may order it again, e.g. at another kiosk).
        """
        kiosk = self._kiosk_id(client)
        if code is not None and not _STATUS_CODE.fullmatch(code):
            raise HallError("BAD_REQUEST", detail="code must be a printer status code such as PAPER_OUT")
        printers = tx.state(_STATE_PRINTERS)
        rec = _printer_record(printers, kiosk, name)
        ref = str(ticket)
        ordered = [r for r in rec["reprints"] if ref in (str(r["ticket"]["id"]), r["ticket"]["label"])]
        tid = ordered[0]["ticket"]["id"] if ordered else self.find_ticket(ticket, tx).id
        rec["reprints"] = [r for r in rec["reprints"] if r["ticket"]["id"] != tid]
        t = self.tickets.get(tid)  # None once it has left the hall's memory (finished, cancelled, ...)
        if code is not None:
            if not any(u["id"] == tid for u in rec["unprinted"]) and t is not None:
                rec["unprinted"].append({"id": t.id, "label": t.label, "service": t.service})
            rec["fault"] = {"code": code, "since": (rec["fault"] or {}).get("since") or _iso(tx.now)}
            tx.event("printer_fault", ticket=t, kiosk=kiosk, name=rec["name"], code=code)
        else:
            rec["unprinted"] = [u for u in rec["unprinted"] if u["id"] != tid]
            tx.event("ticket_reprinted", ticket=t, kiosk=kiosk, name=rec["name"])
        if rec["fault"] is None and not rec["unprinted"] and not rec["reprints"]:
            del printers[kiosk]
        return {"printed": code is None}

    def _kiosk_id(self, client: str | None) -> str:
        if not client:
            raise HallError("BAD_REQUEST", detail="a printer report needs the kiosk's client id")
        return client

    def _ahead(self, t: Ticket) -> int:
        """People before waiting ticket ``t`` in its queue: every priority ticket and the earlier normal
        ones for a normal ticket, the earlier priority ones for a priority ticket (0 unless waiting)."""
        if t.status != WAITING:
            return 0
        key = _fifo(t)
        return sum(1 for o in self._queues.get(t.queue_service, {}).values() if o.id != t.id and (
            (o.priority and _fifo(o) < key) if t.priority else (o.priority or _fifo(o) < key)))

    def cancel_ticket(self, tx: _Tx, ticket: str | int, reason: str) -> dict[str, Any]:
        """Cancel a waiting, called or no-show ticket (the citizen left); the reason is recorded."""
        if not reason.strip():
            raise HallError("REASON_REQUIRED")
        t = tx.ticket(self.find_ticket(ticket, tx).id)
        if t.status not in (WAITING, CALLED, NO_SHOW):
            raise HallError("CANNOT_CANCEL", ticket=t.label, status=t.status)
        self._end(tx, t, CANCELLED)
        tx.event("ticket_cancelled", ticket=t, reason=reason)
        return {"ticket": self.ticket_view(t, tx=tx)}

    def _end(self, tx: _Tx, t: Ticket, status: str) -> None:
        """Close the ticket's open visit with ``status`` and free its counter."""
        if t.counter is not None and t.status in (CALLED, SERVING):
            c = tx.counter(t.counter)
            if c.ticket_id == t.id:
                c.ticket_id = None
        v = tx.visit(t.visit_id)
        if v.ended_at is None:
            v.ended_at = tx.now
            v.outcome = status
        t.status = status
        t.status_at = tx.now
        if status != NO_SHOW:
            t.counter = None

    # ------------------------------------------------------------------ commands: counters

    def sign_in(self, tx: _Tx, counter: int, clerk: str, pin: str, takeover: bool = False) -> dict[str, Any]:
        """A clerk signs in at a counter (A、B岗): opens it and starts a session.

        The clerk must be the counter's A or B post and give the right PIN (see
        :meth:`_check_pin`: a clerk with no PIN set is refused, wrong PINs lock the clerk). A counter
        already signed in is refused (COUNTER_OCCUPIED) unless ``takeover`` is true:
        then the old session ends (its terminal is refused from now on) and the
        ticket in progress stays with the counter. A clerk signed in at another
        counter is refused. Replies with the session id the counter client sends with
        its later commands.
        """
        c = self._counter(tx, counter)
        if self.config.clerk(clerk) is None:
            raise HallError("BAD_PIN")
        self._check_pin(tx, counter, clerk, pin)
        cfg = self.counter_config[counter]
        if clerk not in (cfg.clerk_a, cfg.clerk_b):
            raise HallError("CLERK_NOT_ASSIGNED", clerk=clerk, counter=counter)
        for n, other in self.counters.items():
            if n != counter and other.clerk == clerk and other.state != COUNTER_CLOSED:
                raise HallError("CLERK_ELSEWHERE", clerk=clerk, counter=n)
        if c.state != COUNTER_CLOSED and not takeover:
            raise HallError("COUNTER_OCCUPIED", counter=counter, clerk=c.clerk)
        previous = c.session
        c.clerk = clerk
        c.post = "A" if clerk == cfg.clerk_a else "B"
        c.session = secrets.token_hex(8)
        if c.state == COUNTER_CLOSED:
            c.state = COUNTER_OPEN
            c.pause_reason = None
        c.since = tx.now
        tx.event("counter_signed_in", counter=counter, clerk=clerk, post=c.post,
                 takeover=previous is not None and takeover)
        return {"counter": self.counter_view(c), "session": c.session}

    def _check_pin(self, tx: _Tx, counter: int, clerk: str, pin: str) -> None:
        """Check a known clerk's PIN against the hash :attr:`pins` holds; raise when refused.

        * No PIN set: PIN_NOT_SET (an administrator runs ``queuehall clerks set-pin``).
        * Locked (``sign_in.lock_after`` wrong PINs in a row, within ``sign_in.lock_minutes`` of
          the last of them): CLERK_LOCKED with the minutes left, the right PIN included, on the
          hall clock. The lock lapses after that time, or when an administrator unlocks the clerk
          or sets a new PIN (the record's generation then differs from the lock's).
        * A wrong PIN: counted, recorded as a ``sign_in_refused`` event (time, counter, clerk);
          the one that reaches ``lock_after`` locks the clerk, with a ``clerk_locked`` event, and
          is answered CLERK_LOCKED; the others BAD_PIN. These are committed although refused.
        * The right PIN clears the count (committed with the sign-in).
        """
        try:
            record = self.pins.pin_record(clerk)
        except Exception as exc:  # the database cannot be read: refuse, as for a failed commit
            raise HallError("STORAGE", detail=str(exc)[:200], detail_zh=getattr(exc, "zh", str(exc)[:200])) from exc
        if record is None:
            raise HallError("PIN_NOT_SET", clerk=clerk)
        locks = self.state.get(_STATE_LOCKS, {})
        lock = locks.get(clerk)
        if lock is not None and lock.get("generation") != record.generation:
            lock = None  # an administrator set a new PIN or unlocked the clerk since
        if lock is not None and lock.get("locked_until"):
            until = _parse_iso(lock["locked_until"])
            if tx.now < until:
                raise HallError("CLERK_LOCKED", clerk=clerk, minutes=_minutes_left(tx.now, until))
            lock = None  # the lock is over: a fresh count
        if verify_pin(pin, record.pin_hash):
            if clerk in locks:
                del tx.state(_STATE_LOCKS)[clerk]
            return
        rules = self.config.sign_in
        failures = (lock["failures"] if lock else 0) + 1
        entry: dict[str, Any] = {"failures": failures, "generation": record.generation, "locked_until": None}
        tx.event("sign_in_refused", counter=counter, clerk=clerk, failures=failures)
        error = HallError("BAD_PIN")
        if failures >= rules.lock_after:
            until = tx.now + timedelta(minutes=rules.lock_minutes)
            entry["locked_until"] = _iso(until)
            tx.event("clerk_locked", counter=counter, clerk=clerk, failures=failures, until=_iso(until),
                     minutes=rules.lock_minutes)
            error = HallError("CLERK_LOCKED", clerk=clerk, minutes=rules.lock_minutes)
        tx.state(_STATE_LOCKS)[clerk] = entry
        tx.keep_refused = True
        raise error

    def unlock_clerk(self, tx: _Tx, clerk: str, client: str | None = None) -> dict[str, Any]:
        """An administrator lifts a clerk's lock (and count of wrong PINs) before it runs out.

        Allowed for a clerk of the hall whether locked or not (``was_locked`` says which);
        recorded as a ``clerk_unlocked`` event naming the client that asked."""
        if self.config.clerk(clerk) is None:
            raise HallError("UNKNOWN_CLERK", clerk=clerk)
        lock = self.state.get(_STATE_LOCKS, {}).get(clerk)
        was_locked = bool(lock and lock.get("locked_until")
                          and tx.now < _parse_iso(lock["locked_until"]))
        if lock is not None:
            del tx.state(_STATE_LOCKS)[clerk]
        tx.event("clerk_unlocked", clerk=clerk, by=client, was_locked=was_locked)
        return {"clerk": clerk, "was_locked": was_locked}

    def clerk_locks(self) -> dict[str, dict[str, Any]]:
        """Each clerk with wrong PINs counted: ``{"failures", "generation", "locked_until"}`` (a copy)."""
        return copy.deepcopy(self.state.get(_STATE_LOCKS, {}))

    def counter_view(self, c: CounterState) -> dict[str, Any]:
        return {"number": c.number, "state": c.state, "clerk": c.clerk, "post": c.post,
                "pause_reason": c.pause_reason, "ticket_id": c.ticket_id}

    def sign_out(self, tx: _Tx, counter: int, session: str | None = None) -> dict[str, Any]:
        """Close a counter. Refused while it still has a called or serving ticket."""
        c = self._counter(tx, counter, session)
        if c.state == COUNTER_CLOSED:
            raise HallError("COUNTER_CLOSED", counter=counter)
        busy = self._current(tx, c, CALLED, SERVING)
        if busy is not None:
            raise HallError("COUNTER_BUSY", counter=counter, ticket=busy.label)
        clerk = c.clerk
        c.state, c.clerk, c.post, c.session, c.pause_reason, c.since = (
            COUNTER_CLOSED, None, None, None, None, tx.now)
        tx.event("counter_signed_out", counter=counter, clerk=clerk)
        return {"counter": self.counter_view(c)}

    def pause(self, tx: _Tx, counter: int, reason: str, session: str | None = None) -> dict[str, Any]:
        """Pause an open counter with a configured reason. Refused with a ticket in progress."""
        if reason not in {p.code for p in self.config.pause_reasons}:
            raise HallError("UNKNOWN_PAUSE_REASON", reason=reason)
        c = self._open_counter(tx, counter, session)
        busy = self._current(tx, c, CALLED, SERVING)
        if busy is not None:
            raise HallError("COUNTER_BUSY", counter=counter, ticket=busy.label)
        c.state, c.pause_reason, c.since = COUNTER_PAUSED, reason, tx.now
        tx.event("counter_paused", counter=counter, clerk=c.clerk, reason=reason)
        return {"counter": self.counter_view(c)}

    def resume(self, tx: _Tx, counter: int, session: str | None = None) -> dict[str, Any]:
        """Resume a paused counter."""
        c = self._counter(tx, counter, session)
        if c.state != COUNTER_PAUSED:
            raise HallError("COUNTER_CLOSED" if c.state == COUNTER_CLOSED else "COUNTER_NOT_PAUSED",
                            counter=counter)
        reason = c.pause_reason
        c.state, c.pause_reason, c.since = COUNTER_OPEN, None, tx.now
        tx.event("counter_resumed", counter=counter, clerk=c.clerk, reason=reason)
        return {"counter": self.counter_view(c)}

    # ------------------------------------------------------------------ commands: calling

    def call_next(self, tx: _Tx, counter: int, session: str | None = None) -> dict[str, Any]:
        """Call the next ticket at ``counter`` by the calling rules (see :meth:`_pick`).

        The counter must be open and free (COUNTER_BUSY while it has a called or
        serving ticket). QUEUE_EMPTY when nobody eligible is waiting.
        """
        c = self._open_counter(tx, counter, session)
        busy = self._current(tx, c, CALLED, SERVING)
        if busy is not None:
            raise HallError("COUNTER_BUSY", counter=counter, ticket=busy.label)
        pick = self._pick(tx, counter)
        if pick is None:
            raise HallError("QUEUE_EMPTY")
        return self._call(tx, c, tx.ticket(pick.id), None)

    def call_ticket(self, tx: _Tx, counter: int, ticket: str | int, reason: str,
                    session: str | None = None) -> dict[str, Any]:
        """Call one specific waiting ticket out of order; a reason is required and recorded.

        The ticket must be waiting and one this counter may serve. The event carries
        the clerk, the time and the reason so every out-of-order call can be audited.
        """
        if not reason.strip():
            raise HallError("REASON_REQUIRED")
        c = self._open_counter(tx, counter, session)
        busy = self._current(tx, c, CALLED, SERVING)
        if busy is not None:
            raise HallError("COUNTER_BUSY", counter=counter, ticket=busy.label)
        t = tx.ticket(self.find_ticket(ticket, tx).id)
        if t.status != WAITING:
            raise HallError("NOT_WAITING", ticket=t.label, status=t.status)
        cfg = self.counter_config[counter]
        if not (t.target_counter == counter or (t.target_counter is None and t.queue_service in cfg.services)):
            raise HallError("NOT_SERVED_HERE", ticket=t.label, counter=counter)
        return self._call(tx, c, t, reason.strip())

    def recall(self, tx: _Tx, counter: int, session: str | None = None) -> dict[str, Any]:
        """Call the counter's called ticket again.

        A ticket may be recalled ``max_recalls`` times; asking for one more recall
        marks it a no-show instead (reply ``no_show: true``).
        """
        c = self._open_counter(tx, counter, session)
        t = self._current(tx, c, CALLED)
        if t is None:
            raise HallError("NOTHING_CALLED", counter=counter)
        if t.recalls >= self.config.calling.max_recalls:
            self._end(tx, t, NO_SHOW)
            tx.event("ticket_no_show", ticket=t, counter=counter, clerk=c.clerk, reason="recall_limit")
            return {"ticket": self.ticket_view(t, tx=tx), "no_show": True}
        t.recalls += 1
        v = tx.visit(t.visit_id)
        v.calls += 1
        v.last_called_at = tx.now
        tx.event("ticket_called", ticket=t, counter=counter, clerk=c.clerk, kind="recall")
        return {"ticket": self.ticket_view(t, tx=tx), "no_show": False}

    def no_show(self, tx: _Tx, counter: int, session: str | None = None) -> dict[str, Any]:
        """Mark the counter's called ticket a no-show (the citizen did not come)."""
        c = self._open_counter(tx, counter, session)
        t = self._current(tx, c, CALLED)
        if t is None:
            raise HallError("NOTHING_CALLED", counter=counter)
        self._end(tx, t, NO_SHOW)
        tx.event("ticket_no_show", ticket=t, counter=counter, clerk=c.clerk, reason="clerk")
        return {"ticket": self.ticket_view(t, tx=tx)}

    def reinstate(self, tx: _Tx, ticket: str | int, counter: int | None = None) -> dict[str, Any]:
        """Put a no-show back in its queue within ``noshow_grace_minutes`` of missing its call.

        It rejoins at the front (its original place) or the back, as configured; a
        new visit starts, so its new wait is measured from now. ``counter`` (optional)
        is where it was asked for; its clerk is recorded in the event for the audit.
        """
        clerk = self._counter(tx, counter).clerk if counter is not None else None
        t = tx.ticket(self.find_ticket(ticket, tx).id)
        if t.status != NO_SHOW:
            raise HallError("NOT_NO_SHOW", ticket=t.label)
        grace = self.config.calling.noshow_grace_minutes
        if t.status_at is None or tx.now - t.status_at > timedelta(minutes=grace):
            raise HallError("GRACE_EXPIRED", ticket=t.label, minutes=grace)
        old = tx.visit(t.visit_id)
        v = Visit(id=tx.new_visit_id(), ticket_id=t.id, seq=old.seq + 1, business_day=tx.day,
                  service=t.queue_service, entered_at=tx.now, target_counter=t.target_counter)
        tx.add_visit(v)
        t.visit_id = v.id
        t.status, t.status_at, t.counter, t.recalls = WAITING, tx.now, None, 0
        if self.config.calling.noshow_reinstate == "back":
            t.queue_key = tx.now
        tx.event("ticket_reinstated", ticket=t, counter=counter, clerk=clerk,
                 position=self.config.calling.noshow_reinstate)
        return {"ticket": self.ticket_view(t, tx=tx)}

    def start(self, tx: _Tx, counter: int, session: str | None = None) -> dict[str, Any]:
        """The citizen has arrived: the counter's called ticket is now being served."""
        c = self._open_counter(tx, counter, session)
        t = self._current(tx, c, CALLED, SERVING)
        if t is None:
            raise HallError("NOTHING_CALLED", counter=counter)
        if t.status == SERVING:
            raise HallError("ALREADY_SERVING", ticket=t.label)
        t.status, t.status_at = SERVING, tx.now
        v = tx.visit(t.visit_id)
        v.serving_at = tx.now
        tx.event("ticket_serving", ticket=t, counter=counter, clerk=c.clerk)
        return {"ticket": self.ticket_view(t, tx=tx)}

    def finish(self, tx: _Tx, counter: int, session: str | None = None) -> dict[str, Any]:
        """Finish serving the counter's ticket; its service time feeds the wait estimate."""
        c = self._counter(tx, counter, session)
        if c.state == COUNTER_CLOSED:
            raise HallError("COUNTER_CLOSED", counter=counter)
        t = self._current(tx, c, SERVING)
        if t is None:
            raise HallError("NOT_SERVING", counter=counter)
        v = tx.visit(t.visit_id)
        self._end(tx, t, FINISHED)
        if v.first_called_at is not None:
            seconds = (tx.now - v.first_called_at).total_seconds()
            avgs = tx.state(_STATE_AVG)
            old = avgs.get(t.queue_service, self.services[t.queue_service].avg_service_minutes * 60)
            avgs[t.queue_service] = round(old + _EWMA * (seconds - old), 3)
        tx.event("ticket_finished", ticket=t, counter=counter, clerk=c.clerk)
        return {"ticket": self.ticket_view(t, tx=tx)}

    def transfer(self, tx: _Tx, counter: int, service: str | None = None, to_counter: int | None = None,
                 note: str | None = None, session: str | None = None) -> dict[str, Any]:
        """Send the counter's called or serving ticket to another service and/or counter.

        The ticket keeps its number and its original issue time as its queue
        position (so going to the fee window and back does not cost the citizen
        their place). With ``to_counter`` only that counter may call it. The note is
        shown to the next clerk and the displays. Refused when the target service
        has no open counter (SERVICE_CLOSED) or the target counter is closed.
        """
        c = self._counter(tx, counter, session)
        if c.state == COUNTER_CLOSED:
            raise HallError("COUNTER_CLOSED", counter=counter)
        t = self._current(tx, c, CALLED, SERVING)
        if t is None:
            raise HallError("NOTHING_CALLED", counter=counter)
        if service is None and to_counter is None:
            raise HallError("BAD_REQUEST", detail="transfer needs a service or a counter")
        if to_counter is not None:
            if to_counter not in self.counter_config:
                raise HallError("UNKNOWN_COUNTER", counter=to_counter)
            if self.counters[to_counter].state == COUNTER_CLOSED and to_counter != counter:
                raise HallError("COUNTER_CLOSED", counter=to_counter)
        if service is None:  # to a counter: stay in the current (or issuing) service when it serves it
            served = self.counter_config[to_counter].services  # type: ignore[index]
            service = next((s for s in (t.queue_service, t.service) if s in served), served[0])
        target = service
        self._service(target)
        if target == t.queue_service and to_counter in (None, counter):
            raise HallError("SAME_QUEUE", ticket=t.label)
        if to_counter is None and not any(
                target in cfg.services and self.counters[n].state != COUNTER_CLOSED
                for n, cfg in self.counter_config.items()):
            raise HallError("SERVICE_CLOSED", service=target)
        old = tx.visit(t.visit_id)
        from_service = t.queue_service
        self._end(tx, t, TRANSFERRED)
        old.outcome = TRANSFERRED
        v = Visit(id=tx.new_visit_id(), ticket_id=t.id, seq=old.seq + 1, business_day=tx.day,
                  service=target, entered_at=tx.now, target_counter=to_counter, note=(note or "").strip())
        tx.add_visit(v)
        t.visit_id = v.id
        t.status, t.status_at, t.counter, t.recalls = WAITING, tx.now, None, 0
        t.queue_service, t.target_counter, t.queue_key = target, to_counter, t.issued_at
        tx.event("ticket_transferred", ticket=t, counter=counter, clerk=c.clerk, from_service=from_service,
                 to_service=target, to_counter=to_counter, note=v.note)
        return {"ticket": self.ticket_view(t, tx=tx)}

    # ------------------------------------------------------------------ commands: 好差评 (docs/evaluation.md)

    def _find_ratable(self, tx: _Tx, ticket: str | None, visit: int | None, counter: int | None) -> Ratable:
        """The finished visit a rating is for: by visit id, by ticket (id or label: its last finished visit),
        or a counter's last finished visit. Refuses an open ticket (NOT_FINISHED), a visit nobody can
        rate any more (RATING_CLOSED), one rated already (ALREADY_RATED)."""
        minutes = self.config.rating.window_minutes
        horizon = self.rating_horizon(tx.now)
        known = [r for r in self.ratable.values() if r.ended_at >= horizon]
        if ticket is not None and visit is not None:
            raise HallError("BAD_REQUEST", detail="rate names a ticket or a visit, not both")
        if ticket is None and visit is None and counter is None:
            raise HallError("BAD_REQUEST", detail="rate needs a ticket, a visit or a counter")
        if counter is not None and counter not in self.counter_config:
            raise HallError("UNKNOWN_COUNTER", counter=counter)
        if ticket is None and visit is None:
            entry = next((r for r in reversed(known) if r.counter == counter), None)
            if entry is None or tx.now - entry.ended_at > timedelta(minutes=minutes):
                raise HallError("NOTHING_TO_RATE", counter=counter, minutes=minutes)
        elif visit is not None:
            entry = next((r for r in known if r.visit_id == visit), None)
            if entry is None:
                holder = next((t for t in self.tickets.values() if t.visit_id == visit), None)
                if holder is not None:
                    raise HallError("NOT_FINISHED", ticket=holder.label)
                raise HallError("UNKNOWN_TICKET", ticket=f"visit {visit}")
        else:
            ref = str(ticket).strip()
            by_id = int(ref) if ref.isdecimal() else None
            label = ref.upper()
            entry = next((r for r in reversed(known) if r.ticket_id == by_id or (by_id is None and r.label == label)),
                         None)
            try:
                open_ticket: Ticket | None = self.find_ticket(ref, tx)
            except HallError:
                open_ticket = None
            # A label of today's open ticket wins over a finished visit of yesterday's same number.
            if open_ticket is not None and (entry is None or (open_ticket.id != entry.ticket_id
                                                              and open_ticket.issued_at > entry.ended_at)):
                raise HallError("NOT_FINISHED", ticket=open_ticket.label)
            if entry is None:
                raise HallError("UNKNOWN_TICKET", ticket=ref)
        if counter is not None and entry.counter != counter:  # a counter's screen rates its own visits only
            raise HallError("NOTHING_TO_RATE", counter=counter, minutes=minutes)
        if entry.rated is not None:
            raise HallError("ALREADY_RATED", ticket=entry.label)
        if tx.now - entry.ended_at > timedelta(minutes=minutes):
            raise HallError("RATING_CLOSED", ticket=entry.label, minutes=minutes)
        return entry

    def _rate(self, tx: _Tx, entry: Ratable, level: int, indicators: list[str], reason: str, channel: str,
              is_default: bool) -> dict[str, Any]:
        r = Rating(id=self.last_rating_id + 1 + len(tx.change.ratings), visit_id=entry.visit_id,
                   ticket_id=entry.ticket_id, label=entry.label, business_day=entry.business_day,
                   service=entry.service, counter=entry.counter, clerk=entry.clerk, post=entry.post, level=level,
                   indicators=indicators, reason=reason, channel=channel, is_default=is_default, rated_at=tx.now,
                   visit_ended_at=entry.ended_at)
        tx.change.ratings.append(r)
        view = rating_view(r)
        # The reason stays out of the event (published to every screen): the ratings table and the admin's
        # queries keep it (docs/evaluation.md).
        tx.event("visit_rated", counter=r.counter, clerk=r.clerk, service=r.service,
                 **{k: v for k, v in view.items() if k not in ("reason", "counter", "clerk", "service")},
                 has_reason=bool(reason))
        out: dict[str, Any] = {"rating": view}
        if level in LOW_LEVELS:
            case = Case(id=self.last_case_id + 1 + len(tx.change.new_cases), rating_id=r.id, visit_id=r.visit_id,
                        label=r.label, business_day=r.business_day, service=r.service, counter=r.counter,
                        clerk=r.clerk, level=level, opened_at=tx.now,
                        due_day=self.hours.promised_date(tx.day, self.config.rating.case_working_days) or tx.day)
            tx.change.cases[case.id] = case
            tx.change.new_cases.add(case.id)
            out["case"] = self.case_view(case, tx.day)
            tx.event("case_opened", counter=r.counter, clerk=r.clerk, service=r.service, case=case.id,
                     rating=r.id, level=level, label=r.label, due_day=case.due_day.isoformat(), is_default=is_default)
        return out

    def rate(self, tx: _Tx, level: int, ticket: str | int | None = None, visit: int | None = None,
             counter: int | None = None, indicators: str | None = None, reason: str | None = None,
             channel: str | None = None) -> dict[str, Any]:
        """The citizen rates a finished visit (政务服务"好差评"): ``level`` 5 非常满意, 4 满意, 3 基本满意,
        2 不满意, 1 非常不满意.

        The visit is named by ``visit`` (id) or ``ticket`` (id or label: its last finished visit), or by
        ``counter`` alone (that counter's last finished visit: the evaluator box); ``counter`` with a ticket
        or visit requires the visit to have ended there (NOTHING_TO_RATE otherwise: a counter's screen).
        For the two low levels the citizen may name the offline indicators they were unhappy with, comma
        separated (``efficiency`` 服务效率, ``level`` 服务水平, ``attitude`` 服务态度, ``overall`` 整体满意度;
        INDICATORS_LOW_ONLY otherwise) and a reason.
        ``channel``: counter_screen, phone, evaluator_box or cli (default cli).

        One rating per visit (ALREADY_RATED), only for a finished visit (NOT_FINISHED), only within
        ``rating.window_minutes`` after it ended (RATING_CLOSED; NOTHING_TO_RATE for a counter). Each low
        level opens a follow-up case due in ``rating.case_working_days`` working days (event ``case_opened``).
        Event ``visit_rated``, without the reason.
        """
        if level not in RATING_LEVELS:
            raise HallError("BAD_LEVEL", level=level)
        channel = channel or "cli"
        if channel not in RATING_CHANNELS:
            raise HallError("BAD_REQUEST", detail=f"channel must be one of {', '.join(RATING_CHANNELS)}")
        picked: list[str] = []
        for item in (x.strip() for x in (indicators or "").split(",") if x.strip()):
            if item not in RATING_INDICATORS:
                raise HallError("UNKNOWN_INDICATOR", indicator=item[:40])
            if item not in picked:
                picked.append(item)
        if picked and level not in LOW_LEVELS:
            raise HallError("INDICATORS_LOW_ONLY")
        entry = self._find_ratable(tx, None if ticket is None else str(ticket), visit, counter)
        return self._rate(tx, entry, level, picked, (reason or "").strip(), channel, False)

    def ratings_due(self) -> bool:
        """Whether the hall gives a default rating (``rating.default_level``) and a visit's window closed
        unrated: then the broker runs :meth:`default_ratings` (asked on every heartbeat)."""
        if not self.config.rating.default_level:
            return False
        return bool(self._unrated_closed(self.clock.now()))

    def _unrated_closed(self, now: datetime) -> list[Ratable]:
        limit = now - timedelta(minutes=self.config.rating.window_minutes)
        horizon = self.rating_horizon(now)
        out = []
        for r in self.ratable.values():
            if r.ended_at >= limit:
                break
            if r.rated is None and r.ended_at >= horizon:
                out.append(r)
        return out

    def default_ratings(self, tx: _Tx) -> dict[str, Any]:
        """Give every visit whose rating window closed unrated the hall's ``rating.default_level``, marked
        ``is_default`` (channel ``default``) everywhere; nothing when the hall sets no default (the
        national rules invent no 好评). Replies with the labels rated."""
        level = self.config.rating.default_level
        done = []
        if level:
            for entry in self._unrated_closed(tx.now):
                self._rate(tx, entry, level, [], "", CHANNEL_DEFAULT, True)
                done.append(entry.label)
        return {"rated": done}

    def case_view(self, c: Case, today: date) -> dict[str, Any]:
        """A 差评 case on the wire (docs/evaluation.md)."""
        return {"id": c.id, "rating": c.rating_id, "visit": c.visit_id, "label": c.label,
                "business_day": c.business_day.isoformat(), "service": c.service, "counter": c.counter,
                "clerk": c.clerk, "level": c.level, "opened_at": _iso(c.opened_at), "due_day": c.due_day.isoformat(),
                "status": c.status, "overdue": c.status == CASE_OPEN and today > c.due_day,
                "callback_at": _iso(c.callback_at), "callback_note": c.callback_note, "finding": c.finding,
                "rectification": c.rectification, "closed_at": _iso(c.closed_at), "closed_by": c.closed_by}

    def open_cases(self) -> list[dict[str, Any]]:
        """Every open 差评 case, oldest first, with ``overdue`` against today's business day."""
        today = self.hours.business_day(self.clock.now())
        return [self.case_view(c, today) for c in sorted(self.cases.values(), key=lambda c: c.id)]

    def _open_case(self, tx: _Tx, case: int) -> Case:
        found = tx.change.cases.get(case) or self.cases.get(case)
        if found is None or found.status != CASE_OPEN:
            raise HallError("UNKNOWN_CASE", case=case)
        c = copy.copy(found)
        tx.change.cases[case] = c
        return c

    def case_callback(self, tx: _Tx, case: int, note: str, by: str | None = None) -> dict[str, Any]:
        """Record the call back (回访) to the citizen of an open case: what was said (required). A second
        call back replaces the note and time. Event ``case_updated``."""
        c = self._open_case(tx, case)
        c.callback_at, c.callback_note = tx.now, note.strip()
        tx.event("case_updated", counter=c.counter, clerk=c.clerk, service=c.service, case=c.id, step="callback",
                 by=by)
        return {"case": self.case_view(c, tx.day)}

    def case_close(self, tx: _Tx, case: int, finding: str, rectification: str,
                   by: str | None = None) -> dict[str, Any]:
        """Close an open case with the finding (核实情况) and the rectification (整改措施), both required;
        refused before its call back (CALLBACK_REQUIRED). ``on_time``: closed by its due day. Event
        ``case_closed``."""
        c = self._open_case(tx, case)
        if c.callback_at is None:
            raise HallError("CALLBACK_REQUIRED", case=case)
        c.finding, c.rectification = finding.strip(), rectification.strip()
        c.status, c.closed_at, c.closed_by = CASE_CLOSED, tx.now, by
        on_time = tx.day <= c.due_day
        tx.event("case_closed", counter=c.counter, clerk=c.clerk, service=c.service, case=c.id, on_time=on_time,
                 by=by)
        return {"case": self.case_view(c, tx.day), "on_time": on_time}

    # ------------------------------------------------------------------ helpers

    def _local_str(self, at: datetime | None) -> str:
        if at is None:
            return "—"
        return at.astimezone(self.hours.tz).strftime("%Y-%m-%d %H:%M")

    def open_tickets(self) -> list[Ticket]:
        return [t for t in self.tickets.values() if t.status in ACTIVE]


def no_show_load_horizon(hours: OpeningHours, now: datetime) -> datetime:
    """No-shows marked before this moment are never in memory: only those of a business day not yet
    closed are, and by the time a hall is rebuilt every day before yesterday is closed
    (:meth:`Hall.close_day_if_due`). The rebuild loads from here and applies the same rule."""
    return datetime.combine(hours.business_day(now) - timedelta(days=1), time.min, tzinfo=hours.tz)


def _printer_record(printers: dict[str, Any], kiosk: str, name: str | None) -> dict[str, Any]:
    """The ``printers`` record of ``kiosk`` (created empty), with ``name`` when given."""
    rec = printers.setdefault(kiosk, {"kiosk": kiosk, "name": kiosk, "fault": None, "unprinted": [],
                                      "reprints": []})
    if name and name.strip():
        rec["name"] = name.strip()[:64]
    return rec


def rating_view(r: Rating) -> dict[str, Any]:
    """A rating on the wire and in the province's export (docs/evaluation.md, "Record format")."""
    level = RATING_LEVELS[r.level]
    return {"id": r.id, "visit_id": r.visit_id, "ticket_id": r.ticket_id, "label": r.label,
            "business_day": r.business_day.isoformat(), "service": r.service, "counter": r.counter,
            "clerk": r.clerk, "post": r.post, "level": r.level, "level_zh": level.zh, "level_en": level.en,
            "indicators": list(r.indicators), "reason": r.reason, "channel": r.channel, "is_default": r.is_default,
            "rated_at": _iso(r.rated_at), "visit_ended_at": _iso(r.visit_ended_at)}


def _minutes_left(now: datetime, until: datetime) -> int:
    """Whole minutes until ``until``, rounded up (a lock with 10 s left says 1 minute)."""
    return max(1, math.ceil((until - now).total_seconds() / 60))


def _fifo(t: Ticket) -> tuple[datetime, int]:
    """A ticket's place in its queue: queue position (transfers keep their issue time), then id."""
    return (t.queue_key, t.id)


_ISO: dict[datetime, str] = {}  # a ticket's view repeats the same few instants (issued, entered, queued)


def _date(d: date | None) -> str | None:
    return d.isoformat() if d is not None else None


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    text = _ISO.get(at)
    if text is None:
        if len(_ISO) > 4096:
            _ISO.clear()
        text = _ISO[at] = format_time(at)
    return text


def _parse_iso(text: str) -> datetime:
    at = parse_time(text)
    if at is None:
        raise ValueError(f"not a wire time: {text!r}")
    return at


# The wire names of the hall's commands (queuehall/commands.py, the one schema) -> the methods carrying them
# out; a method whose signature names ``client`` gets the sending client's id.
COMMANDS: dict[str, Callable[..., dict[str, Any]]] = {name: getattr(Hall, name) for name in hall_commands()}
_PARAMS = {name: SCHEMA[name].params for name in COMMANDS}
# The questions the hall answers from its state (:meth:`Hall.query`; the broker's ``query`` kind).
HALL_QUERIES = frozenset({"slots", "bookings", "booking"})
_TAKES_CLIENT = frozenset(name for name, fn in COMMANDS.items() if "client" in inspect.signature(fn).parameters)
