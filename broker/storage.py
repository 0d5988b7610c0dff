"""Durable storage of the hall with SQLAlchemy 2 (SQLite by default, PostgreSQL by URL).

The engine's :class:`~broker.model.Change` for one accepted command is written in one
transaction (:meth:`Store.commit`) before the command is acknowledged; on start
:meth:`Store.load` returns what the engine needs to rebuild its state: open tickets,
today's numbering, counters, rule state and the replies of recent requests.

Times are stored as naive UTC. Schema changes go through Alembic
(``broker/migrations``); :func:`open_store` upgrades a database to the latest schema.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, overload

from queuehall.broker.config import DEFAULT_HALL_ID
from queuehall.broker.model import (
    ACTIVE,
    BOOKED,
    CASE_OPEN,
    CLOSED_UNSERVED,
    FINISHED,
    NO_SHOW,
    Booking,
    Case,
    Change,
    CounterState,
    Event,
    PinRecord,
    Ratable,
    Stored,
    Ticket,
    Visit,
)
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.exc import SQLAlchemyError

from queuehall.errors import QueuehallError
from queuehall.protocol import json_text

log = logging.getLogger("queuehall.storage")

metadata = MetaData()

#: The column every hall's record carries (migration 0009, docs/city.md): brokers of several halls share one
#: database, each reading and writing only its own hall's rows. It leads every primary key and index, so a
#: hall's rows are one range of each, and ids, numbers and sequence numbers count per hall.
HALL_ID = "hall_id"


def _hall() -> Column[str]:
    return Column(HALL_ID, String(32), primary_key=True)


tickets = Table(
    "tickets", metadata,
    _hall(),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("business_day", Date, nullable=False),
    Column("service", String(32), nullable=False),
    Column("number", Integer, nullable=False),
    Column("label", String(16), nullable=False),
    Column("priority", String(32)),
    Column("issued_at", DateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("queue_service", String(32), nullable=False),
    Column("queue_key", DateTime, nullable=False),
    Column("visit_id", Integer, nullable=False),
    Column("target_counter", Integer),
    Column("counter", Integer),
    Column("recalls", Integer, nullable=False, default=0),
    Column("issued_by", String(64)),
    Column("status_at", DateTime),
    Column("token", String(64)),  # the ticket page's secret (migration 0005); NULL for older tickets
    # An appointment ticket's booking code and slot start (migration 0010); NULL for every other ticket.
    Column("booking", String(16)),
    Column("slot_at", DateTime),
    UniqueConstraint(HALL_ID, "business_day", "service", "number", name="uq_ticket_number"),
    # Loading the open tickets and today's no-shows is a range scan on (status, status_at),
    # not a walk over every no-show ever recorded (migration 0002).
    Index("ix_tickets_status_at", HALL_ID, "status", "status_at"),
    Index("ix_tickets_day_status", HALL_ID, "business_day", "status"),  # reports: a period's tickets by status
    # A ticket page finds its ticket by token; tokens are unguessable secrets, unique across halls.
    Index("ix_tickets_token", "token", unique=True),
    # Reports: whether a period has appointment tickets at all (migration 0011), without reading its tickets.
    Index("ix_tickets_booking_day", HALL_ID, "business_day", postgresql_where=sql_text("booking IS NOT NULL"),
          sqlite_where=sql_text("booking IS NOT NULL")),
)

visits = Table(
    "visits", metadata,
    _hall(),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("ticket_id", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("business_day", Date, nullable=False),
    Column("service", String(32), nullable=False),
    Column("entered_at", DateTime, nullable=False),
    Column("target_counter", Integer),
    Column("note", Text, nullable=False, default=""),
    Column("first_called_at", DateTime),
    Column("last_called_at", DateTime),
    Column("calls", Integer, nullable=False, default=0),
    Column("serving_at", DateTime),
    Column("ended_at", DateTime),
    Column("outcome", String(16)),
    Column("counter", Integer),
    Column("clerk", String(32)),
    Column("post", String(1)),
    Column("out_of_order", Text),
    Index("ix_visits_ticket_id", HALL_ID, "ticket_id"),
    Index("ix_visits_business_day", HALL_ID, "business_day"),
)

events = Table(
    "events", metadata,
    _hall(),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", DateTime, nullable=False),
    Column("business_day", Date, nullable=False),
    Column("type", String(32), nullable=False),
    Column("ticket_id", Integer),
    Column("service", String(32)),
    Column("counter", Integer),
    Column("clerk", String(32)),
    Column("data", Text, nullable=False),
    Index("ix_events_type_seq", HALL_ID, "type", "seq"),
    Index("ix_events_business_day", HALL_ID, "business_day"),
)

counter_state = Table(
    "counter_state", metadata,
    _hall(),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("state", String(16), nullable=False),
    Column("clerk", String(32)),
    Column("post", String(1)),
    Column("session", String(32)),
    Column("pause_reason", String(32)),
    Column("ticket_id", Integer),
    Column("since", DateTime),
)

hall_state = Table(
    "hall_state", metadata,
    _hall(),
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

requests = Table(
    "requests", metadata,
    _hall(),
    Column("client", String(64), primary_key=True),
    Column("request_id", String(64), primary_key=True),
    Column("at", DateTime, nullable=False),
    Column("reply", Text, nullable=False),
    Index("ix_requests_at", HALL_ID, "at"),
)

# The reports' per-visit facts of closed business days (docs/reports.md "How it reads the database"):
# filled once by broker/reports/ for a day whose visits have all ended, then read instead of
# parsing the visits' times again; deleted with the visits (Store.purge). Only what the visit row
# alone determines is kept (times as Unix milliseconds, durations in milliseconds), nothing that
# depends on the configuration (targets, time zone, departments) or on when the report runs.
report_facts = Table(
    "report_facts", metadata,
    _hall(),
    Column("business_day", Date, primary_key=True),
    Column("visit_id", Integer, primary_key=True, autoincrement=False),
    Column("ticket_id", Integer, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("service", String(32), nullable=False),
    Column("counter", Integer),
    Column("clerk", String(32)),
    Column("post", String(1)),
    Column("outcome", String(16)),
    Column("entered_ms", BigInteger, nullable=False),
    Column("ended_ms", BigInteger),
    Column("active_ms", BigInteger),  # end of a called visit (its last call while it goes on)
    Column("wait_ms", BigInteger),
    Column("first_wait_ms", BigInteger),
    Column("service_ms", BigInteger),
    Column("busy_ms", BigInteger),
    Column("elapsed_ms", BigInteger),  # never called, cancelled or still waiting: entry to end (or now)
    sqlite_with_rowid=False,  # a period is one range of the primary key, read in order
)

# A hall's business day of facts added up (docs/reports.md "How it reads the database", migration 0011): written
# with the day's facts, so a month's report (and a city's) adds up about 31 rows per kind instead of reading every
# visit. ``report_days``: the day's counts and sums as JSON, by kind (``service``: the visit figures of a service;
# ``counter``: of a counter, clerk and post; ``tickets``: tickets by final status and queue; ``hour``: arrivals and
# ends per UTC quarter hour; ``went_on``: tickets served after their first visit; ``day``: the day's visit count).
report_days = Table(
    "report_days", metadata,
    _hall(),
    Column("business_day", Date, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("data", Text, nullable=False),
)

# The day's waits and service times per service and minute (the first whole minute at or above the time, so a
# target of T minutes is met up to minute T): how many, and the values themselves (ms, comma-separated, sorted),
# so a nearest-rank percentile finds its minute in the counts and its exact value in that minute's values.
report_day_times = Table(
    "report_day_times", metadata,
    _hall(),
    Column("business_day", Date, primary_key=True),
    Column("service", String(32), primary_key=True),
    Column("minute", Integer, primary_key=True, autoincrement=False),
    Column("waits", Integer, nullable=False),  # visits whose wait (wait_ms) ends in this minute
    Column("services", Integer, nullable=False),  # served visits whose service time ends in this minute
    Column("first_waits", Integer, nullable=False),  # called visits whose wait to the first call ...
    Column("elapsed", Integer, nullable=False),  # never-called visits whose time waited ...
    Column("wait_values", Text),
    Column("service_values", Text),
)

# 好差评 (docs/evaluation.md, migration 0006): one rating per visit (the unique visit_id), with the visit's
# service, counter, clerk and post copied so reports and the province's export read one table.
ratings = Table(
    "ratings", metadata,
    _hall(),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("visit_id", Integer, nullable=False),
    Column("ticket_id", Integer, nullable=False),
    Column("label", String(16), nullable=False),
    Column("business_day", Date, nullable=False),
    Column("service", String(32), nullable=False),
    Column("counter", Integer),
    Column("clerk", String(32)),
    Column("post", String(1)),
    Column("level", Integer, nullable=False),
    Column("indicators", Text, nullable=False),  # JSON list of indicator codes
    Column("reason", Text, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("is_default", Boolean, nullable=False),
    Column("rated_at", DateTime, nullable=False),
    Column("visit_ended_at", DateTime, nullable=False),
    UniqueConstraint(HALL_ID, "visit_id", name="uq_ratings_visit"),
    Index("ix_ratings_business_day", HALL_ID, "business_day"),
)

# The follow-up of each 差评 (回访, finding, rectification), due by due_day.
cases = Table(
    "cases", metadata,
    _hall(),
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("rating_id", Integer, nullable=False),
    Column("visit_id", Integer, nullable=False),
    Column("label", String(16), nullable=False),
    Column("business_day", Date, nullable=False),
    Column("service", String(32), nullable=False),
    Column("counter", Integer),
    Column("clerk", String(32)),
    Column("level", Integer, nullable=False),
    Column("opened_at", DateTime, nullable=False),
    Column("due_day", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("callback_at", DateTime),
    Column("callback_note", Text, nullable=False),
    Column("finding", Text, nullable=False),
    Column("rectification", Text, nullable=False),
    Column("closed_at", DateTime),
    Column("closed_by", String(64)),
    Index("ix_cases_business_day", HALL_ID, "business_day"),
    Index("ix_cases_status", HALL_ID, "status"),
)

#: hall_state key of the hall's retention period, written by the broker at start (Store.record_retention).
#: Not part of the engine's state: Store.load leaves it out.
RETENTION_KEY = "retention_days"

# Clerks' PINs, only as salted scrypt hashes (queuehall/pins.py), written by ``queuehall clerks`` and read
# by the broker at each sign-in (migration 0007). ``generation`` counts administrative changes: a lock the
# engine counted under an earlier generation no longer applies. The last change is recorded with it.
clerk_pins = Table(
    "clerk_pins", metadata,
    _hall(),
    Column("clerk", String(32), primary_key=True),
    Column("pin_hash", String(255), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("changed_at", DateTime, nullable=False),
    Column("changed_by", String(64), nullable=False),
    Column("change", String(16), nullable=False),
)

# Which of a hall's brokers serves it (docs/standby.md, migration 0009): the lease and its fencing token,
# written and checked by broker/lease.py only; times on the database's clock.
broker_lease = Table(
    "broker_lease", metadata,
    Column("hall", String(64), primary_key=True),
    Column("holder", String(128), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
)

# The halls whose records the database holds (migration 0009): each broker registers its hall at start
# (Store.register_hall), the central reports name halls from here (docs/city.md).
halls = Table(
    "halls", metadata,
    Column("id", String(32), primary_key=True),
    Column("name_zh", Text, nullable=False),
    Column("name_en", Text, nullable=False),
    Column("registered_at", DateTime, nullable=False),
    Column("started_at", DateTime, nullable=False),
)


def _cols(table: Table) -> list[str]:
    """The columns of ``table`` the engine's objects carry (all but the hall id, which the store adds)."""
    return [c.name for c in table.columns if c.name != HALL_ID]


