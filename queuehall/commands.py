"""The command schema: every request the broker answers, declared once.

Each :class:`Command` names its wire type, its typed parameters (:class:`Param`), the roles that may send
it, a one-line doc and, when the ``queuehall`` command line offers it, its subcommand. Everything else is
derived from :data:`COMMANDS`:

* the hall engine dispatches ``kind == "hall"`` commands to the :class:`~queuehall.broker.engine.Hall`
  method of the same name, after :func:`check_args` checked the arguments against ``params``;
* the broker (broker/server.py) authorises by ``roles`` and checks the arguments of its own requests
  (``kind`` ``"link"`` and ``"query"``) the same way;
* the command line (queuehall/cli.py) builds its scripting subcommands from ``cli`` and ``params``;
* the web gateway describes a command's arguments in its OpenAPI document with :func:`json_schema`;
* tests/test_command_schema.py checks docs/protocol.md's command table, its argument types and its
  table of roles (:func:`roles_table`, generated) against this module.

This module is part of the core: pure Python, imported by the command line's lean path on every press of
a call button, so it is plain classes and literals (no dataclasses, no ``inspect``) and imports nothing
beyond the wire module (queuehall/protocol.py) until an argument is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# The wire module (already loaded by the command line's request client): strings are cleaned as it says.
from queuehall.protocol import clean_text

if TYPE_CHECKING:
    from typing import Any

# Every role a device key can have (docs/protocol.md "Keys"); queuehall.protocol.ROLES is the same tuple.
ALL_ROLES = ("kiosk", "counter", "display", "admin", "web")
MAX_TEXT = 500  # characters in any string argument


class TicketRef:
    """The kind of a ``ticket`` argument: a ticket's id (an integer) or its label (a string)."""


class Param:
    """One argument of a command, as docs/protocol.md lists it.

    ``kind`` is the JSON type it must have, exactly (``int`` is an integer and never a boolean or a
    string of digits, ``str`` a string, ``bool`` true or false, :class:`TicketRef` an integer or a
    string). A string is cleaned of surrounding whitespace and invisible characters
    (:func:`~queuehall.protocol.clean_text`); left empty, a required one is refused with ``empty``
    and an optional one counts as absent. ``doc`` is its help on the command line; ``cli`` how the
    command line takes it: ``None`` (the default: required ones positional, optional ones ``--name``),
    ``False`` (not offered), or argparse keywords, with ``"flag"`` naming the option or ``""`` for a
    positional one, and ``"position"`` its place among the positional ones (default: its index among the params);
    a list an ``"append"`` option collects is sent as one comma-separated string. ``{"secret": True}``: a
    secret (a PIN), never taken from the command line, where ``ps`` and the shell's history show it: the
    command line asks for it without echo, or reads one line of standard input with ``--NAME-stdin``.
    """

    __slots__ = ("cli", "doc", "empty", "kind", "name", "required")

    def __init__(self, name: str, kind: type, required: bool = True, empty: str = "BAD_REQUEST", *,
                 doc: str = "", cli: dict[str, Any] | bool | None = None) -> None:
        self.name = name
        self.kind = kind
        self.required = required
        self.empty = empty
        self.doc = doc
        self.cli = cli

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Param) and (self.name, self.kind, self.required, self.empty) == (
            other.name, other.kind, other.required, other.empty)

    def __hash__(self) -> int:
        return hash((self.name, self.kind, self.required, self.empty))

    def __repr__(self) -> str:
        return f"Param({self.name!r}, {self.kind.__name__}, required={self.required})"


class Command:
    """One request type: ``kind`` is ``"hall"`` (a command the hall engine carries out and journals),
    ``"query"`` (answered from the hall without changing it) or ``"link"`` (the broker's own:
    hello, ping, snapshot; any role). ``cli`` is the ``queuehall`` subcommand sending it ("cases close":
    a subcommand of a group), ``cli_help`` its help when it differs from ``doc``."""

    __slots__ = ("cli", "cli_help", "doc", "kind", "name", "params", "roles")

    def __init__(self, name: str, kind: str, roles: tuple[str, ...], doc: str, *params: Param,
                 cli: str | None = None, cli_help: str | None = None) -> None:
        self.name = name
        self.kind = kind
        self.roles = frozenset(roles)
        self.doc = doc
        self.params = params
        self.cli = cli
        self.cli_help = cli_help

    def __repr__(self) -> str:
        return f"Command({self.name!r}, {self.kind!r})"


