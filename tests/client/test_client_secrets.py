"""The API key never shows: not in a repr or str, an exception, a log line, or a file.

One long scenario exercises every public object and every exception class with a
recognisable key, collecting everything a user could see; then the haystack is searched.
"""

from __future__ import annotations

import logging
import pickle
import socket
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from zgpu_pandas import _client
from zgpu_pandas._client import Client
from zgpu_pandas._config import resolve_settings
from zgpu_pandas.errors import ZgpuError
from zgpu_pandas.server import LocalServer


class Haystack:
    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.exceptions: list[BaseException] = []

    def add(self, label: str, obj: Any) -> None:
        self.items.append((f"{label} repr", repr(obj)))
        self.items.append((f"{label} str", str(obj)))
        if hasattr(obj, "__dict__"):
            self.items.append((f"{label} vars", repr(vars(obj))))

    def catch(self, label: str, fn: Callable[[], Any]) -> BaseException:
        try:
            fn()
        except ZgpuError as exc:
            self.exceptions.append(exc)
            self.add(label, exc)
            self.items.append((f"{label} args", repr(exc.args)))
            self.items.append((f"{label} traceback", "".join(traceback.format_exception(exc))))
            for name in ("message", "body", "param", "code", "url", "batch"):
                if hasattr(exc, name):
                    self.items.append((f"{label}.{name}", repr(getattr(exc, name))))
            return exc
        raise AssertionError(f"{label}: expected an exception")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def keyed_server() -> Iterator[LocalServer]:
    with LocalServer(api_keys={"only-this-one-key"}, max_upload_bytes=2000) as srv:
        yield srv


