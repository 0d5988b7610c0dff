"""Clerks' PINs: salted scrypt hashes in the database, set with ``queuehall clerks``, and the
lock after wrong PINs (on the hall clock, audited, unlockable, kept across a restart).
The counter application runs without any hall file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from queuehall.broker import clerks as clerks_cli
from queuehall.broker.config import DEFAULT_CONFIG, load_config
from queuehall.broker.engine import Hall
from queuehall.broker.model import Event
from queuehall.broker.server import ROLE_COMMANDS
from queuehall.broker.storage import clerk_pins, load_hall, open_store
from sqlalchemy import select

from queuehall.cli import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, main
from queuehall.client import BrokerClient, CommandRefused
from queuehall.clock import ManualClock
from queuehall.errors import HallError
from queuehall.pins import DEFAULT_COST, Cost, hash_pin, needs_rehash, parse_hash, valid_pin, verify_pin
from queuehall.simulation import DEMO_PINS
from tests import broker_fixtures
from tests.broker_fixtures import ROOT, BrokerThread
from tests.hall_factory import PIN, TEST_COST, TUESDAY, local, memory_pins, small_config

hall_config_fixture = broker_fixtures.hall_config_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture


# ---------------------------------------------------------------------------------------------- the hash


def test_hash_format_and_verification() -> None:
    h = hash_pin("0618")
    algo, n, r, p, _salt, _digest = h.split("$")
    assert (algo, n, r, p) == ("scrypt", "16384", "8", "1")  # DEFAULT_COST, stated in the hash
    assert parse_hash(h)[0] == DEFAULT_COST and len(parse_hash(h)[1]) == 16 and len(parse_hash(h)[2]) == 32
    assert "0618" not in h
    assert verify_pin("0618", h)
    assert not verify_pin("618", h) and not verify_pin("06180", h) and not verify_pin("", h)
    assert hash_pin("0618") != h  # a fresh salt each time
    cheap = hash_pin("0618", TEST_COST)
    assert cheap.startswith("scrypt$16$1$1$") and verify_pin("0618", cheap)  # the parameters travel with it
    assert needs_rehash(cheap) and not needs_rehash(h)
    for bad in ("", "0618", "bcrypt$1$2$3$x$y", "scrypt$16$1$1$!!$??", "scrypt$3$1$1$c2FsdA$" + "A" * 43,
                "scrypt$2097152$8$1$c2FsdA$" + "A" * 43, h[:-20]):
        assert not verify_pin("0618", bad), bad
    with pytest.raises(ValueError):
        Cost(n=1000, r=8, p=1)  # not a power of two
    assert [valid_pin(p) for p in ("1234", "123456789012", "123", "1234567890123", "12a4", "１２３４", 1234)] == [
        True, True, False, False, False, False, False]


# ---------------------------------------------------------------------------------------------- the lock


class Desk:
    """The small test hall in memory on a manual clock, with every event it emits."""

    def __init__(self, **config: Any) -> None:
        self.clock = ManualClock(local(TUESDAY, 9))
        self.config = small_config(**config)
        self.pins = memory_pins(self.config)
        self.hall = Hall(self.config, self.clock, pins=self.pins)
        self.events: list[Event] = []
        self.hall.listeners.append(self.events.append)

    def sign_in(self, pin: str, clerk: str = "c1a", counter: int = 1) -> dict[str, Any]:
        return self.hall.execute("sign_in", {"counter": counter, "clerk": clerk, "pin": pin})

    def refused(self, pin: str, clerk: str = "c1a", counter: int = 1) -> HallError:
        with pytest.raises(HallError) as info:
            self.sign_in(pin, clerk, counter)
        assert info.value.message_zh and info.value.message_en and "?" not in str(info.value.to_dict())
        return info.value


def test_five_wrong_pins_lock_the_clerk_for_15_minutes_on_the_hall_clock() -> None:
    d = Desk()
    for i in range(1, 5):
        assert d.refused("9999").code == "BAD_PIN"
        assert (d.events[-1].type, d.events[-1].counter, d.events[-1].clerk, d.events[-1].data["failures"]) == (
            "sign_in_refused", 1, "c1a", i)
    err = d.refused("0000", counter=1)
    assert err.code == "CLERK_LOCKED" and err.details == {"clerk": "c1a", "minutes": 15}
    assert "15 分钟" in err.message_zh and "15 min" in err.message_en
    locked = d.events[-1]
    assert (locked.type, locked.counter, locked.clerk, locked.at) == ("clerk_locked", 1, "c1a", d.clock.now())
    assert locked.data["until"] == "2026-11-24T01:15:00Z" and locked.data["failures"] == 5
    # The right PIN is refused while locked, with the minutes left; nothing more is counted.
    d.clock.advance(minutes=10)
    n = len(d.events)
    err = d.refused(PIN)
    assert err.code == "CLERK_LOCKED" and err.details["minutes"] == 5 and len(d.events) == n
    d.clock.advance(minutes=4, seconds=50)
    assert d.refused(PIN).details["minutes"] == 1  # 10 s left still reads as a minute
    assert d.hall.counters[1].state == "closed"
    # Another clerk is not affected, at this counter or another.
    assert d.sign_in(PIN, clerk="c2a", counter=2)["counter"]["clerk"] == "c2a"
    d.clock.advance(seconds=10)  # 15 minutes after the fifth wrong PIN
    assert d.sign_in(PIN)["counter"]["clerk"] == "c1a"
    assert d.hall.clerk_locks() == {}


def test_the_right_pin_clears_the_count_and_a_lapsed_lock_counts_afresh() -> None:
    d = Desk()
    for _ in range(4):
        d.refused("9999")
    d.sign_in(PIN)
    d.hall.execute("sign_out", {"counter": 1})
    for _ in range(4):
        assert d.refused("9999").code == "BAD_PIN"  # four again, not eight
    assert d.refused("9999").code == "CLERK_LOCKED"
    d.clock.advance(minutes=16)
    assert d.refused("9999").code == "BAD_PIN"  # the lock is over: one of a new five
    assert d.hall.clerk_locks()["c1a"]["failures"] == 1


def test_a_wrong_pin_retried_with_the_same_request_id_counts_once() -> None:
    """A retry (same client and request id: a Link resends after a second without a reply) is answered with
    the stored refusal; it is not a second wrong PIN (issue 14's leftover)."""
    d = Desk()

    def attempt(request_id: str, pin: str = "9999") -> HallError:
        with pytest.raises(HallError) as info:
            d.hall.execute("sign_in", {"counter": 1, "clerk": "c1a", "pin": pin}, client="counter-1",
                           request_id=request_id)
        return info.value

    first = attempt("r1")
    n = len(d.events)
    for _ in range(5):  # the retries of one request
        again = attempt("r1")
        assert (again.code, again.details, again.message_zh) == (first.code, first.details, first.message_zh)
    assert len(d.events) == n and d.hall.clerk_locks()["c1a"]["failures"] == 1
    # Even with the right PIN: a request id names one request, answered once (docs/protocol.md).
    assert attempt("r1", PIN).code == "BAD_PIN"
    for i in range(2, 5):
        assert attempt(f"r{i}").code == "BAD_PIN"  # new requests do count
    assert d.hall.clerk_locks()["c1a"]["failures"] == 4
    locked = attempt("r5")
    assert locked.code == "CLERK_LOCKED" and locked.details == {"clerk": "c1a", "minutes": 15}
    d.clock.advance(minutes=3)
    assert attempt("r5").details == {"clerk": "c1a", "minutes": 15}  # the stored reply, as sent
    assert [e.type for e in d.events].count("sign_in_refused") == 5
    assert d.sign_in(PIN, clerk="c2a", counter=2)["counter"]["clerk"] == "c2a"


def test_a_retried_wrong_pin_is_answered_from_the_database_after_a_restart(db_url: str) -> None:
    cfg = small_config()
    clock = ManualClock(local(TUESDAY, 9))
    store = open_store(db_url)
    args = {"counter": 1, "clerk": "c1a", "pin": "9999"}
    try:
        store.set_pin_hash("c1a", hash_pin(PIN, TEST_COST), by="test")
        hall = load_hall(cfg, clock, store)
        with pytest.raises(HallError) as first:
            hall.execute("sign_in", args, client="counter-1", request_id="r1")
        hall = load_hall(cfg, clock, store)  # a restarted broker: the retry reaches it
        with pytest.raises(HallError) as again:
            hall.execute("sign_in", args, client="counter-1", request_id="r1")
        assert (again.value.code, again.value.details) == (first.value.code, first.value.details) == ("BAD_PIN", {})
        assert hall.clerk_locks()["c1a"]["failures"] == 1
        assert [e["type"] for e in store.events_since(0)] == ["sign_in_refused"]
    finally:
        store.close()


def test_wrong_pins_at_any_counter_count_for_the_clerk_and_the_limits_come_from_the_config() -> None:
    from queuehall.broker.config import SignIn

    d = Desk(sign_in=SignIn(lock_after=3, lock_minutes=2))
    d.refused("1111", counter=1)
    d.refused("1111", counter=2)  # c1a is not on counter 2, but the PIN is checked first
    err = d.refused("1111", counter=9)
    assert err.code == "CLERK_LOCKED" and err.details["minutes"] == 2 and d.events[-1].counter == 9
    d.clock.advance(minutes=2)
    d.sign_in(PIN)


def test_an_administrator_unlocks_or_sets_a_new_pin() -> None:
    d = Desk()
    for _ in range(5):
        d.refused("9999")
    out = d.hall.execute("unlock_clerk", {"clerk": "c1a"}, client="manager/1")
    assert out == {"clerk": "c1a", "was_locked": True}
    assert (d.events[-1].type, d.events[-1].clerk, d.events[-1].data["by"]) == ("clerk_unlocked", "c1a", "manager/1")
    d.sign_in(PIN)
    d.hall.execute("sign_out", {"counter": 1})
    assert d.hall.execute("unlock_clerk", {"clerk": "c1a"})["was_locked"] is False
    with pytest.raises(HallError) as info:
        d.hall.execute("unlock_clerk", {"clerk": "nobody"})
    assert info.value.code == "UNKNOWN_CLERK"
    # The other way: the record changes under the engine (``queuehall clerks unlock``/``set-pin``).
    for _ in range(5):
        d.refused("9999")
    d.pins.set_hash("c1a", hash_pin("2468", TEST_COST))
    assert d.refused(PIN).code == "BAD_PIN"  # the old PIN is gone, and the lock with it
    d.sign_in("2468")
    # Only an administrator may unlock: counters, kiosks and displays may not.
    assert "unlock_clerk" in ROLE_COMMANDS["admin"]
    assert all("unlock_clerk" not in ROLE_COMMANDS[r] for r in ("counter", "kiosk", "display"))


def test_a_clerk_without_a_pin_and_an_unknown_clerk() -> None:
    d = Desk()
    del d.pins.records["c1b"]
    err = d.refused(PIN, clerk="c1b")
    assert err.code == "PIN_NOT_SET" and "queuehall clerks set-pin c1b" in err.message_en
    assert "queuehall clerks set-pin c1b" in err.message_zh
    assert d.refused(PIN, clerk="nobody").code == "BAD_PIN"
    assert d.events == [] and d.hall.clerk_locks() == {}  # neither is counted


def test_the_lock_survives_a_restart_and_a_database_unlock_reaches_the_live_broker(db_url: str) -> None:
    cfg = small_config()
    clock = ManualClock(local(TUESDAY, 9))
    store = open_store(db_url)
    try:
        store.set_pin_hash("c1a", hash_pin(PIN, TEST_COST), by="test")
        hall = load_hall(cfg, clock, store)
        for _ in range(5):
            with pytest.raises(HallError):
                hall.execute("sign_in", {"counter": 1, "clerk": "c1a", "pin": "9999"})
        events = [e["type"] for e in store.events_since(0)]
        assert events == ["sign_in_refused"] * 5 + ["clerk_locked"]  # the audit is stored
        locked = store.events_since(0)[-1]
        assert (locked["counter"], locked["clerk"]) == (1, "c1a")
        clock.advance(minutes=5)
        hall = load_hall(cfg, clock, store)  # a restarted broker
        with pytest.raises(HallError) as info:
            hall.execute("sign_in", {"counter": 1, "clerk": "c1a", "pin": PIN})
        assert (info.value.code, info.value.details["minutes"]) == ("CLERK_LOCKED", 10)
        # ``queuehall clerks unlock`` writes the database; the running hall reads it at the next sign-in.
        assert store.unlock_clerk("c1a", by="test")
        assert hall.execute("sign_in", {"counter": 1, "clerk": "c1a", "pin": PIN})["counter"]["post"] == "A"
        with store.engine.connect() as conn:
            row = conn.execute(select(clerk_pins).where(clerk_pins.c.clerk == "c1a")).one()
        assert (row.generation, row.change, row.changed_by) == (2, "unlock", "test")
    finally:
        store.close()


def test_the_broker_publishes_the_lock_for_supervision(start_broker: Callable[..., BrokerThread]) -> None:
    bt = start_broker()
    assert bt.broker is not None
    published: list[dict[str, Any]] = []
    publish = bt.broker._publish

    def spy(event: dict[str, Any], **kw: Any) -> None:
        published.append(event)
        publish(event, **kw)

    bt.broker._publish = spy  # type: ignore[method-assign]
    c = BrokerClient(bt.endpoint, timeout=2.0)
    try:
        for i in range(5):
            with pytest.raises(CommandRefused) as info:
                c.request("sign_in", counter=1, clerk="c1a", pin="0000")
            assert info.value.code == ("CLERK_LOCKED" if i == 4 else "BAD_PIN")
        assert info.value.error["message_zh"].startswith("工作人员 c1a 因密码连续输错已被锁定")
        broker_fixtures.wait_until(lambda: any(e.get("type") == "clerk_locked" for e in published))
        locked = next(e for e in published if e.get("type") == "clerk_locked")
        assert (locked["counter"], locked["clerk"], locked["minutes"]) == (1, "c1a", 15)
        assert c.request("unlock_clerk", clerk="c1a") == {"clerk": "c1a", "was_locked": True}
        assert c.request("sign_in", counter=1, clerk="c1a", pin=PIN)["counter"]["clerk"] == "c1a"
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------- the command


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def cli(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``queuehall ARGV`` as its own process, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "queuehall.cli", *argv], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env=dict(os.environ, QUEUEHALL_CONFIG=""))


