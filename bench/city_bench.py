"""Benchmark of a city on one PostgreSQL database (issue 18, docs/city.md); prints one JSON object.

Two parts, on a PostgreSQL server of its own (``scripts/pg.sh`` in a temporary folder, with ``fsync``
and ``synchronous_commit`` switched back on: every acknowledged command is on disk) or ``--pg-url``:

* ``brokers``: one real broker process per hall of ``config/beijing-exit-entry`` (18), all on the one
  database, each driven by a client process of its own over ZeroMQ on loopback: a kiosk takes a ticket and
  a counter calls, starts and finishes it (four durable commands a cycle), counters 1-4 signed in. Phase
  ``peak``: every hall paced at ``--rate`` cycles a second (1 by default: 4 commands/s, about a hundred
  times an exit-entry hall's peak of six windows serving a ticket each 10 minutes, 36 tickets an hour);
  phase ``saturation``: every hall's client as fast as its broker answers. Per phase: durable commands
  a second over all halls, and the reply latency p50/p99 of every command. Then a check that nothing
  mixed: every hall's stored tickets are exactly its acknowledged takes, numbered 1..n per service.
* ``report``: the city's monthly report (``queuehall report --hall all``: each hall's full report side by
  side, the city total over all visits, the rankings) over ``--halls`` halls, each with a six-month history
  of ``--visits`` visits loaded in the shape the engine writes (bench/report_bench.py's loader: arrival
  curve, no-shows, transfers, counter events), the month of May 2026. Timed *cold* (no facts stored: the
  halls' reports compute and store them) and *warm* (after ``--prepare --hall all``, the nightly run).

Scale: this machine has two shared cores. Eighteen brokers, eighteen clients and PostgreSQL share them,
so ``saturation`` measures the machine, not the database. The issue's report target (18 halls × 1M
visits, ≤ 10 s) needs 18 million visits loaded, too slow to load here; the report part runs at the
``--visits`` scales per hall (5,000 and 20,000 by default) and the time at the issue's scale is a straight
line through the two (a fixed part, each hall's report, plus a part per visit of the month: every figure
is an aggregate over them), stated in the JSON next to the measured figures.

Usage::

    .venv/bin/python bench/city_bench.py [--quick] [--pg-url URL] [--seconds S] [--rate R] [--visits N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import benchlib  # noqa: E402  (bench/benchlib.py, beside this script)

CITY = ROOT / "config" / "beijing-exit-entry"
SIM_START = "2026-11-24T09:30"  # a Tuesday morning: every hall of the city is open
PIN = "2468"
REPORT_TARGET_S = 10.0
ISSUE_VISITS = 1_000_000  # the issue's history per hall


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))], 2)


# ---------------------------------------------------------------------------- one hall's client (a process)


def drive(endpoint: str, seconds: float, rate: float, first_counter: int = 1) -> dict[str, Any]:
    """Cycles of take → call_next → start → finish on ``endpoint`` for ``seconds`` (``rate`` cycles/s, 0: as
    fast as the broker answers); every command's reply time (ms) and the labels taken."""
    from queuehall.client import BrokerClient, CommandRefused

    c = BrokerClient(endpoint, timeout=30.0, retries=3)
    lat: list[float] = []
    taken: list[str] = []
    refused: dict[str, int] = {}

    def timed(cmd: str, **args: Any) -> dict[str, Any] | None:
        t0 = time.perf_counter()
        try:
            out = c.request(cmd, **args)
        except CommandRefused as err:
            refused[err.code] = refused.get(err.code, 0) + 1
            out = None
        lat.append((time.perf_counter() - t0) * 1000)
        return out

    counters = [first_counter + i for i in range(4)]
    for n in counters:
        c.request("sign_in", counter=n, clerk=f"w{n}a", pin=PIN, takeover=True)
    t_start = time.perf_counter()
    i = 0
    while time.perf_counter() - t_start < seconds:
        if rate > 0:  # open loop: the next cycle starts on its schedule, however late the last one was
            due = t_start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        got = timed("take_ticket", service=("passport", "hk_macao")[i % 2])
        if got:
            taken.append(got["ticket"]["label"])
        n = counters[i % len(counters)]
        if timed("call_next", counter=n):
            timed("start", counter=n)
            timed("finish", counter=n)
        i += 1
    elapsed = time.perf_counter() - t_start
    c.close()
    return {"latencies_ms": [round(x, 3) for x in lat], "taken": taken, "elapsed_s": elapsed, "refused": refused}


