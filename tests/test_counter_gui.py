"""The counter client for real: the PySide6 window (offscreen) against a real broker on loopback.

Each test starts a :class:`~tests.broker_fixtures.BrokerThread` with the default hall
(config/hall.toml, SQLite in tmp_path, a manual clock on Tuesday 2026-11-24 09:00) and
drives the real window with the mouse, the keyboard (F-key shortcuts) and touch. Tickets
are taken over the wire as a kiosk would. Screenshots of the main states are written to
tests/artifacts/counter/.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import queuehall.broker.server as server_mod
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget
from queuehall.broker.config import DEFAULT_CONFIG, HallConfig, load_config
from queuehall.counter.model import CounterModel
from queuehall.counter.window import ConfirmDialog, CounterWindow, TransferDialog

import queuehall.client as client_mod
from queuehall.client import BrokerClient
from queuehall.clock import ManualClock
from queuehall.qtlink import QtLink
from queuehall.simulation import DEMO_PINS
from tests.broker_fixtures import BrokerThread, sqlite_url

TZ = ZoneInfo("Asia/Shanghai")
ART = Path(__file__).resolve().parent / "artifacts" / "counter"
_CONFIG: list[HallConfig] = []


def hall_config() -> HallConfig:
    if not _CONFIG:
        _CONFIG.append(load_config(DEFAULT_CONFIG))
    return _CONFIG[0]


def pin_of(clerk: str) -> str:
    assert hall_config().clerk(clerk) is not None
    return DEMO_PINS[clerk]


# ---------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def clock() -> ManualClock:
    """Tuesday 2026-11-24 09:00 in the hall's time zone: open, an ordinary working day."""
    return ManualClock(datetime(2026, 11, 24, 9, 0, tzinfo=TZ))


@pytest.fixture
def hall(tmp_path: Path, clock: ManualClock) -> Iterator[BrokerThread]:
    b = BrokerThread(hall_config(), sqlite_url(tmp_path / "hall.db"), clock).start()
    yield b
    b.stop()


@pytest.fixture
def kiosk(hall: BrokerThread) -> Iterator[BrokerClient]:
    """Takes tickets over the wire, as a kiosk does."""
    c = BrokerClient(hall.endpoint, timeout=2.0)
    yield c
    c.close()


@dataclass
class Terminal:
    window: CounterWindow
    model: CounterModel
    link: QtLink


@pytest.fixture
def terminal(qtbot: Any, hall: BrokerThread,
             clock: ManualClock) -> Iterator[Callable[..., Terminal]]:
    """Factory: ``terminal(counter=4, lang="zh", request_timeout=3.0)`` -> a shown, connected window."""
    made: list[Terminal] = []

    def make(counter: int = 4, lang: str = "zh", request_timeout: float = 3.0) -> Terminal:
        link = QtLink(hall.endpoint, role="counter", name=f"counter-{counter}", counter=counter,
                      request_timeout=request_timeout)
        model = CounterModel(counter, link.request, clock, lang=lang)
        window = CounterWindow(link, model)
        qtbot.addWidget(window)
        window.resize(1366, 860)
        window.show()
        window.start()
        term = Terminal(window, model, link)
        made.append(term)
        qtbot.waitUntil(lambda: model.connected and bool(model.counter_record()), timeout=5000)
        return term

    yield make
    for t in made:
        t.link.stop()


def shot(widget: QWidget, name: str) -> Path:
    """Save a screenshot (after pending layout work) and return its path."""
    QApplication.processEvents()
    ART.mkdir(parents=True, exist_ok=True)
    path = ART / name
    assert widget.grab().save(str(path)), path
    return path


def press(qtbot: Any, term: Terminal, key: Qt.Key,
          modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    """A key press on the terminal's window (made active first, as a clerk's focused screen)."""
    w = term.window
    if QApplication.activeWindow() is not w:
        w.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=2000)
    QTest.keyClick(w, key, modifier)


def settle(qtbot: Any, term: Terminal) -> None:
    """Wait until the terminal has its answer (nothing in flight)."""
    qtbot.waitUntil(lambda: not term.model.busy, timeout=5000)


def sign_in(qtbot: Any, term: Terminal, clerk: str, *, takeover: bool = False) -> None:
    page = term.window.signin
    page.clerk.setText(clerk)
    page.pin.setText(pin_of(clerk))
    qtbot.mouseClick(page.takeover_button if takeover else page.sign_in_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: term.model.signed_in and not term.model.busy
                    and term.model.counter_record().get("clerk") == clerk
                    and term.model.counter_record().get("state") != "closed", timeout=5000)


def take(kiosk: BrokerClient, clock: ManualClock, service: str, minutes_later: int = 0) -> str:
    label = kiosk.request("take_ticket", service=service)["ticket"]["label"]
    clock.advance(minutes=minutes_later)
    return label


def confirm(qtbot: Any, term: Terminal, yes: bool = True) -> ConfirmDialog:
    """Answer the confirmation the last tap opened (过号, the recall at the limit, 签退)."""
    qtbot.waitUntil(lambda: isinstance(term.window.dialog, ConfirmDialog), timeout=2000)
    dialog = term.window.dialog
    assert isinstance(dialog, ConfirmDialog)
    qtbot.mouseClick(dialog.ok_button if yes else dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: term.window.dialog is None, timeout=2000)
    term.window.activateWindow()  # the window manager gives the window back its focus
    qtbot.waitUntil(lambda: QApplication.activeWindow() is term.window, timeout=2000)
    return dialog


def broker_ticket(hall: BrokerThread, label: str) -> Any:
    assert hall.broker is not None
    return hall.broker.hall.find_ticket(label)


def current_label(term: Terminal) -> str | None:
    t = term.model.current_ticket()
    return t.label if t else None


