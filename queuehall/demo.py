"""``queuehall demo``: a whole hall on one machine.

* ``queuehall demo`` starts the broker, a kiosk, two counters (a business window and
  the fee window) and a hall display as separate processes, wired together with fresh
  CurveZMQ keys, an SQLite database in the demo data folder and a file printer.
  Closing any window, Ctrl-C, SIGTERM or a child that fails stops them all (:class:`Children`).
* ``queuehall demo --headless --out DIR`` runs a simulated busy morning through the
  real broker and the real screens offscreen and leaves evidence in DIR (see
  :func:`run_headless`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

DEMO_COUNTERS = (1, 11)  # a passport window and the unified fee window (统一收费)
DEMO_ADMIN = "demo-admin"  # an admin key for the demo itself and for scripting the demo hall
DEMO_STATE_FILE = "demo.json"  # in the data folder while the demo runs: broker, keys, child pids


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run a whole hall on this machine (or headless, leaving evidence)")
    p.add_argument("--headless", action="store_true", help="simulate a busy morning offscreen")
    p.add_argument("--out", default="demo-out", help="folder for the headless demo's evidence")
    p.add_argument("--data", default="demo-data", help="folder for the interactive demo's database, keys, tickets")
    p.add_argument("--config", default=None, help="hall configuration (default config/hall.toml)")
    p.add_argument("--port", type=int, default=0, help="broker port (default: a free one)")
    p.add_argument("--printer", default=None, help="the kiosk's printer (default: one file per ticket in DATA/tickets)")
    p.add_argument("--day", default=None, help="headless: the business day to simulate (YYYY-MM-DD)")
    p.add_argument("--until", default="11:30", help="headless: last arrivals at this local time (HH:MM)")
    p.add_argument("--seed", type=int, default=7, help="headless: random seed")
    p.add_argument("--shots", type=int, default=4, help="headless: screenshots of each screen")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.headless:
        from queuehall.headless import run_headless

        return run_headless(args)
    return run_interactive(args)


def _port_free(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ZeroMQ binds
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    """Where the kernel's ports for outgoing connections start (Linux: /proc; else Linux's default)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(count: int = 3) -> int:
    """A port P on 127.0.0.1 with P … P+count-1 free: a broker binds P (commands), P+1 and P+2 (the public and
    the staff events); ``count=1`` for one port (a web server). The one port finder of the demo, the tests and
    the benchmarks.

    Picked at random below the kernel's range for outgoing connections: a port above it that was checked free
    can be taken by any connect() (PostgreSQL, ZeroMQ, a browser) before the broker binds it ("address already
    in use"), and parallel test runs would pick the kernel's same next port."""
    import random

    rng = random.SystemRandom()
    top = max(_ephemeral_low(), 24000) - count
    for _ in range(200):
        port = rng.randrange(20000, top, 2)
        if all(_port_free(port + i) for i in range(count)):
            return port
    raise RuntimeError(f"no {count} free ports in a row")


def demo_start(config: Any) -> str | None:
    """A ``--sim-start`` for the demo: now if the hall is issuing, else its next opening."""
    from queuehall.broker.hours import OpeningHours

    hours = OpeningHours(config.hours, config.timezone)
    now = datetime.now(UTC)
    if hours.issue_window(now, 30).state == "open":
        return None
    nxt = hours.next_issue_start(now, 30) or now
    return nxt.astimezone(ZoneInfo(config.timezone)).strftime("%Y-%m-%dT%H:%M")


