"""Web gateway benchmark: many open ticket pages, the call -> page latency, memory per page, REST reads/s.

Three processes on this machine, as in a hall: the broker (in a child process, the default hall without
daily caps, on a simulated morning), the gateway (``queuehall web`` in a child process, a real uvicorn),
and this process as the phones: ``--pages`` Server-Sent Event streams on raw asyncio sockets (each
reads and parses its own stream), one per waiting ticket, and then keep-alive HTTP/1.1 clients for the
REST reads. The file-descriptor limit is raised to its hard limit first.

* **call -> page updated**: a counter calls (``call_next``, then ``finish`` off the clock); for each
  call, the time from sending the command to each page's next ``data:`` message, over every page that
  changed (the called ticket turns into "请到 N 号窗口" and every page behind it in that queue has one
  fewer ahead). p50/p99/max over all of them (target p99 <= 250 ms).
* **memory per open page**: the gateway's RSS with the pages open, minus before, divided by pages.
* **REST reads/s**: ``GET /api/v1/tickets/{token}`` and ``GET /api/v1/services`` from ``--clients``
  keep-alive connections for ``--seconds`` (target >= 3,000/s), with the pages still open. Every client
  is 127.0.0.1 here, so the gateway's per-address rate limit is raised for the run (its capacity is
  measured, not its limit); every answer must be 200.

Prints one JSON object. docs/benchmarks.md records the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine
from broker_bench import PIN

from queuehall.demo import die_with_parent

ROOT = Path(__file__).resolve().parent.parent



def free_port(pair: bool = False) -> int:
    """The broker's three ports (``pair``) or one for the web gateway: queuehall.demo.free_port, the one finder."""
    from queuehall.demo import free_port as ports

    return ports(3 if pair else 1)


