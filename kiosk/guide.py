"""Spoken guidance at the kiosk (适老化 语音引导): a short prompt at each step, from the offline voice pack.

:func:`prompt_for` says what the kiosk should say for the page the model shows now, in the language on
screen: the welcome, the chosen service, printing, "take your ticket" with the number and where to go, the
check-in steps, printer and server problems, and "touch the screen to continue" before an idle page gives
up (:func:`still_there`). Each prompt is a list of clip keys of the voice pack (``queuehall.voice``):
sentences recorded in one breath, joined with the ticket number and the counters read from the word clips.

:class:`VoiceGuide` plays them through an audio sink (:class:`~voice.qt_audio.QtAudioSink` on a kiosk,
a :class:`~voice.sink.RecordingSink` in tests): a new step stops the prompt before it, the same step is
never repeated by a redraw, and nothing is said while nobody is at the kiosk or while the guidance is off.
``play`` returns at once and rendering a prompt is a splice of a few clips (milliseconds), so the voice never
holds up the screen or the printer. Qt-free: the window calls :meth:`VoiceGuide.follow` after each redraw.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from queuehall.kiosk.model import KioskModel, Phase, Screen
from queuehall.voice.pack import PAUSE, VoiceError, VoicePack, counter_keys, render_prompt, ticket_keys
from queuehall.voice.sink import AudioSink

log = logging.getLogger("queuehall.kiosk")

_CACHE_SIZE = 32  # rendered prompts kept: the fixed ones are said again and again
# The end of a visit: the start page that follows is for the next citizen, and is not announced.
_ENDINGS = frozenset({"confirmation", "print_failed", "checked_in", "checked_in_late"})
# "Please wait" steps: said only when the wait is long enough to need it (VoiceGuide.deferred). A ticket
# usually prints in about 0.1 s; starting the player then only cut the prompt off after a syllable and took
# CPU from rendering the ticket (tap -> first byte 74 -> 129 ms median on the loaded 2-core machine).
WAITS = frozenset({"printing", "checking_in"})


@dataclass(frozen=True)
class Prompt:
    """What to say: ``name`` is the step (``"start"``, ``"confirmation"`` …), ``keys`` the clip keys in
    ``lang`` (and :data:`~voice.pack.PAUSE`)."""

    name: str
    lang: str
    keys: tuple[str, ...]


# The sentences, by language (keys of the pack's prompt clips: voice.pack.prompt_keys()).
_SAY: dict[str, dict[str, str]] = {
    "zh": {
        "welcome": "您好，欢迎光临", "choose": "请选择您要办理的业务", "details": "请核对所需材料，然后点击确认取号",
        "printing": "正在为您打印号票，请稍候", "take": "请取走号票", "number": "您的号码是",
        "watch": "请留意叫号", "not_printed": "号票未能打印", "kept": "您的号码已保留", "staff": "请联系工作人员",
        "no_ticket": "未能取号", "read": "请查看屏幕上的说明", "paper_out": "号票打印纸已用完",
        "cover_open": "号票打印机的纸仓盖未合上", "paused": "暂停取号", "out": "暂停服务", "closed": "现在不能取号",
        "keypad": "请扫描预约二维码，或输入预约码", "checking_in": "正在签到，请稍候", "checked_in": "签到成功",
        "late": "已过预约签到时间，现按普通号排队", "refused": "签到未成功", "still_there": "如需继续，请触摸屏幕",
    },
    "en": {
        "welcome": "welcome", "choose": "please choose the service you need",
        "details": "please check the documents you need, then tap take a ticket",
        "printing": "printing your ticket, please wait", "take": "please take your ticket",
        "number": "your number is", "watch": "please watch for your number",
        "not_printed": "your ticket could not be printed", "kept": "your number is kept", "staff": "please ask staff",
        "no_ticket": "no ticket was issued", "read": "please read the screen",
        "paper_out": "the ticket printer is out of paper", "cover_open": "the ticket printer's cover is open",
        "paused": "tickets are paused", "out": "out of service", "closed": "no tickets right now",
        "keypad": "please scan your booking's QR code, or type your booking code",
        "checking_in": "checking you in, please wait", "checked_in": "you are checked in",
        "late": "you are past your check-in time, so your ticket is now a normal one",
        "refused": "check-in did not succeed", "still_there": "touch the screen to continue",
    },
}


def _prompt(name: str, lang: str, *parts: str | list[str]) -> Prompt:
    """A prompt from sentence names (``"take"``), PAUSE and lists of ready clip keys (numbers)."""
    keys: list[str] = []
    for part in parts:
        if isinstance(part, list):
            keys += part
        elif part == PAUSE:
            keys.append(PAUSE)
        else:
            keys.append(f"{lang}:{_SAY[lang][part]}")
    return Prompt(name, lang, tuple(keys))


def _number(label: str, lang: str) -> list[str]:
    """"your number is A 0 1 2", or nothing for a label that cannot be read aloud."""
    try:
        return [f"{lang}:{_SAY[lang]['number']}", *ticket_keys(label, lang)]
    except VoiceError:
        return []


def _where(counters: list[int], lang: str) -> list[str]:
    """"请留意叫号，到 三、五 号窗口办理" / "when called, go to counters three, five and seven"."""
    try:
        numbers = [counter_keys(n, lang) for n in counters]
    except VoiceError:
        numbers = []
    if not numbers:
        return [f"{lang}:{_SAY[lang]['watch']}"]
    out: list[str] = []
    if lang == "zh":
        for i, n in enumerate(numbers):
            out += ([PAUSE] if i else []) + n
        return [f"zh:{_SAY['zh']['watch']}", PAUSE, "zh:到", *out, "zh:号", "zh:窗口", "zh:办理"]
    for i, n in enumerate(numbers):
        if i:
            out += ["en:and"] if i == len(numbers) - 1 else [PAUSE]
        out += n
    lead = "en:when called, go to counters" if len(numbers) > 1 else "en:when called, go to counter"
    return [lead, *out]


def prompt_for(model: KioskModel) -> Prompt | None:
    """The prompt for the page ``model`` shows now, in its language; None on the staff pages."""
    lang = model.language
    screen = model.screen

    def p(name: str, *parts: str | list[str]) -> Prompt:
        return _prompt(name, lang, *parts)

    if screen == Screen.START:
        return p("start", "welcome", PAUSE, "choose")
    if screen == Screen.DETAILS:
        return p("printing", "printing") if model.busy else p("details", "details")
    if screen == Screen.CONFIRMATION and model.issued is not None:
        t = model.issued.record
        where = _where(model.serving_counters(t.service), lang)
        return p("confirmation", "take", PAUSE, _number(t.label, lang), PAUSE, where)
    if screen == Screen.PRINT_FAILED and model.issued is not None:
        label = model.issued.record.label
        return p("print_failed", "not_printed", PAUSE, "kept", PAUSE, _number(label, lang), PAUSE, "staff")
    if screen == Screen.MESSAGE:
        return p("no_ticket", "no_ticket", PAUSE, "read")
    if screen == Screen.ASK_STAFF:
        problem = {"PAPER_OUT": "paper_out", "COVER_OPEN": "cover_open"}.get(str(model.printer.code), "paused")
        return p(f"ask_staff_{problem}", problem, PAUSE, "staff")
    if screen == Screen.OUT_OF_SERVICE:
        return p("out_of_service", "out", PAUSE, "staff")
    if screen == Screen.CLOSED:
        return p("closed", "closed", PAUSE, "read")
    if screen == Screen.CHECKIN:
        return p("checkin", "keypad") if model.phase == Phase.CHECKIN else p("checking_in", "checking_in")
    if screen == Screen.CHECKED_IN:
        info = model.checked_in_info()
        if info is None:
            return None
        label, _headline, _next, late = info
        if model.phase == Phase.CHECKED_IN:  # a remote ticket: nothing printed, the phone holds it
            return p("checked_in", "checked_in", PAUSE, _number(label, lang), PAUSE, "watch")
        if late:
            return p("checked_in_late", "checked_in", PAUSE, "late", PAUSE, "take", PAUSE, _number(label, lang))
        return p("checked_in", "checked_in", PAUSE, "take", PAUSE, _number(label, lang), PAUSE, "watch")
    if screen == Screen.CHECKIN_REFUSED:
        return p("checkin_refused", "refused", PAUSE, "read")
    return None  # the PIN pad and the settings: staff need no guidance


def still_there(model: KioskModel) -> Prompt:
    """"如需继续，请触摸屏幕" / "touch the screen to continue": said before an idle page returns to the start."""
    return _prompt("still_there", model.language, "still_there")


def all_prompt_keys() -> set[str]:
    """Every sentence key the guidance may say (each must be a prompt clip of the pack)."""
    return {f"{lang}:{text}" for lang, texts in _SAY.items() for text in texts.values()}


class VoiceGuide:
    """Plays :func:`prompt_for`'s prompts through ``sink``, one step at a time.

    ``pack`` and ``sink`` may be given later (:meth:`set_pack`: the kiosk loads the pack off the GUI thread
    and makes its audio output once it is up); until then the guide is silent. ``played`` lists every prompt
    started, oldest first (tests, logs).
    """

    def __init__(self, sink: AudioSink | None = None, pack: VoicePack | None = None, *, volume: float = 1.0,
                 on_play: Callable[[Prompt, bytes], None] | None = None) -> None:
        self.sink = sink
        self.pack = pack
        self.volume = volume
        self.played: list[Prompt] = []
        self._on_play = on_play
        self._step: tuple[str, str, tuple[str, ...]] | None = None
        self._playing = False
        self._hushed = False
        self._enabled = False
        self._present = False
        self._touches = 0
        self._owed = False  # the step was passed silently (the end of a visit, idle): say it at the next touch
        self.deferred: Prompt | None = None  # a "please wait" prompt, said by say_deferred if the wait lasts
        self._cache: OrderedDict[tuple[str, ...], bytes] = OrderedDict()
        self._warned: set[str] = set()

    def set_pack(self, pack: VoicePack) -> None:
        """Use ``pack`` from now on (logs once which prompt clips it lacks: those prompts stay silent)."""
        self.pack = pack
        self._cache.clear()
        missing = pack.missing_prompts()
        if missing:
            log.warning("语音包“%s”缺少 %d 条取号机提示语，这些步骤将没有语音 / voice pack %r lacks %d kiosk prompts "
                        "(those steps stay silent): %s", pack.name, len(missing), pack.name, len(missing),
                        ", ".join(missing[:5]))

    @property
    def playing(self) -> bool:
        """Whether a prompt is playing now."""
        return self._playing

    def hush(self) -> None:
        """Stop the prompt, and let the next step pass silently (the citizen has gone: done, or idle)."""
        self.stop()
        self._hushed = True

    def stop(self) -> None:
        """Stop the prompt playing now, if any."""
        if self._playing:
            self._playing = False
            if self.sink is not None:
                self.sink.stop()

    def follow(self, model: KioskModel, *, present: bool, enabled: bool, touches: int = 0) -> Prompt | None:
        """Say the prompt of the step ``model`` shows, if it is a new step (a redraw of the same step says
        nothing). A new step stops the old prompt. Nothing is said when ``enabled`` is False (guidance off
        or muted), when nobody is ``present`` or right after :meth:`hush`, nor the start page that follows the
        end of a visit (the ticket taken). Guidance turned on (unmuted, or by the large-text mode), and the
        first touch of a citizen who has come up to the kiosk, say the step shown; so does the next touch
        (``touches``, a count of taps, has grown) on a start page passed silently. Returns the prompt started."""
        prompt = prompt_for(model)
        step = (prompt.name, prompt.lang, prompt.keys) if prompt is not None else None
        touched, self._touches = touches != self._touches, touches
        if (enabled and not self._enabled) or (present and not self._present):
            self._step = None  # just turned on, or a citizen has just come up to the kiosk: say where we are
        self._enabled = enabled
        self._present = present
        if step == self._step:
            if not enabled:
                self.stop()  # muted mid-prompt: silence now
            elif self._owed and touched and present and prompt is not None:
                self._owed = False  # the next citizen's first tap on the start page left after the last one
                return prompt if self.say(prompt) else None
            return None
        ended = self._step is not None and self._step[0] in _ENDINGS and step is not None and step[0] == "start"
        self._step = step
        self.deferred = None
        hushed, self._hushed = self._hushed, False
        if prompt is None or not enabled or not present or hushed or ended:
            self._owed = prompt is not None and (hushed or ended)
            self.stop()
            return None
        self._owed = False
        if prompt.name in WAITS:
            self.stop()
            self.deferred = prompt  # the window calls say_deferred after WAIT_PROMPT_MS if still waiting
            return None
        return prompt if self.say(prompt) else None

    def say_deferred(self, model: KioskModel) -> Prompt | None:
        """Say the deferred "please wait" prompt if ``model`` still shows its step (the wait has lasted)."""
        prompt, self.deferred = self.deferred, None
        if prompt is None or prompt_for(model) != prompt:
            return None
        return prompt if self.say(prompt) else None

    def say(self, prompt: Prompt) -> bool:
        """Stop what is playing and start ``prompt``; False (logged once per clip) when it cannot be said."""
        self.stop()
        if self.pack is None or self.sink is None:
            return False
        keys = (prompt.lang, *prompt.keys)
        wav = self._cache.get(keys)
        if wav is None:
            try:
                wav = render_prompt(self.pack, prompt.keys, volume=self.volume)
            except VoiceError as err:
                if str(err) not in self._warned:
                    self._warned.add(str(err))
                    log.warning("取号机提示语无法播放 / kiosk prompt %s cannot be said: %s", prompt.name, err)
                return False
            self._cache[keys] = wav
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(keys)
        self.played.append(prompt)
        self._playing = True
        token = len(self.played)
        self.sink.play(wav, lambda: self._finished(token))
        if self._on_play is not None:
            self._on_play(prompt, wav)
        return True

    def _finished(self, token: int) -> None:
        if token == len(self.played):
            self._playing = False
