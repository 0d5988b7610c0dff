"""``queuehall report`` and ``queuehall purge`` on the command line (docs/reports.md, docs/cli.md)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from queuehall.broker.config import HallConfig
from queuehall.broker.reports.builder import ReportBuilder
from queuehall.broker.reports.charts import charts
from queuehall.broker.reports.common import (
    FORMATS,
    GROUPS,
    ReportError,
)
from queuehall.broker.reports.render import (
    appointments_csv,
    to_csv,
    to_table,
    to_xlsx,
)
from sqlalchemy import (
    Engine,
    inspect,
)


def register(sub: Any) -> None:
    """Add ``queuehall report`` and ``queuehall purge`` to the command line (docs/reports.md)."""
    p = sub.add_parser("report", help="wait and service time reports from the database (docs/reports.md)")
    p.add_argument("--db", default=None, help="SQLAlchemy URL (default: the local SQLite database)")
    p.add_argument("--config", default=None, help="hall configuration (default config/hall.toml)")
    p.add_argument("--day", default=None, help="one business day YYYY-MM-DD")
    p.add_argument("--from", dest="start", default=None, help="first business day YYYY-MM-DD")
    p.add_argument("--to", dest="end", default=None, help="last business day YYYY-MM-DD (default: --from)")
    p.add_argument("--group", default="service", help=f"rows by: {', '.join(GROUPS)} (default service)")
    p.add_argument("--format", default="table", choices=FORMATS)
    p.add_argument("--out", default=None, help="output file (csv, json, xlsx) or folder (png); default stdout")
    p.add_argument("--hall", default=None,
                   help="a hall of a shared database by its id, or 'all': every hall side by side, the city total "
                        "and rankings (docs/city.md); default the hall of --config")
    p.add_argument("--config-dir", default=None,
                   help="the city's configuration folder (one file per hall, e.g. config/beijing-exit-entry): "
                        "each hall is reported with its own file")
    p.add_argument("--appointments", action="store_true",
                   help="with --format csv: the appointment (预约) figures instead of the grouped rows")
    p.add_argument("--prepare", action="store_true",
                   help="only store the report facts of the closed business days (run nightly; with --day or "
                        "--from/--to just those days); prints JSON")
    p.set_defaults(func=_report_main)
    p = sub.add_parser("purge", help="delete records older than the retention period (docs/reports.md)")
    p.add_argument("--db", default=None, help="SQLAlchemy URL (default: the local SQLite database)")
    p.add_argument("--config", default=None, help="hall configuration (default config/hall.toml)")
    p.add_argument("--before", required=True, help="delete business days before YYYY-MM-DD")
    p.set_defaults(func=_purge_main)


def parse_period(day: str | None, start: str | None, end: str | None) -> tuple[date, date]:
    """The period of ``--day`` or ``--from``/``--to``; :class:`ReportError` when missing or malformed."""
    def parse(value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ReportError("REPORT_BAD_DATE", value=value) from None

    if day and (start or end):
        raise ReportError("REPORT_BAD_PERIOD", detail="--day cannot be combined with --from/--to")
    if day:
        d = parse(day)
        return d, d
    if not start:
        raise ReportError("REPORT_NO_PERIOD")
    s = parse(start)
    e = parse(end) if end else s
    if e < s:
        raise ReportError("REPORT_BAD_PERIOD", detail=f"--to {e.isoformat()} is before --from {s.isoformat()}")
    return s, e


def _open(db: str | None, config: str | None) -> tuple[Engine, HallConfig]:
    """The engine and configuration for the CLI; never creates a database that is not there."""
    from queuehall.broker.config import DEFAULT_CONFIG, ConfigError, load_config
    from queuehall.broker.storage import default_url, make_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    try:
        cfg = load_config(config or DEFAULT_CONFIG)
    except ConfigError as err:
        raise ReportError("REPORT_CONFIG", detail=str(err)) from None
    url = db or default_url()
    try:
        parsed = make_url(url)
    except SQLAlchemyError as err:
        raise ReportError("REPORT_DATABASE", detail=str(err)) from None
    if parsed.get_backend_name() == "sqlite":
        from pathlib import Path

        path = parsed.database or ""
        if path in ("", ":memory:") or not Path(path).is_file():
            raise ReportError("REPORT_NO_DATABASE", path=path or url)
    engine = make_engine(url)
    try:
        names = set(inspect(engine).get_table_names())
    except SQLAlchemyError as err:
        engine.dispose()
        raise ReportError("REPORT_DATABASE", detail=str(err).splitlines()[0]) from None
    missing = {"tickets", "visits", "events"} - names
    if missing:
        engine.dispose()
        raise ReportError("REPORT_DATABASE", detail=f"not a queuehall database (no {', '.join(sorted(missing))})")
    return engine, cfg


def city_configs(folder: str | None) -> dict[str, HallConfig]:
    """Every hall configuration in ``folder`` by hall id: the ``*.toml`` files naming a ``[hall] id`` (after
    ``extends``; a shared file without one is skipped). :class:`ReportError` REPORT_CONFIG for a broken one."""
    from pathlib import Path

    from queuehall.broker.config import ConfigError, load_config, read_toml

    out: dict[str, HallConfig] = {}
    if not folder:
        return out
    files = sorted(Path(folder).glob("*.toml"))
    if not Path(folder).is_dir() or not files:
        raise ReportError("REPORT_CONFIG", detail=f"{folder}: no hall configuration files (*.toml) there")
    try:
        for path in files:
            hall = read_toml(path).get("hall")
            if not (isinstance(hall, dict) and "id" in hall):
                continue
            cfg = load_config(path)
            if cfg.hall_id in out:
                raise ReportError("REPORT_CONFIG",
                                  detail=f"{path}: hall id {cfg.hall_id!r} is also {out[cfg.hall_id].source}")
            out[cfg.hall_id] = cfg
    except ConfigError as err:
        raise ReportError("REPORT_CONFIG", detail=str(err)) from None
    return out


def _for_hall(config: HallConfig, configs: dict[str, HallConfig], hall: str | None, engine: Engine) -> HallConfig:
    """The configuration to report ``hall`` with (its own file in --config-dir, else --config under its id);
    REPORT_UNKNOWN_HALL for a hall the database has no record of."""
    from dataclasses import replace

    from queuehall.broker.storage import Store

    if hall is None:
        return config
    known = Store(engine).halls()
    if hall not in known:
        raise ReportError("REPORT_UNKNOWN_HALL", hall=hall, halls=", ".join(known) or "—")
    return configs.get(hall) or replace(config, hall_id=hall, hall_id_given=True)


def _fail(command: str, err: ReportError) -> int:
    import sys

    print(f"queuehall {command}: {err.code}: {err.message_zh} / {err.message_en}", file=sys.stderr)
    return 2


def _report_main(args: Any) -> int:
    """``queuehall report``: 0 written, 2 bad arguments or unusable database (message on stderr)."""
    if args.prepare:
        return _prepare_main(args)
    try:
        start, end = parse_period(args.day, args.start, args.end)
        if args.group not in GROUPS:
            raise ReportError("REPORT_BAD_GROUP", group=args.group, choices=", ".join(GROUPS))
        if args.format == "xlsx" and not args.out:
            raise ReportError("REPORT_NEEDS_OUT", format="xlsx")
        configs = city_configs(getattr(args, "config_dir", None))
        engine, config = _open(args.db, args.config if args.config or not configs else
                               next(iter(configs.values())).source)
        hall = getattr(args, "hall", None)
        if hall == "all":
            return _city_main(args, engine, config, configs, start, end)
        try:
            config = _for_hall(config, configs, hall, engine)
        except ReportError:
            engine.dispose()
            raise
    except ReportError as err:
        return _fail("report", err)
    try:
        rep = ReportBuilder(engine, config).build(start, end, args.group)
        if args.format == "table":
            _write(args.out, to_table(rep))
        elif args.format == "csv":
            _write(args.out, appointments_csv(rep) if args.appointments else to_csv(rep))
        elif args.format == "json":
            _write(args.out, json.dumps(rep.to_dict(), ensure_ascii=False, indent=2, default=str) + "\n")
        elif args.format == "xlsx":
            to_xlsx(rep, args.out)
            print(args.out)
        else:
            for p in charts(rep, engine, config, args.out or "report-charts"):
                print(p)
    finally:
        engine.dispose()
    return 0


def _city_main(args: Any, engine: Engine, config: HallConfig, configs: dict[str, HallConfig],
               start: date, end: date) -> int:
    """``queuehall report --hall all``: every hall side by side, the city total and the rankings."""
    from queuehall.broker.reports.charts import city_charts
    from queuehall.broker.reports.city import build_city, city_csv, city_table, city_xlsx

    try:
        rep = build_city(engine, configs, config, start, end)
    except ReportError as err:
        return _fail("report", err)
    finally:
        engine.dispose()
    if args.format == "table":
        _write(args.out, city_table(rep))
    elif args.format == "csv":
        _write(args.out, city_csv(rep))
    elif args.format == "json":
        _write(args.out, json.dumps(rep.to_dict(), ensure_ascii=False, indent=2, default=str) + "\n")
    elif args.format == "xlsx":
        city_xlsx(rep, args.out)
        print(args.out)
    else:
        assert rep.total is not None
        for p in city_charts(rep.halls, rep.total, args.out or "report-charts"):
            print(p)
    return 0


def _prepare_main(args: Any) -> int:
    """``queuehall report --prepare``: 0 stored (JSON: the days stored now, how many were already, the days
    not final yet), 2 bad arguments or a database where nothing can be stored (message on stderr)."""
    try:
        start = end = None
        if args.day or args.start or args.end:
            start, end = parse_period(args.day, args.start, args.end)
        configs = city_configs(getattr(args, "config_dir", None))
        engine, config = _open(args.db, args.config if args.config or not configs else
                               next(iter(configs.values())).source)
        hall = getattr(args, "hall", None)
        from queuehall.broker.storage import Store

        try:
            targets = ([_for_hall(config, configs, h, engine) for h in Store(engine).halls()] if hall == "all"
                       else [_for_hall(config, configs, hall, engine)])
        except ReportError:
            engine.dispose()
            raise
    except ReportError as err:
        return _fail("report", err)
    try:
        done: dict[str, Any] = {}
        for cfg in targets:  # each hall's facts, with its own hours (which days are final)
            one = ReportBuilder(engine, cfg).prepare(start, end)
            done = one if len(targets) == 1 else {**done, cfg.hall_id: one}
    except ReportError as err:
        return _fail("report", err)
    finally:
        engine.dispose()
    print(json.dumps({"status": "ok", **done}, ensure_ascii=False))
    return 0


def _write(path: str | None, text: str) -> None:
    import sys

    if path:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        print(path)
    else:
        sys.stdout.write(text)


def _purge_main(args: Any) -> int:
    """``queuehall purge``: 0 deleted (JSON with counts), 1 refused (RETENTION, JSON), 2 bad arguments."""
    from queuehall.broker.storage import Store

    from queuehall.errors import HallError

    try:
        try:
            before = date.fromisoformat(args.before)
        except ValueError:
            raise ReportError("REPORT_BAD_DATE", value=args.before) from None
        engine, config = _open(args.db, args.config)
    except ReportError as err:
        return _fail("purge", err)
    today = datetime.now(UTC).astimezone(ZoneInfo(config.timezone)).date()
    store = Store(engine, config.hall_id)
    try:
        # The longer of --config's period and the one the hall's broker recorded in the database.
        days = store.effective_retention(config.retention_days)
        counts = store.purge(before, retention_days=days, today=today)
    except HallError as err:
        print(json.dumps({"status": "error", "error": err.to_dict()}, ensure_ascii=False))
        return 1
    finally:
        engine.dispose()
    print(json.dumps({"status": "ok", "before": before.isoformat(), "retention_days": days,
                      "deleted": counts}, ensure_ascii=False))
    return 0
