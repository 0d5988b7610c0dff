"""Cost of the alert rules per event (docs/supervision.md): the broker runs AlertMonitor.check after every group
of commands, so its time is added to each event at the hall's peak.

A hall of 200 counters (all signed in but 20 closed, 10 paused) and 30 services with 900 people waiting, 60
devices (5 offline) and 20 open 差评 cases; then ``--events`` commands of the peak mix (take, call, start,
finish) on the simulated clock, each followed by one ``check``, timed with perf_counter_ns. Prints JSON with
a top-level ``summary`` list of {figure, value, target, met}.

    .venv/bin/python bench/alerts_bench.py [--events 3000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from queuehall.broker.alerts import AlertMonitor, AlertRules
from queuehall.broker.config import Clerk, Counter, Text
from queuehall.broker.engine import Hall
from queuehall.broker.model import Case

from queuehall.clock import ManualClock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine

from tests.hall_factory import TUESDAY, local, memory_pins, service, small_config

TARGET_US = 1000.0  # under 1 ms per event (issue 17)


def build() -> tuple[Hall, ManualClock, dict[str, dict[str, object]]]:
    services = tuple(service(f"S{i}", chr(65 + i % 26) + chr(65 + i // 26)) for i in range(30))
    counters = tuple(Counter(n, Text(f"{n}号窗口", f"Counter {n}"),
                             (services[n % 30].code, services[(n + 7) % 30].code),
                             clerk_a=f"a{n}", clerk_b=f"b{n}") for n in range(1, 201))
    clerks = tuple(Clerk(f"{p}{n}", Text(f"职员{p}{n}", f"Clerk {p}{n}")) for n in range(1, 201) for p in "ab")
    cfg = replace(small_config(), services=services, counters=counters, clerks=clerks)
    clock = ManualClock(local(TUESDAY, 9, 0))
    hall = Hall(cfg, clock, pins=memory_pins(cfg, {c.id: "1234" for c in clerks}))  # PINs as hashes
    for n in range(1, 181):
        hall.execute("sign_in", {"counter": n, "clerk": f"a{n}", "pin": "1234"})
    for n in range(1, 11):
        hall.execute("pause", {"counter": n, "reason": "break"})
    rng = random.Random(17)
    for _ in range(900):
        hall.execute("take_ticket", {"service": rng.choice(services).code})
    for i in range(20):
        hall.cases[i + 1] = Case(i + 1, i + 1, i + 1, f"A{i:03d}", TUESDAY, "S0", 1, "a1", 1, clock.now(), TUESDAY)
    devices: dict[str, dict[str, object]] = {
        f"dev{i}": {"role": "kiosk" if i % 3 == 0 else "display", "name": f"dev{i}", "online": i >= 5}
        for i in range(60)}
    return hall, clock, devices


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=3000)
    args = ap.parse_args(argv)
    hall, clock, devices = build()
    monitor = AlertMonitor(AlertRules())
    monitor.check(hall, devices, clock.now())  # the first pass raises the standing alerts
    rng = random.Random(4)
    samples: list[float] = []
    cpu: list[float] = []  # the thread's CPU time: what the rules cost, without the time other jobs took the core
    open_counters = list(range(11, 181))
    for _ in range(args.events):
        clock.advance(seconds=1)
        n = rng.choice(open_counters)
        try:
            if rng.random() < 0.4:
                hall.execute("take_ticket", {"service": f"S{rng.randrange(30)}"})
            else:
                c = hall.counters[n]
                if c.ticket_id is None:
                    hall.execute("call_next", {"counter": n})
                elif hall.tickets[c.ticket_id].status == "called":
                    hall.execute("start", {"counter": n})
                else:
                    hall.execute("finish", {"counter": n})
        except Exception:  # an empty queue: the event still happens for the monitor's sake
            pass
        t0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        monitor.check(hall, devices, clock.now())
        samples.append((time.perf_counter_ns() - t0) / 1000)
        cpu.append((time.thread_time_ns() - c0) / 1000)
    samples.sort()
    cpu.sort()
    cpu_p99 = cpu[int(len(cpu) * 0.99) - 1]
    p50 = statistics.median(samples)
    p99 = samples[int(len(samples) * 0.99) - 1]
    out = {
        "benchmark": "alerts", "machine": machine(), "events": args.events, "counters": 200, "services": 30,
        "devices": len(devices),
        "waiting_at_start": 900, "active_alerts": len(monitor.active),
        "check_us": {"p50": round(p50, 1), "p99": round(p99, 1), "max": round(samples[-1], 1),
                     "mean": round(statistics.fmean(samples), 1)},
        "cpu_us": {"p50": round(statistics.median(cpu), 1), "p99": round(cpu_p99, 1), "max": round(cpu[-1], 1)},
        "summary": [
            {"figure": "alert rules per event, CPU time p99 (µs)", "value": round(cpu_p99, 1),
             "target": f"< {TARGET_US:g}", "met": cpu_p99 < TARGET_US},
            {"figure": "alert rules per event, wall time p99 (µs; includes other jobs taking the core)",
             "value": round(p99, 1), "target": "", "met": None},
            {"figure": "alert rules per event, median (µs)", "value": round(p50, 1), "target": f"< {TARGET_US:g}",
             "met": p50 < TARGET_US},
        ],
    }
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
