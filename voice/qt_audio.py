"""Play announcement WAVs through QtMultimedia: the real :class:`voice.sink.AudioSink`.

QMediaPlayer decodes the WAV from an in-memory QBuffer (no temp files) and plays it
asynchronously, so the GUI thread never blocks. ``on_finished`` runs when the player reaches
EndOfMedia, or when the clip cannot be played at all (it is then logged), so the announcement
queue always moves on. On a machine without an audio device (no sound card, no PulseAudio /
PipeWire server) Qt logs "No audio device detected" and still plays to EndOfMedia in real time:
the display keeps its pacing, a warning is logged once, nothing crashes.

Needs PySide6-Addons (QtMultimedia) and the system library libpulse0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject, QTimer, QUrl, Signal
from PySide6.QtMultimedia import QAudioOutput, QMediaDevices, QMediaPlayer

log = logging.getLogger(__name__)


class QtAudioSink(QObject):
    """An AudioSink backed by QMediaPlayer + QAudioOutput; create and use it on the GUI thread.

    ``play`` replaces whatever is playing (the Announcer never overlaps clips); ``stop`` abandons
    the current clip without calling its ``on_finished``. ``volume`` (0.0–1.0) is the output
    device volume, applied on top of any gain already rendered into the WAV.

    ``playback_started`` is emitted when the player has actually started playing a clip (for the
    display benchmark's "call -> audio" latency).
    """

    playback_started = Signal()

    def __init__(self, parent: QObject | None = None, *, volume: float = 1.0) -> None:
        super().__init__(parent)
        self._player = QMediaPlayer(self)
        self._output = QAudioOutput(self)
        self._player.setAudioOutput(self._output)
        self._player.mediaStatusChanged.connect(self._on_status)
        self._player.errorOccurred.connect(self._on_error)
        self._player.playbackStateChanged.connect(self._on_playback_state)
        self._buffer: QBuffer | None = None
        self._on_finished: Callable[[], None] | None = None
        self._serial = 0
        self._finish_scheduled = -1
        self.set_volume(volume)
        self.has_device = bool(QMediaDevices.audioOutputs())
        if not self.has_device:
            log.warning(
                "没有可用的音频输出设备，语音播报将听不到 / no audio output device: announcements will not be heard"
            )

    def set_volume(self, volume: float) -> None:
        """Set the output volume, clamped to 0.0–1.0."""
        self._output.setVolume(min(1.0, max(0.0, float(volume))))

    def volume(self) -> float:
        """The output volume, 0.0–1.0."""
        return float(self._output.volume())

    def play(self, wav: bytes, on_finished: Callable[[], None]) -> None:
        """Start playing the complete WAV ``wav``; returns at once. ``on_finished`` runs once, later."""
        self._release()
        self._on_finished = on_finished
        self._serial += 1
        buffer = QBuffer(self)
        buffer.setData(QByteArray(wav))
        buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        self._buffer = buffer
        # The URL is only a format hint for the backend; the bytes come from the buffer.
        self._player.setSourceDevice(buffer, QUrl(f"announcement-{self._serial}.wav"))
        self._player.play()

    def stop(self) -> None:
        """Stop the current clip, if any, without calling its ``on_finished``."""
        self._on_finished = None
        self._release()

    def is_playing(self) -> bool:
        """Whether a clip has been started and has not finished or been stopped."""
        return self._on_finished is not None

    def _release(self) -> None:
        self._player.stop()
        self._player.setSource(QUrl())  # an empty URL clears the source and releases the buffer
        if self._buffer is not None:
            self._buffer.close()
            self._buffer.deleteLater()
            self._buffer = None

    def _on_status(self, status: QMediaPlayer.MediaStatus) -> None:
        if self._on_finished is None or self._finish_scheduled == self._serial:
            return
        if status == QMediaPlayer.MediaStatus.EndOfMedia:
            self._finish_soon()
        elif status == QMediaPlayer.MediaStatus.InvalidMedia:
            log.warning("无法播放语音片段（格式无效） / cannot play the announcement: invalid media")
            self._finish_soon()

    def _on_playback_state(self, state: QMediaPlayer.PlaybackState) -> None:
        if state == QMediaPlayer.PlaybackState.PlayingState and self._on_finished is not None:
            self.playback_started.emit()

    def _on_error(self, error: QMediaPlayer.Error, message: str) -> None:
        if error == QMediaPlayer.Error.NoError or self._on_finished is None or self._finish_scheduled == self._serial:
            return
        log.warning("语音播放出错 / announcement playback failed: %s (%s)", message, error.name)
        self._finish_soon()

    def _finish_soon(self) -> None:
        # Deferred to the next event-loop turn: the callback usually plays the next clip, and
        # re-entering QMediaPlayer from inside its own signal is not safe.
        serial = self._serial
        if self._finish_scheduled == serial:
            return  # an error and InvalidMedia (or EndOfMedia) for the same clip
        self._finish_scheduled = serial
        QTimer.singleShot(0, self, lambda: self._finish(serial))

    def _finish(self, serial: int) -> None:
        if serial != self._serial or self._on_finished is None:
            return  # stopped, or already finished (EndOfMedia and an error can both arrive)
        callback = self._on_finished
        self._on_finished = None
        self._release()
        callback()
