"""Property-based check of the batch line rules against an independent reading of the table.

Hypothesis generates files mixing valid lines with every kind of broken one; a reference
oracle written straight from the published rule table (not sharing code with the validator)
says which line and message must be reported first. Every invalid file must be rejected with
that line and message, and no valid file may be rejected.
"""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zgpu_pandas._jsonl import validate_stream

ENDPOINT = "/v1/chat/completions"
_MISSING = object()


def oracle(lines: list[bytes]) -> tuple[int, str] | None:
    """(line, message) of the first broken rule, read directly off the spec's table."""
    seen: set[str] = set()
    count = 0
    first_url = None
    for n, raw in enumerate(lines, start=1):
        if raw.strip() == b"":
            continue
        count += 1
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return n, f"Line {n} is not valid JSON"
        if type(obj) is not dict:
            return n, f"Line {n} must be a JSON object"
        if len(raw) > 1_048_576:
            return n, f"Line {n} exceeds maximum size of 1048576 bytes"
        cid = obj.get("custom_id")
        if type(cid) is not str or cid == "":
            return n, f"Line {n} is missing custom_id"
        if cid in seen:
            return n, f'Line {n} duplicates custom_id "{cid}"'
        seen.add(cid)
        m = obj.get("method")
        if type(m) is not str or m.upper() != "POST":
            return n, f'Line {n} method must be "POST"'
        url = obj.get("url")
        if url is None or url == "":
            return n, f"Line {n} is missing url"
        if url != ENDPOINT:
            shown = url if type(url) is str else json.dumps(url, separators=(",", ":"))
            return n, f'Line {n} url "{shown}" is not an allowed batch endpoint'
        if first_url is None:
            first_url = url
        body = obj.get("body")
        if type(body) is not dict or not body:
            return n, f"Line {n} is missing body"
        if body.get("stream") is True:
            return n, f"Line {n} has stream=true; streaming is not supported in batch mode"
    if count == 0:
        return 0, "Input file contains no JSONL lines"
    return None


ids = st.sampled_from(["a", "b", "c", "row-1", "é", "", "  "]) | st.integers(0, 3)
methods = st.sampled_from(["POST", "post", "Post", "GET", "", None, _MISSING]) | st.integers()
urls = st.sampled_from(
    [ENDPOINT, ENDPOINT, "/v1/embeddings", "", None, _MISSING, "/v1/chat/completions/"]
)
bodies = st.one_of(
    st.fixed_dictionaries({"model": st.just("m"), "messages": st.just([])}),
    st.fixed_dictionaries(
        {"model": st.just("m"), "stream": st.sampled_from([True, False, "true", 1])}
    ),
    st.just({}),
    st.just([]),
    st.just(None),
    st.just(_MISSING),
)


@st.composite
def request_line(draw: Any) -> bytes:
    kind = draw(st.sampled_from(["obj"] * 8 + ["blank", "garbage", "array", "bad_utf8"]))
    if kind == "blank":
        return draw(st.sampled_from([b"", b"  ", b"\t"]))
    if kind == "garbage":
        return draw(st.sampled_from([b"{", b"nul", b'{"a":1', b"}{"]))
    if kind == "array":
        return b'[{"custom_id":"a"}]'
    if kind == "bad_utf8":
        return b'{"custom_id":"\xff"}'
    obj: dict[str, Any] = {
        "custom_id": draw(ids),
        "method": draw(methods),
        "url": draw(urls),
        "body": draw(bodies),
    }
    obj = {k: v for k, v in obj.items() if v is not _MISSING}
    return json.dumps(obj, ensure_ascii=draw(st.booleans())).encode("utf-8")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(request_line(), min_size=0, max_size=8))
def test_validator_matches_the_rule_table(lines: list[bytes]) -> None:
    data = b"\n".join(lines) + (b"\n" if lines else b"")
    got = validate_stream(io.BytesIO(data)).error
    expected = oracle(lines)
    if expected is None:
        assert got is None, f"valid file rejected: {got}"
    else:
        assert got is not None, f"invalid file accepted, expected {expected}"
        assert (got.line or 0, got.message) == expected
