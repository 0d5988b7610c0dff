"""Which of a hall's brokers serves it: a lease row in PostgreSQL, with fencing (docs/standby.md).

Two (or more) broker processes for one hall, on two machines, share the hall's PostgreSQL database;
each runs with ``--standby``. Exactly one serves at a time: the one holding the hall's row in
``broker_lease``. The rules, all decided by PostgreSQL itself:

* **Taking the lease** is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expires_at <= clock_timestamp()``:
  it succeeds only when nobody holds the row or its lease has run out, *by the database's clock*
  (the brokers' own clocks never count). Each takeover adds one to ``epoch``, the fencing token.
* **Renewing**: the serving broker moves ``expires_at`` on every :data:`RENEW_SECONDS`, naming its
  epoch; a renewal that finds another epoch means the lease was taken: the broker stops serving.
* **Fencing**: every journal transaction of the serving broker starts with
  ``SELECT ... FROM broker_lease WHERE hall AND holder AND epoch FOR SHARE`` (:meth:`Lease.fence`).
  The row lock orders it against a takeover (whose update needs the row exclusively): either the
  write commits before the takeover, and the new broker, which loads the hall only after taking the
  lease, sees it; or the takeover came first, the check finds no row, and nothing is written
  (:class:`LeaseLost`). A paused old primary (SIGSTOP, then SIGCONT) can therefore never commit.
* **A broker stopped inside a transaction** would keep its ``FOR SHARE`` lock and block the takeover
  for ever: the journal's connection runs with ``idle_in_transaction_session_timeout``
  (:data:`IDLE_IN_TRANSACTION_MS`), so PostgreSQL ends such a session and frees its locks; the lease's
  own statements wait at most :data:`LOCK_TIMEOUT_MS` for a lock and are simply tried again.
* **Locally** a broker counts its lease from the moment it *sent* the renewal, on its monotonic clock,
  and trusts only :data:`LOCAL_SHARE` of it (:meth:`Lease.valid`): a broker that was paused notices on
  waking, before it answers anything from memory, and asks the database.

Pure SQL on a SQLAlchemy engine: no ZeroMQ here (the broker's loop is in broker/server.py).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text

log = logging.getLogger("queuehall.lease")

LEASE_SECONDS = 2.0  # how long a lease runs after its last renewal, on the database's clock
RENEW_SECONDS = 0.5  # the serving broker renews this often (a quarter of the lease)
TRY_SECONDS = 0.25  # a standby tries to take an expired lease this often
LOCAL_SHARE = 0.8  # the part of the lease a broker trusts on its own clock (from when it asked)
LOCK_TIMEOUT_MS = 500  # the lease's statements wait this long for a row lock, then try again later
STATEMENT_TIMEOUT_MS = 2000  # ... and this long for any answer
IDLE_IN_TRANSACTION_MS = 1000  # a journal connection idle inside a transaction this long is ended by PostgreSQL
WRITER_LOCK_TIMEOUT_MS = 2000  # a journal transaction waits this long for a row lock (then STORAGE)

_ACQUIRE = text("""
INSERT INTO broker_lease (hall, holder, epoch, expires_at, acquired_at)
VALUES (:hall, :holder, 1, clock_timestamp() + make_interval(secs => :secs), clock_timestamp())
ON CONFLICT (hall) DO UPDATE SET holder = EXCLUDED.holder, epoch = broker_lease.epoch + 1,
    expires_at = clock_timestamp() + make_interval(secs => :secs), acquired_at = clock_timestamp()
WHERE broker_lease.expires_at <= clock_timestamp()
RETURNING epoch
""")
_RENEW = text("""
UPDATE broker_lease SET expires_at = clock_timestamp() + make_interval(secs => :secs)
WHERE hall = :hall AND holder = :holder AND epoch = :epoch RETURNING epoch
""")
_RELEASE = text("""
UPDATE broker_lease SET expires_at = clock_timestamp() - interval '1 second'
WHERE hall = :hall AND holder = :holder AND epoch = :epoch
""")
_HOLDER = text("""
SELECT holder, epoch, expires_at > clock_timestamp() AS live,
       EXTRACT(EPOCH FROM expires_at - clock_timestamp()) AS left_s
FROM broker_lease WHERE hall = :hall
""")
_FENCE = "SELECT epoch FROM broker_lease WHERE hall = %s AND holder = %s AND epoch = %s FOR SHARE"


class LeaseLost(Exception):
    """This broker no longer holds the hall's lease (another took it over): nothing was written."""


