"""Durable commands per second through the real broker, with group commit.

Several kiosks send ``take_ticket`` with a window of requests in flight (as a busy
hall's devices do); the broker commits the waiting commands in one transaction and
replies only after it. Prints one JSON object. See docs/benchmarks.md ("Group commit").

    .venv/bin/python bench/group_commit_bench.py [--sync FULL|NORMAL] [--clients 8] [--per-client 300]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import zmq

from broker.config import load_config
from broker.server import Broker
from broker.storage import load_hall, open_store
from queuehall.clock import ManualClock
from queuehall.demo import free_port
from queuehall.protocol import Request, decode_reply, encode_request

SERVICES = ("document_pickup", "unified_fees", "consult_complaint")  # no daily cap in the default hall


def run(sync: str, clients: int, per_client: int, window: int) -> dict[str, object]:
    folder = tempfile.mkdtemp(prefix="qh-gc-bench-")
    store = open_store(f"sqlite:///{folder}/hall.db", sqlite_synchronous=sync)
    clock = ManualClock(datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai")))
    broker = Broker(load_hall(load_config(), clock, store), port=free_port())
    broker.bind()
    thread = threading.Thread(target=broker.serve_forever, daemon=True)
    thread.start()
    done: list[int] = []

    def kiosk(k: int) -> None:
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.linger = 0
        s.connect(f"tcp://127.0.0.1:{broker.port}")
        sent = got = 0
        while got < per_client:
            while sent < per_client and sent - got < window:
                s.send(encode_request(Request(type="take_ticket", args={"service": SERVICES[(k + sent) % 3]},
                                              client=f"kiosk-{k}", id=f"{k}-{sent}")))
                sent += 1
            if not s.poll(10_000):
                break
            if decode_reply(s.recv()).ok:
                got += 1
        done.append(got)
        s.close(0)

    workers = [threading.Thread(target=kiosk, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - t0
    broker.stop_event.set()
    thread.join(10)
    store.close()
    return {"sqlite_synchronous": sync, "clients": clients, "in_flight_per_client": window,
            "commands": sum(done), "seconds": round(seconds, 3), "per_second": round(sum(done) / seconds),
            "largest_group": broker.largest_group}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sync", default="both", choices=["FULL", "NORMAL", "both"])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--per-client", type=int, default=300)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--quick", action="store_true", help="a small run")
    a = p.parse_args()
    per = 50 if a.quick else a.per_client
    syncs = ["FULL", "NORMAL"] if a.sync == "both" else [a.sync]
    print(json.dumps({"benchmark": "group_commit", "nproc": os.cpu_count(), "loadavg": os.getloadavg(),
                      "runs": [run(s, a.clients, per, a.window) for s in syncs]}, indent=2))


if __name__ == "__main__":
    main()