def texts(term: Terminal) -> str:
    """Everything the ticket panel, guidance and message banner show, for assertions."""
    w = term.window
    parts = [w.phase_label.text(), w.ticket_label.text(), w.service_label.text(), w.info_label.text(),
             w.note_label.text() if w.note_label.isVisible() else "", w.promised_label.text(),
             w.message.text() if w.message.isVisible() else "",
             w.guidance_zh.text() if w.guidance.isVisible() else "",
             w.guidance_en.text() if w.guidance.isVisible() else ""]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------- model only


def test_the_promised_date_is_the_brokers_never_the_counters_own() -> None:
    """The counter shows the ``promised_date`` its ticket carries (the broker's calendar, as in the reports),
    whatever day its own clock says; a broker that sends no date gets the days alone, never a guess."""
    model = CounterModel(4, lambda *a, **k: "r1", ManualClock(datetime(2031, 1, 3, 9, tzinfo=TZ)))
    ticket = {"id": 7, "label": "E001", "status": "serving", "counter": 4, "queue_service": "move_in",
              "promised_days": 5, "promised_date": "2026-10-09"}
    model.on_state({"counters": {"4": {"number": 4, "ticket": ticket}}, "tickets": {"7": ticket},
                    "services": {"move_in": {"promised_days": 5}}})
    model.session = "s"
    assert model.promised() == (date(2026, 10, 9), 5)
    assert model.promised_text() == "承诺办结：2026年10月9日（5 个工作日）"
    ticket.update(promised_days=0, promised_date=None)
    assert model.promised_text() == "承诺办结：当场办结"
    del ticket["promised_days"], ticket["promised_date"]  # an older broker
    assert model.promised() == (None, 5) and model.promised_text() == "承诺 5 个工作日内办结"


def test_posts_come_from_the_broker(terminal: Callable[..., Terminal]) -> None:
    """The A/B post buttons are filled from the counter's record in the broker's snapshot, not
    from a hall file the counter would have to read (it has none)."""
    m = terminal(4).model
    assert m.posts == {"A": ("c04a", "赵婷", "Zhao Ting"), "B": ("c04b", "黄伟", "Huang Wei")}
    assert m.counter_record()["posts"]["B"] == {"clerk": "c04b", "name_zh": "黄伟", "name_en": "Huang Wei"}
    assert CounterModel(4, lambda *a, **k: "", ManualClock(datetime(2026, 11, 24, 9, tzinfo=TZ))).posts == {}


# ---------------------------------------------------------------------------------------------- sign-in


