"""The wall display's announcement queue: which call is highlighted, and what is read aloud.

Pure Python and clock-driven: no Qt, no threads, no sleeps. The owner calls :meth:`Announcer.tick`
regularly (the Qt display from a QTimer, tests after advancing a :class:`~voice.sink.ManualClock`), and the
audio sink calls back when a clip has finished. The rules:

* calls are shown and announced strictly in arrival order; one announcement never cuts off
  another and none is skipped;
* each live call stays highlighted for at least ``min_display_seconds``, even if the next call
  arrives sooner (the next one waits its turn);
* a call is identified by ``(id, kind, call_count)``: a snapshot/resync that replays a call is
  ignored, a recall (a new call count) is shown and announced again;
* a call that is older than ``max_age_seconds`` when it arrives, or is enqueued with
  ``announce=False`` (e.g. from a state snapshot), is shown but not announced and does not hold
  the screen, so a reconnecting display does not read out or replay old calls;
* when muted, calls still pass through the queue and the screen, but nothing is played.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from queuehall.voice.pack import VoiceError, VoicePack, compose_call, duration, render_announcement
from queuehall.voice.sink import AudioSink

log = logging.getLogger(__name__)

KINDS = ("call", "recall", "transfer")
DEFAULT_MAX_AGE_SECONDS = 120.0
DEFAULT_MIN_DISPLAY_SECONDS = 5.0
# How long past a clip's own length we wait for the sink's on_finished before giving up on it,
# so a broken audio device cannot stall the screen forever.
DEFAULT_FINISH_GRACE_SECONDS = 5.0
_SEEN_LIMIT = 4096  # remembered call keys; far more than a day's calls at one hall's display


@dataclass(frozen=True)
class Call:
    """One call event from the broker.

    ``call_count`` is how many times this ticket has been called (1 for the first call, 2 for the
    first recall...). ``issued_at`` is when the broker made the call, on the same clock as the
    Announcer's (wall time, ``time.time()``, in production); ``None`` means "now".
    """

    id: str
    label: str
    counter: int
    kind: str = "call"
    call_count: int = 1
    issued_at: float | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        """The identity used to drop replays: ``(id, kind, call_count)``."""
        return (self.id, self.kind, self.call_count)


@dataclass
class _Item:
    call: Call
    announce: bool
    hold: float  # seconds the call keeps the highlight at minimum


class Announcer:
    """Orders calls for the screen highlight and the voice; see the module docstring for the rules.

    ``clock`` returns the current time in seconds (``time.time`` in production, so that
    ``Call.issued_at`` from the broker can be compared with it). ``on_highlight`` (optional) is
    called with each call as it takes the highlight.
    """

    def __init__(
        self,
        pack: VoicePack,
        sink: AudioSink,
        clock: Callable[[], float],
        *,
        repeat: int = 1,
        min_display_seconds: float = DEFAULT_MIN_DISPLAY_SECONDS,
        languages: Sequence[str] = ("zh", "en"),
        volume: float = 1.0,
        muted: bool = False,
        chime: bool = True,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        finish_grace_seconds: float = DEFAULT_FINISH_GRACE_SECONDS,
        on_highlight: Callable[[Call], None] | None = None,
    ) -> None:
        if min_display_seconds < 0 or max_age_seconds < 0 or finish_grace_seconds < 0:
            raise VoiceError(
                "ANNOUNCER_BAD_OPTION",
                "显示时长、最大时效和等待时长不能为负数。",
                "min_display_seconds, max_age_seconds and finish_grace_seconds must not be negative.",
            )
        self._pack = pack
        self._sink = sink
        self._clock = clock
        self._languages = tuple(languages)
        self._chime = chime
        self.repeat = repeat
        self.volume = volume
        self.min_display_seconds = min_display_seconds
        self.max_age_seconds = max_age_seconds
        self.finish_grace_seconds = finish_grace_seconds
        self._on_highlight = on_highlight
        self._muted = muted
        # Render once up front so a bad option (repeat, volume, languages) fails here, not mid-queue.
        render_announcement(pack, "A1", 1, languages=self._languages, repeat=repeat, chime=chime, volume=volume)

        self._queue: deque[_Item] = deque()
        self._current: _Item | None = None
        self._current_started = 0.0
        self._current_done = True
        self._playing = False
        self._play_token = 0
        self._play_deadline = 0.0
        self._seen: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        self._recent: deque[Call] = deque(maxlen=20)
        self._ticking = False

    # -- input ---------------------------------------------------------------------------------

    def enqueue(self, call: Call, *, announce: bool = True) -> bool:
        """Queue ``call`` for the screen and (if live, fresh and not muted) the voice.

        Returns False, doing nothing, if a call with the same ``(id, kind, call_count)`` was
        already enqueued (a resync replay). ``announce=False`` (e.g. calls learnt from a state
        snapshot) or an ``issued_at`` older than ``max_age_seconds`` shows the call without
        announcing it. Raises ``VoiceError`` (ANNOUNCER_BAD_CALL, or VOICE_BAD_LABEL /
        VOICE_BAD_COUNTER) for a call that cannot be shown and read out.
        """
        self._validate(call)
        if call.key in self._seen:
            return False
        self._seen[call.key] = None
        if len(self._seen) > _SEEN_LIMIT:
            self._seen.popitem(last=False)
        now = self._clock()
        stale = call.issued_at is not None and now - call.issued_at > self.max_age_seconds
        live = announce and not stale
        # Old/snapshot calls do not hold the screen: on reconnect they settle at once, and the
        # last of them simply stays highlighted.
        self._queue.append(_Item(call=call, announce=live, hold=self.min_display_seconds if live else 0.0))
        self.tick(now)
        return True

    def _validate(self, call: Call) -> None:
        if not isinstance(call.id, str) or not call.id:
            raise VoiceError("ANNOUNCER_BAD_CALL", "呼叫缺少 id。", "The call has no id.")
        if call.kind not in KINDS:
            raise VoiceError(
                "ANNOUNCER_BAD_CALL",
                f"呼叫类型“{call.kind}”无效（应为 {', '.join(KINDS)}）。",
                f"Call kind {call.kind!r} is invalid (expected one of {', '.join(KINDS)}).",
            )
        if isinstance(call.call_count, bool) or not isinstance(call.call_count, int) or call.call_count < 1:
            raise VoiceError(
                "ANNOUNCER_BAD_CALL",
                f"呼叫次数 {call.call_count!r} 无效（应为正整数）。",
                f"Call count {call.call_count!r} is invalid (must be a positive integer).",
            )
        for lang in self._languages:
            compose_call(call.label, call.counter, lang)  # raises VOICE_BAD_LABEL / VOICE_BAD_COUNTER

    # -- settings ------------------------------------------------------------------------------

    @property
    def muted(self) -> bool:
        """Whether announcements are silent (calls are still shown)."""
        return self._muted

    def set_muted(self, muted: bool) -> None:
        """Mute or unmute. Muting also stops the announcement playing now: the operator wants silence."""
        self._muted = muted
        if muted and self._playing:
            self._sink.stop()
            self._playing = False
            self.tick()

    # -- driving -------------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> None:
        """Advance the queue to time ``now`` (default: the clock). Cheap; call it often (e.g. 10×/s).

        Finishes the current call once its audio has ended and its minimum display time has passed,
        then highlights and announces the next queued call.
        """
        if self._ticking:  # a sink that calls on_finished synchronously re-enters here
            return
        self._ticking = True
        try:
            self._advance(self._clock() if now is None else now)
        finally:
            self._ticking = False

    def _advance(self, now: float) -> None:
        while True:
            if not self._current_done:
                if self._playing:
                    if now < self._play_deadline:
                        return
                    log.warning("audio sink did not report the end of an announcement; moving on")
                    self._sink.stop()
                    self._playing = False
                if now - self._current_started < self._current_hold():
                    return
                self._current_done = True
            if not self._queue:
                return
            self._start(self._queue.popleft(), now)

    def _current_hold(self) -> float:
        return self._current.hold if self._current is not None else 0.0

    def _start(self, item: _Item, now: float) -> None:
        self._current = item
        self._current_started = now
        self._current_done = False
        self._recent.appendleft(item.call)
        if self._on_highlight is not None:
            self._on_highlight(item.call)
        if not item.announce or self._muted:
            return
        wav = render_announcement(
            self._pack,
            item.call.label,
            item.call.counter,
            languages=self._languages,
            repeat=self.repeat,
            chime=self._chime,
            volume=self.volume,
        )
        self._play_token += 1
        token = self._play_token
        self._playing = True
        self._play_deadline = now + duration(wav) + self.finish_grace_seconds
        self._sink.play(wav, lambda: self._finished(token))

    def _finished(self, token: int) -> None:
        if token != self._play_token or not self._playing:
            return  # a late callback for a clip we already gave up on or stopped
        self._playing = False
        self.tick()

    def close(self) -> None:
        """Stop any announcement and drop the queue (on shutdown)."""
        if self._playing:
            self._sink.stop()
            self._playing = False
        self._queue.clear()
        self._current_done = True

    # -- state for the screen ------------------------------------------------------------------

    def current_highlight(self) -> Call | None:
        """The call the screen should highlight now: the latest one taken from the queue (None before any)."""
        return self._current.call if self._current is not None else None

    def recent(self, n: int = 5) -> list[Call]:
        """The last ``n`` highlighted calls, newest first (for a "recently called" list)."""
        return list(self._recent)[:n]

    @property
    def pending(self) -> int:
        """How many calls wait behind the current one."""
        return len(self._queue)

    @property
    def is_playing(self) -> bool:
        """Whether an announcement is playing now."""
        return self._playing

    def is_idle(self) -> bool:
        """True when nothing is playing, nothing is queued and the current call's display time is over."""
        return not self._queue and self._current_done
