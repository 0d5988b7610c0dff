"""The webhook outbox: subscribers, their deliveries and the broker event cursor, in the gateway's state (a
SQLite file, or a PostgreSQL database shared by several gateways: web/state.py).

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

Several gateways on one shared state (two machines behind a load balancer, each running the
webhooks) enqueue each event once (the cursor is checked and moved under its row's lock) and send
each delivery once: a gateway *claims* the head of a subscriber's line before sending it, for
:data:`CLAIM_SECONDS`, and the others leave a claimed delivery alone. A gateway that dies while
sending leaves a claim that runs out; another then sends it again (at least once, as after any crash).
"""

from __future__ import annotations

import logging
import secrets
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from queuehall.web.state import (
    StateDB,
    open_state,
    webhook_cursor,
    webhook_deliveries,
    webhook_gaps,
    webhook_subscribers,
)
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

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
CLAIM_SECONDS = 30.0  # a delivery claimed by a gateway is left to it this long (an attempt's time-out is 10 s)

CURSOR = "broker"  # the cursor's row (one broker's journal per state: the gateway's first hall)
ANY: Any = object()  # enqueue without checking the cursor (tests, the CLI)
_subs, _dels, _cursor, _gaps = webhook_subscribers, webhook_deliveries, webhook_cursor, webhook_gaps


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
    claimed_by: str | None = None  # the gateway sending it now (Outbox.claim), until claimed_until
    claimed_until: float | None = None


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
    """The outbox in the gateway's state (web/state.py); every method is one short transaction, safe from any
    thread, and from several gateways on one shared database:

    * :meth:`enqueue` with ``after`` (what the feed does) writes only if the cursor is still ``after``, under a
      lock of the cursor's row, so two gateways following the same broker enqueue each event once;
    * :meth:`claim` takes a subscriber's head of line for one gateway until a deadline, so one gateway
      sends it and the others leave it (a claim of a gateway that died runs out, and another sends it)."""

    def __init__(self, path: str | Path | sqlite3.Connection | StateDB, clock: Any = time.time,
                 owner: str | None = None) -> None:
        self.db = open_state(path)
        self.clock = clock
        # This gateway in the claims it makes: the same after a restart (it takes back at once what it was
        # sending when it died); two gateways on one machine must be told apart (``queuehall web`` adds
        # its --name).
        self.owner = owner or socket.gethostname()

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------ subscribers

    def add_subscriber(self, url: str, events: Iterable[str] = (), *, name: str | None = None,
                       secret: str | None = None) -> Subscriber:
        """Add a subscriber; it gets the events enqueued from now on. A secret is made when none is given."""
        url = check_url(url)
        kinds = check_events(events)
        if secret is not None and len(secret) < 16:
            raise OutboxError("a webhook secret must have at least 16 characters")
        secret = secret or "whsec_" + secrets.token_urlsafe(32)
        with self.db.write() as conn:
            sid = conn.execute(_subs.insert().values(
                name=name or urlsplit(url).hostname or url, url=url, secret=secret, events=" ".join(kinds),
                created_at=_now_iso()).returning(_subs.c.id)).scalar_one()
        sub = self.subscriber(int(sid))
        assert sub is not None
        return sub

    _SUB = (_subs.c.id, _subs.c.name, _subs.c.url, _subs.c.secret, _subs.c.events, _subs.c.created_at,
            _subs.c.removed_at)

    def subscriber(self, sid: int) -> Subscriber | None:
        with self.db.read() as conn:
            row = conn.execute(select(*self._SUB).where(_subs.c.id == sid)).first()
        return _subscriber(tuple(row)) if row else None

    def subscribers(self, *, include_removed: bool = False) -> list[Subscriber]:
        with self.db.read() as conn:
            rows = conn.execute(select(*self._SUB).order_by(_subs.c.id)).all()
        return [s for s in (_subscriber(tuple(r)) for r in rows) if include_removed or s.removed_at is None]

    def remove_subscriber(self, ref: str) -> Subscriber:
        """Remove a subscriber by id or name; its undelivered deliveries are dropped with it."""
        live = self.subscribers()
        found = [s for s in live if str(s.id) == ref.strip()] or [s for s in live if s.name == ref.strip()]
        if not found:
            raise OutboxError(f"no subscriber {ref!r}")
        if len(found) > 1:
            raise OutboxError(f"{len(found)} subscribers are named {ref!r}; remove by id")
        sid = found[0].id
        with self.db.write() as conn:
            conn.execute(update(_subs).where(_subs.c.id == sid).values(removed_at=_now_iso()))
            conn.execute(delete(_dels).where(_dels.c.subscriber == sid, _dels.c.delivered_at.is_(None)))
        sub = self.subscriber(sid)
        assert sub is not None
        return sub

    def stats(self, sid: int) -> dict[str, Any]:
        """Pending and delivered counts of one subscriber, and its oldest pending delivery's trouble."""
        pending_q = func.count().filter(_dels.c.delivered_at.is_(None))
        delivered_q = func.count().filter(_dels.c.delivered_at.isnot(None))
        with self.db.read() as conn:
            pending, delivered = conn.execute(select(pending_q, delivered_q).where(_dels.c.subscriber == sid)).one()
            head = conn.execute(select(_dels.c.attempts, _dels.c.last_status, _dels.c.last_error, _dels.c.next_at)
                                .where(_dels.c.subscriber == sid, _dels.c.delivered_at.is_(None))
                                .order_by(_dels.c.seq).limit(1)).first()
        out: dict[str, Any] = {"pending": int(pending or 0), "delivered": int(delivered or 0)}
        if head is not None and head[0]:
            out["head"] = {"attempts": head[0], "last_status": head[1], "last_error": head[2],
                           "next_attempt": datetime.fromtimestamp(head[3], UTC).isoformat(timespec="seconds")}
        return out

    # ------------------------------------------------------------------ cursor, enqueue, gaps

    def cursor(self) -> int | None:
        """The last broker ``journal_seq`` enqueued (None before the gateway first met a broker)."""
        with self.db.read() as conn:
            value = conn.execute(select(_cursor.c.journal_seq).where(_cursor.c.name == CURSOR)).scalar()
        return None if value is None else int(value)

    def enqueue(self, events: list[dict[str, Any]], cursor: int | None = None,
                gap: tuple[int, int, str] | None = None, *, after: Any = ANY) -> int | None:
        """Write a delivery of each event for every subscriber that wants it, and move the cursor to
        ``cursor`` (default: the last event's ``journal_seq``), in one transaction. ``gap`` =
        (first, last, reason) records journal numbers that will never be delivered in the same
        transaction. Returns the number of deliveries written.

        ``after``: the cursor the caller's events follow (None: no cursor yet). When the cursor is no longer
        that — another gateway on the same state enqueued them meanwhile — nothing is written and None is
        returned (the caller reads the cursor again). The cursor's row is locked for the check."""
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
                    rows.append({"id": did, "subscriber": s.id, "journal_seq": jseq, "type": etype, "body": body,
                                 "created_at": now, "next_at": now})
        to = cursor if cursor is not None else (int(events[-1]["journal_seq"]) if events else None)
        try:
            with self.db.write() as conn:
                have = conn.execute(select(_cursor.c.journal_seq).where(_cursor.c.name == CURSOR)
                                    .with_for_update()).scalar()
                if after is not ANY and (None if have is None else int(have)) != after:
                    return None
                if rows:
                    conn.execute(_dels.insert(), rows)
                if gap is not None:
                    conn.execute(_gaps.insert().values(first_seq=gap[0], last_seq=gap[1], reason=gap[2],
                                                       detected_at=_now_iso()))
                if to is not None:
                    if have is None:  # a plain insert: two gateways making the first cursor at once clash
                        conn.execute(_cursor.insert().values(name=CURSOR, journal_seq=to))
                    else:
                        conn.execute(update(_cursor).where(_cursor.c.name == CURSOR).values(journal_seq=to))
        except IntegrityError:
            if after is ANY:
                raise
            return None  # another gateway made the cursor first
        return len(rows)

    def gaps(self) -> list[dict[str, Any]]:
        with self.db.read() as conn:
            rows = conn.execute(select(_gaps.c.first_seq, _gaps.c.last_seq, _gaps.c.reason, _gaps.c.detected_at)
                                .order_by(_gaps.c.id)).all()
        return [{"first_seq": r[0], "last_seq": r[1], "reason": r[2], "detected_at": r[3]} for r in rows]

    # ------------------------------------------------------------------ deliveries

    _DEL = (_dels.c.seq, _dels.c.id, _dels.c.subscriber, _dels.c.journal_seq, _dels.c.type, _dels.c.body,
            _dels.c.attempts, _dels.c.next_at)

    def next_pending(self, sid: int) -> Delivery | None:
        """The subscriber's oldest undelivered delivery (its head of line), or None."""
        with self.db.read() as conn:
            row = conn.execute(select(*self._DEL, _dels.c.claimed_by, _dels.c.claimed_until)
                               .where(_dels.c.subscriber == sid, _dels.c.delivered_at.is_(None))
                               .order_by(_dels.c.seq).limit(1)).first()
        if row is None:
            return None
        r = tuple(row)
        return Delivery(seq=r[0], id=r[1], subscriber=r[2], journal_seq=r[3], type=r[4], body=bytes(r[5]),
                        attempts=r[6], next_at=r[7], claimed_by=r[8], claimed_until=r[9])

    def claim(self, delivery_id: str, until: float) -> bool:
        """Take delivery ``delivery_id`` for this gateway until ``until`` (the clock's seconds): True when it is
        this gateway's to send now. False when it was delivered meanwhile, or another gateway holds a claim
        that has not run out (it is sending it). One conditional UPDATE: the database's row lock makes two
        gateways' claims of the same row one after the other, and the second sees the first's."""
        now = self.clock()
        free = or_(_dels.c.claimed_until.is_(None), _dels.c.claimed_until < now, _dels.c.claimed_by == self.owner)
        with self.db.write() as conn:
            done = conn.execute(update(_dels).where(_dels.c.id == delivery_id, _dels.c.delivered_at.is_(None), free)
                                .values(claimed_by=self.owner, claimed_until=until)).rowcount
        return bool(done)

    def mark_delivered(self, delivery_id: str, status: int) -> None:
        with self.db.write() as conn:
            conn.execute(update(_dels).where(_dels.c.id == delivery_id).values(
                delivered_at=self.clock(), attempts=_dels.c.attempts + 1, last_status=status, last_error=None,
                claimed_until=None))  # claimed_by stays: the gateway that delivered it

    def mark_failed(self, delivery_id: str, next_at: float, status: int | None, error: str) -> None:
        with self.db.write() as conn:
            conn.execute(update(_dels).where(_dels.c.id == delivery_id).values(
                attempts=_dels.c.attempts + 1, next_at=next_at, last_status=status, last_error=error[:500],
                claimed_by=None, claimed_until=None))

    def prune(self, keep_seconds: float = KEEP_DELIVERED_SECONDS) -> int:
        """Delete deliveries delivered more than ``keep_seconds`` ago; returns how many."""
        with self.db.write() as conn:
            n = conn.execute(delete(_dels).where(_dels.c.delivered_at.isnot(None),
                                                 _dels.c.delivered_at < self.clock() - keep_seconds)).rowcount
        return int(n or 0)


def _subscriber(row: tuple[Any, ...]) -> Subscriber:
    return Subscriber(id=row[0], name=row[1], url=row[2], secret=row[3], events=tuple(row[4].split()),
                      created_at=row[5], removed_at=row[6])
