"""The wall display (display/): real widgets offscreen, a real broker on loopback, a recording sink.

Covers: a call reaching the screen; three quick calls announced in order, none cut off, each held
for the minimum display time (a manual clock, no sleeps); a broker restart (stale marking,
resynchronisation, nothing old announced); the counter screen; transfers; screenshots of the
hall screen (landscape and portrait, busy) and counter screens; one announcement's WAV through
the display path; the view-model's rules without widgets; the command line.
"""

from __future__ import annotations

import itertools
import wave
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pytestqt.qtbot import QtBot
from queuehall.broker.config import HallConfig
from queuehall.display.demo_display import DemoDisplayWindow
from queuehall.display.model import DisplayError, DisplayModel, DisplayOptions, HallClock, parse_size
from queuehall.display.window import DisplayWindow, HallScreen, apply_app_font
from queuehall.voice.pack import VoicePack, duration, load_pack, render_announcement, rms
from queuehall.voice.sink import ManualClock as SecondsClock
from queuehall.voice.sink import RecordingSink

from queuehall.client import BrokerClient
from queuehall.qtlink import QtLink
from queuehall.simulation import DEMO_PINS

if TYPE_CHECKING:
    from tests.broker_fixtures import BrokerThread

pytest_plugins = ["tests.broker_fixtures"]

T0 = 1_800_000_000.0
STEP = 0.25
MIN_DISPLAY = 4.0
LANDSCAPE = (1920, 1080)
PORTRAIT = (1080, 1920)


@pytest.fixture(scope="module")
def pack() -> VoicePack:
    return load_pack()


@pytest.fixture
def shots(artifacts_dir: Path) -> Path:
    d = artifacts_dir / "display"
    d.mkdir(parents=True, exist_ok=True)
    return d


class Hall:
    """The default hall (config/hall.toml) on a broker thread, with an admin client to drive it."""

    def __init__(self, bt: BrokerThread, config: HallConfig) -> None:
        self.bt = bt
        self.config = config
        self.client = BrokerClient(bt.endpoint, timeout=3.0)

    def do(self, command: str, **args: Any) -> dict[str, Any]:
        return self.client.request(command, **args)

    def sign_in(self, counter: int, post: str = "A") -> None:
        cfg = next(c for c in self.config.counters if c.number == counter)
        clerk_id = cfg.clerk_a if post == "A" else cfg.clerk_b
        self.do("sign_in", counter=counter, clerk=clerk_id, pin=DEMO_PINS[clerk_id])

    def take(self, service: str, n: int = 1) -> list[str]:
        return [self.do("take_ticket", service=service)["ticket"]["label"] for _ in range(n)]

    def call(self, counter: int) -> str:
        return str(self.do("call_next", counter=counter)["ticket"]["label"])

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def hall(start_broker: Callable[..., BrokerThread], hall_config: HallConfig) -> Iterator[Hall]:
    h = Hall(start_broker(config=hall_config), hall_config)
    yield h
    h.close()


