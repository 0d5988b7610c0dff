"""适老化 at the kiosk (issue 15): a large-print ticket for whoever chose large text, and the service's short
办理须知 (fees, eligibility) on the ticket. The large-text screen itself is checked at every size in
tests/test_sizes_kiosk.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from queuehall.kiosk.model import Screen
from queuehall.kiosk.printing import encode_ticket
from queuehall.kiosk.ticket import TicketContent, TicketError, render_ticket
from queuehall.tools.escpos_decode import decode

from tests.test_kiosk_gui import (  # noqa: F401  (fixtures)
    ARTIFACTS,
    RunningBroker,
    click,
    empty_db,
    hall,
    kiosk_factory,
    open_passport,
    printed,
    wait_screen,
)

PASSPORT_NOTE = "本市户籍居民可在任一出入境接待大厅提交申请，凭《取证凭单》到递交申请的大厅领证。"


def content(**kw: Any) -> TicketContent:
    base: dict[str, Any] = dict(hall_name=("XX市政务服务中心", "XX Municipal Government Service Center"), label="A012",
                                service_name_zh="普通护照申请", service_name_en="Ordinary passport application",
                                ahead=3, estimated_wait_minutes=12, issued_local="2026-11-24 09:00",
                                qr_payload="queuehall:ticket:1:A012:2026-11-24",
                                materials=(("本人居民身份证原件", "Your original resident identity card"),))
    return TicketContent(**{**base, **kw})


def test_large_print_ticket_is_larger_and_the_description_is_printed() -> None:
    normal = render_ticket(content())
    large = render_ticket(content(large_print=True, description_zh=PASSPORT_NOTE, description_en="x"))
    assert large.width() == normal.width() == 576
    assert large.height() > normal.height() * 1.2, (normal.height(), large.height())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    large.save(str(ARTIFACTS / "ticket-large-print.png"))
    # Text mode: the description in the ticket's language, the lines a citizen re-reads in double height.
    text = decode(encode_ticket(content(large_print=True, description_zh=PASSPORT_NOTE), mode="text"))
    assert "取证凭单" in text.text
    plain = encode_ticket(content(), mode="text")
    tall = encode_ticket(content(large_print=True), mode="text")
    assert plain.count(b"\x1d!\x01") < tall.count(b"\x1d!\x01")  # GS ! : double height
    with pytest.raises(TicketError):
        content(large_print="yes")


def test_the_large_text_citizen_gets_a_large_print_ticket_with_the_services_note(
        qtbot: Any, hall: RunningBroker, kiosk_factory: Any, tmp_path: Path) -> None:  # noqa: F811
    w = kiosk_factory(mode="text")
    printer = tmp_path / "printer" / "tickets.bin"
    wait_screen(qtbot, w, Screen.START)
    click(qtbot, w.header.large)
    open_passport(qtbot, w)
    click(qtbot, w.details_page.confirm)
    wait_screen(qtbot, w, Screen.CONFIRMATION)
    # The confirmation says where to go: the counters that serve passports (issue 15).
    assert w.confirm_page.where.text() == "请留意叫号，到 1、2、3 号窗口办理", w.confirm_page.where.text()
    assert w.confirm_page.where_sub.text() == "When called, go to counters 1, 2, 3"
    fields = w.model.issued.fields if w.model.issued else {}
    assert fields["large_print"] is True and fields["description_zh"] == PASSPORT_NOTE
    raw = printed(printer)
    assert "取证凭单" in decode(raw).text
    assert b"\x1d!\x01" in raw
    # A long 办理须知 stays on the screen only (move_in's fees run past 60 characters).
    card = w.model.card("move_in")
    assert card is not None and card.description is not None and len(card.description.zh) > 60
