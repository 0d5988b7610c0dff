"""The supervision page (docs/supervision.md) in a real headless Chromium (Playwright): manager login (scrypt
accounts, an HttpOnly SameSite=Strict session cookie), the hall live, an alert shown within a second of its
condition, acknowledged with a note, gone when its condition ends. Screenshots in tests/artifacts/supervision/."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from queuehall.broker.alerts import AlertRules
from queuehall.web.app import WebSettings, create_app
from queuehall.web.hub import Hub
from queuehall.web.supervision import ManagerError, ManagerStore, supervision_routes

from queuehall.cli import main
from queuehall.client import BrokerClient, Link
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, wait_until
from tests.hall_factory import small_config
from tests.web_fixtures import free_port

start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture


class Site:
    """The gateway with the supervision routes, on uvicorn in a thread."""

    def __init__(self, broker: BrokerThread, state: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.managers = ManagerStore(state)
        self.hub = Hub(Link(broker.endpoint, role="web", name="web-sup"))
        app = create_app(self.hub, WebSettings(public_url=self.url), routes=supervision_routes(self.hub, self.managers))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started, 10, "uvicorn")
        wait_until(lambda: httpx.get(self.url + "/healthz").status_code == 200, 10, "the gateway to sync")

    def stop(self) -> None:
        self.server.should_exit = True
        self.server.force_exit = True  # an open event stream must not hold the test
        self.thread.join(10)
        self.managers.close()


@pytest.fixture
def site(start_broker: Any, tmp_path: Path) -> Iterator[tuple[BrokerThread, Site]]:
    # The test day lacks 2027's official calendar: that rule is tested on its own.
    bt = start_broker(small_config(alerts=AlertRules(enabled=True, calendar=False)))
    s = Site(bt, tmp_path / "web-state.db")
    s.managers.add("zhangsan", "s3cret-pass")
    yield bt, s
    s.stop()


@pytest.fixture
def shots(artifacts_dir: Path) -> Path:
    d = artifacts_dir / "supervision"
    d.mkdir(parents=True, exist_ok=True)
    return d


def test_manager_accounts_are_scrypt_hashes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    store = ManagerStore(tmp_path / "s.db")
    store.add("li", "long-enough")
    assert store.verify("li", "long-enough") and not store.verify("li", "wrong-one") and not store.verify("x", "y")
    found = store.hash_of("li")
    assert found is not None
    salt, digest = found
    assert len(salt) == 16 and len(digest) == 32 and b"long-enough" not in digest
    for name, pw in (("li", "long-enough"), ("bad name", "long-enough"), ("wang", "short")):
        with pytest.raises(ManagerError):
            store.add(name, pw)
    store.close()
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.StringIO("another-secret\n"))
    assert main(["web-manager", "add", "wang", "--password-stdin", "--state", str(tmp_path / "s.db")]) == 0
    assert main(["web-manager", "list", "--state", str(tmp_path / "s.db")]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == ["li", "wang"]


def test_the_api_needs_a_manager(site: tuple[BrokerThread, Site]) -> None:
    _, s = site
    assert httpx.get(s.url + "/supervision/api/state").status_code == 401
    assert httpx.post(s.url + "/supervision/api/ack", json={"key": "k", "note": "n"}).status_code == 401
    r = httpx.get(s.url + "/supervision")
    assert r.status_code == 303 and r.headers["location"] == "/supervision/login"
    r = httpx.post(s.url + "/supervision/login", data={"name": "zhangsan", "password": "nope"})
    assert r.status_code == 401 and "账号或密码错误" in r.text
    r = httpx.post(s.url + "/supervision/login", data={"name": "zhangsan", "password": "s3cret-pass"})
    assert r.status_code == 303
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/supervision" in cookie
    jar = {"qh_manager": r.cookies["qh_manager"]}
    state = httpx.get(s.url + "/supervision/api/state", cookies=jar).json()
    assert {c["number"] for c in state["counters"]} == {1, 2, 9} and state["alerts"] == []
    r = httpx.post(s.url + "/supervision/api/ack", cookies=jar, data={"key": "k", "note": "n"})
    assert r.status_code == 400  # a form (what another site could post) is not accepted


def test_a_session_outlives_a_gateway_restart_and_is_kept_hashed(site: tuple[BrokerThread, Site],
                                                                  tmp_path: Path) -> None:
    import hashlib
    import sqlite3

    from queuehall.web.supervision import Sessions

    bt, s = site
    r = httpx.post(s.url + "/supervision/login", data={"name": "zhangsan", "password": "s3cret-pass"})
    sid = r.cookies["qh_manager"]
    assert httpx.get(s.url + "/supervision/api/state", cookies={"qh_manager": sid}).status_code == 200
    s.stop()  # the gateway restarts on the same state file
    again = Site(bt, tmp_path / "web-state.db")
    try:
        assert httpx.get(again.url + "/supervision/api/state", cookies={"qh_manager": sid}).status_code == 200
        rows = sqlite3.connect(tmp_path / "web-state.db").execute(
            "SELECT id_hash, name FROM manager_sessions").fetchall()
        assert rows == [(hashlib.sha256(sid.encode()).hexdigest(), "zhangsan")]  # only its hash is kept
        assert sid not in (tmp_path / "web-state.db").read_bytes().decode("latin-1")
        # Signing out ends it for good; so does removing the account.
        httpx.post(again.url + "/supervision/logout", cookies={"qh_manager": sid})
        assert httpx.get(again.url + "/supervision/api/state", cookies={"qh_manager": sid}).status_code == 401
        sid2 = httpx.post(again.url + "/supervision/login",
                          data={"name": "zhangsan", "password": "s3cret-pass"}).cookies["qh_manager"]
        assert again.managers.remove("zhangsan")
        assert httpx.get(again.url + "/supervision/api/state", cookies={"qh_manager": sid2}).status_code == 401
    finally:
        again.stop()
    # Expiry is on the wall clock, so it holds across restarts too.
    conn = sqlite3.connect(tmp_path / "other.db", isolation_level=None)
    ManagerStore(conn).add("lisi", "an0ther-pass")
    short = Sessions(conn, hours=-1)  # already expired when made
    assert short.who(short.start("lisi")) is None
    assert Sessions(conn).who(Sessions(conn).start("lisi")) == "lisi"


def test_todays_completion_satisfaction_and_time_to_clear(start_broker: Any, tmp_path: Path) -> None:
    """Today's figures come from the broker's database (its ``today`` query): served, same-day completion
    (an on-the-spot FEE visit counts, a promised P matter does not), ratings and 好评率; each queue's time
    to clear against the session's end (11:30), and the 承诺时限 alert of the on-the-spot queue."""
    from dataclasses import replace

    cfg = small_config(alerts=AlertRules(enabled=True, calendar=False))
    cfg = replace(cfg, services=tuple(replace(x, promised_days=0, avg_service_minutes=5) if x.code == "FEE" else x
                                      for x in cfg.services))
    bt = start_broker(cfg)
    s = Site(bt, tmp_path / "web-state.db")
    s.managers.add("zhangsan", "s3cret-pass")
    c = BrokerClient(bt.endpoint, timeout=3.0)
    try:
        r = httpx.post(s.url + "/supervision/login", data={"name": "zhangsan", "password": "s3cret-pass"})
        jar = {"qh_manager": r.cookies["qh_manager"]}

        def state() -> dict[str, Any]:
            return httpx.get(s.url + "/supervision/api/state", cookies=jar).json()

        c.request("sign_in", counter=1, clerk="c1a", pin="1234")
        c.request("sign_in", counter=9, clerk="c9a", pin="1234")
        c.request("take_ticket", service="P")
        c.request("take_ticket", service="FEE")
        for n, level in ((1, 5), (9, 2)):
            for step in ("call_next", "start", "finish"):
                c.request(step, counter=n)
            c.request("rate", counter=n, level=level, channel="cli")
        wait_until(lambda: state()["figures"]["rated"] == 2, 5, "today's figures")
        f = state()["figures"]
        assert f["served"] == 2 and f["same_day_completed"] == 1 and f["same_day_rate"] == 0.5
        assert f["good_rate"] == 0.5 and f["levels"] == {"5": 1, "4": 0, "3": 0, "2": 1, "1": 0}
        from datetime import datetime, timedelta

        def fee() -> dict[str, Any]:
            return next(q for q in state()["queues"] if q["code"] == "FEE")

        seen = []
        for n in range(1, 200):  # the queue grows until it runs past the session's end (11:30)
            c.request("take_ticket", service="FEE")
            wait_until(lambda n=n: fee()["waiting"] == n)
            q = fee()
            clear_at = datetime.fromisoformat(q["clear_at"])
            assert clear_at == datetime.fromisoformat(state()["now"]) + timedelta(minutes=q["estimated_clear_minutes"])
            assert q["session_ends"].startswith("2026-11-24T03:30")
            assert q["clears_after_session_end"] == (clear_at > datetime.fromisoformat(q["session_ends"]))
            seen.append(q["clears_after_session_end"])
            if seen[-1]:
                break
        assert seen[0] is False and seen[-1] is True
        wait_until(lambda: any(a["key"] == "promise_at_risk:FEE" for a in state()["alerts"]), 3, "the alert")
    finally:
        c.close()
        s.stop()


