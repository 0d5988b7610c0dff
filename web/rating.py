"""好差评 from the ticket's phone page (docs/evaluation.md, docs/web.md): after the visit is finished the
page offers the five levels (with the indicators and a reason for the two low ones) for the hall's rating
window; the gateway sends ``rate`` with ``channel: "phone"`` for the page's ticket.

Two ways in, both by the page's token (the token is the citizen's proof of holding the ticket):

* ``POST /t/{token}/rate``: the page's own form (``application/x-www-form-urlencoded``, no script
  needed); answers with a page that thanks, or says why the rating was refused;
* ``POST /api/v1/tickets/{token}/rating``: JSON ``{"level", "indicators"?, "reason"?}`` for apps, derived
  from the ``rate`` command's schema (web/rest.py: its types exactly, ``indicators`` a list);
  answers ``{"rating": {...}}`` (level, indicators, channel, rated_at) or the broker's error (409).
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import parse_qs

from queuehall.web import pages, rest
from queuehall.web.errors import ApiError
from queuehall.web.hub import BrokerDown, Hub, Refused
from queuehall.web.tickets import TicketBoard
from queuehall.web.views import bi
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from queuehall.ratings import RATING_INDICATORS, RATING_LEVELS

MAX_FORM_BYTES = 4096
NO_STORE = {"cache-control": "no-store"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def rating_form(token: str, base: str = "") -> str:
    """The rating form a finished ticket's page shows (plain HTML: works without scripts); ``base``: the hall's
    address prefix on a city gateway (web/halls.py)."""
    levels = "".join(
        f'<label class="lv lv{n}"><input type="radio" name="level" value="{n}" required>'
        f'{name.zh}<span class="en">{name.en}</span></label>' for n, name in RATING_LEVELS.items())
    indicators = "".join(
        f'<label><input type="checkbox" name="indicators" value="{code}">{name.zh}<span class="en">{name.en}</span>'
        '</label>' for code, name in RATING_INDICATORS.items())
    return (
        f'<section id="rating" class="card"><form method="post" action="{_e(base)}/t/{_e(token)}/rate">'
        '<h2>请您对本次服务进行评价 <span class="en">Please rate our service</span></h2>'
        f'<fieldset class="levels">{levels}</fieldset>'
        '<fieldset class="indicators"><legend>不满意的方面（选择“不满意”“非常不满意”时填写）'
        f'<span class="en">If dissatisfied: which part?</span></legend>{indicators}</fieldset>'
        '<textarea name="reason" maxlength="200" placeholder="意见或原因（选填） Your reason (optional)"></textarea>'
        '<button type="submit">提交评价<span class="en">Submit</span></button>'
        '</form></section>')


def _args(level: Any, indicators: Any, reason: Any) -> dict[str, Any]:
    """The ``rate`` arguments from what the phone sent; ApiError BAD_REQUEST/BAD_LEVEL for nonsense."""
    try:
        lv = int(level)
    except (TypeError, ValueError):
        raise ApiError("BAD_LEVEL", level=str(level)[:20]) from None
    if not isinstance(indicators, list) or not all(isinstance(i, str) for i in indicators):
        raise ApiError("BAD_REQUEST", detail="indicators must be a list of strings")
    if not isinstance(reason, str):
        raise ApiError("BAD_REQUEST", detail="reason must be a string")
    args: dict[str, Any] = {"level": lv, "channel": "phone"}
    if indicators and lv in (1, 2):  # the form sends the boxes whatever the level; the engine refuses them on high
        args["indicators"] = ",".join(indicators[:4])
    if reason.strip():
        args["reason"] = reason.strip()[:200]
    return args


def rating_routes(hub: Hub, board: TicketBoard) -> list[BaseRoute]:
    """The phone page's rating routes (added to the gateway's own by :func:`queuehall.web.app.create_app`)."""

    async def rate(token: str, args: dict[str, Any]) -> dict[str, Any]:
        tid = await board.ticket_of(token)
        try:
            result = await hub.request("rate", ticket=str(tid), **args)
        except BrokerDown:
            raise ApiError("UNREACHABLE") from None
        except Refused as err:
            raise ApiError.from_error(err.error) from None
        r = result.get("rating") or {}
        # The phone learns its own rating back, not the clerk or the counter's internal numbers.
        return {k: r.get(k) for k in ("label", "level", "level_zh", "level_en", "indicators", "channel", "rated_at")}

    async def form_rating(request: Request) -> Response:
        body = await request.body()
        h = hub.mirror.state.get("hall") or {}
        hall = bi(h.get("name_zh"), h.get("name_en"))
        try:
            if len(body) > MAX_FORM_BYTES:
                raise ApiError("MESSAGE_TOO_LARGE")
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            args = _args((form.get("level") or [""])[0], form.get("indicators") or [],
                         (form.get("reason") or [""])[0])
            r = await rate(request.path_params["token"], args)
        except ApiError as err:
            e = err.error
            return HTMLResponse(pages.message_page(bi("未能提交评价", "The rating was not accepted"),
                                                   bi(e["message_zh"], e["message_en"]), hall),
                                status_code=err.status, headers=NO_STORE)
        return HTMLResponse(pages.message_page(bi("感谢您的评价！", "Thank you for your rating!"),
                                               bi(f"您的评价：{r['level_zh']}", f"Your rating: {r['level_en']}"),
                                               hall), headers=NO_STORE)

    # The JSON endpoint for apps is derived from the command schema like every other (web/rest.py).
    return [Route("/t/{token}/rate", form_rating, methods=["POST"]), *rest.routes(rest.ON_THE_PAGE, None)]
