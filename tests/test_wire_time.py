"""Wire times: one serializer and one parser (queuehall/protocol.py) for every part of queuehall."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from queuehall.protocol import format_time, now_iso, parse_time

ROOT = Path(__file__).resolve().parent.parent


def test_a_wire_time_is_read_back_as_aware_utc() -> None:
    at = datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC)
    assert format_time(at) == "2026-11-24T01:02:03Z" and parse_time(format_time(at)) == at
    precise = at.replace(microsecond=123000)
    assert parse_time(format_time(precise)) == precise
    shanghai = datetime(2026, 11, 24, 9, 2, 3, tzinfo=timezone(timedelta(hours=8)))
    assert format_time(shanghai) == "2026-11-24T01:02:03Z"
    read = parse_time("2026-11-24T09:02:03+08:00")
    assert read == at and read is not None and read.tzinfo is UTC
    # The wire carries UTC only: a time without an offset is UTC (never the machine's zone).
    assert parse_time("2026-11-24T01:02:03") == at
    assert format_time(datetime(2026, 11, 24, 1, 2, 3)) == "2026-11-24T01:02:03Z"
    now = parse_time(now_iso())
    assert now is not None and abs(now - datetime.now(UTC)) < timedelta(minutes=1)


def test_anything_else_is_no_time() -> None:
    for junk in (None, "", "yesterday", "2026-13-01T00:00:00Z", 17, 1.5, ["2026-11-24T01:02:03Z"], b"2026"):
        assert parse_time(junk) is None, junk


def test_no_other_module_parses_wire_times() -> None:
    """The screens, the web gateway and the broker read wire times with protocol.parse_time alone (there were
    three parsers: the kiosk's, the counter's, the display's, and more in the web gateway)."""
    pattern = re.compile(r"""replace\(\s*["']Z["']""")
    offenders = [str(p.relative_to(ROOT)) for folder in ("queuehall", "broker", "kiosk", "counter", "display", "web",
                                                         "bench", "tools")
                 for p in sorted((ROOT / folder).rglob("*.py"))
                 if p.name != "protocol.py" and pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
