"""The hall's records: tickets, their visits to queues, counters and events.

Plain dataclasses shared by the engine (which changes them) and the storage (which
saves them). Times are aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

# Ticket statuses.
WAITING = "waiting"
CALLED = "called"
SERVING = "serving"
FINISHED = "finished"
NO_SHOW = "no_show"
CANCELLED = "cancelled"
VOIDED = "voided"
# 闭厅未办结: still open (waiting, called or serving) when the hall closed its business day (docs/calling-rules.md).
CLOSED_UNSERVED = "closed_unserved"
ACTIVE = frozenset({WAITING, CALLED, SERVING})
TICKET_STATUSES = (WAITING, CALLED, SERVING, FINISHED, NO_SHOW, CANCELLED, VOIDED, CLOSED_UNSERVED)

# How a visit (one stay in one queue) ended.
TRANSFERRED = "transferred"
VISIT_OUTCOMES = (FINISHED, NO_SHOW, TRANSFERRED, CANCELLED, VOIDED, CLOSED_UNSERVED)

# Counter states.
COUNTER_CLOSED = "closed"
COUNTER_OPEN = "open"
COUNTER_PAUSED = "paused"


@dataclass
class Visit:
    """One stay of a ticket in one queue: issued or transferred in, until it leaves.

    Wait time is ``entered_at -> first_called_at``; service time is
    ``serving_at -> ended_at`` for a finished visit (docs/reports.md).
    """

    id: int
    ticket_id: int
    seq: int
    business_day: date
    service: str
    entered_at: datetime
    target_counter: int | None = None
    note: str = ""
    first_called_at: datetime | None = None
    last_called_at: datetime | None = None
    calls: int = 0
    serving_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    counter: int | None = None
    clerk: str | None = None
    post: str | None = None
    out_of_order: str | None = None


@dataclass
class Ticket:
    """A numbered ticket. Its number belongs to the issuing service and business day."""

    id: int
    business_day: date
    service: str
    number: int
    label: str
    priority: str | None
    issued_at: datetime
    status: str
    queue_service: str
    queue_key: datetime
    visit_id: int
    target_counter: int | None = None
    counter: int | None = None
    recalls: int = 0
    issued_by: str | None = None
    status_at: datetime | None = None
    # The ticket page's secret (docs/web.md): unguessable, never sent on the event channel.
    token: str | None = None
    # An appointment ticket (预约; checked in on time): its booking's code and slot start, which the calling
    # rule orders appointment tickets by (docs/calling-rules.md "Appointments"). None for every other ticket.
    booking: str | None = None
    slot_at: datetime | None = None


@dataclass
class CounterState:
    number: int
    state: str = COUNTER_CLOSED
    clerk: str | None = None
    post: str | None = None
    session: str | None = None
    pause_reason: str | None = None
    ticket_id: int | None = None
    since: datetime | None = None


RATING_CHANNELS = ("counter_screen", "phone", "evaluator_box", "cli")
CHANNEL_DEFAULT = "default"  # the hall's default after the window (never given by a caller)
CASE_OPEN = "open"
CASE_CLOSED = "closed"


@dataclass
class Rating:
    """One citizen's rating of one finished visit (at most one per visit)."""

    id: int
    visit_id: int
    ticket_id: int
    label: str
    business_day: date  # the visit's business day
    service: str
    counter: int | None
    clerk: str | None
    post: str | None
    level: int
    indicators: list[str]
    reason: str
    channel: str
    is_default: bool
    rated_at: datetime
    visit_ended_at: datetime


@dataclass
class Ratable:
    """A finished visit the engine remembers for rating: the window, the default, the refusals' codes."""

    visit_id: int
    ticket_id: int
    label: str
    business_day: date
    service: str
    counter: int | None
    clerk: str | None
    post: str | None
    ended_at: datetime
    rated: int | None = None  # the level given (or defaulted), None while unrated


@dataclass
class Case:
    """The follow-up of one 差评: 回访 (call back), finding and rectification, due by ``due_day``."""

    id: int
    rating_id: int
    visit_id: int
    label: str
    business_day: date
    service: str
    counter: int | None
    clerk: str | None
    level: int
    opened_at: datetime
    due_day: date
    status: str = CASE_OPEN
    callback_at: datetime | None = None
    callback_note: str = ""
    finding: str = ""
    rectification: str = ""
    closed_at: datetime | None = None
    closed_by: str | None = None


# Booking states (预约).
BOOKED = "booked"
CHECKED_IN = "checked_in"
BOOKING_CANCELLED = "cancelled"
BOOKING_NO_SHOW = "no_show"  # never checked in: recorded at its day's close
BOOKING_STATES = (BOOKED, CHECKED_IN, BOOKING_CANCELLED, BOOKING_NO_SHOW)


@dataclass
class Booking:
    """One booked visit (预约) of one service in one slot; ``code`` is its unguessable key.

    The contact, when given, is kept only masked (for display) and as a salted scrypt hash (to match at
    check-in); both are purged with the hall's records (broker/appointments.py).
    """

    code: str
    hall: str
    service: str
    slot_day: date  # the business day of the slot
    slot_at: datetime  # the slot's start (UTC)
    slot_end: datetime
    state: str
    booked_at: datetime
    booked_by: str | None = None
    contact_masked: str | None = None
    contact_hash: str | None = None
    ticket_id: int | None = None
    ticket_label: str | None = None
    checked_in_at: datetime | None = None
    late: bool = False  # checked in after the window: its ticket is a normal one
    ended_at: datetime | None = None  # cancelled or recorded a no-show


@dataclass
class Event:
    """One change in the hall, in the order the engine decided it."""

    seq: int
    at: datetime
    business_day: date
    type: str
    ticket_id: int | None = None
    service: str | None = None
    counter: int | None = None
    clerk: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Change:
    """Everything one accepted command writes; the journal commits it atomically."""

    events: list[Event] = field(default_factory=list)
    tickets: dict[int, Ticket] = field(default_factory=dict)
    new_tickets: set[int] = field(default_factory=set)
    visits: dict[int, Visit] = field(default_factory=dict)
    new_visits: set[int] = field(default_factory=set)
    counters: dict[int, CounterState] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    request: tuple[str, str, dict[str, Any]] | None = None  # client, request id, reply
    ratings: list[Rating] = field(default_factory=list)
    cases: dict[int, Case] = field(default_factory=dict)
    new_cases: set[int] = field(default_factory=set)
    bookings: dict[str, Booking] = field(default_factory=dict)
    new_bookings: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class PinRecord:
    """A clerk's PIN as the database keeps it: the scrypt hash (queuehall/pins.py) and the number of
    administrative changes (set, unlock), which voids a lock counted under an earlier one."""

    clerk: str
    pin_hash: str
    generation: int


@dataclass
class Stored:
    """What the journal hands back on start so the engine can rebuild its state."""

    tickets: list[Ticket]
    visits: list[Visit]
    counters: list[CounterState]
    state: dict[str, Any]
    numbers: dict[tuple[date, str], int]
    last_ticket_id: int
    last_visit_id: int
    last_event_seq: int
    requests: dict[tuple[str, str], dict[str, Any] | str]  # a reply as stored (JSON text) or as sent
    recent_calls: list[Event]
    open_cases: list[Case] = field(default_factory=list)
    ratable: list[Ratable] = field(default_factory=list)  # finished visits within the rating horizon
    last_rating_id: int = 0
    last_case_id: int = 0
    bookings: list[Booking] = field(default_factory=list)  # those of business days not yet closed (and the last)


def plain(obj: Any) -> dict[str, Any]:
    return asdict(obj)
