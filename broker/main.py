"""``queuehall broker``: load the config, open the database, rebuild the hall and serve it."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import gc
import logging
import os
import signal
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from queuehall.broker.config import DEFAULT_CONFIG, ConfigError, clean_public_base_url, load_config

from queuehall.clock import Clock, SimulatedClock, SystemClock

CONTACT_KEY_FILE = "contact.key"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="hall configuration (TOML)")
    p.add_argument("--db", default=None, help="SQLAlchemy URL (default: SQLite in the data directory)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5555,
                   help="command port N; events on N+1 (public), N+2 (staff) (default 5555)")
    p.add_argument("--keys", default=None, help="keys directory (queuehall keys init); enables CurveZMQ")
    p.add_argument("--insecure", action="store_true",
                   help="run WITHOUT encryption or device keys (local development on 127.0.0.1 only)")
    p.add_argument("--public-url", default=None,
                   help="the web gateway's public address for ticket QR codes (instead of hall.public_base_url)")
    p.add_argument("--sim-start", default=None, help="simulated clock start, local time 'YYYY-MM-DDTHH:MM'")
    p.add_argument("--sim-speed", type=float, default=1.0, help="simulated clock speed (with --sim-start)")
    p.add_argument("--standby", action="store_true",
                   help="one of a primary/standby pair on one PostgreSQL database: serve only while holding the "
                        "hall's lease, answer BROKER_STANDBY otherwise (docs/standby.md)")
    p.add_argument("--sqlite-synchronous", default="FULL", choices=["FULL", "NORMAL"],
                   help="SQLite durability: FULL survives power loss, NORMAL only process crashes")
    p.add_argument("--contact-key", default=None,
                   help="file of the key the bookings' contact hashes are made with, kept outside the database "
                        "(created if missing; default: contact.key in the --keys directory, else in the data "
                        "directory); a standby pair must share it")


def contact_key_path(args: argparse.Namespace) -> Path:
    """Where the broker's contact key is: ``--contact-key``, else ``contact.key`` in the keys directory (copied
    with the broker's own keys to a standby: docs/standby.md), else in the data directory (``$QUEUEHALL_DATA``)."""
    if args.contact_key:
        return Path(args.contact_key)
    if args.keys:
        return Path(args.keys) / CONTACT_KEY_FILE
    from queuehall.broker.storage import data_dir

    return data_dir() / CONTACT_KEY_FILE


def load_contact_key(path: Path) -> bytes:
    """The hall's contact key from ``path`` (64 hex digits), made and written there (mode 0600) when the file
    does not exist yet. Created under a temporary name and linked into place, so two brokers starting at once
    end with the same key. Raises :class:`ValueError` with what is wrong (cannot be made, unreadable, not a key)
    and what to do."""
    from queuehall.broker.appointments import CONTACT_KEY_BYTES, new_contact_key

    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(new_contact_key().hex() + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                with contextlib.suppress(FileExistsError):  # another broker made it first: use theirs
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as err:
            raise ValueError(f"{path}: cannot make the contact key ({err}); make its directory writable for the "
                             "broker, or give --contact-key FILE in a place it can write (docs/calling-rules.md, "
                             "Durability and privacy)") from None
        logging.getLogger("queuehall.broker").warning(
            "made a new contact key (the key of the bookings' contact hashes) in %s: a standby broker needs a copy "
            "of it; keep it out of the database's backups", path)
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path}: cannot read the contact key: {err}") from None
    if len(key) != CONTACT_KEY_BYTES:
        raise ValueError(f"{path}: a contact key is {CONTACT_KEY_BYTES * 2} hex digits")
    return key


