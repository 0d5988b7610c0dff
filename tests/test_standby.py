"""A primary and a standby broker for one hall on one PostgreSQL database (docs/standby.md).

Real PostgreSQL (the server ``make test`` starts), real ``queuehall broker --standby`` processes, real
sockets: kill -9 of the serving broker during a stream of takes and calls, SIGSTOP/SIGCONT of it, the
fencing of a broker that lost its lease inside the database's own transaction, and a standby's refusal
to run on SQLite.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from queuehall.broker.config import DEFAULT_CONFIG, load_config
from queuehall.broker.lease import IDLE_IN_TRANSACTION_MS, Lease, LeaseLost
from queuehall.broker.storage import open_store
from queuehall.display.model import DisplayModel, DisplayOptions
from queuehall.voice.pack import load_pack
from queuehall.voice.sink import ManualClock as AnnouncerClock
from queuehall.voice.sink import RecordingSink
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from queuehall.client import (
    BrokerClient,
    BrokerUnavailable,
    CommandRefused,
    Link,
    parse_endpoints,
    wait_until_answering,
)
from queuehall.clock import ManualClock
from queuehall.errors import HallError
from queuehall.protocol import Request
from tests.broker_fixtures import ROOT, SIM_START, free_port_pair, keys_dir_fixture, security
from tests.hall_factory import install_pins, pin_of

PG = pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
keys_dir_fixture = keys_dir_fixture  # the fixture keys_dir: a broker key pair and device keys


class StandbyBroker:
    """``queuehall broker --standby`` on a PostgreSQL database, as a child process, its output collected."""

    def __init__(self, url: str, name: str, keys_dir: Path | None = None) -> None:
        self.url, self.name = url, name
        self.port = free_port_pair()
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        keys = ["--keys", str(keys_dir)] if keys_dir is not None else ["--insecure"]
        cmd = [sys.executable, "-m", "queuehall.cli", "broker", *keys, "--standby", "--port", str(self.port),
               "--config", str(DEFAULT_CONFIG), "--db", url, "--sim-start", SIM_START]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, words: str, timeout: float = 30.0) -> None:
        """Until the broker prints a line with ``words`` (AssertionError after ``timeout`` s)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"{self.name}: no {words!r} in {timeout} s:\n{''.join(self.output)}") from None
            if words in line:
                return

    def said(self, words: str) -> bool:
        return any(words in line for line in self.output)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def pair(db_url: str) -> Iterator[tuple[StandbyBroker, StandbyBroker]]:
    """Broker A serving and broker B standing by, on one fresh PostgreSQL database with the clerks' PINs."""
    store = open_store(db_url)
    install_pins(store, load_config(DEFAULT_CONFIG))
    store.close()
    a = StandbyBroker(db_url, "A")
    made = [a]
    try:
        a.wait_for("serving hall")
        b = StandbyBroker(db_url, "B")
        made.append(b)
        b.wait_for("ready on")
        yield a, b
    finally:
        for p in made:
            p.close()


def rows(url: str, sql: str) -> list[Any]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)))
    finally:
        engine.dispose()


def serving_epoch(endpoint: str) -> str:
    c = BrokerClient(endpoint, timeout=2.0, retries=0)
    try:
        return str(c.request("ping")["epoch"])
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------- kill -9


