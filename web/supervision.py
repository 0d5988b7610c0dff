"""The manager's supervision page (电子监察, docs/supervision.md) on the web gateway.

Behind a login for managers (accounts in the gateway's state file, passwords as scrypt hashes, made with
``queuehall web-manager add NAME``), the page shows the hall live: every counter with its state, clerk,
post and how long it has been in that state; every queue with its waiting count and longest wait against
its target; devices offline; today's figures; and the alerts of the broker (broker/alerts.py) as they are
raised and cleared, each with an acknowledge button (the broker's ``alert_ack``, with the manager's note).

Sessions: 256 random bits in a cookie ``qh_manager`` (HttpOnly, SameSite=Strict, Path=/supervision, Secure
when the gateway's public address is https), kept in the state file as a SHA-256 with their expiry
(``SESSION_HOURS``), so a gateway restart signs nobody out. The state goes to the page over Server-Sent
Events (``/supervision/api/stream``): the whole view on every change of the hall, at most every
``PUSH_INTERVAL`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import html
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson
from queuehall.web.errors import ApiError
from queuehall.web.hub import BrokerDown, Hub, Refused
from queuehall.web.state import StateDB, manager_sessions, managers, open_state
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from queuehall.client import StateMirror
from queuehall.payloads import decode_ticket
from queuehall.protocol import parse_time

COOKIE = "qh_manager"
SESSION_HOURS = 12
PUSH_INTERVAL = 0.2  # seconds between two pushes at most (a busy hall changes many times a second)
SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}  # ~50 ms per check: fine for a login, slow for a thief
MIN_PASSWORD = 8
ASSET_VERSION = "3"


class ManagerError(ValueError):
    """A manager account that cannot be made (bad name, short password, exists)."""


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=64 * 1024 * 1024)


class ManagerStore:
    """Manager accounts in the gateway's state (queuehall.web.state: a SQLite file, or a PostgreSQL database
    shared by several gateways): name, salt and scrypt hash."""

    def __init__(self, path: str | Path | sqlite3.Connection | StateDB) -> None:
        self.db = open_state(path)

    def close(self) -> None:
        self.db.close()

    def add(self, name: str, password: str, halls: list[str] | None = None) -> None:
        """Create the account ``name``; ManagerError for a bad name, a password under 8 characters, a
        name taken, a bad hall name. ``halls``: the halls of a city gateway it may supervise (none: all)."""
        name = name.strip()
        chosen = sorted({h.strip() for h in halls or [] if h.strip()})
        bad = [h for h in chosen if len(h) > 64 or not all(c.isalnum() or c in "._-" for c in h)]
        if bad:
            raise ManagerError(f"hall name {bad[0]!r}: letters, digits, '.', '_', '-'")
        if not name or len(name) > 40 or not all(c.isalnum() or c in "._-" for c in name):
            raise ManagerError(f"manager name {name!r}: letters, digits, '.', '_', '-' (at most 40)")
        if len(password) < MIN_PASSWORD:
            raise ManagerError(f"the password needs at least {MIN_PASSWORD} characters")
        salt = secrets.token_bytes(16)
        digest = _scrypt(password, salt, SCRYPT["n"], SCRYPT["r"], SCRYPT["p"])
        try:
            with self.db.write() as conn:
                conn.execute(managers.insert().values(name=name, salt=salt, hash=digest, n=SCRYPT["n"],
                                                      r=SCRYPT["r"], p=SCRYPT["p"],
                                                      created=datetime.now(UTC).isoformat(timespec="seconds"),
                                                      halls=" ".join(chosen) or None))
        except IntegrityError:
            raise ManagerError(f"manager {name!r} exists already") from None

    def halls_of(self, name: str) -> set[str] | None:
        """The halls account ``name`` may supervise; None: every hall of the gateway (or no such account)."""
        with self.db.read() as conn:
            value = conn.execute(select(managers.c.halls).where(managers.c.name == name)).scalar()
        return set(value.split()) if value else None

    def accounts(self) -> list[dict[str, Any]]:
        """Every account: its name and its halls (null: every hall)."""
        with self.db.read() as conn:
            rows = conn.execute(select(managers.c.name, managers.c.halls).order_by(managers.c.name)).all()
        return [{"name": r[0], "halls": r[1].split() if r[1] else None} for r in rows]

    def names(self) -> list[str]:
        with self.db.read() as conn:
            return [r[0] for r in conn.execute(select(managers.c.name).order_by(managers.c.name))]

    def remove(self, name: str) -> bool:
        """Remove the account ``name`` and end its sessions."""
        with self.db.write() as conn:
            conn.execute(delete(manager_sessions).where(manager_sessions.c.name == name))
            return conn.execute(delete(managers).where(managers.c.name == name)).rowcount > 0

    def hash_of(self, name: str) -> tuple[bytes, bytes] | None:
        """The account's salt and scrypt hash (what the state keeps of a password), or None."""
        with self.db.read() as conn:
            row = conn.execute(select(managers.c.salt, managers.c.hash).where(managers.c.name == name)).first()
        return (bytes(row[0]), bytes(row[1])) if row else None

    def verify(self, name: str, password: str) -> bool:
        """Whether ``password`` is ``name``'s; an unknown name costs the same scrypt (no timing oracle)."""
        with self.db.read() as conn:
            found = conn.execute(select(managers.c.salt, managers.c.hash, managers.c.n, managers.c.r, managers.c.p)
                                 .where(managers.c.name == name)).first()
        row = tuple(found) if found else None
        salt, digest, n, r, p = row if row else (b"\0" * 16, b"", SCRYPT["n"], SCRYPT["r"], SCRYPT["p"])
        got = _scrypt(password, bytes(salt), n, r, p)
        return row is not None and hmac.compare_digest(got, bytes(digest))


