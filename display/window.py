"""The wall display's widgets: the hall screen (大厅综合屏) and a counter's own screen (窗口屏).

Thin painted widgets over :class:`display.model.DisplayModel`. Each panel paints its part of a
plain view object with QPainter, fitting every string to its box (shrinking the font, and
eliding only as a last resort, which the panel records in ``elided`` so tests can assert that
nothing was cut). ``drawn`` lists every string the last paint put on screen.

:class:`DisplayWindow` wires a :class:`queuehall.qtlink.QtLink` (role ``display``: it only
listens, it never sends a state-changing command) to the model, drives the announcement queue
from a 100 ms timer and repaints what changed. For tests and the headless demo it takes any
:class:`~display.announcer.AudioSink` (e.g. a :class:`~display.announcer.RecordingSink`, which
keeps every announcement's WAV bytes), an injectable clock for the announcer and a hall clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QRectF, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QColor, QFont, QFontMetricsF, QPainter, QResizeEvent
from PySide6.QtWidgets import QApplication, QWidget
from queuehall.display.announcer import AudioSink, ManualClock, RecordingSink
from queuehall.display.model import (
    CallCard,
    Clock,
    Connection,
    CounterCard,
    CounterView,
    DisplayModel,
    DisplayOptions,
    HallClock,
    HallView,
    ServiceRow,
    TransferNote,
)
from queuehall.display.voice import VoicePack, load_pack

from queuehall.client import Security, StateMirror
from queuehall.qtfonts import cjk_family, set_app_font
from queuehall.qtlink import QtLink

if TYPE_CHECKING:
    from queuehall.display.evaluator_widget import EvaluatorPanel

TICK_MS = 100
MARQUEE_MS = 33
MARQUEE_PX_PER_S = 90.0

# Signage colours: light text on deep blue reads across a hall; ticket numbers in amber.
BG = QColor("#071a33")
PANEL = QColor("#0e2a50")
PANEL_ALT = QColor("#12325e")
EDGE = QColor("#24508a")
TEXT = QColor("#ffffff")
MUTED = QColor("#a9bdd6")
ACCENT = QColor("#ffc233")
DARK_TEXT = QColor("#0a1a30")
FLASH = QColor("#ffc233")
PHASE_COLOURS = {
    "serving": QColor("#2f7be0"),
    "called": QColor("#f2a900"),
    "idle": QColor("#2e9e5b"),
    "paused": QColor("#d9731a"),
    "closed": QColor("#4a5568"),
}
STALE_RED = QColor("#c62828")


def apply_app_font(app: QApplication) -> None:
    """Make the CJK family the application font, so every widget renders Chinese."""
    set_app_font(app, 18)


def pair(zh: str, en: str, lang: str) -> tuple[str, str]:
    """(first, second) in the display's language order; both are always shown."""
    return (en, zh) if lang == "en" else (zh, en)


class AfterPaintSink:
    """Wraps a Qt audio sink so an announcement starts on the next turn of the event loop.

    The window paints a new call synchronously when it arrives; deferring the player's start
    keeps loading the media out of the way of that paint (the screen is the faster cue).
    ``stop`` also cancels a start that has not happened yet.
    """

    def __init__(self, sink: AudioSink) -> None:
        self.sink = sink
        self._token = 0

    def play(self, wav: bytes, on_finished: Callable[[], None]) -> None:
        """Start ``wav`` on the next event-loop turn (returns at once)."""
        self._token += 1
        token = self._token
        QTimer.singleShot(0, lambda: self._play(token, wav, on_finished))

    def _play(self, token: int, wav: bytes, on_finished: Callable[[], None]) -> None:
        if token == self._token:
            self.sink.play(wav, on_finished)

    def stop(self) -> None:
        """Stop the clip playing (or about to)."""
        self._token += 1
        self.sink.stop()

    def set_volume(self, volume: float) -> None:
        """Pass the device volume on to the wrapped sink."""
        set_volume = getattr(self.sink, "set_volume", None)
        if callable(set_volume):
            set_volume(volume)


class HeartbeatMirror(StateMirror):
    """A :class:`StateMirror` that also hands every heartbeat's ``now`` (the hall's time) to a clock
    and stamps each event with ``received_monotonic`` (when the link thread got it).

    Installed on a QtLink's Link before it starts, so the display shows the broker's (possibly
    simulated) time without any change to the link. Runs on the link thread; ``HallClock.observe``
    is thread-safe.
    """

    def __init__(self, hall_clock: HallClock) -> None:
        super().__init__(hall_clock)  # the base mirror feeds it each heartbeat's and snapshot's time

    def apply(self, msg: dict[str, Any]) -> str:
        """Stamp events with their arrival, then apply as usual."""
        if msg.get("type") == "event":
            # The model tells a live call from one handled late (a stalled screen) by this stamp.
            msg.setdefault("received_monotonic", time.monotonic())
        return super().apply(msg)


# ------------------------------------------------------------------------------------- painting


class Painted(QWidget):
    """A widget that paints text fitted to boxes; subclasses implement :meth:`paint`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.drawn: list[str] = []
        self.elided: list[str] = []
        self.lang = "zh"
        self._family = cjk_family()
        self._metrics: dict[tuple[int, bool], QFontMetricsF] = {}

    def font_px(self, px: float, bold: bool = False) -> QFont:
        """The CJK font at ``px`` pixels."""
        font = QFont(self._family)
        font.setPixelSize(max(1, int(px)))
        font.setBold(bold)
        return font

    def _fm(self, px: int, bold: bool) -> QFontMetricsF:
        key = (px, bold)
        fm = self._metrics.get(key)
        if fm is None:
            fm = self._metrics[key] = QFontMetricsF(self.font_px(px, bold))
        return fm

    def fit_px(self, s: str, width: float, height: float, px: float, bold: bool = False) -> int:
        """The largest size <= ``px`` at which ``s`` fits ``width`` x ``height`` (at least 8 px)."""
        size = max(8, int(min(px, height / 1.25)))
        fm = self._fm(size, bold)
        w = fm.horizontalAdvance(s)
        if w > width > 0:
            size = max(8, int(size * width / w))
            while size > 8 and self._fm(size, bold).horizontalAdvance(s) > width:
                size -= 1
        if size > 40:  # fewer distinct large sizes: each one costs a glyph rasterisation on first use
            size -= size % 4
        return size

    def text(
        self,
        p: QPainter,
        rect: QRectF,
        s: str,
        px: float,
        color: QColor,
        *,
        bold: bool = False,
        align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
        min_px: float = 12,
    ) -> int:
        """Draw ``s`` in ``rect`` at up to ``px`` pixels, shrunk to fit; elided (and noted) below ``min_px``.

        Returns the size used.
        """
        if not s or rect.width() <= 0 or rect.height() <= 0:
            return 0
        size = self.fit_px(s, rect.width(), rect.height(), px, bold)
        shown = s
        if size < min_px:
            size = int(min(min_px, rect.height() / 1.25))
            fm = self._fm(max(size, 1), bold)
            if fm.horizontalAdvance(s) > rect.width():
                shown = fm.elidedText(s, Qt.TextElideMode.ElideRight, rect.width())
                self.elided.append(s)
        p.setFont(self.font_px(size, bold))
        p.setPen(color)
        p.drawText(rect, int(align), shown)
        self.drawn.append(shown)
        return size

    def text_width(self, s: str, px: int, bold: bool = False) -> float:
        """The width of ``s`` at ``px`` pixels."""
        return self._fm(px, bold).horizontalAdvance(s)

    def paintEvent(self, event: Any) -> None:
        """Qt paint hook: clears ``drawn``/``elided`` and calls :meth:`paint`."""
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        self.drawn = []
        self.elided = []
        try:
            self.paint(p, QRectF(self.rect()))
        finally:
            p.end()

    def paint(self, p: QPainter, r: QRectF) -> None:
        """Paint the panel into ``r`` (the whole widget)."""
        raise NotImplementedError

    def panel(self, p: QPainter, r: QRectF, colour: QColor = PANEL, radius: float = 14) -> None:
        """A rounded panel background."""
        p.setPen(EDGE)
        p.setBrush(colour)
        p.drawRoundedRect(r.adjusted(0.5, 0.5, -0.5, -0.5), radius, radius)

    def title(self, p: QPainter, r: QRectF, zh: str, en: str) -> None:
        """A panel title: the first language bold, the second smaller after it."""
        first, second = pair(zh, en, self.lang)
        px = self.fit_px(first, r.width() * 0.6, r.height(), r.height() * 0.62, True)
        self.text(p, r, first, px, TEXT, bold=True)
        w = self.text_width(first, px, True) + px * 0.6
        self.text(p, QRectF(r.x() + w, r.y(), r.width() - w, r.height()), second, px * 0.72, MUTED)


class HeaderBar(Painted):
    """Hall name on the left; date, clock and the connection indicator on the right."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = ("", "")
        self.clock = Clock("", "", "")
        self.connection = Connection("connecting", False)

    def set_data(self, name: tuple[str, str], clock: Clock, connection: Connection, lang: str) -> None:
        """Repaint only when something shown changed."""
        data = (name, clock, connection, lang)
        if data != (self.name, self.clock, self.connection, self.lang):
            self.name, self.clock, self.connection, self.lang = data
            self.update()

    def paint(self, p: QPainter, r: QRectF) -> None:
        """Paint this panel's current data into ``r``."""
        p.fillRect(r, QColor("#0b2445"))
        p.fillRect(QRectF(r.x(), r.bottom() - 3, r.width(), 3), ACCENT)
        h, w = r.height(), r.width()
        pad = h * 0.14
        first, second = pair(*self.name, self.lang)
        left = QRectF(pad * 1.5, pad * 0.6, w * 0.5, h * 0.52)
        self.text(p, left, first, h * 0.42, TEXT, bold=True)
        self.text(p, QRectF(left.x(), left.bottom(), left.width(), h * 0.3), second, h * 0.22, MUTED)
        # Connection pill, far right, small: staff notice it, citizens need not.
        conn = self.connection
        dot = {"online": QColor("#35c46a"), "offline": STALE_RED, "connecting": QColor("#e0a800")}[conn.state]
        label = "  ".join(pair(conn.label_zh, conn.label_en, self.lang))
        pill_w = min(w * 0.13, max(h * 2.2, self.text_width(label, int(h * 0.17)) + h * 0.6))
        pill = QRectF(r.right() - pad - pill_w, h * 0.34, pill_w, h * 0.32)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(255, 255, 255, 22))
        p.drawRoundedRect(pill, pill.height() / 2, pill.height() / 2)
        p.setBrush(dot)
        d = pill.height() * 0.42
        p.drawEllipse(QRectF(pill.x() + d * 0.7, pill.center().y() - d / 2, d, d))
        self.text(
            p,
            QRectF(pill.x() + d * 2.0, pill.y(), pill.width() - d * 2.3, pill.height()),
            label,
            h * 0.17,
            TEXT if conn.state == "online" else QColor("#ffd7d7"),
            min_px=9,
        )
        # Clock and date, to the left of the pill.
        right = pill.x() - pad * 1.5
        tw = min(w * 0.17, h * 2.6)
        self.text(
            p,
            QRectF(right - tw, 0, tw, h),
            self.clock.time,
            h * 0.5,
            TEXT,
            bold=True,
            align=Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
        )
        dw = min(w * 0.2, h * 3.6)
        d1, d2 = pair(self.clock.date_zh, self.clock.date_en, self.lang)
        dx = right - tw - pad - dw
        ar = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        self.text(p, QRectF(dx, h * 0.14, dw, h * 0.38), d1, h * 0.26, TEXT, align=ar)
        self.text(p, QRectF(dx, h * 0.5, dw, h * 0.32), d2, h * 0.2, MUTED, align=ar)


