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
from queuehall.broker.reports.counters import CounterFigures
from queuehall.broker.reports.figures import VisitFigures, _row
from sqlalchemy import (
    inspect,
    select,
)


class ReportBuilder(VisitFigures, CounterFigures):
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
        names = self.hall_names() if group == "hall" else {}  # read once, not once per hall
        rows = [{"group": _key(k), **self._label(group, k, names), **_row(v, pct.get(("g", k), {}))}
                for k, v in sorted(grouped.items(), key=lambda kv: _sort(kv[0]))]
        extra: dict[str, Any] = {}
        if "ratings" in self._tables():
            from queuehall.broker import satisfaction as sat

            extra = {"satisfaction": sat.satisfaction(self.engine, self.config, start, end, as_of, hall=self.hall),
                     "assessment": [] if self.hall is None else sat.assessment(self.engine, self.config, start, end,
                                                                               as_of, hall=self.hall),
                     "alerts": sat.alerts_per_day(self.engine, start, end, hall=self.hall)}
        if "bookings" in self._tables():
            from queuehall.broker.reports.appointments import appointments

            extra["appointments"] = appointments(self.engine, start, end, hall=self.hall)
        return Report(start, end, group, self.config.timezone, now, ticket_figures, completion,
                      {"group": "all", **_row(total, pct.get(None, {}))}, rows, counters, clerks, hourly, heat,
                      **extra, notes=["Percentiles are nearest-rank.",
                             "Matters with a promised completion time are completed in the back office after "
                             "the ticket; queuehall records their acceptance and due date, not their completion."])

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
