"""The evaluator drawn over a counter's screen (docs/evaluation.md): five large bilingual buttons after a
finish, the indicators and an optional reason for the two low levels, thanks, and back to the normal
screen after a timeout. The state lives in :class:`~queuehall.display.evaluation.EvaluatorModel`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)
from queuehall.display.evaluation import (
    DETAILS,
    DONE,
    IDLE,
    LEVELS,
    SENDING,
    EvaluatorModel,
)

from queuehall.ratings import RATING_INDICATORS, RATING_LEVELS

# Green (best) to red (worst): the colours every Chinese evaluator uses.
LEVEL_COLOURS = {5: "#1e8e3e", 4: "#4caf50", 3: "#8a9a1b", 2: "#e0781f", 1: "#d93025"}
_STYLE = """
QWidget#evaluator { background: #071a33; }
QLabel { color: #ffffff; }
QLabel#muted { color: #a9bdd6; }
QPushButton { color: #ffffff; border: none; border-radius: 14px; padding: 8px; }
QPushButton#indicator { background: #12325e; border: 3px solid #24508a; }
QPushButton#indicator:checked { background: #e0781f; border-color: #ffc233; }
QPushButton#plain { background: #24508a; }
QPushButton#submit { background: #1e8e3e; }
QLineEdit { background: #ffffff; color: #0a1a30; border-radius: 10px; padding: 6px 10px; }
"""


class EvaluatorPanel(QFrame):
    """The evaluator over the whole counter screen; hidden while the model is idle."""

    def __init__(self, model: EvaluatorModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setProperty("layoutOverlay", True)  # the counter screen's overlay, on purpose over it
        self.model = model
        self.setObjectName("evaluator")
        self.setStyleSheet(_STYLE)
        self.setAutoFillBackground(True)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 16, 24, 16)
        self.title = QLabel()
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setWordWrap(True)
        self.countdown = QLabel()
        self.countdown.setObjectName("muted")
        self.countdown.setAlignment(Qt.AlignmentFlag.AlignRight)
        outer.addWidget(self.title)
        self.pages = QStackedWidget()
        outer.addWidget(self.pages, 1)
        outer.addWidget(self.countdown)

        levels = QWidget()
        row = QHBoxLayout(levels)
        row.setSpacing(14)
        self.level_buttons: dict[int, QPushButton] = {}
        for level, name in RATING_LEVELS.items():
            b = QPushButton(f"{name.zh}\n{name.en}")
            b.setStyleSheet(f"background: {LEVEL_COLOURS[level]};")
            b.clicked.connect(lambda _=False, lv=level: self._choose(lv))
            row.addWidget(b, 1)
            self.level_buttons[level] = b
        self.pages.addWidget(levels)

        details = QWidget()
        grid = QGridLayout(details)
        grid.setSpacing(12)
        self.ask = QLabel("请选择不满意的方面（可多选）  Which part were you unhappy with?")
        self.ask.setAlignment(Qt.AlignmentFlag.AlignCenter)
        grid.addWidget(self.ask, 0, 0, 1, 4)
        self.indicator_buttons: dict[str, QPushButton] = {}
        for i, (code, name) in enumerate(RATING_INDICATORS.items()):
            b = QPushButton(f"{name.zh}\n{name.en}")
            b.setObjectName("indicator")
            b.setCheckable(True)
            b.clicked.connect(lambda _=False, c=code: self._toggle(c))
            grid.addWidget(b, 1, i)
            self.indicator_buttons[code] = b
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("意见或原因（选填） Your reason (optional)")
        self.reason.setMaxLength(200)
        self.reason.textEdited.connect(self._reason)
        grid.addWidget(self.reason, 2, 0, 1, 4)
        self.back_button = QPushButton("返回\nBack")
        self.back_button.setObjectName("plain")
        self.back_button.clicked.connect(self._back)
        self.submit_button = QPushButton("提交评价\nSubmit")
        self.submit_button.setObjectName("submit")
        self.submit_button.clicked.connect(self._submit)
        grid.addWidget(self.back_button, 3, 0, 1, 1)
        grid.addWidget(self.submit_button, 3, 1, 1, 3)
        self.pages.addWidget(details)

        done = QWidget()
        col = QVBoxLayout(done)
        self.done_label = QLabel()
        self.done_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.done_label.setWordWrap(True)
        col.addWidget(self.done_label)
        self.pages.addWidget(done)
        self.sync()

    # -- the citizen's touches go to the model, then the panel shows its state ------------------------

    def _choose(self, level: int) -> None:
        self.model.choose(level)
        self.sync()

    def _toggle(self, code: str) -> None:
        self.model.toggle(code)
        self.sync()

    def _reason(self, text: str) -> None:
        self.model.set_reason(text)
        self.sync()

    def _back(self) -> None:
        self.model.back()
        self.sync()

    def _submit(self) -> None:
        self.model.submit()
        self.sync()

    def sync(self) -> None:
        """Show the model's state (hidden when idle); sizes the fonts to the panel."""
        m = self.model
        self.setVisible(m.state != IDLE)
        if m.state == IDLE:
            return
        self.raise_()
        h = max(self.height(), 200)
        big = QFont(self.font())
        big.setPixelSize(max(16, int(h * 0.075)))
        big.setBold(True)
        title = QFont(self.font())
        title.setPixelSize(max(14, int(h * 0.06)))
        title.setBold(True)
        small = QFont(self.font())
        small.setPixelSize(max(12, int(h * 0.04)))
        self.title.setFont(title)
        self.countdown.setFont(small)
        for b in (*self.level_buttons.values(), *self.indicator_buttons.values(), self.back_button,
                  self.submit_button):
            b.setFont(big)
            b.setMinimumHeight(int(h * 0.22))
        # The five levels share the width: the words' font is the largest at which the Chinese and each English
        # word fit a button; an English line too long at that size goes onto two lines (Very / dissatisfied),
        # instead of the whole label shrinking to the longest English line (it was unreadably small at 1024x600).
        level_font = _fitted_wrapped(big, self.level_buttons, max(60, self.width() / 5 - 28))
        for b in self.level_buttons.values():
            b.setMinimumHeight(int(h * 0.5))
            b.setFont(level_font)
        indicator_font = _fitted(big, [line for b in self.indicator_buttons.values() for line in b.text().split("\n")],
                                 max(60, self.width() / 4 - 40))
        for b in self.indicator_buttons.values():
            b.setFont(indicator_font)
        self.ask.setFont(small)
        self.reason.setFont(small)
        self.done_label.setFont(big)
        self.title.setText(f"请您对本次服务（{m.label}）进行评价\nPlease rate our service for {m.label}")
        if m.state == LEVELS:
            self.pages.setCurrentIndex(0)
        elif m.state == DETAILS:
            self.pages.setCurrentIndex(1)
            for code, b in self.indicator_buttons.items():
                b.setChecked(code in m.indicators)
            if self.reason.text() != m.reason:
                self.reason.setText(m.reason)
        else:
            self.pages.setCurrentIndex(2)
            zh, en = m.message if m.state == DONE else ("正在提交…", "Sending…")
            self.done_label.setText(f"{zh}\n{en}")
            self.title.setText("好差评  Rating" if m.state in (DONE, SENDING) else self.title.text())
        self.countdown.setText(f"{m.remaining()} 秒后返回  back in {m.remaining()} s" if m.state != SENDING else "")

    def texts(self) -> list[str]:
        """What is on the visible page (tests read it)."""
        page = self.pages.currentWidget()
        out = [self.title.text(), self.countdown.text()]
        if page is not None:
            # A button's words as one line each (its English may be shown on two lines).
            out += [w.property("words") or w.text() for w in page.findChildren(QPushButton) + page.findChildren(QLabel)]
        return out

    def resizeEvent(self, event: object) -> None:
        """Qt resize hook: the fonts follow the panel's height."""
        super().resizeEvent(event)  # type: ignore[arg-type]
        self.sync()


def _fitted_wrapped(font: QFont, buttons: Mapping[Any, QPushButton], width: float) -> QFont:
    """The font for ``buttons`` labelled "中文\nEnglish words": fitted to the Chinese lines and the English
    words; each button's English then takes one line if it fits at that size, else one word per line."""
    labels = [b.property("words") or b.text() for b in buttons.values()]
    for b, label in zip(buttons.values(), labels, strict=True):
        b.setProperty("words", label)  # the one-line label, kept: the text below may be wrapped
    zh_and_words = [w for label in labels for i, line in enumerate(label.split("\n"))
                    for w in ([line] if i == 0 else line.split())]
    fitted = _fitted(font, zh_and_words, width)
    metrics = QFontMetrics(fitted)
    for b, label in zip(buttons.values(), labels, strict=True):
        zh, _, en = label.partition("\n")
        b.setText(label if metrics.horizontalAdvance(en) <= width else zh + "\n" + "\n".join(en.split()))
    return fitted


def _fitted(font: QFont, lines: list[str], width: float) -> QFont:
    """``font`` made smaller (not under 12 px) until the widest of ``lines`` fits in ``width`` pixels."""
    f = QFont(font)
    px = f.pixelSize()
    while px > 12 and max(QFontMetrics(f).horizontalAdvance(line) for line in lines) > width:
        px -= 1
        f.setPixelSize(px)
    return f


__all__ = ["LEVEL_COLOURS", "SENDING", "EvaluatorPanel"]
