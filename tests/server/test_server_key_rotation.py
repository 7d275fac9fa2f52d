"""Key rotation without a restart: ``serve`` reads its keys file again when it changes and
on SIGHUP; a broken file keeps the keys in use."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")


def _status(url: str, key: str) -> int:
    return httpx.get(url + "/v1/files", headers={"x-api-key": key, "x-project-id": "team-a"}).status_code


def _eventually(check, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _write(path: Path, text: str, *, mtime_ns: int | None = None) -> None:
    path.write_text(text)
    path.chmod(0o600)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


@pytest.fixture
def serve(tmp_path) -> Iterator[Callable[..., tuple[str, int]]]:
    procs = []

    def start(keys: Path, *extra: str) -> tuple[str, int]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zgpu_pandas", "serve", "--port", "0", "--data-dir",
             str(tmp_path / "d"), "--api-keys-file", str(keys), *extra],
            env={"PATH": "/usr/bin:/bin", "ZGPU_SERVER_KEYS_RELOAD_INTERVAL": "0.1"},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        url = re.search(r"http://\S+", proc.stdout.readline())
        assert url, proc.stderr.read() if proc.stderr else ""
        return url.group(0), proc.pid

    yield start
    for proc in procs:
        proc.terminate()
        proc.communicate(timeout=60)


def test_a_changed_keys_file_is_read_again(tmp_path, serve):
    keys = tmp_path / "keys.txt"
    _write(keys, "sk-old team-a\n")
    url, _ = serve(keys)
    assert _status(url, "sk-old") == 200 and _status(url, "sk-new") == 403
    _write(keys, "sk-new team-a\n", mtime_ns=time.time_ns() + 5_000_000_000)
    assert _eventually(lambda: _status(url, "sk-new") == 200)
    assert _status(url, "sk-old") == 403


def test_sighup_reads_the_file_again_and_a_broken_file_keeps_the_keys(tmp_path, serve):
    keys = tmp_path / "keys.txt"
    _write(keys, "sk-aaa team-a\n")
    stamp = keys.stat().st_mtime_ns
    # the flag beats the variable: SIGHUP only
    url, proc_pid = serve(keys, "--keys-reload-interval", "0")
    # same size and time: only the signal can tell the server
    _write(keys, "sk-bbb team-a\n", mtime_ns=stamp)
    time.sleep(0.3)
    assert _status(url, "sk-bbb") == 403
    os.kill(proc_pid, signal.SIGHUP)
    assert _eventually(lambda: _status(url, "sk-bbb") == 200)
    assert _status(url, "sk-aaa") == 403
    # an empty file (a rotation half done) keeps the keys in use
    _write(keys, "# nothing yet\n")
    os.kill(proc_pid, signal.SIGHUP)
    time.sleep(0.5)
    assert _status(url, "sk-bbb") == 200

