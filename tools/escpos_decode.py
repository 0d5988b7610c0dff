"""A small ESC/POS decoder: what would a printer do with these bytes?

Used by the tests (to check printed tickets without a printer) and by the demo (to turn the file
printer's output back into a picture). :func:`decode` parses the command stream into a
:class:`DecodedTicket`; :func:`decoded_to_png` draws it as a PNG a person can look at.

Understood: ESC @ (init), ESC a (align), ESC E (bold), ESC ! (print mode), ESC - / ESC G / ESC M /
ESC t / ESC 2 / ESC 3 / ESC J / ESC { (attributes that take fixed parameters), ESC d (feed), GS !
(size), GS B (reverse), GS v 0 (raster image), GS ( k (QR store / print), GS ( L (graphics, skipped),
GS V (cut), GS L / GS W / GS h / GS w / GS H / GS f, FS & / FS . (Chinese mode: GB18030 text),
FS ! / FS C / FS - / FS W / FS S, DLE EOT (status queries). Outside Chinese mode bytes >= 0x80 are
read as code page 437, the ESC/POS power-on default. Anything else raises EscposDecodeError with the
offset, because an unknown command's length is unknown and the rest could not be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import qrcode
import qrcode.constants
from PIL import Image

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
_INVERT = bytes(255 - i for i in range(256))
DOT_WIDTH_DEFAULT = 576


class EscposDecodeError(ValueError):
    """Bytes that are not a valid ESC/POS stream (truncated or unknown command at ``offset``)."""

    def __init__(self, offset: int, message: str) -> None:
        self.offset = offset
        super().__init__(f"ESC/POS decode error at byte {offset}: {message}")


@dataclass(frozen=True)
class TextLine:
    """A printed text line with the attributes in force at its first character."""

    text: str
    align: str = "left"  # left / center / right
    bold: bool = False
    width: int = 1  # character width multiplier (GS ! / ESC !)
    height: int = 1
    reverse: bool = False


@dataclass(frozen=True)
class QrCode:
    """A native QR symbol (GS ( k): its payload and module size in dots."""

    payload: str
    module: int
    align: str
    ec: int = 0  # 0-3 = L, M, Q, H


@dataclass(frozen=True)
class RasterImage:
    """A GS v 0 bit image ("1" mode PIL image, black = ink) and the alignment it was printed with."""

    image: Image.Image
    align: str


@dataclass(frozen=True)
class Feed:
    """Blank paper: ``dots`` of feed (ESC d n lines of 24 dots, or ESC J n dots)."""

    dots: int


@dataclass(frozen=True)
class Cut:
    """A paper cut (GS V)."""

    partial: bool


Element = TextLine | QrCode | RasterImage | Feed | Cut


@dataclass
class DecodedTicket:
    """The decoded stream. ``texts`` are the non-empty text lines; ``elements`` everything in order."""

    texts: list[str] = field(default_factory=list)
    qr_payloads: list[str] = field(default_factory=list)
    images: list[Image.Image] = field(default_factory=list)
    cut_count: int = 0
    elements: list[Element] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """All text lines joined with newlines."""
        return "\n".join(self.texts)

    def stacked_image(self) -> Image.Image | None:
        """The raster images stacked top to bottom (a raster ticket printed in bands is one picture
        again), or None when there are none."""
        if not self.images:
            return None
        width = max(im.width for im in self.images)
        out = Image.new("1", (width, sum(im.height for im in self.images)), 1)
        y = 0
        for im in self.images:
            out.paste(im, (0, y))
            y += im.height
        return out


@dataclass
class _State:
    align: str = "left"
    bold: bool = False
    width: int = 1
    height: int = 1
    reverse: bool = False
    chinese: bool = False
    qr_module: int = 3
    qr_ec: int = 0  # 0-3 = L, M, Q, H
    qr_data: bytes = b""


_ALIGN = {0: "left", 1: "center", 2: "right", 48: "left", 49: "center", 50: "right"}
# Commands whose parameters are a fixed number of bytes and which do not change what we track.
_ESC_FIXED = {ord("-"): 1, ord("G"): 1, ord("M"): 1, ord("t"): 1, ord("2"): 0, ord("3"): 1,
              ord("{"): 1, ord("V"): 1, ord("R"): 1, ord(" "): 1, ord("p"): 3, ord("c"): 2,
              ord("U"): 1, ord("S"): 0, ord("L"): 0, ord("="): 1}
_GS_FIXED = {ord("L"): 2, ord("W"): 2, ord("h"): 1, ord("w"): 1, ord("H"): 1, ord("f"): 1,
             ord("b"): 1, ord("P"): 2, ord("a"): 1, ord("I"): 1, ord("r"): 1}
_FS_FIXED = {ord("!"): 1, ord("C"): 1, ord("-"): 1, ord("W"): 1, ord("S"): 2, ord("2"): 0,
             ord("p"): 2}


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.st = _State()
        self.out = DecodedTicket()
        self.line_parts: list[tuple[bytes, bool]] = []  # (bytes, in Chinese mode)
        self.line_attrs: TextLine | None = None

    # -- helpers -----------------------------------------------------------------------------------
    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise EscposDecodeError(self.pos, f"truncated {what}: needs {n} more bytes")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def add_text_byte(self, b: int) -> None:
        if self.line_attrs is None:
            st = self.st
            self.line_attrs = TextLine("", st.align, st.bold, st.width, st.height, st.reverse)
        if self.line_parts and self.line_parts[-1][1] == self.st.chinese:
            self.line_parts[-1] = (self.line_parts[-1][0] + bytes((b,)), self.st.chinese)
        else:
            self.line_parts.append((bytes((b,)), self.st.chinese))

    def end_line(self, *, force: bool = True) -> None:
        if not self.line_parts and not force:
            return
        text = "".join(part.decode("gb18030" if chinese else "cp437", errors="replace")
                       for part, chinese in self.line_parts)
        st = self.st
        attrs = self.line_attrs or TextLine("", st.align, st.bold, st.width, st.height, st.reverse)
        self.out.elements.append(TextLine(text, attrs.align, attrs.bold, attrs.width, attrs.height,
                                          attrs.reverse))
        if text.strip():
            self.out.texts.append(text)
        self.line_parts = []
        self.line_attrs = None

    # -- commands ----------------------------------------------------------------------------------
    def run(self) -> DecodedTicket:
        while self.pos < len(self.data):
            start = self.pos
            b = self.byte("byte")
            if b == ESC:
                self.esc(start)
            elif b == GS:
                self.gs(start)
            elif b == FS:
                self.fs(start)
            elif b == DLE:
                n = self.byte("DLE command")
                if n != 0x04:
                    raise EscposDecodeError(start, f"unknown command DLE 0x{n:02x}")
                self.byte("DLE EOT n")
                self.out.commands.append("DLE EOT")
            elif b == 0x0A:
                self.end_line()
            elif b in (0x0D, 0x00):
                continue
            elif b == 0x09:
                self.add_text_byte(0x20)
            elif b < 0x20:
                raise EscposDecodeError(start, f"unknown control byte 0x{b:02x}")
            else:
                self.add_text_byte(b)
        self.end_line(force=False)
        return self.out

    def esc(self, start: int) -> None:
        c = self.byte("ESC command")
        st = self.st
        name = f"ESC {chr(c)}"
        if c == ord("@"):
            self.st = _State()
        elif c == ord("a"):
            st.align = _ALIGN.get(self.byte("ESC a n"), "left")
        elif c == ord("E"):
            st.bold = bool(self.byte("ESC E n") & 1)
        elif c == ord("!"):
            n = self.byte("ESC ! n")
            st.bold, st.height, st.width = bool(n & 0x08), 2 if n & 0x10 else 1, 2 if n & 0x20 else 1
        elif c == ord("d"):
            n = self.byte("ESC d n")
            self.end_line(force=False)
            self.out.elements.append(Feed(24 * n))
        elif c == ord("J"):
            n = self.byte("ESC J n")
            self.end_line(force=False)
            self.out.elements.append(Feed(n))
        elif c == ord("*"):
            m = self.byte("ESC * m")
            n = int.from_bytes(self.take(2, "ESC * n"), "little")
            self.take(n * (1 if m in (0, 1) else 3), "ESC * image data")
        elif c in _ESC_FIXED:
            self.take(_ESC_FIXED[c], name)
        else:
            raise EscposDecodeError(start, f"unknown command ESC 0x{c:02x}")
        self.out.commands.append(name)

    def gs(self, start: int) -> None:
        c = self.byte("GS command")
        st = self.st
        name = f"GS {chr(c)}"
        if c == ord("!"):
            n = self.byte("GS ! n")
            st.width, st.height = (n >> 4) + 1, (n & 0x0F) + 1
        elif c == ord("B"):
            st.reverse = bool(self.byte("GS B n") & 1)
        elif c == ord("V"):
            m = self.byte("GS V m")
            if m in (65, 66, 97, 98, 103, 104):
                self.byte("GS V n")
            elif m not in (0, 1, 48, 49):
                raise EscposDecodeError(start, f"unknown cut mode GS V {m}")
            self.end_line(force=False)
            self.out.cut_count += 1
            self.out.elements.append(Cut(partial=m in (1, 49, 66, 98, 104)))
        elif c == ord("v"):
            if self.byte("GS v 0") != 0x30:
                raise EscposDecodeError(start, "only GS v 0 raster images are supported")
            self.byte("GS v 0 m")
            x_bytes = int.from_bytes(self.take(2, "GS v 0 width"), "little")
            rows = int.from_bytes(self.take(2, "GS v 0 height"), "little")
            raw = self.take(x_bytes * rows, "GS v 0 image data")
            self.end_line(force=False)
            image = Image.frombytes("1", (x_bytes * 8, rows), raw.translate(_INVERT))  # 1 bit = ink
            self.out.images.append(image)
            self.out.elements.append(RasterImage(image, st.align))
            name = "GS v 0"
        elif c == ord("("):
            fn_class = self.byte("GS ( class")
            length = int.from_bytes(self.take(2, "GS ( length"), "little")
            body = self.take(length, f"GS ( {chr(fn_class)} body")
            name = f"GS ( {chr(fn_class)}"
            if fn_class == ord("k"):
                self.two_d_code(start, body)
        elif c == ord("k"):
            m = self.byte("GS k m")
            if m <= 6:
                while self.byte("GS k data") != 0:
                    pass
            else:
                self.take(self.byte("GS k n"), "GS k data")
        elif c in _GS_FIXED:
            self.take(_GS_FIXED[c], name)
        else:
            raise EscposDecodeError(start, f"unknown command GS 0x{c:02x}")
        self.out.commands.append(name)

    def two_d_code(self, start: int, body: bytes) -> None:
        if len(body) < 2:
            raise EscposDecodeError(start, "GS ( k body too short")
        cn, fn = body[0], body[1]
        if cn != 0x31:  # not QR (PDF417 etc.): ignore
            return
        if fn == 0x43 and len(body) >= 3:  # set module size
            self.st.qr_module = body[2]
        elif fn == 0x45 and len(body) >= 3:  # set error correction level
            self.st.qr_ec = max(0, min(3, body[2] - 48))
        elif fn == 0x50:  # store data: cn fn m d1...dk
            self.st.qr_data = body[3:]
        elif fn == 0x51:  # print the stored symbol
            self.end_line(force=False)
            payload = self.st.qr_data.decode("utf-8", errors="replace")
            self.out.qr_payloads.append(payload)
            self.out.elements.append(QrCode(payload, self.st.qr_module, self.st.align, self.st.qr_ec))

    def fs(self, start: int) -> None:
        c = self.byte("FS command")
        name = f"FS {chr(c)}"
        if c == ord("&"):
            self.st.chinese = True
        elif c == ord("."):
            self.st.chinese = False
        elif c in _FS_FIXED:
            self.take(_FS_FIXED[c], name)
        else:
            raise EscposDecodeError(start, f"unknown command FS 0x{c:02x}")
        self.out.commands.append(name)


def decode(data: bytes) -> DecodedTicket:
    """Parse an ESC/POS byte stream. Raises EscposDecodeError on truncated or unknown commands."""
    return _Decoder(bytes(data)).run()


def _pil_to_qimage(image: Image.Image):  # -> QImage (imported lazily: decoding needs no Qt)
    from PySide6.QtGui import QImage

    gray = image.convert("L")
    return QImage(gray.tobytes(), gray.width, gray.height, gray.width, QImage.Format.Format_Grayscale8).copy()


def decoded_to_png(data: bytes, path: str | Path, width: int | None = None) -> Path:
    """Draw what ``data`` would print and save it as a PNG at ``path``; return the path.

    Raster images are stacked as printed; text lines are drawn with a CJK monospace font at the
    printer's cell size (12x24 dots, Chinese 24x24, times the GS ! multipliers); native QR codes are
    redrawn from their payload; feeds leave paper; a cut is a dashed line. ``width`` is the paper's
    dot width (default: the widest image, else 576). Needs Qt (creates a QGuiApplication if needed).
    """
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import QColor, QFont, QFontDatabase, QImage, QPainter
    from queuehall.kiosk.ticket import cjk_font_family, ensure_qt_app

    decoded = decode(data)
    ensure_qt_app()
    paper = width or max((im.width for im in decoded.images), default=DOT_WIDTH_DEFAULT)
    mono = "WenQuanYi Micro Hei Mono"
    family = mono if mono in QFontDatabase.families() else cjk_font_family()

    def font_for(line: TextLine) -> QFont:
        f = QFont(family)
        f.setPixelSize(22 * line.height)
        f.setBold(line.bold)
        f.setStretch(max(1, min(4000, round(100 * line.width / line.height))))
        return f

    def height_of(el: Element) -> int:
        if isinstance(el, TextLine):
            return 24 * el.height + 6
        if isinstance(el, RasterImage):
            return el.image.height
        if isinstance(el, QrCode):
            return len(_qr_matrix(el.payload, el.ec)) * el.module + 8
        if isinstance(el, Feed):
            return el.dots
        return 12  # cut mark

    total = sum(height_of(el) for el in decoded.elements) + 16
    canvas = QImage(paper, max(total, 16), QImage.Format.Format_Grayscale8)
    canvas.fill(255)
    p = QPainter(canvas)
    p.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
    black = QColor(0, 0, 0)
    y = 8
    for el in decoded.elements:
        h = height_of(el)
        if isinstance(el, TextLine) and el.text:
            p.setFont(font_for(el))
            # The printer's geometry: every character has a cell (12 dots, or 24 for a character that
            # is multi-byte in GB18030) times the width multiplier; lines wider than the paper wrap.
            cells = [(ch, (12 if ch.isascii() else 24) * el.width) for ch in el.text]
            text_w = sum(w for _, w in cells)
            x = {"left": 0, "center": max(0, (paper - text_w) // 2),
                 "right": max(0, paper - text_w)}[el.align]
            if el.reverse:
                p.fillRect(QRectF(0, y, paper, h), black)
                p.setPen(QColor(255, 255, 255))
            else:
                p.setPen(black)
            for ch, w in cells:
                p.drawText(QRectF(x, y, w, h), int(Qt.AlignmentFlag.AlignCenter), ch)
                x += w
        elif isinstance(el, RasterImage):
            x = {"left": 0, "center": (paper - el.image.width) // 2,
                 "right": paper - el.image.width}[el.align]
            p.drawImage(QPointF(max(0, x), y), _pil_to_qimage(el.image))
        elif isinstance(el, QrCode):
            matrix = _qr_matrix(el.payload, el.ec)
            size = len(matrix) * el.module
            x0 = {"left": 0, "center": (paper - size) // 2, "right": paper - size}[el.align]
            for r, row in enumerate(matrix):
                for c, dark in enumerate(row):
                    if dark:
                        p.fillRect(x0 + c * el.module, y + 4 + r * el.module, el.module, el.module, black)
        elif isinstance(el, Cut):
            for x in range(0, paper, 16):
                p.fillRect(x, y + 5, 8, 2, black)
        y += h
    p.end()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not canvas.save(str(out), "PNG"):  # type: ignore[call-overload]  # the stub says bytes; PySide6 wants str
        raise OSError(f"cannot write PNG: {out}")
    return out


_QR_EC = (qrcode.constants.ERROR_CORRECT_L, qrcode.constants.ERROR_CORRECT_M,
          qrcode.constants.ERROR_CORRECT_Q, qrcode.constants.ERROR_CORRECT_H)


def _qr_matrix(payload: str, ec: int) -> list[list[bool]]:
    """The symbol a printer draws for GS ( k (model 2, the requested level), without quiet zone."""
    code = qrcode.QRCode(error_correction=_QR_EC[ec], border=0)
    code.add_data(payload)
    code.make(fit=True)
    return code.get_matrix()


def main(argv: list[str] | None = None) -> int:
    """``python -m queuehall.tools.escpos_decode TICKET.bin OUT.png [--width DOTS]``: draw a printed stream."""
    import argparse

    parser = argparse.ArgumentParser(description="Render ESC/POS bytes (e.g. the file printer's output) to PNG")
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--width", type=int, default=None, help="paper width in dots (576 or 384)")
    args = parser.parse_args(argv)
    try:
        decoded = decode(args.input.read_bytes())
        decoded_to_png(args.input.read_bytes(), args.output, args.width)
    except (OSError, EscposDecodeError) as e:
        print(f"error: {e}")
        return 1
    print(f"{args.output}: {len(decoded.texts)} text lines, {len(decoded.images)} images, "
          f"QR {decoded.qr_payloads}, {decoded.cut_count} cut(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
