"""The hall engine's rules, command by command (docs/calling-rules.md is the prose version).

Every test drives a real :class:`Hall` (no journal) with a :class:`ManualClock` and checks
both the reply and the state afterwards. Every refusal goes through :func:`refused`,
which also proves the refused command changed nothing and emitted no event.
"""

from __future__ import annotations

import copy
import random
import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from queuehall.broker.config import Calling, HallConfig
from queuehall.broker.engine import COMMANDS, Hall
from queuehall.broker.model import Event

from queuehall.clock import ManualClock
from queuehall.errors import CATALOGUE, HallError
from tests.hall_factory import TUESDAY, local, memory_pins, small_config

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------- helpers


class Bench:
    """A hall on a Tuesday at 09:00 with a recorder for every event it emits."""

    def __init__(self, config: HallConfig | None = None, start: tuple[int, int] = (9, 0)) -> None:
        self.clock = ManualClock(local(TUESDAY, *start))
        cfg = config or small_config()
        self.hall = Hall(cfg, self.clock, pins=memory_pins(cfg))
        self.events: list[Event] = []
        self.hall.listeners.append(self.events.append)

    def do(self, command: str, **args: Any) -> dict[str, Any]:
        """Run a command that must be accepted."""
        return self.hall.execute(command, args)

    def take(self, service: str, priority: str | None = None, client: str | None = None) -> str:
        """Issue a ticket; returns its label."""
        args: dict[str, Any] = {"service": service}
        if priority:
            args["priority"] = priority
        return self.hall.execute("take_ticket", args, client=client)["ticket"]["label"]

    def open(self, counter: int, clerk: str | None = None) -> str:
        """Sign the counter's A post in; returns the session."""
        clerk = clerk or self.hall.counter_config[counter].clerk_a
        return self.do("sign_in", counter=counter, clerk=clerk, pin="1234")["session"]

    def call(self, counter: int) -> str:
        return self.do("call_next", counter=counter)["ticket"]["label"]

    def serve(self, counter: int, minutes: float = 0) -> str:
        """Call, start and finish the next ticket at ``counter``; returns its label."""
        label = self.call(counter)
        self.do("start", counter=counter)
        self.clock.advance(minutes=minutes)
        self.do("finish", counter=counter)
        return label

    def ticket(self, label: str) -> Any:
        return self.hall.find_ticket(label)

    def types(self) -> list[str]:
        return [e.type for e in self.events]


def _internals(hall: Hall) -> tuple[Any, ...]:
    return copy.deepcopy((hall.tickets, hall.visits, hall.counters, hall.state, hall.numbers,
                          hall.requests, hall.last_ticket_id, hall.last_visit_id, hall.last_event_seq,
                          list(hall.recent_calls)))


def refused(hall: Hall, code: str, command: str, args: dict[str, Any] | None = None,
            **kw: Any) -> HallError:
    """Run a command that must be refused with ``code``, and prove it changed nothing.

    Checks the snapshot, the engine's records, that no listener heard an event, and
    that both messages are complete (no unfilled placeholder).
    """
    before, inner = hall.snapshot(), _internals(hall)
    heard: list[Event] = []
    hall.listeners.append(heard.append)
    try:
        with pytest.raises(HallError) as info:
            hall.execute(command, args, **kw)
    finally:
        hall.listeners.remove(heard.append)
    err = info.value
    assert err.code == code, err
    assert heard == []
    assert hall.snapshot() == before
    assert _internals(hall) == inner
    assert err.message_zh and err.message_en and "?" not in err.message_zh + err.message_en, err.to_dict()
    return err


def calling(**kw: Any) -> Calling:
    return replace(small_config().calling, **kw)


def with_counter(cfg: HallConfig, number: int, **kw: Any) -> HallConfig:
    return replace(cfg, counters=tuple(replace(c, **kw) if c.number == number else c for c in cfg.counters))


# ---------------------------------------------------------------------------------------------- lifecycle


def test_issue_call_recall_serve_finish_and_every_event() -> None:
    b = Bench()
    reply = b.hall.execute("take_ticket", {"service": "P"}, client="kiosk-1")
    assert reply["ticket"]["label"] == "A001" and reply["ticket"]["status"] == "waiting"
    assert reply["ahead"] == 0 and reply["estimated_wait_minutes"] == 0
    assert [t.label for t in b.hall.queue("P")] == ["A001"]
    b.open(1)
    b.clock.advance(minutes=2)
    called = b.do("call_next", counter=1)
    assert called["counter"] == 1
    assert called["ticket"]["status"] == "called" and called["ticket"]["calls"] == 1
    assert b.hall.counters[1].ticket_id == b.ticket("A001").id and b.hall.queue("P") == []
    b.clock.advance(minutes=1)
    again = b.do("recall", counter=1)
    assert again["no_show"] is False and again["ticket"]["calls"] == 2 and b.ticket("A001").recalls == 1
    b.do("start", counter=1)
    assert b.ticket("A001").status == "serving"
    b.clock.advance(minutes=4)
    done = b.do("finish", counter=1)
    assert done["ticket"]["status"] == "finished"
    assert b.hall.counters[1].ticket_id is None
    assert b.hall.tickets == {}  # finished tickets leave memory (the journal keeps them)
    assert b.types() == ["ticket_issued", "counter_signed_in", "ticket_called", "ticket_called",
                         "ticket_serving", "ticket_finished"]
    assert [e.seq for e in b.events] == list(range(1, 7))
    issued, signed, first, recall, serving, finished = b.events
    assert issued.at == local(TUESDAY, 9) and issued.service == "P" and issued.counter is None
    assert signed.counter == 1 and signed.clerk == "c1a" and signed.data["post"] == "A"
    for ev, minute, kind in ((first, 2, "call"), (recall, 3, "recall")):
        assert (ev.at, ev.counter, ev.clerk, ev.service) == (local(TUESDAY, 9, minute), 1, "c1a", "P")
        assert ev.data["kind"] == kind and "reason" not in ev.data
    assert serving.at == local(TUESDAY, 9, 3) and finished.at == local(TUESDAY, 9, 7)
    assert finished.clerk == "c1a" and finished.data["ticket"]["status"] == "finished"
    assert [e.data["ticket"]["label"] for e in b.events if e.ticket_id] == ["A001"] * 5


