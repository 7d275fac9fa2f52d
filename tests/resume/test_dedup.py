"""Identical requests within a job are sent once and fanned out to every row that asked."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from zgpu_pandas._client import Client
from zgpu_pandas.core.requests import _dedup, build_requests
from zgpu_pandas.core.results import ResultsTable
from zgpu_pandas.frames._pandas_columns import merge_results
from zgpu_pandas.server import LocalServer
from zgpu_pandas.server.engines import builtin_reply

from .resume_support import MODEL, api_calls, body


def sent_lines(client: Client, batch_id: str) -> list[dict]:
    f = client.batches.retrieve(batch_id).input_file_id
    assert f is not None
    return [orjson.loads(x) for x in client.files.iter_lines(f)]


def test_n_identical_prompts_make_one_request_line_and_n_filled_rows(
    server: LocalServer, client: Client
) -> None:
    n = 40
    texts = ["Is this spam?"] * n + ["other", None, "Is this spam?", ""]
    df = pd.DataFrame({"q": texts}, index=[f"id{i % 7}" for i in range(len(texts))])
    out = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    (bid,) = df.zgpu.last_job.batch_ids
    lines = sent_lines(client, bid)
    # one line for the 41 identical rows (carried by the first of them), one for "other"
    assert [x["custom_id"] for x in lines] == ["row-0", f"row-{n}"]
    assert [x["body"] for x in lines] == [body("Is this spam?"), body("other")]
    same = out.iloc[[*range(n), n + 2]]
    assert (same["response_status"] == "ok").all()
    assert (same["response"] == builtin_reply(body("Is this spam?"))).all()
    assert (same["response_finish_reason"] == "stop").all()
    assert (
        same["response_total_tokens"].nunique() == 1 and same["response_total_tokens"].iloc[0] > 0
    )
    assert out["response_status"].tolist()[n:] == ["ok", "skipped", "ok", "skipped"]
    assert out.index.equals(df.index)
    st = df.zgpu.last_job.status()
    # counted in rows; the service saw two requests
    assert st.outcome == "success" and st.sent == st.answered == n + 2 and st.requests == 2


def test_rows_built_from_different_columns_with_the_same_request_share_it(
    server: LocalServer, client: Client
) -> None:
    # rows 0 and 2 render to "x y" from different cells; row 3 to "x  y"
    df = pd.DataFrame({"a": ["x", "x", "x y", "x "], "b": ["y", "", "", "y"]})
    df["b"] = df["b"].replace("", None)
    out = df.zgpu.batch_chat("{a} {b}", model=MODEL, client=client, progress=False)
    assert out["response_status"].tolist() == ["ok", "skipped", "skipped", "ok"]
    df2 = pd.DataFrame({"a": ["x", "x y"], "b": ["y z", "z"]})
    out2 = df2.zgpu.batch_chat("{a} {b}", model=MODEL, client=client, progress=False)
    assert out2["response"][0] == out2["response"][1] == builtin_reply(body("x y z"))
    assert len(sent_lines(client, df2.zgpu.last_job.batch_ids[0])) == 1
    assert len(sent_lines(client, df.zgpu.last_job.batch_ids[0])) == 2


def test_dedup_false_sends_every_row(server: LocalServer, client: Client) -> None:
    df = pd.DataFrame({"q": ["same"] * 5})
    out = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, dedup=False)
    assert len(sent_lines(client, df.zgpu.last_job.batch_ids[0])) == 5
    assert (out["response"] == builtin_reply(body("same"))).all()


def test_a_failed_shared_line_fails_every_row_and_its_retry_fixes_them_all(
    server: LocalServer, client: Client
) -> None:
    server.faults.fail_lines(code="internal_error", custom_ids=r"^row-1$", count=1)
    df = pd.DataFrame({"q": ["a", "b", "b", "c", "b"]})
    out = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    assert out["response_status"].tolist() == ["ok", "error", "error", "ok", "error"]
    assert out["response_error_code"].tolist()[1::3] == ["internal_error", "internal_error"]
    job = df.zgpu.last_job
    job.retry()
    assert [x["custom_id"] for x in sent_lines(client, job.batch_ids[-1])] == ["row-1"]
    fixed = job.result()
    assert (fixed["response_status"] == "ok").all()
    assert fixed["response"].tolist()[1:3] == [builtin_reply(body("b"))] * 2
    assert api_calls(server, "POST", "/v1/batches") == 2


def test_results_table_fans_out_every_result_including_later_ones() -> None:
    df = pd.DataFrame({"q": ["a", "b", "a", "a"]})
    reqs = build_requests(df, prompt="q", model=MODEL)
    assert reqs.positions.tolist() == [0, 1]
    assert reqs.duplicate_positions.tolist() == [2, 3]
    assert reqs.duplicate_of.tolist() == [0, 0]
    table = ResultsTable(4)
    table.set_duplicates(reqs.duplicate_positions, reqs.duplicate_of)
    table.add_errors(np.array([0]), code="internal_error", message="try again")
    assert table.counts() == {"pending": 1, "ok": 0, "error": 3, "skipped": 0}
    ok = (
        b'{"custom_id":"row-0","response":{"status_code":200,"body":{"choices":'
        b'[{"message":{"content":"A"},"finish_reason":"stop"}]}}}'
    )
    table.add_lines([ok])
    out = merge_results(df, table)
    assert out["response"].tolist()[::2] == ["A", "A"] and out["response"][3] == "A"
    assert out["response_status"].tolist() == ["ok", "pending", "ok", "ok"]
    assert table.error_codes() == {}


def test_sampling_requests_are_not_merged_by_default(server: LocalServer, client: Client) -> None:
    df = pd.DataFrame({"q": ["same", "same", "same"]})
    sampling: list[dict[str, Any]] = [
        {"temperature": 1.0},
        {"n": 2},
        {"top_p": 0.9},
        {"temperature": 0.7, "top_p": 1},
    ]
    for params in sampling:
        out = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, **params)
        assert len(sent_lines(client, df.zgpu.last_job.batch_ids[0])) == 3, params
        assert not out["response_shared"].any()
        assert (out["response"] == builtin_reply(body("same", **params))).all()
    # deterministic requests (no sampling asked for) are merged, unless dedup=False
    plain: list[dict[str, Any]] = [{}, {"temperature": 0}, {"temperature": 0, "top_p": 1, "n": 1}]
    for params in plain:
        df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, **params)
        assert len(sent_lines(client, df.zgpu.last_job.batch_ids[0])) == 1, params
    # and dedup=True merges sampling requests when asked for explicitly
    df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, temperature=1.0, dedup=True)
    assert len(sent_lines(client, df.zgpu.last_job.batch_ids[0])) == 1


def test_shared_column_marks_rows_answered_by_another_rows_request(
    server: LocalServer, client: Client
) -> None:
    df = pd.DataFrame({"q": ["a", "b", "a", None, "a", "b"]})
    out = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    assert out["response_shared"].tolist() == [False, False, True, False, True, True]
    assert out["response_shared"].dtype == bool
    # the true usage: the tokens of the requests actually sent
    sent = out.loc[~out.response_shared, "response_total_tokens"].sum()
    assert sent == out.loc[[0, 1], "response_total_tokens"].sum()
    assert out.loc[~out.response_shared & (out.response_status == "ok")].shape[0] == 2
    undup = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, dedup=False)
    assert not undup["response_shared"].any()
    est = df.zgpu.estimate_chat("q", model=MODEL, temperature=1.0)
    assert est.rows_deduplicated == 0 and est.rows_to_send == 5


def test_two_different_duplicated_prompts_each_get_their_own_answer(
    server: LocalServer, client: Client
) -> None:
    # two prompts repeated, interleaved, plus a single one: a fan-out that mixes up which
    # source a duplicate follows gives some row another prompt's answer
    # (not symmetric: reversing the duplicates' order sends "a" to a "b" row)
    texts = ["a", "b", "a", "b", "c", "a", "b"]
    df = pd.DataFrame({"q": texts}, index=[10, 3, 7, 0, 99, 5, 1])
    out = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    lines = sent_lines(client, df.zgpu.last_job.batch_ids[0])
    assert sorted(x["custom_id"] for x in lines) == ["row-0", "row-1", "row-4"]
    for k, t in enumerate(texts):
        assert out["response"].iloc[k] == builtin_reply(body(t)), (k, t)
    assert builtin_reply(body("a")) != builtin_reply(body("b"))  # the check can tell them apart
    assert out["response_shared"].tolist() == [False, False, True, True, False, True, True]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.sampled_from(["", "a", "b", "ab", "é", "a\x00", "B"]),
                       st.text(max_size=3)), min_size=1, max_size=40),
    st.lists(st.integers(1, 10), max_size=5),
    st.booleans(),
    st.data(),
)
def test_each_distinct_payload_is_sent_once_by_its_first_row(
    values: list[str | None], cuts: list[int], large: bool, data: st.DataObject
) -> None:
    """Any texts (repeated, empty, null, in any number of chunks, as string or large_string),
    any subset of rows to send: the rows sent are the first of each distinct text among
    them, and every other row points at that first row."""
    typ = pa.large_string() if large else pa.string()
    chunks, start = [], 0
    for c in cuts:
        chunks.append(pa.array(values[start : start + c], typ))
        start += c
    chunks.append(pa.array(values[start:], typ))
    payload = pa.chunked_array(chunks, typ)
    candidates = [i for i, v in enumerate(values) if v is not None]
    positions = np.array(
        sorted(data.draw(st.sets(st.sampled_from(candidates))) if candidates else []),
        dtype=np.int64,
    )
    if len(positions) < 2:
        return
    sent, shared = _dedup(positions, payload)
    first: dict[str, int] = {}
    for p in positions.tolist():
        first.setdefault(values[p], p)  # type: ignore[arg-type]
    assert sent.tolist() == sorted(first.values())
    dup = shared.positions.tolist()
    assert sorted(dup) == sorted(set(positions.tolist()) - set(first.values()))
    for p, rep in zip(dup, shared.sources.tolist(), strict=True):
        assert rep == first[values[p]]  # type: ignore[index]
