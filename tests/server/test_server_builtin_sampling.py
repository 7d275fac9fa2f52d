"""The built-in engine honours ``n``, ``seed`` and ``temperature`` (distinct choices,
reproducible per seed, deterministic at temperature 0) and answers well-formed OpenAI
``logprobs`` when asked, in batch lines and on the sync endpoint; usage counts every choice.
"""

from __future__ import annotations

import math

import pytest

from tests.support import chat_line
from zgpu_pandas.server.engines import builtin_reply

MODEL = "LFM2.5-1.2B-Instruct"


def _body(text="Great phone, battery lasts", **params):
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **params}


def _contents(completion):
    return [c["message"]["content"] for c in completion["choices"]]


def _sync(api, body):
    r = api.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def test_n_choices_are_distinct_and_reproducible_per_seed(api):
    first = _sync(api, _body(n=3, seed=7, temperature=0.8))
    again = _sync(api, _body(n=3, seed=7, temperature=0.8))
    other = _sync(api, _body(n=3, seed=8, temperature=0.8))
    assert [c["index"] for c in first["choices"]] == [0, 1, 2]
    assert len(set(_contents(first))) == 3
    assert _contents(again) == _contents(first)
    assert _contents(other) != _contents(first)
    assert all(c.startswith(f"[{MODEL}] Great phone") for c in _contents(first))
    assert _contents(first)[0] == builtin_reply(_body(n=3, seed=7, temperature=0.8))


def test_temperature_zero_is_deterministic(api):
    body = _body(n=4, seed=1, temperature=0)
    out = _sync(api, body)
    assert _contents(out) == [builtin_reply(_body())] * 4
    assert _contents(_sync(api, _body(n=4, seed=99, temperature=0))) == _contents(out)


def test_usage_counts_every_choice(api):
    one = _sync(api, _body(seed=3, temperature=1))
    three = _sync(api, _body(n=3, seed=3, temperature=1))
    expected = sum(math.ceil(len(c) / 4) for c in _contents(three))
    assert three["usage"]["completion_tokens"] == expected > one["usage"]["completion_tokens"]
    assert three["usage"]["prompt_tokens"] == one["usage"]["prompt_tokens"]
    assert three["usage"]["total_tokens"] == three["usage"]["prompt_tokens"] + expected


def test_json_schema_choices_all_validate(api):
    jsonschema = pytest.importorskip("jsonschema")
    schema = {"type": "object", "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
        "score": {"type": "integer", "minimum": 0, "maximum": 100}}, "required": ["sentiment", "score"]}
    body = _body(n=5, seed=11, temperature=1,
                 response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}})
    import json

    values = [json.loads(c) for c in _contents(_sync(api, body))]
    for v in values:
        jsonschema.validate(v, schema)
    assert len({v["score"] for v in values}) > 1  # sampled, not five copies


def _check_logprobs(choice, top):
    lp = choice["logprobs"]
    assert set(lp) == {"content", "refusal"}
    tokens = lp["content"]
    assert "".join(t["token"] for t in tokens) == choice["message"]["content"]
    for t in tokens:
        assert set(t) == {"token", "logprob", "bytes", "top_logprobs"}
        assert t["bytes"] == list(t["token"].encode())
        assert t["logprob"] <= 0
        assert len(t["top_logprobs"]) == top
        if top:
            assert t["top_logprobs"][0]["token"] == t["token"]
            assert t["top_logprobs"][0]["logprob"] == t["logprob"]
            lps = [a["logprob"] for a in t["top_logprobs"]]
            assert lps == sorted(lps, reverse=True)
            assert sum(math.exp(x) for x in lps) <= 1.0 + 1e-9
            assert len({a["token"] for a in t["top_logprobs"]}) == top
            for a in t["top_logprobs"]:
                assert set(a) == {"token", "logprob", "bytes"} and a["bytes"] == list(a["token"].encode())


def test_logprobs_on_the_sync_endpoint(api):
    out = _sync(api, _body(n=2, seed=5, logprobs=True, top_logprobs=3))
    for choice in out["choices"]:
        _check_logprobs(choice, 3)
    plain = _sync(api, _body(logprobs=True))
    _check_logprobs(plain["choices"][0], 0)
    assert _sync(api, _body())["choices"][0]["logprobs"] is None


def test_logprobs_and_n_in_batch_lines(api):
    lines = [chat_line("lp", "hello there", logprobs=True, top_logprobs=2, n=2, seed=4),
             chat_line("plain", "hello there")]
    done = api.wait(api.submit(lines)["id"])
    by_id = {o["custom_id"]: o["response"]["body"] for o in api.jsonl_of(done["output_file_id"])}
    assert len(by_id["lp"]["choices"]) == 2
    for choice in by_id["lp"]["choices"]:
        _check_logprobs(choice, 2)
    assert by_id["plain"]["choices"][0]["logprobs"] is None


@pytest.mark.parametrize(
    "params",
    [{"n": 0}, {"n": 129}, {"n": "2"}, {"top_logprobs": 2}, {"logprobs": True, "top_logprobs": 21},
     {"logprobs": "yes"}],
)
def test_bad_sampling_parameters_are_refused(api, params):
    r = api.post("/v1/chat/completions", json=_body(**params))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request_error"
