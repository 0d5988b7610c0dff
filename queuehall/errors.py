"""Error codes shared by the engine, the broker, the protocol and every client.

Every refusal carries a stable ``code`` (what programs match on) and a message in
Chinese and English (what people read). The catalogue below is the single list; the
protocol document (docs/protocol.md) reproduces it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the type only: the lean command line loads errors without dataclasses
    from queuehall.text import Bi

# code -> (Chinese, English). Messages may contain {placeholders} filled from details.
CATALOGUE: dict[str, tuple[str, str]] = {
    # bad requests
    "BAD_REQUEST": ("请求格式错误：{detail}", "Malformed request: {detail}"),
    "UNKNOWN_COMMAND": ("未知命令：{command}", "Unknown command: {command}"),
    "UNSUPPORTED_VERSION": ("协议版本不兼容：{version}", "Unsupported protocol version: {version}"),
    "MESSAGE_TOO_LARGE": ("消息过大", "Message too large"),
    "FORBIDDEN": ("此设备无权执行该操作：{detail}", "This device may not do that: {detail}"),
    "UNAVAILABLE": ("服务暂不可用：{detail}", "Service unavailable: {detail}"),
    # the web gateway (docs/web.md)
    "UNREACHABLE": ("暂时无法连接大厅叫号系统，请稍后再试", "The hall's queue system cannot be reached right now; please try again shortly"),
    "NOT_FOUND": ("没有此地址：{path}", "No such address: {path}"),
    "METHOD_NOT_ALLOWED": ("此地址不支持 {method} 请求", "{method} is not allowed here"),
    # hall objects
    "UNKNOWN_SERVICE": ("没有此业务：{service}", "No such service: {service}"),
    "UNKNOWN_COUNTER": ("没有此窗口：{counter}", "No such counter: {counter}"),
    "UNKNOWN_TICKET": ("没有此号票：{ticket}", "No such ticket: {ticket}"),
    "UNKNOWN_TOKEN": ("没有此号票，或号票已过期（号票页面仅在取号当天有效）", "No such ticket, or it has expired (a ticket's page works on the day it was issued)"),
    "UNKNOWN_PRIORITY": ("没有此优先类别：{priority}", "No such priority class: {priority}"),
    "PRIORITY_NOT_ALLOWED": (
        "业务“{service}”不提供“{priority}”绿色通道",
        "Service {service} has no {priority} priority channel",
    ),
    "UNKNOWN_PAUSE_REASON": ("没有此暂停原因：{reason}", "No such pause reason: {reason}"),
    # opening hours
    "HALL_CLOSED": ("大厅已停止办公，下次取号时间：{next_open}", "The hall is closed; tickets again from {next_open}"),
    "HALL_BREAK": ("午间休息，下次取号时间：{next_open}", "Break time; tickets again from {next_open}"),
    "PAST_CUTOFF": (
        "今日该业务已停止取号，下次取号时间：{next_open}",
        "No more tickets for this service today; tickets again from {next_open}",
    ),
    "DAILY_CAP_REACHED": (
        "今日该业务号票已发完，下次取号时间：{next_open}",
        "Today's tickets for this service are all taken; tickets again from {next_open}",
    ),
    "SERVICE_CLOSED": ("业务“{service}”当前没有开放窗口", "No counter is open for service {service}"),
    # counters and clerks
    "BAD_PIN": ("工号或密码错误", "Wrong clerk id or PIN"),
    "PIN_NOT_SET": (
        "工作人员 {clerk} 尚未设置密码，请管理员运行 queuehall clerks set-pin {clerk}",
        "Clerk {clerk} has no PIN yet; an administrator sets one with queuehall clerks set-pin {clerk}",
    ),
    "CLERK_LOCKED": (
        "工作人员 {clerk} 因密码连续输错已被锁定，请 {minutes} 分钟后再试，或请管理员解锁",
        "Clerk {clerk} is locked after too many wrong PINs; try again in {minutes} min or ask an administrator",
    ),
    "PIN_INVALID": ("密码须为4–12位数字", "A PIN is 4-12 digits"),
    "PIN_MISMATCH": ("两次输入的密码不一致，未作更改", "The two PINs differ; nothing was changed"),
    "UNKNOWN_CLERK": ("没有此工作人员：{clerk}", "No such clerk: {clerk}"),
    "CLERK_NOT_ASSIGNED": ("工作人员 {clerk} 不是 {counter} 号窗口的A/B岗", "Clerk {clerk} is not on counter {counter}"),
    "SESSION_ENDED": (
        "{counter} 号窗口已在其他终端签到，本终端已退出",
        "Counter {counter} was taken over by another terminal; this one is signed out",
    ),
    "CLERK_ELSEWHERE": ("工作人员 {clerk} 已在 {counter} 号窗口签到", "Clerk {clerk} is signed in at counter {counter}"),
    "COUNTER_OCCUPIED": (
        "{counter} 号窗口已由 {clerk} 签到",
        "Counter {counter} is already signed in by {clerk}",
    ),
    "COUNTER_CLOSED": ("{counter} 号窗口未签到", "Counter {counter} is not signed in"),
    "COUNTER_PAUSED": ("{counter} 号窗口暂停服务中", "Counter {counter} is paused"),
    "COUNTER_NOT_PAUSED": ("{counter} 号窗口未暂停", "Counter {counter} is not paused"),
    "COUNTER_BUSY": (
        "{counter} 号窗口正在办理 {ticket}，请先办结、过号或转移",
        "Counter {counter} still has {ticket}; finish, mark no-show or transfer it first",
    ),
    "NOTHING_CALLED": ("{counter} 号窗口当前没有叫号", "Counter {counter} has no called ticket"),
    "NOT_SERVING": ("{counter} 号窗口当前没有正在办理的号", "Counter {counter} is not serving a ticket"),
    "ALREADY_SERVING": ("{ticket} 已在办理中", "{ticket} is already being served"),
    "QUEUE_EMPTY": ("当前没有等候的号", "Nobody is waiting"),
    "NOT_WAITING": ("{ticket} 不在等候中（状态：{status}）", "{ticket} is not waiting (status: {status})"),
    "NOT_SERVED_HERE": ("{ticket} 不属于 {counter} 号窗口办理的业务", "Counter {counter} does not serve {ticket}"),
    "REASON_REQUIRED": ("请填写原因", "A reason is required"),
    "NOT_NO_SHOW": ("{ticket} 不是过号状态", "{ticket} is not a no-show"),
    "GRACE_EXPIRED": ("{ticket} 过号已超过 {minutes} 分钟，不能恢复", "{ticket} missed its call over {minutes} min ago"),
    "CANNOT_CANCEL": ("{ticket} 当前不能取消（状态：{status}）", "{ticket} cannot be cancelled now (status: {status})"),
    "SAME_QUEUE": ("{ticket} 已在该队列", "{ticket} is already in that queue"),
    "NOT_HELP_COUNTER": (
        "只有帮助窗口（{help_counter} 号）可以补打号票",
        "Only the help counter (counter {help_counter}) may reprint tickets",
    ),
    "RETENTION": (
        "记录至少保存 {days} 天，不能删除 {before} 之后的记录",
        "Records are kept {days} days; nothing after {before} may be deleted",
    ),
    "STORAGE": ("数据保存失败：{detail}", "Could not save: {detail}"),
    # primary and standby brokers (docs/standby.md)
    "BROKER_STANDBY": (
        "此叫号服务器为备用服务器，当前不提供服务，请连接正在服务的服务器",
        "This broker is a standby and is not serving now; use the serving broker",
    ),
    "STANDBY_NEEDS_POSTGRESQL": (
        "主备叫号服务器须共用 PostgreSQL 数据库（--db postgresql+psycopg://…），SQLite 不支持备用服务器",
        "A primary/standby pair of brokers shares a PostgreSQL database (--db postgresql+psycopg://...); "
        "SQLite has no standby",
    ),
    # warnings (carried in the status reply and events, never a refusal)
    "CALENDAR_NO_OFFICIAL_DATA": (
        "节假日安排数据只到 {last_day}：{first_day} 起没有国务院办公厅{year}年节假日安排，"
        "大厅只按法定节假日闭厅，没有调休上班日。请把{year}年的通知录入 hall.toml 的 [[hours.notice]]，"
        "或升级 holidays 库",
        "Official holiday data ends on {last_day}: from {first_day} there is no State Council holiday "
        "arrangement for {year}, so the hall closes on the statutory holidays only and knows no make-up "
        "working days. Enter the {year} notice in hall.toml ([[hours.notice]]) or upgrade the holidays library",
    ),
    # remote tickets (WeChat mini program, 一网通办)
    "REMOTE_NOT_OFFERED": ("业务“{service}”不提供线上取号", "Service {service} does not issue tickets remotely"),
    "REMOTE_QUOTA_REACHED": (
        "今日该业务线上取号名额已满（{quota} 个），请到大厅取号",
        "Today's {quota} remote tickets for this service are all taken; please take one in the hall",
    ),
    "NOT_REMOTE": ("{ticket} 不是线上取的号，无需签到", "{ticket} was not taken remotely; no check-in needed"),
    "ALREADY_CHECKED_IN": ("{ticket} 已签到", "{ticket} has already checked in"),
    "REMOTE_LAPSED": (
        "{ticket} 未在 {arrive_by} 前到厅签到，已失效，请重新取号",
        "{ticket} was not checked in by {arrive_by} and has lapsed; please take a new ticket",
    ),
    # appointments (预约; docs/calling-rules.md "Appointments")
    "BOOKING_NOT_OFFERED": ("业务“{service}”不提供预约", "Service {service} takes no bookings"),
    "SLOT_CLOSED": ("{slot} 不在办公时间（午休、节假日或下班时间），不能预约",
                    "{slot} is outside opening hours (lunch break, holiday or closed); it cannot be booked"),
    "SLOT_UNKNOWN": ("{slot} 不是预约时段的开始时间（每段 {minutes} 分钟）",
                     "{slot} is not the start of a booking slot (slots of {minutes} min)"),
    "SLOT_PAST": ("{slot} 的时段已开始或已过，不能预约", "The slot at {slot} has started or passed; it cannot be booked"),
    "SLOT_TOO_FAR": ("{slot} 超出可预约范围（最多提前 {days} 天）", "{slot} is too far ahead (bookings open {days} days ahead)"),
    "SLOT_FULL": ("{slot} 的预约名额已满，请选择其他时段", "The slot at {slot} is fully booked; please choose another"),
    "BAD_CONTACT": ("联系方式须为11位手机号或18位身份证号", "A contact is an 11-digit mobile number or an 18-character ID number"),
    "BOOKING_CODE_INVALID": ("预约码 {booking} 有误，请核对后重新输入（10位，不含 0、O、1、I、L）",
                             "Booking code {booking} is not valid; please check and type it again (10 characters, "
                             "no 0, O, 1, I or L)"),
    "BOOKING_WRONG_HALL": ("预约码 {booking} 不是本大厅的预约，请到预约的办事大厅签到",
                           "Booking {booking} is for another hall; please check in at the hall you booked"),
    "BOOKING_NOT_FOUND": ("没有找到预约 {booking}，请核对预约码", "No booking {booking}; please check the code"),
    "BOOKING_CANCELLED": ("预约 {booking} 已取消，请重新预约或现场取号",
                          "Booking {booking} was cancelled; please book again or take a ticket"),
    "BOOKING_ALREADY_CHECKED_IN": ("预约 {booking} 已签到，号票为 {ticket}", "Booking {booking} is already checked in: ticket {ticket}"),
    "BOOKING_WRONG_DAY": ("预约 {booking} 是 {slot} 的预约，不是今天的，请在预约当天签到",
                          "Booking {booking} is for {slot}, not today; please check in on the day you booked"),
    "BOOKING_TOO_EARLY": ("预约 {booking} 的时段为 {slot}，请于 {opens} 起签到",
                          "Booking {booking} is for {slot}; check-in opens at {opens}"),
    "BOOKING_CODE_LIMIT": ("此设备一分钟内输错预约码已达 {per_minute} 次，请 {retry_after} 秒后再试；如有疑问请到咨询台",
                           "{per_minute} wrong booking codes from this device within a minute: please try again "
                           "in {retry_after} s, or ask at the help desk"),
    "BOOKING_CONTACT_MISMATCH": ("联系方式与预约 {booking} 不符", "The contact does not match booking {booking}"),
    "BOOKING_CONTACT_UNCHECKABLE": ("预约 {booking} 的联系方式无法核对（大厅的联系方式密钥已更换），请核验证件后不带联系方式签到",
                                    "The contact of booking {booking} cannot be checked (the hall's contact key was "
                                    "replaced): check the citizen's ID and check in without the contact"),
    # 好差评 (docs/evaluation.md)
    "BAD_LEVEL": ("评价等级须为 1–5（5 非常满意 … 1 非常不满意）：{level}",
                  "A rating level is 1-5 (5 very satisfied ... 1 very dissatisfied): {level}"),
    "UNKNOWN_INDICATOR": ("没有此评价指标：{indicator}（可选：服务效率 efficiency、服务水平 level、服务态度 attitude、"
                          "整体满意度 overall）",
                          "No such indicator: {indicator} (efficiency, level, attitude, overall)"),
    "INDICATORS_LOW_ONLY": ("只有“不满意”“非常不满意”才选择不满意的方面",
                            "Indicators are given with the two low levels only"),
    "NOT_FINISHED": ("{ticket} 尚未办结，办结后才能评价", "{ticket} is not finished yet; it can be rated once finished"),
    "ALREADY_RATED": ("{ticket} 本次办理已评价，每次办理只能评价一次", "{ticket} has already been rated; one rating per visit"),
    "RATING_CLOSED": ("{ticket} 办结已超过 {minutes} 分钟，评价时间已过",
                      "{ticket} was finished over {minutes} min ago; it can no longer be rated"),
    "NOTHING_TO_RATE": ("{counter} 号窗口近 {minutes} 分钟内没有可评价的办理",
                        "Counter {counter} has no visit finished in the last {minutes} min to rate"),
    "UNKNOWN_ALERT": ("没有此未解除的告警：{key}", "No active alert {key}"),
    "UNKNOWN_CASE": ("没有此未办结的差评工单：{case}", "No open 差评 case {case}"),
    "CALLBACK_REQUIRED": ("差评工单 {case} 须先回访才能办结", "Case {case} needs a call back (回访) before it is closed"),
    # the web gateway's REST API
    "UNAUTHORIZED": ("缺少或无效的访问令牌", "Missing or invalid API token"),
    "TOKEN_SCOPE": ("此访问令牌无权执行该操作：{detail}", "This API token may not do that: {detail}"),
    "RATE_LIMITED": ("请求过于频繁，请 {retry_after} 秒后再试", "Too many requests; try again in {retry_after} s"),
}


class QueuehallError(Exception):
    """Every error queuehall reports to a person: a stable ``code`` (for programs, logs and tests), a message
    in Chinese and one in English, and the details that filled them.

    The parts' own errors (configuration, printer, ticket layout, voice, display options, reports, the web
    API …) derive from it, so whatever catches one reads the same four fields. ``str(err)`` is
    ``CODE: 中文 / English`` unless a subclass says otherwise.
    """

    def __init__(self, code: str, message_zh: str, message_en: str, details: dict[str, Any] | None = None,
                 text: str | None = None) -> None:
        self.code = code
        self.message_zh = message_zh
        self.message_en = message_en
        self.details = dict(details or {})
        super().__init__(text if text is not None else f"{code}: {message_zh} / {message_en}")

    @property
    def zh(self) -> str:
        return self.message_zh

    @property
    def en(self) -> str:
        return self.message_en

    @property
    def message(self) -> Bi:
        """Both messages as the one bilingual text type (what a screen shows)."""
        from queuehall.text import Bi

        return Bi(self.message_zh, self.message_en)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message_zh": self.message_zh,
            "message_en": self.message_en,
            "details": self.details,
        }


class HallError(QueuehallError):
    """A refused command: stable code, bilingual message from the catalogue, and the details that filled it."""

    def __init__(self, code: str, **details: Any) -> None:
        if code not in CATALOGUE:
            raise ValueError(f"unknown error code {code!r}")
        zh, en = CATALOGUE[code]
        # A detail may come in Chinese too (``detail_zh`` beside ``detail``): the Chinese message uses it.
        message_zh = _fill(zh, {**details, **{k[:-3]: v for k, v in details.items() if k.endswith("_zh")}})
        message_en = _fill(en, details)
        super().__init__(code, message_zh, message_en, details, text=f"{code}: {message_en}")


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _fill(template: str, details: dict[str, Any]) -> str:
    return template.format_map(_Blank({k: "" if v is None else v for k, v in details.items()}))
