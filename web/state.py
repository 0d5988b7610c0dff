"""The gateway's own state file: one SQLite database (WAL) for API tokens, webhook subscribers and
the webhook outbox.

It is not the hall's database: the broker owns the hall; this file holds only what the gateway
itself must remember across restarts. It holds webhook secrets (which must be readable to sign
with), so it is created readable by its owner only.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

ENV_STATE = "QUEUEHALL_WEB_STATE"
DEFAULT_STATE = "web-state.db"


def state_path(value: str | os.PathLike[str] | None) -> Path:
    """``--state PATH``, else ``$QUEUEHALL_WEB_STATE``, else ``web-state.db`` in the current directory."""
    return Path(value or os.environ.get(ENV_STATE) or DEFAULT_STATE)


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open (creating it owner-only if needed) the state file in WAL mode with full fsync.

    ``synchronous=FULL``: a transaction that returned is on disk, so what the gateway
    acknowledged (a delivery enqueued, the event cursor moved) survives ``kill -9`` and power loss.
    ``isolation_level=None``: transactions are explicit (``BEGIN IMMEDIATE`` … ``COMMIT``).
    """
    p = Path(path)
    if not p.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    conn = sqlite3.connect(str(p), isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn
