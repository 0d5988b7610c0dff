"""The counter's own screen as its evaluator (docs/evaluation.md), with real widgets offscreen and a real
broker: a finish at the counter shows five large bilingual levels; a high level is sent at once, a low one
asks for the indicators and a reason; thanks; the screen goes back after its timeout (an injected clock);
a rating given elsewhere ends it; the ratings are stored with channel counter_screen. Screenshots in
tests/artifacts/evaluator/."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from queuehall.broker.config import HallConfig
from queuehall.broker.storage import cases, ratings
from queuehall.display.evaluation import DETAILS, DONE, IDLE, LEVELS, EvaluatorModel
from queuehall.display.model import DisplayError, DisplayOptions
from queuehall.display.window import DisplayWindow, apply_app_font
from queuehall.voice.sink import ManualClock as SecondsClock
from sqlalchemy import select

from queuehall.client import BrokerClient
from queuehall.qtlink import QtLink
from queuehall.simulation import DEMO_PINS
from tests.broker_fixtures import BrokerThread

pytest_plugins = ["tests.broker_fixtures"]


@pytest.fixture
def shots(artifacts_dir: Path) -> Path:
    d = artifacts_dir / "evaluator"
    d.mkdir(parents=True, exist_ok=True)
    return d


class Counter3:
    """Counter 3 of the default hall: an admin client for the clerk's side and the counter's own screen."""

    def __init__(self, qtbot: QtBot, bt: BrokerThread, config: HallConfig) -> None:
        from PySide6.QtWidgets import QApplication

        app = QApplication.instance()
        assert isinstance(app, QApplication)
        apply_app_font(app)
        self.qtbot, self.bt = qtbot, bt
        self.client = BrokerClient(bt.endpoint, timeout=3.0)
        cfg = next(c for c in config.counters if c.number == 3)
        clerk = config.clerk(cfg.clerk_a)
        assert clerk is not None
        self.client.request("sign_in", counter=3, clerk=cfg.clerk_a, pin=DEMO_PINS[cfg.clerk_a])
        self.clock = SecondsClock(1000.0)
        self.link = QtLink(bt.endpoint, role="display", name="counter-screen-3", counter=3)
        self.window = DisplayWindow(self.link, DisplayOptions(counter=3), auto_tick=False,
                                    evaluator_clock=self.clock)
        qtbot.addWidget(self.window)
        self.window.resize(1024, 600)
        self.window.show()
        self.window.start()
        conn = self.window.model.connection
        qtbot.waitUntil(lambda: conn().state == "online" and not conn().stale and self.link.alive, timeout=5000)
        assert self.window.evaluator is not None
        self.panel = self.window.evaluator
        self.model = self.panel.model

    def finish_one(self) -> str:
        self.client.request("take_ticket", service="passport")
        label = str(self.client.request("call_next", counter=3)["ticket"]["label"])
        self.client.request("start", counter=3)
        self.client.request("finish", counter=3)
        self.qtbot.waitUntil(lambda: self.model.state == LEVELS and self.model.label == label, timeout=5000)
        return label

    def stored(self) -> list[Any]:
        assert self.bt.store is not None
        with self.bt.store.engine.connect() as conn:
            return conn.execute(select(ratings).order_by(ratings.c.id)).all()

    def click(self, button: Any) -> None:
        self.qtbot.mouseClick(button, Qt.MouseButton.LeftButton)

    def close(self) -> None:
        self.window.stop()
        self.client.close()


@pytest.fixture
def counter3(qtbot: QtBot, start_broker: Callable[..., BrokerThread], hall_config: HallConfig) -> Iterator[Counter3]:
    c = Counter3(qtbot, start_broker(config=hall_config), hall_config)
    yield c
    c.close()


def test_a_high_level_is_sent_at_once_and_thanked(counter3: Counter3, shots: Path) -> None:
    c = counter3
    assert not c.panel.isVisible()
    label = c.finish_one()
    assert c.panel.isVisible()
    texts = c.panel.texts()
    for words in ("非常满意\nVery satisfied", "满意\nSatisfied", "基本满意\nFairly satisfied", "不满意\nDissatisfied",
                  "非常不满意\nVery dissatisfied"):
        assert words in texts
    assert any(label in t for t in texts) and "30 秒后返回  back in 30 s" in texts
    # Readable at 1024x600: the words are sized to the Chinese and the English words, not to the longest
    # English line (18 px before); a long English label goes onto two lines, and every line fits its button.
    from PySide6.QtGui import QFontMetrics

    for b in c.panel.level_buttons.values():
        assert b.font().pixelSize() >= 24, b.font().pixelSize()
        assert all(QFontMetrics(b.font()).horizontalAdvance(line) <= b.width() - 16 for line in b.text().split("\n"))
    assert c.panel.level_buttons[1].text() == "非常不满意\nVery\ndissatisfied"
    assert c.window.grab().save(str(shots / "counter-evaluator-levels.png"))
    c.click(c.panel.level_buttons[4])
    c.qtbot.waitUntil(lambda: c.model.state == DONE, timeout=5000)
    assert "感谢您的评价！\nThank you for your rating!" in c.panel.texts()
    assert c.window.grab().save(str(shots / "counter-evaluator-thanks.png"))
    [row] = c.stored()
    assert (row.label, row.level, row.channel, row.counter, row.is_default) == (label, 4, "counter_screen", 3, False)
    c.clock.advance(5)
    c.window.tick()
    assert c.model.state == IDLE and not c.panel.isVisible()


def test_a_low_level_asks_for_the_indicators_and_a_reason(counter3: Counter3, shots: Path) -> None:
    c = counter3
    label = c.finish_one()
    c.click(c.panel.level_buttons[1])
    assert c.model.state == DETAILS and c.panel.pages.currentIndex() == 1
    texts = c.panel.texts()
    for words in ("服务效率\nEfficiency", "服务水平\nCompetence", "服务态度\nAttitude", "整体满意度\nOverall"):
        assert words in texts
    c.click(c.panel.indicator_buttons["attitude"])
    c.click(c.panel.indicator_buttons["efficiency"])
    c.click(c.panel.indicator_buttons["efficiency"])  # changed their mind
    # An input method types Chinese (QTest cannot): the text arrives as an edit.
    c.panel.reason.setText("态度生硬")
    c.panel.reason.textEdited.emit("态度生硬")
    assert c.model.indicators == ["attitude"] and c.model.reason == "态度生硬"
    assert c.window.grab().save(str(shots / "counter-evaluator-details.png"))
    c.click(c.panel.submit_button)
    c.qtbot.waitUntil(lambda: c.model.state == DONE, timeout=5000)
    [row] = c.stored()
    assert (row.label, row.level, json.loads(row.indicators), row.reason) == (label, 1, ["attitude"], "态度生硬")
    assert c.bt.store is not None
    with c.bt.store.engine.connect() as conn:
        assert conn.execute(select(cases.c.label)).scalar() == label  # the 差评 opened a case


def test_unrated_visits_time_out_and_stay_unrated(counter3: Counter3) -> None:
    c = counter3
    c.finish_one()
    c.clock.advance(29)
    c.window.tick()
    assert c.model.state == LEVELS and "1 秒后返回  back in 1 s" in c.panel.texts()
    c.clock.advance(1)
    c.window.tick()
    assert c.model.state == IDLE and not c.panel.isVisible()
    assert c.stored() == []  # no invented 好评
    # The back button leaves the details for the levels, and every touch restarts the countdown.
    c.finish_one()
    c.clock.advance(20)
    c.click(c.panel.level_buttons[2])
    c.clock.advance(20)
    c.window.tick()
    assert c.model.state == DETAILS
    c.click(c.panel.back_button)
    assert c.model.state == LEVELS and c.model.level is None


def test_a_rating_from_elsewhere_or_the_next_call_ends_it(counter3: Counter3) -> None:
    c = counter3
    label = c.finish_one()
    c.client.request("rate", ticket=label, level=5, channel="evaluator_box")  # the box on the desk was quicker
    c.qtbot.waitUntil(lambda: c.model.state == DONE, timeout=5000)
    assert "已收到您的评价，谢谢！\nYour rating was received. Thank you!" in c.panel.texts()
    c.finish_one()
    c.client.request("take_ticket", service="passport")
    c.client.request("call_next", counter=3)
    c.qtbot.waitUntil(lambda: c.model.state == IDLE, timeout=5000)
    assert len(c.stored()) == 1


def test_the_evaluator_model_without_widgets() -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    clock = SecondsClock(0.0)
    m = EvaluatorModel(7, lambda type_, **args: sent.append((type_, args)) or "r1", seconds=10, clock=clock)
    assert not m.on_event({"type": "ticket_finished", "counter": 8, "ticket": {"id": 1, "label": "A001"}})
    assert m.on_event({"type": "ticket_finished", "counter": 7, "ticket": {"id": 2, "label": "A002"}})
    m.choose(3)
    assert sent == [("rate", {"counter": 7, "ticket": "2", "level": 3, "channel": "counter_screen"})]
    assert not m.replied("other", {"status": "ok"})
    assert m.replied("r1", {"status": "error", "error": {"message_zh": "已评价", "message_en": "rated"}})
    assert m.state == DONE and m.message == ("已评价", "rated")


def test_the_evaluator_option() -> None:
    assert DisplayOptions(counter=3).evaluator_seconds == 30
    assert DisplayOptions(counter=3, evaluator_seconds=0).validate().evaluator_seconds == 0
    with pytest.raises(DisplayError):
        DisplayOptions(counter=3, evaluator_seconds=-1).validate()
