"""Batches endpoints against the real local server: create, retrieve, list, cancel, wait."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from zgpu_pandas._client import CLIENT_TOKEN_KEY, Client
from zgpu_pandas._models import Batch
from zgpu_pandas.errors import ConflictError, NotFoundError, WaitTimeoutError
from zgpu_pandas.server import LocalServer

Calls = Callable[..., list[int]]


@pytest.fixture
def slow_server() -> Iterator[LocalServer]:
    """Each line takes a while, so a batch is still running when the test looks at it."""
    with LocalServer(latency=0.05, concurrency=1) as srv:
        yield srv


@pytest.fixture
def slow_client(slow_server: LocalServer, secret: str) -> Iterator[Client]:
    with Client(api_key=secret, project_id="proj-test", base_url=slow_server.url) as c:
        yield c


def test_create_retrieve_and_metadata(client: Client, jsonl: Callable[..., bytes]) -> None:
    f = client.files.upload(jsonl(4))
    batch = client.batches.create(input_file_id=f.id, metadata={"job": "reviews", "run": "1"})
    assert batch.id.startswith("batch_") and batch.object == "batch"
    assert batch.status in ("validating", "in_progress", "finalizing", "completed")
    assert batch.input_file_id == f.id and batch.endpoint == "/v1/chat/completions"
    assert batch.completion_window == "24h"
    assert batch.request_counts.total == 4
    assert batch.created_at is not None and batch.expires_at == batch.created_at + 86400
    # the caller's metadata is kept and the create token is added next to it
    assert batch.metadata["job"] == "reviews" and batch.metadata["run"] == "1"
    token = batch.metadata[CLIENT_TOKEN_KEY]
    assert isinstance(token, str) and len(token) == 32

    again = client.batches.retrieve(batch.id)
    assert again.id == batch.id and again.metadata == batch.metadata
    found = client.batches.find_by_token(token)
    assert found is not None and found.id == batch.id


def test_a_token_passed_in_metadata_is_used(client: Client, jsonl: Callable[..., bytes]) -> None:
    f = client.files.upload(jsonl(1))
    batch = client.batches.create(
        input_file_id=f.id, metadata={CLIENT_TOKEN_KEY: "journal-token-1"}
    )
    assert batch.metadata[CLIENT_TOKEN_KEY] == "journal-token-1"
    found = client.batches.find_by_token("journal-token-1")
    assert found is not None and found.id == batch.id
    assert client.batches.find_by_token("no-such-token") is None


def test_wait_reports_progress_until_completed(
    slow_client: Client, jsonl: Callable[..., bytes]
) -> None:
    f = slow_client.files.upload(jsonl(12))
    batch = slow_client.batches.create(input_file_id=f.id)
    seen: list[Batch] = []
    final = slow_client.batches.wait(batch.id, poll_interval=0.05, on_update=seen.append)
    assert final.status == "completed" and final.is_terminal
    assert seen[-1] == final and len(seen) >= 2
    assert not seen[0].is_terminal
    done = [b.request_counts.done for b in seen]
    assert done == sorted(done)  # counts only go up
    counts = final.request_counts
    assert (counts.total, counts.completed, counts.failed) == (12, 12, 0)
    assert final.in_progress_at is not None and final.completed_at is not None
    assert final.output_file_id and final.error_file_id is None


def test_wait_with_failed_lines(
    client: Client, server: LocalServer, jsonl: Callable[..., bytes]
) -> None:
    server.faults.fail_lines(code="rate_limit_exceeded", custom_ids=r"^row-[02]$")
    f = client.files.upload(jsonl(4))
    final = client.batches.wait(client.batches.create(input_file_id=f.id).id)
    assert final.status == "completed"
    assert (final.request_counts.completed, final.request_counts.failed) == (2, 2)
    assert final.output_file_id and final.error_file_id
    assert client.files.retrieve(final.error_file_id).is_error is True


def test_wait_timeout_carries_the_last_state(
    slow_client: Client, jsonl: Callable[..., bytes]
) -> None:
    f = slow_client.files.upload(jsonl(200))
    batch = slow_client.batches.create(input_file_id=f.id)
    with pytest.raises(WaitTimeoutError, match="keeps running") as info:
        slow_client.batches.wait(batch.id, poll_interval=0.05, timeout=0.2)
    assert info.value.batch.id == batch.id and not info.value.batch.is_terminal
    slow_client.batches.cancel(batch.id)


def test_wait_uses_the_client_interval(
    client: Client, jsonl: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from zgpu_pandas import _client

    delays: list[float] = []
    real_sleep = _client._sleep

    def recording(seconds: float) -> None:
        delays.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(_client, "_sleep", recording)
    f = client.files.upload(jsonl(1))
    client.batches.wait(client.batches.create(input_file_id=f.id).id)
    assert client.is_local and client.poll_interval == 0.2
    assert all(d == 0.2 for d in delays)


def test_list_follows_pages(client: Client, server: LocalServer, calls: Calls) -> None:
    f = client.files.upload(
        b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", '
        b'"body": {"model": "LFM2.5-1.2B-Instruct", "messages": []}}\n'
    )
    ids = [client.batches.create(input_file_id=f.id).id for _ in range(5)]
    listed = [b.id for b in client.batches.list(limit=2)]
    assert listed == ids[::-1]  # newest first
    assert calls(server, "GET", "/v1/batches", 3) == [200] * 3  # 2 + 2 + 1


def test_cancel_running_batch(slow_client: Client, jsonl: Callable[..., bytes]) -> None:
    f = slow_client.files.upload(jsonl(200))
    batch = slow_client.batches.create(input_file_id=f.id)
    cancelling = slow_client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled")
    assert cancelling.cancelling_at is not None
    again = slow_client.batches.cancel(batch.id)  # idempotent
    assert again.status in ("cancelling", "cancelled")
    final = slow_client.batches.wait(batch.id, poll_interval=0.05)
    assert final.status == "cancelled" and final.cancelled_at is not None
    assert final.request_counts.completed < 200
    assert final.request_counts.completed + final.request_counts.failed == 200


def test_cancel_finished_batch_is_a_conflict(client: Client, jsonl: Callable[..., bytes]) -> None:
    f = client.files.upload(jsonl(1))
    batch = client.batches.wait(client.batches.create(input_file_id=f.id).id)
    with pytest.raises(ConflictError) as info:
        client.batches.cancel(batch.id)
    assert info.value.status_code == 409


def test_unknown_batch(client: Client) -> None:
    with pytest.raises(NotFoundError, match="batch_nope"):
        client.batches.retrieve("batch_nope")
    with pytest.raises(NotFoundError):
        client.batches.cancel("batch_nope")
