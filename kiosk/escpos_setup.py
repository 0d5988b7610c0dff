"""Get python-escpos' capabilities pickle ready before ``escpos.capabilities`` is imported.

python-escpos 3.1 caches its printer database (``capabilities.json``, parsed as YAML) as
``<ESCPOS_CAPABILITIES_PICKLE_DIR>/<python version>.capabilities.pickle``. It writes that file in
place (``open(path, "wb")``, then the slow parse, then ``pickle.dump``), so a second process that
starts meanwhile reads an empty or half-written pickle and dies with EOFError: two kiosks, or the
demo's processes, starting together. Without the variable it uses a fresh ``mkdtemp()`` per process
and leaves it behind in the temp folder; and it calls ``mkdtemp()`` for the default even when the
variable is set.

:func:`prepare_escpos` (called by :mod:`queuehall.kiosk.printing` before it imports escpos):

* sets ``ESCPOS_CAPABILITIES_PICKLE_DIR``, if unset, to a per-user folder in the temp folder
  (``queuehall-escpos-<uid>`` on POSIX; the per-user temp folder itself on Windows). A pickle is
  code, so a folder that someone else owns or may write to is not used: then a private
  ``mkdtemp()`` folder of this process is;
* builds the pickle there if it is missing, older than the database or unreadable, writing a
  temporary file and renaming it into place (atomic), so escpos only ever finds a complete, fresh
  pickle and never writes its own;
* imports ``escpos.capabilities`` while ``tempfile.mkdtemp`` answers with the pickle folder, so
  escpos' eager ``mkdtemp()`` leaves no empty folder behind.

Only portable calls: the kiosk runs on Windows too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pickle
import platform
import stat
import sys
import tempfile
from pathlib import Path

ENV = "ESCPOS_CAPABILITIES_PICKLE_DIR"


def default_dir() -> Path:
    """The per-user folder for the pickle (not created)."""
    getuid = getattr(os, "getuid", None)  # absent on Windows, where the temp folder is per user already
    suffix = f"-{getuid()}" if getuid is not None else ""
    return Path(tempfile.gettempdir()) / f"queuehall-escpos{suffix}"


def private_dir_ok(path: Path) -> bool:
    """Whether ``path`` is a real folder that only this user can write to (always True without POSIX owners)."""
    getuid = getattr(os, "getuid", None)
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    if getuid is None:
        return True
    return st.st_uid == getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def pickle_path(directory: Path) -> Path:
    """Where escpos looks for its pickle in ``directory`` (its own naming)."""
    return directory / f"{platform.python_version()}.capabilities.pickle"


def capabilities_file() -> Path | None:
    """escpos' printer database, as escpos.capabilities finds it; None when escpos is not installed."""
    if os.environ.get("ESCPOS_CAPABILITIES_FILE"):
        return Path(os.environ["ESCPOS_CAPABILITIES_FILE"])
    spec = importlib.util.find_spec("escpos")  # finds the package without importing it
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / "capabilities.json"


def _pickle_is_good(path: Path, source: Path) -> bool:
    try:
        if path.stat().st_mtime < source.stat().st_mtime:
            return False  # escpos would rebuild it in place
        with path.open("rb") as f:
            return isinstance(pickle.load(f), dict)
    except Exception:
        return False


def build_pickle(directory: Path) -> bool:
    """Make sure ``directory`` holds a complete, fresh capabilities pickle; False if it cannot be written."""
    source = capabilities_file()
    if source is None or not source.exists():
        return False
    target = pickle_path(directory)
    if _pickle_is_good(target, source):
        return True
    import yaml  # escpos' own dependency; it parses the database the same way

    with source.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not data:
        return False  # a broken escpos install: let escpos report it in its own way
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=directory)
    except OSError:
        return False  # a folder we may not write to: escpos will read what is there
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(data, f, protocol=2)  # escpos' protocol
        os.replace(tmp, target)  # readers see the old file or the whole new one, never a part
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True


def prepare_escpos() -> Path:
    """Set up the pickle folder and a complete pickle, then import escpos.capabilities; return the folder."""
    if os.environ.get(ENV):
        directory = Path(os.environ[ENV])
    else:
        directory = default_dir()
        with contextlib.suppress(OSError):
            directory.mkdir(mode=0o700)
        if not private_dir_ok(directory):
            directory = Path(tempfile.mkdtemp(prefix="queuehall-escpos-"))
        os.environ[ENV] = str(directory)
    if "escpos.capabilities" in sys.modules:
        return directory  # too late to matter: escpos has read its pickle already
    build_pickle(directory)
    real_mkdtemp = tempfile.mkdtemp
    # escpos evaluates ``environ.get(ENV, mkdtemp())``: its default folder is made even when the variable
    # is set. During the import, mkdtemp answers with the pickle folder, so no empty folder is left behind.
    tempfile.mkdtemp = lambda *_a, **_k: str(directory)  # type: ignore[assignment]
    try:
        import escpos.capabilities  # noqa: F401  (imported for its side effect)
    except ImportError:
        pass  # escpos not installed: printing says so itself
    finally:
        tempfile.mkdtemp = real_mkdtemp
    return directory
