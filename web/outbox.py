"""The webhook outbox: subscribers, their deliveries and the broker event cursor, in the gateway's state file.

Durability is the point of this module. The gateway reads the broker's journaled events (those
with a ``journal_seq``) in order and, in **one transaction**, writes a delivery for each subscriber
that wants the event *and* moves the cursor (the last ``journal_seq`` enqueued). A delivery is
marked delivered only after its receiver answered 2xx. So after ``kill -9`` or a power cut:

* an event enqueued is delivered later (at least once: one whose 2xx came just before the crash
  is sent again, with the same delivery id for the receiver to drop);
* an event not yet enqueued is fetched again from the broker's journal, from the cursor on;
* nothing is enqueued twice (the cursor moved in the same transaction).

Events the broker's journal no longer has (purged, or a broker that keeps no journal) are never
invented: the missing range is written as a *gap* record and logged (``web-hook list`` shows it).

Deliveries of one subscriber go out in the order they were enqueued (``seq``); the worker sends
a subscriber's next delivery only after the previous one succeeded, so a failing receiver holds
up only its own queue.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from queuehall.web.state import connect

log = logging.getLogger("queuehall.web.outbox")

# The broker's journaled event types (docs/protocol.md), which subscribers may ask for. Presence and
# services_changed are not journaled (they are derived from time and connections), so they cannot be
# replayed after a restart and are not offered.
EVENT_TYPES = (
    "ticket_issued", "ticket_called", "ticket_serving", "ticket_finished", "ticket_no_show", "ticket_transferred",
    "ticket_reinstated", "ticket_cancelled", "ticket_voided", "ticket_checked_in",
    "counter_signed_in", "counter_signed_out", "counter_paused", "counter_resumed",
    "printer_fault", "printer_fault_cleared", "reprint_requested", "ticket_reprinted",
    # 好差评 (docs/evaluation.md): the province's platform may take every rating as it is given
    "visit_rated", "case_opened", "case_updated", "case_closed",
    "ticket_closed_unserved", "day_closed",  # the business day's close (docs/calling-rules.md)
    # the manager's alerts (docs/supervision.md)
    "alert_raised", "alert_cleared", "alert_acknowledged",
    "sign_in_refused", "clerk_locked", "clerk_unlocked",
    # appointments (预约; docs/calling-rules.md): never the booking's code or contact
    "booking_made", "booking_cancelled", "booking_checked_in", "booking_no_show",
)
KEEP_DELIVERED_SECONDS = 7 * 86400  # delivered rows are kept a week for `web-hook list` and support

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_subscribers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events TEXT NOT NULL,
    created_at TEXT NOT NULL,
    removed_at TEXT
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    subscriber INTEGER NOT NULL REFERENCES webhook_subscribers(id),
    journal_seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error TEXT,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS ix_webhook_pending ON webhook_deliveries (subscriber, seq) WHERE delivered_at IS NULL;
CREATE INDEX IF NOT EXISTS ix_webhook_delivered ON webhook_deliveries (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS webhook_cursor (
    name TEXT PRIMARY KEY,
    journal_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_gaps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    reason TEXT NOT NULL,
    detected_at TEXT NOT NULL
);
"""


class OutboxError(ValueError):
    """A bad subscriber URL, event type or reference (the CLI prints it and exits 2)."""


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Subscriber:
    id: int
    name: str
    url: str
    secret: str
    events: tuple[str, ...]  # ("*",) = every type
    created_at: str
    removed_at: str | None = None

    def wants(self, event_type: str) -> bool:
        return "*" in self.events or event_type in self.events

    def to_dict(self) -> dict[str, Any]:
        """Without the secret."""
        return {"id": self.id, "name": self.name, "url": self.url, "events": list(self.events),
                "created_at": self.created_at, "removed_at": self.removed_at}


@dataclass(frozen=True)
class Delivery:
    seq: int
    id: str
    subscriber: int
    journal_seq: int
    type: str
    body: bytes
    attempts: int
    next_at: float


def check_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboxError(f"{url!r} is not an http(s) URL")
    return url.strip()