def test_sign_in_as_a_or_b_post_by_touch_keyboard_and_mouse(qtbot: Any, terminal: Callable[..., Terminal],
                                                           hall: BrokerThread) -> None:
    term = terminal(4)
    w, m = term.window, term.model
    page = w.signin
    assert w.stack.currentWidget() is page
    assert page.post_buttons["A"].text() == "A岗 · 赵婷" and page.post_buttons["B"].text() == "B岗 · 黄伟"
    assert not any(b.isEnabled() and b.isVisible() for b in w.buttons.values())  # no actions while signed out
    shot(w, "01-signed-out.png")

    # A wrong PIN: refused with the broker's code and both languages.
    page.clerk.setText("c04b")
    page.pin.setText("0000")
    qtbot.mouseClick(page.sign_in_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.message.isVisible() and "BAD_PIN" in page.message.text(), timeout=5000)
    assert "工号或密码错误" in page.message.text() and "Wrong clerk id or PIN" in page.message.text()
    assert not m.signed_in and page.pin.text() == "" and page.pin.hasFocus()  # type the PIN again

    # B post by touch: the post button fills the clerk id, the on-screen keypad types the PIN.
    qtbot.mouseClick(page.post_buttons["B"], Qt.MouseButton.LeftButton)
    assert page.clerk.text() == "c04b" and page.pin.hasFocus()
    for digit in pin_of("c04b"):
        qtbot.mouseClick(page.key_buttons[digit], Qt.MouseButton.LeftButton)
    assert page.pin.text() == pin_of("c04b")
    qtbot.mouseClick(page.sign_in_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: m.signed_in and m.counter_record().get("clerk") == "c04b", timeout=5000)
    assert m.post == "B" and w.clerk_label.text() == "黄伟（c04b）· B岗"
    assert page.pin.text() == ""  # the PIN does not stay in the hidden form
    assert hall.broker is not None and hall.broker.hall.counters[4].post == "B"

    # Sign out with the keyboard (Ctrl+Shift+Q), then the A post with the keyboard only.
    press(qtbot, term, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    confirm(qtbot, term)  # signing out asks first
    qtbot.waitUntil(lambda: not m.signed_in and w.stack.currentWidget() is page, timeout=5000)
    assert hall.broker.hall.counters[4].state == "closed"
    page.clerk.clear()
    page.clerk.setFocus()
    QTest.keyClicks(page.clerk, "c04a")
    QTest.keyClick(page.clerk, Qt.Key.Key_Return)  # Enter moves on to the PIN
    assert page.pin.hasFocus()
    QTest.keyClicks(page.pin, pin_of("c04a"))
    qtbot.waitUntil(lambda: not m.busy, timeout=5000)  # as a clerk would: the screen says when it is free
    QTest.keyClick(page.pin, Qt.Key.Key_Return)  # Enter signs in
    qtbot.waitUntil(lambda: m.signed_in and m.counter_record().get("clerk") == "c04a", timeout=10000)
    assert m.post == "A" and "A岗" in w.clerk_label.text() and "赵婷" in w.clerk_label.text()


# ---------------------------------------------------------------------------------------------- lifecycle


def test_whole_lifecycle_with_transfer_to_the_fee_window_and_back(
        qtbot: Any, terminal: Callable[..., Terminal], hall: BrokerThread, kiosk: BrokerClient,
        clock: ManualClock) -> None:
    e1 = take(kiosk, clock, "move_in", 2)
    e2 = take(kiosk, clock, "move_in", 2)
    e3 = take(kiosk, clock, "move_in", 6)  # now 09:10
    assert (e1, e2, e3) == ("E001", "E002", "E003")
    fee = terminal(11)
    sign_in(qtbot, fee, "c11a")
    term = terminal(4)
    w, m = term.window, term.model
    sign_in(qtbot, term, "c04a")
    qtbot.waitUntil(lambda: w.waiting.rowCount() == 3, timeout=5000)

    # Idle: the waiting list of the counter's services, oldest first, with how long each has waited.
    rows = [(w.waiting.item(r, 0).text(), w.waiting.item(r, 2).text()) for r in range(3)]
    assert rows == [("E001", "10 分钟"), ("E002", "8 分钟"), ("E003", "6 分钟")]
    assert w.waiting_title.text() == "等候队列（3 人）"
    enabled = {a for a, b in w.buttons.items() if b.isEnabled()}
    assert enabled == {"call_next", "call_ticket", "pause", "sign_out"}
    shot(w, "02-idle-waiting-list.png")

    # Call next (F1): the ticket, its service, its wait; only the called-ticket buttons apply.
    press(qtbot, term, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: current_label(term) == "E001" and m.phase() == "called", timeout=5000)
    settle(qtbot, term)
    assert "已叫号" in w.phase_label.text() and "户口迁入" in w.service_label.text()
    assert "已等候 10 分钟" in w.info_label.text()
    assert {a for a, b in w.buttons.items() if b.isEnabled()} == {"recall", "no_show", "start", "transfer"}
    shot(w, "03-calling.png")

    # Recall (F2), then no-show (F3): the ticket moves to the no-show list and the figures.
    press(qtbot, term, Qt.Key.Key_F2)
    qtbot.waitUntil(lambda: "已呼叫 2 次" in w.info_label.text(), timeout=5000)
    settle(qtbot, term)
    press(qtbot, term, Qt.Key.Key_F3)
    confirm(qtbot, term)  # 过号 asks first
    qtbot.waitUntil(lambda: m.phase() == "idle" and w.no_show_list.count() == 1, timeout=5000)
    settle(qtbot, term)
    assert w.no_show_list.item(0).text().startswith("E001")
    assert "过号 1" in w.figures_label.text()

    # Reinstate (F10 opens the list; OK puts it back at the end of the queue).
    press(qtbot, term, Qt.Key.Key_F10)
    qtbot.waitUntil(lambda: w.dialog is not None, timeout=2000)
    assert w.dialog.label() == "E001"  # type: ignore[union-attr]
    qtbot.mouseClick(w.dialog.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: w.no_show_list.count() == 0 and w.waiting.rowCount() == 3, timeout=5000)
    settle(qtbot, term)
    assert broker_ticket(hall, "E001").status == "waiting"

    # Call next gets E002 (E001 rejoined at the back); Start (F4) shows the materials and the promise.
    press(qtbot, term, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: current_label(term) == "E002", timeout=5000)
    settle(qtbot, term)
    press(qtbot, term, Qt.Key.Key_F4)
    qtbot.waitUntil(lambda: m.phase() == "serving", timeout=5000)
    settle(qtbot, term)
    materials = hall_config().services[[s.code for s in hall_config().services].index("move_in")].materials
    assert w.materials.count() == len(materials) == 3
    assert w.materials.item(0).text().split("\n")[0] == materials[0].zh
    assert w.promised_label.text() == "承诺办结：2026年12月1日（5 个工作日）"
    assert "周一至周五" in w.promised_rule.text()
    assert {a for a, b in w.buttons.items() if b.isEnabled()} == {"finish", "transfer"}
    w.materials.item(0).setCheckState(Qt.CheckState.Checked)  # the clerk ticks off a document
    shot(w, "04-serving-with-materials.png")
    clock.advance(minutes=6)
    w.refresh()
    assert w.materials.item(0).checkState() == Qt.CheckState.Checked  # ticks survive redraws
    assert "已办理 6 分钟" in w.info_label.text()

    # Finish (F5): served 1 with a 6-minute service time.
    press(qtbot, term, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: m.phase() == "idle", timeout=5000)
    settle(qtbot, term)
    assert w.figures_label.text() == "办结 1 · 平均办理 6.0 分钟 · 过号 1"

    # Call a specific ticket (F9): E001 out of order, with a reason the broker records.
    w.waiting.selectRow([w.waiting.item(r, 0).text() for r in range(w.waiting.rowCount())].index("E001"))
    press(qtbot, term, Qt.Key.Key_F9)
    qtbot.waitUntil(lambda: w.dialog is not None, timeout=2000)
    dialog = w.dialog
    assert dialog.label.text() == "E001"  # type: ignore[union-attr]
    assert not dialog.ok_button.isEnabled()  # no reason yet
    dialog.reason.setText("预约办理")  # type: ignore[union-attr]
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: current_label(term) == "E001", timeout=5000)
    settle(qtbot, term)
    t = broker_ticket(hall, "E001")
    assert hall.broker is not None and hall.broker.hall.visits[t.visit_id].out_of_order == "预约办理"

    # Start, then transfer (F6) to the fee window (counter 11) with a note.
    press(qtbot, term, Qt.Key.Key_F4)
    qtbot.waitUntil(lambda: m.phase() == "serving", timeout=5000)
    settle(qtbot, term)
    press(qtbot, term, Qt.Key.Key_F6)
    qtbot.waitUntil(lambda: w.dialog is not None, timeout=2000)
    dialog = w.dialog
    dialog.choose_counter(11)  # type: ignore[union-attr]
    dialog.note.setText("缴纳迁入费用 212 元")  # type: ignore[union-attr]
    assert dialog.ok_button.isEnabled()
    shot(dialog, "05-transfer-dialog.png")
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: m.guidance is not None, timeout=5000)
    settle(qtbot, term)
    assert w.guidance_zh.text() == "请到 11 号窗口办理统一收费"
    assert w.guidance_en.text() == "Please go to counter 11 for Unified fee payment"
    qtbot.waitUntil(lambda: m.phase() == "idle", timeout=5000)
    assert "E001 号已转至 11 号窗口" in w.message.text()
    shot(w, "06-after-transfer-say-this.png")

    # The fee clerk sees it (with the note), calls, serves, and sends it back to counter 4.
    fw, fm = fee.window, fee.model
    qtbot.waitUntil(lambda: fw.waiting.rowCount() == 1, timeout=5000)
    assert fw.waiting.item(0, 0).text() == "E001" and "缴纳迁入费用 212 元" in fw.waiting.item(0, 1).text()
    press(qtbot, fee, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: current_label(fee) == "E001", timeout=5000)
    settle(qtbot, fee)
    assert "由 4 号窗口转来" in fw.note_label.text() and "缴纳迁入费用 212 元" in fw.note_label.text()
    assert fw.service_label.text() == "统一收费"
    press(qtbot, fee, Qt.Key.Key_F4)
    qtbot.waitUntil(lambda: fm.phase() == "serving", timeout=5000)
    settle(qtbot, fee)
    press(qtbot, fee, Qt.Key.Key_F6)
    qtbot.waitUntil(lambda: fw.dialog is not None, timeout=2000)
    fw.dialog.choose_counter(4)  # type: ignore[union-attr]
    fw.dialog.note.setText("已缴费")  # type: ignore[union-attr]
    qtbot.mouseClick(fw.dialog.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: fm.guidance is not None, timeout=5000)
    assert fw.guidance_zh.text() == "请回到 4 号窗口继续办理户口迁入"
    assert fw.guidance_en.text() == "Please go back to counter 4 to continue with Moving a household in"

    # Back at counter 4 it keeps its place (its issue time): called before E003, then finished.
    qtbot.waitUntil(lambda: any(w.waiting.item(r, 0).text() == "E001" for r in range(w.waiting.rowCount())),
                    timeout=5000)
    press(qtbot, term, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: current_label(term) == "E001", timeout=5000)
    settle(qtbot, term)
    assert m.guidance is None  # the sentence for the previous citizen is gone
    assert "已缴费" in w.note_label.text()
    press(qtbot, term, Qt.Key.Key_F4)
    qtbot.waitUntil(lambda: m.phase() == "serving", timeout=5000)
    settle(qtbot, term)
    press(qtbot, term, Qt.Key.Key_F5)
    qtbot.waitUntil(lambda: m.phase() == "idle", timeout=5000)
    settle(qtbot, term)
    assert w.figures_label.text().startswith("办结 2 ·")

    # Pause (F7) with a configured reason, then resume (F8).
    press(qtbot, term, Qt.Key.Key_F7)
    qtbot.waitUntil(lambda: w.dialog is not None, timeout=2000)
    assert list(w.dialog.buttons) == [p.code for p in hall_config().pause_reasons]  # type: ignore[union-attr]
    dialog = w.dialog
    qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog, timeout=2000)
    assert dialog.focusWidget() is dialog.buttons["break"]  # type: ignore[union-attr]
    QTest.keyClick(dialog.focusWidget(), Qt.Key.Key_Return)  # keyboard only: Enter takes the first reason
    qtbot.waitUntil(lambda: m.phase() == "paused", timeout=5000)
    settle(qtbot, term)
    assert w.phase_label.text() == "暂停服务：休息"
    assert {a for a, b in w.buttons.items() if b.isEnabled()} == {"resume", "sign_out"}
    shot(w, "07-paused.png")
    press(qtbot, term, Qt.Key.Key_F8)
    qtbot.waitUntil(lambda: m.phase() == "idle", timeout=5000)
    settle(qtbot, term)

    # Switch to English (F12): the same screen, English first.
    press(qtbot, term, Qt.Key.Key_F12)
    assert w.buttons["call_next"].text() == "Call next\nF1"
    assert w.waiting_title.text() == "Waiting (1)"
    shot(w, "08-idle-english.png")


