"""The manager's alerts (电子监察, docs/supervision.md): rules over the hall's state, on the hall's clock.

Pure Python (no zmq, no SQL). :func:`conditions` lists every alert condition that holds now, each under a
stable key ``rule:subject``; :class:`AlertMonitor` compares that with the alerts active before and says
which were raised and which cleared. The broker runs it after every published batch and every heartbeat
and records each change with the engine's ``alert`` command (journaled, so alerts survive a restart and
the reports count them).

Every rule is a state, not an edge: an alert stays raised while its condition holds and clears by itself
when it ends; a manager acknowledges it with a note (``alert_ack``), which does not clear it.

Cost: one pass over the services (their longest wait is the engine's cached oldest ticket), the counters,
the devices and the open cases: O(services + counters + devices + cases), about 0.1 ms for 30 queues and
200 counters (bench/alerts_bench.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from queuehall.text import Bi

# Every rule's title (the alert catalogue), in both languages.
RULES: dict[str, Bi] = {
    "wait_over_target": Bi("等候超时：最长等候已超过目标", "A wait is over its target"),
    "counter_paused": Bi("窗口暂停时间过长", "A counter has been paused too long"),
    "no_open_counter": Bi("有人等候但没有开放窗口", "People are waiting and no counter serves them"),
    "counter_unstaffed": Bi("有号指定到未签到的窗口", "Tickets wait for a counter nobody is signed in at"),
    "device_offline": Bi("设备离线", "A device is offline"),
    "printer_fault": Bi("取号机打印故障", "A kiosk's printer has a fault"),
    "bad_rating": Bi("收到差评，尚未回访", "A 差评 was received and not yet called back"),
    "case_overdue": Bi("差评整改超期", "A 差评 case is past its due day"),
    "calendar": Bi("节假日安排缺少官方数据", "The calendar has no official data"),
    "promise_at_risk": Bi("承诺时限：即办件今日排队办不完",
                          "An on-the-spot service's queue runs past the session's end"),
}
WATCHED_ROLES = ("kiosk", "display")  # devices whose absence is alerted (counters sign in; scripts come and go)


@dataclass(frozen=True)
class AlertRules:
    """``[alerts]`` of hall.toml (docs/configuration.md): which rules run and their thresholds."""

    # On unless hall.toml says ``[alerts] enabled = false``: the manager's supervision page and the webhooks
    # need them, and a hall should not have to discover a switch to be told of a broken promise.
    enabled: bool = True
    wait_over_target: bool = True
    paused_minutes: int = 15  # 0 = the counter_paused rule is off
    no_open_counter: bool = True
    counter_unstaffed: bool = True
    device_offline: bool = True
    printer_fault: bool = True
    bad_rating: bool = True
    case_overdue: bool = True
    calendar: bool = True
    promise_at_risk: bool = True


class HallLike(Protocol):
    """What the rules read from :class:`queuehall.broker.engine.Hall`."""

    config: Any
    counters: Any
    counter_config: Any
    cases: Any
    hours: Any
    state: Any
    _addressed: Any
    _queues: Any

    def longest_waiting_since(self, service: str) -> datetime | None: ...

    def estimated_wait_minutes(self, service: str, ahead: int) -> int: ...


def conditions(hall: HallLike, devices: dict[str, dict[str, Any]], now: datetime,
               rules: AlertRules, calendar_warning: str | None = None) -> dict[str, dict[str, Any]]:
    """Every alert condition that holds at ``now``: key ``rule:subject`` -> its details (JSON-able).
    ``calendar_warning``: the code of today's calendar warning (:meth:`OpeningHours.calendar_status`), if any."""
    out: dict[str, dict[str, Any]] = {}
    open_services: set[str] = set()
    for n, c in hall.counters.items():
        if c.state != "closed":
            open_services.update(hall.counter_config[n].services)
    session_end: datetime | None = None
    if rules.promise_at_risk:  # the end of the opening period now under way (None outside one)
        session_end = hall.hours.issue_window(now, 0).session_end
    for s in hall.config.services:
        waiting = len(hall._queues.get(s.code, ()))
        if not waiting:
            continue
        if session_end is not None and s.promised_days == 0:
            # 承诺时限 of an on-the-spot matter (即办件, promised_days = 0): done today. When the queue's
            # estimated time to clear runs past the session's end, the last in it will not be served today.
            minutes = hall.estimated_wait_minutes(s.code, waiting)
            if now + timedelta(minutes=minutes) > session_end:
                out[f"promise_at_risk:{s.code}"] = {
                    "rule": "promise_at_risk", "service": s.code, "waiting": waiting,
                    "clear_minutes": minutes, "session_ends": session_end.isoformat()}
        if rules.no_open_counter and s.code not in open_services:
            out[f"no_open_counter:{s.code}"] = {"rule": "no_open_counter", "service": s.code, "waiting": waiting}
        if rules.wait_over_target and s.target_wait_minutes:
            since = hall.longest_waiting_since(s.code)
            if since is not None and now - since > timedelta(minutes=s.target_wait_minutes):
                out[f"wait_over_target:{s.code}"] = {
                    "rule": "wait_over_target", "service": s.code, "target_minutes": s.target_wait_minutes,
                    "since": since.isoformat()}
    for n, c in hall.counters.items():
        if rules.paused_minutes and c.state == "paused" and c.since is not None and \
                now - c.since > timedelta(minutes=rules.paused_minutes):
            out[f"counter_paused:{n}"] = {"rule": "counter_paused", "counter": n, "clerk": c.clerk,
                                          "reason": c.pause_reason, "since": c.since.isoformat(),
                                          "limit_minutes": rules.paused_minutes}
        if rules.counter_unstaffed and c.state == "closed" and hall._addressed.get(n):
            out[f"counter_unstaffed:{n}"] = {"rule": "counter_unstaffed", "counter": n,
                                             "waiting": len(hall._addressed[n])}
    if rules.device_offline:
        for client, dev in devices.items():
            if not dev.get("online") and dev.get("role") in WATCHED_ROLES:
                out[f"device_offline:{dev.get('name') or client}"] = {
                    "rule": "device_offline", "device": dev.get("name") or client, "role": dev.get("role"),
                    "counter": dev.get("counter")}
    if rules.printer_fault:
        for kiosk, rec in (hall.state.get("printers") or {}).items():
            fault = rec.get("fault")
            if fault:
                out[f"printer_fault:{rec.get('name') or kiosk}"] = {
                    "rule": "printer_fault", "device": rec.get("name") or kiosk, "code": fault.get("code"),
                    "since": fault.get("since"), "unprinted": len(rec.get("unprinted") or [])}
    today = hall.hours.business_day(now)
    for case in hall.cases.values():
        if rules.bad_rating and case.callback_at is None:
            out[f"bad_rating:{case.id}"] = {"rule": "bad_rating", "case": case.id, "label": case.label,
                                            "level": case.level, "counter": case.counter, "clerk": case.clerk}
        if rules.case_overdue and today > case.due_day:
            out[f"case_overdue:{case.id}"] = {"rule": "case_overdue", "case": case.id,
                                              "due_day": case.due_day.isoformat(), "counter": case.counter,
                                              "clerk": case.clerk}
    if rules.calendar and calendar_warning:
        out["calendar:official_data"] = {"rule": "calendar", "warning": calendar_warning}
    return out


class AlertMonitor:
    """The alerts raised now, and what changed since the last look."""

    def __init__(self, rules: AlertRules, active: dict[str, dict[str, Any]] | None = None) -> None:
        self.rules = rules
        self.active: dict[str, dict[str, Any]] = dict(active or {})
        self._calendar: tuple[Any, str | None] = (None, None)  # (business day, warning code): once a day

    def check(self, hall: HallLike, devices: dict[str, dict[str, Any]],
              now: datetime) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """(raised: key -> details, cleared: keys) since the last check; ``active`` is updated."""
        day = hall.hours.business_day(now)
        if self._calendar[0] != day:
            warning = hall.hours.calendar_status(day).get("warning")
            self._calendar = (day, warning.get("code") if warning else None)
        now_holding = conditions(hall, devices, now, self.rules, self._calendar[1])
        raised = {k: v for k, v in now_holding.items() if k not in self.active}
        cleared = [k for k in self.active if k not in now_holding]
        for k in cleared:
            del self.active[k]
        self.active.update(raised)
        return raised, cleared
