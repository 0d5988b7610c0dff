"""The counter client's view-model: everything a clerk's screen shows and may do, without Qt.

The window (``counter.window``) is a thin skin over :class:`CounterModel`: it forwards
the link's signals (state, events, connection, replies) to the model, calls the
model's actions when a button or shortcut is pressed, and re-renders from the model's
read-only views. All rules live here so they can be tested without widgets:

* a counter command carries the ``session`` returned by ``sign_in``;
* at most one command is in flight (a double-pressed "Call next" calls one ticket);
* every refusal is shown with the broker's stable code and bilingual message;
* losing the session (another terminal took over, or the counter was signed out
  elsewhere) signs this terminal out and says why;
* after a transfer, the sentence the clerk says to the citizen (which window next);
* this clerk's figures for today, counted from what this terminal has seen.

Times come from an injected :class:`~queuehall.clock.Clock`: in the application the link's
:class:`~queuehall.clock.HallClock` (the broker's time, never the PC's), in tests a manual clock.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from queuehall.clock import Clock
from queuehall.connection import LinkStatus
from queuehall.errors import HallError
from queuehall.payloads import EPOCH, Ticket, decode_ticket
from queuehall.protocol import parse_time
from queuehall.text import Bi

# Every action the clerk can take; the window binds one button and one shortcut to each.
ACTIONS = ("call_next", "recall", "no_show", "start", "finish", "transfer", "pause", "resume",
           "call_ticket", "reinstate", "sign_out")

# Keyboard shortcuts: F-keys, as on the hardware keypads clerks know (docs/counter.md).
SHORTCUTS: dict[str, str] = {
    "call_next": "F1", "recall": "F2", "no_show": "F3", "start": "F4", "finish": "F5",
    "transfer": "F6", "pause": "F7", "resume": "F8", "call_ticket": "F9", "reinstate": "F10",
    "sign_out": "Ctrl+Shift+Q",
}
LANGUAGE_SHORTCUT = "F12"

# Phases of the counter as this terminal sees it.
SIGNED_OUT, IDLE, CALLED, SERVING, PAUSED = "signed_out", "idle", "called", "serving", "paused"

# Every string the counter screen shows, in both languages (queuehall/text.py's Bi, written here as its
# (Chinese, English) pairs). Messages with {fields} are filled by :meth:`CounterModel.text`.
TEXT: dict[str, Bi] = {key: Bi(*pair) for key, pair in {
    "call_next": ("叫下一位", "Call next"),
    "recall": ("重呼", "Recall"),
    "no_show": ("过号", "No-show"),
    "start": ("开始办理", "Start"),
    "finish": ("办结", "Finish"),
    "transfer": ("转移", "Transfer"),
    "pause": ("暂停服务", "Pause"),
    "resume": ("恢复服务", "Resume"),
    "call_ticket": ("指定叫号", "Call specific"),
    "reinstate": ("恢复过号", "Reinstate"),
    "sign_out": ("签退", "Sign out"),
    "sign_in": ("签到", "Sign in"),
    "take_over": ("接管本窗口（另一终端将被签退）",
                  "Take over this counter (the other terminal is signed out)"),
    "language": ("English", "中文"),
    "pending_call_next": ("正在叫号…", "Calling…"),
    "pending_recall": ("正在重呼…", "Recalling…"),
    "pending_no_show": ("正在标记过号…", "Marking no-show…"),
    "pending_start": ("正在开始办理…", "Starting…"),
    "pending_finish": ("正在办结…", "Finishing…"),
    "pending_transfer": ("正在转移…", "Transferring…"),
    "pending_pause": ("正在暂停…", "Pausing…"),
    "pending_resume": ("正在恢复…", "Resuming…"),
    "pending_call_ticket": ("正在指定叫号…", "Calling the ticket…"),
    "pending_reinstate": ("正在恢复过号…", "Reinstating…"),
    "pending_sign_out": ("正在签退…", "Signing out…"),
    "pending_sign_in": ("正在签到…", "Signing in…"),
    "online": ("● 已连接", "● Connected"),
    "offline": ("● 连接中断，正在重连…", "● Disconnected, reconnecting…"),
    "connecting": ("● 正在连接…", "● Connecting…"),
    "offline_banner": ("与叫号服务器的连接已中断，正在自动重连；恢复前不能叫号，屏幕显示的是断开前的状态",
                       "Lost the connection to the broker, reconnecting; no calls until it is back. "
                       "The screen shows the state before the break"),
    "phase_signed_out": ("未签到", "Signed out"),
    "phase_idle": ("空闲，可叫号", "Free: call the next ticket"),
    "phase_called": ("已叫号，等候群众到窗口", "Called: waiting for the citizen"),
    "phase_serving": ("办理中", "Serving"),
    "phase_paused": ("暂停服务：{reason}", "Paused: {reason}"),
    "no_ticket": ("当前无号", "No ticket"),
    "hint_idle": ("还有 {count} 人等候，按 {shortcut} 叫下一位",
                  "{count} waiting: press {shortcut} to call the next"),
    "hint_empty": ("暂无等候的群众", "Nobody is waiting"),
    "hint_paused": ("暂停服务中，按 {shortcut} 恢复服务", "Paused: press {shortcut} to resume"),
    "waited": ("已等候 {minutes} 分钟", "Waited {minutes} min"),
    "serving_for": ("已办理 {minutes} 分钟", "Serving for {minutes} min"),
    "calls": ("已呼叫 {calls} 次", "Called {calls}×"),
    "priority": ("绿色通道：{name}", "Priority: {name}"),
    "note": ("转来备注：{note}", "Transfer note: {note}"),
    "from_counter": ("由 {counter} 号窗口转来", "Sent here by counter {counter}"),
    "materials": ("所需材料（一次性告知）", "Required materials (one-time notice)"),
    "no_materials": ("本业务无需材料", "No documents needed for this service"),
    "promised": ("承诺办结：{date}（{days} 个工作日）", "Promised by {date} ({days} working days)"),
    "promised_now": ("承诺办结：当场办结", "Promised: completed on the spot"),
    "promised_days": ("承诺 {days} 个工作日内办结", "Promised within {days} working days"),
    "promised_rule": ("工作日按周一至周五计，跳过法定节假日、计入调休上班日",
                      "Working days are Mon–Fri, skipping public holidays and counting make-up days"),
    "waiting_title": ("等候队列（{count} 人）", "Waiting ({count})"),
    "no_shows_title": ("过号（30 分钟内可恢复）", "No-shows (reinstate within the grace time)"),
    "figures_title": ("本人今日", "My figures today"),
    "figures": ("办结 {served} · 平均办理 {avg} · 过号 {no_shows}",
                "Served {served} · avg service {avg} · no-shows {no_shows}"),
    "figures_scope": ("统计本终端自启动以来所见的本人在本窗口的操作；办理时长为“开始办理”至“办结”。",
                      "Counts what this terminal has seen of you at this counter since it started; "
                      "service time runs from Start to Finish."),
    "minutes_short": ("{minutes} 分钟", "{minutes} min"),
    "none_short": ("—", "—"),
    "col_ticket": ("号码", "Ticket"),
    "col_service": ("业务", "Service"),
    "col_wait": ("等候", "Waiting"),
    "col_called": ("过号时间", "Missed at"),
    "for_counter": ("指定 {counter} 号窗口", "for counter {counter}"),
    "clerk_label": ("工号", "Clerk ID"),
    "pin_label": ("密码", "PIN"),
    "post_label": ("{post}岗", "Post {post}"),
    "post_button": ("{post}岗 · {name}", "Post {post} · {name}"),
    "signin_title": ("工作人员签到", "Clerk sign-in"),
    "signin_hint": ("请选择 A 岗或 B 岗（或输入工号），输入密码后签到",
                    "Choose post A or B (or type your clerk ID), enter your PIN and sign in"),
    "signed_in_as": ("{name}（{clerk}）· {post}岗", "{name} ({clerk}) · post {post}"),
    "need_clerk_pin": ("请输入工号和密码", "Enter your clerk ID and PIN"),
    "busy": ("上一个操作仍在处理，请稍候", "Still working on the last action, please wait"),
    "not_connected": ("与叫号服务器的连接已中断，恢复后再试",
                      "The broker is not reachable; try again when it is back"),
    "not_signed_in": ("请先签到", "Please sign in first"),
    "unavailable": ("叫号服务器未响应，操作未确认，请再试一次",
                    "The broker did not answer; the action was not confirmed, please try again"),
    "signed_out_elsewhere": ("{counter} 号窗口已在别处签退，本终端已退出",
                             "Counter {counter} was signed out elsewhere; this terminal is signed out"),
    "signed_out_ok": ("已签退", "Signed out"),
    "day_closed": ("今日已闭厅，{counter} 号窗口已自动签退；未办结的号记为闭厅未办结",
                   "The hall has closed for the day: counter {counter} was signed out and open tickets "
                   "ended unserved at close"),
    "signed_in_ok": ("签到成功", "Signed in"),
    "called_ok": ("已叫 {ticket} 号", "Called {ticket}"),
    "recalled_ok": ("已重呼 {ticket} 号", "Recalled {ticket}"),
    "recall_limit": ("{ticket} 号已达重呼上限，记为过号",
                     "{ticket} reached the recall limit and is a no-show"),
    "no_show_ok": ("{ticket} 号已记为过号", "{ticket} marked as a no-show"),
    "start_ok": ("开始办理 {ticket} 号", "Serving {ticket}"),
    "finish_ok": ("{ticket} 号已办结", "{ticket} finished"),
    "transfer_ok": ("{ticket} 号已转至 {target}", "{ticket} transferred to {target_en}"),
    "pause_ok": ("已暂停服务", "Counter paused"),
    "resume_ok": ("已恢复服务", "Counter resumed"),
    "reinstate_ok": ("{ticket} 号已恢复排队", "{ticket} is back in the queue"),
    "say_title": ("请告知群众", "Tell the citizen"),
    "say_counter": ("请到 {counter} 号窗口办理{service}", "Please go to counter {counter} for {service_en}"),
    "say_back": ("请回到 {counter} 号窗口继续办理{service}",
                 "Please go back to counter {counter} to continue with {service_en}"),
    "say_service": ("请留意叫号，到 {counters} 号窗口办理{service}",
                    "Please wait for your number, then go to counter {counters_en} for {service_en}"),
    "transfer_title": ("转移 {ticket} 号", "Transfer {ticket}"),
    "transfer_to_service": ("转到业务", "To a service"),
    "transfer_to_counter": ("转到窗口", "To a counter"),
    "transfer_any": ("（不指定）", "(any)"),
    "transfer_note": ("备注（下一窗口和大屏可见）", "Note (the next clerk and the display see it)"),
    "transfer_need_target": ("请选择要转到的业务或窗口", "Choose a service or a counter"),
    "counter_closed_mark": ("未开放", "closed"),
    "no_open_counter_mark": ("暂无窗口办理", "no counter open"),
    "fee_mark": ("缴费", "fees"),
    "reinstate_front": ("{label} 将回到「{service}」队列，排在原来的位置（最前面）",
                        "{label} goes back into the {service} queue, at its old place (the front)"),
    "reinstate_back": ("{label} 将回到「{service}」队列的末尾", "{label} goes back to the end of the {service} queue"),
    "pause_title": ("暂停原因", "Pause reason"),
    "call_ticket_title": ("指定叫号", "Call a specific ticket"),
    "call_ticket_reason": ("原因（必填，将被记录）", "Reason (required, recorded)"),
    "call_ticket_label": ("号码", "Ticket number"),
    "reason_required": ("请填写原因", "A reason is required"),
    "reason_appointment": ("预约办理", "Appointment"),
    "reason_returned": ("补齐材料后返回", "Came back with the missing documents"),
    "reason_supervisor": ("领导交办", "Assigned by a supervisor"),
    "reinstate_title": ("恢复过号", "Reinstate a no-show"),
    "choose_ticket": ("请选择一个号", "Choose a ticket"),
    "no_no_shows": ("没有可恢复的过号", "There is no no-show to reinstate"),
    "ok": ("确定", "OK"),
    "cancel": ("取消", "Cancel"),
    "counter_title": ("{name}", "{name_en}"),
    "printer_title": ("取号机打印机故障", "Kiosk printer faults"),
    "printer_title_ok": ("补打号票（本窗口为帮助窗口）", "Reprints (this is the help counter)"),
    "printer_fault": ("取号机“{name}”打印机故障（{code}），自 {since} 起；取号暂停",
                      "Kiosk {name}: printer fault ({code}) since {since}; no tickets there"),
    "printer_unprinted": ("“{name}”未打印的号：{tickets}（市民已被引导到本窗口补打）",
                          "{name}: not printed: {tickets} (the citizens were sent here for a printed ticket)"),
    "printer_orders": ("“{name}”待补打：{tickets}", "{name}: reprints pending: {tickets}"),
    "reprint": ("补打", "Reprint"),
    "reprint_ticket": ("补打 {ticket}", "Reprint {ticket}"),
    "reprint_placeholder": ("号码，如 A012", "Number, e.g. A012"),
    "pending_reprint": ("正在补打…", "Reprinting…"),
    "reprint_ok": ("已通知取号机“{kiosk}”补打 {ticket} 号", "Kiosk {kiosk} will reprint {ticket}"),
    "unknown": ("未知", "unknown"),
    # Mis-tap guards (issue 15, docs/counter.md): what the confirmation asks.
    "confirm_title": ("请确认", "Please confirm"),
    "confirm_recall_limit": (
        "{ticket} 号{priority}已重呼 {recalls} 次（上限 {max} 次）。再重呼将直接记为过号，不再叫号。确定记为过号？",
        "{ticket}{priority_en} has been recalled {recalls}× (limit {max}). Another recall marks it a no-show "
        "instead of calling it. Mark it a no-show?"),
    "confirm_recall_ok": ("记为过号", "Mark no-show"),
    "confirm_no_show": ("{ticket} 号{priority}未到窗口，确定记为过号？"
                        "（已呼叫 {calls} 次；{grace} 分钟内可在“恢复过号”中恢复）",
                        "{ticket}{priority_en} did not come: mark it a no-show? (called {calls}×; it can be "
                        "reinstated within {grace} min)"),
    "confirm_no_show_ok": ("确认过号", "Confirm no-show"),
    "confirm_sign_out": ("确定签退 {counter}？签退后本窗口停止叫号，大屏显示暂停办理。",
                         "Sign out of {counter_en}? The counter stops calling and the display shows it closed."),
    "confirm_sign_out_ok": ("确认签退", "Sign out"),
    "confirm_needed": ("请先确认", "Please confirm first"),
    "priority_mark": ("（{name}）", " ({name})"),
    "recalls_left": ("还可重呼 {left} 次", "{left} recall(s) left"),
    "recall_last": ("已达重呼上限：再重呼即过号", "Recall limit reached: another recall is a no-show"),
    "paused_for": ("已暂停 {minutes} 分钟（自 {since} 起）", "Paused for {minutes} min (since {since})"),
}.items()}


def fill(template: str, values: dict[str, Any]) -> str:
    """``template.format`` that leaves a missing field as ``?`` instead of raising."""

    class _Blank(dict):
        def __missing__(self, key: str) -> str:
            return "?"

    return template.format_map(_Blank(values))


@dataclass(frozen=True)
class Message:
    """A line for the message banner: ``kind`` is ``error``, ``warning``, ``info`` or ``ok``; ``code`` is the
    broker's stable error code when the message is a refusal."""

    kind: str
    zh: str
    en: str
    code: str = ""


