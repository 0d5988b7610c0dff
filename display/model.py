"""The wall display's view-model: what the hall screen and a counter screen show, without Qt.

:class:`DisplayModel` takes what the broker link reports (``handle_state`` for every state
change, ``handle_event`` for each published event, ``set_connected`` for the heartbeat) and
answers :meth:`DisplayModel.hall_view` / :meth:`DisplayModel.counter_view` with plain frozen
dataclasses the widgets paint. The announcement queue (:class:`display.announcer.Announcer`)
lives here too, so tests drive the whole display logic with a manual clock and a
:class:`~voice.sink.RecordingSink`, without widgets.

Rules it implements (docs/display.md):

* only *published* ``ticket_called`` events are announced (a recall again, with its new call
  count); calls learnt from a state snapshot (``state["recent_calls"]``) are shown, never read
  out, so a display that (re)connects reads out nothing old;
* ``ticket_transferred`` with ``to_counter`` is announced as a call to that counter; with only a
  service it is listed as a pending transfer until the ticket is called there;
* an event handled more than ``max_age_seconds`` after the link received it (a display that
  stalled and works through a backlog) is shown but not announced. The lag is measured on this
  machine's monotonic clock (the link stamps ``received_monotonic``), so neither a clock skew
  between machines nor a hall run on a fast simulated clock can silence live calls; an event
  without the stamp is judged by its hall time ``at`` against the hall clock instead;
* on a lost connection the last state stays on screen, marked stale from the moment of loss
  until a fresh snapshot arrives.

Hall time (the clock on screen) comes from :class:`HallClock`: the broker's
heartbeat ``now`` (or the snapshot's ``state["now"]``) plus the local time elapsed since, so a
hall run on a simulated clock shows the simulated time; before the first heartbeat, and for a
display built without a broker, it is the local system time.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from queuehall.display.announcer import (
    DEFAULT_MAX_AGE_SECONDS,
    DEFAULT_MIN_DISPLAY_SECONDS,
    Announcer,
    Call,
)
from queuehall.voice.pack import MAX_REPEAT, VoiceError, VoicePack
from queuehall.voice.sink import AudioSink

from queuehall.clock import HallClock  # re-exported: the display's tests and window import it from here
from queuehall.connection import LABELS as CONNECTION_LABELS
from queuehall.connection import LinkStatus
from queuehall.errors import QueuehallError
from queuehall.payloads import TicketCalled, TicketTransferred, decode_call, decode_event, decode_ticket

log = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_HIGHLIGHT_SECONDS = 8.0
DEFAULT_HISTORY = 10
MAX_HISTORY = 30  # the broker keeps 30 recent calls
TRANSFER_NOTE_MINUTES = 30.0  # a transfer to a service stays listed this long unless called sooner
MAX_TRANSFER_NOTES = 4
WEEKDAYS_ZH = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# A service's issue_state (broker/hours.py) other than "open", as the screen says it.
ISSUE_STATES = {
    "break": ("午休暂停取号", "Lunch break"),
    "past_cutoff": ("今日已停止取号", "Closed today"),
    "daily_cap": ("今日号已发完", "Sold out today"),
    "closed": ("停止取号", "Not issuing"),
}
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class DisplayError(QueuehallError):
    """A bad display option or input: stable ``code``, message in Chinese and English."""


def _bad(option: str, zh: str, en: str) -> DisplayError:
    return DisplayError("DISPLAY_BAD_OPTION", f"{option}：{zh}", f"{option}: {en}")


@dataclass(frozen=True)
class DisplayOptions:
    """How a display behaves. ``counter`` set means a counter screen (silent) instead of the hall screen.

    ``lang`` only decides which language comes first; both are always shown. ``volume`` is 0.0–1.0,
    ``repeat`` 1–5 (how many times the Mandarin + English sentences are read), ``min_display_seconds``
    how long each announced call keeps the big panel at least, ``highlight_seconds`` how long a new
    call flashes, ``history_size`` how many earlier calls are listed (1–30).
    """

    counter: int | None = None
    lang: str = "zh"
    repeat: int = 1
    volume: float = 1.0
    muted: bool = False
    min_display_seconds: float = DEFAULT_MIN_DISPLAY_SECONDS
    highlight_seconds: float = DEFAULT_HIGHLIGHT_SECONDS
    history_size: int = DEFAULT_HISTORY
    max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS
    # A counter's screen: seconds its evaluator (好差评, docs/evaluation.md) stays after a finish; 0 = none.
    evaluator_seconds: float = 30.0

    def validate(self) -> DisplayOptions:
        """Return ``self`` if every option is in range, else raise ``DisplayError("DISPLAY_BAD_OPTION")``."""
        if self.counter is not None and not _whole_in(self.counter, 1, 999):
            raise _bad(
                "--counter",
                f"窗口号应为 1–999 的整数，而不是 {self.counter!r}",
                f"the counter number must be an integer 1–999, not {self.counter!r}",
            )
        if self.lang not in ("zh", "en"):
            raise _bad(
                "--lang", f"只能是 zh 或 en，而不是 {self.lang!r}", f"must be zh or en, not {self.lang!r}"
            )
        if not _whole_in(self.repeat, 1, MAX_REPEAT):
            raise _bad(
                "--repeat",
                f"播报次数应为 1–{MAX_REPEAT}，而不是 {self.repeat!r}",
                f"the repeat count must be 1–{MAX_REPEAT}, not {self.repeat!r}",
            )
        if not _finite(self.volume) or not 0.0 <= self.volume <= 1.0:
            raise _bad(
                "--volume",
                f"音量应为 0.0–1.0，而不是 {self.volume!r}",
                f"the volume must be 0.0–1.0, not {self.volume!r}",
            )
        for name, value, top in (
            ("--min-display", self.min_display_seconds, 600.0),
            ("--highlight", self.highlight_seconds, 600.0),
            ("max_age_seconds", self.max_age_seconds, 86400.0),
            ("--evaluator", self.evaluator_seconds, 600.0),
        ):
            if not _finite(value) or not 0.0 <= value <= top:
                raise _bad(
                    name, f"秒数应为 0–{top:g}，而不是 {value!r}", f"seconds must be 0–{top:g}, not {value!r}"
                )
        if not _whole_in(self.history_size, 1, MAX_HISTORY):
            raise _bad(
                "--history",
                f"历史条数应为 1–{MAX_HISTORY}，而不是 {self.history_size!r}",
                f"the history length must be 1–{MAX_HISTORY}, not {self.history_size!r}",
            )
        return self


def _whole_in(value: object, low: int, high: int) -> bool:
    """An int (not a bool, which Python counts as one) from ``low`` to ``high``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_size(text: str) -> tuple[int, int]:
    """``"1920x1080"`` -> ``(1920, 1080)``; raises ``DisplayError("DISPLAY_BAD_OPTION")`` otherwise.

    Both sides must be 200–8000 pixels (``x`` or ``×`` between them).
    """
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdecimal() for p in parts):
        raise _bad(
            "--size",
            f"应写作 宽x高（如 1920x1080），而不是 {text!r}",
            f"expected WIDTHxHEIGHT (e.g. 1920x1080), not {text!r}",
        )
    w, h = (int(p) for p in parts)
    if not (200 <= w <= 8000 and 200 <= h <= 8000):
        raise _bad(
            "--size",
            f"宽和高应在 200–8000 像素之间，而不是 {w}x{h}",
            f"width and height must be 200–8000 pixels, not {w}x{h}",
        )
    return w, h




