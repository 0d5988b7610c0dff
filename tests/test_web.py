"""The web gateway over HTTP: a real broker, the gateway on uvicorn on a free port, httpx as the phone.

Ticket tokens, the ticket page, the public API v1 and its event stream, and the bad inputs and faults
of docs/web.md (unknown tokens, malformed and oversized bodies, a broker that is down, a slow reader).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from queuehall.broker import keys

from queuehall.client import BrokerClient, CommandRefused
from tests import broker_fixtures
from tests.broker_fixtures import security, wait_until
from tests.hall_factory import small_config
from tests.web_fixtures import Gateway, sse_lines, start_gateway_fixture

start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
keys_dir_fixture = broker_fixtures.keys_dir_fixture
start_gateway = start_gateway_fixture

BASE = "https://queue.example.gov.cn"


def client(broker: Any, name: str = "test") -> BrokerClient:
    return BrokerClient(broker.endpoint, client_id=name, timeout=3.0)


def take(broker: Any, service: str = "P", **kw: Any) -> dict[str, Any]:
    c = client(broker, "kiosk")
    try:
        return c.request("take_ticket", service=service, **kw)
    finally:
        c.close()


def counter(broker: Any, type_: str, n: int = 1, **kw: Any) -> dict[str, Any]:
    c = client(broker, f"counter-{n}")
    try:
        return c.request(type_, counter=n, **kw)
    finally:
        c.close()


def sign_in(broker: Any, n: int = 1, clerk: str = "c1a") -> None:
    counter(broker, "sign_in", n, clerk=clerk, pin="1234")


@pytest.fixture(name="hall")
def hall_fixture(start_broker: Any) -> Any:
    return start_broker(small_config(public_base_url=BASE))


def test_take_reply_carries_an_unguessable_token_and_the_page_url(hall: Any) -> None:
    replies = [take(hall) for _ in range(20)]
    tokens = [r["token"] for r in replies]
    assert len(set(tokens)) == 20
    for r in replies:
        assert len(r["token"]) >= 22  # 128 bits, URL-safe base64
        assert r["url"] == f"{BASE}/t/{r['token']}"
        assert "token" not in r["ticket"]  # the ticket view (which events carry) never has it


def test_ticket_page_and_api(hall: Any, start_gateway: Any) -> None:
    gw: Gateway = start_gateway(hall)
    sign_in(hall)
    first = take(hall)
    second = take(hall)
    page = gw.get(f"/t/{second['token']}")
    assert page.status_code == 200
    assert "A002" in page.text and "前面还有 1 人" in page.text and "1 person ahead of you" in page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    assert "A001" not in page.text  # no page reveals another ticket
    api = gw.get(f"/api/v1/tickets/{second['token']}").json()["ticket"]
    assert api["label"] == "A002" and api["status"] == "waiting" and api["ahead"] == 1
    assert "id" not in api and "note" not in api and "token" not in json.dumps(api)
    counter(hall, "call_next")  # A001 is called: A002 is next
    wait_until(lambda: gw.get(f"/api/v1/tickets/{second['token']}").json()["ticket"]["ahead"] == 0)
    called = gw.get(f"/api/v1/tickets/{first['token']}").json()["ticket"]
    assert called["status"] == "called" and called["headline"]["zh"] == "请到 1 号窗口"
    assert called["headline"]["en"] == "Please go to window 1"


def test_unknown_and_malformed_tokens_get_a_clear_404(hall: Any, start_gateway: Any) -> None:
    gw: Gateway = start_gateway(hall)
    assert gw.get("/t/../../etc/passwd").status_code == 404
    for token in ("A" * 22, "x", "..%2E%2E", "%00" * 10, "a" * 300, "号票" * 10):
        page = gw.get(f"/t/{token}")
        assert page.status_code == 404, token
        assert "没有找到此号票" in page.text and "Ticket not found" in page.text
        api = gw.get(f"/api/v1/tickets/{token}")
        assert api.status_code == 404
        err = api.json()["error"]
        assert err["code"] == "UNKNOWN_TOKEN" and err["message_zh"] and err["message_en"]


def test_api_hall_services_openapi(hall: Any, start_gateway: Any) -> None:
    gw: Gateway = start_gateway(hall)
    take(hall)
    wait_until(lambda: gw.get("/api/v1/services").json()["services"][0]["waiting"] == 1)
    services = gw.get("/api/v1/services").json()["services"]
    assert [s["code"] for s in services] == ["P", "H", "FEE"]
    assert gw.get("/api/v1/services/P").json()["service"]["name"]["en"]
    assert gw.get("/api/v1/services/NOPE").json()["error"]["code"] == "UNKNOWN_SERVICE"
    hall_ = gw.get("/api/v1/hall").json()["hall"]
    assert hall_["name"] == {"zh": "测试大厅", "en": "Test hall"} and hall_["waiting"] == 1
    doc = gw.get("/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/api/v1/tickets/{token}" in doc["paths"]
    css = gw.get("/static/ticket.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "max-age" in css.headers["cache-control"]
    assert gw.get("/static/ticket.js").headers["content-type"].startswith("text/javascript")
    assert gw.get("/static/nothing.js").status_code == 404
    assert "测试大厅" in gw.get("/").text  # the hall's queues
    missing = gw.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    post = httpx.post(gw.url + "/api/v1/hall", content=b"{}")
    assert post.status_code == 405 and post.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


# ---------------------------------------------------------------------------------------------- the broker side


def test_token_survives_a_restart_and_ended_tickets_are_found_in_the_database(hall: Any) -> None:
    sign_in(hall)
    t = take(hall)
    hall.restart()  # the token is stored with the ticket and loaded again
    c = client(hall, "web")
    try:
        assert c.request("ticket_by_token", token=t["token"])["ticket"]["label"] == "A001"
        counter(hall, "call_next")
        counter(hall, "start")
        counter(hall, "finish")  # the ticket leaves the broker's memory: the database answers
        found = c.request("ticket_by_token", token=t["token"])["ticket"]
        assert found["label"] == "A001" and found["status"] == "finished" and "token" not in found
        with pytest.raises(CommandRefused) as refused:
            c.request("ticket_by_token", token="B" * 22)
        assert refused.value.code == "UNKNOWN_TOKEN"
        with pytest.raises(CommandRefused):
            c.request("ticket_by_token", token=12345)
    finally:
        c.close()


def test_a_finished_ticket_of_another_day_is_not_found(hall: Any, manual_clock: Any) -> None:
    sign_in(hall)
    t = take(hall)
    for step in ("call_next", "start", "finish"):
        counter(hall, step)
    manual_clock.advance(hours=24)
    c = client(hall, "web")
    try:
        with pytest.raises(CommandRefused) as refused:
            c.request("ticket_by_token", token=t["token"])
        assert refused.value.code == "UNKNOWN_TOKEN"
    finally:
        c.close()


def test_the_web_role_may_take_remote_tickets_act_for_counters_and_look_up_tokens_and_nothing_else(
        start_broker: Any, keys_dir: Path) -> None:
    keys.add_device(keys_dir, "web-1", "web")
    broker = start_broker(small_config(public_base_url=BASE, remote_quota=5), keys_dir=keys_dir)
    web = BrokerClient(broker.endpoint, security=security(keys_dir, "web-1"), timeout=3.0)
    display = BrokerClient(broker.endpoint, security=security(keys_dir, "wall-1"), timeout=3.0)
    try:
        t = web.request("take_ticket", service="P", channel="remote")
        assert t["url"] == f"{BASE}/t/{t['token']}"
        assert web.request("ticket_by_token", token=t["token"])["ticket"]["label"] == "A001"
        with pytest.raises(CommandRefused) as refused:  # the gateway's counter actions reach the engine
            web.request("call_next", counter=1)
        assert refused.value.code == "COUNTER_CLOSED"
        for who, type_, args in ((web, "take_ticket", {"service": "P"}),  # a kiosk's ticket: not the gateway's
                                 (web, "sign_in", {"counter": 1, "clerk": "c1a", "pin": "1234"}),
                                 (web, "cancel_ticket", {"ticket": "A001", "reason": "x"}),
                                 (display, "ticket_by_token", {"token": t["token"]})):
            with pytest.raises(CommandRefused) as refused:
                who.request(type_, **args)
            assert refused.value.code == "FORBIDDEN", type_
    finally:
        web.close()
        display.close()


def test_tokens_never_travel_on_the_event_channel(hall: Any) -> None:
    from queuehall.client import Link
    from tests.broker_fixtures import MirrorTap

    link = Link(hall.endpoint, role="display", name="wall")
    tap = MirrorTap(link)
    link.start()
    try:
        tap.wait(lambda t: t.state and link.alive, what="the display to sync")
        sign_in(hall)
        tokens = [take(hall)["token"] for _ in range(3)]
        counter(hall, "call_next")
        tap.wait(lambda t: any(e["event"].get("type") == "ticket_called" for e in t.events), what="the call")
        seen = orjson.dumps([tap.state, tap.events]).decode()
        snapshot = orjson.dumps(client(hall).request("snapshot")).decode()
        for token in tokens:
            assert token not in seen and token not in snapshot
    finally:
        link.stop()


def test_public_base_url_is_checked() -> None:
    from queuehall.broker.config import ConfigError, load_config, parse_config

    base = load_config()
    for bad in ("queue.example.gov.cn", "ftp://x.cn", "https://x.cn/?a=1", "https://", "https://x.cn/#t",
                "https://x .cn"):
        data = _config_dict(base)
        data["hall"]["public_base_url"] = bad
        with pytest.raises(ConfigError) as err:
            parse_config(data, "test")
        assert err.value.code == "CONFIG_BAD_URL", bad
    data = _config_dict(base)
    data["hall"]["public_base_url"] = "https://queue.example.gov.cn/hall-1/"
    assert parse_config(data, "test").public_base_url == "https://queue.example.gov.cn/hall-1"


def _config_dict(cfg: Any) -> dict[str, Any]:
    from queuehall.broker.config import _to_dict

    return _to_dict(cfg)


def test_kiosk_prints_the_page_url_in_the_qr_code() -> None:
    from queuehall.kiosk.model import qr_payload

    from queuehall.payloads import decode_ticket

    t = decode_ticket({"id": 5, "label": "A005", "business_day": "2026-11-24"})
    assert t is not None
    assert qr_payload(t) == "queuehall:ticket:5:A005:2026-11-24"  # no gateway: as before
    assert qr_payload(t, f"{BASE}/t/abc") == f"{BASE}/t/abc"


# ---------------------------------------------------------------------------------------------- live pages and faults


def test_the_stream_sends_the_state_then_each_change(hall: Any, start_gateway: Any) -> None:
    gw: Gateway = start_gateway(hall)
    sign_in(hall)
    first = take(hall)
    mine = take(hall)
    got: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{gw.url}/api/v1/tickets/{mine['token']}/events", timeout=5) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        for line in lines:
            if line.startswith("data: "):
                got.append(orjson.loads(line[6:]))
                if len(got) == 1:
                    assert got[0]["ahead"] == 1
                    counter(hall, "call_next")  # A001 called: I am next
                elif len(got) == 2:
                    assert got[1]["ahead"] == 0 and got[1]["status"] == "waiting"
                    counter(hall, "start")
                    counter(hall, "finish")
                    counter(hall, "call_next")  # now me
                elif got[-1]["status"] == "called":
                    break
    assert got[-1]["headline"] == {"zh": "请到 1 号窗口", "en": "Please go to window 1"}
    assert got[-1]["counter"]["number"] == 1
    assert first["token"] not in json.dumps(got)
    # After the visit the page says so.
    counter(hall, "start")
    counter(hall, "finish")
    wait_until(lambda: gw.get(f"/api/v1/tickets/{mine['token']}").json()["ticket"]["status"] == "finished")
    assert "办理完毕" in gw.get(f"/t/{mine['token']}").text


def test_patch_streams_send_the_state_once_then_only_what_changed(hall: Any, start_gateway: Any) -> None:
    """``?patch=1`` (the ticket page's stream): the whole state, then ``event: patch`` frames with only the
    fields that changed; merged, they give exactly the state the plain stream and the API give. A change
    that does not touch a page (another service's queue) sends it nothing."""
    gw: Gateway = start_gateway(hall)
    sign_in(hall)
    first = take(hall)
    mine = take(hall)
    frames: list[tuple[str, dict[str, Any]]] = []
    with httpx.stream("GET", f"{gw.url}/api/v1/tickets/{mine['token']}/events?patch=1", timeout=5) as r:
        kind = "message"
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                frames.append((kind, orjson.loads(line[6:])))
                kind = "message"
                if len(frames) == 1:
                    take(hall, "FEE")  # another service's queue: nothing for this page
                    counter(hall, "call_next")  # A001 called: I am next
                elif frames[-1][1].get("status") == "called":
                    break
                elif len(frames) == 2:
                    counter(hall, "start")
                    counter(hall, "finish")
                    counter(hall, "call_next")  # now me
    assert frames[0][0] == "message" and frames[0][1]["ahead"] == 1 and "materials" in frames[0][1]
    assert all(kind == "patch" for kind, _ in frames[1:])
    # The first change: only my place and its words, not the ticket's unchanged fields.
    assert frames[1][1]["ahead"] == 0 and "label" not in frames[1][1] and "materials" not in frames[1][1]
    state: dict[str, Any] = {}
    for _, data in frames:
        state.update(data)
    api = gw.get(f"/api/v1/tickets/{mine['token']}").json()["ticket"]
    assert state == api and state["headline"] == {"zh": "请到 1 号窗口", "en": "Please go to window 1"}
    assert first["token"] not in json.dumps(frames)


def test_a_page_opened_after_the_visit_and_after_a_gateway_restart(hall: Any, start_gateway: Any) -> None:
    sign_in(hall)
    t = take(hall)
    for step in ("call_next", "start", "finish"):
        counter(hall, step)
    gw: Gateway = start_gateway(hall)  # never saw the ticket: the broker's database answers
    done = gw.get(f"/api/v1/tickets/{t['token']}").json()["ticket"]
    assert done["status"] == "finished" and done["active"] is False
    assert "Your visit is finished" in gw.get(f"/t/{t['token']}").text


def test_no_show_cancel_and_transfer_states(hall: Any, start_gateway: Any) -> None:
    gw: Gateway = start_gateway(hall)
    sign_in(hall)
    counter(hall, "sign_in", 9, clerk="c9a", pin="1234")
    a, b, c = take(hall), take(hall), take(hall)
    counter(hall, "call_next")
    counter(hall, "no_show")
    counter(hall, "call_next")
    counter(hall, "transfer", service="FEE")
    c_client = client(hall)
    c_client.request("cancel_ticket", ticket="A003", reason="left")
    c_client.close()

    def state(t: dict[str, Any]) -> dict[str, Any]:
        return gw.get(f"/api/v1/tickets/{t['token']}").json()["ticket"]

    wait_until(lambda: state(c)["status"] == "cancelled")
    assert state(a)["status"] == "no_show" and state(a)["headline"]["en"] == "You missed your call"
    moved = state(b)
    assert moved["status"] == "waiting" and moved["transferred"] and moved["service"]["code"] == "FEE"
    assert "your place is kept" in moved["detail"]["en"]


def test_broker_down_keeps_the_last_place_and_the_api_answers_503(hall: Any, start_gateway: Any) -> None:
    gw: Gateway = start_gateway(hall)
    sign_in(hall)
    take(hall)
    mine = take(hall)
    wait_until(lambda: gw.get(f"/api/v1/tickets/{mine['token']}").status_code == 200)
    stream = httpx.stream("GET", f"{gw.url}/api/v1/tickets/{mine['token']}/events", timeout=10)
    with stream as r:
        lines = r.iter_lines()
        first = next(orjson.loads(x[6:]) for x in lines if x.startswith("data: "))
        assert first["connected"] is True and first["ahead"] == 1
        hall.stop()
        down = next(orjson.loads(x[6:]) for x in lines if x.startswith("data: "))  # within 3 s of silence
        assert down["connected"] is False and down["ahead"] == 1 and down["label"] == "A002"
    api = gw.get(f"/api/v1/tickets/{mine['token']}")
    assert api.status_code == 503 and api.json()["error"]["code"] == "UNREACHABLE"
    assert api.json()["ticket"]["ahead"] == 1  # the last known place, beside the error
    assert gw.get("/api/v1/hall").status_code == 503 and gw.get("/api/v1/services").status_code == 503
    page = gw.get(f"/t/{mine['token']}")
    assert page.status_code == 200 and "A002" in page.text  # the page keeps the place; its banner shows
    unknown = gw.get("/api/v1/tickets/" + "Z" * 22)  # the broker would have to be asked
    assert unknown.status_code == 503 and unknown.json()["error"]["code"] == "UNREACHABLE"
    assert "暂时无法连接大厅" in gw.get("/t/" + "Z" * 22).text
    hall.start()
    wait_until(lambda: gw.get(f"/api/v1/tickets/{mine['token']}").status_code == 200, 10)


def test_a_phone_that_never_reads_holds_up_nobody(start_broker: Any, start_gateway: Any) -> None:
    from dataclasses import replace

    from queuehall.broker.config import Text
    from queuehall.web.app import WebSettings

    # Long materials make each page state ~30 KB, so a reader that stops fills the socket buffers quickly.
    cfg = small_config(public_base_url=BASE)
    long = tuple(Text(f"材料{i}" + "请携带原件及复印件" * 10, f"Material {i} " + "original and copy " * 12)
                 for i in range(60))
    cfg = replace(cfg, services=(replace(cfg.services[0], materials=long), *cfg.services[1:]))
    hall = start_broker(cfg)
    gw: Gateway = start_gateway(hall, settings=WebSettings(write_timeout=1.0))
    ahead = [take(hall) for _ in range(250)]
    mine = take(hall)
    # A raw socket that asks for the stream and never reads a byte (its receive buffer kept tiny).
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    stuck.connect(("127.0.0.1", gw.port))
    stuck.sendall(f"GET /api/v1/tickets/{mine['token']}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    board = gw.app.state.board
    wait_until(lambda: board.open_streams == 1)
    c = client(hall)
    try:
        for i, t in enumerate(ahead):  # each cancellation ahead of it is a new state for the stuck page
            c.request("cancel_ticket", ticket=t["ticket"]["label"], reason="test")
            if board.open_streams == 0:
                break
            if i % 50 == 0:  # all along, other pages are served at once
                assert sse_lines(f"{gw.url}/api/v1/tickets/{mine['token']}/events", 1, timeout=2)
        # The gateway closed it when a write was not taken within a second.
        wait_until(lambda: board.open_streams == 0, 10, "the stuck stream to be closed")
    finally:
        c.close()
        stuck.close()
    assert orjson.loads(sse_lines(f"{gw.url}/api/v1/tickets/{mine['token']}/events", 1)[0])["label"] == "A251"


def test_many_idle_pages_and_the_limit(hall: Any, start_gateway: Any) -> None:
    from queuehall.web.app import WebSettings

    gw: Gateway = start_gateway(hall, settings=WebSettings(max_streams=50))
    mine = take(hall)
    socks = []
    try:
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", gw.port))
            s.sendall(f"GET /api/v1/tickets/{mine['token']}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            socks.append(s)
        wait_until(lambda: gw.app.state.board.open_streams == 50)
        over = gw.get(f"/api/v1/tickets/{mine['token']}/events")
        assert over.status_code == 503 and over.json()["error"]["code"] == "UNAVAILABLE"
        assert over.headers["retry-after"] == "10"
        assert gw.get(f"/api/v1/tickets/{mine['token']}").status_code == 200  # reads still served
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: gw.app.state.board.open_streams == 0, 10, "closed pages to be let go")


# ---------------------------------------------------------------------------------------------- bodies


def test_an_oversized_body_is_refused_before_anything_else(hall: Any, start_gateway: Any) -> None:
    gw: Gateway = start_gateway(hall)
    big = b'{"service": "P", "pad": "' + b"x" * 70_000 + b'"}'
    r = httpx.post(gw.url + "/api/v1/tickets", content=big)  # before its API token is even looked at
    assert r.status_code == 413 and r.json()["error"]["code"] == "MESSAGE_TOO_LARGE"
    assert r.json()["limit_bytes"] == 64 * 1024 and r.json()["error"]["message_zh"]


def test_a_remote_tickets_page_says_by_when_to_check_in(start_broker: Any, start_gateway: Any) -> None:
    hall = start_broker(small_config(public_base_url=BASE, remote_quota=5))
    gw: Gateway = start_gateway(hall)
    t = take(hall, channel="remote")
    by = wait_until(lambda: gw.get(f"/api/v1/tickets/{t['token']}").json()["ticket"]["check_in_by"])
    at = gw.get(f"/api/v1/tickets/{t['token']}").json()["ticket"]["detail"]["en"].split("by ", 1)[1][:5]
    assert by and at[2] == ":"
    page = gw.get(f"/t/{t['token']}").text
    assert f"请于 {at} 前到大厅签到" in page and f"Check in at the hall by {at}" in page
