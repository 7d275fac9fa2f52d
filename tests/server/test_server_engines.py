"""Engines: the built-in one (replies, schemas, limits, the sync endpoint) and the upstream
one, tested against a second local server used as the upstream."""

from __future__ import annotations

import time

import jsonschema
import orjson
import pydantic
import pytest

from tests.support import MODEL, chat_line
from zgpu_pandas._catalog import MODELS
from zgpu_pandas.server import builtin_reply
from zgpu_pandas.server.engines import chat_url, map_upstream_error


def _body(text: str, **extra):
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


# ------------------------------------------------------------------------- built-in
def test_builtin_reply_echoes_text_with_model_tag():
    assert builtin_reply(_body("What is the capital of France?")) == (
        f"[{MODEL}] What is the capital of France?"
    )


def test_builtin_reply_uses_last_user_message_and_parts():
    body = {
        "model": "gpt-oss-120b",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second"},
                                         {"type": "text", "text": "part"}]},
        ],
    }
    assert builtin_reply(body) == "[gpt-oss-120b] second part"


def test_builtin_reply_is_deterministic_and_distinct_per_row():
    replies = [builtin_reply(_body(f"row {i}")) for i in range(50)]
    assert replies == [builtin_reply(_body(f"row {i}")) for i in range(50)]
    assert len(set(replies)) == 50


def test_builtin_reply_truncates_long_text():
    reply = builtin_reply(_body("y" * 5000))
    assert reply.startswith(f"[{MODEL}] " + "y" * 300)
    assert len(reply) < 400


SCHEMAS = [
    {
        "type": "object",
        "properties": {
            "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
            "topics": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
        },
        "required": ["sentiment", "topics"],
        "additionalProperties": False,
    },
    {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "confidence": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "flag": {"type": "boolean"},
            "note": {"type": ["string", "null"], "minLength": 3, "maxLength": 10},
            "when": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "minItems": 2,
                     "uniqueItems": True},
            "nested": {
                "type": "object",
                "properties": {"deep": {"type": "array", "minItems": 4,
                                        "items": {"type": "object",
                                                  "properties": {"n": {"type": "integer",
                                                                       "multipleOf": 5}},
                                                  "required": ["n"]}}},
                "required": ["deep"],
            },
            "either": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 100}]},
            "fixed": {"const": "v1"},
        },
        "required": ["score", "confidence", "flag", "note", "when", "tags", "nested", "either",
                     "fixed"],
    },
    {"type": "array", "items": {"type": "string", "minLength": 2}, "minItems": 5,
     "uniqueItems": True},
]


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("text", ["I love this, great value", "Broke after a day. Terrible.", ""])
def test_json_schema_replies_validate(schema, text):
    body = _body(text, response_format={"type": "json_schema",
                                        "json_schema": {"name": "x", "schema": schema}})
    value = orjson.loads(builtin_reply(body))
    jsonschema.validate(value, schema)


def test_json_schema_from_pydantic_with_refs():
    class Topic(pydantic.BaseModel):
        name: str
        weight: float = pydantic.Field(ge=0, le=1)

    class Review(pydantic.BaseModel):
        sentiment: str = pydantic.Field(pattern=None)
        rating: int = pydantic.Field(ge=1, le=5)
        topics: list[Topic]
        summary: str | None = None

    schema = Review.model_json_schema()
    assert "$defs" in schema
    body = _body("Great phone, fast delivery",
                 response_format={"type": "json_schema",
                                  "json_schema": {"name": "Review", "schema": schema}})
    value = orjson.loads(builtin_reply(body))
    jsonschema.validate(value, schema)
    Review.model_validate(value)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I love it, excellent and fast!", "positive"),
        ("It broke after a day, terrible and useless.", "negative"),
        ("It arrived on Tuesday in a box.", "neutral"),
    ],
)
def test_sentiment_enum_uses_lexicon(text, label):
    schema = SCHEMAS[0]
    body = _body(text, response_format={"type": "json_schema",
                                        "json_schema": {"name": "s", "schema": schema}})
    assert orjson.loads(builtin_reply(body))["sentiment"] == label


def test_topics_come_from_the_text():
    schema = SCHEMAS[0]
    body = _body("Battery drains quickly, screen cracked",
                 response_format={"type": "json_schema", "json_schema": {"schema": schema}})
    assert orjson.loads(builtin_reply(body))["topics"] == ["battery", "drains", "quickly"]


def test_json_object_mode():
    value = orjson.loads(builtin_reply(_body("hello", response_format={"type": "json_object"})))
    assert value == {"model": MODEL, "reply": "hello"}


