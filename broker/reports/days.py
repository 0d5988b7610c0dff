"""The figures of a report read from report days (broker/reports/daily.py; docs/reports.md "Report days"):
the same figures as figures.py and counters.py compute from the facts, for the groupings by service,
department and hall, from about 31 rows per hall and kind."""

from __future__ import annotations

import json
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from queuehall.broker.reports.common import (
    OPEN_STATUSES,
    SAME_DAY_TARGET,
    FactDays,
    ReportError,
)
from queuehall.broker.reports.counters import CounterFigures
from queuehall.broker.reports.daily import (
    DAILY_GROUPS,
    DayData,
    Tally,
    local_of_quarter,
    quarters_exact,
    tally_assessment,
    tally_facts,
    tally_tickets,
    write_days,
)
from queuehall.broker.reports.figures import VisitFigures
from queuehall.broker.reports.sql import offset_segments, unix_ms
from queuehall.broker.storage import tickets, visits
from sqlalchemy import and_, inspect, tuple_

_VISIT_SUMS = ("visits", "issued", "called", "served", "finished", "no_show", "transferred_out", "cancelled", "voided",
               "closed_unserved", "open", "wait_sum", "wait_n", "service_sum", "service_n")


def _pick(hist: dict[int, int], a: int, b: int) -> tuple[int, int] | None:
    """The minute holding nearest rank ⌈n·a/b⌉ of a per-minute count, and the rank within that minute."""
    n = sum(hist.values())
    if not n:
        return None
    rank = (n * a + b - 1) // b
    below = 0
    for m in sorted(hist):
        if below + hist[m] >= rank:
            return m, rank - below
        below += hist[m]
    raise AssertionError("unreachable: the ranks add up to n")


