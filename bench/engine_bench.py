"""Benchmark of the hall engine with durable storage; prints one JSON object.

Two measurements (docs/benchmarks.md, section "Engine"):

* **commands** — durable commands per second for a realistic mix (kiosks take tickets
  with request ids, counters call_next → start → finish) on a fresh SQLite file
  (WAL, ``synchronous=FULL`` and ``NORMAL``) and on PostgreSQL when a URL is given.
  Every command is committed before the next one starts, exactly as the broker does.
  The same mix on an in-memory hall (no journal) shows the engine's own share.
* **rebuild** — the time :func:`broker.storage.load_hall` takes to rebuild the state
  from a database holding ``--open`` open tickets of today and ``--history`` historical
  visits (with their tickets and call events), bulk-loaded with Core ``executemany``.

Usage::

    .venv/bin/python bench/engine_bench.py [--quick] [--pg-url URL] [--dir DIR]

``--pg-url`` defaults to ``$QUEUEHALL_BENCH_PG_URL``. The PostgreSQL run drops and
recreates the tables, so never point it at a database you need. The JSON includes the
server's ``fsync`` and ``synchronous_commit`` settings: with either off, commits are not
durable and the figure is not comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import benchlib  # noqa: E402  (bench/benchlib.py, beside this script)
from queuehall.broker import storage  # noqa: E402
from queuehall.broker.config import DEFAULT_HALL_ID, Counter, HallConfig, Text  # noqa: E402
from queuehall.broker.engine import Hall  # noqa: E402
from queuehall.broker.model import CALLED, FINISHED, NO_SHOW, TRANSFERRED, WAITING  # noqa: E402
from sqlalchemy import Engine, insert, text  # noqa: E402

from queuehall.clock import ManualClock  # noqa: E402
from queuehall.errors import HallError  # noqa: E402
from tests.hall_factory import TUESDAY, install_pins, local, memory_pins, small_config  # noqa: E402

UTC_OFFSET = timedelta(hours=8)  # Asia/Shanghai, the test hall's zone (no DST)
QUEUE = 60  # citizens waiting during the command benchmark


def bench_config() -> HallConfig:
    """The test hall with four counters for services P and H (plus the fee counter)."""
    cfg = small_config()
    extra = (Counter(3, Text("3号窗口", "Counter 3"), ("P",), clerk_a="c1b", clerk_b="c2b"),)
    return replace(cfg, counters=(*cfg.counters, *extra))


# ---------------------------------------------------------------------------- commands


def run_mix(hall: Hall, clock: ManualClock, n: int, seed: int = 1) -> dict[str, Any]:
    """Drive ``n`` accepted commands through ``hall``: takes and counter cycles, ~1 s apart.

    Counters 1, 2 and 3 are signed in first (not counted). A counter cycles call_next →
    start → finish; kiosks keep about ``QUEUE`` citizens waiting (a busy morning), taking
    with request ids as the real kiosks do. Returns the count per command and the
    elapsed wall time of the ``n`` commands.
    """
    rng = random.Random(seed)
    sessions = {}
    for counter, clerk in ((1, "c1a"), (2, "c2a"), (3, "c1b")):
        sessions[counter] = hall.execute("sign_in", {"counter": counter, "clerk": clerk, "pin": "1234"})["session"]
    phase = dict.fromkeys(sessions, "idle")
    step = min(1.0, 10_000 / max(n, 1))  # stay inside the morning period (3 h)
    counts: dict[str, int] = {}
    waiting = 0
    done = 0
    kiosk_seq = 0
    t0 = time.perf_counter()
    while done < n:
        clock.advance(step)
        if waiting < QUEUE or rng.random() < 0.25:
            kiosk_seq += 1
            service = "P" if rng.random() < 0.6 else "H"
            prio = "elderly" if rng.random() < 0.1 else None
            hall.execute("take_ticket", {"service": service, "priority": prio},
                         client=f"kiosk{kiosk_seq % 3}", request_id=f"r{kiosk_seq}")
            cmd = "take_ticket"
            waiting += 1
        else:
            counter = rng.choice(list(sessions))
            args = {"counter": counter, "session": sessions[counter]}
            if phase[counter] == "idle":
                try:
                    hall.execute("call_next", args)
                except HallError as err:  # counter 3 serves only P; its queue may be empty
                    if err.code != "QUEUE_EMPTY":
                        raise
                    continue
                cmd, phase[counter] = "call_next", "called"
                waiting -= 1
            elif phase[counter] == "called":
                hall.execute("start", args)
                cmd, phase[counter] = "start", "serving"
            else:
                hall.execute("finish", args)
                cmd, phase[counter] = "finish", "idle"
        counts[cmd] = counts.get(cmd, 0) + 1
        done += 1
    elapsed = time.perf_counter() - t0
    return {"commands": done, "seconds": round(elapsed, 3), "per_second": round(done / elapsed),
            "mix": counts, "mean_ms": round(elapsed / done * 1000, 3)}


def pg_settings(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {k: conn.execute(text(f"SHOW {k}")).scalar() for k in ("fsync", "synchronous_commit",
                                                                        "server_version")}


def reset_pg(url: str) -> None:
    """Drop the hall's tables (and Alembic's version table) so the run starts empty."""
    engine = storage.make_engine(url)
    with engine.begin() as conn:
        storage.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def bench_commands(url: str, n: int, *, sqlite_synchronous: str = "FULL") -> dict[str, Any]:
    """Durable commands per second on a fresh database at ``url``."""
    if not url.startswith("sqlite"):
        reset_pg(url)
    store = storage.open_store(url, sqlite_synchronous=sqlite_synchronous)
    clock = ManualClock(local(TUESDAY, 8, 31))
    install_pins(store, bench_config())
    hall = storage.load_hall(bench_config(), clock, store)
    out = run_mix(hall, clock, n)
    if url.startswith("sqlite"):
        with store.engine.connect() as conn:
            out["journal_mode"] = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            out["synchronous"] = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[
                conn.exec_driver_sql("PRAGMA synchronous").scalar()]
    else:
        out["server"] = pg_settings(store.engine)
    store.engine.dispose()
    return out


def bench_memory(n: int) -> dict[str, Any]:
    """The same mix with no journal: the engine's own cost per command."""
    clock = ManualClock(local(TUESDAY, 8, 31))
    return run_mix(Hall(bench_config(), clock, pins=memory_pins(bench_config())), clock, n)