def test_mis_taps_are_guarded_recall_limit_no_show_sign_out_and_the_pause_shows_its_length(
        qtbot: Any, terminal: Callable[..., Terminal], hall: BrokerThread, kiosk: BrokerClient,
        clock: ManualClock) -> None:
    # Issue 15: a third 重呼 silently made an over-70 citizen a no-show; 过号 took one tap.
    label = kiosk.request("take_ticket", service="move_in", priority="elderly")["ticket"]["label"]
    term = terminal(4)
    w, m = term.window, term.model
    sign_in(qtbot, term, "c04a")
    press(qtbot, term, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: current_label(term) == label and m.phase() == "called", timeout=5000)
    settle(qtbot, term)
    assert "还可重呼 2 次" in w.info_label.text()
    for done in (1, 2):
        press(qtbot, term, Qt.Key.Key_F2)  # the two recalls the hall allows go at once
        qtbot.waitUntil(lambda n=done: broker_ticket(hall, label).recalls == n, timeout=5000)
        settle(qtbot, term)
    assert "已达重呼上限：再重呼即过号" in w.info_label.text()
    # The third press asks, naming the priority class; Cancel (the default) keeps the citizen called.
    press(qtbot, term, Qt.Key.Key_F2)
    qtbot.waitUntil(lambda: isinstance(w.dialog, ConfirmDialog), timeout=2000)
    dialog = w.dialog
    assert isinstance(dialog, ConfirmDialog) and dialog.cancel_button.isDefault()
    assert "（70岁以上老人）已重呼 2 次" in dialog.question.text() and dialog.ok_button.text() == "记为过号"
    shot(dialog, "guard-confirm-recall-limit.png")
    confirm(qtbot, term, yes=False)
    settle(qtbot, term)
    assert broker_ticket(hall, label).status == "called" and m.phase() == "called"
    # 过号 asks too; Esc cancels, the confirming button sends it.
    press(qtbot, term, Qt.Key.Key_F3)
    qtbot.waitUntil(lambda: isinstance(w.dialog, ConfirmDialog), timeout=2000)
    shot(w.dialog, "guard-confirm-no-show.png")  # type: ignore[arg-type]
    QTest.keyClick(w.dialog, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: w.dialog is None, timeout=2000)
    assert broker_ticket(hall, label).status == "called"
    press(qtbot, term, Qt.Key.Key_F3)
    assert confirm(qtbot, term).ok_button.text() == "确认过号"
    qtbot.waitUntil(lambda: broker_ticket(hall, label).status == "no_show" and m.phase() == "idle", timeout=5000)
    settle(qtbot, term)
    # A pause says how long it has lasted.
    press(qtbot, term, Qt.Key.Key_F7)
    qtbot.waitUntil(lambda: w.dialog is not None, timeout=2000)
    qtbot.mouseClick(w.dialog.buttons["meeting"], Qt.MouseButton.LeftButton)  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: m.phase() == "paused", timeout=5000)
    settle(qtbot, term)
    clock.advance(minutes=12)
    w.refresh()
    assert w.hint_label.text().startswith("已暂停 12 分钟（自 09:00 起）"), w.hint_label.text()
    shot(w, "guard-paused-for.png")
    # Signing out asks first; Cancel keeps the counter open.
    qtbot.mouseClick(w.sign_out_button, Qt.MouseButton.LeftButton)
    confirm(qtbot, term, yes=False)
    assert m.signed_in and hall.broker is not None and hall.broker.hall.counters[4].state == "paused"