def test_max_tokens_truncates_with_length(api):
    body = _body("z" * 200, max_tokens=5)
    r = api.post("/v1/chat/completions", json=body)
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == builtin_reply(body)
    assert len(choice["message"]["content"]) == 20
    assert r.json()["usage"]["completion_tokens"] == 5


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_catalog_model_is_known(api, model):
    r = api.post("/v1/chat/completions", json={**_body("my mail is a@b.co"), "model": model})
    assert r.status_code == 200, r.text
    assert r.json()["model"] == model
    content = r.json()["choices"][0]["message"]["content"]
    if MODELS[model].kind != "chat":  # classification-like models answer a JSON string
        assert isinstance(orjson.loads(content), dict)


def test_sync_endpoint_shape(api):
    body = _body("hi there", temperature=0)
    r = api.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    c = r.json()
    assert c["id"].startswith("chatcmpl-")
    assert c["object"] == "chat.completion"
    assert isinstance(c["created"], int)
    assert c["choices"] == [{
        "index": 0,
        "message": {"role": "assistant", "content": builtin_reply(body), "refusal": None,
                    "annotations": []},
        "finish_reason": "stop",
        "logprobs": None,
    }]
    u = c["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert "prompt_tokens_details" in u and "completion_tokens_details" in u
    assert c["service_tier"] == "default"
    assert c["system_fingerprint"] is None


def test_sync_endpoint_errors(api):
    r = api.post("/v1/chat/completions", json={**_body("x"), "model": "no-such-model"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found_error"
    assert "no-such-model" in r.json()["error"]["message"]
    assert api.post("/v1/chat/completions", json=_body("x", stream=True)).status_code == 400
    assert api.post("/v1/chat/completions", json={"model": MODEL}).status_code == 400
    r = api.post("/v1/chat/completions", json=_body("word " * 40_000))  # > 32k tokens
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "context_length_exceeded"


def test_batch_line_errors_from_the_engine(api):
    lines = [
        chat_line("ok", "fine"),
        {**chat_line("no-messages", "x"), "body": {"model": MODEL}},
        chat_line("too-long", "word " * 40_000),
    ]
    done = api.wait(api.submit(lines)["id"])
    errs = {e["custom_id"]: e["error"]["code"] for e in api.jsonl_of(done["error_file_id"])}
    assert errs == {"no-messages": "invalid_request_error", "too-long": "context_length_exceeded"}


# ------------------------------------------------------------------------- upstream
@pytest.fixture
def upstream(start_server):
    """A second server playing the upstream model server (strict key list)."""
    return start_server(api_keys={"up-key"})


def _primary(start_server, upstream, **kw):
    kw.setdefault("upstream_url", upstream.url)
    kw.setdefault("upstream_api_key", "up-key")
    kw.setdefault("upstream_headers", {"x-project-id": "up-project"})
    return start_server(engine="upstream", upstream_backoff=0.01, **kw)


def test_upstream_engine_runs_a_batch(start_server, api_for, upstream, make_lines):
    srv = _primary(start_server, upstream, upstream_url=upstream.url + "/v1/", concurrency=4)
    api = api_for(srv)
    lines = make_lines(12)
    done = api.wait(api.submit(lines)["id"])
    assert done["request_counts"] == {"total": 12, "completed": 12, "failed": 0}
    for out in api.jsonl_of(done["output_file_id"]):
        line = next(x for x in lines if x["custom_id"] == out["custom_id"])
        assert out["response"]["body"]["choices"][0]["message"]["content"] == builtin_reply(line["body"])
        assert out["response"]["request_id"].startswith("req_")  # the upstream's request id
    calls = [x for x in upstream.request_log if x[1] == "/v1/chat/completions"]
    assert len(calls) == 12 and all(s == 200 for _, _, s in calls)


def test_upstream_retries_5xx_and_dropped_connections(start_server, api_for, upstream, make_lines):
    srv = _primary(start_server, upstream)
    upstream.faults.fail_requests(status=500, count=2, path="chat")
    upstream.faults.fail_requests(status=429, count=1, path="chat", retry_after=0)
    upstream.faults.drop_connections(count=1, path="chat")
    api = api_for(srv)
    done = api.wait(api.submit(make_lines(3))["id"])
    assert done["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    statuses = [s for _, p, s in upstream.request_log if p == "/v1/chat/completions"]
    assert sorted(statuses) == sorted([500, 500, 429, 0, 200, 200, 200])


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"status": 429, "code": "insufficient_quota"}, "insufficient_quota"),
        ({"status": 429}, "rate_limit_exceeded"),
        ({"status": 503}, "internal_error"),
        ({"status": 413}, "request_too_large"),
        ({"status": 400}, "invalid_request_error"),
        ({"status": 400, "message": "This model's maximum context length is 10 tokens"},
         "context_length_exceeded"),
    ],
)
def test_upstream_errors_map_to_spec_codes(start_server, api_for, upstream, make_lines, fault, code):
    srv = _primary(start_server, upstream, upstream_max_retries=1)
    upstream.faults.fail_requests(count=10, path="chat", **fault)
    api = api_for(srv)
    done = api.wait(api.submit(make_lines(1))["id"])
    err = api.jsonl_of(done["error_file_id"])[0]["error"]
    assert err["code"] == code
    calls = sum(1 for _, p, _ in upstream.request_log if p == "/v1/chat/completions")
    retryable = code in ("rate_limit_exceeded", "internal_error")
    assert calls == (2 if retryable else 1)  # insufficient_quota and 4xx are not retried


