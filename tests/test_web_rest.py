"""The REST endpoints that send broker commands are derived from the command schema (web/rest.py): every command the
``web`` role may send has one, each takes exactly the command's arguments (types, required, values), needs the
token scope of the command's roles and documents the command's refusals; the OpenAPI document they make is valid
OpenAPI 3.1. Real requests through a real gateway (uvicorn on loopback) to a real broker, refused ones included.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from queuehall.web import openapi, rest
from queuehall.web.apitokens import allows
from queuehall.web.errors import HTTP_STATUS
from queuehall.web.integrations import document

from queuehall.commands import COMMANDS, KIND_WORDS, Param, web_scope
from tests import broker_fixtures, web_fixtures
from tests.broker_fixtures import BrokerThread
from tests.test_remote_tickets import remote_config
from tests.test_web_api import BASE, GENEROUS, Hall, error, gateway_parts, make_tokens
from tests.web_fixtures import Gateway

start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_gateway_fixture = web_fixtures.start_gateway_fixture

_JSON = {"integer": "integer", "string": "string", "boolean": "boolean", "integer or string": ["integer", "string"]}


def full_document() -> dict[str, Any]:
    """The document ``queuehall web`` serves: the read side, the derived endpoints, the city page's."""
    from queuehall.web.city import document as city_document

    doc = openapi.document("https://queue.example.gov.cn")
    document(doc)
    city_document(doc)
    return doc


# ---------------------------------------------------------------------------------------------- the derivation


def test_the_openapi_document_is_valid_openapi_3_1() -> None:
    doc = full_document()
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # raises OpenAPIValidationError naming what is wrong
    # Every $ref points at a schema the document has.
    import re

    refs = set(re.findall(r'"#/components/schemas/([A-Za-z]+)"', str(doc).replace("'", '"')))
    assert refs and refs <= set(doc["components"]["schemas"]), refs - set(doc["components"]["schemas"])


def test_a_broken_document_is_refused_by_the_validator() -> None:
    """The validator is not a rubber stamp: a required path parameter left out is caught."""
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    doc = full_document()
    op = doc["paths"]["/api/v1/counters/{number}/call-next"]["post"]
    op["parameters"] = [p for p in op["parameters"] if p["name"] != "number"]
    op["responses"]["200"]["content"]["application/json"]["schema"] = {"type": "no such type"}
    with pytest.raises(OpenAPIValidationError):
        validate(doc)


def test_every_command_of_the_web_role_has_an_endpoint() -> None:
    web = {name for name, c in COMMANDS.items() if "web" in c.roles}
    served = {ep.command for ep in rest.ENDPOINTS}
    assert served <= web, f"endpoints for commands the gateway may not send: {served - web}"
    assert web - served == set(rest.ELSEWHERE), f"no endpoint and no reason: {web - served - set(rest.ELSEWHERE)}"
    assert all(COMMANDS[name].kind == "link" or name == "ticket_by_token" for name in rest.ELSEWHERE)
    doc = full_document()
    for ep in rest.ENDPOINTS:  # each in the document, once, under its own operation id
        op = doc["paths"][ep.path][ep.method.lower()]
        assert op["operationId"] == ep.operation and op["x-queuehall-command"] == ep.command
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def _taken(ep: rest.Endpoint, op: dict[str, Any]) -> dict[str, tuple[Any, bool, list[Any] | None]]:
    """What an operation takes besides its path: argument -> (JSON type, required, enum)."""
    if ep.method == "GET":
        return {p["name"]: (p["schema"]["type"], p["required"], p["schema"].get("enum"))
                for p in op.get("parameters", []) if p["in"] == "query"}
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {"properties": {}})
    required = set(body.get("required", ()))
    return {name: (s["type"], name in required, s.get("enum", s.get("items", {}).get("enum")))
            for name, s in body["properties"].items()}


