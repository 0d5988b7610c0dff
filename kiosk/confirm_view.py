"""The kiosk's pages after a tap: the confirmation with the number, a failed print, full-screen notices."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QVBoxLayout, QWidget
from queuehall.kiosk.model import (
    DONE,
    FAREWELL,
    NUMBER_KEPT,
    PRINT_FAILED,
    YOUR_NUMBER,
    Bi,
    KioskModel,
    back_countdown,
)
from queuehall.kiosk.widgets import big_button, centred_row, make_label, set_pair


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
        self.done = big_button("back", self.done_tapped)
        centred_row(lay, self.done)
        lay.addWidget(self.countdown)

    def refresh(self, model: KioskModel, seconds_left: int) -> None:
        info = model.confirmation()
        if info is None:
            return
        label, line, service = info
        lang = model.language
        self.caption.setText(YOUR_NUMBER(lang))
        self.number.setText(label)
        set_pair(self.line, self.line_sub, line, lang)
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
        self.done.setText(DONE(lang))
        self.countdown.setText(back_countdown(seconds_left)(lang))


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
        self.button = big_button("back", self.button_tapped)
        centred_row(lay, self.button)
        lay.addWidget(self.countdown)

    def refresh(self, model: KioskModel, seconds_left: int) -> None:
        info = model.print_failed_info()
        if info is None:
            return
        label, go = info
        lang = model.language
        set_pair(self.title, self.title_sub, PRINT_FAILED, lang)
        self.caption.setText(YOUR_NUMBER(lang))
        self.number.setText(label)
        set_pair(self.kept, self.kept_sub, NUMBER_KEPT, lang)
        set_pair(self.go, self.go_sub, go, lang)
        self.button.setText(Bi("好的", "OK")(lang))
        self.countdown.setText(back_countdown(seconds_left)(lang))


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
        centred_row(lay, self.badge)
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
        self.button = big_button("back", self.button_tapped)
        centred_row(lay, self.button)
        lay.addWidget(self.detail)

    def show_notice(self, lang: str, title: Bi, body: Bi, extra: Bi | str = "", button: Bi | None = None,
                    detail: str = "") -> None:
        """Fill the notice: title and body in both languages (primary first), an emphasised extra line
        (in both languages when a Bi), an optional button, and a small line for staff (a code, never
        an exception's text)."""
        self.detail.setText(detail)
        self.detail.setVisible(bool(detail))
        set_pair(self.title, self.title_sub, title, lang)
        set_pair(self.body, self.body_sub, body, lang, hide_repeat=True)
        a, b = extra.pick(lang) if isinstance(extra, Bi) else (extra, "")
        self.extra.setText(a)
        self.extra.setVisible(bool(a))
        self.extra_sub.setText(b)
        self.extra_sub.setVisible(bool(b) and b != a)
        self.button.setVisible(button is not None)
        if button is not None:
            self.button.setText(button(lang))

