"""The queuehall wire protocol: the only module that encodes and decodes messages.

docs/protocol.md is the contract; this module is its reference implementation (as
jupyter_client's ``Session``). Every message is one UTF-8 JSON object:

* request  ``{"v", "id", "type", "client", "time", "args"}``: ``id`` is unique per
  command and reused on retries, so the broker answers a retry with the original reply;
* reply    ``{"v", "id", "type": "<type>_reply", "re", "time", "status", "result"|"error"}``;
* publication (PUB socket, topic frame + body) ``{"v", "type", "epoch", "seq", "time", ...}``.

Unknown fields are ignored; unknown request types are answered with UNKNOWN_COMMAND.
Pure Python: no zmq import here.

Import time matters here: a hardware call button runs ``queuehall call N`` as a whole process on every press
(docs/cli.md), and that process loads this module. So it imports only what every user needs: orjson (which
itself imports dataclasses, inspect, uuid, enum and json) is loaded on the first encode or decode, the error
table only for an error reply, and the messages are plain classes rather than dataclasses. A process that sends
one command and exits encodes its request and decodes the reply with ``standard_json=True`` and never loads
orjson at all.
"""

from __future__ import annotations

import os
import time
import unicodedata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from queuehall.errors import HallError

VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024  # requests only: replies and publications (a snapshot) may be larger

# PUB topics (first frame); SUB filters on them.
TOPIC_EVENT = b"ev"
TOPIC_HEARTBEAT = b"hb"

# Roles that see the staff's view: notes and free-text reasons (docs/protocol.md, "What each role
# receives"). Their events come on the staff stream (port N+2), everyone else's on the public one (N+1).
STAFF_ROLES = ("counter", "admin")
STAFF_DOMAIN = "staff"  # the ZAP domain of the staff stream: only staff keys complete its handshake


def events_port(port: int, role: str) -> int:
    """The event stream a device of ``role`` follows, given the broker's command port."""
    return port + 2 if role in STAFF_ROLES else port + 1


# Roles a device key may carry (docs/protocol.md, "Roles").
ROLES = ("kiosk", "counter", "display", "admin", "web")


def clean_text(text: str) -> str:
    """``text`` without the whitespace and the invisible characters around it.

    Invisible: Unicode format characters (category Cf: U+200B-U+200D zero-width space and joiners,
    U+2060 word joiner, U+FEFF byte-order mark, U+00AD soft hyphen, bidi marks ...) and control
    characters (Cc). A string made only of them is empty: it names nothing and is no reason.
    """
    start, end = 0, len(text)
    while start < end and _invisible(text[start]):
        start += 1
    while end > start and _invisible(text[end - 1]):
        end -= 1
    return text[start:end]


def _invisible(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) in ("Cf", "Cc")


class ProtocolError(Exception):
    """A frame that is not a valid message; carries the stable error code."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}")


def now_iso() -> str:
    """The current UTC time to the millisecond, ``2026-12-08T01:30:00.123Z``."""
    now = time.time()
    seconds = int(now)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((now - seconds) * 1000):03d}Z"


def format_time(at: datetime) -> str:
    """A time as the wire carries it: ISO 8601 in UTC with ``Z`` (``2026-11-24T01:02:03Z``; microseconds when
    there are any). A naive ``at`` is taken as UTC."""
    from datetime import UTC  # here, not at the top: a one-shot `queuehall call` never loads datetime

    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(value: object) -> datetime | None:
    """A time from the wire (``…Z`` or an offset, as :func:`format_time` and :func:`now_iso` write it) as an
    aware UTC datetime; None for anything else (None, not a string, empty, garbage). The wire carries UTC only,
    so a time without an offset is read as UTC. The one parser of wire times for every part of queuehall."""
    if not isinstance(value, str) or not value:
        return None
    from datetime import UTC, datetime

    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def new_id() -> str:
    """A fresh message id: 32 random hexadecimal digits (128 bits, as a version-4 UUID's hex has 122)."""
    return os.urandom(16).hex()


class Request:
    """A command: ``type``, its ``args``, the sending ``client`` and the request ``id`` a retry reuses.

    A plain class with the fields of the envelope (docs/protocol.md), compared field by field."""

    FIELDS = ("type", "args", "client", "id", "time", "v")  # the envelope's, in its order
    __slots__ = FIELDS

    def __init__(self, type: str, args: dict[str, Any] | None = None, client: str = "", id: str | None = None,
                 time: str | None = None, v: int = VERSION) -> None:
        self.type = type
        self.args = {} if args is None else args
        self.client = client
        self.id = new_id() if id is None else id
        self.time = now_iso() if time is None else time
        self.v = v

    def __eq__(self, other: object) -> bool:
        return type(other) is Request and all(getattr(self, f) == getattr(other, f) for f in Request.FIELDS)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: unhashable

    def __repr__(self) -> str:
        return "Request(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in Request.FIELDS) + ")"


