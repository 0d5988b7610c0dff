"""The displays' painting ground: signage colours, the application font and :class:`Painted`, a widget that
fits each string to its box (shrinking the font; eliding only below a minimum, recorded in ``elided``)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter
from PySide6.QtWidgets import QApplication, QWidget

from queuehall.qtfonts import cjk_family, set_app_font
from queuehall.text import Bi

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


# ------------------------------------------------------------------------------------- painting


class Painted(QWidget):
    """A widget that paints text fitted to boxes; subclasses implement :meth:`paint`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.drawn: list[str] = []
        self.elided: list[str] = []
        self.sizes: list[tuple[str, int]] = []  # (string, pixel size) of everything the last paint drew
        self.lang = "zh"
        self.scale = 1.0  # the screen's size against 1080 lines (set by the screen's layout): caps and pads grow
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
        self.sizes.append((shown, size))
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
        self.sizes = []
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
        first, second = Bi(zh, en).pick(self.lang)
        px = self.fit_px(first, r.width() * 0.6, r.height(), r.height() * 0.62, True)
        self.text(p, r, first, px, TEXT, bold=True)
        w = self.text_width(first, px, True) + px * 0.6
        self.text(p, QRectF(r.x() + w, r.y(), r.width() - w, r.height()), second, px * 0.72, MUTED)

