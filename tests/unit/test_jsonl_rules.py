"""The shared batch line rules, checked directly (the server tests check them over HTTP)."""

from __future__ import annotations

import io

import orjson
import pytest

from zgpu_pandas import _jsonl
from zgpu_pandas._jsonl import MAX_LINE_BYTES, Validator, validate_stream


def line(cid: str = "a", **over: object) -> bytes:
    obj: dict[str, object] = {
        "custom_id": cid,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    }
    obj.update(over)
    return orjson.dumps({k: v for k, v in obj.items() if v is not _DROP})


_DROP = object()


def first_error(*lines: bytes) -> _jsonl.LineError | None:
    return validate_stream(io.BytesIO(b"\n".join(lines) + b"\n")).error


@pytest.mark.parametrize(
    ("second", "code", "message"),
    [
        (b"{not json", "invalid_json", "Line 2 is not valid JSON"),
        (b"[1, 2]", "invalid_line", "Line 2 must be a JSON object"),
        (b"\xff\xfe", "invalid_json", "Line 2 is not valid JSON"),
        (line(custom_id=_DROP), "missing_custom_id", "Line 2 is missing custom_id"),
        (line(""), "missing_custom_id", "Line 2 is missing custom_id"),
        (line(custom_id=7), "missing_custom_id", "Line 2 is missing custom_id"),
        (line("a"), "duplicate_custom_id", 'Line 2 duplicates custom_id "a"'),
        (line("b", method="GET"), "invalid_method", 'Line 2 method must be "POST"'),
        (line("b", method=_DROP), "invalid_method", 'Line 2 method must be "POST"'),
        (line("b", url=_DROP), "missing_url", "Line 2 is missing url"),
        (
            line("b", url="/v1/embeddings"),
            "invalid_url",
            'Line 2 url "/v1/embeddings" is not an allowed batch endpoint',
        ),
        (line("b", body=_DROP), "missing_body", "Line 2 is missing body"),
        (line("b", body={}), "missing_body", "Line 2 is missing body"),
        (line("b", body=[1]), "missing_body", "Line 2 is missing body"),
        (
            line("b", body={"model": "m", "stream": True}),
            "stream_not_supported",
            "Line 2 has stream=true; streaming is not supported in batch mode",
        ),
    ],
)
def test_each_line_rule_names_line_and_rule(second: bytes, code: str, message: str) -> None:
    err = first_error(line("a"), second)
    assert err is not None
    assert (err.code, err.message, err.line) == (code, message, 2)


def test_lowercase_post_and_stream_false_are_accepted() -> None:
    assert (
        first_error(line("a", method="post"), line("b", body={"model": "m", "stream": False}))
        is None
    )


def test_size_rule_comes_first_and_counts_bytes_not_chars() -> None:
    pad = "é" * (MAX_LINE_BYTES // 2)  # 2 bytes each in UTF-8: over the limit in bytes only
    big = line("b", body={"model": "m", "messages": [{"role": "user", "content": pad}]})
    assert len(pad) < MAX_LINE_BYTES < len(big)
    err = first_error(line("a"), big)
    assert err is not None and err.message == "Line 2 exceeds maximum size of 1048576 bytes"
    # an oversized line is refused for its size before it is parsed, even when it is not
    # JSON at all (parsing it could take ~30 times its size in memory)
    err = first_error(b"x" * (MAX_LINE_BYTES + 10))
    assert err is not None and err.code == "line_too_large"


def test_rules_are_checked_in_spec_order_within_a_line() -> None:
    # duplicate id + bad method + stream: the duplicate comes first
    bad = line("a", method="GET", body={"stream": True})
    err = first_error(line("a"), bad)
    assert err is not None and err.code == "duplicate_custom_id"
    bad = line("b", method="GET", url="/x", body={"stream": True})
    err = first_error(bad)
    assert err is not None and err.code == "invalid_method"


def test_blank_lines_are_skipped_but_counted_for_line_numbers() -> None:
    data = line("a") + b"\n\n   \n" + b"oops\n"
    err = validate_stream(io.BytesIO(data)).error
    assert err is not None and err.message == "Line 4 is not valid JSON"


def test_crlf_and_missing_trailing_newline_are_fine() -> None:
    data = line("a") + b"\r\n" + line("b")
    result = validate_stream(io.BytesIO(data))
    assert result.ok and result.lines == 2 and result.url == "/v1/chat/completions"


def test_file_level_rules() -> None:
    assert validate_stream(io.BytesIO(b"")).error == _jsonl.LineError(
        "no_lines", "Input file contains no JSONL lines"
    )
    assert validate_stream(io.BytesIO(b"\n\n")).error is not None

    v = Validator()
    for i in range(_jsonl.MAX_LINES + 1):
        assert v.feed(line(f"r{i}")) is None
    res = v.finish()
    assert res.error is not None
    assert res.error.message == "Input file exceeds maximum of 50000 lines"

    v = Validator()
    v.feed(line("a"))
    res = v.finish(total_bytes=_jsonl.MAX_FILE_BYTES + 1)
    assert res.error is not None
    assert res.error.message == "Input file exceeds maximum size of 209715200 bytes"


def test_exactly_the_limits_is_valid() -> None:
    v = Validator()
    for i in range(_jsonl.MAX_LINES):
        v.feed(line(f"r{i}"))
    assert v.finish().ok
    base = line("b", body={"model": "m", "messages": [{"role": "user", "content": ""}]})
    pad = "x" * (MAX_LINE_BYTES - len(base))
    exact = line("b", body={"model": "m", "messages": [{"role": "user", "content": pad}]})
    assert len(exact) == MAX_LINE_BYTES
    assert first_error(exact) is None


def test_one_byte_over_the_line_limit_is_rejected() -> None:
    base = line("b", body={"model": "m", "messages": [{"role": "user", "content": ""}]})
    pad = "x" * (MAX_LINE_BYTES - len(base) + 1)
    over = line("b", body={"model": "m", "messages": [{"role": "user", "content": pad}]})
    assert len(over) == MAX_LINE_BYTES + 1
    err = first_error(over)
    assert err is not None and err.code == "line_too_large" and err.line == 1


def test_one_line_over_the_line_count_is_the_first_rejected_count() -> None:
    v = Validator()
    for i in range(_jsonl.MAX_LINES - 1):
        v.feed(line(f"r{i}"))
    v.feed(b"")  # blank lines do not count
    v.feed(line("last"))
    assert v.finish().ok
