"""Shared fixtures for the broker, client and CLI tests: real brokers on real sockets.

* :class:`BrokerThread`: a :class:`~broker.server.Broker` serving in a thread on random free
  ports of 127.0.0.1, against a real SQLite database, with a :class:`ManualClock` (or any
  clock) and its own ZeroMQ context; it can be stopped and restarted on the same ports and
  database (a new epoch, as after a real restart).
* :class:`BrokerProcess`: ``python -m queuehall.cli broker …`` as a subprocess, for
  ``kill -9`` and SIGTERM.
* a keys directory with kiosk, counter 1, counter 2, display and admin keys.
* :func:`wait_until`: the tests' only way to wait, returning as soon as a condition holds.

Fixtures are defined as ``NAME_fixture`` with ``name="NAME"``; a test module makes them
available by binding them in its namespace: ``start_broker_fixture = broker_fixtures.start_broker_fixture``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import zmq
from queuehall.broker import keys
from queuehall.broker.appointments import new_contact_key
from queuehall.broker.config import DEFAULT_CONFIG, ConfigError, HallConfig, load_config
from queuehall.broker.server import Broker
from queuehall.broker.storage import Store, load_hall, open_store

from queuehall.client import BrokerClient, Link, Security, StateMirror
from queuehall.clock import Clock, ManualClock
from queuehall.demo import free_port
from queuehall.protocol import STAFF_ROLES
from tests.hall_factory import TUESDAY, install_pins, local, small_config

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

# The default hall is open then (a Tuesday, 09:00 in Asia/Shanghai).
SIM_START = "2026-11-24T09:00"
# Device keys in the keys fixture: name -> (role, counter).
DEVICES: dict[str, tuple[str, int | None]] = {
    "kiosk-1": ("kiosk", None),
    "counter-1": ("counter", 1),
    "counter-2": ("counter", 2),
    "wall-1": ("display", None),
    "manager": ("admin", None),
}


def wait_until(condition: Callable[[], T], timeout: float = 5.0, what: str = "condition") -> T:
    """Poll ``condition`` until it returns something truthy and return that; fail the test
    after ``timeout`` seconds. Returns as soon as the condition holds (a 2 ms poll)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: wait() is a short, interruptible poll interval
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        pause.wait(0.002)


def free_port_pair() -> int:
    """A port N such that N, N+1 and N+2 are free on 127.0.0.1 (commands, public and staff events):
    queuehall.demo.free_port, the one finder."""
    return free_port()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


_template: list[Path] = []


def _fresh_sqlite(url: str) -> None:
    """Give a not-yet-existing SQLite database the current schema by copying a template that
    was migrated once per test run (an Alembic upgrade from nothing costs most of a second)."""
    if not url.startswith("sqlite:///"):
        return
    target = Path(url.removeprefix("sqlite:///"))
    if target.exists():
        return
    if not _template:
        path = Path(tempfile.mkdtemp(prefix="queuehall-template-")) / "template.db"
        store = open_store(sqlite_url(path))
        with store.engine.connect() as conn:  # fold the WAL into the file so one copy is complete
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        store.close()
        _template.append(path)
    shutil.copyfile(_template[0], target)


