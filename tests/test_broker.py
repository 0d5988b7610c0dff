"""The broker for real: ZeroMQ sockets on 127.0.0.1, a real SQLite database, CurveZMQ keys.

Covers the Clone contract (snapshot + events == the broker's state, across reconnects and a
broker restart), idempotent retries, roles and keys, garbage on the wire, a subscriber that
never reads, ``kill -9`` and SIGTERM of a real broker process, and presence.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import queuehall.broker.server as server
import zmq
from queuehall.broker import keys
from queuehall.broker.storage import open_store, tickets

import queuehall.client as client_mod
from queuehall.client import BrokerClient, BrokerUnavailable, CommandRefused, Link
from queuehall.errors import CATALOGUE
from queuehall.protocol import (
    MAX_MESSAGE_BYTES,
    TOPIC_EVENT,
    Request,
    decode_publication,
    decode_reply,
    encode_request,
)
from tests import broker_fixtures
from tests.broker_fixtures import (
    DEVICES,
    BrokerThread,
    MirrorTap,
    broker_snapshot,
    comparable,
    raw_dealer,
    recv_within,
    security,
    small_config,
    wait_in_step,
    wait_until,
)

# The shared fixtures (pytest finds fixtures among a module's names).
broker_process_fixture = broker_fixtures.broker_process_fixture
keys_dir_fixture = broker_fixtures.keys_dir_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture

PIN = "1234"  # every clerk's PIN in tests/hall_factory.small_config
CLERKS = {1: ("c1a", "c1b"), 2: ("c2a", "c2b"), 9: ("c9a", "c9b")}
# Refusals that random traffic legitimately meets; anything else is a broker bug.
EXPECTED_REFUSALS = {
    "COUNTER_CLOSED", "COUNTER_PAUSED", "COUNTER_NOT_PAUSED", "COUNTER_BUSY", "COUNTER_OCCUPIED",
    "CLERK_ELSEWHERE", "QUEUE_EMPTY", "NOTHING_CALLED", "NOT_SERVING", "ALREADY_SERVING", "NOT_WAITING",
    "UNKNOWN_TICKET", "NOT_NO_SHOW", "CANNOT_CANCEL", "SAME_QUEUE", "SERVICE_CLOSED", "NOT_SERVED_HERE",
    "PRIORITY_NOT_ALLOWED",
}


def request_frame(type_: str, *, client: str = "raw", rid: str | None = None, **args: Any) -> tuple[str, bytes]:
    req = Request(type=type_, args=args, client=client)
    if rid is not None:
        req.id = rid
    return req.id, encode_request(req)


def ask(sock: zmq.Socket, frame: bytes, timeout: float = 5.0) -> Any:
    """Send one request frame on a raw DEALER and decode the reply."""
    sock.send(frame)
    got = recv_within(sock, timeout)
    assert got is not None, "no reply"
    assert len(got) == 1
    return decode_reply(got[0])


# ---------------------------------------------------------------------------------------------- traffic


def random_op(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """One random command a busy hall might see (many will be refused, which is fine)."""
    counter = rng.choice((1, 2, 9))
    label = f"{rng.choice('ABF')}{rng.randint(1, 30):03d}"
    ops: list[tuple[int, str, dict[str, Any]]] = [
        (25, "take_ticket", {"service": rng.choice(("P", "H", "FEE")),
                             "priority": rng.choice((None, None, None, "elderly"))}),
        (8, "sign_in", {"counter": counter, "clerk": rng.choice(CLERKS[counter]), "pin": PIN,
                        "takeover": rng.random() < 0.3}),
        (16, "call_next", {"counter": counter}),
        (10, "start", {"counter": counter}),
        (10, "finish", {"counter": counter}),
        (5, "no_show", {"counter": counter}),
        (4, "recall", {"counter": counter}),
        (6, "transfer", rng.choice(({"counter": counter, "service": rng.choice(("P", "H", "FEE"))},
                                    {"counter": counter, "to_counter": rng.choice((1, 2, 9)), "note": "带齐材料"}))),
        (4, "pause", {"counter": counter, "reason": "break"}),
        (4, "resume", {"counter": counter}),
        (3, "cancel_ticket", {"ticket": label, "reason": "left"}),
        (3, "reinstate", {"ticket": label}),
        (2, "sign_out", {"counter": counter}),
    ]
    weights = [w for w, _, _ in ops]
    _, op, args = rng.choices(ops, weights)[0]
    return op, {k: v for k, v in args.items() if v is not None}


class Traffic:
    """Several clients (threads, each its own BrokerClient and client id) sending random commands."""

    def __init__(self, endpoint: str, seed: int, *, workers: int = 3, ops: int = 40) -> None:
        self.endpoint, self.seed, self.workers, self.ops = endpoint, seed, workers, ops
        self.done = 0
        self.codes: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def start(self) -> Traffic:
        for w in range(self.workers):
            t = threading.Thread(target=self._work, args=(w,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def _work(self, w: int) -> None:
        rng = random.Random(self.seed * 100 + w)
        # A fixed client id: a retry after a broker restart must still be recognised.
        c = BrokerClient(self.endpoint, client_id=f"worker-{w}", timeout=1.0, retries=8)
        try:
            for _ in range(self.ops):
                op, args = random_op(rng)
                try:
                    c.request(op, **args)
                    code = "ok"
                except CommandRefused as err:
                    code = err.code
                with self.lock:
                    self.codes[code] += 1
                    self.done += 1
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            c.close()

    def join(self) -> Counter[str]:
        for t in self.threads:
            t.join(60)
        assert not self.errors, self.errors
        unexpected = set(self.codes) - EXPECTED_REFUSALS - {"ok"}
        assert not unexpected, f"unexpected replies {unexpected}: {self.codes}"
        return self.codes


def run_traffic(endpoint: str, seed: int, **kw: Any) -> Counter[str]:
    return Traffic(endpoint, seed, **kw).start().join()


# ---------------------------------------------------------------------------------------------- Clone


def test_snapshot_plus_events_equal_the_broker_state_through_reconnects_and_a_restart(
        start_broker: Callable[..., BrokerThread]) -> None:
    bt = start_broker()
    link = Link(bt.endpoint, role="display", name="wall")
    tap = MirrorTap(link)
    link.start()
    try:
        wait_in_step(tap, bt.endpoint)
        codes = run_traffic(bt.endpoint, 1)
        assert codes["ok"] >= 20
        wait_in_step(tap, bt.endpoint)
        first_resyncs = link.resyncs

        # The link goes away while the hall carries on: it comes back to a gap and resyncs.
        link.stop()
        run_traffic(bt.endpoint, 2, ops=20)
        link.start()
        wait_in_step(tap, bt.endpoint)
        assert link.resyncs > first_resyncs

        # The subscription is dropped again and again in the middle of traffic.
        traffic = Traffic(bt.endpoint, 3).start()
        for _ in range(5):
            seen = traffic.done
            link.resubscribe()
            wait_until(lambda seen=seen: traffic.done > seen + 3 or traffic.done == 3 * 40, 10, "traffic")
        traffic.join()
        wait_in_step(tap, bt.endpoint)

        # The broker restarts mid-stream (same ports and database, a new epoch).
        old_epoch = tap.epoch
        traffic = Traffic(bt.endpoint, 4).start()
        wait_until(lambda: traffic.done >= 20, 20, "traffic before the restart")
        bt.restart()
        traffic.join()
        # The new broker learns of the display from its next ping (a presence event): wait for that
        # too, so nothing more is published while the final states are compared.
        wait_until(lambda: link.client_id in broker_snapshot(bt.endpoint)["state"]["devices"], 5, "presence")
        final = wait_in_step(tap, bt.endpoint)
        assert tap.epoch == final["epoch"] != old_epoch
    finally:
        link.stop()
    bt.stop()
    assert bt.broker is not None
    direct = bt.broker.snapshot(staff=False)  # a wall display's view: no notes, no reasons
    assert (direct["epoch"], direct["seq"]) == (tap.epoch, tap.seq)
    assert comparable(tap.state) == comparable(direct["state"])
    # The traffic really exercised the hall: tickets in every state the mirror tracks.
    statuses = {t["status"] for t in direct["state"]["tickets"].values()}
    assert "waiting" in statuses
    assert any(e["event"]["type"] == "ticket_transferred" for e in tap.events)
    assert any(e["event"]["type"] == "ticket_called" for e in tap.events)


def in_scope(t: dict[str, Any], counter: int, services: set[str]) -> bool:
    """The test's own statement of which tickets counter ``counter`` (serving ``services``) may see."""
    target, at = t.get("target_counter"), t.get("counter")
    return target == counter or at == counter or (t["queue_service"] in services and target is None)


