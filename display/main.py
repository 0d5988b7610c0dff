"""``queuehall display [--counter N]``: the wall display or a counter's screen; ``queuehall voices build``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from queuehall.display.model import DEFAULT_HIGHLIGHT_SECONDS, DEFAULT_HISTORY, DisplayError, DisplayOptions, parse_size

EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    """Add the ``display`` and ``voices`` subcommands to the ``queuehall`` CLI."""
    p = subparsers.add_parser("display", help="the hall's wall display, or a counter's screen (叫号显示屏)")
    p.add_argument(
        "--counter",
        type=int,
        default=None,
        help="be the small screen above this counter instead of the hall screen",
    )
    p.add_argument("--broker", default=None,
                   help="HOST:PORT of the broker, or a:5555,b:5555 for a primary/standby pair ($QUEUEHALL_BROKER)")
    p.add_argument("--key", default=None, help="this device's .key_secret file (CurveZMQ)")
    p.add_argument("--server-key", default=None, help="the broker's public key file (broker.key)")
    p.add_argument("--windowed", action="store_true", help="run in a window instead of full screen")
    p.add_argument("--size", default=None, help="window size WxH, e.g. 1080x1920 (implies --windowed)")
    p.add_argument(
        "--lang", choices=["zh", "en"], default="zh", help="which language comes first (both shown)"
    )
    p.add_argument("--repeat", type=int, default=1, help="read each call this many times (1-5, default 1)")
    p.add_argument("--volume", type=float, default=1.0, help="announcement volume 0.0-1.0 (default 1.0)")
    p.add_argument("--mute", action="store_true", help="show calls without reading them aloud (M toggles)")
    p.add_argument(
        "--min-display",
        type=float,
        default=5.0,
        help="seconds each announced call keeps the big panel at least (default 5)",
    )
    p.add_argument(
        "--highlight",
        type=float,
        default=DEFAULT_HIGHLIGHT_SECONDS,
        help=f"seconds a new call flashes (default {DEFAULT_HIGHLIGHT_SECONDS:g})",
    )
    p.add_argument(
        "--history",
        type=int,
        default=DEFAULT_HISTORY,
        help=f"earlier calls listed (1-30, default {DEFAULT_HISTORY})",
    )
    p.add_argument("--voice-pack", default=None, help="voice pack folder (default: the shipped pack)")
    p.add_argument("--evaluator", type=float, default=30.0, metavar="SECONDS",
                   help="a counter's screen: how long the 好差评 evaluator stays after a finish (0: none)")
    p.set_defaults(func=run)

    v = subparsers.add_parser("voices", help="voice packs for the announcements (语音包)")
    vs = v.add_subparsers(dest="voices_cmd", required=True)
    b = vs.add_parser("build", help="generate the default voice pack with espeak-ng")
    b.add_argument("--out", default=None, help="output folder (default: voice/voices/default)")
    b.add_argument("--rate", type=int, default=None, help="sample rate in Hz (default 16000)")
    b.set_defaults(func=run_voices_build)


def run_voices_build(args: argparse.Namespace) -> int:
    """``queuehall voices build``: hands over to :func:`voice.pack.main_build`; returns its exit code."""
    from queuehall.voice.pack import main_build

    argv: list[str] = []
    if args.out:
        argv += ["--out", args.out]
    if args.rate is not None:
        argv += ["--rate", str(args.rate)]
    return main_build(argv)


def options_from_args(args: argparse.Namespace) -> DisplayOptions:
    """The display options the command line asks for; raises ``DisplayError`` for an out-of-range value."""
    return DisplayOptions(
        counter=args.counter,
        lang=args.lang,
        repeat=args.repeat,
        volume=args.volume,
        muted=args.mute,
        min_display_seconds=args.min_display,
        highlight_seconds=args.highlight,
        history_size=args.history,
        evaluator_seconds=args.evaluator,
    ).validate()


def _usage(err: DisplayError | Exception) -> int:
    if isinstance(err, DisplayError):
        print(f"queuehall display: {err.code}: {err.message_zh}\n{err.message_en}", file=sys.stderr)
    else:
        print(f"queuehall display: {err}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    """Start the display; returns the Qt exit code, or 2 on a usage error (printed in Chinese and English)."""
    from queuehall.client import Security, parse_endpoint

    try:
        options = options_from_args(args)
        size = parse_size(args.size) if args.size else None
        parse_endpoint(args.broker)
        security = None
        if args.key or args.server_key:
            if not (args.key and args.server_key):
                raise DisplayError(
                    "DISPLAY_BAD_OPTION",
                    "--key 和 --server-key 必须同时给出",
                    "--key and --server-key go together",
                )
            security = Security.from_files(args.key, args.server_key)
    except DisplayError as err:
        return _usage(err)
    except (ValueError, OSError) as err:
        return _usage(err)

    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication
    from queuehall.display.window import DisplayWindow, apply_app_font
    from queuehall.voice.pack import VoiceError, load_pack

    from queuehall.qtlink import QtLink

    pack = None
    if options.counter is None:
        try:
            pack = load_pack(args.voice_pack)
        except VoiceError as err:
            print(f"queuehall display: {err.code}: {err.message_zh}\n{err.message_en}", file=sys.stderr)
            return EXIT_USAGE
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    apply_app_font(app)
    name = "wall" if options.counter is None else f"counter-screen-{options.counter}"
    link = QtLink(args.broker, role="display", name=name, counter=options.counter, security=security)
    window = DisplayWindow(link, options, pack=pack)
    if size is not None:
        window.resize(*size)
        window.show()
    elif args.windowed:
        window.resize(1280, 720) if options.counter is None else window.resize(1024, 400)
        window.show()
    else:
        from queuehall.qtscreen import show_full_screen

        window.setCursor(Qt.CursorShape.BlankCursor)  # a wall screen: no mouse pointer over the calls
        show_full_screen(window, on_top=True)
    window.start()
    return int(app.exec())