class NowCallingPanel(Painted):
    """The latest call, large: ticket number, 请 A012 号到 3 号窗口 and A012 → Counter 3; flashes when new."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.call: CallCard | None = None
        self.flash = False
        self.pending = 0

    def set_data(self, call: CallCard | None, flash: bool, pending: int, lang: str) -> None:
        """Take new data to show; repaints only when something shown changed."""
        data = (call, flash, pending, lang)
        if data != (self.call, self.flash, self.pending, self.lang):
            self.call, self.flash, self.pending, self.lang = data
            self.update()

    def paint(self, p: QPainter, r: QRectF) -> None:
        """Paint this panel's current data into ``r``."""
        flash = self.flash and not (self.call is not None and self.call.settled)
        self.panel(p, r, FLASH if flash else PANEL, 18)
        fg = DARK_TEXT if flash else TEXT
        sub = DARK_TEXT if flash else MUTED
        num = DARK_TEXT if flash else ACCENT
        h, w = r.height(), r.width()
        pad = min(w, h) * 0.05
        inner = r.adjusted(pad, pad * 0.6, -pad, -pad * 0.6)
        iw, ih = inner.width(), inner.height()
        title = QRectF(inner.x(), inner.y(), iw * 0.7, ih * 0.12)
        first, second = pair("正在叫号", "Now calling", self.lang)
        px = self.text(p, title, first, ih * 0.09, fg, bold=True)
        tw = self.text_width(first, px, True) + px * 0.5
        self.text(
            p, QRectF(title.x() + tw, title.y(), title.width() - tw, title.height()), second, px * 0.75, sub
        )
        call = self.call
        settled = call is not None and call.settled
        if settled:  # the ticket left this counter: never keep sending the citizen there (docs/display.md)
            fg, sub, num = MUTED, MUTED, MUTED
        if call is not None and (call.kind_zh or settled):
            badge = "  ".join(
                pair(call.outcome_zh, call.outcome_en, self.lang) if settled
                else pair(call.kind_zh, call.kind_en, self.lang))
            bw = iw * 0.28
            br = QRectF(inner.right() - bw, inner.y() + ih * 0.01, bw, ih * 0.1)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(DARK_TEXT if flash else ACCENT)
            p.drawRoundedRect(br, br.height() / 2, br.height() / 2)
            self.text(
                p,
                br.adjusted(br.height() * 0.4, 0, -br.height() * 0.4, 0),
                badge,
                br.height() * 0.6,
                ACCENT if flash else DARK_TEXT,
                bold=True,
                align=Qt.AlignmentFlag.AlignCenter,
            )
        if call is None:
            a, b = pair("欢迎光临", "Welcome", self.lang)
            self.text(
                p,
                QRectF(inner.x(), inner.y() + ih * 0.22, iw, ih * 0.3),
                a,
                ih * 0.24,
                fg,
                bold=True,
                align=Qt.AlignmentFlag.AlignCenter,
            )
            self.text(
                p,
                QRectF(inner.x(), inner.y() + ih * 0.52, iw, ih * 0.14),
                b,
                ih * 0.1,
                sub,
                align=Qt.AlignmentFlag.AlignCenter,
            )
            c, d = pair(
                "请留意屏幕和语音叫号", "Please watch the screen and listen for your number", self.lang
            )
            self.text(
                p,
                QRectF(inner.x(), inner.y() + ih * 0.72, iw, ih * 0.12),
                c,
                ih * 0.08,
                fg,
                align=Qt.AlignmentFlag.AlignCenter,
            )
            self.text(
                p,
                QRectF(inner.x(), inner.y() + ih * 0.84, iw, ih * 0.1),
                d,
                ih * 0.06,
                sub,
                align=Qt.AlignmentFlag.AlignCenter,
            )
            return
        centre = Qt.AlignmentFlag.AlignCenter
        # Ticket number and counter side by side: the two facts a citizen looks for.
        big = QRectF(inner.x(), inner.y() + ih * 0.13, iw, ih * 0.44)
        label_w = big.width() * 0.56
        self.text(
            p,
            QRectF(big.x(), big.y(), label_w, big.height()),
            call.label,
            big.height() * 0.86,
            num,
            bold=True,
            align=centre,
        )
        arrow = QRectF(big.x() + label_w, big.y(), big.width() * 0.1, big.height())
        if settled:  # what became of it in place of the counter: 已过号 / No-show
            oz, oe = pair(call.outcome_zh, call.outcome_en, self.lang)
            self.text(p, QRectF(arrow.x(), big.y(), big.right() - arrow.x(), big.height() * 0.6), oz,
                      big.height() * 0.3, TEXT, bold=True, align=centre)
            self.text(p, QRectF(arrow.x(), big.y() + big.height() * 0.6, big.right() - arrow.x(),
                                big.height() * 0.25), oe, big.height() * 0.15, sub, align=centre)
        else:
            self._counter(p, big, arrow, call, fg, sub)
        self._lines(p, inner, call, fg, sub)

    def _counter(self, p: QPainter, big: QRectF, arrow: QRectF, call: CallCard, fg: QColor, sub: QColor) -> None:
        centre = Qt.AlignmentFlag.AlignCenter
        self.text(p, arrow, "→", big.height() * 0.4, fg, bold=True, align=centre)
        cx = arrow.right()
        cw = big.right() - cx
        self.text(
            p,
            QRectF(cx, big.y(), cw, big.height() * 0.72),
            str(call.counter),
            big.height() * 0.66,
            fg,
            bold=True,
            align=centre,
        )
        cz, ce = pair("号窗口", "Counter", self.lang)
        self.text(
            p,
            QRectF(cx, big.y() + big.height() * 0.7, cw, big.height() * 0.18),
            cz,
            big.height() * 0.15,
            fg,
            bold=True,
            align=centre,
        )
        self.text(
            p,
            QRectF(cx, big.y() + big.height() * 0.86, cw, big.height() * 0.14),
            ce,
            big.height() * 0.11,
            sub,
            align=centre,
        )

    def _lines(self, p: QPainter, inner: QRectF, call: CallCard, fg: QColor, sub: QColor) -> None:
        centre = Qt.AlignmentFlag.AlignCenter
        iw, ih = inner.width(), inner.height()
        s1, s2 = pair(call.text_zh, call.text_en, self.lang)
        self.text(
            p,
            QRectF(inner.x(), inner.y() + ih * 0.6, iw, ih * 0.15),
            s1,
            ih * 0.12,
            fg,
            bold=True,
            align=centre,
        )
        self.text(
            p, QRectF(inner.x(), inner.y() + ih * 0.75, iw, ih * 0.11), s2, ih * 0.085, sub, align=centre
        )
        svc = "  ·  ".join(x for x in pair(call.service_zh, call.service_en, self.lang) if x)
        if self.pending:
            more = "  ".join(pair(f"另有 {self.pending} 位待叫", f"{self.pending} more coming", self.lang))
            svc = f"{svc}    {more}" if svc else more
        self.text(
            p,
            QRectF(inner.x(), inner.y() + ih * 0.88, iw, ih * 0.1),
            svc,
            ih * 0.06,
            sub,
            align=centre,
            min_px=10,
        )