def test_a_scoped_snapshot_brings_only_the_tickets_the_screen_needs(
        start_broker: Callable[..., BrokerThread]) -> None:
    """Kiosks ask for no tickets and counters for those they may see; bad scopes are refused."""
    bt = start_broker()
    c = BrokerClient(bt.endpoint)
    try:
        for n, clerk in ((1, "c1a"), (2, "c2a"), (9, "c9a")):
            c.request("sign_in", counter=n, clerk=clerk, pin=PIN)
        for service in ("P", "P", "H", "H", "FEE", "FEE"):
            c.request("take_ticket", service=service)
        c.request("call_next", counter=9)  # a FEE ticket now at counter 9
        c.request("call_next", counter=1)  # a P ticket, which counter 1 sends on to counter 2
        c.request("transfer", counter=1, service="H", to_counter=2)
        full = c.request("snapshot")
        everything = full["state"]["tickets"]
        assert {t["queue_service"] for t in everything.values()} == {"P", "H", "FEE"}
        assert any(t.get("target_counter") == 2 for t in everything.values())

        none = c.request("snapshot", tickets="none")
        assert none["state"]["tickets"] == {}
        assert {k: v for k, v in none["state"].items() if k != "tickets"} == \
            {k: v for k, v in full["state"].items() if k != "tickets"}
        for n, services in ((1, {"P", "H"}), (2, {"H"}), (9, {"FEE"})):
            scoped = c.request("snapshot", tickets={"counter": n})
            expected = {k: t for k, t in everything.items() if in_scope(t, n, services)}
            assert scoped["state"]["tickets"] == expected, n
            assert (scoped["epoch"], scoped["seq"]) == (full["epoch"], full["seq"])
        # Counter 1 sees neither the FEE tickets nor the one it addressed to counter 2.
        assert set(c.request("snapshot", tickets={"counter": 1})["state"]["tickets"]) < set(everything)

        for bad, code in (("some", "BAD_REQUEST"), ({"counter": "2"}, "BAD_REQUEST"), ({}, "BAD_REQUEST"),
                          ({"counter": True}, "BAD_REQUEST"), ({"counter": 99}, "UNKNOWN_COUNTER"), (7, "BAD_REQUEST")):
            with pytest.raises(CommandRefused) as err:
                c.request("snapshot", tickets=bad)
            assert err.value.code == code, bad
            assert err.value.message_zh and err.value.message_en
        assert c.request("snapshot") == full  # refusals changed nothing
    finally:
        c.close()


