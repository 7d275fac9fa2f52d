"""Structured output columns for every JSON-schema type, end to end against the local server:
each field's column has the schema's dtype on pandas 2 and 3 alike, and one value per row
(lists of equal length are never stacked into a matrix), through ``result()``,
``retry().result()`` and ``attach(...).result()``, with every row answered, some missing,
or none."""

from __future__ import annotations

from typing import Any

import orjson
import pandas as pd
import pytest

from zgpu_pandas import StructuredOutputError
from zgpu_pandas._client import Client
from zgpu_pandas.core.resume import attach
from zgpu_pandas.core.structured import extract_json
from zgpu_pandas.server import LocalServer
from zgpu_pandas.server.engines import builtin_reply

from .resume_support import MODEL

# One field of every kind a JSON schema can give a value, and the forms users write them in.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "summary": {"type": "string", "maxLength": 20},
        "stars": {"type": "integer", "minimum": 1, "maximum": 5},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "spam": {"type": "boolean"},
        # the same length on every row: the case that built a 2-D array
        "topics": {"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 3},
        "ids": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
        "meta": {
            "type": "object",
            "properties": {"lang": {"type": "string"}, "n": {"type": "integer"}},
            "required": ["lang", "n"],
        },
        "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "either": {"type": ["number", "null"]},
    },
    "required": ["label", "summary", "stars", "score", "spam", "topics", "ids", "meta"],
}
DTYPES = {
    "label": "string",
    "summary": "string",
    "stars": "Int64",
    "score": "Float64",
    "spam": "boolean",
    "topics": "object",
    "ids": "object",
    "meta": "object",
    "maybe": "Int64",
    "either": "Float64",
}
TEXTS = [f"Review number {i}: great battery, poor screen, fast delivery" for i in range(8)]


def expected_fields(client: Client, batch_ids: list[str]) -> dict[str, dict[str, Any]]:
    """custom_id -> the fields the built-in engine answers to that line (read off the lines
    actually sent, so the check does not depend on how the request was built)."""
    out: dict[str, dict[str, Any]] = {}
    for batch_id in batch_ids:
        f = client.batches.retrieve(batch_id).input_file_id
        assert f is not None
        for raw in client.files.iter_lines(f):
            line = orjson.loads(raw)
            out[line["custom_id"]] = extract_json(builtin_reply(line["body"]))
    return out


def assert_fields(out: pd.DataFrame, expected: dict[int, dict[str, Any] | None]) -> None:
    """Each field column has its dtype, and row ``i`` holds ``expected[i]``'s values (every
    field missing where ``expected[i]`` is None)."""
    for name, dtype in DTYPES.items():
        assert str(out[name].dtype) == dtype, (name, out[name].dtype)
        col = out[name]
        for i in range(len(out)):
            want = None if expected.get(i) is None else expected[i].get(name)  # type: ignore[union-attr]
            got = col.iloc[i]
            if want is None:
                assert got is None or got is pd.NA, (name, i, got)
            else:
                # an object column holds the very list/dict, never a numpy array or row
                assert type(got) is type(want) or dtype != "object", (name, i, type(got))
                assert got == want, (name, i, got, want)


def run(df: pd.DataFrame, client: Client, **kw: Any) -> pd.DataFrame:
    return df.zgpu.batch_chat(
        "review", model=MODEL, client=client, progress=False, response_format=SCHEMA, **kw
    )


def test_every_row_answered_equal_length_lists(server: LocalServer, client: Client) -> None:
    df = pd.DataFrame({"review": TEXTS, "id": range(len(TEXTS))})
    out = run(df, client)
    assert out["response_status"].tolist() == ["ok"] * len(TEXTS)
    got = expected_fields(client, df.zgpu.last_job.batch_ids)
    assert all(len(v["topics"]) == 3 for v in got.values())  # the shape under test
    assert_fields(out, {i: got[f"row-{i}"] for i in range(len(TEXTS))})
    # the journal's copy is parsed the same way
    again = attach(df.zgpu.last_job.job_id, client=client, frame=df).result()
    pd.testing.assert_frame_equal(out, again)


def test_mixed_rows_skipped_failed_and_answered(server: LocalServer, client: Client) -> None:
    texts: list[str | None] = list(TEXTS)
    texts[2] = None  # skipped
    server.faults.fail_lines(code="invalid_request_error", custom_ids=r"^row-5$")
    df = pd.DataFrame({"review": texts})
    out = run(df, client, retries=0)
    assert out["response_status"].tolist() == ["ok", "ok", "skipped", "ok", "ok", "error", "ok", "ok"]
    got = expected_fields(client, df.zgpu.last_job.batch_ids)
    assert_fields(
        out, {i: got[f"row-{i}"] for i in range(len(texts)) if i not in (2, 5)}
    )


def test_no_row_answered_keeps_the_schema_dtypes(server: LocalServer, client: Client) -> None:
    server.faults.fail_lines(code="invalid_request_error", custom_ids=r"^row-")
    df = pd.DataFrame({"review": TEXTS[:3]})
    out = run(df, client, retries=0)
    assert out["response_status"].tolist() == ["error"] * 3
    assert_fields(out, {})


def test_retry_then_result_with_equal_length_lists(server: LocalServer, client: Client) -> None:
    server.faults.fail_lines(code="rate_limit_exceeded", custom_ids=r"^row-(1|6)$", count=2)
    df = pd.DataFrame({"review": TEXTS})
    first = run(df, client, retries=0)
    assert first["response_status"].tolist().count("error") == 2
    job = df.zgpu.last_job
    out = job.retry().result()
    assert out["response_status"].tolist() == ["ok"] * len(TEXTS)
    got = expected_fields(client, job.batch_ids)
    assert_fields(out, {i: got[f"row-{i}"] for i in range(len(TEXTS))})


@pytest.mark.parametrize("parse", [True, False])
def test_parse_false_keeps_raw_text_only(
    server: LocalServer, client: Client, parse: bool
) -> None:
    df = pd.DataFrame({"review": TEXTS[:2]})
    out = run(df, client, parse=parse)
    assert ("topics" in out.columns) is parse
    assert all(isinstance(orjson.loads(t), dict) for t in out["response"])


def test_an_unforeseen_parse_failure_says_the_answers_are_kept(
    server: LocalServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A safety net, not a known case: whatever goes wrong while splitting replies into
    columns names the job and points to parse=False, which then returns the raw text from the
    journal without a new batch."""
    import zgpu_pandas.frames._pandas_columns as structured

    def broken(values: Any, kind: Any = None) -> Any:
        raise RuntimeError("simulated")

    df = pd.DataFrame({"review": TEXTS[:2]})
    with monkeypatch.context() as m, pytest.raises(StructuredOutputError) as info:
        m.setattr(structured, "field_column", broken)
        run(df, client)
    assert df.zgpu.last_job.job_id in str(info.value)
    assert "parse=False" in str(info.value) and "'response'" in str(info.value)
    creates = sum(1 for m, p, _ in server.request_log if (m, p) == ("POST", "/v1/batches"))
    raw = run(df, client, parse=False)
    assert raw["response_status"].tolist() == ["ok", "ok"]
    assert sum(1 for m, p, _ in server.request_log if (m, p) == ("POST", "/v1/batches")) == creates
