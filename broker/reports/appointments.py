"""Appointments (预约) in the reports (docs/reports.md "Appointments"): bookings per service and day, the check-in
rate, punctuality, and the waits of appointment tickets against walk-in tickets.

Read from the ``bookings`` table (migration 0010) and the first visit of each ticket issued in the period.
Definitions:

* ``booked``: bookings whose slot falls on a day of the period (whatever their state); ``cancelled``,
  ``checked_in`` (on time: an appointment ticket), ``late`` (checked in after the window: a normal ticket),
  ``no_show`` (never checked in, recorded at the day's close) and ``open`` (still booked: a day not closed yet).
* ``checkin_rate`` = (checked_in + late) / (booked − cancelled); ``punctuality`` = checked_in / (checked_in +
  late); ``arrival_early_avg_min``: how long before their slot's start the citizens checked in, on average
  (negative: after it).
* Waits (minutes, from the first visit of each ticket: issued → first called, as "Wait time" everywhere):
  ``appointment`` tickets against ``walk_in`` tickets (every other ticket, late check-ins included), each with
  ``tickets``, ``called``, ``wait_avg_min``, ``wait_median_min``, ``wait_p90_min``; for appointment tickets also
  ``from_slot_avg_min``: from the later of check-in and the slot's start to the call (the wait the booking
  promised to spare).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

from queuehall.broker.storage import bookings, tickets, visits
from sqlalchemy import Engine, and_, select, true

BOOKING_COLUMNS = ("day", "service", "booked", "cancelled", "checked_in", "late", "no_show", "open", "checkin_rate",
                   "punctuality", "arrival_early_avg_min")
WAIT_COLUMNS = ("service", "kind", "tickets", "called", "wait_avg_min", "wait_median_min", "wait_p90_min",
                "from_slot_avg_min")


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def _p(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile, as the rest of the report."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def _utc(at: datetime | None) -> datetime | None:
    return None if at is None else at.replace(tzinfo=UTC)


def appointments(engine: Engine, start: date, end: date, hall: str | None = None, *,
                 look_first: bool = True) -> dict[str, Any]:
    """The appointment figures of business days ``start``..``end`` (see the module docstring) of ``hall`` (its
    id; None: every hall of the database, a city's); ``{}`` when the period has neither bookings nor
    appointment tickets. ``look_first``: find that out before reading the period's first visits (False:
    read them anyway, the same ``{}``; tests/test_city_fast.py compares the two)."""
    mine_b = bookings.c.hall_id == hall if hall is not None else true()
    mine_t = tickets.c.hall_id == hall if hall is not None else true()
    with engine.connect() as conn:
        rows = conn.execute(select(bookings).where(mine_b & bookings.c.slot_day.between(start, end))).all()
        if look_first and not rows and conn.execute(select(tickets.c.id).where(
                mine_t & tickets.c.business_day.between(start, end) & tickets.c.booking.is_not(None)).limit(1)
                ).first() is None:
            # No appointment in the period: nothing to report, and no reason to read every first visit of
            # the period into Python (a city's month: millions of rows, seconds; docs/reports.md "A city's report").
            return {}
        first_visits = conn.execute(
            select(tickets.c.service, tickets.c.booking, tickets.c.slot_at, visits.c.entered_at,
                   visits.c.first_called_at)
            .join(visits, and_(visits.c.hall_id == tickets.c.hall_id, visits.c.ticket_id == tickets.c.id,
                               visits.c.seq == 1))
            .where(mine_t & tickets.c.business_day.between(start, end))).all()
    if not rows and not any(v.booking for v in first_visits):
        return {}
    per: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    early: dict[tuple[str, str], list[float]] = defaultdict(list)
    for b in rows:
        for key in ((b.slot_day.isoformat(), b.service), ("all", "all")):
            acc = per[key]
            acc["booked"] += 1
            state = "late" if b.state == "checked_in" and b.late else b.state
            acc[{"booked": "open"}.get(state, state)] += 1
            if b.checked_in_at is not None:
                early[key].append((b.slot_at - b.checked_in_at).total_seconds() / 60)
    by_day = []
    for (day, service), acc in sorted(per.items(), key=lambda kv: (kv[0] == ("all", "all"), kv[0])):
        came = acc["checked_in"] + acc["late"]
        by_day.append({"day": day, "service": service, **{k: acc[k] for k in BOOKING_COLUMNS[2:8]},
                       "checkin_rate": _rate(came, acc["booked"] - acc["cancelled"]),
                       "punctuality": _rate(acc["checked_in"], came),
                       "arrival_early_avg_min": _r(sum(early[(day, service)]) / len(early[(day, service)])
                                                   if early[(day, service)] else None)})
    waits: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for v in first_visits:
        kind = "appointment" if v.booking else "walk_in"
        for key in ((v.service, kind), ("all", kind)):
            w = waits[key]
            w["tickets"].append(1)
            if v.first_called_at is not None:
                w["wait"].append((v.first_called_at - v.entered_at).total_seconds() / 60)
                if v.slot_at is not None:
                    w["from_slot"].append((v.first_called_at - max(v.entered_at, v.slot_at)).total_seconds() / 60)
    wait_rows = []
    for (service, kind), w in sorted(waits.items(), key=lambda kv: (kv[0][0] == "all", kv[0])):
        s = sorted(w["wait"])
        wait_rows.append({"service": service, "kind": kind, "tickets": len(w["tickets"]), "called": len(s),
                          "wait_avg_min": _r(sum(s) / len(s)) if s else None, "wait_median_min": _r(_p(s, 0.5)),
                          "wait_p90_min": _r(_p(s, 0.9)),
                          "from_slot_avg_min": _r(sum(w["from_slot"]) / len(w["from_slot"]))
                          if w["from_slot"] else None})
    return {"by_service_day": by_day, "waits": wait_rows}
