"""The kiosk's service page: materials (一次性告知) and description, the wait, the green channel, Confirm and Back."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QBoxLayout,
    QButtonGroup,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)
from queuehall.kiosk.model import Bi, KioskModel, ServiceCard
from queuehall.kiosk.widgets import apply_scale, clear_layout, make_button, make_label, min_size, touch_scroll


class DetailsPage(QWidget):
    """One service before the citizen confirms: materials (一次性告知), promised time, green channel."""

    priority_chosen = Signal(object)
    confirm_tapped = Signal()
    back_tapped = Signal()

    def __init__(self) -> None:
        super().__init__()
        # Landscape: materials left, the service and the buttons right. Portrait: stacked (set_portrait).
        self.lay = lay = QBoxLayout(QBoxLayout.Direction.LeftToRight, self)
        lay.setContentsMargins(48, 30, 48, 34)
        lay.setSpacing(36)
        # Left: materials.
        card = QFrame()
        card.setObjectName("card")
        cl = QVBoxLayout(card)
        cl.setContentsMargins(36, 26, 30, 26)
        self.mat_title = make_label("sectionTitle")
        self.mat_sub = make_label("sectionSub")
        cl.addWidget(self.mat_title)
        cl.addWidget(self.mat_sub)
        cl.addSpacing(8)
        self.materials_scroll = QScrollArea()
        touch_scroll(self.materials_scroll)
        self.materials_scroll.setStyleSheet("background: transparent;")
        inner = QWidget()
        self.materials = QVBoxLayout(inner)
        self.materials.setContentsMargins(0, 0, 10, 0)
        self.materials.setSpacing(6)
        self.materials_scroll.setWidget(inner)
        cl.addWidget(self.materials_scroll, 1)
        lay.addWidget(card, 56)
        # Right: service, queue, promise, priority, buttons.
        right = QVBoxLayout()
        right.setSpacing(10)
        self.title = make_label("title")
        self.subtitle = make_label("subtitle")
        right.addWidget(self.title)
        right.addWidget(self.subtitle)
        right.addSpacing(10)
        self.queue = make_label("info")
        self.wait_note = make_label("reason")  # past the session's end, or no open counter
        self.promise = make_label("promise")
        self.reason = make_label("reason")
        right.addWidget(self.queue)
        right.addWidget(self.wait_note)
        right.addWidget(self.promise)
        right.addWidget(self.reason)
        right.addSpacing(10)
        self.prio_title = make_label("sectionTitle")
        right.addWidget(self.prio_title)
        self.prio_grid = QGridLayout()
        self.prio_grid.setSpacing(12)
        right.addLayout(self.prio_grid)
        right.addStretch(1)
        self.confirm = make_button("confirm")
        min_size(self.confirm, 0, 130)
        self.confirm.clicked.connect(self._confirm_clicked)
        self.back = make_button("back")
        min_size(self.back, 0, 96)
        self.back.clicked.connect(self.back_tapped)
        right.addWidget(self.confirm)
        right.addWidget(self.back)
        lay.addLayout(right, 44)
        self.prio_group = QButtonGroup(self)
        self.prio_group.setExclusive(True)
        self.prio_buttons: dict[str | None, QPushButton] = {}
        self._shown: tuple[str | None, str, tuple[str, ...]] | None = None
        self.portrait = False
        self.u = 1.0

    def set_portrait(self, portrait: bool) -> None:
        """Re-flow for a standing (portrait) screen: the materials above, the service and buttons below."""
        self.portrait = portrait
        self.lay.setDirection(QBoxLayout.Direction.TopToBottom if portrait else QBoxLayout.Direction.LeftToRight)
        self.lay.setStretch(0, 50 if portrait else 56)
        self.lay.setStretch(1, 50 if portrait else 44)

    def _confirm_clicked(self) -> None:
        # Disable at once, before anything else runs: a second tap in the same instant finds it off.
        self.confirm.setEnabled(False)
        self.confirm_tapped.emit()

    def refresh(self, model: KioskModel) -> None:
        card = model.card(model.selected or "")
        if card is None:
            return
        lang = model.language
        first, second = card.name.pick(lang)
        self.title.setText(first)
        self.subtitle.setText(second)
        wait = card.wait
        self.queue.setText(Bi(f"当前等候 {card.waiting} 人，{wait.zh}",
                              f"{card.waiting} waiting now, {wait.en}")(lang))
        self.wait_note.setVisible(card.wait_note is not None)
        self.wait_note.setText(card.wait_note(lang) if card.wait_note else "")
        self.promise.setVisible(card.promised is not None)
        self.promise.setText(card.promised(lang) if card.promised else "")
        self.reason.setVisible(card.reason is not None)
        self.reason.setText(card.reason(lang) if card.reason else "")
        self.mat_title.setText(Bi("请备齐以下材料（一次性告知）", "Please bring (one-time notice)")(lang))
        self.mat_sub.setText(Bi("材料不齐可能无法当场办理；清单也印在号票上",
                                "Without these documents we may not be able to help today; "
                                "the list is printed on your ticket")(lang))
        key = (card.code, lang, card.priority_classes)
        if key != self._shown:
            clear_layout(self.materials)
            if card.description is not None:  # fees, eligibility: told once, with the materials
                a, b = card.description.pick(lang)
                notice = QWidget()
                col = QVBoxLayout(notice)
                col.setContentsMargins(0, 0, 0, 10)
                col.setSpacing(2)
                col.addWidget(make_label("descriptionTitle", Bi("办理须知", "Please note")(lang)))
                col.addWidget(make_label("description", a))
                if b:
                    col.addWidget(make_label("materialSub", b))
                self.materials.addWidget(notice)
                notice.show()
            if not card.materials:
                none = make_label("material", Bi("无需特别材料", "No documents needed")(lang))
                self.materials.addWidget(none)
                none.show()
            for i, m in enumerate(card.materials, start=1):
                a, b = m.pick(lang)
                item = QWidget()
                row = QHBoxLayout(item)
                row.setContentsMargins(0, 0, 0, 6)
                row.setSpacing(6)
                number = make_label("materialNo", f"{i}.", wrap=False)
                number.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
                row.addWidget(number, 0, Qt.AlignmentFlag.AlignTop)
                texts = QVBoxLayout()
                texts.setSpacing(0)
                texts.addWidget(make_label("material", a))
                if b:
                    texts.addWidget(make_label("materialSub", b))
                row.addLayout(texts, 1)
                self.materials.addWidget(item)
                item.show()
            self.materials.addStretch(1)
            inner = self.materials_scroll.widget()
            if inner is not None:
                apply_scale(inner, self.u)
            self.materials_scroll.verticalScrollBar().setValue(0)
            self._build_priority(model, card, lang)
            self._shown = key
        for choice, button in self.prio_buttons.items():
            button.setChecked(choice == model.priority)
        busy = model.busy
        self.confirm.setEnabled(card.open and not busy)
        self.back.setEnabled(not busy)
        if busy:
            self.confirm.setText(Bi("正在出票，请稍候……", "Printing your ticket…")(lang))
        else:
            self.confirm.setText(Bi("确认取号", "Take a ticket")(lang))
        self.back.setText(Bi("返回", "Back")(lang))

    def _build_priority(self, model: KioskModel, card: ServiceCard, lang: str) -> None:
        for b in self.prio_buttons.values():
            self.prio_group.removeButton(b)
        clear_layout(self.prio_grid)
        self.prio_buttons.clear()
        self.prio_title.setVisible(bool(card.priority_classes))
        if not card.priority_classes:
            return
        self.prio_title.setText(Bi("绿色通道（请向工作人员出示证件）",
                                   "Priority channel (show your document to staff)")(lang))
        choices: list[tuple[str | None, str]] = [(None, Bi("普通号", "Regular")(lang))]
        choices += [(c, model.priority_name(c)(lang)) for c in card.priority_classes]
        for i, (code, text) in enumerate(choices):
            b = make_button("prioButton", text)
            b.setCheckable(True)
            min_size(b, 0, 78)
            apply_scale(b, self.u)
            b.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            b.clicked.connect(lambda _=False, c=code: self.priority_chosen.emit(c))
            self.prio_group.addButton(b)
            self.prio_grid.addWidget(b, i // 2, i % 2)
            b.show()
            self.prio_buttons[code] = b

