"""Create-time validation: one test per JSONL rule and per create-level rule.

Each bad file is uploaded and a batch created over HTTP: the answer must be 400 with the
spec's message and 1-based line, and the batch must also be stored as ``failed`` with the
same error in ``errors``.
"""

from __future__ import annotations

import orjson
import pytest

import zgpu_pandas._jsonl as jsonl
from tests.support import chat_line, to_jsonl

GOOD = chat_line("a", "hello")


def _raw(obj: object) -> bytes:
    return orjson.dumps(obj)


def _expect_rejected(api, data: bytes, message: str, line: int | None, code: str) -> None:
    f = api.upload(data)
    r = api.create_batch(f["id"])
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["message"] == message
    assert err["type"] == "invalid_request_error"
    assert err["code"] == code
    assert err.get("line") == line
    # ... and stored as failed, with the same error.
    stored = api.get("/v1/batches", params={"limit": 1}).json()["data"][0]
    assert stored["input_file_id"] == f["id"]
    assert stored["status"] == "failed"
    assert isinstance(stored["failed_at"], int)
    assert stored["errors"]["object"] == "list"
    assert stored["errors"]["data"][0]["message"] == message
    assert stored["errors"]["data"][0]["line"] == line
    assert stored["output_file_id"] is None and stored["error_file_id"] is None


def test_rule_valid_json(api):
    _expect_rejected(api, to_jsonl([GOOD, b'{"custom_id": "b",']), "Line 2 is not valid JSON", 2,
                     "invalid_json")


def test_rule_utf8_required(api):
    bad = b'{"custom_id": "\xff\xfe", "method": "POST"}'
    _expect_rejected(api, to_jsonl([GOOD, bad]), "Line 2 is not valid JSON", 2, "invalid_json")


def test_rule_json_object(api):
    _expect_rejected(api, to_jsonl([GOOD, b"[1, 2]"]), "Line 2 must be a JSON object", 2,
                     "invalid_line")


def test_rule_line_size(api):
    big = chat_line("b", "x" * jsonl.MAX_LINE_BYTES)
    _expect_rejected(api, to_jsonl([GOOD, big]),
                     "Line 2 exceeds maximum size of 1048576 bytes", 2, "line_too_large")


def test_rule_line_size_boundary_is_inclusive(api):
    line = chat_line("b", "")
    pad = jsonl.MAX_LINE_BYTES - len(_raw(line))
    line["body"]["messages"][0]["content"] = "x" * pad
    assert len(_raw(line)) == jsonl.MAX_LINE_BYTES
    batch = api.submit([GOOD, line])
    assert batch["request_counts"]["total"] == 2


def test_rule_custom_id_present(api):
    line = chat_line("", "hi")
    _expect_rejected(api, to_jsonl([GOOD, line]), "Line 2 is missing custom_id", 2,
                     "missing_custom_id")


def test_rule_custom_id_must_be_string(api):
    line = {**chat_line("x", "hi"), "custom_id": 7}
    _expect_rejected(api, to_jsonl([GOOD, line]), "Line 2 is missing custom_id", 2,
                     "missing_custom_id")


def test_rule_custom_id_unique(api):
    _expect_rejected(api, to_jsonl([GOOD, chat_line("b", "x"), chat_line("a", "y")]),
                     'Line 3 duplicates custom_id "a"', 3, "duplicate_custom_id")


def test_rule_method_post(api):
    line = {**chat_line("b", "hi"), "method": "GET"}
    _expect_rejected(api, to_jsonl([GOOD, line]), 'Line 2 method must be "POST"', 2,
                     "invalid_method")


def test_rule_method_is_case_insensitive(api):
    line = {**chat_line("b", "hi"), "method": "post"}
    assert api.submit([GOOD, line])["request_counts"]["total"] == 2


def test_rule_url_present(api):
    line = chat_line("b", "hi")
    del line["url"]
    _expect_rejected(api, to_jsonl([GOOD, line]), "Line 2 is missing url", 2, "missing_url")


def test_rule_url_allowed(api):
    line = {**chat_line("b", "hi"), "url": "/v1/embeddings"}
    _expect_rejected(api, to_jsonl([GOOD, line]),
                     'Line 2 url "/v1/embeddings" is not an allowed batch endpoint', 2,
                     "invalid_url")


def test_rule_one_url_per_file(api, monkeypatch):
    # With one allowed endpoint the rule cannot fire; allow a second one to exercise it.
    monkeypatch.setattr(jsonl, "ALLOWED_URLS", frozenset({jsonl.BATCH_ENDPOINT, "/v1/completions"}))
    line = {**chat_line("b", "hi"), "url": "/v1/completions"}
    _expect_rejected(api, to_jsonl([GOOD, line]),
                     'Line 2 url "/v1/completions" does not match the batch endpoint '
                     '"/v1/chat/completions"', 2, "mismatched_url")


