"""PINs stored only as salted slow hashes (clerks' sign-in PINs, the kiosk's staff PIN).

The standard library's scrypt (:func:`hashlib.scrypt`), no extra dependency. A stored hash
describes itself, so the cost can be raised later without breaking the PINs already set::

    scrypt$<n>$<r>$<p>$<salt, base64>$<hash, base64>

:data:`DEFAULT_COST` is n = 2**14, r = 8, p = 1 (16 MiB of memory; docs/benchmarks.md has the time it
takes), a 16-byte random salt and a 32-byte hash. :func:`verify_pin` compares in constant time. Why not
more: the broker checks a PIN on its one command thread, and a 4-12 digit PIN is protected online by
the lockout (5 wrong PINs lock the clerk), not by the hash; the hash only keeps a stolen database from
giving the PINs away at a glance and makes trying every PIN offline slow.
Pure Python: the engine verifies PINs with it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

PIN_RE = re.compile(r"[0-9]{4,12}")  # what a clerk or a member of staff may type on a keypad
SALT_BYTES = 16
HASH_BYTES = 32
# Bounds on what a stored hash may ask for: a corrupt or hostile row must not make a
# sign-in allocate gigabytes or run for minutes.
MAX_N, MAX_R, MAX_P = 2**20, 32, 16


@dataclass(frozen=True)
class Cost:
    """scrypt's parameters: CPU/memory cost ``n`` (a power of two), block size ``r``, parallelism ``p``."""

    n: int
    r: int
    p: int

    def __post_init__(self) -> None:
        if not (2 <= self.n <= MAX_N and self.n & (self.n - 1) == 0 and 1 <= self.r <= MAX_R
                and 1 <= self.p <= MAX_P):
            raise ValueError(f"scrypt cost out of range: n={self.n} r={self.r} p={self.p}")

    @property
    def maxmem(self) -> int:
        """The memory limit handed to OpenSSL: what the cost needs, with room to spare."""
        return 128 * self.r * self.n * 2 + 1024 * 1024


DEFAULT_COST = Cost(n=2**14, r=8, p=1)


def valid_pin(pin: object) -> bool:
    """Whether ``pin`` is a string of 4-12 ASCII digits."""
    return isinstance(pin, str) and PIN_RE.fullmatch(pin) is not None


def hash_pin(pin: str, cost: Cost = DEFAULT_COST, *, salt: bytes | None = None) -> str:
    """The self-describing scrypt hash of ``pin`` with a fresh random salt (see the module docstring)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=cost.n, r=cost.r, p=cost.p,
                            maxmem=cost.maxmem, dklen=HASH_BYTES)
    return "$".join(("scrypt", str(cost.n), str(cost.r), str(cost.p), _b64(salt), _b64(digest)))


def parse_hash(encoded: str) -> tuple[Cost, bytes, bytes]:
    """The cost, salt and hash of a stored PIN hash; ValueError when it is not one."""
    parts = encoded.split("$") if isinstance(encoded, str) else []
    if len(parts) != 6 or parts[0] != "scrypt" or not all(p.isdecimal() for p in parts[1:4]):
        raise ValueError("not a queuehall PIN hash (scrypt$n$r$p$salt$hash)")
    try:
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except (binascii.Error, ValueError):
        raise ValueError("the salt or hash of a PIN hash is not base64") from None
    if not salt or len(digest) != HASH_BYTES:  # a cut hash must not verify against its prefix
        raise ValueError(f"a PIN hash needs a salt and a hash of {HASH_BYTES} bytes")
    return Cost(int(parts[1]), int(parts[2]), int(parts[3])), salt, digest


def verify_pin(pin: str, encoded: str) -> bool:
    """Whether ``pin`` matches the stored hash ``encoded``; False (never an error) for a bad hash.

    The final comparison is constant-time (:func:`hmac.compare_digest`)."""
    try:
        cost, salt, digest = parse_hash(encoded)
    except ValueError:
        return False
    if not isinstance(pin, str):
        return False
    computed = hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=cost.n, r=cost.r, p=cost.p,
                              maxmem=cost.maxmem, dklen=HASH_BYTES)
    return hmac.compare_digest(computed, digest)


def needs_rehash(encoded: str, cost: Cost = DEFAULT_COST) -> bool:
    """Whether a stored hash is weaker than ``cost`` (set the PIN again to raise it)."""
    try:
        stored, _salt, _digest = parse_hash(encoded)
    except ValueError:
        return True
    return stored.n < cost.n or stored.r < cost.r or stored.p < cost.p


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
