"""Errors of the web gateway as HTTP answers: the protocol's codes and bilingual messages
(queuehall/errors.py), with an HTTP status chosen by code.

Every error body is ``{"status": "error", "error": {"code", "message_zh", "message_en", "details"}}``,
the same ``error`` object a broker reply carries, so one client handles both.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from queuehall.errors import HallError

# The HTTP status of each code; every other refusal of the hall's rules is 409 (the request was
# understood, the hall's state does not allow it now).
HTTP_STATUS: dict[str, int] = {
    "BAD_REQUEST": 400,
    "UNSUPPORTED_VERSION": 400,
    "REASON_REQUIRED": 400,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "UNKNOWN_TOKEN": 404,
    "UNKNOWN_TICKET": 404,
    "UNKNOWN_SERVICE": 404,
    "UNKNOWN_COUNTER": 404,
    "UNKNOWN_PRIORITY": 404,
    "BOOKING_NOT_FOUND": 404,
    "BOOKING_CODE_INVALID": 404,  # a code typed wrong is no booking (and says nothing about real ones)
    "METHOD_NOT_ALLOWED": 405,
    "MESSAGE_TOO_LARGE": 413,
    "BOOKING_CODE_LIMIT": 429,  # the brake on guessing codes (the broker's per device, the gateway's per address)
    "UNKNOWN_COMMAND": 501,
    "STORAGE": 503,
    "UNAVAILABLE": 503,
    "UNREACHABLE": 503,
}


class ApiError(Exception):
    """Raised in a handler: answered as the JSON error of ``code`` (a catalogue code)."""

    def __init__(self, code: str, status: int | None = None, *, extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None, **details: Any) -> None:
        self.error = HallError(code, **details).to_dict()
        self.status = status or HTTP_STATUS.get(code, 409)
        self.extra = extra or {}
        self.headers = headers
        super().__init__(code)

    @classmethod
    def from_error(cls, error: dict[str, Any]) -> ApiError:
        """The broker's own error object (a refused command), passed on unchanged."""
        err = cls.__new__(cls)
        code = str(error.get("code", "UNAVAILABLE"))
        err.error = {"code": code, "message_zh": str(error.get("message_zh", "")),
                     "message_en": str(error.get("message_en", "")), "details": error.get("details") or {}}
        err.status = HTTP_STATUS.get(code, 409)
        err.extra, err.headers = {}, None
        wait = err.error["details"].get("retry_after") if isinstance(err.error["details"], dict) else None
        if err.status == 429 and isinstance(wait, int):
            err.headers = {"retry-after": str(wait)}
        Exception.__init__(err, code)
        return err

    def response(self) -> JSONResponse:
        return JSONResponse({"status": "error", "error": self.error, **self.extra}, status_code=self.status,
                            headers=self.headers)