#: Ask a running child to stop, wait this long, then kill it.
STOP_GRACE_SECONDS = 5.0
#: The demo kiosk's staff PIN (five taps on the hall name open the pad); a real kiosk has its own (kiosk-pin).
DEMO_KIOSK_PIN = "2468"
#: The broker must answer a ping within this long after it is started.
BROKER_START_SECONDS = 30.0
#: prctl(2) option: the signal a child gets when its parent dies (Linux).
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> Callable[[], None]:
    """What makes a child process end with the process that started it, so that no broker or screen outlives a
    demo, a test or a benchmark that was killed outright (``kill -9``): on Linux ``PR_SET_PDEATHSIG`` = SIGTERM,
    elsewhere nothing.

    ``subprocess.Popen(..., preexec_fn=die_with_parent())`` runs it in the child between fork and exec (prctl is
    looked up here, in the parent: the child may only call it there); a multiprocessing child calls
    ``die_with_parent(os.getppid())()`` first thing. A child whose parent (``parent``; by default the process
    calling this) is already gone exits at once.
    """
    prctl: Any = None
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (OSError, AttributeError):
            prctl = None
    expected = os.getpid() if parent is None else parent

    def arm() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != expected:  # the parent died before prctl took effect
            os._exit(1)

    return arm


class Children:
    """The demo's child processes, so that none outlives the demo.

    Each child runs in a session (so a process group) of its own: a terminal's Ctrl-C reaches only
    the demo, which then stops the children in order, and stopping a child's group also stops what
    it started itself. On Linux each child also gets ``PR_SET_PDEATHSIG`` = SIGTERM, so even a
    demo killed with SIGKILL takes its children along. :meth:`stop` sends SIGTERM to every group,
    waits :data:`STOP_GRACE_SECONDS`, then sends SIGKILL to what is left. Elsewhere (Windows) the
    children get a process group of their own and are terminated, then killed, one by one.
    """

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._in_child = die_with_parent()  # runs in the child between fork and exec: die with the demo

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        kw: dict[str, Any] = {}
        if hasattr(os, "setsid"):
            kw["start_new_session"] = True
            kw["preexec_fn"] = self._in_child
        elif hasattr(subprocess, "CREATE_NEW_PROCESS_GROUP"):
            kw["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        proc = subprocess.Popen(cmd, **kw)
        self.procs[name] = proc
        return proc

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items()}

    def first_exited(self) -> tuple[str, int] | None:
        """(name, exit code) of a child that has ended, or None while all run."""
        for name, p in self.procs.items():
            code = p.poll()
            if code is not None:
                return name, code
        return None

    def _signal(self, proc: subprocess.Popen[bytes], sig: int, *, group: bool = True) -> None:
        killpg = getattr(os, "killpg", None)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group and killpg is not None:
                killpg(proc.pid, sig)  # the child is its group's leader: pgid == pid
            elif proc.poll() is None:
                proc.send_signal(sig)

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """End every child: SIGTERM (screens first, the broker last), then SIGKILL after ``grace`` seconds."""
        for proc in reversed(self.procs.values()):
            if proc.poll() is None:
                self._signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in reversed(self.procs.values()):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.05, deadline - time.monotonic()))
        kill = getattr(signal, "SIGKILL", None)
        for proc in self.procs.values():
            if kill is not None:
                self._signal(proc, kill)  # also whatever a child started and left behind in its group
            elif proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)


