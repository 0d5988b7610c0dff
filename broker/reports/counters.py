"""The figures per counter, clerk and hour (docs/reports.md "Counter time", "Clerks", "Per hour and
busy hours"): they do not depend on the grouping."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from queuehall.broker.reports.common import (
    _COUNTER_EVENTS,
    _UNIX_ORDINAL,
    _as_date,
    _from_ms,
    _min_ms,
    _minutes,
    _sort,
)
from queuehall.broker.reports.facts import FactReader
from queuehall.broker.reports.sql import (
    _count,
    _Ms,
    offset_segments,
    unix_ms,
)
from queuehall.broker.storage import events
from sqlalchemy import (
    and_,
    case,
    func,
    literal_column,
    select,
)
from sqlalchemy.sql.expression import ColumnElement


class CounterFigures(FactReader):
    """Counter time, clerks, per hour and busy hours."""

    # -- counters ---------------------------------------------------------------------------

    def _opening(self, day: date) -> tuple[int, int] | None:
        """The day's first opening and last closing time (Unix ms), or None when the hall is closed."""
        if day not in self._openings:  # the holiday lookup is slow and asked once per counter state
            periods = self.hours.periods_on(day)
            self._openings[day] = None if not periods else (
                unix_ms(datetime.combine(day, periods[0].start, tzinfo=self.tz)),
                unix_ms(datetime.combine(day, periods[-1].end, tzinfo=self.tz)))
        return self._openings[day]

    def _day(self, ms: int) -> date:
        """The business day of ``ms`` (Unix ms); with one UTC offset for the period, without zoneinfo."""
        if self._offset is not None:
            return date.fromordinal(_UNIX_ORDINAL + (ms + self._offset) // 86_400_000)
        return self.hours.business_day(_from_ms(ms))

    def _split(self, since: int, until: int, by_event: bool, first_day: date, last_day: date
               ) -> list[tuple[date, int, int, int | None]]:
        """docs/reports.md "Counter time": one counter state cut into business days, as
        ``(day, begin, stop, closing)`` in Unix ms. ``closing`` is None when the state ends at ``stop``;
        otherwise it lasted past its day, and counts up to the later of ``closing`` (the day's closing
        time) and the end of the counter's last ticket that day, but not beyond ``stop``.

        ``until`` is the counter's next event (``by_event``) or the report's ``now``. Only days
        ``first_day``..``last_day`` are returned.
        """
        if until <= since:
            return []
        d0, d1 = self._day(since), self._day(until)
        if d0 == d1 and by_event:  # the usual case: two events of one day
            return [(d0, since, until, None)] if first_day <= d0 <= last_day else []
        out: list[tuple[date, int, int, int | None]] = []
        d = max(d0, first_day)
        while d <= min(d1, last_day):
            hours = self._opening(d)
            begin = since if d == d0 else hours[0] if hours else None
            if begin is not None:
                if d == d1 and by_event:  # ended by the counter's own event that day: all of it
                    out.append((d, begin, until, None))
                else:  # still on at the end of the day: up to closing or its last ticket's end
                    out.append((d, begin, until, hours[1] if hours else begin))
            d += timedelta(days=1)
        return out

    def _called(self, conn: Any, f: Any) -> list[Any]:
        """The called visits' counts and times per counter, clerk and post: what "Counter time" and "Clerks"
        add up (one pass over the facts instead of two)."""
        return conn.execute(
            select(f.c.counter, f.c.clerk, f.c.post, func.count().label("called"),
                   func.count(f.c.service_ms).label("served"), _count(f.c.outcome == "finished").label("finished"),
                   _count(f.c.outcome == "no_show").label("no_show"), func.sum(f.c.busy_ms).label("busy"),
                   func.sum(f.c.service_ms).label("serving"))
            .where(f.c.first_wait_ms.isnot(None))
            .group_by(f.c.counter, f.c.clerk, f.c.post)).all()

    def _counter_time(self, conn: Any, f: Any, called: list[Any], start: date, end: date, now: datetime,
                      last_ends: dict[tuple[int, date], int] | None = None) -> list[dict[str, Any]]:
        """docs/reports.md "Counter time": open, paused by reason, busy, serving and idle, per counter.
        ``last_ends``: the end of each counter's last called visit per day (:meth:`_last_activity`), already known
        (the report days); otherwise read from the facts ``f``."""
        kinds = events.c.type.in_(_COUNTER_EVENTS)
        # Times as Unix ms, parsed by the database; the payload only for a pause (its reason).
        cols = (events.c.seq, events.c.counter, events.c.type, _Ms(events.c.at),
                case((events.c.type == "counter_paused", events.c.data)))
        # Each counter's state as the period begins: its last counter event before it.
        mine = self.mine(events)
        last = (select(func.max(events.c.seq)).where(and_(mine, kinds, events.c.business_day < start))
                .group_by(events.c.counter).subquery())
        rows = conn.execute(select(*cols).where(mine, events.c.seq.in_(select(last.c[0])))).all()
        day: ColumnElement[Any] = events.c.business_day
        if conn.dialect.name == "postgresql":
            # Not the business-day index: PostgreSQL would read every event of the period through it
            # (0.2 s on a month of a busy hall) instead of the counter events through ix_events_type_seq.
            day = day + literal_column("0")
        rows += conn.execute(select(*cols).where(and_(mine, kinds, day >= start, day <= end))).all()
        rows.sort(key=lambda r: r[0])
        busy: dict[int, list[int]] = {}  # ms busy and serving
        for r in called:
            if r.counter is not None:
                b = busy.setdefault(r.counter, [0, 0])
                b[0] += int(r.busy or 0)
                b[1] += int(r.serving or 0)
        segments = offset_segments(self.tz, start, end)
        self._offset = segments[0][1] * 60_000 if len(segments) == 1 else None
        # (counter, open|paused, reason, day, begin, stop, closing) of every state in the period.
        parts: list[tuple[int, str, str | None, date, int, int, int | None]] = []
        state: dict[int, tuple[str, int, str | None]] = {}  # counter -> (open|paused, since, reason)
        seen: set[int] = set()

        def close(counter: int, until: int, by_event: bool) -> None:
            prev = state.get(counter)
            if prev is not None:
                parts.extend((counter, prev[0], prev[2], *p) for p in self._split(prev[1], until, by_event, start, end))

        for _seq, counter, type_, at, data in rows:
            if counter is None:
                continue
            seen.add(counter)
            prev = state.get(counter)
            close(counter, at, True)
            if type_ == "counter_signed_out":
                state.pop(counter, None)
            elif type_ == "counter_paused":
                state[counter] = ("paused", at, json.loads(data).get("reason"))
            elif type_ == "counter_signed_in" and prev is not None and prev[0] == "paused":
                state[counter] = ("paused", at, prev[2])  # a takeover keeps the pause
            else:  # signed in, or resumed
                state[counter] = ("open", at, None)
        now_ms = unix_ms(now)
        for counter in list(state):
            close(counter, now_ms, False)
        # The end of a counter's last visit of a day matters only for a state that outlasts its day (a
        # counter left on overnight): one query reads just those days.
        found = (self._last_activity(conn, f, {(p[0], p[3]) for p in parts if p[6] is not None}) if last_ends is None
                 else last_ends)
        acc: dict[int, dict[str, Any]] = {c: {"open_s": 0.0, "paused_s": {}} for c in seen}
        for counter, kind, reason, d, begin, stop, closing in parts:
            if closing is not None:
                last_end = found.get((counter, d))
                stop = min(stop, max(closing, last_end) if last_end is not None else closing)
            seconds = max(0, stop - begin) / 1000.0
            a = acc[counter]
            if kind == "open":
                a["open_s"] += seconds
            else:
                a["paused_s"][reason or "?"] = a["paused_s"].get(reason or "?", 0.0) + seconds
        out = []
        for counter in sorted(set(acc) | set(busy)):
            a = acc.get(counter, {"open_s": 0.0, "paused_s": {}})
            busy_s, serving = (x / 1000.0 for x in busy.get(counter, (0, 0)))
            if not (a["open_s"] or any(a["paused_s"].values()) or busy_s):
                continue  # e.g. left paused over a holiday: nothing happened here in the period
            cfg = self.config.counter(counter)
            out.append({"counter": counter, "name_zh": cfg.name.zh if cfg else None,
                        "open_min": _minutes(a["open_s"]), "busy_min": _minutes(busy_s),
                        "serving_min": _minutes(serving),
                        "idle_min": _minutes(max(0.0, a["open_s"] - busy_s)),
                        "paused_min": _minutes(sum(a["paused_s"].values())),
                        "paused_by_reason_min": {k: _minutes(v) for k, v in sorted(a["paused_s"].items())}})
        return out

    @staticmethod
    def _last_activity(conn: Any, f: Any, wanted: set[tuple[int, date]]) -> dict[tuple[int, date], int]:
        """The end (or last call) of each counter's last called visit (Unix ms) on the (counter, business
        day) pairs ``wanted``."""
        found: dict[tuple[int, date], int] = {}
        if not wanted:
            return found
        counters = sorted({c for c, _ in wanted})
        days = sorted({d for _, d in wanted})
        for counter, day, last in conn.execute(
                select(f.c.counter, f.c.business_day, func.max(f.c.active_ms))
                .where(and_(f.c.first_wait_ms.isnot(None), f.c.counter.in_(counters), f.c.business_day.in_(days)))
                .group_by(f.c.counter, f.c.business_day)):
            if last is not None:
                found[(counter, _as_date(day))] = int(last)
        return found

    # -- clerks, hours ----------------------------------------------------------------------

    def _clerks(self, called: list[Any]) -> list[dict[str, Any]]:
        """docs/reports.md "Clerks": called, served and finished visits, and service time, per clerk and post."""
        per: dict[tuple[str, str | None], list[int]] = {}
        for r in called:
            if r.clerk is None:
                continue
            a = per.setdefault((r.clerk, r.post), [0, 0, 0, 0, 0])
            for i, n in enumerate((r.called, r.served, r.finished, r.no_show, r.serving or 0)):
                a[i] += int(n)
        names = {c.id: c.name for c in self.config.clerks}
        return [{"clerk": clerk, "name_zh": names[clerk].zh if clerk in names else clerk, "post": post,
                 "called": a[0], "served": a[1], "finished": a[2], "no_show": a[3],
                 "service_avg_min": _min_ms(a[4] / a[1]) if a[1] else None}
                for (clerk, post), a in sorted(per.items(), key=lambda kv: (kv[0][0], _sort(kv[0][1])))]

    def _hourly(self, conn: Any, f: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """docs/reports.md "Per hour and busy hours": tickets issued (first visits) by local weekday and hour
        of issue, and visits finished by local hour of their end."""
        arrivals: dict[int, int] = {}
        served: dict[int, int] = {}
        heat: dict[tuple[int, int], int] = {}
        # One integer key, weekday·10⁴ + hour in·10² + hour out (99: none): one sort on an integer (SQLite).
        key = (self._local(f.c.entered_ms, "dow") * 10_000 + self._local(f.c.entered_ms, "hour") * 100
               + func.coalesce(case((f.c.outcome == "finished", self._local(f.c.ended_ms, "hour"))), 99))
        for k, issued, finished in conn.execute(
                select(key.label("k"), _count(f.c.seq == 1), _count(f.c.outcome == "finished")).group_by(key)):
            dow, hour_in, hour_out = k // 10_000, k // 100 % 100, k % 100
            if issued:
                arrivals[hour_in] = arrivals.get(hour_in, 0) + issued
                heat[(dow, hour_in)] = heat.get((dow, hour_in), 0) + issued
            if finished:
                served[hour_out] = served.get(hour_out, 0) + finished
        hourly = [{"hour": h, "arrivals": arrivals.get(h, 0), "served": served.get(h, 0)}
                  for h in sorted(set(arrivals) | set(served))]
        return hourly, [{"weekday": d, "hour": h, "arrivals": n} for (d, h), n in sorted(heat.items())]
