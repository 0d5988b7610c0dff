"""The kiosk's touch screens: thin Qt widgets over :class:`kiosk.model.KioskModel`.

:class:`KioskWindow` owns the pages (start, service details, confirmation, notices, PIN pad,
settings), the timers (return to the start screen, printer status polling, the clock) and
wires the broker link (``queuehall.qtlink.QtLink``) and the ticket printer
(:class:`PrintService`, which runs every printer operation on one worker thread so a slow
network printer never freezes the screen) to the model. It never closes by touch: no
window frame, Esc and Alt+F4 are ignored, and only the PIN-protected settings can quit.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QFont, QKeyEvent
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QScroller,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)
from queuehall.kiosk.controller import KioskController, PrintWorker
from queuehall.kiosk.journal import KioskJournal
from queuehall.kiosk.model import (
    ASK_STAFF,
    CHOOSE,
    FAREWELL,
    NUMBER_KEPT,
    OUT_OF_SERVICE,
    PRINT_FAILED,
    Bi,
    KioskModel,
    Phase,
    Screen,
    ServiceCard,
    system_now,
)
from queuehall.kiosk.printing import PrinterConfig, PrinterError
from queuehall.kiosk.ticket import TicketError, cjk_font_family, number_font_family

from queuehall.qtfonts import cjk_family, set_app_font

log = logging.getLogger("queuehall.kiosk")

SETTINGS_TAPS = 5  # taps on the hall name …
SETTINGS_TAP_WINDOW = 3.0  # … within this many seconds open the PIN pad


def setup_app_font(app: QApplication) -> str:
    """Give the whole application a font that has Chinese glyphs; returns the family chosen."""
    return set_app_font(app, 24)


# --------------------------------------------------------------------------------------------------
# The printer worker


class PrintService(QObject):
    """The kiosk's :class:`kiosk.controller.PrintWorker` with its results as a Qt signal:
    ``done(job, kind, outcome)`` arrives on the GUI thread (queued from the worker thread)."""

    done = Signal(int, str, object)

    def __init__(self, config: PrinterConfig | None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.worker = PrintWorker(config, on_done=lambda job, kind, outcome: self.done.emit(job, kind, outcome))

    @property
    def config(self) -> PrinterConfig | None:
        return self.worker.config

    @property
    def printer(self) -> Any:
        return self.worker.printer

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def configure(self, config: PrinterConfig | None) -> int:
        return self.worker.configure(config)

    def status(self) -> int:
        return self.worker.status()

    def print_ticket(self, fields: dict[str, Any]) -> int:
        return self.worker.print_ticket(fields)

    def test_print(self) -> int:
        return self.worker.test_print()


# --------------------------------------------------------------------------------------------------
# Style


def stylesheet(u: float, family: str) -> str:
    """The kiosk's look at scale ``u`` (1.0 = a 1920×1080 screen)."""

    def px(n: float) -> int:
        return max(8, round(n * u))

    return f"""
    QWidget {{ font-family: "{family}"; color: #1d2733; }}
    #root {{ background: #eaf0f7; }}
    #header {{ background: qlineargradient(x1:0, y1:0, x2:1, y2:0, stop:0 #0a3d7a, stop:1 #1666c5); }}
    #hallName {{ background: transparent; border: none; color: white; font-size: {px(40)}px;
                 font-weight: bold; text-align: left; padding: 0; }}
    #hallNameEn {{ color: #cfe0f5; font-size: {px(20)}px; }}
    #clock {{ color: white; font-size: {px(34)}px; }}
    #date {{ color: #cfe0f5; font-size: {px(20)}px; }}
    #langButton {{ background: #0a3d7a; color: white; border: {px(3)}px solid white;
                   border-radius: {px(14)}px; font-size: {px(28)}px; font-weight: bold;
                   padding: {px(8)}px {px(26)}px; }}
    #langButton:pressed {{ background: #2c7be0; }}
    #greeting {{ font-size: {px(46)}px; font-weight: bold; color: #0a3d7a; }}
    #choose {{ font-size: {px(28)}px; color: #4a5a6e; }}
    #deptButton {{ background: white; border: {px(2)}px solid #c9d6e6; border-radius: {px(16)}px;
                   text-align: left; padding: {px(10)}px {px(18)}px; }}
    #deptButton:checked {{ background: #1666c5; border-color: #1666c5; }}
    #deptName {{ font-size: {px(30)}px; font-weight: bold; color: #0a3d7a; background: transparent; }}
    #deptName[small="true"] {{ font-size: {px(23)}px; }}
    #deptSub {{ font-size: {px(22)}px; color: #5b6b80; background: transparent; }}
    #deptName[on="true"] {{ color: white; }}
    #deptSub[on="true"] {{ color: #d9e7f8; }}
    #tile {{ background: white; border: {px(2)}px solid #c9d6e6; border-radius: {px(18)}px; }}
    #tile:pressed {{ background: #dcebfb; }}
    #tile:disabled {{ background: #eef0f3; }}
    #accent {{ background: #1666c5; border-radius: {px(5)}px; min-width: {px(10)}px; max-width: {px(10)}px; }}
    #accent[off="true"] {{ background: #a3acb8; }}
    #tileName {{ font-size: {px(40)}px; font-weight: bold; color: #10243d; background: transparent; }}
    #tileSub {{ font-size: {px(22)}px; color: #5b6b80; background: transparent; }}
    #tileInfo {{ font-size: {px(28)}px; color: #1666c5; font-weight: bold; background: transparent; }}
    #tileReason {{ font-size: {px(26)}px; color: #b34700; font-weight: bold; background: transparent; }}
    #tileName[off="true"] {{ color: #6b7684; }}
    #tileInfo[off="true"] {{ color: #7d8794; }}
    #materialNo {{ font-size: {px(28)}px; font-weight: bold; color: #1666c5; background: transparent;
                   min-width: {px(44)}px; }}
    #card {{ background: white; border: {px(2)}px solid #c9d6e6; border-radius: {px(20)}px; }}
    #title {{ font-size: {px(52)}px; font-weight: bold; color: #0a3d7a; }}
    #subtitle {{ font-size: {px(26)}px; color: #5b6b80; }}
    #sectionTitle {{ font-size: {px(32)}px; font-weight: bold; color: #0a3d7a; background: transparent; }}
    #sectionSub {{ font-size: {px(22)}px; color: #5b6b80; background: transparent; }}
    #material {{ font-size: {px(28)}px; color: #1d2733; background: transparent; }}
    #materialSub {{ font-size: {px(20)}px; color: #6b7684; background: transparent; }}
    #info {{ font-size: {px(30)}px; color: #1d2733; background: transparent; }}
    #promise {{ font-size: {px(28)}px; color: #0b7a3e; font-weight: bold; background: transparent; }}
    #descriptionTitle {{ font-size: {px(24)}px; color: #8a4b00; font-weight: bold; background: transparent; }}
    #description {{ font-size: {px(26)}px; color: #5a3200; background: transparent; }}
    #reason {{ font-size: {px(28)}px; color: #b34700; font-weight: bold; background: transparent; }}
    #prioButton {{ background: white; border: {px(3)}px solid #9fc9ab; border-radius: {px(14)}px;
                   font-size: {px(26)}px; padding: {px(10)}px {px(14)}px; color: #0b5e30; }}
    #prioButton:checked {{ background: #0b7a3e; border-color: #0b7a3e; color: white; font-weight: bold; }}
    #confirm {{ background: #0b7a3e; color: white; border: none; border-radius: {px(20)}px;
                font-size: {px(44)}px; font-weight: bold; padding: {px(18)}px; }}
    #confirm:pressed {{ background: #085c2f; }}
    #confirm:disabled {{ background: #9bb5a6; color: #eef5f0; }}
    #back {{ background: white; color: #0a3d7a; border: {px(3)}px solid #1666c5; border-radius: {px(20)}px;
             font-size: {px(32)}px; font-weight: bold; padding: {px(14)}px; }}
    #back:pressed {{ background: #dcebfb; }}
    #caption {{ font-size: {px(40)}px; color: #4a5a6e; }}
    #bigNumber {{ font-family: "{number_family()}"; font-size: {px(250)}px; font-weight: bold;
                  color: #c4121a; }}
    #confirmLine {{ font-size: {px(38)}px; font-weight: bold; color: #10243d; }}
    #confirmSub {{ font-size: {px(26)}px; color: #5b6b80; }}
    #failedTitle {{ font-size: {px(56)}px; font-weight: bold; color: #c4121a; }}
    #goHelp {{ font-size: {px(44)}px; font-weight: bold; color: #0a3d7a; }}
    #goHelpSub {{ font-size: {px(30)}px; color: #0a3d7a; }}
    #farewell {{ font-size: {px(32)}px; color: #0b7a3e; font-weight: bold; }}
    #countdown {{ font-size: {px(24)}px; color: #6b7684; }}
    #badge {{ font-size: {px(120)}px; font-weight: bold; color: white; border-radius: {px(90)}px;
              min-width: {px(180)}px; max-width: {px(180)}px;
              min-height: {px(180)}px; max-height: {px(180)}px; }}
    #noticeTitle {{ font-size: {px(64)}px; font-weight: bold; }}
    #noticeTitleSub {{ font-size: {px(34)}px; color: #4a5a6e; }}
    #noticeBody {{ font-size: {px(36)}px; color: #1d2733; }}
    #noticeBodySub {{ font-size: {px(26)}px; color: #5b6b80; }}
    #noticeExtra {{ font-size: {px(44)}px; font-weight: bold; color: #0a3d7a; }}
    #noticeDetail {{ font-size: {px(18)}px; color: #8a94a3; }}
    #notice {{ font-size: {px(24)}px; color: #0b5e30; background: #e3f3e8; border-radius: {px(12)}px;
               padding: {px(12)}px {px(20)}px; }}
    #pinDisplay {{ font-size: {px(60)}px; letter-spacing: {px(16)}px; background: white;
                   border: {px(2)}px solid #c9d6e6; border-radius: {px(16)}px; padding: {px(10)}px;
                   min-height: {px(90)}px; }}
    #pinKey {{ background: white; border: {px(2)}px solid #c9d6e6; border-radius: {px(18)}px;
               font-size: {px(46)}px; font-weight: bold; min-width: {px(150)}px; min-height: {px(104)}px; }}
    #pinKey:pressed {{ background: #dcebfb; }}
    #pinMessage {{ font-size: {px(28)}px; color: #b3261e; font-weight: bold; }}
    #setLabel {{ font-size: {px(26)}px; font-weight: bold; color: #0a3d7a; background: transparent; }}
    #setValue {{ font-size: {px(24)}px; background: transparent; }}
    #setEdit {{ font-size: {px(26)}px; padding: {px(10)}px; border: {px(2)}px solid #9fb4cc;
                border-radius: {px(10)}px; background: white; }}
    #setButton {{ background: white; border: {px(2)}px solid #1666c5; border-radius: {px(12)}px;
                  color: #0a3d7a; font-size: {px(24)}px; padding: {px(10)}px {px(18)}px;
                  min-height: {px(56)}px; }}
    #setButton:checked {{ background: #1666c5; color: white; font-weight: bold; }}
    #setButton:pressed {{ background: #dcebfb; }}
    #danger {{ background: #b3261e; color: white; border: none; border-radius: {px(12)}px;
               font-size: {px(24)}px; padding: {px(10)}px {px(18)}px; min-height: {px(56)}px; }}
    """


