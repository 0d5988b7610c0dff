"""A screen learns at once that its broker's process is gone (queuehall/client.py, docs/standby.md "When a
connection drops"): the link's socket monitor reports the dropped connection instead of waiting DEAD_AFTER
seconds of silence. With a standby pair a dropped connection is one broker gone, not the hall: the link moves
to the other address at once and reports the hall lost only if no broker serves within STANDBY_GRACE.

Real broker processes on loopback, killed with SIGKILL. DEAD_AFTER is raised to 60 s in these tests, so a loss
reported within seconds can only come from the dropped connection, not from the silence."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from queuehall import client
from queuehall.client import Link
from queuehall.connection import OFFLINE, ONLINE, LinkStatus
from tests.broker_fixtures import BrokerProcess, broker_process_fixture, wait_until
from tests.test_standby import PG, StandbyBroker, pair, serving_epoch

broker_process = broker_process_fixture
pair_fixture = pair


class Watched:
    """A display's link with what it reported, timed on the monotonic clock."""

    def __init__(self, endpoint: str) -> None:
        self.link = Link(endpoint, role="display", name="wall")
        self.status = LinkStatus()
        self.changes: list[tuple[bool, float]] = []
        self.lock = threading.Lock()

        def connection(up: bool) -> None:
            with self.lock:
                self.changes.append((up, time.monotonic()))
                self.status.on_connection(up)

        def state(_mirror: Any) -> None:
            with self.lock:
                self.status.on_state()

        self.link.on_connection = connection
        self.link.on_state = state
        self.link.start()

    def lost(self) -> list[float]:
        with self.lock:
            return [t for up, t in self.changes if not up]

    def close(self) -> None:
        self.link.stop()


@pytest.fixture(name="watch")
def watch_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Watched]]:
    monkeypatch.setattr(client, "DEAD_AFTER", 60.0)
    made: list[Watched] = []

    def make(endpoint: str) -> Watched:
        w = Watched(endpoint)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()


def test_the_only_broker_killed_is_reported_at_once(broker_process: Callable[..., BrokerProcess],
                                                    watch: Callable[[str], Watched]) -> None:
    b = broker_process().start()
    w = watch(b.endpoint)
    wait_until(lambda: w.link.mirror.synced and w.status.state == ONLINE, 20, "the display to sync")
    killed = time.monotonic()
    b.kill9()
    wait_until(lambda: w.lost(), 15, "the loss to be reported (the silence alone would take 60 s)")
    assert w.status.state == OFFLINE and w.status.stale
    assert w.lost()[0] - killed < 15
    # The broker comes back on its address: the display resynchronises by itself.
    b.start()
    wait_until(lambda: w.link.alive and w.link.mirror.synced, 20, "the display to resynchronise")
    assert w.status.state == ONLINE and not w.status.stale


@PG
def test_a_pairs_broker_killed_is_not_a_dead_hall_but_both_are(pair: tuple[StandbyBroker, StandbyBroker],
                                                               watch: Callable[[str], Watched],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = pair
    monkeypatch.setattr(client, "STANDBY_GRACE", 30.0)  # any takeover on this shared machine fits in it
    w = watch(f"{a.endpoint},{b.endpoint}")
    wait_until(lambda: w.link.mirror.synced and w.status.state == ONLINE, 20, "the display to sync")
    epoch_a = w.link.mirror.epoch
    a.proc.kill()  # SIGKILL of the serving broker: B takes the lease once it runs out, and serves
    a.proc.wait(10)
    b.wait_for("serving hall")
    epoch_b = serving_epoch(b.endpoint)
    wait_until(lambda: w.link.mirror.synced and str(w.link.mirror.epoch) == epoch_b, 30,
               "the display to move to B and resynchronise")
    assert str(epoch_a) != epoch_b
    assert w.lost() == [], "one broker of a pair gone is not the hall gone: no loss reported"
    assert w.link.host == b.endpoint.split(":")[0] and w.link.port == b.port
    # Now the hall's last broker dies: no broker serves within the grace, the loss is reported then.
    monkeypatch.setattr(client, "STANDBY_GRACE", 2.0)
    killed = time.monotonic()
    b.proc.kill()
    b.proc.wait(10)
    wait_until(lambda: w.lost(), 30, "the loss to be reported")
    waited = w.lost()[0] - killed
    assert 2.0 <= waited < 30, f"reported after {waited:.2f} s: after the grace, long before the silence (60 s)"
    assert w.status.state == OFFLINE
