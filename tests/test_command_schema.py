"""The commands are declared once: each engine command's typed parameters (``@_command(Param …)`` in
broker/engine.py, the broker's own in ``BROKER_PARAMS``). Everything that names commands is checked against that
declaration: the command table of docs/protocol.md (what a vendor builds from), the roles that may send them,
the command line and the counter's actions.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from queuehall.broker import server
from queuehall.broker.engine import COMMANDS, Param

ROOT = Path(__file__).resolve().parent.parent


def declared() -> dict[str, tuple[Param, ...]]:
    """Every command and query, with its parameters as declared."""
    out = {name: tuple(getattr(fn, "params", ())) for name, fn in COMMANDS.items()}
    out.update(server.BROKER_PARAMS)
    for name in (*server.BROKER_COMMANDS, *server.QUERIES):
        out.setdefault(name, ())
    return out


def documented() -> dict[str, dict[str, bool]]:
    """The command table of docs/protocol.md: command -> {argument: required}."""
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    table = text[text.index("| type | args | result |"):]
    table = table[:table.index("\n\n")]
    rows: dict[str, dict[str, bool]] = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        # An argument is a backticked name at the start of the cell or after a comma; "?" marks it optional.
        # Parenthesised explanations (which may name values in backticks) are not arguments.
        args_cell = re.sub(r"\([^()]*\)", "", cells[1])
        rows[name] = {m[1]: not m[2] for m in re.finditer(r"(?:^|,)\s*`([a-z_]+)`(\?)?", args_cell)}
    return rows


def test_the_protocol_document_lists_every_command_with_its_declared_arguments() -> None:
    docs = documented()
    problems = []
    for name, params in declared().items():
        if name not in docs:
            problems.append(f"{name}: not in docs/protocol.md's command table")
            continue
        want = {p.name: p.required for p in params}
        if name == "snapshot":
            want = {"tickets": False, "role": False}  # the broker checks both itself
        if docs[name] != want:
            problems.append(f"{name}: documented {docs[name]}, declared {want}")
    for name in set(docs) - set(declared()):
        problems.append(f"{name}: documented but not a command")
    assert not problems, "\n".join(problems)


def test_roles_the_command_line_and_the_counter_name_only_declared_commands() -> None:
    known = set(declared())
    for role, commands in server.ROLE_COMMANDS.items():
        assert commands <= known, f"role {role} may send unknown commands {commands - known}"
    from queuehall.counter.model import ACTIONS

    assert set(ACTIONS) <= known
    import argparse

    from queuehall.cli import _register_scripting

    sub = argparse.ArgumentParser().add_subparsers()
    _register_scripting(sub)
    # Each scripting subcommand's wire command is declared (keys/status/watch are local or snapshot-based).
    wire = {p.get_default("wire") for p in sub.choices.values()} - {None}
    assert {"take_ticket", "call_next", "sign_in", "transfer"} <= wire
    assert wire <= known, wire - known


def test_a_drifted_document_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    drifted = text.replace("| `call_next` | `counter`, `session`? |", "| `call_next` | `counter` |", 1)
    assert drifted != text
    monkeypatch.setattr(Path, "read_text", lambda self, encoding=None: drifted)
    assert documented()["call_next"] == {"counter": True}
