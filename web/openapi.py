"""The OpenAPI 3.1 document of the REST API v1, served at ``/api/v1/openapi.json``.

The read side's endpoints that serve the gateway's mirror are written here by hand (``PATHS``); every endpoint
that sends a broker command is generated from the command schema (web/rest.py: its arguments, token scope and
error answers), and parts that plug in add theirs at start-up (:func:`add`). docs/web.md describes the same API
in prose.
"""

from __future__ import annotations

import copy
from typing import Any

from queuehall.errors import CATALOGUE
from queuehall.text import JSON_SCHEMA as BI_SCHEMA

_BI = BI_SCHEMA  # queuehall.text.Bi on the wire


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _ok(description: str, prop: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "required": [prop], "properties": {prop: schema}}}}}


TOKEN_PARAM = {"name": "token", "in": "path", "required": True,
               "description": "The ticket's page token (from its QR code / take reply): 22+ URL-safe characters.",
               "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"}}

UNREACHABLE = _error("UNREACHABLE: the gateway cannot reach the hall's broker (the body may carry the "
                     "last known state beside the error)")

SCHEMAS: dict[str, Any] = {
    "Bilingual": _BI,
    "Error": {
        "type": "object", "required": ["status", "error"],
        "properties": {
            "status": {"const": "error"},
            "error": {"type": "object", "required": ["code", "message_zh", "message_en"], "properties": {
                "code": {"type": "string", "enum": sorted(CATALOGUE),
                         "description": "Stable code of queuehall's error catalogue (docs/protocol.md)."},
                "message_zh": {"type": "string"}, "message_en": {"type": "string"},
                "details": {"type": "object"}}},
        },
    },
    "Hall": {"type": "object", "properties": {
        "name": _ref("Bilingual"), "open": {"type": "boolean"}, "business_day": {"type": "string", "format": "date"},
        "timezone": {"type": "string"}, "notice": _ref("Bilingual"), "counters_open": {"type": "integer"},
        "counters": {"type": "integer"}, "waiting": {"type": "integer"}, "connected": {"type": "boolean"}}},
    "Service": {"type": "object", "properties": {
        "code": {"type": "string"}, "name": _ref("Bilingual"), "department": {"type": "string"},
        "waiting": {"type": "integer"}, "estimated_wait_minutes": {"type": "integer"},
        "issue_state": {"type": "string", "description": "open, break, closed, past_cutoff or daily_cap"},
        "next_open": {"type": ["string", "null"], "format": "date-time"},
        "issued_today": {"type": "integer"}, "daily_cap": {"type": ["integer", "null"]},
        "target_wait_minutes": {"type": ["integer", "null"]}, "promised_days": {"type": ["integer", "null"]},
        "materials": {"type": "array", "items": _ref("Bilingual")}}},
    "TicketState": {"type": "object", "description": "A ticket as its page shows it: nothing else about the hall's "
                    "other tickets, no note, no clerk.", "properties": {
        "label": {"type": "string"},
        "status": {"type": "string", "description": "waiting, called, serving, finished, no_show, cancelled, voided, "
                                                 "closed_unserved"},
        "active": {"type": "boolean"}, "service": _ref("Bilingual"), "transferred": {"type": "boolean"},
        "priority": {"type": "boolean"}, "ahead": {"type": ["integer", "null"]},
        "estimated_wait_minutes": {"type": ["integer", "null"]},
        "headline": _ref("Bilingual"), "detail": _ref("Bilingual"),
        "counter": {"type": ["object", "null"], "properties": {"number": {"type": "integer"},
                                                               "name": _ref("Bilingual")}},
        "calls": {"type": "integer"}, "called_at": {"type": ["string", "null"], "format": "date-time"},
        "issued_at": {"type": "string", "format": "date-time"}, "business_day": {"type": "string", "format": "date"},
        "materials": {"type": "array", "items": _ref("Bilingual")}, "hall": _ref("Bilingual"),
        "connected": {"type": "boolean"},
        "check_in_by": {"type": ["string", "null"], "format": "date-time",
                        "description": "A remote ticket not yet checked in: it lapses if still waiting then."}}},
}

PATHS: dict[str, Any] = {
    "/api/v1/hall": {"get": {
        "summary": "The hall: open or not, counters open, people waiting", "operationId": "getHall",
        "responses": {"200": _ok("The hall", "hall", _ref("Hall")), "503": UNREACHABLE}}},
    "/api/v1/services": {"get": {
        "summary": "Every service with its waiting count, estimated wait and materials", "operationId": "listServices",
        "responses": {"200": _ok("The services in the hall's order", "services",
                                 {"type": "array", "items": _ref("Service")}), "503": UNREACHABLE}}},
    "/api/v1/services/{code}": {"get": {
        "summary": "One service", "operationId": "getService",
        "parameters": [{"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": _ok("The service", "service", _ref("Service")),
                      "404": _error("UNKNOWN_SERVICE"), "503": UNREACHABLE}}},
    "/api/v1/tickets/{token}": {"get": {
        "summary": "A ticket's status by its page token", "operationId": "getTicket", "parameters": [TOKEN_PARAM],
        "responses": {"200": _ok("The ticket's state", "ticket", _ref("TicketState")),
                      "404": _error("UNKNOWN_TOKEN: no ticket of today has this token"), "503": UNREACHABLE}}},
    "/api/v1/tickets/{token}/events": {"get": {
        "summary": "The ticket's state as Server-Sent Events: the current state at once, then every change",
        "operationId": "streamTicket", "parameters": [TOKEN_PARAM],
        "responses": {"200": {"description": "text/event-stream; each `data:` line is a TicketState",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                      "404": _error("UNKNOWN_TOKEN"), "503": _error("UNREACHABLE, or UNAVAILABLE when the "
                                                                     "gateway has too many open pages")}}},
}


def document(public_url: str = "") -> dict[str, Any]:
    """A fresh copy of the document (``servers`` names the public address when known)."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "queuehall REST API", "version": "1",
                 "description": "The hall's public state, ticket pages' data and (with an API token) its "
                                "integrations. Errors carry queuehall's stable codes in Chinese and English."},
        "paths": copy.deepcopy(PATHS),
        "components": {"schemas": copy.deepcopy(SCHEMAS)},
    }
    if public_url:
        doc["servers"] = [{"url": public_url.rstrip("/")}]
    from queuehall.web import rest  # after this module: the endpoints every gateway has, from the command schema

    rest.document(doc, rest.ON_THE_PAGE, rate_limited=False)
    return doc


def add(doc: dict[str, Any], path: str, method: str, operation: dict[str, Any],
        schemas: dict[str, Any] | None = None) -> None:
    """Add one operation (and the schemas it refers to) to ``doc``, e.g. ``app.state.openapi``."""
    doc["paths"].setdefault(path, {})[method.lower()] = operation
    doc["components"]["schemas"].update(schemas or {})
