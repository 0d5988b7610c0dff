"""The city-wide wait page (issue 18, docs/web.md "The city page"): one gateway, three real brokers on
loopback (one per hall), every hall's state live on /city and /api/v1/city; a change at one hall reaches
the open page within a second, sending only that hall; a hall whose broker is down says so. In Debian's
headless Chromium at 360 px and 1920 px wide, screenshots in tests/artifacts/city/."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from queuehall.broker.config import Text
from queuehall.web.city import CityBoard, city_parts, parse_broker
from queuehall.web.hub import Hub

from queuehall.client import BrokerClient, Link
from tests import broker_fixtures
from tests.broker_fixtures import wait_until
from tests.hall_factory import small_config
from tests.web_fixtures import Gateway, start_gateway_fixture

start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_gateway = start_gateway_fixture

CHROMIUM = "/usr/bin/chromium"
NAMES = (("dongcheng", "东城出入境接待大厅", "Dongcheng exit-entry hall"),
         ("haidian", "海淀出入境接待大厅", "Haidian exit-entry hall"),
         ("xicheng", "西城出入境接待大厅", "Xicheng exit-entry hall"))


def city(start_broker: Any, start_gateway: Any, stopped: int | None = None) -> tuple[list[Any], Gateway, CityBoard]:
    brokers = [start_broker(replace(small_config(), name=Text(zh, en), hall_id=key, hall_id_given=True,
                                    address=Text(f"{zh[:2]}区某路1号", f"1 Some Road, {en.split()[0]}")))
               for key, zh, en in NAMES]
    board = CityBoard([(key, Hub(Link(b.endpoint, role="web", name=f"city-{key}", client_id=f"city-{key}")))
                       for (key, _zh, _en), b in zip(NAMES, brokers, strict=True)])
    gw = start_gateway(brokers[0], parts=city_parts(board))
    wait_until(lambda: all(h["connected"] for h in gw.get("/api/v1/city").json()["halls"]), 10, "every hall")
    return brokers, gw, board


def take(broker: Any, service: str = "P") -> str:
    c = BrokerClient(broker.endpoint, timeout=3.0)
    try:
        return str(c.request("take_ticket", service=service)["ticket"]["label"])
    finally:
        c.close()


def test_broker_options() -> None:
    assert parse_broker("haidian=10.2.0.2:5555") == ("haidian", "10.2.0.2:5555")
    assert parse_broker("127.0.0.1:5555") == (None, "127.0.0.1:5555")
    for bad in ("haidian", "=1.2.3.4:5", "x=1.2.3.4", "a b=1.2.3.4:5"):
        with pytest.raises(ValueError, match="--broker"):
            parse_broker(bad)


def test_the_gateways_broker_list() -> None:
    """``queuehall web --broker`` repeated: halls with their keys, server keys once or one per broker."""
    import argparse

    from queuehall.web.main import _brokers, add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    halls, sec = _brokers(p.parse_args(["--broker", "a=127.0.0.1:1", "--broker", "127.0.0.1:2,127.0.0.1:5"]))
    assert halls == [("a", "127.0.0.1:1"), (None, "127.0.0.1:2,127.0.0.1:5")] and sec == [None, None]
    assert _brokers(p.parse_args([])) == ([(None, None)], [None])
    for bad, why in ((["--broker", "a=h:1", "--broker", "a=h:2"], "once"),
                     (["--broker", "h:1", "--broker", "h:2", "--server-key", "x", "--server-key", "y",
                       "--server-key", "z"], "--server-key")):
        with pytest.raises(ValueError, match=why):
            _brokers(p.parse_args(bad))


def test_every_hall_live_and_only_the_changed_hall_is_sent(start_broker: Any, start_gateway: Any) -> None:
    brokers, gw, _board = city(start_broker, start_gateway)
    halls = gw.get("/api/v1/city").json()["halls"]
    assert [h["key"] for h in halls] == ["dongcheng", "haidian", "xicheng"]
    assert [h["name"]["zh"] for h in halls] == [zh for _k, zh, _e in NAMES]
    assert all(h["open"] and h["waiting"] == 0 and [s["code"] for s in h["services"]] == ["P", "H", "FEE"]
               for h in halls)
    # The hall's own id once its broker gives one (hall.toml [hall] id), else the gateway's name for it.
    # The hall's own id and address from its broker (hall.toml [hall] id, address).
    assert [h["id"] for h in halls] == ["dongcheng", "haidian", "xicheng"]
    assert halls[1]["address"] == {"zh": "海淀区某路1号", "en": "1 Some Road, Haidian"}
    from queuehall.web.city import document

    doc = gw.app.state.openapi
    document(doc)  # as queuehall web does
    assert {"/api/v1/city", "/api/v1/city/events"} <= set(doc["paths"]) and "CityHall" in doc["components"]["schemas"]
    assert set(halls[0]) == set(doc["components"]["schemas"]["CityHall"]["properties"])  # every field documented
    page = gw.get("/city")
    assert page.status_code == 200 and "海淀出入境接待大厅" in page.text and "Haidian exit-entry hall" in page.text
    with httpx.stream("GET", f"{gw.url}/api/v1/city/events", timeout=5) as r:
        lines = r.iter_lines()
        kind, got = "message", []
        t0 = 0.0
        for line in lines:
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                got.append((kind, orjson.loads(line[6:]), time.monotonic()))
                kind = "message"
                if len(got) == 1:
                    t0 = time.monotonic()
                    take(brokers[1])  # someone takes a ticket at Haidian
                else:
                    changed = got[-1][1]["halls"]
                    if any(h["key"] == "haidian" and h["waiting"] == 1 for h in changed):
                        break
    assert got[0][0] == "message" and len(got[0][1]["halls"]) == 3
    assert all(k == "halls" for k, _d, _t in got[1:])
    assert all(h["key"] == "haidian" for _k, d, _t in got[1:] for h in d["halls"])  # only the hall that changed
    assert got[-1][2] - t0 < 1.0, f"the change took {got[-1][2] - t0:.2f} s to arrive"
    haidian = next(h for h in got[-1][1]["halls"] if h["key"] == "haidian")
    assert haidian["services"][0] == {"code": "P", "name": {"zh": "P业务", "en": "P service"}, "waiting": 1,
                                      "estimated_wait_minutes": haidian["services"][0]["estimated_wait_minutes"],
                                      "issue_state": "open", "next_open": None}


def test_a_hall_that_is_down_says_so_and_comes_back(start_broker: Any, start_gateway: Any) -> None:
    brokers, gw, _board = city(start_broker, start_gateway)
    brokers[2].stop()
    wait_until(lambda: not gw.get("/api/v1/city").json()["halls"][2]["connected"], 15, "Xicheng to be down")
    halls = gw.get("/api/v1/city").json()["halls"]
    assert halls[0]["connected"] and halls[1]["connected"]
    assert "暂时无法连接" in gw.get("/city").text
    brokers[2].start()
    wait_until(lambda: gw.get("/api/v1/city").json()["halls"][2]["connected"], 15, "Xicheng to be back")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_the_city_page_in_chromium_phone_and_desktop(start_broker: Any, start_gateway: Any,
                                                     artifacts_dir: Path) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    shots = artifacts_dir / "city"
    shots.mkdir(parents=True, exist_ok=True)
    brokers, gw, _board = city(start_broker, start_gateway)
    for _ in range(6):
        take(brokers[0])  # Dongcheng is busy, Haidian a little, Xicheng empty
    take(brokers[1])
    wait_until(lambda: gw.get("/api/v1/city").json()["halls"][0]["waiting"] == 6)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless", "--disable-gpu"])
        try:
            for width, height in ((360, 740), (1920, 1080)):
                page = browser.new_page(viewport={"width": width, "height": height})
                outside: list[str] = []
                page.on("request", lambda r, o=outside: o.append(r.url) if not r.url.startswith(gw.url) else None)
                errors: list[str] = []
                page.on("pageerror", lambda e, errs=errors: errs.append(str(e)))
                page.goto(gw.url + "/city")
                page.wait_for_selector("select#service")
                page.select_option("select#service", "P")
                # The least busy hall for P comes first, marked.
                page.wait_for_selector('section.hall.best[data-key="xicheng"]', timeout=3000)
                keys = page.eval_on_selector_all("section.hall", "els => els.map(e => e.dataset.key)")
                assert keys == ["xicheng", "haidian", "dongcheng"], keys
                # Live: two people take P at Xicheng; within a second the page shows it.
                t0 = time.monotonic()
                labels = [take(brokers[2]), take(brokers[2])]
                page.wait_for_function(
                    "() => document.querySelector('section.hall[data-key=xicheng] tr.pick td.n').textContent"
                    ".startsWith('2')", timeout=3000)
                assert time.monotonic() - t0 < 1.0 + 0.5  # two takes (~a few ms each) and the page's update
                wide = page.evaluate("document.documentElement.scrollWidth")
                assert wide <= width, f"the page is {wide} px wide at {width} px"  # nothing sticks out
                page.screenshot(path=str(shots / f"city-{width}.png"), full_page=True)
                assert not errors and not outside, (errors, outside)
                page.close()
                c = BrokerClient(brokers[2].endpoint, timeout=3.0)  # back to empty for the next size
                try:
                    for ticket in labels:
                        c.request("cancel_ticket", ticket=ticket, reason="test")
                finally:
                    c.close()
        finally:
            browser.close()
