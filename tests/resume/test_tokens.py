"""Finding batches by create token across processes (core/tokens.py): the service's own
order decides which of two twins counts, and look-ups list only what is new."""

from __future__ import annotations

from typing import Any

from tests.support import API_HEADERS, chat_line, to_jsonl
from zgpu_pandas import Client
from zgpu_pandas._models import Batch
from zgpu_pandas.core.tokens import TokenIndex, keep_of


def _batch(batch_id: str, status: str = "in_progress") -> Batch:
    return Batch.from_dict(
        {"id": batch_id, "object": "batch", "endpoint": "/v1/chat/completions",
         "input_file_id": "file-x", "completion_window": "24h", "status": status,
         "created_at": 1_700_000_000, "metadata": {}}
    )  # fmt: skip


def test_the_oldest_live_twin_counts_whatever_the_ids_say() -> None:
    # listed newest first; the ids sort the other way round, the seconds are equal
    newer, older = _batch("batch_A"), _batch("batch_Z")
    assert keep_of([newer, older]) is older
    assert keep_of([newer, _batch("batch_Z", "cancelled")]) is newer  # a cancelled twin
    both_dead = [_batch("batch_A", "cancelled"), _batch("batch_Z", "cancelling")]
    assert keep_of(both_dead) is both_dead[1]
    assert keep_of([]) is None


def test_a_look_up_lists_only_the_batches_created_since_the_last(api: Any, server: Any) -> None:
    file_id = api.upload(to_jsonl([chat_line("row-0", "hi")]))["id"]
    for i in range(150):
        meta = {"zgpu_client_token": f"tok-{i % 3}"}
        assert api.create_batch(file_id, metadata=meta).status_code == 200
    pages: list[int] = []
    with Client(api_key=API_HEADERS["x-api-key"], project_id=API_HEADERS["x-project-id"],
                base_url=server.url) as client:  # fmt: skip
        listing = client.batches.list

        def counted(**kw: Any) -> Any:
            for n, batch in enumerate(listing(**kw)):
                if n % 100 == 0:
                    pages.append(n)
                yield batch

        client.batches.list = counted  # type: ignore[method-assign]
        index = TokenIndex()
        first = index.batches(client, "tok-1")
        assert len(first) == 50 and len(pages) == 2  # the whole history, once
        assert [b.id for b in first] == sorted((b.id for b in first), reverse=True)
        assert api.create_batch(file_id, metadata={"zgpu_client_token": "tok-1"}).status_code == 200
        pages.clear()
        again = index.batches(client, "tok-1")
        assert len(again) == 51
        assert [b.id for b in again[1:]] == [b.id for b in first]  # the new one first
        assert len(pages) == 1  # one page: the new batch, then one already seen
        assert index.batches(client, "tok-9") == []
