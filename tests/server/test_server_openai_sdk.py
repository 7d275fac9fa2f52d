"""The official ``openai`` SDK, pointed at the local server with the two ZeroGPU headers,
runs the whole Files + Batches flow unchanged."""

from __future__ import annotations

import openai
import orjson
import pytest

from tests.support import API_HEADERS, chat_line, to_jsonl
from zgpu_pandas.server import builtin_reply


def _sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=API_HEADERS["x-api-key"],
        base_url=url + "/v1",
        default_headers=API_HEADERS,
        max_retries=0,
    )


def _wait(client: openai.OpenAI, batch_id: str):
    import time

    for _ in range(3000):
        b = client.batches.retrieve(batch_id)
        if b.status in ("completed", "failed", "expired", "cancelled"):
            return b
        time.sleep(0.01)
    pytest.fail(f"batch {batch_id} did not finish")


def test_openai_sdk_full_flow(server):
    client = _sdk(server.url)
    lines = [chat_line(f"q-{i}", f"What is {i} + {i}?") for i in range(5)]
    f = client.files.create(file=("input.jsonl", to_jsonl(lines)), purpose="batch")
    assert f.id.startswith("file-") and f.purpose == "batch" and f.status == "processed"

    batch = client.batches.create(
        input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
        metadata={"job": "sdk"},
    )
    assert batch.status == "in_progress"
    assert batch.request_counts.total == 5
    done = _wait(client, batch.id)
    assert done.status == "completed"
    assert done.request_counts.completed == 5
    assert done.metadata == {"job": "sdk"}

    content = client.files.content(done.output_file_id)
    results = {x["custom_id"]: x for x in map(orjson.loads, content.content.splitlines())}
    for line in lines:
        msg = results[line["custom_id"]]["response"]["body"]["choices"][0]["message"]["content"]
        assert msg == builtin_reply(line["body"])

    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"
    deleted = client.files.delete(f.id)
    assert deleted.deleted is True and deleted.id == f.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)


def test_openai_sdk_pagination(server):
    client = _sdk(server.url)
    ids = []
    for i in range(5):
        f = client.files.create(file=(f"in{i}.jsonl", to_jsonl([chat_line("a", str(i))])),
                                purpose="batch")
        ids.append(client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                         completion_window="24h").id)
    first = client.batches.list(limit=2)
    assert len(first.data) == 2 and first.has_more is True
    # auto-pagination follows `after` = last id across pages
    assert [b.id for b in client.batches.list(limit=2)] == ids[::-1]
    files = client.files.list(purpose="batch", limit=2)
    assert len(list(files)) == 5


def test_openai_sdk_cancel(start_server):
    srv = start_server(latency=0.02, concurrency=1)
    client = _sdk(srv.url)
    f = client.files.create(
        file=("in.jsonl", to_jsonl([chat_line(f"r{i}", "x") for i in range(200)])), purpose="batch"
    )
    batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                  completion_window="24h")
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    done = _wait(client, batch.id)
    assert done.status == "cancelled"
    assert done.request_counts.completed + done.request_counts.failed == 200
    errors = client.files.content(done.error_file_id).text.splitlines()
    assert orjson.loads(errors[-1])["error"]["code"] == "batch_cancelled"


def test_openai_sdk_errors_and_sync_chat(server):
    client = _sdk(server.url)
    f = client.files.create(file=("bad.jsonl", b'{"custom_id": "a"}\n'), purpose="batch")
    with pytest.raises(openai.BadRequestError) as exc:
        client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                              completion_window="24h")
    assert exc.value.body["line"] == 1
    assert exc.value.body["message"] == 'Line 1 method must be "POST"'
    failed = client.batches.list().data[0]
    assert failed.status == "failed" and failed.errors.data[0].line == 1
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(failed.id)
    reply = client.chat.completions.create(
        model="LFM2.5-1.2B-Instruct", messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.choices[0].message.content == "[LFM2.5-1.2B-Instruct] hello"
    anonymous = openai.OpenAI(api_key="k", base_url=server.url + "/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anonymous.batches.list()  # no x-api-key / x-project-id headers
