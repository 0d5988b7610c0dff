"""Check-in through the kiosk's real widgets (pytest-qt, offscreen) against a real broker on loopback and a file
printer: a USB barcode scanner's keystrokes (QTest.keyClicks, fast, ending with Enter) on any page, the
booking keypad, the checked-in page and the refusals. Screenshots go to tests/artifacts/kiosk/checkin-*.png."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from queuehall.broker.config import load_config
from queuehall.broker.server import Broker
from queuehall.broker.storage import load_hall, open_store
from queuehall.kiosk.model import Screen
from queuehall.kiosk.window import KioskWindow

from queuehall.clock import ManualClock
from tests.hall_factory import install_pins
from tests.test_kiosk_gui import (
    TUESDAY_9,
    RunningBroker,
    _free_port_pair,
    click,
    make_kiosk,
    printed,
    shot,
    wait_screen,
)
from tests.test_kiosk_gui import (
    _screenshots_written as _screenshots_written,  # the screenshots are written before the module ends
)
from tests.test_kiosk_gui import empty_db as empty_db

PUBLIC = "https://queue.example.gov.cn"


@pytest.fixture
def hall(tmp_path: Path, empty_db: Path) -> Iterator[RunningBroker]:
    """The default hall with a public address for its ticket pages (so remote tickets' QR codes hold it)."""
    clock = ManualClock(TUESDAY_9)
    shutil.copy(empty_db, tmp_path / "h.db")
    store = open_store(f"sqlite:///{tmp_path}/h.db")
    config = replace(load_config(), public_base_url=PUBLIC)
    install_pins(store, config)
    hall = load_hall(config, clock, store)
    port = _free_port_pair()
    broker = Broker(hall, host="127.0.0.1", port=port)
    broker.bind()
    thread = threading.Thread(target=broker.serve_forever, name="test-broker", daemon=True)
    thread.start()
    running = RunningBroker(broker, clock, port, thread)
    yield running
    running.stop()
    store.close()


@pytest.fixture
def kiosk(qtbot: Any, hall: RunningBroker, tmp_path: Path) -> Iterator[KioskWindow]:
    (tmp_path / "printer").mkdir()
    w = make_kiosk(qtbot, hall, tmp_path / "printer" / "tickets.bin")
    wait_screen(qtbot, w, Screen.START)
    yield w
    w.shutdown()


def scan(target: Any, text: str) -> None:
    """What a USB scanner in keyboard mode does: the read typed fast, then Enter."""
    QTest.keyClicks(target, text)
    QTest.keyClick(target, Qt.Key.Key_Return)


def test_a_remote_ticket_is_checked_in_by_the_scanner_on_the_start_page(qtbot: Any, hall: RunningBroker,
                                                                        kiosk: KioskWindow, tmp_path: Path) -> None:
    taken = hall.request("take_ticket", service="passport", channel="remote")
    assert taken["url"].startswith(f"{PUBLIC}/t/")
    assert kiosk.checkin.button.isVisible() and "预约签到" in kiosk.checkin.button.text()
    shot(kiosk, "checkin-00-start-with-entry")
    scan(kiosk, taken["url"])
    wait_screen(qtbot, kiosk, Screen.CHECKED_IN)
    page = kiosk.checkin.done
    assert page.number.text() == taken["ticket"]["label"]
    assert "签到成功" in page.head.text() and "Checked in" in page.head_sub.text()
    shot(kiosk, "checkin-01-remote-ticket-checked-in")
    assert printed(tmp_path / "printer" / "tickets.bin") == b""  # the phone holds the ticket
    assert hall.request("ticket_by_token", token=taken["token"])["ticket"]["checked_in"] is True
    click(qtbot, page.done)
    wait_screen(qtbot, kiosk, Screen.START)


def test_a_scan_is_recognised_on_any_page_and_its_keys_are_never_taps(qtbot: Any, hall: RunningBroker,
                                                                      kiosk: KioskWindow) -> None:
    taken = hall.request("take_ticket", service="passport", channel="remote")
    click(qtbot, kiosk.start_page.dept_buttons["exit_entry"])
    click(qtbot, kiosk.start_page.tiles["passport"])
    wait_screen(qtbot, kiosk, Screen.DETAILS)
    # The keys reach the page's button first (as they would the focused widget), which leaves them to the window.
    scan(kiosk.details_page.confirm, taken["url"])
    wait_screen(qtbot, kiosk, Screen.CHECKED_IN)
    assert kiosk.checkin.done.number.text() == taken["ticket"]["label"]
    labels = [t["label"] for t in hall.tickets()]
    assert labels == [taken["ticket"]["label"]]  # no ticket taken by the scan's Enter on the details page


def test_slow_typing_is_not_a_scan(qtbot: Any, hall: RunningBroker, kiosk: KioskWindow) -> None:
    taken = hall.request("take_ticket", service="passport", channel="remote")
    now = [100.0]

    def slow() -> float:  # a person at a keyboard: a quarter of a second between keys
        now[0] += 0.25
        return now[0]

    kiosk.checkin.clock = slow
    scan(kiosk, taken["url"])
    qtbot.wait(200)
    assert kiosk.model.screen == Screen.START
    assert hall.request("ticket_by_token", token=taken["token"])["ticket"]["checked_in"] is False


def test_refusals_are_shown_in_both_languages_and_time_out(qtbot: Any, hall: RunningBroker,
                                                           kiosk: KioskWindow) -> None:
    scan(kiosk, "6901234567892")  # a product's barcode
    wait_screen(qtbot, kiosk, Screen.CHECKIN_REFUSED)
    page = kiosk.checkin.refused
    assert page.title.text() == "无法识别此二维码" and page.title_sub.text() == "This code is not recognised"
    assert "12号窗口" in page.body.text() and "Window 12" in page.body_sub.text()
    shot(kiosk, "checkin-02-refused-not-recognised")
    walk_in = hall.request("take_ticket", service="passport")["ticket"]
    scan(kiosk, f"queuehall:ticket:{walk_in['id']}:{walk_in['label']}:{walk_in['business_day']}")
    qtbot.waitUntil(lambda: kiosk.model.message is not None and kiosk.model.message.code == "NOT_REMOTE",
                    timeout=5000)
    wait_screen(qtbot, kiosk, Screen.CHECKIN_REFUSED)
    assert page.title.text() == "这张号票无需签到"
    shot(kiosk, "checkin-03-refused-not-remote")
    wait_screen(qtbot, kiosk, Screen.START, timeout=3000)  # message_ms later, back to the start by itself


def test_the_keypad_takes_the_booking_alphabet(qtbot: Any, kiosk: KioskWindow) -> None:
    click(qtbot, kiosk.checkin.button)
    wait_screen(qtbot, kiosk, Screen.CHECKIN)
    page = kiosk.checkin.keypad
    assert set(page.keys) == set("23456789ABCDEFGHJKMNPQRSTUVWXYZ")
    for ch in "K7M3Q9":
        click(qtbot, page.keys[ch])
    assert page.code.text() == "K7M3 Q9__ __"
    click(qtbot, page.back_key)
    assert kiosk.model.code_entry == "K7M3Q"
    click(qtbot, page.go)  # too short: said so, nothing sent
    assert kiosk.model.screen == Screen.CHECKIN and "10" in page.hint.text()
    shot(kiosk, "checkin-04-keypad")
    kiosk.model.set_language("en")
    kiosk.redraw()
    shot(kiosk, "checkin-05-keypad-en")
    click(qtbot, page.back)
    wait_screen(qtbot, kiosk, Screen.START)


def keypad_shape(page: Any, portrait: bool, name: str) -> list[str]:
    """Issue 15: on a portrait kiosk the keys are not tall empty tiles. Every key (letters, 退格, 清除) is at
    most 1.3 × as tall as it is wide there, "签到 Check in" is at least as tall as a key, and the two-word keys
    keep room either side of their text (not touching their borders in large text)."""
    problems: list[str] = []
    letters = list(page.keys.values())
    tallest = max(b.height() for b in letters)
    if portrait:
        for b in (*letters, page.back_key):
            if b.height() > 1.3 * b.width():
                problems.append(f"{name}: key {b.text()!r} is {b.width()}x{b.height()} (taller than 1.3 × wide)")
    if page.go.height() < tallest - 1:  # the grid shares odd pixels between its rows
        problems.append(f"{name}: 签到 is {page.go.height()} px high, a key {tallest} px")
    for b in (page.back_key, page.clear_key):
        fm = b.fontMetrics()
        text = max((fm.horizontalAdvance(line) for line in b.text().split("\n")), default=0)
        room = (b.width() - text) / 2
        if room < 0.08 * b.width():
            problems.append(f"{name}: {b.text()!r} leaves {room:.0f} px either side in a {b.width()} px key")
    return problems


@pytest.mark.parametrize("large", [False, True], ids=["normal", "large"])
@pytest.mark.parametrize("size", [(1920, 1080), (1366, 768), (1280, 1024), (1080, 1920)],
                         ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_check_in_pages_fit_every_size_in_both_languages(qtbot: Any, hall: RunningBroker, kiosk: KioskWindow,
                                                             size: tuple[int, int], large: bool) -> None:
    """Every check-in page at every kiosk size in both languages, in normal type and in the large-text,
    high-contrast mode (适老化), whose type is larger on these pages too."""
    from tests.layout_check import check, tag

    kiosk.resize(*size)
    taken = hall.request("take_ticket", service="passport", channel="remote")
    problems: list[str] = []
    for lang in ("zh", "en"):
        t = f"kiosk-{tag(size)}-{lang}-checkin" + ("-large" if large else "")
        kiosk.model.set_language(lang)
        kiosk.redraw()
        normal = kiosk.checkin.keypad.title.fontInfo().pixelSize()
        if large:
            click(qtbot, kiosk.header.large)  # the citizen's one tap on the start screen
            assert kiosk.model.large_text
        problems += check(qtbot, kiosk, size, f"{t}-start")
        click(qtbot, kiosk.checkin.button)
        wait_screen(qtbot, kiosk, Screen.CHECKIN)
        if large:  # the check-in pages follow the mode: larger type, black on white
            title = kiosk.checkin.keypad.title.fontInfo().pixelSize()
            assert title >= normal * 1.25, f"{t}: the check-in title is {title} px in large text, {normal} px normally"
        for ch in "K7M3Q":
            click(qtbot, kiosk.checkin.keypad.keys[ch])
        click(qtbot, kiosk.checkin.keypad.go)  # too short: the hint shows too
        problems += check(qtbot, kiosk, size, f"{t}-keypad")
        problems += keypad_shape(kiosk.checkin.keypad, portrait=size[1] > size[0], name=f"{t}-keypad")
        scan(kiosk, "6901234567892")
        wait_screen(qtbot, kiosk, Screen.CHECKIN_REFUSED)
        problems += check(qtbot, kiosk, size, f"{t}-refused")
        if lang == "zh":
            scan(kiosk, taken["url"])
            wait_screen(qtbot, kiosk, Screen.CHECKED_IN)
        else:  # the same page for an English reader (its ticket is checked in already: shown from the model)
            kiosk.model.checked_in = {"ticket": taken["ticket"]}
            kiosk.model.phase = kiosk.model.phase.__class__.CHECKED_IN
            kiosk.redraw()
            wait_screen(qtbot, kiosk, Screen.CHECKED_IN)
        problems += check(qtbot, kiosk, size, f"{t}-checked-in")
        kiosk.model.on_timeout()  # ends the large-text mode too: the next citizen starts afresh
        kiosk.redraw()
        wait_screen(qtbot, kiosk, Screen.START)
        assert not kiosk.model.large_text
    assert problems == [], "\n".join(problems)


def test_a_booking_of_another_day_is_refused_and_a_late_one_typed_on_the_keypad_is_a_normal_ticket(
        qtbot: Any, hall: RunningBroker, kiosk: KioskWindow, tmp_path: Path) -> None:
    tomorrow = hall.request("book", service="passport", slot="2026-11-25T10:00")["booking"]
    today = hall.request("book", service="passport", slot="2026-11-24T10:00")["booking"]
    scan(kiosk, tomorrow["qr"])
    wait_screen(qtbot, kiosk, Screen.CHECKIN_REFUSED)
    page = kiosk.checkin.refused
    assert page.title.text() == "不是今天的预约" and page.title_sub.text() == "This booking is not for today"
    assert "2026-11-25" in page.body.text() or "11-25" in page.body.text()
    shot(kiosk, "checkin-07-refused-wrong-day")
    hall.clock.set(TUESDAY_9.replace(hour=10, minute=25))  # past 10:10, the end of the 10:00 slot's check-in window
    click(qtbot, page.retry)
    wait_screen(qtbot, kiosk, Screen.CHECKIN)
    for ch in today["code"]:
        click(qtbot, kiosk.checkin.keypad.keys[ch])
    assert kiosk.checkin.keypad.code.text().replace(" ", "") == today["code"]
    click(qtbot, kiosk.checkin.keypad.go)
    wait_screen(qtbot, kiosk, Screen.CHECKED_IN, timeout=8000)
    done = kiosk.checkin.done
    assert "已过预约签到时间" in done.head.text() and "普通号" in done.line.text()
    assert "normal ticket" in done.line_sub.text()
    shot(kiosk, "checkin-08-late-normal-ticket")
    printer = tmp_path / "printer" / "tickets.bin"
    qtbot.waitUntil(lambda: bool(printed(printer)), timeout=5000)


def test_the_scanner_checks_a_booking_in_from_either_qr_form(qtbot: Any, hall: RunningBroker,
                                                             kiosk: KioskWindow) -> None:
    """Issue 19: with the hall's public address known, a booking's QR carries its page (/b/CODE) so a phone's
    camera opens it; a QR printed or shown before (``queuehall:booking:CODE``) still works. Both typed by the
    scanner (fast keystrokes, then Enter) on the start page check the citizen in."""
    page_qr = hall.request("book", service="passport", slot="2026-11-24T10:00")["booking"]
    older = hall.request("book", service="passport", slot="2026-11-24T10:00")["booking"]
    assert page_qr["qr"] == f"{PUBLIC}/b/{page_qr['code']}"
    hall.clock.set(TUESDAY_9.replace(hour=9, minute=50))
    for text, booking in ((page_qr["qr"], page_qr), (f"queuehall:booking:{older['code']}", older)):
        wait_screen(qtbot, kiosk, Screen.START)
        scan(kiosk, text)
        wait_screen(qtbot, kiosk, Screen.CHECKED_IN, timeout=8000)
        assert kiosk.checkin.done.head.text() == "您预约的 10:00 普通护照申请"
        label = kiosk.checkin.done.number.text()
        got = hall.request("booking", code=booking["code"])["booking"]
        assert got["state"] == "checked_in" and got["ticket"] == label
        click(qtbot, kiosk.checkin.done.done)
