"""Fixtures for the resume, retry, dedup, structured-output and estimate tests.

Every test gets its own job journal (``ZGPU_STATE_DIR`` under ``tmp_path``), so jobs never
resume across tests; ``client`` talks to the test's own local server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from resume_support import KEY

from zgpu_pandas._client import Client
from zgpu_pandas.server import LocalServer


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