def test_cancel_waiting_and_called_tickets_with_a_reason() -> None:
    b = Bench()
    b.take("P"), b.take("P"), b.take("P")
    b.open(1)
    refused(b.hall, "REASON_REQUIRED", "cancel_ticket", {"ticket": "A002", "reason": "  "})
    out = b.do("cancel_ticket", ticket="A002", reason="citizen left")
    assert out["ticket"]["status"] == "cancelled" and "A002" not in [t.label for t in b.hall.queue("P")]
    assert b.events[-1].type == "ticket_cancelled" and b.events[-1].data["reason"] == "citizen left"
    assert b.call(1) == "A001"
    b.do("cancel_ticket", ticket="A001", reason="left the counter")
    assert b.hall.counters[1].ticket_id is None  # a cancelled call frees the counter
    assert b.call(1) == "A003"  # the cancelled A002 is never called
    b.do("start", counter=1)
    refused(b.hall, "CANNOT_CANCEL", "cancel_ticket", {"ticket": "A003", "reason": "x"})


def test_void_only_by_the_issuing_kiosk_and_numbers_are_not_reused() -> None:
    b = Bench()
    b.take("P", client="kiosk-1")
    b.take("P", client="kiosk-1")
    err = refused(b.hall, "FORBIDDEN", "void_ticket", {"ticket": "A001", "reason": "paper jam"},
                  client="kiosk-2")
    assert "issuing kiosk" in err.message_en
    out = b.hall.execute("void_ticket", {"ticket": "A001", "reason": "paper jam"}, client="kiosk-1")
    assert out["ticket"]["status"] == "voided" and b.events[-1].data["reason"] == "paper jam"
    assert b.take("P", client="kiosk-1") == "A003"
    b.open(1)
    assert b.call(1) == "A002"
    refused(b.hall, "NOT_WAITING", "void_ticket", {"ticket": "A002", "reason": "x"}, client="kiosk-1")


def test_transfer_to_fee_window_and_back_keeps_number_and_place() -> None:
    b = Bench()
    assert b.take("H") == "B001"  # 09:00
    b.clock.advance(minutes=5)
    assert b.take("FEE") == "F001"  # 09:05: paid earlier in the day's order, but issued later than B001
    b.clock.advance(minutes=5)
    assert b.take("H") == "B002"  # 09:10
    b.open(1), b.open(9)
    assert b.call(1) == "B001"
    b.do("start", counter=1)
    b.clock.advance(minutes=10)
    refused(b.hall, "SAME_QUEUE", "transfer", {"counter": 1, "service": "H"})
    out = b.do("transfer", counter=1, service="FEE", note="请缴费")
    t = b.ticket("B001")
    assert out["ticket"]["label"] == "B001"
    assert (t.status, t.queue_service, t.service) == ("waiting", "FEE", "H")
    assert t.queue_key == local(TUESDAY, 9) and b.hall.counters[1].ticket_id is None
    ev = b.events[-1]
    assert ev.type == "ticket_transferred" and (ev.counter, ev.clerk, ev.service) == (1, "c1a", "FEE")
    assert (ev.data["from_service"], ev.data["to_service"], ev.data["note"]) == ("H", "FEE", "请缴费")
    assert [x.label for x in b.hall.queue("FEE")] == ["B001", "F001"]  # its 09:00 issue time is its place
    assert b.call(9) == "B001"
    assert b.do("start", counter=9)["ticket"]["note"] == "请缴费"
    back = b.do("transfer", counter=9, to_counter=1)
    assert back["ticket"]["queue_service"] == "H" and back["ticket"]["target_counter"] == 1
    b.open(2)
    refused(b.hall, "NOT_SERVED_HERE", "call_ticket", {"counter": 2, "ticket": "B001", "reason": "x"})
    assert b.call(2) == "B002"  # counter 2 also serves H, but B001 is addressed to counter 1
    refused(b.hall, "NOT_SERVING", "finish", {"counter": 9})  # the transfer freed the fee window
    b.take("H")  # B003, issued after B001
    assert b.call(1) == "B001"
    b.do("start", counter=1)
    b.do("finish", counter=1)
    assert b.call(9) == "F001"
    assert [e.data["ticket"]["label"] for e in b.events if e.type == "ticket_transferred"] == ["B001", "B001"]


