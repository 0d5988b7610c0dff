"""A day-long soak of the screens: does a display's memory stay flat over a whole day of calls?

A wall display runs ten hours a day for years, so what matters is growth, not size. This benchmark runs a real
broker (``queuehall broker --insecure``, fresh SQLite, the default hall on a simulated Tuesday whose clock runs
fast enough that the day's opening hours pass during the run) and three real screen processes, each the
application a hall runs, offscreen:

* a wall display (``queuehall display --size 1920x1080``),
* a counter's own display (``queuehall display --counter 1 --size 1280x800``),
* a kiosk (``queuehall kiosk --windowed``, printing to a file).

A driver in this process plays the citizens and the clerks as the day goes: each round takes tickets across the
services (respecting their daily caps: a refused take is counted by its code and another service is tried) and
has the open counters call, start and finish, so tickets are taken as the day goes, not all up front. Every
``--sample-every`` calls the RSS of each screen process is read from ``/proc``.

Reported per screen: the RSS samples (calls → MB), the RSS after warm-up and at the end, and the growth per
1,000 calls after warm-up (least-squares slope). Target (issue #21): ≤ 10 MB per 1,000 calls. Failures are never
silent: refused commands are counted by code, a screen process that dies ends the run with ``ok: false``, and a
run with fewer calls than asked says so.

Usage::

    .venv/bin/python bench/soak_bench.py [--calls 1500] [--rate 6] [--warmup 300] [--sample-every 50]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import benchlib  # noqa: E402  (bench/benchlib.py, beside this script)
from queuehall.broker.config import DEFAULT_CONFIG, load_config  # noqa: E402
from queuehall.broker.storage import open_store  # noqa: E402

from queuehall.client import BrokerClient, BrokerUnavailable, CommandRefused  # noqa: E402
from queuehall.demo import die_with_parent, free_port  # noqa: E402
from queuehall.simulation import DEMO_PINS, install_demo_pins  # noqa: E402

GROWTH_TARGET_MB_PER_1000 = 10.0
DAY_START, DAY_END = "08:30", "17:00"  # the simulated day the run spans (the default hall's Tuesday)


def rss_mb(pid: int) -> float | None:
    """VmRSS of ``pid`` in MB, None once it has gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def slope_per_1000(points: list[tuple[int, float]]) -> float | None:
    """Least-squares growth in MB per 1,000 calls over ``points`` (calls, MB)."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return round(sum((x - mx) * (y - my) for x, y in points) / sxx * 1000, 2)


def spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(log, "wb"), env=env,
                            preexec_fn=die_with_parent())


def wait_ready(endpoint: str, broker: subprocess.Popen[bytes], log: Path) -> BrokerClient:
    client = BrokerClient(endpoint, timeout=1.0, retries=0)
    deadline = time.monotonic() + 30
    while True:
        try:
            client.request("snapshot", tickets="none")
            return BrokerClient(endpoint, timeout=5.0)
        except BrokerUnavailable:
            if time.monotonic() > deadline or broker.poll() is not None:
                raise RuntimeError(f"the broker did not start:\n{log.read_text()}") from None
        finally:
            client.close()


class Driver:
    """Citizens and clerks for the day: tickets taken as calls are made."""

    def __init__(self, client: BrokerClient, config: Any) -> None:
        self.client = client
        self.services = [s.code for s in config.services]
        self.counters = {c.number: c for c in config.counters}
        self.pins = {c.id: DEMO_PINS[c.id] for c in config.clerks}
        self.sessions: dict[int, str] = {}
        self.refused: collections.Counter[str] = collections.Counter()
        self.taken = 0
        self.calls = 0
        self._next_service = 0

    def sign_in(self) -> None:
        for number, counter in self.counters.items():
            if counter.clerk_a:
                self.sessions[number] = self.client.request(
                    "sign_in", counter=number, clerk=counter.clerk_a, pin=self.pins[counter.clerk_a])["session"]

    def _try(self, command: str, **args: Any) -> dict[str, Any] | None:
        try:
            return self.client.request(command, **args)
        except CommandRefused as err:
            self.refused[f"{command}:{err.error.get('code')}"] += 1
            return None

    def take(self, n: int) -> None:
        for _ in range(n):
            for _ in range(len(self.services)):
                service = self.services[self._next_service % len(self.services)]
                self._next_service += 1
                if self._try("take_ticket", service=service) is not None:
                    self.taken += 1
                    break

    def round(self) -> int:
        """Every signed-in counter calls, starts and finishes once; returns the calls made."""
        made = 0
        for number, session in self.sessions.items():
            if self._try("call_next", counter=number, session=session) is None:
                continue
            made += 1
            self._try("start", counter=number, session=session)
            self._try("finish", counter=number, session=session)
        self.calls += made
        return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=1500)
    ap.add_argument("--rate", type=float, default=6.0, help="calls per second the clerks make (whole hall)")
    ap.add_argument("--warmup", type=int, default=300, help="calls before growth is measured")
    ap.add_argument("--sample-every", type=int, default=50)
    args = ap.parse_args()
    config = load_config(DEFAULT_CONFIG)
    # The simulated clock runs so that DAY_START..DAY_END passes while the calls are made.
    h0, m0 = map(int, DAY_START.split(":"))
    h1, m1 = map(int, DAY_END.split(":"))
    day_seconds = (h1 * 60 + m1 - h0 * 60 - m0) * 60
    sim_speed = max(1.0, day_seconds / (args.calls / args.rate))
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    qh = [sys.executable, "-m", "queuehall.cli"]
    result: dict[str, Any] = {"benchmark": "screens_soak", "machine": benchlib.machine(), "calls_asked": args.calls,
                              "rate_asked": args.rate, "sim_speed": round(sim_speed, 1),
                              "target_growth_mb_per_1000_calls": GROWTH_TARGET_MB_PER_1000}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    with tempfile.TemporaryDirectory(prefix="queuehall-soak-") as tmp:
        tmpd = Path(tmp)
        store = open_store(f"sqlite:///{tmpd / 'hall.db'}")  # the clerks' PINs, as `queuehall clerks set-pin` sets them
        install_demo_pins(store, load_config())
        store.close()
        procs["broker"] = spawn([*qh, "broker", "--insecure", "--port", str(port), "--db",
                                 f"sqlite:///{tmpd / 'hall.db'}", "--sim-start", f"2026-12-08T{DAY_START}",
                                 "--sim-speed", str(sim_speed)], tmpd / "broker.log", env)
        try:
            client = wait_ready(endpoint, procs["broker"], tmpd / "broker.log")
            screens = {
                "wall_display": [*qh, "display", "--broker", endpoint, "--size", "1920x1080"],
                "counter_display": [*qh, "display", "--counter", "1", "--broker", endpoint, "--size", "1280x800"],
                "kiosk": [*qh, "kiosk", "--windowed", "--broker", endpoint, "--printer",
                          f"file:{tmpd / 'tickets.bin'}"],
            }
            for name, argv in screens.items():
                procs[name] = spawn(argv, tmpd / f"{name}.log", env)
            time.sleep(5)  # the screens load the snapshot and draw once before the day starts
            driver = Driver(client, config)
            driver.sign_in()
            samples: dict[str, list[tuple[int, float]]] = {name: [] for name in screens}
            died: dict[str, str] = {}

            def sample() -> None:
                for name in screens:
                    mb = rss_mb(procs[name].pid)
                    if mb is None or procs[name].poll() is not None:
                        died.setdefault(name, (tmpd / f"{name}.log").read_text(errors="replace")[-2000:])
                    else:
                        samples[name].append((driver.calls, mb))

            sample()
            started = time.monotonic()
            next_sample = args.sample_every
            stalled_rounds = 0
            while driver.calls < args.calls and not died:
                driver.take(len(driver.sessions))
                made = driver.round()
                stalled_rounds = 0 if made else stalled_rounds + 1
                if stalled_rounds > 600:  # nobody called for a minute: the day is over or every cap reached
                    break
                if not made:
                    time.sleep(0.1)  # lunch break or an empty hall: wait for the simulated clock
                if driver.calls >= next_sample:
                    sample()
                    next_sample += args.sample_every
                # Pace the clerks so the simulated day and the calls end together.
                ahead = driver.calls / args.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            elapsed = time.monotonic() - started
            time.sleep(2)  # the screens catch up with the last calls
            sample()
            client.close()
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    per_screen: dict[str, Any] = {}
    for name, points in samples.items():
        after = [(c, mb) for c, mb in points if c >= args.warmup]
        growth = slope_per_1000(after)
        per_screen[name] = {
            "rss_mb_at_start": points[0][1] if points else None,
            "rss_mb_after_warmup": after[0][1] if after else None,
            "rss_mb_at_end": points[-1][1] if points else None,
            "growth_mb_per_1000_calls_after_warmup": growth,
            "met": growth is not None and growth <= GROWTH_TARGET_MB_PER_1000,
            "samples": points,
        }
    result.update({
        "calls_made": driver.calls, "tickets_taken": driver.taken, "seconds": round(elapsed, 1),
        "refused": dict(driver.refused), "screens": per_screen, "died": died,
        "ok": not died and driver.calls >= args.calls,
    })
    if driver.calls < args.calls:
        result["short_because"] = "no ticket could be called for 600 rounds (see refused)"
    print(json.dumps(result, indent=2, ensure_ascii=False))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
