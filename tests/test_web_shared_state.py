"""The gateway's state in a database shared by several gateways (web/state.py, docs/web.md "The gateway's state").

The stores on a database URL (SQLite and the real PostgreSQL that `make test` starts), an old state file brought up
to date, two outboxes claiming the same deliveries and two feeds enqueueing the same events at once; and two real
``queuehall web`` processes on one PostgreSQL state behind one broker: a token made once works at both, a manager
signed in at one is signed in at the other, and each webhook is delivered once although both gateways deliver.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from queuehall.web.apitokens import TokenStore
from queuehall.web.outbox import Outbox
from queuehall.web.state import open_state, state_path
from queuehall.web.supervision import ManagerStore, Sessions
from queuehall.web.webhooks import EventFeed
from sqlalchemy import inspect

from queuehall.client import BrokerClient
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, wait_until
from tests.web_fixtures import free_port
from tests.webhook_receiver import Receiver

start_broker_fixture = broker_fixtures.start_broker_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_test_secret_0123456789"
PG = pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


def test_state_path_keeps_urls() -> None:
    assert state_path("postgresql://u@db/qh") == "postgresql://u@db/qh"
    assert state_path("/var/lib/queuehall/web.db") == Path("/var/lib/queuehall/web.db")


def test_every_store_on_a_database_url(db_url: str) -> None:
    tokens, managers = TokenStore(db_url), ManagerStore(db_url)
    token, info = tokens.create("wechat", ["kiosk", "hall:haidian"])
    assert tokens.verify(token) == info and info.scopes == ("kiosk", "hall:haidian")
    managers.add("zhang", "long-enough")
    assert managers.verify("zhang", "long-enough") and not managers.verify("zhang", "wrong-one-x")
    sessions = Sessions(managers)
    sid = sessions.start("zhang")
    assert Sessions(db_url).who(sid) == "zhang"  # another store on the same database sees it
    tokens.revoke(info.id)
    assert TokenStore(db_url).verify(token) is None
    ob = Outbox(db_url)
    sub = ob.add_subscriber("http://127.0.0.1:9/x", ["ticket_called"])
    assert ob.enqueue([{"journal_seq": 3, "type": "ticket_called"}], after=None) == 1
    assert ob.enqueue([{"journal_seq": 3, "type": "ticket_called"}], after=None) is None  # the cursor moved
    assert ob.cursor() == 3 and ob.stats(sub.id)["pending"] == 1
    names = set(inspect(open_state(db_url).engine).get_table_names())
    assert {"api_tokens", "managers", "manager_sessions", "webhook_subscribers", "webhook_deliveries",
            "webhook_cursor", "webhook_gaps"} <= names
    open_state(db_url).create()  # opening it again changes nothing
    for store in (tokens, managers, sessions, ob):
        store.close()


def test_an_old_state_file_gets_the_new_columns(tmp_path: Path) -> None:
    """A state file of the previous version (sqlite3, its own DDL) keeps its rows and gains the claim columns."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE webhook_subscribers (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, url TEXT NOT NULL,
            secret TEXT NOT NULL, events TEXT NOT NULL, created_at TEXT NOT NULL, removed_at TEXT);
        CREATE TABLE webhook_deliveries (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
            subscriber INTEGER NOT NULL REFERENCES webhook_subscribers(id), journal_seq INTEGER NOT NULL,
            type TEXT NOT NULL, body BLOB NOT NULL, created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            next_at REAL NOT NULL DEFAULT 0, last_status INTEGER, last_error TEXT, delivered_at REAL);
        CREATE TABLE webhook_cursor (name TEXT PRIMARY KEY, journal_seq INTEGER NOT NULL);
        CREATE TABLE managers (name TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, n INTEGER NOT NULL,
            r INTEGER NOT NULL, p INTEGER NOT NULL, created TEXT NOT NULL);
        INSERT INTO managers VALUES ('old', x'00', x'00', 16384, 8, 1, '2026-12-01T00:00:00+00:00');
        INSERT INTO webhook_subscribers VALUES (1, 'case', 'http://127.0.0.1:9/x', 'whsec_0123456789abcdef', '*',
            '2026-12-01T00:00:00Z', NULL);
        INSERT INTO webhook_deliveries (id, subscriber, journal_seq, type, body, created_at)
            VALUES ('d1', 1, 7, 'ticket_issued', x'7b7d', 0);
        INSERT INTO webhook_cursor VALUES ('broker', 7);""")
    conn.commit()
    conn.close()
    ob = Outbox(path, clock=lambda: 100.0)
    d = ob.next_pending(1)
    assert d is not None and d.id == "d1" and d.claimed_by is None and ob.cursor() == 7
    assert ob.claim("d1", 130.0)
    ob.close()
    managers = ManagerStore(path)
    assert managers.halls_of("old") is None  # an account of before: every hall, as it was
    managers.add("wang", "long-enough", ["haidian"])
    assert managers.accounts() == [{"name": "old", "halls": None}, {"name": "wang", "halls": ["haidian"]}]
    managers.close()


def test_two_gateways_claim_a_delivery_once(db_url: str) -> None:
    now = [1000.0]
    a, b = Outbox(db_url, clock=lambda: now[0], owner="gw-a"), Outbox(db_url, clock=lambda: now[0], owner="gw-b")
    sub = a.add_subscriber("http://127.0.0.1:9/x")
    a.enqueue([{"journal_seq": 1, "type": "ticket_issued"}, {"journal_seq": 2, "type": "ticket_issued"}])
    head = b.next_pending(sub.id)
    assert head is not None and head.journal_seq == 1
    assert a.claim(head.id, now[0] + 30)
    assert not b.claim(head.id, now[0] + 30)  # a is sending it
    assert b.next_pending(sub.id).claimed_by == "gw-a"  # type: ignore[union-attr]
    now[0] += 31  # a died while sending: its claim runs out, b sends it (at least once)
    assert b.claim(head.id, now[0] + 30) and not a.claim(head.id, now[0] + 30)
    b.mark_delivered(head.id, 200)
    assert not a.claim(head.id, now[0] + 30)  # delivered: nobody sends it again
    nxt = a.next_pending(sub.id)
    assert nxt is not None and nxt.journal_seq == 2 and nxt.claimed_by is None  # in order, the next one
    a.close()
    b.close()


def test_two_feeds_on_one_state_enqueue_each_event_once(db_url: str) -> None:
    """Two gateways follow the same broker: both hear every event live and catch up from the same journal, at the
    same time, in two threads; every event is enqueued once, in journal order."""
    journal = [{"journal_seq": s, "type": "ticket_issued"} for s in range(1, 301)]

    def fetch(after: int, limit: int) -> dict[str, Any]:
        return {"events": [e for e in journal if e["journal_seq"] > after][:limit] if limit else [],
                "last_seq": 300 if limit else 0}

    setup = Outbox(db_url)
    sub = setup.add_subscriber("http://127.0.0.1:9/x")
    feeds = [EventFeed(Outbox(db_url, owner=f"gw-{i}"), fetch, page=7) for i in range(2)]
    for f in feeds:
        f.start()
    errors: list[BaseException] = []

    def run(feed: EventFeed, odd: bool) -> None:
        try:
            for e in journal:
                feed.live(e)
                if (e["journal_seq"] % 50 == 0) == odd:
                    feed.catch_up()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f, i == 1)) for i, f in enumerate(feeds)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    seqs = []
    with setup.db.read() as conn:
        from queuehall.web.state import webhook_deliveries as d
        from sqlalchemy import select

        seqs = [r[0] for r in conn.execute(select(d.c.journal_seq).where(d.c.subscriber == sub.id).order_by(d.c.seq))]
    assert seqs == list(range(1, 301)) and setup.cursor() == 300 and setup.gaps() == []


class GatewayProcess:
    """``queuehall web`` as a child process on a shared state."""

    def __init__(self, endpoint: str, state: str, name: str, log: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "queuehall.cli", "web", "--broker", endpoint, "--listen", self.url[7:],
             "--state", state, "--name", name, "--log-level", "warning"],
            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self) -> GatewayProcess:
        def healthy() -> bool:
            assert self.proc.poll() is None, "the gateway exited"
            try:
                return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 30, "the gateway to serve")
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


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


@PG
def test_two_gateway_processes_share_tokens_sessions_and_deliver_each_webhook_once(
        db_url: str, tmp_path: Path, start_broker: Callable[..., BrokerThread],
        receiver: Callable[..., Receiver]) -> None:
    b = start_broker()
    rx = receiver()
    setup = Outbox(db_url)
    setup.add_subscriber(rx.url, secret=SECRET)
    token, _ = TokenStore(db_url).create("case system", ["counter:1"])
    ManagerStore(db_url).add("zhang", "correct horse battery")
    gateways = [GatewayProcess(b.endpoint, db_url, f"web-{n}", tmp_path / f"gw-{n}.log") for n in "ab"]
    c = BrokerClient(b.endpoint, timeout=3.0)
    try:
        for g in gateways:
            g.wait_ready()
        wait_until(lambda: setup.cursor() is not None, 10, "the gateways' first contact")
        first = int(c.request("events", after=0, limit=0)["last_seq"]) + 1
        # The token, made once in the shared state, works at both gateways (the broker refuses: no clerk).
        for g in gateways:
            r = httpx.post(f"{g.url}/api/v1/counters/1/call-next", headers={"Authorization": f"Bearer {token}"},
                           timeout=10)
            assert r.status_code == 409 and r.json()["error"]["code"] == "COUNTER_CLOSED", r.text
        # Signed in at gateway a, the manager is signed in at gateway b (a load balancer may send him to either).
        login = httpx.post(f"{gateways[0].url}/supervision/login",
                           data={"name": "zhang", "password": "correct horse battery"}, timeout=10)
        assert login.status_code == 303
        jar = {"qh_manager": login.cookies["qh_manager"]}
        assert httpx.get(f"{gateways[1].url}/supervision/api/state", cookies=jar, timeout=10).status_code == 200
        httpx.post(f"{gateways[1].url}/supervision/logout", cookies=jar, timeout=10)
        assert httpx.get(f"{gateways[0].url}/supervision/api/state", cookies=jar, timeout=10).status_code == 401
        # Both gateways deliver webhooks from the one outbox: 60 events, each delivered once.
        for _ in range(60):
            c.request("take_ticket", service="P")
        wait_until(lambda: len(rx.journal_seqs()) >= 60, 60, "every event delivered")
        ids = [call["headers"]["X-Queuehall-Delivery"] for call in rx.calls]
    finally:
        c.close()
        for g in gateways:
            g.stop()
    assert rx.journal_seqs() == list(range(first, first + 60))
    assert len(ids) == len(set(ids)) == 60, "each delivery sent once, by one of the two gateways"
    assert all(call["signed"] for call in rx.calls)
    with setup.db.read() as conn:
        from queuehall.web.state import webhook_deliveries as d
        from sqlalchemy import func, select

        owners = dict(conn.execute(select(d.c.claimed_by, func.count()).where(d.c.delivered_at.isnot(None))
                                   .group_by(d.c.claimed_by)).all())
    host = socket.gethostname()
    assert set(owners) <= {f"{host}:web-a", f"{host}:web-b"} and sum(owners.values()) == 60, owners
