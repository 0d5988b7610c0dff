"""The kiosk's journal on disk: its stable client id and the ticket requests not yet settled.

A kiosk that stops (crash, power cut, restart) between asking the broker for a number and printing
it must not leave a number waiting in the queue that nobody holds and no member of staff knows of.
So before each step the kiosk writes down what it is about to do, in one small JSON file:

* ``client``: the kiosk's client id, the same across restarts. The broker remembers each accepted
  request by (client, request id), so a ``take_ticket`` sent again after a restart with the
  journalled request id gets the original reply instead of a second number.
* ``pending``: request id -> entry, with ``stage`` one of

  - ``requested``: ``take_ticket`` sent (``service``, ``priority``), reply not known;
  - ``issued``: the number was issued (``ticket``, ``ahead``, ``wait_minutes``, ``fields`` to print),
    not yet printed;
  - ``fault``: printing failed (``ticket``, ``code``) and the broker has not yet confirmed the
    printer-fault alert;
  - ``orphan``: issued while the broker's reply was lost, and the citizen was told no number was
    issued: to be voided (``ticket``).

  An entry is removed once settled: printed, refused, alert confirmed, or voided.

Every write is atomic (a temporary file in the same directory, flushed to disk, then renamed over
the old one), so a power cut leaves the old journal or the new one, never half of one. A journal that
cannot be read (corrupt, or from a future version) is set aside as ``<name>.bad-<time>`` and logged,
and the kiosk starts with a new one: it must still start. Nothing here imports Qt or zmq; nothing
POSIX-only runs at import (kiosks run on Windows too).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger("queuehall.kiosk")

VERSION = 1
STAGES = ("requested", "issued", "fault", "orphan")


def default_state_dir() -> Path:
    """Where a kiosk keeps its journal when no ``--state-dir`` is given: ``%LOCALAPPDATA%\\queuehall`` on
    Windows, else ``$XDG_STATE_HOME/queuehall`` (``~/.local/state/queuehall``)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "queuehall"
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "queuehall"


def journal_path(state_dir: Path, name: str) -> Path:
    """The journal file of the kiosk called ``name`` in ``state_dir`` (one file per kiosk name)."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in name) or "kiosk"
    return state_dir / f"kiosk-{safe}.json"


class KioskJournal:
    """The journal file (``path``), or memory only when ``path`` is None (tests, demos).

    ``client_id`` is read from the file, or made once (``<name>-<random>``) and written at once
    (``client_id`` given: used when the file has none).
    ``pending`` maps request ids to entries (see the module docstring); change it only through
    :meth:`put` and :meth:`drop`, which write the file before returning.
    """

    def __init__(self, path: Path | None, name: str = "kiosk", *, client_id: str | None = None) -> None:
        self.path = path
        self.pending: dict[str, dict[str, Any]] = {}
        self.client_id = client_id or ""
        if path is not None:
            self._load(path)
        if not self.client_id:
            prefix = "".join(ch for ch in name if ch.isascii() and (ch.isalnum() or ch in "-_"))[:40] or "kiosk"
            self.client_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
        if path is not None and not path.exists():
            self.save()  # the client id, before it is ever used

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            self._set_aside(path, f"unreadable ({err})")
            return
        ok = (isinstance(data, dict) and data.get("version") == VERSION and isinstance(data.get("client"), str)
              and isinstance(data.get("pending"), dict)
              and all(isinstance(e, dict) and e.get("stage") in STAGES for e in data["pending"].values()))
        if not ok:
            self._set_aside(path, "not a kiosk journal of this version")
            return
        self.client_id = data["client"][:48]
        self.pending = {str(k): v for k, v in data["pending"].items()}
        if self.pending:
            log.warning("journal %s: %d ticket request(s) unsettled at the last stop; settling them", path,
                        len(self.pending))

    def _set_aside(self, path: Path, why: str) -> None:
        aside = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%dT%H%M%S')}")
        with contextlib.suppress(OSError):
            path.replace(aside)
        log.error("journal %s is %s: kept as %s, starting a new one (staff: check the queue for unprinted "
                  "numbers of this kiosk)", path, why, aside)

    def put(self, rid: str, entry: dict[str, Any]) -> None:
        """Record (or replace) the entry of request ``rid`` and write the journal."""
        assert entry.get("stage") in STAGES, entry
        self.pending[rid] = entry
        self.save()

    def drop(self, rid: str) -> None:
        """Forget the settled request ``rid`` and write the journal (nothing if it was not there)."""
        if self.pending.pop(rid, None) is not None:
            self.save()

    def save(self) -> None:
        """Write the journal atomically. A journal that cannot be written is logged, not raised: the
        kiosk keeps serving (the broker still knows every number; only a crash now would lose track)."""
        if self.path is None:
            return
        data = json.dumps({"version": VERSION, "client": self.client_id, "pending": self.pending},
                          ensure_ascii=False, sort_keys=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as err:
            log.error("cannot write the kiosk journal %s: %s", self.path, err)
