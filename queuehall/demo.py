"""``queuehall demo``: a whole hall on one machine.

* ``queuehall demo`` starts the broker, a kiosk, two counters (a business window and
  the fee window) and a hall display as separate processes, wired together with fresh
  CurveZMQ keys, an SQLite database in the demo data folder and a file printer.
  Closing any window (or Ctrl-C) stops them all.
* ``queuehall demo --headless --out DIR`` runs a simulated busy morning through the
  real broker and the real screens offscreen and leaves evidence in DIR (see
  :func:`run_headless`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

DEMO_COUNTERS = (1, 11)  # a passport window and the unified fee window (统一收费)


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run a whole hall on this machine (or headless, leaving evidence)")
    p.add_argument("--headless", action="store_true", help="simulate a busy morning offscreen")
    p.add_argument("--out", default="demo-out", help="folder for the headless demo's evidence")
    p.add_argument("--data", default="demo-data", help="folder for the interactive demo's database, keys, tickets")
    p.add_argument("--config", default=None, help="hall configuration (default config/hall.toml)")
    p.add_argument("--port", type=int, default=0, help="broker port (default: a free one)")
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


def free_port() -> int:
    """A free TCP port P on 127.0.0.1 whose neighbour P+1 (the event socket) is free too."""
    import socket

    for _ in range(100):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
        if port >= 65535:
            continue
        try:
            with socket.socket() as b:
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair found")


def demo_start(config: Any) -> str | None:
    """A ``--sim-start`` for the demo: now if the hall is issuing, else its next opening."""
    from queuehall.broker.hours import OpeningHours

    hours = OpeningHours(config.hours, config.timezone)
    now = datetime.now(UTC)
    if hours.issue_window(now, 30).state == "open":
        return None
    nxt = hours.next_issue_start(now, 30) or now
    return nxt.astimezone(ZoneInfo(config.timezone)).strftime("%Y-%m-%dT%H:%M")


def run_interactive(args: argparse.Namespace) -> int:
    from queuehall.broker import keys
    from queuehall.broker.config import DEFAULT_CONFIG, ConfigError, load_config

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
    data = Path(args.data)
    kdir = data / "keys"
    if kdir.exists():
        shutil.rmtree(kdir)  # fresh keys every run
    keys.init_keys(kdir)
    keys.add_device(kdir, "kiosk-1", "kiosk")
    keys.add_device(kdir, "wall-1", "display")
    for n in DEMO_COUNTERS:
        keys.add_device(kdir, f"counter-{n}", "counter", n)
    (data / "tickets").mkdir(parents=True, exist_ok=True)
    port = args.port or free_port()
    broker_addr = f"127.0.0.1:{port}"
    py = [sys.executable, "-m", "queuehall.cli"]
    sim = demo_start(config)
    broker_cmd = [*py, "broker", "--config", config_path, "--db", f"sqlite:///{(data / 'hall.db').resolve()}",
                  "--port", str(port), "--keys", str(kdir)]
    if sim:
        broker_cmd += ["--sim-start", sim]
        print(f"The hall is closed now; the demo runs on a simulated clock from {sim}.")

    def device(name: str) -> list[str]:
        return ["--broker", broker_addr, "--key", str(kdir / "secret" / f"{name}.key_secret"),
                "--server-key", str(kdir / "broker.key")]

    procs: list[subprocess.Popen[bytes]] = [subprocess.Popen(broker_cmd)]
    time.sleep(0.5)
    procs.append(subprocess.Popen([*py, "kiosk", *device("kiosk-1"), "--windowed",
                                   "--printer", f"file:{data / 'tickets'}"]))
    for n in DEMO_COUNTERS:
        procs.append(subprocess.Popen([*py, "counter", "--counter", str(n), *device(f"counter-{n}"), "--windowed"]))
    procs.append(subprocess.Popen([*py, "display", *device("wall-1"), "--windowed"]))
    clerks = ", ".join(f"{n}号窗口 {c.clerk_a}/{c.pin}" for n in DEMO_COUNTERS
                       for c in [config.clerk(config.counter(n).clerk_a)] if c)  # type: ignore[union-attr]
    print(f"queuehall demo running: broker {broker_addr}, data in {data}/. Sign in with {clerks}. "
          "Close any window or press Ctrl-C to stop.")
    stop = False

    def on_signal(*_: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop and all(p.poll() is None for p in procs):
            time.sleep(0.2)
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 5
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
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