def check_events(events: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(e.strip() for e in events if e.strip())) or ("*",)
    unknown = [e for e in chosen if e != "*" and e not in EVENT_TYPES]
    if unknown:
        raise OutboxError(f"unknown event type(s) {', '.join(unknown)}; known: * {' '.join(EVENT_TYPES)}")
    return ("*",) if "*" in chosen else chosen


class Outbox:
    """The outbox in the state file; every method is one short transaction, safe from any thread."""

    def __init__(self, path: str | Path | sqlite3.Connection, clock: Any = time.time) -> None:
        self.conn = path if isinstance(path, sqlite3.Connection) else connect(path)
        self.conn.executescript(_SCHEMA)
        self.clock = clock
        self._lock = threading.Lock()

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------ subscribers

    def add_subscriber(self, url: str, events: Iterable[str] = (), *, name: str | None = None,
                       secret: str | None = None) -> Subscriber:
        """Add a subscriber; it gets the events enqueued from now on. A secret is made when none is given."""
        url = check_url(url)
        kinds = check_events(events)
        if secret is not None and len(secret) < 16:
            raise OutboxError("a webhook secret must have at least 16 characters")
        secret = secret or "whsec_" + secrets.token_urlsafe(32)
        with self._lock:
            cur = self.conn.execute(
                "INSERT INTO webhook_subscribers (name, url, secret, events, created_at) VALUES (?, ?, ?, ?, ?)",
                (name or urlsplit(url).hostname or url, url, secret, " ".join(kinds), _now_iso()))
            sid = int(cur.lastrowid or 0)
        sub = self.subscriber(sid)
        assert sub is not None
        return sub

    def subscriber(self, sid: int) -> Subscriber | None:
        with self._lock:
            row = self.conn.execute("SELECT id, name, url, secret, events, created_at, removed_at "
                                    "FROM webhook_subscribers WHERE id = ?", (sid,)).fetchone()
        return _subscriber(row) if row else None

    def subscribers(self, *, include_removed: bool = False) -> list[Subscriber]:
        with self._lock:
            rows = self.conn.execute("SELECT id, name, url, secret, events, created_at, removed_at "
                                     "FROM webhook_subscribers ORDER BY id").fetchall()
        return [s for s in map(_subscriber, rows) if include_removed or s.removed_at is None]

    def remove_subscriber(self, ref: str) -> Subscriber:
        """Remove a subscriber by id or name; its undelivered deliveries are dropped with it."""
        live = self.subscribers()
        found = [s for s in live if str(s.id) == ref.strip()] or [s for s in live if s.name == ref.strip()]
        if not found:
            raise OutboxError(f"no subscriber {ref!r}")
        if len(found) > 1:
            raise OutboxError(f"{len(found)} subscribers are named {ref!r}; remove by id")
        sid = found[0].id
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.execute("UPDATE webhook_subscribers SET removed_at = ? WHERE id = ?", (_now_iso(), sid))
                self.conn.execute("DELETE FROM webhook_deliveries WHERE subscriber = ? AND delivered_at IS NULL",
                                  (sid,))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        sub = self.subscriber(sid)
        assert sub is not None
        return sub

    def stats(self, sid: int) -> dict[str, Any]:
        """Pending and delivered counts of one subscriber, and its oldest pending delivery's trouble."""
        with self._lock:
            pending, delivered = self.conn.execute(
                "SELECT SUM(delivered_at IS NULL), SUM(delivered_at IS NOT NULL) FROM webhook_deliveries "
                "WHERE subscriber = ?", (sid,)).fetchone()
            head = self.conn.execute(
                "SELECT attempts, last_status, last_error, next_at FROM webhook_deliveries "
                "WHERE subscriber = ? AND delivered_at IS NULL ORDER BY seq LIMIT 1", (sid,)).fetchone()
        out: dict[str, Any] = {"pending": int(pending or 0), "delivered": int(delivered or 0)}
        if head is not None and head[0]:
            out["head"] = {"attempts": head[0], "last_status": head[1], "last_error": head[2],
                           "next_attempt": datetime.fromtimestamp(head[3], UTC).isoformat(timespec="seconds")}
        return out

    # ------------------------------------------------------------------ cursor, enqueue, gaps

    def cursor(self) -> int | None:
        """The last broker ``journal_seq`` enqueued (None before the gateway first met a broker)."""
        with self._lock:
            row = self.conn.execute("SELECT journal_seq FROM webhook_cursor WHERE name = 'broker'").fetchone()
        return int(row[0]) if row else None

    def enqueue(self, events: list[dict[str, Any]], cursor: int | None = None,
                gap: tuple[int, int, str] | None = None) -> int:
        """Write a delivery of each event for every subscriber that wants it, and move the cursor to
        ``cursor`` (default: the last event's ``journal_seq``), in one transaction. ``gap`` =
        (first, last, reason) records journal numbers that will never be delivered in the same
        transaction. Returns the number of deliveries written."""
        subs = self.subscribers()
        now = self.clock()
        rows = []
        for ev in events:
            jseq, etype = int(ev["journal_seq"]), str(ev.get("type", ""))
            for s in subs:
                if s.wants(etype):
                    did = uuid.uuid4().hex
                    body = orjson.dumps({"id": did, "type": etype, "journal_seq": jseq,
                                         "created_at": _now_iso(), "event": ev})
                    rows.append((did, s.id, jseq, etype, body, now, now))
        to = cursor if cursor is not None else (int(events[-1]["journal_seq"]) if events else None)
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                if rows:
                    self.conn.executemany("INSERT INTO webhook_deliveries (id, subscriber, journal_seq, type, body, "
                                          "created_at, next_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                if gap is not None:
                    self.conn.execute("INSERT INTO webhook_gaps (first_seq, last_seq, reason, detected_at) "
                                      "VALUES (?, ?, ?, ?)", (gap[0], gap[1], gap[2], _now_iso()))
                if to is not None:
                    self.conn.execute("INSERT INTO webhook_cursor (name, journal_seq) VALUES ('broker', ?) "
                                      "ON CONFLICT (name) DO UPDATE SET journal_seq = excluded.journal_seq", (to,))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        return len(rows)

    def gaps(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self.conn.execute("SELECT first_seq, last_seq, reason, detected_at FROM webhook_gaps "
                                     "ORDER BY id").fetchall()
        return [{"first_seq": r[0], "last_seq": r[1], "reason": r[2], "detected_at": r[3]} for r in rows]

    # ------------------------------------------------------------------ deliveries

    def next_pending(self, sid: int) -> Delivery | None:
        """The subscriber's oldest undelivered delivery (its head of line), or None."""
        with self._lock:
            row = self.conn.execute(
                "SELECT seq, id, subscriber, journal_seq, type, body, attempts, next_at FROM webhook_deliveries "
                "WHERE subscriber = ? AND delivered_at IS NULL ORDER BY seq LIMIT 1", (sid,)).fetchone()
        return Delivery(*row) if row else None

    def mark_delivered(self, delivery_id: str, status: int) -> None:
        with self._lock:
            self.conn.execute("UPDATE webhook_deliveries SET delivered_at = ?, attempts = attempts + 1, "
                              "last_status = ?, last_error = NULL WHERE id = ?", (self.clock(), status, delivery_id))

    def mark_failed(self, delivery_id: str, next_at: float, status: int | None, error: str) -> None:
        with self._lock:
            self.conn.execute("UPDATE webhook_deliveries SET attempts = attempts + 1, next_at = ?, last_status = ?, "
                              "last_error = ? WHERE id = ?", (next_at, status, error[:500], delivery_id))

    def prune(self, keep_seconds: float = KEEP_DELIVERED_SECONDS) -> int:
        """Delete deliveries delivered more than ``keep_seconds`` ago; returns how many."""
        with self._lock:
            cur = self.conn.execute("DELETE FROM webhook_deliveries WHERE delivered_at IS NOT NULL "
                                    "AND delivered_at < ?", (self.clock() - keep_seconds,))
        return int(cur.rowcount or 0)


def _subscriber(row: tuple[Any, ...]) -> Subscriber:
    return Subscriber(id=row[0], name=row[1], url=row[2], secret=row[3], events=tuple(row[4].split()),
                      created_at=row[5], removed_at=row[6])
