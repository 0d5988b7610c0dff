"""Benchmark of ``queuehall report`` over a busy hall's history; prints one JSON object.

Six months of a large municipal service centre (the services of config/hall.toml, 120
windows, about 1,000,000 visits, 870,000 tickets and 4.5 million events) are bulk-loaded
with Core ``executemany`` in the shape the engine writes them: per-hour arrival curve,
~6 % no-shows (with recalls), cancellations, voided tickets, passport applicants sent to
the fee window and back (three visits), reinstated no-shows, pauses, clerks on A and B
posts. Then, on SQLite and, with ``--pg-url``, on PostgreSQL:

* ``prepare``: storing the report facts of the whole history (the first nightly
  ``queuehall report --prepare``) and of one day (every later night);
* ``reports``: a full monthly report (:meth:`broker.reports.ReportBuilder.build`: every
  figure, every table, then the text table and CSV) for each grouping, *cold* (the month's
  facts not stored yet: the report computes and stores them), *warm* (they are stored) and
  *live* (every day computed on the fly, nothing stored), with the load average. The live
  report must equal the warm one, figure for figure.

Target: under 2 s (docs/benchmarks.md, section "Reports").

Usage::

    .venv/bin/python bench/report_bench.py [--quick] [--pg-url URL] [--sqlite FILE] [--reload]

``--pg-url`` defaults to ``$QUEUEHALL_BENCH_PG_URL``. The history is loaded once and
reused by later runs (``--reload`` rebuilds it); loading drops and recreates the hall's
tables, so never point ``--pg-url`` at a database you need. Event payloads are short
(the real ones carry the ticket's description); the reports never read them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from queuehall.broker import storage  # noqa: E402
from queuehall.broker.config import HallConfig, load_config, parse_config  # noqa: E402
from queuehall.broker.hours import OpeningHours  # noqa: E402
from queuehall.broker.reports import GROUPS, ReportBuilder, to_csv, to_table  # noqa: E402
from sqlalchemy import Engine, create_engine, delete, event, insert, select, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

FIRST_DAY, LAST_DAY = date(2026, 1, 1), date(2026, 6, 30)  # six months the holiday calendar covers
MONTH = (date(2026, 5, 1), date(2026, 5, 31))  # the reported month (with the Labour Day holiday)
COUNTERS = 120
TRANSFERS_PER_TICKET = 0.15  # visits per ticket ≈ 1.15 (fee trips, reinstated no-shows, transfers)
# Relative arrivals by local hour (the morning rush), and by service (per 100 tickets).
HOUR_SHAPE = {8: 1.3, 9: 1.5, 10: 1.1, 11: 0.6, 13: 1.0, 14: 1.2, 15: 1.0, 16: 0.7}
SERVICE_SHARE = {"passport": 14, "hk_macao": 11, "document_pickup": 16, "newborn": 3, "move_in": 4, "move_out": 4,
                 "small_town_hukou": 2, "birth_service_cert": 2, "birth_permit": 2, "only_child_cert": 2,
                 "migrant_marriage_cert": 2, "pension_eligibility": 8, "insurance_subsidy": 3,
                 "unemployment_registration": 5, "minimum_living_allowance": 2, "serious_illness_aid": 1,
                 "low_rent_housing": 1, "eia_approval": 1, "consult_complaint": 9}
FEE_SERVICE = "unified_fees"


def bench_config() -> HallConfig:
    """config/hall.toml scaled to a large centre: each window of the file becomes ten."""
    data = load_config().to_dict()
    counters, clerks = [], []
    for i in range(COUNTERS):
        base = data["counter"][i % len(data["counter"])]
        n = i + 1
        clerks += [{"id": f"k{n:03d}a", "name": {"zh": f"职员{n}A", "en": f"Clerk {n}A"}},
                   {"id": f"k{n:03d}b", "name": {"zh": f"职员{n}B", "en": f"Clerk {n}B"}}]
        counters.append({**base, "number": n, "name": {"zh": f"{n}号窗口", "en": f"Window {n}"},
                         "clerk_a": f"k{n:03d}a", "clerk_b": f"k{n:03d}b"})
    data["counter"], data["clerk"] = counters, clerks
    return parse_config(data, "bench")


class Loader:
    """Generates the history day by day and writes each day in one transaction."""

    def __init__(self, config: HallConfig, visits_target: int, seed: int = 2026) -> None:
        self.cfg = config
        self.hall = config.hall_id  # the rows' hall (docs/city.md)
        self.tz = ZoneInfo(config.timezone)
        self.hours = OpeningHours(config.hours, config.timezone)
        self.rng = random.Random(seed)
        self.days = [d for d in _days(FIRST_DAY, LAST_DAY) if self.hours.periods_on(d)]
        self.per_day = max(1, round(visits_target / len(self.days) / (1 + TRANSFERS_PER_TICKET)))
        self.services = {s.code: s for s in config.services}
        # The shares of config/hall.toml's services; another hall's (a city's: bench/city_bench.py) take their
        # share where named there, 5 otherwise.
        self.share = (SERVICE_SHARE if set(SERVICE_SHARE) <= set(self.services)
                      else {c: SERVICE_SHARE.get(c, 5) for c in self.services if c != FEE_SERVICE})
        self.serving: dict[str, list[int]] = {}
        for c in config.counters:
            for s in c.services:
                self.serving.setdefault(s, []).append(c.number)
        self.ticket_id = self.visit_id = self.seq = 0
        self.counts = {"tickets": 0, "visits": 0, "events": 0, "days": len(self.days)}

    def load(self, engine: Engine) -> dict[str, Any]:
        t0 = time.perf_counter()
        for day in self.days:
            tickets, visits, events = self.day(day)
            for r in (*tickets, *visits, *events):
                r["hall_id"] = self.hall
            with engine.begin() as conn:
                conn.execute(insert(storage.tickets), tickets)
                conn.execute(insert(storage.visits), visits)
                conn.execute(insert(storage.events), events)
            self.counts["tickets"] += len(tickets)
            self.counts["visits"] += len(visits)
            self.counts["events"] += len(events)
        return {**self.counts, "load_s": round(time.perf_counter() - t0, 1)}

    # -- one day ----------------------------------------------------------------------------

    def at(self, day: date, minutes: float) -> datetime:
        """Naive UTC of ``minutes`` after local midnight of ``day`` (how the store keeps times)."""
        local = datetime(day.year, day.month, day.day, tzinfo=self.tz) + timedelta(minutes=minutes)
        return local.astimezone(UTC).replace(tzinfo=None)

    def event(self, events: list[dict[str, Any]], day: date, at: datetime, type_: str, **kw: Any) -> None:
        self.seq += 1
        data = json.dumps({k: v for k, v in kw.items() if k == "reason"} or {"kind": type_[7:]})
        events.append({"seq": self.seq, "at": at, "business_day": day, "type": type_,
                       "ticket_id": kw.get("ticket"), "service": kw.get("service"), "counter": kw.get("counter"),
                       "clerk": kw.get("clerk"), "data": data})

    def day(self, day: date) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        rng = self.rng
        tickets: list[dict[str, Any]] = []
        visits: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        # Counters: A post most days, B post on some; lunch pause; now and then a supervisor pause.
        clerk: dict[int, tuple[str, str]] = {}
        for c in self.cfg.counters:
            post = "B" if rng.random() < 0.15 else "A"
            clerk[c.number] = (c.clerk_b if post == "B" else c.clerk_a, post)
            who = {"counter": c.number, "clerk": clerk[c.number][0]}
            self.event(events, day, self.at(day, 8 * 60 + 20 + rng.random() * 15), "counter_signed_in", **who)
            if rng.random() < 0.2:
                m = 9 * 60 + rng.random() * 120
                self.event(events, day, self.at(day, m), "counter_paused", reason="supervisor", **who)
                self.event(events, day, self.at(day, m + 5 + rng.random() * 20), "counter_resumed", **who)
            self.event(events, day, self.at(day, 11 * 60 + 30 + rng.random() * 20), "counter_paused",
                       reason="break", **who)
            self.event(events, day, self.at(day, 13 * 60 + 25 + rng.random() * 10), "counter_resumed", **who)
            self.event(events, day, self.at(day, 17 * 60 + rng.random() * 30), "counter_signed_out", **who)
        numbers: dict[str, int] = {}
        hours = list(HOUR_SHAPE)
        for _ in range(self.per_day):
            service = rng.choices(list(self.share), weights=list(self.share.values()))[0]
            hour = rng.choices(hours, weights=list(HOUR_SHAPE.values()))[0]
            issued = hour * 60 + (30 + rng.random() * 30 if hour == 8 else rng.random() * 60)
            numbers[service] = numbers.get(service, 0) + 1
            self.ticket(day, service, numbers[service], issued, hour, clerk, tickets, visits, events)
        return tickets, visits, events

    def ticket(self, day: date, service: str, number: int, issued: float, hour: int,
               clerk: dict[int, tuple[str, str]], tickets: list[dict[str, Any]], visits: list[dict[str, Any]],
               events: list[dict[str, Any]]) -> None:
        rng = self.rng
        self.ticket_id += 1
        tid = self.ticket_id
        rush = HOUR_SHAPE[hour]
        status = "finished"
        queue = service
        t = issued
        plan = [service]
        r = rng.random()
        kind = "served"
        r2 = rng.random()
        if r2 < 0.06:
            kind = "no_show"
        elif r2 < 0.07:
            kind = "cancel_waiting"
        elif r2 < 0.072:
            kind = "voided"
        elif service in ("passport", "hk_macao") and r < 0.35 and FEE_SERVICE in self.services:
            plan = [service, FEE_SERVICE, service]  # to the fee window and back
        last_visit = 0
        for i, svc in enumerate(plan):
            self.visit_id += 1
            vid = last_visit = self.visit_id
            entered = t
            wait = min(240.0, rng.lognormvariate(math.log(6 + 10 * rush), 0.8)) if i == 0 else rng.random() * 15
            v: dict[str, Any] = {"id": vid, "ticket_id": tid, "seq": i + 1, "business_day": day, "service": svc,
                                 "entered_at": self.at(day, entered), "target_counter": None, "note": "",
                                 "first_called_at": None, "last_called_at": None, "calls": 0, "serving_at": None,
                                 "ended_at": None, "outcome": None, "counter": None, "clerk": None, "post": None,
                                 "out_of_order": None}
            visits.append(v)
            ev = {"ticket": tid, "service": svc}
            if i == 0:
                self.event(events, day, v["entered_at"], "ticket_issued", **ev)
            if kind == "voided":
                v.update(ended_at=self.at(day, entered + 0.2), outcome="voided")
                self.event(events, day, v["ended_at"], "ticket_voided", **ev)
                status = "voided"
                break
            if kind == "cancel_waiting":
                v.update(ended_at=self.at(day, entered + wait), outcome="cancelled")
                self.event(events, day, v["ended_at"], "ticket_cancelled", **ev)
                status = "cancelled"
                break
            counter = rng.choice(self.serving[svc])
            who = {"counter": counter, "clerk": clerk[counter][0], **ev}
            called = entered + wait
            v.update(first_called_at=self.at(day, called), last_called_at=self.at(day, called), calls=1,
                     counter=counter, clerk=clerk[counter][0], post=clerk[counter][1])
            self.event(events, day, v["first_called_at"], "ticket_called", **who)
            if kind == "no_show" and i == 0:
                recalls = rng.randint(0, 2)
                for k in range(1, recalls + 1):
                    self.event(events, day, self.at(day, called + k * 1.5), "ticket_called", **who)
                v.update(calls=1 + recalls, last_called_at=self.at(day, called + recalls * 1.5),
                         ended_at=self.at(day, called + recalls * 1.5 + 1), outcome="no_show")
                self.event(events, day, v["ended_at"], "ticket_no_show", **who)
                status = "no_show"
                if rng.random() < 0.15:  # reinstated within the grace period, then served
                    kind = "served"
                    t = called + recalls * 1.5 + 5 + rng.random() * 20
                    plan.append(svc)
                    self.event(events, day, self.at(day, t), "ticket_reinstated", **who)
                    continue
                break
            start = called + 0.5 + rng.random() * 1.5
            avg = self.services[svc].avg_service_minutes
            end = start + min(120.0, rng.lognormvariate(math.log(max(avg, 1.0)), 0.45))
            last = i == len(plan) - 1
            v.update(serving_at=self.at(day, start), ended_at=self.at(day, end),
                     outcome="finished" if last else "transferred")
            self.event(events, day, v["serving_at"], "ticket_serving", **who)
            self.event(events, day, v["ended_at"], "ticket_finished" if last else "ticket_transferred", **who)
            status, queue, t = ("finished" if last else "waiting"), svc, end
        tickets.append({"id": tid, "business_day": day, "service": service, "number": number,
                        "label": f"{self.services[service].prefix}{number:04d}", "priority": None,
                        "issued_at": self.at(day, issued), "status": status, "queue_service": queue,
                        "queue_key": self.at(day, issued), "visit_id": last_visit, "target_counter": None,
                        "counter": None, "recalls": 0, "issued_by": "kiosk-1", "status_at": self.at(day, t)})


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# ---------------------------------------------------------------------------- database setup


def prepare(url: str, config: HallConfig, visits: int, reload: bool) -> tuple[Engine, dict[str, Any]]:
    """The database at ``url`` holding the history (loaded now, or by an earlier run with the same size)."""
    marker = {"visits_target": visits, "first": FIRST_DAY.isoformat(), "last": LAST_DAY.isoformat(), "version": 1}
    engine = storage.make_engine(url, sqlite_synchronous="OFF")
    if not reload:
        try:
            with engine.connect() as conn:
                row = conn.execute(select(storage.hall_state.c.value)
                                   .where(storage.hall_state.c.key == "report_bench",
                                          storage.hall_state.c.hall_id == config.hall_id)).scalar()
            if row is not None and json.loads(row)["marker"] == marker:
                storage.migrate(engine)  # a newer schema (e.g. an index) applies to the kept data
                return engine, {**json.loads(row)["counts"], "loaded_by_earlier_run": True}
        except Exception:  # no tables yet, or another schema: load afresh
            pass
    with engine.begin() as conn:
        storage.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    storage.migrate(engine)
    counts = Loader(config, visits).load(engine)
    with engine.begin() as conn:
        conn.execute(insert(storage.hall_state), [{"hall_id": config.hall_id, "key": "report_bench",
                                                   "value": json.dumps({"marker": marker, "counts": counts})}])
    if engine.dialect.name == "postgresql":  # what autovacuum would have done by the next morning
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    return engine, counts


def timed_statements(engine: Engine) -> list[tuple[float, str]]:
    """Record (seconds, first line of SQL) of every statement the engine runs from now on."""
    log: list[tuple[float, str]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("t0", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        log.append((time.perf_counter() - conn.info["t0"].pop(), " ".join(statement.split())[:160]))

    return log


def _clear_facts(engine: Engine, first: date | None = None, last: date | None = None) -> None:
    """Delete the stored report facts (of ``first``..``last``, or all): the next report starts cold."""
    with engine.begin() as conn:
        for rf in (storage.report_facts, storage.report_days, storage.report_day_times):  # and the days added up
            q = delete(rf)
            if first is not None:
                q = q.where(rf.c.business_day.between(first, last or first))
            conn.execute(q)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def bench_prepare(engine: Engine, config: HallConfig) -> dict[str, Any]:
    """``queuehall report --prepare`` timings: the whole history at once (what the first nightly run after
    the upgrade does) and one day (every later night)."""
    now = datetime(2026, 7, 1, 9, tzinfo=UTC)
    _clear_facts(engine)
    load = _load()
    t0 = time.perf_counter()
    done = ReportBuilder(engine, config).prepare(now=now)
    history_s = time.perf_counter() - t0
    day = date(2026, 6, 30)
    _clear_facts(engine, day)
    t0 = time.perf_counter()
    one = ReportBuilder(engine, config).prepare(day, day, now=now)
    return {"history_s": round(history_s, 2), "history_days": len(done["prepared"]), "load_avg": load,
            "one_day_s": round(time.perf_counter() - t0, 3), "one_day_prepared": one["prepared"]}


def bench_reports(engine: Engine, config: HallConfig, repeat: int) -> dict[str, Any]:
    """Seconds for a full monthly report, per grouping (wall clock, each on a new connection):

    * ``cold_s``: the month's facts not stored yet (deleted first): this report computes them and
      stores them (docs/reports.md "How it reads the database");
    * ``warm_median_s``: the median of the next ``repeat - 1`` runs, which read them (two connections
      at once, the default);
    * ``warm_one_connection_s``: one more warm run on a single connection (``parallel=False``);
    * ``live_s``: one run that computes every day on the fly and stores nothing (``stored_facts=False``,
      what a database without report_facts gets).

    ``cpu_s`` is this process's CPU time of the warm runs (SQLite's work, not a server's). Every other
    day of the history is stored (bench_prepare), as a hall running the nightly prepare has it."""
    log = timed_statements(engine)
    now = datetime(2026, 7, 1, 9, tzinfo=UTC)
    out: dict[str, Any] = {}
    for group in GROUPS:
        _clear_facts(engine, *MONTH)
        entry: dict[str, Any] = {"load_avg_before": _load()}
        times, cpu = [], []
        for i in range(repeat):
            if i == repeat - 1:
                log.clear()
            t0, c0 = time.perf_counter(), time.process_time()
            builder = ReportBuilder(engine, config)
            rep = builder.build(*MONTH, group, now=now)
            to_table(rep)
            to_csv(rep)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if i == 0:
                assert len(builder.fact_days.prepared) == len(builder.fact_days.visits), "the cold run stores the month"
            else:
                assert not builder.fact_days.live, "a warm run reads every day from report_facts"
        slowest = sorted(log, reverse=True)[:8]
        t0 = time.perf_counter()
        one = ReportBuilder(engine, config, parallel=False).build(*MONTH, group, now=now)
        to_table(one)
        to_csv(one)
        entry["warm_one_connection_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        live = ReportBuilder(engine, config, stored_facts=False).build(*MONTH, group, now=now)
        to_table(live)
        to_csv(live)
        entry["live_s"] = round(time.perf_counter() - t0, 3)
        if not live.to_dict() == one.to_dict() == rep.to_dict():
            raise AssertionError(f"{group}: the stored facts gave other figures than the facts computed on the fly")
        entry.update(cold_s=round(times[0], 3), warm_median_s=round(statistics.median(times[1:]), 3),
                     warm_runs_s=[round(t, 3) for t in times[1:]],
                     warm_cpu_s=round(statistics.median(cpu[1:]), 3), load_avg_after=_load())
        out[group] = entry
    out["month_visits"] = rep.total["visits"]
    out["slowest_statements_of_a_warm_run"] = [{"s": round(s, 3), "sql": sql} for s, sql in slowest]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="20,000 visits instead of 1,000,000")
    p.add_argument("--visits", type=int, default=None, help="visits in the six months (default 1,000,000)")
    p.add_argument("--sqlite", default="/tmp/queuehall-report-bench.db", help="SQLite file to use")
    p.add_argument("--pg-url", default=os.environ.get("QUEUEHALL_BENCH_PG_URL"), help="PostgreSQL database URL")
    p.add_argument("--reload", action="store_true", help="rebuild the history even if an earlier run left it")
    p.add_argument("--repeat", type=int, default=4, help="runs per grouping (first one reported apart)")
    args = p.parse_args()
    visits = args.visits or (20_000 if args.quick else 1_000_000)
    config = bench_config()
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "sqlite": sqlite3.sqlite_version, "load_avg_before": [round(x, 2) for x in os.getloadavg()]},
        "history": {"from": FIRST_DAY.isoformat(), "to": LAST_DAY.isoformat(), "counters": COUNTERS,
                    "visits_target": visits},
        "report": {"from": MONTH[0].isoformat(), "to": MONTH[1].isoformat(), "target_s": 2.0},
    }
    sqlite_path = Path(args.sqlite if not args.quick else args.sqlite.replace(".db", "-quick.db"))
    backends = [("sqlite", f"sqlite:///{sqlite_path}")]
    if args.pg_url:
        backends.append(("postgresql", args.pg_url))
    for name, url in backends:
        engine, counts = prepare(url, config, visits, args.reload)
        engine.dispose()
        # A new connection for every report, as each `queuehall report` run has.
        engine = storage.make_engine(url) if name == "sqlite" else create_engine(url, poolclass=NullPool)
        entry: dict[str, Any] = {"data": counts}
        if name == "sqlite":
            entry["file_mb"] = round(sqlite_path.stat().st_size / 1e6)
        else:
            with engine.connect() as conn:
                entry["server"] = {k: conn.execute(text(f"SHOW {k}")).scalar()
                                   for k in ("server_version", "shared_buffers", "work_mem")}
        entry["prepare"] = bench_prepare(engine, config)
        entry["reports"] = bench_reports(engine, config, max(2, args.repeat))
        per_group = [v for k, v in entry["reports"].items() if k in GROUPS]
        entry["worst_warm_median_s"] = max(v["warm_median_s"] for v in per_group)
        entry["worst_cold_s"] = max(v["cold_s"] for v in per_group)
        entry["meets_target_warm"] = entry["worst_warm_median_s"] < 2.0
        entry["meets_target_cold"] = entry["worst_cold_s"] < 2.0
        engine.dispose()
        result[name] = entry
    result["machine"]["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