class Sessions:
    """Signed-in managers, in the gateway's state so a restart signs nobody out (and, on a shared PostgreSQL
    state, a manager signed in at one gateway is signed in at every gateway behind the load balancer).

    The cookie holds 256 random bits; the state keeps only their SHA-256 (a stolen file opens no
    session: the bits cannot be guessed, so a fast hash is enough, as for API tokens, docs/web.md) with
    the manager's name and the expiry on the wall clock (Unix seconds: it must hold across restarts).
    Expired rows are dropped when met and at every sign-in; removing an account ends its sessions."""

    def __init__(self, state: str | Path | sqlite3.Connection | StateDB | ManagerStore,
                 hours: float = SESSION_HOURS) -> None:
        self.ttl = hours * 3600
        self.db = open_state(state.db if isinstance(state, ManagerStore) else state)

    def close(self) -> None:
        self.db.close()

    @staticmethod
    def _key(sid: str) -> str:
        return hashlib.sha256(sid.encode("utf-8", "replace")).hexdigest()

    def start(self, name: str) -> str:
        sid = secrets.token_urlsafe(32)
        now = time.time()
        with self.db.write() as conn:
            conn.execute(delete(manager_sessions).where(manager_sessions.c.expires < now))
            conn.execute(manager_sessions.insert().values(id_hash=self._key(sid), name=name, expires=now + self.ttl,
                                                          created=datetime.now(UTC).isoformat(timespec="seconds")))
        return sid

    def who(self, sid: str | None) -> str | None:
        if not sid:
            return None
        key = self._key(sid)
        with self.db.read() as conn:
            # The account may have been removed since (``queuehall web-manager remove``): joined.
            row = conn.execute(select(manager_sessions.c.name, manager_sessions.c.expires, managers.c.name)
                               .select_from(manager_sessions.outerjoin(
                                   managers, managers.c.name == manager_sessions.c.name))
                               .where(manager_sessions.c.id_hash == key)).first()
        if row is None:
            return None
        if row[1] < time.time():
            with self.db.write() as conn:
                conn.execute(delete(manager_sessions).where(manager_sessions.c.id_hash == key))
            return None
        return None if row[2] is None else str(row[0])

    def end(self, sid: str | None) -> None:
        if sid:
            with self.db.write() as conn:
                conn.execute(delete(manager_sessions).where(manager_sessions.c.id_hash == self._key(sid)))


