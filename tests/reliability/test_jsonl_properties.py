"""Property-based check of the batch line rules against an independent reading of the table.

Hypothesis generates files mixing valid lines with every kind of broken one; a reference
oracle written straight from the published rule table (not sharing code with the validator)
says which line and message must be reported first. Every invalid file must be rejected with
that line and message, and no valid file may be rejected.

The same generated files are checked twice: against ``validate_stream`` directly, and
against the real local server over HTTP (upload, then create): the 400 must carry the same
``line`` and message, the rejected batch must be stored as ``failed`` with that error, and a
valid file must become a batch counting every line. A second strategy makes only valid
files (unicode ids, CRLF endings, blank lines, odd method casing, extra body fields) and
checks that the server accepts each one and answers every line exactly once.

"Valid JSON" is read as I-JSON (RFC 7493), as the server's parser does: ``NaN`` and
``Infinity`` are not JSON, a number must fit a double (``1e400`` does not), and a string may
not hold an unpaired surrogate (``"\\ud800"``); a UTF-8 byte order mark makes line 1 invalid.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zgpu_pandas._jsonl import validate_stream
from zgpu_pandas.server import LocalServer

ENDPOINT = "/v1/chat/completions"
_MISSING = object()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_i_json(value: Any) -> bool:
    """No unpaired surrogate in any string, no number beyond a double (RFC 7493)."""
    if isinstance(value, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_is_i_json(k) and _is_i_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_i_json(v) for v in value)
    return True


def oracle(lines: list[bytes]) -> tuple[int, str] | None:
    """(line, message) of the first broken rule, read directly off the spec's table."""
    seen: set[str] = set()
    count = 0
    first_url = None
    for n, raw in enumerate(lines, start=1):
        if raw.strip() == b"":
            continue
        count += 1
        if len(raw) > 1_048_576:  # checked first: an oversized line is never parsed
            return n, f"Line {n} exceeds maximum size of 1048576 bytes"
        try:
            obj = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError):
            return n, f"Line {n} is not valid JSON"
        if not _is_i_json(obj):
            return n, f"Line {n} is not valid JSON"
        if type(obj) is not dict:
            return n, f"Line {n} must be a JSON object"
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
        for k, v in body.items():  # last: numbers the service would change on the way
            if type(v) is int and not -(2**63) <= v <= 2**64 - 1:
                return n, (
                    f"Line {n} has an integer beyond 64 bits at body.{k}; it cannot be "
                    "forwarded exactly (it would become a float): send it as a string"
                )
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
    # integers on both sides of the 64-bit range the service keeps exactly
    st.fixed_dictionaries({"model": st.just("m"), "seed": st.integers(-(2**70), 2**70)}),
    st.just({}),
    st.just([]),
    st.just(None),
    st.just(_MISSING),
)


# Lines valid by the table in every respect except a strict reading of "valid JSON".
_NOT_I_JSON = [
    b'{"custom_id":"\\ud800","method":"POST","url":"/v1/chat/completions","body":{"m":1}}',
    b'{"custom_id":"s","method":"POST","url":"/v1/chat/completions","body":{"t":"\\udc00"}}',
    b'{"custom_id":"n","method":"POST","url":"/v1/chat/completions","body":{"t":NaN}}',
    b'{"custom_id":"i","method":"POST","url":"/v1/chat/completions","body":{"t":-Infinity}}',
    b'{"custom_id":"h","method":"POST","url":"/v1/chat/completions","body":{"t":1e400}}',
    b'\xef\xbb\xbf{"custom_id":"bom","method":"POST","url":"/v1/chat/completions","body":{"a":1}}',
    b'{"custom_id":"c\x01","method":"POST","url":"/v1/chat/completions","body":{"a":1}}',
]


@st.composite
def request_line(draw: Any) -> bytes:
    kind = draw(
        st.sampled_from(["obj"] * 8 + ["blank", "garbage", "array", "bad_utf8", "not_i_json"])
    )
    if kind == "blank":
        return draw(st.sampled_from([b"", b"  ", b"\t", b"\r"]))
    if kind == "garbage":
        return draw(st.sampled_from([b"{", b"nul", b'{"a":1', b"}{"]))
    if kind == "array":
        return b'[{"custom_id":"a"}]'
    if kind == "bad_utf8":
        return b'{"custom_id":"\xff"}'
    if kind == "not_i_json":
        return draw(st.sampled_from(_NOT_I_JSON))
    obj: dict[str, Any] = {
        "custom_id": draw(ids),
        "method": draw(methods),
        "url": draw(urls),
        "body": draw(bodies),
    }
    obj = {k: v for k, v in obj.items() if v is not _MISSING}
    raw = json.dumps(obj, ensure_ascii=draw(st.booleans())).encode("utf-8")
    return raw + draw(st.sampled_from([b"", b"", b"\r", b" "]))  # CRLF files, trailing space