class Screen:
    """A DisplayWindow on a QtLink, with a recording sink and a manual announcer clock."""

    def __init__(
        self, qtbot: QtBot, endpoint: str, pack: VoicePack, size: tuple[int, int] = LANDSCAPE, **options: Any
    ) -> None:
        from PySide6.QtWidgets import QApplication

        app = QApplication.instance()
        assert isinstance(app, QApplication)
        apply_app_font(app)
        self.qtbot = qtbot
        self.clock = SecondsClock(T0)
        self.sink = RecordingSink(self.clock)
        options.setdefault("min_display_seconds", MIN_DISPLAY)
        self.options = DisplayOptions(**options)
        self.link = QtLink(endpoint, role="display", name="test-wall", counter=self.options.counter)
        # The display only listens: any command it tried to send would be recorded here (and fail the test).
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.link.request = lambda type_, **args: self.requests.append((type_, args)) or ""  # type: ignore
        self.window = DisplayWindow(
            self.link, self.options, sink=self.sink, clock=self.clock, pack=pack, auto_tick=False
        )
        qtbot.addWidget(self.window)
        self.window.resize(*size)
        self.window.show()
        self.window.start()
        self.model = self.window.model

    def wait(self, cond: Callable[[], object], timeout: int = 5000) -> None:
        self.qtbot.waitUntil(lambda: bool(cond()), timeout=timeout)

    def synced(self, timeout: int = 5000) -> None:
        """Wait until the screen has a fresh snapshot and the event subscription is live.

        The link may load its snapshot before the first heartbeat comes through the subscription;
        a call made in between would reach the display only through the next snapshot (shown, never
        read out), so tests that call next wait for the heartbeat as well.
        """
        conn = self.model.connection
        self.wait(lambda: conn().state == "online" and not conn().stale and self.link.alive, timeout)
        self.window.refresh()  # don't wait for the deferred repaint

    def run(self, seconds: float) -> None:
        """Let ``seconds`` pass on the announcer's clock, ticking like the window's timer."""
        for _ in range(round(seconds / STEP)):
            self.clock.advance(STEP)
            self.window.tick()

    def run_until_idle(self, limit: float = 300.0) -> None:
        end = self.clock() + limit
        announcer = self.model.announcer
        assert announcer is not None
        while not (announcer.is_idle() and self.sink.playing is None):
            assert self.clock() < end, "the announcer never became idle"
            self.run(STEP)

    def shows(self, *texts: str, timeout: int = 5000) -> list[str]:
        """Wait until every one of ``texts`` is painted on the screen; return what is drawn."""
        self.wait(lambda: set(texts) <= set(self.drawn()), timeout)
        return self.drawn()

    def drawn(self) -> list[str]:
        """Every string the visible panels last painted: what is on the screen now.

        The window is shown (offscreen), so Qt paints changed panels as the event loop runs; the
        waits process events, so there is no need to force a full repaint here.
        """
        self.qtbot.wait(1)  # let pending paints happen
        return [s for panel in self.window.panels if panel.isVisible() for s in panel.drawn]

    def elided(self) -> list[str]:
        self.window.grab()
        return [s for panel in self.window.panels if panel.isVisible() for s in panel.elided]

    def save(self, path: Path) -> None:
        assert self.window.grab().save(str(path))

    def close(self) -> None:
        self.window.stop()
        assert self.requests == [], f"the display sent commands: {self.requests}"