class HistoryPanel(Painted):
    """The calls before the current one, with their counters, in ``columns`` columns."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.calls: tuple[CallCard, ...] = ()
        self.rows = 5
        self.columns = 2

    def set_data(self, calls: Sequence[CallCard], rows: int, columns: int, lang: str) -> None:
        """Take new data to show; repaints only when something shown changed."""
        data = (tuple(calls[: rows * columns]), rows, columns, lang)
        if data != (self.calls, self.rows, self.columns, self.lang):
            self.calls, self.rows, self.columns, self.lang = data
            self.update()

    def paint(self, p: QPainter, r: QRectF) -> None:
        """Paint this panel's current data into ``r``."""
        self.panel(p, r)
        pad = 14.0
        head = min(48.0, r.height() * 0.13)
        self.title(
            p,
            QRectF(r.x() + pad * 1.4, r.y() + pad * 0.5, r.width() - pad * 2.8, head),
            "最近叫号",
            "Recent calls",
        )
        body = QRectF(
            r.x() + pad, r.y() + head + pad * 0.8, r.width() - 2 * pad, r.height() - head - pad * 1.8
        )
        if not self.calls:
            a, b = pair("暂无叫号记录", "No calls yet", self.lang)
            self.text(
                p,
                body,
                f"{a}  {b}",
                min(30.0, body.height() * 0.2),
                MUTED,
                align=Qt.AlignmentFlag.AlignCenter,
            )
            return
        cw = body.width() / self.columns
        rh = body.height() / self.rows
        for i, call in enumerate(self.calls):
            col, row = divmod(i, self.rows)
            cell = QRectF(body.x() + col * cw, body.y() + row * rh, cw, rh).adjusted(4, 3, -4, -3)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(PANEL_ALT)
            p.drawRoundedRect(cell, 8, 8)
            self._cell(p, cell.adjusted(12, 0, -10, 0), call)

    def _cell(self, p: QPainter, cell: QRectF, call: CallCard) -> None:
        zh, en = f"→ {call.counter} 号窗口", f"Counter {call.counter}"
        first, second = pair(zh, en, self.lang)
        if call.settled:  # 已过号 / 已转走 / 已办结 instead of the recall badge
            first = f"{first} · {call.outcome_zh if self.lang == 'zh' else call.outcome_en}"
        elif call.kind != "call":
            first = f"{first} · {call.kind_zh if self.lang == 'zh' else call.kind_en}"
        if call.time_local:
            second = f"{call.time_local}  {second}"
        h = cell.height()
        if cell.width() / h > 7:  # wide and short: everything on one line
            px = h * 0.62
            used = self.text(
                p, QRectF(cell.x(), cell.y(), cell.width() * 0.3, h), call.label, px, ACCENT, bold=True
            )
            x = cell.x() + cell.width() * 0.3
            used = self.text(
                p, QRectF(x, cell.y(), cell.width() * 0.42, h), first, used * 0.8, TEXT, bold=True
            )
            x += self.text_width(first, used, True) + used * 0.8
            self.text(p, QRectF(x, cell.y(), cell.right() - x, h), second, used * 0.8, MUTED, min_px=9)
            return
        px = h * 0.56
        lw = cell.width() * 0.4
        self.text(p, QRectF(cell.x(), cell.y(), lw, h), call.label, px, ACCENT, bold=True)
        rest = QRectF(cell.x() + lw, cell.y(), cell.width() - lw, h)
        self.text(p, QRectF(rest.x(), rest.y(), rest.width(), h * 0.62), first, px * 0.62, TEXT, bold=True)
        self.text(
            p, QRectF(rest.x(), rest.y() + h * 0.56, rest.width(), h * 0.4), second, px * 0.4, MUTED, min_px=9
        )


class TransfersPanel(Painted):
    """Tickets sent to another service or counter and not yet called there."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.notes: tuple[TransferNote, ...] = ()

    def set_data(self, notes: Sequence[TransferNote], lang: str) -> None:
        """Take new data to show; repaints only when something shown changed."""
        data = (tuple(notes), lang)
        if data != (self.notes, self.lang):
            self.notes, self.lang = data
            self.update()

    def paint(self, p: QPainter, r: QRectF) -> None:
        """Paint this panel's current data into ``r``."""
        self.panel(p, r, QColor("#173a66"), 12)
        if not self.notes:
            return
        n = len(self.notes)
        pad = 10.0
        tag_w = min(150.0, r.width() * 0.2)
        a, b = pair("转办", "Transfers", self.lang)
        self.text(
            p,
            QRectF(r.x() + pad, r.y(), tag_w, r.height() * 0.55),
            a,
            min(26.0, r.height() * 0.3),
            ACCENT,
            bold=True,
        )
        self.text(
            p,
            QRectF(r.x() + pad, r.y() + r.height() * 0.45, tag_w, r.height() * 0.4),
            b,
            min(18.0, r.height() * 0.2),
            MUTED,
        )
        body = QRectF(r.x() + pad + tag_w, r.y() + 4, r.width() - tag_w - 2 * pad, r.height() - 8)
        lh = body.height() / n
        for i, note in enumerate(self.notes):
            line = QRectF(body.x(), body.y() + i * lh, body.width(), lh)
            first, second = pair(note.text_zh, note.text_en, self.lang)
            self.text(
                p,
                QRectF(line.x(), line.y(), line.width(), lh * 0.58),
                first,
                min(26.0, lh * 0.46),
                TEXT,
                bold=True,
                min_px=10,
            )
            self.text(
                p,
                QRectF(line.x(), line.y() + lh * 0.54, line.width(), lh * 0.42),
                second,
                min(19.0, lh * 0.32),
                MUTED,
                min_px=9,
            )


def grid_shape(n: int, width: float, height: float, aspect: float = 1.9) -> tuple[int, int]:
    """(columns, rows) laying ``n`` cards in ``width`` x ``height`` with cells closest to ``aspect`` (w/h)."""
    best = (1, max(1, n))
    score = math.inf
    for cols in range(1, max(1, n) + 1):
        rows = math.ceil(max(1, n) / cols)
        cell = (width / cols) / (height / rows)
        s = abs(math.log(cell / aspect)) + 0.15 * (cols * rows - n)  # empty slots waste the panel
        if s < score:
            best, score = (cols, rows), s
    return best