class BrokerThread:
    """A real broker in a thread: bound before :meth:`start` returns, stopped by :meth:`stop`."""

    def __init__(self, config: HallConfig, db_url: str, clock: Clock, *, keys_dir: Path | None = None,
                 port: int | None = None) -> None:
        self.config = config
        self.db_url = db_url
        self.clock = clock
        self.keys_dir = keys_dir
        self.port = port or free_port_pair()
        self.broker: Broker | None = None
        self.store: Store | None = None
        self._ctx: zmq.Context | None = None
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.contact_key = new_contact_key()  # the broker's key file: the same across its restarts

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> BrokerThread:
        """Rebuild the hall from the database and serve it (a new epoch each time)."""
        _fresh_sqlite(self.db_url)
        # NORMAL: no fsync per command. Durability is tested on a real process with the default
        # (FULL) in test_broker's kill -9 test; here it would only slow every command down.
        self.store = open_store(self.db_url, sqlite_synchronous="NORMAL", hall=self.config.hall_id,
                                hall_given=self.config.hall_id_given)
        install_pins(self.store, self.config)
        hall = load_hall(self.config, self.clock, self.store, contact_key=self.contact_key)
        self._ctx = zmq.Context()
        self.broker = Broker(hall, host="127.0.0.1", port=self.port, keys_dir=self.keys_dir, context=self._ctx)
        self.broker.bind()
        self.error = None
        self._thread = threading.Thread(target=self._serve, name=f"broker-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self.broker is not None
        try:
            self.broker.serve_forever()
        except BaseException as exc:  # surfaced by stop(): a broker that died must fail the test
            self.error = exc
            raise

    def stop(self) -> None:
        """Stop serving, close the sockets and the database; raise if the broker had crashed."""
        if self._thread is None:
            return
        assert self.broker is not None and self._ctx is not None and self.store is not None
        self.broker.stop_event.set()
        # Wake its poll at once (else up to 0.2 s) with a frame it answers as BAD_REQUEST; a
        # CurveZMQ broker ignores it and notices the stop a little later.
        with raw_dealer(self.endpoint) as s:
            s.send(b"stop")
            self._thread.join(0.5)
        self._thread.join(10)
        assert not self._thread.is_alive(), "the broker did not stop"
        self._thread = None
        self._ctx.destroy(linger=0)
        self.store.close()
        if self.error is not None:
            raise AssertionError(f"the broker thread died: {self.error!r}") from self.error

    def restart(self) -> BrokerThread:
        self.stop()
        return self.start()


@pytest.fixture(name="manual_clock")
def manual_clock_fixture() -> ManualClock:
    """Tuesday 2026-11-24, 09:00 in the hall's time zone: the hall is open."""
    return ManualClock(local(TUESDAY, 9))


@pytest.fixture(name="start_broker")
def start_broker_fixture(tmp_path: Path, manual_clock: ManualClock) -> Iterator[Callable[..., BrokerThread]]:
    """Factory: ``start_broker(config=small_config(), keys_dir=None, db_url=…, clock=…)``.

    Every broker it started is stopped at the end of the test (and a crash fails it)."""
    started: list[BrokerThread] = []
    n = [0]

    def start(config: HallConfig | None = None, *, keys_dir: Path | None = None, db_url: str | None = None,
              clock: Clock | None = None) -> BrokerThread:
        n[0] += 1
        b = BrokerThread(config or small_config(), db_url or sqlite_url(tmp_path / f"hall-{n[0]}.db"),
                         clock or manual_clock, keys_dir=keys_dir)
        started.append(b)
        return b.start()

    yield start
    errors = []
    for b in started:
        try:
            b.stop()
        except AssertionError as err:
            errors.append(err)
    if errors:
        raise errors[0]


@pytest.fixture(name="hall_config", scope="session")
def hall_config_fixture() -> HallConfig:
    """The default hall (config/hall.toml)."""
    return load_config(DEFAULT_CONFIG)


@pytest.fixture(name="keys_dir")
def keys_dir_fixture(tmp_path: Path) -> Path:
    """A keys directory with the broker's pair and the :data:`DEVICES` keys."""
    d = tmp_path / "keys"
    keys.init_keys(d)
    for name, (role, counter) in DEVICES.items():
        keys.add_device(d, name, role, counter)
    return d


def security(keys_dir: Path, name: str) -> Security:
    """The CurveZMQ keys a device ``name`` of ``keys_dir`` connects with."""
    return Security.from_files(str(keys_dir / "secret" / f"{name}.key_secret"), str(keys_dir / "broker.key"))


class BrokerProcess:
    """``queuehall broker`` as a child process, with its output collected line by line."""

    def __init__(self, db_path: Path, *, port: int | None = None, config: Path = DEFAULT_CONFIG,
                 extra: tuple[str, ...] = ()) -> None:
        self.db_path = db_path
        self.port = port or free_port_pair()
        self.config = config
        self.extra = extra
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> BrokerProcess:
        """Start the broker and return once it prints that it is ready."""
        cmd = [sys.executable, "-m", "queuehall.cli", "broker", "--insecure", "--port", str(self.port),
               "--config", str(self.config), "--db", sqlite_url(self.db_path), "--sim-start", SIM_START,
               *self.extra]
        _fresh_sqlite(sqlite_url(self.db_path))
        try:  # the clerks' PINs, as `queuehall clerks set-pin` would have set them
            config = load_config(self.config)
        except ConfigError:  # a test of a broker refusing its configuration
            pass
        else:
            store = open_store(sqlite_url(self.db_path), hall=config.hall_id, hall_given=config.hall_id_given)
            install_pins(store, config)
            store.close()
        # The broker's data directory (its contact key: broker/main.py) beside the test's database.
        env = dict(os.environ, PYTHONUNBUFFERED="1", QUEUEHALL_DATA=str(self.db_path.parent / "data"))
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"broker not ready in {timeout} s:\n{''.join(self.output)}") from None
            if "ready on" in line:
                return self
            if self.proc.poll() is not None and self.lines.empty():
                raise AssertionError(f"broker exited {self.proc.returncode}:\n{''.join(self.output)}")

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)
            self.lines.put(line)

    def kill9(self) -> None:
        """SIGKILL: no clean-up of any kind happens in the broker."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM; return the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(name="broker_process")
def broker_process_fixture(tmp_path: Path) -> Iterator[Callable[..., BrokerProcess]]:
    """Factory for :class:`BrokerProcess`; every child is killed at the end of the test."""
    made: list[BrokerProcess] = []

    def make(db_path: Path | None = None, **kw: Any) -> BrokerProcess:
        p = BrokerProcess(db_path or tmp_path / "hall.db", **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


# ---------------------------------------------------------------------------------------------- comparing


def comparable(state: dict[str, Any]) -> dict[str, Any]:
    """The parts of a hall state a screen depends on, with what legitimately differs between two
    moments removed (``next_open`` and ``now`` move with the clock)."""
    return {
        "services": {c: {k: v for k, v in s.items() if k != "next_open"}
                     for c, s in state.get("services", {}).items()},
        "counters": state.get("counters", {}),
        "tickets": state.get("tickets", {}),
        "recent_calls": state.get("recent_calls", []),
        "devices": state.get("devices", {}),
    }


class MirrorTap:
    """Follows a :class:`~queuehall.client.Link` from the test thread: a deep copy of its mirror
    is taken on the link thread after every change (the mirror itself is not thread-safe), and
    waiters are woken at once."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.cond = threading.Condition()
        self.epoch: str | None = None
        self.seq = -1
        self.state: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self.connection: list[tuple[bool, float]] = []  # (alive, time.monotonic())
        link.on_state = self._on_state
        link.on_event = self._on_event
        link.on_connection = self._on_connection

    def _on_state(self, mirror: StateMirror) -> None:
        with self.cond:
            self.epoch, self.seq, self.state = mirror.epoch, mirror.seq, copy.deepcopy(mirror.state)
            self.cond.notify_all()

    def _on_event(self, msg: dict[str, Any]) -> None:
        with self.cond:
            self.events.append(msg)

    def _on_connection(self, up: bool) -> None:
        with self.cond:
            self.connection.append((up, time.monotonic()))
            self.cond.notify_all()

    def wait(self, predicate: Callable[[MirrorTap], T], timeout: float = 5.0, what: str = "the mirror") -> T:
        """Wait until ``predicate(self)`` is truthy (checked on every change) and return it."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
                self.cond.wait(min(left, 0.05))

    def matches(self, snapshot: dict[str, Any]) -> bool:
        with self.cond:
            return (self.epoch == snapshot["epoch"] and self.seq == snapshot["seq"]
                    and comparable(self.state) == comparable(as_seen_by(self.link.role, snapshot["state"])))


def as_seen_by(role: str, state: dict[str, Any]) -> dict[str, Any]:
    """A (staff) snapshot's state as a device of ``role`` is sent it: a public screen gets no notes and
    no free-text reasons (docs/protocol.md, "What each role receives"; tests/test_private_data.py)."""
    if role in STAFF_ROLES:
        return state
    from queuehall.broker.server import _public_parts

    public, tickets = _public_parts(state, state.get("tickets", {}))
    return dict(public, tickets=tickets)


def broker_snapshot(endpoint: str, sec: Security | None = None) -> dict[str, Any]:
    """The broker's snapshot, asked over the wire (so it is taken on the broker's own thread)."""
    c = BrokerClient(endpoint, client_id="checker", timeout=2.0, security=sec)
    try:
        return c.request("snapshot")
    finally:
        c.close()


def wait_in_step(tap: MirrorTap, endpoint: str, timeout: float = 10.0, sec: Security | None = None
                 ) -> dict[str, Any]:
    """Wait until the mirror equals the broker's own snapshot (same epoch, seq and state);
    return that snapshot. On failure the message shows what differs."""
    last: dict[str, dict[str, Any]] = {}

    def same() -> bool:
        last["snap"] = broker_snapshot(endpoint, sec)
        return tap.matches(last["snap"])

    try:
        wait_until(same, timeout, "the mirror to equal the broker's snapshot")
    except AssertionError:
        snap = last["snap"]
        mine, theirs = comparable(tap.state), comparable(as_seen_by(tap.link.role, snap["state"]))
        diff = {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}
        raise AssertionError(f"mirror {tap.epoch}/{tap.seq} vs broker {snap['epoch']}/{snap['seq']}: "
                             f"{json.dumps(diff, ensure_ascii=False)[:3000]}") from None
    return last["snap"]


@contextlib.contextmanager
def raw_dealer(endpoint: str, sec: Security | None = None) -> Iterator[zmq.Socket]:
    """A bare DEALER on the broker's command port (for tests that write frames by hand)."""
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    if sec is not None:
        sec.apply(s)
    s.connect(f"tcp://{endpoint}")
    try:
        yield s
    finally:
        s.close(0)


def recv_within(sock: zmq.Socket, timeout: float = 5.0) -> list[bytes] | None:
    """One message from ``sock`` within ``timeout`` seconds, or None."""
    if sock.poll(timeout * 1000, zmq.POLLIN):
        return sock.recv_multipart()
    return None
