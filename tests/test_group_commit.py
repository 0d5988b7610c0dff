"""Group commit: the commands waiting on the broker's socket are made durable together, before any reply."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import zmq
from queuehall.broker.alerts import AlertRules
from queuehall.broker.config import load_config
from queuehall.broker.model import Event
from queuehall.broker.probe import BrokerProbe
from queuehall.broker.server import Broker
from queuehall.broker.storage import load_hall, open_store

from queuehall.client import BrokerClient
from queuehall.clock import ManualClock
from queuehall.protocol import Request, decode_reply, encode_request
from queuehall.simulation import DEMO_PINS
from tests.broker_fixtures import free_port_pair
from tests.hall_factory import install_pins

TUESDAY_9 = datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Broker, str]]:
    store = open_store(f"sqlite:///{tmp_path}/hall.db")
    install_pins(store, load_config())
    # The alert rules off: their heartbeat groups would take the fault meant for the kiosks' burst.
    config = replace(load_config(), alerts=AlertRules(enabled=False))
    broker = Broker(load_hall(config, ManualClock(TUESDAY_9), store), port=free_port_pair())
    broker.bind()
    thread = threading.Thread(target=broker.serve_forever, daemon=True)
    thread.start()
    yield broker, store.engine.url.render_as_string()
    broker.stop_event.set()
    thread.join(5)
    store.close()


def _burst(port: int, n: int, prefix: str) -> list[dict]:
    """Send ``n`` take_ticket requests without waiting, then collect the n replies."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(f"tcp://127.0.0.1:{port}")
    try:
        for i in range(n):
            s.send(encode_request(Request(type="take_ticket", args={"service": "passport"}, client=prefix,
                                          id=f"{prefix}-{i}")))
        replies = []
        while len(replies) < n:
            assert s.poll(10_000), f"only {len(replies)} of {n} replies"
            rep = decode_reply(s.recv())
            replies.append({"re": rep.re, "ok": rep.ok, "result": rep.result, "error": rep.error})
        return replies
    finally:
        s.close(0)


def test_a_burst_is_committed_in_groups_and_every_ticket_is_durable(running: tuple[Broker, str]) -> None:
    broker, url = running
    replies = _burst(broker.port, 120, "kiosk-a")
    assert all(r["ok"] for r in replies)
    labels = sorted(r["result"]["ticket"]["label"] for r in replies)
    assert labels == [f"A{n:03d}" for n in range(1, 121)]
    assert broker.largest_group > 1  # several commands shared one transaction
    # What was acknowledged is in the database: a fresh store sees every ticket.
    fresh = open_store(url)
    try:
        hall = load_hall(load_config(), ManualClock(TUESDAY_9), fresh)
        assert sorted(t.label for t in hall.tickets.values()) == labels
    finally:
        fresh.close()


def test_a_group_the_database_refuses_is_answered_storage_and_the_hall_rebuilt(
        running: tuple[Broker, str]) -> None:
    broker, _url = running
    store = broker.hall.journal
    real_write = store._write
    calls = {"n": 0}

    def failing_once(batches: list) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("disk full")
        real_write(batches)

    store._write = failing_once  # type: ignore[method-assign]
    epoch = broker.epoch
    first = _burst(broker.port, 5, "kiosk-b")
    refused = [r for r in first if not r["ok"]]
    assert refused and all(r["error"]["code"] == "STORAGE" for r in refused)
    assert broker.epoch != epoch  # every screen resynchronises from the rebuilt hall
    # Nothing refused was kept: the numbers start again where the database stands.
    again = _burst(broker.port, 1, "kiosk-c")
    committed = [r for r in first if r["ok"]]
    assert again[0]["ok"]
    assert again[0]["result"]["ticket"]["label"] == f"A{len(committed) + 1:03d}"