class CountersPanel(Painted):
    """Every counter: its number, current ticket and state (serving, called, ready, paused, closed)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cards: tuple[CounterCard, ...] = ()

    def set_data(self, cards: Sequence[CounterCard], lang: str) -> None:
        """Take new data to show; repaints only when something shown changed."""
        data = (tuple(cards), lang)
        if data != (self.cards, self.lang):
            self.cards, self.lang = data
            self.update()

    def paint(self, p: QPainter, r: QRectF) -> None:
        """Paint this panel's current data into ``r``."""
        self.panel(p, r)
        pad = 14.0
        head = min(48.0, max(36.0, r.height() * 0.1))
        self.title(
            p,
            QRectF(r.x() + pad * 1.4, r.y() + pad * 0.5, r.width() - pad * 2.8, head),
            "窗口状态",
            "Counters",
        )
        body = QRectF(
            r.x() + pad, r.y() + head + pad * 0.8, r.width() - 2 * pad, r.height() - head - pad * 1.8
        )
        if not self.cards:
            return
        cols, rows = grid_shape(len(self.cards), body.width(), body.height(), aspect=1.5)
        cw, ch = body.width() / cols, body.height() / rows
        for i, card in enumerate(self.cards):
            row, col = divmod(i, cols)
            self._card(
                p, QRectF(body.x() + col * cw, body.y() + row * ch, cw, ch).adjusted(5, 5, -5, -5), card
            )

    def _card(self, p: QPainter, c: QRectF, card: CounterCard) -> None:
        colour = PHASE_COLOURS.get(card.phase, PHASE_COLOURS["closed"])
        dim = card.phase == "closed"
        p.setPen(EDGE)
        p.setBrush(QColor("#0b2140") if dim else PANEL_ALT)
        p.drawRoundedRect(c, 10, 10)
        h = c.height()
        pad = min(12.0, c.width() * 0.05)
        head = QRectF(c.x() + pad, c.y() + h * 0.04, c.width() - 2 * pad, h * 0.26)
        zh, en = f"{card.number} 号窗口", f"Counter {card.number}"
        first, second = pair(zh, en, self.lang)
        px = self.text(
            p,
            QRectF(head.x(), head.y(), head.width() * 0.6, head.height()),
            first,
            head.height() * 0.8,
            MUTED if dim else TEXT,
            bold=True,
        )
        fw = self.text_width(first, px, True) + 8
        self.text(
            p,
            QRectF(head.x() + fw, head.y(), head.width() - fw, head.height()),
            second,
            px * 0.72,
            MUTED,
            align=Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            min_px=9,
        )
        mid = QRectF(c.x() + pad, c.y() + h * 0.29, c.width() - 2 * pad, h * 0.36)
        centre = Qt.AlignmentFlag.AlignCenter
        if card.ticket_label:
            self.text(p, mid, card.ticket_label, mid.height() * 0.95, ACCENT, bold=True, align=centre)
        elif card.phase == "paused" and card.pause_reason_zh:
            r1, r2 = pair(card.pause_reason_zh, card.pause_reason_en, self.lang)
            self.text(
                p,
                QRectF(mid.x(), mid.y(), mid.width(), mid.height() * 0.6),
                r1,
                mid.height() * 0.5,
                QColor("#ffb066"),
                bold=True,
                align=centre,
            )
            self.text(
                p,
                QRectF(mid.x(), mid.y() + mid.height() * 0.58, mid.width(), mid.height() * 0.4),
                r2,
                mid.height() * 0.32,
                MUTED,
                align=centre,
                min_px=9,
            )
        else:
            self.text(p, mid, "—", mid.height() * 0.7, QColor("#56709a"), bold=True, align=centre)
        chip = QRectF(c.x() + pad, c.y() + h * 0.68, c.width() - 2 * pad, h * 0.28)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colour)
        p.drawRoundedRect(chip, min(chip.height() / 2, 14), min(chip.height() / 2, 14))
        fg = DARK_TEXT if card.phase == "called" else TEXT
        first, second = pair(card.status_zh, card.status_en, self.lang)
        inner = chip.adjusted(chip.height() * 0.4, 0, -chip.height() * 0.4, 0)
        label = f"{first}  {second}"
        if self.fit_px(label, inner.width(), inner.height(), chip.height() * 0.62, True) >= 13:
            self.text(p, inner, label, chip.height() * 0.62, fg, bold=True, align=centre)
        else:  # too narrow for one line: the second language under the first
            self.text(
                p,
                QRectF(inner.x(), inner.y(), inner.width(), inner.height() * 0.56),
                first,
                inner.height() * 0.44,
                fg,
                bold=True,
                align=centre,
                min_px=10,
            )
            self.text(
                p,
                QRectF(inner.x(), inner.y() + inner.height() * 0.5, inner.width(), inner.height() * 0.46),
                second,
                inner.height() * 0.36,
                fg,
                align=centre,
                min_px=9,
            )


class ServicesPanel(Painted):
    """Every service: how many wait and the estimated wait, in ``columns`` columns."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: tuple[ServiceRow, ...] = ()
        self.columns = 2

    def set_data(self, rows: Sequence[ServiceRow], columns: int, lang: str) -> None:
        """Take new data to show; repaints only when something shown changed."""
        data = (tuple(rows), columns, lang)
        if data != (self.rows, self.columns, self.lang):
            self.rows, self.columns, self.lang = data
            self.update()

    def paint(self, p: QPainter, r: QRectF) -> None:
        """Paint this panel's current data into ``r``."""
        self.panel(p, r)
        pad = 14.0
        head = min(44.0, r.height() * 0.1)
        total = sum(s.waiting for s in self.rows)
        self.title(
            p, QRectF(r.x() + pad * 1.4, r.y() + pad * 0.5, r.width() * 0.6, head), "等候情况", "Waiting"
        )
        a, b = pair(f"共 {total} 人等候", f"{total} waiting in all", self.lang)
        self.text(
            p,
            QRectF(r.x() + r.width() * 0.5, r.y() + pad * 0.5, r.width() * 0.5 - pad * 1.4, head),
            f"{a}  ·  {b}",
            head * 0.5,
            ACCENT,
            bold=True,
            align=Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
        )
        body = QRectF(
            r.x() + pad, r.y() + head + pad * 0.8, r.width() - 2 * pad, r.height() - head - pad * 1.6
        )
        if not self.rows:
            return
        cols = max(1, self.columns)
        per_col = math.ceil(len(self.rows) / cols)
        colw = body.width() / cols
        header_h = min(38.0, body.height() / (per_col + 1) * 0.8)
        rh = (body.height() - header_h) / per_col
        for col in range(cols):
            x = body.x() + col * colw
            hd = QRectF(x + 6, body.y(), colw - 12, header_h)
            for (first, second), x0, x1, align in self._columns(hd):
                self.text(
                    p,
                    QRectF(x0, hd.y(), x1 - x0, hd.height() * 0.55),
                    first,
                    header_h * 0.4,
                    MUTED,
                    bold=True,
                    align=align,
                    min_px=9,
                )
                self.text(
                    p,
                    QRectF(x0, hd.y() + hd.height() * 0.5, x1 - x0, hd.height() * 0.45),
                    second,
                    header_h * 0.3,
                    MUTED,
                    align=align,
                    min_px=9,
                )
        for i, row in enumerate(self.rows):
            col, k = divmod(i, per_col)
            cell = QRectF(body.x() + col * colw + 2, body.y() + header_h + k * rh, colw - 4, rh)
            if k % 2 == 0:
                p.fillRect(cell.adjusted(0, 1, 0, -1), PANEL_ALT)
            self._row(p, cell.adjusted(6, 0, -6, 0), row)

    NAME, COUNT = 0.62, 0.12  # column widths (fractions): name, waiting count; the estimate takes the rest

    def _columns(self, r: QRectF) -> list[tuple[tuple[str, str], float, float, Qt.AlignmentFlag]]:
        left = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        w, n, c = r.width(), self.NAME, self.COUNT
        return [
            (pair("业务", "Service", self.lang), r.x(), r.x() + w * n, left),
            (pair("等候人数", "Waiting", self.lang), r.x() + w * (n - 0.04), r.x() + w * (n + c), right),
            (pair("预计等候", "Est. wait", self.lang), r.x() + w * (n + c + 0.02), r.right(), right),
        ]

    def _two_lines(self, p: QPainter, cell: QRectF, lines: tuple[str, str], px: float, fg: QColor,
                   align: Qt.AlignmentFlag, min_px: int, first_scale: float = 1.0) -> None:
        """A row's cell with its first language in bold above and the other, smaller and muted, below."""
        top, h = cell.y(), cell.height()
        self.text(p, QRectF(cell.x(), top + h * 0.04, cell.width(), h * 0.54), lines[0], px * first_scale, fg,
                  bold=True, align=align, min_px=min_px)
        self.text(p, QRectF(cell.x(), top + h * 0.56, cell.width(), h * 0.4), lines[1], min(px * 0.66, 15.0),
                  MUTED, align=align, min_px=9)

    def _row(self, p: QPainter, r: QRectF, row: ServiceRow) -> None:
        w, h = r.width(), r.height()
        n, c = self.NAME, self.COUNT
        left = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        fg = TEXT if row.issuing else MUTED
        first, second = pair(row.name_zh, row.name_en, self.lang)
        s1, s2 = pair(row.status_zh, row.status_en, self.lang)
        name = QRectF(r.x(), r.y(), w * n - 8, h)
        est = QRectF(r.x() + w * (n + c + 0.02), r.y(), w * (1 - n - c - 0.02), h)
        two_lines = h >= 40
        px = min(h * (0.42 if two_lines else 0.56), 26.0)
        if two_lines:  # the other language on its own line under each
            self._two_lines(p, name, (first, second), px, fg, left, min_px=10)
            self._two_lines(p, est, (s1, s2), px, fg, right, min_px=9, first_scale=0.9)
        else:
            self.text(p, name, first, px, fg, bold=True, align=left, min_px=10)
            self.text(p, est, s1, px * 0.85, fg, bold=True, align=right, min_px=9)
        count = QRectF(r.x() + w * n, r.y(), w * c, h)
        self.text(
            p,
            count,
            str(row.waiting),
            min(h * 0.6, 32.0),
            ACCENT if row.issuing else MUTED,
            bold=True,
            align=right,
        )


