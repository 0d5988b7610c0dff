"""``queuehall clerks``: clerks' PINs and sign-in locks, kept in the broker's database.

* ``set-pin CLERK`` asks for the new PIN twice without echo (or reads one line from standard
  input with ``--stdin``, for scripts; never from the command line, which other users can
  see) and stores only its salted scrypt hash (queuehall/pins.py). It also lifts any lock.
* ``list`` prints every clerk of the hall: name, posts, whether a PIN is set and when, wrong
  PINs counted and the lock, if any. No hash is ever printed.
* ``unlock CLERK`` lifts a lock before it runs out, in the database. (Through a running broker,
  the admin command ``unlock_clerk`` does the same and is audited as a ``clerk_unlocked`` event:
  ``queuehall unlockclerk CLERK --broker HOST:PORT --key admin.key_secret --server-key broker.key``.)
* ``import-pins --config OLD.toml`` hashes the plain PINs of a hall.toml written before PINs
  left it, once, so the hall can move without typing every PIN again.

They work on the database (``--db URL``, default the local SQLite file) whether or not a
broker runs: the broker reads a clerk's PIN record at each sign-in, so a change counts from
the next sign-in. Output is one JSON object; exit codes as for ``queuehall purge``: 0 done,
1 refused (JSON error), 2 usage error (message on standard error). docs/cli.md.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import platform
import sys
import tomllib
from datetime import UTC, datetime
from typing import Any

from queuehall.broker.config import DEFAULT_CONFIG, DEFAULT_HALL_ID, HALL_ID_RE, ConfigError, HallConfig, load_config

from queuehall.errors import HallError
from queuehall.pins import DEFAULT_COST, Cost, hash_pin, valid_pin
from queuehall.protocol import parse_time

ENV_CONFIG = "QUEUEHALL_CONFIG"


def register(sub: Any) -> None:
    """Add ``queuehall clerks`` and its subcommands to the command line."""
    p = sub.add_parser("clerks", help="clerks' PINs and sign-in locks (工作人员密码与锁定)")
    cs = p.add_subparsers(dest="clerks_cmd", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--db", default=None, help="SQLAlchemy URL (default: the local SQLite database)")
        q.add_argument("--config", default=None,
                       help="hall configuration (default $QUEUEHALL_CONFIG or the packaged config/hall.toml)")

    q = cs.add_parser("set-pin", help="set a clerk's PIN (asked twice without echo)")
    q.add_argument("clerk")
    q.add_argument("--stdin", action="store_true", help="read the PIN from one line of standard input")
    common(q)
    q = cs.add_parser("list", help="every clerk: posts, PIN set or not, wrong PINs and lock")
    common(q)
    q = cs.add_parser("unlock", help="lift a clerk's sign-in lock")
    q.add_argument("clerk")
    common(q)
    q = cs.add_parser("import-pins", help="hash the plain PINs of an old hall.toml into the database, once")
    q.add_argument("--db", default=None, help="SQLAlchemy URL (default: the local SQLite database)")
    q.add_argument("--config", required=True, help="the old hall.toml that still has pin = \"...\" lines")
    q.add_argument("--replace", action="store_true", help="also replace PINs already set in the database")
    p.set_defaults(func=main)


class _Usage(Exception):
    """A usage error: bilingual message, exit 2."""

    def __init__(self, en: str, zh: str) -> None:
        super().__init__(f"{zh} / {en}")


def main(args: argparse.Namespace, *, cost: Cost | None = None) -> int:
    """Run one ``queuehall clerks`` subcommand (``cost``: the scrypt cost of new hashes, default
    :data:`queuehall.pins.DEFAULT_COST`)."""
    cost = cost or DEFAULT_COST
    try:
        if args.clerks_cmd == "import-pins":
            result = import_pins(args.config, args.db, replace=args.replace, cost=cost)
        else:
            config = _config(args.config)
            if args.clerks_cmd == "set-pin":
                result = _set_pin(config, args, cost)
            elif args.clerks_cmd == "list":
                result = {"clerks": list_clerks(config, _store(args.db, config))}
            else:
                result = _unlock(config, args)
    except _Usage as err:
        print(f"queuehall clerks: {err}", file=sys.stderr)
        return 2
    except HallError as err:
        _print({"status": "error", "error": err.to_dict()})
        return 1
    _print({"status": "ok", "result": result})
    return 0


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, default=str), flush=True)


def _config(path: str | None) -> HallConfig:
    try:
        return load_config(path or os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG)
    except ConfigError as err:
        raise _Usage(f"configuration error: {err}", "配置文件有误") from None


def _store(url: str | None, config: HallConfig | None = None, hall: str | None = None) -> Any:
    """The database, created and migrated if needed (PINs may be set before the broker first runs), for the
    records of ``config``'s hall (or of ``hall``; a hall's clerks and PINs are its own: docs/city.md)."""
    from queuehall.broker.storage import open_store

    try:
        if config is not None:
            return open_store(url, hall=config.hall_id, hall_given=config.hall_id_given)
        return open_store(url, hall=hall or DEFAULT_HALL_ID, hall_given=hall is not None)
    except Exception as err:  # a bad URL, an unreachable server: say so, no traceback
        raise _Usage(f"cannot open the database: {err}", "无法打开数据库") from None


def _who() -> str:
    """Who made an administrative change, for the record: ``cli:<login>@<host>``."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name (a container without one): still record the host
        user = "?"
    return f"cli:{user}@{platform.node() or '?'}"


def _known(config: HallConfig, clerk: str) -> None:
    if config.clerk(clerk) is None:
        raise HallError("UNKNOWN_CLERK", clerk=clerk)


