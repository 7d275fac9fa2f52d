"""The HTTP edge of the server, below the routes: request ids, CORS, auth, the (bounded)
request log, a timeout on request bodies that stop arriving, and fault injection (fail,
delay, drop, truncate), as one pure ASGI middleware.

Dropping a connection: the middleware sends response headers announcing a body, then
raises :class:`ConnectionDropped`; uvicorn closes the socket, so the client sees a
transport error (an incomplete message), never an HTTP status.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from . import _ids
from ._errors import envelope, type_for_status
from .observe import key_id

if TYPE_CHECKING:
    from .app import ServerContext

__all__ = ["ConnectionDropped", "RequestLog", "ServerMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-expose-headers", b"x-request-id, retry-after"),
]
# Headers a browser may send, by name: a wildcard is only valid as the whole value (and
# not for authorization), never inside a list. The ZeroGPU pair, the usual ones, and what
# the official openai SDK sends. A preflight's Access-Control-Request-Headers are added
# (reflected) on top, so a client with other headers is not refused either.
_ALLOWED_HEADERS = (
    "x-api-key", "x-project-id", "content-type", "authorization", "accept",
    "idempotency-key", "openai-organization", "openai-project", "openai-beta",
    "x-stainless-arch", "x-stainless-async", "x-stainless-custom-event-handler",
    "x-stainless-custom-poll-interval", "x-stainless-helper-method", "x-stainless-lang",
    "x-stainless-os", "x-stainless-package-version", "x-stainless-poll-helper",
    "x-stainless-raw-response", "x-stainless-read-timeout", "x-stainless-retry-count",
    "x-stainless-runtime", "x-stainless-runtime-version", "x-stainless-stream-helper",
    "x-stainless-timeout",
)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # an RFC 9110 token, lower case
_PREFLIGHT = [  # send_out adds the allow-origin header to every response
    (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
    (b"access-control-max-age", b"600"),
    (b"vary", b"Access-Control-Request-Headers"),
]


def _allow_headers(requested: str | None) -> bytes:
    """The Access-Control-Allow-Headers value: the known names plus each requested name
    that is a valid header name (others are left out)."""
    names = dict.fromkeys(_ALLOWED_HEADERS)
    for item in (requested or "").split(","):
        name = item.strip().lower()
        if _HEADER_NAME.fullmatch(name) and len(names) < 200:
            names.setdefault(name)
    return ", ".join(names).encode("latin-1")

_DEFAULT_MESSAGES = {
    400: "Bad request",
    401: "Missing authentication headers",
    403: "Invalid credentials",
    404: "Not found",
    409: "Conflict",
    413: "Request entity too large",
    429: "Rate limit exceeded",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}
_DEFAULT_CODES = {
    400: "invalid_request_error",
    401: "missing_authentication",
    403: "invalid_credentials",
    404: "not_found",
    409: "conflict",
    413: "file_too_large",
    500: "internal_error",
}


def _default_code(status: int) -> str:
    """The spec's code for an injected failure with this status and no chosen code."""
    if status == 429:
        return "rate_limit_exceeded"
    if status in _DEFAULT_CODES:
        return _DEFAULT_CODES[status]
    return "internal_error" if status >= 500 else "invalid_request_error"


class RequestLog(list[tuple[str, str, int]]):
    """``(method, path, status)`` of the most recent API requests, at most ``limit`` of
    them: a long-running server keeps a bounded log (the oldest entries are dropped, and
    counted in ``dropped``). A list, so tests compare and slice it as one."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = int(limit)
        self.dropped = 0

    def append(self, entry: tuple[str, str, int]) -> None:
        super().append(entry)
        excess = len(self) - self.limit
        if excess > 0:
            del self[:excess]
            self.dropped += excess


class ConnectionDropped(Exception):
    """Raised inside the ASGI app to make the server close the connection mid-response."""


class _DropFilter(logging.Filter):
    """Keeps uvicorn from logging a traceback for every injected dropped connection."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionDropped)


_drop_filter_installed = False


def install_drop_filter() -> None:
    global _drop_filter_installed
    if not _drop_filter_installed:
        logging.getLogger("uvicorn.error").addFilter(_DropFilter())
        _drop_filter_installed = True