def test_key_never_appears_anywhere(
    server: LocalServer,
    keyed_server: LocalServer,
    secret: str,
    tmp_path: Path,
    jsonl: Callable[..., bytes],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)  # everything, from every logger (httpx, httpcore too)
    monkeypatch.setattr(_client, "_sleep", lambda s: None)
    hay = Haystack()
    workdir = tmp_path / "work"
    workdir.mkdir()

    client = Client(api_key=secret, project_id="proj-secret", base_url=server.url, max_retries=2)
    hay.add("client", client)
    hay.add("client.files", client.files)
    hay.add("client.batches", client.batches)
    hay.add("settings", resolve_settings(api_key=secret, env={}))
    hay.add("settings.api_key", client._settings.api_key)

    # the happy path, touching every model type
    src = workdir / "input.jsonl"
    src.write_bytes(jsonl(20))
    f = client.files.upload(src)
    hay.add("FileObject", f)
    batch = client.batches.create(input_file_id=f.id, metadata={"job": "secret-scan"})
    hay.add("Batch(create)", batch)
    done = client.batches.wait(batch.id, on_update=lambda b: hay.add("Batch(update)", b))
    hay.add("Batch(done)", done)
    hay.add("Batch.to_dict", done.to_dict())
    hay.add("RequestCounts", done.request_counts)
    hay.add("file list", list(client.files.list()))
    hay.add("batch list", list(client.batches.list()))
    client.files.download(done.output_file_id or "", workdir / "output.jsonl")
    hay.add("lines", list(client.files.iter_lines(done.output_file_id or "")))
    hay.add("FileDeleted", client.files.delete(f.id))

    # every exception class
    bad = client.files.upload(jsonl(2) + b"[1]\n")
    hay.add(
        "failed batch",
        hay.catch("BadRequestError", lambda: client.batches.create(input_file_id=bad.id)),
    )
    hay.add("failed batch listed", next(iter(client.batches.list())))
    hay.catch("NotFoundError", lambda: client.files.retrieve(f.id))
    hay.catch("ConflictError", lambda: client.batches.cancel(done.id))
    with Client(api_key=secret, base_url=server.url) as no_project:
        hay.catch("AuthenticationError", lambda: list(no_project.files.list()))
    with Client(api_key=secret, project_id="p", base_url=keyed_server.url) as refused:
        hay.catch("PermissionDeniedError", lambda: refused.files.retrieve("file-x"))
    with Client(api_key="only-this-one-key", project_id="p", base_url=keyed_server.url) as small:
        hay.catch("PayloadTooLargeError(server)", lambda: small.files.upload(jsonl(50)))
    big = workdir / "big.jsonl"
    with big.open("wb") as fh:
        fh.truncate(100 * 1024 * 1024 + 1)
    hay.catch("PayloadTooLargeError(local)", lambda: client.files.upload(big))
    big.unlink()
    server.faults.fail_requests(status=429, count=3, method="GET")
    hay.catch("RateLimitError", lambda: client.batches.retrieve(done.id))
    server.faults.fail_requests(status=429, code="insufficient_quota")
    hay.catch("InsufficientQuotaError", lambda: client.batches.retrieve(done.id))
    server.faults.fail_requests(status=500, count=3, method="GET")
    hay.catch("InternalServerError", lambda: client.batches.retrieve(done.id))
    with Client(
        api_key=secret, base_url=f"http://127.0.0.1:{_closed_port()}", max_retries=0
    ) as dead:
        hay.catch("APIConnectionError", lambda: dead.files.retrieve("file-x"))
    server.faults.delay_requests(seconds=1.0, method="GET")
    with Client(
        api_key=secret, project_id="proj-secret", base_url=server.url, timeout=0.2, max_retries=0
    ) as fast:
        hay.catch("APITimeoutError", lambda: fast.files.retrieve("file-x"))
    server.faults.drop_uploads(after_bytes=100)
    hay.catch("UploadNotRetryableError", lambda: client.files.upload(iter([jsonl(200)])))
    f2 = client.files.upload(jsonl(2))
    server.faults.drop_connections(method="POST", path="^/v1/batches$", after_handler=True)
    server.faults.fail_requests(status=500, count=20, method="GET", path="^/v1/batches$")
    hay.catch("CreateOutcomeUnknownError", lambda: client.batches.create(input_file_id=f2.id))
    server.faults.clear()
    with (
        LocalServer(latency=0.2, concurrency=1) as slow,
        Client(api_key=secret, project_id="p", base_url=slow.url) as sc,
    ):
        running = sc.batches.create(input_file_id=sc.files.upload(jsonl(50)).id)
        hay.catch(
            "WaitTimeoutError",
            lambda: sc.batches.wait(running.id, timeout=0.01, poll_interval=0.01),
        )
        sc.batches.cancel(running.id)
    hay.catch(
        "ConfigurationError", lambda: Client(api_key=secret, base_url="https://api.openai.com")
    )
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    hay.catch("ConfigurationError(reuse)", lambda: Client(api_key=secret))
    monkeypatch.delenv("OPENAI_API_KEY")

    def html_200(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text=f"echo {request.headers['x-api-key']}")

    with Client(
        api_key=secret,
        base_url="https://api.zerogpu.ai",
        http_client=httpx.Client(transport=httpx.MockTransport(html_200)),
    ) as odd:
        hay.catch("APIResponseValidationError", lambda: odd.files.retrieve("file-x"))
    client.close()

    # every class of the tree was raised at least once
    import zgpu_pandas.errors as errors

    raised = {type(e).__name__ for e in hay.exceptions}
    # the client's part of the tree (the job's errors are scanned in test_key_scan_job.py)
    client_tree = (errors.APIError, errors.ConfigurationError, errors.WaitTimeoutError)
    leaves = {
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), client_tree)
        and name != "JobUnreachableError"
    } - {"APIError", "APIStatusError", "TooManyRequestsError"}
    assert leaves <= raised, leaves - raised

    # the haystack: objects, exceptions, logs, and every file written (client and server side)
    for label, text in hay.items:
        assert secret not in text, label
    assert caplog.records, "expected some log output to scan"
    for record in caplog.records:
        assert secret not in record.getMessage(), record.name
    assert secret not in caplog.text
    written = [
        p for root in (tmp_path, server.data_dir) for p in Path(root).rglob("*") if p.is_file()
    ]
    assert any(p.name == "output.jsonl" for p in written)
    for path in written:
        assert secret.encode() not in path.read_bytes(), path


def test_client_cannot_be_pickled_with_its_key(server: LocalServer, secret: str) -> None:
    with Client(api_key=secret, project_id="p", base_url=server.url) as c, pytest.raises(TypeError):
        pickle.dumps(c)
