"""The kiosk's check-in pages (docs/kiosk.md, "Check-in"): the booking-code keypad, the checked-in page and
the refusal, thin widgets over :class:`~queuehall.kiosk.model.KioskModel` (the rules are in kiosk/checkin.py
and the model). The window routes the scanner's keys; these pages only draw and forward taps.

Each page carries its own style (:func:`checkin_style`), applied at the window's scale, so it never
touches the window's stylesheet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget
from queuehall.kiosk.checkin import (
    BOOKING_ALPHABET,
    BOOKING_CODE_LENGTH,
    CHECKIN_PRINTING,
    CHECKIN_PROMPT,
    CHECKIN_TITLE,
    CHECKIN_WORKING,
    ScanDetector,
)
from queuehall.kiosk.model import DONE, YOUR_NUMBER, Bi, KioskModel, Phase, Screen, back_countdown
from queuehall.kiosk.style import LARGE_TEXT
from queuehall.kiosk.widgets import centred_row, make_button, make_label, set_flag, set_pair

KEYPAD_COLUMNS = 8
# A key is at most this much taller than wide: on a portrait screen (1080×1920) the keys would otherwise
# stretch into tall empty tiles; the height left over goes above and below the keypad block instead.
KEY_ASPECT = 1.1
BACK = Bi("返回首页", "Back to start")


def checkin_style(u: float, large: bool = False) -> str:
    """The check-in pages' look at scale ``u`` (1.0 = a 1920×1080 screen); ``large``: the kiosk's large-text,
    high-contrast mode (适老化: type ×``LARGE_TEXT``, black on white, thick dark borders), as on its other pages."""

    def px(n: float) -> int:
        return max(8, round(n * u))

    def fs(n: float) -> int:  # a font size
        return px(n * LARGE_TEXT) if large else px(n)

    return f"""
    #ciTitle {{ font-size: {fs(48)}px; font-weight: bold; color: #0a3d7a; }}
    #ciSub {{ font-size: {fs(24)}px; color: #5b6b80; }}
    #ciCode {{ font-size: {fs(64)}px; font-weight: bold; letter-spacing: {px(6)}px; color: #10243d;
               background: white; border: {px(3)}px solid #1666c5; border-radius: {px(16)}px;
               padding: {px(4)}px {px(16)}px; min-height: {max(px(84), fs(76))}px; }}
    #ciHint {{ font-size: {fs(26)}px; color: #b3261e; font-weight: bold; }}
    #ciKey {{ background: white; border: {px(2)}px solid #c9d6e6; border-radius: {px(16)}px;
              font-size: {fs(44)}px; font-weight: bold; color: #10243d;
              min-width: {px(60)}px; min-height: {px(72)}px; padding: 0px; }}
    #ciKey:pressed {{ background: #dcebfb; }}
    #ciKey:disabled {{ color: #a3acb8; }}
    #ciEdit {{ background: #eef3f9; border: {px(2)}px solid #9fb4cc; border-radius: {px(16)}px;
               font-size: {fs(24)}px; font-weight: bold; color: #0a3d7a; min-height: {px(72)}px;
               padding: 0px {px(10)}px; }}
    #ciEdit:pressed {{ background: #dcebfb; }}
    #ciGo {{ background: #0b7a3e; color: white; border: none; border-radius: {px(20)}px;
             font-size: {fs(40)}px; font-weight: bold; padding: {px(10)}px {px(28)}px; min-height: {px(72)}px;
             min-width: {px(300)}px; }}
    #ciGo:pressed {{ background: #085c2f; }}
    #ciGo:disabled {{ background: #9bb5a6; color: #eef5f0; }}
    #ciBack {{ background: white; color: #0a3d7a; border: {px(3)}px solid #1666c5; border-radius: {px(20)}px;
               font-size: {fs(30)}px; font-weight: bold; padding: {px(10)}px {px(28)}px; min-height: {px(72)}px;
               min-width: {px(360)}px; }}
    #ciBack:pressed {{ background: #dcebfb; }}
    #ciHead {{ font-size: {fs(46)}px; font-weight: bold; color: #0b7a3e; }}
    #ciHead[late="true"] {{ color: #b34700; }}
    #ciHeadSub {{ font-size: {fs(28)}px; color: #4a5a6e; }}
    #ciCaption {{ font-size: {fs(34)}px; color: #4a5a6e; }}
    #ciNumber {{ font-size: {fs(180)}px; font-weight: bold; color: #c4121a; }}
    #ciLine {{ font-size: {fs(34)}px; font-weight: bold; color: #10243d; }}
    #ciLineSub {{ font-size: {fs(24)}px; color: #5b6b80; }}
    #ciCountdown {{ font-size: {fs(22)}px; color: #6b7684; }}
    #ciBadge {{ font-size: {fs(100)}px; font-weight: bold; color: white; background: #b34700;
                border-radius: {fs(140) // 2}px; min-width: {fs(140)}px; max-width: {fs(140)}px;
                min-height: {fs(140)}px; max-height: {fs(140)}px; }}
    #ciRefTitle {{ font-size: {fs(56)}px; font-weight: bold; color: #b34700; }}
    #ciRefTitleSub {{ font-size: {fs(30)}px; color: #4a5a6e; }}
    #ciRefBody {{ font-size: {fs(34)}px; color: #1d2733; }}
    #ciRefBodySub {{ font-size: {fs(24)}px; color: #5b6b80; }}
    #ciStart {{ background: #0a3d7a; color: white; border: none; border-radius: {px(14)}px;
                font-size: {fs(26)}px; font-weight: bold; padding: {px(8)}px {px(22)}px; }}
    #ciStart:pressed {{ background: #1666c5; }}
    """ + (_high_contrast(px) if large else "")


def _high_contrast(px: Callable[[float], int]) -> str:
    """The large-text mode's overrides: no pale greys, dark thick borders (kiosk.style.high_contrast's rules)."""
    return f"""
    #ciSub, #ciHeadSub, #ciCaption, #ciLineSub, #ciCountdown, #ciRefTitleSub, #ciRefBodySub {{ color: #000000; }}
    #ciTitle, #ciLine, #ciRefBody {{ color: #000000; }}
    #ciKey, #ciEdit {{ border: {px(4)}px solid #000000; color: #000000; }}
    #ciKey:disabled, #ciEdit:disabled {{ color: #6b6b6b; }}
    #ciCode, #ciBack {{ border: {px(4)}px solid #000000; color: #000000; }}
    """


def _label(name: str) -> QLabel:
    return make_label(name, align=Qt.AlignmentFlag.AlignHCenter)


def spaced(code: str) -> str:
    """The code in groups of four, as printed on the booking page: ``K7M3 Q9XP AB``."""
    return " ".join(code[i:i + 4] for i in range(0, len(code), 4))


class CheckinButton(QPushButton):
    """The start page's "预约签到 / Appointment check-in" entry."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("ciStart")
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def refresh(self, lang: str) -> None:
        a, b = CHECKIN_TITLE.pick(lang)
        self.setText(f"{a}  ·  {b}")


