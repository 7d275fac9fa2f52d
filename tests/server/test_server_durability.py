"""A real ``python -m zgpu_pandas serve`` process is killed with SIGKILL mid-batch; a new
process on the same data directory finishes the batch with every line accounted for
exactly once, and without re-running lines whose results were already recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.support import API_HEADERS, ApiClient

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def _serve(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "zgpu_pandas", "serve", "--port", "0", "--data-dir", str(data_dir),
         "--log-level", "warning", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # "zgpu-pandas local server on http://127.0.0.1:PORT (...)"
    if "http://" not in first:
        proc.kill()
        pytest.fail(f"server did not start: {first!r} {proc.stderr.read() if proc.stderr else ''}")
    url = first.split(" on ", 1)[1].split()[0]
    return proc, url


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def test_sigkill_mid_batch_then_restart_completes_exactly_once(tmp_path, make_lines, start_server):
    # The model is a second, in-process server, so every call the engine makes is counted.
    upstream = start_server(admin=False)
    data_dir = tmp_path / "data"
    args = ("--engine", "upstream", "--upstream-url", upstream.url, "--latency", "0.01",
            "--concurrency", "4", "--upstream-header", "x-project-id: upstream")
    env = {"ZGPU_UPSTREAM_API_KEY": "upstream-key"}
    lines = make_lines(200)
    proc, url = _serve(data_dir, *args, env=env)
    try:
        with ApiClient(base_url=url, headers=API_HEADERS, timeout=30) as api:
            batch = api.submit(lines)
            mid = api.wait_until(batch["id"], lambda b: b["request_counts"]["completed"] >= 30)
            assert mid["status"] == "in_progress"
            assert mid["request_counts"]["completed"] < 200
    finally:
        _kill(proc)
    calls_before = sum(1 for _, p, _ in upstream.request_log if p == "/v1/chat/completions")
    recorded_before = mid["request_counts"]["completed"]

    proc, url = _serve(data_dir, *args, env=env)  # a new process, a new port, same data dir
    try:
        with ApiClient(base_url=url, headers=API_HEADERS, timeout=30) as api:
            done = api.wait(batch["id"])
            assert done["status"] == "completed"
            assert done["request_counts"] == {"total": 200, "completed": 200, "failed": 0}
            out = api.jsonl_of(done["output_file_id"])
            assert done["error_file_id"] is None
    finally:
        _kill(proc)
    assert Counter(x["custom_id"] for x in out) == Counter(x["custom_id"] for x in lines)
    # No finished line ran again: the new process made at most the calls for the lines not
    # yet recorded when the first one died (plus nothing for the recorded ones).
    calls_after = sum(1 for _, p, _ in upstream.request_log if p == "/v1/chat/completions")
    assert calls_after - calls_before <= 200 - recorded_before
    assert calls_after >= 200
    # Lines are recorded as they finish: only the calls in flight at the kill (at most the
    # concurrency, 4) were paid for twice.
    assert calls_after - 200 <= 4


def test_builtin_engine_restart_after_sigkill(tmp_path, make_lines):
    data_dir = tmp_path / "data"
    lines = make_lines(200)
    proc, url = _serve(data_dir, "--latency", "0.01", "--concurrency", "2")
    try:
        with ApiClient(base_url=url, headers=API_HEADERS, timeout=30) as api:
            batch = api.submit(lines)
            api.wait_until(batch["id"], lambda b: b["request_counts"]["completed"] >= 20)
    finally:
        _kill(proc)
    proc, url = _serve(data_dir, "--latency", "0.01", "--concurrency", "2")
    try:
        with ApiClient(base_url=url, headers=API_HEADERS, timeout=30) as api:
            done = api.wait(batch["id"])
            out = api.jsonl_of(done["output_file_id"])
    finally:
        _kill(proc)
    assert done["request_counts"] == {"total": 200, "completed": 200, "failed": 0}
    assert sorted(x["custom_id"] for x in out) == sorted(x["custom_id"] for x in lines)


def test_second_server_on_same_data_dir_is_refused(tmp_path):
    data_dir = tmp_path / "data"
    proc, _ = _serve(data_dir)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "zgpu_pandas", "serve", "--port", "0", "--data-dir",
             str(data_dir)],
            capture_output=True, text=True, timeout=60,
        )
        assert second.returncode == 2
        assert "in use by another server" in second.stderr
        assert str(proc.pid) in second.stderr
    finally:
        _kill(proc)
