"""Where spoken audio goes: the :class:`AudioSink` protocol, and :class:`RecordingSink` for tests and demos.

Shared by the wall display's announcements (:mod:`display.announcer`) and the kiosk's spoken guidance
(:mod:`kiosk.guide`). Pure Python: the real sink, :class:`voice.qt_audio.QtAudioSink`, lives apart so that
importing this module never loads QtMultimedia.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from queuehall.voice.pack import duration


class AudioSink(Protocol):
    """Where announcements are played.

    ``play`` starts playing a complete WAV and returns at once (it must never block); the sink
    calls ``on_finished`` exactly once when the clip has played to its end, on the owner's thread
    (for Qt: the GUI thread). ``stop`` abandons the current clip; ``on_finished`` is then not called.
    """

    def play(self, wav: bytes, on_finished: Callable[[], None]) -> None: ...

    def stop(self) -> None: ...


class ManualClock:
    """A clock that only moves when told to: ``clock()`` returns the time, ``advance(dt)`` moves it.

    For tests and the headless demo; production passes ``time.time``.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (must be >= 0) and return the new time."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards / 时钟不能倒退")
        self._now += seconds
        return self._now


@dataclass
class PlayedClip:
    """One WAV a :class:`RecordingSink` was asked to play, with what happened to it."""

    wav: bytes
    started_at: float
    duration: float
    finished_at: float | None = None
    cut_off: bool = False  # stopped, or another play() started before it ended


class RecordingSink:
    """An :class:`AudioSink` that records every WAV instead of playing it (no sound card needed).

    A clip "plays" for its real duration on ``clock``: :meth:`update` finishes it once that much
    time has passed (``auto_finish=True``), or the test ends it explicitly with
    :meth:`finish_current`. A ``play`` while a clip is still playing marks that clip ``cut_off``,
    so tests can assert nothing was interrupted.
    """

    def __init__(self, clock: Callable[[], float] | None = None, *, auto_finish: bool = True) -> None:
        self.clock: Callable[[], float] = clock if clock is not None else (lambda: 0.0)
        self.auto_finish = auto_finish
        self.played: list[PlayedClip] = []
        self._on_finished: Callable[[], None] | None = None

    @property
    def playing(self) -> PlayedClip | None:
        """The clip currently playing, if any."""
        return self.played[-1] if self._on_finished is not None else None

    def play(self, wav: bytes, on_finished: Callable[[], None]) -> None:
        """Record ``wav`` as started now; ``on_finished`` runs when it is finished."""
        now = self.clock()
        if self.playing is not None:
            self.played[-1].cut_off = True
            self.played[-1].finished_at = now
        self.played.append(PlayedClip(wav=wav, started_at=now, duration=duration(wav)))
        self._on_finished = on_finished

    def stop(self) -> None:
        """Abandon the current clip (marked ``cut_off``) without calling its ``on_finished``."""
        if self.playing is not None:
            self.played[-1].cut_off = True
            self.played[-1].finished_at = self.clock()
        self._on_finished = None

    def finish_current(self) -> None:
        """End the current clip now and call its ``on_finished``; does nothing when idle."""
        callback = self._on_finished
        if callback is None:
            return
        self.played[-1].finished_at = self.clock()
        self._on_finished = None
        callback()

    def update(self, now: float | None = None) -> None:
        """Finish the current clip if ``auto_finish`` and its duration has elapsed at ``now`` (default: clock)."""
        clip = self.playing
        now = self.clock() if now is None else now
        if self.auto_finish and clip is not None and now >= clip.started_at + clip.duration:
            self.finish_current()
