"""Appointments (预约): booking slots, booking codes and the contact a booking may carry.

Pure Python (the engine's layer): no sockets, no Qt, no SQL. The hall's rules for bookings (book, unbook,
check in, the calling rule, the day close) are commands of :class:`queuehall.broker.engine.Hall`; this
module holds what they are built from. docs/calling-rules.md "Appointments" is the specification.

**Slots.** A service that takes bookings has slots of ``slot_minutes`` laid from the start of each opening
period of a business day (the hall's hours and calendar, :mod:`queuehall.broker.hours`: sessions, the lunch
break between them, holidays and make-up working days), each wholly inside its period; a slot that would run
past the period's end is not offered. Each slot takes ``slot_capacity`` citizens, of whom the ``walkin_share``
is kept for walk-ins: ``floor(capacity * (1 - share))`` places are bookable.

**Codes.** A booking code is 10 characters from a 31-letter alphabet without look-alikes (no 0/O, 1/I/L):
8 random characters from the operating system's CSPRNG (31**8, about 40 bits), one *hall tag* derived from the
hall's identity and the random part, and one *check character* over the nine before it (a weighted sum modulo
31, a prime: every single mistyped character and every swap of two neighbours is caught). So a code typed wrong
is told apart from a code of another hall (right check, wrong tag) and from one that simply is not booked.

**Contact.** A booking may carry the citizen's phone or ID number for the hall's own check at check-in. Only
a masked form (``138****5678``, ``110***********1234``) for display and a salted keyed hash (HMAC-SHA-256 under
the hall's contact key, kept outside the database) for matching are kept; both are purged with the hall's records
(``retention_days``). See :func:`hash_contact` for why a keyed hash and not scrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import unquote, urlsplit

from queuehall.broker.hours import OpeningHours

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # 31 characters: no 0/O, 1/I/L
CODE_RANDOM = 8
CODE_LENGTH = CODE_RANDOM + 2
QR_PREFIX = "queuehall:booking:"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
_BASE = len(ALPHABET)

CONTACT_KEY_BYTES = 32  # the hall's contact key (the HMAC's pepper): 256 random bits, kept outside the database
_HMAC = "hmac-sha256"
_PHONE = re.compile(r"1[3-9][0-9]{9}")  # a mainland mobile number (11 digits)
_ID = re.compile(r"[0-9]{17}[0-9X]")  # a resident identity card number (18 characters)


def _check_char(body: str) -> str:
    """The check character of ``body``: weights 1, 2, 3 ... modulo 31 (a prime, so a single substitution or an
    adjacent swap always changes it)."""
    return ALPHABET[sum((i + 1) * _INDEX[c] for i, c in enumerate(body)) % _BASE]


def _hall_tag(hall: str, random_part: str) -> str:
    """One character tying a code to its hall: derived from the hall's identity and the random part."""
    digest = hashlib.sha256(f"{hall}\x00{random_part}".encode()).digest()
    return ALPHABET[int.from_bytes(digest[:4], "big") % _BASE]


def new_code(hall: str, random_part: str | None = None) -> str:
    """A fresh booking code of ``hall`` (``random_part``: 8 alphabet characters a test injects)."""
    body = random_part if random_part is not None else "".join(secrets.choice(ALPHABET) for _ in range(CODE_RANDOM))
    body += _hall_tag(hall, body)
    return body + _check_char(body)


def normalise_code(text: str) -> str:
    """A typed or scanned code as stored: the ``queuehall:booking:`` prefix or the booking page's address
    (``http(s)://…/b/<code>``, what the QR carries when the hall's public address is known) dropped, spaces and
    dashes dropped, upper case; no check (see :func:`code_problem`)."""
    s = text.strip()
    if s.lower().startswith(QR_PREFIX):
        s = s[len(QR_PREFIX):]
    elif s.lower().startswith(("http://", "https://")):
        parts = [p for p in urlsplit(s).path.split("/") if p]
        if len(parts) >= 2 and parts[-2].lower() == "b":
            s = unquote(parts[-1])
    return re.sub(r"[\s\-_]", "", s).upper()


def code_problem(code: str, hall: str) -> str | None:
    """Why ``code`` (normalised) cannot be a booking of ``hall``: ``"invalid"`` (wrong length, a character
    outside the alphabet, or a wrong check character: typed wrong), ``"other_hall"`` (a well-formed code whose
    hall tag is another hall's), or None."""
    if len(code) != CODE_LENGTH or any(c not in _INDEX for c in code):
        return "invalid"
    if _check_char(code[:-1]) != code[-1]:
        return "invalid"
    if _hall_tag(hall, code[:CODE_RANDOM]) != code[CODE_RANDOM]:
        return "other_hall"
    return None


def normalise_contact(text: str) -> str | None:
    """A phone number (11 digits, ``+86``/spaces/dashes dropped) or an ID number (18 characters, upper-case
    X), or None when it is neither."""
    s = re.sub(r"[\s\-()]", "", text).upper()
    if s.startswith("+86"):
        s = s[3:]
    if _PHONE.fullmatch(s) or _ID.fullmatch(s):
        return s
    return None


def mask_contact(contact: str) -> str:
    """What is shown of a normalised contact: ``138****5678`` for a phone, first 3 and last 4 of an ID."""
    if len(contact) == 11:
        return f"{contact[:3]}****{contact[-4:]}"
    return f"{contact[:3]}{'*' * (len(contact) - 7)}{contact[-4:]}"


def new_contact_key() -> bytes:
    """A fresh contact key (the broker keeps it in a file beside its keys: ``queuehall broker --contact-key``)."""
    return secrets.token_bytes(CONTACT_KEY_BYTES)


