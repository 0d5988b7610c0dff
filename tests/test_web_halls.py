"""One gateway for every hall of a city (issue 18; web/halls.py, docs/web.md "One gateway for every hall").

Three real brokers on loopback (Dongcheng, Haidian, Xicheng, each with its own hall id and its QR codes'
address ``{gateway}/h/<hall>``), one gateway built as ``queuehall web --broker dongcheng=… --broker haidian=…``
builds it, served by uvicorn: every hall's ticket pages, REST API (reads and writes behind tokens that may be
limited to a hall), bookings and supervision answer under ``/h/<hall>``; the first hall's also without the prefix,
as before. Haidian's ticket page is opened in Debian's headless Chromium and follows a call made at Haidian.
"""

from __future__ import annotations

import io
import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from queuehall.broker.appointments import new_code
from queuehall.broker.config import Text, load_config
from queuehall.web.apitokens import TokenError, TokenStore, allows_hall, parse_scope
from queuehall.web.halls import HallRouter, build
from queuehall.web.hub import Hub
from queuehall.web.ratelimit import Limit, RateLimits
from queuehall.web.supervision import ManagerStore

from queuehall.cli import main
from queuehall.client import BrokerClient, Link
from queuehall.simulation import DEMO_PINS
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, wait_until
from tests.hall_factory import TUESDAY, local
from tests.web_fixtures import free_port

start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture

NAMES = (("dongcheng", "东城出入境接待大厅", "Dongcheng exit-entry hall"),
         ("haidian", "海淀出入境接待大厅", "Haidian exit-entry hall"),
         ("xicheng", "西城出入境接待大厅", "Xicheng exit-entry hall"))
ARTIFACTS = Path(__file__).parent / "artifacts" / "web"
CHROMIUM = "/usr/bin/chromium"
GENEROUS = RateLimits(per_token=Limit(1000, 1000), per_address=Limit(1000, 1000))


class CityGateway:
    """``web.halls.build`` around one Hub per broker, served by uvicorn in a thread."""

    def __init__(self, brokers: list[BrokerThread], state: Path, port: int, keys: list[str]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        hubs = [(k, Hub(Link(b.endpoint, role="web", name=f"web-{k}", client_id=f"web-{k}")))
                for k, b in zip(keys, brokers, strict=True)]
        self.app: HallRouter = build(hubs, state=state, public_url=self.url, limits=GENEROUS, webhooks=False)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning",
                                                    access_log=False, lifespan="on", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> CityGateway:
        self.thread.start()
        wait_until(lambda: self.server.started, 10, "uvicorn")
        wait_until(lambda: all(h["connected"] for h in self.get("/api/v1/city").json()["halls"]), 10, "every hall")
        return self

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=5, **kw)

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, timeout=10, **kw)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        assert not self.thread.is_alive()


@dataclass
class City:
    brokers: list[BrokerThread]
    gw: CityGateway
    state: Path


@pytest.fixture(name="city")
def city_fixture(tmp_path: Path, start_broker: Any, manual_clock: Any) -> Iterator[City]:
    manual_clock.set(local(TUESDAY, 9))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Each hall's QR codes point at its own prefix of the one gateway (hall.toml public_base_url).
    brokers = [start_broker(replace(load_config(), name=Text(zh, en), hall_id=key, hall_id_given=True,
                                    public_base_url=f"{base}/h/{key}"))
               for key, zh, en in NAMES]
    state = tmp_path / "web-state.db"
    gw = CityGateway(brokers, state, port, [k for k, _zh, _en in NAMES]).start()
    yield City(brokers, gw, state)
    gw.stop()


def take(broker: BrokerThread, service: str = "passport") -> dict[str, Any]:
    c = BrokerClient(broker.endpoint, timeout=3.0)
    try:
        return c.request("take_ticket", service=service)
    finally:
        c.close()


