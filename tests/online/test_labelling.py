"""classify and extract, in both modes: the label column holds nothing but the labels, one
column per extracted field, the prompt visible before anything is sent."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import MODEL
from zgpu_pandas.core.labelling import classify_request
from zgpu_pandas.core.results import result_columns
from zgpu_pandas.core.structured import normalize_response_format, parse_answers
from zgpu_pandas.errors import OptionError

LABELS = ["positive", "negative", "neutral"]


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    monkeypatch.setenv("ZGPU_API_KEY", "test-key-123456")
    monkeypatch.setenv("ZGPU_PROJECT_ID", "test-project")


@pytest.mark.parametrize("mode", ["batch", "online"])
def test_classify_gives_only_the_labels(kit, server, mode):
    df = kit.frame({"review": ["I love it, great", "terrible and broken", None, "fine"]})
    out = df.zgpu.classify("Review: {review}", labels=LABELS, model=MODEL, mode=mode,
                           base_url=server.url, progress=False)
    labels = kit.col(out, "label")
    assert kit.col(out, "response_status") == ["ok", "ok", "skipped", "ok"]
    assert labels[2] is None
    assert {x for x in labels if x is not None} <= set(LABELS)
    assert labels[:2] == ["positive", "negative"]  # the local engine's sentiment lexicon


@pytest.mark.parametrize("mode", ["batch", "online"])
def test_classify_multi_gives_lists_of_labels(kit, server, mode):
    df = kit.frame({"t": ["shipping was slow", "great price"]})
    out = df.zgpu.classify("t", labels=["shipping", "price", "quality"], multi=True,
                           model=MODEL, mode=mode, base_url=server.url, progress=False)
    for value in kit.col(out, "labels"):
        assert isinstance(value, list)
        assert set(value) <= {"shipping", "price", "quality"}
        assert len(value) == len(set(value))


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.text(min_size=1, max_size=12).filter(str.strip), min_size=1, max_size=6,
                    unique=True),
    replies=st.lists(
        st.one_of(
            st.none(),
            st.text(max_size=20),  # chatter, no JSON at all
            st.text(max_size=12).map(lambda s: orjson.dumps({"label": s}).decode()),
            st.integers(-(2**63), 2**63 - 1).map(lambda n: orjson.dumps({"label": n}).decode()),
            st.just('{"labels": "x"}'),
        ),
        min_size=1,
        max_size=12,
    ),
    data=st.data(),
)
def test_no_reply_puts_a_value_outside_the_labels_in_the_column(labels, replies, data):
    # mix in replies that pick a real label, so both sides are exercised
    picks = [orjson.dumps({"label": data.draw(st.sampled_from(labels))}).decode()
             for _ in range(3)]
    texts = replies + picks
    _, schema = classify_request(labels, multi=False, column="label")
    _, spec = normalize_response_format(schema)
    n = len(texts)
    cols = dict.fromkeys(result_columns("response"))
    answers = pa.table({
        name: (
            pa.array(texts, pa.large_string()) if name == "response"
            else pa.array(["ok" if t is not None else "error" for t in texts], pa.large_string())
            if name == "response_status"
            else pa.array([None] * n, pa.large_string())
        )
        for name in cols
    })
    parsed = parse_answers(answers, spec)
    values, _kind = parsed.fields["label"]
    status = parsed.answers.column("response_status").to_pylist()
    for text, value, st_ in zip(texts, values, status, strict=True):
        assert value is None or value in labels
        if value is None and text is not None:
            assert st_ == "parse_error"
    assert values[-3:] == [orjson.loads(p)["label"] for p in picks]


@pytest.mark.parametrize("mode", ["batch", "online"])
def test_extract_makes_a_typed_column_per_field(kit, server, mode):
    schema = {
        "type": "object",
        "properties": {
            "product": {"type": "string", "description": "what was bought"},
            "stars": {"type": "integer"},
            "urgent": {"type": "boolean"},
        },
        "required": ["product", "stars", "urgent"],
    }
    df = kit.frame({"ticket": ["my kettle broke", "the lamp is fine"]})
    out = df.zgpu.extract("ticket", schema=schema, model=MODEL, mode=mode,
                          base_url=server.url, progress=False)
    assert kit.col(out, "response_status") == ["ok", "ok"]
    assert all(isinstance(v, str) for v in kit.col(out, "product"))
    assert all(isinstance(v, int) and not isinstance(v, bool) for v in kit.col(out, "stars"))
    assert all(isinstance(v, bool) for v in kit.col(out, "urgent"))


def test_extract_with_a_pydantic_model(server):
    pydantic = pytest.importorskip("pydantic")
    import pandas as pd

    class Ticket(pydantic.BaseModel):
        product: str
        stars: int

    out = pd.DataFrame({"t": ["a broken kettle"]}).zgpu.extract(
        "t", schema=Ticket, model=MODEL, mode="online", base_url=server.url, progress=False)
    assert list(out.columns[-2:]) == ["product", "stars"]


def test_the_prompt_is_visible_and_nothing_is_sent(kit, server):
    df = kit.frame({"review": ["so good"]})
    text = df.zgpu.classify("Review: {review}", labels=LABELS, model=MODEL,
                            instructions="Sarcasm counts as negative.", prompt_preview=True,
                            base_url=server.url, max_tokens=5)
    body = orjson.loads(text)
    system, user = body["messages"]
    assert "positive, negative, neutral" in system["content"]
    assert system["content"].endswith("Sarcasm counts as negative.")
    assert user["content"] == "Review: so good"
    assert body["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"] == LABELS
    assert body["temperature"] == 0 and body["max_tokens"] == 5
    ext = df.zgpu.extract("review", model=MODEL, prompt_preview=True, schema={
        "type": "object", "properties": {"city": {"type": "string", "description": "a town"}}})
    assert "city (a town)" in orjson.loads(ext)["messages"][0]["content"]
    assert server.request_log == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": []}, "non-empty list"),
        ({"labels": "positive"}, "non-empty list"),
        ({"labels": ["a", "a"]}, "repeats 'a'"),
        ({"labels": ["a", ""]}, "non-empty strings"),
        ({"labels": ["a"], "mode": "fast"}, "mode="),
        ({"labels": ["a"], "system": "x"}, "instructions="),
    ],
)
def test_helper_mistakes_are_caught_before_sending(server, kwargs, match):
    import pandas as pd

    with pytest.raises(OptionError, match=match):
        pd.DataFrame({"t": ["x"]}).zgpu.classify("t", model=MODEL, base_url=server.url, **kwargs)
    with pytest.raises(OptionError, match="schema"):
        pd.DataFrame({"t": ["x"]}).zgpu.extract("t", schema=None, model=MODEL)
    assert server.request_log == []