def test_transfer_to_a_counter_of_the_same_service_and_refusals() -> None:
    b = Bench()
    b.take("H"), b.take("P")
    b.open(2)
    assert b.call(2) == "B001"
    refused(b.hall, "BAD_REQUEST", "transfer", {"counter": 2})
    refused(b.hall, "UNKNOWN_COUNTER", "transfer", {"counter": 2, "to_counter": 5})
    refused(b.hall, "COUNTER_CLOSED", "transfer", {"counter": 2, "to_counter": 1})
    refused(b.hall, "UNKNOWN_SERVICE", "transfer", {"counter": 2, "service": "ZZ"})
    refused(b.hall, "SERVICE_CLOSED", "transfer", {"counter": 2, "service": "FEE"})
    b.open(1)
    b.do("transfer", counter=2, to_counter=1, note="需主管审核")
    t = b.ticket("B001")
    assert (t.queue_service, t.target_counter, t.status) == ("H", 1, "waiting")
    refused(b.hall, "NOTHING_CALLED", "transfer", {"counter": 2, "service": "P"})
    # Counter 1 serves P before H, but the addressed ticket waits in H: P's A001 comes first.
    assert b.call(1) == "A001"


# ---------------------------------------------------------------------------------------------- numbering


def test_numbering_per_service_zero_padded_and_never_duplicated() -> None:
    b = Bench()
    labels = [b.take(s) for s in ("P", "H", "P", "FEE", "P", "H")]
    assert labels == ["A001", "B001", "A002", "F001", "A003", "B002"]
    labels += [b.take("P") for _ in range(120)]
    assert len(set(labels)) == len(labels) and labels[-1] == "A123"
    assert b.hall.numbers[(TUESDAY, "P")] == 123


def test_number_width_is_configurable() -> None:
    b = Bench(replace(small_config(), number_width=5))
    assert b.take("P") == "A00001"
    assert b.take("FEE") == "F00001"


def test_numbering_restarts_each_business_day() -> None:
    b = Bench(start=(16, 0))
    assert [b.take("P"), b.take("P")] == ["A001", "A002"]
    b.open(1)
    assert b.call(1) == "A001"
    b.clock.set(local(TUESDAY + timedelta(days=1), 8, 30))
    out = b.hall.execute("take_ticket", {"service": "P"})
    assert out["ticket"]["label"] == "A001" and out["ticket"]["business_day"] == "2026-11-25"
    # Yesterday closed before the first command of today: its A002 no longer waits beside today's A001.
    assert out["ahead"] == 0
    assert b.ticket("A001").business_day == TUESDAY + timedelta(days=1)
    assert [t.label for t in b.hall.queue("P")] == ["A001"]
    assert b.hall.numbers[(TUESDAY, "P")] == 2 and b.hall.numbers[(TUESDAY + timedelta(days=1), "P")] == 1


# ---------------------------------------------------------------------------------------------- calling rules


def test_fifo_within_a_service_and_class() -> None:
    b = Bench()
    for _ in range(4):
        b.take("H")
        b.clock.advance(seconds=30)
    b.open(2)
    assert [b.serve(2) for _ in range(4)] == ["B001", "B002", "B003", "B004"]
    refused(b.hall, "QUEUE_EMPTY", "call_next", {"counter": 2})


def test_counter_calls_its_services_in_configured_order() -> None:
    b = Bench()
    b.take("H")
    b.clock.advance(minutes=1)
    b.take("P")
    b.open(1)
    assert [b.serve(1), b.serve(1)] == ["A001", "B001"]  # counter 1 lists P before H
    flipped = Bench(with_counter(small_config(), 1, services=("H", "P")))
    flipped.take("P")
    flipped.clock.advance(minutes=1)
    flipped.take("H")
    flipped.open(1)
    assert [flipped.serve(1), flipped.serve(1)] == ["B001", "A001"]


def test_weights_use_smooth_weighted_round_robin() -> None:
    b = Bench(with_counter(small_config(), 1, weights={"P": 2, "H": 1}))
    for _ in range(8):
        b.take("P")
        b.take("H")
    b.open(1)
    seq = [b.serve(1)[0] for _ in range(9)]
    assert "".join(seq) == "ABAABAABA"  # P,H,P repeating: P gets 2 of every 3 calls, never 3 in a row
    assert b.hall.state["wrr"]["1"] == {"P": 0, "H": 0}  # one full cycle later the credits are even again
    # When one service runs dry the other is called without waiting for its turn.
    rest = [b.serve(1) for _ in range(7)]
    assert rest == ["A007", "B004", "A008", "B005", "B006", "B007", "B008"]


def test_priority_interleave_lets_a_normal_ticket_through_after_the_streak() -> None:
    b = Bench()  # priority_streak = 2
    b.take("P"), b.take("P")
    for _ in range(4):
        b.take("P", priority="elderly")
    b.open(1)
    assert [b.serve(1) for _ in range(6)] == ["A003", "A004", "A001", "A005", "A006", "A002"]
    assert b.hall.state["streak"]["P"] == 0


