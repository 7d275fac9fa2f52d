"""Fixtures for the client tests.

``sleeps`` replaces the client's sleep with a recorder, so retry/backoff tests run instantly
and can assert the delays that would have been slept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import orjson
import pytest

from zgpu_pandas import _client
from zgpu_pandas._client import Client

if TYPE_CHECKING:
    from zgpu_pandas.server import LocalServer

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
    for name in (
        "ZGPU_API_KEY",
        "ZGPU_PROJECT_ID",
        "ZGPU_BASE_URL",
        "ZEROGPU_API_KEY",
        "ZEROGPU_PROJECT_ID",
        "ZEROGPU_BASE_URL",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_PROJECT_ID",
    ):
        monkeypatch.delenv(name, raising=False)


MODEL = "LFM2.5-1.2B-Instruct"


def request_lines(
    n: int, *, prefix: str = "row", text: str = "Review number {i}: great value"
) -> bytes:
    """``n`` valid batch input lines as JSONL bytes."""
    out = bytearray()
    for i in range(n):
        out += orjson.dumps(
            {
                "custom_id": f"{prefix}-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": MODEL,
                    "messages": [{"role": "user", "content": text.format(i=i)}],
                },
            }
        )
        out += b"\n"
    return bytes(out)


@pytest.fixture
def jsonl() -> Callable[..., bytes]:
    return request_lines


@pytest.fixture
def client(server: LocalServer) -> Iterator[Client]:
    """A client for the function's fresh local server, with a recognisable secret key."""
    with Client(api_key=SECRET, project_id="proj-test", base_url=server.url) as c:
        yield c


Calls = Callable[..., list[int]]


@pytest.fixture
def calls() -> Calls:
    """``calls(server, method, path, at_least=0, *, since=0)``: the statuses the server
    logged for ``method path`` (entries from index ``since`` of ``server.request_log``).

    The server logs a request just *after* answering it, so the client may hold the answer
    a moment before the entry exists: wait (briefly) for ``at_least`` entries first, so
    assertions on the log never race the server.
    """
    import time

    def statuses(
        server: LocalServer, method: str, path: str, at_least: int = 0, *, since: int = 0
    ) -> list[int]:
        deadline = time.monotonic() + 5.0
        while True:
            found = [
                status for m, p, status in server.request_log[since:] if m == method and p == path
            ]
            if len(found) >= at_least or time.monotonic() > deadline:
                return found
            time.sleep(0.005)

    return statuses
