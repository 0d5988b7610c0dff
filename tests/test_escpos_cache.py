"""python-escpos' capabilities pickle: processes that start printing at the same moment all succeed.

escpos.capabilities writes ``<ESCPOS_CAPABILITIES_PICKLE_DIR>/<python version>.capabilities.pickle`` in
place (``open(path, "wb")``, then a slow YAML load, then ``pickle.dump``): a second process that starts
meanwhile finds an empty or half-written pickle and fails with EOFError / UnpicklingError.
queuehall.kiosk.escpos_setup builds the pickle first, atomically (a temporary file renamed into place),
so escpos only ever reads a complete one.
"""

from __future__ import annotations

import os
import pickle
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Each child waits for the go file, so all of them import escpos at the same moment, then prints one
# ticket (text mode: no Qt needed) to a file printer in its own directory.
CHILD = r"""
import os, sys, time
from pathlib import Path
go = Path(sys.argv[1])
Path(sys.argv[2], "ready").touch()
while not go.exists():
    time.sleep(0.001)
from queuehall.kiosk.printing import PrinterConfig, TicketPrinter
from queuehall.kiosk.ticket import TicketContent
content = TicketContent(hall_name=("某某市政务服务中心", "City Service Center"), label="A0" + sys.argv[3],
                        service_name_zh="户籍办理", service_name_en="Household registration", ahead=0,
                        estimated_wait_minutes=0, issued_local="2026-12-07 09:00", qr_payload="x")
printer = TicketPrinter(PrinterConfig(backend="file", path=sys.argv[2], mode="text"))
Path(sys.argv[2], "ready").unlink()
print(printer.print_ticket(content))
"""

N_PROCESSES = 6


def start_printers(tmp_path: Path, pickle_dir: Path, n: int) -> list[tuple[int, str]]:
    """Start ``n`` printing processes sharing ``pickle_dir``, release them at once; (returncode, stderr) each."""
    go = tmp_path / "go"
    env = {**os.environ, "ESCPOS_CAPABILITIES_PICKLE_DIR": str(pickle_dir), "QT_QPA_PLATFORM": "offscreen"}
    procs = []
    for i in range(n):
        out = tmp_path / f"tickets-{i}"
        out.mkdir()
        procs.append(subprocess.Popen([sys.executable, "-c", CHILD, str(go), str(out), f"{i:02d}"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"tickets-{i}" / "ready").exists() for i in range(n)):  # all waiting at the line
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a child did not start"
        time.sleep(0.01)
    go.touch()
    results = []
    for p in procs:
        _, err = p.communicate(timeout=60)
        results.append((p.returncode, err))
    return results


def test_printing_processes_started_at_once_share_a_fresh_pickle_dir(tmp_path: Path) -> None:
    pickle_dir = tmp_path / "escpos"
    pickle_dir.mkdir()
    results = start_printers(tmp_path, pickle_dir, N_PROCESSES)
    failed = [err.strip().splitlines()[-1:] for rc, err in results if rc != 0]
    assert not failed, f"{len(failed)} of {N_PROCESSES} printing processes failed: {failed}"
    for i in range(N_PROCESSES):
        tickets = list((tmp_path / f"tickets-{i}").iterdir())
        assert len(tickets) == 1 and tickets[0].stat().st_size > 100
    # One complete pickle, and no temporary file left beside it.
    pickle_path = pickle_dir / f"{platform.python_version()}.capabilities.pickle"
    assert sorted(p.name for p in pickle_dir.iterdir()) == [pickle_path.name]
    with pickle_path.open("rb") as f:
        assert "profiles" in pickle.load(f)


def test_a_truncated_pickle_is_rebuilt(tmp_path: Path) -> None:
    """A pickle cut short (left by an older version writing in place, or a crash) is replaced, not read."""
    pickle_dir = tmp_path / "escpos"
    pickle_dir.mkdir()
    pickle_path = pickle_dir / f"{platform.python_version()}.capabilities.pickle"
    pickle_path.write_bytes(b"")
    results = start_printers(tmp_path, pickle_dir, 2)
    assert [rc for rc, _ in results] == [0, 0], [err[-400:] for _, err in results]
    with pickle_path.open("rb") as f:
        assert "profiles" in pickle.load(f)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX ownership check")
def test_a_default_dir_owned_by_someone_else_is_not_trusted(tmp_path: Path) -> None:
    """The default dir is per user; one that others may write to is not used (a pickle is code)."""
    from queuehall.kiosk import escpos_setup

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert not escpos_setup.private_dir_ok(shared)
    shared.chmod(0o700)
    assert escpos_setup.private_dir_ok(shared)
