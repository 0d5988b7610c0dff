"""Supervision page benchmark: 200 counters and 30 queues in a real headless Chromium; a change -> visible.

The broker (a child process: the default hall's services cloned to 30 queues, 200 counters of which 180 are
signed in and 10 paused, SQLite, a simulated morning), the gateway (``queuehall web`` in a child process,
a real uvicorn, a manager account in its state file) and Debian's Chromium (headless, Playwright) signed in
on ``/supervision`` at 1920x1080. Then ``--changes`` times a ticket is taken for a random queue; the time is
from sending the command to the page showing that queue's new waiting count (Playwright waits for the cell
in the page; its own round trip, a few ms, is included). Target (issue 17): within 500 ms.

Prints one JSON object with a ``summary`` list (bench/run.py -> docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine
from broker_bench import PIN
from web_bench import cpu_seconds, pct

from queuehall.demo import die_with_parent

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"


def hall(n_counters: int, n_services: int) -> Any:
    """The default hall with its services cloned to ``n_services`` queues and ``n_counters`` counters, each
    serving two queues; no daily caps."""
    from queuehall.broker.config import load_config, parse_config

    data = load_config().to_dict()
    base = data["service"]
    services = []
    for i in range(n_services):
        s = dict(base[i % len(base)])
        s["code"] = f"q{i:02d}"
        s["prefix"] = chr(65 + i % 26) + ("" if i < 26 else chr(65 + i // 26))
        s["name"] = {"zh": f"{s['name']['zh']}{i}", "en": f"{s['name']['en']} {i}"}
        s["daily_cap"] = 0
        services.append(s)
    data["service"] = services
    data["hall"]["number_width"] = 4
    data["clerk"] = [{"id": f"{p}{n}", "name": {"zh": f"{n}号{p.upper()}岗", "en": f"Counter {n} {p.upper()}"}}
                     for n in range(1, n_counters + 1) for p in ("a", "b")]
    data["counter"] = [{"number": n, "name": {"zh": f"{n}号窗口", "en": f"Window {n}"},
                        "services": [f"q{n % n_services:02d}", f"q{(n + 7) % n_services:02d}"],
                        "clerk_a": f"a{n}", "clerk_b": f"b{n}"} for n in range(1, n_counters + 1)]
    return parse_config(data, "supervision_bench")


def broker_main(port: int, db_url: str, counters: int, services: int) -> None:
    die_with_parent(os.getppid())()  # ends with the benchmark, even one killed outright
    import logging

    logging.basicConfig(level=logging.ERROR)
    from broker_bench import sim_start
    from queuehall.broker.server import Broker
    from queuehall.broker.storage import load_hall, open_store

    from queuehall.clock import SimulatedClock
    from queuehall.simulation import install_demo_pins

    config = hall(counters, services)
    store = open_store(db_url, sqlite_synchronous="NORMAL")
    install_demo_pins(store, config, {c.id: PIN for c in config.clerks})
    h = load_hall(config, SimulatedClock(sim_start(time.time()), 1.0), store)
    broker = Broker(h, host="127.0.0.1", port=port)
    broker.bind()
    signal.signal(signal.SIGTERM, lambda *_: broker.stop_event.set())
    broker.serve_forever()
    store.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counters", type=int, default=200)
    ap.add_argument("--services", type=int, default=30)
    ap.add_argument("--changes", type=int, default=30)
    args = ap.parse_args()
    info = machine()
    from playwright.sync_api import sync_playwright
    from queuehall.web.supervision import ManagerStore

    from queuehall.client import BrokerClient
    from queuehall.demo import free_port

    tmp = Path(tempfile.mkdtemp(prefix="supervision-bench-"))
    store = ManagerStore(tmp / "web-state.db")
    store.add("bench", "bench-password")
    store.close()
    bport, wport = free_port(), free_port()
    broker = mp.get_context("spawn").Process(
        target=broker_main, args=(bport, f"sqlite:///{tmp / 'hall.db'}", args.counters, args.services), daemon=True)
    broker.start()
    web = subprocess.Popen([sys.executable, "-m", "queuehall.cli", "web", "--broker", f"127.0.0.1:{bport}",
                            "--listen", f"127.0.0.1:{wport}", "--log-level", "warning",
                            "--state", str(tmp / "web-state.db"), "--no-webhooks"], cwd=ROOT, stdout=subprocess.DEVNULL,
                           preexec_fn=die_with_parent())
    url = f"http://127.0.0.1:{wport}"
    latencies: list[float] = []
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or web.poll() is not None:
                raise RuntimeError("the gateway did not come up")
            time.sleep(0.3)
        c = BrokerClient(f"127.0.0.1:{bport}", client_id="bench", timeout=10)
        for n in range(1, args.counters + 1):
            if n <= args.counters * 9 // 10:
                c.request("sign_in", counter=n, clerk=f"a{n}", pin=PIN)
        for n in range(1, args.counters // 20 + 1):
            c.request("pause", counter=n, reason=c.request("snapshot")["state"]["pause_reasons"][0]["code"])
        rng = random.Random(17)
        codes = [f"q{i:02d}" for i in range(args.services)]
        for _ in range(300):
            c.request("take_ticket", service=rng.choice(codes))
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(url + "/supervision")
            page.fill("input[name=name]", "bench")
            page.fill("input[name=password]", "bench-password")
            page.click("button[type=submit]")
            page.wait_for_selector("#queues tr[data-code]", timeout=30000)
            rows = page.eval_on_selector_all("#counters tbody tr", "els => els.length")
            time.sleep(1.0)
            cpu0 = cpu_seconds(web.pid)
            for _ in range(args.changes):
                code = rng.choice(codes)
                t0 = time.perf_counter()
                waiting = c.request("take_ticket", service=code)["ahead"] + 1
                page.wait_for_function(
                    "([code, n]) => { const td = document.querySelector("
                    "`#queues tr[data-code='${code}'] td:nth-child(2)`); return td && Number(td.textContent) >= n; }",
                    arg=[code, waiting], timeout=10000, polling="raf")
                latencies.append(time.perf_counter() - t0)
                time.sleep(rng.uniform(0.1, 0.4))
            cpu1 = cpu_seconds(web.pid)
            shot = ROOT / "tests" / "artifacts" / "supervision" / "supervision-200-counters.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=False)
            browser.close()
        c.close()
    finally:
        web.terminate()
        web.wait(30)
        broker.terminate()
        broker.join(10)
    result: dict[str, Any] = {
        "counters": args.counters, "services": args.services, "counter_rows_on_page": rows, "changes": args.changes,
        "change_to_visible_ms": {"p50": round(pct(latencies, 0.5) * 1000, 1),
                                 "p99": round(pct(latencies, 0.99) * 1000, 1), "max": round(max(latencies) * 1000, 1)},
        "gateway_cpu_ms_per_change": round((sum(cpu1) - sum(cpu0)) * 1000 / args.changes, 1),
    }
    v = result["change_to_visible_ms"]
    result["summary"] = [
        {"figure": "counters / queues on the page", "value": f"{rows} / {args.services}",
         "target": "200 / 30", "met": rows >= 200 and args.services >= 30},
        {"figure": f"a change → visible in Chromium, p50 (ms), {args.changes} changes", "value": v["p50"],
         "target": "", "met": None},
        {"figure": "a change → visible in Chromium, max (ms)", "value": v["max"], "target": "≤ 500",
         "met": v["max"] <= 500},
        {"figure": "gateway CPU per change (ms)", "value": result["gateway_cpu_ms_per_change"], "target": "",
         "met": None},
    ]
    print(json.dumps({"benchmark": "supervision", "machine": info, **result}, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
