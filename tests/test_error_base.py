"""One error base: whatever a part reports to a person has a stable code and both languages."""

from __future__ import annotations

import string

import pytest
from queuehall.broker.config import ConfigError
from queuehall.broker.reports import ReportError
from queuehall.display.model import DisplayError
from queuehall.kiosk.model import KioskConfigError
from queuehall.kiosk.printing import PrinterError
from queuehall.kiosk.ticket import TicketError
from queuehall.voice.pack import VoiceError

from queuehall.errors import HallError, QueuehallError


@pytest.mark.parametrize("err", [
    HallError("QUEUE_EMPTY", counter=3),
    ConfigError("hall.toml", "hall.name", "missing / 缺少", code="CONFIG_MISSING"),
    PrinterError("PAPER_OUT", "缺纸", "out of paper"),
    TicketError("TICKET_INVALID", "号码为空", "empty number"),
    KioskConfigError("KIOSK_BAD_OPTION", "选项错误", "bad option"),
    DisplayError("DISPLAY_BAD_OPTION", "选项错误", "bad option"),
    VoiceError("VOICE_PACK_MISSING", "缺少语音包", "no voice pack"),
], ids=lambda e: type(e).__name__)
def test_every_part_reports_a_code_and_both_languages(err: QueuehallError) -> None:
    assert isinstance(err, QueuehallError)
    d = err.to_dict()
    assert d["code"] == err.code and d["code"].isupper()
    assert d["message_zh"] and d["message_en"] and err.zh == d["message_zh"] and err.en == d["message_en"]
    assert isinstance(d["details"], dict)


def test_the_reports_error_keeps_its_catalogue() -> None:
    from queuehall.broker.reports import ERRORS

    for code, (zh, en) in ERRORS.items():
        fields = {name for text in (zh, en) for _, name, _, _ in string.Formatter().parse(text) if name}
        err = ReportError(code, **dict.fromkeys(fields, "x"))
        assert isinstance(err, QueuehallError) and isinstance(err, ValueError)
        assert err.code == code and err.message_en == en.format(**dict.fromkeys(fields, "x"))
