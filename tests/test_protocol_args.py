"""Every argument of every command, checked exactly as docs/protocol.md documents it.

The tables are read from docs/protocol.md itself (the commands and their arguments, and the type
of each argument), so the document, the engine's declarations and the broker's answers cannot
drift apart. The requests go through a real broker on real sockets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from queuehall.broker.engine import COMMANDS
from queuehall.broker.server import BROKER_PARAMS

from queuehall.client import BrokerClient
from queuehall.commands import COMMANDS as SCHEMA
from queuehall.commands import TicketRef
from queuehall.protocol import Reply, Request, clean_text
from tests import broker_fixtures
from tests.broker_fixtures import BrokerThread, comparable

manual_clock_fixture = broker_fixtures.manual_clock_fixture
start_broker_fixture = broker_fixtures.start_broker_fixture

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text(encoding="utf-8")
KINDS = {"integer": int, "string": str, "boolean": bool, "ticket": TicketRef}
# A value for every argument that passes its check (the command may still be refused for other reasons).
VALID: dict[str, Any] = {"counter": 1, "to_counter": 2, "ticket": "A001", "service": "P", "priority": "elderly",
                         "channel": "kiosk", "clerk": "c1a", "pin": "1234", "reason": "break", "note": "n",
                         "session": "s", "role": "kiosk", "name": "k", "takeover": False, "token": "t" * 22,
                         "after": 0, "limit": 10,
                         "code": "PAPER_OUT", "kiosk": "kiosk-1",
                         "level": 5, "visit": 1, "case": 1, "indicators": "attitude", "finding": "f",
                         "rectification": "r", "by": "m", "key": "k", "date": "2026-11-25",
                         "slot": "2026-11-25T10:00", "contact": "13812345678"}
# Values of the wrong JSON type, by the type the argument must have.
WRONG: dict[type, list[Any]] = {
    int: ["3", " 1 ", "", True, False, 3.5, [1], {"n": 1}],
    str: [5, 0, True, 3.5, ["P"], {"x": 1}, "x" * 501],
    bool: [1, 0, "true", "yes", [], {}],
    TicketRef: [True, 3.5, ["A001"], {"id": 1}, "x" * 501],
}
# Strings that are empty once the whitespace and the invisible characters around them are gone.
BLANK = ["", "   ", "\u200b", "\u200b\u200c\u200d\u2060\ufeff", " \u3000\u200b\t", "\u00ad\u200e"]
REASONS = {"void_ticket", "cancel_ticket", "call_ticket"}  # a free-text reason: REASON_REQUIRED when blank


def documented_commands() -> dict[str, list[tuple[str, bool]]]:
    """docs/protocol.md's command table: type -> [(argument, required)]."""
    table = DOC.split("| type | args |", 1)[1].split("\n<!-- end", 1)[0]  # a generated table (its markers)
    out: dict[str, list[tuple[str, bool]]] = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        args = re.sub(r"\([^)]*\)", "", cells[1])  # "(a configured code)", "(a Link repeats …)"
        out[cells[0].strip("`")] = [(m[1], not m[2]) for m in re.finditer(r"`([a-z_]+)`(\?)?", args)]
    return out


def documented_types() -> dict[str, type | None]:
    """docs/protocol.md's argument table: argument -> its kind (None: the snapshot's ``tickets``)."""
    table = DOC.split("| argument | type |", 1)[1].split("\n<!-- end", 1)[0]
    out: dict[str, type | None] = {}
    for line in table.splitlines()[2:]:
        names, kind = (c.strip() for c in line.strip("|").split("|"))
        words = kind.split(" (")[0]
        if "or string" in kind and words.startswith("integer"):
            chosen: type | None = TicketRef
        elif names == "`tickets`":
            chosen = None
        else:
            chosen = KINDS[words]
        for name in re.findall(r"`([a-z_]+)`", names):
            out[name] = chosen
    return out


COMMAND_ARGS = documented_commands()
TYPES = documented_types()


def test_the_documents_tables_are_read_whole() -> None:
    assert set(COMMAND_ARGS) == {*COMMANDS, *BROKER_PARAMS, "snapshot"}
    assert ("takeover", False) in COMMAND_ARGS["sign_in"] and ("reason", True) in COMMAND_ARGS["call_ticket"]
    for args in COMMAND_ARGS.values():
        assert {name for name, _ in args} <= set(TYPES), args


def test_the_engine_declares_exactly_the_documented_arguments_and_types() -> None:
    declared = {name: c.params for name, c in SCHEMA.items()}
    for command, args in COMMAND_ARGS.items():
        if command == "snapshot":
            continue  # its one argument is not a plain JSON type: test_snapshot_scope_is_checked
        got = [(p.name, p.required, p.kind) for p in declared[command]]
        assert got == [(name, required, TYPES[name]) for name, required in args], command


