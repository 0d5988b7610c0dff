"""The ticket page in a real browser: Debian's chromium, headless, driven by Playwright.

A ticket is taken at the real kiosk (its window on the offscreen platform, printing raster ESC/POS to a
file printer); its QR code is decoded from the printed image with zxing-cpp; the URL it holds is opened
at a phone's size (360x740) and a desktop's (1280x800); a counter calls the ticket and the page must
turn into "请到 N 号窗口" by itself (Server-Sent Events). Screenshots go to tests/artifacts/web/.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QApplication
from queuehall.broker.config import load_config
from queuehall.tools.escpos_decode import decode, decoded_to_png

from queuehall.client import BrokerClient
from queuehall.simulation import DEMO_PINS
from tests import broker_fixtures
from tests.test_kiosk_gui import click, make_kiosk, wait_screen
from tests.web_fixtures import Gateway, free_port, start_gateway_fixture

zxingcpp = pytest.importorskip("zxingcpp")
playwright_api = pytest.importorskip("playwright.sync_api")

_APP = QCoreApplication.instance() or QApplication([])
start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_gateway = start_gateway_fixture

ARTIFACTS = Path(__file__).parent / "artifacts" / "web"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PAGE_LIMIT_BYTES = 60 * 1024

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                                "(scripts/setup-system.sh installs it)")


@pytest.fixture(name="browser", scope="module")
def browser_fixture() -> Any:
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _printed_qr(path: Path, png: Path) -> str:
    """The QR code's text, read by zxing-cpp from the image of what the printer was sent."""
    from PIL import Image

    decoded_to_png(path.read_bytes(), png)
    found = [r.text for r in zxingcpp.read_barcodes(Image.open(png).convert("L"))]
    assert len(found) == 1, found
    return found[0]


def test_printed_qr_opens_the_live_ticket_page(qtbot: Any, start_broker: Any, start_gateway: Any, browser: Any,
                                               tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = replace(load_config(), public_base_url=base)
    hall = start_broker(config)
    gw: Gateway = start_gateway(hall, port=port)
    assert gw.url == base
    hall.tickets = lambda: []  # make_kiosk's broker interface (only the endpoint and clock are used)
    (tmp_path / "printer").mkdir()
    printer = tmp_path / "printer" / "tickets.bin"
    kiosk = make_kiosk(qtbot, hall, printer, mode="raster")
    try:
        # Someone is already waiting: the page must say one person is ahead.
        c = BrokerClient(hall.endpoint, timeout=3.0)
        c.request("take_ticket", service="passport")
        wait_screen(qtbot, kiosk, kiosk.model.screen.__class__.START)
        click(qtbot, kiosk.start_page.dept_buttons["exit_entry"])
        click(qtbot, kiosk.start_page.tiles["passport"])
        wait_screen(qtbot, kiosk, kiosk.model.screen.__class__.DETAILS)
        click(qtbot, kiosk.details_page.confirm)
        wait_screen(qtbot, kiosk, kiosk.model.screen.__class__.CONFIRMATION)
        qtbot.waitUntil(lambda: printer.exists() and decode(printer.read_bytes()).cut_count == 1, timeout=5000)
    finally:
        kiosk.shutdown()
    url = _printed_qr(printer, ARTIFACTS / "printed-ticket.png")
    assert url.startswith(f"{base}/t/") and len(url.rsplit("/", 1)[1]) >= 22

    # The phone: 360 px wide. Everything the page loads is counted.
    phone = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2, is_mobile=True,
                                has_touch=True, locale="zh-CN")
    page = phone.new_page()
    sizes: dict[str, int] = {}
    page.on("response", lambda r: sizes.__setitem__(r.url, len(r.body()) if r.request.resource_type != "eventsource"
                                                    else 0))
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(base) else outside.append(r.url))
    page.goto(url)
    head = page.locator("#head")
    assert head.inner_text().startswith("前面还有 1 人")
    assert "1 person ahead of you" in head.inner_text()
    assert page.locator("#num").inner_text() == "A002"
    assert page.locator("#materials li").count() >= 3  # the materials list (一次性告知)
    page.wait_for_function("() => !document.documentElement.classList.contains('offline')")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360  # nothing wider than the phone
    page.screenshot(path=str(ARTIFACTS / "ticket-phone-waiting.png"), full_page=True)
    total = sum(sizes.values())
    assert total <= PAGE_LIMIT_BYTES, sizes
    assert not outside, outside  # no CDN, no font, nothing from elsewhere
    (ARTIFACTS / "page-size.txt").write_text(f"{total} bytes: {sizes}\n", encoding="utf-8")

    desktop = browser.new_context(viewport={"width": 1280, "height": 800})
    wide = desktop.new_page()
    wide.goto(url)
    wide.screenshot(path=str(ARTIFACTS / "ticket-desktop-waiting.png"))

    # A counter calls: A001 first, then this ticket. The page changes by itself.
    pin = DEMO_PINS["c01a"]
    c.request("sign_in", counter=1, clerk="c01a", pin=pin)
    c.request("call_next", counter=1)
    page.wait_for_function("() => document.getElementById('head').textContent.startsWith('下一位就是您')",
                           timeout=3000)
    for step in ("start", "finish", "call_next"):
        c.request(step, counter=1)
    page.wait_for_function("() => document.getElementById('head').textContent.startsWith('请到 1 号窗口')",
                           timeout=2000)
    assert "Please go to window 1" in head.inner_text()
    assert "status-called" in page.locator("#card").get_attribute("class")
    assert page.title().startswith("请到 1 号窗口")  # set by the script when it chimed
    page.screenshot(path=str(ARTIFACTS / "ticket-phone-called.png"), full_page=True)
    wide.wait_for_function("() => document.getElementById('head').textContent.startsWith('请到 1 号窗口')",
                           timeout=2000)
    wide.screenshot(path=str(ARTIFACTS / "ticket-desktop-called.png"))

    # After the visit the page says so.
    c.request("start", counter=1)
    c.request("finish", counter=1)
    page.wait_for_function("() => document.getElementById('head').textContent.startsWith('办理完毕')", timeout=2000)
    page.screenshot(path=str(ARTIFACTS / "ticket-phone-finished.png"), full_page=True)

    # A wrong token: a clear page, nothing revealed.
    other = phone.new_page()
    other.goto(f"{base}/t/{'x' * 22}")
    assert "没有找到此号票" in other.content() and "Ticket not found" in other.content()
    other.screenshot(path=str(ARTIFACTS / "ticket-phone-not-found.png"))
    other.close()

    # The broker goes away: the page keeps the place and says the hall is unreachable.
    c.close()
    hall.stop()
    page.wait_for_function("() => document.documentElement.classList.contains('offline')", timeout=8000)
    page.screenshot(path=str(ARTIFACTS / "ticket-phone-offline.png"), full_page=True)

    phone.close()
    desktop.close()
    shutil.rmtree(tmp_path / "printer", ignore_errors=True)