@pytest.fixture
def screens(qtbot: QtBot, pack: VoicePack) -> Iterator[Callable[..., Screen]]:
    made: list[Screen] = []

    def make(endpoint: str, **kw: Any) -> Screen:
        s = Screen(qtbot, endpoint, pack, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


# ---------------------------------------------------------------------------------------------- calls


def test_a_call_appears_on_screen(hall: Hall, screens: Callable[..., Screen]) -> None:
    s = screens(hall.bt.endpoint)
    s.synced()
    assert "欢迎光临" in s.drawn()  # nothing called yet
    hall.sign_in(3)
    hall.take("passport")
    label = hall.call(3)
    drawn = s.shows(label, f"请 {label} 号到 3 号窗口", f"{label} → Counter 3", "请到窗口", "Please come")
    screen = s.window.screen_widget
    assert isinstance(screen, HallScreen)
    # The counter card says it too.
    assert {"3 号窗口", label, "请到窗口", "Please come"} <= set(screen.counters.drawn)
    assert s.model.highlighted
    # Waiting count and estimate per service come from the broker's summaries.
    passport = next(r for r in s.model.service_rows() if r.code == "passport")
    assert passport.waiting == 0 and "普通护照申请" in drawn
    # The citizen does not come: a recall is shown and read out again.
    s.wait(lambda: len(s.sink.played) == 1)
    s.run_until_idle()
    hall.do("recall", counter=3)
    s.shows("重呼  Recall")
    s.wait(lambda: len(s.sink.played) == 2)
    assert [(c.label, c.kind) for c in s.model.announced] == [(label, "call"), (label, "recall")]


def test_three_quick_calls_are_announced_in_order_none_cut_off(
    hall: Hall, screens: Callable[..., Screen], pack: VoicePack
) -> None:
    hold = 15.0  # longer than one announcement (~11 s), so the minimum display time is what paces them
    s = screens(hall.bt.endpoint, min_display_seconds=hold)
    s.synced()
    for n in (1, 2, 3):
        hall.sign_in(n)
    hall.take("passport", 3)
    calls = [(hall.call(n), n) for n in (1, 2, 3)]  # back to back, faster than anyone can read them
    s.wait(lambda: len(s.model.announced) == 3)
    # The first is on the big panel and being read; the others wait their turn (not skipped, not shown yet).
    first = calls[0][0]
    assert s.model.current is not None and s.model.current.label == first
    assert len(s.sink.played) == 1 and s.model.announcer is not None and s.model.announcer.pending == 2
    screen = s.window.screen_widget
    assert isinstance(screen, HallScreen)
    # The counter cards already show all three; the big panel and the history hold back the waiting two.
    s.wait(lambda: first in s.drawn() and calls[2][0] in screen.counters.drawn)
    assert calls[1][0] not in screen.now.drawn + screen.history.drawn
    s.run_until_idle()
    played = s.sink.played
    assert [p.wav for p in played] == [render_announcement(pack, label, n) for label, n in calls]
    assert not any(p.cut_off for p in played)
    for p in played:
        assert p.finished_at is not None and p.finished_at >= p.started_at + p.duration
    for before, after in itertools.pairwise(played):
        assert after.started_at >= before.finished_at  # type: ignore[operator]
        assert after.started_at - before.started_at >= hold  # each call held the screen long enough
    assert [c.label for c in list(s.model.history)[:3]] == [label for label, _ in reversed(calls)]
    assert s.model.current is not None and s.model.current.label == calls[2][0]  # the last one stays


def test_broker_restart_shows_stale_then_resyncs_and_announces_nothing_old(
    hall: Hall, screens: Callable[..., Screen], hall_config: HallConfig, shots: Path
) -> None:
    s = screens(hall.bt.endpoint)
    s.synced()
    hall.sign_in(3)
    hall.take("passport", 3)
    first = hall.call(3)
    s.wait(lambda: s.sink.playing is not None)
    s.run_until_idle()
    assert len(s.sink.played) == 1
    epoch = s.link.link.mirror.epoch

    hall.bt.stop()
    s.shows(
        "⚠ 与叫号服务器的连接中断，正在重新连接，以下为 09:00 时的信息", "连接中断  Offline", timeout=8000
    )
    conn = s.model.connection()
    assert conn.state == "offline" and conn.stale and conn.since_local == "09:00"
    drawn = s.drawn()
    assert first in drawn, "the last state stays on screen"
    assert "连接中断  Offline" in drawn
    s.save(shots / "hall-landscape-stale.png")

    # While the display is cut off, the hall carries on (the same database, served on another port).
    aside = type(hall.bt)(hall_config, hall.bt.db_url, hall.bt.clock).start()
    other = Hall(aside, hall_config)
    other.do("start", counter=3)
    other.do("finish", counter=3)
    missed = other.call(3)
    other.do("recall", counter=3)
    other.close()
    aside.stop()

    hall.bt.start()  # the broker comes back on the same port and database: a new epoch
    s.synced(timeout=15000)
    assert s.link.link.mirror.epoch != epoch
    s.wait(lambda: missed in s.drawn() and "已连接  Online" in s.drawn())
    assert s.model.current is not None and s.model.current.label == missed
    assert [c.label for c in list(s.model.history)[:3]] == [missed, missed, first]  # recall, call, first
    assert not [t for t in s.drawn() if "连接中断" in t]
    assert len(s.sink.played) == 1 and [c.label for c in s.model.announced] == [first], "nothing old is read"

    # Live again: the next call is announced (once).
    hall.client.close()
    hall.client = BrokerClient(hall.bt.endpoint, timeout=3.0)
    hall.do("start", counter=3)
    hall.do("finish", counter=3)
    # A broker that restarted may publish before the display's subscription is connected again: the display
    # then learns of the missed events from the next heartbeat's gap and takes a snapshot, which it does not
    # read out (docs/display.md, "What is read": a known limit). Its holding the hall's latest state means its
    # event stream is live, so the next call must be read.
    broker = hall.bt.broker
    assert broker is not None
    s.wait(lambda: s.link.link.mirror.seq >= broker.seq, timeout=8000)
    fresh = hall.call(3)
    s.wait(lambda: len(s.sink.played) == 2)
    assert [c.label for c in s.model.announced] == [first, fresh]


def test_transfers_announce_the_new_counter_or_wait_for_the_call(
    hall: Hall, screens: Callable[..., Screen], pack: VoicePack
) -> None:
    s = screens(hall.bt.endpoint, min_display_seconds=0)
    s.synced()
    hall.sign_in(1)
    hall.sign_in(11)
    (label,) = hall.take("passport")
    hall.call(1)
    s.wait(lambda: len(s.sink.played) == 1)
    s.run_until_idle()
    # To a counter: read out at once as a call to that counter.
    hall.do("transfer", counter=1, to_counter=11)
    s.wait(lambda: len(s.sink.played) == 2)
    assert s.sink.played[1].wav == render_announcement(pack, label, 11)
    assert s.model.current is not None and (s.model.current.counter, s.model.current.kind) == (11, "transfer")
    s.shows(f"请 {label} 号到 11 号窗口", "转窗  Transfer")
    s.run_until_idle()
    # To a service only: listed while waiting, announced only when a counter calls it.
    hall.call(11)
    s.wait(lambda: len(s.sink.played) == 3)
    s.run_until_idle()
    hall.do("transfer", counter=11, service="passport")
    s.wait(lambda: [n.label for n in s.model.hall_view().transfers] == [label])
    s.run(1.0)
    assert len(s.sink.played) == 3
    s.shows(
        f"{label} 转至 普通护照申请，请留意叫号",
        f"{label} → Ordinary passport application: wait to be called",
    )
    hall.call(1)
    s.wait(lambda: len(s.sink.played) == 4)
    assert s.sink.played[3].wav == render_announcement(pack, label, 1)
    s.wait(lambda: s.model.hall_view().transfers == ())
    screen = s.window.screen_widget
    assert isinstance(screen, HallScreen) and not screen.transfers.isVisible()


def test_now_calling_is_marked_after_a_no_show_or_a_transfer_and_recalls_are_listed_once(
    hall: Hall, screens: Callable[..., Screen], shots: Path
) -> None:
    # Issue 15: "请 A013 号到 1 号窗口" stayed after A013's no-show; B002 was still sent to window 1
    # after its transfer to the fee window; every recall was listed again in the recent calls.
    s = screens(hall.bt.endpoint, muted=True, min_display_seconds=0)
    s.synced()
    hall.sign_in(1)
    first, missed = hall.take("passport", 2)
    hall.call(1)
    hall.do("start", counter=1)
    hall.do("finish", counter=1)
    assert hall.call(1) == missed
    hall.do("recall", counter=1)
    hall.do("recall", counter=1)
    s.shows(f"请 {missed} 号到 1 号窗口")
    hall.do("no_show", counter=1)
    drawn = s.shows(f"{missed} 号已过号", "已过号  No-show", f"{missed} missed (no-show)")
    assert f"请 {missed} 号到 1 号窗口" not in drawn and not s.model.hall_view().highlighted
    history = s.model.hall_view().history
    assert [c.label for c in history] == [first], "the recalls of the current call are not listed again"
    assert history[0].outcome == "finished" and history[0].time_local == "09:00"
    s.save(shots / "hall-no-show-marked.png")
    # A fee ticket sent on to the fee window: the panel says where it went, not window 1.
    (fee,) = hall.take("move_in")
    hall.sign_in(5)
    hall.sign_in(11)  # the fee window
    assert hall.call(5) == fee
    s.shows(f"请 {fee} 号到 5 号窗口")
    hall.do("start", counter=5)
    hall.do("transfer", counter=5, service="unified_fees")
    drawn = s.shows(f"{fee} 号已转至 统一收费，请留意叫号", "已转走  Moved")
    assert f"请 {fee} 号到 5 号窗口" not in drawn
    screen = s.window.screen_widget
    assert isinstance(screen, HallScreen)
    assert any(t.startswith("→ 1 号窗口 · 已过号") for t in screen.history.drawn), screen.history.drawn
    assert any(t.startswith("09:00") for t in screen.history.drawn), screen.history.drawn
    assert not s.elided(), f"text cut off: {s.elided()}"
    s.save(shots / "hall-transfer-marked.png")


def test_counter_screen_shows_number_ticket_clerk_and_state(
    hall: Hall, screens: Callable[..., Screen], shots: Path
) -> None:
    s = screens(hall.bt.endpoint, size=(1280, 480), counter=3)
    s.synced()
    assert s.model.announcer is None  # a counter screen is silent: the hall screen reads the calls
    s.shows("3", "号窗口", "Counter 3", "暂停办理  Closed", "本窗口暂未开放", "请到其他窗口办理")
    s.save(shots / "counter-3-closed-1280x480.png")
    hall.sign_in(3, "B")
    s.shows("杨帆", "Yang Fan", "B岗  ·  Post B", "等待叫号  Ready", "请留意叫号")
    hall.take("document_pickup")
    label = hall.call(3)
    s.shows(label, "请到窗口  Please come")
    assert s.model.highlighted
    s.window.set_flash_phase(True)
    s.save(shots / "counter-3-called-1280x480.png")
    hall.do("start", counter=3)
    s.shows("正在办理  Serving")
    s.window.set_flash_phase(False)
    s.save(shots / "counter-3-serving-1280x480.png")
    hall.do("finish", counter=3)
    hall.do("pause", counter=3, reason="consult_supervisor")
    s.shows("暂停服务  Paused", "请示领导", "Consulting a supervisor")
    assert label not in s.drawn()
    assert not s.elided(), s.elided()
    s.save(shots / "counter-3-paused-1280x480.png")
    # Another counter's call does not flash this screen; the broker's list shows it as a display.
    tall = screens(hall.bt.endpoint, size=(768, 1024), counter=3)
    tall.synced()
    assert not tall.elided(), tall.elided()
    tall.save(shots / "counter-3-paused-768x1024.png")
    assert sum(d["role"] == "display" for d in s.model.state["devices"].values()) >= 1
    assert s.sink.played == []


def test_demo_window_plays_every_queued_call_on_its_own_clock(
    hall: Hall, qtbot: QtBot, pack: VoicePack
) -> None:
    # What the headless demo does: DemoDisplayWindow.for_demo, a RecordingSink, demo_tick after each action.
    sink = RecordingSink(auto_finish=True)
    window = DemoDisplayWindow.for_demo(hall.bt.endpoint, sink=sink)
    qtbot.addWidget(window)
    window.resize(*LANDSCAPE)
    window.show()
    window.start()
    try:
        assert window.link is not None
        qtbot.waitUntil(lambda: window.link is not None and window.link.alive, timeout=5000)
        for n in (4, 5):
            hall.sign_in(n)
        hall.take("move_in", 2)
        calls = [(hall.call(4), 4), (hall.call(5), 5)]
        qtbot.waitUntil(lambda: len(window.model.announced) == 2, timeout=5000)
        assert window.demo_tick() == 2
        assert [p.wav for p in sink.played] == [render_announcement(pack, label, n) for label, n in calls]
        assert all(p.finished_at is not None and not p.cut_off for p in sink.played)
        assert window.model.announcer is not None and window.model.announcer.is_idle()
        assert window.demo_tick() == 2  # nothing new: nothing more played
    finally:
        window.shutdown()
    assert not window.isVisible()


def test_default_sink_plays_with_qtmultimedia(hall: Hall, qtbot: QtBot) -> None:
    from queuehall.voice.qt_audio import QtAudioSink

    link = QtLink(hall.bt.endpoint, role="display", name="wall-audio")
    window = DisplayWindow(link, DisplayOptions(volume=0.5))
    qtbot.addWidget(window)
    window.start()
    try:
        assert isinstance(window.sink, QtAudioSink)
        assert window.sink.volume() == pytest.approx(0.5, abs=0.01)  # the device volume, not re-rendered
        qtbot.waitUntil(lambda: window.model.connection().state == "online", timeout=5000)
        hall.sign_in(2)
        hall.take("hk_macao")
        hall.call(2)
        qtbot.waitUntil(lambda: window.sink.is_playing(), timeout=5000)  # type: ignore[union-attr]
        assert window.model.announcer is not None and window.model.announcer.is_playing
    finally:
        window.stop()
    assert not window.sink.is_playing()  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------- screenshots


def busy_hall(hall: Hall) -> None:
    """Ten counters open, two paused, two closed, a long history of calls, queues everywhere."""
    for n in range(1, 12):
        if n != 6:
            hall.sign_in(n, "A" if n % 3 else "B")
    for code, k in (
        ("passport", 9),
        ("hk_macao", 7),
        ("document_pickup", 6),
        ("newborn", 2),
        ("move_in", 3),
        ("move_out", 2),
        ("birth_permit", 1),
        ("pension_eligibility", 5),
        ("insurance_subsidy", 3),
        ("unemployment_registration", 3),
        ("minimum_living_allowance", 2),
        ("serious_illness_aid", 1),
        ("low_rent_housing", 1),
        ("eia_approval", 2),
        ("unified_fees", 1),
        ("consult_complaint", 4),
    ):
        hall.take(code, k)
    # Rounds of calls: some served and finished, so the history is long.
    for n in (1, 2, 3, 4, 5, 7, 8, 9, 10, 11):
        hall.call(n)
    for n in (1, 2, 3, 7, 9, 10):
        hall.do("start", counter=n)
        hall.do("finish", counter=n)
    for n in (1, 2, 3, 7):
        hall.call(n)
    hall.do("start", counter=2)
    hall.do("recall", counter=4)
    hall.do("start", counter=8)
    hall.do("pause", counter=9, reason="meeting")
    hall.do("pause", counter=10, reason="break")
    hall.do("finish", counter=8)
    hall.do("sign_out", counter=8)  # closed for the day; 6 and 12 never opened


def test_screenshots_hall_landscape_and_portrait_busy(
    hall: Hall, screens: Callable[..., Screen], shots: Path
) -> None:
    # Muted, no minimum display time: the long history settles at once (announcing is tested above).
    # The screens join a hall in full swing: what happened so far comes from the snapshot.
    busy_hall(hall)
    wide = screens(hall.bt.endpoint, size=LANDSCAPE, muted=True, min_display_seconds=0)
    tall = screens(hall.bt.endpoint, size=PORTRAIT, muted=True, min_display_seconds=0)
    wide.synced()
    tall.synced()
    assert wide.model.announced == [] and len(wide.model.history) >= 14  # shown, not read out
    # Then, live: a citizen is sent to pay at the fee window, and counter 5 calls its next ticket.
    hall.do("start", counter=1)
    hall.do("transfer", counter=1, service="unified_fees")
    hall.call(1)
    hall.do("start", counter=5)
    hall.do("finish", counter=5)
    label = hall.call(5)
    for s in (wide, tall):
        drawn = s.shows(label, f"请 {label} 号到 5 号窗口", "B002 转至 统一收费，请留意叫号", "会议", "休息")
        assert s.model.highlighted  # the newest call, just in: it flashes
        assert "XX市政务服务中心" in drawn and "普通护照申请" in drawn and "暂停服务  Paused" in drawn
        assert len(s.model.hall_view().history) == 10 and len(s.model.hall_view().counters) == 12
        s.window.set_flash_phase(True)
        assert not s.elided(), f"text cut off: {s.elided()}"
    wide.save(shots / "hall-landscape-1920x1080.png")
    tall.save(shots / "hall-portrait-1080x1920.png")
    wide.window.set_flash_phase(False)
    wide.save(shots / "hall-landscape-1920x1080-calm.png")


def test_wav_of_one_call_through_the_display_path(
    hall: Hall, screens: Callable[..., Screen], pack: VoicePack, shots: Path
) -> None:
    s = screens(hall.bt.endpoint)
    s.synced()
    hall.sign_in(3)
    hall.take("passport")
    label = hall.call(3)
    s.wait(lambda: s.sink.playing is not None)
    s.run_until_idle()
    (clip,) = s.sink.played
    path = shots / f"announcement-{label}-3-display.wav"
    path.write_bytes(clip.wav)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, pack.sample_rate)
    assert clip.wav == render_announcement(pack, label, 3)
    assert duration(clip.wav) > 4.0
    assert rms(clip.wav) > 0.02  # speech, not silence
    assert not clip.cut_off and clip.finished_at is not None


