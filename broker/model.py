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
ACTIVE = frozenset({WAITING, CALLED, SERVING})
TICKET_STATUSES = (WAITING, CALLED, SERVING, FINISHED, NO_SHOW, CANCELLED, VOIDED)

# How a visit (one stay in one queue) ended.
TRANSFERRED = "transferred"
VISIT_OUTCOMES = (FINISHED, NO_SHOW, TRANSFERRED, CANCELLED, VOIDED)

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


def plain(obj: Any) -> dict[str, Any]:
    return asdict(obj)
