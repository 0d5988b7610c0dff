"""The ``queuehall`` command line against a real broker: JSON output and exit codes
(0 ok, 1 refused, 2 usage, 3 unreachable), ``status``, ``watch`` and ``keys``."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from queuehall.cli import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, main
from queuehall.client import BrokerClient
from tests import broker_fixtures
from tests.broker_fixtures import ROOT, BrokerThread, free_port_pair

# The shared fixtures (pytest finds fixtures among a module's names).
hall_config_fixture = broker_fixtures.hall_config_fixture
keys_dir_fixture = broker_fixtures.keys_dir_fixture
manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture


def run(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None) -> tuple[int, Any, str]:
    """Run ``queuehall ARGV`` in-process: (exit code, the JSON printed, standard error); ``stdin``: what
    standard input holds (a PIN for ``--pin-stdin``)."""
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own usage errors
        code = int(exc.code or 0)
    finally:
        sys.stdin = saved
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


@pytest.fixture
def hall(start_broker: Callable[..., BrokerThread], hall_config: Any) -> BrokerThread:
    """The default hall (config/hall.toml), open: Tuesday 09:00."""
    return start_broker(hall_config)


def test_signin_never_takes_the_pin_from_the_command_line(hall: BrokerThread, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A PIN in the arguments shows in ``ps`` and the shell's history (issue 14's leftover): refused before
    anything is sent; the PIN comes from a prompt without echo, or one line of standard input."""
    b = ("--broker", hall.endpoint)
    code, out, err = run(capsys, "signin", "1", "c01a", "4821", *b)
    assert code == EXIT_USAGE and out is None
    assert "--pin-stdin" in err and "ps" in err and "命令行" in err and "4821" not in err
    # No terminal to ask on, and no --pin-stdin: refused rather than read with echo.
    code, out, err = run(capsys, "signin", "1", "c01a", *b, stdin="4821\n")
    assert code == EXIT_USAGE and "--pin-stdin" in err
    code, _, err = run(capsys, "signin", "1", "c01a", "--pin-stdin", *b, stdin="\n")
    assert code == EXIT_USAGE and "empty" in err
    assert hall.broker is not None
    engine = hall.broker.hall
    assert engine.counters[1].state == "closed" and engine.clerk_locks() == {}  # nothing reached the broker
    # At a terminal: asked for without echo (getpass), never on the command line.
    asked: list[str] = []

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("getpass.getpass", lambda prompt="": asked.append(prompt) or "4821")
    monkeypatch.setattr(sys, "stdin", Terminal())
    code, out, _ = run(capsys, "signin", "1", "c01a", *b)
    assert code == EXIT_OK and out["result"]["counter"]["clerk"] == "c01a" and asked == ["密码 / PIN: "]
    monkeypatch.undo()
    # The help offers --pin-stdin and no PIN argument.
    with pytest.raises(SystemExit):
        main(["signin", "--help"])
    usage = capsys.readouterr().out
    positional = usage.split("positional arguments:")[1].split("options:")[0]
    assert "--pin-stdin" in usage and "counter" in positional and "clerk" in positional
    assert "pin" not in positional.lower() and "pin" not in usage.split("\n\n")[0].replace("--pin-stdin", "")