def test_clerks_commands_end_to_end(db_url: str, tmp_path: Path, hall_config: Any,
                                    capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    db = ("--db", db_url)
    # set-pin from a script: one line on standard input; the real cost, only the hash stored.
    p = cli("clerks", "set-pin", "c01a", "--stdin", *db, stdin="4821\n")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"status": "ok", "result": {"clerk": "c01a", "pin_set": True}}
    store = open_store(db_url)
    try:
        rec = store.pin_record("c01a")
        assert rec is not None and rec.pin_hash.startswith("scrypt$16384$8$1$") and "4821" not in rec.pin_hash
        assert verify_pin("4821", rec.pin_hash)
    finally:
        store.close()
    # Never from the command line.
    assert cli("clerks", "set-pin", "c01a", "4821", *db).returncode == EXIT_USAGE

    # Interactively: asked twice without echo (getpass); a mismatch or a bad PIN changes nothing.
    answers: list[str] = []
    monkeypatch.setattr(clerks_cli.getpass, "getpass", lambda prompt="": answers.pop(0))
    monkeypatch.setattr(clerks_cli, "DEFAULT_COST", TEST_COST)
    answers[:] = ["730915", "730916"]
    code, out, _ = run(capsys, "clerks", "set-pin", "c01b", *db)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "PIN_MISMATCH")
    answers[:] = ["12", "12"]
    code, out, _ = run(capsys, "clerks", "set-pin", "c01b", *db)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "PIN_INVALID")
    code, out, _ = run(capsys, "clerks", "set-pin", "nobody", *db)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "UNKNOWN_CLERK")
    answers[:] = ["730915", "730915"]
    assert run(capsys, "clerks", "set-pin", "c01b", *db)[0] == EXIT_OK

    # The hall signs the clerk in with it; five wrong PINs lock; list shows it; unlock lifts it. (The
    # command judges a lock by this machine's clock, so the hall runs on it here.)
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    store = open_store(db_url)
    try:
        hall = load_hall(hall_config, clock, store)
        hall.execute("sign_in", {"counter": 1, "clerk": "c01b", "pin": "730915"})
        hall.execute("sign_out", {"counter": 1})
        for _ in range(5):
            with pytest.raises(HallError):
                hall.execute("sign_in", {"counter": 1, "clerk": "c01a", "pin": "0000"})
        code, out, _ = run(capsys, "clerks", "list", *db)
        assert code == EXIT_OK
        rows = {r["clerk"]: r for r in out["result"]["clerks"]}
        assert len(rows) == len(hall_config.clerks) and "pin_hash" not in json.dumps(out)
        a, b, c = rows["c01a"], rows["c01b"], rows["c02a"]
        assert (a["pin_set"], a["locked"], a["failures"], a["posts"]) == (True, True, 5, ["1A"])
        until = (clock.now() + timedelta(minutes=15)).isoformat().replace("+00:00", "Z")
        assert a["name_zh"] == "王丽" and a["locked_until"] == until
        assert (b["pin_set"], b["locked"], b["last_change"]) == (True, False, "set")
        assert b["pin_changed_by"].startswith("cli:")
        assert (c["pin_set"], c["locked"]) == (False, False)
        p = cli("clerks", "unlock", "c01a", *db)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["result"] == {"clerk": "c01a", "was_locked": True}
        hall.execute("sign_in", {"counter": 1, "clerk": "c01a", "pin": "4821"})  # the live hall knows
        code, out, _ = run(capsys, "clerks", "unlock", "c02a", *db)
        assert (code, out["error"]["code"]) == (EXIT_REFUSED, "PIN_NOT_SET")
    finally:
        store.close()

    # A hall.toml of before: refused with the way out; import-pins hashes its PINs once.
    old = tmp_path / "old-hall.toml"
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    old.write_text(text.replace('id = "c02a"\n', 'id = "c02a"\npin = "2690"\n')
                   .replace('id = "c01a"\n', 'id = "c01a"\npin = "1111"\n'), encoding="utf-8")
    p = cli("broker", "--config", str(old), "--insecure", *db)
    assert p.returncode == 2
    assert "queuehall clerks set-pin c01a" in p.stderr and "不再保存密码" in p.stderr
    code, out, _ = run(capsys, "clerks", "import-pins", "--config", str(old), *db)
    assert code == EXIT_OK and out["result"]["imported"] == ["c02a"] and out["result"]["kept"] == ["c01a"]
    store = open_store(db_url)
    try:
        assert verify_pin("2690", store.pin_record("c02a").pin_hash)  # type: ignore[union-attr]
        assert verify_pin("4821", store.pin_record("c01a").pin_hash)  # type: ignore[union-attr]
    finally:
        store.close()