def _join(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + (b"\n" if lines else b"")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(request_line(), min_size=0, max_size=8))
def test_validator_matches_the_rule_table(lines: list[bytes]) -> None:
    data = _join(lines)
    got = validate_stream(io.BytesIO(data)).error
    expected = oracle(lines)
    if expected is None:
        assert got is None, f"valid file rejected: {got}"
    else:
        assert got is not None, f"invalid file accepted, expected {expected}"
        assert (got.line or 0, got.message) == expected


# ------------------------------------------------------------------ the same, over HTTP
HEADERS = {"x-api-key": "property-key", "x-project-id": "property-project"}
TERMINAL = {"completed", "failed", "expired", "cancelled"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    data_dir: Path = tmp_path_factory.mktemp("jsonl-properties")
    with (
        LocalServer(data_dir=data_dir) as srv,
        httpx.Client(base_url=srv.url, headers=HEADERS, timeout=30) as client,
    ):
        yield client


def _upload(api: httpx.Client, data: bytes) -> httpx.Response:
    return api.post("/v1/files", files={"file": ("in.jsonl", data)}, data={"purpose": "batch"})


def _create(api: httpx.Client, file_id: str) -> httpx.Response:
    return api.post(
        "/v1/batches", json={"input_file_id": file_id, "endpoint": "/v1/chat/completions"}
    )


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(request_line(), min_size=0, max_size=8))
def test_server_matches_the_rule_table(api: httpx.Client, lines: list[bytes]) -> None:
    data = _join(lines)
    expected = oracle(lines)
    up = _upload(api, data)
    if data == b"":
        # Nothing to store: refused at upload, before any line rule applies.
        assert up.status_code == 400 and up.json()["error"]["code"] == "empty_file", up.text
        return
    assert up.status_code == 200, up.text
    file_id = up.json()["id"]
    r = _create(api, file_id)
    if expected is None:
        assert r.status_code == 200, f"valid file rejected: {r.text}"
        batch = r.json()
        assert batch["request_counts"]["total"] == sum(1 for x in lines if x.strip())
        return
    line, message = expected
    assert r.status_code == 400, f"invalid file accepted, expected {expected}: {r.text}"
    err = r.json()["error"]
    assert err["message"] == message
    assert err["type"] == "invalid_request_error"
    assert err.get("line") == (line or None)  # file-level rules carry no line
    stored = api.get("/v1/batches", params={"limit": 1}).json()["data"][0]
    assert stored["input_file_id"] == file_id and stored["status"] == "failed"
    assert stored["errors"]["data"][0]["message"] == message


_ids = st.text(min_size=1, max_size=12)  # any non-empty string, even " " or "é"
_content = st.text(max_size=40)
_extras = st.fixed_dictionaries(
    {},
    optional={
        "temperature": st.floats(0, 2, allow_nan=False),
        "max_tokens": st.integers(1, 4096),
        "stream": st.just(False),
        "metadata": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
        # the whole range the service keeps exactly (beyond it: invalid_number)
        "seed": st.integers(-(2**63), 2**64 - 1),
    },
)


@st.composite
def valid_file(draw: Any) -> tuple[bytes, list[str]]:
    """A file every rule accepts, and its custom_ids in order."""
    ids = draw(st.lists(_ids, min_size=1, max_size=12, unique=True))
    eol = draw(st.sampled_from([b"\n", b"\r\n"]))
    out: list[bytes] = []
    for cid in ids:
        if draw(st.integers(0, 4)) == 0:
            out.append(draw(st.sampled_from([b"", b" ", b"\t"])))
        body = {
            "model": "LFM2.5-1.2B-Instruct",
            "messages": [{"role": "user", "content": draw(_content)}],
            **draw(_extras),
        }
        line = {
            "custom_id": cid,
            "method": draw(st.sampled_from(["POST", "post", "Post"])),
            "url": "/v1/chat/completions",
            "body": body,
        }
        items = list(line.items())
        if draw(st.booleans()):
            items.reverse()  # key order is not a rule
        out.append(json.dumps(dict(items), ensure_ascii=draw(st.booleans())).encode("utf-8"))
    data = eol.join(out) + (eol if draw(st.booleans()) else b"")
    return data, ids


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(valid_file())
def test_server_accepts_every_valid_file_and_answers_each_line_once(
    api: httpx.Client, case: tuple[bytes, list[str]]
) -> None:
    data, ids = case
    assert validate_stream(io.BytesIO(data)).error is None
    up = _upload(api, data)
    assert up.status_code == 200, up.text
    r = _create(api, up.json()["id"])
    assert r.status_code == 200, f"valid file rejected: {r.text}"
    batch = r.json()
    assert batch["request_counts"]["total"] == len(ids)
    deadline = time.monotonic() + 30
    while batch["status"] not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.01)
        batch = api.get(f"/v1/batches/{batch['id']}").json()
    assert batch["status"] == "completed", batch
    answered: list[str] = []
    for key in ("output_file_id", "error_file_id"):
        if batch[key] is not None:
            body = api.get(f"/v1/files/{batch[key]}/content").content
            answered += [orjson.loads(x)["custom_id"] for x in body.splitlines() if x.strip()]
    assert sorted(answered) == sorted(ids)  # every line answered, none twice
