"""Appointments on the web gateway (web/bookings.py, docs/web.md "Bookings"): the REST endpoints against a real
broker (the default hall's appointment slots) behind real API tokens, and the booking's page in Debian's headless
Chromium at a phone's size: its size, nothing from elsewhere, its QR code read back from the screenshot with
zxing-cpp and scanned at a real kiosk, which prints the appointment ticket."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from queuehall.broker import keys
from queuehall.broker.config import load_config
from queuehall.kiosk.model import Screen
from queuehall.tools.escpos_decode import decode
from queuehall.web.bookings import qr_svg, slot_text, spaced
from queuehall.web.integrations import document

from queuehall.client import BrokerClient
from queuehall.clock import ManualClock
from tests import broker_fixtures, web_fixtures
from tests.broker_fixtures import BrokerThread, security
from tests.hall_factory import TUESDAY, local
from tests.test_web_api import gateway_parts, make_tokens
from tests.web_fixtures import Gateway, free_port

_APP = QCoreApplication.instance() or QApplication([])
start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
keys_dir_fixture = broker_fixtures.keys_dir_fixture
start_gateway_fixture = web_fixtures.start_gateway_fixture

ARTIFACTS = Path(__file__).parent / "artifacts" / "web"
CHROMIUM = "/usr/bin/chromium"
PAGE_LIMIT_BYTES = 60 * 1024
TZ = ZoneInfo("Asia/Shanghai")
DAY = TUESDAY.isoformat()


class Web:
    """A broker of the default hall, a gateway with the integrations, and one API token per scope."""

    def __init__(self, broker: BrokerThread, gateway: Gateway, tokens: dict[str, str], clock: ManualClock) -> None:
        self.broker, self.gateway, self.tokens, self.clock = broker, gateway, tokens, clock

    def call(self, method: str, path: str, scope: str | None = None, key: str | None = None,
             **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if scope is not None:
            headers["Authorization"] = f"Bearer {self.tokens[scope]}"
        if key is not None:
            headers["Idempotency-Key"] = key
        return httpx.request(method, self.gateway.url + path, headers=headers, timeout=10, **kw)

    def free_slot(self, service: str = "passport", after: str = "10:00") -> str:
        r = self.call("GET", f"/api/v1/services/{service}/slots?date={DAY}")
        assert r.status_code == 200, r.text
        slots = r.json()["slots"]
        return next(s["start"] for s in slots if s["free"] > 0 and s["start"][11:] >= after)


@pytest.fixture
def web(tmp_path: Path, start_broker: Callable[..., BrokerThread], start_gateway: Callable[..., Gateway],
        manual_clock: ManualClock) -> Iterator[Web]:
    manual_clock.set(local(TUESDAY, 9))
    port = free_port()
    broker = start_broker(replace(load_config(), public_base_url=f"http://127.0.0.1:{port}"))
    state = tmp_path / "web.db"
    tokens = make_tokens(state)
    gw = start_gateway(broker, parts=gateway_parts(state), port=port)
    document(gw.app.state.openapi)
    yield Web(broker, gw, tokens, manual_clock)


def err(r: httpx.Response) -> str:
    body = r.json()
    assert body["status"] == "error" and body["error"]["message_zh"] and body["error"]["message_en"], body
    return str(body["error"]["code"])


def test_book_look_up_list_cancel_and_check_in_over_rest(web: Web) -> None:
    slot = web.free_slot()
    r = web.call("POST", "/api/v1/bookings", "kiosk", key="order-1",
                 json={"service": "passport", "slot": slot, "contact": "13812345678"})
    assert r.status_code == 201, r.text
    booking = r.json()["booking"]
    code = booking["code"]
    assert booking["state"] == "booked" and booking["slot"] == slot
    assert booking["qr"] == f"{web.gateway.url}/b/{code}"  # the page: a phone's camera opens it
    assert booking["contact_masked"] == "138****5678" and "13812345678" not in r.text
    assert r.json()["url"] == f"{web.gateway.url}/b/{code}"
    again = web.call("POST", "/api/v1/bookings", "kiosk", key="order-1",
                     json={"service": "passport", "slot": slot, "contact": "13812345678"})
    assert again.status_code == 201 and again.json()["booking"]["code"] == code  # the same booking, once
    assert web.call("GET", f"/api/v1/bookings/{code.lower()}", "kiosk").json()["booking"]["code"] == code

    # Scopes: writes need a kiosk token, the day's list an admin one.
    assert err(web.call("POST", "/api/v1/bookings", json={"service": "passport", "slot": slot})) == "UNAUTHORIZED"
    assert err(web.call("POST", "/api/v1/bookings", "read", json={"service": "passport", "slot": slot})) == \
        "TOKEN_SCOPE"
    assert err(web.call("GET", f"/api/v1/bookings?date={DAY}", "kiosk")) == "TOKEN_SCOPE"
    listed = web.call("GET", f"/api/v1/bookings?date={DAY}&service=passport", "admin")
    assert listed.status_code == 200 and [b["code"] for b in listed.json()["bookings"]] == [code]

    # Bad input: clear codes, nothing changed.
    assert web.call("GET", "/api/v1/services/passport/slots?date=2026-13-01").status_code == 400
    assert err(web.call("GET", "/api/v1/services/nope/slots?date=" + DAY)) == "UNKNOWN_SERVICE"
    bad = web.call("POST", "/api/v1/bookings", "kiosk", json={"service": "passport", "slot": slot[:10] + "T12:07"})
    assert bad.status_code == 409 and err(bad).startswith("SLOT_")
    assert web.call("POST", "/api/v1/bookings", "kiosk", content=b"[1]").status_code == 400
    wrong = web.call("GET", "/api/v1/bookings/23456789AB", "kiosk")
    assert wrong.status_code == 404 and err(wrong) in ("BOOKING_NOT_FOUND", "BOOKING_CODE_INVALID")

    # The citizen arrives within the window: an appointment ticket.
    web.clock.set(datetime.fromisoformat(slot).replace(tzinfo=TZ))
    r = web.call("POST", f"/api/v1/bookings/{code}/check-in", "kiosk")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["late"] is False and body["ticket"]["appointment"] is True
    assert body["booking"]["state"] == "checked_in" and body["booking"]["ticket"] == body["ticket"]["label"]
    assert err(web.call("POST", f"/api/v1/bookings/{code}/check-in", "kiosk")) == "BOOKING_ALREADY_CHECKED_IN"

    # Another booking, cancelled: it can no longer be checked in.
    other = web.call("POST", "/api/v1/bookings", "kiosk", json={"service": "passport", "slot": web.free_slot(
        after="14:00")}).json()["booking"]["code"]
    gone = web.call("DELETE", f"/api/v1/bookings/{other}", "kiosk")
    assert gone.status_code == 200 and gone.json()["booking"]["state"] == "cancelled"
    assert err(web.call("POST", f"/api/v1/bookings/{other}/check-in", "kiosk")) == "BOOKING_CANCELLED"

    doc = web.call("GET", "/api/v1/openapi.json").json()
    for path in ("/api/v1/services/{code}/slots", "/api/v1/bookings", "/api/v1/bookings/{code}",
                 "/api/v1/bookings/{code}/check-in"):
        assert path in doc["paths"], path
    assert set(doc["paths"]["/api/v1/bookings/{code}"]) == {"get", "delete"}
    assert "Booking" in doc["components"]["schemas"]


def test_the_page_helpers() -> None:
    assert spaced("K7M3Q9XPAB") == "K7M3 Q9XP AB"
    when = slot_text("2026-12-08T10:00", "2026-12-08T10:30")
    assert when == {"zh": "2026年12月8日（周二）10:00–10:30", "en": "Tue 8 Dec 2026, 10:00–10:30"}
    svg = qr_svg("queuehall:booking:K7M3Q9XPAB")
    assert svg.startswith("<svg") and "<script" not in svg and len(svg) < 6000


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_the_booking_page_on_a_phone_and_its_qr_code_at_the_kiosk(web: Web, qtbot: Any, tmp_path: Path) -> None:
    zxingcpp = pytest.importorskip("zxingcpp")
    playwright_api = pytest.importorskip("playwright.sync_api")
    from PIL import Image

    from tests.test_kiosk_gui import make_kiosk, wait_screen
    from tests.test_web_browser import CHROMIUM_ARGS

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    slot = web.free_slot()
    r = web.call("POST", "/api/v1/bookings", "kiosk", json={"service": "passport", "slot": slot,
                                                           "contact": "110101199003071234"})
    assert r.status_code == 201, r.text
    code, url = r.json()["booking"]["code"], r.json()["url"]
    base = web.gateway.url
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            phone = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2,
                                        is_mobile=True, has_touch=True, locale="zh-CN")
            page = phone.new_page()
            sizes: dict[str, int] = {}
            page.on("response", lambda resp: sizes.__setitem__(resp.url, len(resp.body())))
            outside: list[str] = []
            page.on("request", lambda req: None if req.url.startswith(base) else outside.append(req.url))
            page.goto(url)
            assert page.locator("#code").inner_text() == spaced(code)
            text = page.locator("main").inner_text()
            assert "预约成功" in text and "Booked" in text and "普通护照申请" in text
            assert slot_text(slot)["zh"][:10] in text and slot[11:] in text
            assert "1234" not in page.content() and "110101" not in page.content()  # nothing personal
            assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
            shot = ARTIFACTS / "booking-phone.png"
            page.screenshot(path=str(shot), full_page=True)
            total = sum(sizes.values())
            assert total <= PAGE_LIMIT_BYTES, sizes
            assert not outside, outside
            (ARTIFACTS / "booking-page-size.txt").write_text(f"{total} bytes: {sizes}\n", encoding="utf-8")
            found = [b.text for b in zxingcpp.read_barcodes(Image.open(shot).convert("L"))]
            assert found == [url] == [f"{base}/b/{code}"], found  # the page's address, the kiosk reads it too
            missing = phone.new_page()
            response = missing.goto(f"{base}/b/23456789AB")
            assert response is not None and response.status == 404
            assert "没有找到此预约" in missing.content() and "Booking not found" in missing.content()
            missing.screenshot(path=str(ARTIFACTS / "booking-phone-not-found.png"))
            phone.close()
        finally:
            browser.close()

    # The QR code read from the phone's screen, scanned at the kiosk five minutes before the slot.
    web.clock.set(datetime.fromisoformat(slot).replace(tzinfo=TZ) - timedelta(minutes=5))
    (tmp_path / "printer").mkdir()
    printer = tmp_path / "printer" / "tickets.bin"
    web.broker.tickets = lambda: []  # make_kiosk's broker interface (only the endpoint and clock are used)
    kiosk = make_kiosk(qtbot, web.broker, printer, mode="text")
    try:
        wait_screen(qtbot, kiosk, Screen.START)
        QTest.keyClicks(kiosk, found[0])
        QTest.keyClick(kiosk, Qt.Key.Key_Return)
        wait_screen(qtbot, kiosk, Screen.CHECKED_IN, timeout=8000)
        page_ = kiosk.checkin.done
        assert page_.head.text() == f"您预约的 {slot[11:]} 普通护照申请"
        assert page_.head_sub.text() == f"Your {slot[11:]} appointment: Ordinary passport application"
        qtbot.waitUntil(lambda: printer.exists() and decode(printer.read_bytes()).cut_count == 1, timeout=5000)
        texts = decode(printer.read_bytes()).texts
        assert any("预约" in t and slot[11:] in t for t in texts), texts
        from tests.test_kiosk_gui import shot as kiosk_shot

        kiosk_shot(kiosk, "checkin-06-booking-from-phone")
    finally:
        kiosk.shutdown()


def test_booking_pages_are_rate_limited_per_address(tmp_path: Path, start_broker: Callable[..., BrokerThread],
                                                    start_gateway: Callable[..., Gateway]) -> None:
    from queuehall.web.ratelimit import Limit, RateLimits

    broker = start_broker(load_config())
    limits = RateLimits(per_token=Limit(1000, 1000), per_address=Limit(0.01, 3))
    gw = start_gateway(broker, parts=gateway_parts(tmp_path / "web.db", limits))
    codes = [gw.get("/b/23456789AB").status_code for _ in range(4)]
    assert codes == [404, 404, 404, 429]  # codes cannot be tried by the thousand
    assert gw.get("/").status_code == 200  # the hall's page is not limited


def test_the_gateway_brakes_wrong_codes_per_address_and_the_broker_does_not_brake_the_gateway(
        tmp_path: Path, start_broker: Callable[..., BrokerThread], start_gateway: Callable[..., Gateway],
        manual_clock: ManualClock, keys_dir: Path) -> None:
    """The gateway is one device to the broker but stands for every citizen: it brakes each client address
    itself (queuehall/guesses.py) and the broker does not brake it. An address that gave ``N`` wrong codes
    within a minute is refused every code, page and API (429, Retry-After, bilingual); another address is not
    (with the broker braking the gateway as one device, as before, one guesser stopped everyone's pages); a
    minute later (the injected clock) the first address may try again. Here N = 2 at the gateway and the broker."""
    from queuehall.broker.appointments import new_code
    from queuehall.web.app import WebSettings
    from queuehall.web.ratelimit import Limit, RateLimits

    from queuehall.guesses import WrongCodes

    manual_clock.set(local(TUESDAY, 9))
    cfg = load_config()
    keys.add_device(keys_dir, "web-1", "web")  # the broker knows the gateway by its key (role web)
    broker = start_broker(replace(cfg, appointments=replace(cfg.appointments, wrong_codes_per_minute=2)),
                          keys_dir=keys_dir)
    limits = RateLimits(per_token=Limit(1000, 1000), per_address=Limit(1000, 1000))
    tokens = make_tokens(tmp_path / "web.db")
    port = free_port()
    settings = WebSettings(public_url=f"http://127.0.0.1:{port}", clock=manual_clock, code_brake=WrongCodes(2))
    gw = start_gateway(broker, port=port, settings=settings, parts=gateway_parts(tmp_path / "web.db", limits),
                       security=security(keys_dir, "web-1"))
    assert broker.broker is not None
    c = BrokerClient(broker.endpoint, security=security(keys_dir, "manager"))
    try:
        code = c.book("passport", "2026-11-24T10:00").code
    finally:
        c.close()
    other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=10)  # another citizen
    kiosk = {"Authorization": f"Bearer {tokens['kiosk']}"}
    try:
        guesses = [new_code(broker.broker.hall.hall_identity()) for _ in range(2)]  # well formed, never booked
        assert [gw.get(f"/b/{g}").status_code for g in guesses] == [404, 404]
        page = gw.get(f"/b/{code}")  # a real code, now refused all the same to this address
        assert page.status_code == 429 and int(page.headers["retry-after"]) == 60
        assert "请稍后再试" in page.text and "Please try again later" in page.text and code not in page.text
        api = httpx.get(f"{gw.url}/api/v1/bookings/{code}", headers=kiosk, timeout=10)
        assert api.status_code == 429 and int(api.headers["retry-after"]) == 60 and err(api) == "BOOKING_CODE_LIMIT"
        assert api.json()["error"]["message_zh"] and api.json()["error"]["message_en"]
        # Another address: served, though the gateway gave the broker as many wrong codes as it allows a device.
        assert other.get(f"{gw.url}/b/{code}").status_code == 200
        assert other.get(f"{gw.url}/api/v1/bookings/{code}", headers=kiosk).status_code == 200
        assert other.get(f"{gw.url}/b/{guesses[0]}").status_code == 404  # its first wrong code: not braked yet
        manual_clock.set(local(TUESDAY, 9, 1))
        assert gw.get(f"/b/{code}").status_code == 200
    finally:
        other.close()


def test_a_gateway_that_gives_too_few_wrong_codes_is_refused_at_start() -> None:
    """``queuehall web --wrong-codes 0`` would refuse every code: refused with a message, exit status 2."""
    import argparse

    from queuehall.web.main import add_arguments, run

    p = argparse.ArgumentParser()
    add_arguments(p)
    assert run(p.parse_args(["--broker", "127.0.0.1:5555", "--wrong-codes", "0"])) == 2
