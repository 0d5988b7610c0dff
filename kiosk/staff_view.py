"""The kiosk's staff pages: the PIN pad and the settings (printer, default language, voice, reprint, quit), with
on-screen keyboards for the printer and the ticket number (a kiosk has no physical keyboard)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)
from queuehall.kiosk.model import Bi, KioskModel
from queuehall.kiosk.widgets import fixed_width, make_button, make_label, min_size


class PinPage(QWidget):
    """The staff PIN pad (digits only, masked)."""

    submitted = Signal(str)
    cancelled = Signal()
    touched = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(60, 30, 60, 40)
        center = Qt.AlignmentFlag.AlignHCenter
        lay.addStretch(1)
        self.title = make_label("title", align=center)
        lay.addWidget(self.title)
        self.display = make_label("pinDisplay", wrap=False, align=center)
        fixed_width(self.display, 560)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.display)
        row.addStretch(1)
        lay.addLayout(row)
        self.message = make_label("pinMessage", align=center)
        lay.addWidget(self.message)
        grid = QGridLayout()
        grid.setSpacing(16)
        self.keys: dict[str, QPushButton] = {}
        for i, key in enumerate(["1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "ok"]):
            b = make_button("pinKey", key)
            b.clicked.connect(lambda _=False, k=key: self._key(k))
            grid.addWidget(b, i // 3, i % 3)
            self.keys[key] = b
        grow = QHBoxLayout()
        grow.addStretch(1)
        grow.addLayout(grid)
        grow.addStretch(1)
        lay.addLayout(grow)
        lay.addSpacing(20)
        crow = QHBoxLayout()
        crow.addStretch(1)
        self.cancel = make_button("back")
        min_size(self.cancel, 360, 90)
        self.cancel.clicked.connect(self._cancel)
        crow.addWidget(self.cancel)
        crow.addStretch(1)
        lay.addLayout(crow)
        lay.addStretch(1)
        self.pin = ""

    def _key(self, key: str) -> None:
        self.touched.emit()
        if key == "clear":
            self.pin = ""
        elif key == "ok":
            pin, self.pin = self.pin, ""
            self.submitted.emit(pin)
        elif len(self.pin) < 12:
            self.pin += key
        self.display.setText("●" * len(self.pin))

    def _cancel(self) -> None:
        self.pin = ""
        self.display.setText("")
        self.message.setText("")
        self.cancelled.emit()

    def refresh(self, lang: str) -> None:
        self.title.setText(Bi("工作人员设置：请输入密码", "Staff settings: enter the PIN")(lang))
        self.keys["clear"].setText(Bi("清除", "Clear")(lang))
        self.keys["ok"].setText(Bi("确定", "OK")(lang))
        self.cancel.setText(Bi("取消", "Cancel")(lang))


class TextPad(QFrame):
    """An on-screen keyboard in place of a physical one: the staff settings work by touch (issue 15).

    ``rows`` are the keys, one string per row; ``prefixes`` are whole words typed by one key (the printer
    forms ``network:`` …); ``shift`` adds a key that switches the letters between lower and upper case.
    ``done(text)`` is emitted by 完成 / Done; every key emits ``touched`` (the idle countdown restarts).
    """

    done = Signal(str)
    touched = Signal()

    def __init__(self, rows: tuple[str, ...], *, max_length: int, upper: bool = True, shift: bool = False,
                 prefixes: tuple[str, ...] = (), display: str = "pinDisplay") -> None:
        super().__init__()
        self.text = ""  # typed so far
        self.max_length = max_length
        self.upper = upper  # letters upper case (and keys shown so)
        self.setObjectName("card")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(36, 18, 36, 18)
        lay.setSpacing(8)
        self.display = make_label(display, wrap=False, align=Qt.AlignmentFlag.AlignHCenter)
        self.display.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        lay.addWidget(self.display)
        self.keys: dict[str, QPushButton] = {}
        if prefixes:
            prow = QHBoxLayout()
            for word in prefixes:
                b = make_button("padKey", word)
                b.clicked.connect(lambda _=False, w=word: self._key(w))
                prow.addWidget(b)
                self.keys[word] = b
            lay.addLayout(prow)
        grid = QGridLayout()
        grid.setSpacing(8)
        for r, row in enumerate(rows):
            for c, key in enumerate(row):
                b = make_button("padKey", key)
                b.clicked.connect(lambda _=False, k=key: self._key(k))
                grid.addWidget(b, r, c)
                self.keys[key] = b
        width = max(len(row) for row in rows)
        self.keys["delete"] = make_button("padKey", "⌫")
        self.keys["delete"].clicked.connect(lambda: self._key("delete"))
        # ⌫ fills the end of the lowest row that is shorter than the widest.
        r = next((i for i in range(len(rows) - 1, -1, -1) if len(rows[i]) < width), len(rows) - 1)
        grid.addWidget(self.keys["delete"], r, len(rows[r]), 1, max(1, width - len(rows[r])))
        if shift:
            self.keys["shift"] = make_button("padKey", "⇧")
            self.keys["shift"].setCheckable(True)
            self.keys["shift"].clicked.connect(lambda: self._key("shift"))
            grid.addWidget(self.keys["shift"], len(rows) - 2, len(rows[-2]), 1, max(1, width - len(rows[-2])))
        lay.addLayout(grid)
        actions = QHBoxLayout()
        self.keys["clear"] = make_button("setButton")
        self.keys["clear"].clicked.connect(lambda: self._key("clear"))
        self.keys["ok"] = make_button("setButton")
        self.keys["ok"].clicked.connect(lambda: self.done.emit(self.text))
        actions.addWidget(self.keys["clear"])
        actions.addStretch(1)
        actions.addWidget(self.keys["ok"])
        lay.addLayout(actions)
        self._show_case()

    def set_text(self, text: str) -> None:
        """Start from ``text`` (what the field holds)."""
        text = text.strip()
        self.text = (text.upper() if self.upper and "shift" not in self.keys else text)[:self.max_length]
        self.display.setText(self.text)

    def _show_case(self) -> None:
        for key, b in self.keys.items():
            if len(key) == 1 and key.isalpha():
                b.setText(key.upper() if self.upper else key.lower())

    def _key(self, key: str) -> None:
        self.touched.emit()
        if key == "clear":
            self.text = ""
        elif key == "delete":
            self.text = self.text[:-1]
        elif key == "shift":
            self.upper = not self.upper
            self._show_case()
        elif len(self.text) + len(key) <= self.max_length:
            self.text += key.upper() if self.upper and len(key) == 1 else key
        # The end of a long printer address stays in view.
        self.display.setText(self.text if len(self.text) <= 28 else "…" + self.text[-27:])

    def refresh(self, lang: str) -> None:
        self.keys["clear"].setText(Bi("清除", "Clear")(lang))
        self.keys["ok"].setText(Bi("完成", "Done")(lang))


class TicketPad(TextPad):
    """The keypad for a ticket number (letters and digits, at most 12)."""

    KEYS = ("ABCDEFGHI", "JKLMNOPQR", "STUVWXYZ", "1234567890")

    def __init__(self) -> None:
        super().__init__(self.KEYS, max_length=12)


class PrinterPad(TextPad):
    """The keyboard for the printer field: the forms as whole words (``network:`` …), digits, letters in
    either case (``serial:/dev/ttyUSB0``, ``cups:TM-T88``) and the signs printer addresses use."""

    KEYS = ("1234567890", "qwertyuiop", "asdfghjkl:", "zxcvbnm/._", "-@[]")
    FORMS = ("network:", "usb:", "serial:/dev/", "file:", "cups:")

    def __init__(self) -> None:
        # A printer address is long: plain type, no letter-spacing (the ticket pad spaces its few characters).
        super().__init__(self.KEYS, max_length=200, upper=False, shift=True, prefixes=self.FORMS,
                         display="padDisplay")


class SettingsPage(QWidget):
    """Staff settings: printer (spec, paper, mode, status, test print), default language, spoken guidance on or
    muted, reprint, leave, quit."""

    apply_printer = Signal(str, int, str)
    test_print = Signal()
    refresh_status = Signal()
    default_language = Signal(str)
    voice_muted = Signal(bool)
    reprint = Signal(str)
    back_tapped = Signal()
    quit_tapped = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(60, 18, 60, 24)
        lay.setSpacing(10)
        self.title = make_label("title")
        lay.addWidget(self.title)
        card = QFrame()
        card.setObjectName("card")
        grid = QGridLayout(card)
        grid.setContentsMargins(36, 18, 36, 18)
        grid.setHorizontalSpacing(24)
        grid.setVerticalSpacing(8)
        self.labels: dict[str, QLabel] = {}

        def row(r: int, key: str) -> None:
            lab = make_label("setLabel", wrap=False)
            self.labels[key] = lab
            grid.addWidget(lab, r, 0, Qt.AlignmentFlag.AlignTop)

        row(0, "broker")
        self.broker = make_label("setValue")
        grid.addWidget(self.broker, 0, 1, 1, 3)
        row(1, "status")
        self.status = make_label("setValue")
        grid.addWidget(self.status, 1, 1, 1, 2)
        self.recheck = make_button("setButton")
        self.recheck.clicked.connect(self.refresh_status)
        grid.addWidget(self.recheck, 1, 3)
        row(2, "printer")
        self.spec = QLineEdit()
        self.spec.setObjectName("setEdit")
        self.spec.setPlaceholderText("file:/path | network:host[:9100] | usb:VID:PID | serial:/dev/ttyUSB0 | "
                                     "cups:name")
        self.spec_pad_button = make_button("setButton")  # no keyboard at a kiosk: typed on the screen
        self.spec_pad_button.clicked.connect(self.open_spec_pad)
        srow = QHBoxLayout()
        srow.addWidget(self.spec, 1)
        srow.addWidget(self.spec_pad_button)
        grid.addLayout(srow, 2, 1, 1, 3)
        row(3, "paper")
        self.paper_group = QButtonGroup(self)
        self.paper: dict[int, QPushButton] = {}
        prow = QHBoxLayout()
        for mm in (80, 58):
            b = make_button("setButton", f"{mm} mm")
            b.setCheckable(True)
            self.paper_group.addButton(b)
            self.paper[mm] = b
            prow.addWidget(b)
        prow.addStretch(1)
        grid.addLayout(prow, 3, 1, 1, 3)
        row(4, "mode")
        self.mode_group = QButtonGroup(self)
        self.mode: dict[str, QPushButton] = {}
        mrow = QHBoxLayout()
        for m in ("raster", "text"):
            b = make_button("setButton")
            b.setCheckable(True)
            self.mode_group.addButton(b)
            self.mode[m] = b
            mrow.addWidget(b)
        mrow.addStretch(1)
        grid.addLayout(mrow, 4, 1, 1, 3)
        arow = QHBoxLayout()
        self.apply = make_button("setButton")
        self.apply.clicked.connect(self._apply)
        self.test = make_button("setButton")
        self.test.clicked.connect(self.test_print)
        arow.addWidget(self.apply)
        arow.addWidget(self.test)
        arow.addStretch(1)
        grid.addLayout(arow, 5, 1, 1, 3)
        self.result = make_label("setValue")
        grid.addWidget(self.result, 6, 1, 1, 3)
        row(7, "language")
        lrow = QHBoxLayout()
        self.lang_group = QButtonGroup(self)
        self.langs: dict[str, QPushButton] = {}
        for code, text in (("zh", "中文"), ("en", "English")):
            b = make_button("setButton", text)
            b.setCheckable(True)
            b.clicked.connect(lambda _=False, c=code: self.default_language.emit(c))
            self.lang_group.addButton(b)
            self.langs[code] = b
            lrow.addWidget(b)
        lrow.addStretch(1)
        # The spoken guidance (语音引导): checked = on; unchecking mutes this kiosk for every citizen after.
        self.voice = make_button("setButton")
        self.voice.setCheckable(True)
        self.voice.clicked.connect(lambda on: self.voice_muted.emit(not on))
        lrow.addWidget(self.voice)
        grid.addLayout(lrow, 7, 1, 1, 3)
        # Reprint a ticket at this kiosk.
        row(8, "reprint")
        rrow = QHBoxLayout()
        self.reprint_ticket = QLineEdit()
        self.reprint_ticket.setObjectName("setEdit")
        self.reprint_ticket.setPlaceholderText("A012")
        self.reprint_ticket.setMaxLength(12)
        self.reprint_button = make_button("setButton")
        self.reprint_button.clicked.connect(lambda: self.reprint.emit(self.reprint_ticket.text().strip()))
        # A touch screen has no keyboard: the number is typed on an on-screen keypad (issue 15).
        self.pad_button = make_button("setButton")
        self.pad_button.clicked.connect(self.open_pad)
        rrow.addWidget(self.reprint_ticket, 1)
        rrow.addWidget(self.pad_button)
        rrow.addWidget(self.reprint_button)
        grid.addLayout(rrow, 8, 1, 1, 3)
        grid.setColumnStretch(1, 1)
        # The card, or the keypad in its place while a number is typed.
        self.body = QStackedWidget()
        self.body.addWidget(card)
        self.pad = TicketPad()
        self.pad.done.connect(self._pad_done)
        self.body.addWidget(self.pad)
        self.spec_pad = PrinterPad()
        self.spec_pad.done.connect(self._spec_pad_done)
        self.body.addWidget(self.spec_pad)
        lay.addWidget(self.body)
        lay.addStretch(1)  # a tall (portrait) screen: the rows stay together, the room goes below
        brow = QHBoxLayout()
        self.back = make_button("back")
        min_size(self.back, 0, 90)
        self.back.clicked.connect(self.back_tapped)
        self.quit = make_button("danger")
        self.quit.clicked.connect(self.quit_tapped)
        brow.addWidget(self.back, 3)
        brow.addStretch(1)
        brow.addWidget(self.quit, 1)
        lay.addLayout(brow)

    def open_pad(self) -> None:
        """Show the keypad in place of the settings card, starting from the number typed so far."""
        self.pad.set_text(self.reprint_ticket.text())
        self.body.setCurrentWidget(self.pad)

    def open_spec_pad(self) -> None:
        """Show the printer keyboard in place of the settings card, starting from the field's text."""
        self.spec_pad.set_text(self.spec.text())
        self.body.setCurrentWidget(self.spec_pad)

    def _spec_pad_done(self, text: str) -> None:
        self.spec.setText(text)
        self.body.setCurrentIndex(0)

    def _pad_done(self, text: str) -> None:
        self.reprint_ticket.setText(text)
        self.body.setCurrentIndex(0)

    def _apply(self) -> None:
        paper = 58 if self.paper[58].isChecked() else 80
        mode = "text" if self.mode["text"].isChecked() else "raster"
        self.apply_printer.emit(self.spec.text().strip(), paper, mode)

    def load(self, spec: str, paper: int, mode: str) -> None:
        """Fill the printer fields from the current configuration."""
        self.spec.setText(spec)
        self.paper.get(paper, self.paper[80]).setChecked(True)
        self.mode.get(mode, self.mode["raster"]).setChecked(True)

    def refresh(self, model: KioskModel, broker: str) -> None:
        lang = model.language
        t = {"broker": Bi("叫号服务器", "Ticket server"), "status": Bi("打印机状态", "Printer status"),
             "printer": Bi("打印机", "Printer"), "paper": Bi("纸宽", "Paper width"),
             "mode": Bi("打印方式", "Print mode"),
             "language": Bi("默认语言", "Default language"), "reprint": Bi("补打号票", "Reprint a ticket")}
        for key, text in t.items():
            self.labels[key].setText(text(lang))
        self.title.setText(Bi("工作人员设置", "Staff settings")(lang))
        up = Bi("已连接", "connected") if model.connected else Bi("未连接", "not connected")
        self.broker.setText(f"{broker} · {up(lang)}")
        health = model.printer
        self.status.setText(Bi("就绪", "Ready")(lang) if health.ready
                            else f"{health.code} · {health.message(lang) or health.reason(lang)}")
        self.recheck.setText(Bi("重新检查", "Check again")(lang))
        self.mode["raster"].setText(Bi("图像（推荐）", "Raster (recommended)")(lang))
        self.mode["text"].setText(Bi("文字（打印机字库）", "Text (printer fonts)")(lang))
        self.apply.setText(Bi("应用打印机设置", "Apply printer settings")(lang))
        self.test.setText(Bi("测试打印", "Test print")(lang))
        self.reprint_button.setText(Bi("补打", "Reprint")(lang))
        self.pad_button.setText(Bi("键盘", "Keypad")(lang))
        self.spec_pad_button.setText(Bi("键盘", "Keypad")(lang))
        self.pad.refresh(lang)
        self.spec_pad.refresh(lang)
        for code, b in self.langs.items():
            b.setChecked(code == model.settings.language)
        muted = model.settings.voice_muted
        self.voice.setChecked(not muted)
        self.voice.setText((Bi("语音引导：已静音", "Spoken guidance: muted") if muted
                            else Bi("语音引导：开", "Spoken guidance: on"))(lang))
        self.back.setText(Bi("返回取号界面", "Back to the kiosk")(lang))
        self.quit.setText(Bi("退出程序", "Quit kiosk")(lang))