def test_upstream_auth_and_unknown_model(start_server, api_for, upstream, make_lines):
    api = api_for(_primary(start_server, upstream, upstream_api_key="wrong"))
    done = api.wait(api.submit(make_lines(1))["id"])
    assert api.jsonl_of(done["error_file_id"])[0]["error"]["code"] == "authentication_error"
    api = api_for(_primary(start_server, upstream))
    done = api.wait(api.submit(make_lines(1, model="no-such-model"))["id"])
    err = api.jsonl_of(done["error_file_id"])[0]["error"]
    assert err["code"] == "not_found_error"
    assert err["message"].startswith("[legacy:http_404] ")


def test_an_unreachable_upstream_pauses_lines_until_the_window_ends(start_server, api_for, make_lines):
    # Nothing answers: no line fails with a connection error; the lines wait, and only the
    # end of the completion window ends them (as batch_expired: they never ran).
    srv = start_server(engine="upstream", upstream_url="http://127.0.0.1:9", upstream_backoff=0.01,
                       upstream_max_retries=1, completion_window_seconds=1.5)
    api = api_for(srv)
    bid = api.submit(make_lines(2))["id"]
    time.sleep(0.8)
    assert api.get(f"/v1/batches/{bid}").json()["request_counts"]["failed"] == 0
    done = api.wait(bid)
    assert done["status"] == "expired"
    codes = {e["error"]["code"] for e in api.jsonl_of(done["error_file_id"])}
    assert codes == {"batch_expired"}


def test_sync_endpoint_through_upstream(start_server, api_for, upstream):
    api = api_for(_primary(start_server, upstream))
    r = api.post("/v1/chat/completions", json=_body("ping"))
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == builtin_reply(_body("ping"))
    upstream.faults.fail_requests(status=429, code="insufficient_quota", path="chat")
    r = api.post("/v1/chat/completions", json=_body("ping"))
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "insufficient_quota"


def test_upstream_key_never_in_repr(start_server, upstream):
    srv = _primary(start_server, upstream, upstream_api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(srv.config)
    assert "sk-very-secret" not in repr(srv.context.new_engine())
    assert "sk-very-secret" not in repr(srv)


def test_chat_url_accepts_base_with_or_without_v1():
    assert chat_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h/api/v1") == "http://h/api/v1/chat/completions"


@pytest.mark.parametrize(
    ("status", "payload", "code"),
    [
        (400, {"error": {"message": "bad"}}, "invalid_request_error"),
        (400, {"error": {"message": "x", "code": "context_length_exceeded"}}, "context_length_exceeded"),
        (401, {"error": "no key"}, "authentication_error"),
        (403, None, "authentication_error"),
        (404, {"error": {"message": "model not found"}}, "not_found_error"),
        (413, None, "request_too_large"),
        (422, None, "invalid_request_error"),
        (429, {"error": {"type": "insufficient_quota", "message": "pay"}}, "insufficient_quota"),
        (429, {"error": {"message": "slow down"}}, "rate_limit_exceeded"),
        (500, None, "internal_error"),
        (502, {"detail": "gateway"}, "internal_error"),
    ],
)
def test_map_upstream_error(status, payload, code):
    assert map_upstream_error(status, payload, "text")[0] == code


def test_docstring_examples_hold():
    import doctest

    from zgpu_pandas.server import _schema_gen, engines

    for module in (engines, _schema_gen):
        assert doctest.testmod(module).failed == 0