# ---------------------------------------------------------------------------------------------- model only


def test_options_and_size_are_checked_with_bilingual_errors() -> None:
    assert parse_size("1080x1920") == (1080, 1920)
    assert parse_size("1920×1080") == (1920, 1080)
    for bad in ("1920", "axb", "10x10", "1920x1080x2", ""):
        with pytest.raises(DisplayError) as err:
            parse_size(bad)
        assert err.value.code == "DISPLAY_BAD_OPTION" and "--size" in err.value.message_en
        assert "宽" in err.value.message_zh
    for kw in (
        {"repeat": 0},
        {"repeat": 6},
        {"volume": 1.5},
        {"volume": float("nan")},
        {"lang": "fr"},
        {"min_display_seconds": -1},
        {"history_size": 0},
        {"counter": 0},
        {"highlight_seconds": 1e9},
    ):
        with pytest.raises(DisplayError) as err:
            DisplayOptions(**kw).validate()
        assert err.value.code == "DISPLAY_BAD_OPTION" and err.value.message_zh and err.value.message_en


def test_hall_clock_follows_the_broker_and_extrapolates() -> None:
    mono = [100.0]
    clock = HallClock(monotonic=lambda: mono[0], fallback=lambda: datetime(2030, 1, 1, tzinfo=UTC))
    assert clock() == datetime(2030, 1, 1, tzinfo=UTC) and clock.source == "system"
    clock.observe("2026-11-24T01:00:00.000Z")
    mono[0] += 2.5
    assert clock() == datetime(2026, 11, 24, 1, 0, 2, 500000, tzinfo=UTC) and clock.source == "broker"
    clock.observe("not a time")
    assert clock() == datetime(2026, 11, 24, 1, 0, 2, 500000, tzinfo=UTC)


