"""Full screen without a window manager (issue 15), on a real X server: how kiosks and wall screens run.

For each program and screen size, a fresh Xvfb (no window manager) is started and the real command
(``queuehall kiosk``, ``queuehall display``, ``queuehall counter``; the broker unreachable, which they show)
is run full screen with ``QT_QPA_PLATFORM=xcb``. The window must cover the whole screen (``xwininfo``), and
the kiosk and the wall display must stay on top: another X client's window (``xlogo``) mapped over them is
covered again within a few seconds (the screen's pixels under it are the program's again). Screenshots of
the X screen: tests/artifacts/x11/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from tests.test_demo_x11 import screenshot

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "tests" / "artifacts" / "x11"
START_TIMEOUT = 60.0

CASES = [
    ("kiosk", (1920, 1080)), ("kiosk", (1366, 768)), ("kiosk", (1280, 1024)), ("kiosk", (1080, 1920)),
    ("counter", (1366, 768)), ("display", (1366, 768)), ("display", (1080, 1920)),
]
TITLES = {"kiosk": "queuehall kiosk", "counter": "queuehall · 1号窗口 / counter 1",
          "display": "queuehall · 大厅叫号屏 / hall display"}
ON_TOP = {"kiosk": True, "display": True, "counter": False}


def _missing_tool() -> str | None:
    return next((t for t in ("Xvfb", "xwininfo", "xwd", "xlogo") if shutil.which(t) is None), None)


class Xvfb:
    """A fresh X server of one screen at ``size``, with no window manager."""

    def __init__(self, size: tuple[int, int]) -> None:
        read, write = os.pipe()
        self.size = size
        self.proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", f"{size[0]}x{size[1]}x24",
                                      "-nolisten", "tcp", "-noreset"], pass_fds=(write,),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read, "rb") as f:
            number = f.readline().strip().decode()
        assert number.isdigit(), "Xvfb did not start"
        self.display = f":{number}"
        self.env = dict(os.environ, DISPLAY=self.display, QT_QPA_PLATFORM="xcb", PYTHONUNBUFFERED="1")
        self.env.pop("WAYLAND_DISPLAY", None)

    def geometry(self, title: str) -> tuple[int, int, int, int] | None:
        """(width, height, x, y) of the top-level window called ``title``, if mapped."""
        out = subprocess.run(["xwininfo", "-root", "-children"], env=self.env, capture_output=True, text=True,
                             timeout=30).stdout
        for line in out.splitlines():
            if f'"{title}"' in line:
                m = re.search(r"(\d+)x(\d+)\+(-?\d+)\+(-?\d+)", line)
                if m:
                    w, h, x, y = (int(v) for v in m.groups())
                    return w, h, x, y
        return None

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def xserver(request: pytest.FixtureRequest) -> Iterator[Xvfb]:
    if (tool := _missing_tool()) is not None:
        message = f"{tool} is not installed (scripts/setup-system.sh installs xvfb, x11-utils, x11-apps)"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    x = Xvfb(request.param)
    yield x
    x.stop()


def command(program: str, tmp_path: Path) -> list[str]:
    base = [sys.executable, "-m", "queuehall.cli", program, "--broker", "127.0.0.1:9"]
    if program == "kiosk":
        return [*base, "--printer", f"file:{tmp_path / 'tickets.bin'}", "--state-dir", str(tmp_path / "state")]
    if program == "counter":
        return [*base, "--counter", "1"]
    return base


@pytest.mark.parametrize(("program", "xserver"), CASES, indirect=["xserver"],
                         ids=[f"{p}-{w}x{h}" for p, (w, h) in CASES])
def test_full_screen_without_a_window_manager(program: str, xserver: Xvfb, tmp_path: Path) -> None:
    size = xserver.size
    title = TITLES[program]
    log = (tmp_path / "out.log").open("wb")
    proc = subprocess.Popen(command(program, tmp_path), cwd=ROOT, env=xserver.env, stdout=log,
                            stderr=subprocess.STDOUT)
    other: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while (geometry := xserver.geometry(title)) != (*size, 0, 0):
            assert proc.poll() is None, (tmp_path / "out.log").read_text(errors="replace")
            assert time.monotonic() < deadline, f"{title} is {geometry}, not the screen's {size} at +0+0"
            time.sleep(0.2)
        time.sleep(1.5)  # the first paint
        SHOTS.mkdir(parents=True, exist_ok=True)
        name = f"{program}-{size[0]}x{size[1]}"
        before = screenshot(xserver.display, SHOTS / f"{name}.png")
        assert before.size == size
        box = (40, 40, 240, 240)
        other = subprocess.Popen(["xlogo", "-geometry", "200x200+40+40"], env=xserver.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if ON_TOP[program]:
            # The program raises itself over the newcomer within its one-second check.
            deadline = time.monotonic() + 10
            while True:
                now = screenshot(xserver.display, tmp_path / "now.png")
                if ImageChops.difference(now.crop(box), before.crop(box)).getbbox() is None:
                    break
                assert time.monotonic() < deadline, "another window stayed over the full-screen window"
                time.sleep(0.3)
        assert xserver.geometry(title) == (*size, 0, 0)  # still covering the screen
        assert isinstance(before, Image.Image)
    finally:
        if other is not None:
            other.terminate()
            other.wait(10)
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
