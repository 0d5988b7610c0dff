"""The counter window (窗口叫号终端): thin Qt widgets over :class:`counter.model.CounterModel`.

Every button and shortcut calls :meth:`CounterWindow.trigger`; every input from the
broker link goes to the model and then :meth:`CounterWindow.refresh` redraws the
screen from the model. Requests are asynchronous (``QtLink.request`` returns at
once), so a slow or absent broker never blocks the window: the screen says what is
in flight and disables the action buttons until the answer (or a timeout) arrives.

Dialogs (transfer, pause, call a specific ticket, reinstate) are opened with
``open()``, not ``exec()``, so the event loop keeps running while they are shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QFont, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QButtonGroup,
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStackedWidget,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from queuehall.counter.model import (
    ACTIONS,
    CALLED,
    LANGUAGE_SHORTCUT,
    SERVING,
    SHORTCUTS,
    CounterModel,
    Message,
)

from queuehall.qtfonts import cjk_family

# Actions that first ask for details in a dialog.
DIALOG_ACTIONS = ("transfer", "pause", "call_ticket", "reinstate")


STYLE = """
QWidget { font-size: 17px; color: #1b2430; }
QWidget#root, QWidget#signin, QWidget#work { background: #eef2f7; }
QFrame#header { background: #0f3d6e; }
QFrame#header QLabel { color: white; }
QLabel#counterName { font-size: 26px; font-weight: bold; }
QLabel#clerk { font-size: 18px; }
QLabel#conn { border-radius: 14px; padding: 4px 14px; font-size: 17px; font-weight: bold; }
QLabel#conn[up="true"] { background: #1f8a4c; color: white; }
QLabel#conn[up="false"] { background: #c62828; color: white; }
QPushButton#headerButton { background: #1d5a99; color: white; border: 1px solid #8fb4dd; border-radius: 8px;
    padding: 6px 16px; min-height: 40px; font-size: 17px; }
QPushButton#headerButton:disabled { color: #9fb5cc; border-color: #3d6a99; }
QFrame#card { background: white; border: 1px solid #cfd8e3; border-radius: 12px; }
QLabel#cardTitle { font-size: 19px; font-weight: bold; color: #0f3d6e; }
QLabel#phase { font-size: 22px; font-weight: bold; padding: 6px 12px; border-radius: 8px; }
QLabel#phase[phase="idle"] { background: #e3f2e8; color: #1f6b3a; }
QLabel#phase[phase="called"] { background: #fff3d6; color: #8a5a00; }
QLabel#phase[phase="serving"] { background: #dcebfb; color: #0f3d6e; }
QLabel#phase[phase="paused"] { background: #eceff1; color: #455a64; }
QLabel#phase[phase="signed_out"] { background: #eceff1; color: #455a64; }
QLabel#ticket { font-size: 96px; font-weight: bold; color: #0f3d6e; }
QLabel#ticket[empty="true"] { font-size: 40px; color: #8a97a8; }
QLabel#service { font-size: 26px; font-weight: bold; }
QLabel#info { font-size: 18px; color: #37474f; }
QLabel#note { font-size: 18px; color: #8a5a00; background: #fff8e1; border-radius: 6px; padding: 4px 8px; }
QLabel#promised { font-size: 19px; font-weight: bold; color: #1f6b3a; }
QLabel#small { font-size: 14px; color: #5f6b7a; }
QLabel#figures { font-size: 19px; font-weight: bold; }
QListWidget, QTableWidget { background: white; border: 1px solid #cfd8e3; border-radius: 6px;
    font-size: 18px; }
