"""Device keys for CurveZMQ: the broker's key pair and an allow-list of device keys with roles.

Layout of a keys directory (``queuehall keys init DIR``)::

    DIR/broker.key            broker public key (give to every device)
    DIR/broker.key_secret     broker secret key (owner-only, stays on the broker)
    DIR/devices/NAME.key      allow-list: one public key per device, with role metadata
    DIR/secret/NAME.key_secret  the device's key pair, to copy onto that device (owner-only)

A device's role is ``kiosk``, ``counter`` (with its counter number), ``display``, ``web``
(the web gateway, docs/web.md) or ``admin``; the broker reads it from the allow-list, never from what the device says.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import zmq.auth

from queuehall.protocol import ROLES


class KeyError_(ValueError):
    """A key operation that cannot be done (bad name, role, missing file)."""


@dataclass(frozen=True)
class Device:
    name: str
    role: str
    counter: int | None
    public_key: bytes  # Z85


_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


def init_keys(directory: str | Path) -> Path:
    """Create the broker's key pair in ``directory`` (kept if it already exists)."""
    d = Path(directory)
    (d / "devices").mkdir(parents=True, exist_ok=True)
    (d / "secret").mkdir(parents=True, exist_ok=True)
    os.chmod(d / "secret", 0o700)
    if not (d / "broker.key_secret").exists():
        public, secret = zmq.curve_keypair()
        _write_certificate(d / "broker.key_secret", "broker", public, {}, secret)
        _write_certificate(d / "broker.key", "broker", public, {})
    return d


def add_device(directory: str | Path, name: str, role: str, counter: int | None = None) -> Device:
    """Create a key pair for a device and put its public key on the allow-list."""
    if not _NAME.match(name):
        raise KeyError_(f"device name {name!r}: use letters, digits, '_', '-', '.' (at most 40)")
    if role not in ROLES:
        raise KeyError_(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if role == "counter" and (counter is None or counter <= 0):
        raise KeyError_("a counter key needs --counter N (a positive counter number)")
    if counter is not None and (role not in ("counter", "display") or counter <= 0):
        raise KeyError_("--counter N goes with a counter key, or a display key of a counter's own screen "
                        "(its evaluator: docs/evaluation.md)")
    d = init_keys(directory)
    if (d / "devices" / f"{name}.key").exists():
        raise KeyError_(f"device {name!r} already exists; remove it first")
    meta = {"role": role}
    if counter is not None:  # a counter key, or a counter's own screen (it rates that counter's visits)
        meta["counter"] = str(counter)
    # Written here, not with zmq.auth.create_certificates: that puts the metadata only in the
    # secret file, and unquoted, so the allow-list entry would carry no role.
    public, secret = zmq.curve_keypair()
    _write_certificate(d / "secret" / f"{name}.key_secret", name, public, meta, secret)
    tmp = d / "devices" / f".{name}.key.tmp"
    _write_certificate(tmp, name, public, meta)
    os.replace(tmp, d / "devices" / f"{name}.key")  # the broker never sees a half-written entry
    return load_device(d / "devices" / f"{name}.key")


def _write_certificate(path: Path, name: str, public: bytes, meta: dict[str, str],
                       secret: bytes | None = None) -> None:
    """A ZeroMQ certificate (ZPL, as ``zmq.auth.load_certificate`` reads) with quoted metadata."""
    kind = "secret" if secret is not None else "public"
    lines = [f"#   queuehall device {name}: ZeroMQ CURVE {kind} certificate", "metadata"]
    lines += [f'    {k} = "{v}"' for k, v in meta.items()]
    lines += ["curve", f'    public-key = "{public.decode()}"']
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode()}"')
    # A secret file is created owner-only, never readable by others even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret is not None else 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def remove_device(directory: str | Path, name: str) -> list[Path]:
    """Take a device off the allow-list (its key is refused from then on) and delete its secret file.

    The secret file in ``DIR/secret/`` is the copy made for the device; keeping it would leave a key
    pair lying around for a device that no longer exists (and ``add`` of the same name would
    overwrite it anyway). Returns the files deleted; KeyError_ if the device is unknown.
    """
    if not _NAME.match(name):
        raise KeyError_(f"device name {name!r}: use letters, digits, '_', '-', '.' (at most 40)")
    d = Path(directory)
    files = [d / "devices" / f"{name}.key", d / "secret" / f"{name}.key_secret"]
    if not files[0].exists():
        raise KeyError_(f"no device {name!r}")
    removed = []
    for p in files:  # the allow-list entry first: the key is refused even if deleting the secret fails
        if p.exists():
            p.unlink()
            removed.append(p)
    return removed


def load_device(path: str | Path) -> Device:
    text = Path(path).read_text(encoding="utf-8")
    pub, _ = zmq.auth.load_certificate(str(path))
    role = re.search(r'^\s*role\s*=\s*"?([a-z]*)"?\s*$', text, re.M)
    counter = re.search(r'^\s*counter\s*=\s*"?(\d+)"?\s*$', text, re.M)
    if role is None or role.group(1) not in ROLES:
        raise KeyError_(f"{path}: missing or unknown role")
    return Device(name=Path(path).stem, role=role.group(1),
                  counter=int(counter.group(1)) if counter else None, public_key=pub)


def list_devices(directory: str | Path) -> list[Device]:
    d = Path(directory) / "devices"
    return [load_device(p) for p in sorted(d.glob("*.key"))] if d.exists() else []


def broker_keys(directory: str | Path) -> tuple[bytes, bytes]:
    """The broker's (public, secret) key pair."""
    p = Path(directory) / "broker.key_secret"
    if not p.exists():
        raise KeyError_(f"{p} missing: run 'queuehall keys init {directory}'")
    pub, sec = zmq.auth.load_certificate(str(p))
    assert sec is not None
    return pub, sec


def device_keys(secret_file: str | Path) -> tuple[bytes, bytes]:
    """A device's (public, secret) key pair from its ``.key_secret`` file."""
    pub, sec = zmq.auth.load_certificate(str(secret_file))
    if sec is None:
        raise KeyError_(f"{secret_file} holds no secret key")
    return pub, sec


def server_public_key(path: str | Path) -> bytes:
    """The broker's public key from ``broker.key`` (or its secret file)."""
    pub, _ = zmq.auth.load_certificate(str(path))
    return pub
