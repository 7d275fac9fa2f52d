"""Fixtures for the client tests.

``sleeps`` replaces the client's sleep with a recorder, so retry/backoff tests run instantly
and can assert the delays that would have been slept.
"""

from __future__ import annotations

import pytest

from zgpu_pandas import _client

# A key long enough to be scrubbed from any text a server echoes, and unusual enough that
# finding it anywhere is certainly a leak.
SECRET = "zk-test-7f3a9c1e5b2d4f60-SECRET"


@pytest.fixture
def secret() -> str:
    return SECRET


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(_client, "_sleep", recorded.append)
    return recorded


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's real keys in the environment must not leak into (or change) the tests.
    for name in ("ZGPU_API_KEY", "ZGPU_PROJECT_ID", "ZGPU_BASE_URL", "ZEROGPU_API_KEY",
                 "ZEROGPU_PROJECT_ID", "ZEROGPU_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                 "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
