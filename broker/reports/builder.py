"""The whole report: :class:`ReportBuilder` puts the facts and the figures of one period together."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import UTC, date, datetime
from typing import Any

from queuehall.broker.reports.common import (
    GROUPS,
    FactDays,
    Report,
    ReportError,
    _key,
    _sort,
)
from queuehall.broker.reports.days import DayFigures
from queuehall.broker.reports.figures import _row
from sqlalchemy import (
    inspect,
    select,
)


class ReportBuilder(DayFigures):
    """Computes a :class:`Report` for one period from a database."""

    def wait_samples(self, start: date, end: date, now: datetime | None = None) -> dict[str, list[float]]:
        """Every visit's wait in minutes (docs/reports.md "Wait time"), per service, sorted: the data of
        the wait-distribution chart. Reads stored facts but stores none."""
        out: dict[str, list[float]] = {}
        with self.engine.connect() as conn, \
                self._facts(conn, start, end, now or datetime.now(UTC), write=False, materialize=False) as f:
            for service, wait in conn.execute(select(f.c.service, f.c.wait_ms).where(f.c.wait_ms.isnot(None))):
                out.setdefault(service, []).append(wait / 60_000.0)
        return {k: sorted(v) for k, v in sorted(out.items())}

    # -- the whole report -------------------------------------------------------------------

    def build(self, start: date, end: date, group: str = "service", now: datetime | None = None) -> Report:
        """The report for business days ``start``..``end`` (inclusive), rows grouped by ``group``.

        ``now`` (aware; default the system clock) is the moment the report describes: open
        counters count up to it, tickets still waiting have waited until it, and it decides
        which promised dates have passed. Raises :class:`ReportError` for an unknown group
        or a period that ends before it starts. Writes only report_facts (the facts of final days
        not stored yet; docs/reports.md "How it reads the database") and a TEMP table; with
        ``parallel``, reads on a second connection in a second thread at the same time.
        """
        if group not in GROUPS and not (group == "hall" and self.hall is None):
            raise ReportError("REPORT_BAD_GROUP", group=group, choices=", ".join(GROUPS))
        if end < start:
            raise ReportError("REPORT_BAD_PERIOD", detail=f"{end.isoformat()} is before {start.isoformat()}")
        now = now or datetime.now(UTC)
        if self.uses_days(start, end, group):
            return ReportBuilder.build_together([(self, group)], start, end, now)[0]
        as_of = self.hours.business_day(now)
        with ThreadPoolExecutor(1, thread_name_prefix="report") if self.parallel else nullcontext() as pool:
            side = None
            with self.engine.connect() as conn, self._facts(conn, start, end, now) as f:
                if pool is not None and self._second_connection_pays():
                    days = self.fact_days
                    days.parallel = True
                    # What the second connection finds: the days stored before and those stored just now.
                    seen = FactDays(stored=sorted([*days.stored, *days.prepared]), visits=days.visits,
                                    stale=[d for d in days.stale if d not in days.prepared],
                                    live=[d for d in days.live or () if d not in days.prepared])
                    side = pool.submit(self._side_apart, start, end, now, seen)
                ticket_figures = self._ticket_figures(conn, f, start, end)
                completion = self._completion(conn, f, start, end, ticket_figures["served"],
                                              ticket_figures["closed_unserved"], as_of)
                grouped, total, pct = self._visit_figures(conn, f, self.group_expr(f, group))
                if side is None:
                    counters, clerks, hourly, heat = self._side(conn, f, start, end, now)
            if side is not None:
                counters, clerks, hourly, heat = side.result()
        return self._assemble(start, end, group, now, ticket_figures, completion, grouped, total, pct,
                              (counters, clerks, hourly, heat))

    def _assemble(self, start: date, end: date, group: str, now: datetime, ticket_figures: dict[str, Any],
                  completion: dict[str, Any], grouped: dict[Any, dict[str, Any]], total: dict[str, Any],
                  pct: dict[Any, dict[str, Any]], side: tuple[Any, Any, Any, Any],
                  visit_counts: dict[str, dict[str, Any]] | None = None, tables: set[str] | None = None,
                  names: dict[str, dict[str, str | None]] | None = None) -> Report:
        """The :class:`Report` of the figures computed, with the 好差评 and appointment figures of the period
        (``visit_counts``: the clerk assessment's visit figures, already added up)."""
        as_of = self.hours.business_day(now)
        counters, clerks, hourly, heat = side
        tables = self._tables() if tables is None else tables
        if group == "hall" and names is None:
            names = self.hall_names()  # read once, not once per hall
        rows = [{"group": _key(k), **self._label(group, k, names or {}), **_row(v, pct.get(("g", k), {}))}
                for k, v in sorted(grouped.items(), key=lambda kv: _sort(kv[0]))]
        extra: dict[str, Any] = {}
        if "ratings" in tables:
            from queuehall.broker import satisfaction as sat

            rated = sat.satisfaction(self.engine, self.config, start, end, as_of, hall=self.hall)
            raised = sat.alert_rows(self.engine, start, end, self.hall)
            extra = {"satisfaction": rated,
                     "assessment": [] if self.hall is None else sat.assessment(
                         self.engine, self.config, start, end, as_of, hall=self.hall, visit_counts=visit_counts,
                         rated=rated, alerts=raised),
                     "alerts": sat.alerts_per_day(self.engine, start, end, hall=self.hall, alerts=raised)}
        if "bookings" in tables:
            from queuehall.broker.reports.appointments import appointments

            extra["appointments"] = appointments(self.engine, start, end, hall=self.hall)
        return Report(start, end, group, self.config.timezone, now, ticket_figures, completion,
                      {"group": "all", **_row(total, pct.get(None, {}))}, rows, counters, clerks, hourly, heat,
                      **extra, notes=["Percentiles are nearest-rank.",
                             "Matters with a promised completion time are completed in the back office after "
                             "the ticket; queuehall records their acceptance and due date, not their completion."])

    @staticmethod
    def build_together(jobs: list[tuple[ReportBuilder, str]], start: date, end: date, now: datetime,
                       workers: int = 1, halls: list[str] | None = None) -> list[Report]:
        """The reports of several builders on one database (each with its grouping), read from report days
        (docs/reports.md "Report days"): the halls' days are read once for all (one query per table, not one per
        hall), the days not stored yet are added up (a hall's report stores its final ones; ``workers`` halls at
        a time, each on a connection of its own), then each report's figures come off the rows. Every builder
        must use report days for its grouping (:meth:`uses_days`). ``halls``: the database's halls, for a city's
        report (default: read them)."""
        from queuehall.broker.reports.daily import DayData
        from queuehall.broker.storage import Store

        engine = jobs[0][0].engine
        every = {b.hall for b, _g in jobs if b.hall is not None}
        if any(b.hall is None for b, _g in jobs):
            every |= set(Store(engine).halls() if halls is None else halls)
        with engine.connect() as conn:
            data = DayData.read(conn, sorted(every), start, end)
        # The halls first: they store their days, which a city's report then finds stored.
        first = [b for b, _g in jobs if b.hall is not None]
        if workers > 1 and len(first) > 1 and all(b.parallel for b in first):
            with ThreadPoolExecutor(workers, thread_name_prefix="report-days") as pool:
                filled = list(pool.map(lambda b: b.fill_days(data, start, end, now), first))
        else:
            filled = [b.fill_days(data, start, end, now) for b in first]
        for got in filled:
            if got is not None:
                data.add(*got)
        for b, _g in jobs:
            if b.hall is None:
                got = b.fill_days(data, start, end, now)
                if got is not None:
                    data.add(*got)
        tables = jobs[0][0]._tables()
        names = jobs[0][0].hall_names() if any(g == "hall" for _b, g in jobs) else None
        with engine.connect() as conn:
            data.read_times(conn)
            figs = [b.day_figures(conn, data, start, end, group, now) for b, group in jobs]
            # The values of every percentile's minute, of every report: one query.
            values = data.values(conn, set().union(*(fig["wanted"] for fig in figs)))
        out = []
        for (b, group), fig in zip(jobs, figs, strict=True):
            pct = b.percentile_values(fig["picks"], fig["members"], values)
            out.append(b._assemble(start, end, group, now, fig["ticket_figures"], fig["completion"], fig["grouped"],
                                   fig["total"], pct, fig["side"], visit_counts=fig["visit_counts"], tables=tables,
                                   names=names))
        return out

    def hall_names(self) -> dict[str, dict[str, str | None]]:
        """The names of the database's halls as their brokers registered them (docs/city.md)."""
        from queuehall.broker.storage import halls

        if "halls" not in self._tables():
            return {}
        with self.engine.connect() as conn:
            return {r.id: {"name_zh": r.name_zh, "name_en": r.name_en}
                    for r in conn.execute(select(halls.c.id, halls.c.name_zh, halls.c.name_en))}

    def _tables(self) -> set[str]:
        """The database's tables (a database older than migration 0006 has no ratings)."""

        return set(inspect(self.engine).get_table_names())

    def _second_connection_pays(self) -> bool:
        """Whether a second connection would find (nearly) every day of the period stored. It stores
        nothing itself and computes the other days again: worth it for a day or two, not for a month."""
        days = self.fact_days
        if days.live is None:
            return False
        computed = sum(days.visits.get(d, 0) for d in days.live if d not in days.prepared)
        return computed * 5 <= sum(days.visits.values())

    def _side(self, conn: Any, f: Any, start: date, end: date, now: datetime) -> tuple[Any, Any, Any, Any]:
        """Counter time, clerks, per hour and busy hours: the figures that do not depend on the grouping,
        which :meth:`build` computes on a second connection at the same time as the others."""
        hourly, heat = self._hourly(conn, f)
        if self.hall is None:  # a city: each hall's counters and clerks are its own (its own report)
            return [], [], hourly, heat
        called = self._called(conn, f)
        counters = self._counter_time(conn, f, called, start, end, now)
        return counters, self._clerks(called), hourly, heat

    def _side_apart(self, start: date, end: date, now: datetime, plan: FactDays) -> tuple[Any, Any, Any, Any]:
        """:meth:`_side` on a connection of its own, by a builder of its own (no state shared with the
        other thread). It stores nothing: it reads the facts the other connection stored (``plan``), and
        computes the others itself, the same way (the same visits and ``now``)."""
        helper = ReportBuilder(self.engine, self.config, materialize=self.materialize,
                               stored_facts=self.stored_facts, parallel=False, city=self.hall is None)
        with self.engine.connect() as conn, helper._facts(conn, start, end, now, write=False, plan=plan) as f:
            return helper._side(conn, f, start, end, now)

    def _label(self, group: str, key: Any, hall_names: dict[str, dict[str, str | None]] | None = None
               ) -> dict[str, str | None]:
        thing: Any = None
        if key is not None:
            if group == "service":
                thing = self.config.service(str(key))
            elif group == "department":
                thing = self.config.department(str(key))
            elif group == "counter":
                thing = self.config.counter(int(key))
            elif group == "clerk":
                thing = self.config.clerk(str(key))
            elif group == "hall":
                return (self.hall_names() if hall_names is None else hall_names).get(
                    str(key), {"name_zh": None, "name_en": None})
        if thing is None:
            return {"name_zh": None, "name_en": None}
        return {"name_zh": thing.name.zh, "name_en": thing.name.en}
