"""Output/error JSONL → results table → merged DataFrame."""

from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zgpu_pandas.core import results as _results
from zgpu_pandas.core.results import ResultsTable, check_columns, result_columns
from zgpu_pandas.errors import ColumnClashError, OptionError
from zgpu_pandas.frames._pandas_columns import merge_results


def ok_line(
    i: int | str, content: Any = None, *, finish: str = "stop", usage: bool = True
) -> bytes:
    cid = i if isinstance(i, str) else f"row-{i}"
    body: dict[str, Any] = {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": f"answer {cid}" if content is None else content,
                },
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
    }
    if usage:
        body["usage"] = {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 0},
        }
    return orjson.dumps(
        {
            "id": "batch_req_1",
            "custom_id": cid,
            "response": {"status_code": 200, "request_id": None, "body": body},
        }
    )


def err_line(i: int, code: str = "internal_error", message: str = "[legacy:x] boom") -> bytes:
    return orjson.dumps(
        {
            "id": "batch_req_2",
            "custom_id": f"row-{i}",
            "response": None,
            "error": {"code": code, "message": message, "param": None},
        }
    )


def frame(n: int, **kw: Any) -> pd.DataFrame:
    return pd.DataFrame({"q": [f"q{i}" for i in range(n)]}, **kw)


def test_answers_land_on_their_rows_whatever_the_order_and_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # service-shaped lines take the columnar path, never the line-by-line one
    monkeypatch.setattr(ResultsTable, "_add_block_slow", None)
    n = 50
    lines = [ok_line(i) for i in range(n) if i % 5] + [err_line(i) for i in range(n) if not i % 5]
    random.Random(3).shuffle(lines)
    idx = pd.MultiIndex.from_tuples([("dup", 1)] * n, names=["a", "b"])
    df = frame(n, index=idx)
    table = ResultsTable(n)
    assert table.add_lines(lines) == n
    out = merge_results(df, table)
    assert out.index.equals(df.index)
    assert out["q"].tolist() == df["q"].tolist()
    for i in range(n):
        row = out.iloc[i]
        if i % 5:
            assert row["response"] == f"answer row-{i}"
            assert row["response_status"] == "ok"
            assert pd.isna(row["response_error_code"])
            assert row["response_finish_reason"] == "stop"
            assert row["response_total_tokens"] == 15
        else:
            assert pd.isna(row["response"])
            assert row["response_status"] == "error"
            assert row["response_error_code"] == "internal_error"
            assert row["response_error"] == "boom"  # the old API's prefix is dropped
    assert table.counts() == {"pending": 0, "ok": 40, "error": 10, "skipped": 0}


def test_column_types_and_names() -> None:
    table = ResultsTable(2)
    table.add_lines([ok_line(0), err_line(1)])
    out = merge_results(frame(2), table, output="tag")
    assert list(out.columns) == ["q", *result_columns("tag")]
    for name in ["tag", "tag_status", "tag_error_code", "tag_error", "tag_finish_reason"]:
        assert out[name].dtype == pd.StringDtype("pyarrow"), name
    for name in ["tag_prompt_tokens", "tag_completion_tokens", "tag_total_tokens"]:
        assert out[name].dtype == "Int64"
    assert out["tag_prompt_tokens"].tolist() == [10, pd.NA]


def test_skipped_and_whole_batch_errors_and_pending() -> None:
    table = ResultsTable(5)
    table.add_lines([ok_line(0)])
    table.add_skipped(
        [1, 3], ["empty_prompt", "line_too_large"], ["the prompt is empty", "too big"]
    )
    table.add_errors([2], code="invalid_json", message="Line 1 is not valid JSON")
    assert table.pending().tolist() == [4]
    assert table.pending(np.array([0, 4])).tolist() == [4]
    out = merge_results(frame(5), table)
    assert out["response_status"].tolist() == ["ok", "skipped", "error", "skipped", "pending"]
    assert out["response_error_code"].tolist()[1:4] == [
        "empty_prompt",
        "invalid_json",
        "line_too_large",
    ]
    assert out["response_error"].iloc[1] == "the prompt is empty"


def test_a_later_result_replaces_an_earlier_one() -> None:
    # a retry's answer replaces the failure, in later calls and within one call
    table = ResultsTable(3)
    table.add_lines([err_line(0), err_line(1)])
    table.add_lines([ok_line(0, "second try"), err_line(2), ok_line(2, "same block, later")])
    out = merge_results(frame(3), table)
    assert out["response"].tolist() == ["second try", pd.NA, "same block, later"]
    assert out["response_status"].tolist() == ["ok", "error", "ok"]
    assert pd.isna(out["response_error_code"].iloc[0])


