"""The gateway's own state: API tokens, manager accounts and sessions, webhook subscribers and the webhook
outbox — in a SQLite file (the default) or in a PostgreSQL database shared by several gateways.

It is not the hall's database: the broker owns the hall; this holds only what the gateway itself must
remember across restarts. ``--state`` takes either:

* a path (default ``$QUEUEHALL_WEB_STATE`` or ``./web-state.db``): one SQLite file in WAL mode with
  ``synchronous=FULL`` (a transaction that returned is on disk, so what the gateway acknowledged survives
  ``kill -9`` and power loss), created readable by its owner only (it holds webhook secrets);
* a database URL (``postgresql://user@db.example/queuehall`` or ``postgresql+psycopg://…``; any SQLAlchemy
  URL): the tables below in that database, so two gateways behind a load balancer share tokens, manager
  sessions and one webhook outbox (whose deliveries each go out once: web/outbox.py claims them).

The tables are made when the state is first opened (``CREATE TABLE IF NOT EXISTS``, by SQLAlchemy), and
columns added by later versions are added to older state files then (:data:`ADDED_COLUMNS`): there is
nothing else to migrate. They never clash with the hall's tables (docs/city.md), so the city's central
database may hold them.

Writes are :meth:`StateDB.write` transactions: on SQLite ``BEGIN IMMEDIATE`` (the write lock at once, so
two processes on one file serialise instead of failing), on PostgreSQL ordinary transactions whose
rows are locked where it matters (``SELECT … FOR UPDATE``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

ENV_STATE = "QUEUEHALL_WEB_STATE"
DEFAULT_STATE = "web-state.db"

metadata = MetaData()
# Integer primary keys: SQLite's rowid (with AUTOINCREMENT, as the state files of earlier versions), a
# BIGINT identity on PostgreSQL.
_ID = Integer().with_variant(BigInteger(), "postgresql")

api_tokens = Table(
    "api_tokens", metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("scopes", Text, nullable=False),
    Column("salt", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("revoked_at", Text),
)
managers = Table(
    "managers", metadata,
    Column("name", Text, primary_key=True),
    Column("salt", LargeBinary, nullable=False),
    Column("hash", LargeBinary, nullable=False),
    Column("n", Integer, nullable=False),
    Column("r", Integer, nullable=False),
    Column("p", Integer, nullable=False),
    Column("created", Text, nullable=False),
    # The halls of a city gateway this manager may supervise (names, space-separated); NULL: every hall.
    Column("halls", Text),
)
manager_sessions = Table(
    "manager_sessions", metadata,
    Column("id_hash", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("expires", Float, nullable=False),
    Column("created", Text, nullable=False),
)
webhook_subscribers = Table(
    "webhook_subscribers", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("name", Text, nullable=False),
    Column("url", Text, nullable=False),
    Column("secret", Text, nullable=False),
    Column("events", Text, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("removed_at", Text),
    sqlite_autoincrement=True,
)
webhook_deliveries = Table(
    "webhook_deliveries", metadata,
    Column("seq", _ID, primary_key=True, autoincrement=True),
    Column("id", Text, nullable=False, unique=True),
    Column("subscriber", _ID, ForeignKey("webhook_subscribers.id"), nullable=False),
    Column("journal_seq", BigInteger, nullable=False),
    Column("type", Text, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_at", Float, nullable=False, server_default="0"),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("delivered_at", Float),
    # The gateway sending it now, and until when its claim holds (web/outbox.py Outbox.claim).
    Column("claimed_by", Text),
    Column("claimed_until", Float),
    sqlite_autoincrement=True,
)
Index("ix_webhook_pending", webhook_deliveries.c.subscriber, webhook_deliveries.c.seq,
      sqlite_where=webhook_deliveries.c.delivered_at.is_(None),
      postgresql_where=webhook_deliveries.c.delivered_at.is_(None))
Index("ix_webhook_delivered", webhook_deliveries.c.delivered_at,
      sqlite_where=webhook_deliveries.c.delivered_at.isnot(None),
      postgresql_where=webhook_deliveries.c.delivered_at.isnot(None))
webhook_cursor = Table(
    "webhook_cursor", metadata,
    Column("name", Text, primary_key=True),
    Column("journal_seq", BigInteger, nullable=False),
)
webhook_gaps = Table(
    "webhook_gaps", metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("detected_at", Text, nullable=False),
    sqlite_autoincrement=True,
)

# Columns later versions added to tables an older state file already has: added when it is opened.
ADDED_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "webhook_deliveries": [("claimed_by", "TEXT"), ("claimed_until", "FLOAT")],
    "managers": [("halls", "TEXT")],
}


def state_path(value: str | os.PathLike[str] | None) -> str | Path:
    """``--state PATH|URL``, else ``$QUEUEHALL_WEB_STATE``, else ``web-state.db`` in the current directory.
    A database URL (``scheme://…``) is returned as it is, a path as a :class:`~pathlib.Path`."""
    chosen = value or os.environ.get(ENV_STATE) or DEFAULT_STATE
    if is_url(chosen):
        return str(chosen)
    return Path(chosen)


def is_url(value: str | os.PathLike[str]) -> bool:
    return isinstance(value, str) and "://" in value


def _sqlite_file(path: Path) -> None:
    """Create the file readable by its owner only (it holds webhook secrets) before SQLite opens it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def _pragmas(dbapi_conn: Any) -> None:
    dbapi_conn.isolation_level = None  # transactions are begun by the "begin" listener below
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class StateDB:
    """The gateway's state database: an engine and its tables, made and brought up to date on open."""

    def __init__(self, engine: Engine, key: str = "") -> None:
        self.engine = engine
        self.key = key
        self.users = 1
        self.sqlite = engine.dialect.name == "sqlite"
        if self.sqlite:
            @event.listens_for(engine, "begin")
            def _begin(conn: Connection) -> None:
                # Writers take SQLite's write lock at once: a read turned write later could fail with
                # "database is locked" when another process wrote meanwhile (busy_timeout cannot help then).
                conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

        self._writer = engine.execution_options(write=True)
        # Reads on PostgreSQL in autocommit: one round trip per statement, without BEGIN and ROLLBACK (a token is
        # checked on every API request, a session on every supervision request).
        self._reader = engine.execution_options(isolation_level="AUTOCOMMIT") if not self.sqlite else engine
        self.create()

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def create(self) -> None:
        """Create the tables that are missing and add the columns older versions did not have."""
        with self.write() as conn:
            metadata.create_all(conn, checkfirst=True)
            have = inspect(conn)
            for table, columns in ADDED_COLUMNS.items():
                present = {c["name"] for c in have.get_columns(table)}
                for name, kind in columns:
                    if name not in present:
                        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads (on SQLite a transaction rolled back at the end, on PostgreSQL autocommit)."""
        with self._reader.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed at the end (rolled back on an exception)."""
        with self._writer.begin() as conn:
            yield conn

    def close(self) -> None:
        """One user fewer: the engine is disposed when the last store of this process on it is closed."""
        with _OPEN_LOCK:
            self.users -= 1
            if self.users > 0:
                return
            if _OPEN.get(self.key) is self:
                del _OPEN[self.key]
        self.engine.dispose()


_OPEN: dict[str, StateDB] = {}
_OPEN_LOCK = threading.Lock()


def open_state(target: str | os.PathLike[str] | sqlite3.Connection | StateDB) -> StateDB:
    """The state at ``target``: a path (SQLite), a database URL, an open ``sqlite3`` connection (tests), or a
    :class:`StateDB` itself. Every store of a process on the same path or URL shares one engine (one pool of
    connections for the whole gateway, whatever the number of its halls)."""
    if isinstance(target, StateDB):
        with _OPEN_LOCK:
            target.users += 1
        return target
    if isinstance(target, sqlite3.Connection):
        conn = target
        engine = create_engine("sqlite+pysqlite://", creator=lambda: conn, poolclass=StaticPool)
        event.listen(engine, "connect", lambda dbapi_conn, _rec: _pragmas(dbapi_conn))
        return StateDB(engine)
    if is_url(target):
        url = make_url(str(target))
        if url.drivername == "postgresql":  # the driver the project installs (pyproject.toml)
            url = url.set(drivername="postgresql+psycopg")
        key = url.render_as_string(hide_password=False)
    else:
        path = Path(target).absolute()
        _sqlite_file(path)
        url = make_url(f"sqlite+pysqlite:///{path}")
        key = str(url)
    with _OPEN_LOCK:
        db = _OPEN.get(key)
        if db is None:
            if url.get_backend_name() == "sqlite":
                engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10.0})
                event.listen(engine, "connect", lambda dbapi_conn, _rec: _pragmas(dbapi_conn))
            else:
                engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=20)
            db = _OPEN[key] = StateDB(engine, key)
        else:
            db.users += 1
        return db

