"""Full screen on a bare X server: the kiosk, counter and wall display take the whole screen and stay there.

Kiosk appliances and wall-screen players run X without a window manager (docs/kiosk.md). There,
``QWidget.showFullScreen()`` and ``Qt.WindowStaysOnTopHint`` are only requests that nobody honours (they
are _NET_WM_STATE hints for a window manager): the kiosk came up as a 680×817 window in a corner and
"stay on top" did not hold. :func:`show_full_screen` asks for full screen as usual (a window manager, when
there is one, honours it) and also sets the window's geometry to its screen's itself, and keeps it so: a
one-second timer restores the geometry if anything changed it and, for a window that must stay on top,
raises it above any window mapped later (without a window manager, raising is the X server's plain
stacking order, which the window can change itself).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

KEEP_MS = 1000  # how often the window checks its geometry and stacking


def screen_geometry(window: QWidget) -> tuple[int, int, int, int]:
    """The (x, y, width, height) of the screen ``window`` is on (the primary screen before it is shown)."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    g = screen.geometry()
    return g.x(), g.y(), g.width(), g.height()


def show_full_screen(window: QWidget, *, on_top: bool = True, keep_ms: int = KEEP_MS) -> QTimer:
    """Show ``window`` frameless over its whole screen (``on_top``: above every other window), with or without
    a window manager; returns the timer that keeps it so (a child of the window, stopped with it)."""
    flags = window.windowFlags() | Qt.WindowType.FramelessWindowHint
    if on_top:
        flags |= Qt.WindowType.WindowStaysOnTopHint
    window.setWindowFlags(flags)
    window.setGeometry(*screen_geometry(window))
    window.showFullScreen()

    def keep() -> None:
        x, y, w, h = screen_geometry(window)
        g = window.geometry()
        if (g.x(), g.y(), g.width(), g.height()) != (x, y, w, h):
            window.setGeometry(x, y, w, h)
        if on_top:
            window.raise_()

    timer = QTimer(window)
    timer.setInterval(keep_ms)
    timer.timeout.connect(keep)
    timer.start()
    QTimer.singleShot(0, window, keep)  # once the window is mapped
    return timer
