"""The hall's configuration: services, counters, clerks, opening hours and calling rules.

Loaded from TOML (``config/hall.toml`` by default) and validated when loaded. Every
problem is reported as a :class:`ConfigError` naming the file, the key and what is
wrong; callers (the CLI) print it and exit non-zero without starting.

This module is pure Python: no I/O except reading the file, no Qt, no sockets.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from queuehall.broker.alerts import AlertRules

from queuehall.errors import QueuehallError
from queuehall.text import EMPTY, Bi

# The default hall ships as package data of queuehall.config (installed or editable alike).
DEFAULT_CONFIG = Path(str(resources.files("queuehall.config").joinpath("hall.toml")))

#: The hall id of a configuration without ``[hall] id``: a single hall alone in its database (the SQLite
#: default). A database shared by several halls needs every hall's own id (docs/city.md).
DEFAULT_HALL_ID = "main"
#: A hall id: a short ASCII slug (lower-case letters, digits, ``-``), starting with a letter.
HALL_ID_RE = re.compile(r"[a-z][a-z0-9-]{0,31}")

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ConfigError(QueuehallError, ValueError):
    """A hall configuration that cannot be used.

    ``str(err)`` reads ``<file>: <key>: <problem>`` so an operator can find the line; the problem is written
    in both languages (``English / 中文``), so it is both messages.
    """

    def __init__(self, file: str | Path, key: str, problem: str, code: str = "CONFIG_INVALID") -> None:
        self.file = str(file)
        self.key = key
        self.problem = problem
        # code: stable, for programs and tests; the catalogue is in docs/configuration.md
        super().__init__(code, problem, problem, {"file": self.file, "key": key},
                         text=f"{self.file}: {key}: {problem}")


# A user-facing text in both languages: the one bilingual type of queuehall (queuehall/text.py).
Text = Bi


@dataclass(frozen=True)
class Department:
    code: str
    name: Text


@dataclass(frozen=True)
class PriorityClass:
    """A green-channel class (绿色通道), e.g. elderly, disabled, military, key projects."""

    code: str
    name: Text


@dataclass(frozen=True)
class Service:
    """One matter citizens queue for; its tickets are numbered ``prefix + number``."""

    code: str
    prefix: str
    name: Text
    department: str
    materials: tuple[Text, ...]
    promised_days: int  # 限时办结: promised completion in working days (0 = on the spot)
    target_wait_minutes: int  # SLA: a ticket should be called within this
    daily_cap: int  # tickets per business day; 0 = no cap
    cutoff_minutes: int  # stop issuing this many minutes before the day's closing
    priority_classes: tuple[str, ...]  # classes allowed to take a priority ticket here
    avg_service_minutes: float  # the estimate used before there is history
    description: Text | None = None
    # Remote tickets (WeChat mini program, 一网通办; docs/web.md): None = the hall's [hall] value.
    remote_quota: int | None = None  # remote tickets per business day; 0 = not offered remotely
    remote_arrival_minutes: int | None = None  # a remote ticket not checked in by issue + this lapses
    # Appointments (预约; docs/calling-rules.md): None = the hall's [appointments] value.
    appointments: bool | None = None  # whether this service takes bookings
    slot_minutes: int | None = None  # length of one booking slot
    slot_capacity: int | None = None  # citizens one slot takes, walk-in share included
    # What the service is in the hall's routine, beyond a matter citizens queue for: "fee" = the hall's fee
    # payment (统一收费: the 收费窗口 designated by the finance bureau collects the fees of every matter);
    # None = an ordinary service. The counter's transfer dialog lists fee services and their windows first.
    role: str | None = None


SERVICE_ROLES = ("fee",)


@dataclass(frozen=True)
class Clerk:
    """A member of staff who may sign in at counters. Their PIN is not here: only its hash is kept,
    in the broker's database (``queuehall clerks set-pin``)."""

    id: str
    name: Text


@dataclass(frozen=True)
class Counter:
    """A window (窗口). ``services`` is the calling order; ``weights`` (if any) switch to weighted choice."""

    number: int
    name: Text
    services: tuple[str, ...]
    weights: dict[str, int] = field(default_factory=dict)
    clerk_a: str = ""
    clerk_b: str = ""


@dataclass(frozen=True)
class PauseReason:
    code: str
    name: Text


@dataclass(frozen=True)
class Period:
    start: time
    end: time


@dataclass(frozen=True)
class Notice:
    """One year's holiday arrangement as the State Council's notice gives it
    (国务院办公厅关于某年部分节假日安排的通知): it replaces the holiday library for that year."""

    year: int
    title: str  # the notice's title or reference, for logs and the status reply ("" if not given)
    holidays: frozenset[date]  # every day off of the arrangement (放假), weekend days inside a block too
    working_days: frozenset[date]  # the make-up working days (调休上班)


@dataclass(frozen=True)
class Hours:
    """Opening hours per weekday (index 0 = Monday), holidays and make-up working days."""

    weekly: tuple[tuple[Period, ...], ...]  # 7 entries, Monday first; empty = closed
    chinese_calendar: bool  # close on China's statutory holidays, open on make-up working days
    closed_days: frozenset[date]
    working_days: frozenset[date]  # extra make-up working days (调休上班)
    makeup_hours: tuple[Period, ...]  # hours used on a make-up working day that is normally closed
    notices: tuple[Notice, ...] = ()  # official arrangements declared in hall.toml, by year


@dataclass(frozen=True)
class Calling:
    """The calling rules (documented in docs/calling-rules.md)."""

    max_recalls: int  # K: the K+1-th call attempt turns the ticket into a no-show
    noshow_grace_minutes: int  # a no-show can be reinstated within this
    noshow_reinstate: str  # "front" or "back"
    over_wait_minutes: int  # a ticket waiting longer than this is called first; 0 = off
    priority_streak: int  # at most this many priority tickets in a row, then a normal one
    # The business day closes this long after its last opening period ends (at the latest at midnight):
    # tickets still open become closed_unserved and counters are signed out (docs/calling-rules.md).
    close_after_minutes: int = 60


@dataclass(frozen=True)
class Rating:
    """好差评 after each visit (docs/evaluation.md)."""

    window_minutes: int = 30  # a finished visit may be rated until it ended this long ago
    # Level a visit left unrated gets when its window closes (marked default everywhere); 0 = none (the
    # national rules: no invented 好评).
    default_level: int = 0
    case_working_days: int = 15  # a 差评's follow-up (回访 and rectification) is due this many working days on