@dataclass(frozen=True)
class Guidance:
    """The sentence the clerk says after a transfer (主动告知下一步在哪个窗口办理)."""

    ticket: str
    zh: str
    en: str


@dataclass(frozen=True)
class WaitingRow:
    """One line of the waiting list."""

    ticket_id: int
    label: str
    service_zh: str
    service_en: str
    wait_minutes: int
    priority: str | None
    target_counter: int | None
    note: str


@dataclass
class Figures:
    """This clerk's counts for one business day at this counter."""

    served: int = 0
    no_shows: int = 0
    service_seconds: list[float] = field(default_factory=list)
    seen: set[tuple[str, int, str]] = field(default_factory=set)

    @property
    def average_minutes(self) -> float | None:
        """Mean service time in minutes over the services with a known start; None without any."""
        if not self.service_seconds:
            return None
        return sum(self.service_seconds) / len(self.service_seconds) / 60


class CounterModel:
    """The state and rules of one counter terminal (see the module docstring).

    ``send(type, **args)`` posts a command to the broker and returns its request id at
    once (``QtLink.request``); the answer must be handed back with :meth:`on_reply`.
    The counter's A and B post clerks (one-tap post selection on the sign-in screen) come from
    the broker with the counter's record (:attr:`posts`): the counter never reads hall.toml.
    """

    def __init__(self, counter: int, send: Callable[..., str], clock: Clock, *, lang: str = "zh",
                 timezone: str = "Asia/Shanghai") -> None:
        if lang not in ("zh", "en"):
            raise ValueError(f"lang must be zh or en, not {lang!r}")
        self.counter = counter
        self.send = send
        self.clock = clock
        self.lang = lang
        self.state: dict[str, Any] = {}
        # The broker connection, as every screen models it (queuehall/connection.py).
        self.link_status = LinkStatus()
        self.session: str | None = None
        self.clerk: str | None = None
        self.post: str | None = None
        self.pending: dict[str, tuple[str, dict[str, Any]]] = {}
        self.message: Message | None = None
        self.guidance: Guidance | None = None
        self.offer_takeover = False
        self._tz = ZoneInfo(timezone)
        self._confirmed = False  # the mirror has shown this counter open under our clerk
        self._own_signin_events = 0  # counter_signed_in events that are our own sign-in
        self._serving_since: dict[int, datetime] = {}
        self._first_call: dict[tuple[int | None, datetime | None], datetime] = {}
        self._came_from: dict[int, int] = {}
        self._figures: dict[tuple[str, str], Figures] = {}

    # ------------------------------------------------------------------ text

    def text(self, key: str, lang: str | None = None, **values: Any) -> str:
        """The string ``key`` in ``lang`` (default: the screen's language), fields filled."""
        zh, en = TEXT[key]
        return fill(zh if (lang or self.lang) == "zh" else en, values)

    def pick(self, zh: str | None, en: str | None) -> str:
        """The screen language's half of a bilingual pair (falls back to the other half)."""
        first, second = (zh, en) if self.lang == "zh" else (en, zh)
        return first or second or ""

    def set_language(self, lang: str) -> None:
        """Switch the screen between ``zh`` and ``en``."""
        if lang not in ("zh", "en"):
            raise ValueError(f"lang must be zh or en, not {lang!r}")
        self.lang = lang

    def toggle_language(self) -> None:
        """Switch between Chinese and English."""
        self.lang = "en" if self.lang == "zh" else "zh"

    def _msg(self, kind: str, key: str, **values: Any) -> Message:
        return Message(kind, self.text(key, "zh", **values), self.text(key, "en", **values))

    # ------------------------------------------------------------------ derived views

    @property
    def signed_in(self) -> bool:
        """Whether this terminal holds a session for its counter."""
        return self.session is not None

    @property
    def busy(self) -> bool:
        """A command is in flight: the action buttons wait for its answer."""
        return bool(self.pending)

    def pending_action(self) -> str | None:
        """The action whose answer is awaited, or None."""
        return next(iter(self.pending.values()))[0] if self.pending else None

    @property
    def posts(self) -> dict[str, tuple[str, str, str]]:
        """``{"A": (clerk id, name zh, name en), "B": …}``: this counter's posts as the broker sent them
        (empty until the first snapshot; the clerk may type the id instead)."""
        posts = self.counter_record().get("posts") or {}
        return {post: (e["clerk"], e.get("name_zh") or e["clerk"], e.get("name_en") or e["clerk"])
                for post, e in posts.items() if isinstance(e, dict) and e.get("clerk")}

    def counter_record(self) -> dict[str, Any]:
        """This counter's public record from the broker (``{}`` before the first snapshot)."""
        return (self.state.get("counters") or {}).get(str(self.counter)) or {}

    def counter_name(self) -> str:
        """The counter's configured name in the screen language (its number before the first snapshot)."""
        rec = self.counter_record()
        name = self.pick(rec.get("name_zh"), rec.get("name_en"))
        return name or self.text("counter_title", name=str(self.counter), name_en=f"Counter {self.counter}")

    def my_services(self) -> list[str]:
        """The service codes this counter serves, in calling order."""
        return list(self.counter_record().get("services") or [])

    def service(self, code: str | None) -> dict[str, Any]:
        """The broker's summary of service ``code`` (``{}`` if unknown)."""
        return (self.state.get("services") or {}).get(code or "", {}) or {}

    def service_name(self, code: str | None, lang: str | None = None) -> str:
        """The name of service ``code`` in ``lang`` (default: the screen's); the code if unknown."""
        s = self.service(code)
        zh, en = s.get("name_zh") or code or "", s.get("name_en") or code or ""
        return zh if (lang or self.lang) == "zh" else en

    def current_ticket(self) -> Ticket | None:
        """The ticket called or being served at this counter (freshest copy in the mirror)."""
        rec = self.counter_record()
        t = rec.get("ticket")
        if not t:
            return None
        fresh = (self.state.get("tickets") or {}).get(str(t["id"]))
        ticket = decode_ticket(fresh or t)
        if ticket is None:
            return None
        return ticket if ticket.status in ("called", "serving") and ticket.counter == self.counter else None

    def phase(self) -> str:
        """``signed_out``, ``paused``, ``called``, ``serving`` or ``idle`` for this terminal."""
        if not self.signed_in:
            return SIGNED_OUT
        rec = self.counter_record()
        if rec.get("state") == "paused":
            return PAUSED
        t = self.current_ticket()
        if t is not None:
            return SERVING if t.status == "serving" else CALLED
        return IDLE

    def idle_hint(self) -> str:
        """What to do next when no ticket is at the counter."""
        p = self.phase()
        if p == PAUSED:
            hint = self.text("hint_paused", shortcut=SHORTCUTS["resume"])
            lasted = self.paused_text()
            return f"{lasted}\n{hint}" if lasted else hint
        n = len(self.waiting_list())
        if not n:
            return self.text("hint_empty")
        return self.text("hint_idle", count=n, shortcut=SHORTCUTS["call_next"])

    def phase_text(self) -> str:
        """The phase as a sentence for the status line (a pause names its reason)."""
        p = self.phase()
        if p == PAUSED:
            reason = self.pause_reason_name(self.counter_record().get("pause_reason"))
            return self.text("phase_paused", reason=reason)
        return self.text(f"phase_{p}")

    def pause_reasons(self) -> list[dict[str, Any]]:
        """The configured pause reasons (``code``, ``name_zh``, ``name_en``), in configured order."""
        return list(self.state.get("pause_reasons") or [])

    def pause_reason_name(self, code: str | None) -> str:
        """The name of pause reason ``code`` in the screen language (the code if unknown)."""
        for p in self.pause_reasons():
            if p.get("code") == code:
                return self.pick(p.get("name_zh"), p.get("name_en"))
        return code or ""

    def priority_name(self, code: str | None) -> str:
        """The name of priority class ``code`` in the screen language (the code if unknown)."""
        for p in self.state.get("priority_classes") or []:
            if p.get("code") == code:
                return self.pick(p.get("name_zh"), p.get("name_en"))
        return code or ""

    def now(self) -> datetime:
        """The current time from the injected clock (aware, UTC)."""
        return self.clock.now()

    def today(self) -> date:
        """Today's date in the hall's time zone."""
        return self.now().astimezone(self._tz).date()

    def _minutes_since(self, at: datetime | None, until: datetime | None = None) -> int:
        if at is None:
            return 0
        return max(0, int(((until or self.now()) - at).total_seconds() // 60))

    def waited_minutes(self, t: Ticket) -> int:
        """How long the ticket waited in this queue before its first call here."""
        first = self._first_call.get((t.id, t.entered_at))
        return self._minutes_since(t.entered_at, first or t.called_at or self.now())

    def serving_minutes(self, t: Ticket) -> int | None:
        """Minutes since the ticket's Start as seen by this terminal; None if it did not see it."""
        since = self._serving_since.get(t.id) if t.id is not None else None
        if since is None:
            return None
        return max(0, int((self.now() - since).total_seconds() // 60))

    def came_from(self, ticket_id: int) -> int | None:
        """The counter that transferred this ticket here, when this terminal saw it happen."""
        return self._came_from.get(ticket_id)

    def eligible(self, t: Ticket) -> bool:
        """Whether this counter may call the waiting ticket (the engine's rule 1)."""
        target = t.target_counter
        return target == self.counter or (target is None and t.queue_service in self.my_services())

    def tickets(self, status: str) -> list[Ticket]:
        """The mirror's tickets in ``status`` (records that are no tickets are left out)."""
        return [t for t in map(decode_ticket, (self.state.get("tickets") or {}).values())
                if t is not None and t.id is not None and t.status == status]

    def waiting_list(self) -> list[WaitingRow]:
        """Waiting tickets this counter may call, oldest first, with their wait so far."""
        tickets = sorted((t for t in self.tickets("waiting") if self.eligible(t)), key=lambda t: t.queue_order)
        return [WaitingRow(t.id or 0, t.label, self.service_name(t.queue_service, "zh"),
                           self.service_name(t.queue_service, "en"), self._minutes_since(t.entered_at), t.priority,
                           t.target_counter, t.note)
                for t in tickets]

    def no_shows(self) -> list[Ticket]:
        """Today's no-shows missed at this counter or of its services, latest first."""
        today = self.state.get("business_day")
        out = [t for t in self.tickets("no_show") if (today is None or t.business_day == today)
               and (t.counter == self.counter or t.queue_service in self.my_services())]
        out.sort(key=lambda t: (t.called_at or EPOCH, t.id or 0), reverse=True)
        return out

    def materials(self) -> list[tuple[str, str]]:
        """The current ticket's required materials as (zh, en) pairs."""
        t = self.current_ticket()
        if t is None:
            return []
        materials = self.service(t.queue_service).get("materials") or []
        return [(m.get("zh", ""), m.get("en", "")) for m in materials]

    def promised(self) -> tuple[date | None, int] | None:
        """(promised completion date, working days) of the current ticket; None without a ticket.

        Both come with the ticket from the broker (``promised_date``, ``promised_days``), which
        computes them with the hall's calendar from the day of acceptance, as the reports do: the
        counter never computes a date itself. The date is None for 0 days (on the spot).
        """
        t = self.current_ticket()
        if t is None:
            return None
        days = t.promised_days
        if days is None:
            days = int(self.service(t.queue_service).get("promised_days") or 0)
        return t.promised_date, days

    def promised_text(self) -> str:
        """The promised completion line for the current ticket (empty without one)."""
        p = self.promised()
        if p is None:
            return ""
        when, days = p
        if days <= 0:
            return self.text("promised_now")
        if when is None:  # a broker that does not send the date: the days alone, never a date of our own
            return self.text("promised_days", days=days)
        shown = f"{when.year}年{when.month}月{when.day}日" if self.lang == "zh" else when.isoformat()
        return self.text("promised", date=shown, days=days)

    def figures(self) -> Figures:
        """This clerk's figures for today at this counter (zero before sign-in)."""
        if self.clerk is None:
            return Figures()
        return self._figures.get((self.today().isoformat(), self.clerk), Figures())

    def figures_text(self) -> str:
        """This clerk's figures as one line: served, average service time, no-shows."""
        f = self.figures()
        avg = f.average_minutes
        none = self.text("none_short")
        shown = none if avg is None else self.text("minutes_short", minutes=f"{avg:.1f}")
        return self.text("figures", served=f.served, avg=shown, no_shows=f.no_shows)

    def clerk_text(self) -> str:
        """Who is signed in here, e.g. ``赵婷（c04a）· A岗`` (empty when signed out)."""
        rec = self.counter_record()
        if not self.signed_in:
            return ""
        # The record names the clerk once the broker's event arrives; until then, the id.
        name = ""
        if rec.get("clerk") == self.clerk:
            name = self.pick(rec.get("clerk_name_zh"), rec.get("clerk_name_en"))
        return self.text("signed_in_as", name=name or self.clerk, clerk=self.clerk, post=self.post or "?")

    def connection_text(self) -> str:
        """The connection indicator's text: connecting (no hall state yet), online or offline."""
        return self.text(self.link_status.state)

    def calendar_warning_text(self) -> str:
        """The banner a signed-in clerk sees while the broker's official holiday data does not cover today
        and the next 60 days (``state["calendar"]["warning"]``), both languages; empty otherwise."""
        warning = (self.state.get("calendar") or {}).get("warning")
        if not self.signed_in or not warning:
            return ""
        zh, en = str(warning.get("message_zh") or ""), str(warning.get("message_en") or "")
        return f"⚠ {zh}\n{en}" if self.lang == "zh" else f"⚠ {en}\n{zh}"

    def offline_text(self) -> str:
        """The banner shown while the broker is unreachable (both languages: it matters)."""
        zh, en = TEXT["offline_banner"]
        return f"{zh}\n{en}" if self.lang == "zh" else f"{en}\n{zh}"

    def counters(self) -> list[dict[str, Any]]:
        """Every counter's public record, by number."""
        return sorted((self.state.get("counters") or {}).values(), key=lambda c: c["number"])

    def clerk_names(self, lang: str) -> dict[str, str]:
        """Every clerk id the broker's records name (the counters' A and B posts, the clerks signed in), with
        the clerk's name in ``lang``."""
        names: dict[str, str] = {}
        key = "name_zh" if lang == "zh" else "name_en"
        for c in self.counters():
            for entry in (c.get("posts") or {}).values():
                if isinstance(entry, dict) and entry.get("clerk") and entry.get(key):
                    names[str(entry["clerk"])] = str(entry[key])
            if c.get("clerk") and c.get(f"clerk_{key}"):
                names[str(c["clerk"])] = str(c[f"clerk_{key}"])
        return names

    def _named(self, text: str, lang: str) -> str:
        """A broker message with the service codes it quotes (业务“eia_approval”…) spoken as names, as a clerk
        says them (业务“建设项目环境影响评价审批”…), and the clerks it quotes by id named too, the id kept for
        the sign-in (4 号窗口已由 赵婷（c04a）签到)."""
        for svc in (self.state.get("services") or {}).values():
            code = str(svc.get("code") or "")
            name = str(svc.get("name_zh" if lang == "zh" else "name_en") or "")
            if code and name:
                text = re.sub(rf"(?<![A-Za-z0-9_]){re.escape(code)}(?![A-Za-z0-9_])", name, text)
        for clerk, name in self.clerk_names(lang).items():
            named = f"{name}（{clerk}）" if lang == "zh" else f"{name} ({clerk})"
            text = re.sub(rf"(?<![A-Za-z0-9_（(]){re.escape(clerk)}(?![A-Za-z0-9_）)])", named, text)
        return text

    def fee_services(self) -> list[str]:
        """The codes of the hall's fee services (``role = "fee"`` in hall.toml: 统一收费), in configured order."""
        return [str(s["code"]) for s in self.services_in_order() if s.get("role") == "fee"]

    def transfer_services(self) -> list[dict[str, Any]]:
        """The services a ticket can be transferred to, the fee services first (a clerk most often sends a
        citizen to pay), then the others in configured order."""
        services = self.services_in_order()
        return [s for s in services if s.get("role") == "fee"] + [s for s in services if s.get("role") != "fee"]

    def transfer_counters(self) -> list[dict[str, Any]]:
        """The counters a ticket can be transferred to: the fee windows (those serving a fee service) first,
        then the others by number."""
        fees = set(self.fee_services())
        counters = self.counters()
        first = [c for c in counters if fees & set(c.get("services") or [])]
        return first + [c for c in counters if c not in first]

    def service_staffed(self, code: str) -> bool:
        """Whether a counter that is not closed serves ``code`` (a transfer there is called soon)."""
        return any(code in (c.get("services") or []) and c.get("state") != "closed" for c in self.counters())

    def reinstate_where(self, label: str) -> str:
        """Where the no-show ``label`` goes when reinstated: its queue, at the front or the back (the hall's
        ``noshow_reinstate``); empty when no such no-show is listed."""
        ticket = next((t for t in self.no_shows() if t.label == label), None)
        if ticket is None:
            return ""
        position = (self.state.get("hall") or {}).get("noshow_reinstate", "front")
        key = "reinstate_back" if position == "back" else "reinstate_front"
        return self.text(key, label=label, service=self.service_name(ticket.queue_service))

    def services_in_order(self) -> list[dict[str, Any]]:
        """Every service's summary in configured order."""
        services = self.state.get("services") or {}
        order = self.state.get("service_order") or list(services)
        return [services[c] for c in order if c in services]

    # ------------------------------------------------------------------ what may be pressed

    def enabled(self, action: str) -> bool:
        """Whether the button for ``action`` applies now (keyboard shortcuts still reach the
        broker, which then explains a refusal; see :meth:`trigger_allowed`)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")
        if not self.connected or self.busy or not self.signed_in:
            return False
        p = self.phase()
        if action == "call_next":
            return p == IDLE and bool(self.waiting_list())
        if action == "call_ticket":
            return p == IDLE and bool(self.waiting_list())
        if action in ("recall", "no_show", "start"):
            return p == CALLED
        if action == "finish":
            return p == SERVING
        if action == "transfer":
            return p in (CALLED, SERVING)
        if action == "pause":
            return p == IDLE
        if action == "resume":
            return p == PAUSED
        if action == "reinstate":
            return bool(self.no_shows())
        if action == "sign_out":
            return p in (IDLE, PAUSED)
        return False

    def why_not(self, action: str) -> Message:
        """Why ``action`` cannot be offered now, in the broker's own words where it has them."""
        if not self.connected:
            return self._msg("error", "not_connected")
        if self.busy:
            return self._msg("error", "busy")
        if not self.signed_in:
            return self._msg("error", "not_signed_in")
        p, t = self.phase(), self.current_ticket()
        if action == "reinstate":
            return self._msg("error", "no_no_shows")
        if p == PAUSED and action not in ("resume", "sign_out"):
            err = HallError("COUNTER_PAUSED", counter=self.counter)
        elif t is not None and action in ("pause", "call_next", "call_ticket", "sign_out"):
            err = HallError("COUNTER_BUSY", counter=self.counter, ticket=t.label)
        elif action in ("call_next", "call_ticket"):
            err = HallError("QUEUE_EMPTY")
        elif action == "finish":
            err = HallError("NOT_SERVING", counter=self.counter)
        elif action == "resume":
            err = HallError("COUNTER_NOT_PAUSED", counter=self.counter)
        elif action == "start" and p == SERVING and t is not None:
            err = HallError("ALREADY_SERVING", ticket=t.label)
        else:
            err = HallError("NOTHING_CALLED", counter=self.counter)
        return Message("error", err.message_zh, err.message_en, err.code)

    def can_sign_in(self) -> bool:
        """Whether the sign-in buttons apply (connected, signed out, nothing in flight)."""
        return self.connected and not self.signed_in and not self.busy

    # ------------------------------------------------------------------ actions

    def _refuse(self, key: str, **values: Any) -> None:
        self.message = self._msg("error", key, **values)

    def _post(self, action: str, wire: str, **args: Any) -> str | None:
        """Send a command unless something local already rules it out; returns the request id."""
        if not self.connected:
            self._refuse("not_connected")
            return None
        if self.busy:
            self._refuse("busy")
            return None
        if action != "sign_in" and not self.signed_in:
            self._refuse("not_signed_in")
            return None
        self.message = None
        rid = self.send(wire, **args)
        self.pending[rid] = (action, args)
        return rid

    def _counter_cmd(self, action: str, **args: Any) -> str | None:
        return self._post(action, action, counter=self.counter, session=self.session, **args)

    def sign_in(self, clerk: str, pin: str, takeover: bool = False) -> str | None:
        """Ask the broker to open this counter for ``clerk``; ``takeover`` ends another terminal's session."""
        clerk, pin = clerk.strip(), pin.strip()
        if not clerk or not pin:
            self._refuse("need_clerk_pin")
            return None
        rid = self._post("sign_in", "sign_in", counter=self.counter, clerk=clerk, pin=pin, takeover=takeover)
        if rid is not None:
            self._own_signin_events = 1
        return rid

    # ------------------------------------------------------------------ mis-tap guards

    def max_recalls(self) -> int | None:
        """Recalls a called ticket gets before the next one makes it a no-show (the broker's
        ``hall.max_recalls``; None from a broker that does not say)."""
        value = (self.state.get("hall") or {}).get("max_recalls")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def recalls_done(self) -> int:
        """Recalls of the current ticket in its present visit (its calls here less the first)."""
        t = self.current_ticket()
        return max(0, t.calls - 1) if t else 0

    def recall_makes_no_show(self) -> bool:
        """Whether pressing 重呼 now would mark the called ticket a no-show (the recall limit)."""
        limit = self.max_recalls()
        return self.phase() == CALLED and limit is not None and self.recalls_done() >= limit

    def recall_hint(self) -> str:
        """How many recalls are left for the called ticket ("" when not called or not known)."""
        limit = self.max_recalls()
        if self.phase() != CALLED or limit is None:
            return ""
        left = limit - self.recalls_done()
        return self.text("recall_last") if left <= 0 else self.text("recalls_left", left=left)

    def confirmation(self, action: str) -> Message | None:
        """What the clerk must confirm before ``action`` is sent, or None when it goes at once.

        Guarded are the taps that cannot be taken back at the counter: 过号 (always), the recall
        that would make a no-show (at the recall limit), and 签退 (always). The message names the
        ticket and, for a priority citizen, the priority class, so the clerk sees who is affected.
        """
        t = self.current_ticket()
        if action == "sign_out" and self.signed_in:
            rec = self.counter_record()
            return self._msg("warning", "confirm_sign_out", counter=self.counter_name(),
                             counter_en=rec.get("name_en") or f"Counter {self.counter}")
        if t is None or action not in ("recall", "no_show") or self.phase() != CALLED:
            return None
        if action == "recall" and not self.recall_makes_no_show():
            return None
        code = t.priority
        names = self._priority_names(code) if code else ("", "")
        values = {"ticket": t.label, "recalls": self.recalls_done(), "max": self.max_recalls(),
                  "calls": t.calls or 1, "grace": self._grace_minutes(),
                  "priority": fill(TEXT["priority_mark"][0], {"name": names[0]}) if code else "",
                  "priority_en": fill(TEXT["priority_mark"][1], {"name": names[1]}) if code else ""}
        return self._msg("warning", "confirm_recall_limit" if action == "recall" else "confirm_no_show", **values)

    def confirm_button(self, action: str) -> str:
        """The confirming button's words for ``action`` (the dialog's OK)."""
        key = {"recall": "confirm_recall_ok", "no_show": "confirm_no_show_ok", "sign_out": "confirm_sign_out_ok"}
        return self.text(key.get(action, "ok"))

    def _priority_names(self, code: str) -> tuple[str, str]:
        for p in self.state.get("priority_classes") or []:
            if p.get("code") == code:
                return str(p.get("name_zh") or code), str(p.get("name_en") or code)
        return code, code

    def _grace_minutes(self) -> int:
        value = (self.state.get("hall") or {}).get("noshow_grace_minutes")
        return value if isinstance(value, int) and not isinstance(value, bool) else 30

    def _guarded(self, action: str, confirmed: bool) -> bool:
        """True when ``action`` must wait for the clerk's confirmation (the screen says so)."""
        if confirmed or self.confirmation(action) is None:
            return False
        self.message = self._msg("warning", "confirm_needed")
        return True

    def paused_minutes(self) -> int | None:
        """How long the counter has been paused, in whole minutes (None when not paused or unknown)."""
        rec = self.counter_record()
        if rec.get("state") != "paused" or parse_time(rec.get("since")) is None:
            return None
        return self._minutes_since(parse_time(rec.get("since")))

    def paused_text(self) -> str:
        """``已暂停 12 分钟（自 10:02 起）`` while paused, else ""."""
        minutes = self.paused_minutes()
        since = parse_time(self.counter_record().get("since"))
        if minutes is None or since is None:
            return ""
        return self.text("paused_for", minutes=minutes, since=since.astimezone(self._tz).strftime("%H:%M"))

    def sign_out(self, confirmed: bool = False) -> str | None:
        """Close the counter (refused by the broker while a ticket is in progress); asks first."""
        if self._guarded("sign_out", confirmed):
            return None
        return self._counter_cmd("sign_out")

    def call_next(self) -> str | None:
        """Call the next ticket by the calling rules."""
        return self._counter_cmd("call_next")

    def recall(self, confirmed: bool = False) -> str | None:
        """Call the current ticket again; the recall that would make it a no-show (past the recall
        limit) waits for ``confirmed`` (see :meth:`confirmation`)."""
        if self._guarded("recall", confirmed):
            return None
        return self._counter_cmd("recall")

    def no_show(self, confirmed: bool = False) -> str | None:
        """The called citizen did not come; sent only ``confirmed`` (see :meth:`confirmation`)."""
        if self._guarded("no_show", confirmed):
            return None
        return self._counter_cmd("no_show")

    def start(self) -> str | None:
        """The called citizen has arrived: start serving."""
        return self._counter_cmd("start")

    def finish(self) -> str | None:
        """Finish the ticket being served."""
        return self._counter_cmd("finish")

    def transfer(self, service: str | None = None, to_counter: int | None = None,
                 note: str = "") -> str | None:
        """Send the current ticket to another service and/or counter, with a note for the next clerk."""
        if service is None and to_counter is None:
            self._refuse("transfer_need_target")
            return None
        return self._counter_cmd("transfer", service=service, to_counter=to_counter,
                                 note=note.strip() or None)

    def pause(self, reason: str) -> str | None:
        """Pause the counter with one of the configured reasons."""
        return self._counter_cmd("pause", reason=reason)

    def resume(self) -> str | None:
        """Resume a paused counter."""
        return self._counter_cmd("resume")

    def call_ticket(self, ticket: str, reason: str) -> str | None:
        """Call one waiting ticket out of order; the reason is required and recorded by the broker."""
        if not ticket.strip():
            self._refuse("choose_ticket")
            return None
        if not reason.strip():
            self._refuse("reason_required")
            return None
        return self._counter_cmd("call_ticket", ticket=ticket.strip().upper(), reason=reason.strip())

    def reinstate(self, ticket: str) -> str | None:
        """Put a no-show back in its queue (within the configured grace time)."""
        if not ticket.strip():
            self._refuse("choose_ticket")
            return None
        return self._post("reinstate", "reinstate", ticket=ticket.strip(), counter=self.counter)

    def is_help_counter(self) -> bool:
        """Whether this counter sees the kiosks' printer faults and may order reprints: the hall's
        ``help_counter``, or every counter when the hall names none."""
        number = (self.state.get("hall") or {}).get("help_counter")
        return number is None or number == self.counter

    def printer_alerts(self) -> list[dict[str, Any]]:
        """The kiosks' printer records (fault, unprinted numbers, reprint orders) this counter shows."""
        if not self.is_help_counter():
            return []
        records = (self.state.get("printers") or {}).values()
        return sorted((r for r in records if r.get("fault") or r.get("unprinted") or r.get("reprints")),
                      key=lambda r: str(r.get("name") or r.get("kiosk")))

    def printer_lines(self, lang: str | None = None) -> list[str]:
        """One line per fault, unprinted list and pending reprints, for the alert panel."""
        lines = []
        for r in self.printer_alerts():
            name = self.kiosk_name(str(r.get("kiosk")))
            fault = r.get("fault")
            if fault:
                since = parse_time(fault.get("since"))
                at = since.astimezone(self._tz).strftime("%H:%M") if since else "?"
                lines.append(self.text("printer_fault", lang, name=name, code=fault.get("code"), since=at))
            unprinted = "、".join(str(u.get("label")) for u in r.get("unprinted") or [])
            if unprinted:
                lines.append(self.text("printer_unprinted", lang, name=name, tickets=unprinted))
            orders = "、".join(str((o.get("ticket") or {}).get("label")) for o in r.get("reprints") or [])
            if orders:
                lines.append(self.text("printer_orders", lang, name=name, tickets=orders))
        return lines

    def unprinted(self) -> list[str]:
        """Numbers a kiosk could not print (one quick reprint button each)."""
        return [str(u.get("label")) for r in self.printer_alerts() for u in r.get("unprinted") or []]

    def kiosk_name(self, kiosk: str | None) -> str:
        """A kiosk's name for people: the one it reported with its fault, else its presence name, else its id."""
        key = kiosk or ""
        named = ((self.state.get("printers") or {}).get(key) or {}).get("name")
        if named and named != key:
            return str(named)
        devices = self.state.get("devices") or {}
        # Presence is keyed by device key name (with CurveZMQ); printer alerts by the client id.
        dev = devices.get(key) or next((d for d in devices.values() if d.get("client") == key), None) or {}
        return str(dev.get("name") or key)

    def reprint_kiosk(self) -> str | None:
        """Where a reprint goes: the issuing kiosk (None: the broker's default) unless some kiosk has a
        printer fault; then the first kiosk online without one (None when there is none)."""
        faulty = {k for k, r in (self.state.get("printers") or {}).items() if r.get("fault")}
        if not faulty:
            return None
        healthy = sorted(d.get("client") or k for k, d in (self.state.get("devices") or {}).items()
                         if d.get("role") == "kiosk" and d.get("online") and (d.get("client") or k) not in faulty)
        return healthy[0] if healthy else None

    def reprint(self, ticket: str) -> str | None:
        """Order a reprint of ``ticket`` (a number such as "A012") at a kiosk (:meth:`reprint_kiosk`)."""
        if not ticket.strip():
            self._refuse("choose_ticket")
            return None
        return self._post("reprint", "reprint_ticket", ticket=ticket.strip().upper(), counter=self.counter,
                          kiosk=self.reprint_kiosk())

    def dismiss_message(self) -> None:
        """Clear the message banner."""
        self.message = None

    # ------------------------------------------------------------------ inputs from the link

    def on_connection(self, up: bool) -> None:
        """The broker became reachable (``True``) or went silent."""
        self.link_status.on_connection(up)

    @property
    def connected(self) -> bool:
        """Whether the broker answers now."""
        return self.link_status.connected

    def on_state(self, state: dict[str, Any]) -> None:
        """A new copy of the hall state (after a snapshot or an event)."""
        self.state = state
        self.link_status.on_state()
        tz = state.get("timezone")
        if tz:
            with contextlib.suppress(KeyError, ValueError):  # an unknown zone: keep the previous one
                self._tz = ZoneInfo(tz)
        t = self.current_ticket()
        if t is not None and t.called_at is not None:
            self._first_call.setdefault((t.id, t.entered_at), t.called_at)
        if not self.signed_in or any(a == "sign_in" for a, _ in self.pending.values()):
            return
        rec = self.counter_record()
        if not rec:
            return
        if rec.get("state") != "closed" and rec.get("clerk") == self.clerk:
            self._confirmed = True
        elif self._confirmed and not any(a == "sign_out" for a, _ in self.pending.values()):
            # The broker's own record says we no longer hold this counter.
            if rec.get("state") == "closed":
                self._lose_session(self._msg("error", "signed_out_elsewhere", counter=self.counter))
            else:
                self._lose_session(self._session_ended())

    def on_event(self, msg: dict[str, Any]) -> None:
        """One event publication (``msg["event"]`` is the event)."""
        ev = msg.get("event") or {}
        etype = ev.get("type")
        t = ev.get("ticket") or {}
        at = parse_time(ev.get("at")) or self.now()
        if etype == "ticket_transferred" and t.get("id") is not None and ev.get("counter") is not None:
            self._came_from[t["id"]] = ev["counter"]
        if ev.get("counter") != self.counter:
            return
        if etype == "ticket_serving" and t.get("id") is not None:
            self._serving_since[t["id"]] = at
        elif etype == "ticket_finished" and ev.get("clerk"):
            self._count("served", ev["clerk"], t, at)
        elif etype == "ticket_no_show" and ev.get("clerk"):
            self._count("no_show", ev["clerk"], t, at)
        elif etype == "counter_signed_in":
            if self._own_signin_events > 0:  # the first one after our sign_in is ours
                self._own_signin_events -= 1
            elif self.signed_in:
                self._lose_session(self._session_ended())
        elif etype == "counter_signed_out" and ev.get("reason") == "day_closed":
            # The business day closed (docs/calling-rules.md). The counter's record may have said so
            # first (the close's first event carries it): then only the reason shown changes.
            closed = self._msg("info", "day_closed", counter=self.counter)
            if self.signed_in:
                self._lose_session(closed)
            elif self.message == self._msg("error", "signed_out_elsewhere", counter=self.counter):
                self.message = closed
        elif etype == "counter_signed_out" and self.signed_in \
                and not any(a == "sign_out" for a, _ in self.pending.values()):
            self._lose_session(self._msg("error", "signed_out_elsewhere", counter=self.counter))

    def on_reply(self, rid: str, reply: dict[str, Any]) -> None:
        """The broker's answer to one of our requests (``QtLink.replied``)."""
        entry = self.pending.pop(rid, None)
        if entry is None:
            return  # not ours, or already answered
        action, args = entry
        status = reply.get("status")
        if status == "unavailable":
            self.message = self._msg("error", "unavailable")
            if action == "sign_in":
                self._own_signin_events = 0
            return
        if status != "ok":
            self._refused(action, reply.get("error") or {})
            return
        self._accepted(action, args, reply.get("result") or {})

    def _refused(self, action: str, err: dict[str, Any]) -> None:
        code = str(err.get("code", "UNKNOWN"))
        zh, en = str(err.get("message_zh") or code), str(err.get("message_en") or code)
        self.message = Message("error", self._named(zh, "zh"), self._named(en, "en"), code)
        if action == "sign_in":
            self._own_signin_events = 0
            self.offer_takeover = code == "COUNTER_OCCUPIED"
        if code == "SESSION_ENDED" and self.signed_in:
            self._lose_session(self.message)

    def _accepted(self, action: str, args: dict[str, Any], result: dict[str, Any]) -> None:
        t = result.get("ticket") or {}
        label = t.get("label", "")
        if action == "sign_in":
            rec = result.get("counter") or {}
            self.session = result.get("session")
            self.clerk = rec.get("clerk") or args.get("clerk")
            self.post = rec.get("post")
            self.offer_takeover = False
            self._confirmed = False
            self.guidance = None
            self.message = self._msg("ok", "signed_in_ok")
        elif action == "sign_out":
            self._clear_session()
            self.message = self._msg("ok", "signed_out_ok")
        elif action in ("call_next", "call_ticket"):
            self.guidance = None
            self.message = self._msg("ok", "called_ok", ticket=label)
        elif action == "recall":
            self.message = self._msg("info" if result.get("no_show") else "ok",
                                     "recall_limit" if result.get("no_show") else "recalled_ok", ticket=label)
            if result.get("no_show"):
                self._count("no_show", self.clerk, t, self.now())
        elif action == "no_show":
            self.message = self._msg("ok", "no_show_ok", ticket=label)
            self._count("no_show", self.clerk, t, self.now())
        elif action == "start":
            self.message = self._msg("ok", "start_ok", ticket=label)
            self._serving_since.setdefault(t.get("id", -1), self.now())
        elif action == "finish":
            self.message = self._msg("ok", "finish_ok", ticket=label)
            self._count("served", self.clerk, t, self.now())
        elif action == "transfer":
            self.guidance = self._guidance(t, args)
            target_zh, target_en = self._target_names(t, args)
            self.message = Message("ok", self.text("transfer_ok", "zh", ticket=label, target=target_zh),
                                   self.text("transfer_ok", "en", ticket=label, target_en=target_en))
        elif action == "pause":
            self.message = self._msg("ok", "pause_ok")
        elif action == "resume":
            self.message = self._msg("ok", "resume_ok")
        elif action == "reinstate":
            self.message = self._msg("ok", "reinstate_ok", ticket=label)
        elif action == "reprint":
            self.message = self._msg("ok", "reprint_ok", ticket=label, kiosk=self.kiosk_name(result.get("kiosk")))

    # ------------------------------------------------------------------ helpers

    def _session_ended(self) -> Message:
        err = HallError("SESSION_ENDED", counter=self.counter)
        return Message("error", err.message_zh, err.message_en, err.code)

    def _clear_session(self) -> None:
        self.session = None
        self.clerk = None
        self.post = None
        self._confirmed = False
        self._own_signin_events = 0
        self.guidance = None

    def _lose_session(self, message: Message) -> None:
        self._clear_session()
        self.message = message
        # Commands still in flight were sent with the old session; their answers no longer matter.
        self.pending = {rid: p for rid, p in self.pending.items() if p[0] == "sign_in"}

    def _count(self, kind: str, clerk: str | None, t: dict[str, Any], at: datetime) -> None:
        """Count a finish or no-show once, whether it is seen as our reply, as an event, or both."""
        if clerk is None or t.get("id") is None:
            return
        day = at.astimezone(self._tz).date().isoformat()
        figs = self._figures.setdefault((day, clerk), Figures())
        key = (kind, int(t["id"]), t.get("called_at") or t.get("entered_at") or "")
        if key in figs.seen:
            return
        figs.seen.add(key)
        if kind == "served":
            figs.served += 1
            since = self._serving_since.pop(int(t["id"]), None)
            if since is not None:
                figs.service_seconds.append(max(0.0, (at - since).total_seconds()))
        else:
            figs.no_shows += 1

    def _target_names(self, t: dict[str, Any], args: dict[str, Any]) -> tuple[str, str]:
        to_counter = args.get("to_counter")
        if to_counter is not None:
            return f"{to_counter} 号窗口", f"counter {to_counter}"
        code = t.get("queue_service") or args.get("service")
        return self.service_name(code, "zh"), self.service_name(code, "en")

    def _guidance(self, t: dict[str, Any], args: dict[str, Any]) -> Guidance:
        """Which window the citizen goes to next, as the clerk should say it."""
        label = t.get("label", "")
        code = t.get("queue_service") or args.get("service")
        service_zh, service_en = self.service_name(code, "zh"), self.service_name(code, "en")
        to_counter = args.get("to_counter")
        if to_counter is not None:
            key = "say_back" if self._came_from.get(t.get("id", -1)) == to_counter else "say_counter"
            values = {"counter": to_counter, "service": service_zh, "service_en": service_en}
        else:
            open_ = [c["number"] for c in self.counters()
                     if code in (c.get("services") or []) and c.get("state") != "closed"]
            numbers = open_ or [c["number"] for c in self.counters() if code in (c.get("services") or [])]
            key = "say_counter" if len(numbers) == 1 else "say_service"
            values = {"counter": numbers[0] if numbers else "?", "service": service_zh,
                      "service_en": service_en, "counters": "、".join(str(n) for n in numbers),
                      "counters_en": " or ".join(str(n) for n in numbers)}
        return Guidance(label, self.text(key, "zh", **values), self.text(key, "en", **values))