# Parameters several commands share.
_COUNTER = Param("counter", int, doc="counter (window) number")
_SESSION = Param("session", str, False, doc="the counter's session id from sign-in")
_TICKET = Param("ticket", TicketRef, doc="ticket number (e.g. A001) or id")
_REASON = Param("reason", str, empty="REASON_REQUIRED", doc="why (recorded)")
_BY = Param("by", str, False, doc="who (manager)")

_COUNTER_ROLES = ("counter", "admin")
_BOX_ROLES = ("counter", "web", "admin")  # the web gateway's integration boxes act for a counter too
_KIOSK_ROLES = ("kiosk", "admin")


def _counter_action(name: str, doc: str, cli: str, roles: tuple[str, ...] = _BOX_ROLES) -> Command:
    return Command(name, "hall", roles, doc, _COUNTER, _SESSION, cli=cli)


COMMANDS: dict[str, Command] = {c.name: c for c in (
    # -- the broker's own (docs/protocol.md "Links")
    Command("hello", "link", ALL_ROLES, "say who this client is; answers the event stream's epoch and sequence",
            Param("role", str), Param("name", str), Param("counter", int, False)),
    Command("ping", "link", ALL_ROLES, "keep the link alive (a Link repeats what its hello said)",
            Param("role", str, False), Param("name", str, False), Param("counter", int, False)),
    # The snapshot's two arguments are checked by the broker itself (docs/protocol.md "Snapshot").
    Command("snapshot", "link", ALL_ROLES, "the whole hall state (all tickets, none, or one counter's)"),
    # -- questions answered from the hall without changing it
    # The kiosk asks too: a remote ticket's page address scanned at check-in (docs/kiosk.md "Check-in").
    Command("ticket_by_token", "query", ("web", "kiosk", "admin"), "a ticket's public view by its page token",
            Param("token", str)),
    Command("events", "query", ("web", "display", "admin"), "the journaled events after a journal_seq",
            Param("after", int), Param("limit", int, False)),
    Command("cases", "query", ("admin",), "the open 差评 cases, oldest first", cli="cases list",
            cli_help="the open cases (overdue marked)"),
    Command("alerts", "query", ("web", "admin"), "the active alerts (the supervision page)"),
    # -- appointments (预约; docs/calling-rules.md "Appointments"): the hall answers these from its state
    Command("slots", "query", ("kiosk", "web", "admin"), "a service's booking slots of a day, with the places left",
            Param("service", str, doc="service code"),
            Param("date", str, False, doc="YYYY-MM-DD (default: the hall's today)"), cli="slots"),
    Command("bookings", "query", ("web", "admin"), "the bookings of a day, by slot (admin)",
            Param("date", str, False, doc="YYYY-MM-DD (default: the hall's today)"),
            Param("service", str, False, doc="only this service"), cli="bookings"),
    Command("today", "query", ("web", "admin"), "today's completion and satisfaction so far (the supervision page)"),
    # The web gateway's booking page /b/{code} and GET /api/v1/bookings/{code} (docs/web.md "Bookings").
    Command("booking", "query", ("web", "admin"), "one booking by its code (as typed or scanned)",
            Param("code", str, doc="the booking code")),
    # -- tickets
    Command("take_ticket", "hall", ("kiosk", "web", "admin"), "take a ticket",
            Param("service", str, doc="service code"),
            Param("priority", str, False, doc="priority class (green channel)"),
            Param("channel", str, False, cli=False), cli="take"),
    Command("check_in", "hall", ("kiosk", "web", "admin"), "check a remote ticket in (its holder has arrived)",
            _TICKET, cli="checkin", cli_help="check a booking in (a 10-character code or the QR's "
            "queuehall:booking:CODE: checkin) or a remote ticket (check_in)"),
    Command("book", "hall", ("web", "admin"), "book a slot of a service (预约); prints the booking and its code",
            Param("service", str, doc="service code"),
            Param("slot", str, doc="the slot's start, hall local time: YYYY-MM-DDTHH:MM",
                  cli={"flag": "--slot", "required": True}),
            Param("contact", str, False, doc="mobile or ID number (kept masked and hashed only)"), cli="book"),
    Command("unbook", "hall", ("web", "admin"), "cancel a booking", Param("code", str, doc="the booking code"),
            cli="unbook"),
    # ``queuehall checkin`` sends this for a booking code, check_in for a ticket (queuehall/cli.py).
    Command("checkin", "hall", ("kiosk", "web", "admin"), "check a booking in: its citizen has arrived (预约签到)",
            Param("code", str, doc="the booking code, or the QR's queuehall:booking:CODE"),
            Param("contact", str, False, doc="the booking's mobile or ID number, to match it")),
    Command("lapse_remote", "hall", ("admin",), "cancel the remote tickets not checked in by their arrive_by"),
    Command("void_ticket", "hall", _KIOSK_ROLES, "withdraw a waiting ticket whose printing failed",
            _TICKET, _REASON),
    Command("cancel_ticket", "hall", _COUNTER_ROLES, "cancel a ticket", _TICKET, _REASON, cli="cancel"),
    # -- counters
    Command("sign_in", "hall", _COUNTER_ROLES, "sign a clerk in at a counter",
            _COUNTER, Param("clerk", str), Param("pin", str, cli={"secret": True}), Param("takeover", bool, False),
            cli="signin"),
    Command("unlock_clerk", "hall", ("admin",), "lift a clerk's sign-in lock", Param("clerk", str),
            cli="unlockclerk", cli_help="lift a clerk's sign-in lock (admin; see also: queuehall clerks)"),
    _counter_action("sign_out", "close a counter", "signout", _COUNTER_ROLES),
    Command("pause", "hall", _COUNTER_ROLES, "pause a counter with a reason",
            _COUNTER, Param("reason", str, doc="a configured pause reason"), _SESSION, cli="pause"),
    _counter_action("resume", "resume a counter", "resume", _COUNTER_ROLES),
    _counter_action("call_next", "call the next ticket", "call"),
    Command("call_ticket", "hall", _COUNTER_ROLES, "call a specific ticket out of order (reason recorded)",
            _COUNTER, _TICKET, _REASON, _SESSION, cli="callticket"),
    _counter_action("recall", "call again", "recall"),
    _counter_action("no_show", "mark the called ticket a no-show", "noshow"),
    Command("reinstate", "hall", _COUNTER_ROLES, "put a no-show back in the queue",
            _TICKET, Param("counter", int, False, cli=False), cli="reinstate"),
    _counter_action("start", "start serving the called ticket", "start"),
    _counter_action("finish", "finish serving", "finish"),
    Command("transfer", "hall", _COUNTER_ROLES, "transfer the counter's ticket to a service and/or counter",
            _COUNTER, Param("service", str, False), Param("to_counter", int, False), Param("note", str, False),
            _SESSION, cli="transfer"),
    # -- printers
    Command("printer_fault", "hall", _KIOSK_ROLES, "the kiosk's printer failed",
            Param("code", str), Param("ticket", TicketRef, False), Param("name", str, False)),
    Command("printer_ok", "hall", _KIOSK_ROLES, "the kiosk's printer works again", Param("name", str, False)),
    Command("reprint_ticket", "hall", ("kiosk", "counter", "admin"), "order one more print of an open ticket",
            _TICKET, Param("counter", int, False), Param("kiosk", str, False)),
    Command("reprint_done", "hall", _KIOSK_ROLES, "a reprint order carried out (or failed)",
            _TICKET, Param("code", str, False), Param("name", str, False)),
    # -- 好差评 and supervision
    Command("rate", "hall", ("web", "display", "admin"),
            "rate the counter's last finished visit, 5 非常满意 … 1 非常不满意 (evaluator box)",
            Param("level", int, doc="5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意"),
            Param("ticket", TicketRef, False, doc="rate this ticket's last finished visit instead"),
            Param("visit", int, False, cli=False),
            # Optional on the wire (a ticket or a visit will do), the first argument on the command line.
            Param("counter", int, False, cli={"flag": "", "position": -1, "help": "counter (window) number"}),
            Param("indicators", str, False, cli={
                "flag": "--indicator", "action": "append", "default": None,
                "choices": ["efficiency", "level", "attitude", "overall"],
                "help": "an indicator the citizen was unhappy with (low levels); may be repeated"}),
            Param("reason", str, False),
            Param("channel", str, False, cli={"default": "evaluator_box",
                                              "choices": ["evaluator_box", "counter_screen", "cli"]}),
            cli="rate"),
    Command("default_ratings", "hall", ("admin",), "give the visits left unrated the hall's default level"),
    Command("case_callback", "hall", ("admin",), "record the call back (回访) to the citizen",
            Param("case", int), Param("note", str, doc="what the citizen said"), Param("by", str, False,
                                                                                       doc="who called (manager)"),
            cli="cases callback"),
    Command("case_close", "hall", ("admin",), "close a case with the finding and the rectification",
            Param("case", int), Param("finding", str, doc="核实情况"), Param("rectification", str, doc="整改措施"),
            Param("by", str, False), cli="cases close"),
    Command("alert_ack", "hall", ("web", "admin"), "acknowledge an active alert with a note",
            Param("key", str), Param("note", str), _BY),
)}

