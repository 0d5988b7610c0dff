"""``queuehall``: one command with subcommands for every part of the hall.

Scripting commands (``take``, ``call``, ``status``, ``watch`` …) print JSON and exit
with: 0 success, 1 refused by the broker (the JSON carries the error code), 2 usage
error, 3 broker unreachable. docs/cli.md documents them.

A scripting command is what a hardware call button runs on every press, so it loads only the protocol, the
command schema and the request client (queuehall.rpc, zmq): the parser for the other parts (broker, screens, demo,
reports, which bring SQLAlchemy, Qt and matplotlib) is built only when one of them is named, or for ``--help``;
a command named first builds only its own parser; a one-request process encodes with the standard library's json
(orjson's import would cost more than the command) and sets up no logging, threads or clock
(bench/cli_bench.py, docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=None, sort_keys=False), flush=True)


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", default=None,
                   help="HOST:PORT of the broker, or a:5555,b:5555 for a primary/standby pair ($QUEUEHALL_BROKER)")
    p.add_argument("--key", default=None, help="this device's .key_secret file (CurveZMQ)")
    p.add_argument("--server-key", default=None, help="the broker's public key file (broker.key)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each attempt")


def _security(args: argparse.Namespace) -> Any:
    """The device's CurveZMQ keys from ``--key``/``--server-key``; ValueError when unusable
    (reported as a usage error, exit 2)."""
    from queuehall.rpc import Security

    return Security.from_options(args.key, args.server_key)


class UsageError(Exception):
    """A subcommand's arguments cannot be used (exit 2, the message on standard error)."""


def _command(name: str, build: Callable[[argparse.Namespace], dict[str, Any]],
             shape: Callable[[dict[str, Any]], Any] = lambda result: result) -> Callable[..., int]:
    def run(args: argparse.Namespace) -> int:
        from queuehall.rpc import BrokerClient, BrokerUnavailable, CommandRefused

        try:
            wire = build(args)  # first: a secret is asked for before anything is sent
            # One request, one reply: orjson's import would cost more than the whole command (queuehall.protocol).
            client = BrokerClient(args.broker, security=_security(args), timeout=args.timeout, standard_json=True)
        except (ValueError, UsageError) as err:
            print(f"queuehall: {err}", file=sys.stderr)
            return EXIT_USAGE
        try:
            _print({"status": "ok", "result": shape(client.request(name, **wire))})
            return EXIT_OK
        except CommandRefused as err:
            _print({"status": "error", "error": err.error})
            return EXIT_REFUSED
        except BrokerUnavailable as err:
            _print({"status": "unreachable", "error": {"code": "UNREACHABLE", "message_en": str(err),
                                                       "message_zh": "无法连接叫号服务器"}})
            return EXIT_UNREACHABLE
        finally:
            client.close()

    return run


def is_booking_code(text: str) -> bool:
    """Whether ``text`` is a booking code (10 letters and digits, spaces and dashes aside, or the QR's
    ``queuehall:booking:CODE`` or booking page address ``…/b/CODE``) rather than a ticket (a label such as A012
    or an id): ``queuehall checkin`` checks either in."""
    s = text.strip()
    if s.lower().startswith("queuehall:booking:"):
        return True
    if s.lower().startswith(("http://", "https://")):  # the booking page's address, when the QR carries it
        return "/b/" in s
    s = "".join(c for c in s if c not in " -_")
    return len(s) == 10 and s.isascii() and s.isalnum()


def _checkin(args: argparse.Namespace) -> int:
    if is_booking_code(args.ticket):
        return _command("checkin", lambda a: {"code": a.ticket, "contact": a.contact})(args)
    return _command("check_in", lambda a: {"ticket": a.ticket})(args)


def _status(args: argparse.Namespace) -> int:
    return _command("snapshot", lambda a: {}, status_view)(args)


