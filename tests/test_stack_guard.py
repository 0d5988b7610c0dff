"""Guards for the two stack facts everything else relies on (docs/stack.md).

1. PySide6 6.12.0 on Python < 3.12 loses one reference to None per void-returning Qt call and aborts the
   interpreter after ~5,000 calls; the pinned 6.11.3 does not.
2. Qt must find a CJK font, otherwise every Chinese label renders as tofu boxes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtGui import QColor, QFont, QFontMetrics, QImage, QPainter
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

CALLS = 1_000
SAMPLE = "请A001号到3号窗口"


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12 on")
def test_void_qt_calls_keep_none_refcount(qtbot: QtBot) -> None:
    label = QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for i in range(CALLS):
        label.setText(f"A{i:03d}")
        label.setObjectName("ticket")
    after = sys.getrefcount(None)
    # Unrelated code may shift the count a little; the PySide6 6.12.0 bug drops it by one per call.
    assert before - after < CALLS // 2, (
        f"None refcount fell from {before} to {after} over {2 * CALLS} void Qt calls: this PySide6 build "
        "leaks None references and will abort the interpreter (use PySide6 6.11.3, see docs/stack.md)"
    )


def test_label_text_survives_many_calls(qtbot: QtBot) -> None:
    # Runs on every Python version: the label still works after the loop that would corrupt None.
    label = QLabel()
    qtbot.addWidget(label)
    for i in range(CALLS):
        label.setText(f"A{i:03d}")
    assert label.text() == f"A{CALLS - 1:03d}"


def _cjk_family() -> str | None:
    from queuehall.qtfonts import installed_cjk_family

    return installed_cjk_family()


def _render(text: str, font: QFont) -> QImage:
    metrics = QFontMetrics(font)
    image = QImage(metrics.horizontalAdvance(text) + 8, metrics.height() + 8, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    try:
        painter.setFont(font)
        painter.setPen(QColor("black"))
        painter.drawText(QPoint(4, 4 + metrics.ascent()), text)
    finally:
        painter.end()
    return image


def _ink(image: QImage) -> int:
    """Number of non-white pixels."""
    white = QColor("white").rgb()
    return sum(
        image.pixel(x, y) != white for y in range(image.height()) for x in range(image.width())
    )


def test_cjk_font_installed(qtbot: QtBot) -> None:
    family = _cjk_family()
    assert family is not None, (
        "no CJK font among Qt's families (queuehall.qtfonts.CJK_FAMILIES); "
        "install fonts-wqy-microhei (scripts/setup-system.sh)"
    )
    font = QFont(family, 24)
    metrics = QFontMetrics(font)
    assert all(metrics.inFontUcs4(ord(ch)) for ch in SAMPLE), f"{family} lacks glyphs for {SAMPLE}"


def test_chinese_renders_as_glyphs_not_tofu(qtbot: QtBot, artifacts_dir: Path) -> None:
    # The application font, not a forced family: labels rely on fontconfig fallback finding the CJK font.
    font = QFont()
    font.setPixelSize(32)
    sentence = _render(SAMPLE, font)
    sentence.save(str(artifacts_dir / "stack_guard_cjk_sample.png"))
    assert _ink(sentence) > 0

    # Tofu boxes look the same for every missing character; real glyphs differ from each other.
    qing, hao, chuang = (_render(ch, font) for ch in "请号窗")
    assert qing != hao and hao != chuang and qing != chuang
    # A private-use code point has no glyph anywhere: the CJK characters must not look like it.
    missing = _render("\ue000", font)
    assert all(img != missing for img in (qing, hao, chuang))
    # The CJK characters are full-width; DejaVu's tofu box for them would be much narrower.
    metrics = QFontMetrics(font)
    assert metrics.horizontalAdvance("请") >= 0.9 * font.pixelSize()


def test_every_screen_and_the_tickets_choose_the_same_font(qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtWidgets import QApplication
    from queuehall.counter.window import cjk_font
    from queuehall.display.window import apply_app_font
    from queuehall.kiosk.ticket import FONT_ENV, cjk_font_family
    from queuehall.kiosk.window import setup_app_font

    from queuehall.qtfonts import cjk_family

    monkeypatch.delenv(FONT_ENV, raising=False)
    cjk_font_family.cache_clear()
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    saved = app.font()
    try:
        kiosk = setup_app_font(app)
        apply_app_font(app)
        display = app.font().family()
    finally:
        app.setFont(saved)
    assert kiosk == display == cjk_font().family() == cjk_font_family() == cjk_family()