class DayFigures(VisitFigures, CounterFigures):
    """A report's figures from report days: :meth:`fill_days` adds up the days not stored yet (a hall's report
    stores its final ones), :meth:`day_figures` reads the figures off them."""

    def uses_days(self, start: date, end: date, group: str) -> bool:
        """Whether this report is read from report days (docs/reports.md "Report days"): grouped by service,
        department or hall, stored facts on, a database with the report_days table (migration 0011), and a
        time zone whose offsets fall on quarter hours. Otherwise it is computed from the facts."""
        if not (self.daily and self.stored_facts and group in DAILY_GROUPS):
            return False
        if self._has_days is None:
            self._has_days = inspect(self.engine).has_table("report_days")
        return self._has_days and quarters_exact(self.tz, start, end)

    def fill_days(self, data: DayData, start: date, end: date, now: datetime
                  ) -> tuple[Tally, set[tuple[str, date]]] | None:
        """Add up the days of ``data`` (of this report's halls) that have no valid stored report day, from their
        facts (:meth:`_facts`, which stores the facts of final days first). A hall's report stores the final
        ones (report_days, report_day_times); a city's stores none (the halls' reports and ``--prepare`` do).
        Returns the tally and its (hall, day) pairs, or None when every day was stored (:attr:`fact_days`
        then says so). Touches ``data`` only to read it: several halls may fill at once."""
        halls = [self.hall] if self.hall is not None else data.halls
        wanted = {(h, d) for h in halls for d in data.missing(h)}
        if not wanted:
            self.fact_days = FactDays(stored=sorted({d for h in halls for d in data.stored.get(h, ())}), live=[])
            for h in halls:
                for d, n in data.visits.get(h, {}).items():
                    self.fact_days.visits[d] = self.fact_days.visits.get(d, 0) + n
            return None
        tally = Tally()
        write = self.hall is not None
        days = sorted({d for _h, d in wanted})
        with self.engine.connect() as conn:
            with self._facts(conn, start, end, now, write=write) as f:
                which = (f.c.business_day.in_(days) if self.hall is not None
                         else tuple_(f.c.hall_id, f.c.business_day).in_(sorted(wanted)))
                tally_facts(conn, tally, f, which)
                final = {*self.fact_days.stored, *self.fact_days.prepared}
            tally_tickets(conn, tally, and_(self.mine(tickets), tickets.c.business_day.in_(days)))
            tally_assessment(conn, tally, and_(self.mine(visits), visits.c.business_day.in_(days)))
            conn.rollback()
            tally.finish()
            if write and not self.fact_days.skipped:
                skipped = write_days(conn, tally, {(h, d) for h, d in wanted if d in final})
                self.fact_days.skipped = self.fact_days.skipped or skipped
        return tally, wanted

    def day_figures(self, conn: Any, data: DayData, start: date, end: date, group: str, now: datetime
                    ) -> dict[str, Any]:
        """The figures of :meth:`ReportBuilder.build` from report days (``data``, with its stored counts per
        minute read): tickets, completion, the grouped visit figures with their percentiles, counter time,
        clerks, per hour and the clerk assessment's visit figures. The same definitions as the SQL over the
        facts (figures.py, counters.py), added up in another order."""
        halls = [self.hall] if self.hall is not None else data.halls
        as_of = self.hours.business_day(now)
        services = {s.code: s for s in self.config.services}
        promised = {c: s.promised_days for c, s in services.items() if s.promised_days > 0}
        on_the_spot = {c for c, s in services.items() if s.promised_days == 0}
        segments = [(None if u is None else unix_ms(u), off) for u, off in offset_segments(self.tz, start, end)]
        grouped: dict[Any, dict[str, Any]] = {}
        members: dict[Any, set[tuple[str, str]]] = {}
        by_status: dict[str, int] = {}
        transferred = unfinished = 0
        accepted_on: dict[tuple[date, int], int] = {}
        arrivals: dict[int, int] = {}
        served: dict[int, int] = {}
        heat: dict[tuple[int, int], int] = {}
        called: dict[tuple[Any, Any, Any], dict[str, int]] = {}
        last: dict[tuple[int, date], int] = {}
        assessed: dict[str, dict[str, Any]] = {}
        called_of: dict[tuple[str, str], int] = {}

        def local(q: int) -> tuple[int, int]:
            return local_of_quarter(segments, q)

        for h in halls:
            for d, kind, key, x in data.rows.get(h, ()):
                if kind == "service":
                    g = key if group == "service" else h if group == "hall" else (
                        services[key].department if key in services else "?")
                    acc = grouped.setdefault(g, {**dict.fromkeys(_VISIT_SUMS, 0), "wait_max": None,
                                                 "sla_within": 0, "sla_counted": 0})
                    for k in _VISIT_SUMS:
                        acc[k] += x[k]
                    if x["wait_max"] is not None:
                        acc["wait_max"] = x["wait_max"] if acc["wait_max"] is None else max(acc["wait_max"],
                                                                                          x["wait_max"])
                    members.setdefault(g, set()).add((h, key))
                    called_of[(h, key)] = called_of.get((h, key), 0) + x["called"]
                    if promised and key in promised and x["first_finished"]:
                        k2 = (d, promised[key])
                        accepted_on[k2] = accepted_on.get(k2, 0) + x["first_finished"]
                elif kind == "tickets":
                    for status, n in x.items():
                        by_status[status] = by_status.get(status, 0) + n
                    if key in on_the_spot and d < as_of:
                        unfinished += sum(x.get(s, 0) for s in (*OPEN_STATUSES, "closed_unserved"))
                elif kind == "day":
                    transferred += x["transferred"]
                elif kind == "went_on" and promised:
                    for codes, n in x.items():
                        n_days = max((promised.get(c, 0) for c in json.loads(codes)), default=0)
                        if n_days > 0:
                            accepted_on[(d, n_days)] = accepted_on.get((d, n_days), 0) + n
                elif kind == "hour":
                    for q, n in x["i"].items():
                        dow, hour = local(q)
                        arrivals[hour] = arrivals.get(hour, 0) + n
                        heat[(dow, hour)] = heat.get((dow, hour), 0) + n
                    for q, n in x["f"].items():
                        hour = 99 if q is None else local(q)[1]
                        served[hour] = served.get(hour, 0) + n
                elif kind == "counter" and self.hall is not None:
                    counter, clerk, post = json.loads(key)
                    c = called.setdefault((counter, clerk, post), {})
                    for k in ("called", "served", "finished", "no_show", "busy", "serving"):
                        c[k] = c.get(k, 0) + x[k]
                    if x["last"] is not None and counter is not None:
                        last[(counter, d)] = max(last.get((counter, d), x["last"]), x["last"])
                    if clerk is not None and x["a_called"]:
                        a = assessed.setdefault(clerk, {"called": 0, "finished": 0, "no_show": 0, "timed": 0,
                                                        "service_us": 0})
                        for k in ("called", "finished", "no_show", "timed"):
                            a[k] += x[f"a_{k}"]
                        a["service_us"] += x["a_us"]
        # "Within target (SLA)" per service (whole minutes: the count of the minutes up to the target), and the
        # per-minute counts of each group and of all for the percentiles.
        hist: dict[Any, tuple[dict[int, int], dict[int, int]]] = {None: ({}, {})}
        per_service: dict[tuple[str, str], list[tuple[int, list[int]]]] = {}
        for h in halls:
            for (s, m), t in data.times.get(h, {}).items():
                per_service.setdefault((h, s), []).append((m, t))
        for g, pairs in members.items():
            acc = grouped[g]
            hist[g] = ({}, {})
            for h, s in pairs:
                target = services[s].target_wait_minutes if s in services else None
                for m, t in per_service.get((h, s), ()):
                    for which, n in ((hist[g][0], t[0]), (hist[g][1], t[1]), (hist[None][0], t[0]),
                                     (hist[None][1], t[1])):
                        if n:
                            which[m] = which.get(m, 0) + n
                    if target is not None:
                        acc["sla_within"] += t[2] if m <= target else 0
                        acc["sla_counted"] += t[3] if m > target else 0
                if target is not None:  # called visits count, met or not
                    acc["sla_counted"] += called_of[(h, s)]
        picks, wanted = self._percentile_picks(members, hist)
        total: dict[str, Any] = {k: sum(int(r[k]) for r in grouped.values())
                                 for k in (*_VISIT_SUMS, "sla_within", "sla_counted")}
        total["wait_max"] = max((r["wait_max"] for r in grouped.values() if r["wait_max"] is not None), default=None)
        ticket_figures = {"issued": sum(by_status.values()), "served": by_status.get("finished", 0),
                          "no_show": by_status.get("no_show", 0), "cancelled": by_status.get("cancelled", 0),
                          "voided": by_status.get("voided", 0),
                          "open": sum(by_status.get(s, 0) for s in OPEN_STATUSES),
                          "closed_unserved": by_status.get("closed_unserved", 0), "transferred": transferred}
        accepted = past_due = 0
        for (day, n_days), n in accepted_on.items():
            accepted += n
            if self.due_date(day, n_days) < as_of:
                past_due += n
        done, unserved = ticket_figures["served"], ticket_figures["closed_unserved"]
        same_day, base = done - accepted, done + unserved
        completion = {"served": done, "closed_unserved": unserved, "same_day_completed": same_day,
                      "same_day_rate": round(same_day / base, 4) if base else None,
                      "same_day_target": SAME_DAY_TARGET,
                      "same_day_meets_target": (same_day / base >= SAME_DAY_TARGET) if base else None,
                      "promised_accepted": accepted, "promised_past_due": past_due,
                      "on_the_spot_unfinished": unfinished}
        hourly = [{"hour": h, "arrivals": arrivals.get(h, 0), "served": served.get(h, 0)}
                  for h in sorted(set(arrivals) | set(served))]
        heatmap = [{"weekday": d, "hour": h, "arrivals": n} for (d, h), n in sorted(heat.items())]
        counters: list[dict[str, Any]] = []
        clerks: list[dict[str, Any]] = []
        visit_counts: dict[str, dict[str, Any]] | None = None
        if self.hall is not None:
            rows = [SimpleNamespace(counter=k[0], clerk=k[1], post=k[2], **c) for k, c in called.items()
                    if c["called"]]
            counters = self._counter_time(conn, None, rows, start, end, now, last_ends=last)
            clerks = self._clerks(rows)
            visit_counts = {k: {"called": a["called"], "finished": a["finished"], "no_show": a["no_show"],
                                "timed": a["timed"], "service_s": a["service_us"] / 1_000_000}
                            for k, a in assessed.items()}
        return {"ticket_figures": ticket_figures, "completion": completion, "grouped": grouped, "total": total,
                "picks": picks, "members": members, "wanted": wanted, "side": (counters, clerks, hourly, heatmap),
                "visit_counts": visit_counts}

    @staticmethod
    def _percentile_picks(members: dict[Any, set[tuple[str, str]]],
                          hist: dict[Any, tuple[dict[int, int], dict[int, int]]]
                          ) -> tuple[dict[tuple[Any, str], tuple[int, int, int] | None], set[tuple[str, str, int]]]:
        """Nearest-rank median and 90th percentile of the wait and 90th percentile of the service time per group
        (and of all: group None): the minute that holds each rank, from the counts, and the rank within it; and
        the (hall, service, minute) whose stored values give the exact values (:meth:`percentile_values`)."""
        everyone = set().union(*members.values()) if members else set()
        picks: dict[tuple[Any, str], tuple[int, int, int] | None] = {}
        for g, (w, s) in hist.items():
            for name, h, a, b, i in (("w50", w, 1, 2, 0), ("w90", w, 9, 10, 0), ("s90", s, 9, 10, 1)):
                found = _pick(h, a, b)
                picks[(g, name)] = None if found is None else (*found, i)
        wanted = {(h, s, p[0]) for (g, _n), p in picks.items() if p is not None
                  for h, s in (members[g] if g is not None else everyone)}
        return picks, wanted

    @staticmethod
    def percentile_values(picks: dict[tuple[Any, str], tuple[int, int, int] | None],
                          members: dict[Any, set[tuple[str, str]]],
                          values: dict[tuple[str, str, int], tuple[list[int], list[int]]]) -> dict[Any, dict[str, Any]]:
        """The percentiles of :meth:`_percentile_picks` from the values of their minutes: key ``("g", group)``
        per group, None for all (as :meth:`VisitFigures._visit_figures` gives them)."""
        everyone = set().union(*members.values()) if members else set()
        out: dict[Any, dict[str, Any]] = {}
        for (g, name), p in picks.items():
            value = None
            if p is not None:
                m, r, i = p
                pool = sorted(v for h, s in (members[g] if g is not None else everyone)
                              for v in values.get((h, s, m), ([], []))[i])
                if len(pool) < r:
                    raise ReportError("REPORT_DATABASE", detail="report days do not match their counts (run "
                                                                "queuehall report --prepare again)")
                value = pool[r - 1]
            out.setdefault(None if g is None else ("g", g), {})[name] = value
        return out