@dataclass(frozen=True)
class KioskRules:
    """The hall's kiosks (docs/configuration.md ``[kiosk]``): spoken guidance (适老化 语音引导)."""

    voice_guidance: bool = True  # a short spoken prompt at each step; staff may still mute one kiosk
    large_text_voice: bool = False  # with voice_guidance off: the large-text mode turns the guidance on


@dataclass(frozen=True)
class SignIn:
    """Clerk sign-in: ``lock_after`` wrong PINs in a row lock the clerk for ``lock_minutes``."""

    lock_after: int = 5
    lock_minutes: int = 15


@dataclass(frozen=True)
class Appointments:
    """Booked visits (预约), hall-wide; a service may set its own ``appointments``, ``slot_minutes`` and
    ``slot_capacity`` (docs/configuration.md ``[appointments]``, docs/calling-rules.md "Appointments")."""

    enabled: bool = False  # services take bookings unless they say otherwise
    slot_minutes: int = 30
    slot_capacity: int = 4  # citizens one slot of one service takes (bookings and walk-ins together)
    walkin_share: float = 0.5  # the share of every slot kept for walk-ins: bookable = floor(capacity * (1 - share))
    checkin_before_minutes: int = 15  # check-in opens this long before the slot starts ...
    checkin_after_minutes: int = 10  # ... and is on time until this long after; later: a normal ticket (late)
    book_ahead_days: int = 14  # slots up to this many days ahead may be booked
    streak: int = 2  # at most this many appointment tickets called in a row while a walk-in waits
    wrong_codes_per_minute: int = 10  # a device giving this many wrong booking codes in a minute waits (guessing)


@dataclass(frozen=True)
class HallConfig:
    name: Text
    timezone: str
    number_width: int
    retention_days: int
    ticket_footer: Text
    display_notice: Text
    calling: Calling
    hours: Hours
    departments: tuple[Department, ...]
    priority_classes: tuple[PriorityClass, ...]
    services: tuple[Service, ...]
    counters: tuple[Counter, ...]
    clerks: tuple[Clerk, ...]
    pause_reasons: tuple[PauseReason, ...]
    # Where the web gateway is reached from citizens' phones (docs/web.md); "" = no ticket pages in QR codes.
    public_base_url: str = ""
    # Remote tickets, hall-wide (each service may override): 0 = none are issued remotely.
    remote_quota: int = 0
    remote_arrival_minutes: int = 60
    # Where a citizen is sent when the kiosk cannot print their ticket, and whose counter screen shows
    # the kiosks' printer faults (None: every counter's, and the kiosk says "any counter").
    help_counter: int | None = None
    rating: Rating = Rating()
    alerts: AlertRules = field(default_factory=AlertRules)
    source: str = ""
    sign_in: SignIn = SignIn()
    # Every record in the database belongs to this hall ([hall] id; docs/city.md). hall_id_given: the file
    # named it (a database shared with other halls refuses a hall that did not).
    hall_id: str = DEFAULT_HALL_ID
    hall_id_given: bool = False
    # Where the hall is (a city's wait page and reports show it); empty when not given.
    address: Text = EMPTY
    appointments: Appointments = Appointments()
    kiosk: KioskRules = KioskRules()

    def service(self, code: str) -> Service | None:
        return next((s for s in self.services if s.code == code), None)

    def remote_rules(self, service: Service) -> tuple[int, int]:
        """(remote tickets per business day, minutes to check in) for ``service``: its own, else the hall's."""
        quota = service.remote_quota if service.remote_quota is not None else self.remote_quota
        minutes = (service.remote_arrival_minutes if service.remote_arrival_minutes is not None
                   else self.remote_arrival_minutes)
        return quota, minutes

    def booking_rules(self, service: Service) -> tuple[bool, int, int]:
        """(takes bookings, slot minutes, bookable places per slot) for ``service``: its own settings, else
        the hall's ``[appointments]``; the places are the slot's capacity less the walk-in share."""
        a = self.appointments
        offered = service.appointments if service.appointments is not None else a.enabled
        minutes = service.slot_minutes or a.slot_minutes
        capacity = service.slot_capacity if service.slot_capacity is not None else a.slot_capacity
        return offered, minutes, math.floor(capacity * (1 - a.walkin_share) + 1e-9)

    def counter(self, number: int) -> Counter | None:
        return next((c for c in self.counters if c.number == number), None)

    def clerk(self, clerk_id: str) -> Clerk | None:
        return self._clerks_by_id.get(clerk_id)

    @cached_property
    def _clerks_by_id(self) -> dict[str, Clerk]:
        # Looked up for every counter view the broker publishes: a dict, not a walk over every clerk.
        return {c.id: c for c in self.clerks}

    def department(self, code: str) -> Department | None:
        """The department with this code, or None."""
        return next((d for d in self.departments if d.code == code), None)

    def priority_class(self, code: str) -> PriorityClass | None:
        """The priority class (green channel) with this code, or None."""
        return next((p for p in self.priority_classes if p.code == code), None)

    def pause_reason(self, code: str) -> PauseReason | None:
        """The pause reason with this code, or None."""
        return next((r for r in self.pause_reasons if r.code == code), None)

    def counters_serving(self, service_code: str) -> tuple[Counter, ...]:
        """The counters whose ``services`` include ``service_code``, in file order."""
        return tuple(c for c in self.counters if service_code in c.services)

    def to_dict(self) -> dict[str, Any]:
        """This configuration in the TOML layout, with JSON-safe values (dates and periods as text).

        ``parse_config(cfg.to_dict(), src)`` gives back an equal configuration (apart from
        ``source``), so the result can be written out, or sent to clients as JSON.
        """
        return _to_dict(self)


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------

# The seeds: monitoring records are kept "半年以上" (more than half a year); 183 days is just over it.
MIN_RETENTION_DAYS = 183
NOSHOW_REINSTATE = ("front", "back")
TOP_LEVEL_KEYS = ("hall", "calling", "hours", "department", "priority", "service", "counter", "clerk",
                  "pause_reason", "rating", "alerts", "sign_in", "appointments", "kiosk")

_CODE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
_PREFIX_RE = re.compile(r"[A-Z]{1,2}")
_PERIOD_RE = re.compile(r"\s*([0-9]{2}):([0-9]{2})\s*-\s*([0-9]{2}):([0-9]{2})\s*")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MINUTES_PER_DAY = 24 * 60
_MISSING: Any = object()  # sentinel: "no default, the key is required"


def load_config(path: str | Path = DEFAULT_CONFIG) -> HallConfig:
    """Read and validate a hall configuration file (TOML, UTF-8; a BOM is tolerated).

    A file may start from another with ``extends = "shared.toml"`` (a path relative to the file;
    see :func:`read_toml`): what the parts of a city share is written once (docs/configuration.md,
    "Shared parts"). Returns a fully checked :class:`HallConfig` whose ``source`` is ``str(path)``.
    Raises :class:`ConfigError` for an unreadable file, invalid TOML, or any problem
    :func:`parse_config` finds; nothing else escapes.
    """
    return parse_config(read_toml(path), str(Path(path)))


