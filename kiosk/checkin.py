"""Check-in at the kiosk, without Qt: what a barcode scanner typed, what a booking code is, and the texts.

Two kinds of citizen check in at the kiosk (docs/kiosk.md, "Check-in"):

* the holder of a **booking** (预约, docs/protocol.md ``checkin``): by the booking's QR code
  (``queuehall:booking:<CODE>``, or the booking page's address ``{public_base_url}/b/<CODE>``) or by
  typing its 10-character code on the kiosk's keypad;
* the holder of a **remote ticket** (线上取号, ``check_in``): by the ticket's QR code, the ticket page's
  address ``{public_base_url}/t/<token>`` or the ticket's identity ``queuehall:ticket:<id>:<label>:<day>``.

A USB barcode scanner is a keyboard: it types what it read, fast, and ends with Enter. The kiosk has
no keyboard of its own, so :class:`ScanDetector` takes every key the window receives, on any screen, and
recognises a *scan*: at least :data:`SCAN_MIN_LENGTH` characters, each within :data:`SCAN_MAX_GAP` of
the one before, then Enter. Anything slower or shorter is dropped (a person at a keyboard is not a
scanner, and no key ever acts as a tap). :func:`parse_scan` then says what was scanned.

Nothing here imports Qt or zmq.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from queuehall.kiosk.model import Bi

# The booking code's alphabet and length: digits and capitals without 0/O, 1/I/L (easy to misread or mistype),
# 8 random characters, the hall's tag and a check character. The same as broker/appointments.py (a screen may
# not import the broker: tests/test_kiosk_checkin.py checks they agree).
BOOKING_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
BOOKING_CODE_LENGTH = 10
SCAN_MAX_GAP = 0.060  # seconds between two keys of one scan (scanners type a key every 2-20 ms)
SCAN_MIN_LENGTH = 6  # shorter fast bursts are not scans (no payload we know is this short)
SCAN_MAX_LENGTH = 512  # a longer burst is dropped as it grows: nothing we read is this long

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TICKET_RE = re.compile(r"queuehall:ticket:(\d{1,12}):([A-Za-z0-9]{1,16}):(\d{4}-\d{2}-\d{2})", re.IGNORECASE)
_BOOKING_PREFIX = "queuehall:booking:"
_BOOKING_PATHS = ("b", "booking", "bookings")  # the web gateway's page /b/<CODE> (and the API's spellings)


def normalize_code(text: str) -> str:
    """A typed booking code as the broker takes it: upper case, spaces and dashes left out."""
    return re.sub(r"[\s\-‐-―－]", "", text or "").upper()


def is_booking_code(text: str) -> bool:
    """Whether ``text`` (normalised) is a well-formed booking code: 10 letters of :data:`BOOKING_ALPHABET`."""
    code = normalize_code(text)
    return len(code) == BOOKING_CODE_LENGTH and all(ch in BOOKING_ALPHABET for ch in code)


@dataclass(frozen=True)
class BookingScan:
    """A booking to check in, by its code."""

    code: str


@dataclass(frozen=True)
class TicketScan:
    """A remote ticket to check in: by its page ``token`` or by its ``id`` (with label and day)."""

    token: str | None = None
    id: int | None = None
    label: str = ""
    day: str = ""


@dataclass(frozen=True)
class UnknownScan:
    """Something the kiosk cannot check in (another QR code, a product barcode, a mangled read)."""

    text: str


Scan = BookingScan | TicketScan | UnknownScan


def parse_scan(text: str) -> Scan:
    """What a scanned (or typed) text asks for.

    ``queuehall:booking:<CODE>``, an address whose path ends ``/b/<CODE>`` and a bare code are bookings
    (the code normalised; after the prefix, one that is not 10 letters of the alphabet is still passed on,
    for the broker to refuse as ``BOOKING_CODE_INVALID``). ``queuehall:ticket:<id>:<label>:<day>`` and an address ending
    ``/t/<token>`` are tickets. Anything else is :class:`UnknownScan`.
    """
    raw = (text or "").strip()
    if raw.lower().startswith(_BOOKING_PREFIX):
        return BookingScan(normalize_code(raw[len(_BOOKING_PREFIX):]))
    m = _TICKET_RE.fullmatch(raw)
    if m:
        return TicketScan(id=int(m.group(1)), label=m.group(2).upper(), day=m.group(3))
    if raw.lower().startswith(("http://", "https://")):
        try:
            parts = [unquote(p) for p in urlsplit(raw).path.split("/") if p]
        except ValueError:
            return UnknownScan(raw)
        if len(parts) >= 2 and parts[-2] == "t" and _TOKEN_RE.fullmatch(parts[-1]):
            return TicketScan(token=parts[-1])
        if len(parts) >= 2 and parts[-2].lower() in _BOOKING_PATHS and is_booking_code(parts[-1]):
            return BookingScan(normalize_code(parts[-1]))
        return UnknownScan(raw)
    if is_booking_code(raw):
        return BookingScan(normalize_code(raw))
    return UnknownScan(raw)


class ScanDetector:
    """Tells a barcode scanner's typing from anything else, key by key.

    Call :meth:`key` with each printable character and :meth:`enter` on Enter, each with the time it
    arrived (seconds, any monotonic clock). :meth:`enter` returns the scanned text when the keys since the
    last pause form a scan (see the module docstring), else None. Keys are never given back: the kiosk
    has no use for typing outside its staff fields.
    """

    def __init__(self, max_gap: float = SCAN_MAX_GAP, min_length: int = SCAN_MIN_LENGTH) -> None:
        self.max_gap = max_gap
        self.min_length = min_length
        self._chars: list[str] = []
        self._last: float | None = None

    @property
    def pending(self) -> str:
        """The burst typed so far (for diagnostics and tests)."""
        return "".join(self._chars)

    def key(self, char: str, at: float) -> None:
        """One printable character typed at ``at``: it continues the burst, or (after a pause) starts one."""
        if self._last is None or at - self._last > self.max_gap or len(self._chars) >= SCAN_MAX_LENGTH:
            self._chars = []
        self._chars.append(char)
        self._last = at

    def enter(self, at: float) -> str | None:
        """Enter typed at ``at``: the scanned text, or None when the burst was too slow or too short."""
        text = "".join(self._chars)
        fast = self._last is not None and at - self._last <= self.max_gap
        self._chars = []
        self._last = None
        return text if fast and len(text) >= self.min_length else None

    def reset(self) -> None:
        """Forget the burst (e.g. when a staff screen opens)."""
        self._chars = []
        self._last = None


# --------------------------------------------------------------------------------------------------
# Texts: every refusal says what happened and what to do.

CHECKIN_TITLE = Bi("预约签到", "Appointment check-in")
CHECKIN_PROMPT = Bi("请扫描预约二维码，或输入 10 位预约码", "Scan your booking's QR code, or type your 10-character "
                    "booking code")
CHECKIN_WORKING = Bi("正在签到……", "Checking you in…")
CHECKIN_PRINTING = Bi("正在打印号票……", "Printing your ticket…")
CHECKIN_SHORT = Bi("预约码为 10 位，请输入完整", "A booking code has 10 characters: please type all of them")
NOT_RECOGNISED = Bi("无法识别此二维码", "This code is not recognised")


def refusal(code: str, details: dict[str, Any] | None, help_place: Bi, message: Bi | None = None) -> tuple[Bi, Bi]:
    """The check-in refusal for the broker's error ``code``: (title, what happened and what to do).

    ``message`` is the broker's own bilingual message, used for codes this table does not know, so a
    new refusal is still shown in both languages."""
    d = details or {}
    go = Bi(f"如有疑问请到{help_place.zh}咨询", f"If in doubt, please ask at {help_place.en}")
    slot = str(d.get("slot") or d.get("day") or d.get("date") or "")
    table: dict[str, tuple[Bi, Bi]] = {
        "BOOKING_NOT_FOUND": (Bi("没有找到此预约", "Booking not found"),
                              Bi("请核对预约码后重新输入（预约码不含数字 0、1 和字母 O、I、L）。",
                                 "Please check the code and type it again (codes never use 0, 1, O, I or L).")),
        "BOOKING_CODE_INVALID": (Bi("预约码有误", "This booking code is not right"),
                                 Bi("请核对预约码后重新输入（预约码不含数字 0、1 和字母 O、I、L）。",
                                    "Please check the code and type it again (codes never use 0, 1, O, I or L).")),
        "BOOKING_TOO_EARLY": (Bi("还未到签到时间", "Too early to check in"),
                              Bi(f"您预约的是 {slot[-5:]}，请于 {d.get('opens')} 后再来签到。" if d.get("opens") else
                                 "请在预约时间前不久再来签到。",
                                 f"Your appointment is at {slot[-5:]}: please check in from {d.get('opens')}."
                                 if d.get("opens") else "Please check in shortly before your appointment.")),
        "BOOKING_WRONG_DAY": (Bi("不是今天的预约", "This booking is not for today"),
                              Bi(f"您的预约时间是 {slot}，请在预约当天来签到；今天办理请取号排队。" if slot else
                                 "请在预约当天来签到；今天办理请取号排队。",
                                 f"Your appointment is on {slot}: please check in on that day, or take a ticket "
                                 "to be served today." if slot else
                                 "Please check in on the day of your appointment, or take a ticket to be served "
                                 "today.")),
        "BOOKING_WRONG_HALL": (Bi("此预约不属于本大厅", "This booking is for another hall"),
                               Bi("请到预约的办事大厅签到；在本大厅办理请取号排队。",
                                  "Please check in at the hall you booked, or take a ticket to be served here.")),
        "BOOKING_ALREADY_CHECKED_IN": (Bi("此预约已签到", "Already checked in"),
                                       Bi(f"号票已打印{('：' + str(d['ticket'])) if d.get('ticket') else ''}，"
                                          "请留意叫号；号票遗失请到咨询台补打。",
                                          "Your ticket was printed"
                                          f"{(' (' + str(d['ticket']) + ')') if d.get('ticket') else ''}: "
                                          "watch for your number. Lost it? Ask at the help desk for a reprint.")),
        "BOOKING_CANCELLED": (Bi("此预约已取消", "This booking was cancelled"),
                              Bi("请重新预约，或取号排队办理。", "Please book again, or take a ticket and wait.")),
        "BOOKING_CODE_LIMIT": (Bi("输错次数过多", "Too many wrong codes"),
                               Bi(f"本机一分钟内输错预约码次数过多，请 {d.get('retry_after') or 60} 秒后再试。",
                                  f"Too many wrong booking codes on this kiosk within a minute: please try again "
                                  f"in {d.get('retry_after') or 60} s.")),
        "BOOKING_NO_SHOW": (Bi("此预约已过期", "This booking has expired"),
                            Bi("请重新预约，或取号排队办理。", "Please book again, or take a ticket and wait.")),
        "NOT_REMOTE": (Bi("这张号票无需签到", "This ticket needs no check-in"),
                       Bi("这是现场取的号票，请留意叫号。", "It was taken here at the hall: just watch for your "
                          "number.")),
        "ALREADY_CHECKED_IN": (Bi("此号票已签到", "Already checked in"),
                               Bi("请留意叫号。", "Please watch for your number.")),
        "REMOTE_LAPSED": (Bi("此号票已过签到时间", "Too late to check this ticket in"),
                          Bi("号票已作废，请重新取号。", "The ticket has lapsed: please take a new one.")),
        "NOT_WAITING": (Bi("此号票已不在排队", "This ticket is no longer waiting"),
                        Bi("如需办理请重新取号。", "To be served, please take a new ticket.")),
        "UNKNOWN_TICKET": (Bi("没有找到此号票", "Ticket not found"),
                           Bi("号票可能是其他日期的，请重新取号。", "It may be from another day: please take a new "
                              "ticket.")),
        "UNKNOWN_TOKEN": (Bi("没有找到此号票", "Ticket not found"),
                          Bi("号票可能是其他日期的，请重新取号。", "It may be from another day: please take a new "
                             "ticket.")),
        "UNAVAILABLE": (Bi("签到未完成", "Not checked in"),
                        Bi("叫号服务器没有响应，请稍后再试一次。", "The ticket server did not answer: please try "
                           "again in a moment.")),
        "NOT_RECOGNISED": (NOT_RECOGNISED,
                           Bi("请扫描预约或号票上的二维码，或点“预约签到”输入预约码。",
                              "Please scan the QR code of your booking or ticket, or tap \"Appointment check-in\" "
                              "to type your code.")),
    }
    if code in table:
        title, body = table[code]
    else:
        title = Bi("签到未完成", "Not checked in")
        body = message if message is not None and message.zh else Bi(f"系统拒绝：{code}", f"Refused: {code}")
    return title, Bi(f"{body.zh}\n{go.zh}", f"{body.en}\n{go.en}")
