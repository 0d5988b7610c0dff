"""Typed payloads of the published events the screens act on, and the ticket record, decoded once from the wire.

The broker publishes events as JSON objects (docs/protocol.md "Events"). A screen that acts on a call or a
transfer needs a handful of their fields, checked: the client library (:class:`~queuehall.client.Link`) decodes
each published event once with :func:`decode_event` and hands the typed payload over with the message
(``msg["payload"]``); a snapshot's ``recent_calls`` are decoded with :func:`decode_call`. An event whose fields
are unusable (a missing label, a counter that is not an integer) decodes to None: screens skip it.

A ticket record (docs/protocol.md "Records": in results, events and the state's ``tickets``) decodes with
:func:`decode_ticket` to a :class:`Ticket`, every field checked once here: the kiosk, counter and display models and
the web gateway read ``ticket.label``, ``ticket.service_name`` … instead of looking each field up and checking it.

Pure Python (core layer): no sockets, no Qt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from queuehall.protocol import parse_time
from queuehall.text import EMPTY, Bi

CALL_KINDS = ("call", "recall")


def _int(value: object) -> int | None:
    """An integer of the wire (never a boolean), or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _event_id(ev: dict[str, Any], ticket_id: int | None, label: str) -> str:
    # The broker's journal sequence number identifies one event for good (it survives a broker restart and is the
    # same in the snapshot's recent_calls); a ticket's call count alone does not, because a transferred ticket
    # starts counting again in its new queue.
    seq = ev.get("journal_seq")
    return f"{ticket_id if ticket_id is not None else label}#{seq if seq is not None else ev.get('at')}"


@dataclass(frozen=True, slots=True)
class TicketCalled:
    """A ``ticket_called`` event: ``kind`` is ``call`` or ``recall``; ``calls`` the ticket's call count (≥ 1);
    ``service`` the ticket's service name; ``event_id`` identifies this one call for good."""

    ticket_id: int | None
    label: str
    counter: int
    kind: str
    calls: int
    service: Bi
    at: datetime | None
    event_id: str


@dataclass(frozen=True, slots=True)
class TicketTransferred:
    """A ``ticket_transferred`` event: to another service (``to_service``) and/or a counter (``to_counter``);
    ``service`` is the ticket's service name as the event carries it."""

    ticket_id: int | None
    label: str
    to_counter: int | None
    to_service: str | None
    service: Bi
    at: datetime | None
    event_id: str


def decode_call(ev: dict[str, Any]) -> TicketCalled | None:
    """A ``ticket_called`` event's payload, or None when it names no ticket label or no counter."""
    ticket = ev.get("ticket")
    counter = _int(ev.get("counter"))
    if not isinstance(ticket, dict) or counter is None:
        return None
    label = ticket.get("label")
    if not isinstance(label, str) or not label:
        return None
    tid = _int(ticket.get("id"))
    calls = _int(ticket.get("calls"))
    return TicketCalled(
        ticket_id=tid, label=label, counter=counter,
        kind=str(ev["kind"]) if ev.get("kind") in CALL_KINDS else "call",
        calls=calls if calls is not None and calls >= 1 else 1,
        service=Bi(str(ticket.get("service_name_zh") or ""), str(ticket.get("service_name_en") or "")),
        at=parse_time(ev.get("at")), event_id=_event_id(ev, tid, label))


def decode_transfer(ev: dict[str, Any]) -> TicketTransferred | None:
    """A ``ticket_transferred`` event's payload, or None when it names no ticket label."""
    ticket = ev.get("ticket")
    if not isinstance(ticket, dict) or not isinstance(ticket.get("label"), str):
        return None
    tid = _int(ticket.get("id"))
    label = ticket["label"]
    to_service = ev.get("to_service")
    return TicketTransferred(
        ticket_id=tid, label=label, to_counter=_int(ev.get("to_counter")),
        to_service=to_service if isinstance(to_service, str) else None,
        service=Bi(str(ticket.get("service_name_zh") or ""), str(ticket.get("service_name_en") or "")),
        at=parse_time(ev.get("at")), event_id=_event_id(ev, tid, label))


@dataclass(frozen=True, slots=True)
class Ticket:
    """A ticket record (docs/protocol.md "Records"), checked: a field the record lacks, or of the wrong type, has
    its empty value (``""``, ``None``, 0, False). Times are aware UTC datetimes; ``service_name`` is the name of
    the service it is queued for now (``queue_service``), as the broker sent it. ``record`` is the record as it
    came, fields added later included."""

    id: int | None
    label: str
    status: str = ""
    business_day: str = ""
    service: str = ""
    queue_service: str = ""
    service_name: Bi = EMPTY
    priority: str | None = None
    issued_at: datetime | None = None
    entered_at: datetime | None = None
    called_at: datetime | None = None
    queued_at: datetime | None = None
    calls: int = 0
    counter: int | None = None
    target_counter: int | None = None
    note: str = ""
    promised_days: int | None = None
    promised_date: date | None = None
    channel: str = ""
    arrive_by: datetime | None = None
    checked_in: bool = False
    appointment: bool = False
    slot: str = ""
    record: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def queue_order(self) -> tuple[datetime, int]:
        """Its place in its queue (FIFO: ``queued_at``, else ``entered_at``; then the id), for sorting."""
        return (self.queued_at or self.entered_at or EPOCH, self.id if self.id is not None else 0)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # sorts a ticket without a time first
NO_TICKET = Ticket(id=None, label="")  # what a record that is no ticket reads as where one must be shown


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _day(value: object) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def decode_ticket(record: object) -> Ticket | None:
    """The typed ticket of a wire record; None when it is not a record or names no label."""
    if not isinstance(record, Mapping):
        return None
    label = record.get("label")
    if not isinstance(label, str) or not label:
        return None
    priority = record.get("priority")
    return Ticket(
        id=_int(record.get("id")), label=label, status=_str(record.get("status")),
        business_day=_str(record.get("business_day")), service=_str(record.get("service")),
        queue_service=_str(record.get("queue_service")),
        service_name=Bi.fields(record, "service_name"),
        priority=priority if isinstance(priority, str) and priority else None,
        issued_at=parse_time(record.get("issued_at")), entered_at=parse_time(record.get("entered_at")),
        called_at=parse_time(record.get("called_at")), queued_at=parse_time(record.get("queued_at")),
        calls=_int(record.get("calls")) or 0, counter=_int(record.get("counter")),
        target_counter=_int(record.get("target_counter")), note=_str(record.get("note")),
        promised_days=_int(record.get("promised_days")), promised_date=_day(record.get("promised_date")),
        channel=_str(record.get("channel")), arrive_by=parse_time(record.get("arrive_by")),
        checked_in=record.get("checked_in") is True, appointment=record.get("appointment") is True,
        slot=_str(record.get("slot")), record=record)


DECODERS: dict[str, Callable[[dict[str, Any]], TicketCalled | TicketTransferred | None]] = {
    "ticket_called": decode_call, "ticket_transferred": decode_transfer}


def decode_event(ev: object) -> TicketCalled | TicketTransferred | None:
    """The typed payload of a published event a screen acts on; None for other events and unusable ones."""
    if not isinstance(ev, dict):
        return None
    decoder = DECODERS.get(str(ev.get("type")))
    return decoder(ev) if decoder is not None else None