def test_non_2xx_output_lines_and_lines_without_response() -> None:
    lines = [
        orjson.dumps(
            {
                "custom_id": "row-0",
                "response": {
                    "status_code": 404,
                    "body": {
                        "error": {
                            "message": "The model x does not exist",
                            "code": "not_found_error",
                        }
                    },
                },
            }
        ),
        orjson.dumps({"custom_id": "row-1", "response": {"status_code": 500, "body": {}}}),
        orjson.dumps({"custom_id": "row-2", "response": None}),
        ok_line(3, None, usage=False),
    ]
    table = ResultsTable(4)
    table.add_lines(lines)
    out = merge_results(frame(4), table)
    assert out["response_status"].tolist() == ["error", "error", "error", "ok"]
    assert out["response_error_code"].tolist()[:3] == [
        "not_found_error",
        "http_500",
        "missing_response",
    ]
    assert out["response_error"].iloc[0] == "The model x does not exist"
    assert pd.isna(out["response_total_tokens"].iloc[3])


def test_lines_the_fixed_schema_does_not_fit_are_read_one_by_one() -> None:
    parts = [{"type": "text", "text": "part one, "}, {"type": "text", "text": "part two"}]
    lines = [
        ok_line(0, parts),  # content parts instead of a string
        b"this line is broken {",
        ok_line(1, {"sentiment": "positive"}),  # an object where text was expected
        ok_line(2, "plain"),
    ]
    table = ResultsTable(3)
    assert table.add_lines(lines, source="output file file-abc") == 3
    out = merge_results(frame(3), table)
    assert out["response"].tolist() == ["part one, part two", '{"sentiment":"positive"}', "plain"]
    assert len(table.problems) == 1 and "output file file-abc" in table.problems[0]


def test_foreign_custom_ids_are_reported_and_ignored() -> None:
    table = ResultsTable(2)
    table.add_lines([ok_line("row-7"), ok_line("someone-else"), ok_line("row-01x"), ok_line(1)])
    assert table.counts()["ok"] == 1
    assert len(table.problems) == 3
    assert "'someone-else'" in " ".join(table.problems)


def test_custom_ids_given_explicitly() -> None:
    table = ResultsTable(3, custom_ids=["a", "b", "c"])
    table.add_lines([ok_line("c", "for c"), ok_line("a", "for a"), ok_line("zz")])
    out = merge_results(frame(3), table)
    assert out["response"].tolist() == ["for a", pd.NA, "for c"]
    assert len(table.problems) == 1


def test_many_blocks_and_a_line_longer_than_a_parse_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_results, "_BLOCK_BYTES", 3000)
    monkeypatch.setattr(_results, "_INNER_BLOCK", 1000)
    n = 60
    huge = "h" * 5000  # longer than a piece and than a block
    lines = [ok_line(i, huge if i == 17 else None) for i in range(n)]
    random.Random(0).shuffle(lines)
    data = b"\n".join(lines) + b"\n"
    for feed in ("lines", "file"):
        table = ResultsTable(n)
        used = table.add_lines(lines) if feed == "lines" else table.add_file(io.BytesIO(data))
        assert used == n
        out = merge_results(frame(n), table)
        expected = [huge if i == 17 else f"answer row-{i}" for i in range(n)]
        assert out["response"].tolist() == expected, feed
        assert not table.problems


def test_file_without_final_newline_and_with_blank_lines() -> None:
    data = ok_line(0) + b"\n\n\r\n" + ok_line(1)
    table = ResultsTable(2)
    assert table.add_file(io.BytesIO(data)) == 2
    assert table.counts()["ok"] == 2


def test_name_clash_is_an_error_unless_overwrite() -> None:
    df = pd.DataFrame({"q": ["a"], "response_status": ["old"]})
    with pytest.raises(ColumnClashError, match=r"'response_status'.*overwrite=True"):
        check_columns(df)
    check_columns(df, "answer")
    table = ResultsTable(1)
    table.add_lines([ok_line(0)])
    with pytest.raises(ColumnClashError):
        merge_results(df, table)
    out = merge_results(df, table, overwrite=True)
    assert out["response_status"].tolist() == ["ok"]
    assert df["response_status"].tolist() == ["old"]  # the input is untouched
    assert list(df.columns) == ["q", "response_status"]
    with pytest.raises(OptionError, match="non-empty"):
        check_columns(df, "")


def test_merge_checks_the_row_count() -> None:
    with pytest.raises(ValueError, match="3 rows"):
        merge_results(frame(3), ResultsTable(2))