def test_priority_streak_counts_only_while_a_normal_ticket_waits() -> None:
    b = Bench(small_config(calling=calling(priority_streak=1)))
    for _ in range(3):
        b.take("P", priority="elderly")
    b.open(1)
    assert [b.serve(1) for _ in range(2)] == ["A001", "A002"]  # nobody normal waits: no streak builds up
    b.take("P")  # A004, normal
    assert b.serve(1) == "A003"  # first priority call while a normal one waits
    b.take("P", priority="elderly")  # A005
    assert [b.serve(1), b.serve(1)] == ["A004", "A005"]


def test_over_wait_rule_calls_the_longest_waiting_ticket_first() -> None:
    b = Bench(small_config(calling=calling(over_wait_minutes=10)))
    b.take("H")  # B001 09:00
    b.clock.advance(minutes=5)
    b.take("P")  # A001 09:05
    b.take("P", priority="elderly")  # A002 09:05
    b.open(1)
    b.clock.advance(minutes=5)  # 09:10: B001 has waited exactly 10 minutes, not longer
    assert b.serve(1) == "A002"
    b.clock.set(local(TUESDAY, 9, 10) + timedelta(seconds=1))
    assert b.serve(1) == "B001"  # over the limit: ahead of the service order and the priority class
    assert b.serve(1) == "A001"


def test_over_wait_counts_from_entering_the_current_queue() -> None:
    b = Bench(small_config(calling=calling(over_wait_minutes=10)))
    b.take("H")  # B001 09:00
    b.clock.advance(minutes=1)
    b.take("H")  # B002 09:01
    b.open(2), b.open(1)
    assert b.call(2) == "B001"
    b.clock.advance(minutes=7)
    b.do("transfer", counter=2, service="P")  # B001 enters P at 09:08, keeping its 09:00 place
    b.clock.advance(minutes=4)
    # 09:12: B002 has waited 11 min (over); B001 12 min since issue but only 4 in its queue (not over).
    # Without the over-wait rule counter 1 would take P (B001) before H.
    assert b.call(1) == "B002"
    refused(b.hall, "QUEUE_EMPTY", "call_next", {"counter": 2})  # B001 now waits in P, which 2 does not serve
    b.do("start", counter=1), b.do("finish", counter=1)
    assert b.call(1) == "B001"


def test_call_a_specific_ticket_needs_a_reason_and_is_audited() -> None:
    b = Bench()
    b.take("P"), b.take("P"), b.take("H")
    b.open(1, clerk="c1b")
    refused(b.hall, "REASON_REQUIRED", "call_ticket", {"counter": 1, "ticket": "A002", "reason": " "})
    refused(b.hall, "BAD_REQUEST", "call_ticket", {"counter": 1, "ticket": "A002"})
    refused(b.hall, "UNKNOWN_TICKET", "call_ticket", {"counter": 1, "ticket": "A999", "reason": "x"})
    b.open(2)
    refused(b.hall, "NOT_SERVED_HERE", "call_ticket", {"counter": 2, "ticket": "A002", "reason": "x"})
    b.clock.advance(minutes=3)
    out = b.do("call_ticket", counter=1, ticket="a002", reason=" 预约号 appointment ")
    assert out["ticket"]["label"] == "A002" and out["ticket"]["status"] == "called"
    ev = b.events[-1]
    assert ev.type == "ticket_called" and ev.data["kind"] == "call" and ev.data["reason"] == "预约号 appointment"
    assert (ev.at, ev.counter, ev.clerk, ev.service) == (local(TUESDAY, 9, 3), 1, "c1b", "P")
    assert b.hall.visits[b.ticket("A002").visit_id].out_of_order == "预约号 appointment"
    refused(b.hall, "COUNTER_BUSY", "call_ticket", {"counter": 1, "ticket": "A001", "reason": "x"})
    refused(b.hall, "NOT_WAITING", "call_ticket", {"counter": 2, "ticket": "A002", "reason": "x"})
    b.do("start", counter=1), b.do("finish", counter=1)
    assert b.call(1) == "A001"  # the queue order is otherwise untouched


def test_recent_calls_keep_the_displays_history() -> None:
    b = Bench()
    b.take("P"), b.take("P")
    b.open(1)
    b.serve(1)
    b.call(1)
    b.do("recall", counter=1)
    calls = b.hall.snapshot()["recent_calls"]
    assert [(c["ticket"]["label"], c["kind"], c["counter"]) for c in calls] == [
        ("A001", "call", 1), ("A002", "call", 1), ("A002", "recall", 1)]


# ---------------------------------------------------------------------------------------------- no-show


def test_recall_limit_turns_the_next_recall_into_a_no_show() -> None:
    b = Bench()  # max_recalls = 2
    b.take("P"), b.take("P")
    b.open(1)
    b.call(1)
    assert [b.do("recall", counter=1)["no_show"] for _ in range(2)] == [False, False]
    out = b.do("recall", counter=1)
    assert out["no_show"] is True and out["ticket"]["status"] == "no_show"
    t = b.ticket("A001")
    assert t.status == "no_show" and t.counter == 1 and b.hall.counters[1].ticket_id is None
    assert b.events[-1].type == "ticket_no_show" and b.events[-1].data["reason"] == "recall_limit"
    assert [x["label"] for x in b.hall.snapshot()["no_shows"]] == ["A001"]
    refused(b.hall, "NOTHING_CALLED", "recall", {"counter": 1})
    assert b.call(1) == "A002"


