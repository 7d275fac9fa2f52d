"""Checks before anything is uploaded (model id, chat keywords, context, invalid text),
template fields that are empty, and the messages a user reads on the rows."""

from __future__ import annotations

import warnings
from pathlib import Path

import orjson
import pandas as pd
import pytest

import zgpu_pandas
from tests.support import FrameKit
from zgpu_pandas.errors import OptionError, PromptError
from zgpu_pandas.server import LocalServer

MODEL = "LFM2.5-1.2B-Instruct"


@pytest.fixture
def where(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.setenv("ZGPU_API_KEY", "k")
    return {"base_url": server.url, "project_id": "p1", "progress": False}


def posts(srv: LocalServer) -> list[tuple[str, str, int]]:
    return [r for r in srv.request_log if r[0] == "POST"]


def test_a_model_id_not_in_the_catalog_is_refused_with_the_closest_ones(
    server: LocalServer, where: dict[str, object], kit: FrameKit
) -> None:
    df = kit.frame({"q": ["a", "b"]})
    with pytest.raises(OptionError, match=r"did you mean 'LFM2\.5-1\.2B-Instruct'"):
        df.zgpu.batch_chat("q", model="LFM2.5-1.2B-instruct", **where)
    with pytest.raises(OptionError, match=r"did you mean 'llama-3\.1-8b-instruct-fast'"):
        df.zgpu.submit_chat("q", model="llama-3.1-8b-instruct", **where)
    with pytest.raises(OptionError, match="check_model=False"):
        df.zgpu.estimate_chat("q", model="gpt-4o")
    assert posts(server) == []
    ids = zgpu_pandas.models()["id"].tolist()
    assert MODEL in ids and "LFM2.5-1.2B-instruct" not in ids
    assert set(zgpu_pandas.models(kind="chat")["kind"]) == {"chat"}
    assert zgpu_pandas.models().set_index("id").loc[MODEL, "context_tokens"] == 32_768


def test_unknown_chat_keyword_is_refused_and_extra_body_is_sent_as_given(
    server: LocalServer, where: dict[str, object], kit: FrameKit
) -> None:
    df = kit.frame({"q": ["a"]})
    with pytest.raises(PromptError, match=r"'temprature' \(did you mean 'temperature'\?\)"):
        df.zgpu.batch_chat("q", model=MODEL, temprature=0, **where)
    with pytest.raises(PromptError, match="extra_body"):
        df.zgpu.batch_chat("q", model=MODEL, guided_choice=["a"], **where)
    with pytest.raises(PromptError, match="once"):
        df.zgpu.batch_chat("q", model=MODEL, temperature=0, extra_body={"temperature": 1}, **where)
    assert posts(server) == []
    job = df.zgpu.submit_chat(
        "q", model=MODEL, temperature=0, extra_body={"guided_choice": ["x", "y"]}, **where
    )
    job.result()
    assert job.requests is not None
    (line,) = [orjson.loads(x) for x in job.requests.iter_lines()]
    assert line["body"]["guided_choice"] == ["x", "y"] and line["body"]["temperature"] == 0


def test_row_errors_read_without_the_old_apis_prefix(
    server: LocalServer, where: dict[str, object], kit: FrameKit
) -> None:
    server.faults.fail_lines(code="internal_error", rate=1.0, message="upstream hiccup")
    out = kit.frame({"q": ["a", "b"]}).zgpu.batch_chat("q", model=MODEL, **where)
    assert kit.col(out, "response_error_code") == ["internal_error"] * 2  # unchanged
    assert kit.col(out, "response_error") == ["upstream hiccup"] * 2


@pytest.mark.parametrize(
    ("missing", "expected", "prompts"),
    [
        ("skip", ["ok", "skipped", "skipped", "skipped"], ["S: Refund B: please"]),
        (
            "empty",
            ["ok", "ok", "ok", "skipped"],
            ["S: Refund B: please", "S: Login B: ", "S:  B: only body"],
        ),
        (
            {"body": "(none)"},
            ["ok", "ok", "skipped", "skipped"],
            ["S: Refund B: please", "S: Login B: (none)"],
        ),
    ],
)
def test_template_with_an_empty_field_skips_or_fills_as_asked(
    server: LocalServer,
    where: dict[str, object],
    kit: FrameKit,
    missing: object,
    expected: list[str],
    prompts: list[str],
) -> None:
    df = kit.frame(
        {"subject": ["Refund", "Login", None, None], "body": ["please", "  ", "only body", None]}
    )
    job = df.zgpu.submit_chat("S: {subject} B: {body}", model=MODEL, missing=missing, **where)
    out = job.result()
    assert kit.col(out, "response_status") == expected
    assert job.requests is not None
    sent = [orjson.loads(x)["body"]["messages"][-1]["content"] for x in job.requests.iter_lines()]
    assert sent == prompts
    if missing == "empty":
        assert kit.col(out, "response_error")[3] == "every field of the template is empty"


def test_missing_option_mistakes_are_named(kit: FrameKit) -> None:
    df = kit.frame({"a": ["x"], "b": ["y"]})
    with pytest.raises(OptionError, match="'c', which the template does not use"):
        df.zgpu.estimate_chat("{a} {b}", model=MODEL, missing={"c": ""})
    with pytest.raises(OptionError, match="must be text"):
        df.zgpu.estimate_chat("{a} {b}", model=MODEL, missing={"a": 1})
    with pytest.raises(OptionError, match="'skip', 'empty'"):
        df.zgpu.estimate_chat("{a} {b}", model=MODEL, missing="fill")


def test_lone_surrogates_name_every_bad_row_and_can_be_skipped_or_replaced(
    server: LocalServer, where: dict[str, object]
) -> None:
    bad = "half an emoji \ud83d"
    # object dtype: Arrow-backed strings (pandas 3's default) cannot hold a lone surrogate
    df = pd.DataFrame({"q": ["fine", bad, "ok", bad + "!"]}, index=[10, 11, 12, 13], dtype=object)
    with pytest.raises(PromptError) as info:
        df.zgpu.batch_chat("q", model=MODEL, **where)
    text = str(info.value)
    assert "2 row(s)" in text and "row 11" in text and "row 13" in text
    assert "on_invalid='replace'" in text and "on_invalid='skip'" in text
    assert posts(server) == []

    out = df.zgpu.batch_chat("q", model=MODEL, on_invalid="skip", **where)
    assert out["response_status"].tolist() == ["ok", "skipped", "ok", "skipped"]
    assert set(out["response_error_code"].dropna()) == {"invalid_text"}

    job = df.zgpu.submit_chat("q", model=MODEL, on_invalid="replace", fresh=True, **where)
    assert job.result()["response_status"].tolist() == ["ok"] * 4
    assert job.requests is not None
    sent = [orjson.loads(x)["body"]["messages"][-1]["content"] for x in job.requests.iter_lines()]
    assert "half an emoji \ufffd" in sent

    # a messages column: the same check, the same hint
    msgs = pd.Series([[{"role": "user", "content": "hi"}], [{"role": "user", "content": bad}]])
    mdf = pd.DataFrame({"m": msgs})
    with pytest.raises(PromptError, match=r"row 1 .*on_invalid='replace'"):
        mdf.zgpu.batch_chat(messages="m", model=MODEL, **where)
    out = mdf.zgpu.batch_chat(messages="m", model=MODEL, on_invalid="skip", **where)
    assert out["response_status"].tolist() == ["ok", "skipped"]
    with pytest.raises(OptionError, match="on_invalid"):
        df.zgpu.estimate_chat("q", model=MODEL, on_invalid="drop")  # type: ignore[arg-type]


def test_rows_over_the_models_context_are_flagged_before_sending(
    server: LocalServer, where: dict[str, object]
) -> None:
    long = "word " * 40_000  # ~50,000 tokens at ~4 characters per token, over 32,768
    df = pd.DataFrame({"q": ["short", long, "short too"]}, index=["a", "b", "c"])
    est = df.zgpu.estimate_chat("q", model=MODEL)
    assert est.rows_over_context == ("row 'b' (position 1)",) or est.rows_over_context[0].startswith(
        "row 'b'"
    )
    assert est.context_tokens == 32_768
    assert "context_length_exceeded" in str(est)
    # the same row fits a model with a larger context
    assert df.zgpu.estimate_chat("q", model="glm-5.2").rows_over_context == ()
    # max_tokens counts against the context too
    assert len(df.zgpu.estimate_chat("q", model=MODEL, max_tokens=32_765).rows_over_context) == 3
    with pytest.warns(UserWarning, match=r"1 row\(s\).*row 'b'"):
        df.zgpu.batch_chat("q", model=MODEL, **where)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df.loc[["a", "c"]].zgpu.estimate_chat("q", model=MODEL)


def test_for_csv_writes_lists_and_dicts_as_json(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {"topics": [["price", "size"], [], None], "meta": [{"a": 1}, None, {"b": [2]}], "n": [1, 2, 3]}
    )
    path = tmp_path / "x.csv"
    zgpu_pandas.for_csv(df).to_csv(path, index=False)
    back = pd.read_csv(path)
    assert back["topics"].tolist()[:2] == ['["price","size"]', "[]"]
    assert orjson.loads(back["meta"][2]) == {"b": [2]}
    assert df["topics"][0] == ["price", "size"]  # the caller's frame is not changed


def test_missing_on_a_single_prompt_column(server: LocalServer, where: dict[str, object]) -> None:
    df = pd.DataFrame({"q": ["hello", None, " "]})
    out = df.zgpu.batch_chat("q", model=MODEL, missing={"q": "(empty)"}, **where)
    assert out["response_status"].tolist() == ["ok", "ok", "ok"]
    # "empty" cannot make a prompt out of nothing: still skipped
    out = df.zgpu.batch_chat("q", model=MODEL, missing="empty", **where)
    assert out["response_status"].tolist() == ["ok", "skipped", "skipped"]
    msgs = pd.DataFrame({"m": [[{"role": "user", "content": "hi"}]]})
    with pytest.raises(OptionError, match="not messages="):
        msgs.zgpu.estimate_chat(messages="m", model=MODEL, missing="empty")