#: How many files deep ``extends`` may go (a hall, its city's shared parts, a province's...).
MAX_EXTENDS = 8


def read_toml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The decoded TOML of ``path`` with its ``extends`` chain applied (``extends`` itself removed).

    ``extends = "FILE"`` (relative to the file naming it) makes FILE the starting point: the file's
    own tables are merged into FILE's key by key, recursively, and any other value (a string, a
    number, an array, an array of tables such as ``[[service]]``) replaces FILE's value whole.
    FILE may extend another file in turn; a loop or a chain deeper than :data:`MAX_EXTENDS` is
    refused (``CONFIG_EXTENDS``), as is a FILE that cannot be read (``CONFIG_UNREADABLE``, naming it).
    """
    p = Path(path)
    data = _read_one(p)
    if "extends" not in data:
        return data
    base_name = data.pop("extends")
    if not isinstance(base_name, str) or not base_name.strip():
        raise ConfigError(p, "extends", _bilingual(f"is {_kind(base_name)}; expected the path of a TOML file",
                                                   "须为另一个 TOML 文件的路径"), "CONFIG_EXTENDS")
    base = (p.parent / base_name).resolve()
    chain = (*_seen, p.resolve())
    if base in chain or len(chain) > MAX_EXTENDS:
        names = " -> ".join(str(x) for x in (*chain, base))
        raise ConfigError(p, "extends", _bilingual(f"the files extend each other in a loop or too deeply: {names}",
                                                   f"配置文件循环引用或层数过多（最多{MAX_EXTENDS}层）"),
                          "CONFIG_EXTENDS")
    return _merge_tables(read_toml(base, chain), data)


def _merge_tables(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge_tables(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_one(p: Path) -> dict[str, Any]:
    try:
        raw = p.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(p, "(file)", _bilingual(f"cannot read the file: {reason}", "无法读取配置文件"),
                          "CONFIG_UNREADABLE") from exc
    try:
        # utf-8-sig: Windows Notepad saves Chinese text with a byte-order mark; TOML itself forbids it.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(p, "(file)", _bilingual(
            f"the file is not UTF-8 text (bad byte at offset {exc.start}); save it as UTF-8",
            "文件不是UTF-8编码，请以UTF-8格式保存"), "CONFIG_UNREADABLE") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(p, "(toml)", _bilingual(f"not valid TOML: {exc}", "TOML语法错误"),
                          "CONFIG_SYNTAX") from exc
    return data


def parse_config(data: dict[str, Any], source: str) -> HallConfig:
    """Validate a configuration already decoded from TOML (or built in code) and build it.

    ``data`` has the layout described in docs/configuration.md; ``source`` names where it
    came from and is used in errors and as ``HallConfig.source``. Raises
    :class:`ConfigError` for the first problem found, with a dotted key such as
    ``service[3].prefix`` (array indices count from 1, in file order).
    """
    return _Parser(source).parse(data)


def _bilingual(en: str, zh: str) -> str:
    return f"{en} / {zh}"


def _kind(value: object) -> str:
    """How a TOML value's type is named in error messages."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime):
        return "a date-time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, time):
        return "a time"
    return type(value).__name__


