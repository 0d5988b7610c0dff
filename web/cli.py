"""``queuehall web-token`` and ``queuehall web-hook``: API tokens and webhook subscribers of the web gateway.

Both work on the gateway's own state file (``--state PATH``, or ``$QUEUEHALL_WEB_STATE``, default
``web-state.db``), also while the gateway runs: it reads tokens on every request and the
subscribers on every event. They print JSON like the other scripting commands (docs/cli.md) and
exit 0, or 2 on bad usage (the message says what is wrong).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_USAGE = 0, 2


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def _state_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state", default=None,
                   help="the gateway's state: a file, or a postgresql:// URL (default $QUEUEHALL_WEB_STATE or "
                        "./web-state.db)")


def _tokens(args: argparse.Namespace) -> int:
    from queuehall.web.apitokens import TokenError, TokenStore
    from queuehall.web.state import state_path

    store = TokenStore(state_path(args.state))
    try:
        if args.token_cmd == "create":
            token, info = store.create(args.name, args.scope)
            _print({"status": "ok", "token": token, **info.to_dict(),
                    "note": "shown once: store it now (only its hash is kept)"})
        elif args.token_cmd == "list":
            _print({"status": "ok", "tokens": [t.to_dict() for t in store.list(include_revoked=args.all)]})
        else:
            _print({"status": "ok", **store.revoke(args.token).to_dict()})
        return EXIT_OK
    except TokenError as err:
        print(f"queuehall web-token: {err}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.close()


def _hooks(args: argparse.Namespace) -> int:
    from queuehall.web.outbox import Outbox, OutboxError
    from queuehall.web.state import state_path

    if args.hook_cmd == "run":
        from queuehall.web.webhooks import run_standalone

        return run_standalone(args)
    outbox = Outbox(state_path(args.state))
    try:
        if args.hook_cmd == "add":
            sub = outbox.add_subscriber(args.url, args.event, name=args.name, secret=args.secret)
            _print({"status": "ok", **sub.to_dict(), "secret": sub.secret,
                    "note": "the secret signs every delivery (X-Queuehall-Signature); give it to the receiver"})
        elif args.hook_cmd == "list":
            _print({"status": "ok", "subscribers": [dict(s.to_dict(), **outbox.stats(s.id))
                                                    for s in outbox.subscribers(include_removed=args.all)],
                    "cursor": outbox.cursor(), "gaps": outbox.gaps()})
        else:
            _print({"status": "ok", **outbox.remove_subscriber(args.subscriber).to_dict()})
        return EXIT_OK
    except OutboxError as err:
        print(f"queuehall web-hook: {err}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        outbox.close()


def register(sub: Any) -> None:
    """Add ``web-token`` and ``web-hook`` to the ``queuehall`` command."""
    p = sub.add_parser("web-token", help="create, list and revoke REST API tokens of the web gateway")
    ts = p.add_subparsers(dest="token_cmd", required=True)
    t = ts.add_parser("create", help="make a token (printed once)")
    t.add_argument("--name", required=True, help="who or what uses it, e.g. 'wechat-miniprogram'")
    t.add_argument("--scope", action="append", required=True, metavar="SCOPE",
                   help="read, kiosk, counter:N or admin; may be repeated")
    _state_arg(t)
    t = ts.add_parser("list", help="list tokens (never their secrets)")
    t.add_argument("--all", action="store_true", help="include revoked tokens")
    _state_arg(t)
    t = ts.add_parser("revoke", help="revoke a token by id, whole token or name")
    t.add_argument("token")
    _state_arg(t)
    p.set_defaults(func=_tokens)

    p = sub.add_parser("web-hook", help="webhook subscribers of the web gateway, and the delivery worker")
    hs = p.add_subparsers(dest="hook_cmd", required=True)
    h = hs.add_parser("add", help="add a subscriber (its signing secret is printed)")
    h.add_argument("url", help="http(s) URL that receives the POSTs")
    h.add_argument("--event", action="append", default=[], metavar="TYPE",
                   help="an event type to send (e.g. ticket_called), or * for all; may be repeated (default *)")
    h.add_argument("--name", default=None, help="a label for the list")
    h.add_argument("--secret", default=None, help="the signing secret (default: a new random one)")
    _state_arg(h)
    h = hs.add_parser("list", help="subscribers with their queues, the event cursor and any gaps")
    h.add_argument("--all", action="store_true", help="include removed subscribers")
    _state_arg(h)
    h = hs.add_parser("remove", help="remove a subscriber (its undelivered deliveries are dropped)")
    h.add_argument("subscriber", help="its id or name")
    _state_arg(h)
    h = hs.add_parser("run", help="run the delivery worker alone (the web gateway runs it too)")
    h.add_argument("--broker", default=None, help="HOST:PORT of the broker (or $QUEUEHALL_BROKER)")
    h.add_argument("--key", default=None, help="the gateway's .key_secret file (CurveZMQ)")
    h.add_argument("--server-key", default=None, help="the broker's public key file (broker.key)")
    _state_arg(h)
    p.set_defaults(func=_hooks)