class Marquee(Painted):
    """The hall notice scrolling right to left along the bottom, in both languages."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.message = ""
        self._t0 = time.monotonic()
        self._timer = QTimer(self)
        self._timer.setInterval(MARQUEE_MS)
        self._timer.timeout.connect(self.update)

    def set_data(self, zh: str, en: str, lang: str) -> None:
        """Take new data to show; repaints only when something shown changed."""
        first, second = pair(zh, en, lang)
        message = "        ".join(x for x in (first, second) if x)
        if message != self.message or lang != self.lang:
            self.message, self.lang = message, lang
            self._t0 = time.monotonic()
            self.update()
        if message and not self._timer.isActive():
            self._timer.start()
        elif not message:
            self._timer.stop()

    def paint(self, p: QPainter, r: QRectF) -> None:
        """Paint this panel's current data into ``r``."""
        p.fillRect(r, QColor("#0b2445"))
        p.fillRect(QRectF(r.x(), r.y(), r.width(), 3), ACCENT)
        if not self.message:
            return
        px = int(r.height() * 0.46)
        font = self.font_px(px)
        p.setFont(font)
        p.setPen(TEXT)
        gap = r.height() * 3
        width = self.text_width(self.message, px) + gap
        # Start just inside the right edge and move left; two copies make the loop seamless.
        offset = ((time.monotonic() - self._t0) * MARQUEE_PX_PER_S) % width
        x = r.width() * 0.6 - offset
        while x < r.width():
            p.drawText(
                QRectF(x, r.y() + 3, width, r.height() - 3),
                int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter),
                self.message,
            )
            x += width
        self.drawn.append(self.message)


class StaleOverlay(Painted):
    """Over the body while the data is stale (connection lost) or before the first snapshot."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.connection = Connection("connecting", False)

    def set_data(self, connection: Connection, lang: str) -> None:
        """Take new data to show; repaints only when something shown changed."""
        visible = connection.stale or connection.state == "connecting"
        if (connection, lang) != (self.connection, self.lang):
            self.connection, self.lang = connection, lang
            self.update()
        self.setVisible(visible)
        if visible:
            self.raise_()

    def paint(self, p: QPainter, r: QRectF) -> None:
        """Paint this panel's current data into ``r``."""
        conn = self.connection
        p.fillRect(r, QColor(7, 26, 51, 150))  # dim everything: these figures are not current
        bh = min(110.0, r.height() * 0.16)
        banner = QRectF(r.x() + r.width() * 0.1, r.y() + r.height() * 0.04, r.width() * 0.8, bh)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(STALE_RED if conn.state != "connecting" else QColor("#8a6d00"))
        p.drawRoundedRect(banner, 14, 14)
        if conn.state == "connecting":
            zh, en = "正在连接叫号服务器…", "Connecting to the queue server…"
        else:
            since_zh = f"，以下为 {conn.since_local} 时的信息" if conn.since_local else ""
            since_en = f"; showing information from {conn.since_local}" if conn.since_local else ""
            zh = f"⚠ 与叫号服务器的连接中断，正在重新连接{since_zh}"
            en = f"Connection to the queue server lost, reconnecting{since_en}"
        first, second = pair(zh, en, self.lang)
        inner = banner.adjusted(24, 8, -24, -8)
        self.text(
            p,
            QRectF(inner.x(), inner.y(), inner.width(), inner.height() * 0.58),
            first,
            inner.height() * 0.42,
            TEXT,
            bold=True,
            align=Qt.AlignmentFlag.AlignCenter,
        )
        self.text(
            p,
            QRectF(inner.x(), inner.y() + inner.height() * 0.58, inner.width(), inner.height() * 0.42),
            second,
            inner.height() * 0.3,
            QColor("#ffe0e0"),
            align=Qt.AlignmentFlag.AlignCenter,
        )


# ------------------------------------------------------------------------------------- screens