# The command line's groups of subcommands (``queuehall cases list``): group -> help.
CLI_GROUPS = {"cases": "差评 follow-up cases: list, record the call back, close"}


def hall_commands() -> tuple[str, ...]:
    """The commands the hall engine carries out, in declaration order."""
    return tuple(name for name, c in COMMANDS.items() if c.kind == "hall")


def commands_for(role: str) -> frozenset[str]:
    """Every request type a key of ``role`` may send."""
    return frozenset(name for name, c in COMMANDS.items() if role in c.roles)


_KIND_NAMES: dict[type, tuple[str, str]] = {
    int: ("an integer", "整数"),
    str: ("a string", "字符串"),
    bool: ("true or false", "true 或 false"),
    TicketRef: ("a ticket id (integer) or label (string)", "号票编号（整数）或号票号（字符串）"),
}
# docs/protocol.md's words for each kind (its table of argument types).
KIND_WORDS: dict[type, str] = {int: "integer", str: "string", bool: "boolean", TicketRef: "integer or string"}


def _kind_ok(kind: type, value: Any) -> bool:
    if kind is TicketRef:
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    if kind is int:  # JSON true is not 1, and "3" is not 3
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _bad_argument(name: str, en: str, zh: str) -> Exception:
    from queuehall.errors import HallError

    return HallError("BAD_REQUEST", argument=name, detail=f"{name} {en}", detail_zh=f"参数 {name} {zh}")