# ---------------------------------------------------------------------------- rebuild


def _naive_utc(day: date, seconds: float) -> datetime:
    """``seconds`` after 08:30 local on ``day``, as the naive UTC the tables store."""
    return datetime(day.year, day.month, day.day, 8, 30) - UTC_OFFSET + timedelta(seconds=seconds)


def load_history(engine: Engine, n_visits: int, n_open: int, today: date, *, chunk: int = 20_000) -> dict[str, int]:
    """Bulk-insert ``n_visits`` closed visits on past days and ``n_open`` open tickets of ``today``.

    History: 4,000 visits a business day; one ticket in ten went to the fee window and
    back (three visits); outcomes mostly finished, some no-shows and cancellations; a
    ``ticket_called`` event per visit. Today: ``n_open`` tickets, waiting except one per
    open counter. Rows go in with Core ``executemany`` in chunks, not through the engine.
    """
    rng = random.Random(7)
    per_day = 4_000
    n_days = max(1, -(-n_visits // per_day))
    tid = vid = seq = 0
    t_rows: list[dict[str, Any]] = []
    v_rows: list[dict[str, Any]] = []
    e_rows: list[dict[str, Any]] = []
    counts = {"tickets": 0, "visits": 0, "events": 0}

    def flush(force: bool = False) -> None:
        if not force and len(v_rows) < chunk:
            return
        with engine.begin() as conn:
            for table, rows in ((storage.tickets, t_rows), (storage.visits, v_rows), (storage.events, e_rows)):
                if rows:
                    conn.execute(insert(table), [{"hall_id": DEFAULT_HALL_ID, **r} for r in rows])
                    counts[table.name] += len(rows)
                    rows.clear()

    visits_left = n_visits
    for d in range(n_days, 0, -1):
        day = today - timedelta(days=d)
        numbers = {"P": 0, "H": 0}
        day_visits = min(per_day, visits_left)
        made = 0
        while made < day_visits:
            tid += 1
            service = "P" if rng.random() < 0.6 else "H"
            numbers[service] += 1
            issued = _naive_utc(day, made * 2.5)
            hops = [service, "FEE", service] if rng.random() < 0.1 and day_visits - made >= 3 else [service]
            roll = rng.random()
            final = FINISHED if roll < 0.9 else (NO_SHOW if roll < 0.96 else "cancelled")
            at = issued
            for i, svc in enumerate(hops):
                vid += 1
                seq += 1
                called = at + timedelta(minutes=rng.randint(1, 40))
                ended = called + timedelta(minutes=rng.randint(2, 15))
                last = i == len(hops) - 1
                v_rows.append({
                    "id": vid, "ticket_id": tid, "seq": i + 1, "business_day": day, "service": svc,
                    "entered_at": at, "target_counter": None, "note": "", "first_called_at": called,
                    "last_called_at": called, "calls": 1, "serving_at": called + timedelta(seconds=30),
                    "ended_at": ended, "outcome": final if last else TRANSFERRED, "counter": 1,
                    "clerk": "c1a", "post": "A", "out_of_order": None})
                e_rows.append({"seq": seq, "at": called, "business_day": day, "type": "ticket_called",
                               "ticket_id": tid, "service": svc, "counter": 1, "clerk": "c1a",
                               "data": json.dumps({"kind": "call"})})
                at = ended
            made += len(hops)
            prefix = "A" if service == "P" else "B"
            t_rows.append({
                "id": tid, "business_day": day, "service": service, "number": numbers[service],
                "label": f"{prefix}{numbers[service]:03d}", "priority": None, "issued_at": issued,
                "status": final, "queue_service": service, "queue_key": issued, "visit_id": vid,
                "target_counter": None, "counter": None, "recalls": 0, "issued_by": "kiosk1",
                "status_at": at})
            flush()
        visits_left -= made
    numbers = {"P": 0, "H": 0}
    called: dict[int, int] = {}  # counter -> ticket id
    for i in range(n_open):
        tid += 1
        vid += 1
        service = "P" if i % 5 < 3 else "H"
        numbers[service] += 1
        issued = _naive_utc(today, i * 0.5)
        status = CALLED if i < 2 else WAITING
        if status == CALLED:
            called[i + 1] = tid
        v_rows.append({
            "id": vid, "ticket_id": tid, "seq": 1, "business_day": today, "service": service,
            "entered_at": issued, "target_counter": None, "note": "",
            "first_called_at": issued if status == CALLED else None,
            "last_called_at": issued if status == CALLED else None, "calls": int(status == CALLED),
            "serving_at": None, "ended_at": None, "outcome": None, "counter": i + 1 if status == CALLED else None,
            "clerk": None, "post": None, "out_of_order": None})
        t_rows.append({
            "id": tid, "business_day": today, "service": service, "number": numbers[service],
            "label": f"{'A' if service == 'P' else 'B'}{numbers[service]:05d}",
            "priority": "elderly" if i % 10 == 0 else None, "issued_at": issued, "status": status,
            "queue_service": service, "queue_key": issued, "visit_id": vid, "target_counter": None,
            "counter": i + 1 if status == CALLED else None, "recalls": 0, "issued_by": "kiosk1",
            "status_at": issued})
        flush()
    flush(force=True)
    with engine.begin() as conn:
        conn.execute(insert(storage.counter_state), [
            {"hall_id": DEFAULT_HALL_ID, "number": n, "state": "open", "clerk": clerk, "post": "A",
             "session": f"s{n}", "pause_reason": None,
             "ticket_id": called.get(n),
             "since": _naive_utc(today, 0)}
            for n, clerk in ((1, "c1a"), (2, "c2a"))])
    return counts


def bench_rebuild(url: str, n_visits: int, n_open: int, repeats: int) -> dict[str, Any]:
    """Time ``load_hall`` on a database with ``n_open`` open tickets and ``n_visits`` past visits."""
    if not url.startswith("sqlite"):
        reset_pg(url)
    store = storage.open_store(url)
    today = TUESDAY
    t0 = time.perf_counter()
    counts = load_history(store.engine, n_visits, n_open, today)
    fill_s = time.perf_counter() - t0
    if not url.startswith("sqlite"):
        with store.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    clock = ManualClock(local(today, 10))
    cfg = bench_config()
    times = []
    hall = None
    for _ in range(repeats):
        store.engine.dispose()  # each rebuild opens its connection, as a restarted broker does
        t0 = time.perf_counter()
        hall = storage.load_hall(cfg, clock, store)
        times.append(time.perf_counter() - t0)
    assert hall is not None
    t0 = time.perf_counter()
    snap = hall.snapshot()
    snapshot_s = time.perf_counter() - t0
    waiting = sum(s["waiting"] for s in snap["services"])
    store.close()
    fresh = [rebuild_in_new_process(url) for _ in range(repeats)]
    return {"rows": counts, "fill_seconds": round(fill_s, 1), "open_tickets_loaded": len(hall.tickets),
            "waiting": waiting, "load_hall_seconds": [round(t, 3) for t in times],
            "load_hall_median_s": round(statistics.median(times), 3),
            "new_process_load_hall_seconds": [round(t, 3) for t in fresh],
            "new_process_load_hall_median_s": round(statistics.median(fresh), 3),
            "snapshot_seconds": round(snapshot_s, 3)}


def rebuild_in_new_process(url: str) -> float:
    """``load_hall`` timed in a fresh interpreter, as after a real restart (imports not counted)."""
    code = (
        "import sys, time; sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[1] + '/bench')\n"
        "import engine_bench as b\n"
        "from broker import storage\n"
        "store = storage.Store(storage.make_engine(sys.argv[2]))\n"
        "clock = b.ManualClock(b.local(b.TUESDAY, 10))\n"
        "t0 = time.perf_counter(); hall = storage.load_hall(b.bench_config(), clock, store)\n"
        "print(time.perf_counter() - t0, len(hall.tickets))\n")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT), url], check=True, capture_output=True, text=True)
    seconds, loaded = out.stdout.split()
    assert int(loaded) > 0
    return float(seconds)


