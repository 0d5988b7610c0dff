"""The announcement queue (display/announcer.py) on a manual clock, and QtAudioSink (voice/qt_audio.py)."""

from __future__ import annotations

import itertools
import logging
import math
import os
from array import array
from collections.abc import Callable

import pytest
from pytestqt.qtbot import QtBot

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from queuehall.display.announcer import Announcer, Call
from queuehall.voice.pack import VoiceError, VoicePack, duration, load_pack, render_announcement, write_wav
from queuehall.voice.sink import AudioSink, ManualClock, RecordingSink

T0 = 1_700_000_000.0  # a wall-clock time, like time.time()
STEP = 0.05


@pytest.fixture(scope="module")
def pack() -> VoicePack:
    return load_pack()


class Rig:
    """An Announcer wired to a RecordingSink on a ManualClock, with a highlight log."""

    def __init__(self, pack: VoicePack, *, sink: AudioSink | None = None, **options: object) -> None:
        self.pack = pack
        self.clock = ManualClock(T0)
        self.sink = RecordingSink(self.clock)
        self.highlights: list[tuple[float, str]] = []
        options.setdefault("min_display_seconds", 4.0)
        self.announcer = Announcer(
            pack,
            sink if sink is not None else self.sink,
            self.clock,
            on_highlight=lambda call: self.highlights.append((self.clock(), call.label)),
            **options,  # type: ignore[arg-type]
        )

    def run(self, seconds: float) -> None:
        """Let ``seconds`` pass in small steps, as the display's QTimer would."""
        for _ in range(round(seconds / STEP)):
            self.clock.advance(STEP)
            self.sink.update()
            self.announcer.tick()

    def run_until_idle(self, limit: float = 120.0) -> None:
        end = self.clock() + limit
        while not (self.announcer.is_idle() and self.sink.playing is None):
            assert self.clock() < end, "the announcer never became idle"
            self.run(STEP)

    def expected_wav(self, label: str, counter: int) -> bytes:
        return render_announcement(self.pack, label, counter)


def test_three_quick_calls_play_in_order_uncut(pack: VoicePack) -> None:
    rig = Rig(pack)
    calls = [Call("t1", "A001", 1), Call("t2", "A002", 2), Call("t3", "B003", 5)]
    for call in calls:
        assert rig.announcer.enqueue(call)
        rig.run(0.1)
    assert rig.announcer.pending == 2  # the first one is playing, the others wait
    rig.run_until_idle()

    played = rig.sink.played
    assert [p.wav for p in played] == [rig.expected_wav(c.label, c.counter) for c in calls]
    assert not any(p.cut_off for p in played)
    for p in played:  # each played to its end...
        assert p.finished_at is not None and p.finished_at >= p.started_at + p.duration
    for before, after in itertools.pairwise(played):  # ...before the next began
        assert after.started_at >= before.finished_at  # type: ignore[operator]
    assert [label for _, label in rig.highlights] == ["A001", "A002", "B003"]
    assert rig.announcer.current_highlight() == calls[-1]  # the last call stays on screen
    assert [c.label for c in rig.announcer.recent(2)] == ["B003", "A002"]


def test_min_display_time_holds_the_highlight(pack: VoicePack) -> None:
    rig = Rig(pack, min_display_seconds=20.0)
    rig.announcer.enqueue(Call("t1", "A001", 1))
    audio = duration(rig.expected_wav("A001", 1))
    assert audio < 20.0
    rig.announcer.enqueue(Call("t2", "A002", 2))
    rig.run(audio + 1.0)
    assert rig.sink.playing is None  # the first announcement is over...
    assert rig.announcer.current_highlight().label == "A001"  # ...but its 20 s are not  # type: ignore[union-attr]
    rig.run_until_idle()
    (t1, first), (t2, second) = rig.highlights
    assert (first, second) == ("A001", "A002")
    assert 20.0 <= t2 - t1 < 20.0 + 2 * STEP
    assert len(rig.sink.played) == 2


def test_audio_longer_than_min_display_is_not_cut(pack: VoicePack) -> None:
    rig = Rig(pack, min_display_seconds=0.5, repeat=2)
    rig.announcer.enqueue(Call("t1", "A001", 1))
    rig.announcer.enqueue(Call("t2", "A002", 2))
    rig.run_until_idle()
    first, second = rig.sink.played
    assert first.duration > 10.0 and not first.cut_off
    assert second.started_at >= first.started_at + first.duration