def test_no_recalls_allowed_when_max_recalls_is_zero() -> None:
    b = Bench(small_config(calling=calling(max_recalls=0)))
    b.take("P")
    b.open(1)
    b.call(1)
    assert b.do("recall", counter=1)["no_show"] is True


@pytest.mark.parametrize(("position", "order"), [("back", ["A002", "A003", "A001"]),
                                                 ("front", ["A001", "A002", "A003"])])
def test_reinstate_within_grace_front_or_back(position: str, order: list[str]) -> None:
    b = Bench(small_config(calling=calling(noshow_reinstate=position)))
    for _ in range(3):
        b.take("P")
        b.clock.advance(minutes=1)
    b.open(1)
    b.call(1)
    out = b.do("no_show", counter=1)
    assert out["ticket"]["status"] == "no_show" and b.events[-1].data["reason"] == "clerk"
    refused(b.hall, "NOT_NO_SHOW", "reinstate", {"ticket": "A002"})
    refused(b.hall, "UNKNOWN_COUNTER", "reinstate", {"ticket": "A001", "counter": 42})
    b.clock.advance(minutes=30)  # exactly the grace period: still allowed
    back = b.do("reinstate", ticket="A001", counter=1)
    assert back["ticket"]["status"] == "waiting" and back["ticket"]["calls"] == 0
    assert back["ticket"]["entered_at"] == "2026-11-24T01:33:00Z"
    ev = b.events[-1]
    assert ev.type == "ticket_reinstated" and ev.data["position"] == position
    assert (ev.at, ev.counter, ev.clerk, ev.service) == (local(TUESDAY, 9, 33), 1, "c1a", "P")
    assert [t.label for t in b.hall.queue("P")] == order
    assert [b.serve(1) for _ in range(3)] == order


def test_reinstate_after_grace_is_refused() -> None:
    b = Bench()
    b.take("P")
    b.open(1)
    b.call(1)
    b.do("no_show", counter=1)
    b.clock.advance(minutes=30, seconds=1)
    err = refused(b.hall, "GRACE_EXPIRED", "reinstate", {"ticket": "A001"})
    assert err.details["minutes"] == 30
    b.do("cancel_ticket", ticket="A001", reason="gone")  # a no-show may still be closed
    assert b.hall.snapshot()["no_shows"] == []


def test_no_show_needs_a_called_ticket() -> None:
    b = Bench()
    b.take("P")
    b.open(1)
    refused(b.hall, "NOTHING_CALLED", "no_show", {"counter": 1})
    b.call(1)
    b.do("start", counter=1)
    refused(b.hall, "NOTHING_CALLED", "no_show", {"counter": 1})  # the citizen came: no no-show now
    refused(b.hall, "NOTHING_CALLED", "recall", {"counter": 1})


# ---------------------------------------------------------------------------------------------- opening hours


def test_issuing_refusals_carry_next_open_in_local_time() -> None:
    b = Bench(small_config(services=tuple(replace(s, daily_cap=2) if s.code == "H" else s
                                          for s in small_config().services)), start=(8, 0))
    err = refused(b.hall, "HALL_CLOSED", "take_ticket", {"service": "P"})
    assert err.details["next_open"] == "2026-11-24 08:30" and "08:30" in err.message_zh
    b.clock.set(local(TUESDAY, 8, 30))
    b.take("H"), b.take("H")
    err = refused(b.hall, "DAILY_CAP_REACHED", "take_ticket", {"service": "H"})
    assert err.details["next_open"] == "2026-11-25 08:30"
    assert b.take("P") == "A001"  # the cap is per service
    b.clock.set(local(TUESDAY, 12))
    err = refused(b.hall, "HALL_BREAK", "take_ticket", {"service": "P"})
    assert err.details["next_open"] == "2026-11-24 13:30"
    b.clock.set(local(TUESDAY, 16, 30))
    err = refused(b.hall, "PAST_CUTOFF", "take_ticket", {"service": "P"})
    assert err.details["next_open"] == "2026-11-25 08:30"
    b.clock.set(local(TUESDAY, 17, 0))
    err = refused(b.hall, "HALL_CLOSED", "take_ticket", {"service": "P"})
    assert err.details["next_open"] == "2026-11-25 08:30"


def test_tickets_issued_before_closing_are_called_after_closing() -> None:
    b = Bench(start=(16, 29))
    b.take("P")
    b.clock.set(local(TUESDAY, 17, 45))  # closed at 17:00; the business day closes at 18:00
    b.open(1)
    assert b.serve(1, minutes=5) == "A001"
    assert b.events[-1].at == local(TUESDAY, 17, 50)


# ---------------------------------------------------------------------------------------------- counters