# ---------------------------------------------------------------------------------------------- faults


def test_double_click_call_next_calls_exactly_one_ticket(qtbot: Any, terminal: Callable[..., Terminal],
                                                        hall: BrokerThread, kiosk: BrokerClient,
                                                        clock: ManualClock) -> None:
    for _ in range(4):
        take(kiosk, clock, "move_in", 1)
    term = terminal(4)
    w, m = term.window, term.model
    sign_in(qtbot, term, "c04a")
    qtbot.waitUntil(lambda: w.waiting.rowCount() == 4, timeout=5000)
    assert hall.broker is not None

    # A real double click: press, release, double-click press, release (as Qt receives it from the OS).
    button = w.buttons["call_next"]
    qtbot.mousePress(button, Qt.MouseButton.LeftButton)
    qtbot.mouseRelease(button, Qt.MouseButton.LeftButton)
    qtbot.mouseDClick(button, Qt.MouseButton.LeftButton)
    qtbot.mouseRelease(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: m.phase() == "called", timeout=5000)
    settle(qtbot, term)
    called = [t.label for t in hall.broker.hall.tickets.values() if t.status == "called"]
    assert called == ["E001"] and len(hall.broker.hall.queue("move_in")) == 3

    # Two quick presses of F1 (after a no-show): one call, and the second press is told to wait.
    press(qtbot, term, Qt.Key.Key_F3)
    confirm(qtbot, term)
    qtbot.waitUntil(lambda: m.phase() == "idle", timeout=5000)
    settle(qtbot, term)
    QTest.keyClick(w, Qt.Key.Key_F1)
    assert not w.buttons["call_next"].isEnabled() and w.buttons["call_next"].text() == "正在叫号…\nF1"
    QTest.keyClick(w, Qt.Key.Key_F1)
    assert "上一个操作仍在处理" in w.message.text()
    qtbot.waitUntil(lambda: m.phase() == "called", timeout=5000)
    settle(qtbot, term)
    called = [t.label for t in hall.broker.hall.tickets.values() if t.status == "called"]
    assert called == ["E002"] and len(hall.broker.hall.queue("move_in")) == 2


def test_finish_with_nothing_served_shows_the_brokers_bilingual_refusal(
        qtbot: Any, terminal: Callable[..., Terminal], kiosk: BrokerClient, clock: ManualClock) -> None:
    take(kiosk, clock, "newborn", 3)
    term = terminal(4)
    w = term.window
    sign_in(qtbot, term, "c04a")
    assert not w.buttons["finish"].isEnabled()  # the button does not apply…
    press(qtbot, term, Qt.Key.Key_F5)  # …and the key is answered by the broker, in both languages
    qtbot.waitUntil(lambda: "NOT_SERVING" in w.message.text(), timeout=5000)
    assert w.message.property("kind") == "error"
    assert "4 号窗口当前没有正在办理的号" in w.message.text()
    assert "Counter 4 is not serving a ticket" in w.message.text()
    shot(w, "09-error-message.png")
    # A dialog action that cannot apply says why without opening its dialog.
    press(qtbot, term, Qt.Key.Key_F6)
    assert w.dialog is None and "NOTHING_CALLED" in w.message.text()


