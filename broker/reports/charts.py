"""The report's PNG charts (matplotlib, imported only when charts are drawn)."""

from __future__ import annotations

from typing import Any

from queuehall.broker.config import HallConfig
from queuehall.broker.reports.builder import ReportBuilder
from queuehall.broker.reports.common import (
    Report,
)
from sqlalchemy import (
    Engine,
)


def charts(rep: Report, engine: Engine, config: HallConfig, out_dir: str) -> list[str]:
    """PNG charts in ``out_dir``: wait distribution per service, arrivals and served per hour, busy-hours
    heatmap by weekday. Returns the paths written (a chart with no data is skipped)."""
    from pathlib import Path

    from matplotlib import font_manager, rc_context
    from matplotlib.figure import Figure  # not pyplot: no global state, no GUI backend, safe in any thread

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with rc_context(_fonts(font_manager)):
        return _draw(rep, engine, config, Path(out_dir), Figure)


def _fonts(font_manager: Any) -> Any:
    cjk = [f.name for f in font_manager.fontManager.ttflist
           if any(k in f.name for k in ("WenQuanYi", "Noto Sans CJK", "Noto Serif CJK", "Source Han"))]
    return {"font.family": [cjk[0], "DejaVu Sans"]} if cjk else {}


def city_charts(halls: list[dict[str, Any]], total: Report, out_dir: str) -> list[str]:
    """A city's PNG charts in ``out_dir``: the halls' waits side by side (average and 90th percentile, with the
    share called within the target), and the city total's arrivals and served per hour and busy hours. Returns
    the paths written."""
    from pathlib import Path

    from matplotlib import font_manager, rc_context
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with rc_context(_fonts(font_manager)):
        have = [h for h in halls if h["wait_avg_min"] is not None][::-1]  # the first hall on top
        if have:
            fig = Figure(figsize=(11, 0.45 * len(have) + 2))
            ax = fig.subplots()
            at = list(range(len(have)))
            ax.barh([i + 0.2 for i in at], [h["wait_avg_min"] for h in have], height=0.4, label="平均等候 average")
            ax.barh([i - 0.2 for i in at], [h["wait_p90_min"] or 0 for h in have], height=0.4,
                    label="90%等候不超过 90th percentile")
            ax.set_yticks(at, [f"{h['name_zh'] or h['hall']} ({_share(h['sla_share'])} 按时)" for h in have])
            ax.set_xlabel("等候时间（分钟） wait (min)")
            ax.set_title(f"各大厅等候时间 Waits by hall {total.start} – {total.end}")
            longest = max(max(h["wait_avg_min"], h["wait_p90_min"] or 0) for h in have)
            ax.set_xlim(0, longest * 1.45 or 1)  # room on the right for the legend
            ax.legend(loc="upper right")
            ax.grid(axis="x", alpha=0.3)
            fig.tight_layout()
            paths.append(str(out / "halls_wait.png"))
            fig.savefig(paths[-1], dpi=100)
        paths += _hours(total, out, Figure)
    return paths


def _share(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.0f}%"


def _draw(rep: Report, engine: Engine, config: HallConfig, out: Any, figure: Any) -> list[str]:
    paths = []
    by_service = ReportBuilder(engine, config).wait_samples(rep.start, rep.end)
    if by_service:
        names = {s.code: s.name.zh for s in config.services}
        order = sorted(by_service, key=lambda c: -len(by_service[c]))[:12][::-1]  # busiest on top
        fig = figure(figsize=(11, 0.5 * len(order) + 2))
        ax = fig.subplots()
        ax.boxplot([by_service[c] for c in order], orientation="horizontal",
                   tick_labels=[f"{names.get(c, c)} (n={len(by_service[c])})" for c in order],
                   whis=(10, 90), showfliers=False)
        for i, c in enumerate(order, start=1):
            s = config.service(c)
            if s:
                ax.plot([s.target_wait_minutes], [i], "r|", markersize=16, markeredgewidth=2)
        ax.set_xlabel("等候时间（分钟） wait (min) — box: quartiles, whiskers: 10th–90th percentile, red: target")
        ax.set_title(f"等候时间分布 Wait time by service {rep.start} – {rep.end}")
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        paths.append(str(out / "wait_by_service.png"))
        fig.savefig(paths[-1], dpi=100)
    return paths + _hours(rep, out, figure)


def _hours(rep: Report, out: Any, figure: Any) -> list[str]:
    """The per-hour and busy-hours charts of ``rep``."""
    paths = []
    if rep.hourly:
        fig = figure(figsize=(10, 4))
        ax = fig.subplots()
        hours = [h["hour"] for h in rep.hourly]
        ax.bar([h - 0.2 for h in hours], [h["arrivals"] for h in rep.hourly], width=0.4, label="取号 arrivals")
        ax.bar([h + 0.2 for h in hours], [h["served"] for h in rep.hourly], width=0.4, label="办结 served")
        ax.set_xticks(hours, [f"{h}:00" for h in hours])
        ax.set_xlabel("时 hour (local)")
        ax.set_ylabel("号票 tickets")
        ax.set_title(f"每小时取号与办结 Arrivals and served per hour {rep.start} – {rep.end}")
        ax.legend()
        fig.tight_layout()
        paths.append(str(out / "per_hour.png"))
        fig.savefig(paths[-1], dpi=100)
    if rep.heatmap:
        grid = [[0] * 24 for _ in range(7)]
        for cell in rep.heatmap:
            grid[(cell["weekday"] + 6) % 7][cell["hour"]] = cell["arrivals"]  # Monday first
        hours_used = [h for h in range(24) if any(grid[d][h] for d in range(7))]
        lo, hi = (min(hours_used), max(hours_used)) if hours_used else (8, 17)
        fig = figure(figsize=(10, 4))
        ax = fig.subplots()
        im = ax.imshow([row[lo:hi + 1] for row in grid], aspect="auto", cmap="YlOrRd")
        ax.set_yticks(range(7), ["一 Mon", "二 Tue", "三 Wed", "四 Thu", "五 Fri", "六 Sat", "日 Sun"])
        ax.set_xticks(range(hi - lo + 1), [f"{h}:00" for h in range(lo, hi + 1)])
        top = max(max(row) for row in grid) or 1
        for d in range(7):
            for h in range(lo, hi + 1):
                if grid[d][h]:  # white on the dark cells, black on the light ones
                    ax.text(h - lo, d, str(grid[d][h]), ha="center", va="center", fontsize=8,
                            color="white" if grid[d][h] > 0.6 * top else "black")
        ax.set_title(f"繁忙时段 Busy hours by weekday (tickets issued) {rep.start} – {rep.end}")
        fig.colorbar(im, ax=ax, label="号票 tickets")
        fig.tight_layout()
        paths.append(str(out / "heatmap.png"))
        fig.savefig(paths[-1], dpi=100)
    return paths
