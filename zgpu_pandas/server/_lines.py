"""Batch lines in and out: reading input lines at a byte offset, and writing one line's
outcome as an output or error line that can never fail to serialise.

Kept apart from the worker so that every way of turning one request into one result line
(an answer, an engine error, an exception, an injected fault, a cancel) goes through the
same two functions, each of which always returns a line: one bad line never stops a batch.

Example::

    line, ok = outcome_line("row-1", engine.complete_sync(body))  # never raises
"""

from __future__ import annotations

import json
import operator
import os
import random
import re
from pathlib import Path
from typing import Any

import orjson

from . import _ids
from ._errors import legacy_message
from .engines import LineResult

__all__ = [
    "append",
    "default_message",
    "error_line",
    "outcome_line",
    "parse_line",
    "shuffle_lines",
]

_DEFAULT_MESSAGES = {
    "internal_error": "Internal error while running the request.",
    "rate_limit_exceeded": "Rate limit exceeded; resubmit this request.",
    "insufficient_quota": "Insufficient quota for this request.",
    "not_found_error": "The requested model was not found.",
    "invalid_request_error": "The request is invalid.",
    "authentication_error": "Authentication failed for this request.",
    "request_too_large": "The request is too large.",
    "context_length_exceeded": "The request exceeds the model's context length.",
    "batch_cancelled": "The batch was cancelled before this request ran.",
    "batch_expired": "The batch expired before this request ran.",
}


def default_message(code: str) -> str:
    """The message of an error line of ``code`` when nothing more precise is known."""
    return _DEFAULT_MESSAGES.get(code, "The request failed.")


def error_line(cid: str | None, code: str, message: str) -> bytes:
    """An error line (``message`` already carries its ``[legacy:…]`` prefix)."""
    return orjson.dumps(
        {
            "id": _ids.batch_req_id(),
            "custom_id": cid,
            "response": None,
            "error": {"code": code, "message": message, "param": None},
        }
    )


def outcome_line(cid: str | None, outcome: LineResult) -> tuple[bytes, bool]:
    """``(line, ok)`` for one finished request: an output line for an answer, else an error
    line. An answer that cannot be serialised (it nests deeper than orjson writes, say)
    becomes an ``internal_error`` line saying so, instead of an exception that would stop
    the batch."""
    if outcome.body is None:
        code = outcome.code or "internal_error"
        return error_line(cid, code, outcome.message or legacy_message(code, default_message(code))), False
    try:
        return (
            orjson.dumps(
                {
                    "id": _ids.batch_req_id(),
                    "custom_id": cid,
                    "response": {
                        "status_code": 200,
                        "request_id": outcome.request_id,
                        "body": outcome.body,
                    },
                }
            ),
            True,
        )
    except (orjson.JSONEncodeError, TypeError, ValueError) as exc:
        message = legacy_message(
            "internal_error", f"The answer to this request could not be recorded: {exc}"
        )
        return error_line(cid, "internal_error", message), False


# a run of 19 or more digits: possibly an integer beyond 64 bits
_LONG_NUMBER = re.compile(rb"\d{19,}")


def parse_line(raw: bytes) -> tuple[str | None, Any, str | None]:
    """``(custom_id, body, problem)`` of an input line; ``problem`` says why a line that
    passed validation at create time can no longer be run (the file changed on disk)."""
    try:
        obj = orjson.loads(raw)
        if _LONG_NUMBER.search(raw):
            # orjson reads an integer beyond 64 bits as a float, which would reach the
            # upstream changed; the standard library keeps it exact (a number-like run of
            # digits inside a string only costs this slower parse)
            obj = json.loads(raw)
    except (orjson.JSONDecodeError, ValueError) as exc:
        return None, None, f"the input line is no longer valid JSON ({exc})"
    if not isinstance(obj, dict):
        return None, None, "the input line is no longer a JSON object"
    cid = obj.get("custom_id")
    if not isinstance(cid, str) or not cid:
        return None, None, "the input line no longer has a custom_id"
    return cid, obj.get("body"), None


def shuffle_lines(lines: list[bytes], seed: str) -> None:
    """Put result lines in a deterministic order other than input order.

    The spec says output lines come in any order; writing them in input order would let
    a client that relies on order pass every test here and break on the real service.
    Seeded with a string (hashed the same way in every process). Any order but the input's
    own: a shuffle that happens to keep it is rotated by one, so even two lines move.
    """
    if len(lines) < 2:
        return
    before = list(lines)
    random.Random(seed).shuffle(lines)
    if all(map(operator.is_, lines, before)):
        lines.append(lines.pop(0))


def append(path: Path, offset: int, lines: list[bytes]) -> int:
    """Write ``lines`` at ``offset`` of ``path`` (cutting off anything beyond it: bytes an
    interrupted write left behind) and return the new length."""
    if not lines:
        return offset
    data = b"\n".join(lines) + b"\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size < offset:
            raise OSError(f"{path.name} is shorter ({size}) than its recorded length ({offset})")
        if size > offset:
            os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)
    return offset + len(data)