def test_take_call_start_finish_with_json_and_exit_codes(hall: BrokerThread,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    b = ("--broker", hall.endpoint)
    code, out, _ = run(capsys, "take", "passport", *b)
    assert code == EXIT_OK and out["status"] == "ok"
    assert out["result"]["ticket"]["label"] == "A001" and out["result"]["ahead"] == 0
    code, out, _ = run(capsys, "take", "passport", "--priority", "elderly", *b)
    assert code == EXIT_OK and out["result"]["ticket"]["priority"] == "elderly"

    code, out, _ = run(capsys, "call", "1", *b)
    assert code == EXIT_REFUSED and out["status"] == "error"
    assert out["error"]["code"] == "COUNTER_CLOSED"
    assert out["error"]["message_zh"] == "1 号窗口未签到" and out["error"]["details"] == {"counter": 1}

    code, out, _ = run(capsys, "signin", "1", "c01a", "--pin-stdin", *b, stdin="0000\n")
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "BAD_PIN")
    code, out, _ = run(capsys, "signin", "1", "c01a", "--pin-stdin", *b, stdin="4821\n")
    assert code == EXIT_OK
    session = out["result"]["session"]
    code, out, _ = run(capsys, "call", "1", "--session", session, *b)
    assert code == EXIT_OK and out["result"]["ticket"]["label"] == "A002"  # the green channel first
    for cmd in ("start", "finish"):
        code, out, _ = run(capsys, cmd, "1", *b)
        assert code == EXIT_OK and out["result"]["ticket"]["label"] == "A002"
    code, out, _ = run(capsys, "finish", "1", *b)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "NOT_SERVING")
    code, out, _ = run(capsys, "call", "1", *b)
    assert code == EXIT_OK and out["result"]["ticket"]["label"] == "A001"
    code, out, _ = run(capsys, "transfer", "1", "--service", "hk_macao", "--note", "改办港澳通行证", *b)
    assert code == EXIT_OK and out["result"]["ticket"]["queue_service"] == "hk_macao"
    assert out["result"]["ticket"]["note"] == "改办港澳通行证"
    code, out, _ = run(capsys, "take", "no_such_service", *b)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "UNKNOWN_SERVICE")
    code, out, _ = run(capsys, "cancel", "A001", "", *b)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "REASON_REQUIRED")