def _json_response(
    status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> tuple[Message, Message]:
    data = orjson.dumps(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
        *(extra or []),
    ]
    return (
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": data, "more_body": False},
    )


def _bearer_token(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (scheme case-insensitive)."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", ()):
        if k.lower() == name:
            return str(v.decode("latin-1"))
    return None


class ServerMiddleware:
    """Wraps the routes (see the module docstring)."""

    def __init__(self, app: ASGIApp, ctx: ServerContext) -> None:
        self.app = app
        self.ctx = ctx
        install_drop_filter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        rid = _ids.request_id().encode()
        # the probes and the scrape: no auth, not logged (a scrape every 15 s is no news)
        is_api = not path.startswith("/_admin") and path not in ("/healthz", "/readyz",
                                                                    "/metrics")
        status_seen = [0]
        logged = [not is_api]
        started = time.monotonic()

        def log(status: int) -> None:
            if not logged[0]:
                logged[0] = True
                self.ctx.request_log.append((method, path, status))
                self.ctx.observer.request(
                    method=method, path=path, status=status, request_id=rid.decode(),
                    seconds=time.monotonic() - started, project=scope.get("zgpu.project"),
                    key_id=scope.get("zgpu.key_id"),
                )

        async def send_out(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid))
                headers.extend(_CORS)
                message = {**message, "headers": headers}
                status_seen[0] = message["status"]
            elif not message.get("more_body", False):
                # Logged before the last byte leaves, so a client that has its answer
                # always finds the request in the log.
                log(status_seen[0])
            await send(message)

        try:
            if method == "OPTIONS":
                # CORS preflight: 204 with the allow headers, no auth (browsers send none).
                requested = _header(scope, b"access-control-request-headers")
                headers = [*_PREFLIGHT, (b"access-control-allow-headers", _allow_headers(requested))]
                await send_out({"type": "http.response.start", "status": 204,
                                "headers": headers})
                await send_out({"type": "http.response.body", "body": b""})
                return
            if is_api:
                receive = _idle_guard(receive, send_out, self.ctx.config.idle_timeout, status_seen)
                await self._api(scope, receive, send_out, method, path)
            else:
                await self.app(scope, receive, send_out)
        except ConnectionDropped:
            log(0)
            raise
        except asyncio.CancelledError:
            if not self.ctx.shutting_down:
                raise
            # The server is stopping and cancelled this request after its grace period.
            # That is no error of the app: tell a client still waiting that the server
            # is going away (a 503 it retries), or cut a response already under way,
            # without the traceback uvicorn logs for an exception from the app.
            if status_seen[0]:
                log(0)
                raise ConnectionDropped() from None
            await _send_error(send_out, 503, "The server is shutting down; retry the request",
                              "internal_error", [(b"connection", b"close")])
        finally:
            log(status_seen[0])

    async def _api(self, scope: Scope, receive: Receive, send: Send, method: str, path: str) -> None:
        faults = self.ctx.faults
        if faults.has_request_faults:
            rule = faults.take("drop_upload", method, path)
            if rule is not None:
                receive = _dropping_receive(receive, send, rule["after_bytes"])
            rule = faults.take("fail", method, path)
            if rule is not None:
                await self._send_fault(send, rule)
                return
            rule = faults.take("delay", method, path, after_handler=False)
            if rule is not None:
                await asyncio.sleep(rule["seconds"])
            rule = faults.take("drop", method, path, after_handler=False)
            if rule is not None:
                await _abort(send)
            after_delay = faults.take("delay", method, path, after_handler=True)
            after_drop = faults.take("drop", method, path, after_handler=True)
            truncate = faults.take("truncate", method, path)
            if truncate is not None:
                send = _truncating_send(send, truncate["after_bytes"])
            if after_delay is not None or after_drop is not None:
                await self._buffered(scope, receive, send, after_delay, after_drop)
                return
        if not await self._authorise(scope, send, path):
            return
        await self.app(scope, receive, send)

    async def _authorise(self, scope: Scope, send: Send, path: str) -> bool:
        """Set the request's project (``scope["zgpu.project"]``) or answer 401/403."""
        if not path.startswith("/v1/"):
            return True  # unknown paths get the router's 404
        cfg = self.ctx.config
        key = _header(scope, b"x-api-key")
        project = _header(scope, b"x-project-id")
        if cfg.accept_bearer:
            # OpenAI-style credentials, used only where the ZeroGPU header is absent.
            key = key or _bearer_token(_header(scope, b"authorization"))
            project = project or _header(scope, b"openai-project")
        if not key or (cfg.require_project_id and not project):
            await _send_error(send, 401, "Missing authentication headers",
                              "missing_authentication")
            return False
        if not self._key_allowed(key, project or ""):
            await _send_error(send, 403, "Invalid credentials", "invalid_credentials")
            return False
        scope["zgpu.project"] = project or ""
        scope["zgpu.key_id"] = key_id(key)  # for the log: a short hash, never the key
        return True

    def _key_allowed(self, key: str, project: str) -> bool:
        allowed = self.ctx.key_projects
        if allowed is None:
            return True
        if key not in allowed:
            return False
        projects = allowed[key]
        return projects is None or project in projects

    async def _send_fault(self, send: Send, rule: dict[str, Any]) -> None:
        status = rule["status"]
        code = rule.get("code")
        if code is None:
            code = _default_code(status)
        message = rule.get("message") or _DEFAULT_MESSAGES.get(status, "Injected failure")
        extra = []
        if rule.get("retry_after") is not None:
            ra = rule["retry_after"]
            extra.append((b"retry-after", str(int(ra) if float(ra).is_integer() else ra).encode()))
        await _send_error(send, status, message, code, extra)

    async def _buffered(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        delay: dict[str, Any] | None,
        drop: dict[str, Any] | None,
    ) -> None:
        """Run the handler fully, then delay and/or lose its response."""
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        if await self._authorise(scope, capture, scope["path"]):
            await self.app(scope, receive, capture)
        if delay is not None:
            await asyncio.sleep(delay["seconds"])
        if drop is None:
            for m in messages:
                await send(m)
            return
        start = messages[0] if messages else None
        body = b"".join(m.get("body", b"") for m in messages[1:])
        if start is None:
            await _abort(send)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(max(len(body), 2)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        raise ConnectionDropped()


async def _send_error(
    send: Send, status: int, message: str, code: str | None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = envelope(message, type=type_for_status(status, code), code=code)
    start, payload = _json_response(status, body, extra)
    await send(start)
    await send(payload)


async def _abort(send: Send) -> NoReturn:
    """Announce a body, send none of it, and make the server close the connection."""
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1024")],
    })
    raise ConnectionDropped()


