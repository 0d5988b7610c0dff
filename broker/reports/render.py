"""The report as text: the terminal table, CSV and an Excel workbook."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from queuehall.broker.reports.appointments import BOOKING_COLUMNS, WAIT_COLUMNS
from queuehall.broker.reports.common import (
    SAME_DAY_TARGET,
    Report,
)

ROW_FIGURES = ("visits", "issued", "called", "served", "finished", "no_show", "transferred_out", "cancelled",
               "voided", "closed_unserved", "open", "wait_avg_min", "wait_median_min", "wait_p90_min",
               "wait_max_min", "sla_within", "sla_counted", "sla_share", "service_avg_min", "service_p90_min")
ROW_COLUMNS = ("group", "name_zh", "name_en", *ROW_FIGURES)
_TABLE_COLUMNS = ("group", "name_zh", "visits", "called", "served", "finished", "no_show", "transferred_out",
                  "cancelled", "wait_avg_min", "wait_median_min", "wait_p90_min", "wait_max_min", "sla_share",
                  "service_avg_min", "service_p90_min")
_TABLE_HEADINGS = ("group", "name", "visits", "called", "served", "finished", "no-show", "transf.", "cancel.",
                   "wait avg", "median", "p90", "max", "in SLA", "svc avg", "svc p90")
COUNTER_COLUMNS = ("counter", "name_zh", "open_min", "busy_min", "serving_min", "idle_min", "paused_min",
                   "paused_by_reason_min")
CLERK_COLUMNS = ("clerk", "name_zh", "post", "called", "served", "finished", "no_show", "service_avg_min")


def _width(s: str) -> int:
    """Terminal columns of ``s``: CJK characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s)


def _pad(s: str, width: int, right: bool = False) -> str:
    gap = " " * max(0, width - _width(s))
    return gap + s if right else s + gap