def test_every_endpoint_takes_exactly_its_commands_arguments() -> None:
    doc = full_document()
    for ep in rest.ENDPOINTS:
        op = doc["paths"][ep.path][ep.method.lower()]
        command = COMMANDS[ep.command]
        on_path = {v if isinstance(v, str) else v.arg for v in ep.path_values.values()}
        # Every argument of the command is the path's, the gateway's own, not offered, or taken as declared.
        assert on_path | set(ep.fixed) | set(ep.hidden) <= {p.name for p in command.params}, ep.operation
        want = {}
        for p in command.params:
            if p.name in on_path or p.name in ep.fixed or p.name in ep.hidden:
                continue
            kind = "array" if p.separator else _JSON[KIND_WORDS[p.kind]]
            want[p.name] = (kind, p.required or p.name in ep.require, list(p.choices) if p.choices else None)
        assert _taken(ep, op) == want, ep.operation
        for name, value in ep.path_values.items():
            param = next(p for p in op["parameters"] if p["name"] == name)
            assert param["in"] == "path" and param["required"]
            if isinstance(value, str):  # sent as it is: typed as the command's argument
                assert param["schema"]["type"] == _JSON[KIND_WORDS[next(
                    p.kind for p in command.params if p.name == value)]]


def test_the_scopes_are_the_commands_roles_and_the_errors_its_refusals() -> None:
    doc = full_document()
    for ep in rest.ENDPOINTS:
        op = doc["paths"][ep.path][ep.method.lower()]
        assert ep.scope == web_scope(ep.command) == op["x-queuehall-scope"]
        if ep.scope == "public":
            assert "security" not in op
        else:
            assert op["security"] == [{"apiToken": []}]
            # A token of the scope may, one of another device role may not (apitokens.allows is the gateway's).
            need = ep.scope
            assert allows((need if need != "counter" else "counter:3",), need, 3)
            assert not allows(("read",), need, 3)
        answered = {code: int(status) for status, r in op["responses"].items() if int(status) >= 400
                    for code in r["content"]["application/json"]["schema"]["allOf"][1]["properties"]["error"][
                        "properties"]["code"]["enum"]}
        for code in COMMANDS[ep.command].errors:
            assert answered.get(code) == HTTP_STATUS.get(code, 409), (ep.operation, code)
        assert answered["BAD_REQUEST"] == 400 and answered["UNREACHABLE"] == 503
        assert ("UNAUTHORIZED" in answered) is (ep.scope != "public")
    # The ones the issue names: a booking needs the kiosk scope, the day's list admin, a counter's box its counter.
    assert web_scope("book") == "kiosk" and web_scope("bookings") == "admin" and web_scope("call_next") == "counter"


def test_a_new_argument_of_a_command_changes_the_rest_api_with_no_second_edit(
        monkeypatch: pytest.MonkeyPatch) -> None:
    book = COMMANDS["book"]
    monkeypatch.setattr(book, "params", (*book.params, Param("language", str, False, choices=("zh", "en"))))
    monkeypatch.setattr(book, "errors", (*book.errors, "UNKNOWN_PRIORITY"))
    doc = full_document()
    op = doc["paths"]["/api/v1/bookings"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"]["properties"]["language"] == {
        "type": "string", "enum": ["zh", "en"], "maxLength": 500}
    assert "UNKNOWN_PRIORITY" in op["responses"]["404"]["description"]
    validate(doc)


# ---------------------------------------------------------------------------------------------- real requests


@pytest.fixture(name="hall")
def hall_fixture(tmp_path: Path, start_broker: Callable[..., BrokerThread],
                 start_gateway: Callable[..., Gateway]) -> Hall:
    broker = start_broker(remote_config(quota=3, minutes=30, public_base_url=BASE))
    state = tmp_path / "web.db"
    tokens = make_tokens(state)
    gw = start_gateway(broker, parts=gateway_parts(state, GENEROUS))
    document(gw.app.state.openapi)
    return Hall(broker, gw, tokens, state)


