"""Presence stays bounded: one entry per device key, offline entries forgotten, a cap on the table.

Issue 14, item 8: every new client id in hello/ping used to add a device forever (100,000 hellos
made a 14 MB snapshot and a 3.8 MB presence event; one kiosk key made 2,000 devices). Floods of
hellos with made-up client ids go through real sockets here, with and without CurveZMQ.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import queuehall.broker.server as server
import zmq

import queuehall.client as client_mod
from queuehall.client import Link, Security
from queuehall.protocol import TOPIC_EVENT, Request, decode_publication, decode_reply, encode_request
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, broker_snapshot, raw_dealer, security, wait_until

keys_dir_fixture = broker_fixtures.keys_dir_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture

FLOOD = 20_000


def flood(endpoint: str, n: int, sec: Security | None = None, window: int = 500, first: int = 0) -> None:
    """``n`` hellos, each from a client id never seen before (``flood-<first>`` on), at most ``window``
    unanswered at once."""
    with raw_dealer(endpoint, sec) as s:
        sent = received = 0
        while received < n:
            while sent < n and sent - received < window:
                i = first + sent
                req = Request(type="hello", args={"role": "kiosk", "name": f"kiosk {i}"}, client=f"flood-{i}")
                s.send(encode_request(req))
                sent += 1
            assert s.poll(10_000, zmq.POLLIN), f"no reply after {received} of {n}"
            rep = decode_reply(s.recv())
            assert rep.ok, rep.error
            received += 1


class PresenceWatcher:
    """A SUB socket on the events, keeping the largest presence publication seen."""

    def __init__(self, bt: BrokerThread, sec: Security | None = None) -> None:
        self.sub = zmq.Context.instance().socket(zmq.SUB)
        self.sub.linger = 0
        if sec is not None:
            sec.apply(self.sub)
        self.sub.setsockopt(zmq.SUBSCRIBE, TOPIC_EVENT)
        self.sub.connect(f"tcp://127.0.0.1:{bt.port + 1}")
        self.largest = 0
        self.presence_events = 0

    def drain(self) -> None:
        while self.sub.poll(0, zmq.POLLIN):
            frames = self.sub.recv_multipart()
            _, body = decode_publication(frames)
            if body["event"]["type"] == "presence":
                self.presence_events += 1
                self.largest = max(self.largest, len(frames[1]))

    def close(self) -> None:
        self.sub.close(0)


def snapshot_size(endpoint: str, sec: Security | None = None) -> tuple[dict[str, Any], int]:
    with raw_dealer(endpoint, sec) as s:
        s.send(encode_request(Request(type="snapshot", client="size-check")))
        assert s.poll(5000, zmq.POLLIN)
        frame = s.recv()
    rep = decode_reply(frame)
    assert rep.ok and rep.result is not None
    return rep.result["state"]["devices"], len(frame)


def test_a_flood_of_client_ids_without_keys_stays_within_the_cap(
        start_broker: Callable[..., BrokerThread]) -> None:
    bt = start_broker()
    _, empty = snapshot_size(bt.endpoint)
    watcher = PresenceWatcher(bt)
    try:
        t0 = time.monotonic()
        for part in range(FLOOD // 2000):
            flood(bt.endpoint, 2000, first=part * 2000)
            watcher.drain()
        took = time.monotonic() - t0
        devices, size = snapshot_size(bt.endpoint)
        assert len(devices) == server.MAX_DEVICES
        # The newest are kept (a live device pings every second, a made-up id never again).
        assert f"flood-{FLOOD - 1}" in devices and "flood-0" not in devices
        assert size - empty < server.MAX_DEVICES * 120, size
        wait_until(lambda: (watcher.drain(), watcher.presence_events)[1], 5, "a presence event")
        assert watcher.largest < server.MAX_DEVICES * 120, watcher.largest
        print(f"{FLOOD} hellos in {took:.2f} s; snapshot {empty} -> {size} bytes; "
              f"largest presence event {watcher.largest} bytes")
    finally:
        watcher.close()


def test_one_entry_per_device_key_however_many_client_ids(start_broker: Callable[..., BrokerThread],
                                                          keys_dir: Path) -> None:
    bt = start_broker(keys_dir=keys_dir)
    kiosk = security(keys_dir, "kiosk-1")
    flood(bt.endpoint, FLOOD, kiosk)
    devices, size = snapshot_size(bt.endpoint, security(keys_dir, "manager"))
    assert devices == {"kiosk-1": {"role": "kiosk", "counter": None, "name": f"kiosk {FLOOD - 1}", "online": True,
                                   "client": f"kiosk-1/flood-{FLOOD - 1}"}}
    assert size < 20_000, size


def test_an_offline_device_is_forgotten_and_the_screens_told(start_broker: Callable[..., BrokerThread],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "PRESENCE_TIMEOUT", 0.3)
    monkeypatch.setattr(server, "PRESENCE_FORGET", 0.8)
    monkeypatch.setattr(server, "HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(client_mod, "PING_SECONDS", 0.1)
    bt = start_broker()
    wall = Link(bt.endpoint, role="display", name="wall", client_id="wall")
    kiosk = Link(bt.endpoint, role="kiosk", name="kiosk", client_id="kiosk")
    wall.start()
    kiosk.start()
    try:
        def devices() -> dict[str, Any]:
            return broker_snapshot(bt.endpoint)["state"]["devices"]

        wait_until(lambda: set(devices()) == {"wall", "kiosk"}, 5, "both listed")
        kiosk.stop()
        wait_until(lambda: devices().get("kiosk", {}).get("online") is False, 5, "the kiosk offline")
        wait_until(lambda: "kiosk" not in devices(), 5, "the kiosk forgotten")
        # The wall's mirror followed: the entry was deleted by an event, not only from new snapshots.
        wait_until(lambda: "kiosk" not in wall.mirror.state.get("devices", {}), 5, "the wall's mirror")
        assert devices()["wall"]["online"] is True
        kiosk.start()
        wait_until(lambda: devices().get("kiosk", {}).get("online"), 5, "the kiosk back")
    finally:
        wall.stop()
        kiosk.stop()
