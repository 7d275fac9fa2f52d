"""Structured outputs end to end: schema dict or Pydantic class in, fields out as columns,
a reply that does not parse marked ``parse_error`` with its raw text kept."""

from __future__ import annotations

from typing import Literal

import orjson
import pandas as pd
import pydantic
import pytest

from zgpu_pandas._client import Client
from zgpu_pandas.core.resume import attach
from zgpu_pandas.errors import ColumnClashError
from zgpu_pandas.server import LocalServer

from .resume_support import MODEL, api_calls

SCHEMA = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "topics": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["sentiment", "topics"],
}
REVIEWS = [
    "Great battery, love it",
    "It is ok",
    None,
    # its answer is 64 characters: cut by max_tokens=15 (60), so not valid JSON
    "Broke after a day, terrible support and the screen cracked twice while shipping",
]


class Review(pydantic.BaseModel):
    sentiment: Literal["positive", "negative", "neutral"]
    topics: list[str]


def sent_body(client: Client, batch_id: str) -> dict:
    f = client.batches.retrieve(batch_id).input_file_id
    assert f is not None
    return orjson.loads(next(client.files.iter_lines(f)))["body"]


@pytest.mark.parametrize("response_format", [SCHEMA, Review], ids=["schema", "pydantic"])
def test_fields_become_columns_and_a_malformed_reply_is_a_parse_error(
    server: LocalServer, client: Client, response_format: object
) -> None:
    df = pd.DataFrame({"review": REVIEWS, "stars": [5, 3, 1, 1]})
    out = df.zgpu.batch_chat(
        "review",
        model=MODEL,
        client=client,
        progress=False,
        response_format=response_format,
        max_tokens=15,
    )
    assert out["response_status"].tolist() == ["ok", "ok", "skipped", "parse_error"]
    assert out["sentiment"].tolist()[:2] == ["positive", "neutral"]
    assert out["topics"].tolist()[:2] == [["great", "battery", "love"], []]
    assert out["sentiment"].isna().tolist()[2:] == [True, True]
    bad = out.iloc[3]
    assert bad["response_error_code"] == "parse_error"
    assert "not valid structured output" in bad["response_error"]
    # the raw text is kept, as the model sent it
    assert bad["response"].startswith('{"sentiment":"negative","topics":["broke"')
    assert out["stars"].tolist() == [5, 3, 1, 1] and out.index.equals(df.index)
    # the request carried the schema in the chat endpoint's wrapper
    rf = sent_body(client, df.zgpu.last_job.batch_ids[0])["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["schema"]["properties"].keys() == {"sentiment", "topics"}
    # the same call again comes from the journal and is parsed the same way
    again = df.zgpu.batch_chat(
        "review",
        model=MODEL,
        client=client,
        progress=False,
        response_format=response_format,
        max_tokens=15,
    )
    pd.testing.assert_frame_equal(out, again)
    assert api_calls(server, "POST", "/v1/batches") == 1


def test_a_field_named_like_a_column_is_refused_before_sending_unless_overwrite(
    server: LocalServer, client: Client
) -> None:
    df = pd.DataFrame({"review": REVIEWS[:2], "sentiment": ["?", "?"]})
    with pytest.raises(ColumnClashError, match=r"'sentiment'.*overwrite=True"):
        df.zgpu.batch_chat("review", model=MODEL, client=client, response_format=SCHEMA)
    assert server.request_log == []
    out = df.zgpu.batch_chat(
        "review",
        model=MODEL,
        client=client,
        progress=False,
        response_format=SCHEMA,
        overwrite=True,
    )
    assert out["sentiment"].tolist() == ["positive", "neutral"]
    with pytest.raises(ColumnClashError, match="output="):
        df.zgpu.batch_chat(
            "review",
            model=MODEL,
            client=client,
            response_format={"type": "object", "properties": {"response_status": {}}},
        )


def test_parse_json_without_a_schema_and_parse_false(server: LocalServer, client: Client) -> None:
    df = pd.DataFrame({"q": ["hello", "world"]})
    out = df.zgpu.batch_chat(
        "q",
        model=MODEL,
        client=client,
        progress=False,
        response_format={"type": "json_object"},
        parse="json",
    )
    assert out["reply"].tolist() == ["hello", "world"]
    assert out["model"].tolist() == [MODEL, MODEL]
    raw = df.zgpu.batch_chat(
        "q", model=MODEL, client=client, progress=False, response_format=SCHEMA, parse=False
    )
    assert "sentiment" not in raw.columns
    assert orjson.loads(raw["response"][0])["sentiment"] == "neutral"


def test_attach_by_job_id_parses_with_the_recorded_schema(
    server: LocalServer, client: Client
) -> None:
    df = pd.DataFrame({"review": REVIEWS})
    df.zgpu.batch_chat(
        "review",
        model=MODEL,
        client=client,
        progress=False,
        response_format=Review,
        max_tokens=15,
    )
    out = attach(df.zgpu.last_job.job_id, client=client, progress=False).result()
    assert out["response_status"].tolist() == ["ok", "ok", "skipped", "parse_error"]
    assert out["sentiment"].tolist()[:2] == ["positive", "neutral"]
