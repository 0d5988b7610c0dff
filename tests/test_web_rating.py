"""好差评 from the ticket's phone page (docs/evaluation.md): the form after the visit, its POST, the JSON
endpoint, and the refusals (not finished, a second rating, a late one) as clear bilingual answers; the
web role may rate only as the phone, naming a ticket."""

from __future__ import annotations

from typing import Any

import httpx
from queuehall.broker.storage import ratings
from sqlalchemy import select

from queuehall.client import BrokerClient, CommandRefused
from tests import broker_fixtures
from tests.broker_fixtures import security
from tests.hall_factory import small_config
from tests.test_web import BASE, counter, sign_in, take
from tests.web_fixtures import Gateway, start_gateway_fixture

start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
keys_dir_fixture = broker_fixtures.keys_dir_fixture
start_gateway = start_gateway_fixture


def served(hall: Any) -> dict[str, Any]:
    t = take(hall)
    for step in ("call_next", "start", "finish"):
        counter(hall, step)
    return t


def post(gw: Gateway, path: str, **kw: Any) -> httpx.Response:
    return httpx.post(gw.url + path, timeout=5, **kw)


def test_the_phone_page_offers_the_form_after_the_visit_and_takes_one_rating(start_broker: Any, start_gateway: Any,
                                                                              manual_clock: Any) -> None:
    hall = start_broker(small_config(public_base_url=BASE))
    gw: Gateway = start_gateway(hall)
    sign_in(hall)
    waiting = take(hall)
    assert 'id="rating"' not in gw.get(f"/t/{waiting['token']}").text  # no form before the visit
    r = post(gw, f"/t/{waiting['token']}/rate", data={"level": "5"})
    assert r.status_code == 409 and "尚未办结" in r.text and "not finished" in r.text
    counter(hall, "call_next")
    counter(hall, "start")
    counter(hall, "finish")
    page = gw.get(f"/t/{waiting['token']}").text
    assert 'id="rating"' in page and "非常不满意" in page and "服务态度" in page
    r = post(gw, f"/t/{waiting['token']}/rate",
             data={"level": "2", "indicators": ["attitude", "efficiency"], "reason": "窗口人员态度冷淡"})
    assert r.status_code == 200 and "感谢您的评价" in r.text and "不满意" in r.text
    r = post(gw, f"/t/{waiting['token']}/rate", data={"level": "5"})
    assert r.status_code == 409 and "只能评价一次" in r.text and "one rating per visit" in r.text
    assert hall.store is not None
    with hall.store.engine.connect() as conn:
        row = conn.execute(select(ratings)).one()
    assert (row.level, row.channel, row.reason, row.counter, row.clerk) == (2, "phone", "窗口人员态度冷淡", 1, "c1a")

    # The JSON endpoint, its refusals, and the window.
    second = served(hall)
    r = post(gw, f"/api/v1/tickets/{second['token']}/rating", json={"level": 9})
    assert r.status_code == 409 and r.json()["error"]["code"] == "BAD_LEVEL"
    r = post(gw, f"/api/v1/tickets/{second['token']}/rating", content=b"[1]")
    assert r.status_code == 400 and r.json()["error"]["code"] == "BAD_REQUEST"
    r = post(gw, f"/api/v1/tickets/{second['token']}/rating", json={"level": 4, "reason": "很快"})
    assert r.status_code == 200
    assert r.json()["rating"] == {"label": "A002", "level": 4, "level_zh": "满意", "level_en": "Satisfied",
                                  "indicators": [], "channel": "phone", "rated_at": r.json()["rating"]["rated_at"]}
    late = served(hall)
    manual_clock.advance(minutes=31)
    r = post(gw, f"/api/v1/tickets/{late['token']}/rating", json={"level": 4})
    assert r.status_code == 409 and r.json()["error"]["code"] == "RATING_CLOSED"
    r = post(gw, "/api/v1/tickets/AAAAAAAAAAAAAAAAAAAAAA/rating", json={"level": 4})
    assert r.status_code == 404 and r.json()["error"]["code"] == "UNKNOWN_TOKEN"


def test_the_web_role_rates_only_as_the_phone(start_broker: Any, keys_dir: Any) -> None:
    from queuehall.broker import keys

    keys.add_device(keys_dir, "web-1", "web")
    hall = start_broker(small_config(), keys_dir=keys_dir)
    admin = BrokerClient(hall.endpoint, security=security(keys_dir, "manager"), timeout=3.0)
    web = BrokerClient(hall.endpoint, security=security(keys_dir, "web-1"), timeout=3.0)
    try:
        admin.request("sign_in", counter=1, clerk="c1a", pin="1234")
        label = admin.request("take_ticket", service="P")["ticket"]["label"]
        for step in ("call_next", "start", "finish"):
            admin.request(step, counter=1)
        for args in ({"counter": 1, "level": 5, "channel": "phone"}, {"ticket": label, "level": 5, "channel": "cli"},
                     {"ticket": label, "level": 5}):
            try:
                web.request("rate", **args)
                raise AssertionError(f"the web role rated with {args}")
            except CommandRefused as err:
                assert err.error["code"] == "FORBIDDEN"
        assert web.request("rate", ticket=label, level=5, channel="phone")["rating"]["channel"] == "phone"
    finally:
        admin.close()
        web.close()