# ---------------------------------------------------------------------------- the database


def start_pg() -> tuple[str, dict[str, str]]:
    """A PostgreSQL server of our own, made durable again (scripts/pg.sh switches fsync off for tests)."""
    state = tempfile.mkdtemp(prefix="queuehall-city-pg-")
    env = dict(os.environ, QUEUEHALL_PG_DIR=state)
    url = subprocess.run([str(ROOT / "scripts" / "pg.sh"), "start"], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    from sqlalchemy import create_engine, text

    eng = create_engine(url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        for k, v in (("fsync", "on"), ("synchronous_commit", "on"), ("full_page_writes", "on")):
            conn.execute(text(f"ALTER SYSTEM SET {k} = {v}"))
        conn.execute(text("SELECT pg_reload_conf()"))
    eng.dispose()
    return url, {"QUEUEHALL_PG_DIR": state}


def stop_pg(env: dict[str, str]) -> None:
    subprocess.run([str(ROOT / "scripts" / "pg.sh"), "stop"], env=dict(os.environ, **env), capture_output=True)


def fresh_database(admin_url: str, name: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    eng = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    eng.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def settings(url: str) -> dict[str, str]:
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    with eng.connect() as conn:
        out = {k: str(conn.execute(text(f"SHOW {k}")).scalar())
               for k in ("fsync", "synchronous_commit", "server_version")}
    eng.dispose()
    return out


def city_configs(n: int) -> dict[str, Any]:
    from queuehall.broker.config import load_config

    files = sorted(p for p in CITY.glob("*.toml") if p.stem != "shared")[:n]
    return {p.stem: load_config(p) for p in files}


# ---------------------------------------------------------------------------- part 1: 18 brokers


def brokers_part(url: str, n_halls: int, seconds: float, rate: float) -> dict[str, Any]:
    from queuehall.broker.storage import open_store

    from queuehall.demo import free_port
    from queuehall.pins import Cost, hash_pin

    configs = city_configs(n_halls)
    cheap = Cost(n=16, r=1, p=1)  # the PIN check is not what is measured
    for h, cfg in configs.items():
        s = open_store(url, hall=h, hall_given=True)
        for c in cfg.clerks:
            s.set_pin_hash(c.id, hash_pin(PIN, cheap), by="bench")
        s.close()
    procs: dict[str, subprocess.Popen[str]] = {}
    ports: dict[str, int] = {}
    try:
        taken: set[int] = set()
        for h, cfg in configs.items():
            port = free_port()
            while taken & {port, port + 1, port + 2}:  # not yet bound by an earlier broker: pick again
                port = free_port()
            taken |= {port, port + 1, port + 2}
            ports[h] = port
            procs[h] = subprocess.Popen(
                [sys.executable, "-m", "queuehall.cli", "broker", "--insecure", "--port", str(ports[h]),
                 "--config", cfg.source, "--db", url, "--sim-start", SIM_START],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for h, p in procs.items():
            assert p.stdout is not None
            seen = []
            for line in p.stdout:
                seen.append(line)
                if "ready on" in line:
                    break
            else:
                raise RuntimeError(f"broker {h} did not start: {''.join(seen[-20:])}")
            threading.Thread(target=p.stdout.read, daemon=True).start()  # drain its log
        phases: dict[str, Any] = {}
        acknowledged: dict[str, list[str]] = {h: [] for h in configs}
        for phase, r in (("peak", rate), ("saturation", 0.0)):
            drivers = {h: subprocess.Popen(
                [sys.executable, str(Path(__file__)), "--drive", f"127.0.0.1:{ports[h]}", "--seconds", str(seconds),
                 "--rate", str(r)], cwd=ROOT, stdout=subprocess.PIPE, text=True) for h in configs}
            results = {h: json.loads(d.communicate()[0]) for h, d in drivers.items()}
            lat = [x for res in results.values() for x in res["latencies_ms"]]
            for h, res in results.items():
                acknowledged[h] += res["taken"]
            span = max(res["elapsed_s"] for res in results.values())
            refused: dict[str, int] = {}
            for res in results.values():
                for k, v in res["refused"].items():
                    refused[k] = refused.get(k, 0) + v
            phases[phase] = {"cycles_per_second_per_hall": r or "as fast as answered", "commands": len(lat),
                             "durable_commands_per_second": round(len(lat) / span, 1),
                             "latency_ms": {"p50": percentile(lat, 50), "p99": percentile(lat, 99),
                                            "max": round(max(lat), 1) if lat else None},
                             "refused": refused}
        mixed = check_not_mixed(url, acknowledged)
    finally:
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    return {"halls": len(configs), "seconds_per_phase": seconds, "phases": phases, "not_mixed": mixed}


def check_not_mixed(url: str, acknowledged: dict[str, list[str]]) -> dict[str, Any]:
    """Every hall's stored tickets are exactly the takes its client saw acknowledged, numbered 1..n."""
    from queuehall.broker import storage
    from sqlalchemy import select

    eng = storage.make_engine(url)
    ok = True
    with eng.connect() as conn:
        for h, labels in acknowledged.items():
            stored = sorted(conn.execute(select(storage.tickets.c.label).where(storage.tickets.c.hall_id == h))
                            .scalars())
            if stored != sorted(labels):
                ok = False
            by: dict[str, list[int]] = {}
            for label in labels:
                by.setdefault(label[0], []).append(int(label[1:]))
            if any(sorted(v) != list(range(1, len(v) + 1)) for v in by.values()):
                ok = False
    eng.dispose()
    return {"every_hall_exactly_its_acknowledged_tickets_numbered_1_to_n": ok,
            "tickets": sum(len(v) for v in acknowledged.values())}


# ---------------------------------------------------------------------------- part 2: the city's monthly report


def report_part(url: str, n_halls: int, visits: int) -> dict[str, Any]:
    import report_bench  # bench/report_bench.py: the history loader
    from queuehall.broker import storage
    from queuehall.broker.reports import ReportBuilder
    from queuehall.broker.reports.city import build_city, city_table
    from sqlalchemy import func, select, text

    configs = city_configs(n_halls)
    engine = storage.make_engine(url)
    storage.migrate(engine)
    t0 = time.perf_counter()
    loaded: dict[str, int] = {"tickets": 0, "visits": 0, "events": 0}
    for i, cfg in enumerate(configs.values()):
        counts = report_bench.Loader(cfg, visits, seed=2026 + i).load(engine)
        for k in loaded:
            loaded[k] += counts[k]
    load_s = time.perf_counter() - t0
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    start, end = report_bench.MONTH
    with engine.connect() as conn:
        month_visits = conn.execute(select(func.count()).select_from(storage.visits)
                                    .where(storage.visits.c.business_day.between(start, end))).scalar() or 0
    base = next(iter(configs.values()))
    now = report_bench.datetime(2026, 6, 1, 12, tzinfo=report_bench.UTC)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    rep = build_city(engine, configs, base, start, end, now)
    city_table(rep)
    timings["cold_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    for cfg in configs.values():
        ReportBuilder(engine, cfg).prepare(start, end, now)
    timings["prepare_all_halls_already_stored_s"] = round(time.perf_counter() - t, 2)
    warm = []
    for _ in range(3):
        t = time.perf_counter()
        again = build_city(engine, configs, base, start, end, now)
        city_table(again)
        warm.append(time.perf_counter() - t)
    timings["warm_median_s"] = round(sorted(warm)[1], 2)
    assert again.city == rep.city, "a warm city report differs from the cold one"
    engine.dispose()
    return {"halls": len(configs), "visits_per_hall": visits, "loaded": loaded, "load_s": round(load_s, 1),
            "month": [start.isoformat(), end.isoformat()], "month_visits": month_visits, **timings,
            "city_issued": rep.city["issued"]}


def extrapolate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The report time at the issue's scale from the measured scales: a straight line ``a + b × month's
    visits`` through the two largest (a fixed part per hall, and a part per visit); with one scale only the
    ratio, which overstates it (the fixed part is scaled too)."""
    big = runs[-1]
    month_at_issue = big["month_visits"] * ISSUE_VISITS / big["visits_per_hall"]
    out: dict[str, Any] = {"to_visits_per_hall": ISSUE_VISITS, "month_visits": round(month_at_issue)}
    for key in ("warm_median_s", "cold_s"):
        if len(runs) >= 2:
            lo = runs[-2]
            slope = (big[key] - lo[key]) / max(1, big["month_visits"] - lo["month_visits"])
            fixed = big[key] - slope * big["month_visits"]
            out[key] = round(max(big[key], fixed + slope * month_at_issue), 1)
            out[f"{key}_per_100k_month_visits"] = round(slope * 100_000, 2)
            out["method"] = "linear fit through the two scales measured"
        else:
            out[key] = round(big[key] * month_at_issue / max(1, big["month_visits"]), 1)
            out["method"] = "ratio of visits from one scale (an over-estimate: the fixed part scales too)"
    return out


# ---------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 halls, 5 s phases, 3,000 visits a hall")
    ap.add_argument("--pg-url", default=os.environ.get("QUEUEHALL_BENCH_PG_URL"),
                    help="a PostgreSQL server to use (databases queuehall_city_* are created on it); "
                         "default: a throwaway server of our own")
    ap.add_argument("--halls", type=int, default=18)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each broker phase")
    ap.add_argument("--rate", type=float, default=1.0, help="cycles a second per hall in the peak phase")
    ap.add_argument("--visits", default="5000,20000",
                    help="visits in each hall's six-month history, one report run per comma-separated scale")
    ap.add_argument("--skip-report", action="store_true")
    ap.add_argument("--drive", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.drive:
        print(json.dumps(drive(args.drive, args.seconds, args.rate)))
        return 0
    if args.quick:
        args.halls, args.seconds, args.visits = min(args.halls, 6), 5.0, "3000"
    out: dict[str, Any] = {"benchmark": "city", "machine": benchlib.machine(note="2 shared cores")}
    pg_env: dict[str, str] | None = None
    admin = args.pg_url
    try:
        if admin is None:
            admin, pg_env = start_pg()
        brokers_url = fresh_database(admin, "queuehall_city_brokers")
        out["postgresql"] = settings(brokers_url)
        out["brokers"] = brokers_part(brokers_url, args.halls, args.seconds, args.rate)
        if not args.skip_report:
            runs = [report_part(fresh_database(admin, f"queuehall_city_report_{i}"), args.halls, int(v))
                    for i, v in enumerate(args.visits.split(","))]
            out["report"] = {"runs": runs, "extrapolation": extrapolate(runs)}
    finally:
        if pg_env is not None:
            stop_pg(pg_env)
    b, r = out["brokers"], out.get("report") or {}
    summary = [
        {"figure": f"{b['halls']} brokers at {args.rate} cycles/s each (4 commands a cycle): durable commands/s",
         "value": b["phases"]["peak"]["durable_commands_per_second"], "target": "", "met": None},
        {"figure": f"{b['halls']} brokers at {args.rate} cycles/s each: reply p99 (ms)",
         "value": b["phases"]["peak"]["latency_ms"]["p99"], "target": "", "met": None},
        {"figure": f"{b['halls']} brokers as fast as answered: durable commands/s",
         "value": b["phases"]["saturation"]["durable_commands_per_second"], "target": "", "met": None},
        {"figure": f"{b['halls']} brokers as fast as answered: reply p99 (ms)",
         "value": b["phases"]["saturation"]["latency_ms"]["p99"], "target": "", "met": None},
        {"figure": "every hall's stored tickets = its acknowledged takes, numbered 1..n",
         "value": b["not_mixed"]["every_hall_exactly_its_acknowledged_tickets_numbered_1_to_n"],
         "target": "true", "met": b["not_mixed"]["every_hall_exactly_its_acknowledged_tickets_numbered_1_to_n"]},
    ]
    if r:
        ext = r["extrapolation"]
        for run in r["runs"]:
            summary += [
                {"figure": f"city monthly report, {run['halls']} halls × {run['visits_per_hall']:,} visits "
                           f"({run['month_visits']:,} in the month), facts stored (s)",
                 "value": run["warm_median_s"], "target": "", "met": None},
                {"figure": "the same, cold (the halls' reports store the month's facts) (s)",
                 "value": run["cold_s"], "target": "", "met": None}]
        halls = r["runs"][-1]["halls"]
        summary.append(
            {"figure": f"extrapolated to {halls} halls × {ext['to_visits_per_hall']:,} visits "
                       f"({ext['month_visits']:,} in the month), facts stored (s; {ext['method']})",
             "value": ext["warm_median_s"], "target": f"≤ {REPORT_TARGET_S:g}",
             "met": ext["warm_median_s"] <= REPORT_TARGET_S if halls == 18 else None})
    out["summary"] = summary
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
