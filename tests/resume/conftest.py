"""Fixtures for this folder: every test gets its own job journal (``state_dir``, autouse:
jobs never resume across tests) and ``client``, a client for the test's own local server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zgpu_pandas._client import Client
from zgpu_pandas.server import LocalServer

from .resume_support import KEY


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This test's journal folder."""
    state = tmp_path / "zgpu-state"
    monkeypatch.setenv("ZGPU_STATE_DIR", str(state))
    monkeypatch.delenv("ZGPU_TEST_KILL_AT", raising=False)
    return state


@pytest.fixture
def client(server: LocalServer) -> Iterator[Client]:
    with Client(api_key=KEY, project_id="proj", base_url=server.url, poll_interval=0.02) as c:
        yield c
