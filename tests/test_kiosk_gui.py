"""The kiosk touch screen against a real broker on loopback and a file printer in tmp_path.

Every ticket the kiosk prints is decoded from the ESC/POS bytes the file printer wrote.
Screenshots of every screen go to tests/artifacts/kiosk/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QCoreApplication, QEvent, Qt
from PySide6.QtGui import QCloseEvent, QKeyEvent
from PySide6.QtWidgets import QApplication, QLabel
from queuehall.broker.config import load_config
from queuehall.broker.server import Broker
from queuehall.broker.storage import load_hall, open_store
from queuehall.kiosk.main import add_arguments, read_config_file, resolve_options
from queuehall.kiosk.model import (
    Bi,
    CheckPrinter,
    KioskConfigError,
    KioskModel,
    KioskSettings,
    Phase,
    PrinterHealth,
    PrintTicket,
    ReportFault,
    Screen,
    TakeTicket,
    local_when,
    parse_printer_spec,
)
from queuehall.kiosk.printing import SENTINEL_NEAR_END, SENTINEL_PAPER_OUT, PrinterConfig
from queuehall.kiosk.window import KioskWindow, PrintService
from queuehall.tools.escpos_decode import decode
from queuehall.voice.pack import load_pack
from queuehall.voice.sink import RecordingSink

from queuehall.client import BrokerClient, CommandRefused
from queuehall.clock import ManualClock
from queuehall.pins import hash_pin, verify_pin
from queuehall.qtlink import QtLink
from queuehall.simulation import DEMO_COST
from tests.hall_factory import install_pins

# Widgets need a QApplication. Make it while the tests are collected, before any test runs: a module that
# only renders tickets creates a bare QGuiApplication (kiosk.ticket.ensure_qt_app), and a QWidget made
# under one of those aborts the whole process.
_APP = QCoreApplication.instance() or QApplication([])

TZ = ZoneInfo("Asia/Shanghai")
ARTIFACTS = Path(__file__).parent / "artifacts" / "kiosk"
TUESDAY_9 = datetime(2026, 11, 24, 9, 0, tzinfo=TZ)


# --------------------------------------------------------------------------------------------------
# Fixtures: a real broker on loopback, a kiosk window on the offscreen platform


def _free_port_pair() -> int:
    """A port N with N, N+1 and N+2 free (the broker binds all three)."""
    from queuehall.demo import free_port

    return free_port()


@dataclass
class RunningBroker:
    broker: Broker
    clock: ManualClock
    port: int
    thread: threading.Thread

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> BrokerClient:
        return BrokerClient(self.endpoint, timeout=2.0, retries=1)

    def request(self, type_: str, **args: Any) -> dict[str, Any]:
        client = self.client()
        try:
            return client.request(type_, **args)
        finally:
            client.close()

    def tickets(self) -> list[dict[str, Any]]:
        return list(self.request("snapshot")["state"]["tickets"].values())

    def stop(self) -> None:
        self.broker.stop_event.set()
        self.thread.join(5)


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty hall database; each test starts from a copy (migrating takes a while)."""
    path = tmp_path_factory.mktemp("db") / "empty.db"
    open_store(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def hall(tmp_path: Path, empty_db: Path) -> Iterator[RunningBroker]:
    clock = ManualClock(TUESDAY_9)
    shutil.copy(empty_db, tmp_path / "h.db")
    store = open_store(f"sqlite:///{tmp_path}/h.db")
    install_pins(store, load_config())
    hall = load_hall(load_config(), clock, store)
    port = _free_port_pair()
    broker = Broker(hall, host="127.0.0.1", port=port)
    broker.bind()
    thread = threading.Thread(target=broker.serve_forever, name="test-broker", daemon=True)
    thread.start()
    running = RunningBroker(broker, clock, port, thread)
    yield running
    running.stop()
    store.close()


# The staff PIN as an installer sets it (queuehall kiosk-pin): only its hash, at the tests' cheap cost.
STAFF_PIN = "123456"
STAFF_PIN_HASH = hash_pin(STAFF_PIN, DEMO_COST)
FAST = KioskSettings(return_ms=400, message_ms=400, print_failed_ms=400, idle_ms=60_000, status_ms=60_000,
                     pin_hash=STAFF_PIN_HASH)


_RECORD: Any = object()  # make_kiosk's default audio: a RecordingSink (the kiosk's real output is QtAudioSink)


def make_kiosk(qtbot: Any, hall: RunningBroker, printer_path: Path, *, mode: str = "raster", paper: int = 80,
               settings: KioskSettings | None = None, request_timeout: float = 2.0, audio: Any = _RECORD,
               voice_pack: Any = None) -> KioskWindow:
    if not isinstance(QCoreApplication.instance(), QApplication):
        pytest.fail("the process has a QGuiApplication, not a QApplication: widgets cannot be made "
                    "(something created it before this module was collected)")
    link = QtLink(hall.endpoint, role="kiosk", name="test-kiosk", request_timeout=request_timeout)
    config = PrinterConfig(backend="file", path=str(printer_path), mode=mode, paper_mm=paper)
    s = settings or KioskSettings(**vars(FAST))
    model = KioskModel(settings=s, clock=hall.clock.now)
    # Spoken guidance goes to a recording sink (no sound in the tests); None: the real QtAudioSink.
    window = KioskWindow(link, PrintService(config), model, printer_spec=f"file:{printer_path}",
                         broker_label=hall.endpoint, audio=RecordingSink() if audio is _RECORD else audio,
                         voice_pack=voice_pack if voice_pack is not None else load_pack())
    qtbot.addWidget(window)
    window.resize(1920, 1080)
    window.show()
    window.start()
    return window


@pytest.fixture
def kiosk_factory(qtbot: Any, hall: RunningBroker, tmp_path: Path) -> Iterator[Any]:
    made: list[KioskWindow] = []

    def make(**kw: Any) -> KioskWindow:
        w = make_kiosk(qtbot, hall, tmp_path / "printer" / "tickets.bin", **kw)
        made.append(w)
        return w

    (tmp_path / "printer").mkdir()
    yield make
    for w in made:
        w.shutdown()


_SAVER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="screenshots")
_SAVES: list[Future[bool]] = []