def broker_main(port: int, db_url: str, public_url: str, counters: int) -> None:
    """The broker of the benchmark (a child process): the default hall, no caps, a simulated 09:00."""
    die_with_parent(os.getppid())()  # ends with the benchmark, even one killed outright
    import logging

    logging.basicConfig(level=logging.WARNING)
    from dataclasses import replace

    from broker_bench import hall_config, sim_start  # the broker benchmark's hall and morning
    from queuehall.broker.server import Broker
    from queuehall.broker.storage import load_hall, open_store

    from queuehall.clock import SimulatedClock

    config = replace(hall_config(counters, "hall"), public_base_url=public_url)
    store = open_store(db_url, sqlite_synchronous="NORMAL")
    from queuehall.simulation import install_demo_pins

    install_demo_pins(store, config, {c.id: PIN for c in config.clerks})  # PINs live in the database
    hall = load_hall(config, SimulatedClock(sim_start(time.time()), 1.0), store)
    broker = Broker(hall, host="127.0.0.1", port=port)
    broker.bind()
    signal.signal(signal.SIGTERM, lambda *_: broker.stop_event.set())
    broker.serve_forever()
    store.close()


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds a process used so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Page(asyncio.Protocol):
    """One phone: an SSE stream (as the ticket page asks for it, ``?patch=1``: the whole state once, then
    ``event: patch`` frames with the fields that changed), parsed as its bytes arrive; the time each
    message arrived and the page's state after it.

    A protocol rather than a stream reader with a task per page: the 2,000 phones share the gateway's two
    cores in this benchmark, so they are kept as cheap as they can be (their cost is counted in the
    latencies measured, unlike real phones')."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.last: dict[str, Any] | None = None
        self.label = ""
        self.tail = b""
        self.patch = False
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    async def open(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self, "127.0.0.1", port)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(f"GET /api/v1/tickets/{self.token}/events?patch=1 HTTP/1.1\r\nHost: bench\r\n\r\n"
                        .encode())

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        lines = (self.tail + data).split(b"\n")
        self.tail = lines.pop()  # an unfinished line waits for the rest
        for line in lines:  # chunked transfer: the chunk sizes are lines of their own, ignored here
            if line.startswith(b"data: "):
                state = orjson.loads(line[6:])
                if self.patch and self.last is not None:
                    state = {**self.last, **state}
                self.last = state
                self.label = state["label"]
                self.messages.append((now, state))
                self.patch = False
            elif line.startswith(b"event: patch"):
                self.patch = True

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def http_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> int:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


async def rest_reads(port: int, tokens: list[str], clients: int, seconds: float) -> dict[str, Any]:
    counts = [0] * clients
    errors = [0]
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def one(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        while time.perf_counter() < stop:
            path = "/api/v1/services" if n % 4 == 3 else f"/api/v1/tickets/{tokens[(i * 997 + n) % len(tokens)]}"
            t0 = time.perf_counter()
            if await http_get(reader, writer, path) != 200:
                errors[0] += 1
            if n % 10 == 0:
                lat.append(time.perf_counter() - t0)
            n += 1
        counts[i] = n
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(clients)))
    took = time.perf_counter() - t0
    return {"requests": sum(counts), "seconds": round(took, 2), "per_second": round(sum(counts) / took),
            "errors": errors[0], "clients": clients, "latency_ms_p50": round(pct(lat, 0.5) * 1000, 2),
            "latency_ms_p99": round(pct(lat, 0.99) * 1000, 2)}


async def bench(args: argparse.Namespace, web_port: int, broker_addr: str, web_pid: int) -> dict[str, Any]:
    from queuehall.client import BrokerClient

    loop = asyncio.get_running_loop()
    client = BrokerClient(broker_addr, client_id="bench", timeout=10)
    codes = [s["code"] for s in client.request("snapshot")["state"]["services"].values()]
    service = codes[0]  # every page in one queue: each call changes all of them (the worst case)
    t0 = time.perf_counter()
    tokens = [client.request("take_ticket", service=service)["token"] for _ in range(args.pages)]
    take_s = time.perf_counter() - t0
    await asyncio.sleep(1.0)
    rss_before = rss_kb(web_pid)
    pages = [Page(tok) for tok in tokens]
    t0 = time.perf_counter()
    for i in range(0, len(pages), 200):
        await asyncio.gather(*(p.open(web_port) for p in pages[i:i + 200]))
    deadline = time.perf_counter() + 60
    while sum(1 for p in pages if p.messages) < len(pages) and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    open_s = time.perf_counter() - t0
    opened = sum(1 for p in pages if p.messages)
    await asyncio.sleep(2.0)
    rss_open = rss_kb(web_pid)

    # Calls: counter 1 serves this queue.
    session = client.request("sign_in", counter=1, clerk="a1", pin=PIN)["session"]
    latencies: list[float] = []
    called_latencies: list[float] = []
    per_call_pages: list[int] = []
    gw_cpu0, me_cpu0 = cpu_seconds(web_pid), os.times()
    for _ in range(args.calls):
        marks = {id(p): len(p.messages) for p in pages}
        sent = time.perf_counter()
        await loop.run_in_executor(None, lambda: client.request("call_next", counter=1, session=session))
        await asyncio.sleep(args.settle)
        changed = 0
        for p in pages:
            new = p.messages[marks[id(p)]:]
            if new:
                changed += 1
                latencies.append(new[0][0] - sent)
                if new[0][1]["status"] == "called":
                    called_latencies.append(new[0][0] - sent)
        per_call_pages.append(changed)
        await loop.run_in_executor(None, lambda: client.request("start", counter=1, session=session))
        await loop.run_in_executor(None, lambda: client.request("finish", counter=1, session=session))
        await asyncio.sleep(args.settle)
    gw_cpu1, me_cpu1 = cpu_seconds(web_pid), os.times()
    # CPU per call (call_next, start, finish: three rounds of page updates, of which the call's is measured).
    cpu = {"gateway_user_ms": round((gw_cpu1[0] - gw_cpu0[0]) * 1000 / args.calls, 1),
           "gateway_system_ms": round((gw_cpu1[1] - gw_cpu0[1]) * 1000 / args.calls, 1),
           "phones_ms": round((me_cpu1.user + me_cpu1.system - me_cpu0.user - me_cpu0.system) * 1000 / args.calls, 1)}
    rest = await rest_reads(web_port, tokens[args.calls:], args.clients, args.seconds)
    still_open = sum(1 for p in pages if not p.lost.done())
    for p in pages:
        p.close()
    client.close()
    return {
        "pages": args.pages, "pages_opened": opened, "open_seconds": round(open_s, 2),
        "tickets_taken_per_s": round(args.pages / take_s),
        "call_to_page": {
            "calls": args.calls, "pages_changed_per_call": [*per_call_pages[:3], "...", *per_call_pages[-2:]],
            "updates": len(latencies),
            "p50_ms": round(pct(latencies, 0.5) * 1000, 1), "p99_ms": round(pct(latencies, 0.99) * 1000, 1),
            "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
            "called_page_p50_ms": round(pct(called_latencies, 0.5) * 1000, 1),
            "called_page_p99_ms": round(pct(called_latencies, 0.99) * 1000, 1),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        },
        "cpu_per_call": cpu,
        "gateway_rss_mb": {"before_pages": round(rss_before / 1024, 1), "pages_open": round(rss_open / 1024, 1)},
        "gateway_kb_per_open_page": round((rss_open - rss_before) / max(1, opened), 1),
        "rest_reads": rest,
        "pages_still_open_after": still_open,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=2000)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--settle", type=float, default=0.6, help="seconds to collect the updates of one call")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--counters", type=int, default=12)
    ap.add_argument("--profile", metavar="PATH", help="run the gateway under cProfile, its statistics written to PATH")
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    info = machine(fd_limit=hard)
    tmp = Path(tempfile.mkdtemp(prefix="web-bench-"))
    bport, wport = free_port(pair=True), free_port()
    public = f"http://127.0.0.1:{wport}"
    ctx = mp.get_context("spawn")
    broker = ctx.Process(target=broker_main, args=(bport, f"sqlite:///{tmp / 'hall.db'}", public, args.counters),
                         daemon=True)
    broker.start()
    profile = ["-m", "cProfile", "-o", args.profile] if args.profile else []
    web = subprocess.Popen([sys.executable, *profile, "-m", "queuehall.cli", "web", "--broker", f"127.0.0.1:{bport}",
                            "--listen", f"127.0.0.1:{wport}", "--max-streams", str(args.pages + 100),
                            "--log-level", "warning", "--state", str(tmp / "web-state.db"), "--no-webhooks",
                            # All the phones are this one address here: the gateway's capacity is measured,
                            # not its per-address rate limit (docs/web.md, rate limits).
                            "--limit-address", "1000000/1000000"], cwd=ROOT, stdout=subprocess.DEVNULL,
                           preexec_fn=die_with_parent())
    try:
        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{public}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not come up")
            time.sleep(0.2)
        result = asyncio.run(bench(args, wport, f"127.0.0.1:{bport}", web.pid))
    finally:
        # uvicorn re-raises the signal after its shutdown: SIGINT lets cProfile write its statistics first.
        web.send_signal(signal.SIGINT if args.profile else signal.SIGTERM)
        web.wait(30)
        broker.terminate()
        broker.join(10)
    c2p, rest = result["call_to_page"], result["rest_reads"]
    result["summary"] = [
        {"figure": "ticket pages open at once (SSE)", "value": result["pages_opened"], "target": f"≥ {args.pages}",
         "met": result["pages_opened"] >= args.pages},
        {"figure": f"call → page updated p50 (ms), {c2p['updates']} page updates over {args.calls} calls",
         "value": c2p["p50_ms"], "target": "", "met": None},
        {"figure": "call → page updated p99 (ms)", "value": c2p["p99_ms"], "target": "≤ 250",
         "met": c2p["p99_ms"] <= 250},
        {"figure": "call → the called ticket's own page p99 (ms)", "value": c2p["called_page_p99_ms"], "target": "",
         "met": None},
        {"figure": "gateway CPU per call, user + system (ms; call, start and finish each update the pages)",
         "value": round(result["cpu_per_call"]["gateway_user_ms"] + result["cpu_per_call"]["gateway_system_ms"], 1),
         "target": "", "met": None},
        {"figure": "gateway memory per open page (KB of RSS)", "value": result["gateway_kb_per_open_page"],
         "target": "", "met": None},
        {"figure": f"REST reads/s ({rest['clients']} keep-alive clients, pages open)", "value": rest["per_second"],
         "target": "≥ 3,000", "met": rest["per_second"] >= 3000 and rest["errors"] == 0},
        {"figure": "REST read p99 (ms)", "value": rest["latency_ms_p99"], "target": "", "met": None},
    ]
    print(json.dumps({"benchmark": "web", "machine": info, **result}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