class HallScreen(QWidget):
    """The hall screen: header, now-calling, history, transfers, counters, queues and the notice.

    Landscape (width >= height) puts calls on the left and counters/queues on the right;
    portrait stacks them. Geometry is computed in :meth:`relayout` from the size alone.
    """

    def __init__(self, history_size: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history_size = history_size
        self.header = HeaderBar(self)
        self.now = NowCallingPanel(self)
        self.history = HistoryPanel(self)
        self.transfers = TransfersPanel(self)
        self.counters = CountersPanel(self)
        self.services = ServicesPanel(self)
        self.marquee = Marquee(self)
        self.overlay = StaleOverlay(self)
        self.view: HallView | None = None
        self.flash = False
        self._history_shape = (5, 2)
        self._service_columns = 2
        self.setAutoFillBackground(True)
        pal = self.palette()
        pal.setColor(self.backgroundRole(), BG)
        self.setPalette(pal)

    @property
    def panels(self) -> list[Painted]:
        """Every painted part (for tests: what was drawn, what was elided)."""
        return [
            self.header,
            self.now,
            self.history,
            self.transfers,
            self.counters,
            self.services,
            self.marquee,
            self.overlay,
        ]

    def paint_call_now(self) -> None:
        """Paint the now-calling panel synchronously (a new call must not wait for the next frame)."""
        self.now.repaint()

    @property
    def landscape(self) -> bool:
        """Whether the screen is at least as wide as it is tall (the landscape layout)."""
        return self.width() >= self.height()

    def set_view(self, view: HallView, flash: bool) -> None:
        """Show ``view``; each panel repaints only if its part changed."""
        relayout = self.view is None or bool(view.transfers) != bool(self.view.transfers)
        self.view, self.flash = view, flash
        if relayout:
            self.relayout()
        lang = view.lang
        self.header.set_data((view.hall_name_zh, view.hall_name_en), view.clock, view.connection, lang)
        self.now.set_data(view.current, flash, view.pending, lang)
        rows, cols = self._history_shape
        self.history.set_data(view.history, rows, cols, lang)
        self.transfers.set_data(view.transfers, lang)
        self.counters.set_data(view.counters, lang)
        self.services.set_data(view.services, self._service_columns, lang)
        self.marquee.set_data(view.notice_zh, view.notice_en, lang)
        self.overlay.set_data(view.connection, lang)

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Qt resize hook: lay the parts out again for the new size."""
        super().resizeEvent(event)
        self.relayout()

    def relayout(self) -> None:
        """Place every panel for the current size and orientation."""
        w, h = float(self.width()), float(self.height())
        if w <= 0 or h <= 0:
            return
        n_transfers = len(self.view.transfers) if self.view else 0
        has_transfers = n_transfers > 0
        gap = max(8.0, min(w, h) * 0.012)
        transfer_h = 16.0 + 56.0 * n_transfers
        if self.landscape:
            header_h, footer_h = h * 0.09, h * 0.058
            self._set(self.header, 0, 0, w, header_h)
            self._set(self.marquee, 0, h - footer_h, w, footer_h)
            top, bottom = header_h + gap, h - footer_h - gap
            left_w = w * 0.4
            x0, x1 = gap * 1.5, gap * 1.5 + left_w + gap
            right_w = w - x1 - gap * 1.5
            body_h = bottom - top
            now_h = body_h * 0.5
            self._set(self.now, x0, top, left_w, now_h)
            y = top + now_h + gap
            if has_transfers:
                self._set(self.transfers, x0, y, left_w, transfer_h)
                y += transfer_h + gap
            self._set(self.history, x0, y, left_w, bottom - y)
            counters_h = body_h * 0.37
            self._set(self.counters, x1, top, right_w, counters_h)
            self._set(self.services, x1, top + counters_h + gap, right_w, body_h - counters_h - gap)
        else:
            header_h, footer_h = h * 0.06, h * 0.036
            self._set(self.header, 0, 0, w, header_h)
            self._set(self.marquee, 0, h - footer_h, w, footer_h)
            top, bottom = header_h + gap, h - footer_h - gap
            x0, cw = gap * 1.5, w - gap * 3
            body_h = bottom - top
            now_h = body_h * 0.22
            self._set(self.now, x0, top, cw, now_h)
            y = top + now_h + gap
            if has_transfers:
                self._set(self.transfers, x0, y, cw, transfer_h)
                y += transfer_h + gap
            hist_h = body_h * 0.16
            self._set(self.history, x0, y, cw, hist_h)
            y += hist_h + gap
            counters_h = body_h * 0.22
            self._set(self.counters, x0, y, cw, counters_h)
            y += counters_h + gap
            self._set(self.services, x0, y, cw, bottom - y)
        self._service_columns = 2
        self.transfers.setVisible(has_transfers)
        cols = 2
        rows = max(1, math.ceil(self.history_size / cols))
        self._history_shape = (rows, cols)
        self.overlay.setGeometry(
            0, int(self.header.height()), int(w), int(h - self.header.height() - self.marquee.height())
        )
        if self.view is not None:
            self.history.set_data(self.view.history, rows, cols, self.view.lang)
            self.services.set_data(self.view.services, self._service_columns, self.view.lang)

    @staticmethod
    def _set(widget: QWidget, x: float, y: float, w: float, h: float) -> None:
        widget.setGeometry(round(x), round(y), max(1, round(w)), max(1, round(h)))


class CounterScreen(Painted):
    """A counter's own screen: its number, the current ticket, the clerk on duty, paused/closed state."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view: CounterView | None = None
        self.flash = False

    @property
    def panels(self) -> list[Painted]:
        """Every painted part (tests read ``drawn`` and ``elided``)."""
        return [self]

    def paint_call_now(self) -> None:
        """Paint synchronously (a call for this counter must not wait for the next frame)."""
        self.repaint()

    def set_view(self, view: CounterView, flash: bool) -> None:
        """Show ``view`` (repaints only on a change)."""
        if (view, flash) != (self.view, self.flash):
            self.view, self.flash, self.lang = view, flash, view.lang
            self.update()

    def paint(self, p: QPainter, r: QRectF) -> None:
        """Paint this panel's current data into ``r``."""
        p.fillRect(r, BG)
        v = self.view
        if v is None:
            return
        w, h = r.width(), r.height()
        card = v.card
        wide = w / h >= 1.6
        gap = min(w, h) * 0.03
        footer_h = h * (0.13 if wide else 0.07)
        body = QRectF(gap, gap, w - 2 * gap, h - footer_h - 2 * gap)
        if wide:
            num_r = QRectF(body.x(), body.y(), body.width() * 0.24, body.height())
            tick_r = QRectF(num_r.right() + gap, body.y(), body.width() * 0.46 - gap, body.height())
            clerk_r = QRectF(
                tick_r.right() + gap, body.y(), body.right() - tick_r.right() - gap, body.height()
            )
        else:
            num_r = QRectF(body.x(), body.y(), body.width(), body.height() * 0.26)
            tick_r = QRectF(body.x(), num_r.bottom() + gap, body.width(), body.height() * 0.44 - gap)
            clerk_r = QRectF(
                body.x(), tick_r.bottom() + gap, body.width(), body.bottom() - tick_r.bottom() - gap
            )
        self._number(p, num_r, v)
        self._ticket(p, tick_r, card, v)
        self._clerk(p, clerk_r, card, v)
        self._footer(p, QRectF(0, h - footer_h, w, footer_h), card, v)

    def _number(self, p: QPainter, r: QRectF, v: CounterView) -> None:
        self.panel(p, r, QColor("#0f3d6e"), 16)
        centre = Qt.AlignmentFlag.AlignCenter
        if r.width() > r.height():  # stacked layout: number and words side by side
            self.text(
                p,
                QRectF(r.x(), r.y(), r.width() * 0.4, r.height()),
                str(v.number),
                r.height() * 0.8,
                ACCENT,
                bold=True,
                align=centre,
            )
            a, b = pair("号窗口", f"Counter {v.number}", v.lang)
            self.text(
                p,
                QRectF(
                    r.x() + r.width() * 0.4, r.y() + r.height() * 0.12, r.width() * 0.56, r.height() * 0.46
                ),
                a,
                r.height() * 0.34,
                TEXT,
                bold=True,
            )
            self.text(
                p,
                QRectF(
                    r.x() + r.width() * 0.4, r.y() + r.height() * 0.56, r.width() * 0.56, r.height() * 0.3
                ),
                b,
                r.height() * 0.2,
                MUTED,
            )
            return
        self.text(
            p,
            QRectF(r.x(), r.y() + r.height() * 0.06, r.width(), r.height() * 0.56),
            str(v.number),
            r.height() * 0.5,
            ACCENT,
            bold=True,
            align=centre,
        )
        a, b = pair("号窗口", f"Counter {v.number}", v.lang)
        self.text(
            p,
            QRectF(r.x(), r.y() + r.height() * 0.6, r.width(), r.height() * 0.18),
            a,
            r.height() * 0.13,
            TEXT,
            bold=True,
            align=centre,
        )
        self.text(
            p,
            QRectF(r.x(), r.y() + r.height() * 0.77, r.width(), r.height() * 0.14),
            b,
            r.height() * 0.09,
            MUTED,
            align=centre,
        )

    def _ticket(self, p: QPainter, r: QRectF, card: CounterCard | None, v: CounterView) -> None:
        phase = card.phase if card else "closed"
        flash = self.flash and phase in ("called", "serving")
        self.panel(p, r, FLASH if flash else PANEL, 16)
        fg = DARK_TEXT if flash else TEXT
        sub = DARK_TEXT if flash else MUTED
        centre = Qt.AlignmentFlag.AlignCenter
        pad = r.height() * 0.06
        inner = r.adjusted(pad, pad * 0.6, -pad, -pad * 0.6)
        ih = inner.height()
        if card is None:
            a, b = pair("本窗口暂无信息", "No information for this counter yet", v.lang)
            self.text(
                p,
                QRectF(inner.x(), inner.y() + ih * 0.3, inner.width(), ih * 0.22),
                a,
                ih * 0.16,
                fg,
                bold=True,
                align=centre,
            )
            self.text(
                p,
                QRectF(inner.x(), inner.y() + ih * 0.54, inner.width(), ih * 0.16),
                b,
                ih * 0.1,
                sub,
                align=centre,
            )
            return
        chip_colour = PHASE_COLOURS.get(phase, PHASE_COLOURS["closed"])
        chip = QRectF(inner.x() + inner.width() * 0.15, inner.y(), inner.width() * 0.7, ih * 0.2)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(DARK_TEXT if flash else chip_colour)
        p.drawRoundedRect(chip, chip.height() / 2, chip.height() / 2)
        label = "  ".join(pair(card.status_zh, card.status_en, v.lang))
        chip_fg = FLASH if flash else (DARK_TEXT if phase == "called" else TEXT)
        self.text(
            p,
            chip.adjusted(chip.height() * 0.5, 0, -chip.height() * 0.5, 0),
            label,
            chip.height() * 0.62,
            chip_fg,
            bold=True,
            align=centre,
        )
        body = QRectF(
            inner.x(), chip.bottom() + ih * 0.04, inner.width(), inner.bottom() - chip.bottom() - ih * 0.04
        )
        if card.ticket_label and phase in ("called", "serving"):
            self.text(
                p,
                QRectF(body.x(), body.y(), body.width(), body.height() * 0.72),
                card.ticket_label,
                body.height() * 0.66,
                DARK_TEXT if flash else ACCENT,
                bold=True,
                align=centre,
            )
            svc = "  ·  ".join(x for x in pair(card.ticket_service_zh, card.ticket_service_en, v.lang) if x)
            self.text(
                p,
                QRectF(body.x(), body.y() + body.height() * 0.74, body.width(), body.height() * 0.24),
                svc,
                body.height() * 0.12,
                sub,
                align=centre,
                min_px=10,
            )
            return
        if phase == "paused":  # the headline is why, the chip already says "paused"
            a, b = pair(card.pause_reason_zh or "暂停服务", card.pause_reason_en or "Paused", v.lang)
            c, d = pair("请稍候，或到其他窗口办理", "Please wait, or go to another counter", v.lang)
        elif phase == "closed":
            a, b = pair("本窗口暂未开放", "This counter is not open", v.lang)
            c, d = pair("请到其他窗口办理", "Please go to another counter", v.lang)
        else:
            a, b = pair("请留意叫号", "Please listen for your number", v.lang)
            c, d = pair(
                "叫到您的号码时请到本窗口办理", "Come to this counter when your number is called", v.lang
            )
        self.text(
            p,
            QRectF(body.x(), body.y() + body.height() * 0.04, body.width(), body.height() * 0.36),
            a,
            body.height() * 0.3,
            ACCENT if phase == "paused" and not flash else fg,
            bold=True,
            align=centre,
        )
        self.text(
            p,
            QRectF(body.x(), body.y() + body.height() * 0.4, body.width(), body.height() * 0.2),
            b,
            body.height() * 0.15,
            sub,
            align=centre,
        )
        self.text(
            p,
            QRectF(body.x(), body.y() + body.height() * 0.66, body.width(), body.height() * 0.17),
            c,
            body.height() * 0.12,
            fg,
            align=centre,
            min_px=10,
        )
        self.text(
            p,
            QRectF(body.x(), body.y() + body.height() * 0.83, body.width(), body.height() * 0.15),
            d,
            body.height() * 0.09,
            sub,
            align=centre,
            min_px=9,
        )

    def _clerk(self, p: QPainter, r: QRectF, card: CounterCard | None, v: CounterView) -> None:
        self.panel(p, r, PANEL, 16)
        centre = Qt.AlignmentFlag.AlignCenter
        pad = min(r.width(), r.height()) * 0.06
        inner = r.adjusted(pad, pad, -pad, -pad)
        ih = inner.height()
        a, b = pair("当前值班", "On duty", v.lang)
        self.text(
            p,
            QRectF(inner.x(), inner.y(), inner.width(), ih * 0.16),
            f"{a}  {b}",
            ih * 0.11,
            MUTED,
            align=centre,
        )
        if card is None or card.phase == "closed" or not (card.clerk_name_zh or card.clerk_name_en):
            self.text(
                p,
                QRectF(inner.x(), inner.y() + ih * 0.25, inner.width(), ih * 0.4),
                "—",
                ih * 0.3,
                MUTED,
                align=centre,
            )
            return
        n1, n2 = pair(card.clerk_name_zh, card.clerk_name_en, v.lang)
        self.text(
            p,
            QRectF(inner.x(), inner.y() + ih * 0.18, inner.width(), ih * 0.34),
            n1,
            ih * 0.28,
            TEXT,
            bold=True,
            align=centre,
        )
        self.text(
            p,
            QRectF(inner.x(), inner.y() + ih * 0.52, inner.width(), ih * 0.16),
            n2,
            ih * 0.13,
            MUTED,
            align=centre,
        )
        if card.post:
            post = "  ·  ".join(pair(f"{card.post}岗", f"Post {card.post}", v.lang))
            chip = QRectF(
                inner.x() + inner.width() * 0.2, inner.y() + ih * 0.74, inner.width() * 0.6, ih * 0.2
            )
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor("#1d5a99"))
            p.drawRoundedRect(chip, chip.height() / 2, chip.height() / 2)
            self.text(p, chip.adjusted(8, 0, -8, 0), post, chip.height() * 0.6, TEXT, bold=True, align=centre)

    def _footer(self, p: QPainter, r: QRectF, card: CounterCard | None, v: CounterView) -> None:
        p.fillRect(r, QColor("#0b2445"))
        p.fillRect(QRectF(r.x(), r.y(), r.width(), 3), ACCENT)
        h = r.height()
        pad = h * 0.3
        services = ""
        if card is not None and card.services_zh:
            zh = "、".join(card.services_zh)
            en = ", ".join(card.services_en)
            first, _second = pair(zh, en, v.lang)
            label = "业务：" if v.lang == "zh" else "Services: "
            services = label + first
        left = QRectF(r.x() + pad, r.y(), r.width() * 0.62, h)
        self.text(p, left, services, h * 0.36, TEXT, min_px=10)
        conn = v.connection
        dot = {"online": QColor("#35c46a"), "offline": STALE_RED, "connecting": QColor("#e0a800")}[conn.state]
        right = QRectF(r.x() + r.width() * 0.66, r.y(), r.width() * 0.34 - pad, h)
        clock = f"{v.clock.time[:5]}"
        cw = self.text_width(clock, int(h * 0.44), True)
        self.text(
            p,
            right,
            clock,
            h * 0.44,
            TEXT,
            bold=True,
            align=Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
        )
        d = h * 0.22
        cx = right.right() - cw - d * 2.2
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(dot)
        p.drawEllipse(QRectF(cx, r.center().y() - d / 2, d, d))
        if conn.stale or conn.state != "online":
            a, b = pair(conn.label_zh, conn.label_en, v.lang)
            warn = QRectF(right.x(), r.y(), cx - right.x() - d * 0.6, h)
            self.text(
                p,
                warn,
                f"{a} {b}",
                h * 0.3,
                QColor("#ffb4b4"),
                bold=True,
                align=Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                min_px=9,
            )