class _Parser:
    """Builds a HallConfig from decoded TOML, failing with a ConfigError on the first problem."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, code: str, en: str, zh: str) -> NoReturn:
        raise ConfigError(self.source, key, _bilingual(en, zh), code)

    # -- the whole file -------------------------------------------------------------------

    def parse(self, data: dict[str, Any]) -> HallConfig:
        top = _Table(self, data, "", TOP_LEVEL_KEYS, "a TOML document")
        hall = _Table(self, top.get("hall"), "hall",
                      ("id", "name", "address", "timezone", "number_width", "retention_days", "ticket_footer",
                       "display_notice", "public_base_url", "remote_quota", "remote_arrival_minutes",
                       "help_counter"),
                      "a table [hall]")
        hall_id = self.hall_id(hall)
        name = hall.text("name")
        address = hall.text("address", Text("", ""))
        timezone = self.timezone(hall)
        number_width = hall.integer("number_width", 3, 2, 5)
        retention_days = hall.integer("retention_days", 366, 0)
        if retention_days < MIN_RETENTION_DAYS:
            self.fail("hall.retention_days", "CONFIG_RETENTION",
                      f"is {retention_days}; must be at least {MIN_RETENTION_DAYS} days "
                      "(records are kept more than half a year)",
                      f"记录须保存半年以上，至少{MIN_RETENTION_DAYS}天")
        ticket_footer = hall.text("ticket_footer", Text("", ""))
        display_notice = hall.text("display_notice", Text("", ""))
        public_base_url = self.public_base_url(hall)
        remote_quota = hall.integer("remote_quota", 0, 0, 10**5)
        remote_arrival = hall.integer("remote_arrival_minutes", 60, 1, _MINUTES_PER_DAY)

        calling = self.calling(top.get("calling", {}))
        rating = self.rating(top.get("rating", {}))
        alerts = self.alerts(top.get("alerts", {}))
        sign_in = self.sign_in(top.get("sign_in", {}))
        kiosk = self.kiosk(top.get("kiosk", {}))
        appointments = self.appointments(top.get("appointments", {}))
        hours = self.hours(top.get("hours"))

        departments = tuple(Department(t.code("code"), t.text("name"))
                            for t in self.array(top, "department", ("code", "name"), required=True))
        self.unique("department", "code", [d.code for d in departments])
        priorities = tuple(PriorityClass(t.code("code"), t.text("name"))
                           for t in self.array(top, "priority", ("code", "name"), required=False))
        self.unique("priority", "code", [p.code for p in priorities])

        services = tuple(self.service(t, number_width, departments, priorities)
                         for t in self.array(top, "service", _SERVICE_KEYS, required=True))
        self.unique("service", "code", [s.code for s in services])
        self.unique("service", "prefix", [s.prefix for s in services])

        clerks = tuple(self.clerk(t) for t in self.array(top, "clerk", ("id", "name", "pin"), required=True))
        self.unique("clerk", "id", [c.id for c in clerks])

        counters = tuple(self.counter(t, services, clerks)
                         for t in self.array(top, "counter", _COUNTER_KEYS, required=True))
        self.unique("counter", "number", [c.number for c in counters])
        self.unique("counter", "clerk_a", [c.clerk_a for c in counters],
                    ("a clerk can hold the A post of one counter only", "一名工作人员只能担任一个窗口的A岗"))
        for i, s in enumerate(services, 1):
            if not any(s.code in c.services for c in counters):
                self.fail(f"service[{i}].code", "CONFIG_UNSERVED",
                          f"no counter serves {s.code!r}; add it to some [[counter]]'s services",
                          f"没有窗口办理业务“{s.code}”，请加入某个窗口的services")

        pause_reasons = tuple(PauseReason(t.code("code"), t.text("name"))
                              for t in self.array(top, "pause_reason", ("code", "name"), required=True))
        self.unique("pause_reason", "code", [r.code for r in pause_reasons])
        help_counter = self.help_counter(hall, counters)

        return HallConfig(
            name=name, timezone=timezone, number_width=number_width, retention_days=retention_days,
            ticket_footer=ticket_footer, display_notice=display_notice, calling=calling, hours=hours,
            departments=departments, priority_classes=priorities, services=services, counters=counters,
            clerks=clerks, pause_reasons=pause_reasons, public_base_url=public_base_url,
            remote_quota=remote_quota, remote_arrival_minutes=remote_arrival,
            help_counter=help_counter, rating=rating, alerts=alerts, source=self.source,
            sign_in=sign_in, hall_id=hall_id or DEFAULT_HALL_ID, hall_id_given=hall_id is not None,
            address=address, appointments=appointments, kiosk=kiosk,
        )

    def hall_id(self, hall: _Table) -> str | None:
        """``hall.id``: a short ASCII slug (None when not given: the single-hall default)."""
        if not hall.has("id"):
            return None
        v = hall.string("id")
        if not HALL_ID_RE.fullmatch(v):
            self.fail("hall.id", "CONFIG_BAD_HALL_ID",
                      f"{v!r} must be a short ASCII slug: lower-case letters, digits and '-', starting with a "
                      "letter, at most 32 characters (e.g. 'dongcheng')",
                      "大厅编号须为简短的英文标识：小写字母、数字和“-”，以字母开头，不超过32个字符（如 dongcheng）")
        return v

    def public_base_url(self, hall: _Table) -> str:
        """``hall.public_base_url``: an absolute http(s) URL without query or fragment; the trailing
        slash is dropped so ``{base}/t/{token}`` is the page's address."""
        if not hall.has("public_base_url"):
            return ""
        v = hall.string("public_base_url")
        clean = clean_public_base_url(v)
        if clean is None:
            self.fail("hall.public_base_url", "CONFIG_BAD_URL",
                      f"{v!r} must be an absolute http:// or https:// address without ?query or #fragment, "
                      "e.g. 'https://queue.example.gov.cn'",
                      "须为以 http:// 或 https:// 开头的完整网址，不含 ? 或 #")
        return clean

    # -- sections -------------------------------------------------------------------------

    def help_counter(self, hall: _Table, counters: tuple[Counter, ...]) -> int | None:
        """``hall.help_counter``: the number of a [[counter]] (optional)."""
        if not hall.has("help_counter"):
            return None
        number = hall.integer("help_counter", None, 1)
        known = [c.number for c in counters]
        if number not in known:
            self.fail("hall.help_counter", "CONFIG_UNKNOWN_REF",
                      f"{number} is not the number of a [[counter]] defined in this file "
                      f"(known: {', '.join(map(str, known))}); the help counter is where the kiosk sends a "
                      "citizen whose ticket could not be printed",
                      f"帮助窗口须为本文件中已定义的窗口号（现有：{'、'.join(map(str, known))}）；"
                      "取号机出票失败时请市民到此窗口")
        return number

    def timezone(self, hall: _Table) -> str:
        tz = hall.string("timezone", "Asia/Shanghai")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail("hall.timezone", "CONFIG_BAD_TIMEZONE",
                      f"{tz!r} is not a known IANA time zone; expected e.g. 'Asia/Shanghai'",
                      "不是有效的时区名称，例如 Asia/Shanghai")
        return tz

    def calling(self, value: object) -> Calling:
        t = _Table(self, value, "calling", ("max_recalls", "noshow_grace_minutes", "noshow_reinstate",
                                            "over_wait_minutes", "priority_streak", "close_after_minutes"),
                   "a table [calling]")
        max_recalls = t.integer("max_recalls", 2, 0, 10)
        grace = t.integer("noshow_grace_minutes", 30, 0, _MINUTES_PER_DAY)
        reinstate = t.string("noshow_reinstate", "back")
        if reinstate not in NOSHOW_REINSTATE:
            self.fail("calling.noshow_reinstate", "CONFIG_BAD_CHOICE",
                      f"is {reinstate!r}; expected \"front\" or \"back\"",
                      "取值须为 front（排到队首）或 back（排到队尾）")
        over_wait = t.integer("over_wait_minutes", 0, 0, _MINUTES_PER_DAY)
        streak = t.integer("priority_streak", 2, 1, 20)
        close_after = t.integer("close_after_minutes", 60, 0, 12 * 60)
        return Calling(max_recalls, grace, reinstate, over_wait, streak, close_after)

    def rating(self, value: object) -> Rating:
        t = _Table(self, value, "rating", ("window_minutes", "default_level", "case_working_days"),
                   "a table [rating]")
        return Rating(window_minutes=t.integer("window_minutes", 30, 1, 7 * _MINUTES_PER_DAY),
                      default_level=t.integer("default_level", 0, 0, 5),
                      case_working_days=t.integer("case_working_days", 15, 1, 365))

    def alerts(self, value: object) -> AlertRules:
        flags = ("enabled", "wait_over_target", "no_open_counter", "counter_unstaffed", "device_offline",
                 "printer_fault", "bad_rating", "case_overdue", "calendar", "promise_at_risk")
        t = _Table(self, value, "alerts", (*flags, "paused_minutes"), "a table [alerts]")
        return AlertRules(paused_minutes=t.integer("paused_minutes", 15, 0, _MINUTES_PER_DAY),
                          **{f: t.boolean(f, True) for f in flags})

    def sign_in(self, value: object) -> SignIn:
        t = _Table(self, value, "sign_in", ("lock_after", "lock_minutes"), "a table [sign_in]")
        return SignIn(t.integer("lock_after", 5, 1, 100), t.integer("lock_minutes", 15, 1, _MINUTES_PER_DAY))

    def kiosk(self, value: object) -> KioskRules:
        t = _Table(self, value, "kiosk", ("voice_guidance", "large_text_voice"), "a table [kiosk]")
        return KioskRules(voice_guidance=t.boolean("voice_guidance", True),
                          large_text_voice=t.boolean("large_text_voice", False))

    def appointments(self, value: object) -> Appointments:
        t = _Table(self, value, "appointments", ("enabled", "slot_minutes", "slot_capacity", "walkin_share",
                                                 "checkin_before_minutes", "checkin_after_minutes",
                                                 "book_ahead_days", "streak", "wrong_codes_per_minute"),
                   "a table [appointments]")
        share = t.get("walkin_share", 0.5)
        if t.has("walkin_share"):
            t._typed("walkin_share", isinstance(share, int | float) and not isinstance(share, bool), "a number",
                     "须为数字")
            if not 0 <= share <= 1:
                self.fail("appointments.walkin_share", "CONFIG_OUT_OF_RANGE",
                          f"is {share}; expected a share from 0 to 1 (0.5: half of every slot kept for walk-ins)",
                          "须为0到1之间的比例（0.5即每个时段留一半给现场取号）")
        return Appointments(enabled=t.boolean("enabled", False), slot_minutes=t.integer("slot_minutes", 30, 5, 240),
                            slot_capacity=t.integer("slot_capacity", 4, 1, 1000), walkin_share=float(share),
                            checkin_before_minutes=t.integer("checkin_before_minutes", 15, 0, 240),
                            checkin_after_minutes=t.integer("checkin_after_minutes", 10, 0, 240),
                            book_ahead_days=t.integer("book_ahead_days", 14, 0, 366),
                            streak=t.integer("streak", 2, 1, 20),
                            wrong_codes_per_minute=t.integer("wrong_codes_per_minute", 10, 1, 1000))

    def hours(self, value: object) -> Hours:
        t = _Table(self, value, "hours",
                   (*WEEKDAYS, "chinese_calendar", "closed_days", "working_days", "makeup_hours", "notice"),
                   "a table [hours]")
        weekly = tuple(self.periods(t.items(day), f"hours.{day}") for day in WEEKDAYS)
        if not any(weekly):
            self.fail("hours", "CONFIG_NEVER_OPEN",
                      "the hall is open on no weekday; give mon..sun some hours", "每周没有任何办公时间")
        chinese_calendar = t.boolean("chinese_calendar", True)
        closed = self.dates(t.items("closed_days", []), "hours.closed_days")
        working = self.dates(t.items("working_days", []), "hours.working_days")
        for i, d in enumerate(working, 1):
            if d in closed:
                self.fail(f"hours.working_days[{i}]", "CONFIG_DATE_CONFLICT",
                          f"{d.isoformat()} is also in hours.closed_days; a day is either closed or working",
                          "同一天不能既是休息日又是工作日")
        if t.has("makeup_hours"):
            makeup = self.periods(t.items("makeup_hours"), "hours.makeup_hours")
            if not makeup and (chinese_calendar or working):
                self.fail("hours.makeup_hours", "CONFIG_NO_MAKEUP_HOURS",
                          "is empty, but make-up working days can occur (chinese_calendar or working_days); "
                          "give the hours of a make-up day, e.g. [\"08:30-11:30\", \"13:30-17:00\"]",
                          "调休上班日需要办公时间")
        else:
            makeup = next(p for p in weekly if p)  # default: the first open weekday's hours, Monday first
        notices = tuple(self.notice(n) for n in self.array(t, "notice", ("year", "title", "holidays", "working_days"),
                                                             required=False))
        self.unique("hours.notice", "year", [n.year for n in notices],
                    ("one [[hours.notice]] per year", "每年只能有一个 [[hours.notice]]"))
        if notices and not makeup:
            self.fail("hours.makeup_hours", "CONFIG_NO_MAKEUP_HOURS",
                      "is empty, but [[hours.notice]] can list make-up working days; give the hours of a make-up "
                      "day, e.g. [\"08:30-11:30\", \"13:30-17:00\"]", "调休上班日需要办公时间")
        return Hours(weekly, chinese_calendar, frozenset(closed), frozenset(working), makeup, notices)

    def notice(self, t: _Table) -> Notice:
        """One ``[[hours.notice]]``: a year's official arrangement (its dates may reach into the years
        around it: a make-up Sunday at the end of December belongs to the next year's New Year)."""
        year = t.integer("year", _MISSING, 2000, 2100)
        title = t.string("title", "")
        holidays = self.date_ranges(t.items("holidays", _MISSING), t.key("holidays"))
        working = self.date_ranges(t.items("working_days", []), t.key("working_days"))
        for key, days in (("holidays", holidays), ("working_days", working)):
            for d in days:
                if abs(d.year - year) > 1:
                    self.fail(t.key(key), "CONFIG_BAD_DATE",
                              f"{d.isoformat()} is too far from the notice's year {year}",
                              f"日期 {d.isoformat()} 不属于 {year} 年的节假日安排")
        both = sorted(set(holidays) & set(working))
        if both:
            self.fail(t.key("working_days"), "CONFIG_DATE_CONFLICT",
                      f"{both[0].isoformat()} is also in holidays; a day is either off or a working day",
                      "同一天不能既放假又调休上班")
        return Notice(year, title, frozenset(holidays), frozenset(working))

    def date_value(self, item: object, k: str) -> date:
        """One date: a TOML date or a string ``YYYY-MM-DD``."""
        if isinstance(item, date) and not isinstance(item, datetime):
            return item
        if isinstance(item, str) and _DATE_RE.fullmatch(item):
            try:
                return date.fromisoformat(item)
            except ValueError:
                self.fail(k, "CONFIG_BAD_DATE", f"{item!r} is not a real date; expected YYYY-MM-DD",
                          "日期不存在，格式须为 YYYY-MM-DD")
        self.fail(k, "CONFIG_BAD_DATE", f"is {_kind(item)} {item!r}; expected an ISO date YYYY-MM-DD",
                  "日期格式须为 YYYY-MM-DD")

    def date_ranges(self, items: list[Any], key: str) -> list[date]:
        """Dates, or ranges written as the notice writes them: ``"2026-10-01..2026-10-08"`` (both ends
        included)."""
        out: list[date] = []
        for i, item in enumerate(items, 1):
            k = f"{key}[{i}]"
            if isinstance(item, str) and ".." in item:
                first, _, last = item.partition("..")
                a, b = (self.date_value(part.strip(), k) for part in (first, last))
                if b < a or (b - a).days > 31:
                    self.fail(k, "CONFIG_BAD_DATE", f"{item!r} is not a range of at most 32 days, first to last",
                              "日期范围须从早到晚，且不超过32天")
                days = [a + timedelta(days=n) for n in range((b - a).days + 1)]
            else:
                days = [self.date_value(item, k)]
            for d in days:
                if d in out:
                    self.fail(k, "CONFIG_DUPLICATE", f"{d.isoformat()} is listed twice", "日期重复")
                out.append(d)
        return out

    def periods(self, items: list[Any], key: str) -> tuple[Period, ...]:
        result: list[Period] = []
        for i, item in enumerate(items, 1):
            k = f"{key}[{i}]"
            p = self.period(item, k)
            if result and p.start < result[-1].end:
                self.fail(k, "CONFIG_PERIOD_ORDER",
                          f"{_fmt_period(p)} overlaps or comes before {_fmt_period(result[-1])}; "
                          "list a day's periods in order without overlaps",
                          "同一天的时段须按时间先后排列且不能重叠")
            result.append(p)
        return tuple(result)

    def period(self, item: object, key: str) -> Period:
        expected = 'expected "HH:MM-HH:MM" with start before end, e.g. "08:30-11:30"'
        zh = "格式须为 \"HH:MM-HH:MM\"（24小时制，开始早于结束）"
        if not isinstance(item, str):
            self.fail(key, "CONFIG_WRONG_TYPE", f"is {_kind(item)}; {expected}", zh)
        m = _PERIOD_RE.fullmatch(item)
        if m is None:
            self.fail(key, "CONFIG_BAD_PERIOD", f"{item!r} is not a period; {expected}", zh)
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            self.fail(key, "CONFIG_BAD_PERIOD", f"{item!r} has an impossible time; {expected}", zh)
        start, end = time(h1, m1), time(h2, m2)
        if start >= end:
            self.fail(key, "CONFIG_BAD_PERIOD", f"{item!r} does not end after it starts; {expected}", zh)
        return Period(start, end)

    def dates(self, items: list[Any], key: str) -> list[date]:
        result: list[date] = []
        for i, item in enumerate(items, 1):
            k = f"{key}[{i}]"
            d = self.date_value(item, k)
            if d in result:
                self.fail(k, "CONFIG_DUPLICATE", f"{d.isoformat()} is listed twice", "日期重复")
            result.append(d)
        return result

    def array(self, top: _Table, name: str, keys: tuple[str, ...], *, required: bool) -> list[_Table]:
        """The ``[[name]]`` array of tables, each wrapped for reading."""
        value = top.get(name, _MISSING if required else [])
        name = top.key(name)  # e.g. hours.notice, for the messages
        if isinstance(value, dict):
            self.fail(name, "CONFIG_WRONG_TYPE",
                      f"must be an array of tables: write [[{name}]], not [{name}]",
                      f"须写成 [[{name}]]（表数组）")
        if not isinstance(value, list):
            self.fail(name, "CONFIG_WRONG_TYPE", f"is {_kind(value)}; expected an array of tables [[{name}]]",
                      f"须写成 [[{name}]]（表数组）")
        if required and not value:
            self.fail(name, "CONFIG_EMPTY", f"at least one [[{name}]] is needed", f"至少需要一个 [[{name}]]")
        return [_Table(self, v, f"{name}[{i}]", keys, f"a table [[{name}]]") for i, v in enumerate(value, 1)]

    def service(self, t: _Table, number_width: int, departments: tuple[Department, ...],
                priorities: tuple[PriorityClass, ...]) -> Service:
        code = t.code("code")
        prefix = t.string("prefix")
        if not _PREFIX_RE.fullmatch(prefix):
            self.fail(t.key("prefix"), "CONFIG_BAD_PREFIX",
                      f"{prefix!r} must be 1–2 uppercase ASCII letters A–Z, e.g. \"A\"",
                      "号票前缀须为1–2个大写英文字母")
        name = t.text("name")
        department = t.ref("department", [d.code for d in departments], "department")
        materials = tuple(self.text(v, f"{t.key('materials')}[{i}]")
                          for i, v in enumerate(t.items("materials", []), 1))
        promised_days = t.integer("promised_days", 0, 0, 365)
        target_wait = t.integer("target_wait_minutes", 30, 1, _MINUTES_PER_DAY)
        daily_cap = t.integer("daily_cap", 0, 0)
        largest = 10**number_width - 1
        if daily_cap > largest:
            self.fail(t.key("daily_cap"), "CONFIG_OUT_OF_RANGE",
                      f"{daily_cap} tickets do not fit in hall.number_width = {number_width} "
                      f"(at most {largest})",
                      "每日限号超出号码位数")
        cutoff = t.integer("cutoff_minutes", 30, 0, _MINUTES_PER_DAY)
        classes = t.refs("priority_classes", [p.code for p in priorities], "priority", [])
        avg = t.number("avg_service_minutes", 10.0, 0.0, 480.0)
        description = t.text("description", None)
        remote_quota = t.integer("remote_quota", None, 0, 10**5)
        remote_arrival = t.integer("remote_arrival_minutes", None, 1, _MINUTES_PER_DAY)
        appointments = t.boolean("appointments", None)
        slot_minutes = t.integer("slot_minutes", None, 5, 240)
        slot_capacity = t.integer("slot_capacity", None, 1, 1000)
        role = t.string("role", None)
        if role is not None and role not in SERVICE_ROLES:
            self.fail(t.key("role"), "CONFIG_BAD_CHOICE",
                      f"is {role!r}; expected \"fee\" (the hall's fee payment, 统一收费) or no role at all",
                      "取值须为 fee（统一收费窗口办理的缴费）或不写")
        return Service(code, prefix, name, department, materials, promised_days, target_wait, daily_cap,
                       cutoff, classes, avg, description, remote_quota, remote_arrival, appointments, slot_minutes,
                       slot_capacity, role)

    def clerk(self, t: _Table) -> Clerk:
        clerk_id = t.code("id")
        name = t.text("name")
        if t.has("pin"):
            # PINs used to be written here in plain text, in a file that ships with the package and
            # that counters read. Refuse to start rather than ignore it: the operator must move them.
            self.fail(t.key("pin"), "CONFIG_PIN_IN_FILE",
                      "PINs are no longer kept in hall.toml: delete this line and set the PIN with "
                      f"'queuehall clerks set-pin {clerk_id}' (or hash every PIN of this file into the database "
                      "once with 'queuehall clerks import-pins --config FILE', then delete the pin lines)",
                      f"hall.toml 不再保存密码：请删除此行，并用“queuehall clerks set-pin {clerk_id}”设置密码"
                      "（或用“queuehall clerks import-pins --config 文件”把本文件中的密码一次性导入数据库，"
                      "再删除各 pin 行）")
        return Clerk(clerk_id, name)

    def counter(self, t: _Table, services: tuple[Service, ...], clerks: tuple[Clerk, ...]) -> Counter:
        number = t.integer("number", _MISSING, 1, 999)
        name = t.text("name", Text(f"{number}号窗口", f"Window {number}"))
        codes = t.refs("services", [s.code for s in services], "service", _MISSING)
        if not codes:
            self.fail(t.key("services"), "CONFIG_EMPTY", "a counter must serve at least one service",
                      "窗口至少办理一项业务")
        weights: dict[str, int] = {}
        if t.has("weights"):
            wt = t.get("weights")
            if not isinstance(wt, dict):
                self.fail(t.key("weights"), "CONFIG_WRONG_TYPE",
                          f"is {_kind(wt)}; expected a table like {{ {codes[0]} = 2 }}",
                          "须为表，如 {业务代码 = 权重}")
            for svc, w in wt.items():
                k = f"{t.key('weights')}.{svc}"
                if svc not in codes:
                    self.fail(k, "CONFIG_BAD_WEIGHTS",
                              f"{svc!r} is not one of this counter's services ({', '.join(codes)})",
                              "权重只能给本窗口办理的业务")
                if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 100:
                    self.fail(k, "CONFIG_BAD_WEIGHTS", f"is {w!r}; expected a whole number from 1 to 100",
                              "权重须为1–100的整数")
                weights[svc] = w
            missing = [c for c in codes if c not in weights]
            if weights and missing:
                self.fail(t.key("weights"), "CONFIG_BAD_WEIGHTS",
                          f"gives no weight to {', '.join(missing)}; weight every service or none",
                          "设置权重时须为本窗口每项业务都设置")
        clerk_ids = [c.id for c in clerks]
        clerk_a = t.ref("clerk_a", clerk_ids, "clerk")
        clerk_b = t.ref("clerk_b", clerk_ids, "clerk")
        if clerk_a == clerk_b:
            self.fail(t.key("clerk_b"), "CONFIG_SAME_CLERK",
                      f"is {clerk_b!r}, the same as clerk_a; the A and B posts need two different clerks",
                      "A岗与B岗须为不同的工作人员")
        return Counter(number, name, codes, weights, clerk_a, clerk_b)

    # -- shared checks --------------------------------------------------------------------

    def text(self, value: object, key: str) -> Text:
        t = _Table(self, value, key, ("zh", "en"), 'a table {zh = "…", en = "…"}')
        return Text(t.string("zh"), t.string("en"))

    def unique(self, array: str, field_name: str, values: list[Any],
               why: tuple[str, str] = ("must be unique", "须唯一")) -> None:
        seen: dict[Any, int] = {}
        for i, v in enumerate(values, 1):
            if v in seen:
                self.fail(f"{array}[{i}].{field_name}", "CONFIG_DUPLICATE",
                          f"{v!r} is already used by {array}[{seen[v]}]; {why[0]}",
                          f"与 {array}[{seen[v]}] 重复，{why[1]}")
            seen[v] = i


