"""A city's report (docs/reports.md "A city's report", docs/city.md): every hall of one database side by side,
the city total, and the rankings a city office publishes.

Each hall's figures are its own full report (:class:`ReportBuilder` on its records, with its configuration:
its hours, targets and time zone), so they equal what ``queuehall report`` prints in that hall. The city total
is computed over every hall's visits and tickets together (not averaged from the halls: a median of the city
is the median of all its visits), under the base configuration's services and time zone. Rankings order
the halls by the figures a citizen compares: the wait, the share called within the target wait, same-day
completion, and 好差评 satisfaction where there are ratings.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from queuehall.broker.config import HallConfig
from queuehall.broker.reports.builder import ReportBuilder
from queuehall.broker.reports.common import Report, ReportError
from queuehall.broker.reports.render import (
    CLERK_COLUMNS,
    COUNTER_COLUMNS,
    ROW_COLUMNS,
    _cell,
    _grid,
    _pct,
    counter_tables,
)
from sqlalchemy import Engine

#: The rankings: name -> (the hall's figure, higher is better, heading).
RANKINGS: dict[str, tuple[str, bool, str]] = {
    "wait_avg": ("wait_avg_min", False, "average wait 平均等候 (min)"),
    "wait_p90": ("wait_p90_min", False, "90% called within 90%等候不超过 (min)"),
    "within_target": ("sla_share", True, "called within the target wait 按时叫号率"),
    "same_day": ("same_day_rate", True, "same-day completion 当天办结率"),
    "satisfaction": ("good_rate", True, "satisfied 好评率 (好差评)"),
}


@dataclass
class CityReport:
    """Every hall's figures (``halls``, each with its full report), the city's (``city``) and the rankings."""

    start: date
    end: date
    timezone: str
    as_of: datetime
    halls: list[dict[str, Any]]
    city: dict[str, Any]
    rankings: dict[str, list[dict[str, Any]]]
    reports: dict[str, Report] = field(default_factory=dict)
    total: Report | None = None  # the city total's own report (per hour, busy hours: the charts)

    def to_dict(self) -> dict[str, Any]:
        """The ``--format json`` output: the side-by-side figures, the total, the rankings and each hall's
        whole report (``reports``, as ``queuehall report --hall ID --format json`` prints it)."""
        return {"period": {"from": self.start.isoformat(), "to": self.end.isoformat(), "timezone": self.timezone},
                "as_of": self.as_of.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "halls": self.halls, "city": self.city, "rankings": self.rankings,
                "reports": {h: r.to_dict() for h, r in self.reports.items()}}


def _summary(rep: Report) -> dict[str, Any]:
    """The figures of one report a city compares, flat (docs/reports.md "A city's report")."""
    t, c, a = rep.tickets, rep.completion, rep.total
    sat = (rep.satisfaction or {}).get("total") or {}
    return {
        "issued": t["issued"], "served": t["served"], "no_show": t["no_show"], "cancelled": t["cancelled"],
        "closed_unserved": t["closed_unserved"], "open": t["open"], "transferred": t["transferred"],
        "visits": a["visits"], "wait_avg_min": a["wait_avg_min"], "wait_median_min": a["wait_median_min"],
        "wait_p90_min": a["wait_p90_min"], "wait_max_min": a["wait_max_min"], "sla_share": a["sla_share"],
        "sla_within": a["sla_within"], "sla_counted": a["sla_counted"], "service_avg_min": a["service_avg_min"],
        "same_day_rate": c["same_day_rate"], "same_day_completed": c["same_day_completed"],
        "promised_accepted": c["promised_accepted"], "promised_past_due": c["promised_past_due"],
        "rated": sat.get("rated", 0), "good_rate": sat.get("good_rate"), "level_avg": sat.get("level_avg"),
        "cases": sat.get("cases", 0),
    }


def _rank(halls: list[dict[str, Any]], key: str, higher: bool) -> list[dict[str, Any]]:
    """Halls with the figure, best first, with competition ranks (equal figures share a rank: 1, 2, 2, 4);
    halls without it (no visits, no ratings) are left out."""
    have = [h for h in halls if h[key] is not None]
    have.sort(key=lambda h: (-h[key] if higher else h[key], h["hall"]))
    out: list[dict[str, Any]] = []
    for i, h in enumerate(have):
        rank = out[-1]["rank"] if out and out[-1]["value"] == h[key] else i + 1
        out.append({"rank": rank, "hall": h["hall"], "name_zh": h["name_zh"], "value": h[key]})
    return out


def build_city(engine: Engine, configs: dict[str, HallConfig], base: HallConfig, start: date, end: date,
               now: datetime | None = None, halls: list[str] | None = None, workers: int = 1,
               daily: bool = True) -> CityReport:
    """The city's report for business days ``start``..``end``.

    ``halls``: the halls to report (default: every hall with records in the database, see
    :meth:`broker.storage.Store.halls`). ``configs``: hall id -> its configuration; a hall without one is
    reported under ``base`` (its services and rules) with its own id. The city total uses ``base``.
    ``workers``: how many halls add up their days not stored yet at a time (each on connections of its own; from
    the facts, ``daily=False``: how many reports are computed at a time). 1 by default: measured at the issue's
    scale on this project's two shared cores, two at a time gained nothing (a cold city report 122 s against
    124 s, docs/reports.md "A city's report"); the warm report reads report days on one connection anyway.
    ``daily``: read the figures from report days (docs/reports.md "Report days"; False: every report from the
    facts, as before them)."""
    from concurrent.futures import ThreadPoolExecutor

    from queuehall.broker.storage import Store

    now = now or datetime.now(UTC)
    ids = halls if halls is not None else Store(engine).halls()
    if not ids:
        raise ReportError("REPORT_DATABASE", detail="no hall has records in this database")
    registered = ReportBuilder(engine, base).hall_names()
    hall_configs = {h: configs.get(h) or replace(base, hall_id=h, hall_id_given=True) for h in ids}
    if not ReportBuilder(engine, base).parallel:  # an in-memory SQLite database: one connection
        workers = 1
    rows: list[dict[str, Any]] = []
    reports: dict[str, Report] = {}
    builders = {h: ReportBuilder(engine, cfg, daily=daily) for h, cfg in hall_configs.items()}
    whole = ReportBuilder(engine, base, city=True, daily=daily)
    if whole.uses_days(start, end, "hall") and all(b.uses_days(start, end, "service") for b in builders.values()):
        # Report days (docs/reports.md "Report days"): every hall's days read at once, its report and the total
        # added up from them; ``workers`` halls add up their days not stored yet at a time.
        *done, total = ReportBuilder.build_together([*((b, "service") for b in builders.values()), (whole, "hall")],
                                                    start, end, now, workers=workers, halls=ids)
        reports = dict(zip(builders, done, strict=True))
    else:
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="city") as pool:
            # The total first: the longest, it runs beside the halls' reports.
            total_job = pool.submit(whole.build, start, end, "hall", now)
            jobs = {h: pool.submit(b.build, start, end, "service", now) for h, b in builders.items()}
            reports = {h: jobs[h].result() for h in builders}
            total = total_job.result()
    for h, cfg in hall_configs.items():
        name = ({"name_zh": cfg.name.zh, "name_en": cfg.name.en} if h in configs
                else registered.get(h, {"name_zh": h, "name_en": h}))
        rows.append({"hall": h, **name, **_summary(reports[h])})
    city = {"hall": "all", "name_zh": "全市合计", "name_en": "City total", "halls": len(ids), **_summary(total)}
    rankings = {name: _rank(rows, key, higher) for name, (key, higher, _h) in RANKINGS.items()}
    return CityReport(start, end, base.timezone, now, rows, city, rankings, reports, total)


_COLUMNS = (("hall", "hall 大厅"), ("issued", "issued"), ("served", "served"), ("no_show", "no-show"),
            ("closed_unserved", "unserved"), ("wait_avg_min", "wait avg"), ("wait_median_min", "median"),
            ("wait_p90_min", "p90"), ("sla_share", "in target"), ("service_avg_min", "svc avg"),
            ("same_day_rate", "same-day"), ("promised_accepted", "promised"), ("rated", "rated"),
            ("good_rate", "好评率"))
_SHARES = {"sla_share", "same_day_rate", "good_rate"}


def _cells(row: dict[str, Any]) -> list[str]:
    return [_pct(row[k]) if k in _SHARES else _cell(row[k]) for k, _h in _COLUMNS]


def city_table(rep: CityReport) -> str:
    """The city's report as text: the halls side by side (times in minutes), the total, the rankings."""
    lines = [f"queuehall report 全市统计 {rep.start} – {rep.end} ({rep.timezone}), {len(rep.halls)} halls", ""]
    lines += _grid([h for _k, h in _COLUMNS], [*(_cells(r) for r in rep.halls), _cells(rep.city)], 1)
    for name, (_key, _higher, heading) in RANKINGS.items():
        ranked = rep.rankings[name]
        lines += ["", f"ranking 排名: {heading}"]
        if not ranked:
            lines.append("  — (no figures 无数据)")
            continue
        lines += _grid(["rank", "hall", "name", "value"],
                       [[str(r["rank"]), r["hall"], r["name_zh"] or "—",
                         _pct(r["value"]) if name in ("within_target", "same_day", "satisfaction")
                         else _cell(r["value"])] for r in ranked], 3)
    for h in rep.halls:  # each hall's counters and clerks (its own: a city has none of its own)
        found = rep.reports.get(h["hall"])
        if found is not None:
            lines += counter_tables(found, f" — {h['name_zh'] or h['hall']} ({h['hall']})")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def city_csv(rep: CityReport) -> str:
    """One CSV row per hall and one for the city total (column names as in the JSON)."""
    out = io.StringIO()
    keys = list(rep.city)
    w = csv.writer(out, lineterminator="\n")
    w.writerow(keys)
    for r in [*rep.halls, rep.city]:
        w.writerow(["" if r.get(k) is None else r.get(k) for k in keys])
    return out.getvalue()


