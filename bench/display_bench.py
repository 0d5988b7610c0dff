"""Benchmark of the wall display; prints one JSON object.

A real broker runs as a child process (``queuehall broker --insecure`` on loopback, a fresh
SQLite file, a simulated clock on an open Tuesday morning), so the figures and the memory are
the display's own. This process is the display: a 1920x1080 hall screen (offscreen Qt), the
real :class:`~voice.qt_audio.QtAudioSink` (QMediaPlayer), a :class:`~queuehall.qtlink.QtLink`.
A worker thread plays the clerks: for each call it notes the time, sends ``call_next`` and
waits until the display reports both events below, then stops the announcement so the next
call does not queue behind it.

* **call -> screen**: from just before ``call_next`` is sent until the now-calling panel has
  painted that ticket (includes the broker's command and database commit, the publication,
  the link thread, the model and the paint). Target <= 50 ms.
* **call -> audio**: until QMediaPlayer reports PlayingState for the announcement (the WAV is
  rendered and handed to the player first). Target <= 300 ms. ``audio_play_called_ms`` is
  the time until ``QtAudioSink.play`` was called.
* **memory**: the display process's RSS (``VmRSS``) and peak (``VmHWM``) after the run.
  Target <= 250 MB.

Without a sound card or audio server QMediaPlayer still plays in real time (``audio_device``
says which); docs/display.md records the figures with the machine.

Usage::

    .venv/bin/python bench/display_bench.py [--calls N] [--size WxH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from queuehall.broker.config import load_config  # noqa: E402
from queuehall.broker.storage import open_store  # noqa: E402
from queuehall.display.model import DisplayOptions, parse_size  # noqa: E402
from queuehall.display.window import DisplayWindow, HallScreen, apply_app_font  # noqa: E402
from queuehall.voice.qt_audio import QtAudioSink  # noqa: E402

from queuehall.client import BrokerClient  # noqa: E402
from queuehall.demo import die_with_parent, free_port  # noqa: E402
from queuehall.protocol import parse_time  # noqa: E402
from queuehall.qtlink import QtLink  # noqa: E402
from queuehall.simulation import DEMO_PINS, install_demo_pins  # noqa: E402

COUNTERS = (1, 2, 3, 4, 5, 7, 8, 9)
# Far quicker than any clerk, but enough for the previous call's clean-up (its announcement cut short,
# start and finish repainting the counters) to be over, so each figure is one call's own latency.
GAP_SECONDS = 0.5


def start_broker(tmp: Path) -> tuple[subprocess.Popen[str], str]:
    """``queuehall broker`` in a child process; returns it and its HOST:PORT once it is ready."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "queuehall.cli",
        "broker",
        "--insecure",
        "--port",
        str(port),
        "--db",
        f"sqlite:///{tmp / 'hall.db'}",
        "--sim-start",
        "2026-11-24T09:00",
    ]
    store = open_store(f"sqlite:///{tmp / 'hall.db'}")  # the clerks' PINs, as `queuehall clerks set-pin` sets them
    install_demo_pins(store, load_config())
    store.close()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=die_with_parent())
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    for line in proc.stdout:
        if "ready on" in line:
            break
        if time.monotonic() > deadline:
            break
    else:
        raise RuntimeError(f"broker did not start (exit {proc.poll()})")
    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    return proc, f"127.0.0.1:{port}"


def memory_mb() -> dict[str, float]:
    """VmRSS and VmHWM of this process in MB (Linux)."""
    out: dict[str, float] = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def ms(seconds: list[float]) -> dict[str, float] | None:
    """Median, 95th percentile and maximum of ``seconds``, in ms (None when empty)."""
    if not seconds:
        return None
    ordered = sorted(x * 1000 for x in seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "median": round(statistics.median(ordered), 1),
        "p95": round(p95, 1),
        "max": round(ordered[-1], 1),
    }


