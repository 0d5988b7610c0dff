"""One choice of Chinese font for every screen and every printed ticket.

Without a font that has Chinese glyphs Qt draws boxes. The kiosk, the counter, the displays and the tickets
used to keep four lists of families in different orders, so two screens on one machine could pick different
fonts; they all ask here now.
"""

from __future__ import annotations

from PySide6.QtGui import QFont, QFontDatabase, QGuiApplication

#: Preferred families, best first: Noto Sans CJK (Debian ``fonts-noto-cjk``: real weights, wide coverage), then
#: WenQuanYi Micro Hei (``fonts-wqy-microhei``, what scripts/setup-system.sh installs), then other common ones.
CJK_FAMILIES = ("Noto Sans CJK SC", "WenQuanYi Micro Hei", "Source Han Sans SC", "Noto Sans SC",
                "Droid Sans Fallback")


def installed_cjk_family() -> str | None:
    """The first installed family of CJK_FAMILIES, else any family Qt lists for Simplified Chinese, else None.

    Needs a QGuiApplication (Qt's font database)."""
    available = set(QFontDatabase.families())
    for family in CJK_FAMILIES:
        if family in available:
            return family
    chinese = QFontDatabase.families(QFontDatabase.WritingSystem.SimplifiedChinese)
    return chinese[0] if chinese else None


def cjk_family() -> str:
    """The family screens draw with: :func:`installed_cjk_family`, else Qt's default (which shows boxes)."""
    return installed_cjk_family() or QFont().family()


def set_app_font(app: QGuiApplication, pixel_size: int) -> str:
    """Make the CJK family at ``pixel_size`` the application's font, so every widget renders Chinese; returns
    the family."""
    family = cjk_family()
    font = QFont(family)
    font.setPixelSize(pixel_size)
    app.setFont(font)
    return family