def test_a_link_for_a_counter_the_broker_does_not_know_still_synchronises(
        start_broker: Callable[..., BrokerThread]) -> None:
    """Its scoped snapshot is refused (UNKNOWN_COUNTER): it asks for every ticket instead, so the
    counter's screen gets the hall's state and can show the sign-in error."""
    bt = start_broker()
    c = BrokerClient(bt.endpoint)
    link = Link(bt.endpoint, role="counter", name="counter-99", counter=99)
    tap = MirrorTap(link)
    try:
        c.request("take_ticket", service="FEE")
        link.start()
        tap.wait(lambda t: t.epoch is not None, what="the snapshot")
        assert link.snapshot_tickets == "all" and len(tap.state["tickets"]) == 1
        wait_in_step(tap, bt.endpoint)
    finally:
        c.close()
        link.stop()


def test_a_scope_of_nearly_every_ticket_brings_them_all(start_broker: Callable[..., BrokerThread]) -> None:
    """Nine in ten or more: the whole table, the encoding every such counter shares (a superset)."""
    bt = start_broker()
    c = BrokerClient(bt.endpoint)
    try:
        for service in ["P"] * 5 + ["H"] * 4 + ["FEE"]:
            c.request("take_ticket", service=service)
        everything = c.request("snapshot")["state"]["tickets"]
        near = c.request("snapshot", tickets={"counter": 1})["state"]["tickets"]  # P and H: 9 of 10
        assert near == everything and any(t["queue_service"] == "FEE" for t in near.values())
        c.request("take_ticket", service="FEE")  # now 9 of 11: below nine in ten, the scope is exact
        everything = c.request("snapshot")["state"]["tickets"]
        exact = c.request("snapshot", tickets={"counter": 1})["state"]["tickets"]
        assert exact == {k: t for k, t in everything.items() if in_scope(t, 1, {"P", "H"})} and len(exact) == 9
    finally:
        c.close()


def test_kiosk_and_counter_links_keep_their_scope_in_step_with_the_broker(
        start_broker: Callable[..., BrokerThread]) -> None:
    """A scoped mirror equals the broker in everything but the tickets, and in the tickets it may
    see; events still bring it other tickets, which it may hold as well."""
    bt = start_broker()
    kiosk = Link(bt.endpoint, role="kiosk", name="kiosk")
    counter = Link(bt.endpoint, role="counter", name="counter-2", counter=2)
    taps = [MirrorTap(kiosk), MirrorTap(counter)]
    for link in (kiosk, counter):
        link.start()
    try:
        for tap in taps:
            tap.wait(lambda t: t.epoch is not None, what="the first snapshot")
        assert taps[0].state["tickets"] == {}
        counter.stop()
        run_traffic(bt.endpoint, 5)
        counter.start()  # comes back to a gap: a fresh, scoped snapshot after the traffic
        run_traffic(bt.endpoint, 6, ops=20)

        def scoped_in_step() -> bool:
            snap = broker_snapshot(bt.endpoint)
            for tap, services in ((taps[0], None), (taps[1], {"H"})):
                if (tap.epoch, tap.seq) != (snap["epoch"], snap["seq"]):
                    return False
                mine, theirs = comparable(tap.state), comparable(snap["state"])
                if {k: v for k, v in mine.items() if k != "tickets"} != \
                        {k: v for k, v in theirs.items() if k != "tickets"}:
                    return False
                if services is not None:
                    visible = {k: t for k, t in theirs["tickets"].items() if in_scope(t, 2, services)}
                    if {k: t for k, t in mine["tickets"].items() if k in visible} != visible:
                        return False
                # Whatever else the mirror holds came from events and is the broker's current record.
                if any(theirs["tickets"].get(k) != t for k, t in mine["tickets"].items()):
                    return False
            return True

        wait_until(scoped_in_step, 10, "the scoped mirrors to be in step with the broker")
        assert counter.resyncs >= 2
    finally:
        kiosk.stop()
        counter.stop()


def test_a_cancelled_called_ticket_frees_its_counter_on_the_mirror(
        start_broker: Callable[..., BrokerThread]) -> None:
    """cancel_ticket names no counter, yet the counter that had called the ticket changes."""
    bt = start_broker()
    link = Link(bt.endpoint, role="display")
    tap = MirrorTap(link)
    link.start()
    c = BrokerClient(bt.endpoint)
    try:
        wait_in_step(tap, bt.endpoint)
        c.request("sign_in", counter=1, clerk="c1a", pin=PIN)
        label = c.request("take_ticket", service="P")["ticket"]["label"]
        c.request("call_next", counter=1)
        tap.wait(lambda t: (t.state["counters"]["1"]["ticket"] or {}).get("label") == label, what="the call")
        c.request("cancel_ticket", ticket=label, reason="left the hall")
        tap.wait(lambda t: t.state["counters"]["1"]["ticket"] is None, what="the counter to be free")
        wait_in_step(tap, bt.endpoint)
    finally:
        c.close()
        link.stop()


