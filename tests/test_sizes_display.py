"""The wall displays at the sizes halls buy (issue 15): no string cut or drawn too small, nothing outside.

The hall screen in a hall in full swing (twelve counters, ten recent calls, a transfer) at 3840×2160,
1920×1080, 1366×768 (a common 32" TV), 1280×1024 and portrait 1080×1920, and a counter's own screen at its
sizes, in both languages, checked with :func:`tests.layout_check.layout_problems`: no painted string elided,
none below 10 px (20 px at 4K), no panel outside the window or over another. Screenshots: tests/artifacts/sizes/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.layout_check import check, tag
from tests.test_display_gui import Hall, Screen, busy_hall, hall, pack, screens  # noqa: F401  (fixtures)

pytest_plugins = ["tests.broker_fixtures"]

HALL_SIZES = [(3840, 2160), (1920, 1080), (1366, 768), (1280, 1024), (1080, 1920)]
COUNTER_SCREEN_SIZES = [(1280, 480), (1366, 768), (1920, 1080), (768, 1024), (1080, 1920)]


def floor(window: Any) -> None:
    """No string under 10 px on a 1080-line screen, proportionally more on a larger one (20 px at 4K)."""
    px = max(10, round(10 * min(window.width(), window.height()) / 1080))
    for panel in window.panels:
        panel.min_text_px = px


@pytest.mark.parametrize("size", HALL_SIZES, ids=tag)
def test_hall_display_fits_every_size_in_both_languages(qtbot: Any, hall: Hall,  # noqa: F811
                                                        screens: Callable[..., Screen],  # noqa: F811
                                                        size: tuple[int, int]) -> None:
    busy_hall(hall)
    hall.do("start", counter=1)
    hall.do("transfer", counter=1, service="unified_fees")
    problems: list[str] = []
    for lang in ("zh", "en"):
        s = screens(hall.bt.endpoint, size=size, muted=True, min_display_seconds=0, lang=lang)
        s.synced()
        s.shows("XX市政务服务中心")
        s.window.set_flash_phase(True)
        floor(s.window)
        problems += check(qtbot, s.window, size, f"display-hall-{tag(size)}-{lang}")
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("size", COUNTER_SCREEN_SIZES, ids=tag)
def test_counter_display_fits_its_sizes_in_both_languages(qtbot: Any, hall: Hall,  # noqa: F811
                                                          screens: Callable[..., Screen],  # noqa: F811
                                                          size: tuple[int, int]) -> None:
    hall.sign_in(3)
    hall.take("passport", 2)
    hall.call(3)
    problems: list[str] = []
    for lang in ("zh", "en"):
        s = screens(hall.bt.endpoint, size=size, counter=3, lang=lang)
        s.synced()
        s.window.set_flash_phase(True)
        floor(s.window)
        problems += check(qtbot, s.window, size, f"display-counter-3-{tag(size)}-{lang}")
    assert problems == [], "\n".join(problems)