def test_sign_in_a_and_b_posts() -> None:
    b = Bench()
    out = b.do("sign_in", counter=1, clerk="c1b", pin="1234")  # A is absent: B covers
    assert out["counter"]["post"] == "B" and out["counter"]["state"] == "open" and len(out["session"]) == 16
    assert b.hall.counters[1].clerk == "c1b"
    with pytest.raises(HallError) as info:  # refused, but counted (tests/test_pins.py: the lock)
        b.hall.execute("sign_in", {"counter": 2, "clerk": "c2a", "pin": "9999"})
    assert info.value.code == "BAD_PIN" and b.events[-1].type == "sign_in_refused"
    assert b.hall.counters[2].state == "closed"
    refused(b.hall, "BAD_PIN", "sign_in", {"counter": 2, "clerk": "nobody", "pin": "1234"})
    refused(b.hall, "CLERK_NOT_ASSIGNED", "sign_in", {"counter": 2, "clerk": "c1a", "pin": "1234"})
    refused(b.hall, "COUNTER_OCCUPIED", "sign_in", {"counter": 1, "clerk": "c1a", "pin": "1234"})
    refused(b.hall, "UNKNOWN_COUNTER", "sign_in", {"counter": 7, "clerk": "c1a", "pin": "1234"})
    b.do("sign_out", counter=1)
    assert b.hall.counters[1].state == "closed" and b.events[-1].clerk == "c1b"
    refused(b.hall, "BAD_REQUEST", "sign_in", {"counter": 1, "clerk": "c1a", "pin": 1234})  # a PIN is a string
    assert b.do("sign_in", counter=1, clerk="c1a", pin="1234")["counter"]["post"] == "A"


def test_clerk_signed_in_elsewhere_is_refused() -> None:
    cfg = with_counter(small_config(), 2, clerk_b="c1a")
    b = Bench(cfg)
    b.open(1)
    err = refused(b.hall, "CLERK_ELSEWHERE", "sign_in", {"counter": 2, "clerk": "c1a", "pin": "1234"})
    assert err.details["counter"] == 1
    b.do("sign_out", counter=1)
    assert b.do("sign_in", counter=2, clerk="c1a", pin="1234")["counter"]["post"] == "B"


def test_takeover_ends_the_old_session_and_keeps_the_ticket() -> None:
    b = Bench()
    b.take("P"), b.take("P")
    old = b.open(1)
    b.do("call_next", counter=1, session=old)
    out = b.do("sign_in", counter=1, clerk="c1b", pin="1234", takeover=True)
    new = out["session"]
    assert new != old and out["counter"]["post"] == "B" and out["counter"]["ticket_id"] == b.ticket("A001").id
    assert b.events[-1].data["takeover"] is True
    for command in ("start", "recall", "no_show", "finish", "sign_out", "call_next"):
        refused(b.hall, "SESSION_ENDED", command, {"counter": 1, "session": old})
    refused(b.hall, "SESSION_ENDED", "pause", {"counter": 1, "reason": "break", "session": old})
    b.do("start", counter=1, session=new)
    assert b.do("finish", counter=1, session=new)["ticket"]["label"] == "A001"
    assert b.events[-1].clerk == "c1b"
    refused(b.hall, "BAD_REQUEST", "sign_in",
            {"counter": 1, "clerk": "c1a", "pin": "1234", "takeover": "yes"})


def test_pause_with_a_configured_reason_and_resume() -> None:
    b = Bench()
    b.take("P"), b.take("P")
    refused(b.hall, "COUNTER_CLOSED", "pause", {"counter": 1, "reason": "break"})
    refused(b.hall, "COUNTER_CLOSED", "call_next", {"counter": 1})
    refused(b.hall, "COUNTER_CLOSED", "resume", {"counter": 1})
    refused(b.hall, "COUNTER_CLOSED", "sign_out", {"counter": 1})
    b.open(1)
    refused(b.hall, "COUNTER_NOT_PAUSED", "resume", {"counter": 1})
    refused(b.hall, "UNKNOWN_PAUSE_REASON", "pause", {"counter": 1, "reason": "lunch"})
    b.call(1)
    refused(b.hall, "COUNTER_BUSY", "pause", {"counter": 1, "reason": "break"})
    refused(b.hall, "COUNTER_BUSY", "sign_out", {"counter": 1})
    b.do("start", counter=1), b.do("finish", counter=1)
    b.clock.advance(minutes=1)
    out = b.do("pause", counter=1, reason="supervisor")
    assert out["counter"]["state"] == "paused" and out["counter"]["pause_reason"] == "supervisor"
    ev = b.events[-1]
    assert (ev.type, ev.counter, ev.clerk, ev.data["reason"]) == ("counter_paused", 1, "c1a", "supervisor")
    refused(b.hall, "COUNTER_PAUSED", "call_next", {"counter": 1})
    refused(b.hall, "COUNTER_PAUSED", "call_ticket", {"counter": 1, "ticket": "A002", "reason": "x"})
    b.clock.advance(minutes=9)
    out = b.do("resume", counter=1)
    assert out["counter"]["state"] == "open" and out["counter"]["pause_reason"] is None
    assert b.events[-1].data["reason"] == "supervisor" and b.events[-1].at == local(TUESDAY, 9, 10)
    assert b.call(1) == "A002"


def test_counter_refusals_while_calling_and_serving() -> None:
    b = Bench()
    b.take("P"), b.take("P")
    b.open(1)
    refused(b.hall, "NOTHING_CALLED", "start", {"counter": 1})
    refused(b.hall, "NOT_SERVING", "finish", {"counter": 1})
    b.call(1)
    refused(b.hall, "NOT_SERVING", "finish", {"counter": 1})
    refused(b.hall, "COUNTER_BUSY", "call_next", {"counter": 1})
    b.do("start", counter=1)
    refused(b.hall, "ALREADY_SERVING", "start", {"counter": 1})
    refused(b.hall, "COUNTER_BUSY", "call_next", {"counter": 1})
    refused(b.hall, "COUNTER_CLOSED", "finish", {"counter": 2})