def main() -> int:
    """Run the benchmark and print its JSON; returns 0 (1 if a call never reached the screen)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=30, help="calls to measure (default 30)")
    ap.add_argument("--size", default="1920x1080", help="screen size WxH (default 1920x1080)")
    args = ap.parse_args()
    size = parse_size(args.size)
    config = load_config()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    apply_app_font(app)

    with tempfile.TemporaryDirectory(prefix="queuehall-display-bench-") as tmp:
        proc, endpoint = start_broker(Path(tmp))
        try:
            result = run(app, endpoint, config, args.calls, size)
        finally:
            proc.terminate()
            proc.wait(10)
    result["machine"] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "qt_platform": os.environ.get("QT_QPA_PLATFORM"),
    }
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if result["calls_measured"] == args.calls else 1


def run(app: QApplication, endpoint: str, config: Any, calls: int, size: tuple[int, int]) -> dict[str, Any]:
    """Drive ``calls`` calls through the broker and measure the display; returns the figures."""
    link = QtLink(endpoint, role="display", name="bench-wall")
    sink = QtAudioSink()
    window = DisplayWindow(link, DisplayOptions(min_display_seconds=0), sink=sink)
    window.resize(*size)
    window.show()
    window.start()
    screen = window.screen_widget
    assert isinstance(screen, HallScreen)

    # Wall-clock times (time.time(): comparable with the broker's publication time) by ticket label,
    # written on the GUI thread, read by the clerks' thread.
    published: dict[str, float] = {}
    painted: dict[str, float] = {}
    play_called: dict[str, float] = {}
    started: dict[str, float] = {}
    playing: dict[str, str] = {}

    def on_event(msg: dict[str, Any]) -> None:
        ev = msg.get("event") or {}
        if ev.get("type") == "ticket_called":
            at = parse_time(msg["time"])
            if at is not None:
                published.setdefault(ev["ticket"]["label"], at.timestamp())

    link.event.connect(on_event)
    now_paint = screen.now.paint

    def timed_paint(p: Any, r: Any) -> None:
        now_paint(p, r)
        call = screen.now.call
        if call is not None and call.label not in painted:
            painted[call.label] = time.time()

    screen.now.paint = timed_paint  # type: ignore[method-assign]
    sink_play = sink.play

    def timed_play(wav: bytes, on_finished: Any) -> None:
        current = window.model.current
        if current is not None:
            playing["label"] = current.label
            play_called.setdefault(current.label, time.time())
        sink_play(wav, on_finished)

    sink.play = timed_play  # type: ignore[method-assign]

    def on_started() -> None:
        label = playing.get("label")
        if label and label not in started:
            started[label] = time.time()
            # Cut the announcement short (as the operator's mute would): the next call must not queue.
            window.model.set_muted(True)
            window.model.set_muted(False)

    sink.playback_started.connect(on_started)
    rows: list[dict[str, float]] = []
    failures: list[str] = []

    def clerks() -> None:
        client = BrokerClient(endpoint, timeout=5.0)
        try:
            for n in COUNTERS:
                cfg = next(c for c in config.counters if c.number == n)
                client.request("sign_in", counter=n, clerk=cfg.clerk_a, pin=DEMO_PINS[cfg.clerk_a])
            for i in range(calls):  # one ticket for each call, of a service its counter serves first
                cfg = next(c for c in config.counters if c.number == COUNTERS[i % len(COUNTERS)])
                client.request("take_ticket", service=cfg.services[0])
            deadline = time.monotonic() + 10
            while window.model.connection().state != "online" and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)  # let the display settle after the burst of set-up events
            for i in range(calls):
                n = COUNTERS[i % len(COUNTERS)]
                t0 = time.time()
                try:
                    label = client.request("call_next", counter=n)["ticket"]["label"]
                except Exception as err:  # reported in the JSON, not fatal
                    failures.append(f"call_next {n}: {err}")
                    continue
                replied = time.time()
                deadline = time.monotonic() + 10
                while not {label} <= (painted.keys() & started.keys() & published.keys()):
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.002)
                if label in painted and label in started and label in published:
                    rows.append(
                        {
                            "reply": replied - t0,
                            "cmd_screen": painted[label] - t0,
                            "cmd_play": play_called[label] - t0,
                            "cmd_audio": started[label] - t0,
                            "ev_screen": painted[label] - published[label],
                            "ev_audio": started[label] - published[label],
                        }
                    )
                else:
                    failures.append(f"call {i}: {label} not shown and played within 10 s")
                client.request("start", counter=n)
                client.request("finish", counter=n)
                time.sleep(GAP_SECONDS)
        finally:
            client.close()

    worker = threading.Thread(target=clerks, daemon=True)
    worker.start()
    stopper = QTimer()
    stopper.timeout.connect(lambda: app.quit() if not worker.is_alive() else None)
    stopper.start(50)
    app.exec()
    worker.join()
    mem = memory_mb()
    window.stop()
    return {
        "benchmark": "display",
        "screen": f"{size[0]}x{size[1]}",
        "calls_measured": len(rows),
        "seconds_between_calls": GAP_SECONDS,
        "event_to_screen_ms": ms([r["ev_screen"] for r in rows]),
        "event_to_audio_started_ms": ms([r["ev_audio"] for r in rows]),
        "command_to_reply_ms": ms([r["reply"] for r in rows]),
        "command_to_screen_ms": ms([r["cmd_screen"] for r in rows]),
        "command_to_audio_play_called_ms": ms([r["cmd_play"] for r in rows]),
        "command_to_audio_started_ms": ms([r["cmd_audio"] for r in rows]),
        "rss_mb": mem.get("VmRSS"),
        "peak_rss_mb": mem.get("VmHWM"),
        "audio_device": sink.has_device,
        "targets": {"event_to_screen_ms": 50, "event_to_audio_started_ms": 300, "rss_mb": 250},
        "failures": failures,
    }


if __name__ == "__main__":
    raise SystemExit(main())
