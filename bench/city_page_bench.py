"""City page benchmark: 18 halls, one broker each, one gateway, open city pages; a change at a hall -> every page.

As Beijing's 18 exit-entry halls (issue 18): ``--halls`` brokers (the default hall with its own name, each in
its own child process, SQLite, a simulated morning), one gateway (``queuehall web`` with one ``--broker
HALL=HOST:PORT`` per hall, a real uvicorn) and this process as ``--pages`` open city pages (SSE streams of
``/api/v1/city/events``, asyncio protocols parsing the frames as they arrive). Then ``--changes`` times a
ticket is taken at a random hall (``take_ticket``, as at its kiosk); for each, the time from sending the
command to each page's first frame showing that hall with its new waiting count. p50/p99/max over every
page and change (target: within a second, p99 <= 1,000 ms), and the bytes a page received per change (only
the changed hall is sent).

Prints one JSON object with a ``summary`` list; docs/benchmarks.md records the figures (bench/run.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine
from web_bench import cpu_seconds, pct

from queuehall.demo import die_with_parent

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "passport"  # the default hall's 护照 service
DISTRICTS = ("dongcheng", "xicheng", "chaoyang", "haidian", "fengtai", "shijingshan", "mentougou", "fangshan",
             "tongzhou", "shunyi", "changping", "daxing", "huairou", "pinggu", "miyun", "yanqing", "xuanwu",
             "chongwen")


def broker_main(port: int, db_url: str, key: str) -> None:
    """One hall's broker (a child process): the default hall named after its district, a simulated 09:00."""
    die_with_parent(os.getppid())()  # ends with the benchmark, even one killed outright
    import logging

    logging.basicConfig(level=logging.ERROR)
    from dataclasses import replace

    from broker_bench import hall_config, sim_start
    from queuehall.broker.config import Text
    from queuehall.broker.server import Broker
    from queuehall.broker.storage import load_hall, open_store

    from queuehall.clock import SimulatedClock

    config = replace(hall_config(12, "hall"), name=Text(f"{key}出入境接待大厅", f"{key.title()} exit-entry hall"))
    store = open_store(db_url, sqlite_synchronous="NORMAL")
    hall = load_hall(config, SimulatedClock(sim_start(time.time()), 1.0), store)
    broker = Broker(hall, host="127.0.0.1", port=port)
    broker.bind()
    signal.signal(signal.SIGTERM, lambda *_: broker.stop_event.set())
    broker.serve_forever()
    store.close()


class CityPage(asyncio.Protocol):
    """One open city page: the halls' views as the frames arrive, with the arrival time of each."""

    def __init__(self) -> None:
        self.halls: dict[str, dict[str, Any]] = {}
        self.arrivals: list[tuple[float, dict[str, Any]]] = []  # (time, hall view) per hall in each frame
        self.bytes = 0
        self.tail = b""
        self.kind = "message"
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"GET /api/v1/city/events HTTP/1.1\r\nHost: bench\r\n\r\n")

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.bytes += len(data)
        lines = (self.tail + data).split(b"\n")
        self.tail = lines.pop()
        for line in lines:
            if line.startswith(b"event: "):
                self.kind = line[7:].strip().decode()
            elif line.startswith(b"data: "):
                for h in orjson.loads(line[6:])["halls"]:
                    self.halls[h["key"]] = h
                    if self.kind == "halls":
                        self.arrivals.append((now, h))
                self.kind = "message"


