"""A layout check for the screens: everything visible fits the window, no text cut, no siblings overlapping.

:func:`layout_problems` walks a top-level window's widget tree as it is laid out now and returns one line per
problem (an empty list when the screen is fine):

* **outside**: a visible widget that lies (partly) outside the window, or outside the visible part of a
  scroll area's viewport that holds it (a widget one has to scroll to is fine; a widget cut by the
  viewport's edge is not, unless the scroll area can be scrolled to show it);
* **cut**: a label or button whose text does not fit its box (its font's advance width against the contents
  rectangle; a word-wrapping label's height for its width against its height), or a painted display panel
  that had to elide a string (``Painted.elided``) or draw one below ``min_px`` pixels;
* **cell**: a cell of an item view (QTableView/QTableWidget, QListView/QListWidget) whose text the view elides
  (measured as the style draws it: the text rectangle the style leaves in the cell, wrapped when the view
  wraps, against the cell's height), whose text runs past the view's right edge (a clerk would have to scroll
  sideways), or a header section narrower than its title;
* **overlap**: two visible siblings whose rectangles intersect (a widget marked with the dynamic property
  ``layoutOverlay`` — a full-screen overlay such as the display's stale banner — is left out);
* **window**: the window is not the size it was asked to be (a minimum size larger than the screen).

Widgets that are hidden, zero-sized, or inside a page of a stacked widget that is not shown are not checked.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, QPoint, QRect, Qt
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractScrollArea,
    QApplication,
    QHeaderView,
    QLabel,
    QListView,
    QPushButton,
    QStyle,
    QStyleOptionButton,
    QStyleOptionViewItem,
    QTableView,
    QWidget,
)

# Runs of text a line cannot break inside: Latin words and numbers (Chinese breaks between any two characters).
_UNBREAKABLE = re.compile(r"[^\s\u2e80-\u9fff\u3000-\u303f\uff00-\uffef]+")
SLACK = 1  # pixels of rounding allowed between Qt's layout and font metrics


def _rect_in(widget: QWidget, top: QWidget) -> QRect:
    return QRect(widget.mapTo(top, QPoint(0, 0)), widget.size())


def _name(widget: QWidget) -> str:
    text = ""
    if isinstance(widget, QLabel | QAbstractButton):
        text = widget.text().replace("\n", " ")[:40]
    return f"{type(widget).__name__}#{widget.objectName() or '-'}" + (f" '{text}'" if text else "")


def _clip_of(widget: QWidget, top: QWidget) -> tuple[QRect, bool]:
    """The region of ``top`` through which ``widget`` is seen (the innermost scroll area's viewport, or the
    window) and whether that is a scrollable viewport."""
    parent = widget.parentWidget()
    while parent is not None and parent is not top:
        area = parent.parentWidget()
        if isinstance(area, QAbstractScrollArea) and area.viewport() is parent:
            return _rect_in(parent, top), True
        parent = parent.parentWidget()
    return top.rect(), False


def _text_width(fm: QFontMetrics, text: str) -> int:
    return max((fm.horizontalAdvance(line) for line in text.split("\n")), default=0)


def _label_problem(label: QLabel) -> str | None:
    text = label.text()
    if not text or label.textFormat() == Qt.TextFormat.RichText or (label.pixmap() is not None and \
            not label.pixmap().isNull()):
        return None
    fm = label.fontMetrics()
    box = label.contentsRect()
    margin = label.margin() * 2 + (max(0, label.indent()) if label.indent() > 0 else 0)
    if label.wordWrap():
        need = label.heightForWidth(label.width())
        if need > label.height() + SLACK:
            return (f"cut: {_name(label)} needs {need} px of height for its {label.width()} px width, "
                    f"has {label.height()}")
        # A single word (or a CJK run without break points) wider than the label is cut even when wrapping.
        longest = max((fm.horizontalAdvance(word) for word in _UNBREAKABLE.findall(text)), default=0)
        if longest > box.width() - margin + SLACK:
            return f"cut: {_name(label)} has a word {longest} px wide in {box.width() - margin} px"
        return None
    width = _text_width(fm, text)
    if width > box.width() - margin + SLACK:
        return f"cut: {_name(label)} is {width} px wide in {box.width() - margin} px"
    lines = text.count("\n") + 1
    if fm.height() * lines > box.height() + SLACK + 2:
        return f"cut: {_name(label)} is {fm.height() * lines} px high in {box.height()} px"
    return None


def _button_problem(button: QPushButton) -> str | None:
    text = button.text()
    if not text:
        return None
    fm = button.fontMetrics()
    opt = QStyleOptionButton()
    button.initStyleOption(opt)
    # The contents rectangle the style leaves for the text (the stylesheet's padding and border taken off).
    contents = button.style().subElementRect(QStyle.SubElement.SE_PushButtonContents, opt, button)
    width = _text_width(fm, text)
    if width > contents.width() + SLACK:
        return f"cut: {_name(button)} text {width} px wide in {contents.width()} px"
    if fm.height() > contents.height() + SLACK + 2:
        return f"cut: {_name(button)} text {fm.height()} px high in {contents.height()} px"
    return None


def _painted_problems(widget: QWidget) -> list[str]:
    problems = [f"cut: {_name(widget)} elided '{s}'" for s in getattr(widget, "elided", [])]
    floor = getattr(widget, "min_text_px", None)
    for s, px in getattr(widget, "sizes", []):
        if floor is not None and px < floor:
            problems.append(f"cut: {_name(widget)} drew '{s}' at {px} px (under {floor} px)")
    return problems


def _cell_text(view: QAbstractItemView, index: QModelIndex) -> str:
    value = index.data(Qt.ItemDataRole.DisplayRole)
    return "" if value is None else str(value)


def _cell_problem(view: QAbstractItemView, index: QModelIndex) -> str | None:
    """Whether the style elides the text of the cell at ``index`` (as QCommonStyle's item painting does)."""
    text = _cell_text(view, index)
    if not text:
        return None
    opt = QStyleOptionViewItem()
    view.initViewItemOption(opt)
    view.itemDelegateForIndex(index).initStyleOption(opt, index)  # type: ignore[attr-defined]
    opt.rect = view.visualRect(index)
    style = view.style()
    box = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, opt, view)
    margin = style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, view) + 1
    width = box.width() - 2 * margin
    fm = QFontMetrics(opt.font)
    where = f"{type(view).__name__}#{view.objectName() or '-'} cell ({index.row()},{index.column()}) '{text[:40]}'"
    if opt.features & QStyleOptionViewItem.ViewItemFeature.WrapText:
        flags = Qt.TextFlag.TextWordWrap | Qt.TextFlag.TextWrapAnywhere
        need = fm.boundingRect(QRect(0, 0, max(1, width), 100000), flags, text).height()
        if need > box.height() + SLACK:
            return f"cell: {where} needs {need} px of height at {width} px wide, has {box.height()}"
        longest = max((fm.horizontalAdvance(word) for word in _UNBREAKABLE.findall(text)), default=0)
        if longest > width + SLACK:
            return f"cell: {where} has a word {longest} px wide in {width} px (broken mid-word)"
    else:
        need = _text_width(fm, text)
        if need > width + SLACK:
            return f"cell: {where} is {need} px wide in {width} px (elided)"
        if fm.height() * (text.count("\n") + 1) > box.height() + SLACK + 2:
            return f"cell: {where} is {fm.height() * (text.count(chr(10)) + 1)} px high in {box.height()} px"
    right = view.viewport().width()
    if opt.rect.right() >= right + SLACK:  # hidden past the edge, or behind a sideways scroll: either way unseen
        return f"cell: {where} runs to x={opt.rect.right()} past the view's edge at {right}"
    return None


