"""The hall screen as the headless demo and the tests drive it: the announcer on a manual clock.

Kept out of :class:`~display.window.DisplayWindow` so the production window carries no demo hooks.
"""

from __future__ import annotations

import time

from PySide6.QtWidgets import QApplication
from queuehall.display.model import DisplayOptions
from queuehall.display.window import DisplayWindow
from queuehall.voice.sink import AudioSink, ManualClock, RecordingSink

from queuehall.client import Security
from queuehall.qtlink import QtLink


class DemoDisplayWindow(DisplayWindow):
    """A hall screen whose announcer runs on a :class:`~voice.sink.ManualClock` that
    :meth:`demo_tick` drives (no 100 ms timer): made by :meth:`for_demo`."""

    demo_clock: ManualClock

    @classmethod
    def for_demo(
        cls,
        endpoint: str,
        *,
        security: Security | None = None,
        sink: AudioSink | None = None,
        options: DisplayOptions | None = None,
        name: str = "wall-1",
    ) -> DemoDisplayWindow:
        """A hall screen for the headless demo: its own QtLink (role ``display``) to ``endpoint``,
        the announcer on a manual clock that :meth:`demo_tick` drives, and ``sink`` (default: a new
        RecordingSink; a RecordingSink is put on that clock, so ``sink.played[i].wav`` holds each
        announcement). Call :meth:`start` next.
        """
        clock = ManualClock(time.time())
        if sink is None:
            sink = RecordingSink(clock)
        elif isinstance(sink, RecordingSink):
            sink.clock = clock  # its clips "play" on the announcer's clock
        link = QtLink(endpoint, role="display", name=name, security=security)
        window = cls(link, options, sink=sink, clock=clock, auto_tick=False)
        window.demo_clock = clock
        return window

    def demo_tick(self, limit_seconds: float = 600.0, step: float = 0.25) -> int:
        """Take in what the link delivered, then run the announcer's manual clock until every queued
        announcement has played to its end and held the screen its minimum time (at most
        ``limit_seconds`` of announcer time). Returns how many announcements the sink has played.
        """
        app = QApplication.instance()
        if app is not None:
            app.processEvents()
        clock = self.demo_clock
        announcer = self.model.announcer
        if announcer is None:
            self.tick()
        else:
            end = clock() + limit_seconds
            while clock() < end and not (announcer.is_idle() and not self._sink_busy()):
                clock.advance(step)
                self.tick()
        self.refresh()
        return len(self.sink.played) if isinstance(self.sink, RecordingSink) else 0

    def _sink_busy(self) -> bool:
        return isinstance(self.sink, RecordingSink) and self.sink.playing is not None