class _Table:
    """One TOML table being read: rejects unknown keys up front and reads typed values by name."""

    def __init__(self, parser: _Parser, value: object, path: str, allowed: tuple[str, ...],
                 expect: str) -> None:
        self.p = parser
        self.path = path
        if not isinstance(value, dict):
            parser.fail(path or "(file)", "CONFIG_WRONG_TYPE", f"is {_kind(value)}; expected {expect}",
                        "类型错误")
        self.data: dict[str, Any] = value
        for k in value:
            if k not in allowed:
                # Reject unknown keys so a typo ("prefx") is reported instead of silently ignored.
                close = difflib.get_close_matches(k, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                parser.fail(self.key(k), "CONFIG_UNKNOWN_KEY",
                            f"unknown key; {hint}allowed here: {', '.join(allowed)}", "未知的配置项")

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, default: Any = _MISSING) -> Any:
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            self.p.fail(self.key(name), "CONFIG_MISSING_KEY", "is required but missing", "缺少必填项")
        return default

    def _typed(self, name: str, ok: bool, expect: str, zh: str) -> None:
        if not ok:
            got = _kind(self.data[name])
            self.p.fail(self.key(name), "CONFIG_WRONG_TYPE", f"is {got}; expected {expect}", zh)

    def string(self, name: str, default: Any = _MISSING) -> str:
        if not self.has(name):
            return self.get(name, default)
        v = self.data[name]
        self._typed(name, isinstance(v, str), "a string", "须为字符串")
        if not v.strip():
            self.p.fail(self.key(name), "CONFIG_EMPTY", "must not be empty", "不能为空")
        return v.strip()

    def boolean(self, name: str, default: Any = _MISSING) -> bool:
        v = self.get(name, default)
        if self.has(name):
            self._typed(name, isinstance(v, bool), "true or false", "须为 true 或 false")
        return v

    def integer(self, name: str, default: Any, low: int, high: int | None = None) -> int:
        v = self.get(name, default)
        if not self.has(name):
            return v
        is_int = isinstance(v, int) and not isinstance(v, bool)
        self._typed(name, is_int, "a whole number", "须为整数")
        if v < low or (high is not None and v > high):
            span = f"from {low} to {high}" if high is not None else f"of at least {low}"
            zh = f"须为{low}–{high}的整数" if high is not None else f"须为不小于{low}的整数"
            self.p.fail(self.key(name), "CONFIG_OUT_OF_RANGE", f"is {v}; expected a whole number {span}", zh)
        return v

    def number(self, name: str, default: float, low: float, high: float) -> float:
        v = self.get(name, default)
        if not self.has(name):
            return v
        self._typed(name, isinstance(v, int | float) and not isinstance(v, bool), "a number",
                    "须为数字")
        if not low < v <= high:
            self.p.fail(self.key(name), "CONFIG_OUT_OF_RANGE",
                        f"is {v}; expected a number above {low:g} and at most {high:g}",
                        f"须大于{low:g}且不超过{high:g}")
        return float(v)

    def items(self, name: str, default: Any = _MISSING) -> list[Any]:
        v = self.get(name, default)
        if self.has(name):
            self._typed(name, isinstance(v, list), "an array [...]", "须为数组")
        return v

    def text(self, name: str, default: Any = _MISSING) -> Any:
        if not self.has(name):
            return self.get(name, default)
        return self.p.text(self.data[name], self.key(name))

    def code(self, name: str) -> str:
        v = self.string(name)
        if not _CODE_RE.fullmatch(v):
            self.p.fail(self.key(name), "CONFIG_BAD_CODE",
                        f"{v!r} must start with an ASCII letter and use only letters, digits, _ and - "
                        "(at most 32 characters)", "代码须以英文字母开头，只含字母、数字、_和-")
        return v

    def ref(self, name: str, known: list[str], what: str) -> str:
        v = self.string(name)
        if v not in known:
            self.unknown_ref(self.key(name), v, known, what)
        return v

    def unknown_ref(self, key: str, value: str, known: list[str], what: str) -> NoReturn:
        listing = ", ".join(known) or "none"
        self.p.fail(key, "CONFIG_UNKNOWN_REF",
                    f"{value!r} is not a [[{what}]] defined in this file (known: {listing})",
                    f"引用了未定义的 [[{what}]]")

    def refs(self, name: str, known: list[str], what: str, default: Any) -> tuple[str, ...]:
        items = self.items(name, default)
        result: list[str] = []
        for i, v in enumerate(items, 1):
            k = f"{self.key(name)}[{i}]"
            if not isinstance(v, str):
                self.p.fail(k, "CONFIG_WRONG_TYPE",
                            f"is {_kind(v)}; expected the code of a [[{what}]] as a string", "须为代码字符串")
            if v not in known:
                self.unknown_ref(k, v, known, what)
            if v in result:
                self.p.fail(k, "CONFIG_DUPLICATE", f"{v!r} is listed twice", "重复列出")
            result.append(v)
        return tuple(result)


