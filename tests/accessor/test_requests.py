"""DataFrame → request lines: prompts, templates, messages, skips, conversions, limits, chunks."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zgpu_pandas._jsonl import MAX_LINE_BYTES, validate_stream
from zgpu_pandas.core.escape import json_escape
from zgpu_pandas.core.requests import _params_json, build_requests
from zgpu_pandas.errors import OptionError, OversizeRowsError, PromptError

MODEL = "LFM2.5-1.2B-Instruct"


def parsed(reqs: Any) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in reqs.iter_lines()]


def user_texts(reqs: Any) -> dict[int, str]:
    """position -> the last user message of its request."""
    out = {}
    for line in parsed(reqs):
        pos = int(line["custom_id"][4:])
        out[pos] = [m for m in line["body"]["messages"] if m["role"] == "user"][-1]["content"]
    return out


def assert_valid_payloads(reqs: Any) -> None:
    """Every chunk passes the service's own line rules, as a whole file."""
    for chunk in reqs.chunks:
        result = validate_stream(io.BytesIO(reqs.chunk_bytes(chunk)))
        assert result.ok, result.error
        assert result.lines == chunk.lines


def test_one_line_per_row_with_position_ids_and_settings() -> None:
    df = pd.DataFrame({"review": ["Great!", "Broke after a day."]}, index=["x", "y"])
    reqs = build_requests(
        df, prompt="review", model=MODEL, system="Tag it.", temperature=0, max_tokens=20
    )
    lines = parsed(reqs)
    assert [x["custom_id"] for x in lines] == ["row-0", "row-1"]
    assert lines[1] == {
        "custom_id": "row-1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "Tag it."},
                {"role": "user", "content": "Broke after a day."},
            ],
            "temperature": 0,
            "max_tokens": 20,
        },
    }
    assert reqs.positions.tolist() == [0, 1]
    assert len(reqs.chunks) == 1
    assert_valid_payloads(reqs)


def test_missing_empty_numeric_emoji_prompts() -> None:
    df = pd.DataFrame(
        {
            "p": [
                "plain",
                None,
                np.nan,
                pd.NA,
                "",
                "   \n\t",
                "🎉 party ünïcödé",
                'quote " backslash \\ newline \n tab \t bell \x07 nul \x00',
                5,
                4.0,
                0.1,
                True,
            ]
        },
        dtype=object,
    )
    reqs = build_requests(df, prompt="p", model=MODEL)
    texts = user_texts(reqs)
    assert texts == {
        0: "plain",
        6: "🎉 party ünïcödé",
        7: 'quote " backslash \\ newline \n tab \t bell \x07 nul \x00',
        8: "5",
        9: "4",
        10: "0.1",
        11: "true",
    }
    assert reqs.skipped_positions.tolist() == [1, 2, 3, 4, 5]
    assert reqs.skipped_codes == ["missing_prompt"] * 3 + ["empty_prompt"] * 2
    assert all(r for r in reqs.skipped_reasons)
    assert "nan" not in " ".join(texts.values()).lower()
    assert_valid_payloads(reqs)


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ([4.0, np.nan, 2.5], "float64", {0: "4", 2: "2.5"}),
        ([1, None, 3], "Int64", {0: "1", 2: "3"}),
        ([10, 20], "int64", {0: "10", 1: "20"}),
        ([True, False], "bool", {0: "true", 1: "false"}),
        (["a", None, "c"], "string[pyarrow]", {0: "a", 2: "c"}),
        (["a", None, "c"], "string[python]", {0: "a", 2: "c"}),
        (["low", "high", None], "category", {0: "low", 1: "high"}),
        ([1e-7, 1e20], "float64", {0: "1e-7", 1: "1e+20"}),
    ],
)
def test_deliberate_conversion_by_dtype(values: list[Any], dtype: str, expected: dict) -> None:
    df = pd.DataFrame({"v": pd.Series(values, dtype=dtype)})
    assert user_texts(build_requests(df, prompt="v", model=MODEL)) == expected


def test_datetime_column_in_template() -> None:
    df = pd.DataFrame({"when": pd.to_datetime(["2024-01-02", None])})
    reqs = build_requests(df, prompt="Date: {when}", model=MODEL)
    assert user_texts(reqs) == {0: "Date: 2024-01-02"}
    assert reqs.skipped_codes == ["missing_prompt"]