def test_unlock_through_the_broker(start_broker: Callable[..., BrokerThread], hall_config: Any,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    bt = start_broker(hall_config)
    c = BrokerClient(bt.endpoint, timeout=2.0)
    try:
        for _ in range(5):
            with pytest.raises(CommandRefused):
                c.request("sign_in", counter=3, clerk="c03a", pin="0000")
        code, out, _ = run(capsys, "unlockclerk", "c03a", "--broker", bt.endpoint)
        assert code == EXIT_OK and out["result"] == {"clerk": "c03a", "was_locked": True}
        c.request("sign_in", counter=3, clerk="c03a", pin=DEMO_PINS["c03a"])
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------- the counter


COUNTER_WITHOUT_HALL_FILE = textwrap.dedent("""
    import json, sys
    import queuehall.broker.config as config

    def no_hall_file(*args, **kwargs):
        raise AssertionError("the counter read a hall configuration")

    config.load_config = no_hall_file
    config.DEFAULT_CONFIG = config.Path("/nonexistent/hall.toml")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from queuehall.counter import window
    from queuehall.cli import main

    start = window.CounterWindow.start

    def started(self):
        start(self)
        def look():
            if self.model.posts:
                print(json.dumps(self.model.posts, ensure_ascii=False), flush=True)
                QApplication.instance().quit()
        timer = QTimer(self)
        timer.timeout.connect(look)
        timer.start(50)
        QTimer.singleShot(20000, QApplication.instance().quit)

    window.CounterWindow.start = started
    sys.exit(main(["counter", "--counter", "4", "--broker", sys.argv[1], "--windowed"]))
""")


def test_the_counter_application_starts_without_a_hall_file(start_broker: Callable[..., BrokerThread],
                                                             hall_config: Any, tmp_path: Path) -> None:
    bt = start_broker(hall_config)
    script = tmp_path / "counter.py"
    script.write_text(COUNTER_WITHOUT_HALL_FILE, encoding="utf-8")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QUEUEHALL_CONFIG=str(tmp_path / "missing.toml"))
    p = subprocess.run([sys.executable, str(script), bt.endpoint], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1]) == {"A": ["c04a", "赵婷", "Zhao Ting"],
                                                             "B": ["c04b", "黄伟", "Huang Wei"]}
    assert "--config" not in subprocess.run([sys.executable, "-m", "queuehall.cli", "counter", "--help"],
                                            capture_output=True, text=True, cwd=ROOT, timeout=60).stdout


def test_the_lock_uses_the_configured_minutes_end_to_end_on_the_default_hall(hall_config: Any) -> None:
    """The default hall locks after 5 for 15 minutes (config/hall.toml [sign_in])."""
    clock = ManualClock(local(TUESDAY, 9))
    hall = Hall(hall_config, clock, pins=memory_pins(hall_config))
    for _ in range(4):
        with pytest.raises(HallError):
            hall.execute("sign_in", {"counter": 1, "clerk": "c01a", "pin": "0000"})
    with pytest.raises(HallError) as info:
        hall.execute("sign_in", {"counter": 1, "clerk": "c01a", "pin": "0000"})
    assert info.value.details == {"clerk": "c01a", "minutes": 15}
    clock.advance(timedelta(minutes=15).total_seconds())
    hall.execute("sign_in", {"counter": 1, "clerk": "c01a", "pin": DEMO_PINS["c01a"]})
    assert load_config().sign_in.lock_after == 5
