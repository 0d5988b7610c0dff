"""The command schema: every request the broker answers, declared once.

Each :class:`Command` names its wire type, its typed parameters (:class:`Param`), the roles that may send
it, a one-line doc and, when the ``queuehall`` command line offers it, its subcommand. Everything else is
derived from :data:`COMMANDS`:

* the hall engine dispatches ``kind == "hall"`` commands to the :class:`~queuehall.broker.engine.Hall`
  method of the same name, after :func:`check_args` checked the arguments against ``params``;
* the broker (broker/server.py) authorises by ``roles`` and checks the arguments of its own requests
  (``kind`` ``"link"`` and ``"query"``) the same way;
* the command line (queuehall/cli.py) builds its scripting subcommands from ``cli`` and ``params``;
* the web gateway derives its REST endpoints for the commands it may send and their OpenAPI document
  (web/rest.py): what they take (:func:`json_schema`), the token scope (:func:`web_scope`) and their error
  answers (``errors``);
* docs/protocol.md's tables of argument types, commands (arguments, result, refusals), roles and error
  codes, and docs/cli.md's table of subcommands, are generated from it (tools/protocol_doc.py:
  ``python -m queuehall.tools.protocol_doc --write``); tests/test_command_schema.py fails while one is stale.

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

    ``note`` is what docs/protocol.md's command table says of it (in brackets after its name; markdown), and
    ``choices`` the only values the hall takes (its enum in the web gateway's OpenAPI document). The broker
    refuses any other with its own code (``BAD_LEVEL``, ``UNKNOWN_INDICATOR``, ``BAD_REQUEST`` …), not
    :func:`check_args`; ``separator``: the value is a list of choices in one string, joined by it.
    """

    __slots__ = ("choices", "cli", "doc", "empty", "kind", "name", "note", "required", "separator")

    def __init__(self, name: str, kind: type, required: bool = True, empty: str = "BAD_REQUEST", *,
                 doc: str = "", cli: dict[str, Any] | bool | None = None, note: str = "",
                 choices: tuple[Any, ...] | None = None, separator: str | None = None) -> None:
        self.name = name
        self.kind = kind
        self.required = required
        self.empty = empty
        self.doc = doc
        self.cli = cli
        self.note = note
        self.choices = choices
        self.separator = separator

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
    a subcommand of a group), ``cli_help`` its help when it differs from ``doc``.

    What docs/protocol.md's command table says of it (generated: ``python -m queuehall.tools.protocol_doc``):
    ``result`` the reply's fields (markdown), ``errors`` the catalogue codes it may be refused with besides
    the ones every command may get (:data:`COMMON_ERRORS`), ``errors_note`` a remark on them, ``args_doc``
    its arguments when the broker checks them itself (``snapshot``). ``web_scope``: the web gateway's API
    token scope that may have it sent (``public``: no token), when it is not the one its roles give
    (:func:`web_scope`)."""

    __slots__ = ("args_doc", "cli", "cli_help", "doc", "errors", "errors_note", "kind", "name", "params", "result",
                 "roles", "web_scope")

    def __init__(self, name: str, kind: str, roles: tuple[str, ...], doc: str, *params: Param,
                 cli: str | None = None, cli_help: str | None = None, result: str = "",
                 errors: tuple[str, ...] = (), errors_note: str = "", args_doc: str = "",
                 web_scope: str | None = None) -> None:
        self.name = name
        self.kind = kind
        self.roles = frozenset(roles)
        self.doc = doc
        self.params = params
        self.cli = cli
        self.cli_help = cli_help
        self.result = result
        self.errors = errors
        self.errors_note = errors_note
        self.args_doc = args_doc
        self.web_scope = web_scope

    def __repr__(self) -> str:
        return f"Command({self.name!r}, {self.kind!r})"


# Parameters several commands share.
_COUNTER = Param("counter", int, doc="counter (window) number")
_SESSION = Param("session", str, False, doc="the counter's session id from sign-in")
_TICKET = Param("ticket", TicketRef, doc="ticket number (e.g. A001) or id")
_REASON = Param("reason", str, empty="REASON_REQUIRED", doc="why (recorded)")
_BY = Param("by", str, False, doc="who (manager)")
_DATE_NOTE = "`YYYY-MM-DD`; default: the hall's today"

_COUNTER_ROLES = ("counter", "admin")
_BOX_ROLES = ("counter", "web", "admin")  # the web gateway's integration boxes act for a counter too
_KIOSK_ROLES = ("kiosk", "admin")

# Refusals of take_ticket that say when tickets are issued again (``details.next_open``).
_HOURS = ("HALL_CLOSED", "HALL_BREAK", "PAST_CUTOFF", "DAILY_CAP_REACHED")
# BOOKING_CODE_LIMIT: the broker's brake on a device guessing codes (broker/server.py).
_BOOKING_CODE = ("BOOKING_CODE_LIMIT", "BOOKING_CODE_INVALID", "BOOKING_WRONG_HALL", "BOOKING_NOT_FOUND")
_BOOKING_STATE = ("BOOKING_ALREADY_CHECKED_IN", "BOOKING_CANCELLED", "BOOKING_WRONG_DAY")
_CALL = ("COUNTER_CLOSED", "COUNTER_PAUSED", "COUNTER_BUSY", "QUEUE_EMPTY")
# Every command may be refused with these (docs/protocol.md's command table lists the others).
COMMON_ERRORS = ("BAD_REQUEST", "FORBIDDEN")


def _counter_action(name: str, doc: str, cli: str, roles: tuple[str, ...] = _BOX_ROLES, *,
                    result: str = "`ticket`", errors: tuple[str, ...] = ()) -> Command:
    return Command(name, "hall", roles, doc, _COUNTER, _SESSION, cli=cli, result=result,
                   errors=("UNKNOWN_COUNTER", "SESSION_ENDED", *errors))


COMMANDS: dict[str, Command] = {c.name: c for c in (
    # -- the broker's own (docs/protocol.md "Links")
    Command("hello", "link", ALL_ROLES, "say who this client is; answers the event stream's epoch and sequence",
            Param("role", str), Param("name", str), Param("counter", int, False),
            result="`epoch`, `seq`, `client`"),
    Command("ping", "link", ALL_ROLES, "keep the link alive (a Link repeats what its hello said)",
            Param("role", str, False), Param("name", str, False), Param("counter", int, False),
            result="`epoch`, `seq`, `client`"),
    # The snapshot's two arguments are checked by the broker itself (docs/protocol.md "Snapshot").
    Command("snapshot", "link", ALL_ROLES, "the whole hall state (all tickets, none, or one counter's)",
            args_doc="`tickets`? (`\"all\"`, `\"none\"` or `{\"counter\": N}`; default `\"all\"`), `role`? (the "
                     "asker's role: a public one gets the public view)",
            result="`epoch`, `seq`, `state` (below)", errors=("UNKNOWN_COUNTER",)),
    # -- questions answered from the hall without changing it
    # The kiosk asks too: a remote ticket's page address scanned at check-in (docs/kiosk.md "Check-in").
    Command("ticket_by_token", "query", ("web", "kiosk", "admin"), "a ticket's public view by its page token",
            Param("token", str, doc="the ticket's page token"),
            result="`ticket` (the public view, never the token), `epoch`, `seq`", errors=("UNKNOWN_TOKEN",),
            errors_note="no ticket of today has it; an earlier day's ticket answers only while open",
            web_scope="public"),
    Command("events", "query", ("web", "display", "admin"), "the journaled events after a journal_seq",
            Param("after", int, note="a `journal_seq`, ≥ 0"),
            Param("limit", int, False, note="0–1000, default 1000; 0 asks only for `last_seq`"),
            result="`events` (the journaled events after `after`, oldest first, as published), `last_seq` (the "
                   "newest event's `journal_seq`), `journal` (false when the broker keeps no database: nothing "
                   "can be listed)"),
    Command("cases", "query", ("admin",), "the open 差评 cases, oldest first", cli="cases list",
            cli_help="the open cases (overdue marked)",
            result="`cases` (the open 差评 cases, oldest first, each with `overdue`)"),
    Command("alerts", "query", ("web", "admin"), "the active alerts (the supervision page)",
            result="`alerts` (the active alerts: `key`, `rule`, `details`, `raised_at`, `ack`)",
            errors_note="[supervision.md](supervision.md)"),
    # -- appointments (预约; docs/calling-rules.md "Appointments"): the hall answers these from its state
    Command("slots", "query", ("kiosk", "web", "admin"), "a service's booking slots of a day, with the places left",
            Param("service", str, doc="service code"),
            Param("date", str, False, doc="YYYY-MM-DD (default: the hall's today)", note=_DATE_NOTE), cli="slots",
            result="`service`, `date`, `slots` (`[{start, end, capacity, booked, free, bookable}]`, hall local "
                   "`YYYY-MM-DDTHH:MM`; `capacity`: bookable places)",
            errors=("UNKNOWN_SERVICE", "BOOKING_NOT_OFFERED"), errors_note="read only: nothing journaled",
            web_scope="public"),
    Command("bookings", "query", ("web", "admin"), "the bookings of a day, by slot (admin)",
            Param("date", str, False, doc="YYYY-MM-DD (default: the hall's today)", note=_DATE_NOTE),
            Param("service", str, False, doc="only this service"), cli="bookings",
            result="`date`, `bookings` (by slot)", errors=("UNKNOWN_SERVICE",), errors_note="read only"),
    Command("today", "query", ("web", "admin"), "today's completion and satisfaction so far (the supervision page)",
            result="`business_day`, `available` (false without a database), `served`, `closed_unserved`, "
                   "`same_day_completed`, `same_day_rate`, `rated`, `levels` (`\"5\"`…`\"1\"`), `defaults`, "
                   "`good_rate` (today so far, as the reports define them)",
            errors_note="[supervision.md](supervision.md)"),
    # The web gateway's booking page /b/{code} and GET /api/v1/bookings/{code} (docs/web.md "Bookings"): a mini
    # program looks up the booking it made, so the gateway's kiosk scope may.
    Command("booking", "query", ("web", "admin"), "one booking by its code (as typed or scanned)",
            Param("code", str, doc="the booking code", note="as typed or scanned"), result="`booking`",
            errors=_BOOKING_CODE, errors_note="read only; the gateway's booking page, "
                                              "[web.md](web.md#bookings--预约)", web_scope="kiosk"),
    # -- tickets
    Command("take_ticket", "hall", ("kiosk", "web", "admin"), "take a ticket",
            Param("service", str, doc="service code"),
            Param("priority", str, False, doc="priority class (green channel)"),
            Param("channel", str, False, cli=False, choices=("kiosk", "remote")), cli="take",
            result="`ticket`, `ahead`, `estimated_wait_minutes`, `token`, `url`",
            errors=("UNKNOWN_SERVICE", "UNKNOWN_PRIORITY", "PRIORITY_NOT_ALLOWED", *_HOURS, "REMOTE_NOT_OFFERED",
                    "REMOTE_QUOTA_REACHED"),
            errors_note="`HALL_CLOSED` … `DAILY_CAP_REACHED`: `details.next_open` (local time) says when; "
                        "`REMOTE_…`: a remote ticket only"),
    Command("check_in", "hall", ("kiosk", "web", "admin"), "check a remote ticket in (its holder has arrived)",
            _TICKET, cli="checkin", cli_help="check a booking in (a 10-character code or the QR's "
            "queuehall:booking:CODE: checkin) or a remote ticket (check_in)", result="`ticket`",
            errors=("UNKNOWN_TICKET", "NOT_REMOTE", "ALREADY_CHECKED_IN", "REMOTE_LAPSED", "NOT_WAITING")),
    # A mini program (一网通办) books and cancels for its citizen: the gateway's kiosk scope may.
    Command("book", "hall", ("web", "admin"), "book a slot of a service (预约); prints the booking and its code",
            Param("service", str, doc="service code"),
            Param("slot", str, doc="the slot's start, hall local time: YYYY-MM-DDTHH:MM",
                  cli={"flag": "--slot", "required": True}, note="the slot's start, hall local `YYYY-MM-DDTHH:MM`"),
            Param("contact", str, False, doc="mobile or ID number (kept masked and hashed only)",
                  note="mobile or ID number"), cli="book",
            result="`booking` (below)",
            errors=("UNKNOWN_SERVICE", "BOOKING_NOT_OFFERED", "SLOT_CLOSED", "SLOT_UNKNOWN", "SLOT_PAST",
                    "SLOT_TOO_FAR", "SLOT_FULL", "BAD_CONTACT"), web_scope="kiosk"),
    Command("unbook", "hall", ("web", "admin"), "cancel a booking", Param("code", str, doc="the booking code"),
            cli="unbook", result="`booking` (`state: \"cancelled\"`)", errors=(*_BOOKING_CODE, *_BOOKING_STATE),
            web_scope="kiosk"),
    # ``queuehall checkin`` sends this for a booking code, check_in for a ticket (queuehall/cli.py).
    Command("checkin", "hall", ("kiosk", "web", "admin"), "check a booking in: its citizen has arrived (预约签到)",
            Param("code", str, doc="the booking code, or the QR's queuehall:booking:CODE",
                  note="typed, or the QR's `queuehall:booking:<code>` or page address `…/b/<code>`"),
            Param("contact", str, False, doc="the booking's mobile or ID number, to match it"),
            result="`booking`, `ticket` (`appointment: true` unless late), `late`, `ahead`, "
                   "`estimated_wait_minutes`, `token`, `url`",
            errors=(*_BOOKING_CODE, *_BOOKING_STATE, "BOOKING_TOO_EARLY", "BOOKING_CONTACT_MISMATCH",
                    "BOOKING_CONTACT_UNCHECKABLE", "UNKNOWN_SERVICE",
                    *_HOURS),
            errors_note="`HALL_CLOSED` … `DAILY_CAP_REACHED`: a late check-in only, as `take_ticket`"),
    Command("lapse_remote", "hall", ("admin",), "cancel the remote tickets not checked in by their arrive_by",
            result="`lapsed` (labels)", errors_note="run by the broker itself on its heartbeat; "
            "[calling-rules.md](calling-rules.md#remote-tickets--线上取号)"),
    Command("void_ticket", "hall", _KIOSK_ROLES, "withdraw a waiting ticket whose printing failed",
            _TICKET, _REASON, result="`ticket`", errors=("UNKNOWN_TICKET", "NOT_WAITING", "REASON_REQUIRED")),
    Command("cancel_ticket", "hall", _COUNTER_ROLES, "cancel a ticket", _TICKET, _REASON, cli="cancel",
            result="`ticket`", errors=("UNKNOWN_TICKET", "CANNOT_CANCEL", "REASON_REQUIRED")),
    # -- counters
    Command("sign_in", "hall", _COUNTER_ROLES, "sign a clerk in at a counter",
            _COUNTER, Param("clerk", str), Param("pin", str, cli={"secret": True}),
            Param("takeover", bool, False, note="true: sign in even where another terminal is signed in, which "
                                                "is then refused `SESSION_ENDED`"),
            cli="signin",
            result="`counter` (the counter as the snapshot's `state.counters[N]` shows it: `number`, `state`, "
                   "`clerk`, `post`, …), `session` (send it with the counter's later commands)",
            errors=("UNKNOWN_COUNTER", "BAD_PIN", "PIN_NOT_SET", "CLERK_LOCKED", "CLERK_NOT_ASSIGNED",
                    "CLERK_ELSEWHERE", "COUNTER_OCCUPIED"),
            errors_note="`CLERK_LOCKED`: `details.minutes` left; `COUNTER_OCCUPIED`: someone is signed in there "
                        "and `takeover` is not true"),
    Command("unlock_clerk", "hall", ("admin",), "lift a clerk's sign-in lock", Param("clerk", str),
            cli="unlockclerk", cli_help="lift a clerk's sign-in lock (admin; see also: queuehall clerks)",
            result="`clerk`, `was_locked`", errors=("UNKNOWN_CLERK",)),
    _counter_action("sign_out", "close a counter", "signout", _COUNTER_ROLES, result="`counter`",
                    errors=("COUNTER_CLOSED", "COUNTER_BUSY")),
    Command("pause", "hall", _COUNTER_ROLES, "pause a counter with a reason",
            _COUNTER, Param("reason", str, doc="a configured pause reason", note="a configured code"), _SESSION,
            cli="pause", result="`counter`",
            errors=("UNKNOWN_COUNTER", "UNKNOWN_PAUSE_REASON", "COUNTER_CLOSED", "COUNTER_PAUSED", "COUNTER_BUSY",
                    "SESSION_ENDED")),
    _counter_action("resume", "resume a counter", "resume", _COUNTER_ROLES, result="`counter`",
                    errors=("COUNTER_CLOSED", "COUNTER_NOT_PAUSED")),
    _counter_action("call_next", "call the next ticket", "call", result="`ticket`, `counter`", errors=_CALL),
    Command("call_ticket", "hall", _COUNTER_ROLES, "call a specific ticket out of order (reason recorded)",
            _COUNTER, _TICKET, _REASON, _SESSION, cli="callticket", result="`ticket`, `counter`",
            errors=("UNKNOWN_COUNTER", "COUNTER_CLOSED", "COUNTER_PAUSED", "COUNTER_BUSY", "UNKNOWN_TICKET",
                    "NOT_WAITING", "NOT_SERVED_HERE", "REASON_REQUIRED", "SESSION_ENDED")),
    _counter_action("recall", "call again", "recall",
                    result="`ticket`, `no_show` (true when the recall limit turned it into a no-show)",
                    errors=("COUNTER_CLOSED", "COUNTER_PAUSED", "NOTHING_CALLED")),
    _counter_action("no_show", "mark the called ticket a no-show", "noshow",
                    errors=("COUNTER_CLOSED", "COUNTER_PAUSED", "NOTHING_CALLED")),
    Command("reinstate", "hall", _COUNTER_ROLES, "put a no-show back in the queue",
            _TICKET, Param("counter", int, False, cli=False), cli="reinstate", result="`ticket`",
            errors=("UNKNOWN_TICKET", "UNKNOWN_COUNTER", "NOT_NO_SHOW", "GRACE_EXPIRED")),
    _counter_action("start", "start serving the called ticket", "start",
                    errors=("COUNTER_CLOSED", "COUNTER_PAUSED", "NOTHING_CALLED", "ALREADY_SERVING")),
    _counter_action("finish", "finish serving", "finish", errors=("COUNTER_CLOSED", "NOT_SERVING")),
    Command("transfer", "hall", _COUNTER_ROLES, "transfer the counter's ticket to a service and/or counter",
            _COUNTER, Param("service", str, False), Param("to_counter", int, False), Param("note", str, False),
            _SESSION, cli="transfer", result="`ticket`",
            errors=("NOTHING_CALLED", "UNKNOWN_SERVICE", "UNKNOWN_COUNTER", "COUNTER_CLOSED", "SERVICE_CLOSED",
                    "SAME_QUEUE", "SESSION_ENDED")),
    # -- printers
    Command("printer_fault", "hall", _KIOSK_ROLES, "the kiosk's printer failed",
            Param("code", str, note="the printer's status code, e.g. `PAPER_OUT`"),
            Param("ticket", TicketRef, False, note="a number it issued and could not print"),
            Param("name", str, False), result="`printer` (the kiosk's record, below)", errors=("UNKNOWN_TICKET",)),
    Command("printer_ok", "hall", _KIOSK_ROLES, "the kiosk's printer works again", Param("name", str, False),
            result="`cleared` (false when there was no alert: nothing is published)"),
    Command("reprint_ticket", "hall", ("kiosk", "counter", "admin"), "order one more print of an open ticket",
            _TICKET, Param("counter", int, False, note="the help counter ordering it"),
            Param("kiosk", str, False, note="the kiosk's client id; default: the issuing kiosk, or the kiosk "
                                            "sending it"),
            result="`ticket`, `kiosk`, `ahead`, `estimated_wait_minutes`",
            errors=("UNKNOWN_COUNTER", "NOT_HELP_COUNTER", "UNKNOWN_TICKET"), errors_note="`UNKNOWN_TICKET`: not open"),
    Command("reprint_done", "hall", _KIOSK_ROLES, "a reprint order carried out (or failed)",
            _TICKET, Param("code", str, False, note="absent: printed; else the printer's status code"),
            Param("name", str, False), result="`printed`", errors=("UNKNOWN_TICKET",)),
    # -- 好差评 and supervision
    # From a ticket's phone page the page token is the credential: no API token (docs/evaluation.md).
    Command("rate", "hall", ("web", "display", "admin"),
            "rate the counter's last finished visit, 5 非常满意 … 1 非常不满意 (evaluator box)",
            Param("level", int, doc="5 非常满意, 4 满意, 3 基本满意, 2 不满意, 1 非常不满意", choices=(5, 4, 3, 2, 1)),
            Param("ticket", TicketRef, False, doc="rate this ticket's last finished visit instead"),
            Param("visit", int, False, cli=False, note="a ticket or a visit, or neither with a counter"),
            # Optional on the wire (a ticket or a visit will do), the first argument on the command line.
            Param("counter", int, False, cli={"flag": "", "position": -1, "help": "counter (window) number"}),
            Param("indicators", str, False, cli={
                "flag": "--indicator", "action": "append", "default": None,
                "choices": ["efficiency", "level", "attitude", "overall"],
                "help": "an indicator the citizen was unhappy with (low levels); may be repeated"},
                note="low levels only", choices=("efficiency", "level", "attitude", "overall"),
                separator=","),
            Param("reason", str, False),
            Param("channel", str, False, cli={"default": "evaluator_box",
                                              "choices": ["evaluator_box", "counter_screen", "cli"]},
                  note="default `cli`", choices=("counter_screen", "phone", "evaluator_box", "cli")),
            cli="rate", result="`rating` (below), `case` (for levels 1–2)",
            errors=("BAD_LEVEL", "UNKNOWN_INDICATOR", "INDICATORS_LOW_ONLY", "UNKNOWN_TICKET", "UNKNOWN_COUNTER",
                    "NOT_FINISHED", "ALREADY_RATED", "RATING_CLOSED", "NOTHING_TO_RATE"),
            errors_note="[evaluation.md](evaluation.md)", web_scope="public"),
    Command("default_ratings", "hall", ("admin",), "give the visits left unrated the hall's default level",
            result="`rated` (labels)",
            errors_note="run by the broker on its heartbeat when hall.toml sets `rating.default_level`"),
    Command("case_callback", "hall", ("admin",), "record the call back (回访) to the citizen",
            Param("case", int), Param("note", str, doc="what the citizen said"), Param("by", str, False,
                                                                                       doc="who called (manager)"),
            cli="cases callback", result="`case`", errors=("UNKNOWN_CASE",)),
    Command("case_close", "hall", ("admin",), "close a case with the finding and the rectification",
            Param("case", int), Param("finding", str, doc="核实情况"), Param("rectification", str, doc="整改措施"),
            Param("by", str, False), cli="cases close", result="`case`, `on_time`",
            errors=("UNKNOWN_CASE", "CALLBACK_REQUIRED")),
    Command("alert_ack", "hall", ("web", "admin"), "acknowledge an active alert with a note",
            Param("key", str), Param("note", str), _BY, result="`alert`", errors=("UNKNOWN_ALERT",)),
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


def param_schema(p: Param, *, lists: bool = False) -> dict[str, Any]:
    """The JSON Schema of one argument: its type, ``enum`` of its choices, ``maxLength`` of a string.

    ``lists``: a list of choices in one string (``separator``) is a JSON array of them instead (the web
    gateway's request bodies; the gateway joins it for the broker)."""
    schema: dict[str, Any] = {"type": _JSON_TYPES[p.kind]}
    if p.choices is not None and p.separator is None:
        schema["enum"] = list(p.choices)
    if p.kind is str:
        schema["maxLength"] = MAX_TEXT
    if p.separator is not None:
        if lists:
            schema = {"type": "array", "items": {"type": "string", "enum": list(p.choices or ())},
                      "uniqueItems": True}
        else:
            choices = "|".join(p.choices or ())
            schema["pattern"] = f"^\\s*({choices})(\\s*{p.separator}\\s*({choices}))*\\s*$"
    text = "; ".join(t for t in (p.doc, p.note.replace("`", "")) if t)
    if text:
        schema["description"] = text
    return schema


def json_schema(name: str, omit: tuple[str, ...] = (), *, lists: bool = False) -> dict[str, Any]:
    """The JSON Schema of a command's arguments (an object), less those in ``omit``, for the web gateway's
    OpenAPI document (``lists``: see :func:`param_schema`)."""
    params = [p for p in COMMANDS[name].params if p.name not in omit]
    schema: dict[str, Any] = {"type": "object",
                              "properties": {p.name: param_schema(p, lists=lists) for p in params}}
    required = [p.name for p in params if p.required]
    if required:
        schema["required"] = required
    return schema


# The web gateway's API token scopes that mirror a device role (docs/web.md "API tokens"), most narrow first.
WEB_SCOPES = ("public", "kiosk", "counter", "admin")


def web_scope(name: str) -> str:
    """The API token scope for which the web gateway sends command ``name``: the command's own ``web_scope``,
    else the narrowest device role among its roles that a scope mirrors (``kiosk``; ``counter``: the
    ``counter:N`` of the counter acted on), else ``admin``."""
    c = COMMANDS[name]
    if c.web_scope is not None:
        return c.web_scope
    return next((role for role in ("kiosk", "counter") if role in c.roles), "admin")


def roles_table() -> str:
    """docs/protocol.md's table of who may send what (generated; tests/test_command_schema.py checks it)."""
    lines = ["| type | kind | roles |", "|---|---|---|"]
    for name, c in COMMANDS.items():
        roles = "any" if c.roles == frozenset(ALL_ROLES) else ", ".join(f"`{r}`" for r in ALL_ROLES if r in c.roles)
        lines.append(f"| `{name}` | {c.kind} | {roles} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m queuehall.commands: docs/protocol.md's table of roles
    print(roles_table(), end="")