def test_template_over_two_columns() -> None:
    df = pd.DataFrame(
        {"review": ["Good", "Bad", None, "Meh"], "stars": [5, 1.0, 3, np.nan]},
        index=pd.MultiIndex.from_tuples([("a", 1), ("a", 1), ("b", 2), ("c", 3)]),
    )
    reqs = build_requests(df, prompt="Review: {review}\nStars: {stars} {{literal}}", model=MODEL)
    assert user_texts(reqs) == {
        0: "Review: Good\nStars: 5 {literal}",
        1: "Review: Bad\nStars: 1 {literal}",
    }
    assert reqs.skipped_positions.tolist() == [2, 3]
    assert reqs.skipped_reasons == [
        "column 'review' is missing (NaN/None)",
        "column 'stars' is missing (NaN/None)",
    ]


def test_template_with_format_spec_and_conversion() -> None:
    df = pd.DataFrame({"price": [3.14159, 2.0], "name": ["x", "y"]})
    reqs = build_requests(df, prompt="{name!r} costs {price:.2f}", model=MODEL)
    assert user_texts(reqs) == {0: "'x' costs 3.14", 1: "'y' costs 2.00"}


def test_template_errors_name_the_problem() -> None:
    df = pd.DataFrame({"review": ["a"]})
    with pytest.raises(PromptError, match="no column 'stars'"):
        build_requests(df, prompt="{review} {stars}", model=MODEL)
    with pytest.raises(PromptError, match="without a column name"):
        build_requests(df, prompt="{} and {review}", model=MODEL)
    with pytest.raises(PromptError, match="not a valid format string"):
        build_requests(df, prompt="{review", model=MODEL)
    with pytest.raises(PromptError, match="no column 'revew'"):
        build_requests(df, prompt="revew", model=MODEL)


def test_a_column_name_wins_over_a_template_reading() -> None:
    df = pd.DataFrame({"{odd}": ["x"], "odd": ["y"]})
    assert user_texts(build_requests(df, prompt="{odd}", model=MODEL)) == {0: "x"}


def test_messages_column_lists_arrays_and_json_text() -> None:
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    df = pd.DataFrame(
        {
            "m": [
                conv,
                None,
                [],
                np.array([{"role": "user", "content": "from parquet"}], dtype=object),
                orjson.dumps([{"role": "user", "content": "from csv"}]).decode(),
            ]
        }
    )
    reqs = build_requests(df, messages="m", model=MODEL, system="Be brief.", temperature=0.5)
    lines = parsed(reqs)
    assert [x["custom_id"] for x in lines] == ["row-0", "row-3", "row-4"]
    assert lines[0]["body"]["messages"] == [{"role": "system", "content": "Be brief."}, *conv]
    assert lines[1]["body"]["messages"][1] == {"role": "user", "content": "from parquet"}
    assert lines[2]["body"]["messages"][1]["content"] == "from csv"
    assert lines[0]["body"]["temperature"] == 0.5
    assert reqs.skipped_codes == ["missing_messages", "empty_messages"]
    assert_valid_payloads(reqs)


@pytest.mark.parametrize(
    ("cell", "match"),
    [
        ("not json", "not a JSON list"),
        (42, "holds a int"),
        ([{"role": "robot", "content": "x"}], "role 'robot'"),
        (["just text"], "not a mapping"),
        ([{"role": "user"}], "no 'content'"),
    ],
)
def test_bad_message_cells_are_named(cell: Any, match: str) -> None:
    df = pd.DataFrame({"m": [[{"role": "user", "content": "ok"}], cell]}, index=["good", "bad"])
    with pytest.raises(PromptError, match=match) as exc:
        build_requests(df, messages="m", model=MODEL)
    assert "'bad' (position 1)" in str(exc.value)


def test_prompt_column_holding_lists_points_to_messages() -> None:
    df = pd.DataFrame({"p": ["ok", ["a", "list"]]})
    with pytest.raises(PromptError, match="messages=<column>"):
        build_requests(df, prompt="p", model=MODEL)


def test_lone_surrogate_is_reported_with_its_row() -> None:
    df = pd.DataFrame({"p": ["fine", "bad \ud800 text"]}, index=[10, 20], dtype=object)
    with pytest.raises(PromptError, match=r"not valid Unicode.*row 20 \(position 1\)"):
        build_requests(df, prompt="p", model=MODEL)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"stream": True}, "stream=True is not supported"),
        ({"response_format": object()}, "'response_format' cannot be sent as JSON"),
    ],
)
def test_bad_chat_params(params: dict[str, Any], match: str) -> None:
    with pytest.raises(PromptError, match=match):
        build_requests(pd.DataFrame({"p": ["a"]}), prompt="p", model=MODEL, **params)