def number_family() -> str:
    try:
        return number_font_family()
    except TicketError:
        return "DejaVu Sans"


def _label(name: str, text: str = "", *, wrap: bool = True,
           align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignLeft) -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(wrap)
    label.setAlignment(align | Qt.AlignmentFlag.AlignVCenter)
    label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
    return label


def _button(name: str, text: str = "") -> QPushButton:
    b = QPushButton(text)
    b.setObjectName(name)
    b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    b.setCursor(Qt.CursorShape.PointingHandCursor)
    return b


def _set_flag(widget: QWidget, name: str, value: bool) -> None:
    """Set a boolean style property (``#x[name="true"]`` in the stylesheet) and re-apply the style."""
    if widget.property(name) != value:
        widget.setProperty(name, value)
        widget.style().unpolish(widget)
        widget.style().polish(widget)


def _touch_scroll(area: QScrollArea) -> None:
    """Let a finger drag the list (kinetic scrolling), and hide the scroll bar."""
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    QScroller.grabGesture(area.viewport(), QScroller.ScrollerGestureType.LeftMouseButtonGesture)


def _clear(layout: QGridLayout | QVBoxLayout) -> None:
    """Empty a layout now: its widgets disappear at once (deleteLater alone leaves them on screen)."""
    while layout.count():
        item = layout.takeAt(0)
        w = item.widget() if item is not None else None
        if w is not None:
            w.hide()
            w.deleteLater()


# --------------------------------------------------------------------------------------------------
# Pages


class Header(QFrame):
    """Hall name (five quick taps open the staff PIN pad), date and time, language switch."""

    settings_gesture = Signal()
    language_tapped = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("header")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(36, 12, 36, 12)
        names = QVBoxLayout()
        names.setSpacing(0)
        self.hall = _button("hallName")
        self.hall.setCursor(Qt.CursorShape.ArrowCursor)
        self.hall.clicked.connect(self._tap)
        self.hall_en = _label("hallNameEn", wrap=False)
        names.addWidget(self.hall)
        names.addWidget(self.hall_en)
        lay.addLayout(names, 1)
        clock = QVBoxLayout()
        clock.setSpacing(0)
        self.clock = _label("clock", wrap=False, align=Qt.AlignmentFlag.AlignRight)
        self.date = _label("date", wrap=False, align=Qt.AlignmentFlag.AlignRight)
        clock.addWidget(self.clock)
        clock.addWidget(self.date)
        lay.addLayout(clock)
        lay.addSpacing(28)
        self.lang = _button("langButton")
        self.lang.clicked.connect(self.language_tapped)
        lay.addWidget(self.lang)
        self._taps: list[float] = []

    def _tap(self) -> None:
        now = time.monotonic()
        self._taps = [t for t in self._taps if now - t < SETTINGS_TAP_WINDOW] + [now]
        if len(self._taps) >= SETTINGS_TAPS:
            self._taps.clear()
            self.settings_gesture.emit()

    def refresh(self, model: KioskModel, show_language: bool) -> None:
        name = model.hall_name()
        first, second = name.pick(model.language)
        self.hall.setText(first)
        self.hall_en.setText(second)
        now = model.now_local()
        self.clock.setText(now.strftime("%H:%M"))
        wd = "一二三四五六日"[now.weekday()]
        self.date.setText(f"{now.year}年{now.month}月{now.day}日 星期{wd}" if model.language == "zh"
                          else now.strftime("%a %d %b %Y"))
        # Offer the *other* language, written in that language, so both kinds of reader find it.
        self.lang.setText("English" if model.language == "zh" else "中文")
        self.lang.setVisible(show_language)