QListWidget#materials::item { padding: 6px; }
QListWidget::indicator { width: 26px; height: 26px; }
QListWidget::item:disabled { color: #9aa5b1; }
QListWidget::item { min-height: 40px; }
QTableWidget::item { padding: 4px; }
QTableWidget::item:selected, QListWidget::item:selected { background: #cfe3fa; color: #0f3d6e; }
QHeaderView::section { background: #e8edf3; border: none; padding: 6px; font-size: 16px; font-weight: bold; }
QLabel#message { font-size: 19px; padding: 10px 14px; border-radius: 8px; }
QLabel#message[kind="error"] { background: #fde7e7; color: #a01818; border: 2px solid #e57373; }
QLabel#message[kind="ok"] { background: #e3f2e8; color: #1f6b3a; border: 1px solid #81c784; }
QLabel#message[kind="info"] { background: #e3effb; color: #0f3d6e; border: 1px solid #90caf9; }
QLabel#message[kind="warning"] { background: #fff4e0; color: #7a4a00; border: 2px solid #ffb74d; }
QLabel#confirmText { font-size: 20px; }
QLabel#offline { background: #c62828; color: white; font-size: 21px; font-weight: bold; padding: 10px;
    border-radius: 8px; }
QLabel#calendarWarning { background: #fff3c4; color: #6d3b00; font-size: 17px; font-weight: bold; padding: 8px;
    border: 2px solid #f0b400; border-radius: 8px; }
QFrame#printerAlert { background: #eef4fb; border: 2px solid #90caf9; border-radius: 12px; }
QFrame#printerAlert[alert="true"] { background: #fde7e7; border: 3px solid #c62828; }
QLabel#printerTitle { font-size: 19px; font-weight: bold; color: #0f3d6e; }
QLabel#printerTitle[alert="true"] { color: #a01818; }
QLabel#printerLine { font-size: 18px; color: #4e0d0d; }
QFrame#guidance { background: #fff3c4; border: 3px solid #f0b400; border-radius: 12px; }
QLabel#guidanceTitle { font-size: 17px; font-weight: bold; color: #8a5a00; }
QLabel#guidanceZh { font-size: 30px; font-weight: bold; color: #4e3400; }
QLabel#guidanceEn { font-size: 21px; color: #4e3400; }
QPushButton { min-height: 48px; border-radius: 8px; border: 1px solid #9fb0c3; background: #f7f9fb;
    padding: 4px 12px; font-size: 18px; }
QPushButton:focus { border: 3px solid #f0b400; }
QPushButton:pressed { background: #d6e2ef; }
QPushButton:disabled { color: #a5afbb; background: #e9edf1; border-color: #d5dbe2; }
QPushButton#action { min-height: 76px; font-size: 20px; font-weight: bold; color: white; border: none; }
QPushButton#action[compact="true"] { min-height: 60px; font-size: 18px; }
QPushButton#action:focus { border: 4px solid #f0b400; }
QPushButton#action[tone="green"] { background: #1f8a4c; }
QPushButton#action[tone="blue"] { background: #1d5a99; }
QPushButton#action[tone="orange"] { background: #d9822b; }
QPushButton#action[tone="gray"] { background: #607d8b; }
QPushButton#action[tone="purple"] { background: #6a4c93; }
QPushButton#action:disabled { background: #dfe4ea; color: #9aa5b1; }
QPushButton#primary { background: #1f8a4c; color: white; font-size: 22px; font-weight: bold; min-height: 60px;
    border: none; }
QPushButton#primary:disabled { background: #dfe4ea; color: #9aa5b1; }
QPushButton#warn { background: #d9822b; color: white; font-size: 20px; font-weight: bold; min-height: 56px;
    border: none; }
QPushButton#post { min-height: 60px; font-size: 20px; }
QPushButton#post:checked { background: #1d5a99; color: white; }
QPushButton#key { min-height: 56px; min-width: 72px; font-size: 24px; }
QLineEdit { min-height: 48px; font-size: 22px; padding: 2px 10px; border: 1px solid #9fb0c3;
    border-radius: 6px; background: white; }
QLineEdit:focus { border: 2px solid #1d5a99; }
QDialog { background: #eef2f7; }
"""

TONES = {"call_next": "green", "recall": "blue", "no_show": "orange", "start": "blue", "finish": "green",
         "transfer": "purple", "pause": "gray", "resume": "green", "call_ticket": "blue", "reinstate": "gray",
         "sign_out": "gray"}


def cjk_font() -> QFont:
    """The hall's CJK family (queuehall.qtfonts) at the base size."""
    font = QFont(cjk_family())
    font.setPixelSize(17)
    return font


def apply_app_style(app: QApplication) -> None:
    """The CJK font for the whole application (the window carries its own stylesheet)."""
    app.setFont(cjk_font())


def _restyle(w: QWidget, **props: Any) -> None:
    """Set dynamic properties used by the stylesheet and re-polish so they take effect."""
    changed = False
    for k, v in props.items():
        if w.property(k) != v:
            w.setProperty(k, v)
            changed = True
    if changed:
        w.style().unpolish(w)
        w.style().polish(w)


class _WrappedItems(QStyledItemDelegate):
    """Item heights for a word-wrapping list: the text wrapped at the width the style really leaves it (the
    view's width less the check box and the stylesheet's padding). Qt's own size hint wraps at the whole
    item's width, so a checklist line that needs three lines gets two and its end is cut to "…"."""

    def __init__(self, view: QListWidget) -> None:
        super().__init__(view)
        self.view = view

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        width = self.view.viewport().width()
        opt.rect = QRect(0, 0, width, 10_000)
        text = self.view.style().subElementRect(QStyle.SubElement.SE_ItemViewItemText, opt, self.view)
        opt.rect = QRect(0, 0, text.width(), 10_000)  # the style wraps at option.rect's width
        return QSize(width, super().sizeHint(opt, index).height())


class _WrappedLabel(QLabel):
    """A word-wrapping label that keeps the height its text needs at its width: a layout squeezed by a banner
    shrinks the scrollable lists below it, not the second line of a service name."""

    def __init__(self) -> None:
        super().__init__()
        self.setWordWrap(True)

    def _keep_height(self) -> None:
        need = self.heightForWidth(self.width()) if self.text() else 0
        if need != self.minimumHeight():
            self.setMinimumHeight(need)

    def setText(self, text: str) -> None:
        """QLabel.setText, then the minimum height for the new text."""
        super().setText(text)
        self._keep_height()

    def resizeEvent(self, event: Any) -> None:
        """Qt resize hook: a new width needs a new height."""
        super().resizeEvent(event)
        self._keep_height()


def _wrapping_list() -> QListWidget:
    """A list whose lines wrap to its width: a long service name, note or checklist line is read whole,
    never cut to "…" nor hidden past the right edge behind a sideways scroll."""
    view = QListWidget()
    view.setWordWrap(True)
    view.setTextElideMode(Qt.TextElideMode.ElideNone)
    view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    # Re-lay the items out when the list's width changes (a scroll bar appears, the window resizes): with the
    # default Fixed mode a wrapped item keeps the height of its first width and its last line is cut.
    view.setResizeMode(QListView.ResizeMode.Adjust)
    view.setItemDelegate(_WrappedItems(view))
    return view


def _card(title: QLabel | None = None) -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("card")
    lay = QVBoxLayout(frame)
    lay.setContentsMargins(16, 12, 16, 12)
    lay.setSpacing(8)
    if title is not None:
        title.setObjectName("cardTitle")
        lay.addWidget(title)
    return frame, lay


class _Dialog(QDialog):
    """Base for the counter's dialogs: big OK/Cancel buttons, Enter accepts, Esc cancels."""

    def __init__(self, model: CounterModel, title: str, parent: QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_WindowPropagation)  # inherit the window's font
        self.model = model
        self.setWindowTitle(title)
        self.setModal(True)
        self.body = QVBoxLayout(self)
        self.body.setContentsMargins(20, 16, 20, 16)
        self.body.setSpacing(10)
        heading = QLabel(title)
        heading.setObjectName("cardTitle")
        self.body.addWidget(heading)
        self.ok_button = QPushButton(model.text("ok"))
        self.ok_button.setObjectName("primary")
        self.ok_button.setDefault(True)
        self.cancel_button = QPushButton(model.text("cancel"))
        self.cancel_button.setMinimumHeight(60)
        self.ok_button.clicked.connect(self._confirm)
        self.cancel_button.clicked.connect(self.reject)

    def finish_layout(self) -> None:
        """Add the Cancel/OK row; subclasses call it after their own widgets."""
        row = QHBoxLayout()
        row.addWidget(self.cancel_button, 1)
        row.addWidget(self.ok_button, 2)
        self.body.addLayout(row)
        self.update_ok()

    def update_ok(self) -> None:
        """Enable OK only while the input is complete."""
        self.ok_button.setEnabled(self.valid())

    def valid(self) -> bool:
        """Whether the input is complete enough to send (subclasses refine it)."""
        return True

    def _confirm(self) -> None:
        if self.valid():
            self.accept()


class ConfirmDialog(_Dialog):
    """Asks before a tap that cannot be taken back (过号, the recall that makes a no-show, 签退).

    Cancel is the default button, so a second tap of Enter or a stray key does not confirm; the
    confirming button names the action (确认过号, 记为过号, 确认签退)."""

    def __init__(self, model: CounterModel, action: str, question: Message, parent: QWidget) -> None:
        super().__init__(model, model.text("confirm_title"), parent)
        self.action = action
        first, second = (question.zh, question.en) if model.lang == "zh" else (question.en, question.zh)
        self.question = QLabel(f"{first}\n{second}")
        self.question.setWordWrap(True)
        self.question.setObjectName("confirmText")
        self.body.addWidget(self.question)
        self.ok_button.setText(model.confirm_button(action))
        self.ok_button.setDefault(False)
        self.ok_button.setAutoDefault(False)
        self.cancel_button.setDefault(True)
        self.resize(720, 300)
        self.finish_layout()


class TransferDialog(_Dialog):
    """Choose a service and/or a counter and write a note the next clerk and the display see."""

    def __init__(self, model: CounterModel, parent: QWidget, note: str = "") -> None:
        t = model.current_ticket()
        super().__init__(model, model.text("transfer_title", ticket=t.label if t else ""), parent)
        self.resize(900, 640)
        lists = QHBoxLayout()
        col = QVBoxLayout()
        col.addWidget(QLabel(model.text("transfer_to_service")))
        self.services = _wrapping_list()
        any_item = QListWidgetItem(model.text("transfer_any"))
        any_item.setData(Qt.ItemDataRole.UserRole, None)
        self.services.addItem(any_item)
        fee_mark = f"  · {model.text('fee_mark')}"
        for s in model.transfer_services():  # the fee services first
            text = f"{s['prefix']}  {model.pick(s.get('name_zh'), s.get('name_en'))}"
            if s.get("role") == "fee":
                text += fee_mark
            if not model.service_staffed(str(s["code"])):  # the ticket would wait for a counter to open
                text += f"  ({model.text('no_open_counter_mark')})"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, s["code"])
            self.services.addItem(item)
        self.services.setCurrentRow(0)
        col.addWidget(self.services)
        lists.addLayout(col, 1)
        col = QVBoxLayout()
        col.addWidget(QLabel(model.text("transfer_to_counter")))
        self.counters = _wrapping_list()
        any_item = QListWidgetItem(model.text("transfer_any"))
        any_item.setData(Qt.ItemDataRole.UserRole, None)
        self.counters.addItem(any_item)
        fees = set(model.fee_services())
        for c in model.transfer_counters():  # the fee windows first
            name = model.pick(c.get("name_zh"), c.get("name_en"))
            if fees & set(c.get("services") or []):
                name += fee_mark
            closed = c.get("state") == "closed" and c["number"] != model.counter
            item = QListWidgetItem(f"{name}  ({model.text('counter_closed_mark')})" if closed else name)
            item.setData(Qt.ItemDataRole.UserRole, c["number"])
            if closed:  # the broker refuses a transfer to a closed counter
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
            self.counters.addItem(item)
        self.counters.setCurrentRow(0)
        col.addWidget(self.counters)
        lists.addLayout(col, 1)
        self.body.addLayout(lists, 1)
        self.body.addWidget(QLabel(model.text("transfer_note")))
        self.note = QLineEdit()
        self.note.setText(note)  # what the clerk typed before a refusal is not lost
        self.body.addWidget(self.note)
        self.services.currentRowChanged.connect(lambda _row: self.update_ok())
        self.counters.currentRowChanged.connect(lambda _row: self.update_ok())
        self.finish_layout()
        self.services.setFocus()

    def choose_service(self, code: str | None) -> None:
        """Select the service with ``code`` (None: any)."""
        for i in range(self.services.count()):
            if self.services.item(i).data(Qt.ItemDataRole.UserRole) == code:
                self.services.setCurrentRow(i)

    def choose_counter(self, number: int | None) -> None:
        """Select counter ``number`` (None: any)."""
        for i in range(self.counters.count()):
            if self.counters.item(i).data(Qt.ItemDataRole.UserRole) == number:
                self.counters.setCurrentRow(i)

    def target(self) -> tuple[str | None, int | None, str]:
        """(service code or None, counter number or None, note) as chosen."""
        s = self.services.currentItem()
        c = self.counters.currentItem()
        service = s.data(Qt.ItemDataRole.UserRole) if s else None
        counter = c.data(Qt.ItemDataRole.UserRole) if c else None
        return service, counter, self.note.text()

    def valid(self) -> bool:
        """A service or a counter (or both) is chosen."""
        service, counter, _note = self.target()
        return service is not None or counter is not None


class PauseDialog(_Dialog):
    """One big button per configured pause reason."""

    def __init__(self, model: CounterModel, parent: QWidget) -> None:
        super().__init__(model, model.text("pause_title"), parent)
        self.resize(520, 200)
        self.reason: str | None = None
        self.buttons: dict[str, QPushButton] = {}
        grid = QGridLayout()
        for i, p in enumerate(model.pause_reasons()):
            b = QPushButton(model.pick(p.get("name_zh"), p.get("name_en")))
            b.setMinimumHeight(64)
            b.clicked.connect(lambda _=False, code=p["code"]: self.choose(code))
            grid.addWidget(b, i // 2, i % 2)
            self.buttons[p["code"]] = b
        self.body.addLayout(grid)
        self.ok_button.hide()  # a reason button is the confirmation
        self.finish_layout()
        if self.buttons:
            next(iter(self.buttons.values())).setFocus()

    def choose(self, code: str) -> None:
        """Take pause reason ``code`` and close the dialog (accepted)."""
        self.reason = code
        self.accept()


class CallTicketDialog(_Dialog):
    """Pick a waiting ticket (or type its number) and give the reason, which is recorded."""

    def __init__(self, model: CounterModel, parent: QWidget, preselect: int | None = None) -> None:
        super().__init__(model, model.text("call_ticket_title"), parent)
        self.resize(720, 620)
        self.tickets = _wrapping_list()
        for row in model.waiting_list():
            service = row.service_zh if model.lang == "zh" else row.service_en
            item = QListWidgetItem(f"{row.label}   {service}   "
                                   f"{model.text('minutes_short', minutes=row.wait_minutes)}")
            item.setData(Qt.ItemDataRole.UserRole, row.label)
            self.tickets.addItem(item)
            if row.ticket_id == preselect:
                self.tickets.setCurrentItem(item)
        self.body.addWidget(self.tickets, 1)
        self.body.addWidget(QLabel(model.text("call_ticket_label")))
        self.label = QLineEdit()
        self.body.addWidget(self.label)
        self.body.addWidget(QLabel(model.text("call_ticket_reason")))
        self.reason = QLineEdit()
        self.body.addWidget(self.reason)
        quick = QHBoxLayout()
        for key in ("reason_appointment", "reason_returned", "reason_supervisor"):
            b = QPushButton(model.text(key))
            b.clicked.connect(lambda _=False, k=key: self.reason.setText(model.text(k)))
            quick.addWidget(b)
        self.body.addLayout(quick)
        self.tickets.currentItemChanged.connect(self._picked)
        self.label.textChanged.connect(lambda _t: self.update_ok())
        self.reason.textChanged.connect(lambda _t: self.update_ok())
        self.finish_layout()
        if self.tickets.currentItem() is not None:
            self._picked(self.tickets.currentItem(), None)
            self.reason.setFocus()
        else:
            self.tickets.setFocus()

    def _picked(self, item: QListWidgetItem | None, _old: QListWidgetItem | None) -> None:
        if item is not None:
            self.label.setText(item.data(Qt.ItemDataRole.UserRole))

    def valid(self) -> bool:
        """A ticket number and a reason are given."""
        return bool(self.label.text().strip()) and bool(self.reason.text().strip())


class ReinstateDialog(_Dialog):
    """Pick one of today's no-shows to put back in its queue."""

    def __init__(self, model: CounterModel, parent: QWidget, preselect: int | None = None) -> None:
        super().__init__(model, model.text("reinstate_title"), parent)
        self.resize(620, 460)
        self.tickets = _wrapping_list()
        for t in model.no_shows():
            called = _clock_time(model, t.called_at)
            item = QListWidgetItem(f"{t.label}   {model.service_name(t.queue_service)}   {called}")
            item.setData(Qt.ItemDataRole.UserRole, t.label)
            self.tickets.addItem(item)
            if t.id == preselect:
                self.tickets.setCurrentItem(item)
        if self.tickets.currentItem() is None and self.tickets.count():
            self.tickets.setCurrentRow(0)
        self.body.addWidget(self.tickets, 1)
        self.where = QLabel()  # where the chosen ticket goes back to (its queue, front or back)
        self.where.setObjectName("info")
        self.where.setWordWrap(True)
        self.body.addWidget(self.where)
        self.tickets.currentItemChanged.connect(lambda *_a: self._show_where())
        self._show_where()
        self.tickets.itemActivated.connect(lambda _i: self._confirm())
        self.finish_layout()
        self.tickets.setFocus()

    def _show_where(self) -> None:
        self.where.setText(self.model.reinstate_where(self.label()))
        self.update_ok()

    def label(self) -> str:
        """The chosen no-show's label (empty when none is chosen)."""
        item = self.tickets.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else ""

    def valid(self) -> bool:
        """A no-show is chosen."""
        return bool(self.label())


def _clock_time(model: CounterModel, at: datetime | None) -> str:
    return at.astimezone(model._tz).strftime("%H:%M") if at else ""


class SignInPage(QWidget):
    """Post A/B choice, clerk id, PIN with an on-screen keypad (touch), Sign in and Take over."""

    submitted = Signal(bool)  # takeover

    def __init__(self, model: CounterModel) -> None:
        super().__init__()
        self.setObjectName("signin")
        self.model = model
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        self.title = QLabel()
        card, lay = _card(self.title)
        card.setMinimumWidth(980)
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        lay.addWidget(self.hint)
        columns = QHBoxLayout()
        columns.setSpacing(24)
        form_col = QVBoxLayout()
        form_col.setSpacing(10)
        posts = QHBoxLayout()
        self.post_buttons: dict[str, QPushButton] = {}
        group = QButtonGroup(self)
        group.setExclusive(True)
        for post in ("A", "B"):
            b = QPushButton()
            b.setObjectName("post")
            b.setCheckable(True)
            b.clicked.connect(lambda _=False, p=post: self.choose_post(p))
            group.addButton(b)
            posts.addWidget(b)
            self.post_buttons[post] = b
        form_col.addLayout(posts)
        form = QGridLayout()
        self.clerk_label = QLabel()
        self.pin_label = QLabel()
        self.clerk = QLineEdit()
        self.pin = QLineEdit()
        self.pin.setEchoMode(QLineEdit.EchoMode.Password)
        form.addWidget(self.clerk_label, 0, 0)
        form.addWidget(self.clerk, 0, 1)
        form.addWidget(self.pin_label, 1, 0)
        form.addWidget(self.pin, 1, 1)
        form_col.addLayout(form)
        self.sign_in_button = QPushButton()
        self.sign_in_button.setObjectName("primary")
        self.sign_in_button.clicked.connect(lambda: self.submitted.emit(False))
        form_col.addWidget(self.sign_in_button)
        self.takeover_button = QPushButton()
        self.takeover_button.setObjectName("warn")
        self.takeover_button.clicked.connect(lambda: self.submitted.emit(True))
        form_col.addWidget(self.takeover_button)
        form_col.addStretch(1)
        columns.addLayout(form_col, 3)
        # On-screen keypad for touch terminals; it types into the field that last had focus.
        keypad = QGridLayout()
        keypad.setSpacing(6)
        keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", "C"]
        self.key_buttons: dict[str, QPushButton] = {}
        for i, k in enumerate(keys):
            b = QPushButton(k)
            b.setObjectName("key")
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keep the cursor in the field being typed
            b.clicked.connect(lambda _=False, key=k: self.press_key(key))
            keypad.addWidget(b, i // 3, i % 3)
            self.key_buttons[k] = b
        columns.addLayout(keypad, 2)
        lay.addLayout(columns)
        self.message = QLabel()
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        lay.addWidget(self.message)
        row.addWidget(card)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(1)
        self.clerk.returnPressed.connect(self.pin.setFocus)
        self.pin.returnPressed.connect(lambda: self.submitted.emit(False))
        self._typing: QLineEdit = self.pin

    def showEvent(self, event: Any) -> None:
        """Put the cursor where the clerk types next: the clerk ID, or the PIN once the ID is filled in."""
        super().showEvent(event)
        (self.pin if self.clerk.text() else self.clerk).setFocus()

    def choose_post(self, post: str) -> None:
        """Fill in the clerk id of the counter's A or B post and move to the PIN."""
        entry = self.model.posts.get(post)
        if entry:
            self.clerk.setText(entry[0])
        self.post_buttons[post].setChecked(True)
        self.pin.setFocus()

    def press_key(self, key: str) -> None:
        """On-screen keypad: type into the field that last had focus (the PIN by default)."""
        field = self.clerk if self.clerk.hasFocus() else self.pin if self.pin.hasFocus() else self._typing
        if key == "⌫":
            field.backspace()
        elif key == "C":
            field.clear()
        else:
            field.insert(key)

    def focus_changed(self, new: QWidget | None) -> None:
        """Remember the field the on-screen keypad types into."""
        if new in (self.clerk, self.pin):
            self._typing = new

    def refresh(self) -> None:
        """Redraw the form from the model (texts, language, what may be pressed, the message)."""
        m = self.model
        self.title.setText(f"{m.text('signin_title')} · {m.counter_name()}")
        self.hint.setText(m.text("signin_hint"))
        for post, b in self.post_buttons.items():
            entry = m.posts.get(post)
            b.setVisible(entry is not None)
            if entry:
                b.setText(m.text("post_button", post=post, name=entry[1] if m.lang == "zh" else entry[2]))
        self.clerk_label.setText(m.text("clerk_label"))
        self.pin_label.setText(m.text("pin_label"))
        pending = m.pending_action() == "sign_in"
        self.sign_in_button.setText(m.text("pending_sign_in") if pending else m.text("sign_in"))
        self.sign_in_button.setEnabled(m.can_sign_in())
        self.takeover_button.setText(m.text("take_over"))
        self.takeover_button.setVisible(m.offer_takeover)
        self.takeover_button.setEnabled(m.can_sign_in())
        _show_message(self.message, m.message, m.lang)


def _show_message(label: QLabel, msg: Message | None, lang: str) -> None:
    """Show a bilingual message, the screen's language first, with the error code when there is one."""
    if msg is None:
        label.hide()
        return
    first, second = (msg.zh, msg.en) if lang == "zh" else (msg.en, msg.zh)
    code = f"  [{msg.code}]" if msg.code else ""
    label.setText(f"{first}{code}\n{second}")
    _restyle(label, kind=msg.kind)
    label.show()


class CounterWindow(QWidget):
    """The whole counter screen. ``link`` is a :class:`queuehall.qtlink.QtLink` (not yet started)."""

    def __init__(self, link: Any, model: CounterModel) -> None:
        super().__init__()
        self.setObjectName("root")
        # Style and font on the window, not the application: other screens may share the process.
        self.setFont(cjk_font())
        self.setStyleSheet(STYLE)
        self.link = link
        self.model = model
        self.dialog: _Dialog | None = None
        self.compact: bool | None = None  # a short screen (1366×768): one row of actions, denser lists
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        # The window takes the screen's size (a counter PC's 1366×768 included): no minimum from the layouts.
        root.setSizeConstraint(QVBoxLayout.SizeConstraint.SetNoConstraint)
        root.addWidget(self._build_header())
        self.stack = QStackedWidget()
        self.signin = SignInPage(model)
        self.signin.submitted.connect(self._sign_in)
        self.stack.addWidget(self.signin)
        self.stack.addWidget(self._build_work())
        root.addWidget(self.stack, 1)
        self.shortcuts: dict[str, QShortcut] = {}
        for action, keys in SHORTCUTS.items():
            sc = QShortcut(QKeySequence(keys), self)
            sc.setContext(Qt.ShortcutContext.WindowShortcut)
            sc.activated.connect(lambda a=action: self.trigger(a))
            self.shortcuts[action] = sc
        lang = QShortcut(QKeySequence(LANGUAGE_SHORTCUT), self)
        lang.activated.connect(self.toggle_language)
        self.shortcuts["language"] = lang
        link.state_changed.connect(self._on_state)
        link.event.connect(self._on_event)
        link.connection_changed.connect(self._on_connection)
        link.replied.connect(self._on_reply)
        # Wait times grow by themselves: redraw twice a minute even without events.
        self.ticker = QTimer(self)
        self.ticker.setInterval(30_000)
        self.ticker.timeout.connect(self.refresh)
        self.ticker.start()
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.focusChanged.connect(lambda _old, new: self.signin.focus_changed(new))
        self._ticket_key: tuple[int | None, datetime | None] | None = None
        self._signing_in = False
        self._transfer_note: tuple[str, str] = ("", "")  # (ticket, note) of the last transfer sent
        self.refresh()

    # ------------------------------------------------------------------ building

    def _build_header(self) -> QFrame:
        header = QFrame()
        header.setObjectName("header")
        lay = QHBoxLayout(header)
        lay.setContentsMargins(18, 10, 18, 10)
        self.counter_label = QLabel()
        self.counter_label.setObjectName("counterName")
        self.clerk_label = QLabel()
        self.clerk_label.setObjectName("clerk")
        self.conn_label = QLabel()
        self.conn_label.setObjectName("conn")
        self.lang_button = QPushButton()
        self.lang_button.setObjectName("headerButton")
        self.lang_button.clicked.connect(self.toggle_language)
        self.sign_out_button = QPushButton()
        self.sign_out_button.setObjectName("headerButton")
        self.sign_out_button.clicked.connect(lambda: self.trigger("sign_out"))
        lay.addWidget(self.counter_label)
        lay.addSpacing(24)
        lay.addWidget(self.clerk_label)
        lay.addStretch(1)
        lay.addWidget(self.conn_label)
        lay.addSpacing(12)
        lay.addWidget(self.lang_button)
        lay.addWidget(self.sign_out_button)
        return header

    def _build_work(self) -> QWidget:
        work = QWidget()
        work.setObjectName("work")
        outer = QVBoxLayout(work)
        outer.setContentsMargins(14, 12, 14, 12)
        outer.setSpacing(10)
        top = QHBoxLayout()
        top.setSpacing(12)
        left = QVBoxLayout()
        left.setSpacing(10)
        left.addWidget(self._build_printer_panel())
        left.addWidget(self._build_ticket_panel(), 1)
        self.guidance = QFrame()
        self.guidance.setObjectName("guidance")
        g = QVBoxLayout(self.guidance)
        g.setContentsMargins(16, 8, 16, 8)
        g.setSpacing(2)
        self.guidance_title = QLabel()
        self.guidance_title.setObjectName("guidanceTitle")
        self.guidance_zh = QLabel()
        self.guidance_zh.setObjectName("guidanceZh")
        self.guidance_en = QLabel()
        self.guidance_en.setObjectName("guidanceEn")
        for w in (self.guidance_title, self.guidance_zh, self.guidance_en):
            w.setWordWrap(True)
            g.addWidget(w)
        left.addWidget(self.guidance)
        self.message = QLabel()
        self.message.setObjectName("message")
        self.message.setWordWrap(True)
        left.addWidget(self.message)
        top.addLayout(left, 3)
        self.top_row = top
        side = QVBoxLayout()
        side.setSpacing(10)
        self.waiting_title = QLabel()
        card, lay = _card(self.waiting_title)
        self.waiting = QTableWidget(0, 3)
        self.waiting.verticalHeader().hide()
        self.waiting.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.waiting.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.waiting.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # A long service name (or a note) wraps onto a second line of its row rather than being cut to "…":
        # the clerk reads it whole. Rows are as tall as their text, at least one line's row.
        self.waiting.setWordWrap(True)
        self.waiting.setTextElideMode(Qt.TextElideMode.ElideNone)
        self.waiting.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.waiting.verticalHeader().setMinimumSectionSize(40)
        self.waiting.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.waiting.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.waiting.doubleClicked.connect(lambda _i: self.trigger("call_ticket"))
        lay.addWidget(self.waiting)
        side.addWidget(card, 1)
        self.no_show_title = QLabel()
        card, lay = _card(self.no_show_title)
        self.no_show_list = _wrapping_list()
        self.no_show_list.setFixedHeight(92)
        self.no_show_list.itemActivated.connect(lambda _i: self.trigger("reinstate"))
        lay.addWidget(self.no_show_list)
        side.addWidget(card, 0)
        self.figures_title = QLabel()
        card, lay = _card(self.figures_title)
        self.figures_label = QLabel()
        self.figures_label.setObjectName("figures")
        self.figures_scope = QLabel()
        self.figures_scope.setObjectName("small")
        self.figures_scope.setWordWrap(True)
        lay.addWidget(self.figures_label)
        lay.addWidget(self.figures_scope)
        side.addWidget(card, 0)
        top.addLayout(side, 2)
        outer.addLayout(top, 1)
        self.offline = QLabel()
        self.offline.setObjectName("offline")
        self.offline.setWordWrap(True)
        self.offline.setAlignment(Qt.AlignmentFlag.AlignCenter)
        outer.addWidget(self.offline)
        self.calendar_warning = QLabel()  # official holiday data runs out: staff must enter the notice
        self.calendar_warning.setObjectName("calendarWarning")
        self.calendar_warning.setWordWrap(True)
        outer.addWidget(self.calendar_warning)
        self.bar = QGridLayout()
        self.bar.setSpacing(8)
        self.buttons: dict[str, QPushButton] = {}
        for action in ACTIONS:
            if action == "sign_out":
                continue
            b = QPushButton()
            b.setObjectName("action")
            b.setProperty("tone", TONES[action])
            b.clicked.connect(lambda _=False, a=action: self.trigger(a))
            self.buttons[action] = b
        self.buttons["sign_out"] = self.sign_out_button
        outer.addLayout(self.bar)
        self._set_compact(False)
        return work

    def _set_compact(self, compact: bool) -> None:
        """Lay the work page out for a short screen (under 900 lines: the actions in one row, denser queue
        rows) or a tall one (two rows of five actions)."""
        if compact == self.compact:
            return
        self.compact = compact
        actions = [a for a in self.buttons if a != "sign_out"]
        for b in self.buttons.values():
            self.bar.removeWidget(b)
        per_row = len(actions) if compact else 5
        for i, action in enumerate(actions):
            self.bar.addWidget(self.buttons[action], i // per_row, i % per_row)
        for b in self.buttons.values():
            _restyle(b, compact="true" if compact else "false")
        self.waiting.verticalHeader().setMinimumSectionSize(34 if compact else 40)
        self.no_show_list.setFixedHeight(76 if compact else 92)
        self.figures_scope.setVisible(not compact)  # the figures' footnote: room for the queue instead
        self.refresh_calendar_warning()

    def resizeEvent(self, event: Any) -> None:
        """Qt resize hook: a short screen gets the compact layout."""
        super().resizeEvent(event)
        self._set_compact(self.height() < 900)
        # On a short screen under 1600 px wide the queue gets half the width (not two fifths), so a long English
        # service name ("Hong Kong/Macao travel permit and endorsements") stays on one line: five rows at 1366×768.
        half = bool(self.compact) and self.width() < 1600
        self.top_row.setStretch(0, 1 if half else 3)
        self.top_row.setStretch(1, 1 if half else 2)

    def _build_printer_panel(self) -> QFrame:
        """The help counter's panel: the kiosks' printer faults and unprinted numbers, and reprints."""
        self.printer_panel = QFrame()
        self.printer_panel.setObjectName("printerAlert")
        lay = QVBoxLayout(self.printer_panel)
        lay.setContentsMargins(14, 8, 14, 8)
        lay.setSpacing(4)
        self.printer_title = QLabel()
        self.printer_title.setObjectName("printerTitle")
        self.printer_lines = QLabel()
        self.printer_lines.setObjectName("printerLine")
        self.printer_lines.setWordWrap(True)
        lay.addWidget(self.printer_title)
        lay.addWidget(self.printer_lines)
        row = QHBoxLayout()
        self.reprint_quick = QHBoxLayout()
        row.addLayout(self.reprint_quick)
        self.reprint_edit = QLineEdit()
        self.reprint_edit.setMaxLength(12)
        self.reprint_edit.setFixedWidth(240)
        self.reprint_edit.returnPressed.connect(lambda: self._reprint(self.reprint_edit.text()))
        self.reprint_button = QPushButton()
        self.reprint_button.clicked.connect(lambda: self._reprint(self.reprint_edit.text()))
        row.addStretch(1)
        row.addWidget(self.reprint_edit)
        row.addWidget(self.reprint_button)
        lay.addLayout(row)
        self.reprint_buttons: dict[str, QPushButton] = {}
        return self.printer_panel

    def _reprint(self, ticket: str) -> None:
        if self.model.reprint(ticket) is not None:
            self.reprint_edit.clear()
        self.refresh()

    def _draw_printers(self) -> None:
        m = self.model
        lines = m.printer_lines()
        explicit = (m.state.get("hall") or {}).get("help_counter") == m.counter
        self.printer_panel.setVisible(bool(lines) or explicit)
        _restyle(self.printer_panel, alert="true" if lines else "false")
        _restyle(self.printer_title, alert="true" if lines else "false")
        self.printer_title.setText(m.text("printer_title" if lines else "printer_title_ok"))
        self.printer_lines.setText("\n".join(lines))
        self.printer_lines.setVisible(bool(lines))
        labels = m.unprinted()
        if list(self.reprint_buttons) != labels:
            for b in self.reprint_buttons.values():
                self.reprint_quick.removeWidget(b)
                b.deleteLater()
            self.reprint_buttons = {}
            for label in labels:
                b = QPushButton()
                b.setObjectName("warn")
                b.clicked.connect(lambda _=False, t=label: self._reprint(t))
                self.reprint_quick.addWidget(b)
                self.reprint_buttons[label] = b
        busy = m.pending_action() == "reprint"
        for label, b in self.reprint_buttons.items():
            b.setText(m.text("reprint_ticket", ticket=label))
            b.setEnabled(m.connected and not m.busy)
        self.reprint_edit.setPlaceholderText(m.text("reprint_placeholder"))
        self.reprint_button.setText(m.text("pending_reprint" if busy else "reprint"))
        self.reprint_button.setEnabled(m.connected and not m.busy)

    def _build_ticket_panel(self) -> QFrame:
        card, lay = _card()
        self.phase_label = QLabel()
        self.phase_label.setObjectName("phase")
        lay.addWidget(self.phase_label)
        row = QHBoxLayout()
        self.ticket_label = QLabel()
        self.ticket_label.setObjectName("ticket")
        row.addWidget(self.ticket_label)
        col = QVBoxLayout()  # no stretch here: the row must not grow, or the ticket drifts down
        self.service_label = _WrappedLabel()
        self.service_label.setObjectName("service")
        self.info_label = QLabel()
        self.info_label.setObjectName("info")
        self.info_label.setWordWrap(True)
        col.addWidget(self.service_label)
        col.addWidget(self.info_label)
        row.addSpacing(16)
        row.addLayout(col, 1)
        row.setAlignment(col, Qt.AlignmentFlag.AlignVCenter)
        lay.addLayout(row)
        self.note_label = QLabel()
        self.note_label.setObjectName("note")
        self.note_label.setWordWrap(True)
        lay.addWidget(self.note_label)
        self.materials_title = QLabel()
        self.materials_title.setObjectName("cardTitle")
        lay.addWidget(self.materials_title)
        self.materials = _wrapping_list()
        self.materials.setObjectName("materials")
        lay.addWidget(self.materials, 1)
        self.promised_label = QLabel()
        self.promised_label.setObjectName("promised")
        self.promised_rule = QLabel()
        self.promised_rule.setObjectName("small")
        self.promised_rule.setWordWrap(True)
        lay.addWidget(self.promised_label)
        lay.addWidget(self.promised_rule)
        self.hint_label = QLabel()
        self.hint_label.setObjectName("info")
        self.hint_label.setWordWrap(True)
        lay.addWidget(self.hint_label)
        lay.addStretch(0)  # takes the room only while the checklist is hidden: keeps the ticket at the top
        return card

    # ------------------------------------------------------------------ link inputs

    def _on_state(self, state: dict[str, Any]) -> None:
        self.model.on_state(state)
        self.refresh()

    def _on_event(self, msg: dict[str, Any]) -> None:
        self.model.on_event(msg)

    def _on_connection(self, up: bool) -> None:
        self.model.on_connection(up)
        self.refresh()

    def _on_reply(self, rid: str, reply: dict[str, Any]) -> None:
        self.model.on_reply(rid, reply)
        if self._signing_in and self.model.pending_action() != "sign_in":
            self._signing_in = False
            msg = self.model.message
            if not self.model.signed_in and msg is not None and msg.code == "BAD_PIN":  # retype from scratch
                self.signin.pin.clear()
                self.signin.pin.setFocus()
        self.refresh()

    # ------------------------------------------------------------------ actions

    def start(self) -> None:
        """Connect to the broker (the link runs in its own thread)."""
        self.link.start()

    def closeEvent(self, event: QCloseEvent) -> None:
        """Stop the timer and the broker link with the window."""
        self.ticker.stop()
        self.link.stop()
        super().closeEvent(event)

    def toggle_language(self) -> None:
        """Switch the screen between Chinese and English and redraw it."""
        self.model.toggle_language()
        self._ticket_key = None  # rebuild the checklist in the new language
        self.refresh()

    def _sign_in(self, takeover: bool) -> None:
        rid = self.model.sign_in(self.signin.clerk.text(), self.signin.pin.text(), takeover)
        self._signing_in = rid is not None
        self.refresh()

    def trigger(self, action: str, confirmed: bool = False) -> None:
        """Run ``action`` as its button or shortcut asks.

        Dialog actions open their dialog only when they apply (otherwise the screen
        says why); direct actions always go to the broker when signed in, connected
        and idle, so a stale screen is corrected by the broker's own refusal. An action
        the model wants confirmed (:meth:`CounterModel.confirmation`) opens a
        :class:`ConfirmDialog` first, unless ``confirmed`` (a scripted clerk, the demo).
        """
        m = self.model
        if self.stack.currentIndex() == 0 and action != "sign_out":
            return  # the sign-in page has its own keys; F-keys do nothing there
        question = m.confirmation(action) if action in ("recall", "no_show", "sign_out") else None
        if question is not None and not confirmed and not m.busy:
            if self.dialog is not None:
                return
            dialog = ConfirmDialog(m, action, question, self)
            dialog.accepted.connect(lambda: self._run(lambda: getattr(m, action)(confirmed=True)))
            dialog.finished.connect(lambda _r: self._dialog_closed(dialog))
            self.dialog = dialog
            dialog.open()
            return
        if action in ("recall", "no_show", "sign_out"):
            getattr(m, action)(confirmed=confirmed)
            self.refresh()
            return
        if action in DIALOG_ACTIONS:
            if not m.enabled(action):
                m.message = m.why_not(action)
                self.refresh()
                return
            self._open_dialog(action)
            return
        getattr(m, action)()
        self.refresh()

    def _open_dialog(self, action: str) -> None:
        m = self.model
        dialog: _Dialog
        if action == "transfer":
            current = m.current_ticket()
            label = current.label if current else ""
            kept = self._transfer_note[1] if self._transfer_note[0] == label else ""
            transfer = TransferDialog(m, self, note=kept)

            def send() -> None:
                # Kept while the ticket is still here: a refused transfer is retyped from this note.
                self._transfer_note = (label, transfer.target()[2])
                self._run(lambda: m.transfer(*transfer.target()))

            transfer.accepted.connect(send)
            dialog = transfer
        elif action == "pause":
            dialog = PauseDialog(m, self)
            dialog.accepted.connect(lambda: self._run(lambda: m.pause(dialog.reason or "")))
        elif action == "call_ticket":
            dialog = CallTicketDialog(m, self, preselect=self.selected_waiting())
            dialog.accepted.connect(lambda: self._run(
                lambda: m.call_ticket(dialog.label.text(), dialog.reason.text())))
        else:
            dialog = ReinstateDialog(m, self, preselect=self.selected_no_show())
            dialog.accepted.connect(lambda: self._run(lambda: m.reinstate(dialog.label())))
        dialog.finished.connect(lambda _r: self._dialog_closed(dialog))
        self.dialog = dialog
        dialog.open()

    def _dialog_closed(self, dialog: _Dialog) -> None:
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()

    def _run(self, fn: Any) -> None:
        fn()
        self.refresh()

    def selected_waiting(self) -> int | None:
        """The id of the ticket selected in the waiting list, or None."""
        row = self.waiting.currentRow()
        item = self.waiting.item(row, 0) if row >= 0 else None
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def selected_no_show(self) -> int | None:
        """The id of the no-show selected in the no-show list, or None."""
        item = self.no_show_list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    # ------------------------------------------------------------------ drawing

    def refresh(self) -> None:
        """Redraw everything from the model (cheap: called after every input)."""
        m = self.model
        self.counter_label.setText(m.counter_name())
        self.clerk_label.setText(m.clerk_text())
        self.conn_label.setText(m.connection_text())
        _restyle(self.conn_label, up="true" if m.connected else "false")
        self.lang_button.setText(f"{m.text('language')} ({LANGUAGE_SHORTCUT})")
        pending = m.pending_action()
        self.sign_out_button.setText(m.text("pending_sign_out" if pending == "sign_out" else "sign_out"))
        self.sign_out_button.setVisible(m.signed_in)
        self.sign_out_button.setEnabled(m.enabled("sign_out"))
        if m.signed_in and self.signin.pin.text():
            self.signin.pin.clear()  # never leave a PIN lying in a hidden field
        if not m.signed_in and self.dialog is not None:
            self.dialog.reject()  # signed out (or taken over) meanwhile: the dialog no longer applies
        self.stack.setCurrentIndex(1 if m.signed_in else 0)
        self.signin.refresh()
        if not m.signed_in:
            return
        for action, b in self.buttons.items():
            if action == "sign_out":
                continue
            label = m.text(f"pending_{action}") if pending == action else m.text(action)
            b.setText(f"{label}\n{SHORTCUTS[action]}")
            b.setEnabled(m.enabled(action))
        self._draw_printers()
        self._draw_ticket()
        self._draw_waiting()
        self._draw_no_shows()
        self.figures_title.setText(m.text("figures_title"))
        self.figures_label.setText(m.figures_text())
        self.figures_scope.setText(m.text("figures_scope"))
        if m.guidance is not None:
            self.guidance_title.setText(f"{m.text('say_title')} · {m.guidance.ticket}")
            self.guidance_zh.setText(m.guidance.zh)
            self.guidance_en.setText(m.guidance.en)
            self.guidance.show()
        else:
            self.guidance.hide()
        _show_message(self.message, m.message, m.lang)
        self.offline.setText(m.offline_text())
        self.offline.setVisible(not m.connected)
        self.refresh_calendar_warning()

    def refresh_calendar_warning(self) -> None:
        """The calendar banner: both languages, or on a short screen only the clerk's (it is staff's notice)."""
        if not hasattr(self, "calendar_warning"):
            return
        warning = self.model.calendar_warning_text()
        self.calendar_warning.setText(warning.split("\n")[0] if self.compact else warning)
        self.calendar_warning.setVisible(bool(warning))

    def _draw_ticket(self) -> None:
        m = self.model
        phase = m.phase()
        self.phase_label.setText(m.phase_text())
        _restyle(self.phase_label, phase=phase)
        t = m.current_ticket()
        if t is None:
            self.ticket_label.setText(m.text("no_ticket"))
            _restyle(self.ticket_label, empty="true")
            self.service_label.setText("")
            self.info_label.setText("")
            self.note_label.hide()
            self.materials_title.hide()
            self.materials.hide()
            self.materials.clear()
            self.promised_label.hide()
            self.promised_rule.hide()
            self.hint_label.setText(m.idle_hint())
            self.hint_label.show()
            self._ticket_key = None
            return
        self.hint_label.hide()
        _restyle(self.ticket_label, empty="false")
        self.ticket_label.setText(t.label)
        self.service_label.setText(m.service_name(t.queue_service))
        info = [m.text("waited", minutes=m.waited_minutes(t))]
        if phase == CALLED:
            info.append(m.text("calls", calls=t.calls))
            if m.recall_hint():
                info.append(m.recall_hint())
        if phase == SERVING:
            minutes = m.serving_minutes(t)
            if minutes is not None:
                info.append(m.text("serving_for", minutes=minutes))
        if t.priority:
            info.append(m.text("priority", name=m.priority_name(t.priority)))
        self.info_label.setText("  ·  ".join(info))
        notes = []
        source = m.came_from(t.id) if t.id is not None else None
        if source is not None and source != m.counter:
            notes.append(m.text("from_counter", counter=source))
        if t.note:
            notes.append(m.text("note", note=t.note))
        self.note_label.setText("  ".join(notes))
        self.note_label.setVisible(bool(notes))
        key = (t.id, t.entered_at)
        if key != self._ticket_key:  # a new ticket: a fresh checklist (ticks survive redraws)
            self._ticket_key = key
            self.materials.clear()
            mats = m.materials()
            for zh, en in mats:
                item = QListWidgetItem(f"{zh}\n{en}" if m.lang == "zh" else f"{en}\n{zh}")
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Unchecked)
                self.materials.addItem(item)
            if not mats:
                self.materials.addItem(QListWidgetItem(m.text("no_materials")))
        self.materials_title.setText(m.text("materials"))
        self.materials_title.show()
        self.materials.show()
        self.promised_label.setText(m.promised_text())
        self.promised_rule.setText(m.text("promised_rule"))
        self.promised_label.show()
        self.promised_rule.setVisible((m.promised() or (None, 0))[0] is not None)

    def _draw_waiting(self) -> None:
        m = self.model
        rows = m.waiting_list()
        self.waiting_title.setText(m.text("waiting_title", count=len(rows)))
        keep = self.selected_waiting()
        self.waiting.setHorizontalHeaderLabels([m.text(k) for k in ("col_ticket", "col_service", "col_wait")])
        self.waiting.setRowCount(len(rows))
        for i, r in enumerate(rows):
            mark = " ★" if r.priority else ""
            label = QTableWidgetItem(f"{r.label}{mark}")
            label.setData(Qt.ItemDataRole.UserRole, r.ticket_id)
            service = r.service_zh if m.lang == "zh" else r.service_en
            if r.target_counter is not None:
                service += f" ({m.text('for_counter', counter=r.target_counter)})"
            if r.note:
                service += f" — {r.note}"
            wait = QTableWidgetItem(m.text("minutes_short", minutes=r.wait_minutes))
            wait.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if r.priority:
                label.setToolTip(m.priority_name(r.priority))
            self.waiting.setItem(i, 0, label)
            self.waiting.setItem(i, 1, QTableWidgetItem(service))
            self.waiting.setItem(i, 2, wait)
            if r.ticket_id == keep:
                self.waiting.selectRow(i)

    def _draw_no_shows(self) -> None:
        m = self.model
        self.no_show_title.setText(m.text("no_shows_title"))
        keep = self.selected_no_show()
        self.no_show_list.clear()
        for t in m.no_shows():
            item = QListWidgetItem(f"{t.label}   {m.service_name(t.queue_service)}   "
                                   f"{m.text('col_called')} {_clock_time(m, t.called_at)}")
            item.setData(Qt.ItemDataRole.UserRole, t.id)
            self.no_show_list.addItem(item)
            if t.id == keep:
                self.no_show_list.setCurrentItem(item)