class CheckinPage(QWidget):
    """The keypad: the code typed so far, the booking alphabet in large keys, 退格 / 清除, 签到 and 返回首页.
    While the check-in is on its way it says so and takes no keys.

    The keys fill the room there is, but are never taller than ``KEY_ASPECT`` × their width (nor shorter than
    their touch minimum, the style's ``min-height``): on a portrait screen the prompt, code and keypad stay
    one block, centred in the height, and "签到 Check in" is as tall as a key. Where a key is narrower than
    tall (portrait), 退格 / Del goes on two lines so it keeps its padding in large text."""

    key_tapped = Signal(str)
    submit_tapped = Signal()
    back_tapped = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = self.column = QVBoxLayout(self)
        lay.setContentsMargins(48, 14, 48, 16)
        lay.setSpacing(8)
        self.title = _label("ciTitle")
        self.title.setWordWrap(False)
        self.title_sub = _label("ciSub")
        self.title_sub.setWordWrap(False)
        head = QHBoxLayout()
        head.addStretch(1)
        head.addWidget(self.title)
        head.addSpacing(16)
        head.addWidget(self.title_sub, 0, Qt.AlignmentFlag.AlignBottom)
        head.addStretch(1)
        lay.addLayout(head)
        lay.addStretch(0)  # Expanding spacers: they take only what the keypad's capped keys leave over
        self.prompt = _label("ciSub")
        self.code = _label("ciCode")
        self.code.setWordWrap(False)
        self.hint = _label("ciHint")
        for w in (self.prompt, self.code, self.hint):
            lay.addWidget(w)
        grid = QGridLayout()
        grid.setSpacing(8)
        self.keys: dict[str, QPushButton] = {}
        for i, ch in enumerate(BOOKING_ALPHABET):
            b = make_button("ciKey", ch)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
            b.clicked.connect(lambda _=False, c=ch: self.key_tapped.emit(c))
            self.keys[ch] = b
            grid.addWidget(b, i // KEYPAD_COLUMNS, i % KEYPAD_COLUMNS)
        self.back_key = make_button("ciEdit")
        self.back_key.clicked.connect(lambda: self.key_tapped.emit("back"))
        self.clear_key = make_button("ciEdit")
        self.clear_key.clicked.connect(lambda: self.key_tapped.emit("clear"))
        for b in (self.back_key, self.clear_key):
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        last = len(BOOKING_ALPHABET)  # 31 keys: the 32nd place and a row more hold the editing keys
        grid.addWidget(self.back_key, last // KEYPAD_COLUMNS, last % KEYPAD_COLUMNS)
        grid.addWidget(self.clear_key, last // KEYPAD_COLUMNS + 1, 0, 1, 2)
        self.go = make_button("ciGo")
        self.go.clicked.connect(self.submit_tapped)
        self.go.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)  # as tall as its row
        grid.addWidget(self.go, last // KEYPAD_COLUMNS + 1, 2, 1, KEYPAD_COLUMNS - 2)
        self.grid = grid
        lay.addLayout(grid, 1)
        lay.addStretch(0)
        self.back = make_button("ciBack")
        self.back.clicked.connect(self.back_tapped)
        centred_row(lay, self.back)
        self._lang = "zh"
        self._stacked = False  # 退格 / Del on two lines (narrow keys)

    def key_cap(self) -> int:
        """The tallest a key may be at the page's present width: ``KEY_ASPECT`` × a key's width, and never
        below the keys' touch minimum (their style's ``min-height``)."""
        margins = self.column.contentsMargins()
        spacing = self.grid.horizontalSpacing()
        width = (self.width() - margins.left() - margins.right() - spacing * (KEYPAD_COLUMNS - 1)) / KEYPAD_COLUMNS
        floor = max(b.minimumSizeHint().height() for b in (*self.keys.values(), self.back_key, self.clear_key))
        return max(floor, round(KEY_ASPECT * width))

    def fit_keys(self) -> None:
        """Cap the keys' height for the page's present size and re-letter 退格 / Del for the keys' shape."""
        cap = self.key_cap()
        for b in (*self.keys.values(), self.back_key, self.clear_key, self.go):
            if b.maximumHeight() != cap:
                b.setMaximumHeight(cap)
        stacked = self.height() > self.width()
        if stacked != self._stacked:
            self._stacked = stacked
            self._edit_texts()

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.fit_keys()

    def _edit_texts(self) -> None:
        gap = "\n" if self._stacked else " "
        self.back_key.setText(Bi(f"退格{gap}Del", f"Del{gap}退格")(self._lang))
        self.clear_key.setText(Bi("清除 Clear", "Clear 清除")(self._lang))  # two keys wide: one line fits

    def refresh(self, model: KioskModel) -> None:
        lang = model.language
        set_pair(self.title, self.title_sub, CHECKIN_TITLE, lang, hide_repeat=True)
        working = model.busy
        if working:
            text = CHECKIN_PRINTING if model.phase == Phase.PRINTING else CHECKIN_WORKING
            self.prompt.setText(f"{text.zh}  {text.en}" if lang == "zh" else f"{text.en}  {text.zh}")
        else:
            a, b = CHECKIN_PROMPT.pick(lang)
            self.prompt.setText(f"{a}\n{b}")
        entry = model.code_entry
        shown = spaced(entry + "_" * (BOOKING_CODE_LENGTH - len(entry))) if not working or entry else ""
        self.code.setText(shown)
        hint = model.checkin_hint
        self.hint.setText(f"{hint.pick(lang)[0]}  {hint.pick(lang)[1]}" if hint else "")
        self.hint.setVisible(hint is not None)
        full = len(entry) >= BOOKING_CODE_LENGTH
        for key in self.keys.values():
            key.setEnabled(not working and not full)
        self._lang = lang
        self._edit_texts()
        self.back_key.setEnabled(not working and bool(entry))
        self.clear_key.setEnabled(not working and bool(entry))
        self.go.setText(Bi("签到  Check in", "Check in  签到")(lang))
        self.go.setEnabled(not working)
        self.back.setText(BACK(lang))
        self.back.setEnabled(not working)


class CheckedInPage(QWidget):
    """A booking or remote ticket checked in: the headline ("您预约的 10:00 普通护照申请"), the number very large
    and what to do next, in both languages; late arrivals are told plainly it is a normal ticket now."""

    done_tapped = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(60, 24, 60, 30)
        lay.setSpacing(6)
        self.head = _label("ciHead")
        self.head_sub = _label("ciHeadSub")
        self.caption = _label("ciCaption")
        self.number = _label("ciNumber")
        self.number.setWordWrap(False)
        self.line = _label("ciLine")
        self.line_sub = _label("ciLineSub")
        self.countdown = _label("ciCountdown")
        lay.addStretch(1)
        for w in (self.head, self.head_sub):
            lay.addWidget(w)
        lay.addSpacing(12)
        for w in (self.caption, self.number, self.line, self.line_sub):
            lay.addWidget(w)
        lay.addStretch(1)
        self.done = make_button("ciBack")
        self.done.setMinimumWidth(380)
        self.done.clicked.connect(self.done_tapped)
        centred_row(lay, self.done)
        lay.addWidget(self.countdown)

    def refresh(self, model: KioskModel, seconds_left: int) -> None:
        info = model.checked_in_info()
        if info is None:
            return
        label, head, next_step, late = info
        lang = model.language
        set_pair(self.head, self.head_sub, head, lang, hide_repeat=True)
        set_flag(self.head, "late", late)
        self.caption.setText(YOUR_NUMBER(lang))
        self.number.setText(label)
        set_pair(self.line, self.line_sub, next_step, lang, hide_repeat=True)
        self.done.setText(DONE(lang))
        self.countdown.setText(back_countdown(seconds_left)(lang))


class CheckinRefusedPage(QWidget):
    """A check-in refused: what happened and what to do, in both languages; "重新输入" back to the keypad."""

    retry_tapped = Signal()
    back_tapped = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(100, 30, 100, 40)
        lay.setSpacing(12)
        lay.addStretch(1)
        badge = _label("ciBadge")
        badge.setText("!")
        centred_row(lay, badge)
        self.title = _label("ciRefTitle")
        self.title_sub = _label("ciRefTitleSub")
        self.body = _label("ciRefBody")
        self.body_sub = _label("ciRefBodySub")
        self.code = _label("ciCountdown")
        for w in (self.title, self.title_sub):
            lay.addWidget(w)
        lay.addSpacing(16)
        for w in (self.body, self.body_sub):
            lay.addWidget(w)
        lay.addStretch(1)
        self.retry = make_button("ciGo")
        self.retry.clicked.connect(self.retry_tapped)
        self.back = make_button("ciBack")
        self.back.clicked.connect(self.back_tapped)
        centred_row(lay, self.retry, self.back, gap=24)
        lay.addWidget(self.code)

    def refresh(self, model: KioskModel, seconds_left: int) -> None:
        msg = model.message
        if msg is None:
            return
        lang = model.language
        set_pair(self.title, self.title_sub, msg.title, lang, hide_repeat=True)
        set_pair(self.body, self.body_sub, msg.body, lang, hide_repeat=True)
        self.retry.setText(Bi("重新输入", "Try again")(lang))
        self.back.setText(BACK(lang))
        left = back_countdown(seconds_left)(lang)
        self.code.setText(f"{left} · {msg.code}" if msg.code else left)


class CheckinScreens:
    """Everything the kiosk window needs for check-in, in one place, so the window only calls it:

    * :meth:`pages`: the three pages by screen, for the window's page stack;
    * :attr:`button`: the start page's entry (the window puts it on the start page);
    * :meth:`key`: every key the window receives, for the barcode scanner (:class:`ScanDetector`);
    * :meth:`refresh`, :meth:`scale`: drawing.

    ``controller`` carries out what a tap or a scan asks (:class:`~queuehall.kiosk.controller.KioskController`),
    ``touched`` restarts the window's idle countdown. ``clock`` gives the keys' arrival times (seconds)."""

    def __init__(self, controller: Any, touched: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.controller = controller
        self.model: KioskModel = controller.model
        self.touched = touched
        self.clock = clock
        self.detector = ScanDetector()
        self.keypad = CheckinPage()
        self.done = CheckedInPage()
        self.refused = CheckinRefusedPage()
        self.button = CheckinButton()
        c = controller
        self.button.clicked.connect(lambda: self._tap(c.open_checkin))
        self.keypad.key_tapped.connect(lambda k: self._tap(c.type_code, k))
        self.keypad.submit_tapped.connect(lambda: self._tap(c.submit_code))
        self.keypad.back_tapped.connect(lambda: self._tap(self._back))
        self.done.done_tapped.connect(lambda: self._tap(self._back, True))
        self.refused.retry_tapped.connect(lambda: self._tap(c.open_checkin))
        self.refused.back_tapped.connect(lambda: self._tap(self._back))

    def pages(self) -> dict[Screen, QWidget]:
        return {Screen.CHECKIN: self.keypad, Screen.CHECKED_IN: self.done, Screen.CHECKIN_REFUSED: self.refused}

    def _back(self, reset_language: bool = False) -> None:
        self.model.back_to_start(reset_language=reset_language)
        self.controller.on_change()

    def _tap(self, fn: Callable[..., None], *args: Any) -> None:
        self.touched()  # first: the page the tap opens knows someone is there (its spoken prompt plays)
        fn(*args)

    def key(self, event: QKeyEvent) -> bool:
        """A key the window received: True when it ended a scan (which was then carried out). Keys are never
        taps; a staff page's text fields take their keys before the window sees them."""
        at = self.clock()
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            text = self.detector.enter(at)
            if text is None:
                return False
            self.touched()
            self.controller.scan(text)
            return True
        ch = event.text()
        if len(ch) == 1 and ch.isprintable():
            self.detector.key(ch, at)
        return False

    def scale(self, u: float, large: bool = False) -> None:
        """Restyle the pages for scale ``u`` and the large-text mode (``large``)."""
        style = checkin_style(u, large)
        for w in (self.keypad, self.done, self.refused, self.button):
            w.setStyleSheet(style)
        self.keypad.fit_keys()  # the keys' touch minimum follows the type

    def refresh(self, screen: Screen, seconds_left: int) -> None:
        """Redraw the page shown (and the start page's button, in the present language)."""
        m = self.model
        self.button.refresh(m.language)
        if screen == Screen.CHECKIN:
            self.keypad.refresh(m)
        elif screen == Screen.CHECKED_IN:
            self.done.refresh(m, seconds_left)
        elif screen == Screen.CHECKIN_REFUSED:
            self.refused.refresh(m, seconds_left)