def test_status_lists_services_counters_and_tickets(hall: BrokerThread, hall_config: Any,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    c = BrokerClient(hall.endpoint)
    for service in ("passport", "passport", "hk_macao", "passport"):
        c.request("take_ticket", service=service)
    c.request("sign_in", counter=1, clerk="c01a", pin="4821")
    called = c.request("call_next", counter=1)["ticket"]["label"]
    c.close()

    code, out, _ = run(capsys, "status", "--broker", hall.endpoint)
    assert code == EXIT_OK
    st = out["result"]
    assert st["business_day"] == "2026-11-24" and st["timezone"] == "Asia/Shanghai" and st["hall"]["open"]
    assert [s["code"] for s in st["services"]] == [s.code for s in hall_config.services]
    for s in st["services"]:
        assert s["name_zh"] and s["name_en"] and s["prefix"]
        assert s["waiting"] == len(s["tickets"])
        assert all(t["status"] == "waiting" and t["queue_service"] == s["code"] for t in s["tickets"])
    by_code = {s["code"]: s for s in st["services"]}
    waiting = {"A001", "A002", "A003", "B001"} - {called}
    assert {t["label"] for t in by_code["passport"]["tickets"] + by_code["hk_macao"]["tickets"]} == waiting
    passport = [t["label"] for t in by_code["passport"]["tickets"]]
    assert passport == sorted(passport)  # in queue order
    assert [c["number"] for c in st["counters"]] == [c.number for c in hall_config.counters]
    for counter in st["counters"]:
        assert {"number", "services", "state", "ticket", "name_zh", "name_en"} <= set(counter)
    one = st["counters"][0]
    assert one["state"] == "open" and one["services"] == ["passport", "hk_macao"]
    assert one["ticket"]["label"] == called and one["ticket"]["status"] == "called"
    assert st["counters"][1]["state"] == "closed" and st["counters"][1]["ticket"] is None
    assert [call["ticket"]["label"] for call in st["recent_calls"]] == [called]


def test_usage_errors_exit_2(hall: BrokerThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "take")[0] == EXIT_USAGE  # argparse: missing SERVICE
    assert run(capsys, "call", "one", "--broker", hall.endpoint)[0] == EXIT_USAGE  # not a number
    assert run(capsys, "frobnicate")[0] == EXIT_USAGE
    code, out, err = run(capsys, "take", "passport", "--broker", "no-port")
    assert (code, out) == (EXIT_USAGE, None) and "HOST:PORT" in err
    code, out, err = run(capsys, "take", "passport", "--broker", hall.endpoint, "--key", "k.key_secret")
    assert (code, out) == (EXIT_USAGE, None) and "--server-key" in err
    code, out, err = run(capsys, "take", "passport", "--broker", hall.endpoint, "--key", str(tmp_path / "no"),
                         "--server-key", str(tmp_path / "nothing"))
    assert (code, out) == (EXIT_USAGE, None) and "key file" in err
    code, _, err = run(capsys, "watch", "--broker", "no-port")
    assert code == EXIT_USAGE and "HOST:PORT" in err


def test_an_unreachable_broker_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = f"127.0.0.1:{free_port_pair()}"
    code, out, _ = run(capsys, "take", "passport", "--broker", endpoint, "--timeout", "0.1")
    assert code == EXIT_UNREACHABLE
    assert out["status"] == "unreachable" and out["error"]["code"] == "UNREACHABLE"
    assert out["error"]["message_zh"] and out["error"]["message_en"]
    code, out, _ = run(capsys, "watch", "--broker", endpoint, "--seconds", "0.3")
    assert code == EXIT_UNREACHABLE and out is None


def test_the_environment_names_the_broker(hall: BrokerThread, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUEUEHALL_BROKER", hall.endpoint)
    code, out, _ = run(capsys, "take", "hk_macao")
    assert code == EXIT_OK and out["result"]["ticket"]["label"] == "B001"


def test_keys_on_the_command_line_and_roles(start_broker: Callable[..., BrokerThread], hall_config: Any,
                                            tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "keys"
    code, out, _ = run(capsys, "keys", "init", str(d))
    assert code == EXIT_OK and Path(out["broker_public_key"]).exists()
    assert (Path(out["broker_secret_key"]).stat().st_mode & 0o777) == 0o600
    code, out, _ = run(capsys, "keys", "add", str(d), "kiosk-1", "--role", "kiosk")
    assert code == EXIT_OK and out == {"name": "kiosk-1", "role": "kiosk", "counter": None,
                                       "secret_file": f"{d}/secret/kiosk-1.key_secret"}
    assert (Path(out["secret_file"]).stat().st_mode & 0o777) == 0o600
    code, out, _ = run(capsys, "keys", "add", str(d), "button-3", "--role", "counter", "--counter", "3")
    assert code == EXIT_OK and out["counter"] == 3
    code, _, err = run(capsys, "keys", "add", str(d), "button-4", "--role", "counter")
    assert code == EXIT_USAGE and "--counter" in err
    code, _, err = run(capsys, "keys", "add", str(d), "kiosk-1", "--role", "kiosk")
    assert code == EXIT_USAGE and "already exists" in err
    code, _, err = run(capsys, "keys", "add", str(d), "bad name!", "--role", "kiosk")
    assert code == EXIT_USAGE and "device name" in err
    assert run(capsys, "keys", "add", str(d), "x", "--role", "janitor")[0] == EXIT_USAGE
    code, out, _ = run(capsys, "keys", "list", str(d))
    assert [(k["name"], k["role"], k["counter"]) for k in out] == [("button-3", "counter", 3),
                                                                    ("kiosk-1", "kiosk", None)]

    bt = start_broker(hall_config, keys_dir=d)
    kiosk = ("--broker", bt.endpoint, "--key", f"{d}/secret/kiosk-1.key_secret", "--server-key", f"{d}/broker.key")
    button = ("--broker", bt.endpoint, "--key", f"{d}/secret/button-3.key_secret", "--server-key",
              f"{d}/broker.key")
    assert run(capsys, "take", "passport", *kiosk)[1]["result"]["ticket"]["label"] == "A001"
    code, out, _ = run(capsys, "call", "3", *kiosk)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "FORBIDDEN")
    code, out, _ = run(capsys, "call", "4", *button)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "FORBIDDEN")
    code, out, _ = run(capsys, "call", "3", *button)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "COUNTER_CLOSED")  # allowed, just not signed in
    # Without keys a CurveZMQ broker does not answer at all.
    assert run(capsys, "take", "passport", "--broker", bt.endpoint, "--timeout", "0.2")[0] == EXIT_UNREACHABLE

    # The kiosk keeps its copy of the key; the keys folder keeps none.
    kiosk_copy = tmp_path / "on-the-kiosk.key_secret"
    shutil.copy(d / "secret" / "kiosk-1.key_secret", kiosk_copy)
    code, out, _ = run(capsys, "keys", "remove", str(d), "kiosk-1")
    assert code == EXIT_OK and out == {"removed": "kiosk-1", "files": [f"{d}/devices/kiosk-1.key",
                                                                       f"{d}/secret/kiosk-1.key_secret"]}
    assert not (d / "devices" / "kiosk-1.key").exists() and not (d / "secret" / "kiosk-1.key_secret").exists()
    assert (d / "secret" / "button-3.key_secret").exists()  # the other devices' files stay
    assert run(capsys, "keys", "remove", str(d), "kiosk-1")[0] == EXIT_USAGE
    assert run(capsys, "keys", "remove", str(d), "../broker")[0] == EXIT_USAGE  # never a path
    kiosk = ("--broker", bt.endpoint, "--key", str(kiosk_copy), "--server-key", f"{d}/broker.key")
    assert run(capsys, "take", "passport", *kiosk, "--timeout", "0.2")[0] == EXIT_UNREACHABLE