_SERVICE_KEYS = ("code", "prefix", "name", "department", "materials", "promised_days", "target_wait_minutes",
                 "daily_cap", "cutoff_minutes", "priority_classes", "avg_service_minutes", "description",
                 "remote_quota", "remote_arrival_minutes", "appointments", "slot_minutes", "slot_capacity", "role")
_COUNTER_KEYS = ("number", "name", "services", "weights", "clerk_a", "clerk_b")


# ---------------------------------------------------------------------------------------------
# Export (the inverse of parse_config)
# ---------------------------------------------------------------------------------------------


def clean_public_base_url(value: str) -> str | None:
    """``value`` as a public base URL (an absolute http(s) address without query or fragment, its
    trailing slash dropped), or None when it is not one."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment \
            or any(c.isspace() for c in value):
        return None
    return value.rstrip("/")


def _fmt_period(p: Period) -> str:
    return f"{p.start:%H:%M}-{p.end:%H:%M}"


def _text(t: Text) -> dict[str, str]:
    return {"zh": t.zh, "en": t.en}


def _to_dict(cfg: HallConfig) -> dict[str, Any]:
    hall: dict[str, Any] = {"id": cfg.hall_id} if cfg.hall_id_given else {}
    hall |= {"name": _text(cfg.name)}
    if cfg.address.zh or cfg.address.en:
        hall["address"] = _text(cfg.address)
    hall |= {"timezone": cfg.timezone,
                            "number_width": cfg.number_width, "retention_days": cfg.retention_days}
    # Empty optional texts are the "not given" default; writing them out would not parse back.
    if cfg.ticket_footer.zh or cfg.ticket_footer.en:
        hall["ticket_footer"] = _text(cfg.ticket_footer)
    if cfg.display_notice.zh or cfg.display_notice.en:
        hall["display_notice"] = _text(cfg.display_notice)
    if cfg.public_base_url:
        hall["public_base_url"] = cfg.public_base_url
    hall["remote_quota"] = cfg.remote_quota
    hall["remote_arrival_minutes"] = cfg.remote_arrival_minutes
    if cfg.help_counter is not None:
        hall["help_counter"] = cfg.help_counter
    c, h = cfg.calling, cfg.hours
    hours: dict[str, Any] = {day: [_fmt_period(p) for p in h.weekly[i]] for i, day in enumerate(WEEKDAYS)}
    hours |= {"chinese_calendar": h.chinese_calendar,
              "closed_days": [d.isoformat() for d in sorted(h.closed_days)],
              "working_days": [d.isoformat() for d in sorted(h.working_days)],
              "makeup_hours": [_fmt_period(p) for p in h.makeup_hours]}
    if h.notices:
        hours["notice"] = [{"year": n.year, **({"title": n.title} if n.title else {}),
                            "holidays": [d.isoformat() for d in sorted(n.holidays)],
                            "working_days": [d.isoformat() for d in sorted(n.working_days)]} for n in h.notices]

    def service(s: Service) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": s.code, "prefix": s.prefix, "name": _text(s.name), "department": s.department,
            "materials": [_text(m) for m in s.materials], "promised_days": s.promised_days,
            "target_wait_minutes": s.target_wait_minutes, "daily_cap": s.daily_cap,
            "cutoff_minutes": s.cutoff_minutes, "priority_classes": list(s.priority_classes),
            "avg_service_minutes": s.avg_service_minutes,
        }
        if s.description is not None:
            out["description"] = _text(s.description)
        if s.remote_quota is not None:
            out["remote_quota"] = s.remote_quota
        if s.remote_arrival_minutes is not None:
            out["remote_arrival_minutes"] = s.remote_arrival_minutes
        for key in ("appointments", "slot_minutes", "slot_capacity", "role"):
            if getattr(s, key) is not None:
                out[key] = getattr(s, key)
        return out

    def counter(k: Counter) -> dict[str, Any]:
        out: dict[str, Any] = {"number": k.number, "name": _text(k.name), "services": list(k.services),
                               "clerk_a": k.clerk_a, "clerk_b": k.clerk_b}
        if k.weights:
            out["weights"] = dict(k.weights)
        return out

    return {
        "hall": hall,
        "calling": {"max_recalls": c.max_recalls, "noshow_grace_minutes": c.noshow_grace_minutes,
                    "noshow_reinstate": c.noshow_reinstate, "over_wait_minutes": c.over_wait_minutes,
                    "priority_streak": c.priority_streak, "close_after_minutes": c.close_after_minutes},
        "hours": hours,
        "rating": {"window_minutes": cfg.rating.window_minutes, "default_level": cfg.rating.default_level,
                   "case_working_days": cfg.rating.case_working_days},
        "alerts": dataclasses.asdict(cfg.alerts),
        "department": [{"code": d.code, "name": _text(d.name)} for d in cfg.departments],
        "priority": [{"code": p.code, "name": _text(p.name)} for p in cfg.priority_classes],
        "service": [service(s) for s in cfg.services],
        "counter": [counter(k) for k in cfg.counters],
        "clerk": [{"id": k.id, "name": _text(k.name)} for k in cfg.clerks],
        "sign_in": {"lock_after": cfg.sign_in.lock_after, "lock_minutes": cfg.sign_in.lock_minutes},
        "appointments": dataclasses.asdict(cfg.appointments),
        "kiosk": dataclasses.asdict(cfg.kiosk),
        "pause_reason": [{"code": r.code, "name": _text(r.name)} for r in cfg.pause_reasons],
    }
