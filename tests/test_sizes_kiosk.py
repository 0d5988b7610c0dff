"""The kiosk at the sizes halls buy (issue 15): nothing outside the window, no text cut, no overlaps.

Each screen is laid out at each supported size, in Chinese and in English, with the default hall
(config/hall.toml), and checked with :func:`tests.layout_check.layout_problems`; a screenshot of each is
saved under tests/artifacts/sizes/ for review. Sizes (docs/kiosk.md): 1920×1080, 1366×768, 1280×1024 and
portrait 1080×1920. The counter and the displays: tests/test_sizes_counter.py, tests/test_sizes_display.py.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from queuehall.kiosk.model import KioskSettings, Screen
from queuehall.kiosk.window import KioskWindow

from tests.layout_check import check, tag
from tests.test_kiosk_gui import (  # noqa: F401  (fixtures)
    FAST,
    STAFF_PIN,
    RunningBroker,
    click,
    empty_db,
    hall,
    kiosk_factory,
    wait_screen,
)

KIOSK_SIZES = [(1920, 1080), (1366, 768), (1280, 1024), (1080, 1920)]


# --------------------------------------------------------------------------------------------------
# Kiosk


def kiosk_pages(qtbot: Any, w: KioskWindow, size: tuple[int, int], lang: str, mode: str = "") -> list[str]:
    """Walk the kiosk through its pages in ``lang`` at ``size``; every page's layout problems."""
    problems: list[str] = []
    t = f"kiosk-{tag(size)}-{lang}" + (f"-{mode}" if mode else "")
    wait_screen(qtbot, w, Screen.START)
    if w.model.language != lang:
        click(qtbot, w.header.lang)
    problems += check(qtbot, w, size, f"{t}-start")
    click(qtbot, w.start_page.dept_buttons["household"])  # the longest English names
    problems += check(qtbot, w, size, f"{t}-start-household")
    click(qtbot, w.start_page.dept_buttons["exit_entry"])
    click(qtbot, w.start_page.tiles["passport"])  # six materials and four green-channel choices
    wait_screen(qtbot, w, Screen.DETAILS)
    problems += check(qtbot, w, size, f"{t}-details-passport")
    click(qtbot, w.details_page.back)
    wait_screen(qtbot, w, Screen.START)
    click(qtbot, w.start_page.dept_buttons["household"])
    click(qtbot, w.start_page.tiles["move_in"])  # a description (fees) and a no-open-counter note
    wait_screen(qtbot, w, Screen.DETAILS)
    problems += check(qtbot, w, size, f"{t}-details-description")
    click(qtbot, w.details_page.confirm)
    wait_screen(qtbot, w, Screen.CONFIRMATION)
    problems += check(qtbot, w, size, f"{t}-confirmation")
    w.model.back_to_start(reset_language=False)
    if mode:  # the staff pages are not the citizens': normal type there is fine
        w.redraw()
        wait_screen(qtbot, w, Screen.START)
        return problems
    w.model.open_settings()
    w.redraw()
    wait_screen(qtbot, w, Screen.PIN)
    problems += check(qtbot, w, size, f"{t}-pin")
    for key in STAFF_PIN:
        click(qtbot, w.pin_page.keys[key])
    click(qtbot, w.pin_page.keys["ok"])
    wait_screen(qtbot, w, Screen.SETTINGS)
    problems += check(qtbot, w, size, f"{t}-settings")
    # The reprint number by touch: the on-screen keypad in place of the card.
    page = w.settings_page
    click(qtbot, page.pad_button)
    for key in "A001":
        click(qtbot, page.pad.keys[key])
    problems += check(qtbot, w, size, f"{t}-settings-keypad")
    click(qtbot, page.pad.keys["ok"])
    assert page.reprint_ticket.text() == "A001" and page.body.currentIndex() == 0
    page.reprint_ticket.clear()
    click(qtbot, w.settings_page.back)
    wait_screen(qtbot, w, Screen.START)
    return problems


@pytest.mark.parametrize("size", KIOSK_SIZES, ids=tag)
def test_kiosk_fits_every_size_in_both_languages(qtbot: Any, hall: RunningBroker,  # noqa: F811
                                                 kiosk_factory: Any, size: tuple[int, int]) -> None:  # noqa: F811
    w = kiosk_factory(mode="text")
    w.resize(*size)
    assert (w.width(), w.height()) == size
    problems = kiosk_pages(qtbot, w, size, "zh") + kiosk_pages(qtbot, w, size, "en")
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("size", KIOSK_SIZES, ids=tag)
def test_kiosk_large_text_mode_fits_and_ends_when_idle(qtbot: Any, hall: RunningBroker,  # noqa: F811
                                                       kiosk_factory: Any,  # noqa: F811
                                                       size: tuple[int, int]) -> None:
    # 适老化: one tap on the start screen gives larger type in high contrast; every page still fits, in both
    # languages; the idle timeout gives the next citizen the normal screen.
    w = kiosk_factory(mode="text", settings=KioskSettings(**{**vars(FAST), "idle_ms": 60_000}))
    w.resize(*size)
    wait_screen(qtbot, w, Screen.START)
    normal = w.start_page.greeting.font().pixelSize()
    click(qtbot, w.header.large)
    assert w.model.large_text and w.header.large.isChecked()
    QApplication.sendPostedEvents(None, QEvent.Type.Polish.value)
    assert w.start_page.greeting.fontInfo().pixelSize() >= normal * 1.25
    problems = kiosk_pages(qtbot, w, size, "zh", "large") + kiosk_pages(qtbot, w, size, "en", "large")
    assert problems == [], "\n".join(problems)
    assert w.model.large_text  # kept while the same citizen goes on
    click(qtbot, w.header.lang)
    assert w.flow_timer.isActive()  # not a clean start: it will time out
    w._flow_timeout()
    assert not w.model.large_text and not w.header.large.isChecked() and w.model.language == "zh"
