"""API tokens of the REST API: random secrets with scopes that mirror the device roles.

A token reads ``qh_<id>_<secret>``: ``id`` is 8 lowercase hex digits, public, and only finds the
token's row; ``secret`` is 32 random bytes (256 bits) in URL-safe base64. Only a hash of the
secret is stored, with the token's name, scopes and times; the whole token is shown once, when it
is made (``queuehall web-token create``), and cannot be recovered afterwards.

Why a fast hash and not a slow one (the house rule for secrets): slow salted hashes (scrypt,
Argon2) protect *guessable* secrets such as PINs and passwords against someone who stole the
hashes. A token is not guessable: with 256 random bits, even a stolen hash cannot be reversed by
trying secrets, however fast each try is. A slow hash would only make every API request cost
tens of milliseconds of CPU. So the secret is hashed with HMAC-SHA-256 under a random per-token
salt and compared in constant time.

Scopes (docs/web.md):

* ``read``: the public reads (hall status, services, a ticket's status by its token);
* ``kiosk``: remote ticket taking (WeChat mini program, 一网通办) and check-in, plus ``read``;
* ``counter:N``: the counter actions of counter N (an integration box at window N), plus ``read``;
* ``admin``: everything, any counter;
* ``hall:NAME`` (with any of the above): only at that hall of a city gateway (its ``--broker NAME=`` or its own
  id); a token with no ``hall:`` scope is valid at every hall of its gateway. Several may be given.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from queuehall.web.state import StateDB, api_tokens, open_state
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

TOKEN_RE = re.compile(r"qh_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
PLAIN_SCOPES = ("read", "kiosk", "admin")
_COUNTER_SCOPE = re.compile(r"counter:([1-9][0-9]{0,5})")
_HALL_SCOPE = re.compile(r"hall:([A-Za-z0-9._-]{1,64})")



class TokenError(ValueError):
    """A bad scope, name or token reference (the CLI prints it and exits 2)."""


def parse_scope(text: str) -> str:
    """A scope as given on the command line, checked: ``read``, ``kiosk``, ``admin``, ``counter:N`` or
    ``hall:NAME`` (the hall's name kept as written)."""
    if _HALL_SCOPE.fullmatch(text.strip()):
        return text.strip()
    s = text.strip().lower()
    if s in PLAIN_SCOPES or _COUNTER_SCOPE.fullmatch(s):
        return s
    raise TokenError(f"unknown scope {text!r}: expected read, kiosk, admin, counter:N (N a counter number) "
                     "or hall:NAME")


def token_halls(scopes: tuple[str, ...]) -> set[str]:
    """The halls named by a token's ``hall:NAME`` scopes (empty: every hall of the gateway)."""
    return {s.split(":", 1)[1] for s in scopes if s.startswith("hall:")}


def allows_hall(scopes: tuple[str, ...], names: set[str]) -> bool:
    """Whether a token with ``scopes`` is valid at the hall that answers to ``names`` (its key and id)."""
    halls = token_halls(scopes)
    return not halls or bool(halls & names)


def allows(scopes: tuple[str, ...], need: str, counter: int | None = None) -> bool:
    """Whether a token with ``scopes`` may do what needs ``need`` (``read``, ``kiosk``, ``counter`` or ``admin``).

    ``need="counter"`` asks for the counter actions of ``counter``: ``counter:N`` allows them for N only.
    ``admin`` allows everything; ``kiosk`` and any ``counter:N`` include ``read``.
    """
    if "admin" in scopes:
        return True
    if need == "read":
        return any(s in ("read", "kiosk") or s.startswith("counter:") for s in scopes)
    if need == "kiosk":
        return "kiosk" in scopes
    if need == "counter":
        return counter is not None and f"counter:{counter}" in scopes
    return False


def token_counters(scopes: tuple[str, ...]) -> list[int]:
    """The counter numbers named by a token's ``counter:N`` scopes."""
    return sorted(int(s.split(":", 1)[1]) for s in scopes if s.startswith("counter:"))


@dataclass(frozen=True)
class TokenInfo:
    """A token's record, without its secret."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: str
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "scopes": list(self.scopes), "created_at": self.created_at,
                "revoked_at": self.revoked_at, "active": self.active}


def _hash(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("ascii"), hashlib.sha256).digest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _info(row: tuple[Any, ...]) -> TokenInfo:
    return TokenInfo(id=row[0], name=row[1], scopes=tuple(row[2].split()), created_at=row[3], revoked_at=row[4])


def public_id(presented: str) -> str | None:
    """The public id of a presented token (for rate limits and logs), or None if it is not shaped like one."""
    m = TOKEN_RE.fullmatch(presented.strip())
    return m.group(1) if m else None


class TokenStore:
    """API tokens in the gateway's state (web/state.py: a SQLite file or a shared PostgreSQL database). Safe
    to share between threads; several gateways on one database see each other's tokens at once."""

    def __init__(self, path: str | Path | sqlite3.Connection | StateDB) -> None:
        self.db = open_state(path)

    def close(self) -> None:
        self.db.close()

    def create(self, name: str, scopes: list[str]) -> tuple[str, TokenInfo]:
        """Make a token; return the whole token (shown once, never stored) and its record."""
        name = name.strip()
        if not name or len(name) > 80:
            raise TokenError("a token needs a name of 1 to 80 characters (who or what uses it)")
        checked = tuple(dict.fromkeys(parse_scope(s) for s in scopes))
        if not checked:
            raise TokenError("a token needs at least one --scope")
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        for _ in range(20):  # 32-bit ids: a clash is rare, and retried
            tid = secrets.token_hex(4)
            try:
                with self.db.write() as conn:
                    conn.execute(api_tokens.insert().values(id=tid, name=name, scopes=" ".join(checked), salt=salt,
                                                            hash=_hash(salt, secret), created_at=_now()))
                break
            except IntegrityError:
                continue
        else:  # pragma: no cover - 20 clashes in a row cannot happen in practice
            raise TokenError("could not find a free token id")
        info = self.get(tid)
        assert info is not None
        return f"qh_{tid}_{secret}", info

    _COLUMNS = (api_tokens.c.id, api_tokens.c.name, api_tokens.c.scopes, api_tokens.c.created_at,
                api_tokens.c.revoked_at)

    def get(self, tid: str) -> TokenInfo | None:
        with self.db.read() as conn:
            row = conn.execute(select(*self._COLUMNS).where(api_tokens.c.id == tid)).first()
        return _info(tuple(row)) if row else None

    def list(self, *, include_revoked: bool = True) -> list[TokenInfo]:
        with self.db.read() as conn:
            rows = conn.execute(select(*self._COLUMNS).order_by(api_tokens.c.created_at, api_tokens.c.id)).all()
        return [t for t in (_info(tuple(r)) for r in rows) if include_revoked or t.active]

    def revoke(self, ref: str) -> TokenInfo:
        """Revoke the token with this id (or whole token, or unique name); takes effect on the next request."""
        ref = ref.strip()
        tid = public_id(ref) or ref
        with self.db.write() as conn:
            found = conn.execute(select(api_tokens.c.id).where(api_tokens.c.id == tid)).first()
            if found is None:
                rows = conn.execute(select(api_tokens.c.id).where(api_tokens.c.name == ref,
                                                                  api_tokens.c.revoked_at.is_(None))).all()
                if len(rows) > 1:
                    raise TokenError(f"{len(rows)} active tokens are named {ref!r}; revoke by id")
                found = rows[0] if rows else None
            if found is None:
                raise TokenError(f"no token {ref!r}")
            conn.execute(update(api_tokens).where(api_tokens.c.id == found[0], api_tokens.c.revoked_at.is_(None))
                         .values(revoked_at=_now()))
        info = self.get(found[0])
        assert info is not None
        return info

    def verify(self, presented: str | None) -> TokenInfo | None:
        """The active token ``presented`` is (``qh_<id>_<secret>``), or None for anything else.

        Read from the state on every call, so a token revoked by the CLI (another process, or another
        gateway on the same database) is refused from the next request on.
        """
        if not presented:
            return None
        m = TOKEN_RE.fullmatch(presented.strip())
        if m is None:
            return None
        tid, secret = m.groups()
        with self.db.read() as conn:
            row = conn.execute(select(*self._COLUMNS, api_tokens.c.salt, api_tokens.c.hash)
                               .where(api_tokens.c.id == tid)).first()
        if row is None or row[4] is not None or not hmac.compare_digest(_hash(row[5], secret), row[6]):
            return None
        return _info(tuple(row[:5]))
