"""Bad input to ``df.zgpu.batch_chat``: every case the reliability issue lists, each with a
defined outcome and a message that names the row or column and says how to fix it.

Run against a real local server over loopback. Where the outcome is an error, the server's
request log proves that nothing was sent (the error comes before any upload); where the
outcome is a result, every row's answer is checked against the prompt that row should have
produced, so an answer on the wrong row fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import zgpu_pandas  # noqa: F401  (registers df.zgpu)
from zgpu_pandas._client import Client
from zgpu_pandas.errors import ColumnClashError, OversizeRowsError, PromptError
from zgpu_pandas.server import LocalServer
from zgpu_pandas.server.engines import builtin_reply

MODEL = "LFM2.5-1.2B-Instruct"
KEY = "zk-badinput-8e2f4a6c0b"


@pytest.fixture
def client(server: LocalServer) -> Iterator[Client]:
    with Client(api_key=KEY, project_id="p", base_url=server.url, poll_interval=0.02) as c:
        yield c


def chat(df: pd.DataFrame, client: Client, *args: Any, **kwargs: Any) -> pd.DataFrame:
    kwargs.setdefault("model", MODEL)
    return df.zgpu.batch_chat(*args, client=client, progress=False, **kwargs)


def api_calls(server: LocalServer) -> list[tuple[str, str, int]]:
    return [r for r in server.request_log if r[1].startswith("/v1/")]


def answer(text: str, model: str = MODEL) -> str:
    """What the local engine answers to one user message."""
    return str(builtin_reply({"model": model, "messages": [{"role": "user", "content": text}]}))


def assert_answers(out: pd.DataFrame, texts: dict[int, str]) -> None:
    """Rows at these positions are ok with the answer to exactly that text."""
    for pos, text in texts.items():
        assert out["response_status"].iloc[pos] == "ok", (pos, out["response_error"].iloc[pos])
        assert out["response"].iloc[pos] == answer(text), pos


def assert_refused_before_sending(server: LocalServer, exc: BaseException, *needles: str) -> None:
    message = str(exc)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert api_calls(server) == [], "an error found in the input must stop the job before upload"


# ------------------------------------------------------------------------------ cases
def test_empty_frame_returns_the_empty_frame_and_sends_nothing(
    server: LocalServer, client: Client
) -> None:
    df = pd.DataFrame({"review": pd.Series([], dtype=object)})
    out = chat(df, client, "review")
    assert len(out) == 0 and list(out.columns[:1]) == ["review"]
    assert {"response", "response_status", "response_error"} <= set(out.columns)
    assert api_calls(server) == []


def test_missing_column_names_it_and_lists_the_columns(server: LocalServer, client: Client) -> None:
    df = pd.DataFrame({"review": ["a"], "stars": [5]})
    with pytest.raises(PromptError) as info:
        chat(df, client, "reviw")
    assert_refused_before_sending(server, info.value, "'reviw'", "'review'", "'stars'")


def test_missing_nan_none_and_empty_prompts_are_skipped_not_sent(
    server: LocalServer, client: Client
) -> None:
    texts = ["first", np.nan, None, "", "   ", pd.NA, "last"]
    df = pd.DataFrame({"review": pd.Series(texts, dtype=object)})
    out = chat(df, client, "review")
    assert_answers(out, {0: "first", 6: "last"})
    assert out["response_status"].tolist()[1:6] == ["skipped"] * 5
    assert out["response_error_code"].tolist()[1:6] == [
        "missing_prompt", "missing_prompt", "empty_prompt", "empty_prompt", "missing_prompt",
    ]  # fmt: skip
    assert out["response_error"].iloc[1] == "the prompt is missing (NaN/None)"
    batches = client.batches.list()
    assert [b.request_counts.total for b in batches] == [2]  # only the two real prompts


def test_all_prompts_missing_sends_nothing(server: LocalServer, client: Client) -> None:
    df = pd.DataFrame({"review": [None, "", np.nan]})
    out = chat(df, client, "review")
    assert out["response_status"].tolist() == ["skipped"] * 3
    assert api_calls(server) == []


def test_non_string_values_are_sent_as_text_deliberately(
    server: LocalServer, client: Client
) -> None:
    values = [1, 2.5, 4.0, True, np.int64(7), pd.Timestamp("2024-01-02 03:04"), b"caf\xc3\xa9"]
    df = pd.DataFrame({"v": pd.Series(values, dtype=object)})
    out = chat(df, client, "v")
    expected = ["1", "2.5", "4", "true", "7", "2024-01-02 03:04:00", "café"]
    assert_answers(out, dict(enumerate(expected)))


@pytest.mark.parametrize(
    ("cell", "needle"),
    [({"a": 1}, "holds a dict, not text"), ([1, 2], "messages=")],
)
def test_containers_in_a_prompt_column_are_refused_naming_the_row(
    server: LocalServer, client: Client, cell: Any, needle: str
) -> None:
    df = pd.DataFrame({"v": pd.Series(["ok", cell], dtype=object, index=["a", "b"])})
    with pytest.raises(PromptError) as info:
        chat(df, client, "v")
    assert_refused_before_sending(server, info.value, "'v'", "row 'b' (position 1)", needle)


def test_a_prompt_over_1_mb_is_refused_before_sending_or_skipped_on_request(
    server: LocalServer, client: Client
) -> None:
    df = pd.DataFrame({"review": ["short", "x" * (1 << 20), "also short"]}, index=[10, 20, 30])
    with pytest.raises(OversizeRowsError) as info:
        chat(df, client, "review")
    assert_refused_before_sending(
        server, info.value, "row 20 (position 1)", "1 MB", "on_oversize='skip'"
    )
    assert info.value.rows["position"].tolist() == [1]
    out = chat(df, client, "review", on_oversize="skip")
    assert_answers(out, {0: "short", 2: "also short"})
    assert out["response_status"].iloc[1] == "skipped"
    assert out["response_error_code"].iloc[1] == "line_too_large"


def test_bytes_that_are_not_utf8_are_refused_naming_the_row(
    server: LocalServer, client: Client
) -> None:
    df = pd.DataFrame({"review": pd.Series(["fine", b"\xff\xfe bad"], dtype=object)})
    with pytest.raises(PromptError) as info:
        chat(df, client, "review")
    assert_refused_before_sending(server, info.value, "'review'", "position 1", "not UTF-8")


@pytest.mark.parametrize("text", ["x\ud800y", "\udfff", "ok \udc80 end"])
def test_lone_surrogates_are_refused_naming_the_row_and_the_fix(
    server: LocalServer, client: Client, text: str
) -> None:
    df = pd.DataFrame({"review": pd.Series(["fine", text], dtype=object)})
    with pytest.raises(PromptError) as info:
        chat(df, client, "review")
    assert_refused_before_sending(
        server, info.value, "'review'", "position 1", "not valid Unicode", "encode('utf-8'"
    )


def test_a_lone_surrogate_in_a_template_column_is_refused_too(
    server: LocalServer, client: Client
) -> None:
    df = pd.DataFrame({"a": ["x", "y"], "b": pd.Series(["fine", "\ud83d"], dtype=object)})
    with pytest.raises(PromptError) as info:
        chat(df, client, "{a}: {b}")
    assert_refused_before_sending(server, info.value, "position 1")


def test_duplicate_index_labels_keep_the_index_and_each_row_its_own_answer(
    server: LocalServer, client: Client
) -> None:
    df = pd.DataFrame({"review": ["one", "two", "three", "four"]}, index=[7, 7, 7, 3])
    out = chat(df, client, "review")
    assert out.index.tolist() == [7, 7, 7, 3]
    assert_answers(out, {0: "one", 1: "two", 2: "three", 3: "four"})


def test_multiindex_is_kept_and_each_row_gets_its_own_answer(
    server: LocalServer, client: Client
) -> None:
    index = pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1)], names=["shop", "n"])
    df = pd.DataFrame({"review": ["one", "two", "three"]}, index=index)
    out = chat(df, client, "review")
    assert out.index.equals(index)
    assert_answers(out, {0: "one", 1: "two", 2: "three"})


def test_categorical_column_values_are_sent_as_their_text(
    server: LocalServer, client: Client
) -> None:
    col = pd.Categorical(["good", "bad", None, "meh", "good"], categories=["meh", "bad", "good"])
    df = pd.DataFrame({"review": col, "stars": pd.Categorical([5, 1, 3, 2, 5])})
    out = chat(df, client, "{review} ({stars} stars)")
    expected = {0: "good (5 stars)", 1: "bad (1 stars)", 3: "meh (2 stars)", 4: "good (5 stars)"}
    assert_answers(out, expected)  # a repeated category is answered on every row
    # a missing category is a missing value: the template cannot be filled
    assert out["response_status"].iloc[2] == "skipped"
    plain = chat(df, client, "review", output="plain")
    assert plain["plain"].iloc[0] == answer("good") and plain["plain_status"].iloc[2] == "skipped"


def test_50001_rows_become_two_batches_merged_back_in_order(
    server: LocalServer, client: Client
) -> None:
    n = 50_001
    df = pd.DataFrame({"review": [f"review {i}" for i in range(n)]}, index=np.arange(n)[::-1])
    out = chat(df, client, "review")
    batches = sorted(client.batches.list(), key=lambda b: b.created_at or 0)
    assert len(batches) == 2
    assert sorted(b.request_counts.total for b in batches) == [25_000, 25_001]
    assert all(b.status == "completed" for b in batches)
    assert (out["response_status"] == "ok").all()
    assert out.index.equals(df.index)
    for pos in (0, 1, 25_000, 25_001, n - 1):
        assert out["response"].iloc[pos] == answer(f"review {pos}")
    expected = "[" + MODEL + "] " + df["review"]
    assert (out["response"] == expected).all()  # the engine's answer is the tagged text


def test_a_template_naming_a_missing_column_is_refused(server: LocalServer, client: Client) -> None:
    df = pd.DataFrame({"review": ["a"]})
    with pytest.raises(PromptError) as info:
        chat(df, client, "Review: {review}, stars: {stars}")
    assert_refused_before_sending(server, info.value, "{stars}", "'stars'", "'review'")


def test_a_clashing_output_column_is_refused_unless_overwrite_or_another_prefix(
    server: LocalServer, client: Client
) -> None:
    df = pd.DataFrame({"review": ["a", "b"], "response": ["mine", "mine too"]})
    with pytest.raises(ColumnClashError) as info:
        chat(df, client, "review")
    assert_refused_before_sending(server, info.value, "'response'", "overwrite=True", "output=")
    replaced = chat(df, client, "review", overwrite=True)
    assert_answers(replaced, {0: "a", 1: "b"})
    kept = chat(df, client, "review", output="tag")
    assert kept["response"].tolist() == ["mine", "mine too"] and kept["tag"].iloc[0] == answer("a")


def test_an_unknown_model_fails_each_row_with_not_found_error(
    server: LocalServer, client: Client
) -> None:
    df = pd.DataFrame({"review": ["a", "b"]})
    # check_model=False: sent as given (by default it is refused before upload)
    job = df.zgpu.submit_chat(
        "review", model="no-such-model", client=client, progress=False, check_model=False
    )
    out = job.result()
    assert out["response_status"].tolist() == ["error", "error"]
    assert out["response_error_code"].tolist() == ["not_found_error"] * 2
    assert "no-such-model" in out["response_error"].iloc[0]
    assert job.status().outcome == "failure"


def test_stream_true_is_refused_before_sending(server: LocalServer, client: Client) -> None:
    df = pd.DataFrame({"review": ["a"]})
    with pytest.raises(PromptError) as info:
        chat(df, client, "review", stream=True)
    assert_refused_before_sending(server, info.value, "stream=True", "batch mode")


def test_stream_false_is_harmless(server: LocalServer, client: Client) -> None:
    out = chat(pd.DataFrame({"review": ["a"]}), client, "review", stream=False)
    assert_answers(out, {0: "a"})
