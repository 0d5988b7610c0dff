"""Request and reply with the broker: :class:`BrokerClient`, the device's keys, the broker's address.

The blocking client the command line, scripts, tests and :class:`queuehall.client.Link` use (the zguide's Lazy
Pirate: on a timeout the socket is closed and reopened and the *same* request id is sent again, so the broker
answers a retry with the original reply instead of doing the work twice). ``queuehall.client`` re-exports all of
it. It is a module of its own because a hardware call button runs ``queuehall call N`` as a whole process on
every press (docs/cli.md): this module imports zmq and the protocol and nothing else, no threads, queues,
logging setup or clock (logging is loaded only to report a retry).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, NamedTuple

import zmq

from queuehall.protocol import ProtocolError, Reply, Request, decode_reply, encode_request, new_id

if TYPE_CHECKING:
    import logging

ENV_BROKER = "QUEUEHALL_BROKER"
STANDBY_CODE = "BROKER_STANDBY"  # the reply of a broker that is not serving (docs/standby.md)
STANDBY_PAUSE = 0.1  # after every broker listed said BROKER_STANDBY, wait this long before asking again


def _log() -> logging.Logger:
    """The client library's logger, ``queuehall.client`` (logging is imported only when there is something to say)."""
    import logging

    return logging.getLogger("queuehall.client")


class BrokerUnavailable(Exception):
    """The broker did not answer within the timeout after all retries."""


class CommandRefused(Exception):
    """The broker refused the command; ``code`` is the stable error code."""

    def __init__(self, error: dict[str, Any]) -> None:
        self.error = error
        self.code = str(error.get("code", "UNKNOWN"))
        self.message_zh = str(error.get("message_zh", ""))
        self.message_en = str(error.get("message_en", ""))
        self.details = error.get("details", {})
        super().__init__(f"{self.code}: {self.message_en}")


class Security(NamedTuple):
    """CurveZMQ keys of a device: its own pair and the broker's public key (all Z85)."""

    public_key: bytes
    secret_key: bytes
    server_key: bytes

    @classmethod
    def from_files(cls, secret_file: str, server_key_file: str) -> Security:
        pub, sec = load_certificate(secret_file)
        server, _ = load_certificate(server_key_file)
        if sec is None:
            raise ValueError(f"{secret_file} holds no secret key")
        return cls(pub, sec, server)

    @classmethod
    def from_options(cls, key: str | None, server_key: str | None) -> Security | None:
        """The keys a command line's ``--key``/``--server-key`` name: None when neither is given (no CurveZMQ);
        ValueError when only one is, or a file cannot be read or holds no secret key."""
        if not (key or server_key):
            return None
        if not (key and server_key):
            raise ValueError("--key and --server-key go together")
        try:
            return cls.from_files(key, server_key)
        except OSError as err:
            raise ValueError(f"cannot read a key file: {err}") from None

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_publickey = self.public_key
        sock.curve_secretkey = self.secret_key
        sock.curve_serverkey = self.server_key


def load_certificate(filename: str) -> tuple[bytes, bytes | None]:
    """The public and the secret key (None if absent) of a ZeroMQ certificate file, as ``zmq.auth.load_certificate``
    reads them (the same lines, the same errors: OSError for a missing file, ValueError without a public key).

    Read here because ``zmq.auth`` imports logging, datetime and glob: milliseconds of every keyed call button press
    (tests/test_cli.py checks both read every certificate ``queuehall keys`` writes alike)."""
    public_key = secret_key = None
    if not os.path.exists(filename):
        raise OSError(f"Invalid certificate file: {filename}")
    with open(filename, "rb") as f:
        for raw in f:
            line = raw.strip()
            if line.startswith(b"#"):
                continue
            if line.startswith(b"public-key"):
                public_key = line.split(b"=", 1)[1].strip(b" \t'\"")
            if line.startswith(b"secret-key"):
                secret_key = line.split(b"=", 1)[1].strip(b" \t'\"")
            if public_key and secret_key:
                break
    if public_key is None:
        raise ValueError(f"No public key found in {filename}")
    return public_key, secret_key


def parse_endpoints(value: str | None) -> list[tuple[str, int]]:
    """``HOST:PORT[,HOST:PORT...]`` (or ``$QUEUEHALL_BROKER``, default ``127.0.0.1:5555``) -> every broker's
    (host, command port), in the order given: a primary/standby pair lists both (docs/standby.md)."""
    value = value or os.environ.get(ENV_BROKER) or "127.0.0.1:5555"
    out = []
    for part in value.split(","):
        host, sep, port = part.strip().rpartition(":")
        if not sep or not port.isdigit() or not host or not 0 < int(port) < 65534:
            raise ValueError(f"broker address {value!r}: expected HOST:PORT (several separated by commas)")
        out.append((host, int(port)))
    return out


def parse_endpoint(value: str | None) -> tuple[str, int]:
    """The first broker of :func:`parse_endpoints` (all of them are checked)."""
    return parse_endpoints(value)[0]