class Reply:
    """The broker's answer to a request ``re``: ``status`` ``ok`` with a ``result``, or ``error`` with an error."""

    FIELDS = ("type", "re", "status", "result", "error", "id", "time", "v")
    __slots__ = FIELDS

    def __init__(self, type: str, re: str, status: str, result: dict[str, Any] | None = None,
                 error: dict[str, Any] | None = None, id: str | None = None, time: str | None = None,
                 v: int = VERSION) -> None:
        self.type = type
        self.re = re
        self.status = status  # "ok" | "error"
        self.result = result
        self.error = error
        self.id = new_id() if id is None else id
        self.time = now_iso() if time is None else time
        self.v = v

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __eq__(self, other: object) -> bool:
        return type(other) is Reply and all(getattr(self, f) == getattr(other, f) for f in Reply.FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Reply(" + ", ".join(f"{f}={getattr(self, f)!r}" for f in Reply.FIELDS) + ")"


# orjson: the broker encodes every reply and event and every screen decodes them; the standard
# library took a fifth of the broker's time per command. Datetimes go through ``str`` as with
# ``json.dumps(default=str)``; integer keys become strings as json does. Loaded on first use (see above).
_orjson: Any = None


def _fast() -> Any:
    global _orjson
    if _orjson is None:
        import orjson

        _orjson = orjson
    return _orjson


# ``standard_json=True`` (encode_request, decode_reply): the standard library's json instead of orjson, for a
# process that sends one command and exits (``queuehall call N``, docs/cli.md), where orjson's import costs more
# than the whole command. The bytes are the same for the command line's requests (strings, integers, booleans:
# compact, UTF-8 unescaped; a float may be spelled otherwise, 1e-07 for 1e-7, and reads back the same), and both
# read the broker's replies alike (tests/test_client.py).


def _dump(obj: Any, standard_json: bool = False) -> bytes:
    if standard_json:
        import json

        return json.dumps(obj, default=str, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    orjson = _fast()
    return orjson.dumps(obj, default=str, option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS)


def preencoded(obj: Any) -> Any:
    """``obj`` encoded once, to go unchanged into many messages (a reply's ``result``): the broker
    sends the same snapshot to every screen that asks for it after a restart."""
    return _fast().Fragment(_dump(obj))


def json_text(obj: Any) -> str:
    """``obj`` as JSON text, exactly as in messages (the storage keeps event data and replies so)."""
    return _dump(obj).decode("utf-8")


def _load(frame: bytes, limit: int | None = None, standard_json: bool = False) -> dict[str, Any]:
    if limit is not None and len(frame) > limit:
        raise ProtocolError("MESSAGE_TOO_LARGE", f"{len(frame)} bytes > {limit}")
    try:
        if standard_json:
            import json

            obj = json.loads(frame)
        else:
            obj = _fast().loads(frame)
    # ValueError covers bad UTF-8, bad JSON, lone surrogates and nesting deeper than 1024 (orjson
    # reads integers beyond 64 bits as floats). Nothing may escape: one frame must not kill the broker.
    except (ValueError, RecursionError) as exc:
        raise ProtocolError("BAD_REQUEST", f"not UTF-8 JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("BAD_REQUEST", "a message must be a JSON object")
    return obj


def encode_request(req: Request, *, standard_json: bool = False) -> bytes:
    return _dump({"v": req.v, "id": req.id, "type": req.type, "client": req.client, "time": req.time,
                  "args": req.args}, standard_json)


def decode_request(frame: bytes) -> Request:
    """Parse a request; raise :class:`ProtocolError` (with the request id when known) if invalid."""
    obj = _load(frame, MAX_MESSAGE_BYTES)
    # The version first: another version may lay out the other fields differently.
    v = obj.get("v", VERSION)
    if type(v) is not int or v != VERSION:  # True == 1 and 1.0 == 1, but neither is version 1
        raise ProtocolError("UNSUPPORTED_VERSION", str(v)[:40])
    rid, mtype, client, args = obj.get("id"), obj.get("type"), obj.get("client", ""), obj.get("args", {})
    if not isinstance(rid, str) or not rid or len(rid) > 64:
        raise ProtocolError("BAD_REQUEST", "id must be a non-empty string of at most 64 characters")
    if not isinstance(mtype, str) or not mtype or len(mtype) > 64:
        raise ProtocolError("BAD_REQUEST", "type must be a non-empty string of at most 64 characters")
    # Retries are matched by (client, id): without a client, every such caller would answer the others'.
    if not isinstance(client, str) or not client or len(client) > 64:
        raise ProtocolError("BAD_REQUEST", "client must be a non-empty string of at most 64 characters")
    if not isinstance(args, dict):
        raise ProtocolError("BAD_REQUEST", "args must be an object")
    return Request(type=mtype, args=args, client=client, id=rid, time=str(obj.get("time", "")), v=v)


def request_id_of(frame: bytes) -> str:
    """Best-effort id of a frame that failed to parse, so the error reply can be matched."""
    try:
        rid = _fast().loads(frame).get("id")
        return rid if isinstance(rid, str) and len(rid) <= 64 else ""
    except Exception:
        return ""


def ok_reply(req_type: str, re: str, result: dict[str, Any]) -> Reply:
    return Reply(type=f"{req_type}_reply", re=re, status="ok", result=result)


def error_reply(req_type: str, re: str, err: HallError | ProtocolError) -> Reply:
    from queuehall.errors import HallError

    if isinstance(err, ProtocolError):
        err = HallError(err.code, detail=err.detail, version=err.detail, command=req_type)
    return Reply(type=f"{req_type or 'unknown'}_reply", re=re, status="error", error=err.to_dict())


def encode_reply(rep: Reply) -> bytes:
    body: dict[str, Any] = {"v": rep.v, "id": rep.id, "type": rep.type, "re": rep.re, "time": rep.time,
                            "status": rep.status}
    if rep.ok:
        body["result"] = rep.result or {}
    else:
        body["error"] = rep.error or {}
    return _dump(body)


def decode_reply(frame: bytes, *, standard_json: bool = False) -> Reply:
    obj = _load(frame, standard_json=standard_json)
    status = obj.get("status")
    if status not in ("ok", "error") or not isinstance(obj.get("re"), str):
        raise ProtocolError("BAD_REQUEST", "a reply needs status ok|error and re")
    return Reply(type=str(obj.get("type", "")), re=obj["re"], status=status,
                 result=obj.get("result") if status == "ok" else None,
                 error=obj.get("error") if status == "error" else None,
                 id=str(obj.get("id", "")), time=str(obj.get("time", "")), v=int(obj.get("v", VERSION)))


def encode_publication(topic: bytes, body: dict[str, Any]) -> list[bytes]:
    """Frames for the PUB socket: ``[topic, json]``; ``body`` already has epoch and seq."""
    return [topic, _dump({"v": VERSION, "time": now_iso(), **body})]


def decode_publication(frames: list[bytes]) -> tuple[bytes, dict[str, Any]]:
    if len(frames) != 2:
        raise ProtocolError("BAD_REQUEST", f"publication has {len(frames)} frames, expected 2")
    return frames[0], _load(frames[1])
