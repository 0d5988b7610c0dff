"""Small widget helpers every kiosk page uses, and the header above every page (hall name, clock, language)."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QBoxLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QPushButton,
    QScrollArea,
    QScroller,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)
from queuehall.kiosk.model import Bi, KioskModel

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


def centred_row(layout: QBoxLayout, *widgets: QWidget, gap: int = 0) -> QHBoxLayout:
    """Add a row to ``layout`` with ``widgets`` side by side in its middle (``gap`` pixels between them)."""
    row = QHBoxLayout()
    row.addStretch(1)
    for i, w in enumerate(widgets):
        if i and gap:
            row.addSpacing(gap)
        row.addWidget(w)
    row.addStretch(1)
    layout.addLayout(row)
    return row


def big_button(name: str, tapped: Any) -> QPushButton:
    """A page's large button at the foot of the page (420 × 96 at least) that emits or calls ``tapped``."""
    b = make_button(name)
    min_size(b, 420, 96)
    b.clicked.connect(tapped)
    return b


def set_pair(first: QLabel, second: QLabel, text: Bi, lang: str, *, hide_repeat: bool = False) -> None:
    """``text`` in the screen's language on ``first`` and in the other on ``second``; with ``hide_repeat``
    ``second`` is hidden when it is empty or says the same as ``first``."""
    a, b = text.pick(lang)
    first.setText(a)
    second.setText(b)
    if hide_repeat:
        second.setVisible(bool(b) and b != a)


def set_flag(widget: QWidget, name: str, value: bool | str) -> None:
    """Set a style property (``#x[name="true"]`` in the stylesheet) and re-apply the style."""
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
    large_text_tapped = Signal()

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
        # 适老化: large type and high contrast, one tap away (the idle timeout turns it off again).
        self.large = make_button("largeButton")
        self.large.setCheckable(True)
        self.large.clicked.connect(self.large_text_tapped)
        lay.addWidget(self.large)
        lay.addSpacing(16)
        self.lang = make_button("langButton")
        self.lang.clicked.connect(self.language_tapped)
        lay.addWidget(self.lang)
        self._taps: list[float] = []

    def fit_name(self) -> None:
        """A long hall name (in English, or on a narrow portrait screen) takes the smaller size."""
        for label in (self.hall, self.hall_en):
            for level in ("", "long", "longer", "longest"):  # e.g. 40, 30, 24, 20 px at 1920×1080
                set_flag(label, "fit", level)
                lay = self.layout()
                if lay is not None:
                    lay.activate()  # the widths as laid out now (the buttons beside may have grown)
                if label.fontMetrics().horizontalAdvance(label.text()) <= label.contentsRect().width():
                    break

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.fit_name()

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
        self.fit_name()
        now = model.now_local()
        self.clock.setText(now.strftime("%H:%M"))
        wd = "一二三四五六日"[now.weekday()]
        self.date.setText(f"{now.year}年{now.month}月{now.day}日 星期{wd}" if model.language == "zh"
                          else now.strftime("%a %d %b %Y"))
        # Offer the *other* language, written in that language, so both kinds of reader find it.
        self.lang.setText("English" if model.language == "zh" else "中文")
        self.lang.setVisible(show_language)
        self.large.setText("大字" if model.language == "zh" else "Large text")
        self.large.setChecked(model.large_text)
        self.large.setVisible(show_language)



# --------------------------------------------------------------------------------------------------
# Scale: every margin, spacing and minimum size is written for a 1920×1080 screen and scaled with the type


def min_size(widget: QWidget, width: int = 0, height: int = 0) -> None:
    """Give ``widget`` a minimum size in 1920×1080 pixels, scaled by :func:`apply_scale`."""
    widget.setProperty("baseMin", (width, height))
    widget.setMinimumSize(width, height)


def fixed_width(widget: QWidget, width: int) -> None:
    """Give ``widget`` a fixed width in 1920×1080 pixels, scaled by :func:`apply_scale`."""
    widget.setProperty("baseFixedWidth", width)
    widget.setFixedWidth(width)


def _scaled(n: int, u: float) -> int:
    return round(n * u) if n > 0 else n


def _scale_layout(layout: QLayout, u: float) -> None:
    base = layout.property("baseMetrics")
    if base is None:  # first seen: what the page's code asked for at 1920×1080
        m = layout.contentsMargins()
        spacers = []
        for i in range(layout.count()):
            item = layout.itemAt(i)
            spacer = item.spacerItem() if item is not None else None
            if (spacer is not None and spacer.sizePolicy().horizontalPolicy() == QSizePolicy.Policy.Fixed) \
                    or (spacer is not None and spacer.sizePolicy().verticalPolicy() == QSizePolicy.Policy.Fixed):
                hint = spacer.sizeHint()
                spacers.append((i, hint.width(), hint.height(), spacer.sizePolicy().horizontalPolicy(),
                                spacer.sizePolicy().verticalPolicy()))
        if isinstance(layout, QGridLayout):
            spacing = (layout.horizontalSpacing(), layout.verticalSpacing())
        else:
            spacing = (layout.spacing(), layout.spacing())
        base = ((m.left(), m.top(), m.right(), m.bottom()), spacing, spacers)
        layout.setProperty("baseMetrics", base)
    (left, top, right, bottom), (hs, vs), spacers = base
    layout.setContentsMargins(_scaled(left, u), _scaled(top, u), _scaled(right, u), _scaled(bottom, u))
    if isinstance(layout, QGridLayout):
        layout.setHorizontalSpacing(_scaled(hs, u))
        layout.setVerticalSpacing(_scaled(vs, u))
    else:
        layout.setSpacing(_scaled(hs, u))
    for i, w, h, hp, vp in spacers:
        item = layout.itemAt(i)
        spacer = item.spacerItem() if item is not None else None
        if spacer is not None:
            spacer.changeSize(_scaled(w, u), _scaled(h, u), hp, vp)
    layout.invalidate()


def apply_scale(root: QWidget, u: float, sizes: float | None = None) -> None:
    """Scale ``root``'s layouts (margins, spacing, fixed spacers) and the sizes set by :func:`min_size` and
    :func:`fixed_width` to ``u`` (1.0 = a 1920×1080 screen; ``sizes``, when given, scales those sizes
    instead). Widgets made later are scaled when this runs on them (their page calls it for each new one)."""
    size_u = u if sizes is None else sizes
    layouts = root.findChildren(QLayout)
    own = root.layout()
    if own is not None and own not in layouts:
        layouts.append(own)
    for layout in layouts:
        _scale_layout(layout, u)
    for widget in [root, *root.findChildren(QWidget)]:
        base = widget.property("baseMin")
        if base is not None:
            widget.setMinimumSize(_scaled(base[0], size_u), _scaled(base[1], size_u))
        fixed = widget.property("baseFixedWidth")
        if fixed is not None:
            widget.setFixedWidth(_scaled(fixed, size_u))
