"""A counter's own screen (窗口屏): its number, the ticket being served, the clerk on duty, paused or closed."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QWidget
from queuehall.display.model import CounterCard, CounterView
from queuehall.display.painting import (
    ACCENT,
    BG,
    DARK_TEXT,
    FLASH,
    MUTED,
    PANEL,
    PHASE_COLOURS,
    STALE_RED,
    TEXT,
    Painted,
)

from queuehall.text import Bi


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

    def _rows(self, p: QPainter, box: QRectF, *rows: tuple[Any, ...],
              align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignCenter) -> None:
        """Lines of text one under another in ``box``, each row ``(top, height, text, px, colour)`` and, if given,
        ``bold`` and the smallest size in pixels: top, height and px are fractions of the box's height."""
        x, y, w, h = box.x(), box.y(), box.width(), box.height()
        for top, height, s, px, colour, *more in rows:
            bold = bool(more[0]) if more else False
            min_px = float(more[1]) if len(more) > 1 else 12
            self.text(p, QRectF(x, y + h * top, w, h * height), s, h * px, colour, bold=bold, align=align,
                      min_px=min_px)

    def _number(self, p: QPainter, r: QRectF, v: CounterView) -> None:
        self.panel(p, r, QColor("#0f3d6e"), 16)
        a, b = Bi("号窗口", f"Counter {v.number}").pick(v.lang)
        if r.width() > r.height():  # stacked layout: number and words side by side
            self._rows(p, QRectF(r.x(), r.y(), r.width() * 0.4, r.height()), (0, 1, str(v.number), 0.8, ACCENT, True))
            words = QRectF(r.x() + r.width() * 0.4, r.y(), r.width() * 0.56, r.height())
            self._rows(p, words, (0.12, 0.46, a, 0.34, TEXT, True), (0.56, 0.3, b, 0.2, MUTED),
                       align=Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
            return
        self._rows(p, r, (0.06, 0.56, str(v.number), 0.5, ACCENT, True), (0.6, 0.18, a, 0.13, TEXT, True),
                   (0.77, 0.14, b, 0.09, MUTED))

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
            a, b = Bi("本窗口暂无信息", "No information for this counter yet").pick(v.lang)
            self._rows(p, inner, (0.3, 0.22, a, 0.16, fg, True), (0.54, 0.16, b, 0.1, sub))
            return
        chip_colour = PHASE_COLOURS.get(phase, PHASE_COLOURS["closed"])
        chip = QRectF(inner.x() + inner.width() * 0.15, inner.y(), inner.width() * 0.7, ih * 0.2)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(DARK_TEXT if flash else chip_colour)
        p.drawRoundedRect(chip, chip.height() / 2, chip.height() / 2)
        label = "  ".join(Bi(card.status_zh, card.status_en).pick(v.lang))
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
            svc = "  ·  ".join(x for x in Bi(card.ticket_service_zh, card.ticket_service_en).pick(v.lang) if x)
            self._rows(p, body, (0, 0.72, card.ticket_label, 0.66, DARK_TEXT if flash else ACCENT, True),
                       (0.74, 0.24, svc, 0.12, sub, False, 10))
            return
        if phase == "paused":  # the headline is why, the chip already says "paused"
            a, b = Bi(card.pause_reason_zh or "暂停服务", card.pause_reason_en or "Paused").pick(v.lang)
            c, d = Bi("请稍候，或到其他窗口办理", "Please wait, or go to another counter").pick(v.lang)
        elif phase == "closed":
            a, b = Bi("本窗口暂未开放", "This counter is not open").pick(v.lang)
            c, d = Bi("请到其他窗口办理", "Please go to another counter").pick(v.lang)
        else:
            a, b = Bi("请留意叫号", "Please listen for your number").pick(v.lang)
            c, d = Bi(
                "叫到您的号码时请到本窗口办理", "Come to this counter when your number is called").pick(v.lang)
        self._rows(p, body, (0.04, 0.36, a, 0.3, ACCENT if phase == "paused" and not flash else fg, True),
                   (0.4, 0.2, b, 0.15, sub), (0.66, 0.17, c, 0.12, fg, False, 10), (0.83, 0.15, d, 0.09, sub, False, 9))

    def _clerk(self, p: QPainter, r: QRectF, card: CounterCard | None, v: CounterView) -> None:
        self.panel(p, r, PANEL, 16)
        centre = Qt.AlignmentFlag.AlignCenter
        pad = min(r.width(), r.height()) * 0.06
        inner = r.adjusted(pad, pad, -pad, -pad)
        ih = inner.height()
        a, b = Bi("当前值班", "On duty").pick(v.lang)
        self._rows(p, inner, (0, 0.16, f"{a}  {b}", 0.11, MUTED))
        if card is None or card.phase == "closed" or not (card.clerk_name_zh or card.clerk_name_en):
            self._rows(p, inner, (0.25, 0.4, "—", 0.3, MUTED))
            return
        n1, n2 = Bi(card.clerk_name_zh, card.clerk_name_en).pick(v.lang)
        self._rows(p, inner, (0.18, 0.34, n1, 0.28, TEXT, True), (0.52, 0.16, n2, 0.13, MUTED))
        if card.post:
            post = "  ·  ".join(Bi(f"{card.post}岗", f"Post {card.post}").pick(v.lang))
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
        names: list[str] = []
        if card is not None and card.services_zh:
            names = list(card.services_zh if v.lang == "zh" else card.services_en)
        sep = "、" if v.lang == "zh" else ", "
        label = "业务：" if v.lang == "zh" else "Services: "
        left = QRectF(r.x() + pad, r.y(), r.width() * 0.62, h)
        services = label + sep.join(names) if names else ""
        if len(names) > 1 and self.fit_px(services, left.width(), h, h * 0.36) < 12:
            # A narrow screen: the services on two lines rather than cut.
            half = (len(names) + 1) // 2
            lines = (label + sep.join(names[:half]) + sep.strip(), sep.join(names[half:]))
            for i, line in enumerate(lines):
                self.text(p, QRectF(left.x(), r.y() + h * (0.08 + 0.44 * i), left.width(), h * 0.42), line,
                          h * 0.3, TEXT, min_px=10)
        else:
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
            a, b = Bi(conn.label_zh, conn.label_en).pick(v.lang)
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

