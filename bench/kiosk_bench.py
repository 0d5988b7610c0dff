"""Kiosk benchmark; prints one JSON object (figures and the machine are recorded in docs/kiosk.md).

Two measurements:

* **tap → first byte** (target ≤ 150 ms): a real kiosk window (offscreen) with a real broker on
  loopback and a raster-mode *network* printer. The printer is a small TCP server on loopback that
  answers the ESC/POS status queries (``DLE EOT n``) like an idle Epson-compatible printer and
  notes the arrival time of the first ticket byte. The clock starts just before the simulated tap
  on "take a ticket" (``QTest.mouseClick``) and stops when that byte arrives, so it covers the
  printer status check, the ``take_ticket`` round trip, rendering the raster ticket and the first
  write. The last byte (after the cut) is reported too.
* **start-up** (target ≤ 2 s): ``python -m queuehall.kiosk.main --windowed`` in a fresh process, from spawning
  it to its log line "kiosk ready" (first hall state from the broker and first printer status in).

Usage::

    .venv/bin/python bench/kiosk_bench.py [--taps 20] [--starts 3] [--paper 80]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import benchlib  # noqa: E402  (bench/benchlib.py, beside this script)
from queuehall.broker.config import load_config  # noqa: E402
from queuehall.broker.server import Broker  # noqa: E402
from queuehall.broker.storage import load_hall, open_store  # noqa: E402
from queuehall.kiosk.model import KioskModel, KioskSettings, Screen  # noqa: E402

from queuehall.clock import ManualClock  # noqa: E402
from queuehall.demo import die_with_parent  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
TAP_TARGET_MS = 150
START_TARGET_MS = 2000


class FakeNetworkPrinter:
    """A raw-TCP (port 9100 style) ESC/POS printer on loopback that records when tickets arrive.

    Status queries ``DLE EOT 1/2/4`` get 0x12 (online, cover closed, paper present). Any other byte
    belongs to a ticket: the first one's arrival time is recorded, and ``GS V`` (the cut) ends it.
    """

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.first_byte: list[float] = []
        self.last_byte: list[float] = []
        self.sizes: list[int] = []
        self._in_ticket = False
        self._size = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="fake-printer", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed by stop()
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        buf = b""
        conn.settimeout(0.2)
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                now = time.perf_counter()
                buf += chunk
                buf = self._consume(buf, now, conn)

    def _consume(self, buf: bytes, now: float, conn: socket.socket) -> bytes:
        """Walk the stream command by command (raster data is skipped by its declared size, so bytes
        inside the image are never taken for commands); returns what is left for the next chunk."""
        i = 0
        while i < len(buf):
            b = buf[i]
            if b == 0x10:  # DLE EOT n: a status query, not ticket data
                if len(buf) - i < 3:
                    break
                conn.sendall(b"\x12")
                i += 3
                continue
            if b == 0x1D and len(buf) - i >= 2 and buf[i + 1] == ord("v"):  # GS v 0 m xL xH yL yH data
                if len(buf) - i < 8:
                    break
                width, height = buf[i + 4] | buf[i + 5] << 8, buf[i + 6] | buf[i + 7] << 8
                size = 8 + width * height
                if len(buf) - i < size:
                    break
                self._data(now, size)
                i += size
                continue
            if b == 0x1D and len(buf) - i >= 2 and buf[i + 1] == ord("V"):  # GS V m [n]: the cut
                if len(buf) - i < 3:
                    break
                size = 4 if buf[i + 2] in (65, 66) else 3
                if len(buf) - i < size:
                    break
                self._data(now, size)
                self._in_ticket = False
                self.last_byte.append(now)
                self.sizes.append(self._size)
                i += size
                continue
            if b == 0x1D and len(buf) - i < 2:
                break
            self._data(now, 1)
            i += 1
        return buf[i:]

    def _data(self, now: float, size: int) -> None:
        if not self._in_ticket:
            self._in_ticket = True
            self._size = 0
            self.first_byte.append(now)
        self._size += size

    def stop(self) -> None:
        self._stop.set()
        self.server.close()


class RemotePrinter:
    """The fake printer's arrival times, read from the helper process (``--serve``).

    The broker and the printer run in their own process, as they do in a hall, so they do not
    compete with the kiosk for its interpreter lock. ``time.perf_counter`` is CLOCK_MONOTONIC on
    Linux, the same clock in every process, so the helper's timestamps compare with ours.
    """

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        hello = json.loads(proc.stdout.readline())
        self.broker_port: int = hello["broker_port"]
        self.port: int = hello["printer_port"]
        self.first_byte: list[float] = []
        self.last_byte: list[float] = []
        self.sizes: list[int] = []
        threading.Thread(target=self._read, name="printer-times", daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            kind, *values = line.split()
            if kind == "first":
                self.first_byte.append(float(values[0]))
            elif kind == "last":
                self.sizes.append(int(values[1]))
                self.last_byte.append(float(values[0]))


def serve() -> int:
    """The helper process: a broker and the fake printer; one line per ticket event on stdout."""
    tmp = Path(tempfile.mkdtemp(prefix="kiosk-bench-"))
    clock = ManualClock(datetime(2026, 11, 24, 9, 0, tzinfo=TZ))  # a Tuesday morning: the hall is open
    store = open_store(f"sqlite:///{tmp}/hall.db")
    hall = load_hall(load_config(), clock, store)
    from queuehall.demo import free_port

    port = free_port()  # the broker binds P, P+1 and P+2
    broker = Broker(hall, host="127.0.0.1", port=port)
    broker.bind()
    thread = threading.Thread(target=broker.serve_forever, name="bench-broker", daemon=True)
    thread.start()
    printer = FakeNetworkPrinter()
    lock = threading.Lock()

    def report() -> None:
        sent_first = sent_last = 0
        while not printer._stop.is_set():
            with lock:
                while sent_first < len(printer.first_byte):
                    print("first", repr(printer.first_byte[sent_first]), flush=True)
                    sent_first += 1
                while sent_last < len(printer.last_byte):
                    print("last", repr(printer.last_byte[sent_last]), printer.sizes[sent_last], flush=True)
                    sent_last += 1
            time.sleep(0.001)

    print(json.dumps({"broker_port": port, "printer_port": printer.port}), flush=True)
    threading.Thread(target=report, daemon=True).start()
    try:
        sys.stdin.read()  # until the parent closes our stdin
    finally:
        printer.stop()
        broker.stop_event.set()
        thread.join(5)
        store.engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def machine() -> dict[str, Any]:
    """The machine the figures come from."""
    from PySide6 import __version__ as pyside

    return benchlib.machine(pyside6=pyside, qt_platform=os.environ.get("QT_QPA_PLATFORM", ""))


def summary(values: list[float]) -> dict[str, Any]:
    values = sorted(values)
    if not values:
        return {"n": 0}
    p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
    return {"n": len(values), "median": round(statistics.median(values), 1), "p90": round(p90, 1),
            "min": round(values[0], 1), "max": round(values[-1], 1)}


def wait(app: Any, cond: Any, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while not cond():
        if time.perf_counter() > deadline:
            raise TimeoutError("the kiosk did not get there in time")
        app.processEvents()
        time.sleep(0.0005)


def bench_taps(app: Any, endpoint: str, printer: RemotePrinter, taps: int, paper: int) -> dict[str, Any]:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from queuehall.kiosk.journal import KioskJournal
    from queuehall.kiosk.printing import PrinterConfig
    from queuehall.kiosk.window import KioskWindow, PrintService, warm_up_fonts

    from queuehall.qtlink import QtLink

    clock = ManualClock(datetime(2026, 11, 24, 9, 0, tzinfo=TZ))  # the kiosk's own clock (greeting, dates)
    # A journal on disk, as in a hall: its fsync before each take_ticket is on the way to the printer.
    journal = KioskJournal(Path(tempfile.mkdtemp(prefix="kiosk-bench-journal-")) / "kiosk.json", "bench-kiosk")
    link = QtLink(endpoint, role="kiosk", name="bench-kiosk", request_timeout=3.0, client_id=journal.client_id)
    config = PrinterConfig(backend="network", host="127.0.0.1", port=printer.port, mode="raster",
                           paper_mm=paper)
    settings = KioskSettings(return_ms=60_000, message_ms=60_000, idle_ms=600_000, status_ms=600_000)
    window = KioskWindow(link, PrintService(config), KioskModel(settings=settings, clock=clock.now),
                         broker_label=endpoint, journal=journal, name="bench-kiosk")
    window.resize(1920, 1080)
    window.show()
    warm_up_fonts()
    window.start()
    first: list[float] = []
    last: list[float] = []
    cpu: list[float] = []  # CPU the kiosk process used from tap to first byte (all its threads)
    marks: dict[str, float] = {}
    parts: dict[str, list[float]] = {k: [] for k in ("printer_check_ms", "take_ticket_ms", "encode_ms",
                                                      "send_ms")}
    window.phase_changed.connect(lambda phase: marks.__setitem__(phase, time.perf_counter()))

    def on_job(_job: int, kind: str, outcome: Any) -> None:
        if kind == "print" and hasattr(outcome, "encode_ms"):
            marks["encode_ms"], marks["send_ms"] = outcome.encode_ms, outcome.send_ms

    window.printer.done.connect(on_job)
    try:
        wait(app, lambda: window.model.screen == Screen.START)
        services = ["passport", "hk_macao", "document_pickup"]
        for n in range(taps + 1):  # the first ticket warms caches and is not counted
            window.model.select_department("exit_entry")
            window.redraw()
            tile = window.start_page.tiles[services[n % len(services)]]
            wait(app, tile.isVisible)
            QTest.mouseClick(tile, Qt.MouseButton.LeftButton)
            confirm = window.details_page.confirm
            wait(app, lambda b=confirm: window.model.screen == Screen.DETAILS and b.isVisible())
            before = len(printer.first_byte)
            done = len(printer.last_byte)
            t0 = time.perf_counter()
            c0 = time.process_time()
            QTest.mouseClick(window.details_page.confirm, Qt.MouseButton.LeftButton)
            wait(app, lambda b=before: len(printer.first_byte) > b)
            c1 = time.process_time()
            wait(app, lambda d=done: len(printer.last_byte) > d)
            wait(app, lambda: window.model.screen == Screen.CONFIRMATION)
            if n > 0:
                first.append((printer.first_byte[before] - t0) * 1000)
                last.append((printer.last_byte[done] - t0) * 1000)
                parts["printer_check_ms"].append((marks["requesting"] - t0) * 1000)
                parts["take_ticket_ms"].append((marks["printing"] - marks["requesting"]) * 1000)
                parts["encode_ms"].append(marks["encode_ms"])
                parts["send_ms"].append(marks["send_ms"])
                cpu.append((c1 - c0) * 1000)
            QTest.mouseClick(window.confirm_page.done, Qt.MouseButton.LeftButton)
            wait(app, lambda: window.model.screen == Screen.START)
    finally:
        window.shutdown()
        window.close()
    return {"tap_to_first_byte_ms": summary(first), "tap_to_last_byte_ms": summary(last),
            "breakdown_median_ms": {k: round(statistics.median(v), 1) for k, v in parts.items() if v},
            "process_cpu_ms_tap_to_first_byte": summary(cpu),
            "ticket_bytes_median": statistics.median(printer.sizes[1:]) if len(printer.sizes) > 1 else None,
            "paper_mm": paper, "mode": "raster", "printer": "network (loopback fake printer)"}


def bench_start(endpoint: str, printer_port: int, runs: int) -> dict[str, Any]:
    wall: list[float] = []
    reported: list[float] = []
    cpu: list[float] = []
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "queuehall.kiosk.main", "--windowed", "--broker", endpoint,
             "--printer", f"network:127.0.0.1:{printer_port}", "--name", "bench-start",
             "--state-dir", tempfile.mkdtemp(prefix="kiosk-bench-state-")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=die_with_parent())
        assert proc.stderr is not None
        try:
            for line in proc.stderr:
                m = re.search(r"kiosk ready in (\d+) ms", line)
                if m:
                    wall.append((time.perf_counter() - t0) * 1000)
                    reported.append(float(m.group(1)))
                    cpu.append(_cpu_ms(proc.pid))
                    break
            else:
                raise RuntimeError("the kiosk exited before it was ready")
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"spawn_to_ready_ms": summary(wall), "ready_after_module_import_ms": summary(reported),
            "cpu_ms_until_ready": summary(cpu), "runs": runs}


def _cpu_ms(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc), in ms: shows how much of a slow
    start-up was work and how much was waiting for a busy machine."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--taps", type=int, default=20)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--paper", type=int, choices=[58, 80], default=80)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the helper process
    args = parser.parse_args()
    if args.serve:
        return serve()
    from PySide6.QtWidgets import QApplication

    info = machine()
    app = QApplication.instance() or QApplication([])
    helper = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT, preexec_fn=die_with_parent())
    try:
        printer = RemotePrinter(helper)
        endpoint = f"127.0.0.1:{printer.broker_port}"
        taps = bench_taps(app, endpoint, printer, args.taps, args.paper)
        start = bench_start(endpoint, printer.port, args.starts)
    finally:
        assert helper.stdin is not None
        helper.stdin.close()
        helper.wait(15)
    result = {
        "machine": info,
        "tap": {**taps, "target_ms": TAP_TARGET_MS,
                "meets_target": taps["tap_to_first_byte_ms"].get("median", 1e9) <= TAP_TARGET_MS},
        "startup": {**start, "target_ms": START_TARGET_MS,
                    "meets_target": start["spawn_to_ready_ms"].get("median", 1e9) <= START_TARGET_MS},
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
