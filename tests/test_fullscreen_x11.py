"""Full screen without a window manager (issue 15), on a real X server: how kiosks and wall screens run.

For each program and screen size, a fresh Xvfb (no window manager) is started and the real command
(``queuehall kiosk``, ``queuehall display``, ``queuehall counter``; the broker unreachable, which they show)
is run full screen with ``QT_QPA_PLATFORM=xcb``. The window must cover the whole screen (``xwininfo``), and
the kiosk and the wall display must stay on top: another X client's window (``xlogo``) mapped over them is
covered again within a few seconds (the screen's pixels under it are the program's again). Screenshots of
the X screen: tests/artifacts/x11/.

Sizes: the kiosk at 1920×1080, 1366×768, 1280×1024 and portrait 1080×1920; the counter at 1920×1080, 1366×768
and 1280×1024; the hall display at 3840×2160, 1920×1080, 1366×768, 1280×1024 and portrait 1080×1920. Nothing
waits a fixed time: the window must be mapped (``xwininfo``: IsViewable) at the screen's size, then the screen
painted (Xvfb's root is black; the grab is not all black and two grabs in a row are the same).
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
from PIL import Image, ImageChops, ImageStat

from tests.test_demo_x11 import screenshot

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "tests" / "artifacts" / "x11"
START_TIMEOUT = 60.0

PAINT_TIMEOUT = 60.0
# The program raises itself within its one-second check; a 4K screen grab (33 MB through xwd) takes a second or
# more on a loaded 2-core machine, so the wait is generous.
ON_TOP_TIMEOUT = 30.0
CASES = [
    ("kiosk", (1920, 1080)), ("kiosk", (1366, 768)), ("kiosk", (1280, 1024)), ("kiosk", (1080, 1920)),
    ("counter", (1920, 1080)), ("counter", (1366, 768)), ("counter", (1280, 1024)),
    ("display", (3840, 2160)), ("display", (1920, 1080)), ("display", (1366, 768)), ("display", (1280, 1024)),
    ("display", (1080, 1920)),
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
        # -br: a black root window, so whatever is not black on the screen was painted by the program.
        self.proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", f"{size[0]}x{size[1]}x24",
                                      "-nolisten", "tcp", "-noreset", "-br"], pass_fds=(write,),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read, "rb") as f:
            number = f.readline().strip().decode()
        assert number.isdigit(), "Xvfb did not start"
        self.display = f":{number}"
        self.env = dict(os.environ, DISPLAY=self.display, QT_QPA_PLATFORM="xcb", PYTHONUNBUFFERED="1")
        self.env.pop("WAYLAND_DISPLAY", None)

    def window(self, title: str) -> str | None:
        """The X id of the top-level window called ``title``, once it exists."""
        out = subprocess.run(["xwininfo", "-root", "-children"], env=self.env, capture_output=True, text=True,
                             timeout=30).stdout
        for line in out.splitlines():
            if f'"{title}"' in line:
                return line.split()[0]
        return None

    def geometry(self, title: str) -> tuple[int, int, int, int] | None:
        """(width, height, x, y) of the top-level window called ``title``, once it is mapped (viewable)."""
        wid = self.window(title)
        if wid is None:
            return None
        out = subprocess.run(["xwininfo", "-id", wid], env=self.env, capture_output=True, text=True,
                             timeout=30).stdout
        if "Map State: IsViewable" not in out:
            return None
        values = dict(re.findall(r"^\s*(Absolute upper-left [XY]|Width|Height):\s*(-?\d+)", out, re.M))
        return (int(values["Width"]), int(values["Height"]), int(values["Absolute upper-left X"]),
                int(values["Absolute upper-left Y"]))

    def painted(self, path: Path, timeout: float = PAINT_TIMEOUT) -> Image.Image:
        """The screen once the program has painted it: not all black (the root is black) and the same in two
        grabs in a row (the first paint is done). Waits on that condition, not on a fixed time."""
        deadline = time.monotonic() + timeout
        last: Image.Image | None = None
        while True:
            now = screenshot(self.display, path)
            painted = now.convert("L").getextrema() != (0, 0)
            if painted and last is not None and ImageChops.difference(now, last).getbbox() is None:
                return now
            assert time.monotonic() < deadline, f"the screen was not painted within {timeout:.0f} s"
            last = now if painted else None
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def covered_again(now: Image.Image, before: Image.Image, box: tuple[int, int, int, int]) -> bool:
    """Whether ``box`` shows the program again, as in ``before``, not the window mapped over it. Not pixel for
    pixel: at 3840x2160 the title's antialiased glyphs under the box came back a little different after being
    uncovered (mean difference 0.08 of 255, only in the glyphs: the test failed so, once in three runs, with the
    display on top). xlogo's white square differs from the dark header by about 200 of 255 on average."""
    diff = ImageStat.Stat(ImageChops.difference(now.crop(box).convert("RGB"), before.crop(box).convert("RGB")))
    return max(diff.mean) < 12


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
        SHOTS.mkdir(parents=True, exist_ok=True)
        name = f"{program}-{size[0]}x{size[1]}"
        before = xserver.painted(SHOTS / f"{name}.png")
        assert before.size == size
        box = (40, 40, 240, 240)
        other = subprocess.Popen(["xlogo", "-geometry", "200x200+40+40"], env=xserver.env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if ON_TOP[program]:
            # The program raises itself over the newcomer within its one-second check.
            deadline = time.monotonic() + ON_TOP_TIMEOUT
            while True:
                now = screenshot(xserver.display, tmp_path / "now.png")
                if covered_again(now, before, box):
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