_TICKET_COLS = _cols(tickets)
_VISIT_COLS = _cols(visits)
_COUNTER_COLS = _cols(counter_state)
_RATING_COLS = _cols(ratings)
_CASE_COLS = _cols(cases)

# Appointments (预约, migration 0010): one row per booking, keyed by its hall and its code. The contact only masked
# and as a salted scrypt hash (broker/appointments.py); the row goes with the hall's retention (Store.purge).
bookings = Table(
    "bookings", metadata,
    _hall(),
    Column("code", String(16), primary_key=True),
    Column("hall", String(128), nullable=False),
    Column("service", String(32), nullable=False),
    Column("slot_day", Date, nullable=False),
    Column("slot_at", DateTime, nullable=False),
    Column("slot_end", DateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("booked_at", DateTime, nullable=False),
    Column("booked_by", String(64)),
    Column("contact_masked", String(32)),
    Column("contact_hash", String(255)),
    Column("ticket_id", Integer),
    Column("ticket_label", String(16)),
    Column("checked_in_at", DateTime),
    Column("late", Boolean, nullable=False),
    Column("ended_at", DateTime),
    Index("ix_bookings_day_service", HALL_ID, "slot_day", "service"),
    Index("ix_bookings_state_day", HALL_ID, "state", "slot_day"),
)

_BOOKING_COLS = _cols(bookings)


def data_dir() -> Path:
    """The per-user data directory (``$QUEUEHALL_DATA`` or XDG data home), made if missing."""
    base = Path(os.environ.get("QUEUEHALL_DATA") or os.path.join(
        os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"), "queuehall"))
    base.mkdir(parents=True, exist_ok=True)
    return base


def default_url() -> str:
    """SQLite in the per-user data directory (:func:`data_dir`)."""
    return f"sqlite:///{data_dir() / 'hall.db'}"


def make_engine(url: str, *, sqlite_synchronous: str = "FULL") -> Engine:
    """An engine for ``url``; SQLite gets WAL mode and the given synchronous level."""
    if url.startswith("sqlite"):
        eng = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

        return eng
    return create_engine(url, pool_pre_ping=True)


_MIGRATIONS = Path(__file__).parent / "migrations"


class StorageUnwritable(OSError):
    """The database's files cannot be written now (a read-only file system, an immutable file)."""

    def __init__(self, en: str, zh: str) -> None:
        super().__init__(en)
        self.en, self.zh = en, zh


def sqlite_files(engine: Engine) -> list[str]:
    """The files of an SQLite database on disk: the database, its WAL and its shared-memory index."""
    db = engine.url.database
    if engine.dialect.name != "sqlite" or db in (None, "", ":memory:") or db.startswith("file:"):
        return []
    return [db, f"{db}-wal", f"{db}-shm"]


def unwritable(files: list[str]) -> StorageUnwritable | None:
    """Why ``files`` cannot be written now, or None when they can (a file not there yet is no reason).

    Why this is asked before SQLite touches them: SQLite maps the WAL index (``-shm``) into memory
    and writes it there, also when it only reads. When the file system has turned read-only (an
    ext4 error remounts it so) or the file was made immutable, the kernel answers such a write with
    SIGBUS, which kills the process at once, without a log line. ``access(2)`` asks the same question
    without opening the file (closing any descriptor of it would drop SQLite's locks)."""
    for path in files:
        if os.access(path, os.W_OK) or not os.path.lexists(path):
            continue
        try:
            read_only = bool(os.statvfs(os.path.dirname(path) or ".").f_flag & os.ST_RDONLY)
        except OSError:
            read_only = False
        if read_only:
            return StorageUnwritable(f"the database cannot be written: {path} is on a read-only file system",
                                     f"数据库无法写入：{path} 所在的文件系统为只读")
        return StorageUnwritable(f"the database cannot be written: {path} is not writable (permissions or "
                                 "the immutable attribute)", f"数据库无法写入：{path} 不可写（权限或不可修改属性）")
    return None


def head_revision() -> str:
    """The newest migration's revision, read from the migration files without importing Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (_MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        rev = re.search(r"^revision\s*=\s*[\"']([^\"']+)[\"']", text, re.M)
        down = re.search(r"^down_revision\s*=\s*[\"']([^\"']+)[\"']", text, re.M)
        if rev:
            revisions.add(rev.group(1))
        if down:
            parents.add(down.group(1))
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for a database Alembic has not touched)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def migrate(engine: Engine, hall: str = DEFAULT_HALL_ID, revision: str = "head") -> None:
    """Bring the database to the latest schema (or ``revision``) with Alembic.

    ``hall``: the hall the records of a single-hall database belong to, when migration 0009 gives every
    record its hall id (the hall of the configuration that first opens it at that revision).
    A database already at the newest revision is left alone without loading Alembic (a third
    of a second, paid on every broker restart while the screens wait)."""
    if revision == "head" and current_revision(engine) == head_revision():
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        cfg.attributes["hall_id"] = hall
        command.upgrade(cfg, revision)


class HallIdRequired(QueuehallError):
    """A hall without ``[hall] id`` opened a database that other halls share (docs/city.md)."""

    def __init__(self, hall: str, others: list[str]) -> None:
        listing = ", ".join(others)
        super().__init__(
            "HALL_ID_REQUIRED",
            f"此数据库已由多个大厅共用（{listing}），请在 hall.toml 的 [hall] 中设置本大厅的 id，"
            "例如 id = \"dongcheng\"",
            f"this database is shared by several halls ({listing}); set this hall's id in hall.toml, "
            f"[hall] id = \"...\" (e.g. \"dongcheng\")",
            {"hall": hall, "halls": others})


def _db(at: datetime | None) -> datetime | None:
    return at.astimezone(UTC).replace(tzinfo=None) if at is not None else None


@overload
def _py(at: datetime) -> datetime: ...
@overload
def _py(at: None) -> None: ...
def _py(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None else None


_TIME_COLS = {"issued_at", "queue_key", "status_at", "entered_at", "first_called_at", "last_called_at",
              "serving_at", "ended_at", "since", "at", "rated_at", "visit_ended_at", "opened_at", "callback_at",
              "closed_at", "slot_at", "slot_end", "booked_at", "checked_in_at"}


def _row(obj: Any, cols: list[str]) -> dict[str, Any]:
    return {c: (_db(getattr(obj, c)) if c in _TIME_COLS else getattr(obj, c)) for c in cols}


def _objs(cls: type, result: Any) -> list[Any]:
    """The rows of ``result`` as ``cls`` instances with aware UTC times.

    Why not :func:`_obj` per row: a rebuild converts ~10,000 tickets and visits, and the
    per-row mapping copy was a third of :func:`load_hall`'s time (docs/benchmarks.md).
    """
    cols = list(result.keys())
    times = [i for i, c in enumerate(cols) if c in _TIME_COLS]
    out = []
    for row in result:
        values = list(row)
        for i in times:
            if values[i] is not None:
                values[i] = values[i].replace(tzinfo=UTC)
        out.append(cls(**dict(zip(cols, values, strict=True))))
    return out


def _select(table: Table) -> Any:
    """SELECT of ``table``'s columns but the hall id (the engine's objects have none)."""
    return select(*(c for c in table.columns if c.name != HALL_ID))


class _Statement:
    """One DML statement compiled once for a dialect and run straight on the driver's cursor.

    Why: building, cache-keying and wrapping a Core statement cost ~0.3 ms each, several
    times per command — far more than the engine itself (docs/benchmarks.md, "Engine").
    Values still go through the column types' bind processors, so rows are stored
    exactly as Core would store them and read back by the Core queries in :meth:`Store.load`.
    """

    def __init__(self, stmt: Any, dialect: Any, keys: list[str] | None = None,
                 identity: tuple[str, ...] = ()) -> None:
        # Rows with the same identity write the same database row, and each is a whole row:
        # in a group only the last of them needs writing (empty: every row is kept).
        self.identity = identity
        compiled = stmt.compile(dialect=dialect, column_keys=keys)
        self.sql = str(compiled)
        self.names: list[str] = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
        self.positional = bool(compiled.positional)
        procs = {name: bp.type.dialect_impl(dialect).bind_processor(dialect) for name, bp in compiled.binds.items()}
        self.plan: list[tuple[str, Any]] = [(n, procs[n]) for n in self.names]

    def params(self, row: dict[str, Any]) -> Any:
        """The driver's parameters for one row: a tuple for positional paramstyles, else a dict."""
        if self.positional:
            return tuple([row[n] if p is None else p(row[n]) for n, p in self.plan])
        return {n: (row[n] if p is None else p(row[n])) for n, p in self.plan}

    def run(self, cursor: Any, rows: list[dict[str, Any]]) -> None:
        """Execute the statement for each of ``rows`` (nothing for none) inside the caller's transaction."""
        if len(rows) == 1:
            cursor.execute(self.sql, self.params(rows[0]))
        elif rows:
            cursor.executemany(self.sql, [self.params(r) for r in rows])


class _Statements:
    """The journal's statements for one dialect: inserts, updates by key and upserts."""

    def __init__(self, dialect: Any) -> None:
        self.insert_ticket = _Statement(insert(tickets), dialect, [HALL_ID, *_TICKET_COLS])
        self.update_ticket = _Statement(_update_by(tickets, "id", _TICKET_COLS), dialect, identity=("_key",))
        self.insert_visit = _Statement(insert(visits), dialect, [HALL_ID, *_VISIT_COLS])
        self.update_visit = _Statement(_update_by(visits, "id", _VISIT_COLS), dialect, identity=("_key",))
        self.insert_event = _Statement(insert(events), dialect, [c.name for c in events.columns])
        # A request id seen again after its reply left memory (older than the reload horizon)
        # runs again; its row is replaced rather than failing the command on the primary key.
        self.upsert_request = _upsert(requests, ["client", "request_id"], dialect)
        self.upsert_counter = _upsert(counter_state, ["number"], dialect)
        self.upsert_state = _upsert(hall_state, ["key"], dialect)
        self.insert_rating = _Statement(insert(ratings), dialect, [HALL_ID, *_RATING_COLS])
        self.insert_case = _Statement(insert(cases), dialect, [HALL_ID, *_CASE_COLS])
        self.update_case = _Statement(_update_by(cases, "id", _CASE_COLS), dialect, identity=("_key",))
        self.insert_booking = _Statement(insert(bookings), dialect, [HALL_ID, *_BOOKING_COLS])
        self.update_booking = _Statement(_update_by(bookings, "code", _BOOKING_COLS), dialect, identity=("_key",))


_STATEMENTS: dict[tuple[str, str, str], _Statements] = {}


def _statements(dialect: Any) -> _Statements:
    """The compiled statements for ``dialect``, compiled once per process (restarts reuse them)."""
    key = (dialect.name, dialect.driver, dialect.paramstyle)
    if key not in _STATEMENTS:
        _STATEMENTS[key] = _Statements(dialect)
    return _STATEMENTS[key]


def _upsert(table: Table, keys: list[str], dialect: Any) -> list[_Statement]:
    """Statements that write rows whether or not their key exists (ON CONFLICT where supported); ``keys``
    within the hall (the hall id is part of every key)."""
    cols = [c.name for c in table.columns]
    keys = [HALL_ID, *keys]
    if dialect.name in ("sqlite", "postgresql"):
        # Only this dialect's module: importing the PostgreSQL dialect (and its asyncpg driver module) cost an
        # SQLite broker a sixth of a second on every restart while the screens waited.
        dialect_insert: Any
        if dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            dialect_insert = sqlite_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            dialect_insert = postgresql_insert
        ins = dialect_insert(table)
        stmt = ins.on_conflict_do_update(index_elements=keys,
                                         set_={c: ins.excluded[c] for c in cols if c not in keys})
        return [_Statement(stmt, dialect, cols, identity=tuple(keys))]
    match = [table.c[k] == bindparam(k) for k in keys]
    return [_Statement(delete(table).where(*match), dialect, identity=tuple(keys)),
            _Statement(insert(table), dialect, cols, identity=tuple(keys))]


class _Checkpointer:
    """Checkpoints an SQLite database's WAL from its own thread and connection, once a second."""

    INTERVAL = 1.0

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.files = sqlite_files(engine)
        self.checkpoints = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queuehall-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn: Any = None
        while not self._stop.wait(self.INTERVAL):
            if unwritable(self.files) is not None:
                continue  # touching the WAL index now could be SIGBUS (see unwritable); the broker says why
            try:
                if conn is None:
                    conn = self.engine.raw_connection()
                # PASSIVE: copies what no reader still needs and never waits for the writer.
                conn.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.checkpoints += 1
            except Exception:  # the next round tries again with a fresh connection
                log.exception("WAL checkpoint failed")
                if conn is not None:
                    conn.invalidate()
                    conn = None
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Store:
    """The journal the engine commits to, and the loader it rebuilds from."""

    def __init__(self, engine: Engine, hall: str = DEFAULT_HALL_ID) -> None:
        self.engine = engine
        #: The hall whose records this store reads and writes (docs/city.md); no other hall's row is touched.
        self.hall = hall
        self._sql = _statements(engine.dialect)
        # The journal's own connection, kept between commits: checking one out of the pool
        # (and resetting it on return) cost more than a whole SQLite commit. Commits come
        # from the engine's single thread; load() and reports use pooled connections.
        self._writer: Any = None
        self._checkpointer: _Checkpointer | None = None
        self._group: list[list[tuple[Any, list[dict[str, Any]]]]] | None = None
        self.files = sqlite_files(engine)
        # A standby pair's hooks (broker/lease.py, docs/standby.md): ``on_writer(connection)`` prepares each new
        # journal connection, ``fence(cursor)`` runs first in every journal transaction and raises if this
        # broker no longer holds the hall's lease, so nothing it writes after losing it can commit.
        self.on_writer: Callable[[Any], None] | None = None
        self.fence: Callable[[Any], None] | None = None

    def unwritable(self) -> StorageUnwritable | None:
        """Why the database cannot be written now, or None (see :func:`unwritable`). Nothing may
        read or write it meanwhile: the broker refuses commands with STORAGE until it can."""
        return unwritable(self.files)

    def commit(self, change: Change) -> None:
        """Write one accepted command's change in a single transaction; raise if it failed.

        On any error the transaction is rolled back, so either all of ``change`` is stored
        or none of it (the engine then reports STORAGE and keeps its state). Inside a group
        (:meth:`begin_group`) the change is only collected; :meth:`flush_group` writes it.
        """
        batches = self._batches(change)
        if self._group is not None:
            self._group.append(batches)
            return
        failure = self.unwritable()
        if failure is not None:
            raise failure
        self._write(batches)

    def begin_group(self) -> None:
        """Start a group commit: changes are collected until :meth:`flush_group`.

        The broker groups the commands that were already waiting on its socket, writes
        them in one transaction (one fsync) and only then replies to any of them, so
        nothing is acknowledged before it is durable."""
        self._group = []

    def flush_group(self) -> int:
        """Write every change collected since :meth:`begin_group` in one transaction.

        Returns how many changes were written. On failure nothing of the group is stored
        and the error is raised: the caller must rebuild its state from the database."""
        group, self._group = self._group, None
        if group:
            failure = self.unwritable()
            if failure is not None:
                raise failure
            self._write(_merge(group))
        return len(group or ())

    def _batches(self, change: Change) -> list[tuple[Any, list[dict[str, Any]]]]:
        sql = self._sql
        new_t = [_row(t, _TICKET_COLS) for i, t in change.tickets.items() if i in change.new_tickets]
        old_t = [_keyed(_row(t, _TICKET_COLS), "id")
                 for i, t in change.tickets.items() if i not in change.new_tickets]
        new_v = [_row(v, _VISIT_COLS) for i, v in change.visits.items() if i in change.new_visits]
        old_v = [_keyed(_row(v, _VISIT_COLS), "id")
                 for i, v in change.visits.items() if i not in change.new_visits]
        batches: list[tuple[_Statement, list[dict[str, Any]]]] = [
            (sql.insert_ticket, new_t), (sql.update_ticket, old_t),
            (sql.insert_visit, new_v), (sql.update_visit, old_v),
            (sql.insert_event, [
                {"seq": e.seq, "at": _db(e.at), "business_day": e.business_day, "type": e.type,
                 "ticket_id": e.ticket_id, "service": e.service, "counter": e.counter, "clerk": e.clerk,
                 "data": json_text(e.data)}
                for e in change.events]),
        ]
        if change.ratings or change.cases:
            batches += [
                (sql.insert_rating, [dict(_row(r, _RATING_COLS), indicators=json_text(r.indicators))
                                     for r in change.ratings]),
                (sql.insert_case, [_row(c, _CASE_COLS) for i, c in change.cases.items() if i in change.new_cases]),
                (sql.update_case, [_keyed(_row(c, _CASE_COLS), "id")
                                   for i, c in change.cases.items() if i not in change.new_cases]),
            ]
        if change.bookings:
            batches += [
                (sql.insert_booking, [_row(b, _BOOKING_COLS) for k, b in change.bookings.items()
                                      if k in change.new_bookings]),
                (sql.update_booking, [_keyed(_row(b, _BOOKING_COLS), "code") for k, b in change.bookings.items()
                                      if k not in change.new_bookings]),
            ]
        counter_rows = [_row(c, _COUNTER_COLS) for c in change.counters.values()]
        state_rows = [{"key": k, "value": json_text(v)} for k, v in change.state.items()]
        batches += [(stmt, counter_rows) for stmt in sql.upsert_counter]
        batches += [(stmt, state_rows) for stmt in sql.upsert_state]
        if change.request is not None:
            client, rid, reply = change.request
            row = {"client": client, "request_id": rid,
                   "at": _db(change.events[0].at if change.events else datetime.now(UTC)),
                   "reply": json_text(reply)}
            batches += [(stmt, [row]) for stmt in sql.upsert_request]
        for _stmt, rows in batches:
            for r in rows:
                r[HALL_ID] = r["_hall"] = self.hall
        return batches

    def _write(self, batches: list[tuple[Any, list[dict[str, Any]]]]) -> None:
        if self._writer is None:
            self._writer = self.engine.raw_connection()
            if self.engine.dialect.name == "sqlite" and self.engine.url.database not in (None, "", ":memory:"):
                # Copying the WAL back into the database (and its fsync) happened inside whichever
                # commit filled the WAL: tens of milliseconds added to that one reply. Another
                # thread does it now, without blocking the journal's commits (WAL allows both).
                self._writer.driver_connection.execute("PRAGMA wal_autocheckpoint=0")
                if self._checkpointer is None:
                    self._checkpointer = _Checkpointer(self.engine)
            if self.on_writer is not None:
                try:
                    self.on_writer(self._writer)
                except BaseException:
                    self._writer.invalidate()
                    self._writer = None
                    raise
        raw = self._writer
        try:
            cursor = raw.cursor()
            try:
                if self.fence is not None:
                    self.fence(cursor)
                for stmt, rows in batches:
                    stmt.run(cursor, rows)
            finally:
                cursor.close()
            raw.commit()
        except BaseException:
            try:
                raw.rollback()
            except Exception:  # the connection itself is broken: the next commit opens a new one
                raw.invalidate()
                self._writer = None
            raise

    def close(self) -> None:
        """Release the journal's connection and the engine's pool (the store can be reopened)."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.engine.dispose()

    def load(self, now: datetime, business_day: date, *, noshow_grace_minutes: int,
             no_shows_since: datetime | None = None,
             request_horizon: timedelta = timedelta(days=2), ratable_since: datetime | None = None) -> Stored:
        """What the engine needs to resume at ``now``: open tickets and their current visits,
        no-shows marked since ``no_shows_since`` (default: those still within their grace
        period), today's last numbers, counters, rule state, recent request replies and the
        last calls for the displays. Tickets and visits come in id order, as the engine
        keeps them."""
        since = _db(no_shows_since if no_shows_since is not None
                    else now - timedelta(minutes=noshow_grace_minutes))
        h = self.hall
        live = (tickets.c.hall_id == h) & ((tickets.c.status.in_(sorted(ACTIVE))) | (
            (tickets.c.status == NO_SHOW) & (tickets.c.status_at >= since)))
        with self.engine.connect() as conn:
            open_tickets = _objs(Ticket, conn.execute(_select(tickets).where(live).order_by(tickets.c.id)))
            open_visits = _objs(Visit, conn.execute(
                _select(visits).join(tickets, (tickets.c.hall_id == visits.c.hall_id)
                                     & (tickets.c.visit_id == visits.c.id)).where(live)
                .order_by(visits.c.id)))
            counters = _objs(CounterState, conn.execute(_select(counter_state).where(counter_state.c.hall_id == h)
                                                        .order_by(counter_state.c.number)))
            state = {r.key: json.loads(r.value) for r in conn.execute(
                select(hall_state).where((hall_state.c.hall_id == h) & (hall_state.c.key != RETENTION_KEY)))}
            numbers = {(business_day, r.service): r.n for r in conn.execute(
                select(tickets.c.service, func.max(tickets.c.number).label("n"))
                .where((tickets.c.hall_id == h) & (tickets.c.business_day == business_day))
                .group_by(tickets.c.service))}
            last_ticket = conn.execute(select(func.max(tickets.c.id)).where(tickets.c.hall_id == h)).scalar() or 0
            last_visit = conn.execute(select(func.max(visits.c.id)).where(visits.c.hall_id == h)).scalar() or 0
            last_seq = conn.execute(select(func.max(events.c.seq)).where(events.c.hall_id == h)).scalar() or 0
            # Replies stay JSON text until a retry asks for one: a busy hall stores tens of thousands a
            # day, and decoding them all was most of a restart's loading.
            reqs = {(r.client, r.request_id): r.reply for r in conn.execute(
                select(requests.c.client, requests.c.request_id, requests.c.reply)
                .where((requests.c.hall_id == h) & (requests.c.at >= _db(now - request_horizon))))}
            calls = conn.execute(select(events).where((events.c.hall_id == h) & (events.c.type == "ticket_called"))
                                 .order_by(events.c.seq.desc()).limit(30)).all()
            open_cases = _objs(Case, conn.execute(_select(cases).where((cases.c.hall_id == h)
                                                                       & (cases.c.status == CASE_OPEN))
                                                  .order_by(cases.c.id)))
            # Bookings of today and later, yesterday's (a code of the day before is told "wrong day"), and any
            # older one still booked (its day's close records it a no-show).
            held = _objs(Booking, conn.execute(_select(bookings).where((bookings.c.hall_id == h) & (
                (bookings.c.slot_day >= business_day - timedelta(days=1)) | (bookings.c.state == BOOKED)))
                .order_by(bookings.c.slot_at, bookings.c.code)))
            last_rating = conn.execute(select(func.max(ratings.c.id)).where(ratings.c.hall_id == h)).scalar() or 0
            last_case = conn.execute(select(func.max(cases.c.id)).where(cases.c.hall_id == h)).scalar() or 0
            ratable = []
            if ratable_since is not None:
                for r in conn.execute(
                        select(visits.c.id, visits.c.ticket_id, tickets.c.label, visits.c.business_day,
                               visits.c.service, visits.c.counter, visits.c.clerk, visits.c.post, visits.c.ended_at,
                               ratings.c.level)
                        .join(tickets, (tickets.c.hall_id == visits.c.hall_id) & (tickets.c.id == visits.c.ticket_id))
                        .outerjoin(ratings, (ratings.c.hall_id == visits.c.hall_id)
                                   & (ratings.c.visit_id == visits.c.id))
                        .where((visits.c.hall_id == h) & (visits.c.outcome == FINISHED)
                               & (visits.c.ended_at >= _db(ratable_since)))
                        .order_by(visits.c.ended_at, visits.c.id)):
                    ratable.append(Ratable(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _py(r[8]), r[9]))
        recent = [Event(seq=r.seq, at=_py(r.at), business_day=r.business_day, type=r.type,
                        ticket_id=r.ticket_id, service=r.service, counter=r.counter, clerk=r.clerk,
                        data=json.loads(r.data)) for r in reversed(calls)]
        return Stored(
            tickets=open_tickets,
            visits=open_visits,
            counters=counters, state=state, numbers=numbers,
            last_ticket_id=last_ticket, last_visit_id=last_visit, last_event_seq=last_seq,
            requests=reqs, recent_calls=recent, open_cases=open_cases, ratable=ratable,
            last_rating_id=last_rating, last_case_id=last_case, bookings=held)

    def ticket_by_token(self, token: str) -> tuple[Ticket, Visit | None] | None:
        """The stored ticket whose page token is ``token``, with its current (last) visit, or None.

        For the pages of tickets that left the engine's memory (finished, cancelled, ...): the
        broker answers ``ticket_by_token`` from memory first (docs/web.md)."""
        with self.engine.connect() as conn:
            found = _objs(Ticket, conn.execute(_select(tickets).where((tickets.c.hall_id == self.hall)
                                                                      & (tickets.c.token == token))))
            if not found:
                return None
            visit = _objs(Visit, conn.execute(_select(visits).where((visits.c.hall_id == self.hall)
                                                                    & (visits.c.id == found[0].visit_id))))
        return found[0], (visit[0] if visit else None)

    def day_figures(self, day: date, promised_services: Iterable[str]) -> dict[str, Any]:
        """Today's completion and satisfaction so far, for the supervision page (docs/supervision.md): a few
        indexed counts over one business day (the reports' definitions, docs/reports.md and evaluation.md).

        ``served`` tickets finished, ``closed_unserved``, ``same_day_completed`` (served, with no served
        visit of a promised service, ``promised_services``), ``same_day_rate`` = completed / (served +
        closed_unserved) or None; ``rated``, ``levels`` {"5": n, ...}, ``defaults``, ``good_rate``
        (levels 3-5 / rated) or None."""
        promised = list(promised_services)
        h = self.hall  # only this hall's records (docs/city.md)
        with self.engine.connect() as conn:
            counts: dict[str, int] = dict(conn.execute(select(tickets.c.status, func.count()).where(
                (tickets.c.hall_id == h) & (tickets.c.business_day == day)
                & tickets.c.status.in_((FINISHED, CLOSED_UNSERVED))).group_by(tickets.c.status)).all())
            accepted = 0
            if promised:
                accepted = conn.execute(
                    select(func.count(func.distinct(visits.c.ticket_id)))
                    .select_from(visits.join(tickets, (tickets.c.hall_id == visits.c.hall_id)
                                             & (tickets.c.id == visits.c.ticket_id)))
                    .where((tickets.c.hall_id == h) & (tickets.c.business_day == day)
                           & (tickets.c.status == FINISHED) & visits.c.serving_at.is_not(None)
                           & visits.c.service.in_(promised))).scalar() or 0
            mine = (ratings.c.hall_id == h) & (ratings.c.business_day == day)
            levels = {str(lv): n for lv, n in conn.execute(
                select(ratings.c.level, func.count()).where(mine).group_by(ratings.c.level)).all()}
            defaults = conn.execute(select(func.count()).where(mine & ratings.c.is_default)).scalar() or 0
        served, unserved = int(counts.get(FINISHED, 0)), int(counts.get(CLOSED_UNSERVED, 0))
        rated = sum(levels.values())
        good = sum(n for lv, n in levels.items() if int(lv) >= 3)
        return {"business_day": day.isoformat(), "served": served, "closed_unserved": unserved,
                "same_day_completed": served - int(accepted),
                "same_day_rate": round((served - int(accepted)) / (served + unserved), 4) if served + unserved
                else None,
                "rated": rated, "levels": {str(lv): levels.get(str(lv), 0) for lv in (5, 4, 3, 2, 1)},
                "defaults": int(defaults), "good_rate": round(good / rated, 4) if rated else None}

    # ------------------------------------------------------------------ clerks' PINs

    def pin_record(self, clerk: str) -> PinRecord | None:
        """The clerk's PIN hash and generation, read now (the engine asks at each sign-in)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(clerk_pins.c.pin_hash, clerk_pins.c.generation)
                               .where((clerk_pins.c.hall_id == self.hall) & (clerk_pins.c.clerk == clerk))).first()
        return PinRecord(clerk, row.pin_hash, row.generation) if row is not None else None

    def set_pin_hash(self, clerk: str, pin_hash: str, *, by: str, change: str = "set") -> None:
        """Store ``pin_hash`` as the clerk's PIN (replacing any) and void any lock: generation + 1."""
        self._pin_change(clerk, by, change, pin_hash)

    def unlock_clerk(self, clerk: str, *, by: str) -> bool:
        """Void the clerk's lock and count of wrong PINs (generation + 1); False if the clerk has no PIN."""
        return self._pin_change(clerk, by, "unlock", None)

    def _pin_change(self, clerk: str, by: str, change: str, pin_hash: str | None) -> bool:
        values = {"changed_at": _db(datetime.now(UTC)), "changed_by": by[:64], "change": change}
        mine = (clerk_pins.c.hall_id == self.hall) & (clerk_pins.c.clerk == clerk)
        with self.engine.begin() as conn:
            gen = conn.execute(select(clerk_pins.c.generation).where(mine)).scalar()
            if gen is None:
                if pin_hash is None:
                    return False
                conn.execute(insert(clerk_pins).values(hall_id=self.hall, clerk=clerk, pin_hash=pin_hash,
                                                       generation=1, **values))
            else:
                if pin_hash is not None:
                    values["pin_hash"] = pin_hash
                conn.execute(update(clerk_pins).where(mine).values(generation=clerk_pins.c.generation + 1, **values))
        return True

    def pin_records(self) -> dict[str, dict[str, Any]]:
        """Every clerk with a PIN: ``{"generation", "changed_at", "changed_by", "change"}`` (no hash)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(clerk_pins.c.clerk, clerk_pins.c.generation, clerk_pins.c.changed_at,
                                       clerk_pins.c.changed_by, clerk_pins.c.change)
                                .where(clerk_pins.c.hall_id == self.hall))
            return {r.clerk: {"generation": r.generation, "changed_at": _py(r.changed_at),
                              "changed_by": r.changed_by, "change": r.change} for r in rows}

    def clerk_locks(self) -> dict[str, dict[str, Any]]:
        """The engine's count of wrong PINs and locks as last committed (hall state ``clerk_locks``)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(hall_state.c.value).where((hall_state.c.hall_id == self.hall)
                                                                  & (hall_state.c.key == "clerk_locks"))).scalar()
        return json.loads(value) if value else {}

    # ------------------------------------------------------------------ halls

    def halls(self) -> list[str]:
        """The ids of every hall with records in the database (registered or not), sorted."""
        found: set[str] = set()
        with self.engine.connect() as conn:
            found.update(conn.execute(select(halls.c.id)).scalars())
            for table in (tickets, counter_state, clerk_pins):
                # One index seek per hall (the hall id leads the key), not a scan of every row as DISTINCT
                # would be on PostgreSQL: this runs at every start of a broker without an id.
                col = table.c.hall_id
                at = conn.execute(select(func.min(col))).scalar()
                while at is not None:
                    found.add(at)
                    at = conn.execute(select(func.min(col)).where(col > at)).scalar()
        return sorted(found)

    def register_hall(self, name_zh: str, name_en: str, now: datetime | None = None) -> None:
        """Record this hall (its names, when its broker started) in ``halls``; the central reports read it."""
        at = _db(now or datetime.now(UTC))
        with self.engine.begin() as conn:
            if conn.execute(select(halls.c.id).where(halls.c.id == self.hall)).first() is None:
                conn.execute(insert(halls).values(id=self.hall, name_zh=name_zh, name_en=name_en, registered_at=at,
                                                  started_at=at))
            else:
                conn.execute(update(halls).where(halls.c.id == self.hall)
                             .values(name_zh=name_zh, name_en=name_en, started_at=at))

    def events_since(self, seq: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Stored events after ``seq`` (the audit log), oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(events).where((events.c.hall_id == self.hall) & (events.c.seq > seq))
                                .order_by(events.c.seq).limit(limit))
            return [{"seq": r.seq, "at": _py(r.at).isoformat(), "type": r.type, "ticket_id": r.ticket_id,
                     "service": r.service, "counter": r.counter, "clerk": r.clerk, "data": json.loads(r.data)}
                    for r in rows]

    def record_retention(self, days: int) -> None:
        """Keep the hall's retention period (from the broker's configuration) in the database.

        Called by the broker at every start, so :meth:`purge` honours the hall's period even when it
        runs on another machine with another (shorter) ``hall.toml``."""
        if self.stored_retention() == days:
            return  # the usual restart: nothing to write (and no fsync while the screens wait)
        with self.engine.begin() as conn:
            conn.execute(delete(hall_state).where((hall_state.c.hall_id == self.hall)
                                                  & (hall_state.c.key == RETENTION_KEY)))
            conn.execute(insert(hall_state).values(hall_id=self.hall, key=RETENTION_KEY,
                                                   value=json.dumps({"days": int(days)})))

    def stored_retention(self) -> int | None:
        """The retention period the hall's broker last recorded (None: no broker has started on it)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(hall_state.c.value).where((hall_state.c.hall_id == self.hall)
                                                                  & (hall_state.c.key == RETENTION_KEY))).scalar()
        return int(json.loads(value)["days"]) if value is not None else None

    def effective_retention(self, retention_days: int) -> int:
        """The longer of ``retention_days`` (the caller's configuration) and the hall's recorded period."""
        return max(retention_days, self.stored_retention() or 0)

    def purge(self, before: date, *, retention_days: int, today: date) -> dict[str, int]:
        """Delete closed tickets of business days before ``before``, with their visits and events.

        Refused (RETENTION) when ``before`` is later than ``today - days``, where ``days`` is the
        longer of ``retention_days`` and the period the hall's broker recorded
        (:meth:`record_retention`). Open tickets and their events stay, however old. Returns the rows
        deleted per table.
        """
        from queuehall.errors import HallError

        retention_days = self.effective_retention(retention_days)
        limit = today - timedelta(days=retention_days)
        if before > limit:
            raise HallError("RETENTION", days=retention_days, before=limit.isoformat())
        h = self.hall  # only this hall's records: other halls keep theirs, whatever their periods (docs/city.md)
        with self.engine.begin() as conn:
            closed = (tickets.c.hall_id == h) & ~tickets.c.status.in_(sorted(ACTIVE))
            old_ids = select(tickets.c.id).where((tickets.c.business_day < before) & closed)
            # The reports' facts go with their visits (the same tickets), so none outlives its visit.
            conn.execute(delete(report_facts).where((report_facts.c.hall_id == h)
                                                    & report_facts.c.ticket_id.in_(old_ids)))
            # The days added up (report_days) go with the days purged; a day that kept records is added up again.
            for table in (report_days, report_day_times):
                conn.execute(delete(table).where((table.c.hall_id == h) & (table.c.business_day < before)))
            # Ratings and closed cases go with their tickets; an open case stays until it is closed.
            conn.execute(delete(ratings).where(
                (ratings.c.hall_id == h) & ratings.c.ticket_id.in_(old_ids) & ratings.c.id.not_in(
                    select(cases.c.rating_id).where((cases.c.hall_id == h) & (cases.c.status == CASE_OPEN)))))
            conn.execute(delete(cases).where(
                (cases.c.hall_id == h) & (cases.c.status != CASE_OPEN) & cases.c.visit_id.in_(
                    select(visits.c.id).where((visits.c.hall_id == h) & visits.c.ticket_id.in_(old_ids)))))
            n_visits = conn.execute(delete(visits).where((visits.c.hall_id == h)
                                                         & visits.c.ticket_id.in_(old_ids))).rowcount
            n_tickets = conn.execute(delete(tickets).where((tickets.c.business_day < before) & closed)).rowcount
            still_open = select(tickets.c.id).where((tickets.c.hall_id == h) & tickets.c.status.in_(sorted(ACTIVE)))
            n_events = conn.execute(delete(events).where(
                (events.c.hall_id == h) & (events.c.business_day < before)
                & (events.c.ticket_id.is_(None) | events.c.ticket_id.not_in(still_open)))).rowcount
            n_req = conn.execute(delete(requests).where(
                (requests.c.hall_id == h) & (requests.c.at < datetime.combine(before, datetime.min.time())))).rowcount
            # Bookings (and the contact they may carry, masked and hashed) of slots before ``before``; one
            # still booked is left to its day's close, which records it a no-show.
            n_book = conn.execute(delete(bookings).where(
                (bookings.c.hall_id == h) & (bookings.c.slot_day < before) & (bookings.c.state != BOOKED))).rowcount
        return {"tickets": n_tickets, "visits": n_visits, "events": n_events, "requests": n_req,
                "bookings": n_book}


def _update_by(table: Table, key: str, cols: list[str]) -> Any:
    return (update(table).where((table.c[HALL_ID] == bindparam("_hall")) & (table.c[key] == bindparam("_key")))
            .values({c: bindparam(c) for c in cols if c != key}))


def _merge(group: list[list[tuple[_Statement, list[dict[str, Any]]]]]) -> list[tuple[_Statement, list[dict[str, Any]]]]:
    """A group's writes as one batch per statement (one ``executemany`` each instead of several
    statements per command), keeping only the last whole-row write of each row.

    Statements keep the order every command lists them in (tickets inserted before updated, ...),
    and rows keep the commands' order, so the database ends exactly as after writing them one by one.
    """
    merged: dict[_Statement, list[dict[str, Any]]] = {}
    for batches in group:
        for stmt, rows in batches:
            merged.setdefault(stmt, []).extend(rows)
    out = []
    for stmt, rows in merged.items():
        if stmt.identity and len(rows) > 1:
            rows = list({tuple(r[k] for k in stmt.identity): r for r in rows}.values())
        out.append((stmt, rows))
    return out


def _keyed(row: dict[str, Any], key: str) -> dict[str, Any]:
    out = dict(row)
    out["_key"] = out.pop(key)
    return out


def open_store(url: str | None = None, *, sqlite_synchronous: str = "FULL", hall: str = DEFAULT_HALL_ID,
               hall_given: bool = False) -> Store:
    """Open (and migrate) the database at ``url`` (default: SQLite in the data directory) for ``hall``'s records.

    ``hall_given``: the hall's configuration named its id. A hall that did not (the single-hall default id)
    is refused with :class:`HallIdRequired` when the database already holds another hall's records."""
    engine = make_engine(url or default_url(), sqlite_synchronous=sqlite_synchronous)
    try:
        migrate(engine, hall)
        store = Store(engine, hall)
        if not hall_given:
            others = [h for h in store.halls() if h != hall]
            if others:
                raise HallIdRequired(hall, sorted({hall, *others}))
    except BaseException:
        engine.dispose()
        raise
    return store