def test_rule_body_present(api):
    line = {**chat_line("b", "hi"), "body": {}}
    _expect_rejected(api, to_jsonl([GOOD, line]), "Line 2 is missing body", 2, "missing_body")


def test_rule_no_streaming(api):
    line = chat_line("b", "hi", stream=True)
    _expect_rejected(api, to_jsonl([GOOD, line]),
                     "Line 2 has stream=true; streaming is not supported in batch mode", 2,
                     "stream_not_supported")


def test_rule_at_least_one_line(api):
    _expect_rejected(api, b"\n  \n\n", "Input file contains no JSONL lines", None, "no_lines")


def test_rule_file_size(api, monkeypatch):
    # 200 MB cannot be uploaded (the upload cap is 100 MB); lower the input cap instead.
    data = to_jsonl([chat_line(f"r{i}", "hello") for i in range(10)])
    monkeypatch.setattr(jsonl, "MAX_FILE_BYTES", len(data) - 1)
    _expect_rejected(api, data, f"Input file exceeds maximum size of {len(data) - 1} bytes",
                     None, "input_file_too_large")


def test_rule_line_count(api):
    lines = [b'{"custom_id":"r%d","method":"POST","url":"/v1/chat/completions","body":{"model":"m"}}'
             % i for i in range(jsonl.MAX_LINES + 1)]
    _expect_rejected(api, to_jsonl(lines), "Input file exceeds maximum of 50000 lines", None,
                     "too_many_lines")


def test_line_numbers_count_blank_lines(api):
    data = to_jsonl([GOOD]) + b"\n\n" + b"not json\n"
    _expect_rejected(api, data, "Line 4 is not valid JSON", 4, "invalid_json")


def test_first_broken_rule_wins(api):
    # Missing custom_id comes before the method rule in the spec's order.
    line = {"method": "GET", "url": "/v1/chat/completions", "body": {"model": "m"}}
    _expect_rejected(api, to_jsonl([line]), "Line 1 is missing custom_id", 1, "missing_custom_id")


def test_trailing_newline_and_crlf_accepted(api):
    data = _raw(GOOD) + b"\r\n" + _raw(chat_line("b", "x"))  # no final newline
    f = api.upload(data)
    r = api.create_batch(f["id"])
    assert r.status_code == 200
    assert r.json()["request_counts"]["total"] == 2


# ---------------------------------------------------------------- create-level rules
@pytest.mark.parametrize(
    ("body", "message", "param"),
    [
        ({"endpoint": "/v1/chat/completions"}, "input_file_id is required", "input_file_id"),
        ({"input_file_id": "FID"}, "endpoint is required", "endpoint"),
        ({"input_file_id": "FID", "endpoint": "/v1/chat/completions", "completion_window": "48h"},
         'completion_window must be "24h"', "completion_window"),
        ({"input_file_id": "FID", "endpoint": "/v1/chat/completions", "metadata": [1]},
         "metadata must be an object", "metadata"),
    ],
)
def test_create_parameters(api, body, message, param):
    f = api.upload(to_jsonl([GOOD]))
    body = {k: (f["id"] if v == "FID" else v) for k, v in body.items()}
    r = api.post("/v1/batches", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == message
    assert r.json()["error"]["param"] == param
    assert api.get("/v1/batches").json()["data"] == []  # nothing stored


def test_create_endpoint_must_match_file_url(api):
    f = api.upload(to_jsonl([GOOD]))
    r = api.post("/v1/batches", json={"input_file_id": f["id"], "endpoint": "/v1/embeddings"})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == (
        'endpoint "/v1/embeddings" does not match the url "/v1/chat/completions" used by the '
        "input file"
    )
    assert api.get("/v1/batches").json()["data"][0]["status"] == "failed"


def test_create_unknown_input_file(api):
    r = api.create_batch("file-000000000000000000000000")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Input file not found: file-000000000000000000000000"


def test_create_body_must_be_json_object(api):
    r = api.post("/v1/batches", content=b"[1]", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"
    r = api.post("/v1/batches", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400


def test_completion_window_defaults_to_24h(api):
    f = api.upload(to_jsonl([GOOD]))
    b = api.post("/v1/batches", json={"input_file_id": f["id"], "endpoint": "/v1/chat/completions"}).json()
    assert b["completion_window"] == "24h"
    assert b["expires_at"] == b["created_at"] + 86400
    assert b["metadata"] == {}
