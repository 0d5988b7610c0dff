"""Printing tickets on ESC/POS thermal printers: encoding, backends, status.

:func:`encode_ticket` turns a :class:`~kiosk.ticket.TicketContent` into ESC/POS bytes with
python-escpos' ``Dummy`` printer, in one of two modes:

* ``raster`` (default): the ticket laid out by :func:`kiosk.ticket.render_ticket`, sent as a
  ``GS v 0`` bit image, then a cut. Looks the same on every printer: no font ROM or code page involved.
* ``text``: the printer's own fonts. Chinese lines are wrapped in ``FS &`` ... ``FS .`` and encoded
  as GB18030 by this module (python-escpos' ``text()`` sends CJK raw with no ``FS &``, and loses
  full-width punctuation); the number is enlarged with ``GS !``; the QR code is the printer's native
  ``GS ( k`` symbol. Needs a printer with a Chinese font (most mainland-market models have one).

:class:`TicketPrinter` sends the bytes through one backend: ``file`` (append to a file, or one file
per ticket in a directory: the stand-in for a printer in tests and demos), ``network`` (raw TCP,
usually port 9100), ``usb``, ``serial`` or ``cups``, using python-escpos' printer classes. Before each
ticket it asks the printer for its status (``DLE EOT``), so a paper-out or open cover is reported
before a citizen walks away with nothing. Every failure is a :class:`PrinterError` with a stable
code: PRINTER_OFFLINE, PAPER_OUT, COVER_OPEN, PRINTER_IO or PRINTER_CONFIG.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import socket
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from queuehall.kiosk.escpos_setup import prepare_escpos

# Before escpos is imported: its capabilities pickle in a per-user folder, built atomically, so kiosks
# starting together never read a half-written one (kiosk/escpos_setup.py).
prepare_escpos()

from escpos.capabilities import CAPABILITIES  # noqa: E402
from escpos.constants import RT_STATUS, RT_STATUS_ONLINE, RT_STATUS_PAPER  # noqa: E402
from escpos.escpos import Escpos  # noqa: E402
from escpos.exceptions import DeviceNotFoundError  # noqa: E402
from escpos.printer import CupsPrinter, Dummy, Network, Serial, Usb  # noqa: E402
from queuehall.kiosk.ticket import PAPER_DOTS, TicketContent, qimage_to_pil, render_ticket  # noqa: E402

from queuehall.errors import QueuehallError  # noqa: E402

BACKENDS = ("file", "network", "usb", "serial", "cups")
MODES = ("raster", "text")

PRINTER_OFFLINE = "PRINTER_OFFLINE"
PAPER_OUT = "PAPER_OUT"
COVER_OPEN = "COVER_OPEN"
PRINTER_IO = "PRINTER_IO"
PRINTER_CONFIG = "PRINTER_CONFIG"

ESC = b"\x1b"
GS = b"\x1d"
FS = b"\x1c"
FS_CHINESE_ON = FS + b"&"
FS_CHINESE_OFF = FS + b"."
RASTER_BAND = 960
RT_STATUS_OFFLINE_CAUSE = RT_STATUS + b"\x02"  # DLE EOT 2: cover open, paper-end stop, error

#: The file backend's test hooks: create ``<path><suffix>`` and the file printer reports that state.
SENTINEL_PAPER_OUT = ".paperout"
SENTINEL_NEAR_END = ".nearend"
SENTINEL_COVER_OPEN = ".coveropen"


class PrinterError(QueuehallError):
    """A ticket could not be printed, or a printer could not be configured or reached.

    ``code`` is one of PRINTER_OFFLINE, PAPER_OUT, COVER_OPEN, PRINTER_IO, PRINTER_CONFIG;
    ``zh`` and ``en`` are messages a person can act on.
    """

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(code, zh, en)


def _config_error(zh: str, en: str) -> PrinterError:
    return PrinterError(PRINTER_CONFIG, f"打印机配置错误：{zh}", f"printer config: {en}")


# --------------------------------------------------------------------------------------------------
# Configuration


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass(frozen=True, kw_only=True)
class PrinterConfig:
    """Where and how tickets are printed. Constructing one validates it (PrinterError PRINTER_CONFIG).

    ``backend`` picks the parameters that matter: file -> ``path`` (a file to append to, or a
    directory for one file per ticket); network -> ``host``, ``port``, ``timeout`` (seconds, connect
    and send); usb -> ``usb_vendor_id``, ``usb_product_id`` (and endpoints); serial ->
    ``serial_device``, ``baudrate``; cups -> ``cups_printer`` (None = the CUPS default printer).
    ``profile`` is a python-escpos printer profile name (None = generic). ``status_timeout`` bounds
    the wait for each status reply; ``check_status`` asks for status before every ticket.
    """

    backend: str
    mode: str = "raster"
    paper_mm: int = 80
    profile: str | None = None
    path: str | None = None
    host: str | None = None
    port: int = 9100
    timeout: float = 5.0
    usb_vendor_id: int | None = None
    usb_product_id: int | None = None
    usb_in_ep: int = 0x82
    usb_out_ep: int = 0x01
    serial_device: str | None = None
    baudrate: int = 9600
    cups_printer: str | None = None
    status_timeout: float = 0.5
    check_status: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise _config_error(f"backend 必须是 {'/'.join(BACKENDS)} 之一：{self.backend!r}",
                                f"backend must be one of {', '.join(BACKENDS)}: {self.backend!r}")
        if self.mode not in MODES:
            raise _config_error(f"mode 必须是 raster 或 text：{self.mode!r}",
                                f"mode must be 'raster' or 'text': {self.mode!r}")
        if not _is_int(self.paper_mm) or self.paper_mm not in PAPER_DOTS:
            raise _config_error(f"paper_mm 只能是 80 或 58：{self.paper_mm!r}",
                                f"paper_mm must be 80 or 58: {self.paper_mm!r}")
        if self.profile is not None and self.profile not in CAPABILITIES["profiles"]:
            raise _config_error(f"未知的打印机型号配置 profile：{self.profile!r}",
                                f"unknown python-escpos profile: {self.profile!r}")
        for name in ("timeout", "status_timeout"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 < value <= 120:
                raise _config_error(f"{name} 必须是 0–120 秒之间的数：{value!r}",
                                    f"{name} must be a number of seconds in (0, 120]: {value!r}")
        if not isinstance(self.check_status, bool):
            raise _config_error("check_status 必须是 true 或 false", "check_status must be true or false")
        if self.backend == "file" and not (isinstance(self.path, str) and self.path.strip()):
            raise _config_error("file 后端需要 path（文件或目录）",
                                "the file backend needs path (a file or a directory)")
        if self.backend == "network":
            if not (isinstance(self.host, str) and self.host.strip()):
                raise _config_error("network 后端需要 host（打印机地址）",
                                    "the network backend needs host (the printer's address)")
            if not _is_int(self.port) or not 1 <= self.port <= 65535:
                raise _config_error(f"port 必须是 1–65535 的整数：{self.port!r}",
                                    f"port must be an integer 1-65535: {self.port!r}")
        if self.backend == "usb":
            for name in ("usb_vendor_id", "usb_product_id"):
                value = getattr(self, name)
                if not _is_int(value) or not 0 < value <= 0xFFFF:
                    raise _config_error(f"usb 后端需要 {name}（1–0xFFFF 的整数）：{value!r}",
                                        f"the usb backend needs {name}, an integer 1-0xFFFF: {value!r}")
            for name in ("usb_in_ep", "usb_out_ep"):
                value = getattr(self, name)
                if not _is_int(value) or not 0 <= value <= 0xFF:
                    raise _config_error(f"{name} 必须是 0–0xFF 的整数：{value!r}",
                                        f"{name} must be an integer 0-0xFF: {value!r}")
        if self.backend == "serial":
            if not (isinstance(self.serial_device, str) and self.serial_device.strip()):
                raise _config_error("serial 后端需要 serial_device（如 /dev/ttyUSB0）",
                                    "the serial backend needs serial_device (e.g. /dev/ttyUSB0)")
            if not _is_int(self.baudrate) or not 300 <= self.baudrate <= 921600:
                raise _config_error(f"baudrate 必须是 300–921600 的整数：{self.baudrate!r}",
                                    f"baudrate must be an integer 300-921600: {self.baudrate!r}")
        if self.cups_printer is not None and not (isinstance(self.cups_printer, str)
                                                  and self.cups_printer.strip()):
            raise _config_error("cups_printer 必须是非空字符串或省略",
                                "cups_printer must be a non-empty string or omitted")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PrinterConfig:
        """Build a config from a mapping (e.g. the ``[printer]`` table of a TOML file).

        USB ids and endpoints may be integers or hex strings ("0x0416"). Unknown keys, missing
        required keys and bad values raise PrinterError(PRINTER_CONFIG) naming the key.
        """
        if not isinstance(d, Mapping):
            raise _config_error("打印机配置必须是键值表", "the printer config must be a table/mapping")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise _config_error(f"未知的配置项：{', '.join(map(str, unknown))}",
                                f"unknown keys: {', '.join(map(str, unknown))}")
        if "backend" not in d:
            raise _config_error("缺少 backend", "missing key: backend")
        values = dict(d)
        for name in ("usb_vendor_id", "usb_product_id", "usb_in_ep", "usb_out_ep"):
            value = values.get(name)
            if isinstance(value, str):
                try:
                    values[name] = int(value, 0)
                except ValueError:
                    raise _config_error(f"{name} 不是有效的数字：{value!r}",
                                        f"{name} is not a number: {value!r}") from None
        return cls(**values)

    @property
    def dots(self) -> int:
        """The dot width tickets are rendered at: the paper's, narrowed to the profile's head if smaller."""
        return printer_dots(self.paper_mm, self.profile)


def printer_dots(paper_mm: int, profile: str | None = None) -> int:
    """Return the dot width for ``paper_mm`` paper, or the profile's media width if that is narrower.

    E.g. an Epson TM-T88V (180 dpi) prints 512 dots on 80 mm paper, not 576.
    """
    dots = PAPER_DOTS[paper_mm]
    if profile:
        pixels = CAPABILITIES["profiles"][profile].get("media", {}).get("width", {}).get("pixels")
        if _is_int(pixels) and 256 <= pixels < dots:
            dots = pixels
    return dots


# --------------------------------------------------------------------------------------------------
# Encoding


def _dummy(profile: str | None, dots: int) -> Dummy:
    """A python-escpos Dummy whose profile knows the media width (so image() checks it, and does not
    print a warning to stdout for the generic profile's "Unknown" width)."""
    printer = Dummy(profile=profile)
    data = copy.deepcopy(printer.profile.profile_data)  # per instance: the profile class is shared
    data.setdefault("media", {}).setdefault("width", {})["pixels"] = dots
    printer.profile.profile_data = data
    return printer


def encode_ticket(content: TicketContent, mode: str = "raster", paper_mm: int = 80,
                  profile: str | None = None) -> bytes:
    """Return the ESC/POS bytes that print ``content``: ``ESC @``, the ticket, one cut.

    ``mode`` "raster" renders the ticket (kiosk.ticket.render_ticket) and sends it as a ``GS v 0``
    image; "text" uses the printer's fonts with ``FS &``/GB18030 for Chinese, ``GS !`` for the big
    number and a native ``GS ( k`` QR code. ``profile`` is a python-escpos profile name; a profile
    without a cutter yields no cut command. Raises PrinterError(PRINTER_CONFIG) for a bad mode, paper
    width or profile, and kiosk.ticket.TicketError for content that cannot be laid out.
    """
    if mode not in MODES:
        raise _config_error(f"mode 必须是 raster 或 text：{mode!r}", f"mode must be 'raster' or 'text': {mode!r}")
    if paper_mm not in PAPER_DOTS:
        raise _config_error(f"paper_mm 只能是 80 或 58：{paper_mm!r}", f"paper_mm must be 80 or 58: {paper_mm!r}")
    if profile is not None and profile not in CAPABILITIES["profiles"]:
        raise _config_error(f"未知的打印机型号配置 profile：{profile!r}",
                            f"unknown python-escpos profile: {profile!r}")
    dots = printer_dots(paper_mm, profile)
    printer = _dummy(profile, dots)
    printer.hw("INIT")
    if mode == "raster":
        image = qimage_to_pil(render_ticket(content, paper_mm, dots=dots))
        # Bands of at most 960 rows (python-escpos' default fragment height; some printers' receive
        # buffers need it). Splitting here rather than in image() converts each row only once.
        for top in range(0, image.height, RASTER_BAND):
            band = image.crop((0, top, image.width, min(top + RASTER_BAND, image.height)))
            printer.image(band, impl="bitImageRaster", fragment_height=RASTER_BAND)
    else:
        _encode_text(printer, content, dots)
    printer.cut()
    return printer.output


def _cell_width(ch: str) -> int:
    """Columns a character takes in the printer's font: 2 for anything GB18030 encodes in >1 byte.

    In Chinese mode the printer prints every multi-byte character from its 24x24 (double-width) font,
    including ambiguous-width ones like "·" and "…".
    """
    if ch.isascii():
        return 1
    return 1 if unicodedata.east_asian_width(ch) == "H" else 2


_NO_LINE_START = set("，。、；：！？）》」』】〕…—,.;:!?)")


def wrap_columns(text: str, cols: int, indent: int = 0) -> list[str]:
    """Greedy-wrap ``text`` to ``cols`` printer columns (CJK = 2 columns, breaks anywhere; Latin breaks
    at spaces, words longer than a line are split). Continuation lines start with ``indent`` spaces."""
    lines: list[str] = []
    line, width = "", 0

    def flush() -> None:
        nonlocal line, width
        lines.append(line.rstrip())
        line, width = " " * indent, indent

    for token in re.findall(r"[\x21-\x7e]+|\s+|.", text):
        if token.isspace():
            if line.strip() and width < cols:
                line, width = line + " ", width + 1
            continue
        tw = sum(_cell_width(ch) for ch in token)
        if width + tw <= cols:
            line, width = line + token, width + tw
            continue
        if token.isascii() and tw <= cols - indent and line.strip():
            flush()  # move the whole word to the next line
            line, width = line + token, width + tw
            continue
        for ch in token:  # Chinese, or a word longer than a line: break between characters
            cw = _cell_width(ch)
            if width + cw > cols and line.strip():
                carry = ""
                if ch in _NO_LINE_START and len(line.strip()) > 1:
                    carry, line = line[-1], line[:-1]  # keep "，" etc. off the start of a line
                flush()
                line, width = line + carry, width + sum(_cell_width(x) for x in carry)
            line, width = line + ch, width + cw
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _text_line(text: str) -> bytes:
    """One printed line: ASCII as is; anything else as GB18030 between FS & and FS . (Chinese mode)."""
    if text.isascii():
        return text.encode("ascii") + b"\n"
    return FS_CHINESE_ON + text.encode("gb18030") + FS_CHINESE_OFF + b"\n"


def _size(width: int, height: int) -> bytes:
    """GS ! n: character width/height multipliers 1-8 (applies to Chinese characters too)."""
    return GS + b"!" + bytes(((width - 1) << 4 | (height - 1),))


def _encode_text(p: Escpos, c: TicketContent, dots: int) -> None:
    cols = dots // 12  # Font A is 12 dots wide (Chinese characters 24)
    out: list[bytes] = []

    def para(text: str, *, mult: int = 1, indent: int = 0) -> None:
        for line in wrap_columns(text, cols // mult, indent):
            out.append(_text_line(line))

    bold_on, bold_off = ESC + b"E\x01", ESC + b"E\x00"
    center, left = ESC + b"a\x01", ESC + b"a\x00"
    rule = ("-" * cols).encode("ascii") + b"\n"

    out.append(center)
    hall = c.pair(*c.hall_name)
    # Double width only when the name fits on one line that way: "某某市政务服务中" + "心" looks broken.
    wide = 2 if sum(_cell_width(ch) for ch in hall[0]) <= cols // 2 else 1
    out += [bold_on, _size(wide, 2)]
    para(hall[0], mult=wide)
    out += [_size(1, 1), bold_off]
    if hall[1].strip() and hall[1] != hall[0]:
        para(hall[1])
    out.append(rule)
    caption = c.pair("您的号码", "Your number")
    para(f"{caption[0]}  {caption[1]}")
    factor = max(1, min(6, dots // (12 * len(c.label))))
    out += [bold_on, _size(factor, factor), c.label.encode("ascii") + b"\n", _size(1, 1), bold_off]
    if c.priority_name_zh or c.priority_name_en:
        first, second = c.pair(f"绿色通道 · {c.priority_name_zh or c.priority_name_en}",
                               f"Priority · {c.priority_name_en or c.priority_name_zh}")
        out += [GS + b"B\x01", bold_on]  # white on black, like the raster ticket's badge
        para(first)
        out.append(bold_off)
        para(second)
        out.append(GS + b"B\x00")
    if c.appointment_mark is not None:
        first, second = c.pair(*c.appointment_mark)
        out += [GS + b"B\x01", bold_on]
        para(first)
        out.append(bold_off)
        para(second)
        out.append(GS + b"B\x00")
    service = c.pair(c.service_name_zh, c.service_name_en)
    out += [bold_on, _size(1, 2)]
    para(service[0])
    out += [_size(1, 1), bold_off]
    if service[1].strip() and service[1] != service[0]:
        para(service[1])
    note = c.pair(c.description_zh, c.description_en)[0].strip()
    if note:  # fees, eligibility (办理须知), when short
        out.append(left)
        para(note)
        out.append(center)
    out.append(rule)
    # 适老化 large print: the lines a citizen reads again (ahead, wait, materials) in double height.
    tall = _size(1, 2) if c.large_print else b""
    out += [bold_on, tall]
    for zh, en in ((c.ahead_zh, c.ahead_en), (c.wait_zh, c.wait_en)):
        first, second = c.pair(zh, en)
        para(f"{first} / {second}")
    out += [_size(1, 1), bold_off]
    issued = c.pair("取号时间", "Issued")
    para(f"{issued[0]} {issued[1]} {c.issued_local}")
    if c.promised_zh is not None and c.promised_en is not None:
        first, second = c.pair(c.promised_zh, c.promised_en)
        para(first)
        para(second)
    if c.materials:
        out += [rule, left, bold_on]
        heading = c.pair("请备齐以下材料", "Please bring")
        para(f"{heading[0]} {heading[1]}:")
        out.append(bold_off)
        out.append(tall)
        for i, (zh, en) in enumerate(c.materials, start=1):
            prefix = f"{i}. "
            para(prefix + c.pair(zh, en)[0], indent=len(prefix))
        out.append(_size(1, 1))
    out.append(rule)
    p._raw(b"".join(out))
    p.set(align="center")  # native QR cannot be centred by qr() itself (docs/stack-check.md §4)
    p.qr(c.qr_payload, native=True, size=6 if dots >= 512 else 5, ec=1)  # ec=1: level M
    out = [b"\n"]
    footer = c.pair(c.footer_zh, c.footer_en)
    for text in footer:
        if text.strip():
            para(text)
    p._raw(b"".join(out))


# --------------------------------------------------------------------------------------------------
# Status and results


@dataclass(frozen=True)
class PrinterStatus:
    """What the printer reported. ``checked`` is False when the printer did not answer the status
    query (online is then assumed). ``error_code`` is None when a ticket can be printed."""

    online: bool
    paper_ok: bool = True
    paper_near_end: bool = False
    cover_open: bool = False
    checked: bool = True
    error_code: str | None = None
    error_zh: str | None = None
    error_en: str | None = None

    @property
    def ready(self) -> bool:
        """True when a ticket can be printed now."""
        return self.error_code is None

    @property
    def error(self) -> str | None:
        """The error for people, "中文 / English", or None."""
        return None if self.error_code is None else f"{self.error_zh} / {self.error_en}"

    @classmethod
    def failed(cls, err: PrinterError) -> PrinterStatus:
        """The status of a printer that could not be reached or used."""
        return cls(online=False, paper_ok=True, checked=False, error_code=err.code,
                   error_zh=err.zh, error_en=err.en)

    @classmethod
    def from_flags(cls, *, online: bool, paper_out: bool, near_end: bool, cover_open: bool,
                   where: str) -> PrinterStatus:
        """Derive the error (cover open, then paper out, then offline) from the printer's flags."""
        code = zh = en = None
        if cover_open:
            code, zh, en = COVER_OPEN, f"打印机 {where} 的纸仓盖未合上", f"printer {where}: the cover is open"
        elif paper_out:
            code, zh, en = PAPER_OUT, f"打印机 {where} 缺纸，请更换纸卷", f"printer {where} is out of paper"
        elif not online:
            code, zh, en = PRINTER_OFFLINE, f"打印机 {where} 处于离线状态", f"printer {where} is offline"
        return cls(online=online, paper_ok=not paper_out, paper_near_end=near_end, cover_open=cover_open,
                   error_code=code, error_zh=zh, error_en=en)


@dataclass(frozen=True)
class PrintResult:
    """One printed ticket: what was sent where, and how long encoding and sending took."""

    label: str
    backend: str
    mode: str
    bytes_sent: int
    destination: str
    encode_ms: float
    send_ms: float
    status: PrinterStatus


# --------------------------------------------------------------------------------------------------
# Backends


class _FileBackend:
    """Appends each ticket to a file, or writes one ``<label>-<timestamp>.bin`` per ticket into a
    directory. Status: writable or not, plus the sentinel files that simulate paper out etc."""

    def __init__(self, config: PrinterConfig, now: Callable[[], datetime]) -> None:
        self.path = Path(str(config.path).rstrip("/") or "/")
        self.now = now
        self.where = str(self.path)

    def connect(self) -> None:
        status = self.query()
        if status.error_code in (PRINTER_IO, PRINTER_OFFLINE):
            raise PrinterError(str(status.error_code), str(status.error_zh), str(status.error_en))

    def close(self) -> None:
        pass

    def _sentinel(self, suffix: str) -> bool:
        return Path(f"{self.path}{suffix}").exists()

    def query(self) -> PrinterStatus:
        directory = self.path if self.path.is_dir() else self.path.parent
        if not directory.is_dir():
            return PrinterStatus.failed(PrinterError(
                PRINTER_IO, f"文件打印机的目录不存在：{directory}",
                f"file printer: directory does not exist: {directory}"))
        target = directory if self.path.is_dir() else self.path
        writable = os.access(directory, os.W_OK) and (not self.path.exists() or os.access(target, os.W_OK))
        if not writable:
            return PrinterStatus.failed(PrinterError(
                PRINTER_IO, f"文件打印机无法写入：{target}", f"file printer: not writable: {target}"))
        return PrinterStatus.from_flags(online=True, paper_out=self._sentinel(SENTINEL_PAPER_OUT),
                                        near_end=self._sentinel(SENTINEL_NEAR_END),
                                        cover_open=self._sentinel(SENTINEL_COVER_OPEN), where=self.where)

    def send(self, data: bytes, label: str) -> str:
        try:
            if self.path.is_dir():
                stem = f"{re.sub(r'[^A-Za-z0-9]', '_', label)}-{self.now():%Y%m%dT%H%M%S%f}"
                for n in range(1000):
                    target = self.path / (f"{stem}.bin" if n == 0 else f"{stem}-{n}.bin")
                    try:
                        with open(target, "xb") as f:  # "x": never overwrite an earlier ticket
                            f.write(data)
                        return str(target)
                    except FileExistsError:
                        continue
                raise FileExistsError(f"too many tickets named {stem}")
            with open(self.path, "ab") as f:
                f.write(data)
            return str(self.path)
        except OSError as e:
            raise PrinterError(PRINTER_IO, f"写入文件打印机失败：{self.path}（{e.strerror or e}）",
                               f"file printer: cannot write {self.path} ({e.strerror or e})") from e


class _DeviceBackend:
    """Network, USB and serial printers: a python-escpos printer object kept open between tickets,
    reopened after any I/O error. Status uses python-escpos' ``query_status`` (DLE EOT 1, 2, 4)."""

    def __init__(self, config: PrinterConfig) -> None:
        self.config = config
        self.printer: Escpos | None = None
        if config.backend == "network":
            self.where = f"{config.host}:{config.port}"
        elif config.backend == "usb":
            self.where = f"USB {config.usb_vendor_id:04x}:{config.usb_product_id:04x}"
        else:
            self.where = str(config.serial_device)

    def _make(self) -> Escpos:
        cfg = self.config
        try:
            if cfg.backend == "network":
                return Network(host=cfg.host, port=cfg.port, timeout=cfg.timeout, profile=cfg.profile)
            if cfg.backend == "usb":
                return Usb(idVendor=cfg.usb_vendor_id, idProduct=cfg.usb_product_id,
                           timeout=int(cfg.timeout * 1000), in_ep=cfg.usb_in_ep, out_ep=cfg.usb_out_ep,
                           profile=cfg.profile)
            return Serial(devfile=cfg.serial_device, baudrate=cfg.baudrate, timeout=cfg.timeout,
                          profile=cfg.profile)
        except RuntimeError as e:  # python-escpos raises this when pyusb / pyserial is not installed
            raise _config_error(f"{cfg.backend} 后端缺少依赖库（pip install 'python-escpos[usb,serial]'）",
                                f"the {cfg.backend} backend's library is missing "
                                f"(pip install 'python-escpos[usb,serial]'): {e}") from e

    def connect(self) -> None:
        if self.printer is not None:
            return
        printer = self._make()
        try:
            printer.open()
        except DeviceNotFoundError as e:
            raise PrinterError(PRINTER_OFFLINE, f"无法连接打印机 {self.where}：{_first_line(e)}",
                               f"cannot reach printer {self.where}: {_first_line(e)}") from e
        except ValueError as e:  # pyusb's NoBackendError: libusb itself is missing
            raise _config_error(f"USB 后端缺少 libusb（apt-get install libusb-1.0-0）：{e}",
                                f"the USB backend needs libusb (apt-get install libusb-1.0-0): {e}") from e
        except OSError as e:
            raise PrinterError(PRINTER_OFFLINE, f"无法连接打印机 {self.where}：{e}",
                               f"cannot reach printer {self.where}: {e}") from e
        self.printer = printer

    def close(self) -> None:
        printer, self.printer = self.printer, None
        if printer is not None:
            with contextlib.suppress(Exception):  # closing a dead connection must not mask the real error
                printer.close()

    def _drain(self) -> None:
        """Discard bytes the printer sent unasked (late status replies); detect a closed connection."""
        assert self.printer is not None
        device = self.printer.device
        if isinstance(device, socket.socket):
            device.setblocking(False)
            try:
                while True:
                    chunk = device.recv(256)
                    if not chunk:
                        raise ConnectionResetError("the printer closed the connection")
            except BlockingIOError:
                pass
            finally:
                device.settimeout(self.config.timeout)
        elif hasattr(device, "reset_input_buffer"):
            device.reset_input_buffer()

    def _ask(self, command: bytes) -> int | None:
        """Send one DLE EOT query and return the status byte, or None if the printer did not answer."""
        assert self.printer is not None
        device = self.printer.device
        wait = self.config.status_timeout
        if isinstance(device, socket.socket):
            device.settimeout(wait)
        elif hasattr(device, "inter_byte_timeout"):  # pyserial: read(16) would wait for 16 bytes
            device.timeout, device.inter_byte_timeout = wait, 0.05
        elif hasattr(device, "default_timeout"):  # pyusb
            device.default_timeout = int(wait * 1000)
        try:
            reply = bytes(self.printer.query_status(command))
        except TimeoutError:
            return None
        except OSError as e:
            if "timeout" in type(e).__name__.lower() or getattr(e, "errno", None) == 110:
                return None  # pyusb's USBTimeoutError
            raise
        finally:
            if isinstance(device, socket.socket):
                device.settimeout(self.config.timeout)
            elif hasattr(device, "inter_byte_timeout"):
                device.timeout, device.inter_byte_timeout = self.config.timeout, None
        if not reply:
            return None
        byte = reply[-1]
        # Epson status bytes have bits 1 and 4 set and bits 0 and 7 clear; anything else is not a reply.
        return byte if byte & 0x93 == 0x12 else None

    def query(self) -> PrinterStatus:
        for attempt in (1, 2):
            try:
                self.connect()
                self._drain()
                s1 = self._ask(RT_STATUS_ONLINE)
                if s1 is None:
                    return PrinterStatus(online=True, checked=False)  # e.g. a raw TCP forwarder
                s2 = self._ask(RT_STATUS_OFFLINE_CAUSE) or 0x12
                s4 = self._ask(RT_STATUS_PAPER) or 0x12
            except PrinterError as e:
                return PrinterStatus.failed(e)
            except OSError as e:
                self.close()
                if attempt == 1:
                    continue  # the printer may have restarted: reconnect once
                return PrinterStatus.failed(PrinterError(
                    PRINTER_OFFLINE, f"打印机 {self.where} 连接中断：{e}",
                    f"lost the connection to printer {self.where}: {e}"))
            return PrinterStatus.from_flags(
                online=not s1 & 0x08, cover_open=bool(s2 & 0x04),
                paper_out=bool(s4 & 0x60) or bool(s2 & 0x20), near_end=bool(s4 & 0x0C), where=self.where)
        raise AssertionError("unreachable")

    def send(self, data: bytes, label: str) -> str:
        self.connect()
        assert self.printer is not None
        try:
            self.printer._raw(data)
        except OSError as e:
            self.close()
            raise PrinterError(PRINTER_IO, f"向打印机 {self.where} 发送票号 {label} 时出错：{e}",
                               f"error sending ticket {label} to printer {self.where}: {e}") from e
        return self.where


class _CupsBackend:
    """A CUPS queue with a raw (ESC/POS pass-through) driver; one CUPS job per ticket."""

    def __init__(self, config: PrinterConfig) -> None:
        self.config = config
        self.where = f"CUPS {config.cups_printer or '(default)'}"
        self.printer: CupsPrinter | None = None

    def connect(self) -> None:
        if self.printer is not None:
            return
        try:
            printer = CupsPrinter(printer_name=self.config.cups_printer or "", profile=self.config.profile)
        except RuntimeError as e:  # python-escpos: pycups is not installed
            raise _config_error("cups 后端需要 pycups（pip install 'queuehall[cups]'，需先装 libcups2-dev）",
                                "the cups backend needs pycups (pip install 'queuehall[cups]', "
                                f"which needs libcups2-dev): {e}") from e
        try:
            printer.open(job_name="queuehall")
        except DeviceNotFoundError as e:
            raise PrinterError(PRINTER_OFFLINE, f"无法连接 {self.where}：{_first_line(e)}",
                               f"cannot reach {self.where}: {_first_line(e)}") from e
        self.printer = printer

    def close(self) -> None:
        self.printer = None

    def query(self) -> PrinterStatus:
        try:
            self.connect()
            assert self.printer is not None
            info = self.printer.printers.get(self.printer.printer_name, {})
        except PrinterError as e:
            return PrinterStatus.failed(e)
        except Exception as e:  # pycups raises its own IPPError / RuntimeError for a dead server
            self.close()
            return PrinterStatus.failed(PrinterError(PRINTER_OFFLINE, f"{self.where} 不可用：{e}",
                                                     f"{self.where} is unavailable: {e}"))
        reasons = " ".join(info.get("printer-state-reasons", []))
        return PrinterStatus.from_flags(
            online=bool(info) and info.get("printer-state") != 5 and "offline" not in reasons,
            paper_out="media-empty" in reasons or "media-needed" in reasons,
            near_end="media-low" in reasons,
            cover_open="cover-open" in reasons or "door-open" in reasons, where=self.where)

    def send(self, data: bytes, label: str) -> str:
        self.connect()
        assert self.printer is not None
        try:
            self.printer.open(job_name=f"queuehall {label}")
            self.printer._raw(data)
            self.printer.close()  # python-escpos submits the CUPS job on close
        except Exception as e:
            self.close()
            raise PrinterError(PRINTER_IO, f"向 {self.where} 提交票号 {label} 失败：{e}",
                               f"could not submit ticket {label} to {self.where}: {e}") from e
        return self.where


def _first_line(e: BaseException) -> str:
    """python-escpos messages are "summary:\\nOS error"; keep them on one line."""
    return " ".join(str(e).split())


# --------------------------------------------------------------------------------------------------
# The printer


class TicketPrinter:
    """The kiosk's ticket printer: one configured backend, status checks, printing.

    ``now`` gives the local time used to name per-ticket files (injectable for tests). Not
    thread-safe: use one instance from one thread (the kiosk's print worker).
    """

    def __init__(self, config: PrinterConfig | None = None, *,
                 now: Callable[[], datetime] = datetime.now) -> None:
        self.now = now
        self.config: PrinterConfig | None = None
        self._backend: _FileBackend | _DeviceBackend | _CupsBackend | None = None
        if config is not None:
            self.open(config)

    def open(self, config: PrinterConfig, *, warm_up: bool = True) -> None:
        """Configure the printer, prepare the encoder and connect to the printer.

        ``warm_up`` encodes one throwaway ticket first: the first render in a process loads fonts and
        costs about 100 ms more than the later ones, which would otherwise land on the first citizen
        (the target is tap -> first byte at the printer within 150 ms). Call from the thread that
        owns the QGuiApplication, or after it exists.

        Raises PrinterError: PRINTER_CONFIG for an unusable configuration (including a backend whose
        library is missing), PRINTER_OFFLINE when the device cannot be reached, PRINTER_IO when a file
        printer's target is not writable. The configuration is kept even then, so status() and
        print_ticket() try again later (the printer may be switched on after the kiosk starts).
        """
        if not isinstance(config, PrinterConfig):
            raise _config_error("open() 需要 PrinterConfig", "open() needs a PrinterConfig")
        self.close()
        self.config = config
        if config.backend == "file":
            self._backend = _FileBackend(config, self.now)
        elif config.backend == "cups":
            self._backend = _CupsBackend(config)
        else:
            self._backend = _DeviceBackend(config)
        if warm_up:
            encode_ticket(self._test_content(config), config.mode, config.paper_mm, config.profile)
        self._backend.connect()

    def close(self) -> None:
        """Release the connection to the printer (safe to call twice)."""
        if self._backend is not None:
            self._backend.close()

    def _require(self) -> tuple[PrinterConfig, _FileBackend | _DeviceBackend | _CupsBackend]:
        if self._backend is None or self.config is None:
            raise _config_error("打印机尚未配置（先调用 open）", "no printer configured (call open() first)")
        return self.config, self._backend

    def status(self) -> PrinterStatus:
        """Ask the printer how it is. Never raises for printer trouble: problems are in the result
        (``error_code``); only a TicketPrinter that was never opened raises PRINTER_CONFIG."""
        _, backend = self._require()
        return backend.query()

    def print_ticket(self, content: TicketContent) -> PrintResult:
        """Print one ticket and return what was sent.

        With ``check_status`` the printer is asked first and PAPER_OUT / COVER_OPEN /
        PRINTER_OFFLINE are raised as PrinterError before anything is sent. A failure while sending
        raises PRINTER_IO (the ticket may be partly printed). Bad content raises TicketError.
        """
        config, backend = self._require()
        status = backend.query() if config.check_status else PrinterStatus(online=True, checked=False)
        if status.error_code is not None:
            raise PrinterError(status.error_code, str(status.error_zh), str(status.error_en))
        t0 = time.perf_counter()
        data = encode_ticket(content, config.mode, config.paper_mm, config.profile)
        t1 = time.perf_counter()
        destination = backend.send(data, content.label)
        t2 = time.perf_counter()
        return PrintResult(label=content.label, backend=config.backend, mode=config.mode,
                           bytes_sent=len(data), destination=destination,
                           encode_ms=(t1 - t0) * 1000, send_ms=(t2 - t1) * 1000, status=status)

    def test_print(self) -> PrintResult:
        """Print a self-test ticket (Chinese and English text, a big number, a QR code) and return
        the result; raises like print_ticket(). For installers checking a new printer."""
        config, _ = self._require()
        return self.print_ticket(self._test_content(config))

    def _test_content(self, config: PrinterConfig) -> TicketContent:
        stamp = self.now().strftime("%Y-%m-%d %H:%M")
        return TicketContent(
            hall_name=("打印机测试页", "Printer test page"), label="T001",
            service_name_zh="中文打印测试：取号凭条",
            service_name_en="Print test: queue ticket", ahead=0, estimated_wait_minutes=0,
            issued_local=stamp, qr_payload=f"queuehall:printer-test:{stamp}",
            materials=(("身份证原件", "ID card (original)"),), promised_days=0,
            footer_zh=f"后端 {config.backend} · {config.mode} · {config.paper_mm} 毫米",
            footer_en=f"backend {config.backend}, mode {config.mode}, paper {config.paper_mm} mm")