def check_args(params: tuple[Param, ...], args: Any) -> dict[str, Any]:
    """Check a command's arguments against its declared parameters, exactly (see :class:`Param`);
    ignore unknown ones. Refused with BAD_REQUEST naming the argument, in Chinese and English."""
    if not isinstance(args, dict):
        from queuehall.errors import HallError

        raise HallError("BAD_REQUEST", detail="arguments must be an object", detail_zh="参数必须是一个对象")
    out: dict[str, Any] = {}
    for p in params:
        value = args.get(p.name)
        if value is None:
            if p.required:
                raise _bad_argument(p.name, "is missing", "缺失")
            continue
        if not _kind_ok(p.kind, value):
            en, zh = _KIND_NAMES[p.kind]
            raise _bad_argument(p.name, f"must be {en}", f"应为{zh}")
        if isinstance(value, str):
            if len(value) > MAX_TEXT:
                raise _bad_argument(p.name, f"is too long (at most {MAX_TEXT} characters)",
                                    f"过长（最多 {MAX_TEXT} 个字符）")
            value = clean_text(value)
            if not value:
                if not p.required:
                    continue
                if p.empty != "BAD_REQUEST":
                    from queuehall.errors import HallError

                    raise HallError(p.empty, argument=p.name)
                raise _bad_argument(p.name, "must not be empty", "不能为空")
        out[p.name] = value
    return out


_JSON_TYPES: dict[type, Any] = {int: "integer", str: "string", bool: "boolean", TicketRef: ["integer", "string"]}


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of a command's arguments (an object), for the web gateway's OpenAPI document."""
    c = COMMANDS[name]
    props: dict[str, Any] = {}
    for p in c.params:
        props[p.name] = {"type": _JSON_TYPES[p.kind]}
        if p.kind is str:
            props[p.name]["maxLength"] = MAX_TEXT
        if p.doc:
            props[p.name]["description"] = p.doc
    schema: dict[str, Any] = {"type": "object", "properties": props}
    required = [p.name for p in c.params if p.required]
    if required:
        schema["required"] = required
    return schema


def roles_table() -> str:
    """docs/protocol.md's table of who may send what (generated; tests/test_command_schema.py checks it)."""
    lines = ["| type | kind | roles |", "|---|---|---|"]
    for name, c in COMMANDS.items():
        roles = "any" if c.roles == frozenset(ALL_ROLES) else ", ".join(f"`{r}`" for r in ALL_ROLES if r in c.roles)
        lines.append(f"| `{name}` | {c.kind} | {roles} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m queuehall.commands: docs/protocol.md's table of roles
    print(roles_table(), end="")