# ------------------------------------------------------------------------------------- window


class DisplayWindow(QWidget):
    """The display: a hall screen, or a counter screen when ``options.counter`` is set.

    ``link``: a QtLink (role ``display``) or None (the owner then feeds :meth:`on_state`,
    :meth:`on_event` and :meth:`on_connection` itself). ``sink``: where announcements play
    (default: :class:`display.qt_audio.QtAudioSink`; a RecordingSink keeps each WAV in
    ``sink.played``). ``clock``: seconds for the announcer (default ``time.time``).
    ``hall_clock``: the hall's aware time (default: the broker's heartbeat time via
    :class:`HeartbeatMirror`, else system time). ``pack``: the voice pack (default: shipped).
    ``auto_tick``: drive the announcer from a 100 ms timer (tests may call :meth:`tick` instead).
    """

    def __init__(
        self,
        link: QtLink | None = None,
        options: DisplayOptions | None = None,
        *,
        sink: AudioSink | None = None,
        clock: Callable[[], float] | None = None,
        hall_clock: Callable[[], datetime] | None = None,
        pack: VoicePack | None = None,
        auto_tick: bool = True,
        parent: QWidget | None = None,
        evaluator_clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(parent)
        self.options = (options or DisplayOptions()).validate()
        self.link = link
        broker_clock = HallClock()
        if link is not None and not link.link.mirror.synced:
            # Before start(), so the link thread has not read it yet. Also when the owner brings its own
            # hall clock: the arrival stamps on events are what tells a live call from a late one.
            link.link.mirror = HeartbeatMirror(broker_clock)
        self.hall_clock = hall_clock if hall_clock is not None else broker_clock
        if self.options.counter is None:
            if sink is None:
                from queuehall.display.qt_audio import QtAudioSink  # QtMultimedia only where sound is played

                sink = QtAudioSink(self)
            pack = pack or load_pack()
        self.sink = sink
        # A Qt sink plays through the event loop anyway: start it after the call is painted.
        model_sink = AfterPaintSink(sink) if isinstance(sink, QObject) else sink
        self.model = DisplayModel(
            self.options, pack=pack, sink=model_sink, clock=clock or time.time, hall_clock=self.hall_clock
        )
        self.screen_widget: HallScreen | CounterScreen
        if self.options.counter is None:
            self.screen_widget = HallScreen(self.options.history_size, self)
        else:
            self.screen_widget = CounterScreen(self)
        # A counter's screen is its evaluator after each finish (docs/evaluation.md): an overlay with its own state.
        self.evaluator: EvaluatorPanel | None = None
        if self.options.counter is not None and self.options.evaluator_seconds > 0 and link is not None:
            from queuehall.display.evaluation import EvaluatorModel
            from queuehall.display.evaluator_widget import EvaluatorPanel

            model = EvaluatorModel(self.options.counter, link.request, seconds=self.options.evaluator_seconds,
                                   clock=evaluator_clock or time.monotonic)
            self.evaluator = EvaluatorPanel(model, self)
            link.replied.connect(self._on_replied)
        self.setWindowTitle(self._title())
        self._refresh_pending = False
        self._stopped = False
        self._demo_clock: ManualClock | None = None
        self._tick_timer = QTimer(self)
        self._tick_timer.setInterval(TICK_MS)
        self._tick_timer.timeout.connect(self.tick)
        self._auto_tick = auto_tick
        if link is not None:
            link.state_changed.connect(self.on_state)
            link.event.connect(self.on_event)
            link.connection_changed.connect(self.on_connection)
        self.refresh()

    def _title(self) -> str:
        if self.options.counter is None:
            return "queuehall · 大厅叫号屏 / hall display"
        return f"queuehall · {self.options.counter}号窗口屏 / counter {self.options.counter} screen"

    @property
    def panels(self) -> list[Painted]:
        """The painted parts of the screen (tests read ``drawn`` and ``elided``)."""
        return self.screen_widget.panels

    @classmethod
    def for_demo(
        cls,
        endpoint: str,
        *,
        security: Security | None = None,
        sink: AudioSink | None = None,
        options: DisplayOptions | None = None,
        name: str = "wall-1",
    ) -> DisplayWindow:
        """A hall screen for the headless demo: its own QtLink (role ``display``) to ``endpoint``,
        the announcer on a :class:`~display.announcer.ManualClock` that :meth:`demo_tick` drives, and
        ``sink`` (default: a new RecordingSink; a RecordingSink is put on that clock, so
        ``sink.played[i].wav`` holds each announcement). Call :meth:`start` next.
        """
        clock = ManualClock(time.time())
        if sink is None:
            sink = RecordingSink(clock)
        elif isinstance(sink, RecordingSink):
            sink.clock = clock  # its clips "play" on the announcer's clock
        link = QtLink(endpoint, role="display", name=name, security=security)
        window = cls(link, options, sink=sink, clock=clock, auto_tick=False)
        window._demo_clock = clock
        return window

    def demo_tick(self, limit_seconds: float = 600.0, step: float = 0.25) -> int:
        """Headless demo: take in what the link delivered, then run the announcer's manual clock until
        every queued announcement has played to its end and held the screen its minimum time (at most
        ``limit_seconds`` of announcer time). Returns how many announcements the sink has played.

        On a window not made by :meth:`for_demo` it is a plain :meth:`tick`.
        """
        app = QApplication.instance()
        if app is not None:
            app.processEvents()
        clock = self._demo_clock
        announcer = self.model.announcer
        if clock is None or announcer is None:
            self.tick()
        else:
            end = clock() + limit_seconds
            while clock() < end and not (announcer.is_idle() and not self._sink_busy()):
                clock.advance(step)
                self.tick()
        self.refresh()
        return len(self.sink.played) if isinstance(self.sink, RecordingSink) else 0

    def _sink_busy(self) -> bool:
        return isinstance(self.sink, RecordingSink) and self.sink.playing is not None

    def shutdown(self) -> None:
        """Stop everything (:meth:`stop`) and close the window."""
        self.stop()
        self.close()

    def start(self) -> None:
        """Connect to the broker (if a link was given) and start the timers."""
        if self._auto_tick:
            self._tick_timer.start()
        if self.link is not None:
            self.link.start()

    def stop(self) -> None:
        """Stop the timers, the link and any announcement (safe to call twice)."""
        self._tick_timer.stop()
        if self.link is not None and not self._stopped:
            self.link.stop()
        self._stopped = True
        self.model.close()

    # -- inputs (slots) --------------------------------------------------------------------------

    def on_state(self, state: dict[str, Any]) -> None:
        """A new full state from the link."""
        self.model.handle_state(state)
        self._refresh_soon()

    def on_event(self, msg: dict[str, Any]) -> None:
        """One published event from the link (a call is shown at once and queued for the voice).

        A message fed directly (no link) counts as received now; the link stamps its own on arrival.
        """
        if "received_monotonic" not in msg:
            msg = dict(msg, received_monotonic=time.monotonic())
        if self.evaluator is not None and self.evaluator.model.on_event(msg):
            self.evaluator.sync()
        before = (self.model.current, self.model.highlighted)
        self.model.handle_event(msg)
        if (self.model.current, self.model.highlighted) != before:
            # A new call on the big panel: paint it now, before anything else (the announcement included).
            self.refresh()
            self.screen_widget.paint_call_now()
        else:
            self._refresh_soon()

    def _on_replied(self, request_id: str, reply: object) -> None:
        """The broker's answer to a command this screen sent (only the evaluator's ``rate``)."""
        if self.evaluator is not None and isinstance(reply, dict) and self.evaluator.model.replied(request_id, reply):
            self.evaluator.sync()

    def on_connection(self, up: bool) -> None:
        """The broker came back or went silent."""
        self.model.set_connected(up)
        self._refresh_soon()

    def _refresh_soon(self) -> None:
        # An event comes with a state right behind it (and a burst of calls with many): build the
        # view once, on the next turn of the event loop, for all of them.
        if not self._refresh_pending:
            self._refresh_pending = True
            QTimer.singleShot(0, self, self.refresh)

    def tick(self) -> None:
        """Advance the announcement queue (and a recording sink's playback) and repaint what changed."""
        if isinstance(self.sink, RecordingSink):
            self.sink.update()
        self.model.tick()
        if self.evaluator is not None and (self.evaluator.model.tick() or self.evaluator.isVisible()):
            self.evaluator.sync()  # the countdown, or back to the normal screen
        self.refresh()

    def refresh(self, flash: bool | None = None) -> None:
        """Push the model's current view to the screen; panels repaint only what changed.

        ``flash`` forces the highlight colour on or off (screenshots); by default a highlighted call
        flashes at 2 Hz.
        """
        self._refresh_pending = False
        highlighted = self.model.highlighted
        if flash is None:
            flash = int(time.monotonic() * 2) % 2 == 0
        flash = flash and highlighted
        if self.options.counter is None:
            view = self.model.hall_view()
            assert isinstance(self.screen_widget, HallScreen)
            self.screen_widget.set_view(view, flash)
        else:
            cview = self.model.counter_view()
            assert isinstance(self.screen_widget, CounterScreen)
            self.screen_widget.set_view(cview, flash)

    def set_flash_phase(self, on: bool) -> None:
        """Show the highlight colour on or off now (screenshots); the next tick flashes as usual."""
        self.refresh(flash=on)

    # -- Qt ------------------------------------------------------------------------------------

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Qt resize hook: lay the parts out again for the new size."""
        super().resizeEvent(event)
        self.screen_widget.setGeometry(self.rect())
        if self.evaluator is not None:
            self.evaluator.setGeometry(self.rect())

    def closeEvent(self, event: QCloseEvent) -> None:
        """Qt close hook: stop the link, the timers and any announcement."""
        self.stop()
        super().closeEvent(event)

    def keyPressEvent(self, event: Any) -> None:
        """Esc leaves full screen (maintenance); M mutes or unmutes the voice."""
        # A wall screen normally has no keyboard; these two are for the person maintaining it.
        if event.key() == Qt.Key.Key_Escape and self.isFullScreen():
            self.showNormal()
        elif event.key() == Qt.Key.Key_M and self.model.announcer is not None:
            self.model.set_muted(not self.model.announcer.muted)
        else:
            super().keyPressEvent(event)
