"""The kiosk's view-model: what the touch screen shows and what a tap does, without Qt.

:class:`KioskModel` holds the hall state mirrored from the broker, the connection and
printer health, the citizen's current step and the staff settings. The widgets
(``kiosk.window``) render :attr:`KioskModel.screen` and forward taps; every method that
needs the outside world (broker, printer) returns an *action* for the window to carry out
and is told the outcome later. That keeps the rules testable without widgets:

* issuing goes CHECKING (printer status) -> REQUESTING (``take_ticket``) -> PRINTING ->
  CONFIRMATION; while one ticket is in flight another tap does nothing (one ticket);
* a ticket whose printing failed is printed once more; if that fails too the ticket keeps its
  place in the queue: the citizen sees the number large, with where to go (the hall's help
  counter), the kiosk raises a printer-fault alert (:class:`ReportFault`) and issuing stops
  until the printer reports ready again;
* the screen follows from the state: out of service (broker or printer unavailable),
  ask staff (paper out / near end / cover open / after a failed print), closed (no service
  is issuing), else the citizen's step.

Nothing here imports Qt, zmq or SQLAlchemy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from queuehall.connection import LinkStatus
from queuehall.errors import QueuehallError
from queuehall.payloads import NO_TICKET, Ticket, decode_ticket
from queuehall.pins import parse_hash, verify_pin
from queuehall.protocol import parse_time
from queuehall.text import EMPTY, Bi  # the one bilingual text type (re-exported: the kiosk views import it from here)

LANGUAGES = ("zh", "en")
PIN_MAX_FAILURES = 5
PIN_LOCKOUT_SECONDS = 60
PRINT_ATTEMPTS = 2  # the first print and one retry; then the printer-fault alert

# Printer status codes (kiosk.printing) that a member of staff can fix on the spot.
STAFF_CODES = frozenset({"PAPER_OUT", "COVER_OPEN", "PAPER_NEAR_END"})
NO_PRINTER = "NO_PRINTER"


class Screen(StrEnum):
    """The page the kiosk shows."""

    START = "start"
    DETAILS = "details"
    CONFIRMATION = "confirmation"
    MESSAGE = "message"
    CLOSED = "closed"
    OUT_OF_SERVICE = "out_of_service"
    ASK_STAFF = "ask_staff"
    PRINT_FAILED = "print_failed"
    PIN = "pin"
    SETTINGS = "settings"
    CHECKIN = "checkin"  # the booking-code keypad, and "checking you in…" (kiosk/checkin_view.py)
    CHECKED_IN = "checked_in"  # a booking or remote ticket checked in
    CHECKIN_REFUSED = "checkin_refused"  # a check-in refused, with what to do


class Phase(StrEnum):
    """The citizen's step (the screen may override it, e.g. when the broker is gone)."""

    START = "start"
    DETAILS = "details"
    CHECKING = "checking"  # asking the printer before issuing
    REQUESTING = "requesting"  # take_ticket sent, no reply yet
    PRINTING = "printing"
    CONFIRMATION = "confirmation"
    MESSAGE = "message"  # the broker refused or did not answer
    PRINT_FAILED = "print_failed"
    CHECKIN = "checkin"  # the keypad is open
    CHECKIN_PRINTER = "checkin_printer"  # asking the printer before checking a booking in
    CHECKIN_SENT = "checkin_sent"  # checkin / ticket_by_token / check_in sent, no reply yet
    CHECKED_IN = "checked_in"  # a remote ticket checked in (nothing printed: the phone holds the ticket)
    CHECKIN_REFUSED = "checkin_refused"


BUSY_PHASES = frozenset({Phase.CHECKING, Phase.REQUESTING, Phase.PRINTING, Phase.CHECKIN_PRINTER,
                         Phase.CHECKIN_SENT})
CHECKIN_PHASES = frozenset({Phase.CHECKIN, Phase.CHECKIN_PRINTER, Phase.CHECKIN_SENT, Phase.CHECKED_IN,
                            Phase.CHECKIN_REFUSED})


