"""The commands are declared once, in the command schema (queuehall/commands.py): each command's name, typed
parameters, roles and doc. Everything that names commands is checked against it: the engine's methods, the
broker's authorisation, the command table of docs/protocol.md (what a vendor builds from) and its table of
roles (generated), the command line and the counter's actions.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from queuehall.broker import server
from queuehall.broker.engine import COMMANDS, Hall

from queuehall import commands
from queuehall.commands import COMMANDS as SCHEMA
from queuehall.commands import Param

ROOT = Path(__file__).resolve().parent.parent


def declared() -> dict[str, tuple[Param, ...]]:
    """Every command and query, with its parameters as declared."""
    return {name: c.params for name, c in SCHEMA.items()}


def documented() -> dict[str, dict[str, bool]]:
    """The command table of docs/protocol.md: command -> {argument: required}."""
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    table = text[text.index("| type | args | result |"):]
    table = table[:table.index("\n<!-- end: commands -->")]
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
    for role, allowed in server.ROLE_COMMANDS.items():
        assert allowed <= known, f"role {role} may send unknown commands {allowed - known}"
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


def test_the_engine_carries_out_exactly_the_schemas_hall_commands() -> None:
    assert set(COMMANDS) == {name for name, c in SCHEMA.items() if c.kind == "hall"}
    for name, c in SCHEMA.items():
        assert c.kind in ("hall", "query", "link"), name
        assert c.roles and c.roles <= set(commands.ALL_ROLES), name
        assert c.doc, name
        if c.kind == "hall":
            assert callable(getattr(Hall, name, None)), f"{name}: no Hall.{name}"
            assert "admin" in c.roles, f"{name}: an administrator may send every command"


def test_the_broker_authorises_by_the_schemas_roles() -> None:
    from queuehall.protocol import ROLES

    assert set(ROLES) == set(commands.ALL_ROLES)
    for role in ROLES:
        want = {name for name, c in SCHEMA.items() if role in c.roles and c.kind == "hall"}
        assert server.ROLE_COMMANDS[role] == want, role
    assert {name: c.roles for name, c in SCHEMA.items() if c.kind == "query"} == server.QUERIES
    assert set(server.BROKER_COMMANDS) == {name for name, c in SCHEMA.items() if c.kind == "link"}


def roles_block(text: str) -> str:
    begin = "<!-- generated: roles (python -m queuehall.tools.protocol_doc --write) -->\n"
    end = "<!-- end: roles -->"
    return text[text.index(begin) + len(begin):text.index(end)]


def test_the_protocol_documents_table_of_roles_is_the_schemas() -> None:
    """docs/protocol.md's table of who may send what is generated (``python -m queuehall.commands`` prints it too)."""
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert roles_block(text) == commands.roles_table(), "regenerate it: python -m queuehall.tools.protocol_doc --write"


def test_the_generated_tables_of_the_documents_are_up_to_date() -> None:
    """docs/protocol.md's tables of argument types, commands, roles and error codes, and docs/cli.md's table of
    scripting subcommands, are what the command schema and the error catalogue say now."""
    from queuehall.tools import protocol_doc

    stale = protocol_doc.stale(ROOT)
    assert not stale, f"{', '.join(stale)}: stale generated tables; run {protocol_doc.COMMAND}"
    assert protocol_doc.main(["--root", str(ROOT)]) == 0


