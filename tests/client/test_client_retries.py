"""Retries and backoff under injected faults, and the no-double-create rule.

The client's sleep is replaced by a recorder (fixture ``sleeps``), so these run instantly
and can check the delays: full jitter means retry n waits in [0, 0.5 * 2**n).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from zgpu_pandas import _client
from zgpu_pandas._client import CLIENT_TOKEN_KEY, Client
from zgpu_pandas.errors import (
    APIConnectionError,
    BadRequestError,
    CreateOutcomeUnknownError,
    InternalServerError,
    UploadNotRetryableError,
)
from zgpu_pandas.server import LocalServer

Calls = Callable[..., list[int]]

BATCHES = "^/v1/batches$"


def test_500s_on_reads_are_retried_with_jittered_backoff(
    calls: Calls, client: Client, server: LocalServer, sleeps: list[float]
) -> None:
    f = client.files.upload(b"{}\n")
    server.faults.fail_requests(status=500, count=4, method="GET", path="^/v1/files/")
    assert client.files.retrieve(f.id).id == f.id
    assert calls(server, "GET", f"/v1/files/{f.id}", 5) == [500, 500, 500, 500, 200]
    assert len(sleeps) == 4
    for n, delay in enumerate(sleeps):
        assert 0 <= delay < 0.5 * 2**n


def test_backoff_grows_exponentially_and_is_capped(
    client: Client, server: LocalServer, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_client, "_random", lambda: 0.999)  # the top of each jitter window
    server.faults.fail_requests(status=502, count=10, method="GET")
    client.max_retries = 8
    with pytest.raises(InternalServerError):
        client.batches.retrieve("batch_x")
    assert [round(d, 2) for d in sleeps] == [0.5, 1.0, 2.0, 4.0, 7.99, 15.98, 19.98, 19.98]


def test_429_retry_after_is_honoured(
    calls: Calls, client: Client, server: LocalServer, sleeps: list[float]
) -> None:
    server.faults.fail_requests(status=429, count=2, method="GET", retry_after=3)
    assert list(client.batches.list()) == []
    assert sleeps == [3.0, 3.0]
    assert calls(server, "GET", "/v1/batches", 3) == [429, 429, 200]


def test_429_without_retry_after_backs_off(
    client: Client, server: LocalServer, sleeps: list[float]
) -> None:
    server.faults.fail_requests(status=429, count=1, method="POST", path="^/v1/files$")
    f = client.files.upload(b'{"a": 1}\n')  # a rate-limited POST was not processed: safe to resend
    assert f.bytes == 9 and len(sleeps) == 1 and 0 <= sleeps[0] < 0.5
    assert len(list(client.files.list())) == 1


def test_dropped_connections_on_reads_are_retried(
    client: Client, server: LocalServer, sleeps: list[float]
) -> None:
    f = client.files.upload(b"{}\n")
    server.faults.drop_connections(count=2, method="GET")
    assert client.files.retrieve(f.id) == f
    assert len(sleeps) == 2


def test_dropped_upload_from_path_is_retried(
    client: Client,
    server: LocalServer,
    sleeps: list[float],
    tmp_path: Path,
    jsonl: Callable[..., bytes],
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(jsonl(2000))
    server.faults.drop_uploads(after_bytes=50_000, count=2)
    f = client.files.upload(path)
    assert f.bytes == path.stat().st_size and len(sleeps) == 2
    assert [x.id for x in client.files.list()] == [f.id]  # the dropped attempts stored nothing
    assert b"".join(client.files.iter_bytes(f.id)) == path.read_bytes()


def test_dropped_upload_from_one_shot_iterator_says_it_cannot_retry(
    client: Client, server: LocalServer, sleeps: list[float], jsonl: Callable[..., bytes]
) -> None:
    data = jsonl(2000)
    chunks = (data[i : i + 8192] for i in range(0, len(data), 8192))
    server.faults.drop_uploads(after_bytes=50_000)
    with pytest.raises(UploadNotRetryableError, match="cannot be retried") as info:
        client.files.upload(chunks)
    assert "Pass a path, bytes" in str(info.value)
    assert isinstance(info.value, APIConnectionError) and sleeps == []
    # a re-iterable list of the same chunks is retried
    server.faults.drop_uploads(after_bytes=50_000)
    as_list = [data[i : i + 8192] for i in range(0, len(data), 8192)]
    assert client.files.upload(as_list).bytes == len(data)


def test_truncated_download_resumes_without_losing_or_repeating_lines(
    client: Client, server: LocalServer, sleeps: list[float], jsonl: Callable[..., bytes]
) -> None:
    data = jsonl(3000)
    f = client.files.upload(data)
    server.faults.truncate_downloads(after_bytes=100_001, count=3)
    lines = list(client.files.iter_lines(f.id))
    assert lines == data.splitlines()
    assert len(sleeps) == 3


def test_truncated_download_to_disk(
    client: Client,
    server: LocalServer,
    sleeps: list[float],
    tmp_path: Path,
    jsonl: Callable[..., bytes],
) -> None:
    data = jsonl(3000)
    f = client.files.upload(data)
    server.faults.truncate_downloads(after_bytes=7)
    assert client.files.download(f.id, tmp_path / "x.jsonl").read_bytes() == data


def test_delete_whose_answer_was_lost(
    calls: Calls, client: Client, server: LocalServer, sleeps: list[float]
) -> None:
    f = client.files.upload(b"{}\n")
    server.faults.drop_connections(method="DELETE", after_handler=True)
    deleted = client.files.delete(f.id)
    assert deleted.deleted and deleted.id == f.id
    assert calls(server, "DELETE", f"/v1/files/{f.id}", 2)[-1] == 404  # the retry found it gone


# -- the no-double-create rule -------------------------------------------------------------


def _tokens(client: Client) -> list[str]:
    return [str(b.metadata.get(CLIENT_TOKEN_KEY)) for b in client.batches.list()]


def test_create_answer_lost_after_the_batch_was_made(
    calls: Calls,
    client: Client,
    server: LocalServer,
    sleeps: list[float],
    jsonl: Callable[..., bytes],
) -> None:
    f = client.files.upload(jsonl(3))
    server.faults.drop_connections(method="POST", path=BATCHES, after_handler=True)
    batch = client.batches.create(input_file_id=f.id, metadata={"job": "x"})
    all_batches = list(client.batches.list())
    assert [b.id for b in all_batches] == [batch.id]  # exactly one, and it is the one returned
    assert batch.metadata["job"] == "x"
    assert len(calls(server, "POST", "/v1/batches", 1)) == 1  # never sent twice
    assert client.batches.wait(batch.id).request_counts.completed == 3


def test_create_timeout_after_the_batch_was_made(
    server: LocalServer, secret: str, sleeps: list[float], jsonl: Callable[..., bytes]
) -> None:
    with Client(api_key=secret, project_id="p", base_url=server.url) as c:
        f = c.files.upload(jsonl(3))
        server.faults.delay_requests(seconds=1.0, method="POST", path=BATCHES, after_handler=True)
        batch = c.batches.create(input_file_id=f.id, timeout=0.3)
        assert [b.id for b in c.batches.list()] == [batch.id]


def test_create_with_500_before_processing_is_sent_again_once(
    calls: Calls,
    client: Client,
    server: LocalServer,
    sleeps: list[float],
    jsonl: Callable[..., bytes],
) -> None:
    f = client.files.upload(jsonl(2))
    server.faults.fail_requests(status=500, count=2, method="POST", path=BATCHES)
    batch = client.batches.create(input_file_id=f.id)
    assert [b.id for b in client.batches.list()] == [batch.id]
    assert calls(server, "POST", "/v1/batches", 3) == [500, 500, 200]
    # each unknown outcome was checked with a listing before the next send
    gets = calls(server, "GET", "/v1/batches", 3)
    assert len(gets) >= 3


def test_create_with_429_is_retried_without_lookup(
    calls: Calls,
    client: Client,
    server: LocalServer,
    sleeps: list[float],
    jsonl: Callable[..., bytes],
) -> None:
    f = client.files.upload(jsonl(2))
    server.faults.fail_requests(status=429, count=1, method="POST", path=BATCHES)
    batch = client.batches.create(input_file_id=f.id)
    assert calls(server, "POST", "/v1/batches", 2) == [429, 200]
    assert calls(server, "GET", "/v1/batches") == []
    assert _tokens(client) == [batch.metadata[CLIENT_TOKEN_KEY]]


def test_create_lost_answer_of_a_validation_failure(
    calls: Calls,
    client: Client,
    server: LocalServer,
    sleeps: list[float],
    jsonl: Callable[..., bytes],
) -> None:
    f = client.files.upload(jsonl(2) + b"not json\n")
    server.faults.drop_connections(method="POST", path=BATCHES, after_handler=True)
    with pytest.raises(BadRequestError) as info:
        client.batches.create(input_file_id=f.id)
    assert info.value.line == 3 and "Line 3 is not valid JSON" in str(info.value)
    assert len(calls(server, "POST", "/v1/batches", 1)) == 1


def test_create_outcome_unknown_when_the_lookup_fails_too(
    calls: Calls,
    client: Client,
    server: LocalServer,
    sleeps: list[float],
    jsonl: Callable[..., bytes],
) -> None:
    f = client.files.upload(jsonl(2))
    server.faults.drop_connections(method="POST", path=BATCHES, after_handler=True)
    server.faults.fail_requests(status=500, count=100, method="GET", path=BATCHES)
    with pytest.raises(CreateOutcomeUnknownError) as info:
        client.batches.create(input_file_id=f.id)
    token = info.value.client_token
    assert token in str(info.value) and "find_by_token" in str(info.value)
    assert len(calls(server, "POST", "/v1/batches", 1)) == 1  # never guessed and resent
    server.faults.clear()
    found = client.batches.find_by_token(token)
    assert found is not None and [b.id for b in client.batches.list()] == [found.id]


def test_create_gives_up_after_retries_without_duplicates(
    calls: Calls,
    client: Client,
    server: LocalServer,
    sleeps: list[float],
    jsonl: Callable[..., bytes],
) -> None:
    f = client.files.upload(jsonl(2))
    server.faults.drop_connections(count=3, method="POST", path=BATCHES)  # before the handler
    client.max_retries = 2
    with pytest.raises(APIConnectionError):
        client.batches.create(input_file_id=f.id)
    assert list(client.batches.list()) == []
    # dropped after sending = outcome unknown: looked up before each resend and at the end
    assert len(calls(server, "GET", "/v1/batches", 3)) >= 3


def test_output_lines_still_parse_after_resume(
    client: Client, server: LocalServer, sleeps: list[float], jsonl: Callable[..., bytes]
) -> None:
    f = client.files.upload(jsonl(500))
    batch = client.batches.wait(client.batches.create(input_file_id=f.id).id)
    server.faults.truncate_downloads(after_bytes=33_333, count=2)
    rows = [orjson.loads(line) for line in client.files.iter_lines(batch.output_file_id or "")]
    assert sorted(r["custom_id"] for r in rows) == sorted(f"row-{i}" for i in range(500))


def test_wait_keeps_polling_through_a_short_outage(
    client: Client, server: LocalServer, sleeps: list[float], jsonl: Callable[..., bytes]
) -> None:
    f = client.files.upload(jsonl(3))
    batch = client.batches.create(input_file_id=f.id)
    # 15 failures: two whole polls (1 + 5 retries each) fail, the third succeeds on its 4th try
    server.faults.fail_requests(status=500, count=15, method="GET", path="^/v1/batches/batch_")
    seen: list[str] = []
    final = client.batches.wait(batch.id, on_update=lambda b: seen.append(b.status))
    assert final.status == "completed" and seen[-1] == "completed"
    # the two failed polls backed off from the 0.2 s poll interval, then polling went on
    assert 0.4 in sleeps and 0.8 in sleeps


def test_wait_gives_up_when_the_outage_outlasts_the_grace(
    client: Client,
    server: LocalServer,
    sleeps: list[float],
    jsonl: Callable[..., bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    f = client.files.upload(jsonl(3))
    batch = client.batches.create(input_file_id=f.id)
    server.faults.fail_requests(status=500, count=6, method="GET", path="^/v1/batches/batch_")
    with pytest.raises(InternalServerError):
        client.batches.wait(batch.id, outage_grace=0)
