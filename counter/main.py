"""``queuehall counter --counter N``: the clerk's counter terminal (PySide6).

It needs no hall configuration: everything, its A/B post clerks included, comes from the broker."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``counter`` subcommand to the ``queuehall`` CLI."""
    p = subparsers.add_parser("counter", help="the clerk's counter terminal (窗口叫号终端)")
    p.add_argument("--counter", type=int, required=True, help="this terminal's counter (window) number")
    p.add_argument("--broker", default=None,
                   help="HOST:PORT of the broker, or a:5555,b:5555 for a primary/standby pair ($QUEUEHALL_BROKER)")
    p.add_argument("--key", default=None, help="this device's .key_secret file (CurveZMQ)")
    p.add_argument("--server-key", default=None, help="the broker's public key file (broker.key)")
    p.add_argument("--windowed", action="store_true", help="run in a window instead of full screen")
    p.add_argument("--lang", choices=["zh", "en"], default="zh", help="screen language (switch with F12)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Start the counter window; returns the Qt exit code (2 on a usage error)."""
    from PySide6.QtWidgets import QApplication
    from queuehall.counter.model import CounterModel
    from queuehall.counter.window import CounterWindow, apply_app_style

    from queuehall.client import Security, parse_endpoint
    from queuehall.qtlink import QtLink

    try:
        parse_endpoint(args.broker)
        security = None
        if args.key or args.server_key:
            if not (args.key and args.server_key):
                raise ValueError("--key and --server-key go together")
            security = Security.from_files(args.key, args.server_key)
    except (ValueError, OSError) as err:
        print(f"queuehall counter: {err}", file=sys.stderr)
        return 2
    if args.counter <= 0:
        print("queuehall counter: --counter must be a positive window number", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    apply_app_style(app)
    link = QtLink(args.broker, role="counter", name=f"counter-{args.counter}", counter=args.counter,
                  security=security)
    # The hall's time from the broker, not the PC's clock (which may be off, and is not the hall's under --sim-start).
    model = CounterModel(args.counter, link.request, link.hall_clock, lang=args.lang)
    window = CounterWindow(link, model)
    window.setWindowTitle(f"queuehall · {args.counter}号窗口 / counter {args.counter}")
    if args.windowed:
        window.resize(1366, 820)
        window.show()
    else:
        from queuehall.qtscreen import show_full_screen

        show_full_screen(window, on_top=False)  # the clerk's PC: the whole screen, other programs may come above
    window.start()
    return int(app.exec())
