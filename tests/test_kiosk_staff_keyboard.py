"""The kiosk's staff settings work by touch (issue 15): the printer field gets an on-screen keyboard like the
reprint number's keypad. Real widgets (pytest-qt, offscreen), a real broker on loopback; screenshots in
tests/artifacts/kiosk/settings-printer-keyboard-*.png."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from queuehall.kiosk.model import Screen, parse_printer_spec
from queuehall.kiosk.window import KioskWindow

from tests.layout_check import check, tag
from tests.test_kiosk_gui import (  # noqa: F401  (fixtures)
    RunningBroker,
    _screenshots_written,
    click,
    empty_db,
    hall,
    kiosk_factory,
    shot,
    wait_screen,
)


def open_settings(qtbot: Any, w: KioskWindow) -> None:
    wait_screen(qtbot, w, Screen.START)
    for _ in range(5):
        click(qtbot, w.header.hall)
    wait_screen(qtbot, w, Screen.PIN)
    for key in "123456":
        click(qtbot, w.pin_page.keys[key])
    click(qtbot, w.pin_page.keys["ok"])
    wait_screen(qtbot, w, Screen.SETTINGS)


def type_on(qtbot: Any, pad: Any, *keys: str) -> None:
    for key in keys:
        click(qtbot, pad.keys[key])


KIOSK_SIZES = [(1920, 1080), (1366, 768), (1280, 1024), (1080, 1920)]  # docs/kiosk.md, tests/test_sizes_kiosk.py


@pytest.mark.parametrize("size", KIOSK_SIZES, ids=tag)
def test_the_printer_keyboard_fits_every_size_in_both_languages(
        qtbot: Any, hall: RunningBroker, kiosk_factory: Any, size: tuple[int, int]) -> None:  # noqa: F811
    """The layout check (tests/layout_check.py): every key inside the window, no text cut, no overlaps;
    screenshots in tests/artifacts/sizes/kiosk-<size>-<lang>-settings-printer-keyboard.png."""
    w = kiosk_factory(mode="text")
    w.resize(*size)
    open_settings(qtbot, w)
    page = w.settings_page
    problems: list[str] = []
    for lang in ("zh", "en"):
        w.model.set_language(lang)
        w.redraw()
        problems += check(qtbot, w, size, f"kiosk-{tag(size)}-{lang}-settings")
        click(qtbot, page.spec_pad_button)
        type_on(qtbot, page.spec_pad, "clear", "network:", "1", "9", "2", ".", "1", "6", "8", ".", "1", "0", ".",
                "5", "0")
        problems += check(qtbot, w, size, f"kiosk-{tag(size)}-{lang}-settings-printer-keyboard")
        click(qtbot, page.spec_pad.keys["ok"])
        assert page.spec.text() == "network:192.168.10.50"
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("size", [(1920, 1080), (1366, 768)], ids=tag)
def test_the_printer_is_set_by_touch(qtbot: Any, hall: RunningBroker, kiosk_factory: Any,  # noqa: F811
                                     size: tuple[int, int]) -> None:
    w = kiosk_factory(mode="text")
    w.resize(*size)
    open_settings(qtbot, w)
    page = w.settings_page
    old = page.spec.text()
    assert page.spec_pad_button.text() == "键盘"
    click(qtbot, page.spec_pad_button)
    pad = page.spec_pad
    assert page.body.currentWidget() is pad and pad.text == old  # starts from the field (a file: path here)
    type_on(qtbot, pad, "clear", "serial:/dev/", "t", "t", "y", "shift", "u", "s", "b", "shift", "0", "@",
            "1", "9", "2", "0", "0")
    assert pad.text == "serial:/dev/ttyUSB0@19200" and pad.display.text() == "serial:/dev/ttyUSB0@19200"
    assert pad.keys["q"].text() == "q"  # shift released: lower case again
    shot(w, f"settings-printer-keyboard-{size[0]}x{size[1]}")
    # Every key lies inside the window and is big enough for a finger.
    for key, button in pad.keys.items():
        top_left = button.mapTo(w, button.rect().topLeft())
        bottom_right = button.mapTo(w, button.rect().bottomRight())
        assert w.rect().contains(top_left) and w.rect().contains(bottom_right), key
        assert button.height() >= 40, key
    type_on(qtbot, pad, "delete", "delete", "delete", "delete", "delete", "delete")
    assert pad.text == "serial:/dev/ttyUSB0"
    click(qtbot, pad.keys["ok"])
    assert page.body.currentIndex() == 0 and page.spec.text() == "serial:/dev/ttyUSB0"
    assert parse_printer_spec(page.spec.text())["backend"] == "serial"
    # The forms are whole words: a network printer in a few taps, and the field is left as typed.
    click(qtbot, page.spec_pad_button)
    type_on(qtbot, pad, "clear", "network:", "1", "0", ".", "0", ".", "0", ".", "5", "0")
    click(qtbot, pad.keys["ok"])
    assert page.spec.text() == "network:10.0.0.50"
    assert parse_printer_spec(page.spec.text())["host"] == "10.0.0.50"


def test_the_ticket_keypad_still_types_upper_case_numbers(qtbot: Any, hall: RunningBroker,  # noqa: F811
                                                          kiosk_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    w = kiosk_factory(mode="text")
    open_settings(qtbot, w)
    page = w.settings_page
    page.reprint_ticket.setText("a0")
    click(qtbot, page.pad_button)
    assert page.pad.text == "A0"
    type_on(qtbot, page.pad, "1", "2", "delete", "B")
    click(qtbot, page.pad.keys["ok"])
    assert page.reprint_ticket.text() == "A01B"