# ---------------------------------------------------------------------------------------- views


@dataclass(frozen=True)
class CallCard:
    """One call as the screen shows it. ``live`` is False for calls learnt from a snapshot or too old."""

    key: tuple[str, str, int]
    ticket_id: int | None
    label: str
    counter: int
    kind: str  # call | recall | transfer
    service_zh: str = ""
    service_en: str = ""
    at: datetime | None = None
    live: bool = True
    # What became of the call since (filled in by the views from the broker's state, docs/display.md):
    # "" while the ticket is still called or served at ``counter``; "finished" (served and gone),
    # "no_show", or "moved" (transferred or back in a queue: ``moved_zh``/``moved_en`` say where).
    outcome: str = ""
    moved_zh: str = ""
    moved_en: str = ""
    time_local: str = ""  # the call's time in the hall's time zone, HH:MM (views only)

    @property
    def settled(self) -> bool:
        """Whether the citizen must no longer go to ``counter`` for this call."""
        return bool(self.outcome)

    @property
    def text_zh(self) -> str:
        """``请 A012 号到 3 号窗口``; once settled ``A013 号已过号`` / ``B002 号已转至 统一收费，请留意叫号``."""
        if self.outcome == "no_show":
            return f"{self.label} 号已过号"
        if self.outcome == "finished":
            return f"{self.label} 号已办结"
        if self.outcome == "moved":
            return f"{self.label} 号已转至 {self.moved_zh}，请留意叫号" if self.moved_zh else \
                f"{self.label} 号请留意叫号"
        return f"请 {self.label} 号到 {self.counter} 号窗口"

    @property
    def text_en(self) -> str:
        """``A012 → Counter 3``; once settled ``A013 missed (no-show)`` / ``B002 → Fee payment: wait to be called``."""
        if self.outcome == "no_show":
            return f"{self.label} missed (no-show)"
        if self.outcome == "finished":
            return f"{self.label} served"
        if self.outcome == "moved":
            return f"{self.label} → {self.moved_en}: wait to be called" if self.moved_en else \
                f"{self.label}: wait to be called"
        return f"{self.label} → Counter {self.counter}"

    @property
    def outcome_zh(self) -> str:
        """The short word for a settled call in Chinese ("" while it stands)."""
        return {"no_show": "已过号", "finished": "已办结", "moved": "已转走"}.get(self.outcome, "")

    @property
    def outcome_en(self) -> str:
        """The short word for a settled call in English ("" while it stands)."""
        return {"no_show": "No-show", "finished": "Served", "moved": "Moved"}.get(self.outcome, "")

    @property
    def kind_zh(self) -> str:
        """The badge for a recall or a transfer in Chinese ("" for a plain call)."""
        return {"recall": "重呼", "transfer": "转窗"}.get(self.kind, "")

    @property
    def kind_en(self) -> str:
        """The badge for a recall or a transfer in English ("" for a plain call)."""
        return {"recall": "Recall", "transfer": "Transfer"}.get(self.kind, "")