def test_every_hall_is_served_under_its_prefix_and_the_first_also_without(city: City) -> None:
    gw, (dongcheng, haidian, _xicheng) = city.gw, city.brokers
    assert gw.get("/api/v1/hall").json()["hall"]["name"]["zh"] == "东城出入境接待大厅"  # unprefixed: the first hall
    assert gw.get("/h/dongcheng/api/v1/hall").json()["hall"]["name"]["zh"] == "东城出入境接待大厅"
    assert gw.get("/h/haidian/api/v1/hall").json()["hall"]["name"]["zh"] == "海淀出入境接待大厅"
    assert gw.get("/h/xicheng/api/v1/hall").json()["hall"]["name"]["en"] == "Xicheng exit-entry hall"

    # A ticket taken at Haidian: its QR code is Haidian's page on the gateway.
    taken = take(haidian)
    token, url = taken["token"], taken["url"]
    assert url == f"{gw.url}/h/haidian/t/{token}"
    page = gw.get(f"/h/haidian/t/{token}")
    assert page.status_code == 200 and "海淀出入境接待大厅" in page.text and taken["ticket"]["label"] in page.text
    assert 'data-base="/h/haidian"' in page.text  # where its script follows it
    api = gw.get(f"/h/haidian/api/v1/tickets/{token}")
    assert api.status_code == 200 and api.json()["ticket"]["hall"]["zh"] == "海淀出入境接待大厅"
    # Not another hall's ticket: the first hall (unprefixed) and Xicheng do not know it.
    assert gw.get(f"/t/{token}").status_code == 404
    assert gw.get(f"/h/xicheng/api/v1/tickets/{token}").json()["error"]["code"] == "UNKNOWN_TOKEN"
    # Its live stream under the prefix: the first state is the ticket's.
    with httpx.stream("GET", f"{gw.url}/h/haidian/api/v1/tickets/{token}/events", timeout=5) as r:
        line = next(line for line in r.iter_lines() if line.startswith("data: "))
    assert taken["ticket"]["label"] in line and "海淀" in line
    # The hall's own page and services.
    assert gw.get("/h/haidian/api/v1/services").json()["services"][0]["waiting"] == 1
    assert gw.get("/api/v1/services").json()["services"][0]["waiting"] == 0
    assert "海淀出入境接待大厅" in gw.get("/h/haidian/").text
    bare = gw.get("/h/haidian")
    assert bare.status_code == 307 and bare.headers["location"] == "/h/haidian/"
    # A first-hall ticket still works without the prefix, as on a gateway of one hall.
    first = take(dongcheng)
    assert first["url"] == f"{gw.url}/h/dongcheng/t/{first['token']}"
    assert gw.get(f"/t/{first['token']}").status_code == 200
    assert gw.get(f"/h/dongcheng/t/{first['token']}").status_code == 200

    # Unknown halls: a bilingual page, or the API's NOT_FOUND.
    nope = gw.get("/h/chaoyang/api/v1/hall")
    assert nope.status_code == 404 and nope.json()["error"]["code"] == "NOT_FOUND"
    page404 = gw.get("/h/chaoyang/t/" + "x" * 22)
    assert page404.status_code == 404 and "没有此大厅" in page404.text and "No such hall" in page404.text

    # The OpenAPI document names the per-hall addresses.
    doc = gw.get("/h/haidian/api/v1/openapi.json").json()
    assert doc["servers"][0]["url"] == f"{gw.url}/h/haidian"
    city_server = doc["servers"][-1]
    assert city_server["url"] == f"{gw.url}/h/{{hall}}"
    assert city_server["variables"]["hall"]["enum"] == ["dongcheng", "haidian", "xicheng"]
    assert {"/api/v1/tickets", "/api/v1/bookings", "/api/v1/city"} <= set(doc["paths"])


def test_a_hall_is_found_by_its_own_id(tmp_path: Path, start_broker: Any, manual_clock: Any) -> None:
    """A hall named on the command line only by its address is found under the id its broker gives."""
    manual_clock.set(local(TUESDAY, 9))
    port = free_port()
    brokers = [start_broker(replace(load_config(), hall_id=k, hall_id_given=True)) for k in ("chaoyang", "fengtai")]
    address = "127.0.0.1:" + brokers[1].endpoint.rsplit(":", 1)[1]  # as queuehall web names a hall given no name
    gw = CityGateway(brokers, tmp_path / "s.db", port, ["first", address]).start()
    try:
        wait_until(lambda: gw.get("/h/fengtai/api/v1/hall").status_code == 200, 5, "fengtai by its id")
        assert gw.get("/h/first/api/v1/hall").status_code == 200
        assert gw.get("/h/chaoyang/api/v1/hall").status_code == 200  # the first hall's own id too
    finally:
        gw.stop()