def test_a_new_argument_makes_the_documents_stale_until_regenerated(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding an argument to the schema is one edit: the tool then rewrites only its regions of both documents."""
    from queuehall.tools import protocol_doc

    for rel in protocol_doc.TABLES:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((ROOT / rel).read_text(encoding="utf-8"), encoding="utf-8")
    take = SCHEMA["take_ticket"]
    monkeypatch.setattr(take, "params", (*take.params, Param("language", str, False, doc="the ticket's language",
                                                             choices=("zh", "en"))))
    assert protocol_doc.stale(tmp_path) == ["docs/protocol.md", "docs/cli.md", "docs/web.md"]  # REST: its body
    assert protocol_doc.main(["--root", str(tmp_path)]) == 1
    before = (tmp_path / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert protocol_doc.main(["--root", str(tmp_path), "--write"]) == 0 and protocol_doc.stale(tmp_path) == []
    after = (tmp_path / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert "`language`? (one of `zh`, `en`)" in after and "`language`" not in before
    # Only the generated regions changed: the hand-written text around them is kept.
    def hand_written(text: str) -> str:
        return re.sub(r"<!-- generated: .*?<!-- end: [a-z ]+ -->", "", text, flags=re.S)

    assert hand_written(after) == hand_written(before) and "`language`" in after.split("| argument | type |")[1][:600]
    assert "[--language LANGUAGE]" in (tmp_path / "docs" / "cli.md").read_text(encoding="utf-8")
    assert "body: `service`, `priority`?, `language`?" in (tmp_path / "docs" / "web.md").read_text(encoding="utf-8")


def test_the_argument_types_the_protocol_documents_are_the_schemas() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    table = text.split("| argument | type |", 1)[1].split("\n<!--", 1)[0]
    documented: dict[str, str] = {}
    for line in table.splitlines()[2:]:
        names, kind = (c.strip() for c in line.strip("|").split("|"))
        for name in re.findall(r"`([a-z_]+)`", names):
            # "integer (a ticket's id) or string (its label)" is a ticket reference.
            documented[name] = "integer or string" if "or string" in kind else kind.split(" (")[0]
    for name, c in SCHEMA.items():
        for p in c.params:
            assert documented.get(p.name) == commands.KIND_WORDS[p.kind], (name, p.name, documented.get(p.name))


def test_a_command_line_subcommand_sends_the_schemas_arguments() -> None:
    import argparse

    from queuehall.cli import _register_scripting

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    _register_scripting(sub)
    args = parser.parse_args(["rate", "2", "1", "--indicator", "attitude", "--indicator", "level"])
    assert args.wire == "rate" and (args.counter, args.level, args.indicators) == (2, 1, ["attitude", "level"])
    from queuehall.cli import _wire_args

    sent = _wire_args(args, names=[p.name for p in SCHEMA["rate"].params if p.cli is not False])
    assert sent["indicators"] == "attitude,level" and sent["channel"] == "evaluator_box"
    assert set(sent) == {"level", "ticket", "counter", "indicators", "reason", "channel"}
    # Every command the schema gives a subcommand is on the command line, sending that command.
    named = {c.cli: name for name, c in SCHEMA.items() if c.cli and " " not in c.cli}
    for cli_name, wire in named.items():
        assert sub.choices[cli_name].get_default("wire") == wire


def test_the_schema_is_cheap_to_import() -> None:
    """The command line's lean path imports it on every press of a call button: no dataclasses, no inspect,
    nothing of queuehall but the wire module the request client loads anyway (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = ("import sys; before = set(sys.modules); import queuehall.commands; "
            "print(sorted(m for m in set(sys.modules) - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)  # a printed list of module names
    assert not {m for m in loaded if m.split(".")[0] in ("dataclasses", "inspect", "zmq", "sqlalchemy", "PySide6")}
    assert {m for m in loaded if m.startswith("queuehall")} <= {"queuehall", "queuehall.commands",
                                                                "queuehall.protocol"}, loaded


# ---------------------------------------------------------------------------------------------- refusals and values


def _codes_raised() -> dict[str, set[str]]:
    """Per function of the broker's hall modules, the catalogue codes it raises, directly or through the
    functions it calls (by name: an over-approximation, which is what a list of possible refusals needs)."""
    import ast

    from queuehall.errors import CATALOGUE

    bodies: dict[str, list[ast.AST]] = {}
    for module in ("engine", "appointments", "satisfaction", "alerts", "model", "hours"):
        tree = ast.parse((ROOT / "broker" / f"{module}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                bodies.setdefault(node.name, []).append(node)
    direct: dict[str, tuple[set[str], set[str]]] = {}
    for name, nodes in bodies.items():
        codes, calls = set(), set()
        for node in nodes:
            for n in ast.walk(node):
                if isinstance(n, ast.Call):
                    fn = n.func
                    callee = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
                    if callee:
                        calls.add(callee)
                    if callee and callee.endswith("Error") and n.args and isinstance(n.args[0], ast.Constant) \
                            and n.args[0].value in CATALOGUE:
                        codes.add(n.args[0].value)
        direct[name] = (codes, calls)
    done: dict[str, set[str]] = {}

    def raised(name: str, path: tuple[str, ...]) -> set[str]:
        if name in done:
            return done[name]
        if name in path or name not in direct:
            return set()
        codes, calls = direct[name]
        out = set(codes)
        for callee in calls:
            out |= raised(callee, (*path, name))
        done[name] = out
        return out

    return {name: raised(name, ()) for name in direct}


# Codes the engine's code can reach by name but a command cannot be refused with (why in each case).
NEVER = {
    "sign_in": {"SESSION_ENDED"},  # _counter() is given no session: a sign-in ends the other one instead
    "reinstate": {"SESSION_ENDED"},  # no session argument
    "reprint_ticket": {"SESSION_ENDED"},  # no session argument
    "call_next": {"CALENDAR_NO_OFFICIAL_DATA"},  # a warning on the calendar, never a refusal
}


def test_every_refusal_a_hall_command_can_give_is_declared_in_the_schema() -> None:
    """The schema's ``errors`` (docs/protocol.md's errors column, the OpenAPI document's error answers) list
    every catalogue code the engine's method for the command can raise, through the helpers it calls."""
    from queuehall.errors import CATALOGUE

    raised = _codes_raised()
    problems = []
    for name, c in SCHEMA.items():
        assert set(c.errors) <= set(CATALOGUE), (name, set(c.errors) - set(CATALOGUE))
        assert len(set(c.errors)) == len(c.errors), f"{name}: a code listed twice"
        if c.kind != "hall":
            continue
        missing = raised[name] - set(c.errors) - set(commands.COMMON_ERRORS) - {"STORAGE"} - NEVER.get(name, set())
        if missing:
            problems.append(f"{name}: may be refused {sorted(missing)}, not declared")
    assert not problems, "\n".join(problems)
    assert "NOTHING_CALLED" in raised["recall"] and "COUNTER_PAUSED" in raised["call_next"]  # the walk works


def test_the_values_the_schema_names_are_the_ones_the_hall_takes() -> None:
    from queuehall.broker import engine  # what the engine checks them against

    params = {(name, p.name): p for name, c in SCHEMA.items() for p in c.params}
    assert params["take_ticket", "channel"].choices == engine.CHANNELS
    assert set(params["rate", "level"].choices or ()) == set(engine.RATING_LEVELS)
    assert params["rate", "channel"].choices == engine.RATING_CHANNELS
    assert params["rate", "indicators"].choices == tuple(engine.RATING_INDICATORS)
    assert params["rate", "indicators"].separator == ","
    # The command line offers a subset of the rating channels (never "phone": that is the ticket page's).
    assert set(params["rate", "channel"].cli["choices"]) < set(engine.RATING_CHANNELS)  # type: ignore[index]
