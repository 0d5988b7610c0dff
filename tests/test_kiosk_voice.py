"""Spoken guidance at the kiosk (issue 15, 适老化): the prompts of each step, in the language on screen, from the
offline voice pack, through a recording audio sink; staff mute; the hall's [kiosk] settings; no audio device.

The kiosk runs with its real widgets (pytest-qt, offscreen) against a real broker on loopback and a file printer.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from queuehall.broker.config import ConfigError, KioskRules, load_config, parse_config
from queuehall.broker.server import Broker
from queuehall.broker.storage import load_hall, open_store
from queuehall.kiosk.guide import VoiceGuide, all_prompt_keys, prompt_for
from queuehall.kiosk.model import Issued, KioskModel, KioskSettings, Phase, PrinterHealth, Screen
from queuehall.kiosk.window import STILL_THERE_MS, WAIT_PROMPT_MS, KioskWindow
from queuehall.voice.pack import (
    PAUSE,
    VoiceError,
    VoicePack,
    counter_keys,
    duration,
    load_pack,
    prompt_keys,
    render_prompt,
    rms,
    ticket_keys,
)
from queuehall.voice.sink import ManualClock, RecordingSink

from queuehall.clock import ManualClock as HallClock
from tests.hall_factory import install_pins
from tests.test_kiosk_checkin_gui import scan
from tests.test_kiosk_gui import (  # noqa: F401  (fixtures)
    FAST,
    TUESDAY_9,
    RunningBroker,
    _free_port_pair,
    _screenshots_written,
    click,
    empty_db,
    hall,
    make_kiosk,
    open_passport,
    printed,
    shot,
    wait_screen,
)

AUDIBLE = 0.02  # RMS of a prompt: espeak-ng's speech peaks at -2 dBFS, silence is 0


@pytest.fixture(scope="module")
def pack() -> VoicePack:
    return load_pack()


@pytest.fixture
def quiet_hall(tmp_path: Path, empty_db: Path) -> Iterator[RunningBroker]:  # noqa: F811
    """The default hall with ``[kiosk] voice_guidance = false, large_text_voice = true``."""
    clock = HallClock(TUESDAY_9)
    shutil.copy(empty_db, tmp_path / "q.db")
    store = open_store(f"sqlite:///{tmp_path}/q.db")
    config = replace(load_config(), kiosk=KioskRules(voice_guidance=False, large_text_voice=True))
    install_pins(store, config)
    port = _free_port_pair()
    broker = Broker(load_hall(config, clock, store), host="127.0.0.1", port=port)
    broker.bind()
    thread = threading.Thread(target=broker.serve_forever, name="test-broker", daemon=True)
    thread.start()
    running = RunningBroker(broker, clock, port, thread)
    yield running
    running.stop()
    store.close()


_MADE: list[KioskWindow] = []


@pytest.fixture(autouse=True)
def _shut_down() -> Iterator[None]:
    yield
    while _MADE:
        _MADE.pop().shutdown()


def voiced_kiosk(qtbot: Any, hall: RunningBroker, tmp_path: Path, pack: VoicePack,  # noqa: F811
                 **settings: Any) -> tuple[KioskWindow, RecordingSink]:
    (tmp_path / "printer").mkdir(exist_ok=True)
    sink = RecordingSink(ManualClock())
    w = make_kiosk(qtbot, hall, tmp_path / "printer" / "tickets.bin", mode="text", audio=sink, voice_pack=pack,
                   settings=KioskSettings(**{**vars(FAST), **settings}))
    _MADE.append(w)
    wait_screen(qtbot, w, Screen.START)
    return w, sink


def said(w: KioskWindow) -> list[tuple[str, str]]:
    return [(p.name, p.lang) for p in w.guide.played]


# --------------------------------------------------------------------------------------------------
# The pack has every sentence; prompts are spliced and audible


def test_the_shipped_pack_has_every_prompt_the_kiosk_says(pack: VoicePack) -> None:
    assert pack.missing_prompts() == []
    assert all_prompt_keys() <= set(prompt_keys())  # every sentence the guide says is a clip of the pack
    for key in prompt_keys():
        clip = pack.clips[key]
        assert 0.3 < len(clip) / pack.sample_rate < 6.0, key
        assert rms(render_prompt(pack, [key])) > AUDIBLE, key


def test_a_prompt_is_the_clips_with_pauses_and_refuses_gaps(pack: VoicePack) -> None:
    take = render_prompt(pack, ["zh:请取走号票"])
    full = render_prompt(pack, ["zh:请取走号票", PAUSE, "zh:您的号码是", *ticket_keys("A012", "zh")])
    assert duration(full) > duration(take) + 1.0
    assert ticket_keys("a012", "en") == ["en:A", "en:zero", "en:one", "en:two"]
    assert counter_keys(12, "zh") == ["zh:十", "zh:二"]
    with pytest.raises(VoiceError, match="VOICE_CLIP_MISSING"):
        render_prompt(pack, ["zh:没有这句"])
    with pytest.raises(VoiceError, match="VOICE_BAD_OPTION"):
        render_prompt(pack, [PAUSE])
    with pytest.raises(VoiceError, match="VOICE_BAD_OPTION"):
        render_prompt(pack, ["zh:请取走号票"], volume=2)


def _model(lang: str = "zh") -> KioskModel:
    clock = HallClock(TUESDAY_9)
    m = KioskModel(settings=KioskSettings(language=lang), clock=clock.now)
    m.on_state({"services": {"passport": {"code": "passport", "name_zh": "护照", "name_en": "Passport",
                                          "department": "d", "open": True}},
                "counters": {"3": {"number": 3, "services": ["passport"], "state": "open"},
                             "5": {"number": 5, "services": ["passport"], "state": "open"},
                             "7": {"number": 7, "services": ["passport"], "state": "closed"}},
                "hall": {}})
    m.on_connection(True)
    m.on_printer_status(PrinterHealth.from_status(None))
    return m


def test_the_confirmation_reads_the_number_and_the_open_counters_in_each_language() -> None:
    m = _model()
    m.issued = Issued(ticket={"label": "A012", "service": "passport"}, ahead=2, wait_minutes=5, fields={})
    m.phase = Phase.CONFIRMATION
    p = prompt_for(m)
    assert p is not None and p.name == "confirmation"
    assert p.keys == ("zh:请取走号票", PAUSE, "zh:您的号码是", "zh:A", "zh:零", "zh:一", "zh:二", PAUSE,
                      "zh:请留意叫号", PAUSE, "zh:到", "zh:三", PAUSE, "zh:五", "zh:号", "zh:窗口", "zh:办理")
    m.set_language("en")
    p = prompt_for(m)
    assert p is not None and p.keys[-4:] == ("en:when called, go to counters", "en:three", "en:and", "en:five")


def test_printer_and_server_problems_are_said_and_staff_pages_are_silent() -> None:
    m = _model()
    m.on_printer_status(PrinterHealth.from_error("PAPER_OUT", "缺纸", "paper out"))
    assert m.screen == Screen.ASK_STAFF
    p = prompt_for(m)
    assert p is not None and p.keys == ("zh:号票打印纸已用完", PAUSE, "zh:请联系工作人员")
    m.on_connection(False)
    p = prompt_for(m)
    assert p is not None and p.name == "out_of_service"
    m.on_connection(True)
    m.on_printer_status(PrinterHealth.from_status(None))
    m.open_settings()
    assert prompt_for(m) is None


def test_the_hall_turns_guidance_off_the_large_text_mode_back_on_and_staff_mute_wins() -> None:
    m = _model()
    assert m.voice_on  # on unless the hall says otherwise
    m.on_state({**m.state, "hall": {"kiosk": {"voice_guidance": False, "large_text_voice": True}}})
    assert not m.voice_on
    m.toggle_large_text()
    assert m.voice_on
    m.set_voice_muted(True)
    assert not m.voice_on
    m.on_state({**m.state, "hall": {"kiosk": {"voice_guidance": False, "large_text_voice": False}}})
    m.set_voice_muted(False)
    assert not m.voice_on  # large text alone, where the hall did not ask for it


def test_hall_toml_kiosk_table() -> None:
    from tests.test_config import minimal

    d = minimal()
    assert parse_config(d, "t").kiosk == KioskRules(voice_guidance=True, large_text_voice=False)
    d["kiosk"] = {"voice_guidance": False, "large_text_voice": True}
    assert parse_config(d, "t").kiosk == KioskRules(voice_guidance=False, large_text_voice=True)
    d["kiosk"] = {"voice_guidance": "yes"}
    with pytest.raises(ConfigError, match=r"kiosk\.voice_guidance") as bad:
        parse_config(d, "t")
    assert bad.value.code == "CONFIG_BAD_TYPE" or bad.value.code.startswith("CONFIG_")
    d["kiosk"] = {"voice": True}
    with pytest.raises(ConfigError, match="unknown key") as unknown:
        parse_config(d, "t")
    assert unknown.value.code == "CONFIG_UNKNOWN_KEY"


def test_a_pack_without_prompts_leaves_the_kiosk_silent_and_says_so(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    display_only = VoicePack(name="calls-only", languages=("zh", "en"), sample_rate=16000, clips={})
    guide = VoiceGuide(RecordingSink(), None)
    with caplog.at_level(logging.WARNING, logger="queuehall.kiosk"):
        guide.set_pack(display_only)
        assert guide.follow(_model(), present=True, enabled=True) is None
    assert "lacks" in caplog.text and "kiosk prompts" in caplog.text


# --------------------------------------------------------------------------------------------------
# The kiosk's real widgets, a real broker, a recording sink


def test_taking_a_ticket_is_guided_step_by_step_in_the_language_on_screen(
        qtbot: Any, hall: RunningBroker, tmp_path: Path, pack: VoicePack) -> None:  # noqa: F811
    w, sink = voiced_kiosk(qtbot, hall, tmp_path, pack)
    assert said(w) == []  # nobody has touched the kiosk: it does not talk to the hall
    open_passport(qtbot, w)  # a department, then a service
    assert said(w) == [("start", "zh"), ("details", "zh")]
    click(qtbot, w.header.lang)  # English on screen: the step is said again in English
    assert said(w)[-1] == ("details", "en")
    w.redraw()
    w.redraw()  # redraws (the clock ticks every second) never repeat a step
    assert said(w)[-1] == ("details", "en") and len(said(w)) == 3
    click(qtbot, w.details_page.confirm)
    wait_screen(qtbot, w, Screen.CONFIRMATION)
    # Printed within WAIT_PROMPT_MS: "printing, please wait" is not started at all (it would be cut off after a
    # syllable, and the player's start-up would compete with rendering the ticket).
    assert said(w)[-2:] == [("details", "en"), ("confirmation", "en")]
    last = w.guide.played[-1]
    assert last.keys[2:7] == ("en:your number is", "en:A", "en:zero", "en:zero", "en:one")
    assert last.keys[-1] in {"en:one", "en:two", "en:three"}  # the counters serving passports
    assert printed(tmp_path / "printer" / "tickets.bin")  # the voice never held up the printing
    # What reached the audio sink: one WAV per prompt, audible, each earlier one cut off by the next step.
    assert len(sink.played) == len(w.guide.played)
    assert all(rms(clip.wav) > AUDIBLE for clip in sink.played)
    assert sink.played[1].cut_off  # zh details: interrupted by the switch to English
    assert sink.played[2].cut_off  # en details: by the confirmation
    assert sink.playing is not None and not sink.played[-1].cut_off
    shot(w, "voice-01-confirmation-en")
    out = Path(__file__).resolve().parent / "artifacts" / "voice"
    out.mkdir(parents=True, exist_ok=True)
    (out / "kiosk-confirmation-en.wav").write_bytes(sink.played[-1].wav)  # to listen to
    click(qtbot, w.confirm_page.done)  # the citizen leaves: the start page is not announced as they go
    wait_screen(qtbot, w, Screen.START)
    assert said(w)[-1] == ("confirmation", "en") and sink.playing is None
    click(qtbot, w.start_page.dept_buttons["household"])  # the next citizen's first tap: welcome, in Chinese
    assert said(w)[-1] == ("start", "zh")


def test_a_slow_print_says_please_wait(qtbot: Any, hall: RunningBroker, tmp_path: Path,  # noqa: F811
                                      pack: VoicePack) -> None:
    w, sink = voiced_kiosk(qtbot, hall, tmp_path, pack)
    open_passport(qtbot, w)
    w.confirm()  # the printer's answer comes back through the event loop: still checking here
    assert w.model.busy and w.wait_timer.isActive() and w.wait_timer.interval() == WAIT_PROMPT_MS
    assert said(w)[-1] == ("details", "zh") and sink.playing is None  # the old prompt stopped at once
    w.wait_timer.timeout.emit()  # WAIT_PROMPT_MS later, still busy
    assert said(w)[-1] == ("printing", "zh")
    assert w.guide.played[-1].keys == ("zh:正在为您打印号票，请稍候",)
    wait_screen(qtbot, w, Screen.CONFIRMATION)
    assert said(w)[-1] == ("confirmation", "zh") and sink.played[-2].cut_off


def test_check_in_steps_and_a_refusal_are_guided(qtbot: Any, hall: RunningBroker, tmp_path: Path,  # noqa: F811
                                                 pack: VoicePack) -> None:
    w, _sink = voiced_kiosk(qtbot, hall, tmp_path, pack)
    booking = hall.request("book", service="passport", slot="2026-11-24T10:00")["booking"]
    hall.clock.set(TUESDAY_9.replace(hour=9, minute=55))
    click(qtbot, w.checkin.button)
    wait_screen(qtbot, w, Screen.CHECKIN)
    assert said(w) == [("checkin", "zh")]
    for ch in "2345":
        click(qtbot, w.checkin.keypad.keys[ch])
    click(qtbot, w.checkin.keypad.go)  # too short: a hint on screen, the same step
    assert said(w) == [("checkin", "zh")]
    scan(w, "not a booking at all")
    wait_screen(qtbot, w, Screen.CHECKIN_REFUSED)
    assert said(w)[-1] == ("checkin_refused", "zh")
    scan(w, booking["qr"])
    wait_screen(qtbot, w, Screen.CHECKED_IN, timeout=8000)
    qtbot.waitUntil(lambda: said(w)[-1] == ("checked_in", "zh"), timeout=5000)
    label = w.model.issued.ticket["label"] if w.model.issued else ""
    assert tuple(ticket_keys(label, "zh")) == w.guide.played[-1].keys[5:5 + len(label)]


def test_errors_are_said_printer_out_of_paper(qtbot: Any, hall: RunningBroker, tmp_path: Path,  # noqa: F811
                                              pack: VoicePack) -> None:
    from queuehall.kiosk.printing import SENTINEL_PAPER_OUT

    w, sink = voiced_kiosk(qtbot, hall, tmp_path, pack)
    open_passport(qtbot, w)
    Path(f"{tmp_path / 'printer' / 'tickets.bin'}{SENTINEL_PAPER_OUT}").touch()
    click(qtbot, w.details_page.confirm)
    wait_screen(qtbot, w, Screen.ASK_STAFF)
    assert said(w)[-1] == ("ask_staff_paper_out", "zh")
    assert w.guide.played[-1].keys == ("zh:号票打印纸已用完", PAUSE, "zh:请联系工作人员")
    assert rms(sink.played[-1].wav) > AUDIBLE


def test_staff_mute_silences_the_kiosk_and_is_kept(qtbot: Any, hall: RunningBroker, tmp_path: Path,  # noqa: F811
                                                   pack: VoicePack) -> None:
    w, sink = voiced_kiosk(qtbot, hall, tmp_path, pack)
    open_passport(qtbot, w)
    assert sink.playing is not None  # the details prompt
    for _ in range(5):
        click(qtbot, w.header.hall)  # the staff gesture
    wait_screen(qtbot, w, Screen.PIN)
    assert sink.playing is None  # staff pages are silent
    for key in "123456":
        click(qtbot, w.pin_page.keys[key])
    click(qtbot, w.pin_page.keys["ok"])
    wait_screen(qtbot, w, Screen.SETTINGS)
    page = w.settings_page
    assert page.voice.isChecked() and page.voice.text() == "语音引导：开"
    click(qtbot, page.voice)
    assert w.model.settings.voice_muted and page.voice.text() == "语音引导：已静音"
    shot(w, "voice-02-settings-muted")
    click(qtbot, page.back)
    wait_screen(qtbot, w, Screen.DETAILS)  # the settings were opened over the service page
    count = len(sink.played)
    click(qtbot, w.details_page.back)
    wait_screen(qtbot, w, Screen.START)
    open_passport(qtbot, w)
    click(qtbot, w.details_page.confirm)
    wait_screen(qtbot, w, Screen.CONFIRMATION)
    w._flow_timeout()  # the next citizen: the mute is a setting, kept after the idle reset
    assert w.model.settings.voice_muted
    open_passport(qtbot, w)
    assert len(sink.played) == count and sink.playing is None  # muted: nothing at all


def test_muting_stops_a_prompt_at_once_and_large_text_turns_guidance_on_where_the_hall_says_so(
        qtbot: Any, quiet_hall: RunningBroker, tmp_path: Path, pack: VoicePack) -> None:
    # The hall has turned guidance off ([kiosk] in hall.toml), but asks for it with the large-text mode.
    w, sink = voiced_kiosk(qtbot, quiet_hall, tmp_path, pack)
    assert w.model.state["hall"]["kiosk"] == {"voice_guidance": False, "large_text_voice": True}
    open_passport(qtbot, w)
    assert said(w) == []
    click(qtbot, w.details_page.back)
    wait_screen(qtbot, w, Screen.START)
    click(qtbot, w.header.large)  # one tap for large type: the guidance comes on and says where we are
    assert said(w) == [("start", "zh")] and sink.playing is not None
    w.model.set_voice_muted(True)
    w.redraw()
    assert sink.playing is None and sink.played[-1].cut_off  # muted mid-sentence: silence now


def test_idle_pages_ask_if_someone_is_still_there(qtbot: Any, hall: RunningBroker, tmp_path: Path,  # noqa: F811
                                                  pack: VoicePack) -> None:
    w, _sink = voiced_kiosk(qtbot, hall, tmp_path, pack)
    open_passport(qtbot, w)
    assert w.still_timer.isActive()
    assert w.still_timer.interval() == FAST.idle_ms - STILL_THERE_MS
    w.still_timer.timeout.emit()  # (the timer's delay is the idle time less 15 s)
    assert said(w)[-1] == ("still_there", "zh")
    w._flow_timeout()  # nobody touched: back to the start, in silence
    assert w.model.screen == Screen.START and said(w)[-1] == ("still_there", "zh")
    assert not w.guide.playing
    click(qtbot, w.start_page.dept_buttons["household"])  # someone new: the start page is said at their tap
    assert said(w)[-1] == ("start", "zh") and w.guide.playing


def test_the_kiosk_works_without_an_audio_device(qtbot: Any, hall: RunningBroker, tmp_path: Path,  # noqa: F811
                                                 pack: VoicePack) -> None:
    """The real QtAudioSink on a machine with no sound card and no PulseAudio: a ticket is still taken,
    printed and confirmed; the prompts go to the player, which plays them to nobody."""
    from queuehall.voice.qt_audio import QtAudioSink

    (tmp_path / "printer").mkdir()
    w = make_kiosk(qtbot, hall, tmp_path / "printer" / "tickets.bin", mode="text", audio=None, voice_pack=pack)
    _MADE.append(w)
    wait_screen(qtbot, w, Screen.START)
    qtbot.waitUntil(lambda: isinstance(w.guide.sink, QtAudioSink), timeout=5000)
    sink = w.guide.sink
    assert isinstance(sink, QtAudioSink)
    open_passport(qtbot, w)
    click(qtbot, w.details_page.confirm)
    wait_screen(qtbot, w, Screen.CONFIRMATION)
    assert said(w)[-1] == ("confirmation", "zh") and sink.is_playing()
    assert printed(tmp_path / "printer" / "tickets.bin")
    if sink.has_device:
        pytest.skip("this machine has an audio device: the no-device case was not exercised")


def test_a_voice_pack_that_loads_after_the_kiosk_closed_is_dropped_quietly(qtbot: Any, pack: VoicePack) -> None:
    """The pack loads on a thread; a kiosk closed before it finished (Ctrl-C within its first fraction of a
    second: tests/test_demo_x11.py) left a traceback 'Signal source has been deleted' on the way out. The
    thread's work is run here against a real signal whose object Qt has deleted."""
    import types

    import shiboken6
    from PySide6.QtCore import QObject, Signal

    class Gone(QObject):
        loaded = Signal(object)

    gone = Gone()
    signal = gone.loaded
    shiboken6.delete(gone)
    with pytest.raises(RuntimeError):
        signal.emit(None)  # what the old code did, uncaught, on its thread
    window = types.SimpleNamespace(_voice_pack_path=None, _pack_loaded=signal)
    KioskWindow._load_pack(window)  # type: ignore[arg-type]  # no exception: dropped, logged at debug