def test_rest_writes_bookings_and_tokens_per_hall(city: City) -> None:
    gw, haidian = city.gw, city.brokers[1]
    assert parse_scope("hall:haidian") == "hall:haidian" and allows_hall(("kiosk",), {"haidian"})
    assert allows_hall(("kiosk", "hall:haidian"), {"haidian"}) and not allows_hall(("hall:haidian",), {"xicheng"})
    with pytest.raises(TokenError):
        parse_scope("hall:")
    store = TokenStore(city.state)
    anywhere = store.create("city app", ["kiosk"])[0]
    only_haidian = store.create("haidian box", ["counter:1", "kiosk", "hall:haidian"])[0]
    store.close()

    def call(method: str, path: str, token: str, **kw: Any) -> httpx.Response:
        return gw.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)

    # A booking at Haidian: its page is Haidian's, under the prefix; the first hall does not know it.
    slots = gw.get("/h/haidian/api/v1/services/passport/slots?date=" + TUESDAY.isoformat()).json()["slots"]
    slot = next(s["start"] for s in slots if s["free"] > 0 and s["start"][11:] >= "10:00")
    r = call("POST", "/h/haidian/api/v1/bookings", anywhere, json={"service": "passport", "slot": slot})
    assert r.status_code == 201, r.text
    code = r.json()["booking"]["code"]
    assert r.json()["booking"]["hall"] == "haidian"
    assert r.json()["url"] == f"{gw.url}/h/haidian/b/{code}"
    page = gw.get(f"/h/haidian/b/{code}")
    assert page.status_code == 200 and "海淀出入境接待大厅" in page.text
    assert call("GET", f"/h/haidian/api/v1/bookings/{code}", anywhere).json()["booking"]["code"] == code
    # The first hall's addresses: the API says whose it is not (from the code's hall tag); the page, which a
    # citizen may open with a typed code, goes to the hall that holds it.
    wrong = call("GET", f"/api/v1/bookings/{code}", anywhere)
    # The hall tag is one character of 31: for 1 code in 31 it matches Dongcheng's too, which then has no such code.
    assert (wrong.status_code, wrong.json()["error"]["code"]) in ((409, "BOOKING_WRONG_HALL"),
                                                                  (404, "BOOKING_NOT_FOUND"))
    moved = gw.get(f"/b/{code}")
    assert moved.status_code == 307 and moved.headers["location"] == f"/h/haidian/b/{code}"
    assert gw.get(f"/h/xicheng/b/{code}").headers["location"] == f"/h/haidian/b/{code}"
    assert gw.get("/b/" + "2" * 10).status_code == 404  # a code typed wrong: the page says not found
    # Well-formed codes that no hall holds (of a hall not on this gateway): not found anywhere, not redirected.
    for n in range(5):
        nowhere = new_code("chaoyang", f"2345678{n + 2}")
        for key in ("dongcheng", "haidian", "xicheng"):
            miss = gw.get(f"/h/{key}/b/{nowhere}")
            assert miss.status_code == 404 and "没有找到此预约" in miss.text

    # A token limited to Haidian: refused at the other halls, whatever its scopes.
    refused = call("POST", "/h/xicheng/api/v1/counters/1/call-next", only_haidian)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "TOKEN_SCOPE"
    assert call("POST", "/api/v1/counters/1/call-next", only_haidian).status_code == 403
    # At Haidian it acts on Haidian's counter 1 (no clerk signed in there yet: the hall's own refusal).
    closed = call("POST", "/h/haidian/api/v1/counters/1/call-next", only_haidian)
    assert closed.status_code == 409 and closed.json()["error"]["code"] == "COUNTER_CLOSED"
    c = BrokerClient(haidian.endpoint, timeout=3.0)
    try:
        c.request("sign_in", counter=1, clerk="c01a", pin=DEMO_PINS["c01a"])
        taken = c.request("take_ticket", service="passport")
    finally:
        c.close()
    called = call("POST", "/h/haidian/api/v1/counters/1/call-next", only_haidian)
    assert called.status_code == 200 and called.json()["ticket"]["label"] == taken["ticket"]["label"]
    # A remote ticket taken at Xicheng through the city app's token: Xicheng's queue, not the others'.
    remote = call("POST", "/h/xicheng/api/v1/tickets", anywhere, json={"service": "passport"})
    assert remote.status_code == 201, remote.text
    assert remote.json()["url"].startswith(f"{gw.url}/h/xicheng/t/")
    assert gw.get("/h/xicheng/api/v1/services/passport").json()["service"]["waiting"] == 1
    assert gw.get("/api/v1/services/passport").json()["service"]["waiting"] == 0


