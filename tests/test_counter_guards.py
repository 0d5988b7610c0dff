"""The counter's mis-tap guards (issue 15), on the counter model alone (no Qt, no sockets).

A third press of 重呼 silently marked an over-70 priority citizen a no-show; 过号 took one tap;
signing out asked nothing; a pause did not say how long it had lasted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from queuehall.counter.model import CounterModel

from queuehall.clock import ManualClock

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # 10:00 in the hall


def _model() -> tuple[CounterModel, list[tuple[str, dict[str, Any]]], ManualClock]:
    sent: list[tuple[str, dict[str, Any]]] = []
    clock = ManualClock(NOW)

    def send(type_: str, **args: Any) -> str:
        sent.append((type_, args))
        return f"r{len(sent)}"

    model = CounterModel(4, send, clock)
    model.on_connection(True)
    model.session, model.clerk = "s1", "c04a"
    return model, sent, clock


def _state(ticket: dict[str, Any] | None, *, counter_state: str = "open", since: str | None = None,
           max_recalls: int | None = 2) -> dict[str, Any]:
    hall: dict[str, Any] = {"name_zh": "测试大厅", "noshow_grace_minutes": 30}
    if max_recalls is not None:
        hall["max_recalls"] = max_recalls
    return {
        "timezone": "Asia/Shanghai",
        "hall": hall,
        "priority_classes": [{"code": "elderly", "name_zh": "70岁以上老人", "name_en": "Aged 70 or over"}],
        "counters": {"4": {"number": 4, "name_zh": "4号窗口", "name_en": "Window 4", "state": counter_state,
                           "clerk": "c04a", "since": since, "pause_reason": None, "ticket": ticket}},
        "tickets": {str(ticket["id"]): ticket} if ticket else {},
    }


def _called(calls: int, priority: str | None = "elderly") -> dict[str, Any]:
    return {"id": 13, "label": "A013", "status": "called", "counter": 4, "calls": calls, "priority": priority,
            "queue_service": "passport", "entered_at": "2026-11-24T01:30:00Z"}


def test_the_recall_that_would_make_a_no_show_is_warned_first() -> None:
    model, sent, _ = _model()
    model.on_state(_state(_called(1)))
    assert model.confirmation("recall") is None and model.recall_hint() == "还可重呼 2 次"
    assert model.recall() == "r1" and sent[-1][0] == "recall"
    model.pending.clear()
    model.on_state(_state(_called(2)))
    assert model.recall_hint() == "还可重呼 1 次" and model.recall() == "r2"
    model.pending.clear()
    # Two recalls done (max_recalls 2): the third press would mark the citizen a no-show.
    model.on_state(_state(_called(3)))
    assert model.recall_makes_no_show() and model.recall_hint() == "已达重呼上限：再重呼即过号"
    question = model.confirmation("recall")
    assert question is not None and question.kind == "warning"
    assert "A013 号（70岁以上老人）已重呼 2 次（上限 2 次）" in question.zh and "记为过号" in question.zh
    assert "A013 (Aged 70 or over) has been recalled 2× (limit 2)" in question.en
    assert model.recall() is None and len(sent) == 2, "nothing is sent without the clerk's confirmation"
    assert model.message is not None and model.message.zh == "请先确认"
    assert model.recall(confirmed=True) == "r3" and sent[-1][0] == "recall"


def test_a_broker_that_does_not_say_the_limit_is_not_guessed() -> None:
    model, _, _ = _model()
    model.on_state(_state(_called(5), max_recalls=None))
    assert model.confirmation("recall") is None and model.recall_hint() == ""
    assert model.recall() == "r1"


def test_no_show_and_sign_out_always_ask() -> None:
    model, sent, _ = _model()
    model.on_state(_state(_called(1, priority=None)))
    question = model.confirmation("no_show")
    assert question is not None
    assert question.zh == "A013 号未到窗口，确定记为过号？（已呼叫 1 次；30 分钟内可在“恢复过号”中恢复）"
    assert model.confirm_button("no_show") == "确认过号"
    assert model.no_show() is None and sent == []
    assert model.no_show(confirmed=True) == "r1" and sent[-1][0] == "no_show"
    model.pending.clear()
    model.on_state(_state(None))
    assert model.confirmation("no_show") is None  # nothing called: the broker's refusal says why
    question = model.confirmation("sign_out")
    assert question is not None and "确定签退 4号窗口" in question.zh and "Window 4" in question.en
    assert model.sign_out() is None and len(sent) == 1
    assert model.sign_out(confirmed=True) == "r2" and sent[-1][0] == "sign_out"


def test_a_pause_says_how_long_it_has_lasted() -> None:
    model, _, clock = _model()
    model.on_state(_state(None, counter_state="paused", since="2026-11-24T02:00:00Z"))
    assert model.paused_minutes() == 0 and model.paused_text() == "已暂停 0 分钟（自 10:00 起）"
    clock.advance(timedelta(minutes=17, seconds=40).total_seconds())
    assert model.paused_text() == "已暂停 17 分钟（自 10:00 起）"
    assert model.idle_hint().startswith("已暂停 17 分钟（自 10:00 起）\n暂停服务中")
    model.toggle_language()
    assert model.paused_text() == "Paused for 17 min (since 10:00)"
    model.on_state(_state(None, counter_state="open", since="2026-11-24T02:17:00Z"))
    assert model.paused_minutes() is None and model.paused_text() == ""