@dataclass(frozen=True)
class CounterCard:
    """One counter: number, state and what it is doing, with the clerk on duty.

    ``phase`` is one of ``closed``, ``paused``, ``idle`` (open, no ticket), ``called``, ``serving``.
    """

    number: int
    name_zh: str
    name_en: str
    phase: str
    ticket_label: str | None
    ticket_service_zh: str
    ticket_service_en: str
    clerk_name_zh: str
    clerk_name_en: str
    post: str | None
    pause_reason_zh: str
    pause_reason_en: str
    status_zh: str
    status_en: str
    services_zh: tuple[str, ...] = ()
    services_en: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceRow:
    """One service's queue: how many wait, the estimate, and whether tickets are issued now."""

    code: str
    name_zh: str
    name_en: str
    waiting: int
    wait_minutes: int
    issuing: bool
    status_zh: str
    status_en: str


@dataclass(frozen=True)
class TransferNote:
    """A ticket sent to another service (or counter) that has not been called there yet."""

    ticket_id: int
    label: str
    to_counter: int | None
    to_service_zh: str
    to_service_en: str
    at: datetime | None

    @property
    def text_zh(self) -> str:
        """``A012 转至 统一收费，请留意叫号`` (or the counter, when it went to one)."""
        where = f"{self.to_counter} 号窗口" if self.to_counter else self.to_service_zh
        return f"{self.label} 转至 {where}，请留意叫号"

    @property
    def text_en(self) -> str:
        """``A012 → Unified fee payment: wait to be called``."""
        where = f"Counter {self.to_counter}" if self.to_counter else self.to_service_en
        return f"{self.label} → {where}: wait to be called"


