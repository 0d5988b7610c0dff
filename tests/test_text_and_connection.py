"""The one bilingual text type (queuehall/text.py) and the one connection-status model (queuehall/connection.py)
that every screen uses."""

from __future__ import annotations

from datetime import UTC, datetime

from queuehall.broker.config import Text, load_config
from queuehall.counter.model import TEXT, CounterModel
from queuehall.display.model import Connection
from queuehall.kiosk.model import Bi as KioskBi
from queuehall.kiosk.model import KioskModel

from queuehall.clock import ManualClock
from queuehall.connection import CONNECTING, OFFLINE, ONLINE, LinkStatus
from queuehall.errors import HallError
from queuehall.text import EMPTY, Bi


def test_one_type_for_every_bilingual_text() -> None:
    assert Text is Bi and KioskBi is Bi
    assert all(isinstance(t, Bi) for t in TEXT.values())
    hall = load_config()
    assert isinstance(hall.name, Bi) and all(isinstance(s.name, Bi) for s in hall.services)
    err = HallError("QUEUE_EMPTY")
    assert err.message == Bi(err.message_zh, err.message_en)


def test_a_bi_reads_as_its_pair_and_converts_from_the_wire() -> None:
    t = Bi("叫下一位", "Call next")
    zh, en = t
    assert (zh, en) == ("叫下一位", "Call next") and t[0] == zh and t[1] == en
    pair = ("叫下一位", "Call next")
    assert t == pair and pair == t and hash(t) == hash(pair)
    assert t != ("叫下一位", "Call") and t != "叫下一位"
    assert t.pick("en") == ("Call next", "叫下一位") and t("zh") == "叫下一位"
    assert Bi("{n} 号", "No. {n}").format(n=3) == Bi("3 号", "No. 3")
    assert Bi.of({"zh": "甲", "en": "A"}) == Bi("甲", "A") and Bi.of(("甲", "A")) == Bi("甲", "A")
    assert Bi.of("同") == Bi("同", "同") and Bi.of(None) is EMPTY and Bi.of(3, Bi("x", "y")) == Bi("x", "y")
    assert Bi.fields({"name_zh": "护照", "name_en": "Passport"}, "name") == Bi("护照", "Passport")
    assert t.to_dict() == {"zh": "叫下一位", "en": "Call next"}


def test_the_connection_status_model() -> None:
    now = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    s = LinkStatus(clock=lambda: now)
    assert (s.state, s.connected, s.stale) == (CONNECTING, False, False)
    assert s.on_connection(True) and s.state == CONNECTING  # up, but nothing to show yet
    s.on_state()
    assert (s.state, s.connected, s.stale) == (ONLINE, True, False)
    assert not s.on_connection(True)  # no change
    assert s.on_connection(False)
    assert (s.state, s.connected, s.stale, s.lost_at) == (OFFLINE, False, True, now)
    s.on_connection(True)
    assert s.state == ONLINE and s.stale  # back, but not resynchronised yet
    s.on_state()
    assert not s.stale and s.label == Bi("已连接", "Online")


def test_the_three_screens_share_the_model_and_its_vocabulary() -> None:
    clock = ManualClock(datetime(2026, 12, 7, 1, 0, tzinfo=UTC))
    counter = CounterModel(3, lambda type_, **args: "r1", clock)
    kiosk = KioskModel(clock=clock)
    for model in (counter, kiosk):
        assert isinstance(model.link_status, LinkStatus) and not model.connected
        model.on_connection(True)
        model.on_state({"timezone": "Asia/Shanghai"})
        assert model.connected and model.link_status.state == ONLINE
        model.on_connection(False)
        assert not model.connected and model.link_status.state == OFFLINE
    assert counter.connection_text() == TEXT["offline"][0]
    assert Connection(OFFLINE, stale=True).label_en == "Offline"


def test_the_alert_and_rating_catalogues_are_bi_and_there_is_one_rating_catalogue() -> None:
    import re
    from dataclasses import fields

    from queuehall.broker import engine, satisfaction
    from queuehall.broker.alerts import RULES, AlertRules
    from queuehall.display import evaluation
    from queuehall.web.openapi import _BI as OPENAPI_BI
    from queuehall.web.rating import rating_form

    from queuehall import text
    from queuehall.ratings import LOW_LEVELS, RATING_INDICATORS, RATING_LEVELS

    rules = {f.name for f in fields(AlertRules)} - {"enabled", "paused_minutes"} | {"counter_paused"}
    assert set(RULES) == rules and all(isinstance(t, Bi) and t.zh and t.en for t in RULES.values())
    assert all(isinstance(t, Bi) for t in (*RATING_LEVELS.values(), *RATING_INDICATORS.values()))
    # The broker checks and records, the evaluator screen and the web form offer: the same catalogue.
    assert engine.RATING_LEVELS is RATING_LEVELS and engine.RATING_INDICATORS is RATING_INDICATORS
    assert satisfaction.RATING_LEVELS is RATING_LEVELS and evaluation.LOW == LOW_LEVELS
    form = rating_form("tok")
    assert [int(v) for v in re.findall(r'name="level" value="(\d)"', form)] == list(RATING_LEVELS)
    assert re.findall(r'name="indicators" value="(\w+)"', form) == list(RATING_INDICATORS)
    assert all(f"{b.zh}<span class=\"en\">{b.en}</span>" in form for b in RATING_INDICATORS.values())
    assert OPENAPI_BI is text.JSON_SCHEMA and set(text.JSON_SCHEMA["required"]) == set(EMPTY.to_dict())