def send(c: BrokerClient, command: str, args: dict[str, Any]) -> Reply:
    return c.send(Request(type=command, args=args))


def assert_names(rep: Reply, command: str, name: str, value: Any) -> None:
    what = (command, name, value, rep.error)
    assert not rep.ok and rep.error is not None, what
    err = rep.error
    assert err["code"] == "BAD_REQUEST" and err["details"]["argument"] == name, what
    # Bilingual, both naming the argument.
    assert name in err["message_en"] and name in err["message_zh"], what
    assert re.search(r"[\u4e00-\u9fff]", err["message_zh"].replace("请求格式错误", "")), what


@pytest.fixture(name="hall")
def hall_fixture(start_broker: Callable[..., BrokerThread]) -> tuple[BrokerThread, BrokerClient]:
    bt = start_broker()
    c = BrokerClient(bt.endpoint, timeout=5.0)
    c.request("take_ticket", service="P")  # some state, which no refused request may change
    c.request("sign_in", counter=2, clerk="c2a", pin="1234")
    return bt, c


def test_every_argument_of_every_command_is_checked_exactly(hall: tuple[BrokerThread, BrokerClient]) -> None:
    _, c = hall
    before = comparable(c.request("snapshot")["state"])
    checked = 0
    for command, args in COMMAND_ARGS.items():
        if command == "snapshot":
            continue
        base = {name: VALID[name] for name, _ in args}
        for name, required in args:
            kind = TYPES[name]
            assert kind is not None
            for value in WRONG[kind]:
                assert_names(send(c, command, dict(base, **{name: value})), command, name, value)
                checked += 1
            if required:
                missing = {k: v for k, v in base.items() if k != name}
                assert_names(send(c, command, missing), command, name, None)
                assert_names(send(c, command, dict(base, **{name: None})), command, name, None)  # null is missing
                if kind in (str, TicketRef):
                    for blank in BLANK:
                        rep = send(c, command, dict(base, **{name: blank}))
                        if name == "reason" and command in REASONS:
                            assert rep.error is not None and rep.error["code"] == "REASON_REQUIRED", (command, blank)
                        else:
                            assert_names(rep, command, name, blank)
                        checked += 1
    assert checked > 300
    # Nothing refused changed anything: the tickets, the counters, the devices (no refused hello joined).
    assert comparable(c.request("snapshot")["state"]) == before


def test_the_issues_four_loose_cases_are_refused(hall: tuple[BrokerThread, BrokerClient]) -> None:
    """call_next {"counter": "3"}, an integer PIN, take_ticket {"service": 5}, a zero-width reason."""
    _, c = hall
    assert_names(send(c, "call_next", {"counter": "2"}), "call_next", "counter", "2")
    assert_names(send(c, "sign_in", {"counter": 1, "clerk": "c1a", "pin": 1234}), "sign_in", "pin", 1234)
    assert_names(send(c, "take_ticket", {"service": 5}), "take_ticket", "service", 5)
    for command, args in (("cancel_ticket", {"ticket": "A001"}), ("void_ticket", {"ticket": "A001"}),
                          ("call_ticket", {"counter": 2, "ticket": "A001"})):
        rep = send(c, command, dict(args, reason="\u200b\u200d\ufeff"))
        assert rep.error is not None and rep.error["code"] == "REASON_REQUIRED", command
    assert c.request("snapshot")["state"]["tickets"]["1"]["status"] == "waiting"


def test_strings_are_cleaned_and_blank_optional_ones_are_absent(hall: tuple[BrokerThread, BrokerClient]) -> None:
    _, c = hall
    # A blank priority is no priority; the service code is read without the invisible characters.
    out = c.request("take_ticket", service="\u200bP\ufeff ", priority="\u200b")
    assert out["ticket"]["label"] == "A002" and out["ticket"]["priority"] is None
    c.request("sign_in", counter=1, clerk="c1a", pin="1234")
    out = c.request("call_ticket", counter=1, ticket=" A002\u200b", reason=" \u200bcitizen asked\u2060 ")
    assert out["ticket"]["label"] == "A002"
    # A ticket is its id (an integer) as well as its label.
    assert c.request("cancel_ticket", ticket=1, reason="left")["ticket"]["status"] == "cancelled"


def test_snapshot_scope_is_checked(hall: tuple[BrokerThread, BrokerClient]) -> None:
    _, c = hall
    for bad in ("some", "", 7, True, {"counter": "1"}, {"counter": True}, {}, ["all"]):
        rep = send(c, "snapshot", {"tickets": bad})
        assert_names(rep, "snapshot", "tickets", bad)
    assert send(c, "snapshot", {"tickets": {"counter": 1}}).ok


def test_clean_text_strips_only_the_ends() -> None:
    assert clean_text("\u200b A\u200bB \ufeff") == "A\u200bB"
    assert clean_text("\u2060\u200c\u200d") == ""
    assert clean_text("窗口\u3000") == "窗口"
