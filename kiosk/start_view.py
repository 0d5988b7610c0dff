"""The kiosk's start page: the greeting, the departments and the chosen department's service tiles."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QBoxLayout,
    QButtonGroup,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)
from queuehall.kiosk.model import CHOOSE, Bi, KioskModel, ServiceCard
from queuehall.kiosk.widgets import apply_scale, clear_layout, make_label, set_flag


class DeptButton(QPushButton):
    """A department: its name (wrapping to two lines if need be) and how many are waiting, on the right."""

    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code
        self.setObjectName("deptButton")
        self.setCheckable(True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(22, 4, 18, 4)
        lay.setSpacing(12)
        self.name = make_label("deptName")
        self.sub = make_label("deptSub", wrap=False, align=Qt.AlignmentFlag.AlignRight)
        lay.addWidget(self.name, 1)
        lay.addWidget(self.sub)


class ServiceTile(QPushButton):
    """A service: name in both languages, people waiting and the estimated wait, or why it is closed."""

    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code
        self.setObjectName("tile")
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        row = QHBoxLayout(self)
        row.setContentsMargins(16, 16, 24, 16)
        row.setSpacing(22)
        self.accent = QFrame()
        self.accent.setObjectName("accent")
        self.accent.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        row.addWidget(self.accent)
        lay = QVBoxLayout()
        lay.setSpacing(4)
        row.addLayout(lay, 1)
        self.name = make_label("tileName")
        self.sub = make_label("tileSub")
        self.info = make_label("tileInfo", wrap=False)
        self.reason = make_label("tileReason")
        lay.addWidget(self.name)
        lay.addWidget(self.sub)
        lay.addStretch(1)
        lay.addWidget(self.info)
        lay.addWidget(self.reason)

    def show_card(self, card: ServiceCard, lang: str) -> None:
        first, second = card.name.pick(lang)
        self.name.setText(first)
        self.sub.setText(second)
        wait = card.wait
        info = Bi(f"等候 {card.waiting} 人 · {wait.zh}", f"{card.waiting} waiting · {wait.en}")
        self.info.setText(info(lang))
        self.setEnabled(card.open)
        for w in (self.accent, self.name, self.info):
            set_flag(w, "off", not card.open)
        self.reason.setVisible(card.reason is not None)
        self.reason.setText(card.reason(lang) if card.reason else "")


class StartPage(QWidget):
    """The greeting, the departments and the chosen department's services (side by side, or stacked in portrait)."""

    department_tapped = Signal(str)
    service_tapped = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(48, 26, 48, 30)
        lay.setSpacing(6)
        self.greeting = make_label("greeting")
        self.choose = make_label("choose")
        lay.addWidget(self.greeting)
        lay.addWidget(self.choose)
        lay.addSpacing(14)
        # Landscape: departments on the left, services on the right. Portrait: departments in two columns
        # above, services below, one per row (set_portrait).
        self.body = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self.body.setSpacing(30)
        self.depts = QGridLayout()
        self.depts.setSpacing(12)
        dept_box = QWidget()
        dept_box.setLayout(self.depts)
        self.body.addWidget(dept_box, 30)
        self.grid = QGridLayout()
        self.grid.setSpacing(22)
        grid_box = QWidget()
        grid_box.setLayout(self.grid)
        self.body.addWidget(grid_box, 70)
        lay.addLayout(self.body, 1)
        lay.addSpacing(16)
        self.notice = make_label("notice")
        # The hall's notice, and beside it the entries other flows add (add_action: 预约签到), on one row.
        self.footer = QHBoxLayout()
        self.footer.setSpacing(16)
        self.footer.addWidget(self.notice, 1)
        lay.addLayout(self.footer)
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        self.dept_buttons: dict[str, DeptButton] = {}
        self.tiles: dict[str, ServiceTile] = {}
        self._dept_codes: list[str] = []
        self._tile_codes: list[str] = []
        self.portrait = False
        self.u = 1.0

    def add_action(self, widget: QWidget) -> None:
        """Put ``widget`` (a button of another flow, e.g. check-in) on the notice's row, at its right."""
        self.footer.addWidget(widget, 0, Qt.AlignmentFlag.AlignVCenter)

    def set_portrait(self, portrait: bool) -> None:
        """Re-flow for a standing (portrait) screen or a landscape one."""
        if portrait == self.portrait:
            return
        self.portrait = portrait
        self.body.setDirection(QBoxLayout.Direction.TopToBottom if portrait else QBoxLayout.Direction.LeftToRight)
        self.body.setStretch(0, 34 if portrait else 30)
        self.body.setStretch(1, 66 if portrait else 70)
        self._place_departments()
        self._place_tiles()

    def _place_departments(self) -> None:
        for b in self.dept_buttons.values():
            self.depts.removeWidget(b)
        columns = 2 if self.portrait else 1
        for i, code in enumerate(self._dept_codes):
            self.depts.addWidget(self.dept_buttons[code], i // columns, i % columns)
            self.dept_buttons[code].show()
        # At least eight (landscape) or four (portrait) equal rows: a short list does not become giant buttons.
        rows = max(8 // columns, -(-len(self._dept_codes) // columns))
        for r in range(max(rows, self.depts.rowCount())):
            self.depts.setRowStretch(r, 1 if r < rows else 0)
        for c in range(2):
            self.depts.setColumnStretch(c, 1 if c < columns else 0)

    def _place_tiles(self) -> None:
        for t in self.tiles.values():
            self.grid.removeWidget(t)
        # Portrait: one service per row, as wide as the screen (two columns when there are many).
        columns = 1 if self.portrait and len(self._tile_codes) <= 6 else 2
        for i, code in enumerate(self._tile_codes):
            self.grid.addWidget(self.tiles[code], i // columns, i % columns)
            self.tiles[code].show()
        # At least three (landscape) or five (portrait) equal rows: one or two services stay tile-sized.
        rows = max(5 if self.portrait else 3, -(-len(self._tile_codes) // columns))
        for r in range(max(rows, self.grid.rowCount())):
            self.grid.setRowStretch(r, 1 if r < rows else 0)
        for c in range(2):
            self.grid.setColumnStretch(c, 1 if c < columns else 0)

    def refresh(self, model: KioskModel) -> None:
        lang = model.language
        self.greeting.setText(model.greeting()(lang))
        self.choose.setText(CHOOSE(lang))
        hall = model.state.get("hall") or {}
        notice = str(hall.get("notice_zh" if lang == "zh" else "notice_en") or "")
        self.notice.setText(notice)
        self.notice.setVisible(bool(notice))
        depts = model.departments()
        codes = [d.code for d in depts]
        if codes != self._dept_codes:
            clear_layout(self.depts)
            self.dept_buttons.clear()
            for d in depts:
                b = DeptButton(d.code)
                b.clicked.connect(lambda _=False, c=d.code: self.department_tapped.emit(c))
                self.group.addButton(b)
                apply_scale(b, self.u)
                self.dept_buttons[d.code] = b
            self._dept_codes = codes
            self._place_departments()
        for d in depts:
            b = self.dept_buttons[d.code]
            b.name.setText(d.name(lang))
            b.sub.setText(f"等候 {d.waiting} 人" if lang == "zh" else f"{d.waiting} waiting")
            set_flag(b.name, "small", lang == "en")  # English names are longer: a size smaller
            on = d.code == model.department
            b.setChecked(on)
            set_flag(b.name, "on", on)
            set_flag(b.sub, "on", on)
        cards = model.department_cards()
        tile_codes = [c.code for c in cards]
        if tile_codes != self._tile_codes:
            clear_layout(self.grid)
            self.tiles.clear()
            for c in cards:
                t = ServiceTile(c.code)
                t.clicked.connect(lambda _=False, code=c.code: self.service_tapped.emit(code))
                apply_scale(t, self.u)
                self.tiles[c.code] = t
            self._tile_codes = tile_codes
            self._place_tiles()
        for c in cards:
            self.tiles[c.code].show_card(c, lang)

