"""Everything a request asked for comes back: every choice with n > 1, and the token
log-probabilities, on the columnar path and on the line-by-line path alike."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zgpu_pandas.core.results import ResultsTable, answer_extras, result_columns

_token = st.fixed_dictionaries({
    "token": st.text(max_size=5),
    "logprob": st.floats(max_value=0, allow_nan=False, allow_infinity=False),
    "top_logprobs": st.lists(
        st.fixed_dictionaries({
            "token": st.text(max_size=5),
            "logprob": st.floats(max_value=0, allow_nan=False, allow_infinity=False),
        }),
        max_size=3,
    ),
})


def _line(i, texts, tokens, *, parts=False):
    choices = []
    for k, text in enumerate(texts):
        content = [{"type": "text", "text": text}] if parts else text
        choice = {"index": k, "message": {"role": "assistant", "content": content},
                  "finish_reason": "stop", "logprobs": None}
        if k == 0 and tokens is not None:
            choice["logprobs"] = {"content": [dict(t, bytes=[1]) for t in tokens]}
        choices.append(choice)
    body = {"choices": choices, "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                          "total_tokens": 2}}
    return orjson.dumps({"custom_id": f"row-{i}", "response": {"status_code": 200, "body": body}})


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.lists(st.text(max_size=8), min_size=1, max_size=4),
                  st.one_of(st.none(), st.lists(_token, max_size=4))),
        min_size=1,
        max_size=6,
    ),
    parts=st.booleans(),
)
def test_every_choice_and_token_comes_back(rows, parts):
    table = ResultsTable(len(rows) + 1)
    lines = [_line(i, texts, tokens, parts=parts) for i, (texts, tokens) in enumerate(rows)]
    lines.append(orjson.dumps({"custom_id": f"row-{len(rows)}",
                               "error": {"code": "internal_error", "message": "x"}}))
    table.add_lines(lines)
    out = table.answers("r", extras=("choices", "logprobs"))
    assert out.column_names == result_columns("r", ("choices", "logprobs"))
    choices = out.column("r_choices").to_pylist()
    logprobs = out.column("r_logprobs").to_pylist()
    for i, (texts, tokens) in enumerate(rows):
        assert choices[i] == texts
        assert out.column("r").to_pylist()[i] == texts[0]
        assert logprobs[i] == tokens
    assert choices[-1] is None and logprobs[-1] is None


def test_the_extra_columns_come_only_when_asked():
    assert answer_extras({}) == ()
    assert answer_extras({"n": 1, "logprobs": False}) == ()
    assert answer_extras({"n": 2}) == ("choices",)
    assert answer_extras({"top_logprobs": 3}) == ("logprobs",)
    table = ResultsTable(1)
    table.add_lines([_line(0, ["a", "b"], None)])
    assert "response_choices" not in table.answers().column_names
    table.extras = ("choices",)
    assert table.answers().column("response_choices").to_pylist() == [["a", "b"]]


@pytest.mark.parametrize("kit_name", ["pandas", "polars"])
def test_frames_get_list_columns(kit_name):
    from tests.support import FrameKit
    from zgpu_pandas.core.outcome import merge_outcome
    from zgpu_pandas.core.rows import as_output

    kit = FrameKit(kit_name)
    table = ResultsTable(2)
    table.extras = ("choices", "logprobs")
    table.add_lines([_line(0, ["a", "b"], [{"token": "a", "logprob": -0.5, "top_logprobs": []}]),
                     _line(1, ["c", "d"], None)])
    df = kit.frame({"q": ["x", "y"]})
    out = merge_outcome(table.answers(), as_output(df), parse=None, output="response",
                        overwrite=False, job_id="t")
    assert kit.col(out, "response_choices") == [["a", "b"], ["c", "d"]]
    lp = kit.col(out, "response_logprobs")
    assert lp[0] == [{"token": "a", "logprob": -0.5, "top_logprobs": []}] and lp[1] is None