def status_view(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot as ``queuehall status`` prints it: services in configured order, each with
    its waiting tickets in queue order; counters by number with their current ticket."""
    st = snapshot["state"]
    tickets = list(st.get("tickets", {}).values())  # the broker lists each queue in queue order
    services = []
    for code in st.get("service_order") or list(st.get("services", {})):
        s = st["services"][code]
        services.append(dict(s, tickets=[t for t in tickets
                                         if t["status"] == "waiting" and t["queue_service"] == code]))
    return {
        "epoch": snapshot["epoch"], "seq": snapshot["seq"],
        **{k: st.get(k) for k in ("now", "business_day", "timezone", "calendar", "hall")},
        "services": services,
        "counters": sorted(st.get("counters", {}).values(), key=lambda c: c["number"]),
        "no_shows": [t for t in tickets if t["status"] == "no_show"],
        "recent_calls": st.get("recent_calls", []),
        "devices": st.get("devices", {}),
    }


def _watch(args: argparse.Namespace) -> int:
    """Print every event as a JSON line as it happens (Ctrl-C to stop)."""
    import threading

    from queuehall.client import Link

    try:
        link = Link(args.broker, role="admin", name="watch", security=_security(args))
    except ValueError as err:
        print(f"queuehall: {err}", file=sys.stderr)
        return EXIT_USAGE
    done = threading.Event()
    count = [0]
    synced = [0]
    ever_connected = threading.Event()

    def on_event(msg: dict[str, Any]) -> None:
        if args.type and msg["event"].get("type") not in args.type:
            return
        _print({"epoch": msg["epoch"], "seq": msg["seq"], **msg["event"]})
        count[0] += 1
        if args.count and count[0] >= args.count:
            done.set()

    def announce_sync() -> None:
        # Once the snapshot is loaded *and* events arrive, every later event is printed; a script
        # may wait for this line on standard error before acting. It comes again after a resync.
        m = link.mirror
        if link.alive and m.synced and link.resyncs != synced[0]:
            synced[0] = link.resyncs
            print(json.dumps({"synced": {"epoch": m.epoch, "seq": m.seq}}), file=sys.stderr, flush=True)

    def on_connection(up: bool) -> None:
        if up:
            ever_connected.set()
        print(json.dumps({"connection": up}), file=sys.stderr, flush=True)
        announce_sync()

    link.on_event = on_event
    link.on_connection = on_connection
    link.on_state = lambda mirror: announce_sync()
    link.start()
    try:
        done.wait(args.seconds or None)
    except KeyboardInterrupt:
        pass
    finally:
        link.stop()
    return EXIT_OK if ever_connected.is_set() else EXIT_UNREACHABLE


def _keys(args: argparse.Namespace) -> int:
    from queuehall.broker import keys

    try:
        if args.keys_cmd == "init":
            d = keys.init_keys(args.dir)
            _print({"broker_public_key": str(d / "broker.key"), "broker_secret_key": str(d / "broker.key_secret")})
        elif args.keys_cmd == "add":
            dev = keys.add_device(args.dir, args.name, args.role, args.counter)
            _print({"name": dev.name, "role": dev.role, "counter": dev.counter,
                    "secret_file": f"{args.dir}/secret/{dev.name}.key_secret"})
        elif args.keys_cmd == "remove":
            removed = keys.remove_device(args.dir, args.name)
            _print({"removed": args.name, "files": [str(p) for p in removed]})
        else:
            _print([{"name": d.name, "role": d.role, "counter": d.counter, "public_key": d.public_key.decode()}
                    for d in keys.list_devices(args.dir)])
    except keys.KeyError_ as err:
        print(f"queuehall keys: {err}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def build_parser(scripting_only: bool = False) -> argparse.ArgumentParser:
    """The whole command line, or with ``scripting_only`` just the subcommands that talk to a running broker
    (and ``keys``), which need neither the broker's code nor any screen's."""
    return _parser(scripting_only)[0]


def _parser(scripting_only: bool, only: str | None = None) -> tuple[argparse.ArgumentParser, frozenset[str]]:
    """:func:`build_parser`'s parser and the names of its subcommands; with ``only``, of the scripting
    subcommands only that one is built (when it is one of them)."""
    parser = argparse.ArgumentParser(prog="queuehall", description="Queue tickets, counters and wall displays "
                                     "for service halls (办事大厅排队叫号)")
    sub = parser.add_subparsers(dest="command", required=True)
    _register_scripting(sub if only is None else _Only(sub, only))
    if not scripting_only:
        _register_parts(sub)
    return parser, frozenset(sub.choices)


class _Only:
    """The subparsers of a command line that runs one scripting subcommand, given as its first word: only that
    subcommand's parser is built. argparse builds some thirty parsers for all of them, which took longer than the
    rest of a call button's press but for the interpreter and zmq (docs/benchmarks.md, the call button)."""

    def __init__(self, sub: Any, name: str) -> None:
        self.sub, self.name = sub, name

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        return self.sub.add_parser(name, **kwargs) if name == self.name else _Unbuilt()


class _Unbuilt:
    """Stands for a parser that is not built: takes every argument and builds nothing."""

    def __getattr__(self, _: str) -> Callable[..., _Unbuilt]:
        return lambda *args, **kwargs: self


def _register_parts(sub: Any) -> None:
    """The subcommands that run a part of the hall: the broker, and those in other packages."""
    from queuehall.broker.main import add_arguments, run

    p = sub.add_parser("broker", help="run the hall server")
    add_arguments(p)
    p.set_defaults(func=run)
    _register_optional(sub)


def _register_commands(sub: Any) -> None:
    """A subcommand for every command of the schema that names one (queuehall/commands.py): its
    required parameters positional, the optional ones ``--options``, as the schema says."""
    from queuehall.commands import CLI_GROUPS, COMMANDS

    groups: dict[str, Any] = {}
    for c in COMMANDS.values():
        if c.cli is None:
            continue
        group, _, name = c.cli.rpartition(" ")
        if group:
            if group not in groups:
                p = sub.add_parser(group, help=CLI_GROUPS[group])
                groups[group] = p.add_subparsers(dest=f"{group}_cmd", required=True)
            p = groups[group].add_parser(name, help=c.cli_help or c.doc)
        else:
            p = sub.add_parser(name, help=c.cli_help or c.doc)
        positional: list[tuple[int, int, str, dict[str, Any]]] = []
        options: list[tuple[str, dict[str, Any]]] = []
        secret_names: list[str] = []
        for i, param in enumerate(c.params):
            if param.cli is False:
                continue
            kw: dict[str, Any] = dict(param.cli) if isinstance(param.cli, dict) else {}
            if kw.pop("secret", False):
                # Asked for, never an argument; one given where the old usage had it is refused (_wire_args).
                secret_names.append(param.name)
                options.append((f"--{param.name.replace('_', '-')}-stdin",
                                {"dest": f"{param.name}_stdin", "action": "store_true",
                                 "help": f"read the {param.name.upper()} from one line of standard input "
                                         "(default: asked for without echo on the terminal)"}))
                positional.append((i, i, param.name, {"nargs": "?", "default": None, "help": argparse.SUPPRESS}))
                continue
            flag = kw.pop("flag", "" if param.required else "--" + param.name.replace("_", "-"))
            position = kw.pop("position", i)
            if param.doc and "help" not in kw:
                kw["help"] = param.doc
            if param.kind is bool:
                kw.setdefault("action", "store_true")
            elif param.kind is int and "action" not in kw:
                kw.setdefault("type", int)
            if flag:
                if param.kind is not bool:
                    kw.setdefault("default", None)
                options.append((flag, {"dest": param.name, **kw}))
            else:
                positional.append((position, i, param.name, kw))
        for _position, _i, name_, kw in sorted(positional, key=lambda s: (s[0], s[1])):
            p.add_argument(name_, **kw)
        for flag, kw in options:
            p.add_argument(flag, **kw)
        _client_args(p)
        names = [param.name for param in c.params if param.cli is not False]
        p.set_defaults(func=_command(c.name, functools.partial(_wire_args, names=names, secrets=secret_names)),
                       **({} if group else {"wire": c.name}))
        if c.name == "check_in":
            # ``checkin`` checks a booking in (预约签到: a 10-character code or the QR's queuehall:booking:CODE)
            # and, as before, a remote ticket (a label or an id): one word for the kiosk's two check-ins.
            p.add_argument("--contact", default=None, help="a booking's mobile or ID number, to match it")
            p.set_defaults(func=_checkin)


def _wire_args(args: argparse.Namespace, *, names: list[str], secrets: Sequence[str] = ()) -> dict[str, Any]:
    """The arguments a subcommand sends: a list an ``append`` option collected as one comma-separated string;
    a secret (``secrets``) read by :func:`_read_secret`, or UsageError when one was given on the command line."""
    out = {}
    for name in names:
        value = getattr(args, name)
        if name in secrets:
            if value is not None:
                raise UsageError(
                    f"a {name.upper()} on the command line is visible to every user of this machine (ps) and stays "
                    f"in the shell's history, so it is refused: leave it out to be asked for it without echo, or "
                    f"give --{name.replace('_', '-')}-stdin and one line on standard input / 密码不能写在命令行上"
                    f"（其他用户可用 ps 看到，且留在命令历史中）：省略它，程序会提示输入（不回显），"
                    f"或用 --{name.replace('_', '-')}-stdin 从标准输入读一行")
            value = _read_secret(name, getattr(args, f"{name}_stdin", False))
        out[name] = ",".join(value) if isinstance(value, list) else value
    return out


def _read_secret(name: str, from_stdin: bool) -> str:
    """A secret from one line of standard input (``from_stdin``) or asked for without echo on the terminal."""
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        # getpass would fall back to reading standard input with echo, with only a warning.
        raise UsageError(f"no terminal to ask for the {name.upper()} on: give --{name.replace('_', '-')}-stdin "
                         f"and one line on standard input / 没有终端可提示输入密码：请用 "
                         f"--{name.replace('_', '-')}-stdin 从标准输入读一行")
    else:
        import getpass

        try:
            value = getpass.getpass(f"密码 / {name.upper()}: ")
        except (EOFError, KeyboardInterrupt):
            raise UsageError(f"no {name.upper()} given / 未输入密码") from None
    if not value:
        raise UsageError(f"an empty {name.upper()} / 密码为空")
    return value


def _register_scripting(sub: Any) -> None:
    """The subcommands a script or a call button runs against the broker, and ``keys``."""
    from queuehall.protocol import ROLES

    p = sub.add_parser("keys", help="create and list CurveZMQ device keys")
    ks = p.add_subparsers(dest="keys_cmd", required=True)
    k = ks.add_parser("init", help="create the broker's key pair")
    k.add_argument("dir")
    k = ks.add_parser("add", help="create a device key and allow it")
    k.add_argument("dir")
    k.add_argument("name")
    k.add_argument("--role", required=True, choices=list(ROLES))
    k.add_argument("--counter", type=int, default=None)
    k = ks.add_parser("remove", help="take a device off the allow-list and delete its secret file")
    k.add_argument("dir")
    k.add_argument("name")
    k = ks.add_parser("list", help="list allowed devices")
    k.add_argument("dir")
    p.set_defaults(func=_keys)

    _register_commands(sub)

    p = sub.add_parser("status", help="the whole hall state as JSON")
    _client_args(p)
    p.set_defaults(func=_status)
    p = sub.add_parser("watch", help="print events as JSON lines as they happen")
    _client_args(p)
    p.add_argument("--count", type=int, default=0, help="stop after this many events (printed ones)")
    p.add_argument("--type", action="append", default=[], metavar="EVENT",
                   help="print only events of this type (e.g. ticket_called); may be repeated")
    p.add_argument("--seconds", type=float, default=0, help="stop after this many seconds")
    p.set_defaults(func=_watch)


def _register_optional(sub: Any) -> None:
    """Subcommands that live in other packages register themselves here when present."""
    import importlib

    for module in ("queuehall.kiosk.main", "queuehall.counter.main", "queuehall.display.main", "queuehall.demo",
                   "queuehall.broker.reports", "queuehall.broker.satisfaction", "queuehall.web.main",
                   "queuehall.web.cli", "queuehall.web.manager_cli", "queuehall.broker.clerks"):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        register = getattr(mod, "register", None)
        if register is not None:
            register(sub)


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns its exit code (argparse exits 2 itself on bad usage).

    Run as the program (``argv`` None), a command that sends one request (all the scripting subcommands but
    ``watch`` and ``keys``) runs without the cycle collector and ends with ``os._exit`` once its output is
    flushed: its garbage is a few objects, and the interpreter's teardown of zmq's and the other modules cost
    about a tenth of a call button's press while freeing nothing the operating system does not."""
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else argv
    # The subcommand is the first word: no option of the top-level parser takes a value.
    named = next((a for a in argv if not a.startswith("-")), None)
    # A call button's press (``queuehall call 3 ...``) builds the parser of its own subcommand only; a word
    # before the subcommand (``-h``) gets the lean parser, and any other part the whole command line.
    parser, lean = _parser(scripting_only=True, only=named if argv[:1] == [named] else None)
    if named not in lean:
        parser = build_parser()
    one_request = as_program and named in lean and named not in ("watch", "keys")
    if one_request:
        gc.disable()
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args) or 0)
        if one_request:
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``queuehall status | head``): not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_OK
    if one_request:
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