def settle_heap() -> None:
    """Collect what the start left behind, then move every object alive now (the modules, the hall as loaded)
    out of the cycle collector's reach (``gc.freeze``). Why: the collector's occasional full pass walks every
    object there is; at a broker's start that is some 80,000 objects and 20 ms on the 2-core test machine, paid
    by whichever request triggered it (bench/appointments_bench.py measures it). Frozen objects are never
    scanned again (freed as usual when their count drops); the full passes then walk only what the hall has made
    since, so they stay short. Called again (a standby taking the lease again), it first thaws what it froze, so
    the hall it replaced is collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def make_clock(sim_start: str | None, sim_speed: float, timezone: str) -> Clock:
    if not sim_start:
        return SystemClock()
    try:
        start = datetime.strptime(sim_start, "%Y-%m-%dT%H:%M").replace(tzinfo=ZoneInfo(timezone))
    except ValueError:
        raise SystemExit(f"--sim-start {sim_start!r}: expected YYYY-MM-DDTHH:MM") from None
    if sim_speed <= 0:
        raise SystemExit("--sim-speed must be positive")
    return SimulatedClock(start, sim_speed)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"queuehall broker: configuration error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"queuehall broker: cannot read {args.config}: {err}", file=sys.stderr)
        return 2
    if args.public_url:
        url = clean_public_base_url(args.public_url)
        if url is None:
            print(f"queuehall broker: --public-url {args.public_url!r}: expected an absolute http:// or https:// "
                  "address without ?query or #fragment", file=sys.stderr)
            return 2
        config = replace(config, public_base_url=url)
    if args.keys is None and not args.insecure:
        print("queuehall broker: give --keys DIR (see 'queuehall keys init') or --insecure for local "
              "development", file=sys.stderr)
        return 2
    if args.insecure and args.host not in ("127.0.0.1", "localhost", "::1"):
        print("queuehall broker: --insecure is allowed on loopback only; use --keys in a hall", file=sys.stderr)
        return 2
    # Imported here: SQLAlchemy alone takes most of a second, and every ``queuehall take`` builds
    # this subcommand's parser.
    from queuehall.broker.server import Broker
    from queuehall.broker.storage import HallIdRequired, load_hall, open_hall_store

    # A fatal signal the broker could not prevent (SIGSEGV, SIGBUS ...) still leaves a traceback in the log.
    with contextlib.suppress(OSError, ValueError, AttributeError):  # stderr is no file (a test's capture)
        faulthandler.enable()
    clock = make_clock(args.sim_start, args.sim_speed, config.timezone)
    try:
        store = open_hall_store(args.db, config, sqlite_synchronous=args.sqlite_synchronous)
    except HallIdRequired as err:
        print(f"queuehall broker: {args.config}: {err.message_zh} / {err.message_en}", file=sys.stderr)
        return 2
    try:
        contact_key = load_contact_key(contact_key_path(args))
    except (ValueError, OSError) as err:
        print(f"queuehall broker: {err}", file=sys.stderr)
        store.close()
        return 2
    if args.standby:
        return _run_standby(args, config, clock, store, contact_key)
    hall = load_hall(config, clock, store, contact_key=contact_key)
    settle_heap()
    broker = Broker(hall, host=args.host, port=args.port, keys_dir=None if args.insecure else args.keys)
    signal.signal(signal.SIGTERM, lambda *_: broker.stop_event.set())
    signal.signal(signal.SIGINT, lambda *_: broker.stop_event.set())
    broker.bind()
    print(f"queuehall broker ready on {args.host}:{args.port} (events {args.port + 1}, staff events "
          f"{args.port + 2})", flush=True)
    broker.serve_forever()
    store.close()
    return 0


def _run_standby(args: argparse.Namespace, config: Any, clock: Clock, store: Any, contact_key: bytes) -> int:
    """``--standby``: bind the ports at once and answer BROKER_STANDBY until this broker takes the hall's
    lease; then load the hall from the database and serve it until the lease is lost (then be the standby
    again) or the broker is stopped (then give the lease up, so the other broker takes over at once)."""
    import threading

    import zmq
    from queuehall.broker.lease import Lease, default_holder
    from queuehall.broker.server import Broker, bind_sockets, wait_for_lease
    from queuehall.broker.storage import load_hall

    from queuehall.errors import HallError

    if store.engine.dialect.name != "postgresql":
        err = HallError("STANDBY_NEEDS_POSTGRESQL")
        print(f"queuehall broker: {err.code}: {err.message_zh} / {err.message_en}", file=sys.stderr)
        store.close()
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    lease = Lease(store.engine, config.hall_id, holder=default_holder(args.port))  # one lease per hall
    store.on_writer, store.fence = lease.prepare_writer, lease.fence
    keys_dir = None if args.insecure else Path(args.keys)
    socks = bind_sockets(zmq.Context.instance(), args.host, args.port, keys_dir)
    print(f"queuehall broker (standby pair, hall {lease.hall}) ready on {args.host}:{args.port} (events "
          f"{args.port + 1}, staff events {args.port + 2})", flush=True)
    log = logging.getLogger("queuehall.broker")
    try:
        while wait_for_lease(socks, lease, stop):
            try:
                hall = load_hall(config, clock, store, contact_key=contact_key)
            except Exception:  # the database failed under us: give the lease back and wait again
                log.exception("could not load the hall after taking the lease")
                lease.release()
                continue
            broker = Broker(hall, host=args.host, port=args.port, keys_dir=keys_dir, lease=lease, sockets=socks)
            broker.stop_event = stop
            broker.bind()
            settle_heap()
            print(f"queuehall broker serving hall {lease.hall} (lease epoch {lease.epoch})", flush=True)
            broker.serve_forever()
            if not broker.stepped_down:
                break
            print("queuehall broker: lease lost, standing by", flush=True)
    finally:
        lease.release()
        lease.close()
        socks.close()
        store.close()
    return 0