def _idle_guard(receive: Receive, send: Send, timeout: float, status_seen: list[int]) -> Receive:
    """``receive`` that gives up on a request body when no byte of it arrives for
    ``timeout`` seconds: a 408 (if no answer was started) and the connection is closed.
    Only the body is timed: once it is complete, a wait for the client's disconnect is
    the app's business (a streamed download may legitimately take long)."""
    body_done = False

    async def wrapped() -> Message:
        nonlocal body_done
        if body_done:
            return await receive()
        try:
            message = await asyncio.wait_for(receive(), timeout)
        except asyncio.TimeoutError:
            if not status_seen[0]:
                await _send_error(
                    send, 408, f"No request data arrived for {timeout:g} seconds",
                    "request_timeout", [(b"connection", b"close")],
                )
            raise ConnectionDropped() from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            body_done = True
        return message

    return wrapped


def _dropping_receive(receive: Receive, send: Send, after_bytes: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > after_bytes or not message.get("more_body", False):
                await _abort(send)
        return message

    return wrapped


def _truncating_send(send: Send, after_bytes: int) -> Send:
    sent = 0
    started = [False]

    async def wrapped(message: Message) -> None:
        nonlocal sent
        if message["type"] == "http.response.start":
            started[0] = message["status"] == 200
            await send(message)
            return
        if not started[0]:
            await send(message)
            return
        body = message.get("body", b"")
        room = after_bytes - sent
        if len(body) > room:
            await send({"type": "http.response.body", "body": body[: max(room, 0)],
                        "more_body": True})
            raise ConnectionDropped()
        sent += len(body)
        await send(message)

    return wrapped

