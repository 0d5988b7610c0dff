"""``queuehall kiosk``: the ticket kiosk (取号机) on a touch screen.

Options come from, in increasing precedence: built-in defaults, a kiosk config file
(``--config``, TOML with a ``[kiosk]`` table and an optional ``[printer]`` table of
``kiosk.printing.PrinterConfig`` keys), environment variables, the command line.
docs/kiosk.md lists them all. The kiosk gets its numbers from the broker only; it never
opens the database.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
import tomllib
from dataclasses import dataclass, field
from typing import Any

from queuehall.kiosk.model import (
    KioskConfigError,
    KioskSettings,
    check_language,
    check_pin,
    parse_printer_spec,
)

log = logging.getLogger("queuehall.kiosk")
_T0 = time.monotonic()

ENV = {
    "config": "QUEUEHALL_KIOSK_CONFIG",
    "broker": "QUEUEHALL_BROKER",
    "key": "QUEUEHALL_KEY",
    "server_key": "QUEUEHALL_SERVER_KEY",
    "printer": "QUEUEHALL_PRINTER",
    "print_mode": "QUEUEHALL_PRINT_MODE",
    "paper": "QUEUEHALL_PAPER",
    "lang": "QUEUEHALL_LANG",
    "pin": "QUEUEHALL_KIOSK_PIN",  # refused: a plain PIN (see pin_hash)
    "pin_hash": "QUEUEHALL_KIOSK_PIN_HASH",
    "name": "QUEUEHALL_KIOSK_NAME",
    "state_dir": "QUEUEHALL_KIOSK_STATE_DIR",
}
# [kiosk] keys of the config file -> what they set.
_KIOSK_KEYS = {"broker", "key", "server_key", "name", "printer", "print_mode", "paper", "windowed", "pin_hash",
               "language", "pin", "return_seconds", "message_seconds", "print_failed_seconds", "idle_seconds",
               "status_seconds", "print_materials", "near_end_blocks", "request_timeout", "state_dir", "voice_pack"}
_SECONDS = {"return_seconds": "return_ms", "message_seconds": "message_ms",
            "print_failed_seconds": "print_failed_ms", "idle_seconds": "idle_ms",
            "status_seconds": "status_ms"}


@dataclass
class KioskOptions:
    """Everything the kiosk needs to start, resolved and validated."""

    broker: str | None = None
    key: str | None = None
    server_key: str | None = None
    name: str = "kiosk"
    printer_spec: str = ""
    printer: dict[str, Any] | None = None  # PrinterConfig.from_dict mapping, None = no printer
    windowed: bool = False
    request_timeout: float = 3.0
    state_dir: str | None = None  # where the journal lives (None: kiosk.journal.default_state_dir())
    settings: KioskSettings = field(default_factory=KioskSettings)
    voice_pack: str | None = None  # the spoken guidance's voice pack folder (None: the shipped pack)
    pin_is_default: bool = True  # no staff PIN set: the settings cannot be opened


def _bad(zh: str, en: str, code: str = "KIOSK_BAD_OPTION") -> KioskConfigError:
    return KioskConfigError(code, zh, en)


def read_config_file(path: str) -> dict[str, Any]:
    """Read a kiosk TOML file: ``{"kiosk": {...}, "printer": {...}}``; KioskConfigError when unusable."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as err:
        raise _bad(f"无法读取配置文件 {path}：{err.strerror}", f"cannot read {path}: {err.strerror}",
                   "KIOSK_CONFIG_UNREADABLE") from None
    except tomllib.TOMLDecodeError as err:
        raise _bad(f"配置文件 {path} 格式错误：{err}", f"{path} is not valid TOML: {err}",
                   "KIOSK_CONFIG_SYNTAX") from None
    unknown = set(data) - {"kiosk", "printer"}
    if unknown:
        raise _bad(f"{path}：未知的表 {', '.join(sorted(unknown))}（只允许 [kiosk] 和 [printer]）",
                   f"{path}: unknown tables {', '.join(sorted(unknown))} (only [kiosk] and [printer])",
                   "KIOSK_CONFIG_UNKNOWN_KEY")
    kiosk = data.get("kiosk", {})
    printer = data.get("printer", {})
    if not isinstance(kiosk, dict) or not isinstance(printer, dict):
        raise _bad(f"{path}：[kiosk] 和 [printer] 必须是表", f"{path}: [kiosk] and [printer] must be tables")
    unknown = set(kiosk) - _KIOSK_KEYS
    if unknown:
        raise _bad(f"{path}：[kiosk] 中有未知的键 {', '.join(sorted(unknown))}",
                   f"{path}: unknown keys in [kiosk]: {', '.join(sorted(unknown))}",
                   "KIOSK_CONFIG_UNKNOWN_KEY")
    return {"kiosk": kiosk, "printer": printer}