def open_hall_store(url: str | None, config: Any, *, sqlite_synchronous: str = "FULL") -> Store:
    """:func:`open_store` for the hall of ``config`` (a :class:`~broker.config.HallConfig`)."""
    return open_store(url, sqlite_synchronous=sqlite_synchronous, hall=config.hall_id,
                      hall_given=config.hall_id_given)


def load_hall(config: Any, clock: Any, store: Store, *, token_source: Any = None,
              contact_key: bytes | None = None) -> Any:
    """A :class:`broker.engine.Hall` rebuilt from ``store`` and journaling to it (``token_source``: see
    :class:`~broker.engine.Hall`; ``contact_key``: the key of the bookings' contact hashes, the broker's file's).

    Business days whose closing time passed while nothing ran (a broker stopped overnight)
    are closed at once, as the running broker would have closed them (docs/calling-rules.md)."""
    from queuehall.broker.engine import RATING_HORIZON, Hall, no_show_load_horizon
    from queuehall.broker.hours import OpeningHours

    now = clock.now()
    hours = OpeningHours(config.hours, config.timezone)
    stored = store.load(now, hours.business_day(now), noshow_grace_minutes=config.calling.noshow_grace_minutes,
                        no_shows_since=no_show_load_horizon(hours, now),
                        ratable_since=now - timedelta(minutes=config.rating.window_minutes) - RATING_HORIZON)
    if store.hall != config.hall_id:
        raise ValueError(f"the store is hall {store.hall!r}'s, the configuration hall {config.hall_id!r}'s")
    try:
        store.record_retention(config.retention_days)
        store.register_hall(config.name.zh, config.name.en, now)
    except SQLAlchemyError:  # an unwritable database: the broker reports that on the first command
        log.warning("could not record the retention period (%s days) or the hall in the database",
                    config.retention_days, exc_info=True)
    hall = Hall(config, clock, store, stored=stored, token_source=token_source, pins=store,
                contact_key=contact_key)
    from queuehall.errors import HallError

    try:
        hall.close_day_if_due()
    except HallError:  # not written: the next command or heartbeat closes it
        log.warning("could not close the business day at start", exc_info=True)
    return hall