def test_unknown_objects_and_malformed_arguments() -> None:
    b = Bench()
    b.open(1)
    refused(b.hall, "UNKNOWN_SERVICE", "take_ticket", {"service": "ZZ"})
    refused(b.hall, "UNKNOWN_PRIORITY", "take_ticket", {"service": "P", "priority": "vip"})
    err = refused(b.hall, "PRIORITY_NOT_ALLOWED", "take_ticket", {"service": "FEE", "priority": "elderly"})
    assert err.details == {"service": "FEE", "priority": "elderly"}
    refused(b.hall, "UNKNOWN_COUNTER", "call_next", {"counter": 42})
    refused(b.hall, "UNKNOWN_TICKET", "reinstate", {"ticket": "Z001"})
    refused(b.hall, "UNKNOWN_TICKET", "cancel_ticket", {"ticket": "17", "reason": "x"})
    refused(b.hall, "UNKNOWN_COMMAND", "issue_ticket", {"service": "P"})
    refused(b.hall, "BAD_REQUEST", "take_ticket", {})
    refused(b.hall, "BAD_REQUEST", "take_ticket", {"service": 3.5})
    refused(b.hall, "BAD_REQUEST", "take_ticket", {"service": "P" * 501})
    refused(b.hall, "BAD_REQUEST", "call_next", {"counter": "one"})
    refused(b.hall, "BAD_REQUEST", "call_next", {"counter": True})
    refused(b.hall, "BAD_REQUEST", "call_next", {"counter": "²"})
    refused(b.hall, "BAD_REQUEST", "call_next", ["counter", 1])  # type: ignore[arg-type]
    refused(b.hall, "UNKNOWN_TICKET", "reinstate", {"ticket": "²"})
    refused(b.hall, "BAD_REQUEST", ["call_next"], {"counter": 1})  # type: ignore[arg-type]
    # A number is never a string of digits; a ticket is its id (a number) or its label (a string).
    b.take("P")
    refused(b.hall, "BAD_REQUEST", "call_next", {"counter": " 1 "})
    assert b.hall.execute("call_next", {"counter": 1})["ticket"]["label"] == "A001"
    assert b.hall.execute("cancel_ticket", {"ticket": 1, "reason": "x"})["ticket"]["status"] == "cancelled"


# ---------------------------------------------------------------------------------------------- estimate


def test_estimated_wait_follows_people_counters_and_history() -> None:
    b = Bench()  # H: 5 min average; counter 2 serves only H, counter 1 shares P and H
    waits = [b.hall.execute("take_ticket", {"service": "H"})["estimated_wait_minutes"] for _ in range(4)]
    assert waits == [0, 4, 7, 10]  # no counter open yet: all of H's capacity (1.5 counters) assumed
    b.open(2)
    assert b.hall.estimated_wait_minutes("H", 3) == 15  # one counter for H
    b.open(1)
    assert b.hall.estimated_wait_minutes("H", 3) == 10  # one and a half counters
    b.do("pause", counter=1, reason="break")
    assert b.hall.estimated_wait_minutes("H", 3) == 10  # a pause is short: capacity stays
    b.do("sign_out", counter=1)
    assert b.hall.estimated_wait_minutes("H", 3) == 15
    b.serve(2, minutes=15)  # called and finished within 15 min: the average moves 20 % towards it
    assert b.hall.state["avg_service_s"]["H"] == pytest.approx(300 + 0.2 * 600)
    assert b.hall.estimated_wait_minutes("H", 3) == 21
    assert b.hall.snapshot()["services"][1]["estimated_wait_minutes"] == 21
    assert b.hall.estimated_wait_minutes("P", 2) == 20  # P: half of counter 1, no history
    assert b.hall.execute("take_ticket", {"service": "H", "priority": "elderly"})["ahead"] == 0


# ---------------------------------------------------------------------------------------------- idempotency


def test_retried_request_returns_the_same_reply_and_issues_once() -> None:
    b = Bench()
    first = b.hall.execute("take_ticket", {"service": "P"}, client="kiosk-1", request_id="r-1")
    b.clock.advance(seconds=5)
    again = b.hall.execute("take_ticket", {"service": "P"}, client="kiosk-1", request_id="r-1")
    assert again == first and again["ticket"]["label"] == "A001"
    assert b.types() == ["ticket_issued"] and b.hall.numbers[(TUESDAY, "P")] == 1
    other = b.hall.execute("take_ticket", {"service": "P"}, client="kiosk-2", request_id="r-1")
    assert other["ticket"]["label"] == "A002"
    # A refused request is not remembered: its retry runs again.
    b.clock.set(local(TUESDAY, 12))
    refused(b.hall, "HALL_BREAK", "take_ticket", {"service": "P"}, client="kiosk-1", request_id="r-2")
    b.clock.set(local(TUESDAY, 13, 30))
    assert b.hall.execute("take_ticket", {"service": "P"}, client="kiosk-1",
                          request_id="r-2")["ticket"]["label"] == "A003"