class KioskConfigError(QueuehallError, ValueError):
    """A bad kiosk option (printer spec, language, PIN …): stable ``code`` plus Chinese and English."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(code, zh, en)


# --------------------------------------------------------------------------------------------------
# Options


def parse_printer_spec(spec: str) -> dict[str, Any]:
    """Turn ``--printer`` into a ``kiosk.printing.PrinterConfig.from_dict`` mapping.

    Accepted: ``file:PATH`` (a file to append to, or a directory for one file per ticket),
    ``network:HOST[:PORT]`` (port 9100 by default; IPv6 as ``[::1]:9100``), ``usb:VID:PID``
    (hexadecimal as ``lsusb`` prints them, e.g. ``usb:0416:5011``), ``serial:DEV[@BAUD]`` and
    ``cups:NAME`` (``cups:`` alone is the CUPS default printer). Anything else raises
    :class:`KioskConfigError` with code ``KIOSK_BAD_PRINTER``.
    """

    def bad(zh: str, en: str) -> KioskConfigError:
        return KioskConfigError("KIOSK_BAD_PRINTER", f"打印机设置“{spec}”无效：{zh}",
                                f"printer {spec!r} is invalid: {en}")

    if not isinstance(spec, str) or ":" not in spec:
        raise bad("格式应为 file:路径、network:主机[:端口]、usb:VID:PID、serial:设备 或 cups:名称",
                  "expected file:PATH, network:HOST[:PORT], usb:VID:PID, serial:DEV or cups:NAME")
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    rest = rest.strip()
    if kind == "file":
        if not rest:
            raise bad("缺少文件路径", "the file path is missing")
        return {"backend": "file", "path": rest}
    if kind == "network":
        host, port = rest, 9100
        if rest.startswith("["):  # [IPv6]:port
            close = rest.find("]")
            if close < 0:
                raise bad("IPv6 地址缺少“]”", "the IPv6 address lacks ']'")
            host, tail = rest[1:close], rest[close + 1:]
            if tail:
                if not tail.startswith(":"):
                    raise bad("地址后只能跟“:端口”", "only ':PORT' may follow the address")
                port = _port(tail[1:], bad)
        elif rest.count(":") == 1:
            host, _, p = rest.partition(":")
            port = _port(p, bad)
        if not host:
            raise bad("缺少打印机地址", "the printer's host is missing")
        return {"backend": "network", "host": host, "port": port}
    if kind == "usb":
        parts = rest.split(":")
        if len(parts) != 2:
            raise bad("USB 打印机写作 usb:VID:PID，如 usb:0416:5011", "write usb:VID:PID, e.g. usb:0416:5011")
        ids = []
        for p in parts:
            try:
                value = int(p, 16)
            except ValueError:
                raise bad(f"“{p}”不是十六进制数", f"{p!r} is not a hexadecimal number") from None
            if not 0 < value <= 0xFFFF:
                raise bad(f"“{p}”超出 0001–FFFF", f"{p!r} is outside 0001-FFFF")
            ids.append(value)
        return {"backend": "usb", "usb_vendor_id": ids[0], "usb_product_id": ids[1]}
    if kind == "serial":
        device, _, baud = rest.partition("@")
        if not device:
            raise bad("缺少串口设备，如 serial:/dev/ttyUSB0",
                      "the serial device is missing, e.g. serial:/dev/ttyUSB0")
        out: dict[str, Any] = {"backend": "serial", "serial_device": device}
        if baud:
            if not baud.isdigit():
                raise bad(f"波特率“{baud}”不是整数", f"baud rate {baud!r} is not a whole number")
            out["baudrate"] = int(baud)
        return out
    if kind == "cups":
        return {"backend": "cups", "cups_printer": rest or None}
    raise bad(f"未知的打印机类型“{kind}”", f"unknown printer kind {kind!r}")


def _port(text: str, bad: Callable[[str, str], KioskConfigError]) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise bad(f"端口“{text}”应为 1–65535", f"port {text!r} must be 1-65535")
    return int(text)


def check_language(lang: str) -> str:
    """Return ``lang`` if it is "zh" or "en"; else raise KioskConfigError (KIOSK_BAD_LANGUAGE)."""
    if lang not in LANGUAGES:
        raise KioskConfigError("KIOSK_BAD_LANGUAGE", f"语言只能是 zh 或 en：{lang!r}",
                               f"language must be zh or en: {lang!r}")
    return lang


def check_pin(pin: str) -> str:
    """Return ``pin`` if it is 4–12 ASCII digits; else raise KioskConfigError (KIOSK_BAD_PIN)."""
    if not (isinstance(pin, str) and pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 12):
        raise KioskConfigError("KIOSK_BAD_PIN", "设置密码须为 4–12 位数字",
                               "the settings PIN must be 4-12 digits")
    return pin


@dataclass
class KioskSettings:
    """Behaviour a hall may tune (kiosk config file / command line). Times are milliseconds.

    ``return_ms``: how long the confirmation stays before the start screen comes back;
    ``message_ms``: the same for refusals; ``print_failed_ms``: the same for the print-failure
    notice, which shows the citizen's number (long enough to write it down); ``idle_ms``: an
    abandoned details page (or the settings) returns to the start; ``status_ms``: how often
    the printer is asked for its status while idle. ``print_materials`` prints the required
    materials (一次性告知) on the ticket.
    """

    pin_hash: str = ""  # the staff PIN as an scrypt hash (queuehall kiosk-pin); empty: none set, no settings
    language: str = "zh"
    return_ms: int = 10_000
    message_ms: int = 8_000
    print_failed_ms: int = 60_000  # long enough to note or photograph the number
    idle_ms: int = 60_000
    status_ms: int = 5_000
    print_materials: bool = True
    near_end_blocks: bool = True
    # Staff muted the spoken guidance (the settings' switch): silence, whatever the hall's [kiosk] says.
    voice_muted: bool = False

    def __post_init__(self) -> None:
        if self.pin_hash:
            try:
                parse_hash(self.pin_hash)
            except ValueError:
                raise KioskConfigError("KIOSK_BAD_PIN_HASH", "pin_hash 不是 queuehall kiosk-pin 生成的密码散列",
                                       "pin_hash is not a hash made by queuehall kiosk-pin") from None
        check_language(self.language)
        for name in ("return_ms", "message_ms", "print_failed_ms", "idle_ms", "status_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3_600_000:
                raise KioskConfigError("KIOSK_BAD_OPTION", f"{name} 须为 1–3600000 毫秒",
                                       f"{name} must be 1-3600000 milliseconds: {value!r}")


# --------------------------------------------------------------------------------------------------
# Texts


GREETING = Bi("您好，欢迎光临！", "Welcome!")
CHOOSE = Bi("请选择您要办理的业务", "Please choose the service you need")
UNAVAILABLE = Bi("服务器暂时没有响应，未能取号，请稍后再试",
                 "The ticket server did not answer, so no ticket was issued. Please try again.")
PRINT_FAILED = Bi("号票未能打印", "Your ticket could not be printed")
YOUR_NUMBER = Bi("您的号码", "Your number")  # above the big number (confirmation, print failure, check-in)
DONE = Bi("完成", "Done")


def back_countdown(seconds_left: int) -> Bi:
    """The line under a page that returns to the start page by itself."""
    return Bi(f"{seconds_left} 秒后自动返回首页", f"Back to the start in {seconds_left} s")

NUMBER_KEPT = Bi("您的号码已保留，排队顺序不变。请记下或拍下号码。",
                 "Your number is kept, with your place in the queue. Please write it down or take a photo.")
ASK_STAFF = Bi("请联系工作人员", "Please ask staff")
OUT_OF_SERVICE = Bi("暂停服务", "Out of service")
BROKER_DOWN = Bi("无法连接叫号服务器，工作人员正在处理", "Cannot reach the ticket server; staff are on it")
CONNECTING = Bi("正在连接叫号服务器……", "Connecting to the ticket server…")
FAREWELL = Bi("请取走号票，留意叫号。祝您办事顺利！", "Please take your ticket and watch for your number. "
              "Thank you!")
_WEEKDAYS_ZH = "一二三四五六日"
_WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_STATE_REASONS: dict[str, Bi] = {
    "break": Bi("午间休息", "Lunch break"),
    "closed": Bi("非办公时间", "Outside opening hours"),
    "past_cutoff": Bi("今日已停止取号", "No more tickets today"),
    "daily_cap": Bi("今日号票已发完", "Today's tickets are all taken"),
}


# What a citizen reads about a printer problem; the printer's own (technical) message goes to staff.
PRINTER_REASONS: dict[str, Bi] = {
    "PAPER_OUT": Bi("号票打印纸已用完", "The ticket printer is out of paper"),
    "PAPER_NEAR_END": Bi("号票打印纸即将用完", "The ticket paper is nearly used up"),
    "COVER_OPEN": Bi("号票打印机的纸仓盖未合上", "The ticket printer's cover is open"),
    "PRINTER_OFFLINE": Bi("号票打印机未连接", "The ticket printer is not connected"),
    "PRINTER_IO": Bi("号票打印机出现故障", "The ticket printer has a fault"),
    "PRINTER_CONFIG": Bi("号票打印机设置有误", "The ticket printer is not set up correctly"),
    NO_PRINTER: Bi("本机未设置号票打印机", "No ticket printer is set up on this kiosk"),
    "PRINTER_UNKNOWN": Bi("正在检查号票打印机……", "Checking the ticket printer…"),
}
PRINTER_FAULT = Bi("号票打印机暂时无法使用", "The ticket printer cannot be used right now")


def printer_reason(code: str | None) -> Bi:
    """The citizen-facing sentence for a printer (or ticket layout) problem code."""
    if code is None:
        return Bi("", "")
    if code.startswith("TICKET_"):
        return Bi("号票内容无法生成", "The ticket could not be laid out")
    return PRINTER_REASONS.get(code, PRINTER_FAULT)


def timezone_of(state: Mapping[str, Any]) -> ZoneInfo:
    """The hall's time zone from ``state["timezone"]`` (Asia/Shanghai when missing or unknown)."""
    try:
        return ZoneInfo(str(state.get("timezone") or "Asia/Shanghai"))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def local_when(at: datetime, now: datetime, tz: ZoneInfo) -> Bi:
    """``at`` as the hall reads it: "今天 13:30" / "明天 08:30" / "11月26日（周四）08:30"."""
    local = at.astimezone(tz)
    today = now.astimezone(tz).date()
    hm = local.strftime("%H:%M")
    if local.date() == today:
        return Bi(f"今天 {hm}", f"today {hm}")
    if local.date() == today + timedelta(days=1):
        return Bi(f"明天 {hm}", f"tomorrow {hm}")
    d: date = local.date()
    return Bi(f"{d.month}月{d.day}日（周{_WEEKDAYS_ZH[d.weekday()]}）{hm}",
              f"{_WEEKDAYS_EN[d.weekday()]} {d.day} {_MONTHS_EN[d.month - 1]} {hm}")