@pytest.fixture(scope="module", autouse=True)
def _screenshots_written() -> Iterator[None]:
    yield
    assert all(f.result(timeout=30) for f in _SAVES)


def shot(window: KioskWindow, name: str) -> Path:
    """Screenshot the whole kiosk screen into tests/artifacts/kiosk/ (PNG encoding runs on a thread)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest.value)  # lay out texts changed just now
    image = window.grab().toImage()

    def save() -> bool:
        # Write aside, then rename: another test run writing the same screenshot cannot corrupt it.
        part = path.with_name(f".{path.stem}.{os.getpid()}.png")
        ok = image.save(str(part))
        os.replace(part, path)
        return ok

    _SAVES.append(_SAVER.submit(save))
    return path


def wait_screen(qtbot: Any, window: KioskWindow, screen: Screen, timeout: int = 5000) -> None:
    qtbot.waitUntil(lambda: window.model.screen == screen and window.stack.currentWidget() is
                    window.pages[screen], timeout=timeout)


def click(qtbot: Any, button: Any) -> None:
    qtbot.waitUntil(button.isVisible, timeout=2000)  # widgets added to a shown page appear one loop later
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def open_passport(qtbot: Any, w: KioskWindow) -> None:
    wait_screen(qtbot, w, Screen.START)
    click(qtbot, w.start_page.dept_buttons["exit_entry"])
    click(qtbot, w.start_page.tiles["passport"])
    wait_screen(qtbot, w, Screen.DETAILS)


def printed(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


# --------------------------------------------------------------------------------------------------
# Issuing and printing


def test_tap_confirm_prints_text_ticket(qtbot: Any, hall: RunningBroker, kiosk_factory: Any,
                                        tmp_path: Path) -> None:
    w = kiosk_factory(mode="text")
    printer = tmp_path / "printer" / "tickets.bin"
    wait_screen(qtbot, w, Screen.START)
    shot(w, "01-start-zh")
    click(qtbot, w.start_page.dept_buttons["exit_entry"])
    tile = w.start_page.tiles["passport"]
    assert tile.name.text() == "普通护照申请" and "等候 0 人" in tile.info.text()
    click(qtbot, tile)
    wait_screen(qtbot, w, Screen.DETAILS)
    page = w.details_page
    assert page.title.text() == "普通护照申请"
    assert "承诺 15 个工作日内办结" in page.promise.text()
    texts = [label.text() for label in page.materials_scroll.widget().findChildren(QLabel, "material")]
    numbers = [label.text() for label in page.materials_scroll.widget().findChildren(QLabel, "materialNo")]
    assert texts[0] == "本人居民身份证原件" and len(texts) == 6 and numbers[-1] == "6."
    assert set(page.prio_buttons) == {None, "elderly", "disabled", "military"}
    click(qtbot, page.prio_buttons["elderly"])
    assert w.model.priority == "elderly"
    shot(w, "02-service-details-zh")
    click(qtbot, page.confirm)
    wait_screen(qtbot, w, Screen.CONFIRMATION)
    assert w.confirm_page.number.text() == "A001"
    assert w.confirm_page.line.text() == "您的号码 A001 · 前面还有 0 人 · 预计等候 0 分钟"
    shot(w, "03-confirmation-zh")

    ticket = hall.tickets()[0]
    assert (ticket["label"], ticket["priority"], ticket["status"]) == ("A001", "elderly", "waiting")
    decoded = decode(printed(printer))
    assert "A001" in decoded.texts
    assert "普通护照申请" in decoded.text and "Ordinary passport application" in decoded.text
    assert "本人居民身份证原件" in decoded.text  # the materials list (一次性告知)
    assert "绿色通道" in decoded.text and "XX市政务服务中心" in decoded.text
    assert "2026-11-24 09:00" in decoded.text  # issue time in the hall's local time
    assert decoded.qr_payloads == [f"queuehall:ticket:{ticket['id']}:A001:2026-11-24"]
    assert decoded.cut_count == 1
    # The confirmation returns to the start screen by itself (return_ms = 400 here).
    wait_screen(qtbot, w, Screen.START)


def test_raster_ticket_on_58mm_paper(qtbot: Any, hall: RunningBroker, kiosk_factory: Any,
                                     tmp_path: Path) -> None:
    hall.request("take_ticket", service="passport")  # someone is already waiting
    w = kiosk_factory(mode="raster", paper=58)
    open_passport(qtbot, w)
    click(qtbot, w.details_page.confirm)
    wait_screen(qtbot, w, Screen.CONFIRMATION)
    assert w.confirm_page.number.text() == "A002"
    assert "前面还有 1 人" in w.confirm_page.line.text()
    decoded = decode(printed(tmp_path / "printer" / "tickets.bin"))
    image = decoded.stacked_image()
    assert image is not None and image.width == 384
    ink = image.convert("L").histogram()[0]  # black pixels
    assert ink / (image.width * image.height) > 0.03  # a real ticket, not a blank strip
    assert decoded.cut_count == 1 and decoded.texts == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    part = ARTIFACTS / f".ticket-raster-58mm.{os.getpid()}.png"
    image.save(part)
    os.replace(part, ARTIFACTS / "ticket-raster-58mm.png")


def test_double_tap_issues_one_ticket(qtbot: Any, hall: RunningBroker, kiosk_factory: Any,
                                      tmp_path: Path) -> None:
    w = kiosk_factory(mode="text")
    open_passport(qtbot, w)
    confirm = w.details_page.confirm
    qtbot.mouseClick(confirm, Qt.MouseButton.LeftButton)
    assert not confirm.isEnabled()  # disabled while the ticket is in flight
    qtbot.mouseClick(confirm, Qt.MouseButton.LeftButton)
    w.confirm()  # even a confirm that reaches the window directly is ignored
    wait_screen(qtbot, w, Screen.CONFIRMATION)
    assert [t["label"] for t in hall.tickets()] == ["A001"]
    assert decode(printed(tmp_path / "printer" / "tickets.bin")).cut_count == 1


def test_language_switch_and_reset(qtbot: Any, hall: RunningBroker, kiosk_factory: Any) -> None:
    w = kiosk_factory(mode="text")
    wait_screen(qtbot, w, Screen.START)
    assert w.header.lang.text() == "English"
    click(qtbot, w.header.lang)
    assert w.model.language == "en"
    greeting = "Good morning! Welcome to the XX Municipal Government Service Center"
    assert w.start_page.greeting.text() == greeting
    click(qtbot, w.start_page.dept_buttons["household"])
    assert w.start_page.tiles["newborn"].name.text() == "Newborn household registration"
    shot(w, "04-start-en")
    click(qtbot, w.start_page.tiles["newborn"])
    wait_screen(qtbot, w, Screen.DETAILS)
    assert w.details_page.confirm.text() == "Take a ticket"
    shot(w, "05-service-details-en")
    click(qtbot, w.details_page.confirm)
    wait_screen(qtbot, w, Screen.CONFIRMATION)
    assert w.confirm_page.line.text() == "Your number D001 · 0 ahead of you · about 0 min"
    shot(w, "06-confirmation-en")
    wait_screen(qtbot, w, Screen.START)
    assert w.model.language == "zh"  # the next citizen starts in the default language


def test_the_start_page_returns_to_chinese_and_the_first_department_after_idle(
        qtbot: Any, hall: RunningBroker, kiosk_factory: Any) -> None:
    # Issue 15: the next citizen inherited the previous one's language and department.
    w = kiosk_factory(mode="text", settings=KioskSettings(**{**vars(FAST), "idle_ms": 300}))
    wait_screen(qtbot, w, Screen.START)
    first = w.model.department
    assert not w.flow_timer.isActive(), "a clean start page has nothing to time out"
    click(qtbot, w.header.lang)
    click(qtbot, w.start_page.dept_buttons["household"])
    assert w.model.language == "en" and w.model.department == "household" != first
    assert w.flow_timer.isActive()
    shot(w, "idle-before-reset-en")
    qtbot.waitUntil(lambda: w.model.language == "zh" and w.model.department == first, timeout=3000)
    assert w.header.lang.text() == "English" and not w.flow_timer.isActive()
    shot(w, "idle-after-reset-zh")


def test_the_service_page_tells_the_fees_and_that_no_counter_is_open(
        qtbot: Any, hall: RunningBroker, kiosk_factory: Any) -> None:
    # Issue 15: hall.toml's description (卫生费12元…) was shown nowhere, and a service no open counter
    # serves said "无需等候". In this hall nobody has signed in yet.
    w = kiosk_factory(mode="text")
    wait_screen(qtbot, w, Screen.START)
    click(qtbot, w.start_page.dept_buttons["household"])
    tile = w.start_page.tiles["move_in"]
    assert tile.info.text() == "等候 0 人 · 暂无窗口办理"
    click(qtbot, tile)
    wait_screen(qtbot, w, Screen.DETAILS)
    page = w.details_page
    texts = [lab.text() for lab in page.findChildren(QLabel) if lab.isVisibleTo(page)]
    assert "办理须知" in texts and any("卫生费12元" in t for t in texts), texts
    assert any("sanitation fee of 12 yuan" in t for t in texts)
    assert page.queue.text() == "当前等候 0 人，暂无窗口办理" and "无需等候" not in page.queue.text()
    assert page.wait_note.isVisible() and "现在没有窗口办理此业务" in page.wait_note.text()
    shot(w, "details-description-no-counter")


# --------------------------------------------------------------------------------------------------
# Printer faults


def test_paper_out_before_issuing_asks_staff(qtbot: Any, hall: RunningBroker, kiosk_factory: Any,
                                             tmp_path: Path) -> None:
    w = kiosk_factory(mode="text")
    printer = tmp_path / "printer" / "tickets.bin"
    open_passport(qtbot, w)
    Path(f"{printer}{SENTINEL_PAPER_OUT}").touch()  # paper runs out while the citizen reads
    click(qtbot, w.details_page.confirm)
    wait_screen(qtbot, w, Screen.ASK_STAFF)
    assert w.staff_page.title.text() == "请联系工作人员"
    assert w.staff_page.body.text() == "号票打印纸已用完"
    assert w.staff_page.detail.text() == "PAPER_OUT"  # the code, small, for staff; the printer's words are logged
    assert w.staff_page.extra.text() == "暂停取号。请到12号窗口（咨询投诉）咨询"
    assert w.staff_page.extra_sub.text() == ("Tickets are paused. Please ask at Window 12 (Consultation and "
                                             "Complaints)")
    shot(w, "07-ask-staff-paper-out")
    assert hall.tickets() == [] and printed(printer) == b""  # checked before issuing: nothing taken
    Path(f"{printer}{SENTINEL_PAPER_OUT}").unlink()
    Path(f"{printer}{SENTINEL_NEAR_END}").touch()  # paper nearly out: staff should change the roll first
    w._poll()
    qtbot.waitUntil(lambda: w.staff_page.body.text() == "号票打印纸即将用完", timeout=5000)
    assert w.model.screen == Screen.ASK_STAFF
    Path(f"{printer}{SENTINEL_NEAR_END}").unlink()
    w._poll()
    wait_screen(qtbot, w, Screen.START)


def test_print_failure_keeps_the_number_and_alerts_the_help_counter(qtbot: Any, hall: RunningBroker,
                                                                     kiosk_factory: Any, tmp_path: Path) -> None:
    w = kiosk_factory(mode="text", settings=KioskSettings(**{**vars(FAST), "print_failed_ms": 60_000}))
    printer = tmp_path / "printer" / "tickets.bin"
    sentinel = Path(f"{printer}{SENTINEL_PAPER_OUT}")
    open_passport(qtbot, w)
    phases: list[str] = []

    def on_phase(phase: str) -> None:
        phases.append(phase)
        if phase == "requesting":  # the printer said OK; the paper runs out while the number is issued
            sentinel.touch()

    w.phase_changed.connect(on_phase)
    click(qtbot, w.details_page.confirm)
    wait_screen(qtbot, w, Screen.PRINT_FAILED)
    assert phases[:3] == ["checking", "requesting", "printing"]
    assert w.model.issued is not None and w.model.issued.attempts == 2  # printed once more before giving up
    page = w.failed_page
    assert page.number.text() == "A001"  # very large: to write down or photograph
    assert (page.title.text(), page.title_sub.text()) == ("号票未能打印", "Your ticket could not be printed")
    assert page.kept.text().startswith("您的号码已保留，排队顺序不变")
    assert page.kept_sub.text().startswith("Your number is kept, with your place in the queue")
    assert page.go.text() == "请到12号窗口（咨询投诉）补打号票"
    assert page.go_sub.text() == "Please go to Window 12 (Consultation and Complaints) for a printed ticket"
    assert "秒后自动返回首页" in page.countdown.text()
    # Nothing technical on the citizen's screen: no code, no path, no exception text.
    texts = " ".join(label.text() for label in page.findChildren(QLabel))
    assert "PAPER_OUT" not in texts and str(tmp_path) not in texts and "Errno" not in texts
    shot(w, "08-print-failed-number-kept")
    assert printed(printer) == b""
    # The number keeps its place at the broker, and the help counter's alert names it.
    assert [(t["label"], t["status"]) for t in hall.tickets()] == [("A001", "waiting")]
    qtbot.waitUntil(lambda: not w.controller.journal.pending, timeout=5000)
    (alert,) = hall.request("snapshot")["state"]["printers"].values()
    assert alert["fault"]["code"] == "PAPER_OUT" and [u["label"] for u in alert["unprinted"]] == ["A001"]
    w.model.set_language("en")
    w.redraw()
    assert page.title.text() == "Your ticket could not be printed" and page.go_sub.text().startswith("请到")
    shot(w, "08b-print-failed-number-kept-en")
    # Issuing stays stopped until the printer is fine again; then the alert is cleared.
    click(qtbot, page.button)
    wait_screen(qtbot, w, Screen.ASK_STAFF)
    sentinel.unlink()
    w._poll()
    wait_screen(qtbot, w, Screen.START)
    qtbot.waitUntil(lambda: hall.request("snapshot")["state"]["printers"] == {}, timeout=5000)


def test_printer_unplugged_mid_ticket(qtbot: Any, hall: RunningBroker, kiosk_factory: Any,
                                      tmp_path: Path) -> None:
    w = kiosk_factory(mode="raster", settings=KioskSettings(**{**vars(FAST), "print_failed_ms": 60_000}))
    printer_dir = tmp_path / "printer"
    open_passport(qtbot, w)

    def unplug(phase: str) -> None:
        if phase == "requesting":
            printer_dir.rename(tmp_path / "unplugged")

    w.phase_changed.connect(unplug)
    click(qtbot, w.details_page.confirm)
    wait_screen(qtbot, w, Screen.PRINT_FAILED)
    qtbot.waitUntil(lambda: not w.controller.journal.pending, timeout=5000)  # the alert is raised
    assert [t["label"] for t in hall.tickets()] == ["A001"]  # the number keeps its place
    # After the notice the kiosk is out of service while the printer is missing.
    click(qtbot, w.failed_page.button)
    wait_screen(qtbot, w, Screen.OUT_OF_SERVICE)
    assert w.out_page.body.text() == "号票打印机出现故障"
    assert w.out_page.detail.text() == "PRINTER_IO"  # not the file printer's path and error
    assert w.out_page.extra.text() == "请到12号窗口（咨询投诉）咨询"
    assert w.out_page.extra_sub.text() == "Please ask at Window 12 (Consultation and Complaints)"
    shot(w, "09-out-of-service-printer")
    (tmp_path / "unplugged").rename(printer_dir)
    w._poll()
    wait_screen(qtbot, w, Screen.START)


# --------------------------------------------------------------------------------------------------
# Broker faults and closing times


def test_service_closed_between_showing_and_tapping(qtbot: Any, hall: RunningBroker,
                                                    kiosk_factory: Any) -> None:
    w = kiosk_factory(mode="text")
    open_passport(qtbot, w)

    def lunch(phase: str) -> None:
        if phase == "checking":  # the break starts between the citizen's tap and the broker's answer
            hall.clock.set(datetime(2026, 11, 24, 11, 40, tzinfo=TZ))

    w.phase_changed.connect(lunch)
    click(qtbot, w.details_page.confirm)
    wait_screen(qtbot, w, Screen.MESSAGE)
    assert w.message_page.body.text() == "午间休息，下次取号时间：2026-11-24 13:30"
    assert w.message_page.body_sub.text() == "Break time; tickets again from 2026-11-24 13:30"
    shot(w, "10-refused-break")
    wait_screen(qtbot, w, Screen.CLOSED)  # the broker's next tick says every service is in the break
    assert w.closed_page.title.text() == "午间休息，暂停取号"
    assert w.closed_page.body.text() == "下次取号时间：今天 13:30"
    shot(w, "11-closed-break")
    assert hall.tickets() == []
    hall.clock.set(datetime(2026, 11, 24, 17, 30, tzinfo=TZ))  # evening: closed until tomorrow
    qtbot.waitUntil(lambda: w.closed_page.title.text() == "现在是非办公时间", timeout=5000)
    assert w.closed_page.body.text() == "下次取号时间：明天 08:30"
    assert w.closed_page.body_sub.text() == "Tickets again from tomorrow 08:30"
    shot(w, "12-closed-after-hours")


def test_service_past_cap_is_disabled_with_reason(qtbot: Any, hall: RunningBroker,
                                                  kiosk_factory: Any) -> None:
    for _ in range(30):  # small_town_hukou has daily_cap = 30
        hall.request("take_ticket", service="small_town_hukou")
    w = kiosk_factory(mode="text")
    wait_screen(qtbot, w, Screen.START)
    click(qtbot, w.start_page.dept_buttons["household"])
    tile = w.start_page.tiles["small_town_hukou"]
    assert not tile.isEnabled()
    qtbot.waitUntil(tile.isVisible, timeout=2000)
    assert not tile.reason.isHidden() and tile.reason.text() == "今日号票已发完"
    assert "等候 30 人" in tile.info.text()
    assert w.start_page.dept_buttons["household"].sub.text() == "等候 30 人"
    shot(w, "13-start-service-capped")
    qtbot.mouseClick(tile, Qt.MouseButton.LeftButton)
    assert w.model.screen == Screen.START


def test_broker_unreachable(qtbot: Any, hall: RunningBroker, kiosk_factory: Any, tmp_path: Path) -> None:
    w = kiosk_factory(mode="text", request_timeout=0.6)
    open_passport(qtbot, w)
    hall.stop()
    # The broker's connection dropped: the kiosk is out of service at once, in the middle of a citizen's
    # choice, without waiting for 3 s of silence (docs/standby.md "When a connection drops"). A take that
    # fails after it was pressed: test_issue_whose_reply_was_lost_is_voided.
    wait_screen(qtbot, w, Screen.OUT_OF_SERVICE, timeout=8000)
    assert printed(tmp_path / "printer" / "tickets.bin") == b""
    assert hall.broker.hall.tickets == {}  # nothing was issued, so nothing is owed to anyone
    assert w.out_page.body.text() == "无法连接叫号服务器，工作人员正在处理"
    shot(w, "14-out-of-service-broker")


def test_issue_whose_reply_was_lost_is_voided(qtbot: Any, hall: RunningBroker, kiosk_factory: Any,
                                             tmp_path: Path) -> None:
    """The broker issues the number but its reply comes too late: the kiosk tells the citizen it
    failed, then asks again with the same request id and voids the number nobody holds."""
    store = hall.broker.hall.journal
    original = store.commit
    stalled, release = threading.Event(), threading.Event()

    def slow_commit(change: Any) -> None:
        if any(ev.type == "ticket_issued" for ev in change.events) and not stalled.is_set():
            stalled.set()
            release.wait(10)  # a database that stalls longer than the kiosk waits for its reply
        original(change)

    store.commit = slow_commit  # type: ignore[method-assign]
    w = kiosk_factory(mode="text", request_timeout=0.4)
    open_passport(qtbot, w)
    click(qtbot, w.details_page.confirm)
    wait_screen(qtbot, w, Screen.MESSAGE, timeout=5000)
    assert "未能取号" in w.message_page.body.text()
    release.set()
    assert printed(tmp_path / "printer" / "tickets.bin") == b""
    # The ticket exists at the broker; the kiosk must void it so no counter calls a number nobody has.
    qtbot.waitUntil(lambda: not w.controller.journal.pending, timeout=8000)
    assert hall.tickets() == []
    with pytest.raises(CommandRefused) as refused:
        hall.request("call_ticket", counter=1, ticket="A001", reason="test")
    assert refused.value.code in ("NOT_WAITING", "UNKNOWN_TICKET", "COUNTER_CLOSED")


# --------------------------------------------------------------------------------------------------
# Staff settings and kiosk lock-down


def test_settings_behind_pin_and_no_exit(qtbot: Any, hall: RunningBroker, kiosk_factory: Any,
                                         tmp_path: Path) -> None:
    w = kiosk_factory(mode="text")
    wait_screen(qtbot, w, Screen.START)
    # Esc, Alt+F4 / a window-manager close: ignored.
    esc = QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(w, esc)
    close = QCloseEvent()
    w.closeEvent(close)
    assert not close.isAccepted() and w.isVisible()
    for _ in range(4):
        click(qtbot, w.header.hall)
    assert w.model.screen == Screen.START
    click(qtbot, w.header.hall)  # the fifth quick tap
    wait_screen(qtbot, w, Screen.PIN)
    for key in "9999":
        click(qtbot, w.pin_page.keys[key])
    assert w.pin_page.display.text() == "●●●●"
    shot(w, "15-settings-pin")
    click(qtbot, w.pin_page.keys["ok"])
    assert w.model.screen == Screen.PIN and w.pin_page.message.text() == "密码错误"
    for key in "123456":
        click(qtbot, w.pin_page.keys[key])
    click(qtbot, w.pin_page.keys["ok"])
    wait_screen(qtbot, w, Screen.SETTINGS)
    page = w.settings_page
    assert page.spec.text() == f"file:{tmp_path / 'printer' / 'tickets.bin'}"
    assert page.status.text() == "就绪"
    click(qtbot, page.test)
    qtbot.waitUntil(lambda: page.result.text() == "测试页已打印", timeout=5000)
    assert "T001" in decode(printed(tmp_path / "printer" / "tickets.bin")).texts
    click(qtbot, page.langs["en"])
    assert w.model.settings.language == "en"
    shot(w, "16-settings")
    # A bad printer spec is refused with a message; a good one is applied.
    page.spec.setText("lp0")
    click(qtbot, page.apply)
    assert "invalid" in page.result.text()
    page.spec.setText(f"file:{tmp_path / 'printer' / 'other.bin'}")
    click(qtbot, page.apply)
    qtbot.waitUntil(lambda: page.result.text() == "Printer set", timeout=5000)
    assert w.printer.config is not None and w.printer.config.path.endswith("other.bin")
    click(qtbot, page.back)
    wait_screen(qtbot, w, Screen.START)
    assert w.start_page.choose.text() == "Please choose the service you need"


def test_staff_reprint_from_the_settings(qtbot: Any, hall: RunningBroker, kiosk_factory: Any,
                                         tmp_path: Path) -> None:
    hall.request("take_ticket", service="passport")  # A001, whose ticket a citizen lost
    w = kiosk_factory(mode="text")
    wait_screen(qtbot, w, Screen.START)
    w.model.open_settings()
    assert w.model.enter_pin("123456")[0]
    w.redraw()
    wait_screen(qtbot, w, Screen.SETTINGS)
    page = w.settings_page
    page.reprint_ticket.setText("a001")
    click(qtbot, page.reprint_button)
    qtbot.waitUntil(lambda: page.result.text() == "已下达补打 A001，即将打印", timeout=5000)
    printer = tmp_path / "printer" / "tickets.bin"
    qtbot.waitUntil(lambda: "补打号票" in decode(printed(printer)).text, timeout=5000)
    decoded = decode(printed(printer))
    assert "A001" in decoded.texts and "前面还有 0 人" in decoded.text
    # Done: the order is gone from the broker (no alert, nothing pending for this kiosk).
    qtbot.waitUntil(lambda: hall.request("snapshot")["state"]["printers"] == {}, timeout=5000)
    page.reprint_ticket.setText("Z999")
    click(qtbot, page.reprint_button)
    qtbot.waitUntil(lambda: page.result.text().startswith("UNKNOWN_TICKET · 没有此号票"), timeout=5000)


# --------------------------------------------------------------------------------------------------
# The view-model and options without widgets


def _state(issue_state: str = "open", next_open: str | None = None) -> dict[str, Any]:
    svc = {"code": "P", "name_zh": "护照", "name_en": "Passport", "department": "d", "waiting": 2,
           "estimated_wait_minutes": 6, "issue_state": issue_state, "next_open": next_open,
           "materials": [{"zh": "身份证", "en": "ID card"}], "promised_days": 5,
           "priority_classes": ["elderly"]}
    return {"timezone": "Asia/Shanghai", "services": {"P": svc}, "service_order": ["P"],
            "departments": [{"code": "d", "name_zh": "部门", "name_en": "Dept"}],
            "priority_classes": [{"code": "elderly", "name_zh": "老年人", "name_en": "Seniors"}],
            "hall": {"name_zh": "测试大厅", "name_en": "Test Hall", "footer_zh": "页脚",
                     "footer_en": "Footer"}}


def _ready_model(clock: ManualClock) -> KioskModel:
    m = KioskModel(settings=KioskSettings(pin_hash=STAFF_PIN_HASH), clock=clock.now)
    m.on_state(_state())
    m.on_printer_status(PrinterHealth(None))
    return m


def test_model_issue_flow_retry_and_void() -> None:
    clock = ManualClock(TUESDAY_9)
    m = _ready_model(clock)
    assert m.screen == Screen.START and m.confirm() is None
    assert m.tap_service("P") and m.screen == Screen.DETAILS
    m.choose_priority("military")  # not offered by this service: ignored
    assert m.priority is None
    m.choose_priority("elderly")
    assert isinstance(m.confirm(), CheckPrinter)
    assert m.confirm() is None  # double tap
    take = m.on_precheck(PrinterHealth(None))
    assert take == TakeTicket("P", "elderly")
    ticket = {"id": 7, "label": "A003", "service": "P", "service_name_zh": "护照",
              "service_name_en": "Passport",
              "business_day": "2026-11-24", "issued_at": "2026-11-24T01:05:00Z", "priority": "elderly"}
    first = m.on_take_reply({"status": "ok",
                             "result": {"ticket": ticket, "ahead": 2, "estimated_wait_minutes": 6}})
    assert isinstance(first, PrintTicket) and first.attempt == 1
    f = first.fields
    assert (f["issued_local"], f["qr_payload"], f["priority_name_zh"]) == (
        "2026-11-24 09:05", "queuehall:ticket:7:A003:2026-11-24", "老年人")
    assert f["materials"] == (("身份证", "ID card"),) and f["footer_en"] == "Footer"
    retry = m.on_print_result(("PRINTER_IO", "写入失败", "write failed"))
    assert isinstance(retry, PrintTicket) and retry.attempt == 2
    fault = m.on_print_result(("PAPER_OUT", "缺纸", "out of paper"))
    assert fault == ReportFault(ticket="7", label="A003", code="PAPER_OUT")  # the ticket is kept, staff alerted
    assert m.screen == Screen.PRINT_FAILED and m.blocked
    assert m.print_failed_info() == ("A003", Bi("请到任一服务窗口补打号票",
                                                "Please go to any service counter for a printed ticket"))
    m.back_to_start(reset_language=True)
    assert m.screen == Screen.ASK_STAFF  # stays stopped …
    m.on_printer_status(PrinterHealth(None))
    assert m.screen == Screen.START  # … until the printer reports ready


def test_model_refusal_unavailable_and_screens() -> None:
    clock = ManualClock(TUESDAY_9)
    m = _ready_model(clock)
    m.tap_service("P")
    m.confirm()
    m.on_precheck(PrinterHealth(None))
    assert m.on_take_reply({"status": "unavailable"}) is None
    assert m.screen == Screen.MESSAGE and m.message is not None and m.message.code == "UNAVAILABLE"
    m.back_to_start()
    m.tap_service("P")
    m.confirm()
    m.on_precheck(PrinterHealth(None))
    m.on_take_reply({"status": "error", "error": {"code": "PAST_CUTOFF", "message_zh": "今日该业务已停止取号",
                                                   "message_en": "No more tickets"}})
    assert m.message is not None and m.message.body == Bi("今日该业务已停止取号", "No more tickets")
    m.back_to_start()
    # Precedence: broker gone > printer offline > paper out > closed.
    m.on_state(_state("closed", "2026-11-25T00:30:00Z"))
    assert m.screen == Screen.CLOSED
    assert m.closed_info() == (Bi("现在是非办公时间", "The hall is closed now"),
                               Bi("明天 08:30", "tomorrow 08:30"))
    m.on_printer_status(PrinterHealth.from_error("PAPER_OUT", "缺纸", "paper out"))
    assert m.screen == Screen.ASK_STAFF
    m.on_printer_status(PrinterHealth.from_error("PRINTER_OFFLINE", "离线", "offline"))
    assert m.screen == Screen.OUT_OF_SERVICE
    assert m.out_of_service_reason() == (Bi("号票打印机未连接", "The ticket printer is not connected"),
                                         "PRINTER_OFFLINE")
    m.on_connection(False)
    assert m.out_of_service_reason()[0].zh.startswith("无法连接叫号服务器")
    card = m.card("P")
    assert card is not None and not card.open
    assert card.reason == Bi("非办公时间，明天 08:30 起取号",
                             "Outside opening hours; tickets from tomorrow 08:30")


def test_model_hall_closing_under_open_page() -> None:
    m = _ready_model(ManualClock(TUESDAY_9))
    m.set_language("en")
    m.tap_service("P")
    m.on_state(_state("break", "2026-11-24T05:30:00Z"))  # the lunch break starts
    assert m.phase == Phase.START and m.screen == Screen.CLOSED and m.language == "zh"
    assert not m.tap_service("P")  # a closed service cannot be opened
    m.on_state(_state())
    assert m.screen == Screen.START


def test_model_pin_lockout() -> None:
    clock = ManualClock(TUESDAY_9)
    m = _ready_model(clock)
    m.open_settings()
    assert m.screen == Screen.PIN
    for _ in range(4):
        assert m.enter_pin("0000")[0] is False
    ok, msg = m.enter_pin("0000")
    assert not ok and "60" in msg.zh
    assert m.enter_pin("123456")[0] is False  # locked, even with the right PIN
    clock.advance(61)
    assert m.enter_pin("123456")[0] is True and m.screen == Screen.SETTINGS
    m.close_settings()
    assert m.screen == Screen.START


def test_local_when_formats() -> None:
    now = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    assert local_when(datetime(2026, 11, 24, 5, 30, tzinfo=UTC), now, TZ) == Bi("今天 13:30", "today 13:30")
    assert local_when(datetime(2026, 11, 26, 0, 30, tzinfo=UTC), now, TZ) == Bi("11月26日（周四）08:30",
                                                                                 "Thu 26 Nov 08:30")


@pytest.mark.parametrize(("spec", "expected"), [
    ("file:/tmp/t.bin", {"backend": "file", "path": "/tmp/t.bin"}),
    ("network:10.0.0.5", {"backend": "network", "host": "10.0.0.5", "port": 9100}),
    ("network:printer.local:9101", {"backend": "network", "host": "printer.local", "port": 9101}),
    ("network:[fe80::1]:9100", {"backend": "network", "host": "fe80::1", "port": 9100}),
    ("usb:0416:5011", {"backend": "usb", "usb_vendor_id": 0x0416, "usb_product_id": 0x5011}),
    ("usb:0x0416:0x5011", {"backend": "usb", "usb_vendor_id": 0x0416, "usb_product_id": 0x5011}),
    ("serial:/dev/ttyUSB0@19200", {"backend": "serial", "serial_device": "/dev/ttyUSB0", "baudrate": 19200}),
    ("cups:TM-T88", {"backend": "cups", "cups_printer": "TM-T88"}),
    ("cups:", {"backend": "cups", "cups_printer": None}),
])
def test_printer_spec(spec: str, expected: dict[str, Any]) -> None:
    assert parse_printer_spec(spec) == expected
    PrinterConfig.from_dict(expected)  # and the printer module accepts it


@pytest.mark.parametrize("spec", ["lp0", "file:", "network:", "network:host:99999", "usb:0416",
                                  "usb:zz:0001", "serial:", "serial:/dev/ttyS0@fast", "bluetooth:xx"])
def test_bad_printer_spec(spec: str) -> None:
    with pytest.raises(KioskConfigError) as err:
        parse_printer_spec(spec)
    assert err.value.code == "KIOSK_BAD_PRINTER" and err.value.zh and err.value.en


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def test_options_precedence(tmp_path: Path) -> None:
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(f'[kiosk]\nbroker = "10.0.0.1:5555"\npin_hash = "{STAFF_PIN_HASH}"\nlanguage = "en"\n'
                   'return_seconds = 6\n'
                   'printer = "network:10.0.0.9"\n[printer]\nprofile = "TM-T88V"\npaper_mm = 58\n',
                   encoding="utf-8")
    opts = resolve_options(_args("--config", str(cfg)), environ={})
    assert opts.broker == "10.0.0.1:5555" and opts.settings.pin_hash == STAFF_PIN_HASH
    assert opts.settings.language == "en"
    assert opts.settings.return_ms == 6000 and not opts.pin_is_default
    assert opts.printer == {"backend": "network", "host": "10.0.0.9", "port": 9100, "profile": "TM-T88V",
                            "paper_mm": 58}
    other = hash_pin("13579", DEMO_COST)
    env = {"QUEUEHALL_PRINTER": "file:/tmp/x.bin", "QUEUEHALL_KIOSK_PIN_HASH": other, "QUEUEHALL_PAPER": "80"}
    opts = resolve_options(_args("--config", str(cfg), "--print-mode", "text", "--lang", "zh"), environ=env)
    assert opts.printer == {"backend": "file", "path": "/tmp/x.bin", "mode": "text", "paper_mm": 80,
                            "profile": "TM-T88V"}
    assert opts.settings.pin_hash == other and opts.settings.language == "zh"
    opts = resolve_options(_args(), environ={})
    assert opts.printer is None and opts.pin_is_default and opts.settings.pin_hash == ""


def test_no_default_staff_pin_and_no_plain_one(tmp_path: Path) -> None:
    """A public touch screen never opens its settings with a PIN anyone can look up: without a hash set at
    installation the pad says how to set one; a plain PIN in the config or the environment is refused."""
    m = KioskModel(settings=KioskSettings(), clock=ManualClock(TUESDAY_9).now)
    ok, msg = m.enter_pin("123456")
    assert not ok and "queuehall kiosk-pin" in msg.zh and "queuehall kiosk-pin" in msg.en and not m.unlocked
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text('[kiosk]\npin = "2468"\n', encoding="utf-8")
    for args, env in ((("--config", str(cfg)), {}), ((), {"QUEUEHALL_KIOSK_PIN": "2468"})):
        with pytest.raises(KioskConfigError) as err:
            resolve_options(_args(*args), environ=env)
        assert err.value.code == "KIOSK_PLAIN_PIN"
    with pytest.raises(KioskConfigError) as err:
        KioskSettings(pin_hash="123456")
    assert err.value.code == "KIOSK_BAD_PIN_HASH"


def test_the_kiosk_pin_command_prints_only_a_hash() -> None:
    done = subprocess.run([sys.executable, "-m", "queuehall.cli", "kiosk-pin", "--stdin"], input="86420\n",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith('pin_hash = "scrypt$') and "86420" not in line
    assert verify_pin("86420", line.split('"')[1]) and not verify_pin("86421", line.split('"')[1])
    bad = subprocess.run([sys.executable, "-m", "queuehall.cli", "kiosk-pin", "--stdin"], input="12\n",
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "KIOSK_BAD_PIN" in bad.stderr


@pytest.mark.parametrize(("text", "argv", "code"), [
    ('[kiosk]\npinn = "1234"\n', (), "KIOSK_CONFIG_UNKNOWN_KEY"),
    ("[kiosk\n", (), "KIOSK_CONFIG_SYNTAX"),
    ('[kiosk]\npin = "2468"\n', (), "KIOSK_PLAIN_PIN"),
    ('[kiosk]\npin_hash = "2468"\n', (), "KIOSK_BAD_PIN_HASH"),
    ("", ("--pin-hash", "scrypt$x"), "KIOSK_BAD_PIN_HASH"),
    ("", ("--printer", "lp0"), "KIOSK_BAD_PRINTER"),
    ("", ("--key", "k"), "KIOSK_BAD_OPTION"),
    ("", ("--broker", "nohost"), "KIOSK_BAD_BROKER"),
    ("[kiosk]\nreturn_seconds = -1\n", (), "KIOSK_BAD_OPTION"),
])
def test_bad_options(tmp_path: Path, text: str, argv: tuple[str, ...], code: str) -> None:
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(KioskConfigError) as err:
        resolve_options(_args("--config", str(cfg), *argv), environ={})
    assert err.value.code == code and err.value.zh and err.value.en


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(KioskConfigError) as err:
        read_config_file(str(tmp_path / "nope.toml"))
    assert err.value.code == "KIOSK_CONFIG_UNREADABLE"

