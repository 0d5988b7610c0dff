"""Durability of the hall on a real database (SQLite file and PostgreSQL, via ``db_url``).

What is stored must be enough to rebuild exactly the same hall after a restart; a
command the database refuses must leave the hall as it was; the visits table must
answer wait and service time questions; purging must respect the retention period.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from queuehall.broker import engine as engine_module
from queuehall.broker import storage
from queuehall.broker.engine import Hall
from queuehall.broker.hours import OpeningHours
from queuehall.broker.storage import Store, load_hall, open_store
from sqlalchemy import MetaData, Table, func, insert, select, text

from queuehall.clock import ManualClock
from queuehall.errors import HallError
from tests.broker_fixtures import wait_until
from tests.hall_factory import TUESDAY, install_pins, local, small_config

CFG = small_config()
HOURS = OpeningHours(CFG.hours, CFG.timezone)
PIN = "1234"
# WAL with synchronous=NORMAL survives a crash of the process (what a restart test models) without an
# fsync per commit, which costs milliseconds on a busy CI disk. The benchmark measures FULL too.
SYNC = "NORMAL"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url, sqlite_synchronous=SYNC)
    install_pins(s, CFG)
    yield s
    s.close()


def restart(hall: Hall, db_url: str, stores: list[Store]) -> Hall:
    """A new hall rebuilt from the database by a new store, as after a broker restart."""
    s = open_store(db_url, sqlite_synchronous=SYNC)
    stores.append(s)
    return load_hall(hall.config, hall.clock, s)


@pytest.fixture
def reopen(db_url: str) -> Iterator[Any]:
    """``reopen(hall)`` → the hall rebuilt from ``db_url``; the stores are closed afterwards."""
    stores: list[Store] = []
    yield lambda hall: restart(hall, db_url, stores)
    for s in stores:
        s.close()


def make_hall(store: Store, at: datetime, cfg: Any = CFG, token_source: Any = None) -> tuple[Hall, ManualClock]:
    clock = ManualClock(at)
    return load_hall(cfg, clock, store, token_source=token_source), clock


def sign_in(hall: Hall, counter: int, clerk: str) -> str:
    return hall.execute("sign_in", {"counter": counter, "clerk": clerk, "pin": PIN})["session"]


def memory(hall: Hall) -> dict[str, Any]:
    """Everything the engine holds, deep-copied, for before/after comparisons.

    Request replies are left out: memory keeps them by count, a restart reloads two
    days' worth; the tests check retries explicitly.
    """
    return copy.deepcopy({
        "snapshot": hall.snapshot(), "tickets": hall.tickets, "visits": hall.visits, "counters": hall.counters,
        "state": hall.state, "recent_calls": list(hall.recent_calls),
        "last": (hall.last_ticket_id, hall.last_visit_id, hall.last_event_seq),
        "numbers": {k: v for k, v in hall.numbers.items() if k[0] == hall.hours.business_day(hall.clock.now())},
    })


def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every hall table, sorted, to prove a failed command wrote nothing."""
    with store.engine.connect() as conn:  # (not the PINs: set by the tests themselves, with the time)
        return {t.name: sorted(tuple(r) for r in conn.execute(select(t)))
                for t in storage.metadata.sorted_tables if t is not storage.clerk_pins}


def refused(hall: Hall, code: str, command: str, args: dict[str, Any], **kw: Any) -> HallError:
    with pytest.raises(HallError) as info:
        hall.execute(command, args, **kw)
    assert info.value.code == code, info.value
    assert info.value.message_zh and info.value.message_en
    return info.value


# ---------------------------------------------------------------------------- schema