def test_slow_broker_never_freezes_the_window(qtbot: Any, terminal: Callable[..., Terminal],
                                             hall: BrokerThread, kiosk: BrokerClient, clock: ManualClock,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    take(kiosk, clock, "move_out", 1)
    take(kiosk, clock, "move_out", 1)
    term = terminal(4, request_timeout=0.8)
    w, m = term.window, term.model
    sign_in(qtbot, term, "c04a")
    assert hall.broker is not None
    gate = threading.Event()
    real = hall.broker.hall.execute

    def slow(*args: Any, **kw: Any) -> Any:  # the broker thread stalls inside the command
        gate.wait(10)
        return real(*args, **kw)

    monkeypatch.setattr(hall.broker.hall, "execute", slow)
    t0 = time.perf_counter()
    qtbot.mouseClick(w.buttons["call_next"], Qt.MouseButton.LeftButton)
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.1, f"the click took {elapsed * 1000:.0f} ms"
    assert w.buttons["call_next"].text() == "正在叫号…\nF1"
    assert not any(b.isEnabled() for b in w.buttons.values())
    ticks: list[int] = []
    QTimer.singleShot(0, lambda: ticks.append(1))  # the event loop keeps turning while the broker stalls
    qtbot.waitUntil(lambda: bool(ticks), timeout=1000)

    # No answer within the request timeout: the screen says the action was not confirmed…
    qtbot.waitUntil(lambda: "叫号服务器未响应" in w.message.text(), timeout=5000)
    assert not m.busy
    # …and when the broker catches up, the screen follows the broker's state (the call did happen).
    gate.set()
    qtbot.waitUntil(lambda: current_label(term) == "F001" and m.phase() == "called", timeout=5000)
    assert [t.label for t in hall.broker.hall.tickets.values() if t.status == "called"] == ["F001"]


def test_broker_restart_during_a_service_reconnects_to_the_same_ticket(
        qtbot: Any, terminal: Callable[..., Terminal], hall: BrokerThread, kiosk: BrokerClient,
        clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    # Beat every 0.1 s and call a broker dead after 0.6 s of silence (not 1 s, 3 s): a shorter test.
    monkeypatch.setattr(server_mod, "HEARTBEAT_SECONDS", 0.1)
    monkeypatch.setattr(client_mod, "DEAD_AFTER", 0.6)
    take(kiosk, clock, "small_town_hukou", 4)
    term = terminal(4)
    w, m = term.window, term.model
    sign_in(qtbot, term, "c04a")
    press(qtbot, term, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: current_label(term) == "G001", timeout=5000)
    settle(qtbot, term)
    press(qtbot, term, Qt.Key.Key_F4)
    qtbot.waitUntil(lambda: m.phase() == "serving", timeout=5000)
    settle(qtbot, term)
    kiosk.close()

    hall.stop()
    qtbot.waitUntil(lambda: not m.connected, timeout=6000)
    assert w.conn_label.text() == "● 连接中断，正在重连…" and w.conn_label.property("up") == "false"
    assert not any(b.isEnabled() for b in w.buttons.values())
    assert w.ticket_label.text() == "G001"  # the last known ticket stays on screen
    shot(w, "10-disconnected.png")
    press(qtbot, term, Qt.Key.Key_F5)  # a key pressed meanwhile is refused locally, clearly
    assert "连接已中断" in w.message.text()

    hall.start()  # same port, same database: a new epoch
    qtbot.waitUntil(lambda: m.connected and w.conn_label.text() == "● 已连接", timeout=10000)
    qtbot.waitUntil(lambda: current_label(term) == "G001" and m.phase() == "serving", timeout=5000)
    assert m.signed_in and w.buttons["finish"].isEnabled()
    press(qtbot, term, Qt.Key.Key_F5)  # the session survived the restart
    qtbot.waitUntil(lambda: m.phase() == "idle" and "G001 号已办结" in w.message.text(), timeout=5000)


def test_second_terminal_is_refused_then_takes_over_and_the_first_is_signed_out(
        qtbot: Any, terminal: Callable[..., Terminal], hall: BrokerThread, kiosk: BrokerClient,
        clock: ManualClock) -> None:
    take(kiosk, clock, "newborn", 2)
    first = terminal(4)
    sign_in(qtbot, first, "c04a")
    press(qtbot, first, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: current_label(first) == "D001", timeout=5000)
    settle(qtbot, first)

    second = terminal(4)
    page = second.window.signin
    assert not page.takeover_button.isVisible()
    page.clerk.setText("c04b")
    page.pin.setText(pin_of("c04b"))
    qtbot.mouseClick(page.sign_in_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "COUNTER_OCCUPIED" in page.message.text(), timeout=5000)
    # The clerk on duty is named, with the id (issue 15: clerks are named by name).
    assert "4 号窗口已由 赵婷（c04a） 签到" in page.message.text() and page.takeover_button.isVisible()
    assert "Counter 4 is already signed in by Zhao Ting (c04a)" in page.message.text()
    assert not second.model.signed_in and first.model.signed_in
    shot(second.window, "11-counter-occupied.png")

    qtbot.mouseClick(page.takeover_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: second.model.signed_in and second.model.post == "B", timeout=5000)
    # The ticket in progress stays with the counter, now on the second terminal.
    qtbot.waitUntil(lambda: current_label(second) == "D001", timeout=5000)
    # The first terminal shows that it was signed out, and why.
    fw = first.window
    qtbot.waitUntil(lambda: not first.model.signed_in and fw.stack.currentWidget() is fw.signin, timeout=5000)
    assert "SESSION_ENDED" in fw.signin.message.text()
    assert "4 号窗口已在其他终端签到，本终端已退出" in fw.signin.message.text()
    shot(fw, "12-taken-over.png")


def test_a_terminal_that_missed_the_takeover_is_refused_session_ended(
        qtbot: Any, terminal: Callable[..., Terminal], hall: BrokerThread, kiosk: BrokerClient,
        clock: ManualClock) -> None:
    take(kiosk, clock, "newborn", 2)
    term = terminal(4)
    w, m = term.window, term.model
    sign_in(qtbot, term, "c04a")
    press(qtbot, term, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: current_label(term) == "D001", timeout=5000)
    settle(qtbot, term)
    # This terminal stops hearing events (as in a network blip) while another one takes over.
    term.link.state_changed.disconnect(w._on_state)
    term.link.event.disconnect(w._on_event)
    kiosk.request("sign_in", counter=4, clerk="c04b", pin=pin_of("c04b"), takeover=True)
    assert m.signed_in  # it does not know yet
    press(qtbot, term, Qt.Key.Key_F2)  # its next command carries the old session
    qtbot.waitUntil(lambda: not m.signed_in, timeout=5000)
    assert w.stack.currentWidget() is w.signin and "SESSION_ENDED" in w.signin.message.text()
    assert hall.broker is not None and hall.broker.hall.counters[4].clerk == "c04b"
    assert broker_ticket(hall, "D001").recalls == 0  # the refused recall did nothing


def test_touch_taps_drive_the_counter(qtbot: Any, terminal: Callable[..., Terminal], kiosk: BrokerClient,
                                     clock: ManualClock) -> None:
    take(kiosk, clock, "move_out", 1)
    term = terminal(4)
    w, m = term.window, term.model
    sign_in(qtbot, term, "c04a")
    device = QTest.createTouchDevice()

    def tap(widget: QWidget) -> None:
        centre = widget.rect().center()
        pos = widget.mapTo(w, centre)
        QTest.touchEvent(w, device).press(0, pos, w)
        QTest.touchEvent(w, device).release(0, pos, w)

    tap(w.buttons["call_next"])
    qtbot.waitUntil(lambda: current_label(term) == "F001", timeout=5000)
    settle(qtbot, term)
    tap(w.buttons["start"])
    qtbot.waitUntil(lambda: m.phase() == "serving", timeout=5000)
    settle(qtbot, term)
    tap(w.buttons["finish"])
    qtbot.waitUntil(lambda: m.phase() == "idle" and "F001 号已办结" in w.message.text(), timeout=5000)


def test_transfer_to_a_service_names_its_open_counters_and_a_closed_one_is_refused(
        qtbot: Any, terminal: Callable[..., Terminal], kiosk: BrokerClient, clock: ManualClock) -> None:
    for n in (1, 2):  # passport is served by counters 1, 2 and 3; only 1 and 2 are open
        kiosk.request("sign_in", counter=n, clerk=f"c0{n}a", pin=pin_of(f"c0{n}a"))
    take(kiosk, clock, "move_out", 3)
    term = terminal(4)
    w, m = term.window, term.model
    sign_in(qtbot, term, "c04a")
    for key, phase in ((Qt.Key.Key_F1, "called"), (Qt.Key.Key_F4, "serving")):
        press(qtbot, term, key)
        qtbot.waitUntil(lambda p=phase: m.phase() == p, timeout=5000)
        settle(qtbot, term)

    # Esc closes the transfer dialog without sending anything.
    press(qtbot, term, Qt.Key.Key_F6)
    qtbot.waitUntil(lambda: w.dialog is not None, timeout=2000)
    dialog = w.dialog
    qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog, timeout=2000)
    QTest.keyClick(dialog.focusWidget(), Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: w.dialog is None, timeout=2000)
    assert not m.busy and m.phase() == "serving"

    # Environmental approval has no open counter: the broker refuses and the ticket stays here.
    press(qtbot, term, Qt.Key.Key_F6)
    qtbot.waitUntil(lambda: w.dialog is not None, timeout=2000)
    w.dialog.choose_service("eia_approval")  # type: ignore[union-attr]
    qtbot.mouseClick(w.dialog.ok_button, Qt.MouseButton.LeftButton)  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: "SERVICE_CLOSED" in w.message.text(), timeout=5000)
    assert "当前没有开放窗口" in w.message.text() and m.phase() == "serving" and m.guidance is None

    press(qtbot, term, Qt.Key.Key_F6)
    qtbot.waitUntil(lambda: w.dialog is not None, timeout=2000)
    w.dialog.choose_service("passport")  # type: ignore[union-attr]
    qtbot.mouseClick(w.dialog.ok_button, Qt.MouseButton.LeftButton)  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: m.guidance is not None, timeout=5000)
    assert w.guidance_zh.text() == "请留意叫号，到 1、2 号窗口办理普通护照申请"
    assert w.guidance_en.text() == ("Please wait for your number, then go to counter 1 or 2 for "
                                    "Ordinary passport application")


