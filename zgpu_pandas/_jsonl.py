"""The batch input rules: one module shared by the server and the client.

The local server validates a whole input file with :class:`Validator` when a batch is
created; the client runs the same rules before anything is uploaded (pre-flight), so a bad
row is reported on the user's machine with the same message the service would give.

Rules, checked in this order for each line (messages as published)::

    <= 1 MB                           Line N exceeds maximum size of 1048576 bytes
    valid JSON                        Line N is not valid JSON
    an object                         Line N must be a JSON object
    custom_id non-empty string        Line N is missing custom_id
    custom_id unique                  Line N duplicates custom_id "X"
    method upper-cases to POST        Line N method must be "POST"
    url present                       Line N is missing url
    url allowed                       Line N url "X" is not an allowed batch endpoint
    one url per file                  Line N url "X" does not match the batch endpoint "Y"
    body non-empty object             Line N is missing body
    body.stream is not true           Line N has stream=true; streaming is not supported in batch mode
    numbers kept exactly              Line N has an integer beyond 64 bits at body.X; ...

and then for the file: at least one line, at most 200 MB, at most 50,000 lines.

Two rules differ from the published order, on purpose: the size comes first, so that a line
over 1 MB is refused without being parsed (memory stays bounded whatever the upload); and a
number that cannot be forwarded exactly (an integer beyond 64 bits, which JSON allows but
every hop of the service reads as a float) is refused instead of being changed on the way.

Line numbers are 1-based *physical* line numbers: blank lines are skipped but still
counted, so ``N`` is the line an editor shows. Example::

    >>> v = Validator()
    >>> v.feed(b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",'
    ...        b' "body": {"model": "m", "messages": []}}') is None
    True
    >>> v.feed(b'not json').message
    'Line 2 is not valid JSON'
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

__all__ = [
    "ALLOWED_URLS",
    "BATCH_ENDPOINT",
    "MAX_FILE_BYTES",
    "MAX_LINES",
    "MAX_LINE_BYTES",
    "MAX_METADATA_KEY_CHARS",
    "MAX_METADATA_PAIRS",
    "MAX_METADATA_VALUE_CHARS",
    "MAX_UPLOAD_BYTES",
    "LineError",
    "ValidationResult",
    "Validator",
    "check_metadata",
    "check_request",
    "inexact_number",
    "inexact_number_in_json",
    "iter_raw_lines",
    "validate_stream",
]

MAX_LINES = 50_000
MAX_FILE_BYTES = 209_715_200  # 200 MB: the input-file cap at batch create
MAX_LINE_BYTES = 1_048_576  # 1 MB per line
MAX_UPLOAD_BYTES = 104_857_600  # 100 MB per upload (413 above it)
# Batch metadata, as the OpenAI-compatible API bounds it: 16 pairs of strings.
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
# What orjson (and so the server and the engines) keeps exactly: integers in
# [-2**63, 2**64 - 1]; beyond them it reads a float, and it writes NaN and infinity as null.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
# Every integer beyond that range has at least 20 digits: only a line holding such a run of
# digits (in a string or not) is parsed a second time, exactly, to look.
_LONG_DIGITS = re.compile(rb"[0-9]{20}")
_FLOAT_MIN, _FLOAT_MAX = float(_INT_MIN), float(_INT_MAX + 1)
_LONG_DIGITS_STR = re.compile(r"[0-9]{20}")
BATCH_ENDPOINT = "/v1/chat/completions"
# A set, not a constant string, because the "one url per file" rule only means something
# once a second endpoint is allowed; keeping both rules keeps the messages faithful.
ALLOWED_URLS = frozenset({BATCH_ENDPOINT})


@dataclass(frozen=True)
class LineError:
    """One broken rule. ``line`` is 1-based, or ``None`` for a file-level rule."""

    code: str
    message: str
    line: int | None = None
    param: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "line": self.line, "param": self.param}


@dataclass(frozen=True)
class ValidationResult:
    """Outcome of validating a whole file: ``error`` is ``None`` when it is valid."""

    lines: int
    bytes: int
    url: str | None
    error: LineError | None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_request(obj: Any, *, line: int, size: int) -> LineError | None:
    """Check one parsed request line against the per-line rules that need no file context.

    ``size`` is the byte length of the serialised line (without its newline). Uniqueness of
    ``custom_id`` and the one-url rule are file-level and live in :class:`Validator`.
    """
    if not isinstance(obj, dict):
        return LineError("invalid_line", f"Line {line} must be a JSON object", line)
    if size > MAX_LINE_BYTES:
        return LineError(
            "line_too_large",
            f"Line {line} exceeds maximum size of {MAX_LINE_BYTES} bytes",
            line,
        )
    cid = obj.get("custom_id")
    if not isinstance(cid, str) or not cid:
        return LineError(
            "missing_custom_id", f"Line {line} is missing custom_id", line, "custom_id"
        )
    return None


def _check_rest(obj: dict[str, Any], line: int) -> LineError | None:
    """The rules after custom_id uniqueness, up to and including the url allow-list."""
    method = obj.get("method")
    if not isinstance(method, str) or method.upper() != "POST":
        return LineError("invalid_method", f'Line {line} method must be "POST"', line, "method")
    url = obj.get("url")
    if url is None or url == "":
        return LineError("missing_url", f"Line {line} is missing url", line, "url")
    if not isinstance(url, str) or url not in ALLOWED_URLS:
        shown = url if isinstance(url, str) else orjson.dumps(url).decode()
        return LineError(
            "invalid_url",
            f'Line {line} url "{shown}" is not an allowed batch endpoint',
            line,
            "url",
        )
    return None


def _check_body(obj: dict[str, Any], line: int) -> LineError | None:
    body = obj.get("body")
    if not isinstance(body, dict) or not body:
        return LineError("missing_body", f"Line {line} is missing body", line, "body")
    if body.get("stream") is True:
        return LineError(
            "stream_not_supported",
            f"Line {line} has stream=true; streaming is not supported in batch mode",
            line,
            "body.stream",
        )
    return None


def _number_rule(raw: bytes, line: int) -> LineError | None:
    """The exact-number rule of one line. It reads the line a second time (with a regex
    pre-check, then Python's exact parser), so the validator's fast path calls it only
    for a line that shows a sign of a big integer; every other line gets it."""
    where = inexact_number_in_json(raw)
    if where is None:
        return None
    return LineError(
        "invalid_number",
        f"Line {line} has an integer beyond 64 bits at {where}; it cannot be forwarded "
        "exactly (it would become a float): send it as a string",
        line,
        where,
    )


def inexact_number(value: Any, path: str = "") -> str | None:
    """The path of the first number in ``value`` that JSON cannot carry exactly through
    the service (an integer beyond 64 bits, or a NaN or infinite float, which would arrive
    as ``null``), or ``None``. ``path`` names ``value`` itself (``"body"``, ``"metadata"``).

    Example::

        >>> inexact_number({"seed": 2**70, "temperature": 0.5}, "body")
        'body.seed'
        >>> inexact_number({"temperature": float("nan")}) is None
        False
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, numbers.Integral):  # numpy's integers too
        return None if _INT_MIN <= int(value) <= _INT_MAX else (path or "the value")
    if isinstance(value, numbers.Real):  # float, numpy's floats
        return None if math.isfinite(float(value)) else (path or "the value")
    if isinstance(value, dict):
        for k, v in value.items():
            found = inexact_number(v, f"{path}.{k}" if path else str(k))
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = inexact_number(v, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def inexact_number_in_json(raw: bytes | str) -> str | None:
    """:func:`inexact_number` of a JSON text, read exactly (Python's ``json`` keeps big
    integers; orjson would already have turned them into floats). ``None`` for a text that
    is not JSON (another rule reports it)."""
    pattern = _LONG_DIGITS if isinstance(raw, bytes) else _LONG_DIGITS_STR
    if pattern.search(raw) is None:  # type: ignore[arg-type]
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return inexact_number(value)


def check_metadata(metadata: Any) -> str | None:
    """What is wrong with a batch's ``metadata`` (at most 16 pairs, string keys of at most
    64 characters, string values of at most 512), or ``None``.

    Example::

        >>> check_metadata({"job": "reviews"}) is None
        True
        >>> check_metadata({"n": 3})
        'metadata value of "n" must be a string, not int'
    """
    if not isinstance(metadata, dict):
        return "metadata must be an object"
    if len(metadata) > MAX_METADATA_PAIRS:
        return f"metadata has {len(metadata)} pairs; at most {MAX_METADATA_PAIRS} are allowed"
    for k, v in metadata.items():
        if not isinstance(k, str) or len(k) > MAX_METADATA_KEY_CHARS:
            shown = str(k)[:40]
            return (
                f'metadata key "{shown}..." is longer than {MAX_METADATA_KEY_CHARS} characters'
                if isinstance(k, str)
                else f"metadata keys must be strings, got {type(k).__name__}"
            )
        if not isinstance(v, str):
            return f'metadata value of "{k}" must be a string, not {type(v).__name__}'
        if len(v) > MAX_METADATA_VALUE_CHARS:
            return (
                f'metadata value of "{k}" has {len(v)} characters; at most '
                f"{MAX_METADATA_VALUE_CHARS} are allowed"
            )
    return None


class Validator:
    """Streaming validator: feed raw lines one by one, then call :meth:`finish`.

    Memory is bounded by the set of custom_ids seen (needed for the uniqueness rule), not
    by the file. ``feed`` returns the first error for that line, or ``None``.

    Example::

        v = Validator()
        for raw in iter_raw_lines(open("input.jsonl", "rb")):
            if (err := v.feed(raw)) is not None:
                raise SystemExit(err.message)
        result = v.finish()
    """

    __slots__ = ("_bytes", "_ids", "_line", "_lines", "_url")

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._url: str | None = None
        self._line = 0  # physical line number of the last fed line
        self._lines = 0  # non-blank lines seen
        self._bytes = 0

    @property
    def url(self) -> str | None:
        """The url shared by the lines so far (``None`` before the first line)."""
        return self._url

    def feed(self, raw: bytes) -> LineError | None:
        """Validate one physical line (without its ``\\n``). Blank lines are skipped."""
        return self.feed_all((raw,))

    def feed_all(self, stream: IO[bytes] | Iterable[bytes]) -> LineError | None:
        """Validate every physical line of a binary stream (lines may keep their ``\\n``,
        as file iteration yields them) and return the first error, or ``None``.

        This is the create-time hot path, so the common valid line is checked in one
        combined test inside the loop, with no call per line. Anything unusual goes to
        :meth:`_rules`, which alone decides which error to report (the rule order and the
        messages live there).
        """
        ids = self._ids
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        line, lines, nbytes, url = self._line, self._lines, self._bytes, self._url
        try:
            for raw in stream:
                line += 1
                size = len(raw)
                if raw[-1:] == b"\n":
                    nbytes += size
                    size -= 1
                else:
                    nbytes += size + 1
                # bytes.isspace() tests the ASCII whitespace strip() removes, without a copy.
                if not size or raw.isspace():
                    continue
                lines += 1
                if size > MAX_LINE_BYTES:
                    # Refused before it is parsed: a parsed line costs up to ~30 times its
                    # size in memory, and a 100 MB upload may be one line. So a line over
                    # the limit is reported for its size even when it is not valid JSON.
                    return LineError(
                        "line_too_large",
                        f"Line {line} exceeds maximum size of {MAX_LINE_BYTES} bytes",
                        line,
                    )
                try:
                    obj = loads(raw)
                except decode_error:
                    return LineError("invalid_json", f"Line {line} is not valid JSON", line)
                if type(obj) is dict and url is not None:
                    cid = obj.get("custom_id")
                    method = obj.get("method")
                    body = obj.get("body")
                    if (
                        type(cid) is str
                        and cid
                        and cid not in ids
                        and (method == "POST" or (type(method) is str and method.upper() == "POST"))
                        and obj.get("url") == url
                        and type(body) is dict
                        and body
                        and body.get("stream") is not True
                    ):
                        # orjson reads an integer beyond 64 bits as a float: a float
                        # outside the 64-bit range among the body's parameters (seed,
                        # max_tokens, ...) sends the line to the exact check. A deeper one
                        # is left to the client's pre-flight: walking every value of
                        # every line would cost more than the parse (see _number_rule).
                        for v in body.values():
                            if type(v) is float and not _FLOAT_MIN <= v < _FLOAT_MAX:
                                break
                        else:
                            ids.add(cid)
                            continue
                err = self._rules(obj, line, size)
                if err is None:
                    err = _number_rule(raw, line)
                if err is not None:
                    return err
                url = self._url
        finally:
            self._line, self._lines, self._bytes = line, lines, nbytes
        return None

    def _rules(self, obj: Any, line: int, size: int) -> LineError | None:
        """Every per-line rule after JSON parsing, in the published order."""
        err = check_request(obj, line=line, size=size)
        if err is not None:
            return err
        cid = obj["custom_id"]
        if cid in self._ids:
            return LineError(
                "duplicate_custom_id",
                f'Line {line} duplicates custom_id "{cid}"',
                line,
                "custom_id",
            )
        self._ids.add(cid)
        err = _check_rest(obj, line)
        if err is not None:
            return err
        url = obj["url"]
        if self._url is None:
            self._url = url
        elif url != self._url:
            return LineError(
                "mismatched_url",
                f'Line {line} url "{url}" does not match the batch endpoint "{self._url}"',
                line,
                "url",
            )
        return _check_body(obj, line)

    def finish(self, *, total_bytes: int | None = None) -> ValidationResult:
        """Apply the file-level rules. ``total_bytes`` overrides the counted size."""
        size = self._bytes if total_bytes is None else total_bytes
        error: LineError | None = None
        if self._lines == 0:
            error = LineError("no_lines", "Input file contains no JSONL lines")
        elif size > MAX_FILE_BYTES:
            error = LineError(
                "input_file_too_large", f"Input file exceeds maximum size of {MAX_FILE_BYTES} bytes"
            )
        elif self._lines > MAX_LINES:
            error = LineError("too_many_lines", f"Input file exceeds maximum of {MAX_LINES} lines")
        return ValidationResult(lines=self._lines, bytes=size, url=self._url, error=error)


def iter_raw_lines(stream: IO[bytes] | Iterable[bytes]) -> Iterator[bytes]:
    """Yield the physical lines of a binary stream without their ``\\n`` (``\\r\\n`` kept
    as JSON whitespace). A final line without a newline is yielded; a trailing newline does
    not produce an extra empty line."""
    for raw in stream:
        yield raw[:-1] if raw.endswith(b"\n") else raw


def validate_stream(stream: IO[bytes] | Iterable[bytes]) -> ValidationResult:
    """Validate a whole file, stopping at the first broken line rule.

    Example::

        with open("input.jsonl", "rb") as f:
            result = validate_stream(f)
        if not result.ok:
            print(result.error.message)
    """
    v = Validator()
    err = v.feed_all(stream)
    if err is not None:
        return ValidationResult(lines=v._lines, bytes=v._bytes, url=v.url, error=err)
    return v.finish()
