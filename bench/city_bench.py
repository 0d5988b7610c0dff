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
  side, the city total over all visits, the rankings) over ``--halls`` halls of a six-month history of
  ``--visits`` visits each (1,000,000: the issue's scale), the month of May 2026. One hall's month is
  generated in the shape the engine writes (bench/report_bench.py's loader: arrival curve, no-shows,
  transfers, counter events) and copied in SQL to the other halls under their ids. Only the month is
  loaded: the report reads the period's rows through indexes led by the hall id and the business day, and
  18 × 1M visits with their events (about 80 million rows) do not fit this machine's disk and time. Timed
  *cold* (no facts stored: the halls' reports compute and store them and their report days, docs/reports.md
  "Report days"), one hall at a time and two at a time (``workers``), and *warm* (after ``--prepare --hall
  all``, the nightly run), with the warm time measured apart for the halls' own reports and the city total,
  and the same warm report from the facts (``daily=False``: report days not read), checked equal.
  ``--skip-brokers`` runs this part alone (registered in bench/run.py as ``city_report``).

Scale: this machine has two shared cores. Eighteen brokers, eighteen clients and PostgreSQL share them,
so ``saturation`` measures the machine, not the database.

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

from queuehall.demo import die_with_parent  # noqa: E402

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
    """A PostgreSQL server of our own, durable (scripts/pg.sh switches fsync off for tests, not with
    QUEUEHALL_PG_DURABLE=1)."""
    state = tempfile.mkdtemp(prefix="queuehall-city-pg-")
    env = {"QUEUEHALL_PG_DIR": state, "QUEUEHALL_PG_DURABLE": "1"}
    url = subprocess.run([str(ROOT / "scripts" / "pg.sh"), "start"], env=dict(os.environ, **env), capture_output=True,
                         text=True, check=True).stdout.strip()
    return url, env


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

        def launch(h: str) -> None:
            port = free_port()
            while taken & {port, port + 1, port + 2}:  # not yet bound by an earlier broker: pick again
                port = free_port()
            taken.update({port, port + 1, port + 2})
            ports[h] = port
            procs[h] = subprocess.Popen(
                [sys.executable, "-m", "queuehall.cli", "broker", "--insecure", "--port", str(port),
                 "--config", configs[h].source, "--db", url, "--sim-start", SIM_START],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=die_with_parent())

        for h in configs:
            launch(h)
        for h in configs:
            for attempt in range(5):
                p = procs[h]
                assert p.stdout is not None
                seen = []
                for line in p.stdout:
                    seen.append(line)
                    if "ready on" in line:
                        break
                else:
                    p.wait()
                    # A port picked free was taken meanwhile (a client's ephemeral port): another one.
                    if "Address already in use" in "".join(seen) and attempt < 4:
                        launch(h)
                        continue
                    raise RuntimeError(f"broker {h} did not start: {''.join(seen[-20:])}")
                threading.Thread(target=p.stdout.read, daemon=True).start()  # drain its log
                break
        phases: dict[str, Any] = {}
        acknowledged: dict[str, list[str]] = {h: [] for h in configs}
        for phase, r in (("peak", rate), ("saturation", 0.0)):
            drivers = {h: subprocess.Popen(
                [sys.executable, str(Path(__file__)), "--drive", f"127.0.0.1:{ports[h]}", "--seconds", str(seconds),
                 "--rate", str(r)], cwd=ROOT, stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent())
                for h in configs}
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
    """The city's monthly report over ``n_halls`` halls, each with the month of May of a six-month history of
    ``visits`` visits: one hall's month generated (bench/report_bench.py's loader), copied to the others in
    SQL under their ids (the report reads only the period's rows, through indexes led by the hall id and the
    business day, so the other five months are left out: loading 18 × 1M visits does not fit this machine)."""
    import report_bench  # bench/report_bench.py: the history loader
    from queuehall.broker import storage
    from queuehall.broker.reports import ReportBuilder
    from queuehall.broker.reports.city import build_city, city_table
    from sqlalchemy import func, select, text

    configs = city_configs(n_halls)
    ids = list(configs)
    engine = storage.make_engine(url)
    storage.migrate(engine)
    start, end = report_bench.MONTH
    t0 = time.perf_counter()
    loader = report_bench.Loader(configs[ids[0]], visits)
    loader.days = [d for d in loader.days if start <= d <= end]  # per_day stays the six-month history's
    counts = loader.load(engine)
    generate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for h in ids[1:]:
        with engine.begin() as conn:
            for table in (storage.tickets, storage.visits, storage.events):
                cols = [c.name for c in table.columns if c.name != "hall_id"]
                names = ", ".join(f'"{c}"' for c in cols)
                conn.execute(text(f'INSERT INTO {table.name} (hall_id, {names}) SELECT :h, {names} '
                                  f'FROM {table.name} WHERE hall_id = :first'), {"h": h, "first": ids[0]})
    copy_s = time.perf_counter() - t0
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    with engine.connect() as conn:
        month_visits = conn.execute(select(func.count()).select_from(storage.visits)
                                    .where(storage.visits.c.business_day.between(start, end))).scalar() or 0
    base = configs[ids[0]]
    now = report_bench.datetime(2026, 6, 1, 12, tzinfo=report_bench.UTC)
    timings: dict[str, Any] = {}
    # Cold, one hall at a time (the default): nothing stored (each hall's report stores its facts and report days);
    # then again cold with two halls at a time (``workers=2``).
    t = time.perf_counter()
    rep = build_city(engine, configs, base, start, end, now, workers=1)
    city_table(rep)
    timings["cold_one_at_a_time_s"] = round(time.perf_counter() - t, 2)
    report_bench._clear_facts(engine)
    t = time.perf_counter()
    rep = build_city(engine, configs, base, start, end, now, workers=2)
    city_table(rep)
    timings["cold_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    for cfg in configs.values():
        ReportBuilder(engine, cfg).prepare(start, end, now)
    timings["prepare_all_halls_already_stored_s"] = round(time.perf_counter() - t, 2)
    warm = []
    parts: dict[str, float] = {}
    for _ in range(2):
        t = time.perf_counter()
        again = build_city(engine, configs, base, start, end, now)
        city_table(again)
        warm.append(round(time.perf_counter() - t, 2))
    # Where a warm run's time goes: the halls' own reports, and the city total over every hall's facts.
    t = time.perf_counter()
    for cfg in configs.values():
        ReportBuilder(engine, cfg).build(start, end, "service", now)
    parts["halls_reports_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    ReportBuilder(engine, base, city=True).build(start, end, "hall", now)
    parts["city_total_s"] = round(time.perf_counter() - t, 2)
    timings["warm_s"] = warm
    timings["warm_best_s"] = min(warm)
    timings["warm_parts"] = parts
    assert again.city == rep.city, "a warm city report differs from the cold one"
    # The same report from the facts (report days not read: the code before them), in the same minutes.
    t = time.perf_counter()
    facts = build_city(engine, configs, base, start, end, now, daily=False)
    city_table(facts)
    timings["warm_from_facts_s"] = round(time.perf_counter() - t, 2)
    assert facts.to_dict() == again.to_dict(), "the report from report days differs from the one from the facts"
    with engine.connect() as conn:
        timings["report_days_rows"] = {t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                                       for t in (storage.report_days, storage.report_day_times)}
    engine.dispose()
    return {"halls": len(configs), "history_visits_per_hall": visits, "month": [start.isoformat(), end.isoformat()],
            "month_visits": month_visits, "month_visits_per_hall": month_visits // len(configs),
            "generated_one_hall": counts, "generate_s": round(generate_s, 1), "copy_to_other_halls_s": round(copy_s, 1),
            **timings, "city_issued": rep.city["issued"]}


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
    ap.add_argument("--visits", type=int, default=ISSUE_VISITS,
                    help="visits in each hall's six-month history (its month of May is loaded)")
    ap.add_argument("--skip-report", action="store_true")
    ap.add_argument("--skip-brokers", action="store_true",
                    help="only the city's monthly report (registered in bench/run.py as city_report)")
    ap.add_argument("--drive", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.drive:
        print(json.dumps(drive(args.drive, args.seconds, args.rate)))
        return 0
    if args.quick:
        args.halls, args.seconds, args.visits = min(args.halls, 6), 5.0, 20_000
    out: dict[str, Any] = {"benchmark": "city", "machine": benchlib.machine(note="2 shared cores")}
    pg_env: dict[str, str] | None = None
    admin = args.pg_url
    try:
        if admin is None:
            admin, pg_env = start_pg()
        if not args.skip_brokers:
            brokers_url = fresh_database(admin, "queuehall_city_brokers")
            out["postgresql"] = settings(brokers_url)
            out["brokers"] = brokers_part(brokers_url, args.halls, args.seconds, args.rate)
        else:
            out["postgresql"] = settings(admin)
        if not args.skip_report:
            out["report"] = report_part(fresh_database(admin, "queuehall_city_report"), args.halls, args.visits)
    finally:
        if pg_env is not None:
            stop_pg(pg_env)
    b, r = out.get("brokers"), out.get("report") or {}
    summary = [] if b is None else [
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
        scale = f"{r['halls']} halls × {r['history_visits_per_hall']:,} visits ({r['month_visits']:,} in the month)"
        summary += [
            {"figure": f"city monthly report, {scale}, facts stored (s)", "value": r["warm_best_s"],
             "target": f"≤ {REPORT_TARGET_S:g}",
             "met": (r["warm_best_s"] <= REPORT_TARGET_S
                     if r["halls"] == 18 and r["history_visits_per_hall"] >= ISSUE_VISITS else None)},
            {"figure": "measured apart: the halls' own reports one after another / the city total alone (s)",
             "value": f"{r['warm_parts']['halls_reports_s']} / {r['warm_parts']['city_total_s']}", "target": "",
             "met": None},
            {"figure": "the same report from the facts, report days not read (the code before them) (s)",
             "value": r["warm_from_facts_s"], "target": "", "met": None},
            {"figure": "the same report, cold (the halls' reports store the month's facts and report days first), "
                       "two halls at a time / one at a time (s)",
             "value": f"{r['cold_s']} / {r['cold_one_at_a_time_s']}", "target": "", "met": None},
            {"figure": "report days stored: rows of report_days / report_day_times",
             "value": f"{r['report_days_rows']['report_days']:,} / {r['report_days_rows']['report_day_times']:,}",
             "target": "", "met": None},
        ]
    out["summary"] = summary
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
