"""An SQLite database that can no longer be written: the broker says so, refuses with STORAGE, recovers.

Issue 14, item 9. SQLite maps its WAL index (``hall.db-shm``) into memory and writes it in place,
even to read. When that file can no longer be written (the file system turned read-only after a
disk error, or the file was made immutable), the kernel answers the write with SIGBUS and the
broker died on the spot with no log line. Here the files are made immutable with ``chattr +i``,
which binds root too (root ignores permission bits, so ``chmod`` would prove nothing), on a real
broker process: it must stay up, log why, answer STORAGE in both languages, and accept commands
again once the files are writable.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from queuehall.broker.storage import open_store, unwritable

from queuehall.client import BrokerClient, CommandRefused
from tests import broker_fixtures
from tests.broker_fixtures import BrokerProcess, wait_until

broker_process_fixture = broker_fixtures.broker_process_fixture


def _chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@pytest.fixture(name="immutable")
def immutable_fixture(tmp_path: Path) -> Iterator[Callable[[bool, Path], None]]:
    """``immutable(True, db)`` makes the database's files immutable, ``immutable(False, db)`` undoes it;
    undone at the end whatever happens. Skips where chattr is missing or not allowed."""
    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    try:
        if shutil.which("chattr") is None:
            pytest.skip("chattr is not installed (e2fsprogs)")
        _chattr("+i", probe)
        _chattr("-i", probe)
    except subprocess.CalledProcessError as err:
        pytest.skip(f"chattr +i is not possible here (needs root and ext4/xfs/btrfs): {err.stderr!r}")
    touched: list[Path] = []

    def set_(on: bool, db: Path) -> None:
        files = [f for f in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if f.exists()]
        _chattr("+i" if on else "-i", *files)
        touched.extend(files)

    yield set_
    for f in touched:
        subprocess.run(["chattr", "-i", str(f)], check=False, capture_output=True)


def test_the_store_says_why_it_cannot_write(tmp_path: Path, immutable: Callable[[bool, Path], None]) -> None:
    db = tmp_path / "hall.db"
    store = open_store(f"sqlite:///{db}")
    try:
        with store.engine.begin() as conn:  # the WAL and its index exist once something was written
            conn.exec_driver_sql("CREATE TABLE probe (x)")
        assert store.unwritable() is None
        immutable(True, db)
        failure = store.unwritable()
        assert failure is not None and "hall.db" in failure.en and "不可写" in failure.zh
        immutable(False, db)
        assert store.unwritable() is None
    finally:
        store.close()
    assert unwritable([str(tmp_path / "not-there.db")]) is None  # a file not made yet is no reason


def test_an_unwritable_database_is_refused_with_storage_and_the_broker_recovers(
        broker_process: Callable[..., BrokerProcess], tmp_path: Path,
        immutable: Callable[[bool, Path], None]) -> None:
    db = tmp_path / "hall.db"
    bp = broker_process(db).start()
    c = BrokerClient(bp.endpoint, timeout=3.0, retries=1)
    try:
        assert c.request("take_ticket", service="passport")["ticket"]["label"] == "A001"
        # The take's reply goes out before the broker records the alerts it raised (a queue with no
        # open counter), in its own transaction: a ping answered means that write is over. Without
        # it the files could turn immutable between that write's check and the write itself, which
        # no check can close (a disk failing in that microsecond still costs a SIGBUS).
        c.request("ping")
        immutable(True, db)
        os.sync()  # the WAL index's pages are clean now: SQLite's next write to them faults
        # Refused, not killed; said in both languages.
        with pytest.raises(CommandRefused) as refused:
            c.request("take_ticket", service="passport")
        err = refused.value
        assert err.code == "STORAGE" and "hall.db" in err.message_en and "数据库无法写入" in err.message_zh
        # The WAL checkpointer (once a second) leaves it alone too: the broker lives through two rounds.
        t0 = time.monotonic()
        wait_until(lambda: time.monotonic() - t0 > 2.5 and c.request("ping")["epoch"], 10, "two checkpoint rounds")
        assert bp.proc is not None and bp.proc.poll() is None, "".join(bp.output)
        # Screens are still served from memory.
        snap = c.request("snapshot")
        assert [t["label"] for t in snap["state"]["tickets"].values()] == ["A001"]
        with pytest.raises(CommandRefused) as refused:
            c.request("call_next", counter=1)
        assert refused.value.code == "STORAGE"
        log = "".join(bp.output)
        assert "cannot be written" in log and log.count("refusing commands with STORAGE") == 1, log

        immutable(False, db)
        assert c.request("take_ticket", service="passport")["ticket"]["label"] == "A002"
        wait_until(lambda: "can be written again" in "".join(bp.output), 5, "the recovery in the log")
        assert bp.terminate() == 0
    finally:
        c.close()
    # What was acknowledged is there; what was refused is not.
    with sqlite3.connect(db) as conn:
        labels = [r[0] for r in conn.execute("SELECT label FROM tickets ORDER BY id")]
    assert labels == ["A001", "A002"]