def _header_problems(header: QHeaderView) -> list[str]:
    problems: list[str] = []
    model = header.model()
    if model is None or header.isHidden():
        return problems
    for visual in range(header.count()):
        logical = header.logicalIndex(visual)
        if header.isSectionHidden(logical):
            continue
        text = model.headerData(logical, header.orientation(), Qt.ItemDataRole.DisplayRole)
        if not text:
            continue
        need = header.sectionSizeFromContents(logical)  # the style's size for the title (padding included)
        have = header.sectionSize(logical)
        size = need.width() if header.orientation() == Qt.Orientation.Horizontal else need.height()
        if size > have + SLACK:
            problems.append(f"cell: header section {logical} '{text}' needs {size} px, has {have}")
    return problems


def _view_problems(view: QAbstractItemView) -> list[str]:
    """Every cell of a table or list view (all rows: the clerk scrolls to them) and its header sections."""
    model = view.model()
    if model is None:
        return []
    problems: list[str] = []
    root = view.rootIndex()
    for row in range(model.rowCount(root)):
        if isinstance(view, QTableView) and view.isRowHidden(row):
            continue
        if isinstance(view, QListView) and view.isRowHidden(row):
            continue
        columns = range(view.horizontalHeader().count()) if isinstance(view, QTableView) else \
            [view.modelColumn()] if isinstance(view, QListView) else [0]
        for column in columns:
            if isinstance(view, QTableView) and view.isColumnHidden(column):
                continue
            problem = _cell_problem(view, model.index(row, column, root))
            if problem:
                problems.append(problem)
    if isinstance(view, QTableView):
        for header in (view.horizontalHeader(), view.verticalHeader()):
            if header.isVisibleTo(view):
                problems += _header_problems(header)
    return problems


