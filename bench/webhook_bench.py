"""Webhooks and remote tickets through the web gateway: deliveries/s, kill -9, and the REST take rate.

Everything runs as in a hall, each part in its own process on this machine: a broker (``queuehall broker``,
SQLite with ``synchronous=FULL``, the default hall on a simulated Tuesday morning with a large remote quota),
the web gateway (``queuehall web`` with its state file, webhooks on, rate limits out of the way) and a webhook
receiver (a threading ``http.server`` that answers 200 and appends each delivery's ``journal_seq`` and id to a
file). The benchmark process makes the events with a broker client and times what arrives.

Phases, one after the other:

1. **Backlog**: with the gateway stopped, ``--backlog`` events are made (a clerk pausing and resuming
   counter 1: events without tickets, so the hall's numbering is no limit); the gateway is started and
   catches up from the broker's journal. Deliveries/s = events / (last delivery - first delivery).
2. **Live latency**: ``--live`` single events, one at a time: command sent -> delivery received (p50, p99).
3. **kill -9**: a backlog of ``--backlog`` events; the gateway is killed with SIGKILL once a third of
   them was delivered; ``--while-down`` more events are made while it is dead; it is restarted. Counted:
   delivered before the kill, lost (never delivered; must be 0), repeated deliveries (the same id twice:
   at least once), seconds from the restart to the last delivery, deliveries/s after the restart.
4. **Remote tickets over REST**: ``--takes`` ``POST /api/v1/tickets`` with an API token of scope kiosk, one
   client at a time (rate, p50, p99), then ``--concurrency`` clients at once (rate, p99). The issue's peer
   figure, FQM's ticket API measured on this machine, is about 50 issues/s at p50 19 ms.

Prints one JSON object; ``summary`` lists the headline figures (bench/run.py puts them in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import httpx
from benchlib import machine
from queuehall.broker.config import DEFAULT_CONFIG

from queuehall.client import BrokerClient
from queuehall.demo import die_with_parent

CLERK, PIN = "c01a", "4821"  # the default hall's clerk of counter 1
FQM = {"issues_per_s": 50, "p50_ms": 19}


def free_port(pair: bool = False) -> int:
    """The broker's three ports (``pair``: P, P+1 and P+2, the staff event stream) or one for a web server:
    queuehall.demo.free_port, the one finder."""
    from queuehall.demo import free_port as ports

    return ports(3 if pair else 1)


def receiver_main(port: int, out: str) -> None:
    """``--receiver PORT FILE``: the receiver process. One line per accepted delivery: monotonic time, seq, id."""
    f = open(out, "a", buffering=1)  # noqa: SIM115 (lives as long as the process)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seq = json.loads(body)["journal_seq"]
            with lock:
                f.write(f"{time.monotonic():.6f} {seq} {self.headers['X-Queuehall-Delivery']}\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


class Deliveries:
    """What the receiver wrote so far."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> list[tuple[float, int, str]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 3:
                out.append((float(parts[0]), int(parts[1]), parts[2]))
        return out

    def wait_for(self, seqs: set[int], timeout: float) -> list[tuple[float, int, str]]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.read()
            if seqs <= {s for _, s, _ in got} or time.monotonic() > deadline:
                return got
            time.sleep(0.02)


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return round(v[min(len(v) - 1, int(q * len(v)))], 2)


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.port = free_port(pair=True)
        self.endpoint = f"127.0.0.1:{self.port}"
        self.web_port = free_port()
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.state = tmp / "web.db"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.gateway: subprocess.Popen[bytes] | None = None
        config = tmp / "hall.toml"
        text = Path(DEFAULT_CONFIG).read_text(encoding="utf-8")
        # Remote tickets without a quota, and no daily caps: the REST phase measures taking, not refusals.
        text = text.replace("remote_quota = 50 ", "remote_quota = 100000 ")
        text = re.sub(r"(?m)^daily_cap = \d+", "daily_cap = 0", text)
        config.write_text(text, encoding="utf-8")
        self.config = config

    def spawn(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=open(self.tmp / log, "ab"),  # noqa: SIM115
                             preexec_fn=die_with_parent())
        self.procs.append(p)
        return p

    def start_broker(self) -> BrokerClient:
        p = self.spawn([sys.executable, "-m", "queuehall.cli", "broker", "--insecure", "--port", str(self.port),
                        "--config", str(self.config), "--db", f"sqlite:///{self.tmp}/hall.db",
                        "--sim-start", "2026-11-24T09:00"], "broker.log")
        assert p.stdout is not None
        if b"ready on" not in p.stdout.readline():
            raise RuntimeError((self.tmp / "broker.log").read_text())
        return BrokerClient(self.endpoint, timeout=5.0)

    def start_receiver(self) -> str:
        port = free_port()
        p = self.spawn([sys.executable, __file__, "--receiver", str(port), str(self.tmp / "deliveries.txt")],
                       "receiver.log")
        assert p.stdout is not None
        p.stdout.readline()
        return f"http://127.0.0.1:{port}/hook"

    def start_gateway(self) -> None:
        self.gateway = self.spawn(
            [sys.executable, "-m", "queuehall.cli", "web", "--broker", self.endpoint, "--listen",
             f"127.0.0.1:{self.web_port}", "--state", str(self.state), "--limit-token", "100000/100000",
             "--limit-address", "100000/100000", "--log-level", "warning"], "gateway.log")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.web_url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError((self.tmp / "gateway.log").read_text()[-3000:])

    def kill_gateway(self) -> None:
        assert self.gateway is not None
        self.gateway.send_signal(signal.SIGKILL)
        self.gateway.wait(10)

    def stop_gateway(self) -> None:
        assert self.gateway is not None
        self.gateway.send_signal(signal.SIGTERM)
        self.gateway.wait(20)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def make_events(client: BrokerClient, n: int) -> list[int]:
    """``n`` journaled events (counter 1 paused and resumed); their journal numbers."""
    first = int(client.request("events", after=0, limit=0)["last_seq"]) + 1
    for i in range(n):
        client.request("pause" if i % 2 == 0 else "resume", counter=1, reason="break")
    if n % 2:
        client.request("resume", counter=1)
        n += 1
    return list(range(first, first + n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--receiver", nargs=2, metavar=("PORT", "FILE"), help=argparse.SUPPRESS)
    ap.add_argument("--backlog", type=int, default=2000)
    ap.add_argument("--live", type=int, default=100)
    ap.add_argument("--while-down", type=int, default=500)
    ap.add_argument("--takes", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    if args.receiver:
        receiver_main(int(args.receiver[0]), args.receiver[1])
        return
    out: dict[str, Any] = {"machine": machine(), "parameters": vars(args) | {"receiver": None}}
    del out["parameters"]["receiver"]
    with tempfile.TemporaryDirectory(prefix="queuehall-webhook-bench-") as tmpdir:
        tmp = Path(tmpdir)
        b = Bench(tmp)
        try:
            client = b.start_broker()
            client.request("sign_in", counter=1, clerk=CLERK, pin=PIN)
            url = b.start_receiver()
            subscribe = subprocess.run([sys.executable, "-m", "queuehall.cli", "web-hook", "add", url, "--state",
                                        str(b.state)], capture_output=True, text=True, check=True)
            assert json.loads(subscribe.stdout)["status"] == "ok"
            token = json.loads(subprocess.run(
                [sys.executable, "-m", "queuehall.cli", "web-token", "create", "--name", "bench", "--scope", "kiosk",
                 "--state", str(b.state)], capture_output=True, text=True, check=True).stdout)["token"]
            deliveries = Deliveries(tmp / "deliveries.txt")
            b.start_gateway()  # first contact: the cursor starts at the broker's newest event
            b.stop_gateway()

            # 1. backlog
            seqs = make_events(client, args.backlog)
            b.start_gateway()
            got = deliveries.wait_for(set(seqs), 300)
            times = [t for t, s, _ in got if s in set(seqs)]
            span = max(times) - min(times)
            out["backlog"] = {"events": len(seqs), "delivered": len({s for _, s, _ in got} & set(seqs)),
                              "seconds_first_to_last": round(span, 3),
                              "deliveries_per_s": round((len(times) - 1) / span, 1) if span > 0 else None}

            # 2. live latency
            lat = []
            for _ in range(args.live):
                t0 = time.monotonic()
                seq = make_events(client, 1)
                got = deliveries.wait_for(set(seq), 10)
                arrived = [t for t, s, _ in got if s in set(seq)]
                lat.append((min(arrived) - t0) * 1000 if arrived else float("inf"))
            out["live"] = {"events": args.live, "command_to_delivery_ms": {
                "p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "max": pct(lat, 1.0)}}

            # 3. kill -9 mid-stream
            b.stop_gateway()
            before_all = deliveries.read()
            seqs = make_events(client, args.backlog)
            b.start_gateway()
            third = set(seqs[: len(seqs) // 3])
            deliveries.wait_for(third, 120)
            b.kill_gateway()
            killed_at = time.monotonic()
            at_kill = {s for _, s, _ in deliveries.read()} & set(seqs)
            down = make_events(client, args.while_down)
            all_seqs = set(seqs) | set(down)
            restarted = time.monotonic()
            b.start_gateway()
            got = deliveries.wait_for(all_seqs, 300)
            new = got[len(before_all):]
            ids = [d for _, s, d in new if s in all_seqs]
            after = [t for t, s, _ in new if s in all_seqs and t >= restarted]
            out["kill9"] = {
                "events_before_kill": len(seqs), "delivered_at_kill": len(at_kill),
                "events_while_down": len(down), "seconds_dead": round(restarted - killed_at, 2),
                "lost": len(all_seqs - {s for _, s, _ in new}),
                "repeated_deliveries": len(ids) - len(set(ids)),
                "in_order": [s for _, s, _ in _unique(new) if s in all_seqs] == sorted(all_seqs),
                "seconds_restart_to_last_delivery": round(max(after) - restarted, 2) if after else None,
                "deliveries_per_s_after_restart": (round((len(after) - 1) / (max(after) - min(after)), 1)
                                                   if len(after) > 1 else None),
            }

            # 4. remote tickets over REST
            services = [s for s in client.request("snapshot", tickets="none")["state"]["service_order"]]
            headers = {"Authorization": f"Bearer {token}"}
            errors: list[str] = []

            def take(http: httpx.Client, i: int) -> float:
                t0 = time.perf_counter()
                r = http.post(b.web_url + "/api/v1/tickets", headers=headers,
                              json={"service": services[i % len(services)]})
                if r.status_code != 201:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                return (time.perf_counter() - t0) * 1000

            with httpx.Client(timeout=10) as http:
                for i in range(20):  # warm-up
                    take(http, i)
                t0 = time.perf_counter()
                one = [take(http, i) for i in range(args.takes)]
                one_s = time.perf_counter() - t0
            clients = [httpx.Client(timeout=10) for _ in range(args.concurrency)]
            try:
                with ThreadPoolExecutor(args.concurrency) as pool:
                    t0 = time.perf_counter()
                    many = list(pool.map(lambda i: take(clients[i % args.concurrency], i), range(args.takes)))
                    many_s = time.perf_counter() - t0
            finally:
                for c in clients:
                    c.close()
            out["remote_take"] = {
                "sequential": {"requests": args.takes, "per_s": round(args.takes / one_s, 1),
                               "p50_ms": pct(one, 0.5), "p99_ms": pct(one, 0.99)},
                f"concurrent_{args.concurrency}": {"requests": args.takes, "per_s": round(args.takes / many_s, 1),
                                                   "p50_ms": pct(many, 0.5), "p99_ms": pct(many, 0.99)},
                "errors": errors[:5], "error_count": len(errors), "fqm_on_this_machine": FQM,
            }
            b.stop_gateway()
            client.close()
        finally:
            b.close()
    k, rt = out["kill9"], out["remote_take"]
    conc = rt[f"concurrent_{args.concurrency}"]
    out["summary"] = [
        {"figure": "webhook deliveries/s to a local receiver (backlog drain)",
         "value": out["backlog"]["deliveries_per_s"], "target": "", "met": None},
        {"figure": "event → delivery p99 (ms), live", "value": out["live"]["command_to_delivery_ms"]["p99"],
         "target": "", "met": None},
        {"figure": f"kill -9 after {k['delivered_at_kill']} of {k['events_before_kill']} delivered, "
                   f"{k['events_while_down']} more while dead: events lost", "value": k["lost"], "target": "0",
         "met": k["lost"] == 0},
        {"figure": "after kill -9: deliveries repeated (same id; receivers drop them)",
         "value": k["repeated_deliveries"], "target": "", "met": None},
        {"figure": "after kill -9: every event in order", "value": str(k["in_order"]).lower(), "target": "true",
         "met": k["in_order"]},
        {"figure": "after kill -9: restart → last delivery (s)", "value": k["seconds_restart_to_last_delivery"],
         "target": "", "met": None},
        {"figure": "remote tickets over REST, one client: issues/s (FQM: ~50)", "value": rt["sequential"]["per_s"],
         "target": "≥ 50", "met": rt["sequential"]["per_s"] >= FQM["issues_per_s"]},
        {"figure": "remote tickets over REST, one client: p50 / p99 (ms) (FQM p50: 19)",
         "value": f"{rt['sequential']['p50_ms']} / {rt['sequential']['p99_ms']}", "target": "p50 ≤ 19",
         "met": rt["sequential"]["p50_ms"] <= FQM["p50_ms"]},
        {"figure": f"remote tickets over REST, {args.concurrency} clients: issues/s, p99 (ms)",
         "value": f"{conc['per_s']}, {conc['p99_ms']}", "target": "", "met": None},
        {"figure": "remote ticket requests refused or failed", "value": rt["error_count"], "target": "0",
         "met": rt["error_count"] == 0},
    ]
    print(json.dumps(out, ensure_ascii=False, indent=1))


def _unique(rows: list[tuple[float, int, str]]) -> list[tuple[float, int, str]]:
    seen: set[str] = set()
    out = []
    for row in rows:
        if row[2] not in seen:
            seen.add(row[2])
            out.append(row)
    return out


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
