"""The interactive demo (``queuehall demo`` on a desktop) under a real X server, as a newcomer runs it.

Xvfb (Debian's ``xvfb``) is started on a free display number (``-displayfd``), with no window manager.
The demo runs with ``DISPLAY`` set and ``QT_QPA_PLATFORM=xcb``: the broker, the kiosk, two counters
and the hall display as separate processes. The tests check that every window appears (``xwininfo``),
take a ticket and call it through the demo's broker with the demo's admin key, save a screenshot of
the X screen (tests/artifacts/demo-x11.png), and end the demo with SIGTERM, with Ctrl-C (SIGINT to its
process group, as a terminal sends it), with SIGKILL (the children die with it), and by a child that
fails to start (a bad printer, a port in use). In every case no child process may be left: checked by
the pids the demo reports and by scanning /proc for any process whose command line names the demo's
data folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from queuehall.simulation import DEMO_PINS

ROOT = Path(__file__).resolve().parent.parent
SCREEN = (2800, 1700)
TITLES = ("queuehall kiosk", "queuehall · 1号窗口 / counter 1", "queuehall · 11号窗口 / counter 11",
          "queuehall · 大厅叫号屏 / hall display")
# Where each window goes on the screen (no window manager places them): all four side by side.
LAYOUT = {TITLES[0]: (0, 0), TITLES[3]: (1300, 0), TITLES[1]: (0, 880), TITLES[2]: (1400, 880)}
START_TIMEOUT = 90.0  # five Python + Qt processes on two busy cores


def _missing_tool() -> str | None:
    for tool in ("Xvfb", "xwininfo", "xwd"):
        if shutil.which(tool) is None:
            return tool
    return None


@pytest.fixture(scope="module")
def x_display() -> Iterator[str]:
    """A fresh Xvfb server on a free display number; yields its DISPLAY (":N")."""
    if (tool := _missing_tool()) is not None:
        message = f"{tool} is not installed (scripts/setup-system.sh installs xvfb and x11-utils, x11-apps)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the interactive demo under Xvfb: {message}", pytrace=False)
        pytest.skip(message)
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24",
                             "-nolisten", "tcp", "-noreset"], pass_fds=(write,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(write)
    try:
        with os.fdopen(read, "rb") as f:
            number = f.readline().strip().decode()  # written once the server accepts connections
        assert number.isdigit(), f"Xvfb did not start: {xvfb.stderr.read().decode()[-500:] if xvfb.stderr else ''}"
        yield f":{number}"
    finally:
        xvfb.terminate()
        try:
            xvfb.wait(10)
        except subprocess.TimeoutExpired:
            xvfb.kill()
            xvfb.wait(10)


class Demo:
    """One ``queuehall demo`` process with its own data folder, in a session of its own (like a terminal's job)."""

    def __init__(self, tmp_path: Path, display: str, *extra: str) -> None:
        self.data = tmp_path / "demo-data"
        self.out_path, self.err_path = tmp_path / "demo.out", tmp_path / "demo.err"
        env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb", PYTHONUNBUFFERED="1")
        env.pop("WAYLAND_DISPLAY", None)
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "queuehall.cli", "demo", "--data", str(self.data),
                                          *extra], cwd=ROOT, env=env, stdout=out, stderr=err,
                                         start_new_session=True)
        self.display = display

    @property
    def output(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace") + \
            self.err_path.read_text(encoding="utf-8", errors="replace")

    def state(self) -> dict[str, object]:
        """The demo's state file once every child is started (broker address, keys, pids)."""
        path = self.data / "demo.json"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the demo ended early ({self.proc.returncode}):\n{self.output}"
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                return json.loads(path.read_text(encoding="utf-8"))
            time.sleep(0.1)
        raise AssertionError(f"no {path} after {START_TIMEOUT} s:\n{self.output}")

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_everything()
            raise AssertionError(f"the demo did not end within {timeout} s:\n{self.output}") from None

    def leftovers(self) -> list[str]:
        """Every process (but a zombie) whose command line names this demo's data folder."""
        return processes_naming(str(self.data))

    def kill_everything(self) -> None:
        """Clean up after a failed test, so one failure does not leave processes for the next test."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for entry in self.leftovers():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(entry.split()[0]), signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


@pytest.fixture
def run_demo(tmp_path: Path, x_display: str) -> Iterator[type[Demo]]:
    started: list[Demo] = []

    def start(*extra: str) -> Demo:
        demo = Demo(tmp_path, x_display, *extra)
        started.append(demo)
        return demo

    yield start  # type: ignore[misc]
    for demo in started:
        if demo.proc.poll() is None or demo.leftovers():
            demo.kill_everything()


def processes_naming(text: str) -> list[str]:
    """``"PID command line"`` of every live process whose command line contains ``text`` (/proc, no psutil)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        if text in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.append(f"{entry.name} {cmdline.strip()[:200]}")
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def windows(display: str) -> dict[str, str]:
    """Title -> window id of every named top-level window on ``display`` (xwininfo)."""
    out = subprocess.run(["xwininfo", "-root", "-tree"], env=dict(os.environ, DISPLAY=display),
                         capture_output=True, text=True, timeout=30).stdout
    found = {}
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("0x") and '"' in line:
            wid, rest = line.split(" ", 1)
            found[rest.split('"')[1]] = wid
    return found


def wait_for_windows(demo: Demo) -> dict[str, str]:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert demo.proc.poll() is None, f"the demo ended ({demo.proc.returncode}):\n{demo.output}"
        shown = windows(demo.display)
        if all(t in shown for t in TITLES):
            return shown
        time.sleep(0.2)
    raise AssertionError(f"windows missing after {START_TIMEOUT} s: "
                         f"{[t for t in TITLES if t not in windows(demo.display)]}\n{demo.output}")


def screenshot(display: str, path: Path) -> Image.Image:
    """The whole X screen as a PNG at ``path``: ``xwd -root`` read with a small XWD decoder (no ImageMagick)."""
    raw = subprocess.run(["xwd", "-root", "-silent"], env=dict(os.environ, DISPLAY=display),
                         capture_output=True, timeout=60, check=True).stdout
    (header_size, _version, _fmt, depth, width, height, _xoff, byte_order, _unit, _bit_order, _pad, bpp,
     bytes_per_line, _visual, red, _green, blue, _bits, _entries, ncolors) = struct.unpack(">20I", raw[:80])
    assert depth == 24 and bpp in (24, 32) and (red, blue) == (0xFF0000, 0xFF), (depth, bpp, hex(red), hex(blue))
    start = header_size + 12 * ncolors
    mode = {(0, 32): "BGRX", (1, 32): "XRGB", (0, 24): "BGR", (1, 24): "RGB"}[byte_order, bpp]
    image = Image.frombuffer("RGB", (width, height), raw[start:start + bytes_per_line * height], "raw", mode,
                             bytes_per_line, 1)
    image.save(path)
    return image


def admin_cli(state: dict[str, object], *argv: str, stdin: str = "") -> dict[str, object]:
    """Run ``queuehall ARGV`` against the demo's broker with the demo's admin key; its JSON reply."""
    proc = subprocess.run([sys.executable, "-m", "queuehall.cli", *argv, "--broker", str(state["broker"]),
                           "--key", str(state["admin_key"]), "--server-key", str(state["server_key"])],
                          input=stdin, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def assert_all_ended(demo: Demo, state: dict[str, object] | None) -> None:
    pids = dict(state["children"]) if state else {}  # type: ignore[call-overload]
    deadline = time.monotonic() + 10  # a child SIGKILLed just now may take a moment to disappear
    while time.monotonic() < deadline and (demo.leftovers() or any(alive(p) for p in pids.values())):
        time.sleep(0.1)
    assert not demo.leftovers(), demo.leftovers()
    assert not [name for name, pid in pids.items() if alive(pid)]
    assert not (demo.data / "demo.json").exists()


def test_every_window_starts_a_ticket_is_called_and_sigterm_ends_every_process(
        run_demo: type[Demo], artifacts_dir: Path) -> None:
    from queuehall.broker.config import load_config

    demo = run_demo()
    state = demo.state()
    assert set(state["children"]) == {"broker", "kiosk", "counter-1", "counter-11", "display", "web"}  # type: ignore[arg-type]
    shown = wait_for_windows(demo)
    if shutil.which("xdotool"):  # side by side for the screenshot (without xdotool they overlap)
        for title, (x, y) in LAYOUT.items():
            subprocess.run(["xdotool", "windowmove", shown[title], str(x), str(y)], check=True, timeout=30,
                           env=dict(os.environ, DISPLAY=demo.display))
    assert "Sign in with 1号窗口 c01a/" in demo.output
    # The web gateway runs too, and the demo printed one ticket's page, which answers.
    deadline = time.monotonic() + 20
    while "a ticket's page on the web" not in demo.output and time.monotonic() < deadline:
        time.sleep(0.1)
    page_url = demo.output.split("a ticket's page on the web (扫码查看排队进度): ", 1)[1].split()[0]
    assert page_url.startswith(f"{state['web']}/t/")
    with urllib.request.urlopen(page_url, timeout=5) as page:
        assert page.status == 200 and "本页自动更新" in page.read().decode("utf-8")

    # A ticket taken and called through the demo's broker, as a script or a call button would.
    config = load_config()
    clerk = config.clerk(config.counter(1).clerk_a)  # type: ignore[union-attr]
    assert clerk is not None
    ticket = admin_cli(state, "take", "passport")["result"]["ticket"]  # type: ignore[index]
    admin_cli(state, "signin", "1", clerk.id, "--pin-stdin", stdin=DEMO_PINS[clerk.id] + "\n")
    called = admin_cli(state, "call", "1")["result"]
    assert called["ticket"]["label"] == ticket["label"]  # type: ignore[index]
    status = admin_cli(state, "status")
    assert ticket["label"] in json.dumps(status, ensure_ascii=False)  # type: ignore[index]

    # The screens show it; the picture is for people to look at.
    time.sleep(2.0)  # let the four processes repaint after the call (their own event loops, not ours)
    image = screenshot(demo.display, artifacts_dir / "demo-x11.png")
    assert image.size == SCREEN
    assert len(image.convert("L").resize((280, 170)).getcolors(1 << 16) or []) > 20  # windows, not a blank screen

    os.kill(demo.proc.pid, signal.SIGTERM)
    assert demo.wait() == 0, demo.output
    assert "stopped (SIGTERM)" in demo.output
    assert_all_ended(demo, state)


def test_ctrl_c_ends_every_process(run_demo: type[Demo]) -> None:
    demo = run_demo()
    state = demo.state()
    wait_for_windows(demo)
    os.killpg(demo.proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C: the foreground process group
    assert demo.wait() == 0, demo.output
    assert "stopped (SIGINT)" in demo.output and "Traceback" not in demo.output
    assert_all_ended(demo, state)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_the_children_die_with_a_demo_killed_outright(run_demo: type[Demo]) -> None:
    demo = run_demo()
    state = demo.state()
    os.kill(demo.proc.pid, signal.SIGKILL)  # no finally block runs: the kernel tells the children
    assert demo.wait() == -signal.SIGKILL
    pids = dict(state["children"])  # type: ignore[call-overload]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(alive(p) for p in pids.values()):
        time.sleep(0.1)
    assert not [name for name, pid in pids.items() if alive(pid)], demo.leftovers()
    assert not demo.leftovers()


def test_a_child_that_fails_to_start_ends_the_others(run_demo: type[Demo]) -> None:
    demo = run_demo("--printer", "nonsense:x")  # the kiosk refuses this printer and exits at once
    assert demo.wait(START_TIMEOUT) == 1, demo.output
    assert "queuehall demo: processes broker" in demo.output  # the others had been started
    assert "KIOSK_BAD_PRINTER" in demo.output
    assert "the kiosk ended with exit code 2; the other processes were stopped" in demo.output
    assert_all_ended(demo, None)


def test_a_broker_that_cannot_start_ends_the_demo(run_demo: type[Demo]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        demo = run_demo("--port", str(taken.getsockname()[1]))
        assert demo.wait(START_TIMEOUT) == 1, demo.output
    assert "the broker did not start" in demo.output
    assert "queuehall demo: processes" not in demo.output  # nothing else was started
    assert_all_ended(demo, None)
