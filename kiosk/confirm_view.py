"""The kiosk's pages after a tap: the confirmation with the number, a failed print, full-screen notices."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget
from queuehall.kiosk.model import FAREWELL, NUMBER_KEPT, PRINT_FAILED, Bi, KioskModel
from queuehall.kiosk.widgets import make_button, make_label, min_size


class ConfirmationPage(QWidget):
    """The big number after issuing, with people ahead and the wait; returns to start by itself."""

    done_tapped = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(60, 30, 60, 40)
        lay.setSpacing(8)
        center = Qt.AlignmentFlag.AlignHCenter
        self.caption = make_label("caption", align=center)
        self.number = make_label("bigNumber", wrap=False, align=center)
        self.line = make_label("confirmLine", align=center)
        self.line_sub = make_label("confirmSub", align=center)
        self.service = make_label("confirmSub", align=center)
        self.where = make_label("confirmWhere", align=center)  # which counters serve it (issue 15)
        self.where_sub = make_label("confirmSub", align=center)
        self.farewell = make_label("farewell", align=center)
        self.countdown = make_label("countdown", align=center)
        lay.addStretch(1)
        for w in (self.caption, self.number, self.line, self.line_sub, self.service, self.where, self.where_sub):
            lay.addWidget(w)
        lay.addSpacing(24)
        lay.addWidget(self.farewell)
        lay.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        self.done = make_button("back")
        min_size(self.done, 420, 96)
        self.done.clicked.connect(self.done_tapped)
        row.addWidget(self.done)
        row.addStretch(1)
        lay.addLayout(row)
        lay.addWidget(self.countdown)

    def refresh(self, model: KioskModel, seconds_left: int) -> None:
        info = model.confirmation()
        if info is None:
            return
        label, line, service = info
        lang = model.language
        self.caption.setText(Bi("您的号码", "Your number")(lang))
        self.number.setText(label)
        first, second = line.pick(lang)
        self.line.setText(first)
        self.line_sub.setText(second)
        prio = model.issued.record.priority if model.issued else None
        svc = service(lang)
        if prio:
            svc += " · " + Bi("绿色通道", "Priority")(lang) + " " + model.priority_name(str(prio))(lang)
        self.service.setText(svc)
        code = model.issued.record.service if model.issued else ""
        where = model.where_to_go(code)
        a, b = where.pick(lang) if where else ("", "")
        self.where.setText(a)
        self.where_sub.setText(b)
        self.where.setVisible(bool(a))
        self.where_sub.setVisible(bool(b))
        self.farewell.setText(FAREWELL(lang))
        self.done.setText(Bi("完成", "Done")(lang))
        self.countdown.setText(Bi(f"{seconds_left} 秒后自动返回首页",
                                  f"Back to the start in {seconds_left} s")(lang))


class PrintFailedPage(QWidget):
    """The ticket was not printed: the number very large (to write down or photograph), that it keeps
    its place, and where to go for a printed ticket, in both languages; returns to start by itself."""

    button_tapped = Signal()

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(60, 24, 60, 30)
        lay.setSpacing(6)
        center = Qt.AlignmentFlag.AlignHCenter
        self.title = make_label("failedTitle", align=center)
        self.title_sub = make_label("confirmSub", align=center)
        self.caption = make_label("caption", align=center)
        self.number = make_label("bigNumber", wrap=False, align=center)
        self.kept = make_label("confirmLine", align=center)
        self.kept_sub = make_label("confirmSub", align=center)
        self.go = make_label("goHelp", align=center)
        self.go_sub = make_label("goHelpSub", align=center)
        self.countdown = make_label("countdown", align=center)
        lay.addStretch(1)
        for w in (self.title, self.title_sub):
            lay.addWidget(w)
        lay.addSpacing(18)
        for w in (self.caption, self.number, self.kept, self.kept_sub):
            lay.addWidget(w)
        lay.addSpacing(14)
        lay.addWidget(self.go)
        lay.addWidget(self.go_sub)
        lay.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        self.button = make_button("back")
        min_size(self.button, 420, 96)
        self.button.clicked.connect(self.button_tapped)
        row.addWidget(self.button)
        row.addStretch(1)
        lay.addLayout(row)
        lay.addWidget(self.countdown)

    def refresh(self, model: KioskModel, seconds_left: int) -> None:
        info = model.print_failed_info()
        if info is None:
            return
        label, go = info
        lang = model.language
        a, b = PRINT_FAILED.pick(lang)
        self.title.setText(a)
        self.title_sub.setText(b)
        self.caption.setText(Bi("您的号码", "Your number")(lang))
        self.number.setText(label)
        a, b = NUMBER_KEPT.pick(lang)
        self.kept.setText(a)
        self.kept_sub.setText(b)
        a, b = go.pick(lang)
        self.go.setText(a)
        self.go_sub.setText(b)
        self.button.setText(Bi("好的", "OK")(lang))
        self.countdown.setText(Bi(f"{seconds_left} 秒后自动返回首页",
                                  f"Back to the start in {seconds_left} s")(lang))


class NoticePage(QWidget):
    """A full-screen notice: closed, out of service, ask staff, print failure, refusal."""

    button_tapped = Signal()

    def __init__(self, badge: str, color: str) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(120, 40, 120, 60)
        lay.setSpacing(14)
        center = Qt.AlignmentFlag.AlignHCenter
        lay.addStretch(1)
        self.badge = make_label("badge", badge, wrap=False, align=Qt.AlignmentFlag.AlignHCenter)
        self.badge.setStyleSheet(f"background: {color};")
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.badge)
        row.addStretch(1)
        lay.addLayout(row)
        lay.addSpacing(16)
        self.title = make_label("noticeTitle", align=center)
        self.title.setStyleSheet(f"color: {color};")
        self.title_sub = make_label("noticeTitleSub", align=center)
        self.body = make_label("noticeBody", align=center)
        self.body_sub = make_label("noticeBodySub", align=center)
        self.extra = make_label("noticeExtra", align=center)
        self.extra_sub = make_label("noticeBodySub", align=center)
        self.detail = make_label("noticeDetail", align=center)
        for w in (self.title, self.title_sub):
            lay.addWidget(w)
        lay.addSpacing(20)
        for w in (self.body, self.body_sub, self.extra, self.extra_sub):
            lay.addWidget(w)
        lay.addStretch(1)
        brow = QHBoxLayout()
        brow.addStretch(1)
        self.button = make_button("back")
        min_size(self.button, 420, 96)
        self.button.clicked.connect(self.button_tapped)
        brow.addWidget(self.button)
        brow.addStretch(1)
        lay.addLayout(brow)
        lay.addWidget(self.detail)

    def show_notice(self, lang: str, title: Bi, body: Bi, extra: Bi | str = "", button: Bi | None = None,
                    detail: str = "") -> None:
        """Fill the notice: title and body in both languages (primary first), an emphasised extra line
        (in both languages when a Bi), an optional button, and a small line for staff (a code, never
        an exception's text)."""
        self.detail.setText(detail)
        self.detail.setVisible(bool(detail))
        a, b = title.pick(lang)
        self.title.setText(a)
        self.title_sub.setText(b)
        a, b = body.pick(lang)
        self.body.setText(a)
        self.body_sub.setText(b)
        self.body_sub.setVisible(bool(b) and b != a)
        a, b = extra.pick(lang) if isinstance(extra, Bi) else (extra, "")
        self.extra.setText(a)
        self.extra.setVisible(bool(a))
        self.extra_sub.setText(b)
        self.extra_sub.setVisible(bool(b) and b != a)
        self.button.setVisible(button is not None)
        if button is not None:
            self.button.setText(button(lang))

