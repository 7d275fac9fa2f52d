"""Every exception class, produced by the real local server (auth switches, fault injection,
real validation), except the 2xx-but-not-JSON case, which lives with the wire cases."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import pytest

from zgpu_pandas._client import Client
from zgpu_pandas.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InsufficientQuotaError,
    InternalServerError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    TooManyRequestsError,
    ZgpuError,
)
from zgpu_pandas.server import LocalServer

Calls = Callable[..., list[int]]


def test_validation_failure_names_line_and_rule(
    client: Client, jsonl: Callable[..., bytes]
) -> None:
    data = jsonl(3) + jsonl(1)  # the 4th line repeats custom_id "row-0"
    f = client.files.upload(data)
    with pytest.raises(BadRequestError) as info:
        client.batches.create(input_file_id=f.id)
    exc = info.value
    assert exc.status_code == 400 and exc.line == 4
    assert exc.code and exc.type == "invalid_request_error"
    assert exc.message == 'Line 4 duplicates custom_id "row-0"'
    assert exc.request_id and exc.request_id.startswith("req_")
    text = str(exc)
    assert "Line 4" in text and exc.code in text and "fix line 4" in text
    # the service keeps the failed batch, with the same error
    failed = next(iter(client.batches.list()))
    assert failed.status == "failed" and failed.errors and failed.errors[0].line == 4


def test_create_level_bad_request(client: Client, jsonl: Callable[..., bytes]) -> None:
    f = client.files.upload(jsonl(1))
    with pytest.raises(BadRequestError, match='completion_window must be "24h"') as info:
        client.batches.create(input_file_id=f.id, completion_window="1h")
    assert info.value.line is None


def test_missing_project_is_401(server: LocalServer, secret: str) -> None:
    with (
        Client(api_key=secret, base_url=server.url) as c,
        pytest.raises(AuthenticationError) as info,
    ):
        list(c.files.list())
    exc = info.value
    assert exc.status_code == 401 and exc.message == "Missing authentication headers"
    assert "x-project-id" in str(exc)  # the hint says what to set


@pytest.fixture
def keyed_server() -> Iterator[LocalServer]:
    with LocalServer(api_keys={"the-only-good-key-123"}) as srv:
        yield srv


def test_refused_key_is_403(keyed_server: LocalServer, secret: str) -> None:
    with (
        Client(api_key=secret, project_id="p", base_url=keyed_server.url) as c,
        pytest.raises(PermissionDeniedError) as info,
    ):
        c.files.retrieve("file-x")
    exc = info.value
    assert exc.status_code == 403 and exc.message == "Invalid credentials"
    assert "from argument" in str(exc) and "'p'" in str(exc)
    with Client(api_key="the-only-good-key-123", project_id="p", base_url=keyed_server.url) as good:
        assert list(good.files.list()) == []


def test_not_found_is_404(client: Client) -> None:
    with pytest.raises(NotFoundError, match="File file-0 not found") as info:
        client.files.retrieve("file-0")
    assert info.value.status_code == 404


def test_another_projects_file_is_404(client: Client, server: LocalServer, secret: str) -> None:
    f = client.files.upload(b"{}\n")
    with (
        Client(api_key=secret, project_id="other-project", base_url=server.url) as other,
        pytest.raises(NotFoundError),
    ):
        other.files.retrieve(f.id)


def test_conflict_is_409(client: Client, jsonl: Callable[..., bytes]) -> None:
    f = client.files.upload(jsonl(1))
    batch = client.batches.wait(client.batches.create(input_file_id=f.id).id)
    with pytest.raises(ConflictError):
        client.batches.cancel(batch.id)


def test_upload_over_the_server_limit_is_413(
    secret: str, jsonl: Callable[..., bytes], calls: Calls, sleeps: list[float]
) -> None:
    with (
        LocalServer(max_upload_bytes=1000) as srv,
        Client(api_key=secret, project_id="p", base_url=srv.url) as c,
    ):
        with pytest.raises(PayloadTooLargeError) as info:
            c.files.upload(jsonl(50))
        assert info.value.status_code == 413 and info.value.code == "file_too_large"
        # one attempt: a 413 is not retried
        assert sleeps == [] and calls(srv, "POST", "/v1/files", 1) == [413]


def test_rate_limit_after_retries(client: Client, server: LocalServer, sleeps: list[float]) -> None:
    server.faults.fail_requests(status=429, count=10, method="GET")
    with pytest.raises(RateLimitError) as info:
        list(client.files.list())
    exc = info.value
    assert isinstance(exc, TooManyRequestsError) and exc.code == "rate_limit_exceeded"
    assert len(sleeps) == client.max_retries == 5


def test_insufficient_quota_is_never_retried(
    client: Client, server: LocalServer, sleeps: list[float], calls: Calls
) -> None:
    server.faults.fail_requests(status=429, code="insufficient_quota", count=5)
    with pytest.raises(InsufficientQuotaError) as info:
        client.files.upload(b"{}\n")
    assert isinstance(info.value, TooManyRequestsError)
    assert "out of credit" in str(info.value)
    assert sleeps == [] and calls(server, "POST", "/v1/files", 1) == [429]
    with pytest.raises(InsufficientQuotaError):
        client.batches.retrieve("batch_x")
    assert sleeps == []


def test_server_error_after_retries(
    client: Client, server: LocalServer, sleeps: list[float]
) -> None:
    server.faults.fail_requests(status=503, count=10, method="GET")
    with pytest.raises(InternalServerError) as info:
        client.batches.retrieve("batch_x")
    assert info.value.status_code == 503 and len(sleeps) == 5


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused(secret: str, sleeps: list[float]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with (
        Client(api_key=secret, base_url=url, max_retries=2) as c,
        pytest.raises(APIConnectionError, match="could not connect") as info,
    ):
        c.files.retrieve("file-x")
    assert info.value.request_sent is False and len(sleeps) == 2


def test_timeout(server: LocalServer, secret: str, sleeps: list[float]) -> None:
    server.faults.delay_requests(seconds=0.6, count=2, method="GET")
    with (
        Client(
            api_key=secret, project_id="p", base_url=server.url, timeout=0.2, max_retries=1
        ) as c,
        pytest.raises(APITimeoutError, match="timed out"),
    ):
        c.files.retrieve("file-x")
    assert len(sleeps) == 1


def test_hierarchy() -> None:
    for cls in (
        BadRequestError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        PayloadTooLargeError,
        RateLimitError,
        InsufficientQuotaError,
        InternalServerError,
    ):
        assert (
            issubclass(cls, APIStatusError)
            and issubclass(cls, APIError)
            and issubclass(cls, ZgpuError)
        )
    assert issubclass(APITimeoutError, APIConnectionError)