def wait_text(minutes: int) -> Bi:
    """The estimated wait as shown on buttons."""
    if minutes <= 0:
        return Bi("无需等候", "no wait")
    return Bi(f"约 {minutes} 分钟", f"about {minutes} min")


def promised_text(days: int | None) -> Bi | None:
    """The promised completion time (限时办结), or None when unknown."""
    if days is None:
        return None
    if days == 0:
        return Bi("即办件：材料齐全当场办结", "Done on the spot when your documents are complete")
    unit = "working day" if days == 1 else "working days"
    return Bi(f"承诺 {days} 个工作日内办结", f"Completed within {days} {unit}")


# --------------------------------------------------------------------------------------------------
# Cards and health


@dataclass(frozen=True)
class ServiceCard:
    """One service button: names, queue, estimate, and whether it issues now (and why not)."""

    code: str
    name: Bi
    department: str
    waiting: int
    wait_minutes: int
    open: bool
    reason: Bi | None
    materials: tuple[Bi, ...]
    promised: Bi | None
    priority_classes: tuple[str, ...]
    description: Bi | None = None  # hall.toml's description: fees, eligibility (一次性告知)
    wait: Bi = field(default_factory=lambda: Bi("无需等候", "no wait"))  # the estimate as shown
    wait_note: Bi | None = None  # a warning about the estimate: past the session's end, no open counter
    staffed: bool | None = None  # whether an open counter serves it (None: the state does not say)


@dataclass(frozen=True)
class DepartmentCard:
    """One department button: name, people waiting in all its services, services issuing now."""

    code: str
    name: Bi
    waiting: int
    services: int
    open_services: int


@dataclass(frozen=True)
class PrinterHealth:
    """The printer as the kiosk judges it. ``code`` None = ready; ``staff`` = fixable on the spot."""

    code: str | None
    message: Bi = EMPTY  # the printer module's own words: technical, for staff
    near_end: bool = False

    @property
    def ready(self) -> bool:
        return self.code is None

    @property
    def reason(self) -> Bi:
        """What the citizen is told."""
        return printer_reason(self.code)

    @property
    def staff(self) -> bool:
        return self.code in STAFF_CODES

    @classmethod
    def from_status(cls, status: Any, near_end_blocks: bool = True) -> PrinterHealth:
        """From a ``kiosk.printing.PrinterStatus`` (duck-typed: error_code, error_zh, error_en,
        paper_near_end). Near end of paper counts as a problem when ``near_end_blocks``."""
        code = getattr(status, "error_code", None)
        near_end = bool(getattr(status, "paper_near_end", False))
        if code is not None:
            return cls(code, Bi(str(status.error_zh or code), str(status.error_en or code)), near_end)
        if near_end and near_end_blocks:
            return cls("PAPER_NEAR_END", Bi("打印纸将尽（纸将尽传感器），请更换纸卷",
                                            "paper near end (sensor): change the roll"), True)
        return cls(None, near_end=near_end)

    @classmethod
    def from_error(cls, code: str, zh: str, en: str) -> PrinterHealth:
        """From a PrinterError (or any code with its two messages)."""
        return cls(code, Bi(zh, en))


UNKNOWN_PRINTER = PrinterHealth("PRINTER_UNKNOWN", Bi("正在检查打印机……", "Checking the printer…"))
NO_STAFF_PIN = Bi("未设置管理密码：安装时请用 queuehall kiosk-pin 设置",
                  "No staff PIN is set: set one at installation with queuehall kiosk-pin")
NO_PRINTER_HEALTH = PrinterHealth(NO_PRINTER, Bi("未配置号票打印机（--printer）",
                                                 "No ticket printer is configured (--printer)"))


# --------------------------------------------------------------------------------------------------
# Actions the window carries out


@dataclass(frozen=True)
class CheckPrinter:
    """Ask the printer for its status, then call :meth:`KioskModel.on_precheck`."""


@dataclass(frozen=True)
class TakeTicket:
    """Send ``take_ticket``, then call :meth:`KioskModel.on_take_reply` with the reply."""

    service: str
    priority: str | None


@dataclass(frozen=True)
class PrintTicket:
    """Print ``TicketContent(**fields)``, then call :meth:`KioskModel.on_print_result`."""

    fields: dict[str, Any]
    attempt: int


@dataclass(frozen=True)
class ReportFault:
    """Printing ``ticket`` (id) failed for good: raise the printer-fault alert at the broker
    (``printer_fault``) so staff know the number was not printed. The ticket stays in the queue."""

    ticket: str
    label: str
    code: str


@dataclass(frozen=True)
class CheckIn:
    """Send ``checkin {code}`` (a booking), then call :meth:`KioskModel.on_checkin_reply` with the reply."""

    code: str


@dataclass(frozen=True)
class CheckInTicket:
    """Check a remote ticket in: ``ticket_by_token {token}`` first when only the page token is known, then
    ``check_in {ticket: id}``; then call :meth:`KioskModel.on_ticket_checkin_reply` with the reply."""

    token: str | None
    id: int | None


Action = CheckPrinter | TakeTicket | PrintTicket | ReportFault | CheckIn | CheckInTicket


@dataclass
class Issued:
    """The ticket being printed or just printed."""

    ticket: dict[str, Any]
    ahead: int
    wait_minutes: int
    fields: dict[str, Any]
    attempts: int = 0
    error: tuple[str, Bi] | None = None  # (code, the printer's message) of the last failure
    url: str | None = None  # the ticket page's address from the take reply (docs/web.md), for the QR code
    booking: dict[str, Any] | None = None  # the booking this ticket was printed for (check-in), else None
    late: bool = False  # checked in too late for the appointment: a normal ticket

    @property
    def record(self) -> Ticket:
        """``ticket`` (the record as the broker sent it, which the kiosk's journal keeps) decoded."""
        return decode_ticket(self.ticket) or NO_TICKET


@dataclass
class Message:
    """A refusal or failure shown to the citizen."""

    title: Bi
    body: Bi
    code: str = ""


def system_now() -> datetime:
    """This PC's time: only until the window connects the model to the broker's hall clock."""
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------------
# The model


