"""``queuehall web-manager add|list|remove``: the supervision page's manager accounts (docs/supervision.md), in
the gateway's state file; passwords as scrypt hashes. Loads nothing of the gateway's server."""

from __future__ import annotations

import getpass
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("web-manager", help="manager accounts of the supervision page (电子监察)")
    ms = p.add_subparsers(dest="manager_cmd", required=True)
    for name, help_ in (("add", "create a manager account (the password is asked for, or read from stdin)"),
                        ("list", "list the accounts"), ("remove", "delete an account")):
        m = ms.add_parser(name, help=help_)
        if name != "list":
            m.add_argument("name")
        if name == "list":
            m.add_argument("--halls", action="store_true", help="each account with the halls it may supervise")
        if name == "add":
            m.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
            m.add_argument("--hall", action="append", default=None, metavar="HALL",
                           help="a hall of a city gateway this manager may supervise (repeatable; default: all)")
        m.add_argument("--state", default=None, help="the gateway's state: a file or a postgresql:// URL "
                                                     "(default $QUEUEHALL_WEB_STATE or ./web-state.db)")
    p.set_defaults(func=_main)


def _main(args: Any) -> int:
    from queuehall.web.state import state_path
    from queuehall.web.supervision import ManagerError, ManagerStore

    store = ManagerStore(state_path(args.state))
    try:
        if args.manager_cmd == "add":
            password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("password: ")
            store.add(args.name, password, args.hall)
            print(json.dumps({"added": args.name, "halls": sorted(args.hall) if args.hall else None}))
        elif args.manager_cmd == "list":
            # The names; with --halls each account with the halls it may supervise (null: every hall).
            print(json.dumps(store.accounts() if args.halls else store.names(), ensure_ascii=False))
        elif not store.remove(args.name):
            print(f"queuehall web-manager: no manager {args.name!r}", file=sys.stderr)
            return 2
        else:
            print(json.dumps({"removed": args.name}))
    except ManagerError as err:
        print(f"queuehall web-manager: {err}", file=sys.stderr)
        return 2
    finally:
        store.close()
    return 0
