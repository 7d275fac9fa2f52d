"""Helpers shared by the tests in this folder."""

from __future__ import annotations

from typing import Any

from zgpu_pandas.server import LocalServer
from zgpu_pandas.server.engines import builtin_reply

MODEL = "LFM2.5-1.2B-Instruct"
KEY = "sk-test-resume-secret-0123456789abcdef"


def api_calls(server: LocalServer, method: str, path: str) -> int:
    """How many ``method path`` requests the server answered (path compared exactly)."""
    return sum(1 for m, p, _ in server.request_log if m == method and p == path)


def body(user: str, **params: Any) -> dict[str, Any]:
    """The request body the accessor sends for a one-column prompt."""
    return {"model": MODEL, "messages": [{"role": "user", "content": user}], **params}


def assert_all_answered(out: Any, texts: list[str], **params: Any) -> None:
    """Every row ok, with the engine's answer to exactly its own prompt (a pandas or a
    Polars frame)."""
    status, text = list(out["response_status"]), list(out["response"])
    assert status == ["ok"] * len(texts), list(out["response_error"])
    assert text == [builtin_reply(body(t, **params)) for t in texts]