# ---------------------------------------------------------------------------------------------- printer faults


def test_the_help_counter_shows_a_kiosks_printer_fault_and_reprints_at_another_kiosk(
        qtbot: Any, hall: BrokerThread, terminal: Callable[..., Terminal]) -> None:
    assert hall_config().help_counter == 12
    east = BrokerClient(hall.endpoint, client_id="kiosk-east")
    west = BrokerClient(hall.endpoint, client_id="kiosk-west")
    try:
        west.request("hello", role="kiosk", name="西门取号机")  # online, with a working printer
        ticket = east.request("take_ticket", service="consult_complaint")["ticket"]
        east.request("printer_fault", code="PAPER_OUT", ticket=str(ticket["id"]), name="东门取号机")
        helper = terminal(counter=12)
        other = terminal(counter=4)
        sign_in(qtbot, helper, "c12a")
        sign_in(qtbot, other, "c04a")
        w = helper.window
        label = ticket["label"]
        qtbot.waitUntil(lambda: w.printer_panel.isVisible() and label in w.printer_lines.text(), timeout=5000)
        assert w.printer_title.text() == "取号机打印机故障"
        lines = w.printer_lines.text().splitlines()
        assert lines[0].startswith("取号机“东门取号机”打印机故障（PAPER_OUT），自 09:00 起")
        assert lines[1] == f"“东门取号机”未打印的号：{label}（市民已被引导到本窗口补打）"
        assert not other.window.printer_panel.isVisible()  # only the help counter is alerted
        shot(w, "printer-fault-alert.png")
        # One tap reprints it at the kiosk whose printer works.
        qtbot.mouseClick(w.reprint_buttons[label], Qt.MouseButton.LeftButton)
        settle(qtbot, helper)
        assert helper.model.message is not None
        assert helper.model.message.zh == f"已通知取号机“西门取号机”补打 {label} 号", helper.model.message
        qtbot.waitUntil(lambda: "西门取号机" in w.printer_lines.text(), timeout=5000)
        assert f"“西门取号机”待补打：{label}" in w.printer_lines.text()
        west.request("reprint_done", ticket=str(ticket["id"]), name="西门取号机")
        # A number typed in: ordered too (the broker refuses an unknown one, in the clerk's language).
        w.reprint_edit.setText("z999")
        qtbot.mouseClick(w.reprint_button, Qt.MouseButton.LeftButton)
        settle(qtbot, helper)
        assert helper.model.message is not None and helper.model.message.code == "UNKNOWN_TICKET"
        # The east kiosk's printer works again: the alert is gone from the help counter.
        east.request("printer_ok")
        qtbot.waitUntil(lambda: not w.printer_lines.isVisible(), timeout=5000)
        assert w.printer_title.text() == "补打号票（本窗口为帮助窗口）"
    finally:
        east.close()
        west.close()


