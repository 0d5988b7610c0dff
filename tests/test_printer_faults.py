"""Printer faults and reprints at the broker: a kiosk that cannot print keeps the ticket in the queue,
raises an alert the help counter sees, and the help counter (or the kiosk's staff menu) orders reprints.

Real brokers on loopback with CurveZMQ device keys (the roles matter here), a real SQLite database,
and a real Link mirroring what a counter screen shows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from queuehall.client import BrokerClient, CommandRefused, Link
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, MirrorTap, security, small_config

keys_dir_fixture = broker_fixtures.keys_dir_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture

PIN = "1234"


def refused(expected: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> CommandRefused:
    with pytest.raises(CommandRefused) as info:
        fn(*args, **kw)
    assert info.value.code == expected, info.value
    assert info.value.message_zh and info.value.message_en
    return info.value


def test_a_print_failure_keeps_the_ticket_and_alerts_the_help_counter_which_reprints(
        start_broker: Callable[..., BrokerThread], keys_dir: Path) -> None:
    bt = start_broker(config=small_config(help_counter=1), keys_dir=keys_dir)
    kiosk = BrokerClient(bt.endpoint, client_id="kiosk-1-stable", security=security(keys_dir, "kiosk-1"))
    c1 = BrokerClient(bt.endpoint, security=security(keys_dir, "counter-1"))
    c2 = BrokerClient(bt.endpoint, security=security(keys_dir, "counter-2"))
    link = Link(bt.endpoint, role="counter", counter=1, name="counter 1", security=security(keys_dir, "counter-1"))
    tap = MirrorTap(link)
    link.start()
    try:
        tap.wait(lambda t: t.epoch is not None, what="the first snapshot")
        assert tap.state["hall"]["help_counter"] == 1
        first = kiosk.request("take_ticket", service="P")["ticket"]
        assert first["label"] == "A001"
        kiosk_id = "kiosk-1/kiosk-1-stable"  # the broker prefixes the client id with the device key's name
        second = kiosk.request("take_ticket", service="P")["ticket"]
        # The printer fails on A002: the ticket stays waiting, and the alert names the kiosk and the number.
        rec = kiosk.request("printer_fault", code="PAPER_OUT", ticket=str(second["id"]), name="大厅东侧取号机")
        assert rec["printer"]["fault"]["code"] == "PAPER_OUT"
        alert = tap.wait(lambda t: (t.state.get("printers") or {}).get(kiosk_id), what="the alert on counter 1")
        assert alert["name"] == "大厅东侧取号机"
        assert alert["unprinted"] == [{"id": second["id"], "label": "A002", "service": "P"}]
        assert any(e["event"]["type"] == "printer_fault" and e["event"]["kiosk"] == kiosk_id
                   and e["event"]["ticket"]["label"] == "A002" for e in tap.events)
        admin = BrokerClient(bt.endpoint, security=security(keys_dir, "manager"))
        snap = admin.request("snapshot")["state"]
        assert {t["label"]: t["status"] for t in snap["tickets"].values()} == {"A001": "waiting", "A002": "waiting"}

        # Only the help counter may order a reprint; it goes to the issuing kiosk by default.
        c1.request("sign_in", counter=1, clerk="c1a", pin=PIN)
        refused("NOT_HELP_COUNTER", c2.request, "reprint_ticket", ticket="A002", counter=2)
        order = c1.request("reprint_ticket", ticket="A002", counter=1)
        assert order["kiosk"] == kiosk_id and order["ahead"] == 1 and order["ticket"]["label"] == "A002"
        rec = tap.wait(lambda t: (t.state["printers"].get(kiosk_id) or {}).get("reprints"), what="the order")
        assert [r["ticket"]["label"] for r in rec] == ["A002"] and rec[0]["counter"] == 1
        # A kiosk orders reprints only for itself.
        refused("FORBIDDEN", kiosk.request, "reprint_ticket", ticket="A001", kiosk="someone-else")
        refused("FORBIDDEN", kiosk.request, "reprint_ticket", ticket="A001", counter=1)

        # The kiosk prints it: the number leaves the alert's unprinted list; the printer still has a fault.
        assert kiosk.request("reprint_done", ticket=str(second["id"]))["printed"] is True
        rec = tap.wait(lambda t: not t.state["printers"][kiosk_id]["reprints"]
                       and not t.state["printers"][kiosk_id]["unprinted"], what="the reprint done")
        assert rec
        assert tap.state["printers"][kiosk_id]["fault"]["code"] == "PAPER_OUT"
        # The printer works again: the alert is gone from every screen.
        assert kiosk.request("printer_ok")["cleared"] is True
        tap.wait(lambda t: kiosk_id not in t.state["printers"], what="the alert cleared")
        assert kiosk.request("printer_ok")["cleared"] is False  # nothing to clear: nothing published
        assert admin.request("snapshot")["state"]["printers"] == {}
        admin.close()
    finally:
        link.stop()
        for c in (kiosk, c1, c2):
            c.close()


def test_the_alert_and_reprint_orders_survive_a_broker_restart_and_a_failed_reprint_raises_the_alert(
        start_broker: Callable[..., BrokerThread]) -> None:
    bt = start_broker(config=small_config(help_counter=9))
    kiosk = BrokerClient(bt.endpoint, client_id="kiosk-a")
    admin = BrokerClient(bt.endpoint)
    try:
        t = kiosk.request("take_ticket", service="H")["ticket"]
        admin.request("sign_in", counter=9, clerk="c9a", pin=PIN)
        # Ordered from the help counter (9) before any fault: the kiosk was offline.
        admin.request("reprint_ticket", ticket=t["label"], counter=9)
        kiosk.close()
        bt.restart()
        kiosk = BrokerClient(bt.endpoint, client_id="kiosk-a")
        printers = kiosk.request("snapshot", tickets="none")["state"]["printers"]
        assert [r["ticket"]["label"] for r in printers["kiosk-a"]["reprints"]] == ["B001"]
        # The reprint fails: the order is dropped and the alert is raised with the number unprinted.
        assert kiosk.request("reprint_done", ticket="B001", code="PRINTER_OFFLINE")["printed"] is False
        bt.restart()
        rec = BrokerClient(bt.endpoint).request("snapshot")["state"]["printers"]["kiosk-a"]
        assert rec["fault"]["code"] == "PRINTER_OFFLINE" and rec["reprints"] == []
        assert [u["label"] for u in rec["unprinted"]] == ["B001"]
        # Bad reports are refused and change nothing.
        refused("BAD_REQUEST", kiosk.request, "printer_fault", code="paper out: [Errno 5]")
        refused("UNKNOWN_TICKET", kiosk.request, "printer_fault", code="PAPER_OUT", ticket="Z999")
        # A closed ticket cannot be reprinted (the hall no longer holds it).
        admin = BrokerClient(bt.endpoint)
        admin.request("cancel_ticket", ticket="B001", reason="left")
        refused("UNKNOWN_TICKET", admin.request, "reprint_ticket", ticket=str(t["id"]), counter=9)
        admin.close()
    finally:
        kiosk.close()
