"""The hall screen (大厅综合屏): header, now calling, recent calls, transfers, counters, queues, notice, and the
:class:`HallScreen` that lays them out for the screen's size and orientation."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPainter, QResizeEvent
from PySide6.QtWidgets import QWidget
from queuehall.display.model import CallCard, Clock, Connection, CounterCard, HallView, ServiceRow, TransferNote
from queuehall.display.painting import (
    ACCENT,
    BG,
    DARK_TEXT,
    EDGE,
    FLASH,
    MUTED,
    PANEL,
    PANEL_ALT,
    PHASE_COLOURS,
    STALE_RED,
    TEXT,
    Painted,
)

from queuehall.text import Bi

MARQUEE_MS = 33
MARQUEE_PX_PER_S = 90.0


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
        first, second = Bi(*self.name).pick(self.lang)
        left = QRectF(pad * 1.5, pad * 0.6, w * 0.5, h * 0.52)
        self.text(p, left, first, h * 0.42, TEXT, bold=True)
        self.text(p, QRectF(left.x(), left.bottom(), left.width(), h * 0.3), second, h * 0.22, MUTED)
        # Connection pill, far right, small: staff notice it, citizens need not.
        conn = self.connection
        dot = {"online": QColor("#35c46a"), "offline": STALE_RED, "connecting": QColor("#e0a800")}[conn.state]
        label = "  ".join(Bi(conn.label_zh, conn.label_en).pick(self.lang))
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
        d1, d2 = Bi(self.clock.date_zh, self.clock.date_en).pick(self.lang)
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
        first, second = Bi("正在叫号", "Now calling").pick(self.lang)
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
                Bi(call.outcome_zh, call.outcome_en).pick(self.lang) if settled
                else Bi(call.kind_zh, call.kind_en).pick(self.lang))
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
            a, b = Bi("欢迎光临", "Welcome").pick(self.lang)
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
            c, d = Bi(
                "请留意屏幕和语音叫号", "Please watch the screen and listen for your number").pick(self.lang)
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
            oz, oe = Bi(call.outcome_zh, call.outcome_en).pick(self.lang)
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
        cz, ce = Bi("号窗口", "Counter").pick(self.lang)
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
        s1, s2 = Bi(call.text_zh, call.text_en).pick(self.lang)
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
        svc = "  ·  ".join(x for x in Bi(call.service_zh, call.service_en).pick(self.lang) if x)
        if self.pending:
            more = "  ".join(Bi(f"另有 {self.pending} 位待叫", f"{self.pending} more coming").pick(self.lang))
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
        pad = 14.0 * self.scale
        head = min(48.0 * self.scale, r.height() * 0.13)
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
            a, b = Bi("暂无叫号记录", "No calls yet").pick(self.lang)
            self.text(
                p,
                body,
                f"{a}  {b}",
                min(30.0 * self.scale, body.height() * 0.2),
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
        first, second = Bi(zh, en).pick(self.lang)
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
        tag_w = min(150.0 * self.scale, r.width() * 0.2)
        a, b = Bi("转办", "Transfers").pick(self.lang)
        self.text(
            p,
            QRectF(r.x() + pad, r.y(), tag_w, r.height() * 0.55),
            a,
            min(26.0 * self.scale, r.height() * 0.3),
            ACCENT,
            bold=True,
        )
        self.text(
            p,
            QRectF(r.x() + pad, r.y() + r.height() * 0.45, tag_w, r.height() * 0.4),
            b,
            min(18.0 * self.scale, r.height() * 0.2),
            MUTED,
        )
        body = QRectF(r.x() + pad + tag_w, r.y() + 4, r.width() - tag_w - 2 * pad, r.height() - 8)
        lh = body.height() / n
        for i, note in enumerate(self.notes):
            line = QRectF(body.x(), body.y() + i * lh, body.width(), lh)
            first, second = Bi(note.text_zh, note.text_en).pick(self.lang)
            self.text(
                p,
                QRectF(line.x(), line.y(), line.width(), lh * 0.58),
                first,
                min(26.0 * self.scale, lh * 0.46),
                TEXT,
                bold=True,
                min_px=10,
            )
            self.text(
                p,
                QRectF(line.x(), line.y() + lh * 0.54, line.width(), lh * 0.42),
                second,
                min(19.0 * self.scale, lh * 0.32),
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
        pad = 14.0 * self.scale
        head = min(48.0 * self.scale, max(36.0 * self.scale, r.height() * 0.1))
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
        pad = min(12.0 * self.scale, c.width() * 0.05)
        head = QRectF(c.x() + pad, c.y() + h * 0.04, c.width() - 2 * pad, h * 0.26)
        zh, en = f"{card.number} 号窗口", f"Counter {card.number}"
        first, second = Bi(zh, en).pick(self.lang)
        px = self.text(
            p,
            QRectF(head.x(), head.y(), head.width() * 0.6, head.height()),
            first,
            head.height() * 0.8,
            MUTED if dim else TEXT,
            bold=True,
        )
        fw = self.text_width(first, px, True) + 8
        rest = head.width() - fw
        # The other language beside the number when it fits at a readable size; on a small card the number
        # speaks for itself (the panel's title is in both languages).
        if self.text_width(second, max(10, round(px * 0.6))) <= rest:
            self.text(
                p,
                QRectF(head.x() + fw, head.y(), rest, head.height()),
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
            r1, r2 = Bi(card.pause_reason_zh, card.pause_reason_en).pick(self.lang)
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
        first, second = Bi(card.status_zh, card.status_en).pick(self.lang)
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
        self.name_share, self.count_share = self.NAME, self.COUNT

    def set_data(self, rows: Sequence[ServiceRow], columns: int, lang: str) -> None:
        """Take new data to show; repaints only when something shown changed."""
        data = (tuple(rows), columns, lang)
        if data != (self.rows, self.columns, self.lang):
            self.rows, self.columns, self.lang = data
            self.update()

    def paint(self, p: QPainter, r: QRectF) -> None:
        """Paint this panel's current data into ``r``."""
        self.panel(p, r)
        pad = 14.0 * self.scale
        head = min(44.0 * self.scale, r.height() * 0.1)
        total = sum(s.waiting for s in self.rows)
        self.title(
            p, QRectF(r.x() + pad * 1.4, r.y() + pad * 0.5, r.width() * 0.6, head), "等候情况", "Waiting"
        )
        a, b = Bi(f"共 {total} 人等候", f"{total} waiting in all").pick(self.lang)
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
        header_h = min(38.0 * self.scale, body.height() / (per_col + 1) * 0.8)
        rh = (body.height() - header_h) / per_col
        for col in range(cols):
            x = body.x() + col * colw
            hd = QRectF(x + 6, body.y(), colw - 12, header_h)
            for (first, second), x0, x1, align in self._columns(hd):
                if header_h * 0.3 < 10:  # too short for two lines: the screen's language, readable
                    self.text(p, QRectF(x0, hd.y(), x1 - x0, hd.height()), first, header_h * 0.62, MUTED,
                              bold=True, align=align, min_px=9)
                    continue
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
        w, n, c = r.width(), self.name_share, self.count_share
        return [
            (Bi("业务", "Service").pick(self.lang), r.x(), r.x() + w * n, left),
            (Bi("等候人数", "Waiting").pick(self.lang), r.x() + w * (n - 0.04), r.x() + w * (n + c), right),
            (Bi("预计等候", "Est. wait").pick(self.lang), r.x() + w * (n + c + 0.02), r.right(), right),
        ]

    def _two_lines(self, p: QPainter, cell: QRectF, lines: tuple[str, str], px: float, fg: QColor,
                   align: Qt.AlignmentFlag, min_px: int, first_scale: float = 1.0) -> None:
        """A row's cell with its first language in bold above and the other, smaller and muted, below."""
        top, h = cell.y(), cell.height()
        self.text(p, QRectF(cell.x(), top + h * 0.04, cell.width(), h * 0.54), lines[0], px * first_scale, fg,
                  bold=True, align=align, min_px=min_px)
        self.text(p, QRectF(cell.x(), top + h * 0.56, cell.width(), h * 0.4), lines[1],
                  min(px * 0.66, 15.0 * self.scale),
                  MUTED, align=align, min_px=9)

    def _row(self, p: QPainter, r: QRectF, row: ServiceRow) -> None:
        w, h = r.width(), r.height()
        n, c = self.name_share, self.count_share
        left = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        fg = TEXT if row.issuing else MUTED
        first, second = Bi(row.name_zh, row.name_en).pick(self.lang)
        s1, s2 = Bi(row.status_zh, row.status_en).pick(self.lang)
        name = QRectF(r.x(), r.y(), w * n - 8, h)
        est = QRectF(r.x() + w * (n + c + 0.02), r.y(), w * (1 - n - c - 0.02), h)
        two_lines = h >= 40 * self.scale
        px = min(h * (0.42 if two_lines else 0.56), 26.0 * self.scale)
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
            min(h * 0.6, 32.0 * self.scale),
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
        first, second = Bi(zh, en).pick(lang)
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
        self.setProperty("layoutOverlay", True)  # drawn over the panels on purpose
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
        bh = min(110.0 * self.scale, r.height() * 0.16)
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
        first, second = Bi(zh, en).pick(self.lang)
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
        # Pads, caps and type grow with the screen's smaller side (1.0 = 1080 lines; a 4K wall is 2.0).
        scale = max(0.6, min(w, h) / 1080)
        for panel in self.panels:
            panel.scale = scale
        small = scale < 0.8  # a 32" TV at 1366×768: fewer, larger recent calls; more room for the counters
        narrow = w < h * 1.5  # a 5:4 screen (1280×1024): the queues in one column, the counters taller
        # Long English service names need the room on a small or narrow screen: a wider name column.
        self.services.name_share, self.services.count_share = (0.7, 0.1) if small or narrow else \
            (ServicesPanel.NAME, ServicesPanel.COUNT)
        gap = max(8.0, min(w, h) * 0.012)
        transfer_h = (16.0 + 56.0 * n_transfers) * scale
        if self.landscape:
            header_h, footer_h = (h * 0.08, h * 0.05) if narrow else (h * 0.09, h * 0.058)
            self._set(self.header, 0, 0, w, header_h)
            self._set(self.marquee, 0, h - footer_h, w, footer_h)
            top, bottom = header_h + gap, h - footer_h - gap
            left_w = w * (0.34 if narrow else 0.36 if small else 0.4)
            x0, x1 = gap * 1.5, gap * 1.5 + left_w + gap
            right_w = w - x1 - gap * 1.5
            body_h = bottom - top
            now_h = body_h * (0.46 if small else 0.5)
            self._set(self.now, x0, top, left_w, now_h)
            y = top + now_h + gap
            if has_transfers:
                self._set(self.transfers, x0, y, left_w, transfer_h)
                y += transfer_h + gap
            self._set(self.history, x0, y, left_w, bottom - y)
            counters_h = body_h * (0.46 if small else 0.42 if narrow else 0.37)
            self._set(self.counters, x1, top, right_w, counters_h)
            self._set(self.services, x1, top + counters_h + gap, right_w, body_h - counters_h - gap)
        else:
            header_h, footer_h = h * 0.06, h * 0.036
            shares = (0.22, 0.16, 0.22)
            self._set(self.header, 0, 0, w, header_h)
            self._set(self.marquee, 0, h - footer_h, w, footer_h)
            top, bottom = header_h + gap, h - footer_h - gap
            x0, cw = gap * 1.5, w - gap * 3
            body_h = bottom - top
            now_h = body_h * shares[0]
            self._set(self.now, x0, top, cw, now_h)
            y = top + now_h + gap
            if has_transfers:
                self._set(self.transfers, x0, y, cw, transfer_h)
                y += transfer_h + gap
            hist_h = body_h * shares[1]
            self._set(self.history, x0, y, cw, hist_h)
            y += hist_h + gap
            counters_h = body_h * shares[2]
            self._set(self.counters, x0, y, cw, counters_h)
            y += counters_h + gap
            self._set(self.services, x0, y, cw, bottom - y)
        self._service_columns = 2
        self.transfers.setVisible(has_transfers)
        cols = 1 if narrow and self.landscape else 2  # a 5:4 screen's narrow left column: one call a row
        rows = max(1, math.ceil(self.history_size / cols))
        if small:
            rows = min(rows, 3)
        elif narrow and self.landscape:
            rows = min(rows, 5)
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

