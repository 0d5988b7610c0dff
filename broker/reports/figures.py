"""The visit and ticket figures (docs/reports.md "Visit figures", "Wait time", "Service time", "Within
target (SLA)", "Percentiles", "Ticket figures", "Same-day completion", "Promised completion")."""

from __future__ import annotations

from bisect import bisect_right
from datetime import date
from typing import Any

from queuehall.broker.reports.common import (
    OPEN_STATUSES,
    SAME_DAY_TARGET,
    _as_date,
    _min_ms,
)
from queuehall.broker.reports.facts import FactReader
from queuehall.broker.reports.sql import (
    _count,
)
from queuehall.broker.storage import tickets
from sqlalchemy import (
    and_,
    case,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.sql.expression import ColumnElement


class VisitFigures(FactReader):
    """The figures per group (service, counter, clerk, department, hour, day) and of the tickets."""

    # -- visit figures ----------------------------------------------------------------------

    def _visit_figures(self, conn: Any, f: Any, group: ColumnElement[Any]
                       ) -> tuple[dict[Any, dict[str, Any]], dict[str, Any], dict[Any, dict[str, Any]]]:
        """docs/reports.md "Visit figures", "Wait time", "Service time" and "Within target (SLA)": the SQL
        counts and sums (ms) per group and of the ``all`` row, and the percentiles (:meth:`_percentiles`)
        that :func:`_row` adds to them."""
        called = f.c.first_wait_ms.isnot(None)
        target = self._target(f)
        counts = {
            "visits": func.count(), "issued": _count(f.c.seq == 1), "called": func.count(f.c.first_wait_ms),
            "served": func.count(f.c.service_ms),
            **{k: _count(f.c.outcome == o) for k, o in (("finished", "finished"), ("no_show", "no_show"),
                                                        ("transferred_out", "transferred"),
                                                        ("cancelled", "cancelled"), ("voided", "voided"),
                                                        ("closed_unserved", "closed_unserved"))},
            "open": _count(f.c.outcome.is_(None)),
            "sla_within": _count(f.c.first_wait_ms <= target),
            # Called, or not called after waiting longer than the target (cancelled, still waiting, or left
            # waiting at the day's close).
            "sla_counted": _count(case((called, target.isnot(None)), else_=f.c.elapsed_ms > target)),
        }
        sums = {"wait_sum": func.sum(f.c.wait_ms), "wait_n": func.count(f.c.wait_ms), "wait_max": func.max(f.c.wait_ms),
                "service_sum": func.sum(f.c.service_ms), "service_n": func.count(f.c.service_ms)}
        sqlite = conn.dialect.name == "sqlite"
        values = {"wait_values": func.group_concat(f.c.wait_ms), "service_values": func.group_concat(f.c.service_ms)}
        q = select(group.label("g"), *(e.label(k) for k, e in {**counts, **sums, **(values if sqlite else {})}.items())
                   ).group_by(group)
        raw = {r.g: r._asdict() for r in conn.execute(q)}
        total: dict[str, Any] = {k: sum(int(r[k] or 0) for r in raw.values())
                                 for k in (*counts, "wait_n", "service_n", "wait_sum", "service_sum")}
        total["wait_max"] = max((r["wait_max"] for r in raw.values() if r["wait_max"] is not None), default=None)
        pct = self._percentiles(raw) if sqlite else self._percentiles_pg(conn, f, group)
        return raw, total, pct

    @staticmethod
    def _percentiles(raw: dict[Any, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
        """Nearest-rank median and 90th percentile of the wait, and 90th percentile of the service time, per
        group (key ``("g", group)``) and over all (key None), in ms (docs/reports.md "Percentiles"), from
        each group's values as SQLite lists them (``group_concat``, in no order). SQLite sorts slowly:
        the values are sorted here, and the percentiles of all groups together found in the sorted lists."""
        def values(text: str | None) -> list[int]:
            out = list(map(int, text.split(","))) if text else []
            out.sort()
            return out

        pct: dict[Any, dict[str, Any]] = {}
        waits, services = [], []
        for g, r in raw.items():
            w, sv = values(r.pop("wait_values")), values(r.pop("service_values"))
            pct[("g", g)] = {"w50": _rank(w, 1, 2), "w90": _rank(w, 9, 10), "s90": _rank(sv, 9, 10)}
            waits.append(w)
            services.append(sv)
        pct[None] = {"w50": _kth(waits, 1, 2), "w90": _kth(waits, 9, 10), "s90": _kth(services, 9, 10)}
        return pct

    @staticmethod
    def _percentiles_pg(conn: Any, f: Any, group: ColumnElement[Any]) -> dict[Any, dict[str, Any]]:
        """PostgreSQL: ``percentile_disc`` is nearest-rank and sorts each group apart (several times
        faster than a window over the month). It takes ⌈p·n⌉ in floating point, where 0.9·70 is
        63.000…01: asking for p − 10⁻¹² gives the exact rank for any n below 10¹¹."""
        from sqlalchemy.dialects.postgresql import array

        def disc(value: Any, *ps: float) -> Any:
            return func.percentile_disc(array([literal(p - 1e-12) for p in ps])).within_group(value)

        q = (select(group.label("g"), func.grouping(group).label("all"),
                    disc(f.c.wait_ms, 0.5, 0.9).label("w"), disc(f.c.service_ms, 0.9).label("s"))
             .group_by(func.grouping_sets(tuple_(group), tuple_())))
        out: dict[Any, dict[str, Any]] = {}
        for row in conn.execute(q):
            w = row.w or (None, None)
            out[None if row.all else ("g", row.g)] = {"w50": w[0], "w90": w[1], "s90": (row.s or (None,))[0]}
        return out

    # -- ticket figures ---------------------------------------------------------------------

    def _ticket_figures(self, conn: Any, f: Any, start: date, end: date) -> dict[str, int]:
        """docs/reports.md "Ticket figures": each ticket once, by its final status, on its issue day."""
        by_status: dict[str, int] = {}
        # Grouped by (day, status), the order of ix_tickets_day_status: no sort on SQLite.
        for _day, status, n in conn.execute(
                select(tickets.c.business_day, tickets.c.status, func.count())
                .where(self.mine(tickets), tickets.c.business_day.between(start, end))
                .group_by(tickets.c.business_day, tickets.c.status)):
            by_status[status] = by_status.get(status, 0) + n
        # A ticket is (hall, id): a city report counts several halls' tickets.
        moved = select(f.c.hall_id, f.c.ticket_id).where(f.c.outcome == "transferred").distinct().subquery()
        transferred = conn.execute(select(func.count()).select_from(moved)).scalar() or 0
        return {"issued": sum(by_status.values()), "served": by_status.get("finished", 0),
                "no_show": by_status.get("no_show", 0), "cancelled": by_status.get("cancelled", 0),
                "voided": by_status.get("voided", 0), "open": sum(by_status.get(s, 0) for s in OPEN_STATUSES),
                "closed_unserved": by_status.get("closed_unserved", 0), "transferred": transferred}

    def _completion(self, conn: Any, f: Any, start: date, end: date, served: int, closed_unserved: int,
                    as_of: date) -> dict[str, Any]:
        """docs/reports.md "Same-day completion" and "Promised completion"."""
        promised = {s.code: s.promised_days for s in self.config.services if s.promised_days > 0}
        period = and_(self.mine(tickets), tickets.c.business_day >= start, tickets.c.business_day <= end)
        accepted = 0
        past_due = 0
        if promised:
            accepted_on: dict[tuple[date, int], int] = {}  # (acceptance day, promised days) -> tickets
            # A ticket of the period is its first visit's; it is served when a visit ended finished, which
            # only its last visit can. So a ticket whose first visit finished had no other: counted per
            # visit, per day (the order of report_facts: no sort on SQLite), one count per promise length.
            lengths: dict[int, list[str]] = {}
            for code, n in promised.items():
                lengths.setdefault(n, []).append(code)
            for day, *counts in conn.execute(
                    select(f.c.business_day, *(_count(f.c.service.in_(codes)) for codes in lengths.values()))
                    .where(and_(f.c.seq == 1, f.c.outcome == "finished", f.c.service_ms.isnot(None)))
                    .group_by(f.c.business_day)):
                for n_days, n in zip(lengths, counts, strict=True):
                    if n:
                        k = (_as_date(day), n_days)
                        accepted_on[k] = accepted_on.get(k, 0) + n
            # The others, per ticket: from the visits of tickets that went on after their first visit
            # (transferred, or a no-show reinstated); the longest promise among their served visits.
            days = case((f.c.service_ms.isnot(None),
                         case({code: literal(n) for code, n in promised.items()}, value=f.c.service,
                              else_=literal(0))), else_=literal(0))
            per_ticket = (select(func.max(case((f.c.seq == 1, f.c.business_day))).label("day"),
                                 func.max(days).label("days"))
                          .where(or_(f.c.seq > 1, f.c.outcome.in_(["transferred", "no_show"])))
                          .group_by(f.c.hall_id, f.c.ticket_id)
                          .having(and_(func.max(case((f.c.seq == 1, 1), else_=0)) == 1,
                                       func.max(case((f.c.outcome == "finished", 1), else_=0)) == 1,
                                       func.max(days) > 0)).subquery())
            for day, n_days, n in conn.execute(select(per_ticket.c.day, per_ticket.c.days, func.count())
                                               .group_by(per_ticket.c.day, per_ticket.c.days)):
                k = (_as_date(day), int(n_days))
                accepted_on[k] = accepted_on.get(k, 0) + n
            for (day, n_days), n in accepted_on.items():
                accepted += n
                if self.due_date(day, n_days) < as_of:
                    past_due += n
        on_the_spot = [s.code for s in self.config.services if s.promised_days == 0]
        unfinished = 0
        if on_the_spot:
            # Left open past their day, or ended unserved when the day closed.
            unfinished = conn.execute(select(func.count()).select_from(tickets).where(and_(
                period, tickets.c.business_day < as_of, tickets.c.queue_service.in_(on_the_spot),
                tickets.c.status.in_((*OPEN_STATUSES, "closed_unserved"))))).scalar() or 0
        same_day = served - accepted
        # The citizens still waiting (or at a counter) when the day closed were not served that day either.
        base = served + closed_unserved
        rate = round(same_day / base, 4) if base else None
        return {"served": served, "closed_unserved": closed_unserved, "same_day_completed": same_day,
                "same_day_rate": rate, "same_day_target": SAME_DAY_TARGET,
                "same_day_meets_target": (same_day / base >= SAME_DAY_TARGET) if base else None,
                "promised_accepted": accepted, "promised_past_due": past_due,
                "on_the_spot_unfinished": unfinished}

    def due_date(self, accepted: date, working_days: int) -> date:
        """The promised completion date: ``working_days`` working days after the day of acceptance
        (the acceptance day itself for 0). The hall's one rule, :meth:`OpeningHours.promised_date`,
        which the broker also sends with every ticket: the counter shows the date reports count by."""
        return self.hours.promised_date(accepted, working_days) or accepted

    def is_working_day(self, d: date) -> bool:
        """A statutory working day (工作日) for promised time limits; docs/reports.md "Promised completion"
        (:meth:`OpeningHours.is_working_day`)."""
        return self.hours.is_working_day(d)


def _rank(values: list[int], a: int, b: int) -> int | None:
    """Nearest rank: the value at rank ⌈n·a/b⌉ = (n·a + b − 1) // b of the sorted ``values``."""
    return values[(len(values) * a + b - 1) // b - 1] if values else None


def _kth(samples: list[list[int]], a: int, b: int) -> int | None:
    """:func:`_rank` of all the sorted integer ``samples`` together, without merging them: the smallest
    value with at least that many values at or below it (a binary search over the values' range)."""
    n = sum(len(s) for s in samples)
    if not n:
        return None
    rank = (n * a + b - 1) // b
    lo, hi = min(s[0] for s in samples if s), max(s[-1] for s in samples if s)
    while lo < hi:  # integers: the first value whose count reaches the rank is one of the values
        mid = (lo + hi) // 2
        if sum(bisect_right(s, mid) for s in samples) >= rank:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _row(r: dict[str, Any], pct: dict[str, Any]) -> dict[str, Any]:
    """A row of visit figures from the SQL counts and sums (ms) of one group (or of all) and its percentiles."""
    return {
        **{k: int(r[k]) for k in ("visits", "issued", "called", "served", "finished", "no_show", "transferred_out",
                                   "cancelled", "voided", "closed_unserved", "open")},
        "wait_avg_min": _min_ms(int(r["wait_sum"] or 0) / r["wait_n"]) if r["wait_n"] else None,
        "wait_median_min": _min_ms(pct.get("w50")), "wait_p90_min": _min_ms(pct.get("w90")),
        "wait_max_min": _min_ms(r["wait_max"]),
        "sla_within": int(r["sla_within"]), "sla_counted": int(r["sla_counted"]),
        "sla_share": round(int(r["sla_within"]) / int(r["sla_counted"]), 4) if r["sla_counted"] else None,
        "service_avg_min": _min_ms(int(r["service_sum"] or 0) / r["service_n"]) if r["service_n"] else None,
        "service_p90_min": _min_ms(pct.get("s90")),
    }