def default_holder(port: int) -> str:
    """A name unique to this broker process: host, port, process id and a random part (a restarted
    broker is a new holder and must take the lease like any other)."""
    return f"{socket.gethostname()[:60]}:{port}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class Lease:
    """One broker's claim on serving ``hall`` (the lease row's key) through ``engine`` (PostgreSQL).

    ``monotonic`` is the local clock :meth:`valid` counts on (injected by tests)."""

    def __init__(self, engine: Engine, hall: str, *, holder: str, seconds: float = LEASE_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("a lease needs PostgreSQL")
        self.engine = engine
        self.hall = hall[:64]
        self.holder = holder[:128]
        self.seconds = seconds
        self.monotonic = monotonic
        self.epoch: int | None = None  # the fencing token while this broker holds the lease
        self.valid_until = 0.0  # on ``monotonic``
        self._conn: Any = None

    # -- the lease's own connection (autocommit: each statement is its own short transaction)

    def _run(self, stmt: Any, **params: Any) -> Any:
        """Run one statement; its first row (or None). Raises SQLAlchemyError when the database fails
        (the connection is then dropped and opened again next time)."""
        try:
            if self._conn is None:
                conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql(f"SET lock_timeout = {LOCK_TIMEOUT_MS}")
                conn.exec_driver_sql(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
                self._conn = conn
            return self._conn.execute(stmt, {"hall": self.hall, "holder": self.holder, **params}).first()
        except Exception:
            self._drop()
            raise

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # already broken: nothing to release
                pass
            self._conn = None

    # -- the lease

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it or it has run out by the database's clock (True), else False
        (also when the database does not answer, or the row is locked by a writer for now)."""
        asked = self.monotonic()
        try:
            row = self._run(_ACQUIRE, secs=self.seconds)
        except Exception as exc:
            log.debug("could not take the lease: %s", exc)
            return False
        if row is None:
            return False
        self.epoch = int(row[0])
        self.valid_until = asked + self.seconds * LOCAL_SHARE
        log.warning("took the lease of hall %s (epoch %d) as %s", self.hall, self.epoch, self.holder)
        return True

    def renew(self) -> bool | None:
        """Extend the lease: True if it is still this broker's, False if another took it over (the
        broker must stop serving at once), None if the database did not answer (still ours until
        :meth:`valid` says otherwise)."""
        if self.epoch is None:
            return False
        asked = self.monotonic()
        try:
            row = self._run(_RENEW, secs=self.seconds, epoch=self.epoch)
        except Exception as exc:
            log.warning("could not renew the lease: %s", exc)
            return None
        if row is None:
            log.critical("the lease of hall %s (epoch %d) was taken over by another broker", self.hall, self.epoch)
            self.epoch = None
            self.valid_until = 0.0
            return False
        self.valid_until = asked + self.seconds * LOCAL_SHARE
        return True

    def valid(self) -> bool:
        """Whether this broker may still act on its lease without asking the database (see module)."""
        return self.epoch is not None and self.monotonic() < self.valid_until

    def release(self) -> None:
        """Give the lease up at once (a clean stop), so a standby need not wait for it to run out."""
        if self.epoch is None:
            return
        try:
            self._run(_RELEASE, epoch=self.epoch)
            log.info("released the lease of hall %s (epoch %d)", self.hall, self.epoch)
        except Exception as exc:  # it runs out by itself
            log.warning("could not release the lease: %s", exc)
        self.epoch = None
        self.valid_until = 0.0

    def lose(self) -> None:
        """Forget the lease (it was found taken over, or a write was fenced off)."""
        self.epoch = None
        self.valid_until = 0.0

    def holder_now(self) -> dict[str, Any] | None:
        """Who holds the lease by the database: ``{"holder", "epoch", "live", "seconds_left"}`` or None."""
        row = self._run(_HOLDER)
        if row is None:
            return None
        return {"holder": row[0], "epoch": int(row[1]), "live": bool(row[2]), "seconds_left": float(row[3])}

    def close(self) -> None:
        self._drop()

    # -- hooks into the journal (Store.on_writer, Store.fence)

    def prepare_writer(self, raw: Any) -> None:
        """A new journal connection: PostgreSQL ends it if it stays idle inside a transaction (a broker
        stopped mid-commit must not hold its locks, the lease row's among them, for ever)."""
        cursor = raw.cursor()
        try:
            cursor.execute(f"SET idle_in_transaction_session_timeout = {IDLE_IN_TRANSACTION_MS}")
            cursor.execute(f"SET lock_timeout = {WRITER_LOCK_TIMEOUT_MS}")
        finally:
            cursor.close()
        raw.commit()

    def fence(self, cursor: Any) -> None:
        """First statement of every journal transaction: lock the lease row (shared) if it still names this
        broker's epoch; raise :class:`LeaseLost` if it does not (the caller rolls back)."""
        if self.epoch is None:
            raise LeaseLost(f"hall {self.hall}: this broker does not hold the lease")
        cursor.execute(_FENCE, (self.hall, self.holder, self.epoch))
        if cursor.fetchone() is None:
            epoch, self.epoch, self.valid_until = self.epoch, None, 0.0
            raise LeaseLost(f"hall {self.hall}: the lease (epoch {epoch}) was taken over by another broker")
