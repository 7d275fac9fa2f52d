"""Structured outputs: response_format normalisation and per-row parsing."""

from __future__ import annotations

import pydantic
import pytest

from zgpu_pandas.core.structured import extract_json, normalize_response_format, parse_replies

SCHEMA = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "topics": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["sentiment", "topics"],
}


def test_bare_schema_is_wrapped_for_the_request() -> None:
    rf, spec = normalize_response_format(SCHEMA)
    assert rf == {"type": "json_schema", "json_schema": {"name": "response", "schema": SCHEMA}}
    assert spec.fields == ["sentiment", "topics"]


def test_openai_wrappers_pass_through() -> None:
    wrapped = {"type": "json_schema", "json_schema": {"name": "tags", "schema": SCHEMA}}
    rf, spec = normalize_response_format(wrapped)
    assert rf == wrapped and spec.name == "tags"
    rf, spec = normalize_response_format({"type": "json_object"})
    assert spec.schema is None and spec.fields == []
    with pytest.raises(ValueError, match="json_schema"):
        normalize_response_format({"type": "json_schema"})
    with pytest.raises(TypeError, match="Pydantic"):
        normalize_response_format("json")


def test_pydantic_model_class() -> None:
    class Tags(pydantic.BaseModel):
        sentiment: str
        topics: list[str]

    rf, spec = normalize_response_format(Tags)
    assert rf["json_schema"]["name"] == "Tags"
    assert spec.fields == ["sentiment", "topics"]
    parsed = parse_replies(
        ['{"sentiment": "positive", "topics": ["price"]}', '{"sentiment": 3}'], spec
    )
    assert parsed.fields["sentiment"] == ["positive", None]
    assert parsed.errors[0] is None
    assert parsed.errors[1] is not None and "Tags" in parsed.errors[1]


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '```json\n{"a": 1}\n```',
        '```\n{"a": 1}\n```',
        'Sure! Here it is: {"a": 1} Hope that helps.',
        '  {"a": 1}\n',
    ],
)
def test_extract_json_tolerates_fences_and_chatter(text: str) -> None:
    assert extract_json(text) == {"a": 1}


def test_parse_marks_bad_rows_and_keeps_good_ones() -> None:
    _, spec = normalize_response_format(SCHEMA)
    texts = [
        '{"sentiment": "positive", "topics": ["shipping"]}',
        "I think it is positive",  # not JSON
        '{"sentiment": "ecstatic", "topics": []}',  # not in the enum
        None,  # no answer for this row: not a parse error
        '```json\n{"sentiment": "negative", "topics": ["price", "quality"], "extra": 1}\n```',
    ]
    parsed = parse_replies(texts, spec)
    assert parsed.fields["sentiment"] == ["positive", None, None, None, "negative"]
    assert parsed.fields["topics"] == [["shipping"], None, None, None, ["price", "quality"]]
    assert "extra" not in parsed.fields
    assert parsed.errors[0] is None and parsed.errors[3] is None and parsed.errors[4] is None
    assert parsed.errors[1] == "the reply is not JSON"
    assert parsed.errors[2] is not None and "sentiment" in parsed.errors[2]


def test_without_schema_every_key_becomes_a_field() -> None:
    _, spec = normalize_response_format({"type": "json_object"})
    parsed = parse_replies(['{"a": 1}', '{"b": 2}', "[1, 2]"], spec)
    assert parsed.fields == {"a": [1, None, None], "b": [None, 2, None]}
    assert parsed.errors[2] == "expected a JSON object, got list"
