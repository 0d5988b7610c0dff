"""Offline speech shared by the screens: voice packs, the audio sink protocol and playback.

* :mod:`voice.pack`: voice packs (a folder of recorded clips, ``pack.json``), splicing calls and kiosk
  prompts from them, and building the default pack with espeak-ng (docs/voice.md). Standard library only.
* :mod:`voice.sink`: the :class:`~voice.sink.AudioSink` protocol and :class:`~voice.sink.RecordingSink`
  (records instead of playing: tests, the headless demo).
* :mod:`voice.qt_audio`: :class:`~voice.qt_audio.QtAudioSink`, playback through QtMultimedia.

The shipped default pack is package data (``voice/voices/default/``), read with :mod:`importlib.resources`.
The wall display (announcements) and the kiosk (spoken guidance) both stand on this package; it stands on
the core alone, so the screens stay independent of each other.
"""