def _grid(headings: list[str], rows: list[list[str]], numeric_from: int) -> list[str]:
    widths = [max(_width(h), *(_width(r[i]) for r in rows)) if rows else _width(h) for i, h in enumerate(headings)]
    lines = ["  ".join(_pad(h, w, i >= numeric_from) for i, (h, w) in enumerate(zip(headings, widths, strict=True)))]
    lines += ["  ".join(_pad(c, w, i >= numeric_from) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
              for r in rows]
    return lines


def to_table(rep: Report) -> str:
    """The report as a readable text table for the terminal (times in minutes)."""
    t, c, a = rep.tickets, rep.completion, rep.total
    meets = {None: "—", True: "met 达标", False: "NOT met 未达标"}[c["same_day_meets_target"]]
    lines = [f"queuehall report 统计报表 {rep.start} – {rep.end} ({rep.timezone}), by {rep.group}", "",
             f"tickets 号票: issued {t['issued']}  served {t['served']}  no-show {t['no_show']}  "
             f"transferred {t['transferred']}  cancelled {t['cancelled']}  voided {t['voided']}  "
             f"unserved at close 闭厅未办结 {t['closed_unserved']}  open {t['open']}",
             f"wait 等候 (min): avg {_cell(a['wait_avg_min'])}  median {_cell(a['wait_median_min'])}  "
             f"p90 {_cell(a['wait_p90_min'])}  max {_cell(a['wait_max_min'])}  "
             f"within target {_pct(a['sla_share'])} ({a['sla_within']}/{a['sla_counted']})",
             f"service 办理 (min): avg {_cell(a['service_avg_min'])}  p90 {_cell(a['service_p90_min'])}",
             f"same-day completion 当天办结率 {_pct(c['same_day_rate'])} "
             f"({c['same_day_completed']}/{c['served'] + c['closed_unserved']}; "
             f"target ≥ {SAME_DAY_TARGET:.0%}: {meets})",
             f"promised matters 限时办结: accepted {c['promised_accepted']}  past due date {c['promised_past_due']}  "
             f"on-the-spot matters left unfinished {c['on_the_spot_unfinished']}", ""]
    body = [[_cell(r.get(k)) if k != "sla_share" else _pct(r.get(k)) for k in _TABLE_COLUMNS]
            for r in [*rep.rows, rep.total]]
    lines += _grid(list(_TABLE_HEADINGS), body, 2)
    lines += counter_tables(rep)
    lines += _satisfaction_table(rep)
    lines += _appointments_table(rep)
    return "\n".join(line.rstrip() for line in lines) + "\n"


def counter_tables(rep: Report, title: str = "") -> list[str]:
    """The counters (times in minutes) and clerks tables of the text report (``title`` after each heading: a
    city's report prints them per hall)."""
    lines: list[str] = []
    if rep.counters:
        lines += ["", f"counters 窗口 (min){title}"]
        lines += _grid(["counter", "name", "open", "busy", "serving", "idle", "paused", "paused by reason"],
                       [[str(x["counter"]), x["name_zh"] or "—", _cell(x["open_min"]), _cell(x["busy_min"]),
                         _cell(x["serving_min"]), _cell(x["idle_min"]), _cell(x["paused_min"]),
                         ", ".join(f"{k} {_cell(v)}" for k, v in x["paused_by_reason_min"].items()) or "—"]
                        for x in rep.counters], 2)
    if rep.clerks:
        lines += ["", f"clerks 工作人员{title}"]
        lines += _grid(["clerk", "name", "post", "called", "served", "finished", "no-show", "svc avg"],
                       [[x["clerk"], x["name_zh"], x["post"] or "—", str(x["called"]), str(x["served"]),
                         str(x["finished"]), str(x["no_show"]), _cell(x["service_avg_min"])] for x in rep.clerks], 3)
    return lines


def _satisfaction_table(rep: Report) -> list[str]:
    """The 好差评 sections of the text report (docs/evaluation.md): per clerk and counter, the assessment, alerts."""
    if not (rep.satisfaction.get("total") or {}).get("rated") and not rep.alerts:
        return []
    lines: list[str] = []
    t = rep.satisfaction["total"]
    lines += ["", f"好差评 satisfaction: rated {t['rated']}  好评率 {_pct(t['good_rate'])}  defaults {t['defaults']}  "
                  f"差评 cases {t['cases']} (open {t['cases_open']}, overdue {t['cases_overdue']})  "
                  f"回访率 {_pct(t['callback_rate'])}  on time {_pct(t['on_time_rate'])}"]
    for dim in ("clerk", "counter", "service", "day"):
        rows = rep.satisfaction.get(f"by_{dim}") or []
        if rows:
            lines += ["", f"satisfaction by {dim}"]
            lines += _grid([dim, "rated", "5", "4", "3", "2", "1", "好评率", "cases", "open", "overdue", "回访率"],
                           [[str(r[dim]), str(r["rated"]), *(str(r[f"level_{n}"]) for n in range(5, 0, -1)),
                             _pct(r["good_rate"]), str(r["cases"]), str(r["cases_open"]), str(r["cases_overdue"]),
                             _pct(r["callback_rate"])] for r in rows], 1)
    if rep.assessment:
        lines += ["", "考核评比 clerk assessment"]
        lines += _grid(["clerk", "name", "finished", "svc avg", "no-show", "rated", "好评率", "avg", "cases",
                        "回访率", "alerts"],
                       [[x["clerk"], x["name_zh"] or "—", str(x["finished"]), _cell(x["service_avg_min"]),
                         _pct(x["no_show_share"]), str(x["rated"]), _pct(x["good_rate"]), _cell(x["level_avg"]),
                         str(x["cases"]), _pct(x["callback_rate"]), str(x["alerts"])] for x in rep.assessment], 2)
    if rep.alerts:
        lines += ["", "alerts 告警 per day and rule"]
        lines += _grid(["day", "rule", "raised"], [[a["day"], a["rule"], str(a["raised"])] for a in rep.alerts], 2)
    return lines


def _appointments_table(rep: Report) -> list[str]:
    """The appointment sections of the text report (docs/reports.md "Appointments")."""
    a = rep.appointments
    if not a:
        return []
    lines = ["", "预约 appointments: bookings per service and day"]
    lines += _grid(["day", "service", "booked", "cancelled", "on time", "late", "no-show", "open", "check-in",
                    "punctual", "early avg"],
                   [[r["day"], r["service"], *(str(r[k]) for k in BOOKING_COLUMNS[2:8]), _pct(r["checkin_rate"]),
                     _pct(r["punctuality"]), _cell(r["arrival_early_avg_min"])] for r in a["by_service_day"]], 2)
    lines += ["", "预约 waits (min): appointment against walk-in tickets"]
    lines += _grid(["service", "kind", "tickets", "called", "wait avg", "median", "p90", "from slot"],
                   [[r["service"], r["kind"], str(r["tickets"]), str(r["called"]), _cell(r["wait_avg_min"]),
                     _cell(r["wait_median_min"]), _cell(r["wait_p90_min"]), _cell(r["from_slot_avg_min"])]
                    for r in a["waits"]], 2)
    return lines


def appointments_csv(rep: Report) -> str:
    """The appointment figures as CSV (``queuehall report --appointments --format csv``): the bookings per
    service and day, a blank line, then the waits of appointment and walk-in tickets; each with a header."""
    buf = io.StringIO()
    sections: list[tuple[tuple[str, ...], list[dict[str, Any]]]] = [
        (BOOKING_COLUMNS, rep.appointments.get("by_service_day", [])),
        (WAIT_COLUMNS, rep.appointments.get("waits", []))]
    for cols, rows in sections:
        if buf.tell():
            buf.write("\n")
        w = csv.DictWriter(buf, fieldnames=list(cols), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return buf.getvalue()


def _cell(v: Any) -> str:
    return "—" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.1f}%"


# 好差评 columns of the CSV (docs/reports.md "Formats"): the row's ratings, when the grouping is one the
# satisfaction figures are kept by (service, counter, clerk, day) and for the ``all`` row; empty otherwise.
SATISFACTION_COLUMNS = ("rated", "level_5", "level_4", "level_3", "level_2", "level_1", "defaults", "good_rate",
                        "level_avg", "cases", "cases_open", "cases_overdue", "callback_rate")


def _satisfaction_of(rep: Report, row: dict[str, Any], last: bool) -> dict[str, Any]:
    if last:
        found = rep.satisfaction.get("total")
    else:
        by = {str(r.get(rep.group)): r for r in rep.satisfaction.get(f"by_{rep.group}") or []}
        found = by.get(str(row.get("group")))
        if found is None and f"by_{rep.group}" in rep.satisfaction:
            found = {c: 0 for c in SATISFACTION_COLUMNS if c not in ("good_rate", "level_avg", "callback_rate")}
    if not found:
        return {}
    return {f"sat_{c}": found.get(c) for c in SATISFACTION_COLUMNS}


def to_csv(rep: Report) -> str:
    """The grouped rows and a last ``all`` row as CSV (UTF-8, header line, times in minutes), with the rows'
    satisfaction (``sat_*`` columns, empty where the grouping has none: department, hour)."""
    buf = io.StringIO()
    columns = [*ROW_COLUMNS, *(f"sat_{c}" for c in SATISFACTION_COLUMNS)]
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    rows = [*rep.rows, rep.total]
    for i, r in enumerate(rows):
        w.writerow({**r, **_satisfaction_of(rep, r, i == len(rows) - 1)})
    return buf.getvalue()


def to_xlsx(rep: Report, path: str) -> None:
    """An Excel workbook: sheets by-group (rows + all), summary, counters, clerks and per-hour."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = f"by {rep.group}"
    ws.append(list(ROW_COLUMNS))
    for r in [*rep.rows, rep.total]:
        ws.append([r.get(c) for c in ROW_COLUMNS])
    summary = wb.create_sheet("summary")
    summary.append(["period", f"{rep.start.isoformat()} – {rep.end.isoformat()}"])
    summary.append(["timezone", rep.timezone])
    for k, v in [*rep.tickets.items(), *rep.completion.items()]:
        summary.append([k, v])
    cs = wb.create_sheet("counters")
    cs.append(list(COUNTER_COLUMNS))
    for c in rep.counters:
        cs.append([json.dumps(c[k], ensure_ascii=False) if isinstance(c[k], dict) else c[k] for k in COUNTER_COLUMNS])
    ks = wb.create_sheet("clerks")
    ks.append(list(CLERK_COLUMNS))
    for c in rep.clerks:
        ks.append([c[k] for k in CLERK_COLUMNS])
    hs = wb.create_sheet("per hour")
    hs.append(["hour", "arrivals", "served"])
    for h in rep.hourly:
        hs.append([h["hour"], h["arrivals"], h["served"]])
    if (rep.satisfaction.get("total") or {}).get("rated") or rep.alerts:  # 好差评 (docs/evaluation.md)
        for dim in ("clerk", "counter", "service", "day"):
            rows = rep.satisfaction.get(f"by_{dim}") or []
            sheet = wb.create_sheet(f"satisfaction by {dim}")
            cols = list(rows[0]) if rows else [dim]
            sheet.append(cols)
            for r in rows:
                sheet.append([r.get(c) for c in cols])
        sheet = wb.create_sheet("assessment")
        cols = list(rep.assessment[0]) if rep.assessment else ["clerk"]
        sheet.append(cols)
        for r in rep.assessment:
            sheet.append([r.get(c) for c in cols])
        sheet = wb.create_sheet("alerts")
        sheet.append(["day", "rule", "raised"])
        for a in rep.alerts:
            sheet.append([a["day"], a["rule"], a["raised"]])
    for title, heads, rows in (("appointments", BOOKING_COLUMNS, rep.appointments.get("by_service_day")),
                               ("appointment waits", WAIT_COLUMNS, rep.appointments.get("waits"))):
        if rows:  # 预约 (docs/reports.md "Appointments")
            sheet = wb.create_sheet(title)
            sheet.append(list(heads))
            for r in rows:
                sheet.append([r.get(c) for c in heads])
    wb.save(path)