line_strategy = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["ok", "error", "http", "noresp"]),
        "content": st.one_of(st.none(), st.text(max_size=30)),
        "finish": st.one_of(st.none(), st.sampled_from(["stop", "length"])),
        "tokens": st.one_of(st.none(), st.integers(0, 10**6)),
        "code": st.sampled_from(["internal_error", "batch_expired", "rate_limit_exceeded"]),
    }
)


def _line(i: int, spec: dict[str, Any]) -> bytes:
    if spec["kind"] == "error":
        return err_line(i, spec["code"], "[legacy:http_500] m")
    if spec["kind"] == "noresp":
        return orjson.dumps({"custom_id": f"row-{i}", "response": None})
    sc = 200 if spec["kind"] == "ok" else 429
    body: dict[str, Any] = {
        "choices": [{"message": {"content": spec["content"]}, "finish_reason": spec["finish"]}]
    }
    if spec["kind"] == "http":
        body["error"] = {"code": spec["code"], "message": "[legacy:http_429] m"}
    if spec["tokens"] is not None:
        body["usage"] = {
            "prompt_tokens": spec["tokens"],
            "completion_tokens": 1,
            "total_tokens": spec["tokens"] + 1,
        }
    return orjson.dumps({"custom_id": f"row-{i}", "response": {"status_code": sc, "body": body}})


@settings(max_examples=60, deadline=None)
@given(st.lists(line_strategy, min_size=1, max_size=25))
def test_columnar_and_line_by_line_readers_agree(specs: list[dict[str, Any]]) -> None:
    lines = [_line(i, s) for i, s in enumerate(specs)]
    block = b"\n".join(lines) + b"\n"
    fast, slow = ResultsTable(len(lines)), ResultsTable(len(lines))
    fast._add_block(block, "x")
    slow._add_block_slow(block, "x")
    a, b = fast.columns(), slow.columns()
    for name in a:
        assert a[name].to_pylist() == b[name].to_pylist(), name
    assert a["status"].to_pylist().count("pending") == 0
    # both readers drop the old API's prefix from the message, keep the code
    assert set(a["error"].to_pylist()) <= {None, "m", "the line has neither a response nor an error"}


def test_a_large_output_is_read_in_bounded_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import tracemalloc

    monkeypatch.setattr(_results, "_BLOCK_BYTES", 1 << 20)
    n = 30_000
    pad = "p" * 600

    def download() -> Any:  # like client.files.iter_bytes: chunks cut anywhere
        buf = bytearray()
        for i in range(n):
            buf += ok_line(i, f"{pad} {i}") + b"\n"
            if len(buf) >= 65_536:
                yield bytes(buf[:50_000])
                del buf[:50_000]
        yield bytes(buf)

    table = ResultsTable(n)
    tracemalloc.start()
    try:
        used = table.add_chunks(download())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert used == n
    total = n * len(ok_line(0, f"{pad} 0"))
    assert total > 20_000_000
    assert peak < 6_000_000, f"peak {peak:,} bytes for a {total:,}-byte output"
    out = merge_results(frame(n), table)
    assert out["response"].iloc[12_345] == f"{pad} 12345"