def _called(
    tid: int, label: str, counter: int, seq: int, at: datetime, kind: str = "call", calls: int = 1
) -> dict[str, Any]:
    return {
        "type": "ticket_called",
        "kind": kind,
        "counter": counter,
        "journal_seq": seq,
        "at": at.isoformat().replace("+00:00", "Z"),
        "ticket": {
            "id": tid,
            "label": label,
            "calls": calls,
            "service_name_zh": "护照",
            "service_name_en": "Passport",
            "status": "called",
        },
    }


def test_model_announces_live_calls_only_and_shows_old_ones(pack: VoicePack) -> None:
    hall_now = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    clock = SecondsClock(T0)
    sink = RecordingSink(clock)
    model = DisplayModel(
        DisplayOptions(min_display_seconds=0), pack=pack, sink=sink, clock=clock, hall_clock=lambda: hall_now
    )
    old = [
        _called(1, "A001", 1, 5, hall_now - timedelta(minutes=9)),
        _called(2, "A002", 2, 6, hall_now - timedelta(minutes=8)),
    ]
    model.handle_state({"recent_calls": old, "timezone": "Asia/Shanghai"})
    assert [c.label for c in model.history] == ["A002", "A001"] and sink.played == []
    assert model.current is not None and not model.current.live and not model.highlighted
    # The same calls again (a resync) change nothing; a late event 10 minutes old is shown, not read.
    model.handle_state({"recent_calls": old})
    model.handle_event({"event": _called(3, "A003", 3, 7, hall_now - timedelta(minutes=10))})
    assert [c.label for c in model.history] == ["A003", "A002", "A001"] and sink.played == []
    # A live call is read, and a recall of it again (a new call count and journal entry).
    model.handle_event({"event": _called(4, "A004", 4, 8, hall_now)})
    assert len(sink.played) == 1 and model.highlighted
    sink.finish_current()
    model.handle_event({"event": _called(4, "A004", 4, 9, hall_now, kind="recall", calls=2)})
    assert len(sink.played) == 2
    assert model.current is not None and model.current.kind_en == "Recall"
    # A transferred ticket called again in its new queue (call count 1 again) is still a new call.
    sink.finish_current()
    model.handle_event(
        {
            "event": {
                "type": "ticket_transferred",
                "counter": 4,
                "to_counter": None,
                "to_service": "unified_fees",
                "journal_seq": 10,
                "at": hall_now.isoformat(),
                "ticket": {"id": 4, "label": "A004"},
            }
        }
    )
    model.handle_state({"tickets": {"4": {"id": 4, "label": "A004", "status": "waiting"}}, "recent_calls": old})
    assert [n.label for n in model.hall_view().transfers] == ["A004"] and len(sink.played) == 2
    model.handle_event({"event": _called(4, "A004", 11, 11, hall_now)})
    assert len(sink.played) == 3 and model.hall_view().transfers == ()
    assert [c.label for c in model.announced] == ["A004", "A004", "A004"]


