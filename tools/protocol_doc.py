"""The tables of docs/protocol.md, docs/cli.md and docs/web.md that the command schema (queuehall/commands.py),
the error catalogue (queuehall/errors.py) and the REST endpoints derived from them (web/rest.py) say, generated:
``python -m queuehall.tools.protocol_doc --write`` rewrites them; without ``--write`` it exits 1 naming the
stale files. tests/test_command_schema.py fails while one is stale.

Each table sits between two marker comments, ``<!-- generated: NAME … -->`` and ``<!-- end: NAME -->``; the
text around them is written by hand and left alone.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from queuehall.commands import COMMANDS, COMMON_ERRORS, KIND_WORDS, Command, Param, roles_table
from queuehall.errors import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python -m queuehall.tools.protocol_doc --write"
BEGIN = "<!-- generated: {name} ({command}) -->\n"
END = "<!-- end: {name} -->"
# Codes of no command in particular (the command table lists each command's own).
ANY = {**{code: "any" for code in COMMON_ERRORS}, "UNKNOWN_COMMAND": "any (an unknown `type`)",
       "UNSUPPORTED_VERSION": "any (`v` is not 1)", "MESSAGE_TOO_LARGE": "any (over 64 KiB)",
       "UNAVAILABLE": "any (the broker failed)", "STORAGE": "any `hall` command", "BROKER_STANDBY": "any"}
# The snapshot's tickets argument, checked by the broker itself (not a Param: it has no single JSON type).
SNAPSHOT_TICKETS = '| `tickets` | `"all"`, `"none"` or `{"counter": integer}` (of `snapshot`) |'


def _choices(p: Param) -> str:
    values = ", ".join(f"`{c}`" for c in p.choices or ())
    if p.separator is not None:
        return f"a list, {'comma' if p.separator == ',' else repr(p.separator)}-separated, of {values}"
    return f"one of {values}"


def _arg(p: Param) -> str:
    notes = [n for n in (p.note, _choices(p) if p.choices else "") if n]
    return f"`{p.name}`{'' if p.required else '?'}" + (f" ({'; '.join(notes)})" if notes else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _errors(c: Command) -> str:
    codes = ", ".join(f"`{e}`" for e in c.errors) or "—"
    return codes + (f" ({c.errors_note})" if c.errors_note else "")


def commands_table() -> str:
    """Every command: its arguments (``?``: optional), its result and the codes it may be refused with."""
    common = ", ".join(f"`{e}`" for e in COMMON_ERRORS)
    lines = [f"| type | args | result | errors (besides {common}) |", "|---|---|---|---|"]
    for name, c in COMMANDS.items():
        args = c.args_doc or ", ".join(_arg(p) for p in c.params) or "—"
        lines.append(f"| `{name}` | {_cell(args)} | {_cell(c.result or '—')} | {_cell(_errors(c))} |")
    return "\n".join(lines) + "\n"


def types_table() -> str:
    """Every argument name with its JSON type (a name has one type in every command that takes it)."""
    kinds: dict[str, str] = {}
    for c in COMMANDS.values():
        for p in c.params:
            word = KIND_WORDS[p.kind]
            if kinds.setdefault(p.name, word) != word:
                raise ValueError(f"argument {p.name} has two types: {kinds[p.name]} and {word}")
    by_type: dict[str, list[str]] = {}
    for name, word in kinds.items():
        by_type.setdefault(word, []).append(name)
    lines = ["| argument | type |", "|---|---|"]
    for word in ("integer", "integer or string", "string", "boolean"):
        if word in by_type:
            shown = "integer (an `id`) or string (a label, e.g. `\"A012\"`)" if word == "integer or string" else word
            lines.append(f"| {', '.join(f'`{n}`' for n in by_type[word])} | {shown} |")
    lines.append(SNAPSHOT_TICKETS)
    return "\n".join(lines) + "\n"


def errors_table() -> str:
    """The whole catalogue: each code, the HTTP status the web gateway answers it with, its messages and the
    commands that may be refused with it."""
    from queuehall.web.errors import HTTP_STATUS

    used: dict[str, list[str]] = {}
    for name, c in COMMANDS.items():
        for code in c.errors:
            used.setdefault(code, []).append(name)
    lines = ["| code | HTTP | 中文 | English | commands |", "|---|---|---|---|---|"]
    for code, (zh, en) in CATALOGUE.items():
        who = ANY.get(code) or ", ".join(f"`{n}`" for n in used.get(code, ())) or "—"
        lines.append(f"| `{code}` | {HTTP_STATUS.get(code, 409)} | {_cell(zh)} | {_cell(en)} | {who} |")
    return "\n".join(lines) + "\n"


def cli_table() -> str:
    """docs/cli.md: the scripting subcommands the schema gives the command line, as the command line takes them
    (its own parser, less the options every one has), with the broker command each sends."""
    from queuehall.cli import _register_scripting

    parser = argparse.ArgumentParser(prog="queuehall")
    sub = parser.add_subparsers()
    _register_scripting(sub)
    common = {"-h", "--broker", "--key", "--server-key", "--timeout"}
    rows: list[tuple[str, str, str]] = []
    for name, c in COMMANDS.items():
        if c.cli is None:
            continue
        p: argparse.ArgumentParser = sub.choices[c.cli.split()[0]]
        for word in c.cli.split()[1:]:  # a group's subcommand: "cases close"
            nested = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
            p = nested.choices[word]
        words = [f"queuehall {c.cli}"]
        for a in p._actions:
            if a.help == argparse.SUPPRESS or common & set(a.option_strings):
                continue
            if not a.option_strings:
                words.append(str(a.metavar or a.dest).upper())
            else:
                flag = a.option_strings[-1]
                arg = "" if a.nargs == 0 else f" {str(a.metavar or a.dest).upper()}"
                more = "…" if isinstance(a, argparse._AppendAction) else ""
                words.append(f"{flag}{arg}" if a.required else f"[{flag}{arg}]{more}")
        rows.append((" ".join(words), name, c.cli_help or c.doc))
    lines = ["| command | broker command | what it does |", "|---|---|---|"]
    lines += [f"| `{_cell(u)}` | `{w}` | {_cell(d)} |" for u, w, d in rows]
    return "\n".join(lines) + "\n"


def rest_table() -> str:
    """docs/web.md: the REST endpoints that send a broker command (web/rest.py), as the schema makes them."""
    from queuehall.web.errors import HTTP_STATUS
    from queuehall.web.rest import ENDPOINTS, SCOPE_WORDS

    lines = ["| request | broker command | token | takes | refusals (HTTP status: codes) |", "|---|---|---|---|---|"]
    for ep in ENDPOINTS:
        params = ep.params()
        where = "query" if ep.method == "GET" else "body"
        takes = ", ".join(f"`{p.name}`{'' if p.required else '?'}" for p in params)
        takes = f"{where}: {takes}" if takes else "—"
        if ep.fixed:
            takes += "; sets " + ", ".join(f"`{k}: {v!r}`".replace("'", '"') for k, v in ep.fixed.items())
        by_status: dict[int, list[str]] = {}
        for code in COMMANDS[ep.command].errors:
            by_status.setdefault(HTTP_STATUS.get(code, 409), []).append(f"`{code}`")
        for value in ep.path_values.values():
            for code in getattr(value, "errors", ()):
                by_status.setdefault(HTTP_STATUS.get(code, 409), []).append(f"`{code}`")
        refusals = "; ".join(f"{status} {', '.join(dict.fromkeys(codes))}"
                             for status, codes in sorted(by_status.items())) or "—"
        lines.append(f"| `{ep.method} {ep.path}` | `{ep.command}` | {SCOPE_WORDS[ep.scope]} | {_cell(takes)} | "
                     f"{_cell(refusals)} |")
    return "\n".join(lines) + "\n"


# file -> table name -> generator
TABLES: dict[str, dict[str, Callable[[], str]]] = {
    "docs/protocol.md": {"argument types": types_table, "commands": commands_table, "roles": roles_table,
                         "error catalogue": errors_table},
    "docs/cli.md": {"scripting commands": cli_table},
    "docs/web.md": {"rest endpoints": rest_table},
}


def render(text: str, tables: dict[str, Callable[[], str]], path: str = "") -> str:
    """``text`` with each named table's region rewritten; ValueError for a region that is missing."""
    for name, make in tables.items():
        begin, end = BEGIN.format(name=name, command=COMMAND), END.format(name=name)
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
        found = pattern.search(text)
        if found is None:
            raise ValueError(f"{path}: no region {begin.strip()} … {end}")
        text = text[:found.start()] + begin + make() + end + text[found.end():]
    return text


def stale(root: Path = ROOT) -> list[str]:
    """The files whose generated tables differ from what the schema says now."""
    out = []
    for rel, tables in TABLES.items():
        text = (root / rel).read_text(encoding="utf-8")
        if render(text, tables, rel) != text:
            out.append(rel)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m queuehall.tools.protocol_doc", description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the tables (default: only check them)")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this one)")
    args = parser.parse_args(argv)
    if not args.write:
        found = stale(args.root)
        for rel in found:
            print(f"{rel}: generated tables are stale; run {COMMAND}", file=sys.stderr)
        return 1 if found else 0
    for rel, tables in TABLES.items():
        path = args.root / rel
        text = path.read_text(encoding="utf-8")
        new = render(text, tables, rel)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"rewrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