def test_resync_replay_is_not_announced_again(pack: VoicePack) -> None:
    rig = Rig(pack)
    call = Call("t1", "A012", 3, issued_at=T0)
    assert rig.announcer.enqueue(call)
    rig.run_until_idle()
    rig.announcer.enqueue(Call("t2", "A013", 4, issued_at=rig.clock()))
    rig.run_until_idle()
    # A snapshot after a reconnect replays both calls, unchanged.
    assert not rig.announcer.enqueue(Call("t1", "A012", 3, issued_at=T0))
    assert not rig.announcer.enqueue(Call("t2", "A013", 4, issued_at=T0), announce=False)
    rig.run_until_idle()
    assert len(rig.sink.played) == 2
    assert [label for _, label in rig.highlights] == ["A012", "A013"]


def test_recall_and_transfer_are_announced_again(pack: VoicePack) -> None:
    rig = Rig(pack)
    rig.announcer.enqueue(Call("t1", "A012", 3))
    assert rig.announcer.enqueue(Call("t1", "A012", 3, kind="recall", call_count=2))
    assert rig.announcer.enqueue(Call("t1", "A012", 7, kind="transfer", call_count=3))
    assert not rig.announcer.enqueue(Call("t1", "A012", 3, kind="recall", call_count=2))  # replayed recall
    rig.run_until_idle()
    assert [p.wav for p in rig.sink.played] == [
        rig.expected_wav("A012", 3),
        rig.expected_wav("A012", 3),
        rig.expected_wav("A012", 7),
    ]


def test_muted_calls_are_shown_not_played(pack: VoicePack) -> None:
    rig = Rig(pack, muted=True, min_display_seconds=3.0)
    rig.announcer.enqueue(Call("t1", "A001", 1))
    rig.announcer.enqueue(Call("t2", "A002", 2))
    assert rig.announcer.current_highlight().label == "A001"  # type: ignore[union-attr]
    rig.run_until_idle()
    assert rig.sink.played == []
    (t1, _), (t2, _) = rig.highlights
    assert 3.0 <= t2 - t1 < 3.0 + 2 * STEP  # the screen still paces them

    rig.announcer.set_muted(False)
    rig.announcer.enqueue(Call("t3", "A003", 3))
    rig.run(1.0)
    assert len(rig.sink.played) == 1
    rig.announcer.set_muted(True)  # the operator wants silence now
    assert rig.sink.played[0].cut_off and rig.sink.playing is None
    rig.announcer.enqueue(Call("t4", "A004", 4))
    rig.run_until_idle()
    assert len(rig.sink.played) == 1
    assert rig.announcer.current_highlight().label == "A004"  # type: ignore[union-attr]


def test_old_calls_are_shown_not_announced(pack: VoicePack) -> None:
    rig = Rig(pack, max_age_seconds=120.0)
    # Reconnecting: the broker's recent calls arrive at once, all older than two minutes.
    for i in range(5):
        rig.announcer.enqueue(Call(f"old{i}", f"A00{i}", i + 1, issued_at=T0 - 600 + i))
    assert rig.announcer.current_highlight().label == "A004"  # type: ignore[union-attr]
    assert rig.announcer.is_idle() and rig.sink.played == []  # settled at once, silently
    rig.announcer.enqueue(Call("new", "B001", 9, issued_at=T0 - 1.0))  # live
    rig.announcer.enqueue(Call("snap", "B002", 8), announce=False)  # learnt from a snapshot
    rig.run_until_idle()
    assert [p.wav for p in rig.sink.played] == [rig.expected_wav("B001", 9)]
    assert rig.announcer.current_highlight().label == "B002"  # type: ignore[union-attr]


class HoldingSink:
    """A sink on a device that never reports the end of a clip; keeps the callbacks for later."""

    def __init__(self) -> None:
        self.played: list[bytes] = []
        self.callbacks: list[Callable[[], None]] = []
        self.stops = 0

    def play(self, wav: bytes, on_finished: Callable[[], None]) -> None:
        self.played.append(wav)
        self.callbacks.append(on_finished)

    def stop(self) -> None:
        self.stops += 1


