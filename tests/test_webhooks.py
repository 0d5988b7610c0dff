"""Webhooks: the outbox, the feed from the broker's journal, signed deliveries, retries and kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from queuehall.web.outbox import Outbox, OutboxError
from queuehall.web.webhooks import (
    DeliveryWorker,
    EventFeed,
    RetryPolicy,
    WebhookService,
    _retry_after,
    sign,
    verify_signature,
)

from queuehall.client import BrokerClient, CommandRefused
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, security, wait_until
from tests.webhook_receiver import Receiver, check_signature

start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
keys_dir_fixture = broker_fixtures.keys_dir_fixture

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_test_secret_0123456789"


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(**kw: Any) -> Receiver:
        r = Receiver(SECRET, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _take(client: BrokerClient, n: int, service: str = "P") -> list[int]:
    """Issue ``n`` tickets; their events' journal numbers."""
    return [client.request("take_ticket", service=service)["ticket"]["id"] for _ in range(n)]


def _journal_last(endpoint: str) -> int:
    c = BrokerClient(endpoint, client_id="probe")
    try:
        return int(c.request("events", after=0, limit=0)["last_seq"])
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------- signatures


def test_signature_round_trip_and_refusals() -> None:
    body = b'{"id":"x"}'
    header = sign(SECRET, 1_800_000_000, body)
    assert header.startswith("t=1800000000,v1=") and len(header.split("v1=")[1]) == 64
    assert verify_signature(SECRET, header, body, now=1_800_000_000 + 299)
    assert not verify_signature(SECRET, header, body, now=1_800_000_000 + 301)  # a replay, too old
    assert not verify_signature(SECRET, header, body + b" ", now=1_800_000_000)
    assert not verify_signature("another-secret-value", header, body, now=1_800_000_000)
    assert not verify_signature(SECRET, header.replace("t=18", "t=19"), body, now=1_900_000_000)
    for bad in (None, "", "v1=abc", "t=x,v1=abc"):
        assert not verify_signature(SECRET, bad, body)


# ---------------------------------------------------------------------------------------------- outbox


def test_subscribers_are_added_listed_and_removed(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "w.db")
    a = ob.add_subscriber("https://case.example.gov.cn/hook", ["ticket_called", "ticket_finished"], name="case")
    b = ob.add_subscriber("http://127.0.0.1:9/x")
    assert a.secret.startswith("whsec_") and a.events == ("ticket_called", "ticket_finished")
    assert b.events == ("*",) and b.wants("counter_paused")
    assert [s.id for s in ob.subscribers()] == [a.id, b.id]
    for url in ("ftp://x/y", "not a url", "http://"):
        with pytest.raises(OutboxError, match="http"):
            ob.add_subscriber(url)
    with pytest.raises(OutboxError, match="unknown event type"):
        ob.add_subscriber("http://h/x", ["ticket_eaten"])
    with pytest.raises(OutboxError, match="16 characters"):
        ob.add_subscriber("http://h/x", secret="short")
    assert len(ob.subscribers()) == 2  # refused ones left nothing
    ob.enqueue([{"journal_seq": 1, "type": "ticket_called"}, {"journal_seq": 2, "type": "ticket_issued"}])
    assert ob.stats(a.id)["pending"] == 1 and ob.stats(b.id)["pending"] == 2
    assert ob.remove_subscriber("case").removed_at is not None
    assert [s.id for s in ob.subscribers()] == [b.id]
    assert ob.stats(a.id)["pending"] == 0  # its queue went with it
    with pytest.raises(OutboxError, match="no subscriber"):
        ob.remove_subscriber("case")


def test_enqueue_moves_the_cursor_in_the_same_transaction(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "w.db")
    sub = ob.add_subscriber("http://127.0.0.1:9/x", ["ticket_called"])
    assert ob.cursor() is None
    assert ob.enqueue([{"journal_seq": 5, "type": "ticket_issued"}]) == 0
    assert ob.cursor() == 5  # nothing wanted, still consumed
    assert ob.enqueue([{"journal_seq": 6, "type": "ticket_called", "counter": 1}]) == 1
    d = ob.next_pending(sub.id)
    assert d is not None and d.journal_seq == 6 and ob.cursor() == 6
    body = json.loads(d.body)
    assert body["id"] == d.id and body["type"] == "ticket_called" and body["event"]["counter"] == 1
    # A failing write leaves both the deliveries and the cursor as they were.
    with pytest.raises(KeyError):
        ob.enqueue([{"journal_seq": 7, "type": "ticket_called"}, {"type": "ticket_called"}])
    assert ob.cursor() == 6 and ob.stats(sub.id)["pending"] == 1