def resolve_options(args: argparse.Namespace, environ: dict[str, str] | None = None) -> KioskOptions:
    """Merge defaults, the config file, the environment and the command line into KioskOptions.

    Raises KioskConfigError (stable code, Chinese and English) for anything invalid.
    """
    env = dict(os.environ if environ is None else environ)

    def pick(arg: str, file_key: str | None = None) -> Any:
        value = getattr(args, arg, None)
        if value is not None:
            return value
        if arg in ENV and env.get(ENV[arg]):
            return env[ENV[arg]]
        return kiosk.get(file_key or arg)

    config_path = args.config or env.get(ENV["config"])
    data = read_config_file(config_path) if config_path else {"kiosk": {}, "printer": {}}
    kiosk: dict[str, Any] = data["kiosk"]
    opts = KioskOptions()
    opts.broker = pick("broker")
    if opts.broker is not None:
        from queuehall.client import parse_endpoint

        try:
            parse_endpoint(str(opts.broker))
        except ValueError:
            raise _bad(f"叫号服务器地址“{opts.broker}”无效，应为 主机:端口（多个以逗号分隔）",
                       f"broker address {opts.broker!r} is invalid: expected HOST:PORT (several separated by commas)",
                       "KIOSK_BAD_BROKER") from None
    opts.key = pick("key")
    opts.server_key = pick("server_key")
    if bool(opts.key) != bool(opts.server_key):
        raise _bad("--key 与 --server-key 须同时给出", "--key and --server-key go together")
    opts.name = str(pick("name") or "kiosk")
    state_dir = pick("state_dir")
    if state_dir is not None and (not isinstance(state_dir, str) or not state_dir.strip()):
        raise _bad("state_dir 须为目录路径", "state_dir must be a directory path")
    opts.state_dir = state_dir
    voice_pack = kiosk.get("voice_pack")
    if voice_pack is not None and (not isinstance(voice_pack, str) or not voice_pack.strip()):
        raise _bad("[kiosk] voice_pack 须为语音包目录路径", "[kiosk] voice_pack must be a voice pack folder")
    opts.voice_pack = voice_pack
    if not isinstance(kiosk.get("windowed", False), bool):
        raise _bad("[kiosk] windowed 须为 true 或 false", "[kiosk] windowed must be true or false")
    opts.windowed = bool(args.windowed or kiosk.get("windowed", False))
    timeout = pick("request_timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0.2 <= timeout <= 60:
            raise _bad("request_timeout 须为 0.2–60 秒",
                       f"request_timeout must be 0.2-60 seconds: {timeout!r}")
        opts.request_timeout = float(timeout)

    settings: dict[str, Any] = {}
    lang = pick("lang", "language")
    if lang is not None:
        settings["language"] = check_language(str(lang))
    if pick("pin") is not None:
        raise KioskConfigError("KIOSK_PLAIN_PIN", "不再接受明文设置密码：请用 queuehall kiosk-pin 生成 pin_hash",
                               "a plain settings PIN is not accepted: make a pin_hash with queuehall kiosk-pin")
    pin_hash = pick("pin_hash")
    if pin_hash is not None:
        settings["pin_hash"] = str(pin_hash).strip()
    opts.pin_is_default = not settings.get("pin_hash")
    for key, target in _SECONDS.items():
        if key in kiosk:
            value = kiosk[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise _bad(f"[kiosk] {key} 须为正数（秒）",
                           f"[kiosk] {key} must be a positive number of seconds")
            settings[target] = round(value * 1000)
    for key in ("print_materials", "near_end_blocks"):
        if key in kiosk:
            if not isinstance(kiosk[key], bool):
                raise _bad(f"[kiosk] {key} 须为 true 或 false", f"[kiosk] {key} must be true or false")
            settings[key] = kiosk[key]
    opts.settings = KioskSettings(**settings)

    printer: dict[str, Any] = dict(data["printer"])
    spec = pick("printer")
    if spec:
        located = parse_printer_spec(str(spec))
        if printer.get("backend") not in (None, located["backend"]):
            printer = {k: v for k, v in printer.items()
                       if k in ("mode", "paper_mm", "profile", "timeout", "status_timeout", "check_status")}
        printer.update(located)
        opts.printer_spec = str(spec)
    mode = pick("print_mode")
    if mode is not None:
        if mode not in ("raster", "text"):
            raise _bad(f"打印方式只能是 raster 或 text：{mode!r}",
                       f"--print-mode must be raster or text: {mode!r}")
        printer["mode"] = mode
    paper = pick("paper")
    if paper is not None:
        if str(paper) not in ("58", "80"):
            raise _bad(f"纸宽只能是 58 或 80：{paper!r}", f"--paper must be 58 or 80: {paper!r}")
        printer["paper_mm"] = int(paper)
    if printer.get("backend"):
        opts.printer = printer
        if not opts.printer_spec:
            opts.printer_spec = _spec_of(printer)
    return opts


def _spec_of(p: dict[str, Any]) -> str:
    """The ``--printer`` form of a [printer] table (shown in the settings)."""
    b = p.get("backend")
    if b == "file":
        return f"file:{p.get('path', '')}"
    if b == "network":
        return f"network:{p.get('host', '')}:{p.get('port', 9100)}"
    if b == "usb":
        ids = [p.get(k, 0) for k in ("usb_vendor_id", "usb_product_id")]
        vid, pid = (int(v, 0) if isinstance(v, str) else int(v or 0) for v in ids)
        return f"usb:{vid:04x}:{pid:04x}"
    if b == "serial":
        return f"serial:{p.get('serial_device', '')}"
    return f"cups:{p.get('cups_printer') or ''}"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The kiosk's command-line options (each also readable from the environment, see docs/kiosk.md)."""
    p.add_argument("--config", default=None, help="kiosk config file, TOML with [kiosk] and [printer] "
                   "($QUEUEHALL_KIOSK_CONFIG)")
    p.add_argument("--broker", default=None,
                   help="HOST:PORT of the broker, or a:5555,b:5555 for a primary/standby pair ($QUEUEHALL_BROKER)")
    p.add_argument("--key", default=None, help="this kiosk's .key_secret file for CurveZMQ ($QUEUEHALL_KEY)")
    p.add_argument("--server-key", dest="server_key", default=None,
                   help="the broker's public key file ($QUEUEHALL_SERVER_KEY)")
    p.add_argument("--name", default=None, help="device name shown to staff ($QUEUEHALL_KIOSK_NAME)")
    p.add_argument("--printer", default=None, help="file:PATH | network:HOST[:PORT] | usb:VID:PID | "
                   "serial:DEV[@BAUD] | cups:NAME ($QUEUEHALL_PRINTER)")
    p.add_argument("--print-mode", dest="print_mode", default=None, choices=["raster", "text"],
                   help="raster (default: the ticket as an image) or text (printer fonts) "
                   "($QUEUEHALL_PRINT_MODE)")
    p.add_argument("--paper", default=None, choices=["58", "80"], help="paper width in mm, default 80 "
                   "($QUEUEHALL_PAPER)")
    p.add_argument("--windowed", action="store_true", help="a normal window instead of full screen")
    p.add_argument("--lang", default=None, choices=["zh", "en"], help="default language ($QUEUEHALL_LANG)")
    p.add_argument("--pin-hash", dest="pin_hash", default=None,
                   help="the staff settings PIN as made by 'queuehall kiosk-pin' (an scrypt hash; "
                   "$QUEUEHALL_KIOSK_PIN_HASH or [kiosk] pin_hash); without one the settings stay shut")
    p.add_argument("--state-dir", dest="state_dir", default=None,
                   help="directory for the kiosk's journal: its client id and unsettled ticket requests "
                   "(default ~/.local/state/queuehall, %%LOCALAPPDATA%%\\queuehall on Windows; "
                   "$QUEUEHALL_KIOSK_STATE_DIR)")
    p.add_argument("--request-timeout", dest="request_timeout", type=float, default=None,
                   help="seconds to wait for the broker's answer to a ticket request (default 3)")


def register(subparsers: Any) -> None:
    """Add ``queuehall kiosk`` to the queuehall CLI."""
    p = subparsers.add_parser("kiosk", help="run the ticket kiosk (touch screen)")
    add_arguments(p)
    p.set_defaults(func=run)
    h = subparsers.add_parser("kiosk-pin", help="make the kiosk's staff PIN hash (asked twice, never on argv)")
    h.add_argument("--stdin", action="store_true", help="read the PIN from one line of standard input")
    h.set_defaults(func=run_pin)


def run_pin(args: argparse.Namespace) -> int:
    """Ask for a staff PIN (twice, without echo) and print the ``pin_hash`` line for the kiosk's config file.

    Only the salted scrypt hash is ever written down; the kiosk checks a typed PIN against it."""
    import getpass

    from queuehall.pins import hash_pin

    if args.stdin:
        pin = sys.stdin.readline().strip()
    else:
        pin = getpass.getpass("新的管理密码 / new staff PIN: ")
        if getpass.getpass("再输入一次 / again: ") != pin:
            print("queuehall kiosk-pin: KIOSK_PIN_MISMATCH: 两次输入不一致 / the two PINs differ", file=sys.stderr)
            return 2
    try:
        check_pin(pin)
    except KioskConfigError as err:
        print(f"queuehall kiosk-pin: {err.code}: {err.zh} / {err.en}", file=sys.stderr)
        return 2
    print(f'pin_hash = "{hash_pin(pin)}"')
    return 0


def run(args: argparse.Namespace) -> int:
    """Start the kiosk and run until it is quit from the settings or terminated (SIGTERM/SIGINT)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        opts = resolve_options(args)
    except KioskConfigError as err:
        print(f"queuehall kiosk: {err.code}: {err.en} / {err.zh}", file=sys.stderr)
        return 2
    from pathlib import Path

    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtWidgets import QApplication
    from queuehall.kiosk.journal import KioskJournal, default_state_dir, journal_path
    from queuehall.kiosk.model import KioskModel
    from queuehall.kiosk.printing import PrinterConfig, PrinterError
    from queuehall.kiosk.window import KioskWindow, PrintService, setup_app_font, warm_up_fonts

    from queuehall.client import Security, parse_endpoints
    from queuehall.qtlink import QtLink
    from queuehall.qtscreen import show_full_screen

    try:
        brokers = ",".join(f"{h}:{p}" for h, p in parse_endpoints(opts.broker))
        printer_config = PrinterConfig.from_dict(opts.printer) if opts.printer else None
    except PrinterError as err:
        print(f"queuehall kiosk: {err.code}: {err.en} / {err.zh}", file=sys.stderr)
        return 2
    try:
        security = Security.from_files(opts.key, opts.server_key) if opts.key and opts.server_key else None
    except (ValueError, OSError) as err:
        print(f"queuehall kiosk: KIOSK_BAD_KEY: cannot use the CurveZMQ key files ({err}) / "
              f"无法使用 CurveZMQ 密钥文件（{err}）", file=sys.stderr)
        return 2
    if opts.pin_is_default:
        log.warning("no staff PIN is set: the settings cannot be opened until one is "
                    "(queuehall kiosk-pin, then [kiosk] pin_hash)")
    if printer_config is None:
        log.warning("no printer configured (--printer): the kiosk shows 'out of service'")

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("queuehall-kiosk")
    setup_app_font(app)
    warm_up_fonts()
    # The journal first: its client id is the one the link sends under, the same after every restart.
    journal = KioskJournal(journal_path(Path(opts.state_dir) if opts.state_dir else default_state_dir(), opts.name),
                           opts.name)
    log.info("journal %s, client id %s", journal.path, journal.client_id)
    link = QtLink(brokers, role="kiosk", name=opts.name, security=security,
                  request_timeout=opts.request_timeout, client_id=journal.client_id)
    printer = PrintService(printer_config)
    window = KioskWindow(link, printer, KioskModel(settings=opts.settings), printer_spec=opts.printer_spec,
                         broker_label=brokers + (" (CurveZMQ)" if security else ""), journal=journal,
                         name=opts.name, voice_pack=opts.voice_pack)
    window.ready.connect(lambda: log.info("kiosk ready in %.0f ms", (time.monotonic() - _T0) * 1000))

    def terminate(*_: Any) -> None:
        window.allow_close = True
        app.quit()
        # A SIGTERM before app.exec() starts (the demo killed while this kiosk starts up: its PR_SET_PDEATHSIG)
        # would make quit() a no-op and leave the kiosk running: the queued quit ends the loop as it starts.
        QTimer.singleShot(0, app.quit)

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, terminate)
    wake = QTimer()  # lets Python run the signal handlers while Qt's loop sleeps
    wake.start(250)
    wake.timeout.connect(lambda: None)
    if opts.windowed:
        window.allow_close = True  # a development or demo window, not a kiosk: its close button works
        window.resize(1280, 720)
        window.show()
    else:
        app.setOverrideCursor(Qt.CursorShape.BlankCursor)  # a touch screen: no mouse pointer
        show_full_screen(window, on_top=True)  # the whole screen, on top, with or without a window manager
    window.start()
    log.info("kiosk %s: broker %s, printer %s", opts.name, brokers, opts.printer_spec or "none")
    try:
        code = app.exec()
    finally:
        window.shutdown()
    return int(code)


def main(argv: list[str] | None = None) -> int:
    """``python -m queuehall.kiosk.main``: the same as ``queuehall kiosk``."""
    parser = argparse.ArgumentParser(prog="queuehall kiosk", description="the ticket kiosk (取号机)")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())