def read_new_pin(clerk: str, from_stdin: bool) -> str:
    """The new PIN: one line of standard input, or asked twice on the terminal without echo."""
    if from_stdin:
        pin = sys.stdin.readline().rstrip("\r\n")
    else:
        pin = getpass.getpass(f"新密码 / new PIN for {clerk} (4-12 digits): ")
        again = getpass.getpass("再输入一次 / the same PIN again: ")
        if pin != again:
            raise HallError("PIN_MISMATCH")
    if not valid_pin(pin):
        raise HallError("PIN_INVALID")
    return pin


def _set_pin(config: HallConfig, args: argparse.Namespace, cost: Cost) -> dict[str, Any]:
    _known(config, args.clerk)
    pin = read_new_pin(args.clerk, args.stdin)
    store = _store(args.db, config)
    try:
        store.set_pin_hash(args.clerk, hash_pin(pin, cost), by=_who())
    finally:
        store.close()
    return {"clerk": args.clerk, "pin_set": True}


def _unlock(config: HallConfig, args: argparse.Namespace) -> dict[str, Any]:
    _known(config, args.clerk)
    store = _store(args.db, config)
    try:
        lock = _lock_state(store.clerk_locks().get(args.clerk), store.pin_records().get(args.clerk))
        if not store.unlock_clerk(args.clerk, by=_who()):
            raise HallError("PIN_NOT_SET", clerk=args.clerk)
    finally:
        store.close()
    return {"clerk": args.clerk, "was_locked": lock["locked"]}


def _lock_state(lock: dict[str, Any] | None, record: dict[str, Any] | None,
                now: datetime | None = None) -> dict[str, Any]:
    """What a stored lock entry means now: ``{"failures", "locked", "locked_until"}``."""
    now = now or datetime.now(UTC)
    if lock is None or record is None or lock.get("generation") != record["generation"]:
        return {"failures": 0, "locked": False, "locked_until": None}
    until: str | None = lock.get("locked_until")
    at = parse_time(until)
    locked = at is not None and now < at
    return {"failures": 0 if until and not locked else lock.get("failures", 0), "locked": locked,
            "locked_until": until if locked else None}


def list_clerks(config: HallConfig, store: Any) -> list[dict[str, Any]]:
    """Every clerk of ``config`` with posts, PIN status and lock; then clerks with a PIN the file lacks."""
    try:
        records, locks = store.pin_records(), store.clerk_locks()
    finally:
        store.close()
    posts: dict[str, list[str]] = {}
    for c in config.counters:
        for post, clerk in (("A", c.clerk_a), ("B", c.clerk_b)):
            posts.setdefault(clerk, []).append(f"{c.number}{post}")
    out = []
    for k in config.clerks:
        rec = records.get(k.id)
        out.append({"clerk": k.id, "name_zh": k.name.zh, "name_en": k.name.en, "posts": posts.get(k.id, []),
                    "pin_set": rec is not None,
                    "pin_changed_at": rec["changed_at"].isoformat() if rec else None,
                    "pin_changed_by": rec["changed_by"] if rec else None,
                    "last_change": rec["change"] if rec else None,
                    **_lock_state(locks.get(k.id), rec)})
    for clerk in sorted(set(records) - {k.id for k in config.clerks}):
        out.append({"clerk": clerk, "in_config": False, "pin_set": True})
    return out


def import_pins(path: str, url: str | None, *, replace: bool = False, cost: Cost = DEFAULT_COST) -> dict[str, Any]:
    """Hash the ``pin`` of every ``[[clerk]]`` of an old hall.toml into the database.

    The file is read as plain TOML (the hall loader refuses it while it has PINs). A PIN already
    set in the database is kept unless ``replace``. Afterwards delete the ``pin`` lines."""
    try:
        with open(path, "rb") as f:
            data = tomllib.loads(f.read().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise _Usage(f"cannot read {path}: {err}", f"无法读取 {path}") from None
    clerks = data.get("clerk", [])
    if not isinstance(clerks, list):
        raise _Usage(f"{path}: [[clerk]] must be an array of tables", f"{path}：[[clerk]] 须为表数组")
    found: list[tuple[str, str]] = []
    for i, t in enumerate(clerks, 1):
        if not isinstance(t, dict) or "pin" not in t:
            continue
        clerk, pin = t.get("id"), t["pin"]
        if not isinstance(clerk, str) or not valid_pin(pin):
            raise _Usage(f"{path}: clerk[{i}]: the id must be a string and the PIN a quoted string of 4-12 digits",
                         f"{path}：clerk[{i}]：工号须为字符串，密码须为带引号的4–12位数字")
        found.append((clerk, pin))
    hall = data.get("hall", {}).get("id") if isinstance(data.get("hall"), dict) else None
    if hall is not None and not (isinstance(hall, str) and HALL_ID_RE.fullmatch(hall)):
        raise _Usage(f"{path}: hall.id must be a short ASCII slug", f"{path}：hall.id 须为简短的英文标识")
    store = _store(url, hall=hall)
    imported, kept = [], []
    try:
        existing = store.pin_records()
        for clerk, pin in found:
            if clerk in existing and not replace:
                kept.append(clerk)
                continue
            store.set_pin_hash(clerk, hash_pin(pin, cost), by=_who(), change="import")
            imported.append(clerk)
    finally:
        store.close()
    return {"imported": imported, "kept": kept,
            "next": "delete every pin = ... line from the file / 请从配置文件中删除所有 pin = ... 行"}