def alembic(engine: Any, *steps: tuple[str, str]) -> None:
    """Run Alembic commands, e.g. ``("upgrade", "0001")``, on ``engine`` the way migrate() does."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(storage.__file__).parent / "migrations"))
    for action, revision in steps:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(alembic_command, action)(cfg, revision)


def head() -> str | None:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(storage.__file__).parent / "migrations"))
    return ScriptDirectory.from_config(cfg).get_current_head()


def schema_diff(store: Store) -> list[Any]:
    with store.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), storage.metadata)


def test_alembic_schema_equals_the_metadata(store: Store) -> None:
    with store.engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert schema_diff(store) == []
    assert version == head()


def test_the_head_revision_is_read_from_the_migration_files_as_alembic_reads_it() -> None:
    # migrate() skips Alembic when the database is at this revision: it must be Alembic's head.
    assert storage.head_revision() == head()


def test_an_up_to_date_database_is_opened_without_loading_alembic(db_url: str) -> None:
    open_store(db_url, sqlite_synchronous=SYNC).close()
    code = ("import sys; from broker.storage import open_store; "
            f"open_store({db_url!r}).close(); print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_older_database_is_upgraded_with_its_data(db_url: str) -> None:
    engine = storage.make_engine(db_url)
    alembic(engine, ("upgrade", "0001"))
    at = local(TUESDAY, 9).astimezone(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        # Rows as a broker of revision 0001 wrote them, into its tables as they are in the database (today's
        # table definitions have columns 0001 lacks, hall_id in the primary key among them: SQLAlchemy warned).
        old = MetaData()
        tickets, visits = (Table(name, old, autoload_with=conn) for name in ("tickets", "visits"))
        conn.execute(insert(tickets).values(
            id=1, business_day=TUESDAY, service="P", number=1, label="A001", issued_at=at, status="waiting",
            queue_service="P", queue_key=at, visit_id=1, recalls=0))
        conn.execute(insert(visits).values(
            id=1, ticket_id=1, seq=1, business_day=TUESDAY, service="P", entered_at=at, note="", calls=0))
    engine.dispose()
    s = open_store(db_url, sqlite_synchronous=SYNC)  # upgrades to the head revision
    try:
        assert schema_diff(s) == []
        hall, _ = make_hall(s, local(TUESDAY, 9, 5))
        assert [t.label for t in hall.queue("P")] == ["A001"]
        assert hall.execute("take_ticket", {"service": "P"})["ticket"]["label"] == "A002"
        alembic(s.engine, ("downgrade", "0001"), ("upgrade", "head"))  # every step can be undone and redone
        assert schema_diff(s) == [] and len(dump(s)["tickets"]) == 2
    finally:
        s.close()


def test_opening_twice_is_a_no_op(db_url: str) -> None:
    first = open_store(db_url, sqlite_synchronous=SYNC)
    hall, _ = make_hall(first, local(TUESDAY, 9))
    hall.execute("take_ticket", {"service": "P"})
    first.close()
    second = open_store(db_url, sqlite_synchronous=SYNC)  # migrating an up-to-date database changes nothing
    try:
        assert dump(second)["tickets"][0][5] == "A001"
    finally:
        second.close()


# ---------------------------------------------------------------------------- group commit


def _busy_minute(hall: Hall, clock: ManualClock) -> None:
    """Commands that write the same tickets, visits, counters and rule state several times over."""
    for n, clerk in ((1, "c1a"), (2, "c2a"), (9, "c9a")):
        sign_in(hall, n, clerk)
    for i in range(6):
        hall.execute("take_ticket", {"service": "PH"[i % 2]}, client="kiosk", request_id=f"k{i}")
    for _ in range(2):
        hall.execute("call_next", {"counter": 1})
        hall.execute("recall", {"counter": 1})
        hall.execute("start", {"counter": 1})
        clock.advance(minutes=3)
        hall.execute("transfer", {"counter": 1, "service": "FEE"})
        hall.execute("call_next", {"counter": 9})
        hall.execute("start", {"counter": 9})
        hall.execute("finish", {"counter": 9})
        hall.execute("call_next", {"counter": 2})
        hall.execute("no_show", {"counter": 2})
    hall.execute("pause", {"counter": 2, "reason": "break"})


def test_a_group_leaves_the_database_exactly_as_committing_each_command(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module.secrets, "token_hex", lambda n: f"{next(tokens):0{2 * n}d}")
    dumps = []
    for grouped in (False, True):
        tokens = iter(range(10_000))  # the same session tokens in both runs
        store = open_store(db_url, sqlite_synchronous=SYNC)
        try:
            with store.engine.begin() as conn:  # the same empty database for both runs
                for table in reversed(storage.metadata.sorted_tables):
                    conn.execute(table.delete())
            # The same ticket page tokens in both runs, too (injected: the engine never asks the CSPRNG here).
            page_tokens = iter([f"token-{i:016d}" for i in range(100)])
            install_pins(store, CFG)
            hall, clock = make_hall(store, local(TUESDAY, 9), token_source=page_tokens.__next__)
            if grouped:
                store.begin_group()
            _busy_minute(hall, clock)
            if grouped:
                assert dump(store)["tickets"] == []  # nothing is written before the flush...
                assert store.flush_group() > 20  # ...then all of it in one transaction
            dumps.append(dump(store))
            assert memory(load_hall(hall.config, hall.clock, store)) == memory(hall)
        finally:
            store.close()
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["tickets"]) == 6 and len(dumps[0]["events"]) > 20


def test_the_sqlite_wal_is_checkpointed_by_its_own_thread_and_stays_small(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The journal's connection never checkpoints (that stalled whichever commit filled the WAL):
    # without the checkpoint thread the WAL would grow with every round below.
    monkeypatch.setattr(storage._Checkpointer, "INTERVAL", 0.01)
    s = open_store(f"sqlite:///{tmp_path}/hall.db", sqlite_synchronous=SYNC)
    wal = tmp_path / "hall.db-wal"
    try:
        hall, _ = make_hall(s, local(TUESDAY, 9))
        sizes = []
        for round_ in range(6):
            for i in range(40):
                hall.execute("take_ticket", {"service": "PH"[i % 2]}, client="kiosk", request_id=f"{round_}-{i}")
            checkpointer = s._checkpointer
            assert checkpointer is not None
            seen = checkpointer.checkpoints
            wait_until(lambda c=checkpointer, n=seen: c.checkpoints >= n + 2, 10, "two more checkpoints")
            sizes.append(wal.stat().st_size)
        assert max(sizes) <= sizes[0] * 1.5, sizes
    finally:
        s.close()
    assert s._checkpointer is None


# ---------------------------------------------------------------------------- restart


def busy_morning(hall: Hall, clock: ManualClock) -> dict[str, Any]:
    """Kiosks, three counters, recalls, a no-show, a transfer, a pause: returns what the test needs."""
    s1, s2, s9 = sign_in(hall, 1, "c1a"), sign_in(hall, 2, "c2a"), sign_in(hall, 9, "c9a")
    first = hall.execute("take_ticket", {"service": "P"}, client="kiosk-1", request_id="k1-0001")
    for i, (service, prio) in enumerate([("P", None), ("H", None), ("P", "elderly"), ("H", "elderly"),
                                         ("P", None), ("H", None), ("P", None)]):
        clock.advance(minutes=2)
        hall.execute("take_ticket", {"service": service, "priority": prio}, client="kiosk-2",
                     request_id=f"k2-{i:04d}")
    c1 = {"counter": 1, "session": s1}
    c2 = {"counter": 2, "session": s2}
    c9 = {"counter": 9, "session": s9}
    clock.advance(minutes=3)
    hall.execute("call_next", c1)  # A003 (elderly) first
    hall.execute("start", c1)
    clock.advance(minutes=4)
    hall.execute("transfer", {**c1, "service": "FEE", "note": "缴费"})
    hall.execute("call_next", c9)
    hall.execute("call_next", c1)  # A001
    hall.execute("recall", c1)
    clock.advance(minutes=1)
    hall.execute("no_show", c1)  # A001 misses its call
    hall.execute("call_next", c2)  # B002 (elderly)
    hall.execute("start", c2)
    clock.advance(minutes=5)
    hall.execute("finish", c2)
    hall.execute("call_next", c2)
    hall.execute("call_next", c1)
    hall.execute("start", c1)
    clock.advance(minutes=2)
    return {"first": first, "sessions": (s1, s2, s9)}


def test_a_day_survives_a_restart(store: Store, reopen: Any) -> None:
    hall, clock = make_hall(store, local(TUESDAY, 8, 40))
    day = busy_morning(hall, clock)
    s1, s2, s9 = day["sessions"]
    # Counter 9 finishes the fee and sends the ticket back; counter 2 goes for a break.
    hall.execute("start", {"counter": 9})
    hall.execute("transfer", {"counter": 9, "service": "P", "to_counter": 1})
    before = memory(hall)
    assert before["snapshot"]["no_shows"][0]["label"] == "A001"

    again = reopen(hall)
    after = memory(again)
    assert after == before
    assert again.numbers[(TUESDAY, "P")] == 5 and again.numbers[(TUESDAY, "H")] == 3
    assert {n: c.session for n, c in again.counters.items()} == {1: s1, 2: s2, 9: s9}

    # A kiosk retrying its first request gets the original reply and no new ticket.
    issued = len(dump(store)["tickets"])
    assert isinstance(again.requests[("kiosk-1", "k1-0001")], str)  # loaded as stored, decoded when retried
    retry = again.execute("take_ticket", {"service": "P"}, client="kiosk-1", request_id="k1-0001")
    assert retry == day["first"] and retry["ticket"]["label"] == "A001"
    assert len(dump(store)["tickets"]) == issued and again.numbers[(TUESDAY, "P")] == 5

    # The clerks' sessions carry on; numbering continues without a gap.
    assert again.execute("take_ticket", {"service": "P"})["ticket"]["label"] == "A006"
    refused(again, "SESSION_ENDED", "call_next", {"counter": 2, "session": "stale"})
    assert again.execute("finish", {"counter": 1, "session": s1})["ticket"]["status"] == "finished"
    # The no-show is still within its grace period and can come back.
    assert again.execute("reinstate", {"ticket": "A001"})["ticket"]["status"] == "waiting"
    # The returned fee ticket is addressed to counter 1 and keeps its place (and its priority).
    assert again.execute("call_next", {"counter": 1, "session": s1})["ticket"]["label"] == "A003"


def test_a_request_id_older_than_the_reload_horizon_runs_again(store: Store, reopen: Any) -> None:
    hall, clock = make_hall(store, local(TUESDAY, 9))
    first = hall.execute("take_ticket", {"service": "P"}, client="kiosk-1", request_id="boot-1")
    friday = TUESDAY + timedelta(days=3)
    clock.set(local(friday, 9))
    hall = reopen(hall)  # replies are reloaded for two days; this one is older
    again = hall.execute("take_ticket", {"service": "P"}, client="kiosk-1", request_id="boot-1")
    assert (again["ticket"]["label"], again["ticket"]["business_day"]) == ("A001", friday.isoformat())
    assert again != first
    assert reopen(hall).execute("take_ticket", {"service": "P"}, client="kiosk-1", request_id="boot-1") == again
    assert [r[2] for r in dump(store)["requests"]] == ["boot-1"]  # the stored reply was replaced


def test_no_shows_are_kept_for_the_day_and_reloaded_the_same(store: Store, reopen: Any) -> None:
    hall, clock = make_hall(store, local(TUESDAY, 9))
    sign_in(hall, 1, "c1a")
    for _ in range(2):
        hall.execute("take_ticket", {"service": "P"})
    hall.execute("call_next", {"counter": 1})
    hall.execute("no_show", {"counter": 1})
    clock.advance(minutes=45)  # past the 30 minutes grace, same day
    hall.execute("call_next", {"counter": 1})
    hall.execute("no_show", {"counter": 1})
    clock.advance(minutes=5)
    again = reopen(hall)
    assert memory(again) == memory(hall)
    assert [t["label"] for t in again.snapshot()["no_shows"]] == ["A001", "A002"]
    refused(again, "GRACE_EXPIRED", "reinstate", {"ticket": "A001"})
    again.execute("reinstate", {"ticket": "A002"})
    # The next day yesterday's no-shows are gone from memory (the day closed), before and after a restart alike.
    clock.set(local(TUESDAY + timedelta(days=1), 9))
    again.close_day_if_due()  # the broker's heartbeat
    assert again.snapshot()["no_shows"] == [] and reopen(again).snapshot()["no_shows"] == []
    assert memory(reopen(again)) == memory(again)


def test_numbering_restarts_the_next_business_day_and_history_stays(store: Store, reopen: Any) -> None:
    hall, clock = make_hall(store, local(TUESDAY, 16))
    sign_in(hall, 1, "c1a")
    for _ in range(3):
        hall.execute("take_ticket", {"service": "P"})
    hall.execute("call_next", {"counter": 1})
    hall.execute("start", {"counter": 1})
    hall.execute("finish", {"counter": 1})
    wednesday = TUESDAY + timedelta(days=1)
    assert HOURS.periods_on(wednesday)
    clock.set(local(wednesday, 9))
    hall = reopen(hall)
    new = hall.execute("take_ticket", {"service": "P"})["ticket"]
    assert (new["label"], new["business_day"]) == ("A001", "2026-11-25")
    assert hall.snapshot()["services"][0]["issued_today"] == 1
    # Yesterday's waiting tickets ended unserved when Tuesday closed: they do not wait beside today's.
    assert [t.label for t in hall.queue("P")] == ["A001"]
    with store.engine.connect() as conn:
        rows = conn.execute(select(storage.tickets.c.business_day, storage.tickets.c.label, storage.tickets.c.status)
                            .order_by(storage.tickets.c.id)).all()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (TUESDAY, "A001", "finished"), (TUESDAY, "A002", "closed_unserved"),
        (TUESDAY, "A003", "closed_unserved"), (wednesday, "A001", "waiting")]


# ---------------------------------------------------------------------------- failures


def test_the_unique_constraint_rejects_a_duplicate_number(store: Store) -> None:
    hall, clock = make_hall(store, local(TUESDAY, 9))
    hall.execute("take_ticket", {"service": "P"})
    # Another writer (a second broker by mistake) issued A002 behind the engine's back.
    at = clock.now().replace(tzinfo=None)  # naive UTC, as stored
    with store.engine.begin() as conn:
        conn.execute(insert(storage.tickets).values(
            hall_id="main", id=1000, business_day=TUESDAY, service="P", number=2, label="A002", issued_at=at,
            status="waiting",
            queue_service="P", queue_key=at, visit_id=1000, recalls=0))
    before, rows, replies = memory(hall), dump(store), dict(hall.requests)
    err = refused(hall, "STORAGE", "take_ticket", {"service": "P"}, client="kiosk-1", request_id="r-dup")
    assert "数据保存失败" in err.message_zh and "Could not save" in err.message_en
    assert memory(hall) == before and dump(store) == rows
    # The same number again: still refused, still nothing written, the retry is not remembered.
    refused(hall, "STORAGE", "take_ticket", {"service": "P"}, client="kiosk-1", request_id="r-dup")
    assert memory(hall) == before and dump(store) == rows and hall.requests == replies
    # Other services are unaffected.
    assert hall.execute("take_ticket", {"service": "H"})["ticket"]["label"] == "B001"


FAIL_SQL = {
    "sqlite": (["CREATE TRIGGER qh_fail BEFORE INSERT ON events "
                "BEGIN SELECT RAISE(ABORT, 'simulated disk failure'); END"],
               ["DROP TRIGGER qh_fail"]),
    "postgresql": (["CREATE FUNCTION qh_fail() RETURNS trigger AS $$ "
                    "BEGIN RAISE EXCEPTION 'simulated disk failure'; END $$ LANGUAGE plpgsql",
                    "CREATE TRIGGER qh_fail BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION qh_fail()"],
                   ["DROP TRIGGER qh_fail ON events", "DROP FUNCTION qh_fail()"]),
}


def set_failing(store: Store, failing: bool) -> None:
    """Make the database refuse every event insert (the last write of most commands), or stop."""
    create, drop = FAIL_SQL[store.engine.dialect.name]
    with store.engine.begin() as conn:
        for sql in create if failing else drop:
            conn.execute(text(sql))


def test_a_failing_journal_leaves_the_state_unchanged(store: Store, reopen: Any) -> None:
    hall, clock = make_hall(store, local(TUESDAY, 9))
    s1 = sign_in(hall, 1, "c1a")
    sign_in(hall, 9, "c9a")
    hall.execute("take_ticket", {"service": "P"})
    hall.execute("take_ticket", {"service": "P", "priority": "elderly"})
    steps: list[tuple[str, dict[str, Any]]] = [
        ("take_ticket", {"service": "P"}),
        ("call_next", {"counter": 1, "session": s1}),
        ("recall", {"counter": 1}),
        ("start", {"counter": 1}),
        ("transfer", {"counter": 1, "service": "FEE", "note": "缴费"}),
        ("call_next", {"counter": 9}),
        ("no_show", {"counter": 9}),
        ("reinstate", {"ticket": "A002"}),
        ("cancel_ticket", {"ticket": "A003", "reason": "left"}),
        ("call_next", {"counter": 1}),
        ("start", {"counter": 1}),
        ("finish", {"counter": 1}),
        ("pause", {"counter": 1, "reason": "break"}),
        ("resume", {"counter": 1}),
        ("sign_out", {"counter": 1}),
        ("sign_in", {"counter": 1, "clerk": "c1b", "pin": PIN}),
    ]
    for n, (command, args) in enumerate(steps):
        clock.advance(minutes=1)
        before, rows, replies = memory(hall), dump(store), dict(hall.requests)
        set_failing(store, True)
        try:
            err = refused(hall, "STORAGE", command, args, client="desk", request_id=f"req-{n}")
        finally:
            set_failing(store, False)
        assert "simulated disk failure" in err.message_en, command
        assert memory(hall) == before and hall.requests == replies, command
        assert dump(store) == rows, command  # all or nothing: the ticket/visit rows were rolled back too
        # The retry (same request id) now runs for real.
        reply = hall.execute(command, args, client="desk", request_id=f"req-{n}")
        assert hall.execute(command, args, client="desk", request_id=f"req-{n}") == reply
    assert memory(reopen(hall)) == memory(hall)
    with store.engine.connect() as conn:
        numbers = conn.execute(select(storage.tickets.c.number).order_by(storage.tickets.c.number)).scalars().all()
    assert numbers == [1, 2, 3]


def test_a_failing_database_connection_is_reported_and_replaced(db_url: str, reopen: Any) -> None:
    s = open_store(db_url, sqlite_synchronous=SYNC)
    try:
        hall, _ = make_hall(s, local(TUESDAY, 9))
        hall.execute("take_ticket", {"service": "P"})
        before = memory(hall)
        kill_connections(s)  # the connection dies under the journal (server restart, network)
        refused(hall, "STORAGE", "take_ticket", {"service": "P"})
        assert memory(hall) == before
        assert hall.execute("take_ticket", {"service": "P"})["ticket"]["label"] == "A002"
        assert memory(reopen(hall)) == memory(hall)
    finally:
        s.close()


def kill_connections(store: Store) -> None:
    """Break the journal's open connection for real: terminate its backend, or close the file handle."""
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as conn:
            killed = conn.execute(text(
                "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
        assert killed >= 1
    else:
        store._writer.dbapi_connection.close()


# ---------------------------------------------------------------------------- reports from visits


def test_wait_and_service_times_come_from_the_visits_table(store: Store) -> None:
    hall, clock = make_hall(store, local(TUESDAY, 9))
    sign_in(hall, 1, "c1a")
    sign_in(hall, 9, "c9a")

    def at(hh: int, mm: int) -> None:
        clock.set(local(TUESDAY, hh, mm))

    ticket = hall.execute("take_ticket", {"service": "P"})["ticket"]
    at(9, 10)
    hall.execute("call_next", {"counter": 1})
    at(9, 11)
    hall.execute("recall", {"counter": 1})
    at(9, 12)
    hall.execute("recall", {"counter": 1})
    at(9, 13)
    hall.execute("start", {"counter": 1})
    at(9, 15)
    hall.execute("take_ticket", {"service": "P"})  # A002 waits while A001 is at the fee window
    at(9, 20)
    hall.execute("transfer", {"counter": 1, "service": "FEE", "note": "缴费"})
    at(9, 25)
    hall.execute("call_next", {"counter": 9})
    at(9, 26)
    hall.execute("start", {"counter": 9})
    at(9, 29)
    hall.execute("transfer", {"counter": 9, "service": "P", "to_counter": 1, "note": "已缴费"})
    at(9, 31)
    assert hall.execute("call_next", {"counter": 1})["ticket"]["label"] == "A001"  # keeps its place
    at(9, 33)
    hall.execute("start", {"counter": 1})
    at(9, 45)
    hall.execute("finish", {"counter": 1})

    v = storage.visits
    with store.engine.connect() as conn:
        rows = conn.execute(select(v).where(v.c.ticket_id == ticket["id"]).order_by(v.c.seq)).all()
        status = conn.execute(select(storage.tickets.c.status, storage.tickets.c.visit_id)
                              .where(storage.tickets.c.id == ticket["id"])).one()

    def minutes(a: datetime, b: datetime) -> float:
        return (b - a).total_seconds() / 60

    assert [(r.seq, r.service, r.outcome, r.counter, r.clerk, r.calls, r.target_counter, r.note) for r in rows] == [
        (1, "P", "transferred", 1, "c1a", 3, None, ""),
        (2, "FEE", "transferred", 9, "c9a", 1, None, "缴费"),
        (3, "P", "finished", 1, "c1a", 1, 1, "已缴费"),
    ]
    assert [minutes(r.entered_at, r.first_called_at) for r in rows] == [10, 5, 2]  # wait per visit
    assert [minutes(r.serving_at, r.ended_at) for r in rows] == [7, 3, 12]  # service per visit
    assert minutes(rows[0].first_called_at, rows[0].last_called_at) == 2  # recalled twice over 2 minutes
    assert sum(minutes(r.entered_at, r.first_called_at) for r in rows) == 17
    assert minutes(rows[0].entered_at, rows[-1].ended_at) == 45  # issue to done
    # Consecutive visits join up: each transfer starts the next visit when the previous ends.
    assert [r.entered_at for r in rows[1:]] == [r.ended_at for r in rows[:-1]]
    assert tuple(status) == ("finished", rows[-1].id)


# ---------------------------------------------------------------------------- purge


def working_day_before(day: date, days: int) -> date:
    d = day - timedelta(days=days)
    while not HOURS.periods_on(d):
        d -= timedelta(days=1)
    return d


def test_purge_respects_retention_and_deletes_only_old_closed_records(store: Store, reopen: Any) -> None:
    cfg = replace(CFG, retention_days=190)
    old = working_day_before(TUESDAY, 200)
    hall, clock = make_hall(store, local(old, 9), cfg)
    sign_in(hall, 1, "c1a")
    sign_in(hall, 9, "c9a")
    for i in range(4):
        hall.execute("take_ticket", {"service": "P"}, client="kiosk-1", request_id=f"old-{i}")
    hall.execute("call_next", {"counter": 1})
    hall.execute("start", {"counter": 1})
    hall.execute("transfer", {"counter": 1, "service": "FEE"})  # A001: two visits, then finished
    hall.execute("call_next", {"counter": 9})
    hall.execute("start", {"counter": 9})
    hall.execute("finish", {"counter": 9})
    hall.execute("call_next", {"counter": 1})
    hall.execute("no_show", {"counter": 1})  # A002
    hall.execute("cancel_ticket", {"ticket": "A003", "reason": "left"})
    hall.execute("sign_out", {"counter": 1})
    hall.execute("sign_out", {"counter": 9})
    # A004 is never served: it ends unserved when its day closes, and is purged with the others.
    clock.set(local(TUESDAY, 9))
    sign_in(hall, 1, "c1a")
    hall.execute("take_ticket", {"service": "P"}, client="kiosk-1", request_id="new-0")
    hall.execute("call_ticket", {"counter": 1, "ticket": "A001", "reason": "预约"})
    hall.execute("start", {"counter": 1})
    hall.execute("finish", {"counter": 1})

    limit = TUESDAY - timedelta(days=190)
    rows = dump(store)
    for too_young in (limit + timedelta(days=1), TUESDAY):
        err = refused_purge(store, too_young, cfg.retention_days)
        assert err.details == {"days": 190, "before": limit.isoformat()}
        assert "190" in err.message_zh and limit.isoformat() in err.message_en
    assert dump(store) == rows

    counts = store.purge(limit, retention_days=cfg.retention_days, today=TUESDAY)
    # A001 (2 visits), A002, A003, A004 (unserved at close) and their events; today's ticket stays.
    assert counts == {"tickets": 4, "visits": 5, "events": old_events(rows, old), "requests": 4, "bookings": 0}
    after = dump(store)
    assert [r[5] for r in after["tickets"]] == ["A001"]
    assert {r[2] for r in after["visits"]} == {5}
    assert all(r[3] >= limit for r in after["events"])
    assert [r[2] for r in after["requests"]] == ["new-0"]
    assert store.purge(limit, retention_days=190, today=TUESDAY) == dict.fromkeys(counts, 0)
    # A restart sees the same hall, except for the purged calls in the displays' history.
    again, kept = memory(reopen(hall)), memory(hall)
    remaining = {r[1] for r in after["events"]}
    kept["recent_calls"] = [e for e in kept["recent_calls"] if e.seq in remaining]
    kept["snapshot"]["recent_calls"] = [c for c in kept["snapshot"]["recent_calls"] if c["seq"] in remaining]
    assert len(kept["recent_calls"]) == 1 and again == kept


def refused_purge(store: Store, before: date, days: int) -> HallError:
    with pytest.raises(HallError) as info:
        store.purge(before, retention_days=days, today=TUESDAY)
    assert info.value.code == "RETENTION"
    return info.value


def old_events(rows: dict[str, list[tuple[Any, ...]]], day: date) -> int:
    return sum(1 for r in rows["events"] if r[3] == day)


def test_the_journal_counts_match_the_engine(store: Store) -> None:
    hall, clock = make_hall(store, local(TUESDAY, 9))
    busy_morning(hall, clock)
    with store.engine.connect() as conn:
        n_events = conn.execute(select(func.count()).select_from(storage.events)).scalar()
        n_tickets = conn.execute(select(func.count()).select_from(storage.tickets)).scalar()
        max_seq = conn.execute(select(func.max(storage.events.c.seq))).scalar()
    assert n_events == max_seq == hall.last_event_seq
    assert n_tickets == hall.last_ticket_id == 8