def test_which_counters_see_printer_faults_and_where_reprints_go() -> None:
    """The model alone: the help counter (or every counter when the hall names none) sees the alerts; a
    reprint goes to the issuing kiosk unless some kiosk has a fault, then to one online that has none."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def send(type_: str, **args: Any) -> str:
        sent.append((type_, args))
        return f"r{len(sent)}"

    fault = {"kiosk": "k1", "name": "东门", "fault": {"code": "PAPER_OUT", "since": "2026-11-24T01:00:00Z"},
             "unprinted": [{"id": 7, "label": "A007", "service": "passport"}], "reprints": []}
    devices = {"k1": {"role": "kiosk", "online": True, "name": "东门"},
               "k2": {"role": "kiosk", "online": False, "name": "西门"},
               "k3": {"role": "kiosk", "online": True, "name": "南门"}}
    model = CounterModel(12, send, ManualClock(datetime(2026, 11, 24, 9, tzinfo=TZ)))
    model.on_connection(True)
    model.on_state({"timezone": "Asia/Shanghai", "hall": {"help_counter": 12}, "printers": {"k1": fault},
                    "devices": devices, "counters": {}})
    assert model.is_help_counter() and model.unprinted() == ["A007"]
    assert model.printer_lines("en")[0] == "Kiosk 东门: printer fault (PAPER_OUT) since 09:00; no tickets there"
    assert model.reprint_kiosk() == "k3"  # online and without a fault (k2 is offline)
    model.clerk, model.session = "c12a", "s"  # signed in
    model.reprint(" a007 ")
    assert sent[-1] == ("reprint_ticket", {"ticket": "A007", "counter": 12, "kiosk": "k3"})
    model.on_state({**model.state, "printers": {}})
    assert model.reprint_kiosk() is None  # no fault anywhere: the broker sends it to the issuing kiosk
    other = CounterModel(4, send, ManualClock(datetime(2026, 11, 24, 9, tzinfo=TZ)))
    other.on_state({"hall": {"help_counter": 12}, "printers": {"k1": fault}})
    assert not other.is_help_counter() and other.printer_alerts() == []
    other.on_state({"hall": {"help_counter": None}, "printers": {"k1": fault}})
    assert other.is_help_counter() and other.unprinted() == ["A007"]  # no help counter named: every counter


def test_when_the_day_closes_the_terminal_is_signed_out_and_says_why(
        qtbot: Any, terminal: Callable[..., Terminal], hall: BrokerThread, kiosk: BrokerClient,
        clock: ManualClock) -> None:
    """docs/calling-rules.md "Closing the business day": the clerk sees that the hall closed, not a
    sign-out from elsewhere, and the next morning the counter is free (no COUNTER_BUSY)."""
    take(kiosk, clock, "newborn")
    term = terminal(4)
    w = term.window
    sign_in(qtbot, term, "c04a")
    press(qtbot, term, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: current_label(term) == "D001", timeout=5000)
    settle(qtbot, term)
    clock.set(datetime(2026, 11, 24, 18, 0, tzinfo=TZ))  # 17:00 + close_after_minutes: the heartbeat closes
    qtbot.waitUntil(lambda: not term.model.signed_in and w.stack.currentWidget() is w.signin, timeout=5000)
    qtbot.waitUntil(lambda: "今日已闭厅" in w.signin.message.text(), timeout=5000)
    assert hall.broker is not None and hall.broker.hall.tickets == {}
    shot(w, "13-day-closed.png")
    clock.set(datetime(2026, 11, 25, 8, 30, tzinfo=TZ))
    sign_in(qtbot, term, "c04a")
    assert current_label(term) is None


def test_the_transfer_dialog_lists_the_fee_service_and_the_fee_window_first(
        qtbot: Any, terminal: Callable[..., Terminal], kiosk: BrokerClient, clock: ManualClock) -> None:
    # Issue 15: a clerk most often sends a citizen to pay (统一收费). hall.toml marks that service with
    # role = "fee"; the dialog puts it, and the windows that serve it (11), first after "(any)", marked.
    kiosk.request("sign_in", counter=11, clerk="c11a", pin=pin_of("c11a"))  # the fee window is open
    take(kiosk, clock, "move_in", 3)
    term = terminal(4)
    w, m = term.window, term.model
    sign_in(qtbot, term, "c04a")
    for key, phase in ((Qt.Key.Key_F1, "called"), (Qt.Key.Key_F4, "serving")):
        press(qtbot, term, key)
        qtbot.waitUntil(lambda p=phase: m.phase() == p, timeout=5000)
        settle(qtbot, term)
    press(qtbot, term, Qt.Key.Key_F6)
    qtbot.waitUntil(lambda: isinstance(w.dialog, TransferDialog), timeout=2000)
    dialog = w.dialog
    assert isinstance(dialog, TransferDialog)
    role = Qt.ItemDataRole.UserRole
    services = [dialog.services.item(i).data(role) for i in range(dialog.services.count())]
    configured = [s.code for s in hall_config().services]
    assert services == [None, "unified_fees", *[c for c in configured if c != "unified_fees"]]
    assert dialog.services.item(1).text().startswith("U  统一收费  · 缴费")
    counters = [dialog.counters.item(i).data(role) for i in range(dialog.counters.count())]
    assert counters == [None, 11, *[c.number for c in hall_config().counters if c.number != 11]]
    assert dialog.counters.item(1).text().startswith("11号窗口（统一收费）  · 缴费")
    assert dialog.services.currentRow() == 0 and dialog.counters.currentRow() == 0  # nothing chosen for the clerk
    shot(dialog, "transfer-fee-first.png")
    dialog.choose_service("unified_fees")
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: m.guidance is not None, timeout=5000)
    assert w.guidance_zh.text().endswith("办理统一收费")
