"""The spec's error envelope, for HTTP answers and for batch error lines.

HTTP: ``{"error": {"message", "type", "code", "param", "line"?}}``. Line errors:
``{"code", "message": "[legacy:<old>] …", "param": null}``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["STATUS_FOR_LINE_CODE", "ApiError", "envelope", "legacy_message", "type_for_status"]

# What the old (pre-code) error scheme called each line error; the service prefixes line
# error messages with it, and clients that grep for it keep working.
_LEGACY = {
    "invalid_request_error": "http_400",
    "context_length_exceeded": "http_400",
    "authentication_error": "http_401",
    "not_found_error": "http_404",
    "request_too_large": "http_413",
    "rate_limit_exceeded": "http_429",
    "insufficient_quota": "http_429",
    "internal_error": "http_500",
    "batch_cancelled": "batch_cancelled",
    "batch_expired": "batch_expired",
}

# HTTP status the synchronous endpoint answers for an engine failure with this code.
STATUS_FOR_LINE_CODE = {
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "authentication_error": 401,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "internal_error": 500,
}


def type_for_status(status: int, code: str | None = None) -> str:
    """The envelope ``type`` for an HTTP status (the spec's five types)."""
    if status == 429:
        return "insufficient_quota" if code == "insufficient_quota" else "rate_limit_exceeded"
    if status in (401, 403):
        return "authentication_error"
    if status >= 500:
        return "internal_error"
    return "invalid_request_error"


def legacy_message(code: str, message: str) -> str:
    """``[legacy:<old>] message`` as in the service's error files."""
    return f"[legacy:{_LEGACY.get(code, 'http_500')}] {message}"


class ApiError(Exception):
    """Raised by handlers; turned into the error envelope by the app."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        type: str | None = None,
        param: str | None = None,
        line: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type or type_for_status(status, code)
        self.param = param
        self.line = line
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return envelope(self.message, type=self.type, code=self.code, param=self.param, line=self.line)


def envelope(
    message: str,
    *,
    type: str,
    code: str | None,
    param: str | None = None,
    line: int | None = None,
) -> dict[str, Any]:
    err: dict[str, Any] = {"message": message, "type": type, "code": code, "param": param}
    if line is not None:
        err["line"] = line
    return {"error": err}