def test_a_failure_while_publishing_makes_every_mirror_resync(start_broker: Callable[..., BrokerThread],
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """A bug in publishing must neither stop the hall nor leave mirrors silently wrong."""
    monkeypatch.setattr(server, "HEARTBEAT_SECONDS", 0.1)
    bt = start_broker()
    link = Link(bt.endpoint, role="display")
    tap = MirrorTap(link)
    link.start()
    c = BrokerClient(bt.endpoint)
    try:
        wait_in_step(tap, bt.endpoint)
        epoch = tap.epoch
        real = server._event_payload
        failures = [1]

        def flaky(ev: Any) -> dict[str, Any]:
            if failures:
                failures.pop()
                raise RuntimeError("simulated publishing bug")
            return real(ev)

        monkeypatch.setattr(server, "_event_payload", flaky)
        assert c.request("take_ticket", service="P")["ticket"]["label"] == "A001"  # answered all the same
        final = wait_in_step(tap, bt.endpoint)
        assert final["epoch"] == tap.epoch != epoch
        assert [t["label"] for t in tap.state["tickets"].values()] == ["A001"]
        assert any("could not publish" in r.getMessage() for r in caplog.records)
        assert c.request("take_ticket", service="P")["ticket"]["label"] == "A002"
        wait_in_step(tap, bt.endpoint)
    finally:
        c.close()
        link.stop()


# ---------------------------------------------------------------------------------------------- retries


def test_the_same_request_id_gets_the_same_reply_and_one_ticket(
        start_broker: Callable[..., BrokerThread]) -> None:
    bt = start_broker()
    rid, frame = request_frame("take_ticket", client="kiosk-a", service="P")
    with raw_dealer(bt.endpoint) as a, raw_dealer(bt.endpoint) as b:
        first = ask(a, frame)
        again = ask(a, frame)
        third = ask(b, frame)  # a Lazy-Pirate retry comes on a fresh socket
    assert first.ok and first.re == rid
    assert again.result == first.result == third.result
    assert first.result["ticket"]["label"] == "A001"
    snap = broker_snapshot(bt.endpoint)
    assert [t["label"] for t in snap["state"]["tickets"].values()] == ["A001"]
    assert snap["state"]["services"]["P"]["issued_today"] == 1
    # The same id from another client is another request.
    with raw_dealer(bt.endpoint) as a:
        other = ask(a, request_frame("take_ticket", client="kiosk-b", rid=rid, service="P")[1])
    assert other.result["ticket"]["label"] == "A002"


def test_a_retried_call_next_calls_once(start_broker: Callable[..., BrokerThread]) -> None:
    bt = start_broker()
    c = BrokerClient(bt.endpoint)
    for _ in range(3):
        c.request("take_ticket", service="P")
    c.request("sign_in", counter=1, clerk="c1a", pin=PIN)
    _, frame = request_frame("call_next", client="button-1", counter=1)
    with raw_dealer(bt.endpoint) as a:
        replies = [ask(a, frame) for _ in range(3)]
    assert all(r.ok for r in replies)
    assert {r.result["ticket"]["label"] for r in replies} == {"A001"}
    snap = broker_snapshot(bt.endpoint)["state"]
    assert snap["counters"]["1"]["ticket"]["label"] == "A001"
    assert sorted(t["label"] for t in snap["tickets"].values() if t["status"] == "waiting") == ["A002", "A003"]
    assert [call["ticket"]["label"] for call in snap["recent_calls"]] == ["A001"]
    c.close()


def test_a_refused_command_is_evaluated_again_when_retried(start_broker: Callable[..., BrokerThread]) -> None:
    bt = start_broker()
    _, frame = request_frame("call_next", client="button-1", counter=1)
    with raw_dealer(bt.endpoint) as a:
        assert ask(a, frame).error["code"] == "COUNTER_CLOSED"
        c = BrokerClient(bt.endpoint)
        c.request("sign_in", counter=1, clerk="c1a", pin=PIN)
        assert ask(a, frame).error["code"] == "QUEUE_EMPTY"
        c.request("take_ticket", service="H")
        assert ask(a, frame).result["ticket"]["label"] == "B001"
        c.close()


def test_the_client_retries_until_the_broker_comes_up(manual_clock: Any, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    bt = BrokerThread(small_config(), f"sqlite:///{tmp_path / 'late.db'}", manual_clock)
    c = BrokerClient(bt.endpoint, timeout=0.3, retries=30)
    result: dict[str, Any] = {}
    caplog.set_level(logging.INFO, logger="queuehall.client")

    def take() -> None:
        try:
            result["reply"] = c.request("take_ticket", service="P")
        except BaseException as exc:
            result["error"] = exc

    t = threading.Thread(target=take)
    t.start()
    try:
        # The broker is down: the client times out and retries (same id) at least twice.
        wait_until(lambda: sum("no reply to take_ticket" in r.getMessage() for r in caplog.records) >= 2, 10,
                   "two failed attempts")
        bt.start()
        t.join(15)
    finally:
        c.close()
        bt.stop()
    assert "error" not in result, result
    assert result["reply"]["ticket"]["label"] == "A001"
    assert bt.broker is not None
    assert [t["label"] for t in bt.broker.snapshot()["state"]["tickets"].values()] == ["A001"]


def test_an_unreachable_broker_raises_broker_unavailable_in_bounded_time() -> None:
    from tests.broker_fixtures import free_port_pair

    c = BrokerClient(f"127.0.0.1:{free_port_pair()}", timeout=0.2, retries=2)
    t0 = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        c.request("ping")
    assert 0.5 < time.monotonic() - t0 < 2.0  # three attempts of 0.2 s
    c.close()


# ---------------------------------------------------------------------------------------------- CurveZMQ


def test_keys_and_roles(start_broker: Callable[..., BrokerThread], keys_dir: Path,
                        caplog: pytest.LogCaptureFixture) -> None:
    bt = start_broker(keys_dir=keys_dir)
    caplog.set_level(logging.INFO, logger="queuehall.broker")

    def client(name: str, **kw: Any) -> BrokerClient:
        return BrokerClient(bt.endpoint, security=security(keys_dir, name), **kw)

    kiosk, c1, c2, wall, admin = (client(n) for n in DEVICES)
    try:
        # The kiosk may issue tickets, nothing at a counter.
        assert kiosk.request("take_ticket", service="P")["ticket"]["label"] == "A001"
        with pytest.raises(CommandRefused) as err:
            kiosk.request("call_next", counter=1)
        assert err.value.code == "FORBIDDEN"

        # Counter 1 works as counter 1, never as counter 2.
        c1.request("sign_in", counter=1, clerk="c1a", pin=PIN)
        assert c1.request("call_next", counter=1)["ticket"]["label"] == "A001"
        caplog.clear()
        with pytest.raises(CommandRefused) as err:
            c1.request("sign_in", counter=2, clerk="c2a", pin=PIN)
        assert err.value.code == "FORBIDDEN"
        assert err.value.message_zh and err.value.message_en
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "counter 2" in r.getMessage()]
        assert warnings, [r.getMessage() for r in caplog.records]
        assert "counter-1" in warnings[0].getMessage()
        with pytest.raises(CommandRefused) as err:
            c1.request("take_ticket", service="P")
        assert err.value.code == "FORBIDDEN"
        c2.request("sign_in", counter=2, clerk="c2a", pin=PIN)
        with pytest.raises(CommandRefused) as err:
            c2.request("call_next", counter=1)
        assert err.value.code == "FORBIDDEN"

        # The display reads, and changes nothing.
        snap = wall.request("snapshot")
        assert snap["state"]["counters"]["1"]["ticket"]["label"] == "A001"
        assert wall.request("ping")["client"].startswith("wall-1/")
        for cmd, args in (("take_ticket", {"service": "P"}), ("call_next", {"counter": 2}),
                          ("cancel_ticket", {"ticket": "A001", "reason": "x"})):
            with pytest.raises(CommandRefused) as err:
                wall.request(cmd, **args)
            assert err.value.code == "FORBIDDEN"

        # The admin may do anything, at any counter.
        assert admin.request("take_ticket", service="H")["ticket"]["label"] == "B001"
        assert admin.request("call_next", counter=2)["ticket"]["label"] == "B001"
        admin.request("cancel_ticket", ticket="A001", reason="left")
        admin.request("sign_out", counter=1)

        # An unknown key never completes the handshake: no reply at all; others are still served.
        stranger_dir = keys_dir.parent / "other"
        keys.add_device(stranger_dir, "stranger", "admin")
        stranger = BrokerClient(bt.endpoint, timeout=0.3, retries=1, security=security_of(stranger_dir,
                                                                                          keys_dir, "stranger"))
        with pytest.raises(BrokerUnavailable):
            stranger.request("snapshot")
        stranger.close()
        assert admin.request("ping")["epoch"] == bt.broker.epoch  # type: ignore[union-attr]
        assert any("refused unknown key" in r.getMessage() for r in caplog.records)

        # A device taken off the allow-list is refused from its next request, though connected.
        assert c2.request("ping")
        c2_security = security(keys_dir, "counter-2")  # the device's own copy of its key
        keys.remove_device(keys_dir, "counter-2")
        with pytest.raises(CommandRefused) as err:
            c2.request("finish", counter=2)
        assert err.value.code == "FORBIDDEN"
        fresh = BrokerClient(bt.endpoint, security=c2_security, timeout=0.3, retries=0)
        with pytest.raises(BrokerUnavailable):
            fresh.request("ping")
        fresh.close()
        assert kiosk.request("take_ticket", service="P")["ticket"]["label"] == "A002"
    finally:
        for c in (kiosk, c1, c2, wall, admin):
            c.close()


def security_of(device_dir: Path, broker_dir: Path, name: str) -> Any:
    from queuehall.client import Security

    return Security.from_files(str(device_dir / "secret" / f"{name}.key_secret"), str(broker_dir / "broker.key"))


def test_a_plain_client_gets_nothing_from_a_curve_broker(start_broker: Callable[..., BrokerThread],
                                                        keys_dir: Path) -> None:
    bt = start_broker(keys_dir=keys_dir)
    with pytest.raises(BrokerUnavailable):
        BrokerClient(bt.endpoint, timeout=0.3, retries=0).request("snapshot")
    admin = BrokerClient(bt.endpoint, security=security(keys_dir, "manager"))
    assert admin.request("snapshot")["state"]["services"]["P"]["code"] == "P"
    admin.close()


def test_a_link_with_keys_follows_the_hall(start_broker: Callable[..., BrokerThread], keys_dir: Path) -> None:
    """The SUB socket is a CurveZMQ client too: events reach an allowed display."""
    bt = start_broker(keys_dir=keys_dir)
    link = Link(bt.endpoint, role="display", name="wall", security=security(keys_dir, "wall-1"))
    tap = MirrorTap(link)
    link.start()
    kiosk = BrokerClient(bt.endpoint, security=security(keys_dir, "kiosk-1"))
    try:
        tap.wait(lambda t: t.epoch is not None, what="the first snapshot")
        kiosk.request("take_ticket", service="FEE")
        tap.wait(lambda t: any(x["label"] == "F001" for x in t.state["tickets"].values()), what="F001")
        devices = broker_snapshot_secure(bt.endpoint, keys_dir)["state"]["devices"]
        # One entry per device key, named by the key (not by the Link's client id).
        assert devices == {"wall-1": {"role": "display", "counter": None, "name": "wall", "online": True,
                                      "client": f"wall-1/{link.client_id}"}}
    finally:
        kiosk.close()
        link.stop()


def broker_snapshot_secure(endpoint: str, keys_dir: Path) -> dict[str, Any]:
    c = BrokerClient(endpoint, security=security(keys_dir, "manager"))
    try:
        return c.request("snapshot")
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------- garbage


def test_garbage_gets_error_replies_or_logged_drops_and_the_hall_keeps_serving(
        start_broker: Callable[..., BrokerThread], caplog: pytest.LogCaptureFixture) -> None:
    bt = start_broker()
    caplog.set_level(logging.WARNING, logger="queuehall.broker")
    rng = random.Random(7)
    valid = json.loads(encode_request(Request(type="take_ticket", args={"service": "P"}, client="x")))
    cases: list[tuple[list[bytes], str | None]] = [
        ([b""], "BAD_REQUEST"),
        ([b"\xff\xfe\x00garbage"], "BAD_REQUEST"),
        ([b"[1, 2, 3]"], "BAD_REQUEST"),
        ([b'"a string"'], "BAD_REQUEST"),
        ([b"{" * 10], "BAD_REQUEST"),
        ([b"[" * 60_000], "BAD_REQUEST"),  # nesting deeper than the JSON parser's recursion limit
        ([b'{"id": "big", "type": "ping", "v": ' + b"9" * 5000 + b"}"], "BAD_REQUEST"),  # > 4300 digits
        ([json.dumps(dict(valid, id=123)).encode()], "BAD_REQUEST"),
        ([json.dumps(dict(valid, id="x" * 65)).encode()], "BAD_REQUEST"),
        ([json.dumps(dict(valid, type=["take_ticket"])).encode()], "BAD_REQUEST"),
        ([json.dumps(dict(valid, type="t" * 100)).encode()], "BAD_REQUEST"),
        ([json.dumps(dict(valid, client={"a": 1})).encode()], "BAD_REQUEST"),
        ([json.dumps(dict(valid, args=[1, 2])).encode()], "BAD_REQUEST"),
        ([json.dumps(dict(valid, args={"service": 5})).encode()], "BAD_REQUEST"),  # a code is a string
        ([json.dumps(dict(valid, args={"service": ["P"]})).encode()], "BAD_REQUEST"),
        ([json.dumps(dict(valid, args={})).encode()], "BAD_REQUEST"),
        ([json.dumps(dict(valid, args={"service": "P", "priority": {"x": 1}})).encode()], "BAD_REQUEST"),
        ([json.dumps(dict(valid, type="sign_in", args={"counter": True, "clerk": "c1a", "pin": 1234}))
          .encode()], "BAD_REQUEST"),
        ([json.dumps(dict(valid, type="call_next", args={"counter": 2**40})).encode()], "UNKNOWN_COUNTER"),
        # Integers beyond 64 bits are read as floats (docs/protocol.md): the wrong type, not a crash.
        ([json.dumps(dict(valid, type="call_next", args={"counter": 10**30})).encode()], "BAD_REQUEST"),
        ([json.dumps(dict(valid, type="call_next", args={"counter": float("nan")})).encode()], "BAD_REQUEST"),
        ([json.dumps(dict(valid, type="shutdown")).encode()], "UNKNOWN_COMMAND"),
        ([json.dumps(dict(valid, type="__init__")).encode()], "UNKNOWN_COMMAND"),
        ([json.dumps(dict(valid, v=2)).encode()], "UNSUPPORTED_VERSION"),
        ([json.dumps(dict(valid, v="1")).encode()], "UNSUPPORTED_VERSION"),
        ([json.dumps(dict(valid, v=True)).encode()], "UNSUPPORTED_VERSION"),
        ([json.dumps(dict(valid, args={"service": "P", "pad": "x" * MAX_MESSAGE_BYTES})).encode()],
         "MESSAGE_TOO_LARGE"),
        ([b"a", b"b"], None),  # two body frames: dropped and logged
        ([b"", json.dumps(valid).encode()], None),  # a REQ-style envelope: dropped and logged
        ([b"x"] * 5, None),
    ]
    for _ in range(150):
        n = rng.choice((1, 10, 100, 1000))
        cases.append(([bytes(rng.getrandbits(8) for _ in range(n))], "BAD_REQUEST"))
    for _ in range(60):  # valid JSON, wrong types in random places
        junk = rng.choice((None, True, 3, -1, 2.5, "", "x" * 600, [], {}, [None], {"k": []}))
        field = rng.choice(("id", "type", "client", "args", "v", "time"))
        case = dict(valid, **{field: junk})
        if rng.random() < 0.5:
            case["args"] = {rng.choice(("service", "counter", "ticket", "priority", "pin")): junk}
        cases.append(([json.dumps(case).encode()], "?"))
    normal = BrokerClient(bt.endpoint)
    with raw_dealer(bt.endpoint) as s:
        for i, (frames, expect) in enumerate(cases):
            s.send_multipart(frames)
            got = recv_within(s, 0.0 if expect is None else 5.0)
            if expect is None:
                assert got is None
                continue
            assert got is not None, f"case {i} got no reply"
            rep = decode_reply(got[0])
            if expect != "?":
                assert not rep.ok and rep.error["code"] == expect, (i, frames[0][:80], rep.error)
            if not rep.ok:
                assert rep.error["code"] in CATALOGUE
                assert rep.error["message_zh"] and rep.error["message_en"]
            if i % 20 == 0:  # a normal client is served in between
                assert normal.request("ping")["epoch"]
        assert any("3 frames" in r.getMessage() or "2 frames" in r.getMessage() for r in caplog.records)
    # Over ZMQ_MAXMSGSIZE the connection is cut by ZeroMQ; nothing else is affected.
    with raw_dealer(bt.endpoint) as s:
        s.send(b"x" * (MAX_MESSAGE_BYTES * 2 + 1))
        assert recv_within(s, 0.3) is None
    assert normal.request("take_ticket", service="P")["ticket"]["label"] in {f"A{i:03d}" for i in range(1, 40)}
    normal.close()
    assert bt.running


def test_a_flood_of_requests_does_not_stop_the_heartbeat(start_broker: Callable[..., BrokerThread],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Devices judge the broker alive by its heartbeat: a burst of requests must not delay it."""
    monkeypatch.setattr(server, "HEARTBEAT_SECONDS", 0.05)
    bt = start_broker()
    assert bt.broker is not None
    tick = bt.broker._tick
    ticks: list[float] = []  # when the broker sent each heartbeat (this process's GIL delays when we read them)

    def timed_tick() -> None:
        ticks.append(time.monotonic())
        tick()

    bt.broker._tick = timed_tick  # type: ignore[method-assign]
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.subscribe(b"hb")
    sub.connect(f"tcp://127.0.0.1:{bt.port + 1}")
    assert sub.poll(5000)
    sub.recv_multipart()
    _, frame = request_frame("ping")
    n = 20_000  # several tenths of a second of work for the broker
    beats = replies = 0
    with raw_dealer(bt.endpoint) as s:
        s.sndhwm = s.rcvhwm = 0
        started = time.monotonic()
        for _ in range(n):  # queued far faster than the broker answers
            s.send(frame)
        poller = zmq.Poller()
        poller.register(s, zmq.POLLIN)
        poller.register(sub, zmq.POLLIN)
        deadline = time.monotonic() + 30
        while replies < n and time.monotonic() < deadline:
            ready = dict(poller.poll(1000))
            while sub in ready and sub.poll(0):
                sub.recv_multipart()
                beats += 1
            while s in ready and s.poll(0):
                s.recv()
                replies += 1
        ended = time.monotonic()
    sub.close(0)
    assert replies == n and beats >= 1
    # From the first request to the last reply, never ten heartbeat intervals without one.
    during = [t for t in ticks if started <= t <= ended]
    gaps = [b - a for a, b in itertools.pairwise([started, *during, ended])]
    assert max(gaps) < 0.5, (len(during), ended - started, max(gaps))


# ---------------------------------------------------------------------------------------------- slow subscriber


def test_a_subscriber_that_never_reads_does_not_block_the_broker(
        start_broker: Callable[..., BrokerThread]) -> None:
    bt = start_broker()
    ctx = zmq.Context.instance()
    lazy = ctx.socket(zmq.SUB)
    lazy.linger = 0
    lazy.rcvhwm = 10
    lazy.setsockopt(zmq.RCVBUF, 4096)
    lazy.subscribe(b"")
    lazy.connect(f"tcp://127.0.0.1:{bt.port + 1}")
    watcher = ctx.socket(zmq.SUB)
    watcher.linger = 0
    watcher.subscribe(TOPIC_EVENT)
    watcher.connect(f"tcp://127.0.0.1:{bt.port + 1}")
    c = BrokerClient(bt.endpoint)
    # Both subscriptions are live once a published event reaches the reader.
    wait_until(lambda: c.request("hello", role="kiosk", name=f"k{time.monotonic()}") and watcher.poll(20), 5,
               "the subscription")
    t0 = time.monotonic()
    n = 300  # every take publishes a few kB (the services' summaries): megabytes the lazy SUB never reads
    for _ in range(n):
        c.request("take_ticket", service=random.choice(("P", "H")))
    elapsed = time.monotonic() - t0
    assert elapsed < 20
    # The attentive subscriber got every one of them.
    got = 0
    while watcher.poll(2000):
        _, msg = decode_publication(watcher.recv_multipart())
        if msg["event"]["type"] == "ticket_issued":
            got += 1
            if got == n:
                break
    assert got == n
    assert c.request("ping")["seq"] >= n
    c.close()
    lazy.close(0)
    watcher.close(0)


# ---------------------------------------------------------------------------------------------- presence


def test_presence_lists_devices_online_then_offline(start_broker: Callable[..., BrokerThread],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "PRESENCE_TIMEOUT", 0.6)
    monkeypatch.setattr(server, "HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(client_mod, "PING_SECONDS", 0.1)
    bt = start_broker()
    kiosk = Link(bt.endpoint, role="kiosk", name="大厅东侧取号机", client_id="kiosk-east")
    counter = Link(bt.endpoint, role="counter", name="window 2", counter=2, client_id="counter-2")
    kiosk.start()
    counter.start()
    try:
        def devices() -> dict[str, Any]:
            return broker_snapshot(bt.endpoint)["state"]["devices"]

        wait_until(lambda: {k for k, d in devices().items() if d["online"]} == {"kiosk-east", "counter-2"},
                   5, "both devices online")
        d = devices()
        assert d["kiosk-east"] == {"role": "kiosk", "counter": None, "name": "大厅东侧取号机", "online": True,
                                   "client": "kiosk-east"}
        assert d["counter-2"] == {"role": "counter", "counter": 2, "name": "window 2", "online": True,
                                  "client": "counter-2"}
        # One-shot callers (the CLI, the checker above) are not devices.
        assert "checker" not in d
        counter.stop()
        t0 = time.monotonic()
        wait_until(lambda: devices()["counter-2"]["online"] is False, 5, "counter 2 offline")
        assert time.monotonic() - t0 < 2.0
        # The kiosk is still online (its pings keep it so), and it saw the change as an event.
        assert devices()["kiosk-east"]["online"] is True
        wait_until(lambda: kiosk.mirror.state.get("devices", {}).get("counter-2", {}).get("online") is False,
                   5, "the kiosk's mirror to see counter 2 offline")
        counter.start()
        wait_until(lambda: devices()["counter-2"]["online"], 5, "counter 2 back online")
    finally:
        kiosk.stop()
        counter.stop()


# ---------------------------------------------------------------------------------------------- processes


@pytest.mark.slow
def test_kill_9_mid_stream_loses_nothing_acknowledged(broker_process: Callable[..., Any], tmp_path: Path) -> None:
    """Stream takes and calls, SIGKILL the broker mid-stream, restart it on the same database:
    every acknowledged ticket exists once, numbers are gapless, and the un-acknowledged requests
    retried with their ids are answered without duplicates."""
    db = tmp_path / "hall.db"
    proc = broker_process(db).start()
    c = BrokerClient(proc.endpoint)
    c.request("sign_in", counter=1, clerk="c01a", pin="4821")
    c.close()
    # A wall display follows the hall throughout, across the crash and the new process.
    link = Link(proc.endpoint, role="display", name="wall")
    tap = MirrorTap(link)
    link.start()
    tap.wait(lambda t: t.epoch is not None, what="the display's first snapshot")
    first_epoch = tap.epoch
    frames: list[tuple[str, str, bytes]] = []  # (request id, type, frame), all made up front
    for i in range(160):  # three takes, then call_next, start or finish in turn
        kind, args = (("take_ticket", {"service": "passport"}) if i % 4 else
                      (("call_next", "start", "finish")[(i // 4) % 3], {"counter": 1}))
        rid, frame = request_frame(kind, client="streamer", **args)
        frames.append((rid, kind, frame))
    takes = [rid for rid, kind, _ in frames if kind == "take_ticket"]
    acked: dict[str, dict[str, Any]] = {}  # request id -> the result the client saw
    in_flight = 0
    sent = 0
    with raw_dealer(proc.endpoint) as s:
        # Up to 8 requests in flight, as several devices would have; kill once 40 takes are in.
        while len(acked) < 40:
            while in_flight < 8 and sent < len(frames):
                s.send(frames[sent][2])
                sent += 1
                in_flight += 1
            got = recv_within(s, 10)
            assert got is not None, "the broker stopped answering"
            in_flight -= 1
            rep = decode_reply(got[0])
            if rep.ok and rep.type == "take_ticket_reply":
                acked[rep.re] = rep.result
        proc.kill9()
        while (got := recv_within(s, 0.0)) is not None:  # replies already here were acknowledged too
            rep = decode_reply(got[0])
            if rep.ok and rep.type == "take_ticket_reply":
                acked[rep.re] = rep.result
    assert len(acked) < len(takes), "the stream ended before the kill"

    proc2 = broker_process(db, port=proc.port).start()
    replies: dict[str, Any] = {}
    with raw_dealer(proc2.endpoint) as s:
        for _rid, _kind, frame in frames:  # every request again with its id: sent, in flight or never sent
            s.send(frame)
        while len(replies) < len(frames):
            got = recv_within(s, 10)
            assert got is not None, f"{len(frames) - len(replies)} requests unanswered"
            rep = decode_reply(got[0])
            replies[rep.re] = rep
    for rid, result in acked.items():
        assert replies[rid].ok and replies[rid].result == result  # the stored reply, not a second ticket
    labels = [replies[rid].result["ticket"]["label"] for rid in takes]
    assert len(labels) == len(set(labels)) == len(takes)
    store = open_store(f"sqlite:///{db}")
    with store.engine.connect() as conn:
        numbers = sorted(r.number for r in conn.execute(tickets.select().where(tickets.c.service == "passport")))
    store.engine.dispose()
    assert numbers == list(range(1, len(takes) + 1))  # each take exactly once, gapless
    assert sorted(int(label[1:]) for label in labels) == numbers
    try:
        final = wait_in_step(tap, proc2.endpoint, timeout=15)
    except BaseException:
        print("".join(proc2.output))
        raise
    finally:
        link.stop()
    assert final["epoch"] != first_epoch
    assert sum(t["status"] == "waiting" for t in tap.state["tickets"].values()) > 0
    assert proc2.terminate() == 0


def test_sigterm_shuts_the_broker_down_cleanly(broker_process: Callable[..., Any]) -> None:
    proc = broker_process().start()
    c = BrokerClient(proc.endpoint)
    assert c.request("take_ticket", service="passport")["ticket"]["label"] == "A001"
    c.close()
    assert proc.terminate() == 0
    assert "Traceback" not in "".join(proc.output)


def test_the_broker_refuses_to_start_without_keys_or_insecure(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from queuehall.cli import main

    assert main(["broker", "--db", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    assert "--keys" in capsys.readouterr().err
    assert main(["broker", "--insecure", "--host", "0.0.0.0", "--db", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    assert "loopback" in capsys.readouterr().err
    assert main(["broker", "--insecure", "--config", str(tmp_path / "missing.toml")]) == 2


# ---------------------------------------------------------------------------------------------- reports


def test_when_a_business_day_ends_the_broker_stores_its_report_facts(
        start_broker: Callable[..., BrokerThread], manual_clock: Any) -> None:
    """The broker does at midnight what `queuehall report --prepare` does, so no report parses that day."""
    from queuehall.broker.storage import report_facts
    from sqlalchemy import func, select

    bt = start_broker()
    c = BrokerClient(bt.endpoint)
    try:
        c.request("sign_in", counter=1, clerk="c1a", pin=PIN)
        for _ in range(3):
            c.request("take_ticket", service="P")
            c.request("call_next", counter=1)
            c.request("start", counter=1)
            c.request("finish", counter=1)
        assert bt.broker is not None and bt.store is not None
        assert bt.broker.report_prepare is None  # nothing to do while the day goes on
        manual_clock.advance(hours=24)  # Wednesday 09:00: Tuesday is over and all its visits ended
        prepared = wait_until(lambda: bt.broker.report_prepare, what="the nightly preparation")
        prepared.join(30)
        with bt.store.engine.connect() as conn:
            stored = conn.execute(select(report_facts.c.business_day, func.count())
                                  .group_by(report_facts.c.business_day)).all()
        assert [(str(d), n) for d, n in stored] == [("2026-11-24", 3)]
    finally:
        c.close()


def test_settle_heap_freezes_what_lives_at_the_start_and_thaws_it_when_called_again() -> None:
    """``queuehall broker`` runs ``settle_heap`` once the hall is loaded: what is alive then (the modules, the
    hall) is frozen out of the cycle collector's full passes (docs/benchmarks.md: a full pass over a started
    broker's heap against one after the freeze). A second call (a standby taking the lease again) thaws first,
    so a frozen hall that became garbage since is collected, not kept for ever."""
    import gc
    import weakref

    from queuehall.broker.main import settle_heap

    class Node:
        pass

    try:
        cycle = Node()
        cycle.self = cycle  # type: ignore[attr-defined]  # only the cycle collector frees it
        alive = weakref.ref(cycle)
        settle_heap()
        assert gc.get_freeze_count() > 0 and gc.get_count()[2] == 0
        del cycle
        gc.collect()
        assert alive() is not None  # frozen: not even a full pass looks at it
        settle_heap()
        assert alive() is None  # thawed, collected, and what lives now frozen instead
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