def test_stalled_sink_does_not_stall_the_screen(pack: VoicePack, caplog: pytest.LogCaptureFixture) -> None:
    sink = HoldingSink()
    rig = Rig(pack, sink=sink, finish_grace_seconds=2.0)
    rig.announcer.enqueue(Call("t1", "A001", 1))
    rig.announcer.enqueue(Call("t2", "A002", 2))
    audio = duration(sink.played[0])
    with caplog.at_level(logging.WARNING, logger="queuehall.display.announcer"):
        rig.run(audio + 1.0)
        assert len(sink.played) == 1  # still waiting within the grace period
        rig.run(1.5)
    assert len(sink.played) == 2 and sink.stops == 1  # given up on, stopped, next one started
    assert "did not report the end" in caplog.text
    sink.callbacks[0]()  # the first clip's late callback is ignored...
    assert rig.announcer.is_playing
    sink.callbacks[1]()  # ...the second one's is not
    assert not rig.announcer.is_playing
    assert rig.announcer.current_highlight().label == "A002"  # type: ignore[union-attr]


class InstantSink:
    """A sink whose clips end the moment they start (calls on_finished inside play)."""

    def __init__(self) -> None:
        self.played: list[bytes] = []

    def play(self, wav: bytes, on_finished: Callable[[], None]) -> None:
        self.played.append(wav)
        on_finished()

    def stop(self) -> None:
        raise AssertionError("nothing to stop")


def test_synchronous_sink_callbacks_keep_order_and_pacing(pack: VoicePack) -> None:
    sink = InstantSink()
    rig = Rig(pack, sink=sink, min_display_seconds=2.0)
    for i in range(3):
        rig.announcer.enqueue(Call(f"t{i}", f"A00{i}", i + 1))
    assert len(sink.played) == 1  # the next waits for the first one's display time
    rig.run(10.0)
    assert sink.played == [rig.expected_wav(f"A00{i}", i + 1) for i in range(3)]
    times = [t for t, _ in rig.highlights]
    assert all(b - a >= 2.0 for a, b in itertools.pairwise(times))


def test_bad_calls_and_options(pack: VoicePack) -> None:
    rig = Rig(pack)
    for call, code in [
        (Call("t1", "A001", 1, kind="cancel"), "ANNOUNCER_BAD_CALL"),
        (Call("", "A001", 1), "ANNOUNCER_BAD_CALL"),
        (Call("t1", "A001", 1, call_count=0), "ANNOUNCER_BAD_CALL"),
        (Call("t1", "A-01", 1), "VOICE_BAD_LABEL"),
        (Call("t1", "A001", 0), "VOICE_BAD_COUNTER"),
    ]:
        with pytest.raises(VoiceError) as err:
            rig.announcer.enqueue(call)
        assert err.value.code == code
    assert rig.announcer.current_highlight() is None
    assert rig.announcer.enqueue(Call("t1", "A001", 1))  # a rejected call did not poison its id
    with pytest.raises(VoiceError, match="VOICE_BAD_OPTION"):
        Announcer(pack, RecordingSink(), ManualClock(), volume=3.0)
    with pytest.raises(VoiceError, match="ANNOUNCER_BAD_OPTION"):
        Announcer(pack, RecordingSink(), ManualClock(), min_display_seconds=-1)


# -- QtAudioSink ---------------------------------------------------------------------------------


def _short_wav(seconds: float = 0.3, rate: int = 16000) -> bytes:
    n = int(seconds * rate)
    tone = array("h", (int(8000 * math.sin(2 * math.pi * 660 * i / rate)) for i in range(n)))
    return write_wav(tone, rate)


def test_qt_audio_sink_plays_and_reports_the_end(qtbot: QtBot) -> None:
    from queuehall.voice.qt_audio import QtAudioSink

    sink = QtAudioSink(volume=0.8)
    finished: list[str] = []
    sink.play(_short_wav(), lambda: finished.append("a"))
    assert sink.is_playing()  # play() returned without blocking
    qtbot.waitUntil(lambda: finished == ["a"], timeout=5000)
    assert not sink.is_playing()
    assert sink.volume() == pytest.approx(0.8)


def test_qt_audio_sink_stop_and_bad_media(qtbot: QtBot, caplog: pytest.LogCaptureFixture) -> None:
    from queuehall.voice.qt_audio import QtAudioSink

    sink = QtAudioSink()
    finished: list[str] = []
    sink.play(_short_wav(), lambda: finished.append("stopped"))
    sink.stop()
    sink.play(_short_wav(), lambda: finished.append("second"))
    qtbot.waitUntil(lambda: finished == ["second"], timeout=5000)
    with caplog.at_level(logging.WARNING, logger="queuehall.voice.qt_audio"):
        sink.play(b"RIFF" + b"\x00" * 64, lambda: finished.append("garbage"))
        qtbot.waitUntil(lambda: finished == ["second", "garbage"], timeout=5000)
    assert "announcement" in caplog.text  # logged, not raised
