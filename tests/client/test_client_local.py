"""``base_url="local"``: the process-wide local server, no key or project needed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from zgpu_pandas._client import Client
from zgpu_pandas.server import shared_local_server


def test_local_preset_runs_a_batch_without_setup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jsonl: Callable[..., bytes], secret: str
) -> None:
    monkeypatch.setenv("ZGPU_LOCAL_DATA_DIR", str(tmp_path / "shared"))
    # a real key in the environment is not sent to the toy server
    monkeypatch.setenv("ZGPU_API_KEY", secret)
    with Client(base_url="local") as client:
        assert client.is_local and client.poll_interval == 0.2
        assert client.base_url == shared_local_server().url
        assert client.base_url.startswith("http://127.0.0.1:")
        assert client.project_id == "local"
        assert client._settings.api_key.get_secret_value() == "local"
        f = client.files.upload(jsonl(3))
        batch = client.batches.wait(client.batches.create(input_file_id=f.id).id)
        assert batch.status == "completed" and batch.request_counts.completed == 3
    # the same server is reused by the next client in this process
    with Client(base_url="LOCAL", api_key="explicit-key") as again:
        assert again.base_url == client.base_url
        assert again.batches.retrieve(batch.id).id == batch.id
