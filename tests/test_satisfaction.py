"""好差评 in the reports (docs/evaluation.md "Reports"): satisfaction per clerk, counter, service and day with
好评率, cases, overdue and 回访率; the clerk assessment table; alerts per day and rule; every report format;
and the daily export of ratings for the province's platform (``queuehall ratings export``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from queuehall.broker.alerts import AlertMonitor, AlertRules
from queuehall.broker.reports import ReportBuilder, to_table, to_xlsx
from queuehall.broker.satisfaction import export_day
from queuehall.broker.storage import load_hall, open_store

from queuehall.cli import main
from queuehall.clock import ManualClock
from tests.hall_factory import TUESDAY, install_pins, local, small_config
from tests.test_engine_rules import Bench


def day_of_ratings(db_url: str) -> tuple[Any, Any, ManualClock]:
    cfg = small_config()
    store = open_store(db_url, sqlite_synchronous="NORMAL")
    install_pins(store, cfg)
    clock = ManualClock(local(TUESDAY, 9, 0))
    b = Bench.__new__(Bench)
    b.clock, b.hall, b.events = clock, load_hall(cfg, clock, store), []
    b.open(1)
    b.open(2)
    levels = [(1, "P", 5), (1, "P", 4), (2, "H", 3), (2, "H", 2), (1, "H", 1)]
    for counter, service, level in levels:
        b.take(service)
        label = b.serve(counter, minutes=4)
        reply = b.do("rate", ticket=label, level=level, channel="cli")
        if level == 2:
            b.do("case_callback", case=reply["case"]["id"], note="已回访")
    b.take("P")
    b.call(1)
    b.do("no_show", counter=1)  # a no-show for c1a's assessment
    monitor = AlertMonitor(AlertRules(calendar=False))
    raised, cleared = monitor.check(b.hall, {}, clock.now())
    b.hall.record_alerts(raised, cleared)
    return cfg, store, clock


def test_satisfaction_assessment_and_alerts_in_the_report(db_url: str, tmp_path: Path) -> None:
    cfg, store, clock = day_of_ratings(db_url)
    try:
        rep = ReportBuilder(store.engine, cfg).build(TUESDAY, TUESDAY, now=clock.now())
        s = rep.satisfaction
        t = s["total"]
        assert (t["rated"], t["level_5"], t["level_1"], t["good"], t["good_rate"]) == (5, 1, 1, 3, 0.6)
        assert (t["cases"], t["cases_open"], t["called_back"], t["callback_rate"]) == (2, 2, 1, 0.5)
        assert t["cases_overdue"] == 0
        by_clerk = {r["clerk"]: r for r in s["by_clerk"]}
        assert by_clerk["c1a"]["rated"] == 3 and by_clerk["c1a"]["good_rate"] == round(2 / 3, 4)
        assert by_clerk["c2a"]["level_2"] == 1 and by_clerk["c2a"]["callback_rate"] == 1.0
        assert {r["counter"] for r in s["by_counter"]} == {1, 2}
        assert [r["day"] for r in s["by_day"]] == [TUESDAY.isoformat()]
        ass = {r["clerk"]: r for r in rep.assessment}
        assert ass["c1a"]["finished"] == 3 and ass["c1a"]["service_avg_min"] == 4.0
        assert ass["c1a"]["no_show_share"] == 0.25 and ass["c1a"]["alerts"] == 1  # bad_rating of its case
        assert {(a["rule"], a["raised"]) for a in rep.alerts} == {("bad_rating", 1)}
        text = to_table(rep)
        assert "好差评 satisfaction: rated 5  好评率 60.0%" in text and "考核评比" in text and "bad_rating" in text
        assert json.loads(json.dumps(rep.to_dict(), default=str))["satisfaction"]["total"]["rated"] == 5
        to_xlsx(rep, str(tmp_path / "r.xlsx"))
        from openpyxl import load_workbook

        wb = load_workbook(tmp_path / "r.xlsx")
        assert {"satisfaction by clerk", "assessment", "alerts"} <= set(wb.sheetnames)
        # The CSV carries each row's satisfaction (sat_* columns) where the grouping has it, and the total.
        import csv
        import io

        from queuehall.broker.reports import to_csv

        for group, key in (("clerk", "c1a"), ("service", None), ("counter", "1")):
            grouped = ReportBuilder(store.engine, cfg).build(TUESDAY, TUESDAY, group=group, now=clock.now())
            lines = list(csv.DictReader(io.StringIO(to_csv(grouped))))
            assert lines[-1]["group"] == "all" and lines[-1]["sat_rated"] == "5" and lines[-1]["sat_good_rate"] == "0.6"
            by = {r["group"]: r for r in lines[:-1]}
            want = {str(r[group]): r for r in grouped.satisfaction[f"by_{group}"]}
            assert want and all(by[k]["sat_rated"] == str(v["rated"]) for k, v in want.items())
            if key is not None:
                assert by[key]["sat_cases"] == str(want[key]["cases"])
        by_hour = list(csv.DictReader(io.StringIO(to_csv(ReportBuilder(store.engine, cfg).build(
            TUESDAY, TUESDAY, group="hour", now=clock.now())))))
        assert by_hour[0]["sat_rated"] == "" and by_hour[-1]["sat_rated"] == "5"  # hours: only the total
        # Overdue: the report as of a month later.
        later = ReportBuilder(store.engine, cfg).build(TUESDAY, TUESDAY, now=datetime(2027, 1, 20, tzinfo=UTC))
        assert later.satisfaction["total"]["cases_overdue"] == 2
    finally:
        store.close()


def test_the_daily_export_for_the_province(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _cfg, store, _clock = day_of_ratings(db_url)
    try:
        records = export_day(store.engine, TUESDAY)
        assert [r["level"] for r in records] == [5, 4, 3, 2, 1]
        first = records[0]
        assert set(first) == {"id", "visit_id", "ticket_id", "label", "business_day", "service", "counter", "clerk",
                              "post", "level", "level_zh", "level_en", "indicators", "reason", "channel",
                              "is_default", "rated_at", "visit_ended_at"}
        assert first["level_zh"] == "非常满意" and first["rated_at"].endswith("Z") and first["is_default"] is False
        if db_url.startswith("sqlite"):
            out = tmp_path / "ratings.jsonl"
            assert main(["ratings", "export", "--day", TUESDAY.isoformat(), "--db", db_url, "--out", str(out)]) == 0
            lines = out.read_text(encoding="utf-8").splitlines()
            assert [json.loads(line)["label"] for line in lines] == [r["label"] for r in records]
            assert main(["ratings", "export", "--day", "2026-13-01", "--db", db_url]) == 2
            assert "REPORT_BAD_DATE" in capsys.readouterr().err
        assert export_day(store.engine, TUESDAY.replace(day=25)) == []
    finally:
        store.close()
