"""Durable commands per second through the real broker, with group commit.

Several kiosks send ``take_ticket`` with a window of requests in flight (as a busy
hall's devices do); the broker commits the waiting commands in one transaction and
replies only after it. The kiosks run in separate processes at niceness 10 (in a hall
they are other machines); the broker runs in this one. Prints one JSON object. See docs/benchmarks.md ("Group commit").

    .venv/bin/python bench/group_commit_bench.py [--sync FULL|NORMAL] [--clients 8] [--per-client 1000] [--mix]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import threading
import time
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import zmq
from queuehall.broker.config import load_config
from queuehall.broker.server import Broker
from queuehall.broker.storage import load_hall, open_store

from queuehall.clock import ManualClock
from queuehall.demo import free_port
from queuehall.protocol import Request, decode_reply, encode_request
from queuehall.simulation import DEMO_PINS, install_demo_pins

SERVICES = ("document_pickup", "unified_fees", "consult_complaint")  # no daily cap in the default hall


def mixed_hall() -> Any:
    """The default hall without daily caps (a benchmark issues more tickets than a real day)."""
    from queuehall.broker.config import parse_config

    data = load_config().to_dict()
    for s in data["service"]:
        s["daily_cap"] = 0
    return parse_config(data, "group_commit_bench")


def counters(port: int, config_counters: list[tuple[int, str, str]], out: Any, go: Any, stop: Any) -> None:
    """Every counter of the hall in this (client) process, one thread each: sign in, then call_next,
    start, finish as fast as the replies come, until ``stop``. Puts (accepted, refused)."""
    os.nice(10)
    accepted: list[int] = []
    refused: list[int] = []
    ready = threading.Barrier(len(config_counters) + 1)

    def counter(number: int, clerk: str, pin: str) -> None:
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.linger = 0
        s.connect(f"tcp://127.0.0.1:{port}")
        ids = iter(range(10**9))

        def ask(type_: str, **args: Any) -> Any:
            s.send(encode_request(Request(type=type_, args={"counter": number, **args},
                                          client=f"counter-{number}", id=f"c{number}-{next(ids)}")))
            return decode_reply(s.recv()) if s.poll(10_000) else None

        session = ask("sign_in", clerk=clerk, pin=pin).result["session"]
        ready.wait()
        go.wait()
        ok = bad = step = 0
        while not stop.is_set():
            rep = ask(("call_next", "start", "finish")[step], session=session)
            if rep is not None and rep.ok:
                ok += 1
                step = (step + 1) % 3
            else:
                bad += 1  # QUEUE_EMPTY: try again
        accepted.append(ok)
        refused.append(bad)
        s.close(0)

    _run_clients([threading.Thread(target=counter, args=c) for c in config_counters], ready, out)
    out.put(("counters", sum(accepted), sum(refused)))


def kiosks(port: int, clients: int, per_client: int, window: int, first: int, out: Any, go: Any,
           services: tuple[str, ...] = SERVICES) -> None:
    """Kiosk connections ``first``..``first + clients - 1``, one thread each, in this (client) process.
    Connects, says it is ready, and starts sending when ``go`` is set."""
    os.nice(10)  # in a hall the kiosks are other machines: they take no CPU from the broker
    done: list[int] = []
    ready = threading.Barrier(clients + 1)

    def kiosk(k: int) -> None:
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.linger = 0
        s.connect(f"tcp://127.0.0.1:{port}")
        ready.wait()
        go.wait()
        sent = got = 0
        while got < per_client:
            while sent < per_client and sent - got < window:
                service = services[(k + sent) % len(services)]
                s.send(encode_request(Request(type="take_ticket", args={"service": service},
                                              client=f"kiosk-{k}", id=f"{k}-{sent}")))
                sent += 1
            if not s.poll(10_000):
                break
            if decode_reply(s.recv()).ok:
                got += 1
        done.append(got)
        s.close(0)

    _run_clients([threading.Thread(target=kiosk, args=(first + k,)) for k in range(clients)], ready, out)
    out.put(sum(done))


def _run_clients(workers: list[threading.Thread], ready: threading.Barrier, out: Any) -> None:
    """Start a client process's threads, say "ready" once all are connected, wait for them to finish."""
    for w in workers:
        w.start()
    ready.wait()
    out.put("ready")
    for w in workers:
        w.join()


def run(sync: str, clients: int, per_client: int, window: int, procs: int,
        profile: str | None = None, mix: bool = False) -> dict[str, object]:
    folder = tempfile.mkdtemp(prefix="qh-gc-bench-")
    store = open_store(f"sqlite:///{folder}/hall.db", sqlite_synchronous=sync)
    clock = ManualClock(datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    config = mixed_hall() if mix else load_config()
    install_demo_pins(store, config)
    broker = Broker(load_hall(config, clock, store), port=free_port())
    broker.bind()
    serve = broker.serve_forever
    if profile:
        def serve() -> None:
            import cProfile

            prof = cProfile.Profile()
            prof.runcall(broker.serve_forever)
            prof.dump_stats(profile)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    mp = multiprocessing.get_context("spawn")
    out = mp.Queue()
    go = mp.Event()
    stop = mp.Event()
    services = tuple(s.code for s in config.services) if mix else SERVICES
    per_proc = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    workers = [mp.Process(target=kiosks,
                          args=(broker.port, n, per_client, window, sum(per_proc[:i]), out, go, services))
               for i, n in enumerate(per_proc)]
    if mix:
        pins = DEMO_PINS
        workers.append(mp.Process(target=counters, args=(
            broker.port, [(c.number, c.clerk_a, pins[c.clerk_a]) for c in config.counters], out, go, stop)))
    for w in workers:
        w.start()
    for _ in workers:
        assert out.get(timeout=120) == "ready"
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    go.set()
    done = [out.get(timeout=300) for _ in per_proc]  # the kiosks' tickets
    seconds = time.perf_counter() - t0
    stop.set()
    counted = out.get(timeout=60) if mix else ("counters", 0, 0)
    cpu = time.process_time() - cpu0
    for w in workers:
        w.join()
    broker.stop_event.set()
    thread.join(10)
    store.close()
    accepted = sum(done) + counted[1]
    return {"sqlite_synchronous": sync, "mix": "take_ticket + every counter calling, starting, finishing" if mix
            else "take_ticket", "clients": clients, "client_processes": procs, "in_flight_per_client": window,
            "take_ticket": sum(done), "counter_commands": counted[1], "queue_empty_refusals": counted[2],
            "commands": accepted, "seconds": round(seconds, 3), "per_second": round(accepted / seconds),
            "broker_cpu_ms_per_command": round(cpu * 1000 / max(accepted, 1), 3),
            "largest_group": broker.largest_group}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sync", default="both", choices=["FULL", "NORMAL", "both"])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--per-client", type=int, default=1000)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--procs", type=int, default=4, help="client processes the kiosks are spread over")
    p.add_argument("--quick", action="store_true", help="a small run")
    p.add_argument("--profile", help="write the broker thread's cProfile stats here (slows it down)")
    p.add_argument("--mix", action="store_true",
                   help="all 12 counters also call, start and finish (closed loop) while the kiosks issue")
    a = p.parse_args()
    per = 50 if a.quick else a.per_client
    syncs = ["FULL", "NORMAL"] if a.sync == "both" else [a.sync]
    print(json.dumps({"benchmark": "group_commit", "nproc": os.cpu_count(), "loadavg": os.getloadavg(),
                      "runs": [run(s, a.clients, per, a.window, a.procs, a.profile, a.mix) for s in syncs]}, indent=2))


if __name__ == "__main__":
    main()
