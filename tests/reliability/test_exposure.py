"""Secrets and exposure: the key is scrubbed from every header a server (or a proxy in
front of it) echoes back; ``serve`` on an address other machines reach needs a key list
(or an explicit ``--allow-any-key``); the keys file and ``$ZGPU_SERVER_API_KEYS`` tie each
key to its projects."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import traceback
from pathlib import Path

import httpx
import pytest

from tests.support import API_HEADERS
from zgpu_pandas import Client
from zgpu_pandas.cli import main
from zgpu_pandas.errors import APIStatusError, ZgpuError
from zgpu_pandas.server import LocalServer
from zgpu_pandas.server._cli import accepted_keys, scope_keys

KEY = "sk-reflected-0123456789abcdef"


def _reflecting_proxy(request: httpx.Request) -> httpx.Response:
    """A misbehaving proxy that puts the caller's key in every header it sends back (a
    case the local server never produces)."""
    key = request.headers["x-api-key"]
    headers = {"x-request-id": f"req-{key}", "content-type": f"application/json; k={key}"}
    if request.url.path.endswith("/files"):
        return httpx.Response(302, headers={**headers, "location": f"https://evil.test/?k={key}"})
    if request.url.path.endswith("/batches"):
        return httpx.Response(500, headers=headers, json={"error": {"message": f"bad {key}"}})
    if "/batches/" in request.url.path:  # a 2xx answer that echoes the key in its body
        body = {"id": "batch_1", "object": "batch", "endpoint": "/v1/chat/completions",
                "status": "in_progress", "input_file_id": "file-1", "completion_window": "24h",
                "created_at": 1, "metadata": {"note": key}}
        return httpx.Response(200, headers=headers, json=body)
    return httpx.Response(200, headers=headers, text=f"not json {key}")


def test_the_key_never_leaves_through_echoed_headers(caplog):
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    with Client(
        api_key=KEY, project_id="p", base_url="https://api.zerogpu.ai", max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(_reflecting_proxy)),
    ) as client:
        calls = [
            lambda: list(client.files.list()),  # a redirect: Location and request id
            lambda: client.batches.create(input_file_id="file-1"),  # 500 + request id
            lambda: client.files.retrieve("file-1"),  # not JSON: content type + request id
        ]
        for call in calls:
            with pytest.raises(ZgpuError) as info:
                call()
            exc = info.value
            seen += [str(exc), repr(exc), repr(vars(exc)), "".join(traceback.format_exception(exc))]
            if isinstance(exc, APIStatusError):
                assert exc.request_id is not None and exc.request_id.startswith("req-")
        batch = client.batches.retrieve("batch_1")
        seen += [repr(batch), str(batch.to_dict())]
    seen.append(caplog.text)
    leaks = [text[:120] for text in seen if KEY in text]
    assert leaks == []
    assert "***" in "".join(seen)  # scrubbed, not dropped


def test_serve_on_a_shared_address_with_no_keys_refuses_to_start(tmp_path, capsys):
    code = main(["serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path / "d")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reachable from other machines and no keys are set" in err[0]
    assert "--allow-any-key" in err[0]
    assert not (tmp_path / "d").exists()  # nothing was served


def test_serve_on_a_shared_address_refuses_a_key_that_names_no_project(tmp_path, capsys):
    keys = tmp_path / "keys.txt"
    keys.write_text("sk-alice team-a\nsk-bob\n")
    keys.chmod(0o600)
    code = main(["serve", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path / "d"),
                 "--api-keys-file", str(keys)])
    assert code == 2
    err = capsys.readouterr().err
    assert "1 key(s) name none" in err and "sk-bob" not in err and "sk-alice" not in err


def _serve(tmp_path: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "zgpu_pandas", "serve", "--port", "0", "--data-dir",
         str(tmp_path / "d"), "--log-level", "warning", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
    )
    first = proc.stdout.readline() if proc.stdout else ""
    if "http://" not in first:
        proc.kill()
        pytest.fail(f"serve did not start: {first!r} {proc.stderr.read() if proc.stderr else ''}")
    port = first.split(" on ", 1)[1].split()[0].rsplit(":", 1)[1]
    return proc, f"http://127.0.0.1:{port}"


def test_serve_with_allow_any_key_starts_and_warns_loudly(tmp_path):
    proc, url = _serve(tmp_path, "--host", "0.0.0.0", "--allow-any-key")
    try:
        assert httpx.get(url + "/v1/files", headers=API_HEADERS).status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "WARNING: --allow-any-key" in err


def test_keys_file_and_env_tie_each_key_to_its_projects(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("# key, then the projects it may use\nsk-alice team-a team-b\nsk-admin *\n")
    keys.chmod(0o600)
    proc, url = _serve(tmp_path, "--host", "0.0.0.0", "--api-keys-file", str(keys),
                       env={"ZGPU_SERVER_API_KEYS": "sk-bob team-b"})
    try:
        def status(key: str, project: str) -> int:
            r = httpx.get(url + "/v1/batches", headers={"x-api-key": key, "x-project-id": project})
            return r.status_code

        assert status("sk-alice", "team-a") == 200 and status("sk-alice", "team-b") == 200
        assert status("sk-alice", "team-c") == 403  # another project's work is out of reach
        assert status("sk-bob", "team-b") == 200 and status("sk-bob", "team-a") == 403
        assert status("sk-admin", "anything") == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_on_loopback_a_key_that_names_no_project_may_use_any(tmp_path):
    keys = accepted_keys(["sk-solo"], None, "sk-pair team-a")
    assert keys == {"sk-solo": frozenset(), "sk-pair": frozenset({"team-a"})}
    scoped = scope_keys(keys, host="127.0.0.1", allow_any_key=False)
    assert scoped == {"sk-solo": None, "sk-pair": frozenset({"team-a"})}
    with LocalServer(api_keys=scoped) as srv:
        ok = httpx.get(srv.url + "/v1/files", headers={"x-api-key": "sk-solo", "x-project-id": "x"})
        no = httpx.get(srv.url + "/v1/files", headers={"x-api-key": "sk-pair", "x-project-id": "x"})
        assert (ok.status_code, no.status_code) == (200, 403)


def test_a_local_server_on_a_shared_address_without_keys_warns(tmp_path):
    with pytest.warns(RuntimeWarning, match="accepts any key for any project"):
        srv = LocalServer(host="0.0.0.0", data_dir=tmp_path / "d").start()
    srv.stop()


def test_an_upstream_quoting_its_key_back_never_puts_it_in_a_line_error(start_server, api_for):
    from tests.server.stub_upstream import StubUpstream
    from tests.support import chat_line

    key = "sk-upstream-secret-0123456789"
    with StubUpstream() as up:
        srv = start_server(engine="upstream", upstream_url=up.url, upstream_api_key=key,
                           concurrency=2)
        api = api_for(srv)
        done = api.wait(api.submit([chat_line("a", "echo-key please"), chat_line("b", "hi")])["id"])
        errors = api.get(f"/v1/files/{done['error_file_id']}/content").content
        reply = api.post("/v1/chat/completions", json={
            "model": "LFM2.5-1.2B-Instruct", "messages": [{"role": "user", "content": "echo-key"}]})
    assert done["request_counts"]["failed"] == 1
    assert b"key refused: Bearer ***" in errors
    assert key.encode() not in errors
    assert key not in reply.text and reply.status_code == 401
