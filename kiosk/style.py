"""The kiosk's look: the stylesheet at a scale, its fonts (the application's CJK family, the ticket number's)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QApplication
from queuehall.kiosk.ticket import TicketError, number_font_family

from queuehall.qtfonts import set_app_font


def setup_app_font(app: QApplication) -> str:
    """Give the whole application a font that has Chinese glyphs; returns the family chosen."""
    return set_app_font(app, 24)


# 适老化 large text: type this much larger; the layout's room comes from smaller gaps (KioskWindow.rescale).
LARGE_TEXT = 1.3


def stylesheet(u: float, family: str, large: bool = False) -> str:
    """The kiosk's look at scale ``u`` (1.0 = a 1920×1080 screen); ``large``: the large-text, high-contrast
    mode for the elderly and the visually impaired (type ×1.3, black on white, thick dark borders)."""

    def px(n: float) -> int:
        # Type no smaller than 8 px; borders and small gaps scale down to their own size at most (not up to 8).
        return max(min(8, round(n)), round(n * u))

    def fs(n: float) -> int:  # a font size
        return px(n * LARGE_TEXT) if large else px(n)

    return f"""
    QWidget {{ font-family: "{family}"; color: #1d2733; }}
    #root {{ background: #eaf0f7; }}
    #header {{ background: qlineargradient(x1:0, y1:0, x2:1, y2:0, stop:0 #0a3d7a, stop:1 #1666c5); }}
    #hallName {{ background: transparent; border: none; color: white; font-size: {fs(40)}px;
                 font-weight: bold; text-align: left; padding: 0; }}
    #hallName[fit="long"] {{ font-size: {px(30)}px; }}
    #hallName[fit="longer"] {{ font-size: {px(24)}px; }}
    #hallName[fit="longest"] {{ font-size: {px(20)}px; }}
    #hallNameEn[fit="long"] {{ font-size: {px(18)}px; }}
    #hallNameEn[fit="longer"] {{ font-size: {px(16)}px; }}
    #hallNameEn[fit="longest"] {{ font-size: {px(14)}px; }}
    #hallNameEn {{ color: #cfe0f5; font-size: {fs(20)}px; }}
    #clock {{ color: white; font-size: {fs(34)}px; }}
    #date {{ color: #cfe0f5; font-size: {fs(20)}px; }}
    #langButton {{ background: #0a3d7a; color: white; border: {px(3)}px solid white;
                   border-radius: {px(14)}px; font-size: {fs(28)}px; font-weight: bold;
                   padding: {px(8)}px {px(26)}px; }}
    #langButton:pressed {{ background: #2c7be0; }}
    #greeting {{ font-size: {fs(46)}px; font-weight: bold; color: #0a3d7a; }}
    #choose {{ font-size: {fs(28)}px; color: #4a5a6e; }}
    #deptButton {{ background: white; border: {px(2)}px solid #c9d6e6; border-radius: {px(16)}px;
                   text-align: left; padding: {px(10)}px {px(18)}px; }}
    #deptButton:checked {{ background: #1666c5; border-color: #1666c5; }}
    #deptName {{ font-size: {fs(30)}px; font-weight: bold; color: #0a3d7a; background: transparent; }}
    #deptName[small="true"] {{ font-size: {fs(23)}px; }}
    #deptSub {{ font-size: {fs(22)}px; color: #5b6b80; background: transparent; }}
    #deptName[on="true"] {{ color: white; }}
    #deptSub[on="true"] {{ color: #d9e7f8; }}
    #tile {{ background: white; border: {px(2)}px solid #c9d6e6; border-radius: {px(18)}px; }}
    #tile:pressed {{ background: #dcebfb; }}
    #tile:disabled {{ background: #eef0f3; }}
    #accent {{ background: #1666c5; border-radius: {px(5)}px; min-width: {px(10)}px; max-width: {px(10)}px; }}
    #accent[off="true"] {{ background: #a3acb8; }}
    #tileName {{ font-size: {fs(40)}px; font-weight: bold; color: #10243d; background: transparent; }}
    #tileSub {{ font-size: {fs(22)}px; color: #5b6b80; background: transparent; }}
    #tileInfo {{ font-size: {fs(28)}px; color: #1666c5; font-weight: bold; background: transparent; }}
    #tileReason {{ font-size: {fs(26)}px; color: #b34700; font-weight: bold; background: transparent; }}
    #tileName[off="true"] {{ color: #6b7684; }}
    #tileInfo[off="true"] {{ color: #7d8794; }}
    #materialNo {{ font-size: {fs(28)}px; font-weight: bold; color: #1666c5; background: transparent;
                   min-width: {px(44)}px; }}
    #card {{ background: white; border: {px(2)}px solid #c9d6e6; border-radius: {px(20)}px; }}
    #title {{ font-size: {fs(52)}px; font-weight: bold; color: #0a3d7a; }}
    #subtitle {{ font-size: {fs(26)}px; color: #5b6b80; }}
    #sectionTitle {{ font-size: {fs(32)}px; font-weight: bold; color: #0a3d7a; background: transparent; }}
    #sectionSub {{ font-size: {fs(22)}px; color: #5b6b80; background: transparent; }}
    #material {{ font-size: {fs(28)}px; color: #1d2733; background: transparent; }}
    #materialSub {{ font-size: {fs(20)}px; color: #6b7684; background: transparent; }}
    #info {{ font-size: {fs(30)}px; color: #1d2733; background: transparent; }}
    #promise {{ font-size: {fs(28)}px; color: #0b7a3e; font-weight: bold; background: transparent; }}
    #descriptionTitle {{ font-size: {fs(24)}px; color: #8a4b00; font-weight: bold; background: transparent; }}
    #description {{ font-size: {fs(26)}px; color: #5a3200; background: transparent; }}
    #reason {{ font-size: {fs(28)}px; color: #b34700; font-weight: bold; background: transparent; }}
    #prioButton {{ background: white; border: {px(3)}px solid #9fc9ab; border-radius: {px(14)}px;
                   font-size: {fs(26)}px; padding: {px(10)}px {px(14)}px; color: #0b5e30; }}
    #prioButton:checked {{ background: #0b7a3e; border-color: #0b7a3e; color: white; font-weight: bold; }}
    #confirm {{ background: #0b7a3e; color: white; border: none; border-radius: {px(20)}px;
                font-size: {fs(44)}px; font-weight: bold; padding: {px(18)}px; }}
    #confirm:pressed {{ background: #085c2f; }}
    #confirm:disabled {{ background: #9bb5a6; color: #eef5f0; }}
    #back {{ background: white; color: #0a3d7a; border: {px(3)}px solid #1666c5; border-radius: {px(20)}px;
             font-size: {fs(32)}px; font-weight: bold; padding: {px(14)}px; }}
    #back:pressed {{ background: #dcebfb; }}
    #caption {{ font-size: {fs(40)}px; color: #4a5a6e; }}
    #bigNumber {{ font-family: "{number_family()}"; font-size: {px(250)}px; font-weight: bold;
                  color: #c4121a; }}
    #confirmLine {{ font-size: {fs(38)}px; font-weight: bold; color: #10243d; }}
    #confirmWhere {{ font-size: {fs(34)}px; font-weight: bold; color: #0a3d7a; }}
    #confirmSub {{ font-size: {fs(26)}px; color: #5b6b80; }}
    #failedTitle {{ font-size: {fs(56)}px; font-weight: bold; color: #c4121a; }}
    #goHelp {{ font-size: {fs(44)}px; font-weight: bold; color: #0a3d7a; }}
    #goHelpSub {{ font-size: {fs(30)}px; color: #0a3d7a; }}
    #farewell {{ font-size: {fs(32)}px; color: #0b7a3e; font-weight: bold; }}
    #countdown {{ font-size: {fs(24)}px; color: #6b7684; }}
    #badge {{ font-size: {fs(120)}px; font-weight: bold; color: white; border-radius: {px(90)}px;
              min-width: {px(180)}px; max-width: {px(180)}px;
              min-height: {px(180)}px; max-height: {px(180)}px; }}
    #noticeTitle {{ font-size: {fs(64)}px; font-weight: bold; }}
    #noticeTitleSub {{ font-size: {fs(34)}px; color: #4a5a6e; }}
    #noticeBody {{ font-size: {fs(36)}px; color: #1d2733; }}
    #noticeBodySub {{ font-size: {fs(26)}px; color: #5b6b80; }}
    #noticeExtra {{ font-size: {fs(44)}px; font-weight: bold; color: #0a3d7a; }}
    #noticeDetail {{ font-size: {fs(18)}px; color: #8a94a3; }}
    #notice {{ font-size: {fs(24)}px; color: #0b5e30; background: #e3f3e8; border-radius: {px(12)}px;
               padding: {px(12)}px {px(20)}px; }}
    #pinDisplay {{ font-size: {fs(60)}px; letter-spacing: {px(16)}px; background: white;
                   border: {px(2)}px solid #c9d6e6; border-radius: {px(16)}px; padding: {px(10)}px;
                   min-height: {px(90)}px; }}
    #padDisplay {{ font-size: {fs(36)}px; background: white; border: {px(2)}px solid #c9d6e6;
                   border-radius: {px(16)}px; padding: {px(10)}px; min-height: {px(70)}px; }}
    #pinKey {{ background: white; border: {px(2)}px solid #c9d6e6; border-radius: {px(18)}px;
               font-size: {fs(46)}px; font-weight: bold; min-width: {px(150)}px; min-height: {px(104)}px; }}
    #pinKey:pressed {{ background: #dcebfb; }}
    #padKey {{ background: white; border: {px(2)}px solid #c9d6e6; border-radius: {px(12)}px;
               font-size: {fs(32)}px; font-weight: bold; min-height: {px(60)}px; }}
    #padKey:pressed {{ background: #dcebfb; }}
    #pinMessage {{ font-size: {fs(28)}px; color: #b3261e; font-weight: bold; }}
    #setLabel {{ font-size: {fs(26)}px; font-weight: bold; color: #0a3d7a; background: transparent; }}
    #setValue {{ font-size: {fs(24)}px; background: transparent; }}
    #setEdit {{ font-size: {fs(26)}px; padding: {px(10)}px; border: {px(2)}px solid #9fb4cc;
                border-radius: {px(10)}px; background: white; }}
    #setButton {{ background: white; border: {px(2)}px solid #1666c5; border-radius: {px(12)}px;
                  color: #0a3d7a; font-size: {fs(24)}px; padding: {px(10)}px {px(18)}px;
                  min-height: {px(56)}px; }}
    #setButton:checked {{ background: #1666c5; color: white; font-weight: bold; }}
    #setButton:pressed {{ background: #dcebfb; }}
    #danger {{ background: #b3261e; color: white; border: none; border-radius: {px(12)}px;
               font-size: {fs(24)}px; padding: {px(10)}px {px(18)}px; min-height: {px(56)}px; }}
    #largeButton {{ background: #0a3d7a; color: white; border: {px(3)}px solid white;
                    border-radius: {px(14)}px; font-size: {fs(28)}px; font-weight: bold;
                    padding: {px(8)}px {px(20)}px; }}
    #largeButton:checked {{ background: #ffd400; color: #000000; }}
    """ + (high_contrast(px) if large else "")


def high_contrast(px: Callable[[float], int]) -> str:
    """Overrides for the large-text mode: black text on white, dark thick borders, no pale greys."""
    return f"""
    #root {{ background: #ffffff; }}
    #header {{ background: #000000; }}
    #greeting, #title, #sectionTitle, #deptName, #tileName, #caption, #confirmLine, #goHelp {{ color: #000000; }}
    #choose, #deptSub, #tileSub, #subtitle, #sectionSub, #material, #materialSub, #confirmSub, #countdown,
    #info, #description, #noticeBody, #noticeBodySub, #noticeTitleSub {{ color: #000000; }}
    #tileInfo, #materialNo {{ color: #002a80; }}
    #deptButton, #tile, #card {{ border: {px(4)}px solid #000000; }}
    #deptButton:checked {{ background: #000000; border-color: #000000; }}
    #deptName[on="true"], #deptSub[on="true"] {{ color: #ffd400; }}
    #back {{ border: {px(4)}px solid #000000; color: #000000; }}
    #prioButton {{ border: {px(4)}px solid #0b5e30; color: #000000; }}
    #notice {{ color: #000000; background: #fff3b0; }}
    """


def number_family() -> str:
    try:
        return number_font_family()
    except TicketError:
        return "DejaVu Sans"