def _standby(rep: Reply) -> bool:
    """Whether ``rep`` says its broker is a standby not serving now (try the next address)."""
    return not rep.ok and (rep.error or {}).get("code") == STANDBY_CODE


def _readable(sock: zmq.Socket) -> bool:
    """Whether a message waits on ``sock``: its ZMQ_EVENTS, without the poller ``poll(0)`` builds each
    time. Reading ZMQ_EVENTS also processes the socket's pending commands."""
    return bool(int(sock.get(zmq.EVENTS)) & zmq.POLLIN)


def _socket(ctx: zmq.Context, kind: int, security: Security | None) -> zmq.Socket:
    s = ctx.socket(kind)
    s.linger = 0
    if security is not None:
        security.apply(s)
    return s


class BrokerClient:
    """Blocking request/reply with the broker (CLI, scripts, tests, the Link thread)."""

    def __init__(self, endpoint: str | None = None, *, client_id: str | None = None,
                 security: Security | None = None, timeout: float = 2.0, retries: int = 2,
                 context: zmq.Context | None = None, standard_json: bool = False) -> None:
        self.endpoints = parse_endpoints(endpoint)
        self._current = 0  # the broker last found serving
        self.client_id = client_id or f"c-{new_id()[:12]}"
        self.security = security
        self.timeout = timeout
        self.retries = retries
        self.ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        # The standard library's json instead of orjson: for a process that sends one command and exits
        # (queuehall.protocol, encode_request).
        self.standard_json = standard_json

    @property
    def host(self) -> str:
        return self.endpoints[self._current][0]

    @property
    def port(self) -> int:
        return self.endpoints[self._current][1]

    def _connect(self) -> zmq.Socket:
        if self._sock is None:
            self._sock = _socket(self.ctx, zmq.DEALER, self.security)
            self._sock.connect(f"tcp://{self.host}:{self.port}")
        return self._sock

    def _next_broker(self) -> None:
        """Close the socket and move to the next address listed (the same one if only one is)."""
        self.close()
        self._current = (self._current + 1) % len(self.endpoints)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def send(self, req: Request) -> Reply:
        """Send ``req`` (retrying with the same id) and return the broker's reply.

        With several broker addresses, a broker that does not answer within the timeout or answers
        BROKER_STANDBY is left for the next one, with the same request id: a command the old primary
        stored before it died is answered by the new one with its first reply, not done twice. Each
        address gets ``retries + 1`` time-outs at most; standby answers (a takeover under way) are retried for
        as long, and returned if no broker listed serves by then. A single address's standby answer is
        returned at once."""
        req.client = req.client or self.client_id
        frame = encode_request(req, standard_json=self.standard_json)
        standby: Reply | None = None
        said_standby = 0  # brokers in a row that answered BROKER_STANDBY
        attempts = (self.retries + 1) * len(self.endpoints)  # time-outs and unsendable tries allowed
        patience = time.monotonic() + self.timeout * attempts  # how long standby answers are retried
        attempt = 0
        while attempt < attempts and (standby is None or time.monotonic() < patience):
            sock = self._connect()
            try:
                # Never blocks: a DEALER whose only connection was already cut (a refused CurveZMQ
                # handshake can end it before this send) would otherwise wait here for good.
                sock.send(frame, zmq.NOBLOCK)
            except zmq.Again:
                _log().info("no connection to send %s on (attempt %d), reconnecting", req.type, attempt + 1)
                attempt += 1
                self._next_broker()
                continue
            deadline = time.monotonic() + self.timeout
            rep: Reply | None = None
            while (left := deadline - time.monotonic()) > 0:
                if not sock.poll(round(left * 1000), zmq.POLLIN):
                    break
                try:
                    got = decode_reply(sock.recv(), standard_json=self.standard_json)
                except ProtocolError:
                    continue
                if got.re == req.id:
                    rep = got
                    break
                # A late reply to an earlier request: ignore it.
            if rep is not None and (not _standby(rep) or len(self.endpoints) == 1):
                return rep  # (a lone broker's standby answer too: there is no other to try)
            if rep is None:
                _log().info("no reply to %s from %s:%d (attempt %d), trying %s", req.type, self.host, self.port,
                         attempt + 1, "the next broker" if len(self.endpoints) > 1 else "again")
                attempt += 1
                said_standby = 0
            else:
                standby, said_standby = rep, said_standby + 1
                if said_standby >= len(self.endpoints):  # every one is a standby for now: a takeover is under way
                    time.sleep(STANDBY_PAUSE)
                    said_standby = 0
            self._next_broker()  # Lazy Pirate: a fresh socket, the same request id
        if standby is not None:
            return standby
        names = ", ".join(f"{h}:{p}" for h, p in self.endpoints)
        raise BrokerUnavailable(f"broker {names} did not answer {req.type}")

    def request(self, type_: str, **args: Any) -> dict[str, Any]:
        """Run a command; return its result or raise :class:`CommandRefused` / :class:`BrokerUnavailable`."""
        rep = self.send(Request(type=type_, args={k: v for k, v in args.items() if v is not None}))
        if not rep.ok:
            raise CommandRefused(rep.error or {})
        return rep.result or {}