@pytest.mark.parametrize("key", ["model", "messages"])
def test_model_and_messages_are_not_chat_params(key: str) -> None:
    # Both are keywords of build_requests itself, so they can only arrive this way from the
    # accessor's **chat_params.
    with pytest.raises(PromptError, match=f"'{key}' cannot be a chat parameter"):
        _params_json({key: "x"})


def test_numpy_values_in_chat_params_are_sent_as_numbers() -> None:
    df = pd.DataFrame({"p": ["a"]})
    reqs = build_requests(
        df, prompt="p", model=MODEL, temperature=np.float64(0.25), max_tokens=np.int64(9)
    )
    body = parsed(reqs)[0]["body"]
    assert body["temperature"] == 0.25 and body["max_tokens"] == 9


def test_argument_errors() -> None:
    df = pd.DataFrame({"p": ["a"]})
    with pytest.raises(PromptError, match="model= is required"):
        build_requests(df, prompt="p", model="")
    with pytest.raises(PromptError, match="exactly one of"):
        build_requests(df, model=MODEL)
    with pytest.raises(PromptError, match="exactly one of"):
        build_requests(df, prompt="p", messages="p", model=MODEL)
    with pytest.raises(OptionError, match="on_oversize"):
        build_requests(df, prompt="p", model=MODEL, on_oversize="ignore")  # type: ignore[arg-type]
    dup = pd.DataFrame([["a", "b"]], columns=["p", "p"])
    with pytest.raises(PromptError, match="2 columns named 'p'"):
        build_requests(dup, prompt="p", model=MODEL)


def test_oversize_row_is_reported_with_its_label_before_anything_is_sent() -> None:
    big = "x" * (MAX_LINE_BYTES + 10)
    df = pd.DataFrame({"p": ["small", big, "also small"]}, index=["a", "huge one", "c"])
    with pytest.raises(OversizeRowsError) as exc:
        build_requests(df, prompt="p", model=MODEL)
    msg = str(exc.value)
    assert "row 'huge one' (position 1)" in msg and "on_oversize='skip'" in msg
    assert exc.value.rows["label"].tolist() == ["huge one"]
    assert exc.value.rows["bytes"].iloc[0] > MAX_LINE_BYTES


def test_oversize_skip_sends_the_rest() -> None:
    big = "é" * (MAX_LINE_BYTES // 2)  # 2 bytes each in UTF-8: over the limit in bytes
    df = pd.DataFrame({"p": ["small", big, None, "also small"]})
    reqs = build_requests(df, prompt="p", model=MODEL, on_oversize="skip")
    assert reqs.positions.tolist() == [0, 3]
    assert reqs.skipped_positions.tolist() == [1, 2]
    assert reqs.skipped_codes == ["line_too_large", "missing_prompt"]
    assert "over the 1,048,576-byte limit" in reqs.skipped_reasons[0]
    assert_valid_payloads(reqs)


def test_a_line_exactly_at_the_limit_is_sent() -> None:
    base = build_requests(pd.DataFrame({"p": ["x"]}), prompt="p", model=MODEL)
    pad = MAX_LINE_BYTES - int(base.line_sizes[0]) + 1
    reqs = build_requests(pd.DataFrame({"p": ["x" * pad]}), prompt="p", model=MODEL)
    assert int(reqs.line_sizes[0]) == MAX_LINE_BYTES
    assert len(reqs) == 1


def test_chunks_split_by_line_count_evenly_and_in_order() -> None:
    df = pd.DataFrame({"p": [f"q{i}" for i in range(10)]})
    reqs = build_requests(df, prompt="p", model=MODEL, max_lines=4)
    assert [c.lines for c in reqs.chunks] == [4, 3, 3]  # 3 batches, near-equal
    ids = [
        orjson.loads(x)["custom_id"]
        for c in reqs.chunks
        for x in reqs.chunk_bytes(c).split(b"\n")
        if x
    ]
    assert ids == [f"row-{i}" for i in range(10)]
    assert reqs.chunk_positions(1).tolist() == [4, 5, 6]
    assert sum(c.bytes for c in reqs.chunks) == reqs.total_bytes
    assert_valid_payloads(reqs)


def test_chunks_respect_the_byte_cap() -> None:
    df = pd.DataFrame({"p": ["y" * 400_000] * 7})
    cap = 1_300_000
    reqs = build_requests(df, prompt="p", model=MODEL, max_bytes=cap, dedup=False)
    assert all(c.bytes <= cap for c in reqs.chunks)
    assert [c.lines for c in reqs.chunks] == [3, 2, 2]  # 3 needed by bytes, then balanced
    assert b"".join(reqs.chunk_bytes(c) for c in reqs.chunks).count(b"\n") == 7


def test_fingerprint_is_stable_and_sensitive() -> None:
    df = pd.DataFrame({"p": ["a", None, "c"]})
    fp = build_requests(df, prompt="p", model=MODEL, temperature=0).fingerprint
    assert fp == build_requests(df.copy(), prompt="p", model=MODEL, temperature=0).fingerprint
    assert fp != build_requests(df, prompt="p", model=MODEL, temperature=1).fingerprint
    assert fp != build_requests(df, prompt="p", model="other", temperature=0).fingerprint
    other = pd.DataFrame({"p": ["a", None, "C"]})
    assert fp != build_requests(other, prompt="p", model=MODEL, temperature=0).fingerprint
    assert len(fp) == 64


def test_empty_frame_and_all_skipped() -> None:
    empty = build_requests(pd.DataFrame({"p": pd.Series([], dtype=str)}), prompt="p", model=MODEL)
    assert len(empty) == 0 and empty.chunks == () and empty.total_bytes == 0
    none = build_requests(pd.DataFrame({"p": [None, ""]}), prompt="p", model=MODEL)
    assert len(none) == 0 and none.skipped_positions.tolist() == [0, 1]


def test_input_frame_is_not_modified() -> None:
    df = pd.DataFrame({"p": ["a", None], "n": [1.0, np.nan]})
    before = df.copy()
    build_requests(df, prompt="{p} {n}", model=MODEL)
    pd.testing.assert_frame_equal(df, before)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=20))