class _Pipe(io.RawIOBase):
    """A stream that cannot seek (a pipe, a download), handing out what it holds in reads
    of at most ``step`` bytes."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._at, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self._step, len(self._data) - self._at)
        b[:n] = self._data[self._at : self._at + n]
        self._at += n
        return n


def _whole(data: bytes) -> bytes:
    """The data as blocks give it back: a newline added after a last line that has none."""
    if not data.strip():
        return b""
    return data if data.endswith(b"\n") else data + b"\n"


@settings(max_examples=80, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=120).map(lambda b: b.replace(b"\n", b"")), max_size=40),
    final_newline=st.booleans(),
    block=st.integers(8, 200),
    cuts=st.lists(st.integers(1, 90), min_size=1, max_size=8),
)
def test_blocks_are_whole_lines_and_add_up_to_the_input(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[bytes],
    final_newline: bool,
    block: int,
    cuts: list[int],
) -> None:
    # lines longer than a block, blank lines, no final newline, chunks cut anywhere: read as
    # chunks, as a file that can seek (read in place, going back to a line's end) and as one
    # that cannot
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    path = tmp_path_factory.mktemp("blocks") / "out.jsonl"
    path.write_bytes(data)

    def chunks() -> Any:
        at, k = 0, 0
        while at < len(data):
            yield data[at : at + cuts[k % len(cuts)]]
            at, k = at + cuts[k % len(cuts)], k + 1

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_results, "_BLOCK_BYTES", block)
        with path.open("rb") as f:
            from_file = [bytes(b) for b in _results._blocks_from_file(f)]
        from_pipe = [
            bytes(b) for b in _results._blocks_from_file(io.BufferedReader(_Pipe(data, cuts[0])))
        ]
        from_chunks = [bytes(b) for b in _results._blocks_from_chunks(chunks())]
    for blocks in (from_file, from_pipe, from_chunks):
        joined = b"".join(blocks)
        # the input in order, each piece once; only blank lines at its end may be left out
        assert _whole(data).startswith(joined) and not _whole(data)[len(joined) :].strip()
        assert all(b.endswith(b"\n") for b in blocks)


def test_a_results_file_is_read_without_copies_of_its_blocks(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tracemalloc

    block = 1 << 20
    monkeypatch.setattr(_results, "_BLOCK_BYTES", block)
    n = 30_000
    pad = "p" * 600
    path = tmp_path / "output.jsonl"
    with path.open("wb") as f:
        for i in range(n):
            f.write(ok_line(i, f"{pad} {i}") + b"\n")
    assert path.stat().st_size > 20 * block
    table = ResultsTable(n)
    with path.open("rb") as f:
        tracemalloc.start()
        try:
            used = table.add_file(f)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert used == n
    # one block read at a time and parsed where it was read (2.3 blocks traced here, the
    # rest being the file's row positions put in order at its end); a buffer grown chunk
    # by chunk beside the chunk and a copy of the block traced 4.5
    assert peak < 3 * block, f"peak {peak:,} bytes for blocks of {block:,}"
    out = merge_results(frame(n), table)
    assert out["response"].iloc[12_345] == f"{pad} 12345"


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 10**7)),
            st.one_of(st.none(), st.integers(0, 10**7)),
            st.booleans(),
        ),
        max_size=30,
    ),
    pieces=st.integers(1, 3),
)
def test_each_rows_cost_is_its_usage_at_list_price(
    rows: list[tuple[int | None, int | None, bool]], pieces: int
) -> None:
    # null where either count is unknown, 0 where another row carried the request, for
    # token columns in one piece or several (before the results are folded)
    from zgpu_pandas._catalog import get_model

    info = get_model("LFM2.5-1.2B-Instruct")
    assert info is not None and info.input_per_million and info.output_per_million

    def column(values: list[int | None]) -> pa.ChunkedArray:
        cut = len(values) // pieces or 1
        parts = [values[a : a + cut] for a in range(0, len(values), cut)] or [[]]
        return pa.chunked_array([pa.array(p, pa.int64()) for p in parts], pa.int64())

    shared = np.array([s for _, _, s in rows], dtype=bool)
    got = _results.row_costs(
        column([p for p, _, _ in rows]), column([c for _, c, _ in rows]), shared,
        model="LFM2.5-1.2B-Instruct",
    ).to_pylist()
    for (p, c, s), cost in zip(rows, got, strict=True):
        if s:
            assert cost == 0.0
        elif p is None or c is None:
            assert cost is None
        else:
            want = (p * info.input_per_million + c * info.output_per_million) / 1e6
            assert cost == pytest.approx(want, rel=1e-12)
    assert _results.row_costs(column([1]), column([2]), np.array([False]), model=None).to_pylist() == [
        None
    ]


def test_file_objects_that_are_not_plain_files_are_read_whole(tmp_path: Any) -> None:
    # a compressed file says it can seek (by reading again from its start) and a raw
    # stream may return less than asked before its end: both are read as a stream of
    # chunks; a reused buffer handed out as chunks is copied before it changes
    import gzip

    n = 2_000
    data = b"".join(ok_line(i, f"answer {i} " + "x" * (i % 300)) + b"\n" for i in range(n))
    path = tmp_path / "out.jsonl.gz"
    path.write_bytes(gzip.compress(data))

    class Short(io.RawIOBase):  # hands out at most 1,000 bytes per read, says it can seek
        def __init__(self) -> None:
            self._f = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return True

        def seek(self, offset: int, whence: int = 0) -> int:
            return self._f.seek(offset, whence)

        def readinto(self, b: Any) -> int:
            got = self._f.read(min(len(b), 1_000))
            b[: len(got)] = got
            return len(got)

    def reused() -> Any:
        buf = bytearray(700)
        for a in range(0, len(data), 700):
            piece = data[a : a + 700]
            buf[: len(piece)] = piece
            yield buf if len(piece) == 700 else bytearray(piece)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_results, "_BLOCK_BYTES", 5_000)
        for feed in ("gzip", "short", "reused"):
            table = ResultsTable(n)
            if feed == "gzip":
                with gzip.open(path, "rb") as f:
                    used = table.add_file(f)
            elif feed == "short":
                used = table.add_file(Short())
            else:
                used = table.add_chunks(reused())
            assert used == n, feed
            out = merge_results(frame(n), table)
            assert out["response"].iloc[1_999] == "answer 1999 " + "x" * (1_999 % 300), feed
