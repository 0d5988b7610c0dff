"""The printed ticket: layout, ESC/POS encoding (raster and text), decoding, and printer backends.

Everything here is real: Qt renders under the offscreen platform, python-escpos produces the bytes,
the file printer writes real files, and the network printer talks TCP to a real listening socket on
127.0.0.1 that answers DLE EOT status queries like an Epson-compatible printer. Rendered tickets are
saved under tests/artifacts/tickets/ for people to look at.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import unicodedata
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image, ImageChops
from queuehall.kiosk.printing import (
    PrinterConfig,
    PrinterError,
    TicketPrinter,
    encode_ticket,
    printer_dots,
    wrap_columns,
)
from queuehall.kiosk.ticket import TicketContent, TicketError, ensure_qt_app, qimage_to_pil, render_ticket
from queuehall.tools.escpos_decode import EscposDecodeError, decode, decoded_to_png

try:  # a real QR decoder, when installed (pip install zxing-cpp)
    import zxingcpp
except ImportError:  # pragma: no cover - depends on the machine
    zxingcpp = None

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "tickets"
PAYLOAD = "queuehall:ticket:4711:A012:2026-11-28"
FIXED_NOW = datetime(2026, 11, 28, 9, 12, 30, 123456)


def make_content(**overrides: object) -> TicketContent:
    values: dict[str, object] = dict(
        hall_name=("某某市政务服务中心", "City Government Service Center"),
        label="A012",
        service_name_zh="不动产登记（抵押权首次登记、变更登记及注销登记）",
        service_name_en="Real estate registration (first mortgage, change and cancellation)",
        ahead=7,
        estimated_wait_minutes=25,
        issued_local="2026-11-28 09:12",
        priority_name_zh="老年人",
        priority_name_en="Senior citizen",
        materials=(("申请人身份证原件及复印件", "ID card, original and copy"),
                   ("不动产权属证书", "Property certificate"),
                   ("抵押合同及主债权合同（需双方签字盖章，一式三份）",
                    "Mortgage and loan contracts, signed and sealed, three copies")),
        promised_days=3,
        qr_payload=PAYLOAD,
        footer_zh="请留意叫号屏幕及语音提示，过号请重新取号。",
        footer_en="Please watch the display and listen for your number. If you miss it, take a new ticket.",
    )
    values.update(overrides)
    return TicketContent(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module", autouse=True)
def qt_app() -> None:
    ensure_qt_app()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


def ink_rows(image: Image.Image) -> list[bool]:
    """For a "1" image (0 = ink): whether each row has any ink."""
    gray = image.convert("L")
    return [gray.crop((0, y, gray.width, y + 1)).getextrema()[0] == 0 for y in range(gray.height)]


def longest_ink_run(rows: list[bool]) -> tuple[int, int]:
    """(start, length) of the longest run of consecutive rows with ink."""
    best, run_start = (0, 0), None
    for y, has_ink in enumerate([*rows, False]):
        if has_ink and run_start is None:
            run_start = y
        elif not has_ink and run_start is not None:
            if y - run_start > best[1]:
                best = (run_start, y - run_start)
            run_start = None
    return best


# --------------------------------------------------------------------------------------------------
# Raster mode


@pytest.mark.parametrize("paper_mm", [80, 58])
def test_raster_ticket_round_trip(paper_mm: int) -> None:
    content = make_content()
    data = encode_ticket(content, "raster", paper_mm)
    decoded = decode(data)
    dots = {80: 576, 58: 384}[paper_mm]

    assert data.startswith(b"\x1b@")
    assert decoded.cut_count == 1
    assert decoded.commands[-1] == "GS V"
    assert decoded.texts == []  # everything is in the image
    assert all(im.width == dots for im in decoded.images)
    assert all(im.height <= 960 for im in decoded.images)  # sent in bands the printer can buffer
    ticket = decoded.stacked_image()
    assert ticket is not None
    assert 600 <= ticket.height <= 2000

    # The bytes carry exactly the rendered picture, pixel for pixel.
    rendered = qimage_to_pil(render_ticket(content, paper_mm))
    assert ticket.size == rendered.size
    assert ImageChops.difference(ticket.convert("L"), rendered.convert("L")).getbbox() is None

    # The big number: in the upper third, a block of at least 90 rows that all have ink, spanning
    # more than half the paper's width.
    top = ticket.crop((0, 0, dots, ticket.height // 3))
    start, length = longest_ink_run(ink_rows(top))
    assert length >= 90
    number_ink = ImageChops.invert(top.crop((0, start, dots, start + length)).convert("L")).getbbox()
    assert number_ink is not None and number_ink[2] - number_ink[0] > dots / 2
    # Nothing is clipped: the outer columns of the paper stay blank.
    edges = ticket.convert("L")
    assert edges.crop((0, 0, 4, ticket.height)).getextrema()[0] == 255
    assert edges.crop((dots - 4, 0, dots, ticket.height)).getextrema()[0] == 255

    if zxingcpp is not None:
        found = [r.text for r in zxingcpp.read_barcodes(ticket.convert("L"))]
        assert found == [PAYLOAD]

    png = decoded_to_png(data, ARTIFACTS / f"raster-{paper_mm}mm.png")
    with Image.open(png) as picture:
        assert picture.width == dots and picture.height > ticket.height


def test_raster_long_words_wrap_at_58mm() -> None:
    content = make_content(
        label="B1234",
        service_name_zh="企业开办一窗通办" * 4 + "（含营业执照、公章刻制、发票申领、社保登记、公积金开户）",
        service_name_en="Supercalifragilisticexpialidocious-registration-of-enterprises " * 2,
        materials=tuple((f"材料{i}：" + "经办人身份证明及授权委托书原件" * 2, f"Item {i}") for i in range(1, 6)),
        priority_name_zh=None, priority_name_en=None, promised_days=0, language="en")
    image = qimage_to_pil(render_ticket(content, 58))
    assert image.width == 384
    gray = image.convert("L")
    assert gray.crop((0, 0, 4, image.height)).getextrema()[0] == 255
    assert gray.crop((380, 0, 384, image.height)).getextrema()[0] == 255
    assert image.height > qimage_to_pil(render_ticket(make_content(), 58)).height
    image.save(ARTIFACTS / "raster-58mm-long-names-en.png")


def test_render_width_follows_a_narrower_profile() -> None:
    assert printer_dots(80, "TM-T88V") == 512  # 180 dpi head
    assert printer_dots(80, None) == 576
    decoded = decode(encode_ticket(make_content(), "raster", 80, profile="TM-T88V"))
    assert {im.width for im in decoded.images} == {512}
    assert decoded.cut_count == 1


# --------------------------------------------------------------------------------------------------
# Text mode


def display_width(text: str) -> int:
    return sum(1 if ch.isascii() or unicodedata.east_asian_width(ch) == "H" else 2 for ch in text)


@pytest.mark.parametrize("paper_mm", [80, 58])
def test_text_ticket_round_trip(paper_mm: int) -> None:
    content = make_content()
    data = encode_ticket(content, "text", paper_mm)
    decoded = decode(data)
    dots = {80: 576, 58: 384}[paper_mm]
    cols = dots // 12

    assert decoded.cut_count == 1
    assert decoded.qr_payloads == [PAYLOAD]
    assert decoded.images == []
    # Chinese goes through the printer's Chinese mode, encoded as GB18030.
    assert b"\x1c&" + "不动产登记".encode("gb18030") in data
    assert "不动产登记".encode() not in data
    joined = "".join(line.strip() for line in decoded.texts)
    assert content.service_name_zh in joined
    assert "前面还有 7 人 / 7 ahead" in decoded.texts
    assert "预计等候 25 分钟 / about 25 min" in decoded.texts
    assert "2. 不动产权属证书" in decoded.texts
    assert "抵押合同及主债权合同" in joined and "一式三份" in joined
    # The number is a line of its own, enlarged with GS !.
    number = [el for el in decoded.elements if getattr(el, "text", None) == "A012"]
    assert len(number) == 1 and number[0].width >= 4 and number[0].height >= 4 and number[0].bold
    # The QR code is centred (set(align="center") before the native QR).
    qr = [el for el in decoded.elements if hasattr(el, "payload")]
    assert qr[0].align == "center"
    # No line is wider than the paper at its own character size.
    for el in decoded.elements:
        if getattr(el, "text", ""):
            assert display_width(el.text) * el.width <= cols, el.text

    decoded_to_png(data, ARTIFACTS / f"text-{paper_mm}mm.png", width=dots)


def test_wrap_columns_counts_chinese_as_two_columns() -> None:
    assert wrap_columns("身份证原件及复印件", 8) == ["身份证原", "件及复印", "件"]
    assert wrap_columns("ID card original and copy", 10) == ["ID card", "original", "and copy"]
    assert wrap_columns("1. 抵押合同及主债权合同", 12, indent=3) == ["1. 抵押合同", "   及主债权", "   合同"]
    # Closing punctuation never starts a line: the character before it moves down with it.
    lines = wrap_columns("抵押合同（签字盖章，一式三份）", 20)
    assert all(not line.lstrip().startswith(("，", "）")) for line in lines)
    assert "".join(line.strip() for line in lines) == "抵押合同（签字盖章，一式三份）"
    assert wrap_columns("Supercalifragilistic", 8) == ["Supercal", "ifragili", "stic"]


# --------------------------------------------------------------------------------------------------
# Content and decoder errors


@pytest.mark.parametrize("overrides", [
    {"label": ""}, {"label": "号码"}, {"ahead": -1}, {"estimated_wait_minutes": 1.5},
    {"language": "fr"}, {"hall_name": ("", "x")}, {"qr_payload": ""}, {"materials": (("只有中文",),)},
    {"promised_days": -2},
])
def test_invalid_ticket_content(overrides: dict[str, object]) -> None:
    with pytest.raises(TicketError) as info:
        make_content(**overrides)
    assert info.value.code == "TICKET_INVALID"
    assert info.value.zh and info.value.en


def test_render_rejects_unknown_paper() -> None:
    with pytest.raises(TicketError) as info:
        render_ticket(make_content(), 76)
    assert info.value.code == "TICKET_INVALID"


def test_decoder_rejects_garbage() -> None:
    with pytest.raises(EscposDecodeError) as info:
        decode(b"\x1b@\x1d\x99")
    assert info.value.offset == 2
    with pytest.raises(EscposDecodeError):
        decode(b"\x1dv0\x00\x48\x00\x10\x00\xff")  # image data cut short


# --------------------------------------------------------------------------------------------------
# Configuration


def test_printer_config_from_dict() -> None:
    cfg = PrinterConfig.from_dict({"backend": "usb", "usb_vendor_id": "0x0416", "usb_product_id": 0x5011,
                                   "paper_mm": 58, "mode": "text", "profile": "ZJ-5870"})
    assert (cfg.usb_vendor_id, cfg.usb_product_id, cfg.paper_mm, cfg.mode) == (0x0416, 0x5011, 58, "text")
    assert cfg.dots == 384
    net = PrinterConfig.from_dict({"backend": "network", "host": "192.0.2.10"})
    assert (net.port, net.mode, net.paper_mm) == (9100, "raster", 80)


@pytest.mark.parametrize(("d", "needle"), [
    ({}, "backend"),
    ({"backend": "bluetooth"}, "backend"),
    ({"backend": "file"}, "path"),
    ({"backend": "file", "path": "/tmp/x", "colour": "red"}, "colour"),
    ({"backend": "network"}, "host"),
    ({"backend": "network", "host": "p1", "port": 70000}, "port"),
    ({"backend": "network", "host": "p1", "timeout": 0}, "timeout"),
    ({"backend": "usb", "usb_vendor_id": 0x0416}, "usb_product_id"),
    ({"backend": "usb", "usb_vendor_id": "zz", "usb_product_id": 1}, "usb_vendor_id"),
    ({"backend": "serial"}, "serial_device"),
    ({"backend": "serial", "serial_device": "/dev/ttyS0", "baudrate": 12}, "baudrate"),
    ({"backend": "file", "path": "/tmp/x", "paper_mm": 76}, "paper_mm"),
    ({"backend": "file", "path": "/tmp/x", "paper_mm": True}, "paper_mm"),
    ({"backend": "file", "path": "/tmp/x", "mode": "pdf"}, "mode"),
    ({"backend": "file", "path": "/tmp/x", "profile": "NoSuchPrinter"}, "profile"),
])
def test_invalid_printer_config(d: dict[str, object], needle: str) -> None:
    with pytest.raises(PrinterError) as info:
        PrinterConfig.from_dict(d)
    assert info.value.code == "PRINTER_CONFIG"
    assert needle in info.value.en and needle in info.value.zh


def test_unopened_printer_is_a_config_error() -> None:
    with pytest.raises(PrinterError) as info:
        TicketPrinter().status()
    assert info.value.code == "PRINTER_CONFIG"


# --------------------------------------------------------------------------------------------------
# File backend


def test_file_printer_appends_tickets(tmp_path: Path) -> None:
    out = tmp_path / "printer.bin"
    printer = TicketPrinter(PrinterConfig(backend="file", path=str(out), mode="text"))
    first = printer.print_ticket(make_content())
    second = printer.print_ticket(make_content(label="A013", qr_payload="queuehall:ticket:4712:A013:2026-11-28"))
    assert first.destination == second.destination == str(out)
    assert first.status.ready and first.status.checked
    data = out.read_bytes()
    assert len(data) == first.bytes_sent + second.bytes_sent
    decoded = decode(data)
    assert decoded.cut_count == 2
    assert decoded.qr_payloads == [PAYLOAD, "queuehall:ticket:4712:A013:2026-11-28"]
    assert "A012" in decoded.texts and "A013" in decoded.texts


def test_file_printer_directory_writes_one_file_per_ticket(tmp_path: Path) -> None:
    printer = TicketPrinter(PrinterConfig(backend="file", path=str(tmp_path)), now=lambda: FIXED_NOW)
    a = printer.print_ticket(make_content())
    b = printer.print_ticket(make_content())  # same label, same clock: must not overwrite
    assert Path(a.destination).name == "A012-20261128T091230123456.bin"
    assert Path(b.destination).name == "A012-20261128T091230123456-1.bin"
    assert decode(Path(a.destination).read_bytes()).cut_count == 1
    test = printer.test_print()
    decoded = decode(Path(test.destination).read_bytes())
    assert Path(test.destination).name.startswith("T001-")
    assert decoded.cut_count == 1 and decoded.images
    decoded_to_png(Path(test.destination).read_bytes(), ARTIFACTS / "test-print-80mm.png")


def test_file_printer_paper_out_cover_open_and_near_end(tmp_path: Path) -> None:
    out = tmp_path / "kiosk1.bin"
    printer = TicketPrinter(PrinterConfig(backend="file", path=str(out), mode="text"))
    assert printer.status().ready

    sentinel = tmp_path / "kiosk1.bin.paperout"
    sentinel.touch()
    status = printer.status()
    assert (status.online, status.paper_ok, status.error_code) == (True, False, "PAPER_OUT")
    assert "缺纸" in (status.error or "") and "out of paper" in (status.error or "")
    with pytest.raises(PrinterError) as info:
        printer.print_ticket(make_content())
    assert info.value.code == "PAPER_OUT"
    assert not out.exists()  # nothing was sent

    sentinel.unlink()
    (tmp_path / "kiosk1.bin.coveropen").touch()
    with pytest.raises(PrinterError) as info:
        printer.print_ticket(make_content())
    assert info.value.code == "COVER_OPEN"
    assert printer.status().cover_open

    (tmp_path / "kiosk1.bin.coveropen").unlink()
    (tmp_path / "kiosk1.bin.nearend").touch()
    result = printer.print_ticket(make_content())
    assert result.status.paper_near_end and result.status.ready
    assert decode(out.read_bytes()).cut_count == 1


def test_file_printer_unwritable_targets(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "plain-file"
    not_a_dir.write_bytes(b"")
    for path in (not_a_dir / "printer.bin", tmp_path / "missing" / "printer.bin"):
        with pytest.raises(PrinterError) as info:
            TicketPrinter(PrinterConfig(backend="file", path=str(path)))
        assert info.value.code == "PRINTER_IO"
        assert str(path.parent) in info.value.en

        printer = TicketPrinter()
        with pytest.raises(PrinterError):
            printer.open(PrinterConfig(backend="file", path=str(path)))
        status = printer.status()  # the config is kept; status reports instead of raising
        assert (status.online, status.error_code) == (False, "PRINTER_IO")
        with pytest.raises(PrinterError) as info:
            printer.print_ticket(make_content())
        assert info.value.code == "PRINTER_IO"

    # /proc accepts no new files, even for root: the write itself fails and is reported.
    printer = TicketPrinter(PrinterConfig(backend="file", path="/proc/queuehall-ticket.bin",
                                          check_status=False, mode="text"))
    with pytest.raises(PrinterError) as info:
        printer.print_ticket(make_content())
    assert info.value.code == "PRINTER_IO"
    assert "/proc/queuehall-ticket.bin" in info.value.en


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only directory")
def test_file_printer_read_only_directory(tmp_path: Path) -> None:  # pragma: no cover - CI runs as root
    tmp_path.chmod(0o500)
    try:
        printer = TicketPrinter()
        with pytest.raises(PrinterError) as info:
            printer.open(PrinterConfig(backend="file", path=str(tmp_path / "p.bin")))
        assert info.value.code == "PRINTER_IO"
        assert printer.status().error_code == "PRINTER_IO"
    finally:
        tmp_path.chmod(0o700)


# --------------------------------------------------------------------------------------------------
# Network backend: a real TCP peer on 127.0.0.1


class LoopbackPrinter:
    """A TCP server that records what it receives and answers DLE EOT n like an ESC/POS printer.

    ``status`` maps n (1, 2, 4) to the reply byte; ``answer=False`` models a raw forwarder that never
    replies; ``close_after_cut`` drops the connection after each ticket, like a printer restarting.
    """

    def __init__(self, status: dict[int, int] | None = None, *, answer: bool = True,
                 close_after_cut: bool = False) -> None:
        self.status = {1: 0x12, 2: 0x12, 4: 0x12, **(status or {})}
        self.answer = answer
        self.close_after_cut = close_after_cut
        self.received: list[bytearray] = []
        self.closed = threading.Event()  # set whenever a client connection has ended
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            buf = bytearray()
            self.received.append(buf)
            with conn:
                while True:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    start = max(0, len(buf) - 2)
                    buf += chunk
                    for i in range(start, len(buf) - 2):
                        if self.answer and buf[i] == 0x10 and buf[i + 1] == 0x04 and buf[i + 2] in (1, 2, 3, 4):
                            # Like a real printer, this also answers DLE EOT bytes that happen to occur
                            # inside image data; the client discards such stray replies.
                            conn.sendall(bytes((self.status.get(buf[i + 2], 0x12),)))
                    if self.close_after_cut and b"\x1dV" in buf[start:]:
                        break
            self.closed.set()

    def stop(self) -> None:
        # close() alone does not wake a thread blocked in accept(); shutdown() does (Linux).
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


@pytest.fixture
def loopback_printer():
    servers: list[LoopbackPrinter] = []

    def start(**kwargs: object) -> LoopbackPrinter:
        server = LoopbackPrinter(**kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def network_config(port: int, **kwargs: object) -> PrinterConfig:
    return PrinterConfig(backend="network", host="127.0.0.1", port=port, timeout=5.0,
                         status_timeout=0.5, **kwargs)  # type: ignore[arg-type]


def test_network_printer_prints_after_status_check(loopback_printer) -> None:
    server = loopback_printer()
    printer = TicketPrinter(network_config(server.port))
    status = printer.status()
    assert status.ready and status.checked and status.online and status.paper_ok
    result = printer.print_ticket(make_content())
    printer.close()
    assert server.closed.wait(5)
    received = bytes(server.received[0])
    ticket = encode_ticket(make_content(), "raster", 80)
    assert result.bytes_sent == len(ticket)
    assert received.endswith(ticket)
    queries = received[: -len(ticket)]
    assert queries == b"\x10\x04\x01\x10\x04\x02\x10\x04\x04" * 2  # status(), then print_ticket()'s check
    decoded = decode(ticket)
    assert decoded.cut_count == 1 and {im.width for im in decoded.images} == {576}


@pytest.mark.parametrize(("status", "code"), [
    ({4: 0x72}, "PAPER_OUT"),  # DLE EOT 4: paper-end sensor
    ({2: 0x32}, "PAPER_OUT"),  # DLE EOT 2: stopped because the paper ran out
    ({1: 0x1A, 2: 0x16}, "COVER_OPEN"),  # offline because the cover is open
    ({1: 0x1A}, "PRINTER_OFFLINE"),
])
def test_network_printer_refuses_to_print_on_bad_status(loopback_printer, status, code) -> None:
    server = loopback_printer(status=status)
    printer = TicketPrinter(network_config(server.port, mode="text"))
    with pytest.raises(PrinterError) as info:
        printer.print_ticket(make_content())
    assert info.value.code == code
    assert f"127.0.0.1:{server.port}" in info.value.en
    printer.close()
    assert server.closed.wait(5)
    assert bytes(server.received[0]) == b"\x10\x04\x01\x10\x04\x02\x10\x04\x04"  # no ticket bytes


def test_network_printer_paper_near_end_still_prints(loopback_printer) -> None:
    server = loopback_printer(status={4: 0x1E})
    printer = TicketPrinter(network_config(server.port, mode="text"))
    result = printer.print_ticket(make_content())
    assert result.status.paper_near_end and result.status.paper_ok
    printer.close()
    assert server.closed.wait(5)
    assert decode(bytes(server.received[0])).qr_payloads == [PAYLOAD]


def test_network_printer_without_status_replies(loopback_printer) -> None:
    server = loopback_printer(answer=False)
    printer = TicketPrinter(PrinterConfig(backend="network", host="127.0.0.1", port=server.port,
                                          status_timeout=0.05, mode="text"))
    result = printer.print_ticket(make_content())
    assert not result.status.checked and result.status.ready
    printer.close()
    assert server.closed.wait(5)
    assert decode(bytes(server.received[0])).cut_count == 1


def test_network_printer_reconnects_after_the_printer_drops_the_connection(loopback_printer) -> None:
    server = loopback_printer(close_after_cut=True)
    printer = TicketPrinter(network_config(server.port, mode="text"))
    printer.print_ticket(make_content())
    assert server.closed.wait(5)  # the "printer" restarted after the first ticket
    server.closed.clear()
    printer.print_ticket(make_content(label="A013"))
    assert server.closed.wait(5)
    assert len(server.received) == 2
    assert "A012" in decode(bytes(server.received[0])).texts
    assert "A013" in decode(bytes(server.received[1])).texts
    printer.close()


def test_network_connection_refused_is_offline() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # closed again at once: nothing listens there
    printer = TicketPrinter()
    with pytest.raises(PrinterError) as info:
        printer.open(network_config(port))
    assert info.value.code == "PRINTER_OFFLINE"
    assert f"127.0.0.1:{port}" in info.value.en and "无法连接打印机" in info.value.zh
    status = printer.status()
    assert (status.online, status.error_code) == (False, "PRINTER_OFFLINE")
    with pytest.raises(PrinterError) as info:
        printer.print_ticket(make_content())
    assert info.value.code == "PRINTER_OFFLINE"


# --------------------------------------------------------------------------------------------------
# USB, serial and CUPS: real code paths; without hardware they must fail cleanly


def test_usb_printer_missing_device_is_offline() -> None:
    config = PrinterConfig.from_dict({"backend": "usb", "usb_vendor_id": "0x0416", "usb_product_id": "0x5011"})
    with pytest.raises(PrinterError) as info:
        TicketPrinter(config)
    try:
        import usb.backend.libusb1

        libusb = usb.backend.libusb1.get_backend() is not None
    except ImportError:  # pragma: no cover - pyusb is a dependency
        libusb = False
    if libusb:
        assert info.value.code == "PRINTER_OFFLINE"
        assert "USB 0416:5011" in info.value.en
    else:  # pragma: no cover - machine without libusb-1.0
        assert info.value.code == "PRINTER_CONFIG" and "libusb" in info.value.en


def test_serial_printer_missing_device_is_offline() -> None:
    config = PrinterConfig(backend="serial", serial_device="/dev/ttyQUEUEHALL-missing", baudrate=19200)
    printer = TicketPrinter()
    with pytest.raises(PrinterError) as info:
        printer.open(config)
    assert info.value.code == "PRINTER_OFFLINE"
    assert "/dev/ttyQUEUEHALL-missing" in info.value.en
    assert printer.status().error_code == "PRINTER_OFFLINE"


def test_cups_printer_without_cups_fails_cleanly() -> None:
    printer = TicketPrinter()
    with pytest.raises(PrinterError) as info:
        printer.open(PrinterConfig(backend="cups", cups_printer="kiosk-printer"))
    try:
        import cups  # noqa: F401

        assert info.value.code == "PRINTER_OFFLINE"  # pragma: no cover - needs pycups
    except ImportError:
        assert info.value.code == "PRINTER_CONFIG"
        assert "pycups" in info.value.en
    assert printer.status().error_code == info.value.code


def test_decoder_command_line(tmp_path: Path) -> None:
    from queuehall.tools.escpos_decode import main

    ticket = tmp_path / "ticket.bin"
    ticket.write_bytes(encode_ticket(make_content(), "text", 58))
    assert main([str(ticket), str(tmp_path / "ticket.png"), "--width", "384"]) == 0
    with Image.open(tmp_path / "ticket.png") as picture:
        assert picture.width == 384
    ticket.write_bytes(b"\x1b@\x1d(k\x10\x00")  # GS ( k that promises 16 bytes and stops
    assert main([str(ticket), str(tmp_path / "bad.png")]) == 1
    assert not (tmp_path / "bad.png").exists()


# --------------------------------------------------------------------------------------------------
# Appointments (预约)


def test_an_appointment_ticket_is_marked_in_raster_and_text() -> None:
    """A booking checked in on time prints with a visible 预约 / Appointment badge and the slot's start, like the
    green channel's; every other ticket has none."""
    plain = make_content(priority_name_zh=None, priority_name_en=None)
    booked = make_content(priority_name_zh=None, priority_name_en=None, appointment_slot="10:00")
    assert plain.appointment_mark is None
    assert booked.appointment_mark == ("预约 · 10:00", "Appointment · 10:00")
    raster = qimage_to_pil(render_ticket(booked, 80))
    assert raster.height > qimage_to_pil(render_ticket(plain, 80)).height  # the badge's lines
    raster.save(ARTIFACTS / "raster-80mm-appointment.png")
    decoded = decode(encode_ticket(booked, "text", 80))
    assert "预约 · 10:00" in decoded.texts and "Appointment · 10:00" in decoded.texts
    assert not any("预约" in t for t in decode(encode_ticket(plain, "text", 80)).texts)
    decoded_to_png(encode_ticket(booked, "raster", 80), ARTIFACTS / "raster-80mm-appointment-decoded.png")
    with pytest.raises(TicketError):
        make_content(appointment_slot=" ")