async def bench(args: argparse.Namespace, wport: int, brokers: list[tuple[str, str]], web_pid: int) -> dict[str, Any]:
    from queuehall.client import BrokerClient

    loop = asyncio.get_running_loop()
    pages = [CityPage() for _ in range(args.pages)]
    for p in pages:
        await loop.create_connection(lambda p=p: p, "127.0.0.1", wport)
    deadline = time.monotonic() + 120
    while not all(len(p.halls) == len(brokers) and all(h["connected"] for h in p.halls.values()) for p in pages):
        if time.monotonic() > deadline:
            raise RuntimeError("the city pages did not see every hall connected")
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    clients = {key: BrokerClient(addr, client_id=f"kiosk-{key}", timeout=10) for key, addr in brokers}
    rng = random.Random(18)
    latencies: list[float] = []
    bytes_per_change: list[int] = []
    missed = 0
    cpu0 = cpu_seconds(web_pid)
    for _ in range(args.changes):
        key = rng.choice([k for k, _a in brokers])
        marks = [len(p.arrivals) for p in pages]
        sizes = [p.bytes for p in pages]
        sent = time.perf_counter()
        reply = await loop.run_in_executor(None, lambda key=key: clients[key].request("take_ticket",
                                                                                     service=SERVICE))
        waiting = int(reply.get("ahead", 0)) + 1
        await asyncio.sleep(args.settle)
        for p, m, b in zip(pages, marks, sizes, strict=True):
            seen = [t for t, h in p.arrivals[m:] if h["key"] == key and
                    any(s["code"] == SERVICE and s["waiting"] >= waiting for s in h["services"])]
            if seen:
                latencies.append(seen[0] - sent)
            else:
                missed += 1
            bytes_per_change.append(p.bytes - b)
    cpu1 = cpu_seconds(web_pid)
    for c in clients.values():
        c.close()
    for p in pages:
        if p.transport is not None:
            p.transport.close()
    return {
        "halls": len(brokers), "pages": args.pages, "changes": args.changes,
        "change_to_page": {"updates": len(latencies), "missed": missed,
                           "p50_ms": round(pct(latencies, 0.5) * 1000, 1),
                           "p99_ms": round(pct(latencies, 0.99) * 1000, 1),
                           "max_ms": round(max(latencies) * 1000, 1) if latencies else None},
        "bytes_per_page_per_change": round(sum(bytes_per_change) / max(1, len(bytes_per_change))),
        "gateway_cpu_ms_per_change": round((sum(cpu1) - sum(cpu0)) * 1000 / args.changes, 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--halls", type=int, default=18)
    ap.add_argument("--pages", type=int, default=200, help="open city pages")
    ap.add_argument("--changes", type=int, default=40)
    ap.add_argument("--settle", type=float, default=1.5, help="seconds to collect the updates of one change")
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    info = machine(fd_limit=hard)
    from queuehall.demo import free_port

    tmp = Path(tempfile.mkdtemp(prefix="city-bench-"))
    ctx = mp.get_context("spawn")
    procs = []
    brokers: list[tuple[str, str]] = []
    for i in range(args.halls):
        key = DISTRICTS[i % len(DISTRICTS)] + ("" if i < len(DISTRICTS) else str(i))
        port = free_port()
        p = ctx.Process(target=broker_main, args=(port, f"sqlite:///{tmp / (key + '.db')}", key), daemon=True)
        p.start()
        procs.append(p)
        brokers.append((key, f"127.0.0.1:{port}"))
    wport = free_port()
    web = subprocess.Popen([sys.executable, "-m", "queuehall.cli", "web",
                            *[a for key, addr in brokers for a in ("--broker", f"{key}={addr}")],
                            "--listen", f"127.0.0.1:{wport}", "--log-level", "warning",
                            "--state", str(tmp / "web-state.db"), "--no-webhooks"], cwd=ROOT,
                           stdout=subprocess.DEVNULL, preexec_fn=die_with_parent())
    try:
        import httpx

        deadline = time.monotonic() + 180
        halls: list[dict[str, Any]] = []
        while True:
            try:
                halls = httpx.get(f"http://127.0.0.1:{wport}/api/v1/city", timeout=2).json()["halls"]
                if all(h["connected"] for h in halls):
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline or web.poll() is not None:
                raise RuntimeError(f"the gateway did not reach every hall: {[h['connected'] for h in halls]}")
            time.sleep(0.3)
        result = asyncio.run(bench(args, wport, brokers, web.pid))
    finally:
        web.terminate()
        web.wait(30)
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(10)
    c = result["change_to_page"]
    result["summary"] = [
        {"figure": f"halls on the city page ({result['pages']} pages open)", "value": result["halls"],
         "target": "18", "met": result["halls"] >= 18},
        {"figure": f"a ticket taken at a hall → every page shows it, p50 (ms), {c['updates']} updates",
         "value": c["p50_ms"], "target": "", "met": None},
        {"figure": "a ticket taken at a hall → every page shows it, p99 (ms)", "value": c["p99_ms"],
         "target": "≤ 1,000", "met": c["p99_ms"] <= 1000 and c["missed"] == 0},
        {"figure": "pages that did not show a change", "value": c["missed"], "target": "0", "met": c["missed"] == 0},
        {"figure": "bytes a page receives per change (only the changed hall)", "value":
         result["bytes_per_page_per_change"], "target": "", "met": None},
        {"figure": "gateway CPU per change (ms)", "value": result["gateway_cpu_ms_per_change"], "target": "",
         "met": None},
    ]
    print(json.dumps({"benchmark": "city", "machine": info, **result}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