def test_a_snapshot_never_shows_what_was_not_yet_published(running: tuple[Broker, str]) -> None:
    """A snapshot queued behind commands closes their group first, so its sequence number covers them:
    a mirror loading it must not receive their events again (recent calls would be doubled)."""
    broker, _url = running
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.connect(f"tcp://127.0.0.1:{broker.port}")
    try:
        reqs = [Request(type="sign_in", args={"counter": 3, "clerk": "c03a", "pin": DEMO_PINS["c03a"]},
                        client="t", id="s1"),
                Request(type="take_ticket", args={"service": "document_pickup"}, client="t", id="t1"),
                Request(type="call_next", args={"counter": 3}, client="t", id="c1"),
                Request(type="snapshot", client="t", id="snap")]
        for r in reqs:
            s.send(encode_request(r))
        replies = {}
        while len(replies) < len(reqs):
            assert s.poll(10_000)
            rep = decode_reply(s.recv())
            replies[rep.re] = rep
        snap = replies["snap"].result
        assert all(replies[r.id].ok for r in reqs)
        # The three commands' events (sign-in, issue, call) were published before the snapshot was
        # taken, so its sequence number covers them (before the fix it was 0 or 1 here).
        assert snap["seq"] >= 3
        assert [c["ticket"]["label"] for c in snap["state"]["recent_calls"]] == ["C001"]
    finally:
        s.close(0)


class RecordingProbe(BrokerProbe):
    """Keeps what the broker reports through its public hook."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.snapshot_batch_done = threading.Event()  # the batch that answered a snapshot has ended

    def batch_started(self, at: float) -> None:
        self.calls.append(("batch_started", at))

    def batch_done(self, at: float) -> None:
        self.calls.append(("batch_done", at))
        if self.of("snapshot_answered"):
            self.snapshot_batch_done.set()

    def request_handled(self, seconds: float) -> None:
        self.calls.append(("request_handled", seconds))

    def group_committed(self, seconds: float, commands: int) -> None:
        self.calls.append(("group_committed", commands))

    def events_published(self, seconds: float, events: list[Event]) -> None:
        self.calls.append(("events_published", [ev.type for ev in events]))

    def snapshot_built(self, started: float, seconds: float) -> None:
        self.calls.append(("snapshot_built", seconds))

    def snapshot_answered(self) -> None:
        self.calls.append(("snapshot_answered", None))

    def of(self, kind: str) -> list[object]:
        return [v for k, v in self.calls if k == kind]


def test_the_broker_reports_its_work_to_a_probe(running: tuple[Broker, str]) -> None:
    """Benchmarks measure the broker through its public probe (bench/broker_bench.py), not by patching it."""
    broker, _url = running
    probe = RecordingProbe()
    broker.probe = probe
    assert all(r["ok"] for r in _burst(broker.port, 30, "kiosk-p"))
    client = BrokerClient(f"127.0.0.1:{broker.port}", timeout=10.0)
    try:
        assert client.request("snapshot")["state"]["tickets"]
    finally:
        client.close()
    assert probe.snapshot_batch_done.wait(10)  # the reply leaves before its batch ends
    broker.probe = None
    kinds = [k for k, _ in probe.calls]
    assert kinds.count("batch_started") == kinds.count("batch_done") >= 2
    assert kinds.index("batch_started") < kinds.index("request_handled") < kinds.index("batch_done")
    assert len(probe.of("request_handled")) >= 31 and all(isinstance(s, float) and s >= 0
                                                         for s in probe.of("request_handled"))
    assert sum(int(str(n)) for n in probe.of("group_committed")) == 30  # each ticket written once
    published = [t for types in probe.of("events_published") for t in (types if isinstance(types, list) else [])]
    assert published.count("ticket_issued") == 30
    assert probe.of("snapshot_answered") == [None] and len(probe.of("snapshot_built")) == 1


def test_benches_use_the_brokers_public_api_only() -> None:
    import re

    root = Path(__file__).resolve().parent.parent / "bench"
    private = re.compile(r"\b(broker|journal)\._[a-z]|setattr\(\s*(broker|journal)\b")
    assert [p.name for p in sorted(root.glob("*.py")) if private.search(p.read_text(encoding="utf-8"))] == []
