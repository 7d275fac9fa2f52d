"""Fault injection for the local server: failing, slow and dropped requests, failing lines.

Everything is off by default. A :class:`Faults` object is shared by the HTTP layer (which
asks it, per request, whether to fail, delay or drop) and by the batch worker (which asks
it, per line, whether to fail the line). All methods are thread-safe: tests call them from
the test thread while the server runs in its own threads.

Example::

    with LocalServer() as srv:
        srv.faults.fail_requests(status=500, count=2, method="GET", path=r"^/v1/batches/")
        srv.faults.drop_connections(method="POST", path=r"^/v1/batches$", after_handler=True)
        srv.faults.fail_lines(code="rate_limit_exceeded", rate=0.1, count=5)
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LINE_ERROR_CODES", "Faults"]

# The codes a batch line may fail with (spec, "JSONL output and error lines").
LINE_ERROR_CODES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "not_found_error",
        "request_too_large",
        "insufficient_quota",
        "rate_limit_exceeded",
        "internal_error",
        "batch_cancelled",
        "batch_expired",
        "context_length_exceeded",
    }
)


@dataclass
class _RequestRule:
    """One armed request fault; ``count`` is what is left of it."""

    kind: str
    count: int
    method: str | None
    path: re.Pattern[str] | None
    params: dict[str, Any] = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        return self.path is None or self.path.search(path) is not None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "count": self.count,
            "method": self.method,
            "path": None if self.path is None else self.path.pattern,
            **self.params,
        }


@dataclass
class _LineRule:
    code: str
    rate: float
    count: int | None
    custom_ids: re.Pattern[str] | None
    message: str | None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "fail_lines",
            "code": self.code,
            "rate": self.rate,
            "count": self.count,
            "custom_ids": None if self.custom_ids is None else self.custom_ids.pattern,
            "message": self.message,
        }


def _check_count(count: int | None, *, allow_none: bool = False) -> None:
    if count is None and allow_none:
        return
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")


def _compile(path: str | None) -> re.Pattern[str] | None:
    return None if path is None else re.compile(path)


class Faults:
    """The live set of injected faults of one server (see the module docstring).

    ``seed`` seeds the random choice of failing lines, so a run is reproducible.
    """

    def __init__(self, *, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._seed = seed
        self._rng = random.Random(seed)
        self._requests: list[_RequestRule] = []
        self._lines: list[_LineRule] = []

    # ------------------------------------------------------------------ arming
    def fail_requests(
        self,
        *,
        status: int = 500,
        count: int = 1,
        method: str | None = None,
        path: str | None = None,
        code: str | None = None,
        retry_after: float | int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching API requests with ``status`` and the spec's
        error envelope, without running the handler. ``path`` is a regex searched in the
        URL path. Without ``code`` the spec's code for the status is used (5xx
        ``internal_error``, other 4xx ``invalid_request_error`` unless more specific); a
        429 uses ``rate_limit_exceeded`` unless ``code="insufficient_quota"``;
        ``retry_after`` adds a ``Retry-After`` header (seconds)."""
        _check_count(count)
        if not 400 <= int(status) <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status!r}")
        params: dict[str, Any] = {"status": int(status), "code": code, "retry_after": retry_after}
        if message is not None:
            params["message"] = message
        self._add(_RequestRule("fail", count, _upper(method), _compile(path), params))

    def drop_connections(
        self,
        *,
        count: int = 1,
        method: str | None = None,
        path: str | None = None,
        after_handler: bool = False,
    ) -> None:
        """Close the connection of the next ``count`` matching requests with no complete
        response. With ``after_handler=True`` the request is fully processed first (a batch
        really is created) and only the response is lost."""
        _check_count(count)
        params = {"after_handler": bool(after_handler)}
        self._add(_RequestRule("drop", count, _upper(method), _compile(path), params))

    def delay_requests(
        self,
        *,
        seconds: float,
        count: int = 1,
        method: str | None = None,
        path: str | None = None,
        after_handler: bool = False,
    ) -> None:
        """Hold the next ``count`` matching requests for ``seconds`` before (or, with
        ``after_handler=True``, after) running the handler."""
        _check_count(count)
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        params = {"seconds": float(seconds), "after_handler": bool(after_handler)}
        self._add(_RequestRule("delay", count, _upper(method), _compile(path), params))

    def truncate_downloads(self, *, after_bytes: int, count: int = 1) -> None:
        """Abort the next ``count`` ``GET /v1/files/{id}/content`` streams after
        ``after_bytes`` bytes of body (the response announces the full length)."""
        _check_count(count)
        if after_bytes < 0:
            raise ValueError(f"after_bytes must be >= 0, got {after_bytes!r}")
        rule = _RequestRule(
            "truncate", count, "GET", re.compile(r"^/v1/files/[^/]+/content$"),
            {"after_bytes": int(after_bytes)},
        )
        self._add(rule)

    def drop_uploads(self, *, after_bytes: int = 0, count: int = 1) -> None:
        """Drop the connection of the next ``count`` ``POST /v1/files`` uploads once more
        than ``after_bytes`` bytes of the request body have arrived; nothing is stored."""
        _check_count(count)
        if after_bytes < 0:
            raise ValueError(f"after_bytes must be >= 0, got {after_bytes!r}")
        rule = _RequestRule(
            "drop_upload", count, "POST", re.compile(r"^/v1/files/?$"),
            {"after_bytes": int(after_bytes)},
        )
        self._add(rule)

    def fail_lines(
        self,
        *,
        code: str = "internal_error",
        rate: float = 1.0,
        count: int | None = None,
        custom_ids: str | None = None,
        message: str | None = None,
    ) -> None:
        """Fail batch lines with ``code``: each line whose custom_id matches the regex
        ``custom_ids`` (all lines when ``None``) fails with probability ``rate`` (seeded
        RNG), until ``count`` lines have failed (no cap when ``None``), so a retry of the
        same rows can succeed."""
        if code not in LINE_ERROR_CODES:
            raise ValueError(f"code must be one of {sorted(LINE_ERROR_CODES)}, got {code!r}")
        if not 0.0 <= float(rate) <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {rate!r}")
        _check_count(count, allow_none=True)
        with self._lock:
            self._lines.append(_LineRule(code, float(rate), count, _compile(custom_ids), message))

    def clear(self) -> None:
        """Disarm every fault and reset the line RNG to its seed."""
        with self._lock:
            self._requests.clear()
            self._lines.clear()
            self._rng = random.Random(self._seed)

    def describe(self) -> list[dict[str, Any]]:
        """The armed faults, as JSON-able dicts (served by ``GET /_admin/faults``)."""
        with self._lock:
            return [r.describe() for r in self._requests] + [r.describe() for r in self._lines]

    def arm(self, spec: dict[str, Any]) -> None:
        """Arm one fault from a dict ``{"kind": "<method name>", **keyword options}``
        (the body of ``POST /_admin/faults``)."""
        spec = dict(spec)
        kind = spec.pop("kind", None)
        methods: dict[str, Callable[..., None]] = {
            "fail_requests": self.fail_requests,
            "drop_connections": self.drop_connections,
            "delay_requests": self.delay_requests,
            "truncate_downloads": self.truncate_downloads,
            "drop_uploads": self.drop_uploads,
            "fail_lines": self.fail_lines,
        }
        if kind not in methods:
            raise ValueError(f"kind must be one of {sorted(methods)}, got {kind!r}")
        methods[kind](**spec)

    # ---------------------------------------------------------------- consuming
    @property
    def has_request_faults(self) -> bool:
        return bool(self._requests)

    @property
    def has_line_faults(self) -> bool:
        return bool(self._lines)

    def take(self, kind: str, method: str, path: str, **match: Any) -> dict[str, Any] | None:
        """Consume one use of the first armed ``kind`` rule matching the request; returns
        its parameters, or ``None``. ``match`` filters on parameters (e.g. after_handler)."""
        if not self._requests:  # fast path, no lock: the common case is no faults at all
            return None
        with self._lock:
            for i, rule in enumerate(self._requests):
                if rule.kind != kind or not rule.matches(method, path):
                    continue
                if any(rule.params.get(k) != v for k, v in match.items()):
                    continue
                rule.count -= 1
                if rule.count <= 0:
                    del self._requests[i]
                return dict(rule.params)
        return None

    def line_failure(self, custom_id: str) -> tuple[str, str | None] | None:
        """For the worker: ``(code, message)`` if this line must fail, else ``None``."""
        if not self._lines:
            return None
        with self._lock:
            for i, rule in enumerate(self._lines):
                if rule.custom_ids is not None and rule.custom_ids.search(custom_id) is None:
                    continue
                if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        del self._lines[i]
                return rule.code, rule.message
        return None

    def _add(self, rule: _RequestRule) -> None:
        with self._lock:
            self._requests.append(rule)

    def __repr__(self) -> str:
        return f"Faults({self.describe()!r})"


def _upper(method: str | None) -> str | None:
    return None if method is None else method.upper()
