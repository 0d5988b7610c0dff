"""The printed queue ticket (取号凭条): its content and its raster layout.

:class:`TicketContent` is everything a ticket shows. :func:`render_ticket` lays it out with Qt
(``QPainter`` on a grayscale ``QImage``) at the thermal printer's dot width, 576 dots for 80 mm
paper and 384 dots for 58 mm paper (203 dpi print heads), and returns a 1-bit image whose height
follows the content. The printer module (``kiosk.printing``) sends that image as ESC/POS raster data;
because the glyphs come from a font on this machine, the ticket does not depend on the printer's
Chinese font ROM or its code page.

Rendering needs a ``QGuiApplication`` (fonts live there): :func:`ensure_qt_app` creates one when the
process has none (the offscreen platform when there is no display). The fonts must cover Chinese:
WenQuanYi Micro Hei (Debian ``fonts-wqy-microhei``) or Noto Sans CJK, or a font file named by the
``QUEUEHALL_TICKET_FONT`` environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import qrcode
import qrcode.constants
from PIL import Image
from PySide6.QtCore import QCoreApplication, QPointF, QRectF, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QFontMetricsF,
    QGuiApplication,
    QImage,
    QPainter,
    QTextCharFormat,
    QTextLayout,
    QTextOption,
)

from queuehall.errors import QueuehallError
from queuehall.qtfonts import installed_cjk_family
from queuehall.text import Bi

#: Printable dots across the paper at 203 dpi (80 mm paper prints 72 mm, 58 mm paper prints 48 mm).
PAPER_DOTS: dict[int, int] = {80: 576, 58: 384}
LANGUAGES = ("zh", "en")
FONT_ENV = "QUEUEHALL_TICKET_FONT"
# Gray levels at or below this become black. Above mid-gray on purpose: the anti-aliased edge pixels
# of thin CJK strokes turn black, so small characters stay solid on thermal paper instead of breaking up.
THRESHOLD = 168
_MONO_LUT = [0 if v <= THRESHOLD else 255 for v in range(256)]

_APP: QGuiApplication | None = None  # keeps a QGuiApplication we created alive for the process


class TicketError(QueuehallError, ValueError):
    """A ticket that cannot be laid out: bad content, no Qt GUI application, or no CJK font.

    ``code`` is stable (``TICKET_INVALID``, ``TICKET_QT``, ``TICKET_FONT_MISSING``); ``zh`` and ``en``
    are messages for people.
    """

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(code, zh, en)


def _invalid(zh: str, en: str) -> TicketError:
    return TicketError("TICKET_INVALID", zh, en)



def _bi(value: Any) -> Any:
    """A ``(zh, en)`` pair of strings as a :class:`Bi`; anything else as it is (the checks refuse it)."""
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(s, str) for s in value):
        return Bi(*value)
    return value


@dataclass(frozen=True, kw_only=True)
class TicketContent:
    """Everything printed on one ticket.

    ``hall_name`` is a :class:`~queuehall.text.Bi` (a ``(zh, en)`` pair is taken as one). ``materials`` is a
    tuple of them, printed (in the primary language) only when non-empty. ``promised_days`` is the promised
    completion time in working days (0 = done on the spot, None = not printed). ``qr_payload`` is the ticket's identity
    (e.g. ``"queuehall:ticket:<id>:A012:2026-11-28"``). ``language`` ("zh" or "en") is the primary
    language: it comes first and larger; the hall name, number, service and the "ahead / wait" lines
    are always printed in both languages. Invalid values raise :class:`TicketError` (TICKET_INVALID).
    """

    hall_name: Bi | tuple[str, str]
    label: str
    service_name_zh: str
    service_name_en: str
    ahead: int
    estimated_wait_minutes: int
    issued_local: str
    qr_payload: str
    priority_name_zh: str | None = None
    priority_name_en: str | None = None
    materials: tuple[Bi | tuple[str, str], ...] = ()
    promised_days: int | None = None
    footer_zh: str = ""
    footer_en: str = ""
    language: str = "zh"
    description_zh: str = ""
    description_en: str = ""
    large_print: bool = False
    # An appointment ticket (预约, a booking checked in on time): its slot's start as printed, e.g. "10:00".
    # The ticket then carries a visible 预约 / Appointment mark; None for every other ticket.
    appointment_slot: str | None = None

    def __post_init__(self) -> None:
        # Texts are the one bilingual type (queuehall/text.py); a (zh, en) pair of strings is taken as one.
        object.__setattr__(self, "hall_name", _bi(self.hall_name))
        object.__setattr__(self, "materials", tuple(_bi(m) for m in self.materials)
                           if isinstance(self.materials, tuple) else self.materials)
        if not (isinstance(self.hall_name, Bi) and isinstance(self.hall_name.zh, str)
                and isinstance(self.hall_name.en, str) and self.hall_name.zh.strip()):
            raise _invalid("大厅名称必须是（中文，英文）二元组且中文不能为空",
                           "hall_name must be a (zh, en) pair with a non-empty Chinese name")
        if not isinstance(self.label, str) or not self.label.strip() or not self.label.isprintable():
            raise _invalid("票号不能为空", "label must be a non-empty printable string")
        if not self.label.isascii():
            raise _invalid(f"票号只能由字母和数字组成：{self.label!r}",
                           f"label must be ASCII letters and digits: {self.label!r}")
        if not isinstance(self.service_name_zh, str) or not self.service_name_zh.strip():
            raise _invalid("事项名称（中文）不能为空", "service_name_zh must not be empty")
        if not isinstance(self.service_name_en, str):
            raise _invalid("事项名称（英文）必须是字符串", "service_name_en must be a string")
        for name, value in (("ahead", self.ahead), ("estimated_wait_minutes", self.estimated_wait_minutes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _invalid(f"{name} 必须是非负整数：{value!r}",
                               f"{name} must be a non-negative integer: {value!r}")
        if self.promised_days is not None and (isinstance(self.promised_days, bool)
                                               or not isinstance(self.promised_days, int)
                                               or self.promised_days < 0):
            raise _invalid(f"承诺办结天数必须是非负整数：{self.promised_days!r}",
                           f"promised_days must be a non-negative integer or None: {self.promised_days!r}")
        if not isinstance(self.issued_local, str) or not self.issued_local.strip():
            raise _invalid("取号时间不能为空", "issued_local must not be empty")
        if not isinstance(self.qr_payload, str) or not self.qr_payload:
            raise _invalid("二维码内容不能为空", "qr_payload must not be empty")
        if not (isinstance(self.materials, tuple) and all(
                isinstance(m, Bi) and isinstance(m.zh, str) and isinstance(m.en, str) for m in self.materials)):
            raise _invalid("材料清单必须是（中文，英文）二元组的元组",
                           "materials must be a tuple of (zh, en) string pairs")
        if not isinstance(self.description_zh, str) or not isinstance(self.description_en, str):
            raise _invalid("办理须知必须是字符串", "description_zh and description_en must be strings")
        if not isinstance(self.large_print, bool):
            raise _invalid("大字号票须为 true 或 false", "large_print must be true or false")
        if self.appointment_slot is not None and (not isinstance(self.appointment_slot, str)
                                                  or not self.appointment_slot.strip()):
            raise _invalid("预约时段不能为空", "appointment_slot must be a non-empty string or None")
        if self.language not in LANGUAGES:
            raise _invalid(f"语言只能是 zh 或 en：{self.language!r}",
                           f"language must be 'zh' or 'en': {self.language!r}")

    @property
    def appointment_mark(self) -> tuple[str, str] | None:
        """(zh, en) of the appointment mark (``预约 · 10:00`` / ``Appointment · 10:00``), or None."""
        if self.appointment_slot is None:
            return None
        return f"预约 · {self.appointment_slot}", f"Appointment · {self.appointment_slot}"

    def pair(self, zh: str, en: str) -> tuple[str, str]:
        """Return ``(primary, secondary)`` of a Chinese/English pair in this ticket's language order."""
        return (zh, en) if self.language == "zh" else (en or zh, zh)

    @property
    def ahead_zh(self) -> str:
        """The "people ahead" line in Chinese."""
        return f"前面还有 {self.ahead} 人"

    @property
    def ahead_en(self) -> str:
        """The "people ahead" line in English."""
        return f"{self.ahead} ahead"

    @property
    def wait_zh(self) -> str:
        """The estimated-wait line in Chinese."""
        return f"预计等候 {self.estimated_wait_minutes} 分钟"

    @property
    def wait_en(self) -> str:
        """The estimated-wait line in English."""
        return f"about {self.estimated_wait_minutes} min"

    @property
    def promised_zh(self) -> str | None:
        """The promised-completion line in Chinese, or None when not printed."""
        if self.promised_days is None:
            return None
        return "即办件：当场办结" if self.promised_days == 0 else f"承诺 {self.promised_days} 个工作日内办结"

    @property
    def promised_en(self) -> str | None:
        """The promised-completion line in English, or None when not printed."""
        if self.promised_days is None:
            return None
        if self.promised_days == 0:
            return "Completed on the spot"
        unit = "working day" if self.promised_days == 1 else "working days"
        return f"Completed within {self.promised_days} {unit}"