def test_json_escape_round_trips_any_text(texts: list[str]) -> None:
    escaped = json_escape(pa.array(texts, pa.large_string())).to_pylist()
    assert [orjson.loads(f'"{e}"') for e in escaped] == texts


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.one_of(st.none(), st.text(), st.integers(-(10**15), 10**15)), min_size=1, max_size=15
    )
)
def test_every_built_line_carries_its_rows_text(values: list[Any]) -> None:
    df = pd.DataFrame({"p": pd.Series(values, dtype=object)})
    reqs = build_requests(df, prompt="p", model=MODEL)
    texts = user_texts(reqs)
    # a row whose request repeats an earlier row's is carried by that row's line
    texts.update(
        {int(p): texts[int(s)] for p, s in zip(reqs.duplicate_positions, reqs.duplicate_of, strict=True)}
    )
    for pos, v in enumerate(values):
        if v is None or (isinstance(v, str) and not v.strip()):
            assert pos in reqs.skipped_positions.tolist()
        else:
            assert texts[pos] == str(v)


def test_chunk_view_is_the_chunk_without_a_copy() -> None:
    df = pd.DataFrame({"p": [f"q{i}" for i in range(7)]})
    reqs = build_requests(df, prompt="p", model=MODEL, max_lines=3)
    for c in reqs.chunks:
        view = reqs.chunk_view(c)
        assert isinstance(view, memoryview)
        assert view.tobytes() == reqs.chunk_bytes(c)
        assert reqs.chunk_sha256(c) == hashlib.sha256(reqs.chunk_bytes(c)).hexdigest()


def test_fingerprints_and_checksums_are_the_ones_earlier_versions_journaled() -> None:
    # a job journaled by an earlier version is found again (fingerprint) and its unsent
    # chunks pass the check against their recorded checksum: the values are pinned, as
    # 0.1 computed them over the whole buffer of lines
    df = pd.DataFrame({
        "q": ["Great!", None, "  ", 'Broke "twice"\n', "Great!", "héllo ✓", "x" * 300],
        "n": [1, 2, 3, 4, 5, 6, 7],
    })
    reqs = build_requests(df, prompt="Review: {q} ({n})", model=MODEL, system="be brief",
                          temperature=0, max_lines=3)
    assert reqs.fingerprint == "1dd25638ec63af8c70e26ecc40bdf9c1d2222dc4895fd86855ccbceff40c1154"
    assert [reqs.chunk_sha256(c) for c in reqs.chunks] == [
        "12671c2216d47cb9d7c6884eb5dfb29737ba649d1d15dad18303c2758478e1ec",
        "a75c95f4104d8b78420423baf39e17b6990cd4e0accbb50aa7646608981c08f0",
    ]
    assert [reqs.chunk_sha256(c) for c in reqs.chunks] == [
        hashlib.sha256(reqs.chunk_bytes(c)).hexdigest() for c in reqs.chunks
    ]
    one = build_requests(df, prompt="q", model=MODEL)
    assert one.fingerprint == "ebef56d43b8a55f80c68bebe9fcc28f6a33468dc51e7f4746df48e06977e270a"