@dataclass(frozen=True)
class Connection:
    """The connection indicator: ``state`` is ``connecting`` (never synced), ``online`` or ``offline``.

    ``stale`` is True while data shown is older than the broker's (lost, or reconnected but not yet
    resynchronised); ``since_local`` is the hall time (HH:MM) the data dates from.
    """

    state: str
    stale: bool
    since_local: str = ""

    @property
    def label_zh(self) -> str:
        """The indicator's word in Chinese."""
        return CONNECTION_LABELS[self.state].zh

    @property
    def label_en(self) -> str:
        """The indicator's word in English."""
        return CONNECTION_LABELS[self.state].en


@dataclass(frozen=True)
class Clock:
    """Date and time in the hall's time zone, ready to paint."""

    date_zh: str
    date_en: str
    time: str


@dataclass(frozen=True)
class HallView:
    """Everything the hall screen shows."""

    hall_name_zh: str
    hall_name_en: str
    clock: Clock
    current: CallCard | None
    highlighted: bool
    history: tuple[CallCard, ...]
    counters: tuple[CounterCard, ...]
    services: tuple[ServiceRow, ...]
    transfers: tuple[TransferNote, ...]
    notice_zh: str
    notice_en: str
    connection: Connection
    pending: int  # calls waiting behind the current one
    lang: str


@dataclass(frozen=True)
class CounterView:
    """Everything a counter screen shows; ``card`` is None until the broker has described the counter."""

    number: int
    card: CounterCard | None
    highlighted: bool
    clock: Clock
    connection: Connection
    hall_name_zh: str
    hall_name_en: str
    lang: str


# ---------------------------------------------------------------------------------------- model