class DeptButton(QPushButton):
    """A department: its name (wrapping to two lines if need be) and how many are waiting, on the right."""

    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code
        self.setObjectName("deptButton")
        self.setCheckable(True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(22, 4, 18, 4)
        lay.setSpacing(12)
        self.name = _label("deptName")
        self.sub = _label("deptSub", wrap=False, align=Qt.AlignmentFlag.AlignRight)
        lay.addWidget(self.name, 1)
        lay.addWidget(self.sub)


class ServiceTile(QPushButton):
    """A service: name in both languages, people waiting and the estimated wait, or why it is closed."""

    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code
        self.setObjectName("tile")
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        row = QHBoxLayout(self)
        row.setContentsMargins(16, 16, 24, 16)
        row.setSpacing(22)
        self.accent = QFrame()
        self.accent.setObjectName("accent")
        self.accent.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        row.addWidget(self.accent)
        lay = QVBoxLayout()
        lay.setSpacing(4)
        row.addLayout(lay, 1)
        self.name = _label("tileName")
        self.sub = _label("tileSub")
        self.info = _label("tileInfo", wrap=False)
        self.reason = _label("tileReason")
        lay.addWidget(self.name)
        lay.addWidget(self.sub)
        lay.addStretch(1)
        lay.addWidget(self.info)
        lay.addWidget(self.reason)

    def show_card(self, card: ServiceCard, lang: str) -> None:
        first, second = card.name.pick(lang)
        self.name.setText(first)
        self.sub.setText(second)
        wait = card.wait
        info = Bi(f"等候 {card.waiting} 人 · {wait.zh}", f"{card.waiting} waiting · {wait.en}")
        self.info.setText(info(lang))
        self.setEnabled(card.open)
        for w in (self.accent, self.name, self.info):
            _set_flag(w, "off", not card.open)
        self.reason.setVisible(card.reason is not None)
        self.reason.setText(card.reason(lang) if card.reason else "")


class StartPage(QWidget):
    """The greeting, departments on the left, the chosen department's services on the right."""

    department_tapped = Signal(str)
    service_tapped = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(48, 26, 48, 30)
        lay.setSpacing(6)
        self.greeting = _label("greeting", wrap=False)
        self.choose = _label("choose", wrap=False)
        lay.addWidget(self.greeting)
        lay.addWidget(self.choose)
        lay.addSpacing(14)
        body = QHBoxLayout()
        body.setSpacing(30)
        self.depts = QVBoxLayout()
        self.depts.setSpacing(12)
        dept_box = QWidget()
        dept_box.setLayout(self.depts)
        body.addWidget(dept_box, 30)
        self.grid = QGridLayout()
        self.grid.setSpacing(22)
        grid_box = QWidget()
        grid_box.setLayout(self.grid)
        body.addWidget(grid_box, 70)
        lay.addLayout(body, 1)
        lay.addSpacing(16)
        self.notice = _label("notice")
        lay.addWidget(self.notice)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.dept_buttons: dict[str, DeptButton] = {}
        self.tiles: dict[str, ServiceTile] = {}
        self._dept_codes: list[str] = []
        self._tile_codes: list[str] = []

    def refresh(self, model: KioskModel) -> None:
        lang = model.language
        self.greeting.setText(model.greeting()(lang))
        self.choose.setText(CHOOSE(lang))
        hall = model.state.get("hall") or {}
        notice = str(hall.get("notice_zh" if lang == "zh" else "notice_en") or "")
        self.notice.setText(notice)
        self.notice.setVisible(bool(notice))
        depts = model.departments()
        codes = [d.code for d in depts]
        if codes != self._dept_codes:
            _clear(self.depts)
            self.dept_buttons.clear()
            for d in depts:
                b = DeptButton(d.code)
                b.clicked.connect(lambda _=False, c=d.code: self.department_tapped.emit(c))
                self.group.addButton(b)
                self.depts.addWidget(b, 1)
                b.show()
                self.dept_buttons[d.code] = b
            if len(depts) < 8:
                self.depts.addStretch(8 - len(depts))
            self._dept_codes = codes
        for d in depts:
            b = self.dept_buttons[d.code]
            b.name.setText(d.name(lang))
            b.sub.setText(f"等候 {d.waiting} 人" if lang == "zh" else f"{d.waiting} waiting")
            _set_flag(b.name, "small", lang == "en")  # English names are longer: a size smaller
            on = d.code == model.department
            b.setChecked(on)
            _set_flag(b.name, "on", on)
            _set_flag(b.sub, "on", on)
        cards = model.department_cards()
        tile_codes = [c.code for c in cards]
        if tile_codes != self._tile_codes:
            _clear(self.grid)
            self.tiles.clear()
            for i, c in enumerate(cards):
                t = ServiceTile(c.code)
                t.clicked.connect(lambda _=False, code=c.code: self.service_tapped.emit(code))
                self.grid.addWidget(t, i // 2, i % 2)
                t.show()
                self.tiles[c.code] = t
            # At least three equal rows, so one or two services do not become giant buttons.
            rows = max(3, (len(cards) + 1) // 2)
            for r in range(rows):
                self.grid.setRowStretch(r, 1)
            self.grid.setColumnStretch(0, 1)
            self.grid.setColumnStretch(1, 1)
            self._tile_codes = tile_codes
        for c in cards:
            self.tiles[c.code].show_card(c, lang)


class DetailsPage(QWidget):
    """One service before the citizen confirms: materials (一次性告知), promised time, green channel."""

    priority_chosen = Signal(object)
    confirm_tapped = Signal()
    back_tapped = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = QHBoxLayout(self)
        lay.setContentsMargins(48, 30, 48, 34)
        lay.setSpacing(36)
        # Left: materials.
        card = QFrame()
        card.setObjectName("card")
        cl = QVBoxLayout(card)
        cl.setContentsMargins(36, 26, 30, 26)
        self.mat_title = _label("sectionTitle")
        self.mat_sub = _label("sectionSub")
        cl.addWidget(self.mat_title)
        cl.addWidget(self.mat_sub)
        cl.addSpacing(8)
        self.materials_scroll = QScrollArea()
        _touch_scroll(self.materials_scroll)
        self.materials_scroll.setStyleSheet("background: transparent;")
        inner = QWidget()
        self.materials = QVBoxLayout(inner)
        self.materials.setContentsMargins(0, 0, 10, 0)
        self.materials.setSpacing(6)
        self.materials_scroll.setWidget(inner)
        cl.addWidget(self.materials_scroll, 1)
        lay.addWidget(card, 56)
        # Right: service, queue, promise, priority, buttons.
        right = QVBoxLayout()
        right.setSpacing(10)
        self.title = _label("title")
        self.subtitle = _label("subtitle")
        right.addWidget(self.title)
        right.addWidget(self.subtitle)
        right.addSpacing(10)
        self.queue = _label("info")
        self.wait_note = _label("reason")  # past the session's end, or no open counter
        self.promise = _label("promise")
        self.reason = _label("reason")
        right.addWidget(self.queue)
        right.addWidget(self.wait_note)
        right.addWidget(self.promise)
        right.addWidget(self.reason)
        right.addSpacing(10)
        self.prio_title = _label("sectionTitle")
        right.addWidget(self.prio_title)
        self.prio_grid = QGridLayout()
        self.prio_grid.setSpacing(12)
        right.addLayout(self.prio_grid)
        right.addStretch(1)
        self.confirm = _button("confirm")
        self.confirm.setMinimumHeight(130)
        self.confirm.clicked.connect(self._confirm_clicked)
        self.back = _button("back")
        self.back.setMinimumHeight(96)
        self.back.clicked.connect(self.back_tapped)
        right.addWidget(self.confirm)
        right.addWidget(self.back)
        lay.addLayout(right, 44)
        self.prio_group = QButtonGroup(self)
        self.prio_group.setExclusive(True)
        self.prio_buttons: dict[str | None, QPushButton] = {}
        self._shown: tuple[str | None, str, tuple[str, ...]] | None = None

    def _confirm_clicked(self) -> None:
        # Disable at once, before anything else runs: a second tap in the same instant finds it off.
        self.confirm.setEnabled(False)
        self.confirm_tapped.emit()

    def refresh(self, model: KioskModel) -> None:
        card = model.card(model.selected or "")
        if card is None:
            return
        lang = model.language
        first, second = card.name.pick(lang)
        self.title.setText(first)
        self.subtitle.setText(second)
        wait = card.wait
        self.queue.setText(Bi(f"当前等候 {card.waiting} 人，{wait.zh}",
                              f"{card.waiting} waiting now, {wait.en}")(lang))
        self.wait_note.setVisible(card.wait_note is not None)
        self.wait_note.setText(card.wait_note(lang) if card.wait_note else "")
        self.promise.setVisible(card.promised is not None)
        self.promise.setText(card.promised(lang) if card.promised else "")
        self.reason.setVisible(card.reason is not None)
        self.reason.setText(card.reason(lang) if card.reason else "")
        self.mat_title.setText(Bi("请备齐以下材料（一次性告知）", "Please bring (one-time notice)")(lang))
        self.mat_sub.setText(Bi("材料不齐可能无法当场办理；清单也印在号票上",
                                "Without these documents we may not be able to help today; "
                                "the list is printed on your ticket")(lang))
        key = (card.code, lang, card.priority_classes)
        if key != self._shown:
            _clear(self.materials)
            if card.description is not None:  # fees, eligibility: told once, with the materials
                a, b = card.description.pick(lang)
                notice = QWidget()
                col = QVBoxLayout(notice)
                col.setContentsMargins(0, 0, 0, 10)
                col.setSpacing(2)
                col.addWidget(_label("descriptionTitle", Bi("办理须知", "Please note")(lang)))
                col.addWidget(_label("description", a))
                if b:
                    col.addWidget(_label("materialSub", b))
                self.materials.addWidget(notice)
                notice.show()
            if not card.materials:
                none = _label("material", Bi("无需特别材料", "No documents needed")(lang))
                self.materials.addWidget(none)
                none.show()
            for i, m in enumerate(card.materials, start=1):
                a, b = m.pick(lang)
                item = QWidget()
                row = QHBoxLayout(item)
                row.setContentsMargins(0, 0, 0, 6)
                row.setSpacing(6)
                number = _label("materialNo", f"{i}.", wrap=False)
                number.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
                row.addWidget(number, 0, Qt.AlignmentFlag.AlignTop)
                texts = QVBoxLayout()
                texts.setSpacing(0)
                texts.addWidget(_label("material", a))
                if b:
                    texts.addWidget(_label("materialSub", b))
                row.addLayout(texts, 1)
                self.materials.addWidget(item)
                item.show()
            self.materials.addStretch(1)
            self.materials_scroll.verticalScrollBar().setValue(0)
            self._build_priority(model, card, lang)
            self._shown = key
        for choice, button in self.prio_buttons.items():
            button.setChecked(choice == model.priority)
        busy = model.busy
        self.confirm.setEnabled(card.open and not busy)
        self.back.setEnabled(not busy)
        if busy:
            self.confirm.setText(Bi("正在出票，请稍候……", "Printing your ticket…")(lang))
        else:
            self.confirm.setText(Bi("确认取号", "Take a ticket")(lang))
        self.back.setText(Bi("返回", "Back")(lang))

    def _build_priority(self, model: KioskModel, card: ServiceCard, lang: str) -> None:
        for b in self.prio_buttons.values():
            self.prio_group.removeButton(b)
        _clear(self.prio_grid)
        self.prio_buttons.clear()
        self.prio_title.setVisible(bool(card.priority_classes))
        if not card.priority_classes:
            return
        self.prio_title.setText(Bi("绿色通道（请向工作人员出示证件）",
                                   "Priority channel (show your document to staff)")(lang))
        choices: list[tuple[str | None, str]] = [(None, Bi("普通号", "Regular")(lang))]
        choices += [(c, model.priority_name(c)(lang)) for c in card.priority_classes]
        for i, (code, text) in enumerate(choices):
            b = _button("prioButton", text)
            b.setCheckable(True)
            b.setMinimumHeight(78)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            b.clicked.connect(lambda _=False, c=code: self.priority_chosen.emit(c))
            self.prio_group.addButton(b)
            self.prio_grid.addWidget(b, i // 2, i % 2)
            b.show()
            self.prio_buttons[code] = b


class ConfirmationPage(QWidget):
    """The big number after issuing, with people ahead and the wait; returns to start by itself."""

    done_tapped = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(60, 30, 60, 40)
        lay.setSpacing(8)
        center = Qt.AlignmentFlag.AlignHCenter
        self.caption = _label("caption", align=center)
        self.number = _label("bigNumber", wrap=False, align=center)
        self.line = _label("confirmLine", align=center)
        self.line_sub = _label("confirmSub", align=center)
        self.service = _label("confirmSub", align=center)
        self.farewell = _label("farewell", align=center)
        self.countdown = _label("countdown", align=center)
        lay.addStretch(1)
        for w in (self.caption, self.number, self.line, self.line_sub, self.service):
            lay.addWidget(w)
        lay.addSpacing(24)
        lay.addWidget(self.farewell)
        lay.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        self.done = _button("back")
        self.done.setMinimumSize(420, 96)
        self.done.clicked.connect(self.done_tapped)
        row.addWidget(self.done)
        row.addStretch(1)
        lay.addLayout(row)
        lay.addWidget(self.countdown)

    def refresh(self, model: KioskModel, seconds_left: int) -> None:
        info = model.confirmation()
        if info is None:
            return
        label, line, service = info
        lang = model.language
        self.caption.setText(Bi("您的号码", "Your number")(lang))
        self.number.setText(label)
        first, second = line.pick(lang)
        self.line.setText(first)
        self.line_sub.setText(second)
        prio = model.issued.ticket.get("priority") if model.issued else None
        svc = service(lang)
        if prio:
            svc += " · " + Bi("绿色通道", "Priority")(lang) + " " + model.priority_name(str(prio))(lang)
        self.service.setText(svc)
        self.farewell.setText(FAREWELL(lang))
        self.done.setText(Bi("完成", "Done")(lang))
        self.countdown.setText(Bi(f"{seconds_left} 秒后自动返回首页",
                                  f"Back to the start in {seconds_left} s")(lang))


class PrintFailedPage(QWidget):
    """The ticket was not printed: the number very large (to write down or photograph), that it keeps
    its place, and where to go for a printed ticket, in both languages; returns to start by itself."""

    button_tapped = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(60, 24, 60, 30)
        lay.setSpacing(6)
        center = Qt.AlignmentFlag.AlignHCenter
        self.title = _label("failedTitle", align=center)
        self.title_sub = _label("confirmSub", align=center)
        self.caption = _label("caption", align=center)
        self.number = _label("bigNumber", wrap=False, align=center)
        self.kept = _label("confirmLine", align=center)
        self.kept_sub = _label("confirmSub", align=center)
        self.go = _label("goHelp", align=center)
        self.go_sub = _label("goHelpSub", align=center)
        self.countdown = _label("countdown", align=center)
        lay.addStretch(1)
        for w in (self.title, self.title_sub):
            lay.addWidget(w)
        lay.addSpacing(18)
        for w in (self.caption, self.number, self.kept, self.kept_sub):
            lay.addWidget(w)
        lay.addSpacing(14)
        lay.addWidget(self.go)
        lay.addWidget(self.go_sub)
        lay.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        self.button = _button("back")
        self.button.setMinimumSize(420, 96)
        self.button.clicked.connect(self.button_tapped)
        row.addWidget(self.button)
        row.addStretch(1)
        lay.addLayout(row)
        lay.addWidget(self.countdown)

    def refresh(self, model: KioskModel, seconds_left: int) -> None:
        info = model.print_failed_info()
        if info is None:
            return
        label, go = info
        lang = model.language
        a, b = PRINT_FAILED.pick(lang)
        self.title.setText(a)
        self.title_sub.setText(b)
        self.caption.setText(Bi("您的号码", "Your number")(lang))
        self.number.setText(label)
        a, b = NUMBER_KEPT.pick(lang)
        self.kept.setText(a)
        self.kept_sub.setText(b)
        a, b = go.pick(lang)
        self.go.setText(a)
        self.go_sub.setText(b)
        self.button.setText(Bi("好的", "OK")(lang))
        self.countdown.setText(Bi(f"{seconds_left} 秒后自动返回首页",
                                  f"Back to the start in {seconds_left} s")(lang))


class NoticePage(QWidget):
    """A full-screen notice: closed, out of service, ask staff, print failure, refusal."""

    button_tapped = Signal()

    def __init__(self, badge: str, color: str) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(120, 40, 120, 60)
        lay.setSpacing(14)
        center = Qt.AlignmentFlag.AlignHCenter
        lay.addStretch(1)
        self.badge = _label("badge", badge, wrap=False, align=Qt.AlignmentFlag.AlignHCenter)
        self.badge.setStyleSheet(f"background: {color};")
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.badge)
        row.addStretch(1)
        lay.addLayout(row)
        lay.addSpacing(16)
        self.title = _label("noticeTitle", align=center)
        self.title.setStyleSheet(f"color: {color};")
        self.title_sub = _label("noticeTitleSub", align=center)
        self.body = _label("noticeBody", align=center)
        self.body_sub = _label("noticeBodySub", align=center)
        self.extra = _label("noticeExtra", align=center)
        self.extra_sub = _label("noticeBodySub", align=center)
        self.detail = _label("noticeDetail", align=center)
        for w in (self.title, self.title_sub):
            lay.addWidget(w)
        lay.addSpacing(20)
        for w in (self.body, self.body_sub, self.extra, self.extra_sub):
            lay.addWidget(w)
        lay.addStretch(1)
        brow = QHBoxLayout()
        brow.addStretch(1)
        self.button = _button("back")
        self.button.setMinimumSize(420, 96)
        self.button.clicked.connect(self.button_tapped)
        brow.addWidget(self.button)
        brow.addStretch(1)
        lay.addLayout(brow)
        lay.addWidget(self.detail)

    def show_notice(self, lang: str, title: Bi, body: Bi, extra: Bi | str = "", button: Bi | None = None,
                    detail: str = "") -> None:
        """Fill the notice: title and body in both languages (primary first), an emphasised extra line
        (in both languages when a Bi), an optional button, and a small line for staff (a code, never
        an exception's text)."""
        self.detail.setText(detail)
        self.detail.setVisible(bool(detail))
        a, b = title.pick(lang)
        self.title.setText(a)
        self.title_sub.setText(b)
        a, b = body.pick(lang)
        self.body.setText(a)
        self.body_sub.setText(b)
        self.body_sub.setVisible(bool(b) and b != a)
        a, b = extra.pick(lang) if isinstance(extra, Bi) else (extra, "")
        self.extra.setText(a)
        self.extra.setVisible(bool(a))
        self.extra_sub.setText(b)
        self.extra_sub.setVisible(bool(b) and b != a)
        self.button.setVisible(button is not None)
        if button is not None:
            self.button.setText(button(lang))


class PinPage(QWidget):
    """The staff PIN pad (digits only, masked)."""

    submitted = Signal(str)
    cancelled = Signal()
    touched = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(60, 30, 60, 40)
        center = Qt.AlignmentFlag.AlignHCenter
        lay.addStretch(1)
        self.title = _label("title", align=center)
        lay.addWidget(self.title)
        self.display = _label("pinDisplay", wrap=False, align=center)
        self.display.setFixedWidth(560)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.display)
        row.addStretch(1)
        lay.addLayout(row)
        self.message = _label("pinMessage", align=center)
        lay.addWidget(self.message)
        grid = QGridLayout()
        grid.setSpacing(16)
        self.keys: dict[str, QPushButton] = {}
        for i, key in enumerate(["1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "ok"]):
            b = _button("pinKey", key)
            b.clicked.connect(lambda _=False, k=key: self._key(k))
            grid.addWidget(b, i // 3, i % 3)
            self.keys[key] = b
        grow = QHBoxLayout()
        grow.addStretch(1)
        grow.addLayout(grid)
        grow.addStretch(1)
        lay.addLayout(grow)
        lay.addSpacing(20)
        crow = QHBoxLayout()
        crow.addStretch(1)
        self.cancel = _button("back")
        self.cancel.setMinimumSize(360, 90)
        self.cancel.clicked.connect(self._cancel)
        crow.addWidget(self.cancel)
        crow.addStretch(1)
        lay.addLayout(crow)
        lay.addStretch(1)
        self.pin = ""

    def _key(self, key: str) -> None:
        self.touched.emit()
        if key == "clear":
            self.pin = ""
        elif key == "ok":
            pin, self.pin = self.pin, ""
            self.submitted.emit(pin)
        elif len(self.pin) < 12:
            self.pin += key
        self.display.setText("●" * len(self.pin))

    def _cancel(self) -> None:
        self.pin = ""
        self.display.setText("")
        self.message.setText("")
        self.cancelled.emit()

    def refresh(self, lang: str) -> None:
        self.title.setText(Bi("工作人员设置：请输入密码", "Staff settings: enter the PIN")(lang))
        self.keys["clear"].setText(Bi("清除", "Clear")(lang))
        self.keys["ok"].setText(Bi("确定", "OK")(lang))
        self.cancel.setText(Bi("取消", "Cancel")(lang))


class SettingsPage(QWidget):
    """Staff settings: printer (spec, paper, mode, status, test print), default language, leave, quit."""

    apply_printer = Signal(str, int, str)
    test_print = Signal()
    refresh_status = Signal()
    default_language = Signal(str)
    reprint = Signal(str)
    back_tapped = Signal()
    quit_tapped = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(60, 26, 60, 34)
        lay.setSpacing(14)
        self.title = _label("title")
        lay.addWidget(self.title)
        card = QFrame()
        card.setObjectName("card")
        grid = QGridLayout(card)
        grid.setContentsMargins(36, 26, 36, 26)
        grid.setHorizontalSpacing(24)
        grid.setVerticalSpacing(16)
        self.labels: dict[str, QLabel] = {}

        def row(r: int, key: str) -> None:
            lab = _label("setLabel", wrap=False)
            self.labels[key] = lab
            grid.addWidget(lab, r, 0, Qt.AlignmentFlag.AlignTop)

        row(0, "broker")
        self.broker = _label("setValue")
        grid.addWidget(self.broker, 0, 1, 1, 3)
        row(1, "status")
        self.status = _label("setValue")
        grid.addWidget(self.status, 1, 1, 1, 2)
        self.recheck = _button("setButton")
        self.recheck.clicked.connect(self.refresh_status)
        grid.addWidget(self.recheck, 1, 3)
        row(2, "printer")
        self.spec = QLineEdit()
        self.spec.setObjectName("setEdit")
        self.spec.setPlaceholderText("file:/path | network:host[:9100] | usb:VID:PID | serial:/dev/ttyUSB0 | "
                                     "cups:name")
        grid.addWidget(self.spec, 2, 1, 1, 3)
        row(3, "paper")
        self.paper_group = QButtonGroup(self)
        self.paper: dict[int, QPushButton] = {}
        prow = QHBoxLayout()
        for mm in (80, 58):
            b = _button("setButton", f"{mm} mm")
            b.setCheckable(True)
            self.paper_group.addButton(b)
            self.paper[mm] = b
            prow.addWidget(b)
        self.mode_group = QButtonGroup(self)
        self.mode: dict[str, QPushButton] = {}
        prow.addSpacing(30)
        for m in ("raster", "text"):
            b = _button("setButton")
            b.setCheckable(True)
            self.mode_group.addButton(b)
            self.mode[m] = b
            prow.addWidget(b)
        prow.addStretch(1)
        grid.addLayout(prow, 3, 1, 1, 3)
        arow = QHBoxLayout()
        self.apply = _button("setButton")
        self.apply.clicked.connect(self._apply)
        self.test = _button("setButton")
        self.test.clicked.connect(self.test_print)
        arow.addWidget(self.apply)
        arow.addWidget(self.test)
        arow.addStretch(1)
        grid.addLayout(arow, 4, 1, 1, 3)
        self.result = _label("setValue")
        grid.addWidget(self.result, 5, 1, 1, 3)
        row(6, "language")
        lrow = QHBoxLayout()
        self.lang_group = QButtonGroup(self)
        self.langs: dict[str, QPushButton] = {}
        for code, text in (("zh", "中文"), ("en", "English")):
            b = _button("setButton", text)
            b.setCheckable(True)
            b.clicked.connect(lambda _=False, c=code: self.default_language.emit(c))
            self.lang_group.addButton(b)
            self.langs[code] = b
            lrow.addWidget(b)
        lrow.addSpacing(60)
        # Reprint a ticket at this kiosk (on the language row: the page must fit a 1080-line screen).
        self.labels["reprint"] = _label("setLabel", wrap=False)
        lrow.addWidget(self.labels["reprint"])
        self.reprint_ticket = QLineEdit()
        self.reprint_ticket.setObjectName("setEdit")
        self.reprint_ticket.setPlaceholderText("A012")
        self.reprint_ticket.setMaxLength(12)
        self.reprint_button = _button("setButton")
        self.reprint_button.clicked.connect(lambda: self.reprint.emit(self.reprint_ticket.text().strip()))
        lrow.addWidget(self.reprint_ticket, 1)
        lrow.addWidget(self.reprint_button)
        grid.addLayout(lrow, 6, 1, 1, 3)
        grid.setColumnStretch(1, 1)
        lay.addWidget(card, 1)
        brow = QHBoxLayout()
        self.back = _button("back")
        self.back.setMinimumHeight(90)
        self.back.clicked.connect(self.back_tapped)
        self.quit = _button("danger")
        self.quit.clicked.connect(self.quit_tapped)
        brow.addWidget(self.back, 3)
        brow.addStretch(1)
        brow.addWidget(self.quit, 1)
        lay.addLayout(brow)

    def _apply(self) -> None:
        paper = 58 if self.paper[58].isChecked() else 80
        mode = "text" if self.mode["text"].isChecked() else "raster"
        self.apply_printer.emit(self.spec.text().strip(), paper, mode)

    def load(self, spec: str, paper: int, mode: str) -> None:
        """Fill the printer fields from the current configuration."""
        self.spec.setText(spec)
        self.paper.get(paper, self.paper[80]).setChecked(True)
        self.mode.get(mode, self.mode["raster"]).setChecked(True)

    def refresh(self, model: KioskModel, broker: str) -> None:
        lang = model.language
        t = {"broker": Bi("叫号服务器", "Ticket server"), "status": Bi("打印机状态", "Printer status"),
             "printer": Bi("打印机", "Printer"), "paper": Bi("纸宽 / 方式", "Paper / mode"),
             "language": Bi("默认语言", "Default language"), "reprint": Bi("补打号票", "Reprint a ticket")}
        for key, text in t.items():
            self.labels[key].setText(text(lang))
        self.title.setText(Bi("工作人员设置", "Staff settings")(lang))
        up = Bi("已连接", "connected") if model.connected else Bi("未连接", "not connected")
        self.broker.setText(f"{broker} · {up(lang)}")
        health = model.printer
        self.status.setText(Bi("就绪", "Ready")(lang) if health.ready
                            else f"{health.code} · {health.message(lang) or health.reason(lang)}")
        self.recheck.setText(Bi("重新检查", "Check again")(lang))
        self.mode["raster"].setText(Bi("图像（推荐）", "Raster (recommended)")(lang))
        self.mode["text"].setText(Bi("文字（打印机字库）", "Text (printer fonts)")(lang))
        self.apply.setText(Bi("应用打印机设置", "Apply printer settings")(lang))
        self.test.setText(Bi("测试打印", "Test print")(lang))
        self.reprint_button.setText(Bi("补打", "Reprint")(lang))
        for code, b in self.langs.items():
            b.setChecked(code == model.settings.language)
        self.back.setText(Bi("返回取号界面", "Back to the kiosk")(lang))
        self.quit.setText(Bi("退出程序", "Quit kiosk")(lang))


# --------------------------------------------------------------------------------------------------
# The window


class KioskWindow(QWidget):
    """The kiosk application window.

    ``link`` is a :class:`queuehall.qtlink.QtLink` (or anything with its signals and
    ``request``); ``printer`` a :class:`PrintService`; ``model`` the view-model (its settings
    hold the timer delays, injectable for tests). ``printer_spec`` is shown and edited in the
    settings. Signals for observers (tests, logs): ``screen_changed(str)``, ``phase_changed(str)``,
    ``ready()`` once the first hall state and printer status are in.
    """

    screen_changed = Signal(str)
    phase_changed = Signal(str)
    ready = Signal()

    def __init__(self, link: Any, printer: PrintService, model: KioskModel, *, printer_spec: str = "",
                 broker_label: str = "", quit_app: Callable[[], None] | None = None,
                 journal: KioskJournal | None = None, name: str = "kiosk") -> None:
        super().__init__()
        self.link = link
        self.printer = printer
        self.model = model
        if model.clock is system_now and getattr(link, "hall_clock", None) is not None:
            # The hall's time from the broker: the PC's clock may be off (or the hall simulated).
            model.clock = link.hall_clock
        self.printer_spec = printer_spec
        self.broker_label = broker_label
        self.quit_app = quit_app or QApplication.quit
        self.allow_close = False
        client_id = str(getattr(link, "client_id", "") or "")
        if journal is None:  # memory only: the link's client id, whatever it is
            journal = KioskJournal(None, name, client_id=client_id or None)
        elif client_id and client_id != journal.client_id:
            log.error("the link's client id %s is not the journal's %s: unsettled requests cannot be recovered",
                      client_id, journal.client_id)
        # Everything but drawing and timers: issuing, printing, faults, reprints, recovery (Qt-free).
        self.controller = KioskController(model, link, printer, journal, name=name, on_change=self.redraw)
        self._last_screen: Screen | None = None
        self._timer_key: tuple[Screen, Phase | None, bool] | None = None  # what the flow timer was armed for
        self._last_phase = model.phase
        self._was_ready = False
        self._deadline = 0.0
        self.setObjectName("root")
        self.setWindowTitle("queuehall kiosk")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        # The window's own font (not the application's: other windows in the process keep theirs).
        self.family = cjk_family()
        font = QFont(self.family)
        font.setPixelSize(24)
        self.setFont(font)
        self._scale = 0.0
        self._build()
        self._wire()

    # ------------------------------------------------------------------ construction

    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.header = Header()
        lay.addWidget(self.header)
        self.stack = QStackedWidget()
        lay.addWidget(self.stack, 1)
        self.start_page = StartPage()
        self.details_page = DetailsPage()
        self.confirm_page = ConfirmationPage()
        self.closed_page = NoticePage("休", "#1666c5")
        self.out_page = NoticePage("!", "#8a94a3")
        self.staff_page = NoticePage("!", "#d9822b")
        self.failed_page = PrintFailedPage()
        self.message_page = NoticePage("i", "#b34700")
        self.pin_page = PinPage()
        self.settings_page = SettingsPage()
        self.pages: dict[Screen, QWidget] = {
            Screen.START: self.start_page, Screen.DETAILS: self.details_page,
            Screen.CONFIRMATION: self.confirm_page, Screen.CLOSED: self.closed_page,
            Screen.OUT_OF_SERVICE: self.out_page, Screen.ASK_STAFF: self.staff_page,
            Screen.PRINT_FAILED: self.failed_page, Screen.MESSAGE: self.message_page,
            Screen.PIN: self.pin_page, Screen.SETTINGS: self.settings_page,
        }
        for page in self.pages.values():
            self.stack.addWidget(page)
        self.flow_timer = QTimer(self)
        self.flow_timer.setSingleShot(True)
        self.flow_timer.timeout.connect(self._flow_timeout)
        self.status_timer = QTimer(self)
        self.status_timer.timeout.connect(self._poll)
        self.tick_timer = QTimer(self)
        self.tick_timer.setInterval(1000)
        self.tick_timer.timeout.connect(self._tick)

    def _wire(self) -> None:
        c = self.controller
        self.link.state_changed.connect(c.on_state)
        self.link.connection_changed.connect(c.on_connection)
        self.link.replied.connect(c.on_reply)
        self.printer.done.connect(c.on_job)
        self.header.language_tapped.connect(self._toggle_language)
        self.header.settings_gesture.connect(self._open_settings)
        self.start_page.department_tapped.connect(lambda c: self._do(self.model.select_department, c))
        self.start_page.service_tapped.connect(lambda c: self._do(self.model.tap_service, c))
        self.details_page.priority_chosen.connect(lambda c: self._do(self.model.choose_priority, c))
        self.details_page.confirm_tapped.connect(self.confirm)
        self.details_page.back_tapped.connect(lambda: self._do(self.model.back_to_start))
        self.confirm_page.done_tapped.connect(lambda: self._do(self.model.back_to_start, reset_language=True))
        self.message_page.button_tapped.connect(lambda: self._do(self.model.back_to_start))
        self.failed_page.button_tapped.connect(
            lambda: self._do(self.model.back_to_start, reset_language=True))
        self.pin_page.submitted.connect(self._pin)
        self.pin_page.cancelled.connect(lambda: self._do(self.model.close_settings))
        sp = self.settings_page
        sp.apply_printer.connect(self._apply_printer)
        sp.test_print.connect(self._test_print)
        sp.refresh_status.connect(self._poll)
        sp.reprint.connect(self._staff_reprint)
        sp.default_language.connect(lambda c: self._do(self.model.set_default_language, c))
        sp.back_tapped.connect(lambda: self._do(self.model.close_settings))
        sp.quit_tapped.connect(self._quit)
        # Scrolling the materials list is "still reading": it restarts the idle countdown. (Only this
        # viewport is watched: an application-wide Python event filter would cost the interpreter lock
        # on every paint event, slowing the printer and broker threads.)
        self.details_page.materials_scroll.viewport().installEventFilter(self)
        self.pin_page.touched.connect(self._touched)
        sp.spec.textEdited.connect(self._touched)

    def start(self) -> None:
        """Start the printer worker, the broker link and the timers, and draw the first screen."""
        self.printer.start()
        self.link.start()
        self.status_timer.start(self.model.settings.status_ms)
        self.tick_timer.start()
        self._poll()
        self.redraw()

    def shutdown(self) -> None:
        """Stop timers, the link and the printer worker (for tests and a clean exit)."""
        for t in (self.flow_timer, self.status_timer, self.tick_timer):
            t.stop()
        self.link.stop()
        self.printer.stop()
        self.allow_close = True

    # ------------------------------------------------------------------ never closed by a citizen

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.allow_close:
            event.accept()
        else:
            event.ignore()  # Alt+F4, a window manager's close: the kiosk stays

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # Keys a child did not use end here: Esc, Ctrl+Q, F-keys… are all swallowed, nothing leaves the
        # kiosk by keyboard (Alt+F4 arrives as a close event, which closeEvent refuses).
        event.accept()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.Wheel):
            self._touched()
        return False

    def _touched(self, *_: Any) -> None:
        """The person at the screen is still busy: restart the idle countdown of the current page."""
        if self.model.screen not in (Screen.CONFIRMATION, Screen.MESSAGE, Screen.PRINT_FAILED) \
                and self.flow_timer.isActive():
            self.flow_timer.start()

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        u = min(self.width() / 1920, self.height() / 1080)
        u = max(0.45, min(u, 2.0))
        if abs(u - self._scale) > 0.01:
            self._scale = u
            self.setStyleSheet(stylesheet(u, self.family))
            self.header.setFixedHeight(round(118 * u))

    # ------------------------------------------------------------------ inputs

    def _do(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        fn(*args, **kw)
        self._touched()
        self.redraw()

    def _toggle_language(self) -> None:
        self._do(self.model.set_language, "en" if self.model.language == "zh" else "zh")

    # ------------------------------------------------------------------ issuing and the printer

    def confirm(self) -> None:
        """The citizen tapped "take a ticket" (double taps are ignored by the model)."""
        self.controller.confirm()

    def _poll(self) -> None:
        """Ask the printer for its status (every ``status_seconds``, and "check again" in the settings)."""
        self.controller.poll()

    # ------------------------------------------------------------------ settings

    def _open_settings(self) -> None:
        self._do(self.model.open_settings)

    def _pin(self, pin: str) -> None:
        ok, message = self.model.enter_pin(pin)
        self.pin_page.message.setText("" if ok else message(self.model.language))
        if ok:
            cfg = self.printer.config
            self.settings_page.load(self.printer_spec, cfg.paper_mm if cfg else 80,
                                    cfg.mode if cfg else "raster")
            self.settings_page.result.setText("")
            log.info("settings opened")
        self.redraw()

    def _apply_printer(self, spec: str, paper: int, mode: str) -> None:
        from queuehall.kiosk.model import KioskConfigError, parse_printer_spec

        self._touched()
        lang = self.model.language
        try:
            values = parse_printer_spec(spec)
            old = self.printer.config
            extra = {} if old is None or old.backend != values["backend"] else {"profile": old.profile}
            config = PrinterConfig.from_dict({**values, **extra, "paper_mm": paper, "mode": mode})
        except (KioskConfigError, PrinterError) as err:
            self.settings_page.result.setText(err.zh if lang == "zh" else err.en)
            return
        self.printer_spec = spec
        job = self.printer.configure(config)

        def configured(outcome: Any) -> None:
            self._show_result(outcome, Bi("打印机已设置", "Printer set"))
            self._poll()

        self.controller.expect_job(job, configured)
        log.info("printer set to %s (%s, %d mm)", spec, mode, paper)

    def _test_print(self) -> None:
        self._touched()
        job = self.printer.test_print()
        self.controller.expect_job(job, lambda outcome: self._show_result(outcome, Bi("测试页已打印",
                                                                                   "Test page printed")))

    def _staff_reprint(self, ticket: str) -> None:
        """Settings: order a reprint of ``ticket`` at this kiosk (printed when the order comes back)."""
        self._touched()
        if not ticket.strip():
            return

        def done(reply: Any) -> None:
            lang = self.model.language
            if reply.get("status") == "ok":
                label = (reply.get("result") or {}).get("ticket", {}).get("label", ticket)
                text = Bi(f"已下达补打 {label}，即将打印", f"Reprint of {label} ordered; printing now")(lang)
            elif reply.get("status") == "error":
                err = reply.get("error") or {}
                text = f"{err.get('code')} · {err.get('message_zh') if lang == 'zh' else err.get('message_en')}"
            else:
                text = Bi("叫号服务器没有响应，请重试", "The ticket server did not answer; try again")(lang)
            self.settings_page.result.setText(text)

        self.controller.order_reprint(ticket, done)

    def _show_result(self, outcome: Any, ok_text: Bi) -> None:
        lang = self.model.language
        if isinstance(outcome, PrinterError | TicketError):
            text = f"{outcome.code} · {outcome.zh if lang == 'zh' else outcome.en}"
        elif isinstance(outcome, Exception):
            text = f"{type(outcome).__name__}: {outcome}"
        else:
            text = ok_text(lang)
        self.settings_page.result.setText(text)
        self.redraw()

    def _quit(self) -> None:
        log.info("kiosk quit from the settings")
        self.allow_close = True
        self.quit_app()

    # ------------------------------------------------------------------ drawing

    def _flow_timeout(self) -> None:
        self.model.on_timeout()  # whoever comes next starts clean, in the default language
        self._timer_key = None
        self.redraw()

    def _tick(self) -> None:
        self.redraw()

    def _timer_for(self, screen: Screen) -> int | None:
        return self.model.timeout_ms(screen)

    def redraw(self) -> None:
        """Show the model's screen and refresh its texts."""
        m = self.model
        screen = m.screen
        lang = m.language
        delay = self._timer_for(screen)
        # (Re)arm on a new page or phase, and when a page turns from clean to not (English chosen on
        # the start page) or back: the start, closed and out-of-service pages time out only then.
        key = (screen, m.phase if screen == Screen.DETAILS else None, delay is None)
        if key != self._timer_key:
            self._timer_key = key
            if delay is None:
                self.flow_timer.stop()
            else:
                self.flow_timer.start(delay)
                self._deadline = time.monotonic() + delay / 1000
        self.header.refresh(m, show_language=screen not in (Screen.PIN, Screen.SETTINGS))
        if screen == Screen.START:
            self.start_page.refresh(m)
        elif screen == Screen.DETAILS:
            self.details_page.refresh(m)
        elif screen == Screen.CONFIRMATION:
            left = max(0, math.ceil(self._deadline - time.monotonic())) if self.flow_timer.isActive() else 0
            self.confirm_page.refresh(m, left)
        elif screen == Screen.CLOSED:
            info = m.closed_info()
            if info is not None:
                reason, when = info
                body = Bi(f"下次取号时间：{when.zh}", f"Tickets again from {when.en}") if when else \
                    Bi("请留意大厅公告", "Please see the hall notices")
                self.closed_page.show_notice(lang, reason, body)
        elif screen == Screen.OUT_OF_SERVICE:
            reason, detail = m.out_of_service_reason()
            if detail.startswith("BROKER_"):
                detail = f"{detail} · {self.broker_label}"
            self.out_page.show_notice(lang, OUT_OF_SERVICE, reason, m.go_for_help(), detail=detail)
        elif screen == Screen.ASK_STAFF:
            reason, detail = m.ask_staff_reason()
            paused = Bi(f"暂停取号。{m.go_for_help().zh}", f"Tickets are paused. {m.go_for_help().en}")
            self.staff_page.show_notice(lang, ASK_STAFF, reason, paused, detail=detail)
        elif screen == Screen.PRINT_FAILED:
            left = max(0, math.ceil(self._deadline - time.monotonic())) if self.flow_timer.isActive() else 0
            self.failed_page.refresh(m, left)
        elif screen == Screen.MESSAGE and m.message is not None:
            self.message_page.show_notice(lang, m.message.title, m.message.body, "", Bi("返回", "Back"))
        elif screen == Screen.PIN:
            self.pin_page.refresh(lang)
        elif screen == Screen.SETTINGS:
            self.settings_page.refresh(m, self.broker_label)
        self.stack.setCurrentWidget(self.pages[screen])
        if screen != self._last_screen:
            self._last_screen = screen
            self.screen_changed.emit(str(screen))
        if m.phase != self._last_phase:
            self._last_phase = m.phase
            self.phase_changed.emit(str(m.phase))
        if not self._was_ready and m.state and m.printer.code != "PRINTER_UNKNOWN":
            self._was_ready = True
            self.ready.emit()


def warm_up_fonts() -> None:
    """Load the ticket fonts on the GUI thread once, so the first ticket is not slower than the rest."""
    try:
        cjk_font_family()
        number_font_family()
    except TicketError as err:
        log.error("%s", err)