def demo_ticket_page(web_url: str, broker: str, security: Any, config: Any, stopping: Callable[[], bool],
                     timeout: float = 20.0) -> str | None:
    """Once the web gateway answers, take one ticket and return its page's address (what its QR code
    holds); None if the gateway did not come up or no ticket could be taken now. The ticket is for a
    service no demo counter serves, so it never comes between you and the counters you try."""
    import urllib.request

    from queuehall.client import BrokerClient, BrokerUnavailable, CommandRefused

    deadline = time.monotonic() + timeout
    while not stopping():
        try:
            with urllib.request.urlopen(f"{web_url}/healthz", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            print("queuehall demo: the web gateway did not answer; no ticket page", file=sys.stderr)
            return None
        time.sleep(0.2)
    client = BrokerClient(broker, client_id="demo-web-ticket", security=security, timeout=3.0)
    try:
        served = {code for n in DEMO_COUNTERS if (k := config.counter(n)) for code in k.services}
        service = next((s.code for s in config.services if s.code not in served), config.services[0].code)
        url = client.request("take_ticket", service=service).get("url")
        return str(url) if url else None
    except (BrokerUnavailable, CommandRefused) as err:
        print(f"queuehall demo: no ticket for the web page example ({err})", file=sys.stderr)
        return None
    finally:
        client.close()


def run_interactive(args: argparse.Namespace) -> int:
    """Run the hall as separate processes until a window is closed, a child fails, or SIGINT/SIGTERM/SIGHUP.

    Returns 0 after an orderly stop (a signal, or a window closed), 1 when a child could not start
    or ended on its own with an error, 2 on a bad configuration. No child is left running in any case.
    """
    from queuehall.broker import keys
    from queuehall.broker.config import DEFAULT_CONFIG, ConfigError, load_config
    from queuehall.client import Security, wait_until_answering

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and \
            os.environ.get("QT_QPA_PLATFORM") not in ("offscreen",):
        print("queuehall demo: no screen here; running the headless demo instead "
              f"(evidence in {args.out}/)", file=sys.stderr)
        from queuehall.headless import run_headless

        return run_headless(args)
    config_path = args.config or str(DEFAULT_CONFIG)
    try:
        config = load_config(config_path)
    except ConfigError as err:
        print(f"queuehall demo: {err}", file=sys.stderr)
        return 2
    data = Path(args.data).resolve()
    kdir = data / "keys"
    if kdir.exists():
        shutil.rmtree(kdir)  # fresh keys every run
    keys.init_keys(kdir)
    keys.add_device(kdir, "kiosk-1", "kiosk")
    keys.add_device(kdir, "wall-1", "display")
    keys.add_device(kdir, DEMO_ADMIN, "admin")  # the demo's own (readiness) and yours, to script the hall
    keys.add_device(kdir, "web-1", "web")  # the web gateway: ticket pages behind the QR codes
    for n in DEMO_COUNTERS:
        keys.add_device(kdir, f"counter-{n}", "counter", n)
    (data / "tickets").mkdir(parents=True, exist_ok=True)
    port = args.port or free_port()
    broker_addr = f"127.0.0.1:{port}"
    web_port = free_port()
    while web_port in (port, port + 1):  # the broker binds N and N+1
        web_port = free_port()
    web_url = f"http://127.0.0.1:{web_port}"
    py = [sys.executable, "-m", "queuehall.cli"]
    sim = demo_start(config)
    from queuehall.broker.storage import open_store
    from queuehall.simulation import DEMO_PINS, install_demo_pins

    db_url = f"sqlite:///{data / 'hall.db'}"
    store = open_store(db_url)  # the demo's clerks' PINs, hashed into its own database
    try:
        install_demo_pins(store, config)
    finally:
        store.close()
    # The printed tickets' QR codes lead to the demo's web gateway (docs/web.md).
    broker_cmd = [*py, "broker", "--config", config_path, "--db", db_url,
                  "--port", str(port), "--keys", str(kdir), "--public-url", web_url]
    if sim:
        broker_cmd += ["--sim-start", sim]
        print(f"The hall is closed now; the demo runs on a simulated clock from {sim}.")

    def device(name: str) -> list[str]:
        return ["--broker", broker_addr, "--key", str(kdir / "secret" / f"{name}.key_secret"),
                "--server-key", str(kdir / "broker.key")]

    state_file = data / DEMO_STATE_FILE
    children = Children()
    stopped_by: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        stopped_by.append(signal.Signals(signum).name)

    # Handlers first: a signal while the children start stops the ones already started.
    stop_signals = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, on_signal) for sig in stop_signals}
    failed: str | None = None
    try:
        broker = children.start("broker", broker_cmd)
        admin = Security.from_files(str(kdir / "secret" / f"{DEMO_ADMIN}.key_secret"), str(kdir / "broker.key"))
        if not wait_until_answering(broker_addr, security=admin, timeout=BROKER_START_SECONDS,
                                    give_up=lambda: bool(stopped_by) or broker.poll() is not None):
            if not stopped_by:
                code = broker.poll()
                failed = (f"the broker did not start (exit code {code})" if code is not None
                          else f"the broker did not answer within {BROKER_START_SECONDS:.0f} s")
        else:
            from queuehall.pins import hash_pin
            from queuehall.simulation import DEMO_COST

            # The demo kiosk's staff PIN, set as an installer sets one (queuehall kiosk-pin): only its hash.
            children.start("kiosk", [*py, "kiosk", *device("kiosk-1"), "--windowed",
                                     "--printer", args.printer or f"file:{data / 'tickets'}",
                                     "--state-dir", str(data / "kiosk"),
                                     "--pin-hash", hash_pin(DEMO_KIOSK_PIN, DEMO_COST)])
            for n in DEMO_COUNTERS:
                children.start(f"counter-{n}", [*py, "counter", "--counter", str(n), *device(f"counter-{n}"),
                                                "--windowed"])
            children.start("display", [*py, "display", *device("wall-1"), "--windowed"])
            children.start("web", [*py, "web", *device("web-1"), "--listen", web_url.removeprefix("http://"),
                                   "--public-url", web_url, "--log-level", "warning"])
            page = demo_ticket_page(web_url, broker_addr, admin, config, lambda: bool(stopped_by))
            if page:
                print(f"queuehall demo: a ticket's page on the web (扫码查看排队进度): {page}", flush=True)
            state = {"pid": os.getpid(), "broker": broker_addr, "web": web_url, "children": children.pids(),
                     "keys": str(kdir), "admin_key": str(kdir / "secret" / f"{DEMO_ADMIN}.key_secret"),
                     "server_key": str(kdir / "broker.key")}
            state_file.write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
            clerks = ", ".join(f"{n}号窗口 {c.id}/{DEMO_PINS.get(c.id, '?')}" for n in DEMO_COUNTERS
                               for k in [config.counter(n)] if k
                               for c in [config.clerk(k.clerk_a)] if c)
            print(f"queuehall demo running: broker {broker_addr}, data in {data}/. Sign in with {clerks}. "
                  f"Kiosk staff PIN {DEMO_KIOSK_PIN}. Close any window or press Ctrl-C to stop.")
            print("queuehall demo: processes " + ", ".join(f"{k} {v}" for k, v in children.pids().items())
                  + f" (also in {state_file})", flush=True)
            while not stopped_by:
                ended = children.first_exited()
                if ended is not None:
                    name, code = ended
                    if code != 0:
                        failed = f"the {name} ended with exit code {code}"
                    else:
                        print(f"queuehall demo: the {name} window was closed; stopping the hall.", flush=True)
                    break
                time.sleep(0.2)
    finally:
        children.stop()
        with contextlib.suppress(OSError):
            state_file.unlink()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopped_by:
        print(f"queuehall demo: stopped ({stopped_by[0]}); every process has ended.", flush=True)
    if failed:
        print(f"queuehall demo: {failed}; the other processes were stopped.", file=sys.stderr, flush=True)
        return 1
    return 0


def local_day(config: Any, value: str | None) -> Any:
    """The day to simulate: ``value``, else the last ordinary working day before today."""
    from datetime import date

    from queuehall.broker.hours import OpeningHours

    if value:
        return date.fromisoformat(value)
    hours = OpeningHours(config.hours, config.timezone)
    d = datetime.now(UTC).astimezone(ZoneInfo(config.timezone)).date()
    for _ in range(30):
        d -= timedelta(days=1)
        periods = hours.periods_on(d)
        if periods and periods[0].start.hour <= 9 and d.weekday() < 5:
            return d
    return d
