"""The gateway's HTML pages: the ticket page and the pages that say why there is none.

Rendered here from the page state (so the page reads right before any script runs, and without
scripts at all); ``static/ticket.js`` then follows the ticket live. Every value is escaped; the
only script and style are the gateway's own files (no CDN, no web font).
"""

from __future__ import annotations

import html
from typing import Any

import orjson

ASSET_VERSION = "3"  # bumped when static files change, so phones do not keep an old copy


def _e(value: Any) -> str:
    return html.escape(str(value if value is not None else ""), quote=True)


def _pair(tag: str, id_: str, text: dict[str, str], cls: str = "") -> str:
    cls_attr = f' class="{cls}"' if cls else ""
    return f'<{tag} id="{id_}"{cls_attr}>{_e(text.get("zh"))}<span class="en">{_e(text.get("en"))}</span></{tag}>'


def _document(title: str, body: str, *, hall: dict[str, str] | None = None, script: bool = False) -> str:
    hall = hall or {"zh": "", "en": ""}
    header = (f'<header><h1>{_e(hall.get("zh"))}</h1><p>{_e(hall.get("en"))}</p></header>'
              if hall.get("zh") or hall.get("en") else "")
    js = f'<script src="/static/ticket.js?v={ASSET_VERSION}" defer></script>' if script else ""
    return ('<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            '<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">'
            f'<title>{_e(title)}</title><link rel="stylesheet" href="/static/ticket.css?v={ASSET_VERSION}">{js}'
            f'</head><body>{header}<main>{body}</main></body></html>')


def ticket_page(token: str, state: dict[str, Any], base: str = "") -> str:
    """The page of one ticket in ``state`` (:func:`queuehall.web.views.page_state`); ``base``: the hall's
    address prefix on a city gateway (``/h/<hall>``, web/halls.py), where its script and form go."""
    materials = "".join(f'<li>{_e(m["zh"])}<span class="en">{_e(m["en"])}</span></li>' for m in state["materials"])
    hidden = "" if state["active"] and state["materials"] else " hidden"
    issued = str(state.get("issued_at") or "")[:10]
    body = (
        # The state rides along for the script (JSON in an attribute, escaped like any other value).
        f'<div id="app" data-token="{_e(token)}" data-base="{_e(base)}" '
        f'data-state="{_e(orjson.dumps(state).decode())}">'
        '<div class="banner" role="alert">大厅叫号系统暂时无法连接，正在重试；您的排队位置不受影响。'
        '<span class="en">The hall cannot be reached right now; retrying. Your place in the queue is kept.</span>'
        '</div>'
        f'<section id="card" class="card main status-{_e(state["status"])}" aria-live="assertive">'
        f'<p id="num" class="num">{_e(state["label"])}</p>'
        f'{_pair("p", "svc", state["service"], "svc")}'
        f'{_pair("p", "head", state["headline"], "head")}'
        f'{_pair("p", "detail", state["detail"], "detail")}'
        '</section>'
        '<button id="sound" type="button" hidden>叫到我时响铃提示'
        '<span class="en">Chime when I am called</span></button>'
        f'<section id="materials" class="card"{hidden}><h2>请备齐以下材料 <span class="en">Please bring</span></h2>'
        f'<ol>{materials}</ol></section>'
        f'{_rating_form(token, base) if state["status"] == "finished" else ""}'
        f'<p class="meta">{_e(issued)} · 本页自动更新，无需刷新<span class="en">This page updates by itself</span></p>'
        '</div>'
    )
    return _document(f'{state["label"]} · {state["headline"]["zh"]}', body, hall=state["hall"], script=True)


def _rating_form(token: str, base: str = "") -> str:
    """好差评 after the visit (docs/evaluation.md): the form of queuehall.web.rating."""
    from queuehall.web.rating import rating_form

    return rating_form(token, base)


def message_page(title: dict[str, str], detail: dict[str, str], hall: dict[str, str] | None = None) -> str:
    """A page that only says something (no such ticket, the hall unreachable, ...), in both languages."""
    body = (f'<section class="card err">{_pair("p", "head", title, "head")}'
            f'{_pair("p", "detail", detail, "detail")}</section>')
    return _document(f'{title["zh"]} / {title["en"]}', body, hall=hall)


def unknown_ticket_page(hall: dict[str, str] | None = None) -> str:
    return message_page({"zh": "没有找到此号票", "en": "Ticket not found"},
                        {"zh": "号票不存在或已过期：号票页面仅在取号当天有效。如需办理请重新取号。",
                         "en": "This ticket does not exist or has expired: a ticket's page works on the day "
                               "it was issued. Take a new ticket to be served."}, hall)


def unreachable_page(hall: dict[str, str] | None = None) -> str:
    return message_page({"zh": "暂时无法连接大厅", "en": "The hall cannot be reached"},
                        {"zh": "大厅叫号系统暂时无法连接，请稍后刷新本页。您的排队位置不受影响。",
                         "en": "The hall's queue system cannot be reached right now. Please reload this page "
                               "in a moment; your place in the queue is kept."}, hall)


def hall_page(hall: dict[str, Any], services: list[dict[str, Any]]) -> str:
    """``/``: the hall's services with the people waiting and the estimated wait (as the wall display)."""
    rows = "".join(
        f'<li><b>{_e(s["name"]["zh"])}</b><span class="en">{_e(s["name"]["en"])}</span>'
        f'等候 {int(s["waiting"])} 人 · 约 {int(s["estimated_wait_minutes"])} 分钟'
        f'<span class="en">{int(s["waiting"])} waiting · about {int(s["estimated_wait_minutes"])} min</span></li>'
        for s in services)
    state = ({"zh": "办公中", "en": "Open"} if hall.get("open") else {"zh": "非办公时间", "en": "Closed"})
    body = (f'<section class="card">{_pair("p", "head", state, "head")}'
            f'<p class="detail">开放窗口 {int(hall.get("counters_open") or 0)} 个<span class="en">'
            f'{int(hall.get("counters_open") or 0)} counters open</span></p></section>'
            f'<section class="card"><h2>各业务排队情况 <span class="en">Queues</span></h2><ol>{rows}</ol></section>')
    return _document(f'{hall["name"]["zh"]} / {hall["name"]["en"]}', body, hall=hall["name"])