def test_supervision_per_hall(city: City, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    gw, haidian = city.gw, city.brokers[1]
    managers = ManagerStore(city.state)
    managers.add("zhang", "correct horse battery")
    managers.close()
    take(haidian)
    take(haidian)
    with httpx.Client(base_url=gw.url, timeout=10) as browser:
        assert browser.get("/h/haidian/supervision").headers["location"] == "/h/haidian/supervision/login"
        form = browser.get("/h/haidian/supervision/login")
        assert 'action="/h/haidian/supervision/login"' in form.text
        r = browser.post("/h/haidian/supervision/login", data={"name": "zhang", "password": "correct horse battery"})
        assert r.status_code == 303 and r.headers["location"] == "/h/haidian/supervision"
        assert "Path=/h/haidian/supervision" in r.headers["set-cookie"]
        page = browser.get("/h/haidian/supervision")
        assert page.status_code == 200 and 'data-base="/h/haidian/supervision"' in page.text
        state = browser.get("/h/haidian/supervision/api/state").json()
        assert sum(q["waiting"] for q in state["queues"]) == 2  # Haidian's queues
        # The cookie is Haidian's: the first hall's page asks to sign in (the same account may).
        assert browser.get("/supervision/api/state").status_code == 401
    with httpx.Client(base_url=gw.url, timeout=10) as other:
        other.post("/supervision/login", data={"name": "zhang", "password": "correct horse battery"})
        assert sum(q["waiting"] for q in other.get("/supervision/api/state").json()["queues"]) == 0
    # A manager of Haidian only (queuehall web-manager add --hall haidian): Haidian's page, no other hall's.
    monkeypatch.setattr(sys, "stdin", io.StringIO("haidian-manager\n"))
    assert main(["web-manager", "add", "li", "--hall", "haidian", "--password-stdin", "--state", str(city.state)]) == 0
    assert main(["web-manager", "list", "--halls", "--state", str(city.state)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == [{"name": "li", "halls": ["haidian"]},
                                                                   {"name": "zhang", "halls": None}]
    for where, allowed in (("/h/haidian", True), ("", False), ("/h/xicheng", False)):
        with httpx.Client(base_url=gw.url, timeout=10) as li:
            r = li.post(f"{where}/supervision/login", data={"name": "li", "password": "haidian-manager"})
            assert r.status_code == (303 if allowed else 403), (where, r.status_code)
            if not allowed:
                assert "此账号不能查看本大厅" in r.text and "This account is not for this hall" in r.text
                assert li.get(f"{where}/supervision/api/state").status_code == 401


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_second_halls_ticket_page_in_chromium_follows_a_call(city: City) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    gw, haidian = city.gw, city.brokers[1]
    c = BrokerClient(haidian.endpoint, timeout=3.0)
    try:
        c.request("take_ticket", service="passport")
        taken = c.request("take_ticket", service="passport")
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless",
                                                                         "--disable-gpu", "--no-first-run"])
            try:
                page = browser.new_context(viewport={"width": 360, "height": 740}, device_scale_factor=2,
                                           is_mobile=True, locale="zh-CN").new_page()
                outside: list[str] = []
                page.on("request", lambda r: None if r.url.startswith(gw.url) else outside.append(r.url))
                page.goto(taken["url"])
                assert page.locator("#head").inner_text().startswith("前面还有 1 人")
                assert "海淀出入境接待大厅" in page.content()
                page.wait_for_function("() => !document.documentElement.classList.contains('offline')")
                c.request("sign_in", counter=1, clerk="c01a", pin=DEMO_PINS["c01a"])
                for step in ("call_next", "start", "finish", "call_next"):
                    c.request(step, counter=1)
                page.wait_for_function(
                    "() => document.getElementById('head').textContent.startsWith('请到 1 号窗口')", timeout=3000)
                page.screenshot(path=str(ARTIFACTS / "city-haidian-ticket-called.png"), full_page=True)
                assert not outside, outside
            finally:
                browser.close()
    finally:
        c.close()