class AlertBoard:
    """The broker's active alerts as the gateway follows them: the ``alerts`` query after every
    (re)synchronisation, then the ``alert_raised``/``alert_cleared``/``alert_acknowledged`` events."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.alerts: dict[str, dict[str, Any]] = {}
        self.version = 0
        self._changed = asyncio.Event()
        self._refresh: asyncio.Task[None] | None = None
        hub.listeners.append(self._on_change)

    def _on_change(self, mirror: StateMirror, msg: dict[str, Any] | None) -> None:
        if msg is None:  # a snapshot, or the connection came or went: ask the broker again
            if self.hub.ready and (self._refresh is None or self._refresh.done()):
                self._refresh = asyncio.get_running_loop().create_task(self.refresh())
        else:
            ev = msg["event"] if isinstance(msg.get("event"), dict) else msg
            kind, key = ev.get("type"), ev.get("key")
            if kind == "alert_raised" and isinstance(key, str):
                self.alerts[key] = {"key": key, "rule": ev.get("rule"), "details": ev.get("details") or {},
                                    "raised_at": ev.get("at"), "ack": None}
            elif kind == "alert_cleared" and isinstance(key, str):
                self.alerts.pop(key, None)
            elif kind == "alert_acknowledged" and isinstance(key, str) and key in self.alerts:
                # The public event stream leaves the note out (free text): the broker's alerts query has it.
                self.alerts[key] = dict(self.alerts[key], ack={"note": ev.get("note"), "by": ev.get("by"),
                                                               "at": ev.get("at")})
                if self._refresh is None or self._refresh.done():
                    self._refresh = asyncio.get_running_loop().create_task(self.refresh())
        self.bump()

    def bump(self) -> None:
        self.version += 1
        self._changed.set()

    async def refresh(self) -> None:
        with contextlib.suppress(BrokerDown, Refused):
            found = await self.hub.request("alerts")
            self.alerts = {a["key"]: a for a in found.get("alerts") or []}
            self.bump()

    async def changed(self, version: int, timeout: float) -> int:
        """Wait until the version differs from ``version`` (or ``timeout``); returns the current one."""
        if self.version == version:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        return self.version


TODAY_EVENTS = frozenset({"ticket_finished", "ticket_closed_unserved", "day_closed", "visit_rated"})
TODAY_INTERVAL = 2.0  # seconds between two asks of the broker's ``today`` at most


class TodayBoard:
    """Today's completion and satisfaction (the broker's ``today`` query, from its database): asked after
    every (re)synchronisation and after the events that change them (a finish, a rating, the day's close),
    at most every ``TODAY_INTERVAL`` seconds."""

    def __init__(self, hub: Hub, bump: Callable[[], None]) -> None:
        self.hub = hub
        self.figures: dict[str, Any] = {}
        self._bump = bump
        self._task: asyncio.Task[None] | None = None
        self._again = False
        hub.listeners.append(self._on_change)

    def _on_change(self, mirror: StateMirror, msg: dict[str, Any] | None) -> None:
        if msg is not None:
            ev = msg["event"] if isinstance(msg.get("event"), dict) else msg
            if ev.get("type") not in TODAY_EVENTS:
                return
        if not self.hub.ready:
            return
        if self._task is not None and not self._task.done():
            self._again = True  # asked once more when the one under way is done
            return
        self._task = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        while True:
            self._again = False
            with contextlib.suppress(BrokerDown, Refused):
                self.figures = await self.hub.request("today")
                self._bump()
            await asyncio.sleep(TODAY_INTERVAL)
            if not self._again:
                return


def _minutes_since(at: datetime | None, now: datetime) -> int | None:
    return None if at is None else max(0, int((now - at).total_seconds() // 60))


def hall_view(state: dict[str, Any], alerts: dict[str, dict[str, Any]], connected: bool,
              today: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the supervision page shows (docs/supervision.md "The page"), from the gateway's mirror and
    ``today``, the broker's ``today`` figures (completion and satisfaction so far)."""
    now = parse_time(state.get("now")) or datetime.now(UTC)
    tickets = state.get("tickets") or {}
    counters = []
    for _key, c in sorted((state.get("counters") or {}).items(), key=lambda kv: int(kv[0])):
        t = decode_ticket(c.get("ticket"))
        counters.append({"number": c.get("number"), "name": c.get("name_zh"), "state": c.get("state"),
                         "clerk": c.get("clerk_name_zh") or c.get("clerk"), "post": c.get("post"),
                         "pause_reason": c.get("pause_reason"), "ticket": t.label if t else None,
                         "ticket_status": t.status if t else None,
                         # How long it has been in its state (paused, or open and idle with no ticket).
                         "minutes_in_state": _minutes_since(parse_time(c.get("since")), now)})
    longest: dict[str, datetime] = {}
    for t in map(decode_ticket, tickets.values()):
        if t is not None and t.status == "waiting" and not t.target_counter:
            q, entered = t.queue_service, t.entered_at
            if entered is not None and (q not in longest or entered < longest[q]):
                longest[q] = entered
    services = state.get("services") or {}
    queues = []
    for code in state.get("service_order") or list(services):
        s = services.get(code) or {}
        waited = _minutes_since(longest.get(code), now)
        target = s.get("target_wait_minutes") or 0
        clear = int(s.get("estimated_wait_minutes") or 0)
        ends = parse_time(s.get("session_ends"))
        clear_at = now + timedelta(minutes=clear) if s.get("waiting") else None
        queues.append({"code": code, "name": s.get("name_zh"), "waiting": int(s.get("waiting") or 0),
                       "longest_wait_minutes": waited, "target_wait_minutes": target,
                       "over_target": bool(target and waited is not None and waited > target),
                       "estimated_clear_minutes": s.get("estimated_wait_minutes"),
                       # The queue's estimated time to clear against the end of the session (issuing hours).
                       "clear_at": clear_at.isoformat() if clear_at else None,
                       "session_ends": s.get("session_ends"),
                       "clears_after_session_end": bool(clear_at and ends and clear_at > ends),
                       "promised_days": s.get("promised_days")})
    devices = [{"name": d.get("name"), "role": d.get("role"), "counter": d.get("counter")}
               for d in (state.get("devices") or {}).values() if not d.get("online")]
    today = today or {}
    figures = {"issued": sum(int(s.get("issued_today") or 0) for s in services.values()),
               "waiting": sum(int(s.get("waiting") or 0) for s in services.values()),
               "counters_open": sum(1 for c in counters if c["state"] == "open"),
               "counters_paused": sum(1 for c in counters if c["state"] == "paused"),
               # From the broker's database (its ``today`` query; None until known, or without a database).
               "served": today.get("served"), "same_day_rate": today.get("same_day_rate"),
               "same_day_completed": today.get("same_day_completed"), "rated": today.get("rated"),
               "good_rate": today.get("good_rate"), "levels": today.get("levels")}
    return {"connected": connected, "now": now.isoformat(),
            "timezone": state.get("timezone") or "Asia/Shanghai", "counters": counters, "queues": queues,
            "devices_offline": devices, "figures": figures,
            "alerts": sorted(alerts.values(), key=lambda a: str(a.get("raised_at") or ""), reverse=True)}


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _page(title: str, body: str, script: bool = False, base: str = "") -> str:
    js = (f'<script src="{_e(base)}/supervision/static/supervision.js?v={ASSET_VERSION}" defer></script>'
          if script else "")
    return ('<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex">'
            f'<title>{_e(title)}</title>'
            f'<link rel="stylesheet" href="{_e(base)}/supervision/static/supervision.css?v={ASSET_VERSION}">'
            f'{js}</head><body>{body}</body></html>')


def login_page(error: str = "", base: str = "") -> str:
    """The sign-in form; ``base``: the hall's address prefix on a city gateway (``/h/<hall>``, web/halls.py)."""
    err = f'<p class="err" role="alert">{_e(error)}</p>' if error else ""
    return _page("电子监察登录 Supervision sign-in", (
        '<main class="login"><h1>电子监察 <span class="en">Supervision</span></h1>' + err +
        f'<form method="post" action="{_e(base)}/supervision/login">'
        '<label>账号 <span class="en">Name</span><input name="name" autocomplete="username" required></label>'
        '<label>密码 <span class="en">Password</span><input name="password" type="password" '
        'autocomplete="current-password" required></label>'
        '<button type="submit">登录 <span class="en">Sign in</span></button></form></main>'), base=base)


def supervision_page(name: str, base: str = "") -> str:
    return _page("电子监察 Supervision", (
        f'<header><h1>电子监察 <span class="en">Supervision</span></h1><p>{_e(name)} · '
        f'<form method="post" action="{_e(base)}/supervision/logout" class="inline">'
        '<button>退出 Sign out</button></form>'
        '<span id="conn"></span></p></header>'
        f'<main id="sup" data-base="{_e(base)}/supervision">'
        '<section><h2>告警 <span class="en">Alerts</span></h2><table id="alerts"></table></section>'
        '<section><h2>今日 <span class="en">Today</span></h2><div id="figures"></div></section>'
        '<section><h2>队列 <span class="en">Queues</span></h2><table id="queues"></table></section>'
        '<section><h2>窗口 <span class="en">Counters</span></h2><table id="counters"></table></section>'
        '<section><h2>离线设备 <span class="en">Devices offline</span></h2><ul id="devices"></ul></section>'
        '</main>'), script=True, base=base)


def supervision_routes(hub: Hub, managers: ManagerStore, *, secure: bool = False,
                       hall: Callable[[], set[str]] | None = None) -> list[BaseRoute]:
    """The supervision page's routes, for :func:`queuehall.web.app.create_app`'s ``routes``. ``hall``: the names
    of the hall this page is of, on a city gateway (web/halls.py): an account limited to other halls is refused."""
    sessions = Sessions(managers)
    board = AlertBoard(hub)
    today = TodayBoard(hub, board.bump)

    def may(name: str) -> bool:
        """Whether account ``name`` may supervise this hall (an account limited to halls: one of them)."""
        if hall is None:
            return True
        allowed = managers.halls_of(name)
        return allowed is None or bool(allowed & hall())

    def who(request: Request) -> str | None:
        name = sessions.who(request.cookies.get(COOKIE))
        return name if name is not None and may(name) else None

    def need(request: Request) -> str:
        name = who(request)
        if name is None:
            raise ApiError("UNAUTHORIZED", 401)
        return name

    def base(request: Request) -> str:
        """The hall's address prefix on a city gateway (web/halls.py), "" on a gateway of one hall: the
        cookie is the prefix's, so a sign-in holds for that hall's page."""
        return str(request.scope.get("root_path", ""))

    async def login_form(request: Request) -> Response:
        return HTMLResponse(login_page(base=base(request)), headers={"cache-control": "no-store"})

    async def login(request: Request) -> Response:
        body = await request.body()
        form = parse_qs(body[:4096].decode("utf-8", "replace"))
        name = (form.get("name") or [""])[0].strip()
        password = (form.get("password") or [""])[0]
        ok = await asyncio.get_running_loop().run_in_executor(None, managers.verify, name, password)
        if not ok:
            return HTMLResponse(login_page("账号或密码错误 / Wrong name or password", base(request)), status_code=401,
                                headers={"cache-control": "no-store"})
        if not may(name):
            return HTMLResponse(login_page("此账号不能查看本大厅 / This account is not for this hall", base(request)),
                                status_code=403, headers={"cache-control": "no-store"})
        resp = RedirectResponse(f"{base(request)}/supervision", status_code=303)
        resp.set_cookie(COOKIE, sessions.start(name), max_age=int(sessions.ttl), path=f"{base(request)}/supervision",
                        httponly=True, samesite="strict", secure=secure)
        return resp

    async def logout(request: Request) -> Response:
        sessions.end(request.cookies.get(COOKIE))
        resp = RedirectResponse(f"{base(request)}/supervision/login", status_code=303)
        resp.delete_cookie(COOKIE, path=f"{base(request)}/supervision")
        return resp

    async def page(request: Request) -> Response:
        name = who(request)
        if name is None:
            return RedirectResponse(f"{base(request)}/supervision/login", status_code=303)
        return HTMLResponse(supervision_page(name, base(request)), headers={"cache-control": "no-store"})

    def view() -> dict[str, Any]:
        return hall_view(hub.mirror.state, board.alerts, hub.ready, today.figures)

    async def state(request: Request) -> Response:
        need(request)
        return JSONResponse(view(), headers={"cache-control": "no-store"})

    async def stream(request: Request) -> Response:
        need(request)

        async def events() -> AsyncIterator[bytes]:
            version = -1
            while True:
                if await request.is_disconnected():
                    return
                version = await board.changed(version, 2.0)  # and look for a closed connection every 2 s
                yield b"data: " + orjson.dumps(view()) + b"\n\n"
                await asyncio.sleep(PUSH_INTERVAL)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    async def ack(request: Request) -> Response:
        name = need(request)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise ApiError("BAD_REQUEST", detail="send JSON")  # a cross-site form cannot send JSON
        try:
            data = orjson.loads(await request.body())
        except ValueError:
            raise ApiError("BAD_REQUEST", detail="the body must be JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("key"), str) or not isinstance(data.get("note"), str):
            raise ApiError("BAD_REQUEST", detail="key and note are strings")
        try:
            result = await hub.request("alert_ack", key=data["key"], note=data["note"], by=name)
        except BrokerDown:
            raise ApiError("UNREACHABLE") from None
        except Refused as err:
            raise ApiError.from_error(err.error) from None
        return JSONResponse(result)

    from importlib import resources

    files = {name: (resources.files("queuehall.web").joinpath("static", name).read_bytes(), kind)
             for name, kind in (("supervision.js", "text/javascript; charset=utf-8"),
                                ("supervision.css", "text/css; charset=utf-8"))}

    async def static(request: Request) -> Response:
        found = files.get(request.path_params["name"])
        if found is None:
            raise ApiError("NOT_FOUND", path=request.url.path)
        return Response(found[0], media_type=found[1], headers={"cache-control": "public, max-age=604800"})

    # Every change of the hall is a change of the page (counters' times, queues): wake the streams.
    hub.listeners.append(lambda mirror, msg: board.bump())
    return [Route("/supervision/login", login_form, methods=["GET"]),
            Route("/supervision/login", login, methods=["POST"]),
            Route("/supervision/logout", logout, methods=["POST"]),
            Route("/supervision", page, methods=["GET"]),
            Route("/supervision/api/state", state, methods=["GET"]),
            Route("/supervision/api/stream", stream, methods=["GET"]),
            Route("/supervision/api/ack", ack, methods=["POST"]),
            Route("/supervision/static/{name}", static, methods=["GET"])]
