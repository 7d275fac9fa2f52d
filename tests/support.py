"""Helpers shared by the tests: request lines, JSONL, and an HTTP client for the local server
with batch helpers. Import them by name (``from tests.support import chat_line``); fixtures
live in ``tests/conftest.py``.

``ROOT``         the project's top folder
``API_HEADERS``  the two ZeroGPU headers the fixture server accepts
``MODEL``        the built-in model's name
``TERMINAL``     the terminal batch statuses
``ENDPOINTS``    every authenticated API route, with ids of the right shape
``chat_line``    one batch request line; ``to_jsonl`` serialises lines
``ApiClient``    httpx.Client with ``upload``, ``create_batch``, ``submit``, ``wait``, ...
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from zgpu_pandas import TERMINAL_STATUSES

#: the project's top folder (README, notebooks, pyproject.toml)
ROOT = Path(__file__).resolve().parents[1]
API_HEADERS = {"x-api-key": "test-key", "x-project-id": "test-project"}
MODEL = "LFM2.5-1.2B-Instruct"
TERMINAL = TERMINAL_STATUSES
# Every authenticated API route, with ids of the right shape (that need not exist).
ENDPOINTS = [
    ("POST", "/v1/files"),
    ("GET", "/v1/files"),
    ("GET", "/v1/files/file-0123456789abcdef01234567"),
    ("GET", "/v1/files/file-0123456789abcdef01234567/content"),
    ("DELETE", "/v1/files/file-0123456789abcdef01234567"),
    ("POST", "/v1/batches"),
    ("GET", "/v1/batches"),
    ("GET", "/v1/batches/batch_01HZX0000000000000000000AB"),
    ("POST", "/v1/batches/batch_01HZX0000000000000000000AB/cancel"),
    ("POST", "/v1/chat/completions"),
]


def chat_line(custom_id: str, content: str, *, model: str = MODEL, **body: Any) -> dict[str, Any]:
    """One batch request line asking ``model`` about ``content``."""
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": content}], **body},
    }


def to_jsonl(lines: list[dict[str, Any]] | list[bytes]) -> bytes:
    """Serialise request lines (dicts, or raw bytes lines) as JSONL with a final newline."""
    return b"".join((x if isinstance(x, bytes) else orjson.dumps(x)) + b"\n" for x in lines)


class ApiClient(httpx.Client):
    """httpx.Client for the local server with a few batch helpers."""

    def upload(self, data: bytes, *, filename: str = "input.jsonl") -> dict[str, Any]:
        r = self.post("/v1/files", files={"file": (filename, data)}, data={"purpose": "batch"})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def create_batch(self, file_id: str, **extra: Any) -> httpx.Response:
        body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", **extra}
        return self.post("/v1/batches", json=body)

    def submit(self, lines: list[dict[str, Any]] | list[bytes], **extra: Any) -> dict[str, Any]:
        """Upload ``lines`` and create a batch from them; returns the created batch."""
        f = self.upload(to_jsonl(lines))
        r = self.create_batch(f["id"], **extra)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait(self, batch_id: str, *, timeout: float = 60.0) -> dict[str, Any]:
        """Poll until the batch is terminal (fails the test after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            r = self.get(f"/v1/batches/{batch_id}")
            assert r.status_code == 200, r.text
            batch = dict(r.json())
            if batch["status"] in TERMINAL:
                return batch
            if time.monotonic() > deadline:
                pytest.fail(f"batch {batch_id} still {batch['status']} after {timeout} s")
            time.sleep(0.02)

    def wait_until(
        self, batch_id: str, pred: Callable[[dict[str, Any]], bool], *, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Poll until ``pred(batch)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            batch = dict(self.get(f"/v1/batches/{batch_id}").json())
            if pred(batch):
                return batch
            if time.monotonic() > deadline:
                pytest.fail(f"batch {batch_id}: condition not reached in {timeout} s: {batch}")
            time.sleep(0.01)

    def jsonl_of(self, file_id: str | None) -> list[dict[str, Any]]:
        """The parsed lines of a file (empty for ``None``)."""
        if file_id is None:
            return []
        r = self.get(f"/v1/files/{file_id}/content")
        assert r.status_code == 200, r.text
        return [orjson.loads(x) for x in r.content.splitlines() if x.strip()]


class FrameKit:
    """What a test needs to say the same thing of a pandas and a Polars frame: make one from
    columns, read a column back as a Python list (``None`` where missing), count rows and
    name columns. The ``kit`` fixture gives one per library, so behaviour tests run for both.

    Example::

        def test_x(kit):
            df = kit.frame({"q": ["a", None]})
            out = df.zgpu.batch_chat("q", ...)
            assert kit.col(out, "response_status") == ["ok", "skipped"]
    """

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "pandas":
            import pandas as pd

            self.module: Any = pd
        else:
            import polars as pl

            self.module = pl

    def __repr__(self) -> str:
        return self.name

    def frame(self, data: dict[str, list[Any]]) -> Any:
        if self.name == "pandas":
            return self.module.DataFrame(data)
        return self.module.DataFrame(data, strict=False)

    def col(self, out: Any, name: str) -> list[Any]:
        if self.name == "pandas":
            s = out[name]
            return [None if v is None or (not isinstance(v, list | dict) and self.module.isna(v)) else v for v in s.tolist()]
        return out.get_column(name).to_list()

    def rows(self, out: Any) -> int:
        return len(out) if self.name == "pandas" else out.height

    def columns(self, out: Any) -> list[Any]:
        return list(out.columns)

    def is_native(self, out: Any) -> bool:
        return isinstance(out, self.module.DataFrame)

    def unchanged(self, before: Any, after: Any) -> bool:
        """The caller's frame is as it was."""
        if self.name == "pandas":
            return bool(before.equals(after)) and list(before.columns) == list(after.columns)
        return bool(before.equals(after))

    def copy(self, df: Any) -> Any:
        return df.copy() if self.name == "pandas" else df.clone()


def arrow_pools() -> list[Any]:
    """Every Arrow memory pool of the process (the default one and the system allocator,
    which a job's steps switch to: core/memory.py), each once."""
    import pyarrow as pa

    pools: dict[str, Any] = {}
    for backend in pa.supported_memory_backends():
        pools[backend] = getattr(pa, f"{backend}_memory_pool")()
    return list(pools.values())


def arrow_bytes() -> int:
    """Arrow bytes live now, over every pool."""
    return sum(p.bytes_allocated() for p in arrow_pools())


def arrow_peak_since(before: list[int]) -> int:
    """An upper bound of the Arrow bytes held at once since ``before`` (each pool's
    ``bytes_allocated()`` then, in :func:`arrow_pools` order): the sum of each pool's rise to
    its own highest point. Pools count their highest point since the process started, so
    measure in a fresh process."""
    return sum(p.max_memory() - b for p, b in zip(arrow_pools(), before, strict=True))