# ---------------------------------------------------------------------------------------------- invariants


def _random_command(r: random.Random, labels: list[str]) -> tuple[str, dict[str, Any]]:
    counter = r.choice([1, 2, 9])
    ticket = r.choice(labels) if labels and r.random() < 0.9 else r.choice(["A001", "7", "Z9"])
    command = r.choice(["take_ticket"] * 4 + ["call_next"] * 4 + ["start"] * 3 + ["finish"] * 3 + [
        "recall", "no_show", "reinstate", "transfer", "transfer", "cancel_ticket", "void_ticket",
        "call_ticket", "sign_in", "sign_in", "sign_out", "pause", "resume", "advance"])
    args: dict[str, Any] = {"counter": counter}
    if command == "advance":
        args = {"minutes": r.choice([0.5, 1, 5, 20, 45, 200])}
    elif command == "take_ticket":
        args = {"service": r.choice(["P", "H", "FEE"]), "priority": r.choice([None, None, "elderly"])}
    elif command == "reinstate":
        args = {"ticket": ticket}
    elif command in ("cancel_ticket", "void_ticket"):
        args = {"ticket": ticket, "reason": "r"}
    elif command == "call_ticket":
        args.update(ticket=ticket, reason="r")
    elif command == "sign_in":
        args.update(clerk=r.choice(["c1a", "c1b", "c2a", "c2b", "c9a", "c9b"]), pin="1234",
                    takeover=r.random() < 0.3)
    elif command == "pause":
        args.update(reason="break")
    elif command == "transfer":
        if r.random() < 0.6:
            args["service"] = r.choice(["P", "H", "FEE"])
        if r.random() < 0.5:
            args["to_counter"] = r.choice([1, 2, 9])
    return command, {k: v for k, v in args.items() if v is not None}


def _check_consistent(hall: Hall) -> None:
    for n, c in hall.counters.items():
        if c.ticket_id is not None:
            t = hall.tickets[c.ticket_id]
            assert t.status in ("called", "serving") and t.counter == n and c.state != "closed", (c, t)
    for t in hall.tickets.values():
        if t.status in ("called", "serving"):
            assert hall.counters[t.counter].ticket_id == t.id, t  # type: ignore[index]
        if t.status == "waiting":
            assert t.counter is None, t
        assert (hall.visits[t.visit_id].ended_at is None) == (t.status in ("waiting", "called", "serving")), t


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_command_sequences_keep_the_hall_consistent(seed: int) -> None:
    """Whatever the order of commands: refusals change nothing, numbers never repeat, counters agree."""
    r = random.Random(seed)
    cfg = small_config(calling=calling(over_wait_minutes=15, noshow_reinstate="front"))
    b = Bench(with_counter(cfg, 1, weights={"P": 3, "H": 1}), start=(8, 40))
    labels: list[str] = []
    issued: set[tuple[str, str]] = set()
    accepted = 0
    for _ in range(120):
        command, args = _random_command(r, labels)
        if command == "advance":
            b.clock.advance(minutes=args["minutes"])
            continue
        try:
            reply = b.hall.execute(command, args, client=r.choice(["k1", "k2", None]))
        except HallError as err:
            # Replay the refusal through the checking helper: same code, nothing changed.
            refused(b.hall, err.code, command, args, client=None if err.code != "FORBIDDEN" else "zz")
            continue
        accepted += 1
        if command == "take_ticket":
            key = (reply["ticket"]["business_day"], reply["ticket"]["label"])
            assert key not in issued
            issued.add(key)
            labels.append(key[1])
        if command == "call_next":
            t = b.hall.tickets[reply["ticket"]["id"]]
            n = args["counter"]
            assert t.target_counter == n or (
                t.target_counter is None and t.queue_service in b.hall.counter_config[n].services)
        _check_consistent(b.hall)
    assert accepted > 20 and [e.seq for e in b.events] == list(range(1, len(b.events) + 1))


# ---------------------------------------------------------------------------------------------- the document


def _codes_raised_by_engine() -> set[str]:
    src = (ROOT / "broker" / "engine.py").read_text(encoding="utf-8")
    return set(re.findall(r'"([A-Z][A-Z_]+)"', src)) & set(CATALOGUE)


def test_calling_rules_document_lists_every_engine_error_code() -> None:
    doc = (ROOT / "docs" / "calling-rules.md").read_text(encoding="utf-8")
    codes = _codes_raised_by_engine()
    assert {"HALL_CLOSED", "GRACE_EXPIRED", "SESSION_ENDED", "STORAGE"} <= codes
    missing = sorted(c for c in codes if f"`{c}`" not in doc)
    assert missing == []
    for name in COMMANDS:
        assert f"`{name}`" in doc, name


def test_factory_is_the_hall_these_tests_assume() -> None:
    cfg = small_config()
    assert [(c.number, c.services, c.weights) for c in cfg.counters] == [
        (1, ("P", "H"), {}), (2, ("H",), {}), (9, ("FEE",), {})]
    assert cfg.calling == Calling(max_recalls=2, noshow_grace_minutes=30, noshow_reinstate="back",
                                  over_wait_minutes=0, priority_streak=2)