def test_model_marks_stale_on_loss_until_a_fresh_state(pack: VoicePack) -> None:
    clock = SecondsClock(T0)
    model = DisplayModel(
        DisplayOptions(),
        pack=pack,
        sink=RecordingSink(clock),
        clock=clock,
        hall_clock=lambda: datetime(2026, 11, 24, 1, 41, tzinfo=UTC),
    )
    assert model.connection().state == "connecting"
    model.set_connected(True)
    model.handle_state({"timezone": "Asia/Shanghai"})
    assert model.connection().state == "online" and not model.connection().stale
    model.set_connected(False)
    conn = model.connection()
    assert conn.state == "offline" and conn.stale and conn.since_local == "09:41"
    model.set_connected(True)
    assert model.connection().stale  # alive again, but not resynchronised yet
    model.handle_state({"timezone": "Asia/Shanghai"})
    assert not model.connection().stale


# ---------------------------------------------------------------------------------------------- command line


def test_cli_refuses_bad_options_before_opening_a_window(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from queuehall.cli import main

    for argv, code in (
        (["display", "--size", "10x10"], "DISPLAY_BAD_OPTION"),
        (["display", "--repeat", "9"], "DISPLAY_BAD_OPTION"),
        (["display", "--volume", "2"], "DISPLAY_BAD_OPTION"),
        (["display", "--counter", "0"], "DISPLAY_BAD_OPTION"),
        (["display", "--key", "k.key_secret"], "DISPLAY_BAD_OPTION"),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        zh, en = err.split(code, 1)[1].split("\n", 1)  # Chinese first, then English
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh), err
        assert en.strip() and not any("\u4e00" <= ch <= "\u9fff" for ch in en), err
    assert main(["display", "--broker", "no-port"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    # `queuehall voices build` hands over to voice.pack.main_build (an out-of-range rate stops it early).
    assert main(["voices", "build", "--out", str(tmp_path / "pack"), "--rate", "5"]) == 2
    assert "VOICE_BAD_OPTION" in capsys.readouterr().err
    assert not (tmp_path / "pack").exists()


def test_model_judges_lateness_by_when_the_link_received_the_event(pack: VoicePack) -> None:
    mono = [500.0]
    clock = SecondsClock(T0)
    sink = RecordingSink(clock)
    # The hall runs on a fast simulated clock: its time is far ahead of the events' "at".
    hall_now = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    model = DisplayModel(
        DisplayOptions(min_display_seconds=0),
        pack=pack,
        sink=sink,
        clock=clock,
        hall_clock=lambda: hall_now,
        monotonic=lambda: mono[0],
    )
    an_hour_ago = hall_now - timedelta(hours=1)
    model.handle_event({"event": _called(1, "A001", 1, 1, an_hour_ago), "received_monotonic": 499.9})
    assert [c.label for c in model.announced] == ["A001"]  # received a moment ago: live
    sink.finish_current()
    # A display that stalled for five minutes works through its backlog: shown, not read out.
    model.handle_event({"event": _called(2, "A002", 2, 2, an_hour_ago), "received_monotonic": 200.0})
    assert [c.label for c in model.announced] == ["A001"] and len(sink.played) == 1
    assert model.current is not None and model.current.label == "A002" and not model.current.live


def test_the_transfer_strip_survives_a_restart_of_the_display(
        hall: Hall, screens: Callable[..., Screen]) -> None:
    # Issue 15: a display (re)started after a transfer knew nothing of it until the ticket was called.
    hall.sign_in(1)
    hall.sign_in(11)  # the fee window is open
    label = hall.take("passport")[0]
    assert hall.call(1) == label
    hall.do("start", counter=1)
    hall.do("transfer", counter=1, service="unified_fees")
    s = screens(hall.bt.endpoint, size=(1920, 1080), muted=True, min_display_seconds=0)
    s.synced()
    notes = s.model.hall_view().transfers
    assert [n.label for n in notes] == [label] and notes[0].to_service_zh == "统一收费"
    s.shows(f"{label} 转至 统一收费，请留意叫号")
