"""One bad line never stalls a batch (issue 11, class 1): whatever goes wrong while running
or recording one line becomes that line's error with the spec's code, the other lines go
on, and no line is sent upstream twice. The batch-level members: an input that can no
longer be read fails the batch; an upstream down for a while pauses the lines instead of
failing them; recording that fails (a full disk) pauses the batch without a traceback.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections import Counter

import orjson
import pytest

from tests.server.stub_upstream import StubUpstream
from tests.support import chat_line
from zgpu_pandas.server import engines

MODEL = "LFM2.5-1.2B-Instruct"


def _errors(api, batch) -> dict[str, dict]:
    if batch["error_file_id"] is None:
        return {}
    return {e["custom_id"]: e["error"] for e in api.jsonl_of(batch["error_file_id"])}


def _outputs(api, batch) -> Counter:
    if batch["output_file_id"] is None:
        return Counter()
    return Counter(o["custom_id"] for o in api.jsonl_of(batch["output_file_id"]))


@pytest.mark.parametrize("latency", [0.0, 0.01], ids=["sync-engine", "windowed-engine"])
def test_an_engine_exception_is_that_lines_error_and_no_line_runs_twice(
    start_server, api_for, make_lines, monkeypatch, latency
):
    # No input makes the built-in engine raise any more, so one is made to (the only way
    # to reach the guard that catches whatever a future engine bug raises).
    calls: Counter = Counter()
    real = engines.builtin_completion

    def flaky(body, **kw):
        text = body["messages"][-1]["content"]
        calls[text] += 1
        if text == "question 3":
            raise RuntimeError("engine bug")
        return real(body, **kw)

    monkeypatch.setattr(engines, "builtin_completion", flaky)
    srv = start_server(latency=latency, concurrency=4)
    api = api_for(srv)
    done = api.wait(api.submit(make_lines(20))["id"], timeout=30)
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 20, "completed": 19, "failed": 1}
    err = _errors(api, done)["row-3"]
    assert err["code"] == "internal_error" and "RuntimeError" in err["message"]
    assert set(calls.values()) == {1}  # every line ran once, the bad one included


def test_a_body_too_deep_to_forward_fails_alone(start_server, api_for, make_lines):
    # orjson reads 300 levels but writes at most 254: the body parses, cannot be sent.
    with StubUpstream() as up:
        srv = start_server(engine="upstream", upstream_url=up.url, concurrency=3)
        api = api_for(srv)
        lines: list = [orjson.dumps(x) for x in make_lines(6)]
        deep = b"[" * 300 + b"]" * 300  # written by hand: orjson cannot
        lines[2] = lines[2].replace(b'"messages":', b'"blob":' + deep + b',"messages":', 1)
        done = api.wait(api.submit(lines)["id"])
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 6, "completed": 5, "failed": 1}
    assert _errors(api, done)["row-2"]["code"] == "invalid_request_error"
    assert up.calls == Counter({f"question {i}": 1 for i in range(6) if i != 2})


def test_an_answer_too_deep_to_record_fails_alone(start_server, api_for):
    with StubUpstream() as up:
        srv = start_server(engine="upstream", upstream_url=up.url, concurrency=3)
        api = api_for(srv)
        lines = [chat_line(f"row-{i}", f"question {i}") for i in range(6)]
        lines.append(chat_line("deep-one", "deep answer please"))
        done = api.wait(api.submit(lines)["id"])
    assert done["request_counts"] == {"total": 7, "completed": 6, "failed": 1}
    err = _errors(api, done)["deep-one"]
    assert err["code"] == "internal_error" and "could not be recorded" in err["message"]
    assert set(up.calls.values()) == {1}  # the paid answer was not asked for again


def test_an_oversized_answer_is_refused_once_not_retried():
    import asyncio

    with StubUpstream(huge_bytes=50_000) as up:
        engine = engines.UpstreamEngine(base_url=up.url, max_answer_bytes=10_000, backoff=0.01)

        async def run():
            try:
                big = await engine.complete({"model": MODEL, "messages": [
                    {"role": "user", "content": "huge answer"}]})
                small = await engine.complete({"model": MODEL, "messages": [
                    {"role": "user", "content": "small answer"}]})
                return big, small
            finally:
                await engine.aclose()

        big, small = asyncio.run(run())
    assert big.code == "internal_error" and "10000 bytes" in (big.message or "")
    assert small.ok
    assert up.calls["huge answer"] == 1


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "minLength": 10**12},
        {"type": "array", "minItems": 10**9, "items": {"type": "integer"}},
        {"type": "array", "minItems": 10**9, "uniqueItems": True, "items": {"type": "string"}},
        {"type": "object", "properties": {f"k{i}": {"type": "array", "minItems": 40,
                                                   "items": {"$ref": "#"}} for i in range(4)}},
    ],
    ids=["string", "array", "unique-array", "recursive"],
)
def test_enormous_schema_values_are_cut_at_the_models_context(api, schema):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}
    lines = [{"custom_id": "big", "method": "POST", "url": "/v1/chat/completions", "body": body},
             chat_line("ok", "fine")]
    done = api.wait(api.submit(lines)["id"])
    assert done["request_counts"]["completed"] == 2
    by_id = {o["custom_id"]: o["response"]["body"] for o in api.jsonl_of(done["output_file_id"])}
    choice = by_id["big"]["choices"][0]
    assert choice["finish_reason"] == "length"
    usage = by_id["big"]["usage"]
    assert usage["total_tokens"] <= 32768  # the model's context
    assert len(choice["message"]["content"]) <= 32768 * 4


def test_a_schema_value_that_cannot_be_written_is_an_invalid_request(api):
    schema = {"type": "object", "properties": {"x": {"type": "integer", "minimum": 1e300}},
              "required": ["x"]}
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}
    lines = [{"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions", "body": body},
             chat_line("ok", "fine")]
    done = api.wait(api.submit(lines)["id"])
    assert done["request_counts"] == {"total": 2, "completed": 1, "failed": 1}
    assert _errors(api, done)["bad"]["code"] == "invalid_request_error"


def test_an_unreadable_input_fails_the_batch_and_keeps_what_finished(start_server, api_for, make_lines, tmp_path):
    data = tmp_path / "data"
    srv = start_server(data_dir=data, latency=0.05, concurrency=1)
    api = api_for(srv)
    batch = api.submit(make_lines(40))
    api.wait_until(batch["id"], lambda b: b["request_counts"]["completed"] >= 3)
    srv.stop()
    (data / "files" / batch["input_file_id"]).unlink()  # gone from under the server
    srv.start()
    api = api_for(srv)
    done = api.wait(batch["id"], timeout=20)
    assert done["status"] == "failed"
    [error] = done["errors"]["data"]
    assert error["code"] == "input_file_unreadable"
    assert "can no longer be read" in error["message"]
    assert done["failed_at"] is not None
    kept = _outputs(api, done)
    assert len(kept) == done["request_counts"]["completed"] >= 3
    assert set(kept.values()) == {1}


def test_an_upstream_outage_mid_batch_pauses_and_resumes(start_server, api_for, make_lines):
    upstream = start_server(latency=0.02, admin=False)
    port = upstream.port
    srv = start_server(engine="upstream", upstream_url=upstream.url, concurrency=4,
                       upstream_backoff=0.05, upstream_max_retries=1,
                       upstream_api_key="up-key", upstream_headers={"x-project-id": "up"})
    api = api_for(srv)
    batch = api.submit(make_lines(60))
    api.wait_until(batch["id"], lambda b: b["request_counts"]["completed"] >= 10)
    upstream.stop()  # down: every connection refused
    time.sleep(2.0)
    mid = api.get(f"/v1/batches/{batch['id']}").json()
    assert mid["status"] == "in_progress" and mid["request_counts"]["failed"] == 0
    upstream.start()
    assert upstream.port == port
    done = api.wait(batch["id"], timeout=60)
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 60, "completed": 60, "failed": 0}
    assert _outputs(api, done) == Counter(f"row-{i}" for i in range(60))


def test_a_full_disk_pauses_the_batch_quietly_then_it_finishes(start_server, api_for, make_lines, caplog):
    caplog.set_level(logging.WARNING, logger="zgpu_pandas.server")
    with StubUpstream(latency=0.02) as up:
        srv = start_server(engine="upstream", upstream_url=up.url, concurrency=2)
        api = api_for(srv)
        batch = api.submit(make_lines(30))
        api.wait_until(batch["id"], lambda b: b["request_counts"]["completed"] >= 2)
        # The batch directory becomes a file: every write of a result fails with an OSError,
        # as on a full disk.
        bdir = srv.data_dir / "batches" / batch["id"]
        shutil.move(bdir, bdir.with_suffix(".away"))
        bdir.write_text("not a directory")
        time.sleep(2.5)
        stuck = api.get(f"/v1/batches/{batch['id']}").json()
        assert stuck["status"] == "in_progress"
        bdir.unlink()
        shutil.move(bdir.with_suffix(".away"), bdir)
        done = api.wait(batch["id"], timeout=60)
    assert done["request_counts"] == {"total": 30, "completed": 30, "failed": 0}
    assert _outputs(api, done) == Counter(f"row-{i}" for i in range(30))
    assert set(up.calls.values()) == {1}  # nothing was sent again while paused
    warnings = [r for r in caplog.records if "cannot record" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].exc_info is None  # one line a minute, no traceback
