"""Wire cases the local server cannot produce, on ``httpx.MockTransport``.

Everything else is tested against the real local server; these are the answers a proxy or
another implementation may give: HTTP-date and millisecond Retry-After, a redirect, a 200
that is not JSON, a key echoed back in an error, a download server without Range support,
and a stream that ends cleanly but short.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from zgpu_pandas._client import Client
from zgpu_pandas.errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    InternalServerError,
    RateLimitError,
)

Handler = Callable[[httpx.Request], httpx.Response]
SECRET = "zk-test-wire-5e1d77a0c3b94f28-SECRET"


def mock_client(handler: Handler, **kwargs: object) -> Client:
    transport = httpx.MockTransport(handler)
    options: dict[str, object] = {"api_key": SECRET, "base_url": "https://api.zerogpu.ai", **kwargs}
    return Client(http_client=httpx.Client(transport=transport), **options)  # type: ignore[arg-type]


def rate_limited_then_ok(headers: dict[str, str]) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(
                429,
                headers=headers,
                json={
                    "error": {
                        "message": "slow down",
                        "type": "rate_limit_exceeded",
                        "code": "rate_limit_exceeded",
                    }
                },
            )
        return httpx.Response(200, json={"id": "batch_1", "status": "in_progress"})

    return handler, seen


def test_retry_after_http_date_is_honoured(sleeps: list[float]) -> None:
    when = email.utils.formatdate(time.time() + 7, usegmt=True)
    handler, seen = rate_limited_then_ok({"Retry-After": when})
    assert mock_client(handler).batches.retrieve("batch_1").id == "batch_1"
    assert len(seen) == 2
    assert len(sleeps) == 1 and 4.0 <= sleeps[0] <= 7.5


def test_retry_after_ms_is_honoured(sleeps: list[float]) -> None:
    handler, seen = rate_limited_then_ok({"retry-after-ms": "1500"})
    mock_client(handler).batches.retrieve("batch_1")
    assert sleeps == [1.5] and len(seen) == 2


def test_a_very_long_retry_after_is_not_slept_through(sleeps: list[float]) -> None:
    handler, seen = rate_limited_then_ok({"Retry-After": "3600"})
    with pytest.raises(RateLimitError) as info:
        mock_client(handler).batches.retrieve("batch_1")
    assert info.value.retry_after == 3600 and sleeps == [] and len(seen) == 1


def test_redirect_is_not_followed_and_key_stays_home() -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(307, headers={"Location": "https://evil.example/v1/batches"})

    with pytest.raises(APIStatusError, match="redirects are not followed") as info:
        list(mock_client(handler).batches.list())
    assert info.value.status_code == 307
    assert hosts == ["api.zerogpu.ai"]


def test_success_status_with_html_body() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, html="<html>captive portal</html>", headers={"x-request-id": "req_9"}
        )

    with pytest.raises(APIResponseValidationError, match="expected JSON") as info:
        mock_client(handler).files.retrieve("file-1")
    assert info.value.request_id == "req_9"


def test_gateway_html_error_gives_internal_server_error(sleeps: list[float]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad Gateway</html>")

    with pytest.raises(InternalServerError, match="HTTP 502") as info:
        mock_client(handler, max_retries=2).files.retrieve("file-1")
    assert info.value.status_code == 502 and len(sleeps) == 2


def test_key_echoed_by_a_server_is_scrubbed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        echoed = request.headers["x-api-key"]
        return httpx.Response(
            403,
            json={
                "error": {
                    "message": f"Invalid credentials: {echoed}",
                    "type": "authentication_error",
                    "param": echoed,
                }
            },
        )

    with pytest.raises(APIStatusError) as info:
        mock_client(handler).files.retrieve("file-1")
    exc = info.value
    for text in (str(exc), repr(exc), exc.message, str(exc.body), str(exc.param)):
        assert SECRET not in text
    assert "***" in exc.message


CONTENT = b"".join(b'{"custom_id": "row-%d", "n": %d}\n' % (i, i) for i in range(2000))


def test_resume_on_a_server_without_range_restarts_and_skips(sleeps: list[float]) -> None:
    calls: list[str | None] = []

    class Breaking(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield CONTENT[:10_001]
            raise httpx.ReadError("connection reset")

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers.get("range"))
        if len(calls) == 1:
            return httpx.Response(
                200, stream=Breaking(), headers={"content-length": str(len(CONTENT))}
            )
        return httpx.Response(200, content=CONTENT)  # ignores Range: full body again

    lines = list(mock_client(handler).files.iter_lines("file-out"))
    assert calls == [None, "bytes=10001-"]
    assert lines == CONTENT.splitlines()


def test_a_short_stream_without_length_is_detected_and_resumed(sleeps: list[float]) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.path} {request.headers.get('range')}")
        if request.url.path == "/v1/files/file-out":
            return httpx.Response(200, json={"id": "file-out", "bytes": len(CONTENT)})
        rng = request.headers.get("range")
        if rng is None:  # a clean end of a chunked stream, but short
            return httpx.Response(200, content=iter([CONTENT[:5000]]))
        start = int(rng.removeprefix("bytes=").rstrip("-"))
        return httpx.Response(
            206,
            content=CONTENT[start:],
            headers={"content-range": f"bytes {start}-{len(CONTENT) - 1}/{len(CONTENT)}"},
        )

    data = b"".join(mock_client(handler).files.iter_bytes("file-out"))
    assert data == CONTENT
    assert seen == [
        "/v1/files/file-out/content None",
        "/v1/files/file-out None",
        "/v1/files/file-out/content bytes=5000-",
    ]


def test_download_gives_up_after_max_retries(sleeps: list[float]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("reset")

    with pytest.raises(APIConnectionError, match="connection was lost"):
        list(mock_client(handler, max_retries=3).files.iter_bytes("file-out"))
    assert len(sleeps) == 3


def test_path_ids_are_quoted() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"id": "x"})

    mock_client(handler).files.retrieve("../batches")
    assert paths == ["/v1/files/..%2Fbatches"]
    with pytest.raises(ValueError, match="file_id must be a non-empty string"):
        mock_client(handler).files.retrieve("")
