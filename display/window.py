"""The wall display's window shell: the hall screen (大厅综合屏) or a counter's own screen (窗口屏).

The painted parts live beside it: :mod:`display.painting` (colours, :class:`Painted`, which fits
every string to its box and records in ``elided`` anything it had to cut), :mod:`display.hall_view`
(the hall screen's panels and layout), :mod:`display.counter_view` (a counter's screen) and
:mod:`display.evaluator_widget` (the counter screen's 好差评 overlay).

:class:`DisplayWindow` wires a :class:`queuehall.qtlink.QtLink` (role ``display``: it only
listens, it never sends a state-changing command) to :class:`display.model.DisplayModel`, drives
the announcement queue from a 100 ms timer and repaints what changed. For tests it takes any
:class:`~voice.sink.AudioSink` (e.g. a :class:`~voice.sink.RecordingSink`, which
keeps every announcement's WAV bytes), an injectable clock for the announcer and a hall clock;
the headless demo's manual-clock variant is :mod:`display.demo_display`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QResizeEvent
from PySide6.QtWidgets import QWidget
from queuehall.display.counter_view import CounterScreen
from queuehall.display.hall_view import HallScreen
from queuehall.display.model import DisplayModel, DisplayOptions, HallClock
from queuehall.display.painting import Painted, apply_app_font
from queuehall.voice.pack import VoicePack, load_pack
from queuehall.voice.sink import AudioSink, RecordingSink

from queuehall.client import StateMirror
from queuehall.qtlink import QtLink

__all__ = [
    "AfterPaintSink", "CounterScreen", "DisplayWindow", "HallScreen", "HeartbeatMirror", "Painted", "apply_app_font",
]

if TYPE_CHECKING:
    from queuehall.display.evaluator_widget import EvaluatorPanel

TICK_MS = 100


class AfterPaintSink:
    """Wraps a Qt audio sink so an announcement starts on the next turn of the event loop.

    The window paints a new call synchronously when it arrives; deferring the player's start
    keeps loading the media out of the way of that paint (the screen is the faster cue).
    ``stop`` also cancels a start that has not happened yet.
    """

    def __init__(self, sink: AudioSink) -> None:
        self.sink = sink
        self._token = 0

    def play(self, wav: bytes, on_finished: Callable[[], None]) -> None:
        """Start ``wav`` on the next event-loop turn (returns at once)."""
        self._token += 1
        token = self._token
        QTimer.singleShot(0, lambda: self._play(token, wav, on_finished))

    def _play(self, token: int, wav: bytes, on_finished: Callable[[], None]) -> None:
        if token == self._token:
            self.sink.play(wav, on_finished)

    def stop(self) -> None:
        """Stop the clip playing (or about to)."""
        self._token += 1
        self.sink.stop()

    def set_volume(self, volume: float) -> None:
        """Pass the device volume on to the wrapped sink."""
        set_volume = getattr(self.sink, "set_volume", None)
        if callable(set_volume):
            set_volume(volume)


class HeartbeatMirror(StateMirror):
    """A :class:`StateMirror` that also hands every heartbeat's ``now`` (the hall's time) to a clock
    and stamps each event with ``received_monotonic`` (when the link thread got it).

    Installed on a QtLink's Link before it starts, so the display shows the broker's (possibly
    simulated) time without any change to the link. Runs on the link thread; ``HallClock.observe``
    is thread-safe.
    """

    def __init__(self, hall_clock: HallClock) -> None:
        super().__init__(hall_clock)  # the base mirror feeds it each heartbeat's and snapshot's time

    def apply(self, msg: dict[str, Any]) -> str:
        """Stamp events with their arrival, then apply as usual."""
        if msg.get("type") == "event":
            # The model tells a live call from one handled late (a stalled screen) by this stamp.
            msg.setdefault("received_monotonic", time.monotonic())
        return super().apply(msg)


class DisplayWindow(QWidget):
    """The display: a hall screen, or a counter screen when ``options.counter`` is set.

    ``link``: a QtLink (role ``display``) or None (the owner then feeds :meth:`on_state`,
    :meth:`on_event` and :meth:`on_connection` itself). ``sink``: where announcements play
    (default: :class:`voice.qt_audio.QtAudioSink`; a RecordingSink keeps each WAV in
    ``sink.played``). ``clock``: seconds for the announcer (default ``time.time``).
    ``hall_clock``: the hall's aware time (default: the broker's heartbeat time via
    :class:`HeartbeatMirror`, else system time). ``pack``: the voice pack (default: shipped).
    ``auto_tick``: drive the announcer from a 100 ms timer (tests may call :meth:`tick` instead).
    """

    def __init__(
        self,
        link: QtLink | None = None,
        options: DisplayOptions | None = None,
        *,
        sink: AudioSink | None = None,
        clock: Callable[[], float] | None = None,
        hall_clock: Callable[[], datetime] | None = None,
        pack: VoicePack | None = None,
        auto_tick: bool = True,
        parent: QWidget | None = None,
        evaluator_clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(parent)
        self.options = (options or DisplayOptions()).validate()
        self.link = link
        broker_clock = HallClock()
        if link is not None and not link.link.mirror.synced:
            # Before start(), so the link thread has not read it yet. Also when the owner brings its own
            # hall clock: the arrival stamps on events are what tells a live call from a late one.
            link.link.mirror = HeartbeatMirror(broker_clock)
        self.hall_clock = hall_clock if hall_clock is not None else broker_clock
        if self.options.counter is None:
            if sink is None:
                from queuehall.voice.qt_audio import QtAudioSink  # QtMultimedia only where sound is played

                sink = QtAudioSink(self)
            pack = pack or load_pack()
        self.sink = sink
        # A Qt sink plays through the event loop anyway: start it after the call is painted.
        model_sink = AfterPaintSink(sink) if isinstance(sink, QObject) else sink
        self.model = DisplayModel(
            self.options, pack=pack, sink=model_sink, clock=clock or time.time, hall_clock=self.hall_clock
        )
        self.screen_widget: HallScreen | CounterScreen
        if self.options.counter is None:
            self.screen_widget = HallScreen(self.options.history_size, self)
        else:
            self.screen_widget = CounterScreen(self)
        # A counter's screen is its evaluator after each finish (docs/evaluation.md): an overlay with its own state.
        self.evaluator: EvaluatorPanel | None = None
        if self.options.counter is not None and self.options.evaluator_seconds > 0 and link is not None:
            from queuehall.display.evaluation import EvaluatorModel
            from queuehall.display.evaluator_widget import EvaluatorPanel

            model = EvaluatorModel(self.options.counter, link.request, seconds=self.options.evaluator_seconds,
                                   clock=evaluator_clock or time.monotonic)
            self.evaluator = EvaluatorPanel(model, self)
            link.replied.connect(self._on_replied)
        self.setWindowTitle(self._title())
        self._refresh_pending = False
        self._stopped = False
        self._tick_timer = QTimer(self)
        self._tick_timer.setInterval(TICK_MS)
        self._tick_timer.timeout.connect(self.tick)
        self._auto_tick = auto_tick
        if link is not None:
            link.state_changed.connect(self.on_state)
            link.event.connect(self.on_event)
            link.connection_changed.connect(self.on_connection)
        self.refresh()

    def _title(self) -> str:
        if self.options.counter is None:
            return "queuehall · 大厅叫号屏 / hall display"
        return f"queuehall · {self.options.counter}号窗口屏 / counter {self.options.counter} screen"

    @property
    def panels(self) -> list[Painted]:
        """The painted parts of the screen (tests read ``drawn`` and ``elided``)."""
        return self.screen_widget.panels

    def shutdown(self) -> None:
        """Stop everything (:meth:`stop`) and close the window."""
        self.stop()
        self.close()

    def start(self) -> None:
        """Connect to the broker (if a link was given) and start the timers."""
        if self._auto_tick:
            self._tick_timer.start()
        if self.link is not None:
            self.link.start()

    def stop(self) -> None:
        """Stop the timers, the link and any announcement (safe to call twice)."""
        self._tick_timer.stop()
        if self.link is not None and not self._stopped:
            self.link.stop()
        self._stopped = True
        self.model.close()

    # -- inputs (slots) --------------------------------------------------------------------------

    def on_state(self, state: dict[str, Any]) -> None:
        """A new full state from the link."""
        self.model.handle_state(state)
        self._refresh_soon()

    def on_event(self, msg: dict[str, Any]) -> None:
        """One published event from the link (a call is shown at once and queued for the voice).

        A message fed directly (no link) counts as received now; the link stamps its own on arrival.
        """
        if "received_monotonic" not in msg:
            msg = dict(msg, received_monotonic=time.monotonic())
        if self.evaluator is not None and self.evaluator.model.on_event(msg):
            self.evaluator.sync()
        before = (self.model.current, self.model.highlighted)
        self.model.handle_event(msg)
        if (self.model.current, self.model.highlighted) != before:
            # A new call on the big panel: paint it now, before anything else (the announcement included).
            self.refresh()
            self.screen_widget.paint_call_now()
        else:
            self._refresh_soon()

    def _on_replied(self, request_id: str, reply: object) -> None:
        """The broker's answer to a command this screen sent (only the evaluator's ``rate``)."""
        if self.evaluator is not None and isinstance(reply, dict) and self.evaluator.model.replied(request_id, reply):
            self.evaluator.sync()

    def on_connection(self, up: bool) -> None:
        """The broker came back or went silent."""
        self.model.set_connected(up)
        self._refresh_soon()

    def _refresh_soon(self) -> None:
        # An event comes with a state right behind it (and a burst of calls with many): build the
        # view once, on the next turn of the event loop, for all of them.
        if not self._refresh_pending:
            self._refresh_pending = True
            QTimer.singleShot(0, self, self.refresh)

    def tick(self) -> None:
        """Advance the announcement queue (and a recording sink's playback) and repaint what changed."""
        if isinstance(self.sink, RecordingSink):
            self.sink.update()
        self.model.tick()
        if self.evaluator is not None and (self.evaluator.model.tick() or self.evaluator.isVisible()):
            self.evaluator.sync()  # the countdown, or back to the normal screen
        self.refresh()

    def refresh(self, flash: bool | None = None) -> None:
        """Push the model's current view to the screen; panels repaint only what changed.

        ``flash`` forces the highlight colour on or off (screenshots); by default a highlighted call
        flashes at 2 Hz.
        """
        self._refresh_pending = False
        highlighted = self.model.highlighted
        if flash is None:
            flash = int(time.monotonic() * 2) % 2 == 0
        flash = flash and highlighted
        if self.options.counter is None:
            view = self.model.hall_view()
            assert isinstance(self.screen_widget, HallScreen)
            self.screen_widget.set_view(view, flash)
        else:
            cview = self.model.counter_view()
            assert isinstance(self.screen_widget, CounterScreen)
            self.screen_widget.set_view(cview, flash)

    def set_flash_phase(self, on: bool) -> None:
        """Show the highlight colour on or off now (screenshots); the next tick flashes as usual."""
        self.refresh(flash=on)

    # -- Qt ------------------------------------------------------------------------------------

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Qt resize hook: lay the parts out again for the new size."""
        super().resizeEvent(event)
        self.screen_widget.setGeometry(self.rect())
        if self.evaluator is not None:
            self.evaluator.setGeometry(self.rect())

    def closeEvent(self, event: QCloseEvent) -> None:
        """Qt close hook: stop the link, the timers and any announcement."""
        self.stop()
        super().closeEvent(event)

    def keyPressEvent(self, event: Any) -> None:
        """Esc leaves full screen (maintenance); M mutes or unmutes the voice."""
        # A wall screen normally has no keyboard; these two are for the person maintaining it.
        if event.key() == Qt.Key.Key_Escape and self.isFullScreen():
            self.showNormal()
        elif event.key() == Qt.Key.Key_M and self.model.announcer is not None:
            self.model.set_muted(not self.model.announcer.muted)
        else:
            super().keyPressEvent(event)

