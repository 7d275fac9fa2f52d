"""The three ways to run the server: ``zgpu-pandas serve``, LocalServer (and the shared
instance behind ``base_url="local"``), and the ASGI app."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import warnings

import httpx
import pytest

from tests.support import API_HEADERS, ApiClient
from zgpu_pandas.cli import build_parser, main
from zgpu_pandas.server import (
    DataDirLocked,
    LocalServer,
    ServerConfig,
    create_app,
    local,
    shared_local_server,
)


# --------------------------------------------------------------------------- CLI
def test_serve_flags_parse():
    args = build_parser().parse_args([
        "serve", "--host", "0.0.0.0", "--port", "9999", "--data-dir", "d", "--engine", "upstream",
        "--upstream-url", "http://u", "--latency", "0.5", "--concurrency", "3", "--relaxed-auth",
        "--api-key", "a", "--api-key", "b", "--completion-window-seconds", "60", "--admin",
        "--accept-bearer",
    ])
    assert args.accept_bearer
    assert args.func.__name__ == "serve"
    assert (args.host, args.port, args.data_dir, args.engine) == ("0.0.0.0", 9999, "d", "upstream")
    assert args.api_keys == ["a", "b"]
    assert args.relaxed_auth and args.admin
    assert args.latency == 0.5 and args.concurrency == 3
    assert args.completion_window_seconds == 60


def test_serve_refuses_a_data_dir_in_use(tmp_path, capsys):
    with LocalServer(data_dir=tmp_path / "d"):
        code = main(["serve", "--port", "0", "--data-dir", str(tmp_path / "d")])
    assert code == 2
    assert "in use by another server" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--engine", "upstream"], "needs upstream_url"),
        (["--upstream-header", "no-colon"], "NAME:VALUE"),
        (["--concurrency", "0"], "concurrency"),
    ],
)
def test_serve_bad_options_exit_2(tmp_path, capsys, argv, message):
    assert main(["serve", "--port", "0", "--data-dir", str(tmp_path / "d"), *argv]) == 2
    assert message in capsys.readouterr().err


# ------------------------------------------------------------------- LocalServer
def test_local_server_temp_dir_is_removed(make_lines):
    srv = LocalServer()
    with srv:
        assert srv.url.startswith("http://127.0.0.1:") and not srv.url.endswith("/")
        assert srv.data_dir.exists()
        with ApiClient(base_url=srv.url, headers=API_HEADERS) as api:
            api.wait(api.submit(make_lines(2))["id"])
    assert not srv.data_dir.exists()
    assert not srv.running


def test_local_server_given_dir_is_kept(tmp_path):
    with LocalServer(data_dir=tmp_path / "keep") as srv:
        pass
    assert (tmp_path / "keep" / "meta.sqlite3").exists()
    assert "stopped" in repr(srv)


def test_second_local_server_on_same_dir_raises(tmp_path):
    with LocalServer(data_dir=tmp_path / "d"), pytest.raises(DataDirLocked):
        LocalServer(data_dir=tmp_path / "d").start()


def test_restart_mid_batch_with_same_port(start_server, api_for, make_lines):
    srv = start_server(latency=0.01, concurrency=2)
    port = srv.port
    api = api_for(srv)
    batch = api.submit(make_lines(80))
    srv.restart()
    assert srv.port == port
    assert api.wait(batch["id"])["request_counts"]["completed"] == 80


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="upstream_url"):
        ServerConfig(engine="upstream")
    with pytest.raises(ValueError, match="engine"):
        ServerConfig(engine="gpu")
    with pytest.raises(ValueError):
        ServerConfig(latency=-1)
    with pytest.raises(TypeError):
        ServerConfig(api_keys="one-key")


# ------------------------------------------------------------------ shared server
@pytest.fixture
def fresh_shared(tmp_path, monkeypatch):
    """The shared server with its module state reset and its data dir under tmp_path."""
    monkeypatch.setenv(local.ENV_DATA_DIR, str(tmp_path / "shared"))
    monkeypatch.setattr(local, "_shared", None)
    yield tmp_path / "shared"
    if local._shared is not None:
        local._shared.stop()


def test_shared_local_server_is_a_relaxed_singleton(fresh_shared, make_lines):
    srv = shared_local_server()
    assert shared_local_server() is srv
    assert srv.data_dir == fresh_shared.resolve()
    with ApiClient(base_url=srv.url, headers={"x-api-key": "anything"}) as api:
        batch = api.submit(make_lines(2))  # no x-project-id needed
        api.wait(batch["id"])
    # a "new kernel": the old server goes away, a new one on a new port finds the batch
    srv.stop()
    local._shared = None
    again = shared_local_server()
    assert again is not srv
    with ApiClient(base_url=again.url, headers={"x-api-key": "other"}) as api:
        assert api.get(f"/v1/batches/{batch['id']}").json()["status"] == "completed"


def test_shared_local_server_falls_back_when_dir_is_taken(fresh_shared):
    with LocalServer(data_dir=fresh_shared):  # another "process" holds the directory
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            srv = shared_local_server()
        assert any("temporary data directory" in str(w.message) for w in caught)
        assert srv.running and srv.data_dir != fresh_shared.resolve()


def test_default_data_dir_uses_user_cache(monkeypatch):
    monkeypatch.delenv(local.ENV_DATA_DIR, raising=False)
    path = local.default_data_dir()
    assert path.name == "local-server" and "zgpu_pandas" in str(path)


# ------------------------------------------------------------------------ ASGI app
def test_create_app_is_a_working_asgi_app(tmp_path, make_lines):
    async def run() -> tuple[int, dict]:
        app = create_app(data_dir=tmp_path / "asgi")
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=transport, base_url="http://asgi", headers=API_HEADERS
        ) as c:
            data = b"".join(__import__("orjson").dumps(x) + b"\n" for x in make_lines(3))
            f = (await c.post("/v1/files", files={"file": ("a.jsonl", data)},
                              data={"purpose": "batch"})).json()
            b = (await c.post("/v1/batches", json={"input_file_id": f["id"],
                                                   "endpoint": "/v1/chat/completions"})).json()
            for _ in range(1000):
                got = (await c.get(f"/v1/batches/{b['id']}")).json()
                if got["status"] == "completed":
                    return 200, got
                await asyncio.sleep(0.01)
            return 0, got

    status, batch = asyncio.run(run())
    assert status == 200
    assert batch["request_counts"]["completed"] == 3


def test_create_app_rejects_mixed_arguments():
    with pytest.raises(TypeError):
        create_app(ServerConfig(), latency=1.0)


# --------------------------------------------------------------- quiet shutdown
@pytest.mark.parametrize("after_handler", [False, True])
def test_stop_with_a_request_in_flight_is_quiet(tmp_path, caplog, capfd, after_handler):
    import logging
    import threading
    import time

    caplog.set_level(logging.DEBUG)
    srv = LocalServer(data_dir=tmp_path / "d", admin=True).start()
    srv.faults.delay_requests(seconds=30, method="GET", path="^/v1/files$",
                              after_handler=after_handler)
    answers: list[object] = []

    def call() -> None:
        try:
            answers.append(httpx.get(srv.url + "/v1/files", headers=API_HEADERS, timeout=60))
        except httpx.TransportError as exc:  # pragma: no cover - the 503 is expected
            answers.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 10
    while srv.faults.describe() and time.monotonic() < deadline:  # the delay rule is taken
        time.sleep(0.01)
    assert not srv.faults.describe()
    srv.stop()  # cancels the sleeping request after the one-second grace period
    thread.join(30)
    assert not thread.is_alive()
    noisy = [r for r in caplog.records if r.exc_info or "Exception in ASGI" in r.getMessage()]
    assert noisy == []
    err = capfd.readouterr().err
    assert "Traceback" not in err and "CancelledError" not in err
    # The client is told the server is going away, in the spec's envelope (and retries).
    (answer,) = answers
    assert isinstance(answer, httpx.Response)
    assert answer.status_code == 503
    assert answer.json()["error"]["type"] == "internal_error"
    assert answer.json()["error"]["code"] == "internal_error"
    assert "shutting down" in answer.json()["error"]["message"]


# ------------------------------------------------------- accepted keys without argv
def _serve_process(tmp_path, *argv, env=None):
    proc = subprocess.Popen(
        [sys.executable, "-m", "zgpu_pandas", "serve", "--port", "0", "--data-dir",
         str(tmp_path / "d"), "--log-level", "warning", *argv],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )
    first = proc.stdout.readline() if proc.stdout else ""
    if "http://" not in first:
        proc.kill()
        pytest.fail(f"serve did not start: {first!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, first.split(" on ", 1)[1].split()[0]


def test_serve_takes_keys_from_env_and_file_not_argv(tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# accepted keys\nsk-file-one\n\n  sk-file-two  \n")
    keys_file.chmod(0o600)
    proc, url = _serve_process(
        tmp_path, "--api-keys-file", str(keys_file),
        env={"ZGPU_SERVER_API_KEYS": "sk-env-one, sk-env-two,"},
    )
    try:
        # No key is on the command line other users can read.
        if sys.platform.startswith("linux"):
            with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
                assert b"sk-" not in f.read()
        for key in ("sk-file-one", "sk-file-two", "sk-env-one", "sk-env-two"):
            r = httpx.get(url + "/v1/files", headers={**API_HEADERS, "x-api-key": key})
            assert r.status_code == 200, (key, r.text)
        for key in ("sk-other", "# accepted keys", "sk-env-one, sk-env-two"):
            r = httpx.get(url + "/v1/files", headers={**API_HEADERS, "x-api-key": key})
            assert r.status_code == 403, key
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    for key in ("sk-file-one", "sk-env-one"):
        assert key not in err


def test_serve_env_keys_alone_restrict_access(tmp_path):
    proc, url = _serve_process(tmp_path, env={"ZGPU_SERVER_API_KEYS": "sk-only"})
    try:
        ok = httpx.get(url + "/v1/files", headers={**API_HEADERS, "x-api-key": "sk-only"})
        bad = httpx.get(url + "/v1/files", headers=API_HEADERS)
        assert (ok.status_code, bad.status_code) == (200, 403)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "cannot read --api-keys-file"),
        ("empty", "holds no keys"),
        ("env-commas", "ZGPU_SERVER_API_KEYS holds no keys"),
    ],
)
def test_serve_key_sources_that_hold_nothing_exit_2(tmp_path, capsys, monkeypatch, setup,
                                                    message):
    argv = ["serve", "--port", "0", "--data-dir", str(tmp_path / "d")]
    if setup == "missing":
        argv += ["--api-keys-file", str(tmp_path / "nope.txt")]
    elif setup == "empty":
        (tmp_path / "keys.txt").write_text("# no keys yet\n\n")
        argv += ["--api-keys-file", str(tmp_path / "keys.txt")]
    else:
        monkeypatch.setenv("ZGPU_SERVER_API_KEYS", " , ,")
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    # A key source that holds nothing must not quietly mean "any key": nothing served.
    assert not (tmp_path / "d" / "meta.sqlite3").exists()


def test_serve_help_warns_that_api_key_is_visible(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--api-keys-file" in text and "ZGPU_SERVER_API_KEYS" in text
    assert "visible to other users" in text


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_keys_file_readable_by_others_is_warned_about(tmp_path, capsys):
    from zgpu_pandas.server._cli import accepted_keys

    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("sk-shared\n")
    keys_file.chmod(0o644)
    assert set(accepted_keys(["sk-argv"], str(keys_file), None) or {}) == {"sk-argv", "sk-shared"}
    err = capsys.readouterr().err
    assert "can be read by other users" in err and "chmod 600" in err
    assert "sk-shared" not in err
    keys_file.chmod(0o600)
    assert set(accepted_keys(None, str(keys_file), "") or {}) == {"sk-shared"}  # empty env = unset
    assert capsys.readouterr().err == ""
    assert accepted_keys(None, None, None) is None  # nothing given: any key
