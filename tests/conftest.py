"""Shared fixtures: a real local server on loopback and an HTTP client for it.

Fixtures:
    server       a fresh LocalServer (admin on, strict auth, temp data dir) per test
    api          an httpx.Client on ``server`` with the two ZeroGPU headers, plus helpers
                 (``upload``, ``create_batch``, ``submit``, ``wait``, ``jsonl_of``)
    make_lines   builds request lines: ``make_lines(3)`` -> list of dicts
    start_server factory: ``start_server(latency=0.05, ...)`` -> a started LocalServer with
                 those options (temp data dir unless given), stopped after the test
    api_for      factory: ``api_for(srv, **headers)`` -> ApiClient on any server

Also, for the whole session, ``ZGPU_LOCAL_DATA_DIR`` points at a temp dir (unless already
set), so ``base_url="local"`` in tests never touches the user's cache directory.

Module helpers (import with ``from conftest import ...`` is not needed; use the fixtures):
``chat_line``, ``to_jsonl``, ``API_HEADERS``, ``MODEL``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from zgpu_pandas.server import LocalServer

API_HEADERS = {"x-api-key": "test-key", "x-project-id": "test-project"}
MODEL = "LFM2.5-1.2B-Instruct"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
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


@pytest.fixture(autouse=True, scope="session")
def _isolated_local_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the shared local server (``base_url="local"``) out of the user's cache dir."""
    key = "ZGPU_LOCAL_DATA_DIR"
    if os.environ.get(key):
        yield
        return
    os.environ[key] = str(tmp_path_factory.mktemp("zgpu-local-data"))
    try:
        yield
    finally:
        os.environ.pop(key, None)


@pytest.fixture(autouse=True)
def _isolated_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own job journal (``ZGPU_STATE_DIR``) and no credentials from the
    machine running the suite, so no test reads or writes the user's real journal or key."""
    for key in ("ZGPU_API_KEY", "ZEROGPU_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ZGPU_STATE_DIR", str(tmp_path / "zgpu-state"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    """A fresh local server per test: admin endpoints on, strict auth, its own data dir."""
    with LocalServer(data_dir=tmp_path / "zgpu-server", admin=True) as srv:
        yield srv


@pytest.fixture
def api(server: LocalServer) -> Iterator[ApiClient]:
    """An HTTP client on ``server`` sending ``API_HEADERS``."""
    with ApiClient(base_url=server.url, headers=API_HEADERS, timeout=30.0) as client:
        yield client


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., LocalServer]]:
    """Factory of extra servers with chosen options (admin on unless told otherwise)."""
    started: list[LocalServer] = []

    def start(**options: Any) -> LocalServer:
        options.setdefault("admin", True)
        options.setdefault("data_dir", tmp_path / f"zgpu-server-{len(started) + 1}")
        srv = LocalServer(**options).start()
        started.append(srv)
        return srv

    yield start
    for srv in reversed(started):
        srv.stop()


@pytest.fixture
def api_for() -> Iterator[Callable[..., ApiClient]]:
    """Factory of API clients: ``api_for(srv)`` uses API_HEADERS, keyword headers
    override them (``None`` drops one)."""
    clients: list[ApiClient] = []

    def make(srv: LocalServer, **headers: str | None) -> ApiClient:
        merged = {**API_HEADERS, **{k.replace("_", "-"): v for k, v in headers.items()}}
        client = ApiClient(
            base_url=srv.url, headers={k: v for k, v in merged.items() if v is not None},
            timeout=30.0,
        )
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def make_lines() -> Callable[..., list[dict[str, Any]]]:
    """``make_lines(n, prefix="row-", model=MODEL, **body)``: n chat request lines asking
    "question <i>"."""

    def make(n: int, *, prefix: str = "row-", model: str = MODEL, **body: Any) -> list[dict[str, Any]]:
        return [chat_line(f"{prefix}{i}", f"question {i}", model=model, **body) for i in range(n)]

    return make