# ---------------------------------------------------------------------------- main


def fsync_probe(directory: str, n: int = 300) -> dict[str, float]:
    """Latency of append-4-KiB-then-fsync in ``directory``: the floor under a synchronous=FULL commit."""
    times = benchlib.fsync_times(directory, n)
    return {"median_ms": round(statistics.median(times) * 1000, 3),
            "p90_ms": round(sorted(times)[int(n * 0.9)] * 1000, 3),
            "per_second": round(n / sum(times))}



def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return benchlib.machine(sqlite=__import__("sqlite3").sqlite_version)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its results as JSON on stdout; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="a small run (seconds), for CI and smoke tests")
    ap.add_argument("--pg-url", default=os.environ.get("QUEUEHALL_BENCH_PG_URL"),
                    help="PostgreSQL URL (its hall tables are dropped!); default $QUEUEHALL_BENCH_PG_URL")
    ap.add_argument("--dir", default=None, help="directory for the SQLite files (default: a temp dir under /tmp)")
    ap.add_argument("--commands", type=int, default=None, help="commands per durable run")
    ap.add_argument("--history", type=int, default=None, help="historical visits for the rebuild")
    ap.add_argument("--open", type=int, default=None, help="open tickets for the rebuild")
    ap.add_argument("--skip-rebuild", action="store_true")
    args = ap.parse_args(argv)
    n = args.commands or (1_000 if args.quick else 20_000)
    history = args.history if args.history is not None else (20_000 if args.quick else 1_000_000)
    n_open = args.open if args.open is not None else (1_000 if args.quick else 10_000)
    repeats = 3 if args.quick else 5

    result: dict[str, Any] = {"machine": machine(), "started": datetime.now(UTC).isoformat(timespec="seconds"),
                              "commands": {}, "rebuild": {}}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="qh-bench-") as tmp:
        result["sqlite_dir"] = tmp
        result["fsync_4k"] = fsync_probe(tmp)
        result["commands"]["memory"] = bench_memory(n)
        for sync in ("FULL", "NORMAL"):
            url = f"sqlite:///{tmp}/commands-{sync.lower()}.db"
            result["commands"][f"sqlite_{sync.lower()}"] = bench_commands(url, n, sqlite_synchronous=sync)
        if args.pg_url:
            result["commands"]["postgresql"] = bench_commands(args.pg_url, n)
        if not args.skip_rebuild:
            result["rebuild"]["sqlite"] = bench_rebuild(f"sqlite:///{tmp}/rebuild.db", history, n_open, repeats)
            if args.pg_url:
                result["rebuild"]["postgresql"] = bench_rebuild(args.pg_url, history, n_open, repeats)
    result["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