def test_an_alert_appears_within_a_second_and_is_acknowledged(site: tuple[BrokerThread, Site], shots: Path) -> None:
    from playwright.sync_api import sync_playwright

    bt, s = site
    c = BrokerClient(bt.endpoint, timeout=3.0)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            page.on("pageerror", lambda e: console.append(str(e)))
            page.on("response", lambda r: console.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.goto(s.url + "/supervision")
            assert "/supervision/login" in page.url
            page.fill("input[name=name]", "zhangsan")
            page.fill("input[name=password]", "s3cret-pass")
            page.click("button[type=submit]")
            try:
                page.wait_for_selector("td.none", timeout=5000)  # the page is live: no alerts
            except Exception:
                raise AssertionError(f"{console} {page.content()[:3000]}") from None
            cookie = next(k for k in page.context.cookies() if k["name"] == "qh_manager")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            t0 = time.monotonic()
            c.request("take_ticket", service="P")  # people wait for P and no counter is open
            page.wait_for_selector('tr.alert[data-key="no_open_counter:P"]', timeout=3000)
            elapsed = time.monotonic() - t0
            assert elapsed < 1.0, f"the alert took {elapsed:.2f} s to show"
            page.screenshot(path=str(shots / "supervision-alert.png"), full_page=True)
            page.once("dialog", lambda d: d.accept("已通知B岗到岗"))
            page.click('tr.alert[data-key="no_open_counter:P"] button')
            page.wait_for_selector('tr.alert.acked[data-key="no_open_counter:P"]', timeout=3000)
            page.wait_for_selector("#alerts >> text=已通知B岗到岗 (zhangsan)", timeout=3000)
            c.request("sign_in", counter=1, clerk="c1a", pin="1234")
            page.wait_for_selector('tr.alert[data-key="no_open_counter:P"]', state="detached", timeout=3000)
            page.wait_for_selector("td.none")
            assert "c1a" in page.inner_text("#counters") or "职员c1a" in page.inner_text("#counters")
            page.screenshot(path=str(shots / "supervision-live.png"), full_page=True)
            browser.close()
    finally:
        c.close()


def test_todays_figures_count_only_the_halls_own_records(db_url: str) -> None:
    """Two halls on one database (docs/city.md): each broker's ``today`` counts its own hall's tickets and
    ratings only."""
    from dataclasses import replace

    from queuehall.broker.storage import load_hall, open_store

    from queuehall.clock import ManualClock
    from tests.hall_factory import TUESDAY, install_pins, local

    figures = {}
    for hall_id, served in (("dongcheng", 2), ("xicheng", 1)):
        cfg = replace(small_config(), hall_id=hall_id, hall_id_given=True)
        store = open_store(db_url, hall=hall_id, hall_given=True)
        try:
            install_pins(store, cfg)
            h = load_hall(cfg, ManualClock(local(TUESDAY, 9)), store)
            h.execute("sign_in", {"counter": 1, "clerk": "c1a", "pin": "1234"})
            for _ in range(served):
                h.execute("take_ticket", {"service": "P"})
                for step in ("call_next", "start", "finish"):
                    h.execute(step, {"counter": 1})
                h.execute("rate", {"counter": 1, "level": 5, "channel": "cli"})
            figures[hall_id] = store.day_figures(TUESDAY, ["P"])
        finally:
            store.close()
    assert (figures["dongcheng"]["served"], figures["dongcheng"]["rated"]) == (2, 2)
    assert (figures["xicheng"]["served"], figures["xicheng"]["rated"]) == (1, 1)
