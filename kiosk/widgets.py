"""Small widget helpers every kiosk page uses, and the header above every page (hall name, clock, language)."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QScroller,
    QVBoxLayout,
    QWidget,
)
from queuehall.kiosk.model import KioskModel

SETTINGS_TAPS = 5  # taps on the hall name …
SETTINGS_TAP_WINDOW = 3.0  # … within this many seconds open the PIN pad


def make_label(name: str, text: str = "", *, wrap: bool = True,
           align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignLeft) -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(wrap)
    label.setAlignment(align | Qt.AlignmentFlag.AlignVCenter)
    label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
    return label


def make_button(name: str, text: str = "") -> QPushButton:
    b = QPushButton(text)
    b.setObjectName(name)
    b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    b.setCursor(Qt.CursorShape.PointingHandCursor)
    return b


def set_flag(widget: QWidget, name: str, value: bool) -> None:
    """Set a boolean style property (``#x[name="true"]`` in the stylesheet) and re-apply the style."""
    if widget.property(name) != value:
        widget.setProperty(name, value)
        widget.style().unpolish(widget)
        widget.style().polish(widget)


def touch_scroll(area: QScrollArea) -> None:
    """Let a finger drag the list (kinetic scrolling), and hide the scroll bar."""
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    QScroller.grabGesture(area.viewport(), QScroller.ScrollerGestureType.LeftMouseButtonGesture)


def clear_layout(layout: QGridLayout | QVBoxLayout) -> None:
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
        self.hall = make_button("hallName")
        self.hall.setCursor(Qt.CursorShape.ArrowCursor)
        self.hall.clicked.connect(self._tap)
        self.hall_en = make_label("hallNameEn", wrap=False)
        names.addWidget(self.hall)
        names.addWidget(self.hall_en)
        lay.addLayout(names, 1)
        clock = QVBoxLayout()
        clock.setSpacing(0)
        self.clock = make_label("clock", wrap=False, align=Qt.AlignmentFlag.AlignRight)
        self.date = make_label("date", wrap=False, align=Qt.AlignmentFlag.AlignRight)
        clock.addWidget(self.clock)
        clock.addWidget(self.date)
        lay.addLayout(clock)
        lay.addSpacing(28)
        self.lang = make_button("langButton")
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

