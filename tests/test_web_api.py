"""The REST API's write side on a real gateway (uvicorn on loopback) and a real broker: remote tickets,
check-in, counter actions, API tokens, Idempotency-Key, rate limits, and webhooks from the gateway."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from queuehall.web.apitokens import TokenStore
from queuehall.web.integrations import IntegrationSettings, document, parts
from queuehall.web.outbox import Outbox
from queuehall.web.ratelimit import Limit, RateLimits

from queuehall.client import BrokerClient
from tests import broker_fixtures, web_fixtures
from tests.broker_fixtures import BrokerThread, wait_until
from tests.test_remote_tickets import remote_config
from tests.web_fixtures import Gateway
from tests.webhook_receiver import Receiver

start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_gateway_fixture = web_fixtures.start_gateway_fixture

BASE = "https://queue.example.gov.cn"
GENEROUS = RateLimits(per_token=Limit(1000, 1000), per_address=Limit(1000, 1000))


class Hall:
    """A broker with remote tickets, a gateway with the integrations, and one token per scope."""

    def __init__(self, broker: BrokerThread, gateway: Gateway, tokens: dict[str, str], state: Path) -> None:
        self.broker, self.gateway, self.tokens, self.state = broker, gateway, tokens, state

    def post(self, path: str, scope: str | None = None, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if scope is not None:
            headers["Authorization"] = f"Bearer {self.tokens[scope]}"
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.gateway.post(path, headers=headers, **kw)

    def broker_client(self) -> BrokerClient:
        return BrokerClient(self.broker.endpoint)


def make_tokens(state: Path) -> dict[str, str]:
    store = TokenStore(state)
    out = {scope: store.create(f"test {scope}", [scope])[0] for scope in ("read", "kiosk", "counter:1", "admin")}
    store.close()
    return out


def gateway_parts(state: Path, limits: RateLimits = GENEROUS, **kw: Any) -> dict[str, Any]:
    return parts(IntegrationSettings(state=state, limits=limits, webhooks=False, **kw))


@pytest.fixture(name="hall")
def hall_fixture(tmp_path: Path, start_broker: Callable[..., BrokerThread],
                 start_gateway: Callable[..., Gateway]) -> Iterator[Hall]:
    broker = start_broker(remote_config(quota=3, minutes=30, public_base_url=BASE))
    state = tmp_path / "web.db"
    tokens = make_tokens(state)
    gw = start_gateway(broker, parts=gateway_parts(state))
    document(gw.app.state.openapi)
    yield Hall(broker, gw, tokens, state)


def error(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert body["status"] == "error" and body["error"]["message_zh"] and body["error"]["message_en"], body
    return body["error"]


# ---------------------------------------------------------------------------------------------- remote tickets


def test_take_a_remote_ticket(hall: Hall) -> None:
    r = hall.post("/api/v1/tickets", "kiosk", json={"service": "P"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["ticket"]["label"] == "A001" and body["ticket"]["channel"] == "remote"
    assert body["arrive_by"] == body["ticket"]["arrive_by"] == "2026-11-24T01:30:00Z"
    assert body["url"] == f"{BASE}/t/{body['token']}" and body["ahead"] == 0
    # The ticket's page token works on the public read side at once, and the page says when to check in.
    page = hall.gateway.get(f"/api/v1/tickets/{body['token']}")
    state = page.json()["ticket"]
    assert page.status_code == 200 and state["label"] == "A001" and state["check_in_by"] == body["arrive_by"]
    assert "请于 09:30 前" in state["detail"]["zh"] and "by 09:30" in state["detail"]["en"]
    assert "09:30" in hall.gateway.get(f"/t/{body['token']}").text
    hall.post(f"/api/v1/tickets/{body['token']}/check-in", "kiosk")
    wait_until(lambda: hall.gateway.get(f"/api/v1/tickets/{body['token']}").json()["ticket"]["check_in_by"] is None,
               5, "the page to see the check-in")
    assert "09:30" not in hall.gateway.get(f"/api/v1/tickets/{body['token']}").json()["ticket"]["detail"]["zh"]


def test_tokens_and_scopes_are_checked(hall: Hall) -> None:
    r = hall.post("/api/v1/tickets", json={"service": "P"})
    assert r.status_code == 401 and error(r)["code"] == "UNAUTHORIZED"
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = hall.post("/api/v1/tickets", json={"service": "P"}, headers={"Authorization": "Bearer qh_00000000_" + "x" * 43})
    assert r.status_code == 401
    for scope in ("read", "counter:1"):
        r = hall.post("/api/v1/tickets", scope, json={"service": "P"})
        assert r.status_code == 403 and error(r)["code"] == "TOKEN_SCOPE" and "kiosk" in error(r)["message_en"]
    assert hall.post("/api/v1/tickets", "admin", json={"service": "P"}).status_code == 201
    TokenStore(hall.state).revoke("test kiosk")
    r = hall.post("/api/v1/tickets", "kiosk", json={"service": "P"})
    assert r.status_code == 401  # revoked from the CLI: refused from the next request on


def test_bad_bodies_and_the_halls_refusals(hall: Hall) -> None:
    for body, code in ((b"{", "BAD_REQUEST"), (b"[1]", "BAD_REQUEST"), (b'{"service": 5}', "BAD_REQUEST"),
                       (b'{"service": "P", "priority": []}', "BAD_REQUEST"), (b"{}", "BAD_REQUEST")):
        r = hall.post("/api/v1/tickets", "kiosk", content=body)
        assert r.status_code == 400 and error(r)["code"] == code, body
    r = hall.post("/api/v1/tickets", "kiosk", json={"service": "NOPE"})
    assert r.status_code == 404 and error(r)["code"] == "UNKNOWN_SERVICE"
    r = hall.post("/api/v1/tickets", "kiosk", json={"service": "P"}, headers={"Idempotency-Key": "has space"})
    assert r.status_code == 400 and "Idempotency-Key" in error(r)["message_en"]
    for _ in range(3):
        assert hall.post("/api/v1/tickets", "kiosk", json={"service": "P"}).status_code == 201
    r = hall.post("/api/v1/tickets", "kiosk", json={"service": "P"})
    err = error(r)
    assert r.status_code == 409 and err["code"] == "REMOTE_QUOTA_REACHED" and err["details"]["quota"] == 3
    assert "3 个" in err["message_zh"]
    r = hall.post("/api/v1/tickets", "kiosk", content=b"x" * 70_000)
    assert r.status_code == 413


def test_idempotency_key_makes_retries_safe_also_across_a_gateway_restart(
        hall: Hall, start_gateway: Callable[..., Gateway]) -> None:
    first = hall.post("/api/v1/tickets", "kiosk", "order-1", json={"service": "P"}).json()
    again = hall.post("/api/v1/tickets", "kiosk", "order-1", json={"service": "P"}).json()
    assert again["ticket"]["id"] == first["ticket"]["id"] and again["token"] == first["token"]
    hall.gateway.stop()
    gw = start_gateway(hall.broker, parts=gateway_parts(hall.state))
    hall.gateway = gw
    after = hall.post("/api/v1/tickets", "kiosk", "order-1", json={"service": "P"}).json()
    assert after["ticket"]["id"] == first["ticket"]["id"]
    other = hall.post("/api/v1/tickets", "kiosk", "order-2", json={"service": "P"}).json()
    assert other["ticket"]["label"] == "A002"
    # The same key from another token is another request.
    admin = hall.post("/api/v1/tickets", "admin", "order-1", json={"service": "P"}).json()
    assert admin["ticket"]["label"] == "A003"


def test_check_in_by_the_tickets_token(hall: Hall) -> None:
    token = hall.post("/api/v1/tickets", "kiosk", json={"service": "P"}).json()["token"]
    r = hall.post(f"/api/v1/tickets/{token}/check-in", "kiosk")
    assert r.status_code == 200 and r.json()["ticket"]["checked_in"] is True
    r = hall.post(f"/api/v1/tickets/{token}/check-in", "kiosk")
    assert r.status_code == 409 and error(r)["code"] == "ALREADY_CHECKED_IN"
    r = hall.post("/api/v1/tickets/" + "A" * 22 + "/check-in", "kiosk")
    assert r.status_code == 404 and error(r)["code"] == "UNKNOWN_TOKEN"
    assert hall.post(f"/api/v1/tickets/{token}/check-in", "read").status_code == 403


# ---------------------------------------------------------------------------------------------- counter actions


def test_counter_actions_for_the_counter_of_the_tokens_scope(hall: Hall) -> None:
    c = hall.broker_client()
    try:
        c.request("sign_in", counter=1, clerk="c1a", pin="1234")
        c.request("sign_in", counter=2, clerk="c2a", pin="1234")
        for _ in range(3):
            c.request("take_ticket", service="P")
    finally:
        c.close()
    r = hall.post("/api/v1/counters/1/call-next", "counter:1", "press-1")
    assert r.status_code == 200 and r.json()["ticket"]["label"] == "A001"
    # The box did not hear the answer and presses again with the same key: the same call, not COUNTER_BUSY.
    r = hall.post("/api/v1/counters/1/call-next", "counter:1", "press-1")
    assert r.status_code == 200 and r.json()["ticket"]["label"] == "A001"
    r = hall.post("/api/v1/counters/1/call-next", "counter:1", "press-2")
    assert r.status_code == 409 and error(r)["code"] == "COUNTER_BUSY"
    r = hall.post("/api/v1/counters/1/recall", "counter:1")
    assert r.status_code == 200 and r.json()["no_show"] is False
    assert hall.post("/api/v1/counters/1/start", "counter:1").json()["ticket"]["status"] == "serving"
    assert hall.post("/api/v1/counters/1/finish", "counter:1").json()["ticket"]["status"] == "finished"
    assert hall.post("/api/v1/counters/1/call-next", "counter:1").json()["ticket"]["label"] == "A002"
    assert hall.post("/api/v1/counters/1/no-show", "counter:1").json()["ticket"]["status"] == "no_show"
    r = hall.post("/api/v1/counters/2/call-next", "counter:1")
    assert r.status_code == 403 and "counter:2" in error(r)["message_en"]
    for scope in ("kiosk", "read"):
        assert hall.post("/api/v1/counters/1/call-next", scope).status_code == 403
    assert hall.post("/api/v1/counters/1/call-next", "admin").json()["ticket"]["label"] == "A003"
    r = hall.post("/api/v1/counters/1/dance", "counter:1")
    assert r.status_code == 404 and error(r)["code"] == "NOT_FOUND"
    r = hall.post("/api/v1/counters/9/finish", "admin")
    assert r.status_code == 409 and error(r)["code"] == "COUNTER_CLOSED"
    r = hall.gateway.get("/api/v1/counters/1/call-next")
    assert r.status_code == 405


def test_a_broker_that_is_down_is_answered_503(hall: Hall) -> None:
    hall.broker.stop()
    wait_until(lambda: hall.gateway.get("/healthz").status_code == 503, 10, "the gateway to notice")
    r = hall.post("/api/v1/counters/1/call-next", "counter:1", "k")
    assert r.status_code == 503 and error(r)["code"] == "UNREACHABLE"
    hall.broker.start()


# ---------------------------------------------------------------------------------------------- limits, docs


def test_rate_limit_per_token_on_the_gateway(tmp_path: Path, start_broker: Callable[..., BrokerThread],
                                            start_gateway: Callable[..., Gateway]) -> None:
    broker = start_broker(remote_config(quota=50))
    state = tmp_path / "web.db"
    tokens = make_tokens(state)
    limits = RateLimits(per_token=Limit(0.01, 2), per_address=Limit(1000, 1000))
    gw = start_gateway(broker, parts=gateway_parts(state, limits))
    auth = {"Authorization": f"Bearer {tokens['kiosk']}"}
    codes = [gw.post("/api/v1/tickets", headers=auth, json={"service": "P"}).status_code for _ in range(3)]
    assert codes == [201, 201, 429]
    r = gw.post("/api/v1/tickets", headers=auth, json={"service": "P"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and error(r)["code"] == "RATE_LIMITED"
    other = {"Authorization": f"Bearer {tokens['admin']}"}
    assert gw.post("/api/v1/tickets", headers=other, json={"service": "P"}).status_code == 201
    assert gw.get("/api/v1/hall").status_code == 200  # reads without a token: the address's bucket only


def test_openapi_lists_the_write_side(hall: Hall) -> None:
    doc = hall.gateway.get("/api/v1/openapi.json").json()
    for path in ("/api/v1/tickets", "/api/v1/tickets/{token}/check-in", "/api/v1/counters/{number}/call-next",
                 "/api/v1/counters/{number}/finish"):
        assert "post" in doc["paths"][path], path
    assert doc["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    assert "get" in doc["paths"]["/api/v1/hall"]  # the read side is still there
    codes = set(doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"])
    assert {"UNAUTHORIZED", "TOKEN_SCOPE", "RATE_LIMITED", "REMOTE_QUOTA_REACHED"} <= codes


def test_the_gateway_delivers_webhooks(tmp_path: Path, start_broker: Callable[..., BrokerThread],
                                       start_gateway: Callable[..., Gateway]) -> None:
    broker = start_broker(remote_config(quota=5))
    state = tmp_path / "web.db"
    tokens = make_tokens(state)
    rx = Receiver("whsec_gateway_test_secret_1234")
    try:
        Outbox(state).add_subscriber(rx.url, ["ticket_issued", "ticket_checked_in"],
                                     secret="whsec_gateway_test_secret_1234")
        gw = start_gateway(broker, parts=parts(IntegrationSettings(state=state, limits=GENEROUS,
                                                                   broker=broker.endpoint)))
        wait_until(lambda: Outbox(state).cursor() is not None, 10, "the webhook feed's first contact")
        auth = {"Authorization": f"Bearer {tokens['kiosk']}"}
        token = gw.post("/api/v1/tickets", headers=auth, json={"service": "P"}).json()["token"]
        gw.post(f"/api/v1/tickets/{token}/check-in", headers=auth)
        wait_until(lambda: len(rx.journal_seqs()) == 2, 10, "two deliveries")
        assert [c["json"]["type"] for c in rx.accepted] == ["ticket_issued", "ticket_checked_in"]
        assert all(c["signed"] for c in rx.calls)
        assert token not in str([c["body"] for c in rx.calls])  # page tokens never leave in events
    finally:
        rx.close()