@PG
def test_kill_9_of_the_serving_broker_during_takes_and_calls_loses_nothing(
        pair: tuple[StandbyBroker, StandbyBroker], db_url: str) -> None:
    a, b = pair
    both = f"{a.endpoint},{b.endpoint}"
    display_calls: list[dict[str, Any]] = []
    display = Link(both, role="display", name="wall")
    # The wall display's own rules (display/model.py), fed from the link's thread as the Qt window would be.
    clock = AnnouncerClock(1_800_000_000.0)
    wall = DisplayModel(DisplayOptions(min_display_seconds=0), pack=load_pack(), sink=RecordingSink(clock),
                        clock=clock, hall_clock=display.hall_clock)

    def on_event(msg: dict[str, Any]) -> None:
        if msg["event"]["type"] == "ticket_called":
            display_calls.append(msg["event"])
        wall.handle_event(msg)

    display.on_event = on_event
    display.on_state = lambda mirror: wall.handle_state(mirror.state)
    display.start()
    kiosk = BrokerClient(both, client_id="kiosk-1", timeout=1.0, retries=4)
    counter = BrokerClient(both, client_id="counter-1", timeout=1.0, retries=4)
    counter.request("sign_in", counter=1, clerk="c01a", pin=pin_of("c01a"))
    taken: list[dict[str, Any]] = []  # acknowledged takes
    called: list[dict[str, Any]] = []  # acknowledged calls
    failures: list[str] = []
    stop = threading.Event()

    def takes() -> None:
        while not stop.is_set():
            try:
                taken.append(kiosk.request("take_ticket", service="passport")["ticket"])
            except (BrokerUnavailable, CommandRefused) as err:
                failures.append(f"take: {err}")

    def calls() -> None:
        while not stop.is_set():
            try:
                ticket = counter.request("call_next", counter=1)["ticket"]
            except CommandRefused as err:
                if err.code != "QUEUE_EMPTY":
                    failures.append(f"call: {err}")
                time.sleep(0.02)  # nobody waiting yet: the takes thread catches up
                continue
            except BrokerUnavailable as err:
                failures.append(f"call: {err}")
                continue
            called.append(ticket)
            try:
                counter.request("start", counter=1)
                counter.request("finish", counter=1)
            except (BrokerUnavailable, CommandRefused) as err:
                failures.append(f"finish: {err}")

    threads = [threading.Thread(target=takes), threading.Thread(target=calls)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 20
        while (len(taken) < 20 or len(called) < 10) and time.monotonic() < deadline:
            time.sleep(0.05)
        first_epoch = serving_epoch(a.endpoint)
        before = (len(taken), len(called))
        a.proc.kill()  # SIGKILL: no clean-up, the lease is left to run out
        a.proc.wait(10)
        b.wait_for("serving hall", timeout=20)
        deadline = time.monotonic() + 20
        while (len(taken) < before[0] + 20 or len(called) < before[1] + 10) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert len(taken) >= before[0] + 20 and len(called) >= before[1] + 10, \
        f"the standby did not carry on: {len(taken)} takes, {len(called)} calls, {failures}\n{''.join(b.output)}"
    assert not failures, failures  # the clients moved to the standby without a refusal or a give-up

    # No acknowledged ticket lost, no number issued twice.
    stored = {r.id: r.label for r in rows(db_url, "SELECT id, label FROM tickets")}
    assert all(stored.get(t["id"]) == t["label"] for t in taken), "an acknowledged ticket is missing"
    labels = [t["label"] for t in taken]
    assert len(labels) == len(set(labels)), "a number was issued twice"
    assert len(stored) == len(set(stored.values()))
    # No call repeated: each acknowledged call is another ticket, and the journal called each ticket once.
    assert len({t["id"] for t in called}) == len(called)
    journal_calls = [r.ticket_id for r in rows(db_url, "SELECT ticket_id FROM events WHERE type = 'ticket_called'")]
    assert len(journal_calls) == len(set(journal_calls))
    assert {t["id"] for t in called} <= set(journal_calls)

    # The display followed: it resynchronised to the standby's epoch, announced no call twice, and has
    # every call the new broker made since it took over.
    new_epoch = serving_epoch(b.endpoint)
    assert new_epoch != first_epoch
    deadline = time.monotonic() + 10
    while display.mirror.epoch != new_epoch and time.monotonic() < deadline:
        time.sleep(0.05)
    assert display.mirror.epoch == new_epoch
    assert display.resyncs >= 2
    announced = [(e["ticket"]["id"], e["journal_seq"]) for e in display_calls]
    assert len(announced) == len(set(announced)), "a call was announced twice"
    assert len({tid for tid, _seq in announced}) == len(announced)
    shown = {e["ticket"]["id"] for e in display.mirror.state.get("recent_calls", [])}
    assert {t["id"] for t in called[-10:]} <= shown | {tid for tid, _seq in announced}
    display.stop()
    # The display's announcements: none twice, across the takeover and the resynchronisation.
    spoken = [card.ticket_id for card in wall.announced]
    assert spoken and len(spoken) == len(set(spoken)), "the wall display announced a call twice"
    assert set(spoken) <= {t["id"] for t in called}
    kiosk.close()
    counter.close()


@PG
def test_clients_listing_the_standby_first_move_to_the_serving_broker(
        pair: tuple[StandbyBroker, StandbyBroker]) -> None:
    a, b = pair
    # The lease is the hall's, by its id in hall.toml, and names the serving broker.
    assert [(r.hall, r.epoch) for r in rows(b.url, "SELECT hall, epoch FROM broker_lease")] == [
        (load_config(DEFAULT_CONFIG).hall_id, 1)]
    assert a.said("serving hall main (lease epoch 1)") and not b.said("serving hall")
    standby_first = f"{b.endpoint},{a.endpoint}"
    with pytest.raises(CommandRefused) as refused:  # the standby alone says what it is, in both languages
        BrokerClient(b.endpoint, timeout=2.0, retries=0).request("take_ticket", service="passport")
    assert refused.value.code == "BROKER_STANDBY" and "备用" in refused.value.message_zh
    # Waiting for a broker to answer: a standby is up but does not answer; the pair does.
    assert not wait_until_answering(b.endpoint, timeout=1.0)
    assert wait_until_answering(standby_first, timeout=10.0)
    client = BrokerClient(standby_first, timeout=2.0)
    ticket = client.request("take_ticket", service="passport")["ticket"]
    assert client.port == a.port
    link = Link(standby_first, role="display", name="wall")
    states: list[Any] = []
    link.on_state = states.append
    link.start()
    try:
        deadline = time.monotonic() + 15
        while not (link.mirror.synced and link.port == a.port) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert link.mirror.synced and link.port == a.port
        assert str(ticket["id"]) in link.mirror.state["tickets"]
    finally:
        link.stop()
    out = subprocess.run([sys.executable, "-m", "queuehall.cli", "take", "passport", "--broker", standby_first],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert '"label"' in out.stdout
    client.close()


@PG
def test_a_take_the_old_primary_acknowledged_is_not_issued_again_by_the_new_one(db_url: str, keys_dir: Path) -> None:
    """With CurveZMQ keys (both brokers share the keys directory): a kiosk's take, acknowledged by the primary,
    sent again with the same request id after the primary died (its reply was lost, say), is answered by the
    standby with the first reply from the database: the same ticket, no second number."""
    store = open_store(db_url)
    install_pins(store, load_config(DEFAULT_CONFIG))
    store.close()
    a = StandbyBroker(db_url, "A", keys_dir)
    made = [a]
    try:
        a.wait_for("serving hall")
        b = StandbyBroker(db_url, "B", keys_dir)
        made.append(b)
        b.wait_for("ready on")
        both = f"{a.endpoint},{b.endpoint}"
        kiosk = BrokerClient(both, client_id="kiosk-1", security=security(keys_dir, "kiosk-1"), timeout=1.0,
                             retries=5)
        take = Request(type="take_ticket", args={"service": "passport"}, client="kiosk-1")
        first = kiosk.send(take)
        assert first.ok and kiosk.port == a.port
        a.proc.kill()
        a.proc.wait(10)
        again = kiosk.send(take)  # the same request id, now to the standby once it took over
        assert again.ok and kiosk.port == b.port, again
        assert again.result == first.result
        other = kiosk.request("take_ticket", service="passport")["ticket"]  # a new request: the next number
        assert other["label"] != first.result["ticket"]["label"]
        labels = sorted(r.label for r in rows(db_url, "SELECT label FROM tickets"))
        assert labels == sorted([first.result["ticket"]["label"], other["label"]])
        # A wrong key is refused by the new primary as by the old one.
        with pytest.raises(CommandRefused) as refused:
            BrokerClient(b.endpoint, security=security(keys_dir, "kiosk-1"), timeout=2.0, retries=0).request(
                "call_next", counter=1)
        assert refused.value.code == "FORBIDDEN"
        kiosk.close()
    finally:
        for p in made:
            p.close()


# ---------------------------------------------------------------------------------------------- SIGSTOP


@PG
def test_a_paused_primary_cannot_write_after_the_standby_took_over_and_steps_down(
        pair: tuple[StandbyBroker, StandbyBroker], db_url: str) -> None:
    a, b = pair
    both = BrokerClient(f"{a.endpoint},{b.endpoint}", client_id="kiosk-1", timeout=1.0, retries=4)
    first = both.request("take_ticket", service="passport")["ticket"]
    only_a = BrokerClient(a.endpoint, client_id="kiosk-2", timeout=30.0, retries=0)
    only_a.request("ping")  # a device connected to the primary before it was paused
    a.proc.send_signal(signal.SIGSTOP)
    # A take sent to the paused primary alone waits in its socket until it wakes.
    late: list[Any] = []
    sender = threading.Thread(target=lambda: late.append(only_a.send(
        Request(type="take_ticket", args={"service": "passport"}, client="kiosk-2"))))
    sender.start()
    b.wait_for("serving hall", timeout=20)
    second = both.request("take_ticket", service="passport")["ticket"]  # served by the standby
    assert second["label"] != first["label"]
    a.proc.send_signal(signal.SIGCONT)
    sender.join(30)
    assert late and not late[0].ok and late[0].error["code"] == "BROKER_STANDBY", late
    assert late[0].error["message_zh"] and late[0].error["message_en"]
    a.wait_for("lease lost, standing by", timeout=20)
    assert a.proc.poll() is None  # a standby now, answering so
    with pytest.raises(CommandRefused) as refused:
        BrokerClient(a.endpoint, timeout=2.0, retries=0).request("ping")
    assert refused.value.code == "BROKER_STANDBY"
    # Nothing of the paused primary's reached the database: only the two acknowledged tickets are there.
    assert sorted(r.label for r in rows(db_url, "SELECT label FROM tickets")) == sorted(
        [first["label"], second["label"]])
    # And the old primary is a real standby: when the new one dies, it takes over again.
    b.proc.kill()
    b.proc.wait(10)
    a.wait_for("serving hall", timeout=20)
    third = both.request("take_ticket", service="passport")["ticket"]
    assert third["label"] not in (first["label"], second["label"])
    both.close()
    only_a.close()


# ---------------------------------------------------------------------------------------------- fencing


def _expire(url: str) -> None:
    """The lease runs out now (as it would after LEASE_SECONDS without renewal), by the database's clock."""
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("UPDATE broker_lease SET expires_at = clock_timestamp() - interval '1 second'"))
    engine.dispose()


@PG
def test_a_write_of_a_broker_that_lost_its_lease_is_fenced_off_inside_the_transaction(db_url: str) -> None:
    from queuehall.broker.storage import load_hall

    from tests.hall_factory import TUESDAY, local

    config = load_config(DEFAULT_CONFIG)
    old, new = open_store(db_url), open_store(db_url)
    lease_a = Lease(old.engine, "main", holder="a")
    lease_b = Lease(new.engine, "main", holder="b")
    try:
        assert lease_a.try_acquire() and lease_a.epoch == 1
        assert not lease_b.try_acquire()  # held and not run out: refused
        old.on_writer, old.fence = lease_a.prepare_writer, lease_a.fence
        clock = ManualClock(local(TUESDAY, 9, 5))
        hall_a = load_hall(config, clock, old)
        hall_a.execute("take_ticket", {"service": "passport"})
        _expire(db_url)
        assert lease_a.valid()  # its own clock still says it holds the lease: only the database knows better
        assert lease_b.try_acquire() and lease_b.epoch == 2
        with pytest.raises(HallError) as refused:
            hall_a.execute("take_ticket", {"service": "passport"})
        assert refused.value.code == "STORAGE"
        assert lease_a.epoch is None and lease_a.renew() is False
        assert [r.label for r in rows(db_url, "SELECT label FROM tickets")] == ["A001"]
        # The new holder loads what the old one committed and goes on from there.
        new.on_writer, new.fence = lease_b.prepare_writer, lease_b.fence
        hall_b = load_hall(config, clock, new)
        assert hall_b.execute("take_ticket", {"service": "passport"})["ticket"]["label"] == "A002"
        with pytest.raises(LeaseLost):
            cursor = old.engine.raw_connection()
            try:
                lease_a.fence(cursor.cursor())
            finally:
                cursor.close()
    finally:
        for x in (lease_a, lease_b):
            x.close()
        old.close()
        new.close()


@PG
def test_a_serving_broker_whose_lease_was_taken_between_two_renewals_stores_nothing_and_steps_down(
        db_url: str) -> None:
    """The broker's own path (broker/server.py): a group of commands fenced off in the database is answered
    BROKER_STANDBY (so the clients retry elsewhere with the same ids), and the broker stops serving."""
    import zmq
    from queuehall.broker.server import Broker
    from queuehall.broker.storage import load_hall

    from queuehall.protocol import decode_reply, encode_request
    from tests.hall_factory import TUESDAY, local

    store, other = open_store(db_url), open_store(db_url)
    lease_a = Lease(store.engine, "main", holder="a")
    lease_b = Lease(other.engine, "main", holder="b")
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.linger = 0
    broker = None
    try:
        assert lease_a.try_acquire()
        store.on_writer, store.fence = lease_a.prepare_writer, lease_a.fence
        broker = Broker(load_hall(load_config(DEFAULT_CONFIG), ManualClock(local(TUESDAY, 9, 5)), store),
                        port=free_port_pair(), lease=lease_a, context=ctx)
        broker.bind()
        assert broker.router is not None
        dealer.connect(f"tcp://127.0.0.1:{broker.port}")

        def roundtrip(type_: str, **args: Any) -> Any:
            dealer.send(encode_request(Request(type=type_, args=args, client="kiosk-1")))
            assert broker is not None and broker.router is not None and broker.router.poll(5000)
            broker._on_batch([broker.router.recv_multipart(copy=False)])
            assert dealer.poll(5000)
            return decode_reply(dealer.recv())

        first = roundtrip("take_ticket", service="passport")
        assert first.ok
        _expire(db_url)
        assert lease_b.try_acquire()  # taken over before the serving broker's next renewal
        refused = roundtrip("take_ticket", service="passport")
        assert not refused.ok and refused.error["code"] == "BROKER_STANDBY", refused
        assert broker.stepped_down and lease_a.epoch is None
        assert roundtrip("ping").error["code"] == "BROKER_STANDBY"  # nothing more is answered from memory
        assert [r.label for r in rows(db_url, "SELECT label FROM tickets")] == [first.result["ticket"]["label"]]
    finally:
        if broker is not None:
            broker.close()
        dealer.close(0)
        ctx.term()
        for x in (lease_a, lease_b):
            x.close()
        store.close()
        other.close()


@PG
def test_each_hall_on_a_shared_database_has_its_own_lease(db_url: str) -> None:
    store = open_store(db_url)
    leases = [Lease(store.engine, hall, holder=f"{hall}-{n}") for hall in ("dongcheng", "haidian") for n in (1, 2)]
    try:
        first, second = [lease.try_acquire() for lease in leases[::2]], [lease.try_acquire() for lease in leases[1::2]]
        assert first == [True, True] and second == [False, False]  # one serving broker per hall, not per database
        assert all(lease.renew() for lease in leases[::2])
        leases[0].release()  # a clean stop in one hall: its standby takes over at once, the other hall is untouched
        assert leases[1].try_acquire() and not leases[3].try_acquire()
        assert leases[0].holder_now() == {"holder": "dongcheng-2", "epoch": 2, "live": True,
                                          "seconds_left": pytest.approx(leases[0].seconds, abs=1.0)}
    finally:
        for lease in leases:
            lease.close()
        store.close()


@PG
def test_a_broker_stopped_inside_a_transaction_cannot_block_the_takeover(db_url: str) -> None:
    """Its lock on the lease row ends with its session: PostgreSQL ends a session idle in a transaction."""
    store = open_store(db_url)
    lease_a = Lease(store.engine, "main", holder="a")
    lease_b = Lease(store.engine, "main", holder="b")
    raw = store.engine.raw_connection()
    try:
        assert lease_a.try_acquire()
        _expire(db_url)  # its lease has run out, and its broker is stopped inside a journal transaction:
        lease_a.prepare_writer(raw)
        cursor = raw.cursor()
        lease_a.fence(cursor)  # that transaction holds the lease row FOR SHARE
        stopped = time.monotonic()
        deadline = stopped + IDLE_IN_TRANSACTION_MS / 1000 + 10
        tries = 1
        while not lease_b.try_acquire():  # each try waits LOCK_TIMEOUT_MS for the row at most
            assert time.monotonic() < deadline, "the stopped transaction's lock was never released"
            tries += 1
            time.sleep(0.05)
        # Only once PostgreSQL ended the stopped session (IDLE_IN_TRANSACTION_MS) was the row free.
        assert time.monotonic() - stopped >= 0.9 * IDLE_IN_TRANSACTION_MS / 1000
        assert tries >= 2
        assert lease_b.epoch == 2
        with pytest.raises(Exception):  # noqa: B017  (the driver's own error: the session was ended)
            cursor.execute("SELECT 1")
            raw.commit()
    finally:
        raw.invalidate()
        lease_a.close()
        lease_b.close()
        store.close()


# ---------------------------------------------------------------------------------------------- SQLite, addresses


def test_a_standby_needs_postgresql(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "queuehall.cli", "broker", "--insecure", "--standby", "--port",
                          str(free_port_pair()), "--db", f"sqlite:///{tmp_path / 'hall.db'}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "STANDBY_NEEDS_POSTGRESQL" in out.stderr and "PostgreSQL" in out.stderr and "备用服务器" in out.stderr


def test_broker_address_lists() -> None:
    assert parse_endpoints("a:5555, b:6000") == [("a", 5555), ("b", 6000)]
    assert parse_endpoints("10.0.0.2:5555") == [("10.0.0.2", 5555)]
    for bad in ("a:5555,", "a:5555,b", "a:x", ":5555"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_endpoints(bad)