# ---------------------------------------------------------------------------------------------- the feed


class ScriptedJournal:
    """The broker's ``events`` answer from a list (a true edge: what a purged or absent journal says)."""

    def __init__(self, seqs: list[int], last: int, journal: bool = True) -> None:
        self.seqs, self.last, self.journal = seqs, last, journal

    def __call__(self, after: int, limit: int) -> dict[str, Any]:
        events = [{"journal_seq": s, "type": "ticket_issued"} for s in self.seqs if after < s <= self.last][:limit]
        return {"events": events, "last_seq": self.last, "journal": self.journal}


def test_feed_records_a_gap_for_purged_events_and_never_invents_any(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    ob = Outbox(tmp_path / "w.db")
    sub = ob.add_subscriber("http://127.0.0.1:9/x")
    ob.enqueue([], cursor=3)
    feed = EventFeed(ob, ScriptedJournal([10, 11, 12], last=12), page=2)
    assert feed.catch_up() == 3
    assert ob.cursor() == 12
    assert ob.gaps()[0] | {"detected_at": ""} == {"first_seq": 4, "last_seq": 9, "detected_at": "",
                                                  "reason": "no longer in the broker's journal (purged)"}
    assert "broker events 4..9 cannot be delivered" in caplog.text
    seqs = []
    while (d := ob.next_pending(sub.id)) is not None:
        seqs.append(d.journal_seq)
        ob.mark_delivered(d.id, 200)
    assert seqs == [10, 11, 12]


def test_feed_without_a_journal_and_after_a_database_reset(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "w.db")
    ob.enqueue([], cursor=3)
    EventFeed(ob, ScriptedJournal([], last=8, journal=False)).catch_up()
    assert ob.cursor() == 8 and ob.gaps()[-1]["reason"] == "the broker keeps no journal"
    EventFeed(ob, ScriptedJournal([1, 2], last=2)).catch_up()  # a new, empty database: its numbers restart
    assert ob.cursor() == 2 and "behind this gateway's 8" in ob.gaps()[-1]["reason"]


def test_feed_takes_live_events_once_in_order_and_fills_holes_from_the_journal(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "w.db")
    sub = ob.add_subscriber("http://127.0.0.1:9/x")
    journal = ScriptedJournal(list(range(1, 21)), last=5)
    feed = EventFeed(ob, journal)
    feed.live({"journal_seq": 5, "type": "ticket_issued"})  # first contact: starts at the broker's newest
    assert ob.cursor() == 5 and ob.next_pending(sub.id) is None
    for j in (6, 6, 7, 5):  # duplicates and old ones are dropped
        feed.live({"journal_seq": j, "type": "ticket_issued"})
    journal.last = 12
    feed.live({"journal_seq": 12, "type": "ticket_issued"})  # 8..11 were missed: fetched first
    feed.live({"type": "presence"})  # not journaled: ignored
    seqs = []
    while (d := ob.next_pending(sub.id)) is not None:
        seqs.append(d.journal_seq)
        ob.mark_delivered(d.id, 200)
    assert seqs == list(range(6, 13)) and ob.gaps() == []


# ---------------------------------------------------------------------------------------------- the broker's journal


def test_broker_events_replay_equals_what_was_published(start_broker: Callable[..., BrokerThread]) -> None:
    from queuehall.client import Link

    b = start_broker()
    link = Link(b.endpoint, role="admin")
    got: list[dict[str, Any]] = []
    link.on_event = lambda msg: got.append(msg["event"])
    link.start()
    try:
        c = BrokerClient(b.endpoint)
        wait_until(lambda: link.alive and link.mirror.synced, what="the link")
        c.request("sign_in", counter=1, clerk="c1a", pin="1234")
        _take(c, 3)
        c.request("call_next", counter=1)
        wait_until(lambda: len([e for e in got if "journal_seq" in e]) >= 5, what="the live events")
        live = [e for e in got if "journal_seq" in e]
        replay = c.request("events", after=0, limit=100)
        assert replay["events"] == live and replay["last_seq"] == live[-1]["journal_seq"] and replay["journal"]
        assert [e["journal_seq"] for e in c.request("events", after=2, limit=2)["events"]] == [3, 4]
        assert c.request("events", after=0, limit=0)["events"] == []
        for bad in ({"after": -1}, {"after": "x"}, {"after": 0, "limit": True}, {}):
            with pytest.raises(CommandRefused) as err:
                c.request("events", **bad)
            assert err.value.code == "BAD_REQUEST"
        c.close()
    finally:
        link.stop()


def test_broker_events_is_for_the_gateway_displays_and_admins(start_broker: Callable[..., BrokerThread],
                                                              keys_dir: Path) -> None:
    from queuehall.broker import keys

    keys.add_device(keys_dir, "gateway", "web", None)
    b = start_broker(keys_dir=keys_dir)
    for name, allowed in (("gateway", True), ("wall-1", True), ("manager", True), ("kiosk-1", False),
                          ("counter-1", False)):
        c = BrokerClient(b.endpoint, security=security(keys_dir, name))
        try:
            if allowed:
                assert "last_seq" in c.request("events", after=0, limit=10)
            else:
                with pytest.raises(CommandRefused) as err:
                    c.request("events", after=0)
                assert err.value.code == "FORBIDDEN"
        finally:
            c.close()
    gw = BrokerClient(b.endpoint, security=security(keys_dir, "gateway"))
    try:
        with pytest.raises(CommandRefused) as err:  # the gateway's key takes remote tickets only
            gw.request("take_ticket", service="P")
        assert err.value.code == "FORBIDDEN" and "remote" in err.value.message_en
        with pytest.raises(CommandRefused) as err:
            gw.request("sign_in", counter=1, clerk="c1a", pin="1234")
        assert err.value.code == "FORBIDDEN"
    finally:
        gw.close()


# ---------------------------------------------------------------------------------------------- deliveries


def test_backoff_schedule_on_an_injected_clock(tmp_path: Path, receiver: Callable[..., Receiver]) -> None:
    """Each failure schedules the next attempt base * 2**(n-1) later, capped, less up to 20 % jitter."""
    rx = receiver(answer=lambda n: 500)
    ob = Outbox(tmp_path / "w.db")
    sub = ob.add_subscriber(rx.url, secret=SECRET)
    ob.enqueue([{"journal_seq": 1, "type": "ticket_issued"}])
    now = [1_800_000_000.0]
    worker = DeliveryWorker(ob, policy=RetryPolicy(base=1.0, cap=30.0, jitter=0.2), clock=lambda: now[0],
                            rng=lambda: 0.5)
    delays = []

    async def run() -> None:
        for _ in range(8):
            d = ob.next_pending(sub.id)
            assert d is not None
            assert await worker.attempt(sub, d) is False
            nxt = ob.next_pending(sub.id)
            assert nxt is not None and nxt.id == d.id and nxt.attempts == d.attempts + 1
            delays.append(round(nxt.next_at - now[0], 6))
            now[0] = nxt.next_at
        await worker.close()

    asyncio.run(run())
    assert delays == [0.9, 1.8, 3.6, 7.2, 14.4, 27.0, 27.0, 27.0]  # 1, 2, 4, 8, 16, 30 (cap), 30, 30 x 0.9
    assert len(rx.calls) == 8 and len({c["headers"]["X-Queuehall-Delivery"] for c in rx.calls}) == 1
    assert [c["headers"]["X-Queuehall-Attempt"] for c in rx.calls] == [str(i) for i in range(1, 9)]
    assert ob.stats(sub.id)["head"]["last_status"] == 500
    # A receiver that says how long to wait (429/503 with Retry-After) is listened to, within the cap.
    assert _retry_after(httpx.Response(503, headers={"Retry-After": "12"}), now[0]) == 12.0
    assert _retry_after(httpx.Response(503), now[0]) is None


def test_retry_policy_jitter_stays_within_bounds() -> None:
    import random

    rng = random.Random(7)
    p = RetryPolicy(base=2.0, cap=60.0, jitter=0.2)
    for n in range(1, 12):
        d = p.delay(n, rng.random)
        raw = min(60.0, 2.0 * 2 ** (n - 1))
        assert 0.8 * raw <= d <= raw


def _service(tmp_path: Path, endpoint: str, policy: RetryPolicy) -> tuple[Outbox, WebhookService]:
    ob = Outbox(tmp_path / "web.db")
    return ob, WebhookService(ob, endpoint, policy=policy)


def test_signed_deliveries_reach_a_receiver_in_order(tmp_path: Path, start_broker: Callable[..., BrokerThread],
                                                     receiver: Callable[..., Receiver]) -> None:
    b = start_broker()
    rx = receiver()
    calls_only = receiver()
    ob, svc = _service(tmp_path, b.endpoint, RetryPolicy(base=0.05, cap=0.2))
    ob.add_subscriber(rx.url, secret=SECRET)
    ob.add_subscriber(calls_only.url, ["ticket_called"], secret=SECRET)
    c = BrokerClient(b.endpoint)
    svc.start()
    try:
        wait_until(lambda: ob.cursor() is not None, what="the feed's first contact")
        c.request("sign_in", counter=1, clerk="c1a", pin="1234")
        _take(c, 5)
        c.request("call_next", counter=1)
        last = _journal_last(b.endpoint)
        wait_until(lambda: len(rx.journal_seqs()) >= 7, timeout=10, what="seven deliveries")
        wait_until(lambda: len(calls_only.journal_seqs()) >= 1, timeout=10, what="the call")
    finally:
        svc.stop()
        c.close()
    assert rx.journal_seqs() == list(range(last - 6, last + 1))
    assert all(call["signed"] for call in rx.calls)
    first = rx.calls[0]
    assert first["headers"]["X-Queuehall-Event"] == "counter_signed_in" == first["json"]["type"]
    assert first["json"]["id"] == first["headers"]["X-Queuehall-Delivery"]
    assert first["headers"]["Content-Type"] == "application/json"
    assert [call["json"]["type"] for call in calls_only.calls] == ["ticket_called"]
    assert calls_only.calls[0]["json"]["event"]["ticket"]["label"] == "A001"


def test_a_failing_receiver_gets_everything_once_it_recovers_and_holds_up_no_one_else(
        tmp_path: Path, start_broker: Callable[..., BrokerThread], receiver: Callable[..., Receiver]) -> None:
    b = start_broker()
    down = threading.Event()
    down.set()
    flaky = receiver(answer=lambda n: 500 if down.is_set() else 200)
    healthy = receiver()
    ob, svc = _service(tmp_path, b.endpoint, RetryPolicy(base=0.02, cap=0.1, jitter=0.2))
    s_flaky = ob.add_subscriber(flaky.url, secret=SECRET)
    ob.add_subscriber(healthy.url, secret=SECRET)
    c = BrokerClient(b.endpoint)
    svc.start()
    try:
        wait_until(lambda: ob.cursor() is not None, what="the feed's first contact")
        first = _journal_last(b.endpoint) + 1
        _take(c, 10)
        wait_until(lambda: len(healthy.journal_seqs()) == 10, timeout=10, what="the healthy receiver")
        wait_until(lambda: len(flaky.calls) >= 5, timeout=10, what="retries to the failing receiver")
        assert flaky.accepted == [] and ob.stats(s_flaky.id)["pending"] == 10
        assert {c["json"]["journal_seq"] for c in flaky.calls} == {first}  # the head of line, again and again
        down.clear()
        _take(c, 5)
        wait_until(lambda: len(flaky.journal_seqs()) == 15, timeout=10, what="the recovered receiver")
    finally:
        svc.stop()
        c.close()
    assert flaky.journal_seqs() == list(range(first, first + 15))
    assert healthy.journal_seqs() == list(range(first, first + 15))
    assert all(call["signed"] for call in flaky.calls)


class WorkerProcess:
    """``queuehall web-hook run`` as a child process (for kill -9)."""

    def __init__(self, endpoint: str, state: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "queuehall.cli", "web-hook", "run", "--broker", endpoint, "--state", str(state)],
            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        assert self.proc.stdout is not None
        self.output: list[str] = []
        line = self.proc.stdout.readline()
        self.output.append(line)
        assert "ready" in line, "".join(self.output) + self.proc.stdout.read()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(15)


def test_kill_9_of_the_worker_mid_stream_loses_nothing(tmp_path: Path, start_broker: Callable[..., BrokerThread],
                                                      receiver: Callable[..., Receiver]) -> None:
    b = start_broker()
    slow = threading.Event()

    def answer(n: int) -> int:
        if slow.is_set():
            time.sleep(0.01)  # the receiver, not the test: deliveries are still in flight at the kill
        return 200

    rx = receiver(answer=answer)
    state = tmp_path / "web.db"
    Outbox(state).add_subscriber(rx.url, secret=SECRET)
    c = BrokerClient(b.endpoint)
    worker = WorkerProcess(b.endpoint, state)
    try:
        wait_until(lambda: Outbox(state).cursor() is not None, timeout=10, what="the worker's first contact")
        first = _journal_last(b.endpoint) + 1
        slow.set()
        _take(c, 40)
        wait_until(lambda: len(rx.accepted) >= 5, timeout=10, what="some deliveries")
        worker.kill9()
        done_at_kill = len(rx.journal_seqs())
        _take(c, 20)  # while the gateway is dead: only the broker's journal has these
        slow.clear()
        assert done_at_kill < 60
        worker = WorkerProcess(b.endpoint, state)
        wait_until(lambda: len(rx.journal_seqs()) >= 60, timeout=20, what="every event after the restart")
        _take(c, 5)
        wait_until(lambda: len(rx.journal_seqs()) >= 65, timeout=10, what="live events after the restart")
        assert worker.terminate() == 0
    finally:
        if worker.proc.poll() is None:
            worker.kill9()
        c.close()
    seqs = rx.journal_seqs()
    assert seqs == list(range(first, first + 65)), "every event once after de-duplication, in order"
    assert all(call["signed"] for call in rx.calls)
    assert Outbox(state).gaps() == []
    # At least once: an attempt cut short by the kill may have been sent twice, with the same id.
    assert len(rx.accepted) >= 65


def test_the_receivers_signature_check_is_the_documented_one() -> None:
    body = b'{"type":"ticket_called"}'
    assert check_signature(SECRET, sign(SECRET, int(time.time()), body), body)
    assert not check_signature(SECRET, sign(SECRET, int(time.time()) - 600, body), body)


def test_web_hook_command_adds_lists_and_removes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from queuehall.cli import main

    state = tmp_path / "web.db"

    def cli(*args: str) -> tuple[int, Any, str]:
        rc = main(["web-hook", *args, "--state", str(state)])
        out, err = capsys.readouterr()
        return rc, json.loads(out) if out.strip() else None, err

    rc, out, _ = cli("add", "https://recv.example/hook", "--event", "ticket_called", "--name", "case-system")
    assert rc == 0 and out["events"] == ["ticket_called"] and out["secret"].startswith("whsec_")
    rc, listed, _ = cli("list")
    assert rc == 0 and listed["subscribers"][0]["name"] == "case-system"
    assert listed["subscribers"][0]["pending"] == 0 and "secret" not in listed["subscribers"][0]
    rc, _, err = cli("add", "mailto:x@y", "--event", "ticket_called")
    assert rc == 2 and "http(s)" in err
    rc, out, _ = cli("remove", "case-system")
    assert rc == 0 and out["removed_at"]
    rc, listed, _ = cli("list")
    assert listed["subscribers"] == []


class GatewayProcess:
    """``queuehall web`` (the whole gateway, webhooks included) as a child process (for kill -9)."""

    def __init__(self, endpoint: str, state: Path) -> None:
        from tests.web_fixtures import free_port

        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "queuehall.cli", "web", "--broker", endpoint, "--listen", self.url[7:],
             "--state", str(state), "--log-level", "warning"],
            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def healthy() -> bool:
            try:
                return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 20, "the gateway to serve")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def test_kill_9_of_the_whole_gateway_then_a_receiver_that_is_down_loses_nothing(
        tmp_path: Path, start_broker: Callable[..., BrokerThread], receiver: Callable[..., Receiver]) -> None:
    b = start_broker()
    down = threading.Event()
    rx = receiver(answer=lambda n: 503 if down.is_set() else 200)
    state = tmp_path / "web.db"
    Outbox(state).add_subscriber(rx.url, secret=SECRET)
    c = BrokerClient(b.endpoint)
    gw = GatewayProcess(b.endpoint, state)
    try:
        wait_until(lambda: Outbox(state).cursor() is not None, timeout=10, what="the gateway's first contact")
        first = _journal_last(b.endpoint) + 1
        _take(c, 30)
        wait_until(lambda: len(rx.accepted) >= 3, timeout=10, what="some deliveries")
        gw.kill9()
        _take(c, 20)  # while the gateway is dead
        down.set()  # and the receiver fails when it comes back
        gw = GatewayProcess(b.endpoint, state)
        wait_until(lambda: len(rx.calls) > len(rx.accepted) + 1, timeout=15, what="failing attempts")
        down.clear()
        wait_until(lambda: len(rx.journal_seqs()) >= 50, timeout=30, what="every event after the receiver is back")
    finally:
        if gw.proc.poll() is None:
            gw.kill9()
        c.close()
    assert rx.journal_seqs() == list(range(first, first + 50))
    assert all(call["signed"] for call in rx.calls) and Outbox(state).gaps() == []


def test_subscribers_may_ask_for_every_journaled_event_type() -> None:
    """EVENT_TYPES is the engine's list of journaled events (what ``tx.event`` makes), no more, no less."""
    import re

    from queuehall.web.outbox import EVENT_TYPES

    source = (ROOT / "broker" / "engine.py").read_text(encoding="utf-8")
    assert set(EVENT_TYPES) == set(re.findall(r'tx\.event\("([a-z_]+)"', source))