def call(hall: Hall, method: str, path: str, scope: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {hall.tokens[scope]}"} if scope else {}
    return httpx.request(method, hall.gateway.url + path, headers=headers, timeout=10, **kw)


def test_the_served_document_is_the_derived_one_and_valid(hall: Hall) -> None:
    doc = hall.gateway.get("/api/v1/openapi.json").json()
    validate(doc)
    for ep in rest.ENDPOINTS:
        assert doc["paths"][ep.path][ep.method.lower()]["x-queuehall-command"] == ep.command


def test_an_argument_of_the_wrong_type_is_refused_as_the_broker_would_in_both_languages(hall: Hall) -> None:
    r = call(hall, "POST", "/api/v1/tickets", "kiosk", json={"service": 5})
    err = error(r)
    assert r.status_code == 400 and err["code"] == "BAD_REQUEST" and err["details"]["argument"] == "service"
    assert "参数 service 应为字符串" in err["message_zh"] and "service must be a string" in err["message_en"]
    r = call(hall, "GET", "/api/v1/events?after=soon", "admin")
    assert r.status_code == 400 and error(r)["details"]["argument"] == "after"
    r = call(hall, "GET", "/api/v1/events", "admin")  # a required argument missing
    assert r.status_code == 400 and "after" in error(r)["message_en"] and "缺失" in error(r)["message_zh"]
    r = call(hall, "POST", "/api/v1/alerts/queue_long:P/ack", "admin", json={"note": "\u200b "})
    assert r.status_code == 400 and error(r)["details"]["argument"] == "note"  # blank once cleaned: missing
    r = call(hall, "POST", "/api/v1/bookings/K7M3Q9XPAB/check-in", "kiosk", json={"contact": ["138"]})
    assert r.status_code == 400 and error(r)["details"]["argument"] == "contact"


def test_derived_endpoints_answer_with_the_broker_and_its_refusals(hall: Hall) -> None:
    # The journal, for an admin token (the web role's events query): a take is in it.
    assert call(hall, "POST", "/api/v1/tickets", "kiosk", json={"service": "P"}).status_code == 201
    r = call(hall, "GET", "/api/v1/events?after=0&limit=50", "admin")
    assert r.status_code == 200, r.text
    assert [e["type"] for e in r.json()["events"]][:1] == ["ticket_issued"] and r.json()["journal"] is True
    assert call(hall, "GET", "/api/v1/events?after=0", "kiosk").status_code == 403  # admin's only
    # Supervision's queries and acknowledgement, for an admin token.
    r = call(hall, "GET", "/api/v1/alerts", "admin")
    assert r.status_code == 200 and isinstance(r.json()["alerts"], list)
    r = call(hall, "GET", "/api/v1/today", "admin")
    assert r.status_code == 200 and "served" in r.json()
    r = call(hall, "POST", "/api/v1/alerts/no-such-alert/ack", "admin", json={"note": "已处理"})
    err = error(r)
    assert r.status_code == 409 and err["code"] == "UNKNOWN_ALERT"
    assert "no-such-alert" in err["message_en"] and err["message_zh"] != err["message_en"]
    # A refusal of the hall's rules: a counter not signed in, in both languages, nothing changed.
    r = call(hall, "POST", "/api/v1/counters/1/call-next", "counter:1")
    err = error(r)
    assert r.status_code == 409 and err["code"] == "COUNTER_CLOSED"
    assert "1 号窗口未签到" in err["message_zh"] and "Counter 1 is not signed in" in err["message_en"]


def test_the_session_argument_the_schema_gives_counter_actions_is_taken(hall: Hall) -> None:
    """``session`` (optional, a string) came to the REST API with the schema: a call box acting for a terminal
    whose session was taken over is refused SESSION_ENDED, like the terminal itself."""
    c = hall.broker_client()
    try:
        first = c.request("sign_in", counter=1, clerk="c1a", pin="1234")["session"]
        c.request("sign_in", counter=1, clerk="c1a", pin="1234", takeover=True)
        c.request("take_ticket", service="P")
    finally:
        c.close()
    r = call(hall, "POST", "/api/v1/counters/1/call-next", "counter:1", json={"session": first})
    assert r.status_code == 409 and error(r)["code"] == "SESSION_ENDED"
    r = call(hall, "POST", "/api/v1/counters/1/call-next", "counter:1", json={"session": 7})
    assert r.status_code == 400 and error(r)["details"]["argument"] == "session"
    r = call(hall, "POST", "/api/v1/counters/1/call-next", "counter:1", json={})
    assert r.status_code == 200 and r.json()["ticket"]["label"] == "A001"