def test_the_console_script_and_watch_in_real_processes(hall: BrokerThread) -> None:
    """``queuehall`` as installed: exit codes of the process itself, and ``watch`` printing
    events as JSON lines (it says ``synced`` on standard error once events will be printed)."""
    exe = str(Path(sys.executable).with_name("queuehall"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    take = subprocess.run([exe, "take", "passport", "--broker", hall.endpoint], capture_output=True, text=True,
                          timeout=30, env=env)
    assert take.returncode == 0, take.stderr
    assert json.loads(take.stdout)["result"]["ticket"]["label"] == "A001"

    watch = subprocess.Popen([sys.executable, "-m", "queuehall.cli", "watch", "--broker", hall.endpoint,
                              "--type", "ticket_issued", "--count", "2", "--seconds", "30"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert watch.stderr is not None and watch.stdout is not None
        lines = []
        for line in watch.stderr:  # blocks until the watcher writes; ends if it exits
            lines.append(json.loads(line))
            if "synced" in lines[-1]:
                break
        assert {"connection": True} in lines and "synced" in lines[-1], lines
        c = BrokerClient(hall.endpoint)
        c.request("take_ticket", service="hk_macao")
        c.request("take_ticket", service="passport")
        c.close()
        out, _ = watch.communicate(timeout=30)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert [(e["type"], e["ticket"]["label"]) for e in events] == [("ticket_issued", "B001"),
                                                                    ("ticket_issued", "A002")]
    # In order; other events (a presence change, say) may come between the two, filtered out by --type.
    assert events[1]["seq"] > events[0]["seq"] and events[0]["epoch"] == hall.broker.epoch  # type: ignore[union-attr]


def test_status_with_a_display_key(start_broker: Callable[..., BrokerThread], keys_dir: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    bt = start_broker(keys_dir=keys_dir)
    sec = ("--key", f"{keys_dir}/secret/wall-1.key_secret", "--server-key", f"{keys_dir}/broker.key")
    code, out, _ = run(capsys, "status", "--broker", bt.endpoint, *sec)
    assert code == EXIT_OK and [s["code"] for s in out["result"]["services"]] == ["P", "H", "FEE"]
    code, out, _ = run(capsys, "take", "P", "--broker", bt.endpoint, *sec)
    assert (code, out["error"]["code"]) == (EXIT_REFUSED, "FORBIDDEN")


HEAVY = ("sqlalchemy", "PySide6", "matplotlib", "escpos", "alembic", "openpyxl", "queuehall.broker",
         "queuehall.kiosk", "queuehall.counter", "queuehall.display")
# What a press also goes without (issue 21, docs/benchmarks.md): orjson imports dataclasses, inspect, uuid; the
# screens' client library brings threads, queues, logging and the clock; zmq.auth logging, datetime and glob.
NOT_FOR_ONE_REQUEST = ("orjson", "dataclasses", "inspect", "uuid", "datetime", "logging", "queue",
                       "queuehall.client", "queuehall.clock", "queuehall.errors", "zmq.auth")


def test_a_scripting_command_loads_only_the_protocol_and_the_client(hall: BrokerThread,
                                                                      start_broker: Callable[..., BrokerThread],
                                                                      keys_dir: Path) -> None:
    """A call button runs ``queuehall call N`` on every press: no SQLAlchemy, Qt or matplotlib in that process
    (they made each press 0.4 s), nor the other modules a one-request process does not need, keyed or not.
    ``queuehall --help`` still lists every part."""
    unwanted = HEAVY + NOT_FOR_ONE_REQUEST
    probe = ("import sys\nfrom queuehall.cli import main\ncode = main(sys.argv[1:])\n"
             f"heavy = sorted(m for m in sys.modules for u in {unwanted!r} if m == u or m.startswith(u + '.'))\n"
             "print(code, heavy, file=sys.stderr)\n")
    keyed = start_broker(keys_dir=keys_dir)
    sec = ["--key", f"{keys_dir}/secret/counter-1.key_secret", "--server-key", f"{keys_dir}/broker.key"]
    for argv in (["take", "passport", "--broker", hall.endpoint], ["call", "1", "--broker", hall.endpoint],
                 ["status", "--broker", hall.endpoint], ["call", "1", "--broker", keyed.endpoint, *sec]):
        done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60,
                              cwd="/")
        code, _, heavy = done.stderr.strip().splitlines()[-1].partition(" ")
        assert heavy == "[]", (argv, done.stderr)
        assert code in ("0", "1"), done.stderr  # a reply from the broker, refused or not
    helped = subprocess.run([sys.executable, "-m", "queuehall.cli", "--help"], capture_output=True, text=True,
                            timeout=60, cwd="/")
    for part in ("broker", "kiosk", "counter", "display", "demo", "report", "take", "call"):
        assert part in helped.stdout


def test_a_press_run_as_the_program_prints_everything_and_exits_with_its_code(hall: BrokerThread) -> None:
    """Run as the program, a one-request command ends through ``os._exit`` after flushing its output: the JSON
    is whole (a long ``status`` too) and the exit codes are those of docs/cli.md."""

    def program(*argv: str) -> tuple[int, Any]:
        done = subprocess.run([sys.executable, "-m", "queuehall.cli", *argv], capture_output=True, text=True,
                              timeout=60, cwd="/")
        return done.returncode, json.loads(done.stdout)

    for _ in range(40):
        assert program("take", "passport", "--broker", hall.endpoint)[0] == EXIT_OK
    code, out = program("status", "--broker", hall.endpoint)
    assert code == EXIT_OK and sum(len(s["tickets"]) for s in out["result"]["services"]) == 40
    code, out = program("call", "7", "--broker", hall.endpoint)
    assert (code, out["status"]) == (EXIT_REFUSED, "error")
    code, out = program("call", "1", "--broker", f"127.0.0.1:{free_port_pair()}", "--timeout", "0.2")
    assert (code, out["status"]) == (EXIT_UNREACHABLE, "unreachable")
    bad = subprocess.run([sys.executable, "-m", "queuehall.cli", "call", "one"], capture_output=True, text=True,
                         timeout=60, cwd="/")
    assert bad.returncode == EXIT_USAGE and "invalid int value" in bad.stderr


def test_certificates_are_read_as_zmq_auth_reads_them(keys_dir: Path, tmp_path: Path) -> None:
    """The command line reads key files itself (zmq.auth's imports cost a keyed press milliseconds): the same
    keys from every file ``queuehall keys`` writes, the same errors for a missing file or one without a key."""
    import zmq.auth

    from queuehall.rpc import load_certificate

    files = [*keys_dir.glob("*.key"), *keys_dir.glob("*.key_secret"), *(keys_dir / "secret").glob("*")]
    assert len(files) >= 6
    for f in files:
        assert load_certificate(str(f)) == zmq.auth.load_certificate(f), f
    (tmp_path / "quoted").write_text("# comment\ncurve\n    public-key = '0123'\n    secret-key = \"4567\"\n")
    (tmp_path / "no-key").write_text("metadata\n    role = \"counter\"\n")
    assert load_certificate(str(tmp_path / "quoted")) == zmq.auth.load_certificate(tmp_path / "quoted")
    for name, error in (("no-key", ValueError), ("missing", OSError)):
        with pytest.raises(error):
            zmq.auth.load_certificate(tmp_path / name)
        with pytest.raises(error):
            load_certificate(str(tmp_path / name))
