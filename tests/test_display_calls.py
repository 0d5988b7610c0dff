"""The hall screen's now-calling panel and recent calls, on the display's view-model alone (no Qt).

Issue 15: the display kept "请 A013 号到 1 号窗口" after A013's no-show and sent B002 to window 1
after it was transferred to the fee window; recent calls had no time and listed every recall again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from queuehall.display.model import DisplayModel, DisplayOptions
from queuehall.voice.pack import VoicePack, load_pack
from queuehall.voice.sink import ManualClock, RecordingSink

HALL_NOW = datetime(2026, 11, 24, 1, 14, tzinfo=UTC)  # 09:14 in the hall


@pytest.fixture(scope="module")
def pack() -> VoicePack:
    return load_pack()


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _called(tid: int, label: str, counter: int, seq: int, at: datetime, kind: str = "call") -> dict[str, Any]:
    return {"type": "ticket_called", "kind": kind, "counter": counter, "journal_seq": seq, "at": _iso(at),
            "ticket": {"id": tid, "label": label, "calls": 1, "service_name_zh": "护照",
                       "service_name_en": "Passport", "status": "called"}}


def _ticket(tid: int, label: str, status: str, counter: int | None = None, target: int | None = None,
            service: tuple[str, str] = ("护照", "Passport")) -> dict[str, Any]:
    return {"id": tid, "label": label, "status": status, "counter": counter, "target_counter": target,
            "service_name_zh": service[0], "service_name_en": service[1]}


def _model(pack: VoicePack) -> tuple[DisplayModel, RecordingSink]:
    clock = ManualClock(1_800_000_000.0)
    sink = RecordingSink(clock)
    model = DisplayModel(DisplayOptions(min_display_seconds=0), pack=pack, sink=sink, clock=clock,
                         hall_clock=lambda: HALL_NOW)
    return model, sink


def _state(tickets: dict[int, dict[str, Any]], calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"timezone": "Asia/Shanghai", "recent_calls": calls, "tickets": {str(k): v for k, v in tickets.items()}}


def test_a_no_show_is_no_longer_sent_to_the_counter(pack: VoicePack) -> None:
    model, sink = _model(pack)
    call = _called(13, "A013", 1, 5, HALL_NOW)
    model.handle_state(_state({13: _ticket(13, "A013", "called", 1)}, []))
    model.handle_event({"event": call})
    view = model.hall_view()
    assert view.current is not None and view.current.text_zh == "请 A013 号到 1 号窗口" and view.highlighted
    assert not view.current.settled
    # The clerk marks it a no-show: the broker's state keeps the ticket as a no-show.
    sink.finish_current()
    model.handle_state(_state({13: _ticket(13, "A013", "no_show", None)}, [call]))
    view = model.hall_view()
    assert view.current is not None and view.current.outcome == "no_show"
    assert view.current.text_zh == "A013 号已过号" and view.current.text_en == "A013 missed (no-show)"
    assert (view.current.outcome_zh, view.current.outcome_en) == ("已过号", "No-show")
    assert not view.highlighted, "a settled call never flashes"


def test_a_transfer_to_the_fee_window_says_where_it_went(pack: VoicePack) -> None:
    model, sink = _model(pack)
    call = _called(2, "B002", 1, 5, HALL_NOW)
    model.handle_state(_state({2: _ticket(2, "B002", "called", 1)}, []))
    model.handle_event({"event": call})
    sink.finish_current()
    model.handle_state(_state({2: _ticket(2, "B002", "waiting", service=("统一收费", "Fee payment"))}, [call]))
    current = model.hall_view().current
    assert current is not None and current.outcome == "moved"
    assert current.text_zh == "B002 号已转至 统一收费，请留意叫号"
    assert current.text_en == "B002 → Fee payment: wait to be called"
    # Sent to a counter and called there: the old call says the counter, never window 1.
    model.handle_state(_state({2: _ticket(2, "B002", "called", 11)}, [call]))
    current = model.hall_view().current
    assert current is not None and current.outcome == "moved"
    assert current.text_zh == "B002 号已转至 11 号窗口，请留意叫号"


def test_serving_stands_and_finished_is_marked(pack: VoicePack) -> None:
    model, _ = _model(pack)
    call = _called(7, "A007", 3, 5, HALL_NOW)
    model.handle_event({"event": call})
    model.handle_state(_state({7: _ticket(7, "A007", "serving", 3)}, [call]))
    current = model.hall_view().current
    assert current is not None and not current.settled and current.text_zh == "请 A007 号到 3 号窗口"
    model.handle_state(_state({}, [call]))  # finished: the broker drops it from the state
    current = model.hall_view().current
    assert current is not None and current.outcome == "finished" and current.text_zh == "A007 号已办结"


def test_without_a_ticket_table_nothing_is_marked(pack: VoicePack) -> None:
    model, _ = _model(pack)
    model.handle_state({"timezone": "Asia/Shanghai", "recent_calls": [_called(7, "A007", 3, 5, HALL_NOW)]})
    current = model.hall_view().current
    assert current is not None and not current.settled


def test_recent_calls_show_the_time_and_list_recalls_once(pack: VoicePack) -> None:
    model, sink = _model(pack)
    t = HALL_NOW - timedelta(minutes=20)
    events = [
        _called(1, "A001", 1, 1, t),
        _called(1, "A001", 1, 2, t + timedelta(minutes=1), kind="recall"),
        _called(1, "A001", 1, 3, t + timedelta(minutes=2), kind="recall"),
        _called(2, "A002", 2, 4, t + timedelta(minutes=3)),
        _called(3, "A003", 1, 5, t + timedelta(minutes=4)),
        _called(3, "A003", 1, 6, t + timedelta(minutes=5), kind="recall"),
    ]
    model.handle_state(_state({1: _ticket(1, "A001", "no_show"), 2: _ticket(2, "A002", "serving", 2),
                               3: _ticket(3, "A003", "called", 1)}, events))
    view = model.hall_view()
    assert view.current is not None and (view.current.label, view.current.kind) == ("A003", "recall")
    # A003 is on the big panel: not listed again; A001's three calls are one line, its last (08:56).
    assert [(c.label, c.kind, c.time_local, c.outcome) for c in view.history] == [
        ("A002", "call", "08:57", ""),
        ("A001", "recall", "08:56", "no_show"),
    ]
    # The same ticket at another counter (a transfer) is another line.
    model.handle_event({"event": _called(1, "A001", 4, 7, HALL_NOW)})
    sink.finish_current()
    model.handle_state(_state({1: _ticket(1, "A001", "called", 4), 2: _ticket(2, "A002", "serving", 2),
                               3: _ticket(3, "A003", "called", 1)}, events))
    view = model.hall_view()
    assert view.current is not None and view.current.counter == 4 and not view.current.settled
    assert [(c.label, c.counter, c.outcome) for c in view.history] == [
        ("A003", 1, ""), ("A002", 2, ""), ("A001", 1, "moved")]


def test_a_transfer_to_a_counter_stands_until_it_moves_on(pack: VoicePack) -> None:
    model, _ = _model(pack)
    transfer = {"type": "ticket_transferred", "counter": 1, "to_counter": 11, "to_service": "passport",
                "journal_seq": 6, "at": _iso(HALL_NOW), "ticket": {"id": 2, "label": "B002"}}
    model.handle_state(_state({2: _ticket(2, "B002", "waiting", None, target=11)}, []))
    model.handle_event({"event": transfer})
    current = model.hall_view().current
    assert current is not None and current.kind == "transfer" and not current.settled
    assert current.text_zh == "请 B002 号到 11 号窗口"
