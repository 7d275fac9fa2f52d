"""Values arrive as they were sent: a number JSON carries but the service would change on the
way (an integer beyond 64 bits becomes a float; NaN and infinity become null) is refused with
a clear error, by the server's create and sync endpoint and by the client's pre-flight, before
anything is uploaded."""

from __future__ import annotations

import math

import orjson
import pytest

from tests.support import MODEL, chat_line, to_jsonl
from zgpu_pandas import Client
from zgpu_pandas.errors import OptionError, PromptError

BIG = 2**70  # 1180591620717411303424: more than any 64-bit integer


def _raw_line(custom_id: str, extra: str) -> bytes:
    # written by hand: orjson refuses to write BIG, and Python's json would
    return (
        b'{"custom_id": "' + custom_id.encode() + b'", "method": "POST", "url": '
        b'"/v1/chat/completions", "body": {"model": "' + MODEL.encode() + b'", "messages": '
        b'[{"role": "user", "content": "hi"}]' + extra.encode() + b"}}"
    )


def test_a_line_with_an_integer_beyond_64_bits_is_refused_at_create(api):
    lines = [orjson.dumps(chat_line("a", "hi")), _raw_line("b", f', "seed": {BIG}')]
    f = api.upload(to_jsonl(lines))
    r = api.create_batch(f["id"])
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_number" and err["line"] == 2
    assert err["param"] == "body.seed" and "beyond 64 bits" in err["message"]


def test_64_bit_integers_and_long_digit_runs_in_text_are_accepted(api):
    lines = [
        _raw_line("a", f', "seed": {2**64 - 1}'),
        _raw_line("b", f', "seed": {-(2**63)}'),
        orjson.dumps(chat_line("c", "call 123456789012345678901234567890 now")),
    ]
    f = api.upload(to_jsonl(lines))
    r = api.create_batch(f["id"])
    assert r.status_code == 200, r.text
    assert api.wait(r.json()["id"])["request_counts"]["completed"] == 3


def test_the_sync_endpoint_refuses_an_integer_beyond_64_bits(api):
    body = (
        b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": "hi"}],'
        b' "max_tokens": ' + str(BIG).encode() + b"}"
    )
    r = api.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_number" and err["param"] == "max_tokens"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, BIG])
def test_chat_parameters_that_json_cannot_carry_are_refused_before_upload(server, kit, value):
    df = kit.frame({"t": ["a", "b"]})
    with pytest.raises(PromptError, match="temperature is a number JSON cannot carry exactly"):
        df.zgpu.batch_chat(
            "t", model=MODEL, temperature=value, base_url=server.url, api_key="test-key",
            project_id="test-project", progress=False,
        )
    assert server.request_log == []


def test_a_nan_inside_a_structured_schema_is_refused_before_upload(server, kit):
    df = kit.frame({"t": ["a"]})
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"n": {"type": "number", "maximum": math.inf}}}}}
    with pytest.raises(PromptError, match=r"response_format\.json_schema\.schema\.properties\.n\.maximum"):
        df.zgpu.batch_chat(
            "t", model=MODEL, response_format=fmt, base_url=server.url, api_key="test-key",
            project_id="test-project", progress=False,
        )
    assert server.request_log == []


def test_a_messages_cell_with_an_integer_beyond_64_bits_names_the_row(server, kit):
    df = kit.frame({"m": ['[{"role": "user", "content": "hi", "n": ' + str(BIG) + "}]"]})
    with pytest.raises(PromptError, match=r"Column 'm'.*beyond 64 bits at messages\[0\]\.n"):
        df.zgpu.batch_chat(
            messages="m", model=MODEL, base_url=server.url, api_key="test-key",
            project_id="test-project", progress=False,
        )
    assert server.request_log == []


def test_batch_metadata_is_checked_by_the_client_before_anything_is_sent(server):
    with (
        Client(base_url=server.url, api_key="test-key", project_id="test-project") as c,
        pytest.raises(OptionError, match='metadata value of "n" must be a string'),
    ):
        c.batches.create(input_file_id="file-0123456789abcdef01234567", metadata={"n": BIG})
    assert server.request_log == []


def test_job_metadata_leaves_room_for_the_jobs_own_keys(server, kit):
    df = kit.frame({"t": ["a"]})
    with pytest.raises(OptionError, match="at most 12 are allowed"):
        df.zgpu.batch_chat(
            "t", model=MODEL, metadata={f"k{i}": "v" for i in range(13)}, base_url=server.url,
            api_key="test-key", project_id="test-project", progress=False,
        )
    assert server.request_log == []


def test_a_deep_integer_beyond_64_bits_reaches_the_upstream_exactly(start_server, api_for):
    # create refuses such an integer among a line's top-level parameters; deeper in the body
    # (a tool schema, a provider's own field) it is forwarded digit for digit, not rounded
    from tests.server.stub_upstream import StubUpstream

    with StubUpstream() as up:
        srv = start_server(engine="upstream", upstream_url=up.url, concurrency=2)
        api = api_for(srv)
        lines = [
            orjson.dumps(chat_line("first", "hi")),  # the first line is checked whole
            _raw_line("deep", f', "provider_options": {{"budget": {BIG}, "x": [1, {-BIG}]}}'),
        ]
        done = api.wait(api.submit(lines)["id"])
    assert done["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    sent = [b for b in up.bodies if b"provider_options" in b]
    assert len(sent) == 1
    assert f'"budget":{BIG}'.encode() in sent[0] and f"[1,{-BIG}]".encode() in sent[0]
