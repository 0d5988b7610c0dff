"""Typed event payloads (queuehall/payloads.py), decoded once by the client library's mirror and taken by the
display as they are."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from queuehall.client import StateMirror
from queuehall.payloads import TicketCalled, TicketTransferred, decode_call, decode_event, decode_transfer
from queuehall.text import Bi

AT = "2026-12-07T01:02:03Z"


def called(**over: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {"type": "ticket_called", "counter": 3, "kind": "recall", "at": AT, "journal_seq": 41,
                          "ticket": {"id": 7, "label": "A007", "calls": 2, "service_name_zh": "护照",
                                     "service_name_en": "Passport"}}
    ev.update(over)
    return ev


def test_a_call_decodes_to_its_typed_payload() -> None:
    assert decode_call(called()) == TicketCalled(
        ticket_id=7, label="A007", counter=3, kind="recall", calls=2, service=Bi("护照", "Passport"),
        at=datetime(2026, 12, 7, 1, 2, 3, tzinfo=UTC), event_id="7#41")
    # What the screens relied on checking themselves: a bad kind is a call, a bad count is 1, a missing
    # journal_seq identifies the call by its time.
    odd = decode_call(called(kind="shout", journal_seq=None, ticket={"label": "B1", "calls": True, "id": "x"}))
    assert odd is not None and (odd.kind, odd.calls, odd.ticket_id, odd.event_id) == ("call", 1, None, f"B1#{AT}")
    for bad in (called(counter=True), called(counter="3"), called(ticket=None), called(ticket={"label": ""}),
                called(ticket={"id": 1})):
        assert decode_call(bad) is None, bad


def test_a_transfer_decodes_and_other_events_do_not() -> None:
    moved = decode_transfer({"type": "ticket_transferred", "to_counter": 5, "to_service": "tax", "at": "garbage",
                             "ticket": {"id": 2, "label": "A002", "service_name_zh": "护照"}})
    assert moved == TicketTransferred(ticket_id=2, label="A002", to_counter=5, to_service="tax",
                                      service=Bi("护照", ""), at=None, event_id="2#garbage")
    assert decode_transfer({"type": "ticket_transferred", "ticket": {"label": 5}}) is None
    assert decode_event({"type": "ticket_finished", "ticket": {"label": "A1"}}) is None
    assert decode_event(["not", "an", "event"]) is None
    assert isinstance(decode_event(called()), TicketCalled)


def test_the_mirror_decodes_each_applied_event_once_for_the_screens() -> None:
    mirror = StateMirror()
    mirror.load({"epoch": "e1", "seq": 1, "state": {"now": AT}})
    msg = {"type": "event", "epoch": "e1", "seq": 2, "event": called()}
    assert mirror.apply(msg) == "applied"
    assert msg["payload"] == decode_call(called())
    stale = {"type": "event", "epoch": "e1", "seq": 2, "event": called()}
    assert mirror.apply(stale) == "old" and "payload" not in stale


TICKET = {"id": 17, "label": "A012", "business_day": "2026-11-24", "service": "passport", "queue_service": "fee",
          "service_name_zh": "统一收费", "service_name_en": "Fees", "priority": None, "status": "called",
          "issued_at": "2026-11-24T01:02:03Z", "entered_at": "2026-11-24T01:30:00Z",
          "called_at": "2026-11-24T01:40:00Z", "calls": 2, "counter": 11, "target_counter": None, "note": "",
          "queued_at": "2026-11-24T01:02:03Z", "promised_days": 15, "promised_date": "2026-12-15"}


def test_a_ticket_record_decodes_once_to_its_typed_ticket() -> None:
    from datetime import date

    from queuehall.payloads import Ticket, decode_ticket

    t = decode_ticket(TICKET)
    assert t == Ticket(id=17, label="A012", status="called", business_day="2026-11-24", service="passport",
                       queue_service="fee", service_name=Bi("统一收费", "Fees"), priority=None,
                       issued_at=datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC),
                       entered_at=datetime(2026, 11, 24, 1, 30, tzinfo=UTC),
                       called_at=datetime(2026, 11, 24, 1, 40, tzinfo=UTC),
                       queued_at=datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC), calls=2, counter=11,
                       target_counter=None, note="", promised_days=15, promised_date=date(2026, 12, 15))
    assert t is not None and t.record is TICKET and t.queue_order == (t.queued_at, 17)
    remote = decode_ticket({**TICKET, "channel": "remote", "arrive_by": "2026-11-24T03:00:00Z", "checked_in": True,
                            "appointment": True, "slot": "2026-11-24T10:00", "priority": "elderly"})
    assert remote is not None and (remote.channel, remote.arrive_by, remote.checked_in, remote.appointment,
                                   remote.slot, remote.priority) == (
        "remote", datetime(2026, 11, 24, 3, tzinfo=UTC), True, True, "2026-11-24T10:00", "elderly")


def test_a_ticket_field_of_the_wrong_type_reads_as_empty_and_no_label_is_no_ticket() -> None:
    from queuehall.payloads import decode_ticket

    odd = decode_ticket({"label": "B1", "id": True, "calls": "3", "counter": 2.0, "target_counter": False,
                         "issued_at": "soon", "promised_days": None, "promised_date": "15 Dec", "note": 7,
                         "checked_in": "yes", "priority": "", "service_name_zh": None})
    assert odd is not None
    assert (odd.id, odd.calls, odd.counter, odd.target_counter, odd.issued_at, odd.promised_days,
            odd.promised_date, odd.note, odd.checked_in, odd.priority, odd.service_name, odd.status) == (
        None, 0, None, None, None, None, None, "", False, None, Bi("", ""), "")
    for bad in (None, "A012", ["A012"], {"id": 3}, {"label": ""}, {"label": 12}):
        assert decode_ticket(bad) is None, bad