def _shown(widget: QWidget, top: QWidget) -> bool:
    return widget.isVisibleTo(top) and widget.width() > 0 and widget.height() > 0


def layout_problems(top: QWidget, size: tuple[int, int] | None = None) -> list[str]:
    """Every layout problem of ``top`` as laid out now (see the module's docstring); ``size`` is the size the
    window was given (its screen), checked against the window's actual size."""
    QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest.value)
    problems: list[str] = []
    if size is not None and (top.width(), top.height()) != size:
        problems.append(f"window: {top.width()}x{top.height()}, not the screen's {size[0]}x{size[1]} "
                        f"(minimum {top.minimumSizeHint().width()}x{top.minimumSizeHint().height()})")
    bounds = QRect(0, 0, *(size or (top.width(), top.height())))
    for widget in top.findChildren(QWidget):
        if not _shown(widget, top) or widget.property("layoutIgnore"):
            continue
        if widget.parentWidget() is not None and widget.parentWidget().property("layoutIgnore"):
            continue
        rect = _rect_in(widget, top)
        clip, scrolls = _clip_of(widget, top)
        if not bounds.contains(rect):
            if not scrolls:
                problems.append(f"outside: {_name(widget)} at {rect.getRect()} in the window {bounds.getRect()}")
        elif not clip.contains(rect) and not scrolls:
            problems.append(f"outside: {_name(widget)} at {rect.getRect()} beyond {clip.getRect()}")
        if isinstance(widget, QLabel):
            problem = _label_problem(widget)
        elif isinstance(widget, QPushButton):
            problem = _button_problem(widget)
        else:
            problem = None
        if problem:
            problems.append(problem)
        if isinstance(widget, QTableView | QListView):
            problems += _view_problems(widget)
        problems += _painted_problems(widget)
    problems += _overlaps(top)
    if getattr(top, "elided", None) is not None:
        problems += _painted_problems(top)
    return problems


def _overlaps(top: QWidget) -> list[str]:
    problems: list[str] = []
    for parent in [top, *top.findChildren(QWidget)]:
        if parent is not top and not _shown(parent, top):
            continue
        kids = [w for w in parent.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)
                if _shown(w, top) and not w.isWindow() and not w.property("layoutOverlay")]
        for i, a in enumerate(kids):
            for b in kids[i + 1:]:
                inter = a.geometry().intersected(b.geometry())
                if inter.width() > SLACK and inter.height() > SLACK:
                    problems.append(f"overlap: {_name(a)} and {_name(b)} share {inter.getRect()}")
    return problems


# --------------------------------------------------------------------------------------------------
# Screenshots

SHOTS = Path(__file__).parent / "artifacts" / "sizes"


def save(widget: QWidget, name: str) -> Path:
    """Screenshot ``widget`` into tests/artifacts/sizes/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest.value)
    path = SHOTS / f"{name}.png"
    part = path.with_name(f".{path.stem}.{os.getpid()}.png")
    assert widget.grab().save(str(part))
    os.replace(part, path)
    return path


def check(qtbot: Any, widget: QWidget, size: tuple[int, int], name: str) -> list[str]:
    """Lay ``widget`` out, save its screenshot and return its layout problems (each prefixed with ``name``)."""
    qtbot.wait(30)  # widgets added to a shown page appear one loop later
    problems = layout_problems(widget, size)
    save(widget, name)
    return [f"{name}: {p}" for p in problems]


def tag(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"