def ensure_qt_app() -> QGuiApplication:
    """Return the process's QGuiApplication, creating one if there is none.

    With no display (neither DISPLAY nor WAYLAND_DISPLAY) and no QT_QPA_PLATFORM set, the offscreen
    platform is chosen so that a service or a test can render tickets. Raises TicketError (TICKET_QT)
    if the process already has a non-GUI QCoreApplication, which cannot render text.
    """
    global _APP
    app = QCoreApplication.instance()
    if app is None:
        if not os.environ.get("QT_QPA_PLATFORM") and not (
                os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtWidgets import QApplication

        # A QApplication (not a bare QGuiApplication) so widgets can be made later in the same process.
        _APP = QApplication([])
        return _APP
    if not isinstance(app, QGuiApplication):
        raise TicketError("TICKET_QT", "渲染凭条需要 QGuiApplication，但当前进程只有 QCoreApplication",
                          "rendering a ticket needs a QGuiApplication; this process has a QCoreApplication")
    return app


@lru_cache(maxsize=1)
def cjk_font_family() -> str:
    """Return the font family used for tickets: one that renders Simplified Chinese.

    The file named by QUEUEHALL_TICKET_FONT wins; then the screens' choice (queuehall.qtfonts). Raises
    TicketError (TICKET_FONT_MISSING) when there is none.
    """
    ensure_qt_app()
    path = os.environ.get(FONT_ENV)
    if path:
        font_id = QFontDatabase.addApplicationFont(path)
        families = QFontDatabase.applicationFontFamilies(font_id) if font_id >= 0 else []
        if not families:
            raise TicketError("TICKET_FONT_MISSING", f"无法加载 {FONT_ENV} 指定的字体文件：{path}",
                              f"cannot load the font file named by {FONT_ENV}: {path}")
        return families[0]
    family = installed_cjk_family()  # the same choice as every screen's
    if family is not None:
        return family
    raise TicketError("TICKET_FONT_MISSING",
                      "未找到中文字体，请安装 fonts-wqy-microhei 或 fonts-noto-cjk",
                      "no Chinese font found: install fonts-wqy-microhei or fonts-noto-cjk "
                      f"(or set {FONT_ENV} to a .ttf/.ttc/.otf file)")


@lru_cache(maxsize=1)
def number_font_family() -> str:
    """The family for the big ticket number: DejaVu Sans (a real bold face, clear digits) if present.

    WenQuanYi has no bold face; Qt's synthetic bold is too faint at 160 px. Falls back to the CJK family.
    """
    ensure_qt_app()
    return "DejaVu Sans" if "DejaVu Sans" in QFontDatabase.families() else cjk_font_family()


@dataclass(frozen=True)
class _Sizes:
    """Pixel sizes (1 dot = 0.125 mm) for one paper width, tuned by looking at printed output."""

    margin: int
    hall: int
    hall2: int
    caption: int
    number: int
    service: int
    service2: int
    info: int
    info2: int
    body: int
    small: int
    qr_target: int
    gap: int


_SIZES = {
    80: _Sizes(margin=14, hall=34, hall2=22, caption=22, number=168, service=34, service2=24,
               info=28, info2=22, body=24, small=20, qr_target=200, gap=12),
    58: _Sizes(margin=6, hall=28, hall2=19, caption=19, number=128, service=28, service2=20,
               info=24, info2=19, body=21, small=18, qr_target=168, gap=9),
}

_Op = Callable[[QPainter], None]


class _Sheet:
    """Places blocks top-down and records how to paint them; the height is known only at the end."""

    def __init__(self, width: int, sizes: _Sizes, family: str) -> None:
        self.width = width
        self.s = sizes
        self.family = family
        self.left = float(sizes.margin)
        self.avail = float(width - 2 * sizes.margin)
        self.y = float(sizes.gap)
        self.ops: list[_Op] = []

    def font(self, px: float, bold: bool = False, family: str | None = None) -> QFont:
        f = QFont(family or self.family)
        f.setPixelSize(max(8, round(px)))
        f.setBold(bold)
        f.setHintingPreference(QFont.HintingPreference.PreferFullHinting)
        return f

    def space(self, px: float) -> None:
        self.y += px

    def text(self, runs: str | Sequence[tuple[str, bool]], px: float, *, bold: bool = False,
             align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignHCenter, hanging: str = "",
             inverted: bool = False) -> None:
        """Wrap and place a paragraph. ``runs`` is a string or (text, bold) pieces of one paragraph.

        Qt's line breaker follows Unicode rules: Chinese breaks between any two characters, Latin
        text at spaces, and a word longer than the line is broken anywhere. ``hanging`` is a prefix
        (e.g. "3. ") whose width indents the continuation lines.
        """
        if isinstance(runs, str):
            runs = [(runs, bold)]
        text = "".join(r[0] for r in runs)
        base = self.font(px, False)
        layout = QTextLayout(text, base)
        formats = []
        start = 0
        for piece, piece_bold in runs:
            if piece_bold and piece:
                rng = QTextLayout.FormatRange()
                rng.start, rng.length = start, len(piece)
                fmt = QTextCharFormat()
                fmt.setFont(self.font(px, True))
                rng.format = fmt
                formats.append(rng)
            start += len(piece)
        layout.setFormats(formats)
        option = QTextOption(align)
        option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        layout.setTextOption(option)
        pad = round(px * 0.25) if inverted else 0
        indent = QFontMetricsF(base).horizontalAdvance(hanging) if hanging else 0.0
        width = self.avail - 2 * pad
        height = 0.0
        layout.beginLayout()
        while True:
            line = layout.createLine()
            if not line.isValid():
                break
            first = line.lineNumber() == 0
            line.setLineWidth(width if first else width - indent)
            line.setPosition(QPointF(0.0 if first else indent, height))
            height += line.height()
        layout.endLayout()
        x, y = self.left + pad, self.y + pad
        box = QRectF(self.left, self.y, self.avail, height + 2 * pad)

        def paint(p: QPainter) -> None:
            if inverted:
                p.fillRect(box, QColor(0, 0, 0))
                p.setPen(QColor(255, 255, 255))
            layout.draw(p, QPointF(x, y))
            p.setPen(QColor(0, 0, 0))

        self.ops.append(paint)
        self.y += height + 2 * pad

    def pair(self, primary: str, secondary: str, px: float, px2: float, *, bold: bool = False) -> None:
        """A primary-language paragraph followed by the other language, smaller (skipped when empty)."""
        self.text(primary, px, bold=bold)
        if secondary.strip() and secondary != primary:
            self.text(secondary, px2)

    def number(self, label: str) -> None:
        """The ticket number, as large as fits the paper; its block is as tall as the glyphs' ink."""
        px = float(self.s.number)
        family = number_font_family()
        font = self.font(px, True, family)
        ink = QFontMetricsF(font).tightBoundingRect(label)
        if ink.width() > self.avail:
            px *= self.avail / ink.width() * 0.97
            font = self.font(px, True, family)
            ink = QFontMetricsF(font).tightBoundingRect(label)
        baseline = self.y - ink.top()
        x = self.left + (self.avail - ink.width()) / 2 - ink.left()

        def paint(p: QPainter) -> None:
            p.setFont(font)
            p.drawText(QPointF(x, baseline), label)

        self.ops.append(paint)
        self.y += ink.height()

    def rule(self, thickness: int = 2, dashed: bool = False) -> None:
        """A horizontal line across the printable width, with a gap above and below."""
        self.y += self.s.gap
        top, left, avail = round(self.y), self.left, self.avail

        def paint(p: QPainter) -> None:
            if not dashed:
                p.fillRect(QRectF(left, top, avail, thickness), QColor(0, 0, 0))
                return
            dash = 8.0
            xx = left
            while xx < left + avail:
                p.fillRect(QRectF(xx, top, min(dash, left + avail - xx), thickness), QColor(0, 0, 0))
                xx += 2 * dash

        self.ops.append(paint)
        self.y += thickness + self.s.gap

    def qr(self, payload: str) -> None:
        """A QR code (error correction M) with whole-dot modules of at least 3 dots, centred."""
        code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
        code.add_data(payload)
        code.make(fit=True)
        matrix = code.get_matrix()
        n = len(matrix)
        box = max(3, min(self.s.qr_target, int(self.avail)) // n)
        size = n * box
        quiet = 4 * box  # the quiet zone QR readers need, as white paper above and below
        self.y += quiet
        x0 = round(self.left + (self.avail - size) / 2)
        y0 = round(self.y)

        def paint(p: QPainter) -> None:
            black = QColor(0, 0, 0)
            for r, row in enumerate(matrix):
                c = 0
                while c < n:  # one rectangle per run of dark modules keeps this fast
                    if row[c]:
                        start = c
                        while c < n and row[c]:
                            c += 1
                        p.fillRect(x0 + start * box, y0 + r * box, (c - start) * box, box, black)
                    else:
                        c += 1

        self.ops.append(paint)
        self.y += size + quiet

    def paint(self) -> QImage:
        height = int(self.y + 0.999) + self.s.gap
        gray = QImage(self.width, height, QImage.Format.Format_Grayscale8)
        gray.fill(255)
        p = QPainter(gray)
        p.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        p.setPen(QColor(0, 0, 0))
        for op in self.ops:
            op(p)
        p.end()
        return gray


def dots_for_paper(paper_mm: int) -> int:
    """Return the printable dot width for 80 or 58 mm paper; TicketError for any other width."""
    if paper_mm not in PAPER_DOTS:
        raise _invalid(f"纸宽只能是 80 或 58 毫米：{paper_mm!r}", f"paper_mm must be 80 or 58: {paper_mm!r}")
    return PAPER_DOTS[paper_mm]


def render_ticket(content: TicketContent, paper_mm: int = 80, dots: int | None = None) -> QImage:
    """Lay out ``content`` for ``paper_mm`` paper and return a 1-bit QImage (Format_Mono).

    The width is ``dots`` if given (a printer whose head is narrower, e.g. 512 dots at 180 dpi),
    else 576 dots for 80 mm and 384 for 58 mm; the height follows the content. Long names and
    materials wrap (Chinese per character), nothing is clipped. Black pixels are ink. Creates a
    QGuiApplication if needed; raises TicketError for bad paper sizes or a missing CJK font.
    """
    default_width = dots_for_paper(paper_mm)
    width = dots if dots is not None else default_width
    sizes = _SIZES[paper_mm]
    if not 256 <= width <= 1024:
        raise _invalid(f"打印宽度超出范围（256–1024 点）：{width}", f"dot width out of range 256-1024: {width}")
    if content.large_print:  # 适老化: every line but the number and the QR code ×1.4 (it already is large)
        sizes = replace(sizes, hall=round(sizes.hall * 1.3), hall2=round(sizes.hall2 * 1.3),
                        caption=round(sizes.caption * 1.4), service=round(sizes.service * 1.3),
                        service2=round(sizes.service2 * 1.4), info=round(sizes.info * 1.4),
                        info2=round(sizes.info2 * 1.4), body=round(sizes.body * 1.4),
                        small=round(sizes.small * 1.4))
    sheet = _Sheet(width, sizes, cjk_font_family())
    c = content
    s = sizes

    hall = c.pair(*c.hall_name)
    sheet.pair(hall[0], hall[1], s.hall, s.hall2, bold=True)
    sheet.rule(thickness=3)
    caption = c.pair("您的号码", "Your number")
    sheet.text(f"{caption[0]}  {caption[1]}", s.caption)
    sheet.space(s.gap)
    sheet.number(c.label)
    sheet.space(s.gap * 1.5)
    if c.priority_name_zh or c.priority_name_en:
        zh = f"绿色通道 · {c.priority_name_zh or c.priority_name_en}"
        en = f"Priority · {c.priority_name_en or c.priority_name_zh}"
        first, second = c.pair(zh, en)
        sheet.text([(first, True), ("\u2028", False), (second, False)], s.body, inverted=True)
        sheet.space(s.gap)
    if c.appointment_mark is not None:  # the same white-on-black badge: the counter sees it at a glance
        first, second = c.pair(*c.appointment_mark)
        sheet.text([(first, True), ("\u2028", False), (second, False)], s.body, inverted=True)
        sheet.space(s.gap)
    service = c.pair(c.service_name_zh, c.service_name_en)
    sheet.pair(service[0], service[1], s.service, s.service2, bold=True)
    note = c.pair(c.description_zh, c.description_en)[0].strip()
    if note:  # fees, eligibility (办理须知): in the ticket's language, when the hall's text is short
        sheet.space(s.gap / 2)
        sheet.text(note, s.small, align=Qt.AlignmentFlag.AlignLeft)
    sheet.rule(dashed=True)
    for zh, en in ((c.ahead_zh, c.ahead_en), (c.wait_zh, c.wait_en)):
        first, second = c.pair(zh, en)
        sheet.text([(first, True), ("  /  ", False), (second, False)], s.info)
    sheet.space(s.gap / 2)
    issued = c.pair("取号时间", "Issued")
    sheet.text(f"{issued[0]} {issued[1]}  {c.issued_local}", s.small)
    if c.promised_zh is not None and c.promised_en is not None:
        first, second = c.pair(c.promised_zh, c.promised_en)
        sheet.text(first, s.small, bold=True)
        sheet.text(second, s.small)
    if c.materials:
        sheet.rule(dashed=True)
        heading = c.pair("请备齐以下材料", "Please bring")
        sheet.text([(heading[0], True), ("  " + heading[1], False)], s.body,
                   align=Qt.AlignmentFlag.AlignLeft)
        for i, (zh, en) in enumerate(c.materials, start=1):
            prefix = f"{i}. "
            sheet.text(prefix + c.pair(zh, en)[0], s.body, align=Qt.AlignmentFlag.AlignLeft, hanging=prefix)
    sheet.rule(dashed=True)
    sheet.qr(c.qr_payload)
    footer = c.pair(c.footer_zh, c.footer_en)
    if footer[0].strip():
        sheet.text(footer[0], s.small)
    if footer[1].strip():
        sheet.text(footer[1], s.small)
    return _threshold(sheet.paint())


def _gray_to_pil(gray: QImage) -> Image.Image:
    """Copy a Grayscale8 QImage into a PIL "L" image (rows may be padded in the QImage)."""
    data = bytes(gray.constBits())[: gray.bytesPerLine() * gray.height()]
    return Image.frombuffer("L", (gray.width(), gray.height()), data, "raw", "L", gray.bytesPerLine(), 1)


def _threshold(gray: QImage) -> QImage:
    bw = _gray_to_pil(gray).point(_MONO_LUT, "1")
    mono = QImage(bw.tobytes(), bw.width, bw.height, (bw.width + 7) // 8, QImage.Format.Format_Mono)
    mono.setColorTable([QColor(0, 0, 0).rgba(), QColor(255, 255, 255).rgba()])  # PIL "1": bit set = white
    return mono.copy()  # detach from the Python bytes buffer


def qimage_to_pil(image: QImage) -> Image.Image:
    """Convert a QImage to a PIL 1-bit ("1") image of the same size: white paper, black ink.

    A Format_Mono image from render_ticket is copied bit for bit (its packing is PIL's); any other
    format goes through grayscale and the ticket threshold.
    """
    black, white = QColor(0, 0, 0).rgba(), QColor(255, 255, 255).rgba()
    if image.format() == QImage.Format.Format_Mono and image.colorTable() in ([black, white], [white, black]):
        data = bytes(image.constBits())[: image.bytesPerLine() * image.height()]
        bw = Image.frombuffer("1", (image.width(), image.height()), data, "raw", "1", image.bytesPerLine(), 1)
        if image.colorTable()[1] == black:  # bit set = ink: PIL's "1" means white, so flip
            bw = bw.point(lambda v: 255 - v)
        return bw
    gray = image.convertToFormat(QImage.Format.Format_Grayscale8)
    return _gray_to_pil(gray).point(_MONO_LUT, "1")