class DisplayModel:
    """The display's state and rules; see the module docstring.

    ``pack`` + ``sink`` + ``clock`` feed the :class:`Announcer` (the hall screen only; a counter
    screen is silent and needs none of them). ``clock`` returns seconds (``time.time`` in
    production, a :class:`voice.sink.ManualClock` in tests and the headless demo).
    ``hall_clock`` returns the hall's aware time (default: a :class:`HallClock` fed by
    :meth:`handle_state` and the window's heartbeat hook). ``volume``: a sink with ``set_volume``
    (QtAudioSink) gets it as the device volume; otherwise it is rendered into the WAV.
    ``monotonic`` is the clock of the link's ``received_monotonic`` stamps (``time.monotonic``).
    """

    def __init__(
        self,
        options: DisplayOptions | None = None,
        *,
        pack: VoicePack | None = None,
        sink: AudioSink | None = None,
        clock: Callable[[], float] = time.time,
        hall_clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = (options or DisplayOptions()).validate()
        self.clock = clock
        self.monotonic = monotonic
        self.hall_clock: Callable[[], datetime] = hall_clock if hall_clock is not None else HallClock()
        self.state: dict[str, Any] = {}
        self.version = 0  # bumped on every visible change: the window repaints when it moves
        # The broker connection, as every screen models it (queuehall/connection.py); a loss is timed on the hall clock.
        self.link_status = LinkStatus(clock=lambda: self.hall_clock())
        self._cards: dict[tuple[str, str, int], CallCard] = {}
        self._known: set[tuple[str, str, int]] = set()
        self.history: deque[CallCard] = deque(maxlen=MAX_HISTORY)  # highlighted calls, newest first
        self.current: CallCard | None = None
        self._current_since = 0.0
        self._transfers: dict[int, TransferNote] = {}
        self._flash_until = 0.0  # counter screen: a call for this counter flashes until then
        self.announced: list[CallCard] = []  # live calls handed to the announcer, in order (for tests/demo)
        self.announcer: Announcer | None = None
        if self.options.counter is None:
            if pack is None or sink is None:
                raise DisplayError(
                    "DISPLAY_NO_AUDIO",
                    "大厅屏需要语音包和音频输出。",
                    "The hall screen needs a voice pack and an audio sink.",
                )
            render_volume = self.options.volume
            set_volume = getattr(sink, "set_volume", None)
            if callable(set_volume):
                set_volume(self.options.volume)  # the device volume: no per-sample work on the GUI thread
                render_volume = 1.0
            self.announcer = Announcer(
                pack,
                sink,
                clock,
                repeat=self.options.repeat,
                volume=render_volume,
                muted=self.options.muted,
                min_display_seconds=self.options.min_display_seconds,
                # Age is judged here on the hall clock; the announcer's own check is off (issued_at=None).
                max_age_seconds=self.options.max_age_seconds,
                on_highlight=self._on_highlight,
            )

    # ------------------------------------------------------------------ input

    def handle_state(self, state: dict[str, Any]) -> None:
        """Take the broker's full state (after a snapshot or an event); its calls are shown, not announced."""
        previous_now = self.state.get("now")
        self.state = state
        if state.get("now") != previous_now and isinstance(self.hall_clock, HallClock):
            self.hall_clock.observe(state.get("now"))  # a fresh snapshot says what time the hall has
        # A snapshot or an event just arrived, so the broker is there (the link may report its first
        # heartbeat only after the snapshot).
        self.link_status.on_state()
        for ev in state.get("recent_calls") or []:
            call = decode_call(ev) if isinstance(ev, dict) else None
            if call is not None:
                self._take_call(call, live=False)
        self._transfers_from_snapshot(state)
        self._drop_settled_transfers()
        self._bump()

    def _transfers_from_snapshot(self, state: dict[str, Any]) -> None:
        """Rebuild the transfer strip from the tickets after a (re)start: a waiting ticket queued for another
        service than it was issued for, or for one counter, entered that queue by a transfer. Notes the screen
        already has (from the live event) are kept as they are."""
        services = state.get("services") or {}
        for t in map(decode_ticket, (state.get("tickets") or {}).values()):
            if t is None or t.status != "waiting":
                continue
            moved = t.queue_service != t.service or t.target_counter is not None
            if t.id is None or t.id in self._transfers or not moved:
                continue
            svc = services.get(t.queue_service) or {}
            self._transfers[t.id] = TransferNote(
                t.id, t.label, t.target_counter, str(svc.get("name_zh") or t.service_name.zh),
                str(svc.get("name_en") or t.service_name.en), t.entered_at)

    def handle_event(self, msg: dict[str, Any]) -> None:
        """Take one published event message (``{"event": {...}, "seq", ...}``); announces calls, transfers.

        The client library decoded the event's typed payload (``msg["payload"]``, queuehall/payloads.py); a
        message without one (a test's, a tool's) is decoded here the same way."""
        ev = msg.get("event")
        if not isinstance(ev, dict):
            return
        payload = msg["payload"] if "payload" in msg else decode_event(ev)
        received = msg.get("received_monotonic")
        if isinstance(payload, TicketCalled):
            fresh = self._fresh(payload.at, received)
            self._take_call(payload, live=fresh)
            if payload.ticket_id is not None:
                self._transfers.pop(payload.ticket_id, None)
                if self.options.counter is not None and payload.counter == self.options.counter and fresh:
                    self._flash_until = self.clock() + self.options.highlight_seconds
        elif isinstance(payload, TicketTransferred):
            self._take_transfer(payload, received)
        self._bump()

    def set_connected(self, up: bool) -> None:
        """The broker was found alive (True) or silent for too long (False)."""
        if self.link_status.on_connection(up):
            self._bump()

    @property
    def connected(self) -> bool | None:
        """Whether the broker answers (None: never heard from)."""
        return self.link_status.up

    def tick(self, now: float | None = None) -> None:
        """Move the announcement queue on (call this often, e.g. every 100 ms)."""
        if self.announcer is not None:
            self.announcer.tick(now)

    def set_muted(self, muted: bool) -> None:
        """Mute or unmute the voice; calls are still shown."""
        if self.announcer is not None:
            self.announcer.set_muted(muted)

    def close(self) -> None:
        """Stop any announcement (on shutdown)."""
        if self.announcer is not None:
            self.announcer.close()

    # ------------------------------------------------------------------ calls

    def _fresh(self, at: datetime | None, received: object = None) -> bool:
        if isinstance(received, int | float) and not isinstance(received, bool):
            age = self.monotonic() - float(received)  # how long it waited in this process
        else:
            if at is None:
                return True
            age = (self.hall_clock() - at).total_seconds()
        if age > self.options.max_age_seconds:
            log.info("call at %s handled %.0f s late: shown, not announced", at, age)
            return False
        return True

    def _take_call(self, called: TicketCalled, *, live: bool) -> None:
        call = Call(id=called.event_id, label=called.label, counter=called.counter, kind=called.kind,
                    call_count=called.calls)
        self._enqueue(call, CallCard(call.key, called.ticket_id, called.label, called.counter, called.kind,
                                     called.service.zh, called.service.en, called.at, live))

    def _take_transfer(self, moved: TicketTransferred, received: object = None) -> None:
        tid, label, to_counter, at = moved.ticket_id, moved.label, moved.to_counter, moved.at
        service = (self.state.get("services") or {}).get(moved.to_service) or {}
        szh = str(service.get("name_zh") or moved.service.zh or moved.to_service or "")
        sen = str(service.get("name_en") or moved.service.en or moved.to_service or "")
        if tid is not None:
            self._transfers[tid] = TransferNote(tid, label, to_counter, szh, sen, at)
        if to_counter is not None:
            fresh = self._fresh(at, received)
            call = Call(id=moved.event_id, label=label, counter=to_counter, kind="transfer")
            self._enqueue(call, CallCard(call.key, tid, label, to_counter, "transfer", szh, sen, at, fresh))
            if self.options.counter is not None and to_counter == self.options.counter and fresh:
                self._flash_until = self.clock() + self.options.highlight_seconds

    def _enqueue(self, call: Call, card: CallCard) -> None:
        if call.key in self._known:
            return
        self._known.add(call.key)
        if len(self._known) > 8192:  # far more than a day of calls; forget the oldest half
            self._known = set(list(self._known)[4096:])
        self._cards[call.key] = card
        if self.announcer is None:  # a counter screen has no queue: the call is simply history
            self._show(card)
            return
        if card.live:
            self.announced.append(card)
        try:
            self.announcer.enqueue(call, announce=card.live)
        except VoiceError as err:  # a label no voice can read: still show it
            log.warning("call %s shown without announcement: %s", card.label, err)
            self._show(card)

    def _on_highlight(self, call: Call) -> None:
        card = self._cards.pop(call.key, None)
        if card is not None:
            self._show(card)

    def _show(self, card: CallCard) -> None:
        self.current = card
        self._current_since = self.clock()
        self.history.appendleft(card)
        self._bump()

    def _drop_settled_transfers(self) -> None:
        tickets = self.state.get("tickets") or {}
        now = self.hall_clock()
        for tid, note in list(self._transfers.items()):
            t = decode_ticket(tickets.get(str(tid)))
            old = note.at is not None and (now - note.at).total_seconds() > TRANSFER_NOTE_MINUTES * 60
            if t is None or t.status != "waiting" or old:
                del self._transfers[tid]

    def _bump(self) -> None:
        self.version += 1

    # ------------------------------------------------------------------ views

    @property
    def highlighted(self) -> bool:
        """Whether the big panel flashes now: a live call, new for ``highlight_seconds`` or being read out."""
        if self.options.counter is not None:
            return self.clock() < self._flash_until
        if self.current is None or not self.current.live or self.settle(self.current).settled:
            return False  # a settled call (no-show, moved, finished) never flashes
        playing = self.announcer is not None and self.announcer.is_playing
        return playing or self.clock() - self._current_since < self.options.highlight_seconds

    def timezone(self) -> ZoneInfo:
        """The hall's time zone from the state (Asia/Shanghai until known)."""
        name = self.state.get("timezone") or DEFAULT_TIMEZONE
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(DEFAULT_TIMEZONE)

    def clock_view(self) -> Clock:
        """Date and time now, in the hall's time zone."""
        local = self.hall_clock().astimezone(self.timezone())
        wd = local.weekday()
        return Clock(
            date_zh=f"{local.year}年{local.month}月{local.day}日 {WEEKDAYS_ZH[wd]}",
            date_en=f"{WEEKDAYS_EN[wd]} {local.day} {MONTHS_EN[local.month - 1]} {local.year}",
            time=local.strftime("%H:%M:%S"),
        )

    def connection(self) -> Connection:
        """The connection indicator and whether what is shown is stale."""
        status = self.link_status
        since = ""
        if status.stale and status.lost_at is not None:
            since = status.lost_at.astimezone(self.timezone()).strftime("%H:%M")
        return Connection(status.state, stale=status.stale, since_local=since)

    def _pause_reason(self, code: str | None) -> tuple[str, str]:
        if not code:
            return "", ""
        for reason in self.state.get("pause_reasons") or []:
            if isinstance(reason, dict) and reason.get("code") == code:
                return str(reason.get("name_zh") or code), str(reason.get("name_en") or code)
        return code, code

    def counter_cards(self) -> tuple[CounterCard, ...]:
        """Every counter, by number."""
        counters = self.state.get("counters") or {}
        cards = [self._counter_card(c) for c in counters.values() if isinstance(c, dict)]
        return tuple(sorted((c for c in cards if c is not None), key=lambda c: c.number))

    def _counter_card(self, c: dict[str, Any]) -> CounterCard | None:
        number = c.get("number")
        if not isinstance(number, int):
            return None
        services = self.state.get("services") or {}
        ticket = decode_ticket(c.get("ticket"))
        state = c.get("state")
        rzh, ren = self._pause_reason(c.get("pause_reason"))
        label = ticket.label if ticket else None
        if state == "closed":
            phase, szh, sen = "closed", "暂停办理", "Closed"
        elif state == "paused":
            phase, szh, sen = "paused", "暂停服务", "Paused"  # the reason is in pause_reason_zh/en
        elif ticket and ticket.status == "serving":
            phase, szh, sen = "serving", "正在办理", "Serving"
        elif ticket and ticket.status == "called":
            phase, szh, sen = "called", "请到窗口", "Please come"
        else:
            phase, szh, sen = "idle", "等待叫号", "Ready"
        codes = [s for s in c.get("services") or [] if isinstance(s, str)]
        return CounterCard(
            number=number,
            name_zh=str(c.get("name_zh") or f"{number}号窗口"),
            name_en=str(c.get("name_en") or f"Counter {number}"),
            phase=phase,
            ticket_label=label if phase in ("called", "serving") or (phase == "paused" and label) else None,
            ticket_service_zh=ticket.service_name.zh if ticket else "",
            ticket_service_en=ticket.service_name.en if ticket else "",
            clerk_name_zh=str(c.get("clerk_name_zh") or ""),
            clerk_name_en=str(c.get("clerk_name_en") or ""),
            post=c.get("post") if isinstance(c.get("post"), str) else None,
            pause_reason_zh=rzh,
            pause_reason_en=ren,
            status_zh=szh,
            status_en=sen,
            services_zh=tuple(str((services.get(s) or {}).get("name_zh") or s) for s in codes),
            services_en=tuple(str((services.get(s) or {}).get("name_en") or s) for s in codes),
        )

    def service_rows(self) -> tuple[ServiceRow, ...]:
        """Every service in configured order, with its queue length and estimated wait."""
        services = self.state.get("services") or {}
        order: Iterable[str] = self.state.get("service_order") or list(services)
        rows = []
        for code in order:
            s = services.get(code)
            if not isinstance(s, dict):
                continue
            waiting = int(s.get("waiting") or 0)
            minutes = int(s.get("estimated_wait_minutes") or 0)
            issue = s.get("issue_state") or "open"
            if issue == "open":
                if waiting == 0:
                    szh, sen = "无需等候", "No wait"
                else:
                    szh, sen = f"约 {minutes} 分钟", f"~{minutes} min"
            else:
                szh, sen = ISSUE_STATES.get(issue, ("停止取号", "Not issuing"))
            rows.append(
                ServiceRow(
                    code=str(code),
                    name_zh=str(s.get("name_zh") or code),
                    name_en=str(s.get("name_en") or code),
                    waiting=waiting,
                    wait_minutes=minutes,
                    issuing=issue == "open",
                    status_zh=szh,
                    status_en=sen,
                )
            )
        return tuple(rows)

    def settle(self, card: CallCard) -> CallCard:
        """``card`` with its time in the hall's zone and what became of its ticket since (``outcome``).

        The broker's state is the truth: the ticket still called or served at the card's counter is
        standing; gone from the state (a display gets every active and no-show ticket) is finished;
        a no-show is a no-show; waiting again, or called at another counter, has moved. Without a
        ticket id, or before the state lists tickets at all, the card stands as it was; so does a
        transfer to a counter while the ticket waits for that counter.
        """
        at = card.at.astimezone(self.timezone()).strftime("%H:%M") if card.at is not None else ""
        tickets = self.state.get("tickets")
        outcome, mzh, men = "", "", ""
        if card.ticket_id is not None and isinstance(tickets, dict):
            record = tickets.get(str(card.ticket_id))
            t = decode_ticket(record)
            status = t.status if t is not None else None
            if record is None:
                outcome = "finished"
            elif t is None:
                pass  # not a ticket record: the card stands as it was
            elif status == "no_show":
                outcome = "no_show"
            elif status == "waiting" and card.kind == "transfer" and t.target_counter == card.counter:
                pass  # sent to this counter and not called there yet: the citizen goes there now
            elif status == "waiting" or (status in ("called", "serving") and t.counter != card.counter):
                outcome = "moved"
                target = t.target_counter if status == "waiting" else t.counter
                if target is not None:
                    mzh, men = f"{target} 号窗口", f"Counter {target}"
                else:
                    mzh, men = t.service_name
        if (outcome, mzh, men, at) == (card.outcome, card.moved_zh, card.moved_en, card.time_local):
            return card
        return replace(card, outcome=outcome, moved_zh=mzh, moved_en=men, time_local=at)

    def recent_calls(self) -> tuple[CallCard, ...]:
        """The calls before the current one, newest first, each ticket at each counter once.

        A recall repeats a call the list already has: only its newest call is listed (with the
        recall badge and time), and nothing the big panel shows now is listed again.
        """
        seen: set[tuple[object, int]] = set()
        if self.current is not None:
            seen.add((self.current.ticket_id or self.current.label, self.current.counter))
        out: list[CallCard] = []
        for i, card in enumerate(self.history):
            if i == 0 and card is self.current:
                continue
            key = (card.ticket_id or card.label, card.counter)
            if key in seen:
                continue
            seen.add(key)
            out.append(self.settle(card))
            if len(out) >= self.options.history_size:
                break
        return tuple(out)

    def hall_view(self) -> HallView:
        """The hall screen's content now."""
        hall = self.state.get("hall") or {}
        history = self.recent_calls()
        current = self.settle(self.current) if self.current is not None else None
        transfers = sorted(
            self._transfers.values(), key=lambda n: n.at or datetime.min.replace(tzinfo=UTC), reverse=True
        )
        return HallView(
            hall_name_zh=str(hall.get("name_zh") or "政务服务中心"),
            hall_name_en=str(hall.get("name_en") or ""),
            clock=self.clock_view(),
            current=current,
            highlighted=self.highlighted,
            history=history,
            counters=self.counter_cards(),
            services=self.service_rows(),
            transfers=tuple(transfers[:MAX_TRANSFER_NOTES]),
            notice_zh=str(hall.get("notice_zh") or ""),
            notice_en=str(hall.get("notice_en") or ""),
            connection=self.connection(),
            pending=self.announcer.pending if self.announcer else 0,
            lang=self.options.lang,
        )

    def counter_view(self) -> CounterView:
        """The counter screen's content now (``options.counter`` must be set)."""
        number = self.options.counter
        if number is None:
            raise DisplayError(
                "DISPLAY_NOT_COUNTER", "这不是窗口屏。", "This display is not a counter screen."
            )
        raw = (self.state.get("counters") or {}).get(str(number))
        card = self._counter_card(raw) if isinstance(raw, dict) else None
        hall = self.state.get("hall") or {}
        return CounterView(
            number=number,
            card=card,
            highlighted=self.highlighted,
            clock=self.clock_view(),
            connection=self.connection(),
            hall_name_zh=str(hall.get("name_zh") or ""),
            hall_name_en=str(hall.get("name_en") or ""),
            lang=self.options.lang,
        )

    def known_counter(self) -> bool:
        """Whether the broker's state has this screen's counter (False: a wrong ``--counter``)."""
        return str(self.options.counter) in (self.state.get("counters") or {})
