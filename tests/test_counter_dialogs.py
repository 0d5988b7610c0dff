"""The counter's dialogs (issue 15): the transfer dialog marks services no open counter serves and keeps the
typed note when the broker refuses; the reinstate dialog says where the ticket goes back to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from queuehall.counter.window import ReinstateDialog, TransferDialog

from queuehall.client import BrokerClient
from queuehall.clock import ManualClock
from tests.test_counter_gui import (  # noqa: F401  (fixtures)
    Terminal,
    clock,
    hall,
    kiosk,
    pin_of,
    press,
    settle,
    shot,
    sign_in,
    take,
    terminal,
)


def test_transfer_marks_services_without_an_open_counter_and_keeps_the_note_when_refused(
        qtbot: Any, terminal: Callable[..., Terminal], kiosk: BrokerClient,  # noqa: F811
        clock: ManualClock) -> None:  # noqa: F811
    for n in (1, 2):
        kiosk.request("sign_in", counter=n, clerk=f"c0{n}a", pin=pin_of(f"c0{n}a"))
    take(kiosk, clock, "move_out", 3)
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
    items = {dialog.services.item(i).data(Qt.ItemDataRole.UserRole): dialog.services.item(i).text()
             for i in range(dialog.services.count())}
    assert items["eia_approval"].endswith("(暂无窗口办理)"), items["eia_approval"]
    assert "暂无" not in items["passport"]  # counters 1 and 2 are open
    dialog.choose_service("eia_approval")
    dialog.note.setText("已缴费，请核对发票")
    shot(dialog, "transfer-dialog-marks-and-note.png")
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "SERVICE_CLOSED" in w.message.text(), timeout=5000)
    assert m.phase() == "serving"
    # The refusal names the service as the clerk knows it, not by its code.
    assert m.message is not None and "建设项目环境影响评价审批" in m.message.zh and "eia_approval" not in m.message.zh
    assert "eia_approval" not in m.message.en, m.message.en
    press(qtbot, term, Qt.Key.Key_F6)  # the clerk tries another service: the note is still there
    qtbot.waitUntil(lambda: isinstance(w.dialog, TransferDialog), timeout=2000)
    again = w.dialog
    assert isinstance(again, TransferDialog) and again.note.text() == "已缴费，请核对发票"
    again.reject()
    qtbot.waitUntil(lambda: w.dialog is None, timeout=2000)


def test_the_reinstate_dialog_says_where_the_ticket_goes(
        qtbot: Any, terminal: Callable[..., Terminal], kiosk: BrokerClient,  # noqa: F811
        clock: ManualClock) -> None:  # noqa: F811
    label = take(kiosk, clock, "passport")
    term = terminal(1)
    w, m = term.window, term.model
    sign_in(qtbot, term, "c01a")
    press(qtbot, term, Qt.Key.Key_F1)
    qtbot.waitUntil(lambda: m.phase() == "called", timeout=5000)
    settle(qtbot, term)
    w.trigger("no_show", confirmed=True)
    qtbot.waitUntil(lambda: m.phase() == "idle" and w.no_show_list.count() == 1, timeout=5000)
    w.trigger("reinstate")
    qtbot.waitUntil(lambda: isinstance(w.dialog, ReinstateDialog), timeout=2000)
    dialog = w.dialog
    assert isinstance(dialog, ReinstateDialog)
    where = "排在原来的位置（最前面）" if m.state["hall"]["noshow_reinstate"] == "front" else "的末尾"
    assert dialog.where.text().startswith(f"{label} 将回到「普通护照申请」队列"), dialog.where.text()
    assert dialog.where.text().endswith(where), dialog.where.text()
    QApplication.processEvents()
    shot(dialog, "reinstate-dialog-where.png")
    dialog.reject()
    qtbot.waitUntil(lambda: w.dialog is None, timeout=2000)
