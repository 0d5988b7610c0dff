"""Remote tickets (WeChat mini program, 一网通办): quota, arrival deadline, check-in and lapse.

The rules are the engine's (take_ticket with ``channel: "remote"``, check_in, lapse_remote); the
broker runs the lapse on its heartbeat. Engine tests drive a real :class:`Hall` with a manual
clock; the restart and broker tests use real SQLite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from queuehall.broker.config import ConfigError, parse_config
from queuehall.broker.storage import load_hall, open_store

from queuehall.client import BrokerClient, CommandRefused
from queuehall.clock import ManualClock
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, security, sqlite_url, wait_until
from tests.hall_factory import TUESDAY, local, small_config
from tests.test_engine_rules import Bench, refused

start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
keys_dir_fixture = broker_fixtures.keys_dir_fixture


def remote_config(quota: int = 2, minutes: int = 30, public_base_url: str = "", **service_kw: Any) -> Any:
    """The small hall with remote tickets: ``quota`` a day per service, ``minutes`` to check in;
    service H overrides with ``service_kw`` (e.g. remote_quota=0)."""
    cfg = small_config(remote_quota=quota, remote_arrival_minutes=minutes, public_base_url=public_base_url)
    services = tuple(replace(s, **service_kw) if s.code == "H" else s for s in cfg.services)
    return replace(cfg, services=services)


def take_remote(b: Bench, service: str = "P", **kw: Any) -> dict[str, Any]:
    return b.hall.execute("take_ticket", {"service": service, "channel": "remote", **kw})


def test_a_remote_ticket_queues_at_once_and_carries_its_deadline() -> None:
    b = Bench(remote_config(minutes=30))
    b.take("P")
    reply = take_remote(b)
    t = reply["ticket"]
    assert t["label"] == "A002" and reply["ahead"] == 1  # one numbering for kiosk and remote tickets
    assert t["channel"] == "remote" and t["checked_in"] is False
    assert t["arrive_by"] == "2026-11-24T01:30:00Z"  # 09:30 in Shanghai
    assert "channel" not in b.hall.ticket_view(b.ticket("A001"))  # a kiosk ticket is unchanged
    assert b.events[-1].type == "ticket_issued" and b.events[-1].data["ticket"]["channel"] == "remote"
    assert [x.label for x in b.hall.queue("P")] == ["A001", "A002"]


def test_quota_per_service_and_day_and_the_services_own_setting() -> None:
    b = Bench(remote_config(quota=2, remote_quota=0))
    take_remote(b)
    take_remote(b)
    err = refused(b.hall, "REMOTE_QUOTA_REACHED", "take_ticket", {"service": "P", "channel": "remote"})
    assert err.details["quota"] == 2
    b.take("P")  # the kiosk still issues
    take_remote(b, "FEE")  # each service has its own quota
    refused(b.hall, "REMOTE_NOT_OFFERED", "take_ticket", {"service": "H", "channel": "remote"})
    b.clock.set(local(TUESDAY.replace(day=25), 9))  # the next business day: the quota is back
    assert take_remote(b)["ticket"]["label"] == "A001"


def test_remote_tickets_follow_the_kiosks_opening_hours_and_caps() -> None:
    b = Bench(remote_config(), start=(12, 0))  # the lunch break
    refused(b.hall, "HALL_BREAK", "take_ticket", {"service": "P", "channel": "remote"})
    b.clock.set(local(TUESDAY, 16, 45))  # past the 30-minute cut-off before 17:00
    refused(b.hall, "PAST_CUTOFF", "take_ticket", {"service": "P", "channel": "remote"})
    b = Bench(remote_config(quota=5, daily_cap=1))
    b.take("H")
    refused(b.hall, "DAILY_CAP_REACHED", "take_ticket", {"service": "H", "channel": "remote"})
    refused(b.hall, "BAD_REQUEST", "take_ticket", {"service": "P", "channel": "wechat"})


def test_remote_is_off_unless_configured() -> None:
    b = Bench(small_config())
    refused(b.hall, "REMOTE_NOT_OFFERED", "take_ticket", {"service": "P", "channel": "remote"})


def test_check_in_stops_the_lapse() -> None:
    b = Bench(remote_config(minutes=30))
    a = take_remote(b)["ticket"]["label"]
    c = take_remote(b)["ticket"]["label"]
    b.clock.advance(minutes=10)
    reply = b.do("check_in", ticket=a)
    assert reply["ticket"]["checked_in"] is True and b.events[-1].type == "ticket_checked_in"
    refused(b.hall, "ALREADY_CHECKED_IN", "check_in", {"ticket": a})
    b.clock.advance(minutes=21)  # 09:31: past both deadlines
    assert b.hall.remote_due()
    assert b.do("lapse_remote") == {"lapsed": [c]}
    assert not b.hall.remote_due()
    assert b.ticket(a).status == "waiting"
    ev = b.events[-1]
    assert ev.type == "ticket_cancelled" and ev.data["reason"] == "remote_lapsed" and ev.data["ticket"]["label"] == c
    assert [x.label for x in b.hall.queue("P")] == [a]
    err = refused(b.hall, "REMOTE_LAPSED", "check_in", {"ticket": c})  # too late: a new ticket is needed
    assert err.details["arrive_by"] == "2026-11-24 09:30"
    assert b.do("lapse_remote") == {"lapsed": []}


def test_check_in_refusals() -> None:
    b = Bench(remote_config(minutes=30))
    kiosk = b.take("P")
    refused(b.hall, "NOT_REMOTE", "check_in", {"ticket": kiosk})
    refused(b.hall, "UNKNOWN_TICKET", "check_in", {"ticket": "Z999"})
    r = take_remote(b)["ticket"]["label"]
    b.clock.advance(minutes=31)  # past the deadline, the broker has not lapsed it yet
    refused(b.hall, "REMOTE_LAPSED", "check_in", {"ticket": r})
    b2 = Bench(remote_config(minutes=30))
    r2 = take_remote(b2)["ticket"]["label"]
    b2.do("cancel_ticket", ticket=r2, reason="left")
    refused(b2.hall, "UNKNOWN_TICKET", "check_in", {"ticket": r2})  # cancelled: gone from the hall


def test_a_remote_ticket_called_before_its_deadline_does_not_lapse() -> None:
    b = Bench(remote_config(minutes=30))
    b.open(1)
    r = take_remote(b)["ticket"]["label"]
    assert b.call(1) == r
    b.clock.advance(minutes=40)
    assert not b.hall.remote_due()
    assert b.do("lapse_remote") == {"lapsed": []}
    b.do("check_in", ticket=r)  # it may still check in at the kiosk while called
    assert b.ticket(r).status == "called"


def test_quota_and_deadlines_survive_a_restart(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "hall.db")
    clock = ManualClock(local(TUESDAY, 9))
    store = open_store(url, sqlite_synchronous="NORMAL")
    cfg = remote_config(quota=2, minutes=30)
    hall = load_hall(cfg, clock, store)
    a = hall.execute("take_ticket", {"service": "P", "channel": "remote"})["ticket"]["label"]
    b = hall.execute("take_ticket", {"service": "P", "channel": "remote"})["ticket"]["label"]
    hall.execute("check_in", {"ticket": a})
    store.close()
    store = open_store(url, sqlite_synchronous="NORMAL")
    hall = load_hall(cfg, clock, store)
    with pytest.raises(Exception) as err:
        hall.execute("take_ticket", {"service": "P", "channel": "remote"})
    assert getattr(err.value, "code", None) == "REMOTE_QUOTA_REACHED"
    assert hall.ticket_view(hall.find_ticket(a))["checked_in"] is True
    clock.advance(minutes=31)
    assert hall.remote_due() and hall.execute("lapse_remote") == {"lapsed": [b]}
    store.close()
    store = open_store(url, sqlite_synchronous="NORMAL")
    hall = load_hall(cfg, clock, store)
    assert not hall.remote_due() and [t.label for t in hall.queue("P")] == [a]
    store.close()


def test_the_broker_lapses_remote_tickets_on_its_heartbeat(start_broker: Callable[..., BrokerThread],
                                                           manual_clock: ManualClock) -> None:
    b = start_broker(remote_config(minutes=30))
    c = BrokerClient(b.endpoint)
    try:
        label = c.request("take_ticket", service="P", channel="remote")["ticket"]["label"]
        manual_clock.advance(minutes=31)
        wait_until(lambda: c.request("events", after=0)["events"][-1]["type"] == "ticket_cancelled", timeout=5,
                   what="the lapse")
        ev = c.request("events", after=0)["events"][-1]
        assert ev["reason"] == "remote_lapsed" and ev["ticket"]["label"] == label
        assert c.request("snapshot")["state"]["tickets"] == {}
    finally:
        c.close()


def test_only_the_gateway_and_admins_take_remote_tickets_and_kiosks_check_in(
        start_broker: Callable[..., BrokerThread], keys_dir: Path) -> None:
    from queuehall.broker import keys

    keys.add_device(keys_dir, "gateway", "web", None)
    b = start_broker(remote_config(), keys_dir=keys_dir)
    gw = BrokerClient(b.endpoint, security=security(keys_dir, "gateway"))
    kiosk = BrokerClient(b.endpoint, security=security(keys_dir, "kiosk-1"))
    wall = BrokerClient(b.endpoint, security=security(keys_dir, "wall-1"))
    try:
        r = gw.request("take_ticket", service="P", channel="remote")["ticket"]["label"]
        with pytest.raises(CommandRefused) as err:
            kiosk.request("take_ticket", service="P", channel="remote")
        assert err.value.code == "FORBIDDEN"
        assert kiosk.request("check_in", ticket=r)["ticket"]["checked_in"] is True
        with pytest.raises(CommandRefused) as err:
            wall.request("check_in", ticket=r)
        assert err.value.code == "FORBIDDEN"
    finally:
        for x in (gw, kiosk, wall):
            x.close()


def test_configuration_keys(tmp_path: Path) -> None:
    import tomllib

    from queuehall.broker.config import DEFAULT_CONFIG, load_config

    data = tomllib.loads(Path(DEFAULT_CONFIG).read_text(encoding="utf-8"))
    data["hall"].update(remote_quota=100, remote_arrival_minutes=45)
    data["service"][0].update(remote_quota=10)
    cfg = parse_config(data, "test")
    first, second = cfg.services[0], cfg.services[1]
    assert cfg.remote_rules(first) == (10, 45) and cfg.remote_rules(second) == (100, 45)
    default = load_config(DEFAULT_CONFIG)
    assert default.remote_quota >= 0 and default.remote_arrival_minutes >= 1
    for key, value in (("remote_quota", -1), ("remote_arrival_minutes", 0), ("remote_quota", "x")):
        bad = tomllib.loads(Path(DEFAULT_CONFIG).read_text(encoding="utf-8"))
        bad["hall"][key] = value
        with pytest.raises(ConfigError, match=key):
            parse_config(bad, "test")


def test_checkin_command(start_broker: Callable[..., BrokerThread], capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from queuehall.cli import main

    b = start_broker(remote_config())
    c = BrokerClient(b.endpoint)
    try:
        label = c.request("take_ticket", service="P", channel="remote")["ticket"]["label"]
    finally:
        c.close()
    assert main(["checkin", label, "--broker", b.endpoint]) == 0
    assert json.loads(capsys.readouterr().out)["result"]["ticket"]["checked_in"] is True
    assert main(["checkin", label, "--broker", b.endpoint]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "ALREADY_CHECKED_IN"