@dataclass
class KioskModel:
    """The kiosk's state and rules. Call the ``on_*`` methods with what happened; render ``screen``.

    ``clock`` returns an aware UTC datetime: the hall's time from the broker (the window gives a model
    left at the default :func:`system_now` its link's ``hall_clock``), a manual clock in tests.
    """

    settings: KioskSettings = field(default_factory=KioskSettings)
    clock: Callable[[], datetime] = field(default=system_now)
    state: dict[str, Any] = field(default_factory=dict)
    # The broker connection, as every screen models it (queuehall/connection.py).
    link_status: LinkStatus = field(default_factory=LinkStatus)
    printer: PrinterHealth = UNKNOWN_PRINTER
    language: str = ""
    phase: Phase = Phase.START
    department: str | None = None
    selected: str | None = None
    priority: str | None = None
    issued: Issued | None = None
    message: Message | None = None
    blocked: bool = False  # a print failed: no tickets until the printer reports ready
    settings_open: bool = False
    large_text: bool = False  # 适老化: larger type and high contrast, one tap on the start screen, reset when idle
    unlocked: bool = False
    pin_failures: int = 0
    locked_until: datetime | None = None
    code_entry: str = ""  # the booking code typed on the check-in keypad so far
    checkin_hint: Bi | None = None  # the keypad's note ("a code has 8 characters")
    checked_in: dict[str, Any] | None = None  # a remote ticket checked in: {"ticket": …}

    def __post_init__(self) -> None:
        self.language = self.language or self.settings.language

    # ------------------------------------------------------------------ inputs from the world

    def on_state(self, state: Mapping[str, Any]) -> None:
        """A new hall state from the broker (which also proves the broker is alive)."""
        self.state = dict(state)
        self.link_status.on_state()
        if self.department not in {d.code for d in self.departments()}:
            deps = self.departments()
            self.department = deps[0].code if deps else None
        if self.phase == Phase.DETAILS and self.closed_info() is not None:
            self.back_to_start(reset_language=True)  # the hall closed under an open page: start afresh later

    def on_connection(self, up: bool) -> None:
        """The broker link came up or went silent."""
        self.link_status.on_connection(up)

    @property
    def connected(self) -> bool:
        """Whether the broker answers now."""
        return self.link_status.connected

    def on_printer_status(self, health: PrinterHealth) -> None:
        """A status report from the printer; a ready printer lifts the block after a failed print."""
        self.printer = health
        if health.ready:
            self.blocked = False

    # ------------------------------------------------------------------ what to show

    @property
    def busy(self) -> bool:
        """A ticket is being checked, requested or printed: further confirms are ignored."""
        return self.phase in BUSY_PHASES

    @property
    def screen(self) -> Screen:
        """The page to show now (see the module docstring for the order of precedence)."""
        if self.settings_open:
            return Screen.SETTINGS if self.unlocked else Screen.PIN
        if self.busy:
            return Screen.CHECKIN if self.checking_in else Screen.DETAILS
        if self.phase == Phase.CONFIRMATION:
            return Screen.CHECKED_IN if self.issued is not None and self.issued.booking is not None \
                else Screen.CONFIRMATION
        if self.phase == Phase.PRINT_FAILED:
            return Screen.PRINT_FAILED
        if self.phase == Phase.CHECKED_IN:
            return Screen.CHECKED_IN
        if not self.connected or not self.state.get("services"):
            return Screen.OUT_OF_SERVICE
        if not self.printer.ready and not self.printer.staff:
            return Screen.OUT_OF_SERVICE
        if self.printer.staff or self.blocked:
            return Screen.ASK_STAFF
        if self.phase == Phase.MESSAGE:
            return Screen.MESSAGE
        if self.phase == Phase.CHECKIN_REFUSED:
            return Screen.CHECKIN_REFUSED
        if self.phase == Phase.CHECKIN:
            return Screen.CHECKIN  # bookings are checked in also while no service issues walk-in tickets
        if self.closed_info() is not None:
            return Screen.CLOSED
        if self.phase == Phase.DETAILS:
            return Screen.DETAILS
        return Screen.START

    def out_of_service_reason(self) -> tuple[Bi, str]:
        """Why the kiosk is out of service (broker first, then printer): (for the citizen, for staff)."""
        if not self.connected:
            return (BROKER_DOWN if self.state else CONNECTING), "BROKER_UNREACHABLE"
        if not self.state.get("services"):
            return CONNECTING, "BROKER_CONNECTING"
        return self.printer.reason, self._detail(self.printer.code, self.printer.message)

    def ask_staff_reason(self) -> tuple[Bi, str]:
        """Why a member of staff is needed: (for the citizen, for staff)."""
        if self.printer.staff:
            return self.printer.reason, self._detail(self.printer.code, self.printer.message)
        if self.issued is not None and self.issued.error is not None:
            code, detail = self.issued.error
            return printer_reason(code), self._detail(code, detail)
        return PRINT_FAILED, ""

    def _detail(self, code: str | None, message: Bi) -> str:
        """The small line for staff on a citizen's screen: the stable code only. The printer's own message
        (device paths, "[Errno 111] Connection refused") goes to the log and the staff settings."""
        return str(code or "")

    def help_place(self) -> Bi:
        """Where a citizen goes for help: the hall's help counter by name ("12号窗口（咨询投诉）"), else
        any counter (the hall has named none)."""
        number = (self.state.get("hall") or {}).get("help_counter")
        counter = (self.state.get("counters") or {}).get(str(number)) if number is not None else None
        if counter is None:
            return Bi("任一服务窗口", "any service counter")
        return Bi(str(counter.get("name_zh") or f"{number}号窗口"), str(counter.get("name_en") or f"Counter {number}"))

    def go_for_help(self) -> Bi:
        """The sentence sending a citizen to the help counter."""
        place = self.help_place()
        return Bi(f"请到{place.zh}咨询", f"Please ask at {place.en}")

    def print_failed_info(self) -> tuple[str, Bi] | None:
        """The print-failure notice: (the number, where to go to have it printed), or None."""
        if self.issued is None:
            return None
        place = self.help_place()
        return (self.issued.record.label,
                Bi(f"请到{place.zh}补打号票", f"Please go to {place.en} for a printed ticket"))

    def hall_name(self) -> Bi:
        hall = self.state.get("hall") or {}
        return Bi(str(hall.get("name_zh") or "政务服务中心"),
                  str(hall.get("name_en") or "Government Service Center"))

    def greeting(self) -> Bi:
        """来有迎声: a greeting by the time of day, then the hall's name."""
        hour = self.clock().astimezone(timezone_of(self.state)).hour
        zh = "早上好" if hour < 9 else "上午好" if hour < 12 else "中午好" if hour < 14 else "下午好" \
            if hour < 18 else "您好"
        en = "Good morning" if hour < 12 else "Good afternoon" if hour < 18 else "Good evening"
        name = self.hall_name()
        return Bi(f"{zh}！欢迎来到{name.zh}", f"{en}! Welcome to the {name.en}")

    def now_local(self) -> datetime:
        return self.clock().astimezone(timezone_of(self.state))

    def _priority_names(self) -> dict[str, Bi]:
        return {str(p.get("code")): Bi(str(p.get("name_zh", "")), str(p.get("name_en", "")))
                for p in self.state.get("priority_classes") or []}

    def priority_name(self, code: str) -> Bi:
        return self._priority_names().get(code, Bi(code, code))

    def card(self, code: str) -> ServiceCard | None:
        """The button for one service, or None if the hall has no such service."""
        s = (self.state.get("services") or {}).get(code)
        if s is None:
            return None
        return self._card(s)

    def _card(self, s: Mapping[str, Any]) -> ServiceCard:
        issue_state = str(s.get("issue_state") or "closed")
        reason: Bi | None = None
        if issue_state != "open":
            base = _STATE_REASONS.get(issue_state, Bi("暂停取号", "Not issuing now"))
            at = parse_time(s.get("next_open"))
            if at is not None:
                when = local_when(at, self.clock(), timezone_of(self.state))
                reason = Bi(f"{base.zh}，{when.zh} 起取号", f"{base.en}; tickets from {when.en}")
            else:
                reason = base
        promised = s.get("promised_days")
        desc = s.get("description") if isinstance(s.get("description"), Mapping) else None
        description = Bi(str(desc.get("zh") or ""), str(desc.get("en") or "")) if desc and desc.get("zh") else None
        waiting, minutes = int(s.get("waiting") or 0), int(s.get("estimated_wait_minutes") or 0)
        staffed = self._staffed(str(s["code"]))
        wait, note = self.wait_estimate(waiting, minutes, staffed, parse_time(s.get("session_ends")))
        return ServiceCard(
            description=description, wait=wait, wait_note=note, staffed=staffed,
            code=str(s["code"]), name=Bi(str(s.get("name_zh", s["code"])), str(s.get("name_en", s["code"]))),
            department=str(s.get("department", "")), waiting=int(s.get("waiting") or 0),
            wait_minutes=int(s.get("estimated_wait_minutes") or 0), open=issue_state == "open", reason=reason,
            materials=tuple(Bi(str(m.get("zh", "")), str(m.get("en", ""))) for m in s.get("materials") or []),
            promised=promised_text(int(promised) if isinstance(promised, int) else None),
            priority_classes=tuple(str(p) for p in s.get("priority_classes") or []))

    def _staffed(self, code: str) -> bool | None:
        """Whether a counter that is not closed serves ``code`` (None when the state lists no counters)."""
        counters = self.state.get("counters")
        if not isinstance(counters, Mapping) or not counters:
            return None
        return any(isinstance(c, Mapping) and code in (c.get("services") or []) and c.get("state") != "closed"
                   for c in counters.values())

    def serving_counters(self, code: str) -> list[int]:
        """The numbers of the counters that serve ``code``: the open ones, or all of them when none is open
        (the confirmation shows them and the voice reads them); [] when the state lists none."""
        counters = self.state.get("counters")
        if not isinstance(counters, Mapping):
            return []
        serving = [c for c in counters.values() if isinstance(c, Mapping) and code in (c.get("services") or [])]
        open_ = sorted(int(c["number"]) for c in serving if c.get("state") != "closed")
        return open_ or sorted(int(c["number"]) for c in serving)

    def where_to_go(self, code: str) -> Bi | None:
        """Where ticket-holders of ``code`` are served (the confirmation says it): the counters that serve it,
        those open first; None when the state lists no counter for it."""
        numbers = self.serving_counters(code)
        if not numbers:
            return None
        zh = "、".join(str(n) for n in numbers)
        en = ", ".join(str(n) for n in numbers)
        plural = "s" if len(numbers) > 1 else ""
        return Bi(f"请留意叫号，到 {zh} 号窗口办理", f"When called, go to counter{plural} {en}")

    def wait_estimate(self, waiting: int, minutes: int, staffed: bool | None,
                      session_end: datetime | None) -> tuple[Bi, Bi | None]:
        """The estimate as shown, and a warning to go with it (or None).

        A service no open counter serves never says "无需等候": it says so instead. A wait that runs
        past the end of the present session (``session_ends`` from the broker: the morning's 11:30)
        says so too, with that time, rather than promising "约 288 分钟" in a morning with 136 left.
        """
        if staffed is False:
            return (Bi("暂无窗口办理", "no counter open"),
                    Bi("现在没有窗口办理此业务，取号后请留意叫号或咨询工作人员",
                       "No counter serves this right now: watch for your number or ask the staff"))
        if waiting <= 0 or minutes <= 0:
            return wait_text(0), None
        if session_end is not None and self.clock() + timedelta(minutes=minutes) > session_end:
            at = session_end.astimezone(timezone_of(self.state)).strftime("%H:%M")
            return (Bi(f"约 {minutes} 分钟，超过 {at} 下班时间", f"about {minutes} min, past {at} closing"),
                    Bi(f"预计等候超过本时段结束时间 {at}，可能无法在本时段办理，可考虑改时段再来",
                       f"The wait runs past this session's end at {at}: you may not be served this session"))
        return wait_text(minutes), None

    def cards(self) -> list[ServiceCard]:
        """Every service in the hall's order."""
        services = self.state.get("services") or {}
        order = self.state.get("service_order") or list(services)
        return [self._card(services[c]) for c in order if c in services]

    def departments(self) -> list[DepartmentCard]:
        """Departments that have at least one service, in configuration order."""
        cards = self.cards()
        out = []
        known = [(str(d.get("code")), Bi(str(d.get("name_zh", "")), str(d.get("name_en", ""))))
                 for d in self.state.get("departments") or []]
        for code in {c.department for c in cards} - {k for k, _ in known}:
            known.append((code, Bi(code, code)))
        for code, name in known:
            mine = [c for c in cards if c.department == code]
            if mine:
                out.append(DepartmentCard(code, name, sum(c.waiting for c in mine), len(mine),
                                          sum(c.open for c in mine)))
        return out

    def department_cards(self) -> list[ServiceCard]:
        """The services of the selected department."""
        return [c for c in self.cards() if c.department == self.department]

    def closed_info(self) -> tuple[Bi, Bi | None] | None:
        """When no service issues tickets: (reason, next opening as local text or None); else None."""
        cards = self.cards()
        if not cards or any(c.open for c in cards):
            return None
        services = self.state.get("services") or {}
        states = {str(s.get("issue_state")) for s in services.values()}
        if "break" in states:
            reason = Bi("午间休息，暂停取号", "Lunch break: no tickets right now")
        elif states <= {"past_cutoff", "daily_cap"}:
            reason = Bi("今日已停止取号", "No more tickets today")
        else:
            reason = Bi("现在是非办公时间", "The hall is closed now")
        times = [t for t in (parse_time(s.get("next_open")) for s in services.values()) if t is not None]
        if not times:
            return reason, None
        return reason, local_when(min(times), self.clock(), timezone_of(self.state))

    # ------------------------------------------------------------------ citizen taps

    def set_language(self, lang: str) -> None:
        """Switch the screen language (中文 / English)."""
        self.language = check_language(lang)

    def toggle_large_text(self) -> None:
        """The large-text, high-contrast mode (大字模式) on or off; the next citizen starts without it."""
        self.large_text = not self.large_text

    def select_department(self, code: str) -> None:
        if code in {d.code for d in self.departments()}:
            self.department = code

    def tap_service(self, code: str) -> bool:
        """Show the details of ``code`` (materials, promised time, priority choice).

        Returns False (nothing changes) for an unknown or closed service or while busy."""
        card = self.card(code)
        if card is None or not card.open or self.busy or self.screen != Screen.START:
            return False
        self.phase = Phase.DETAILS
        self.selected = code
        self.priority = None
        return True

    def choose_priority(self, code: str | None) -> None:
        """Choose the green channel ``code`` (None = a normal ticket); only classes the service offers."""
        card = self.card(self.selected or "")
        if code is None or (card is not None and code in card.priority_classes):
            self.priority = code

    def confirm(self) -> Action | None:
        """The citizen confirms: returns CheckPrinter, or None when not possible (double tap, busy,
        closed, screen not showing the details)."""
        if self.phase != Phase.DETAILS or self.screen != Screen.DETAILS or self.selected is None:
            return None
        card = self.card(self.selected)
        if card is None or not card.open:
            return None
        self.phase = Phase.CHECKING
        return CheckPrinter()

    def back_to_start(self, *, reset_language: bool = False) -> None:
        """Return to the start screen (back button, timers). A finished flow resets the language."""
        if self.busy:
            return
        self.phase = Phase.START
        self.selected = None
        self.priority = None
        self.message = None
        self.code_entry = ""
        self.checkin_hint = None
        self.checked_in = None
        if reset_language:
            self.language = self.settings.language

    # ------------------------------------------------------------------ idle: a clean start for the next citizen

    def default_department(self) -> str | None:
        """The department a fresh start shows (the first in the hall's order)."""
        deps = self.departments()
        return deps[0].code if deps else None

    @property
    def clean(self) -> bool:
        """Whether the next citizen would find the kiosk as at a fresh start: the default language,
        the first department, nothing chosen, normal type."""
        return (self.language == self.settings.language and self.department == self.default_department()
                and self.selected is None and self.priority is None and self.phase == Phase.START
                and not self.settings_open and not self.large_text)

    def timeout_ms(self, screen: Screen | None = None) -> int | None:
        """How long ``screen`` (default: the one shown) may stay untouched before :meth:`on_timeout`.

        The confirmation, a message and a failed print have their own hold times; every other page
        returns to a clean start after ``idle_ms`` without a touch, the start, closed, out-of-service
        and ask-staff pages too, as long as something differs from a clean start (a citizen switched
        to English or chose a department and walked away). None while issuing, and on a page that
        is already clean (nothing to undo).
        """
        if self.busy:
            return None
        s = self.settings
        screen = screen or self.screen
        held = {Screen.CONFIRMATION: s.return_ms, Screen.MESSAGE: s.message_ms,
                Screen.PRINT_FAILED: s.print_failed_ms, Screen.CHECKED_IN: s.return_ms,
                Screen.CHECKIN_REFUSED: s.message_ms}
        if screen in held:
            return held[screen]
        if screen in (Screen.DETAILS, Screen.PIN, Screen.SETTINGS, Screen.CHECKIN):
            return s.idle_ms
        return None if self.clean else s.idle_ms

    def on_timeout(self) -> None:
        """The page's time ran out: staff settings close, anything else goes back to a clean start
        (default language, first department, nothing chosen) for whoever comes next."""
        if self.busy:
            return
        if self.settings_open:
            self.close_settings()
        self.back_to_start(reset_language=True)
        self.department = self.default_department()
        self.large_text = False

    # ------------------------------------------------------------------ outcomes

    def on_precheck(self, health: PrinterHealth) -> Action | None:
        """The printer's answer before issuing: TakeTicket when ready; otherwise the citizen sees the
        ask-staff or out-of-service screen and nothing is issued."""
        self.on_printer_status(health)
        if self.phase == Phase.CHECKIN_PRINTER:
            if not health.ready or self.blocked:
                self.phase = Phase.START
                self.back_to_start()  # the ask-staff / out-of-service page says why; the booking stays booked
                return None
            self.phase = Phase.CHECKIN_SENT
            return CheckIn(self.code_entry)
        if self.phase != Phase.CHECKING:
            return None
        if not health.ready or self.blocked:
            self.phase = Phase.START
            self.selected = None
            return None
        assert self.selected is not None
        self.phase = Phase.REQUESTING
        return TakeTicket(self.selected, self.priority)

    def on_take_reply(self, reply: Mapping[str, Any]) -> Action | None:
        """The broker's reply to take_ticket: PrintTicket on success; a message for a refusal
        (the broker's bilingual reason) or for no answer."""
        if self.phase != Phase.REQUESTING:
            return None
        status = reply.get("status")
        if status == "ok":
            result = reply.get("result") or {}
            ticket = dict(result.get("ticket") or {})
            url = result.get("url")
            issued = Issued(ticket=ticket, ahead=int(result.get("ahead") or 0),
                            wait_minutes=int(result.get("estimated_wait_minutes") or 0), fields={},
                            url=url if isinstance(url, str) and url else None)
            issued.fields = self.ticket_fields(issued)
            self.issued = issued
            self.phase = Phase.PRINTING
            issued.attempts = 1
            return PrintTicket(issued.fields, 1)
        if status == "error":
            err = reply.get("error") or {}
            self.message = Message(Bi("未能取号", "No ticket"),
                                   Bi(str(err.get("message_zh") or err.get("code") or "取号被拒绝"),
                                      str(err.get("message_en") or err.get("code") or "Refused")),
                                   str(err.get("code") or ""))
        else:
            self.message = Message(Bi("未能取号", "No ticket"), UNAVAILABLE, "UNAVAILABLE")
        self.phase = Phase.MESSAGE
        return None

    def on_print_result(self, error: tuple[str, str, str] | None) -> Action | None:
        """The printer finished: ``error`` is None on success, else (code, zh, en).

        The first failure prints again; the second voids the ticket at the broker and stops
        issuing until the printer reports ready."""
        if self.phase != Phase.PRINTING or self.issued is None:
            return None
        issued = self.issued
        if error is None:
            issued.error = None
            self.phase = Phase.CONFIRMATION
            return None
        code, zh, en = error
        issued.error = (code, Bi(zh, en))
        if issued.attempts < PRINT_ATTEMPTS:
            issued.attempts += 1
            return PrintTicket(issued.fields, issued.attempts)
        self.phase = Phase.PRINT_FAILED
        self.blocked = True
        if code in STAFF_CODES or code.startswith("PRINTER_"):
            # Until the printer says otherwise, believe the failure (the next status poll may clear it).
            self.printer = PrinterHealth.from_error(code, zh, en)
        return ReportFault(ticket=str(issued.record.id), label=issued.record.label, code=code)

    def recover(self, issued: Issued) -> PrintTicket | None:
        """Print a ticket issued before the kiosk stopped (its journal said so): shown like a citizen's own
        ticket (printing, then the confirmation or the print-failure notice). None while another
        ticket is in flight or the settings are open (the caller tries again later)."""
        if self.busy or self.settings_open:
            return None
        self.issued = issued
        self.selected = issued.record.service or None
        self.priority = issued.record.priority
        self.phase = Phase.PRINTING
        issued.attempts = 1
        return PrintTicket(issued.fields, 1)

    def reprint_fields(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """``TicketContent`` fields for a reprint order (``printers[kiosk].reprints``): the ticket with the
        people ahead now, marked as a reprint in the footer. Its QR code holds the ticket's identity: the
        page token (docs/web.md) never travels in the state, where the orders are."""
        issued = Issued(ticket=dict(order.get("ticket") or {}), ahead=int(order.get("ahead") or 0),
                        wait_minutes=int(order.get("estimated_wait_minutes") or 0), fields={})
        fields = self.ticket_fields(issued)
        at = self.now_local().strftime("%H:%M")
        fields["footer_zh"] = f"补打号票（{at}）" + (f" · {fields['footer_zh']}" if fields["footer_zh"] else "")
        fields["footer_en"] = f"Reprinted at {at}" + (f" · {fields['footer_en']}" if fields["footer_en"] else "")
        return fields

    # ------------------------------------------------------------------ the ticket

    def ticket_fields(self, issued: Issued) -> dict[str, Any]:
        """Keyword arguments for ``kiosk.ticket.TicketContent`` describing ``issued``."""
        t = issued.record
        services = self.state.get("services") or {}
        svc = services.get(t.service) or {}
        hall = self.state.get("hall") or {}
        name = self.hall_name()
        at = t.issued_at or self.clock()
        pname = self.priority_name(t.priority) if t.priority else None
        materials: tuple[Bi, ...] = ()
        if self.settings.print_materials:
            materials = tuple(Bi(str(m.get("zh", "")), str(m.get("en", ""))) for m in svc.get("materials") or [])
        promised = svc.get("promised_days")
        description = svc.get("description") or {}
        zh_note = str(description.get("zh") or "") if isinstance(description, dict) else ""
        en_note = str(description.get("en") or "") if isinstance(description, dict) else ""
        return {
            "hall_name": name,
            "label": t.label,
            "service_name_zh": t.service_name.zh or str(svc.get("name_zh") or ""),
            "service_name_en": t.service_name.en or str(svc.get("name_en") or ""),
            "ahead": issued.ahead,
            "estimated_wait_minutes": issued.wait_minutes,
            "issued_local": at.astimezone(timezone_of(self.state)).strftime("%Y-%m-%d %H:%M"),
            "qr_payload": qr_payload(t, issued.url),
            "priority_name_zh": pname.zh if pname else None,
            "priority_name_en": pname.en if pname else None,
            "materials": materials,
            "promised_days": int(promised) if isinstance(promised, int) else None,
            "footer_zh": str(hall.get("footer_zh") or ""),
            "footer_en": str(hall.get("footer_en") or ""),
            "language": self.language,
            # The service's 办理须知 (fees, eligibility) when short enough for a ticket; the screen shows it always.
            "description_zh": zh_note if len(zh_note) <= TICKET_DESCRIPTION_MAX else "",
            "description_en": en_note if len(zh_note) <= TICKET_DESCRIPTION_MAX else "",
            # 适老化: the citizen who chose large text gets a large-print ticket.
            "large_print": self.large_text,
            # An appointment ticket (预约) is marked as such, with its slot's start (docs/protocol.md).
            "appointment_slot": t.slot[11:16] or None if t.appointment else None,
        }

    def confirmation(self) -> tuple[str, Bi, Bi] | None:
        """(label, the "您的号码 A012 · 前面还有 5 人 · 预计等候 15 分钟" line, service name), or None."""
        if self.issued is None:
            return None
        t = self.issued.record
        label = t.label
        ahead, wait = self.issued.ahead, self.issued.wait_minutes
        line = Bi(f"您的号码 {label} · 前面还有 {ahead} 人 · 预计等候 {wait} 分钟",
                  f"Your number {label} · {ahead} ahead of you · about {wait} min")
        return label, line, t.service_name

    # ------------------------------------------------------------------ check-in (docs/kiosk.md, "Check-in")

    @property
    def checking_in(self) -> bool:
        """Whether the citizen's step is a check-in (the keypad, a check-in on its way, or its outcome)."""
        return self.phase in CHECKIN_PHASES or (self.phase in (Phase.PRINTING, Phase.CONFIRMATION)
                                                and self.issued is not None and self.issued.booking is not None)

    def open_checkin(self) -> bool:
        """The start page's "预约签到 / Appointment check-in" button: show the keypad (False while busy or on a
        page that has no such button)."""
        if self.busy or self.screen not in (Screen.START, Screen.CLOSED, Screen.CHECKIN_REFUSED):
            return False
        self.back_to_start()
        self.phase = Phase.CHECKIN
        return True

    def type_code(self, key: str) -> None:
        """A key of the keypad: a letter of the booking alphabet, ``"back"`` or ``"clear"``."""
        from queuehall.kiosk.checkin import BOOKING_ALPHABET, BOOKING_CODE_LENGTH

        if self.phase != Phase.CHECKIN:
            return
        self.checkin_hint = None
        if key == "back":
            self.code_entry = self.code_entry[:-1]
        elif key == "clear":
            self.code_entry = ""
        elif len(key) == 1 and key.upper() in BOOKING_ALPHABET and len(self.code_entry) < BOOKING_CODE_LENGTH:
            self.code_entry += key.upper()

    def submit_code(self) -> Action | None:
        """The keypad's "签到 / Check in": CheckPrinter for a whole code (then :meth:`on_precheck` sends it);
        None, with a hint, for a short one."""
        from queuehall.kiosk.checkin import BOOKING_CODE_LENGTH, CHECKIN_SHORT

        if self.phase != Phase.CHECKIN or self.screen != Screen.CHECKIN:
            return None
        if len(self.code_entry) != BOOKING_CODE_LENGTH:
            self.checkin_hint = CHECKIN_SHORT
            return None
        self.phase = Phase.CHECKIN_PRINTER
        return CheckPrinter()

    def scan(self, text: str) -> Action | None:
        """A barcode scanner read ``text`` (any page a citizen sees; ignored while a ticket is in flight, on
        the staff pages and while the kiosk is out of service or waits for staff). A booking goes through
        the printer check like a ticket; a remote ticket is checked in at once; anything else is refused
        as not recognised."""
        from queuehall.kiosk.checkin import BookingScan, TicketScan, parse_scan

        if self.busy or self.settings_open or self.screen in (Screen.OUT_OF_SERVICE, Screen.ASK_STAFF,
                                                              Screen.PRINT_FAILED):
            return None
        target = parse_scan(text)
        self.back_to_start()
        if isinstance(target, BookingScan):
            self.code_entry = target.code
            self.phase = Phase.CHECKIN_PRINTER
            return CheckPrinter()
        if isinstance(target, TicketScan):
            self.phase = Phase.CHECKIN_SENT
            return CheckInTicket(target.token, target.id)
        self._refuse("NOT_RECOGNISED", {})
        return None

    def _refuse(self, code: str, details: Mapping[str, Any], message: Bi | None = None) -> None:
        from queuehall.kiosk.checkin import refusal

        title, body = refusal(code, dict(details), self.help_place(), message)
        self.message = Message(title, body, code)
        self.phase = Phase.CHECKIN_REFUSED

    def _refuse_reply(self, reply: Mapping[str, Any]) -> None:
        if reply.get("status") == "error":
            err = reply.get("error") or {}
            self._refuse(str(err.get("code") or ""), err.get("details") or {},
                         Bi(str(err.get("message_zh") or ""), str(err.get("message_en") or "")))
        else:
            self._refuse("UNAVAILABLE", {})

    def on_checkin_reply(self, reply: Mapping[str, Any]) -> Action | None:
        """The broker's reply to ``checkin``: PrintTicket (the ticket marked as an appointment, or a normal
        one when late) on success; a refusal saying what to do otherwise."""
        if self.phase != Phase.CHECKIN_SENT:
            return None
        if reply.get("status") != "ok":
            self._refuse_reply(reply)
            return None
        result = reply.get("result") or {}
        ticket = dict(result.get("ticket") or {})
        url = result.get("url")
        issued = Issued(ticket=ticket, ahead=int(result.get("ahead") or 0),
                        wait_minutes=int(result.get("estimated_wait_minutes") or 0), fields={},
                        url=url if isinstance(url, str) and url else None,
                        booking=dict(result.get("booking") or {}), late=bool(result.get("late")))
        issued.fields = self.ticket_fields(issued)
        self.issued = issued
        self.phase = Phase.PRINTING
        issued.attempts = 1
        return PrintTicket(issued.fields, 1)

    def on_ticket_checkin_reply(self, reply: Mapping[str, Any]) -> None:
        """The broker's reply to ``check_in`` (or to the ``ticket_by_token`` before it, when that failed)."""
        if self.phase != Phase.CHECKIN_SENT:
            return
        if reply.get("status") != "ok":
            self._refuse_reply(reply)
            return
        self.checked_in = {"ticket": dict((reply.get("result") or {}).get("ticket") or {})}
        self.phase = Phase.CHECKED_IN

    def slot_text(self, booking: Mapping[str, Any]) -> Bi:
        """The booked time as the citizen reads it: "10:00", or "12月8日 10:00" on another day."""
        slot = str(booking.get("slot") or "")
        try:
            at = datetime.fromisoformat(slot)
        except ValueError:
            return Bi(slot, slot)
        hm = at.strftime("%H:%M")
        if at.date() == self.now_local().date():
            return Bi(hm, hm)
        return Bi(f"{at.month}月{at.day}日 {hm}", f"{_WEEKDAYS_EN[at.weekday()]} {at.day} {_MONTHS_EN[at.month - 1]} "
                                                  f"{hm}")

    def checked_in_info(self) -> tuple[str, Bi, Bi, bool] | None:
        """The check-in page: (the number, the headline, what to do next, late), or None.

        A booking on time: "您预约的 10:00 普通护照申请"; late: said plainly that the ticket is now a normal one;
        a remote ticket: "签到成功"."""
        if self.phase == Phase.CHECKED_IN and self.checked_in is not None:
            t = decode_ticket(self.checked_in["ticket"]) or NO_TICKET
            label = t.label
            svc = Bi(t.service_name.zh or t.service, t.service_name.en or t.service)
            return (label, Bi(f"签到成功：{svc.zh}", f"Checked in: {svc.en}"),
                    Bi("请留意叫号，叫到您的号码时请到相应窗口办理。",
                       "Please watch for your number and go to the counter shown when it is called."), False)
        issued = self.issued
        if issued is None or issued.booking is None or self.phase not in (Phase.PRINTING, Phase.CONFIRMATION):
            return None
        b = issued.booking
        t = issued.record
        label = t.label
        raw_name = b.get("service_name")
        name: Mapping[str, Any] = raw_name if isinstance(raw_name, Mapping) else {}
        svc = Bi(str(name.get("zh") or t.service_name.zh or b.get("service") or ""),
                 str(name.get("en") or t.service_name.en or b.get("service") or ""))
        when = self.slot_text(b)
        if issued.late:
            return (label, Bi(f"您预约的 {when.zh} {svc.zh}：已过预约签到时间",
                              f"Your {when.en} appointment: {svc.en}. You are past its check-in time"),
                    Bi(f"您的号码 {label} 现按普通号排队，前面还有 {issued.ahead} 人，请留意叫号。",
                       f"Your number {label} is now a normal ticket, in the queue with everyone else "
                       f"({issued.ahead} ahead of you). Please watch for your number."), True)
        return (label, Bi(f"您预约的 {when.zh} {svc.zh}", f"Your {when.en} appointment: {svc.en}"),
                Bi(f"签到成功，号码 {label} 将按预约时间优先叫号，请留意叫号。",
                   f"You are checked in: number {label} is called at your appointment time. Please watch for "
                   "your number."), False)

    # ------------------------------------------------------------------ staff settings

    def open_settings(self) -> None:
        """The hidden staff gesture: show the PIN pad (never while a ticket is in flight)."""
        if not self.busy:
            self.settings_open = True
            self.unlocked = False

    def enter_pin(self, pin: str) -> tuple[bool, Bi]:
        """Check a PIN; 5 wrong PINs lock the pad for 60 s. Returns (accepted, message)."""
        now = self.clock()
        if self.locked_until is not None and now < self.locked_until:
            left = math.ceil((self.locked_until - now).total_seconds())
            return False, Bi(f"错误次数过多，请 {left} 秒后再试",
                             f"Too many wrong PINs; try again in {left} s")
        if not self.settings.pin_hash:
            # No default PIN on a public touch screen: the settings stay shut until one is set at installation.
            return False, NO_STAFF_PIN
        if verify_pin(pin, self.settings.pin_hash):
            self.unlocked = True
            self.pin_failures = 0
            self.locked_until = None
            return True, Bi("", "")
        self.pin_failures += 1
        if self.pin_failures >= PIN_MAX_FAILURES:
            self.pin_failures = 0
            self.locked_until = now + timedelta(seconds=PIN_LOCKOUT_SECONDS)
            return False, Bi(f"错误次数过多，请 {PIN_LOCKOUT_SECONDS} 秒后再试",
                             f"Too many wrong PINs; try again in {PIN_LOCKOUT_SECONDS} s")
        return False, Bi("密码错误", "Wrong PIN")

    def close_settings(self) -> None:
        """Back from the PIN pad or settings to the citizen's screens."""
        self.settings_open = False
        self.unlocked = False

    @property
    def voice_on(self) -> bool:
        """Whether the kiosk speaks its guidance now: the hall's ``[kiosk] voice_guidance`` (on unless the hall
        turns it off), or the large-text mode where the hall sets ``large_text_voice``; never while staff have
        muted it in the settings."""
        if self.settings.voice_muted:
            return False
        hall = self.state.get("hall")
        rules = hall.get("kiosk") if isinstance(hall, Mapping) else None
        rules = rules if isinstance(rules, Mapping) else {}
        return bool(rules.get("voice_guidance", True)) or (self.large_text and bool(rules.get("large_text_voice")))

    def set_voice_muted(self, muted: bool) -> None:
        """Settings: mute or unmute the spoken guidance (kept for every citizen after, like the default
        language)."""
        self.settings.voice_muted = bool(muted)

    def set_default_language(self, lang: str) -> None:
        """Settings: the language the kiosk returns to after each citizen."""
        self.settings.language = check_language(lang)
        self.language = lang


TICKET_DESCRIPTION_MAX = 60  # characters of Chinese: a longer 办理须知 stays on the screen only


def qr_payload(ticket: Ticket, url: str | None = None) -> str:
    """The QR code's content: the ticket page's address ``{public_base_url}/t/{token}`` when the hall has
    a web gateway (the take reply's ``url``), else the ticket's identity,
    ``queuehall:ticket:<id>:<label>:<business day>``."""
    if url:
        return url
    return f"queuehall:ticket:{ticket.id}:{ticket.label}:{ticket.business_day}"


def split_lines(items: Sequence[Bi], lang: str) -> list[str]:
    """Numbered lines ("1. 身份证") of ``items`` in ``lang``."""
    return [f"{i}. {b(lang)}" for i, b in enumerate(items, start=1)]
