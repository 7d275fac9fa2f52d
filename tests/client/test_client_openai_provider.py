"""``provider="openai"`` end to end: the client sends ``Authorization: Bearer <key>`` (and
``OpenAI-Project``), and a local server started with ``accept_bearer=True`` takes them as
the key and project. Upload, create, wait and download, with every request's headers
recorded as they left the client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from zgpu_pandas._client import Client
from zgpu_pandas.errors import AuthenticationError, PermissionDeniedError
from zgpu_pandas.server import LocalServer

PROJECT = "proj-openai"


@pytest.fixture
def bearer_server(tmp_path: Path, secret: str) -> Iterator[LocalServer]:
    # Strict auth (a project is required) and only the test's key accepted, so a request
    # gets through only if the server read both from the OpenAI-style headers.
    with LocalServer(data_dir=tmp_path / "srv", accept_bearer=True, api_keys={secret}) as srv:
        yield srv


@pytest.fixture
def sent() -> list[httpx.Request]:
    return []


@pytest.fixture
def recording_http(sent: list[httpx.Request]) -> Iterator[httpx.Client]:
    with httpx.Client(event_hooks={"request": [sent.append]}, timeout=60) as http:
        yield http


def test_openai_provider_runs_a_batch_end_to_end(
    bearer_server: LocalServer,
    recording_http: httpx.Client,
    sent: list[httpx.Request],
    secret: str,
    jsonl: Callable[..., bytes],
    tmp_path: Path,
) -> None:
    with Client(provider="openai", base_url=bearer_server.url, api_key=secret,
                project_id=PROJECT, http_client=recording_http) as client:
        assert client.provider == "openai"
        f = client.files.upload(jsonl(5))
        batch = client.batches.create(input_file_id=f.id)
        done = client.batches.wait(batch.id)
        assert done.status == "completed" and done.request_counts.completed == 5
        assert done.output_file_id is not None
        path = client.files.download(done.output_file_id, tmp_path / "out.jsonl")
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    by_id = {x["custom_id"]: x["response"]["body"]["choices"][0]["message"]["content"]
             for x in lines}
    assert by_id == {f"row-{i}": f"[LFM2.5-1.2B-Instruct] Review number {i}: great value"
                     for i in range(5)}

    # Every request carried the key as a Bearer token and the project as OpenAI-Project;
    # none carried the ZeroGPU headers.
    paths = {(r.method, r.url.path) for r in sent}
    assert {("POST", "/v1/files"), ("POST", "/v1/batches"),
            ("GET", f"/v1/batches/{batch.id}"),
            ("GET", f"/v1/files/{done.output_file_id}/content")} <= paths
    for request in sent:
        assert request.headers["authorization"] == f"Bearer {secret}"
        assert request.headers["openai-project"] == PROJECT
        assert "x-api-key" not in request.headers
        assert "x-project-id" not in request.headers
    # The server answered them all (nothing was refused and retried).
    assert all(status == 200 for _, _, status in bearer_server.request_log)

    # The batch belongs to the OpenAI-Project project, as it would with x-project-id.
    own = httpx.get(bearer_server.url + f"/v1/batches/{batch.id}",
                    headers={"x-api-key": secret, "x-project-id": PROJECT})
    other = httpx.get(bearer_server.url + f"/v1/batches/{batch.id}",
                      headers={"x-api-key": secret, "x-project-id": "someone-else"})
    assert (own.status_code, other.status_code) == (200, 404)


def test_bearer_is_refused_unless_the_server_accepts_it(
    tmp_path: Path, secret: str, jsonl: Callable[..., bytes]
) -> None:
    # Off by default: the local server reads x-api-key only, as the quickstart says.
    with LocalServer(data_dir=tmp_path / "srv", api_keys={secret}) as srv, Client(
        provider="openai", base_url=srv.url, api_key=secret, project_id=PROJECT
    ) as client, pytest.raises(AuthenticationError):
        client.files.upload(jsonl(1))


def test_bearer_with_a_key_that_is_not_accepted_is_403(
    bearer_server: LocalServer, jsonl: Callable[..., bytes]
) -> None:
    with Client(provider="openai", base_url=bearer_server.url, api_key="sk-not-on-the-list",
                project_id=PROJECT) as client, pytest.raises(PermissionDeniedError):
        client.files.upload(jsonl(1))
    assert bearer_server.request_log == [("POST", "/v1/files", 403)]