def contact_key_id(key: bytes) -> str:
    """A short public name of ``key`` (8 hex digits), stored with each hash: a hash made under another key (a
    key replaced or lost) is told apart from a contact that does not match."""
    return hashlib.sha256(b"queuehall contact key\x00" + key).hexdigest()[:8]


def hash_contact(contact: str, key: bytes, salt: bytes | None = None) -> str:
    """``hmac-sha256$keyid$salt$hash`` of a normalised contact: HMAC-SHA-256 under the hall's contact ``key``
    (a secret kept outside the database) of a fresh 16-byte salt and the contact.

    Why a keyed hash and not a slow salted one (scrypt, which this was until the booking's speed target was
    measured, bench/appointments_bench.py): a phone or ID number is no secret the citizen chose but a short,
    structured identifier. The masked form shows 7 of a phone's 11 digits, so 10,000 guesses find a phone
    number from any unkeyed hash, however slow (scrypt at 1 ms: 10 s), and an ID number's hidden characters
    (region, birth date, sequence) are some 10**7 to 10**8 guesses: hours at scrypt's cost, not a protection.
    A keyed hash cannot be tested at all by whoever holds only the database or a backup of it (the usual
    leak); whoever also holds the key recovers a phone number at once, as they nearly would with scrypt. And it
    takes microseconds instead of the millisecond scrypt took on the broker's one thread, in every booking
    with a contact (the largest part of a booking's own time). The salt keeps two bookings of one citizen
    unlinkable in the database. Losing the key loses nothing but the contact check of the bookings not yet
    checked in (:func:`contact_check`); the key is never in the database, the logs or a reply.
    """
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hmac.new(key, salt + b"\x00" + contact.encode(), hashlib.sha256).hexdigest()
    return f"{_HMAC}${contact_key_id(key)}${salt.hex()}${digest}"


def contact_check(contact: str, stored: str, key: bytes) -> str:
    """Whether a normalised contact is the one hashed in ``stored``: ``"match"``, ``"mismatch"``, or
    ``"unknown_key"`` (hashed under another contact key: it cannot be checked). Hashes of earlier versions
    (``scrypt$n$r$p$salt$hash``) are still checked. Constant-time comparison."""
    try:
        if stored.startswith(_HMAC + "$"):
            _, kid, salt, digest = stored.split("$")
            if not hmac.compare_digest(kid, contact_key_id(key)):
                return "unknown_key"
            got = hmac.new(key, bytes.fromhex(salt) + b"\x00" + contact.encode(), hashlib.sha256).hexdigest()
        else:
            _, n, r, p, salt, digest = stored.split("$")
            got = hashlib.scrypt(contact.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                                 dklen=32).hex()
    except (ValueError, TypeError):
        return "mismatch"
    return "match" if hmac.compare_digest(got, digest) else "mismatch"


def contact_matches(contact: str, stored: str, key: bytes) -> bool:
    """Whether a normalised contact is the one hashed in ``stored`` under ``key`` (see :func:`contact_check`)."""
    return contact_check(contact, stored, key) == "match"


@dataclass(frozen=True)
class Slot:
    """One booking slot of one service: its start and end (UTC) and the bookable places."""

    start: datetime
    end: datetime
    capacity: int


class SlotPlan:
    """The slots of each (service's slot length, business day), computed once per day from the hall's hours.

    Pure and cached: the calendar of a day never changes while the hall runs.
    """

    def __init__(self, hours: OpeningHours) -> None:
        self.hours = hours
        self._starts: dict[tuple[int, date], tuple[tuple[datetime, datetime], ...]] = {}
        self._shown: dict[tuple[int, date], tuple[tuple[str, str], ...]] = {}

    def starts(self, minutes: int, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """(start, end) in UTC of every slot of ``minutes`` on business day ``day``, in order."""
        key = (minutes, day)
        found = self._starts.get(key)
        if found is None:
            step = timedelta(minutes=minutes)
            out, shown = [], []
            for p in self.hours.periods_on(day):
                at = datetime.combine(day, p.start)  # the hall's wall clock: no DST in the hall's day
                end = datetime.combine(day, p.end)
                while at + step <= end:
                    nxt = at + step
                    out.append((at.replace(tzinfo=self.hours.tz).astimezone(UTC),
                                nxt.replace(tzinfo=self.hours.tz).astimezone(UTC)))
                    shown.append((at.strftime("%Y-%m-%dT%H:%M"), nxt.strftime("%Y-%m-%dT%H:%M")))
                    at = nxt
            found = self._starts[key] = tuple(out)
            self._shown[key] = tuple(shown)
        return found

    def shown(self, minutes: int, day: date) -> tuple[tuple[str, str], ...]:
        """:meth:`starts` as the wire shows them: hall local time ``YYYY-MM-DDTHH:MM`` (computed with them)."""
        self.starts(minutes, day)
        return self._shown[(minutes, day)]

    def find(self, minutes: int, day: date, start: datetime) -> tuple[datetime, datetime] | None:
        """The slot of ``minutes`` on ``day`` starting at ``start`` (UTC), or None."""
        return next((s for s in self.starts(minutes, day) if s[0] == start), None)

    def why_not(self, minutes: int, day: date, start: datetime) -> str:
        """Why ``start`` is no slot on ``day``: ``"closed"`` (no opening hours then: a holiday, a closed day,
        the lunch break, before opening or after closing) or ``"unknown"`` (open, but not a slot's start)."""
        local = start.astimezone(self.hours.tz)
        for p in self.hours.periods_on(day):
            if p.start <= local.time() < p.end:
                return "unknown"
        return "closed"