def city_xlsx(rep: CityReport, path: str) -> None:
    """An Excel workbook of the city's report: sheets ``halls`` (one row per hall and the city total, the CSV's
    columns), ``rankings``, and every hall's ``by service`` rows, ``counters`` and ``clerks`` with a ``hall``
    column first."""
    import json

    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "halls"
    keys = list(rep.city)
    ws.append(keys)
    for r in [*rep.halls, rep.city]:
        ws.append([r.get(k) for k in keys])
    ranks = wb.create_sheet("rankings")
    ranks.append(["ranking", "rank", "hall", "name_zh", "value"])
    for name, ranked in rep.rankings.items():
        for r in ranked:
            ranks.append([name, r["rank"], r["hall"], r["name_zh"], r["value"]])
    for title, columns, part in (("by service", ROW_COLUMNS, "rows"), ("counters", COUNTER_COLUMNS, "counters"),
                                 ("clerks", CLERK_COLUMNS, "clerks")):
        sheet = wb.create_sheet(title)
        sheet.append(["hall", *columns])
        for h, one in rep.reports.items():
            items = [*one.rows, one.total] if part == "rows" else getattr(one, part)
            for x in items:
                sheet.append([h, *(json.dumps(x[c], ensure_ascii=False) if isinstance(x.get(c), dict) else x.get(c)
                                   for c in columns)])
    wb.save(path)
