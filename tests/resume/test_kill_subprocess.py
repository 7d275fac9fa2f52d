"""The job runs in a real subprocess that is SIGKILLed while it waits; the same call run
again in a new process finishes the job without creating a single new batch, from a pandas
and from a Polars frame alike.

The server runs in this test process (``LocalServer``); the job's process only talks to it
over loopback. Its first poll is held back by the server (``delay_requests``), so the kill
lands while the process is waiting, whatever the machine's speed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pandas as pd
import pytest

from tests.support import FrameKit
from zgpu_pandas._journal import Journal
from zgpu_pandas.core.checkpoints import KILL_AT_ENV
from zgpu_pandas.server import LocalServer

from .resume_support import KEY, MODEL, api_calls, assert_all_answered

N_ROWS = 30

SCRIPT = """
import sys
from functools import partial

import pandas as pd

import zgpu_pandas  # noqa: F401
import zgpu_pandas.core.run as accessor
from zgpu_pandas.core.requests import build_requests

url, key, out_path, n_rows, model, lib = sys.argv[1:7]
# two batches of 15 lines, so the job spans several batches
accessor.build_requests = partial(build_requests, max_lines=15)
data = {"q": [f"question {i}" for i in range(int(n_rows))]}
if lib == "polars":
    import polars as pl

    df = pl.DataFrame(data)
else:
    df = pd.DataFrame(data)
out = df.zgpu.batch_chat("q", model=model, base_url=url, api_key=key, project_id="p",
                         progress=False, poll_interval=0.05)
assert type(out) is type(df)
out.write_parquet(out_path) if lib == "polars" else out.to_parquet(out_path)
print("done", df.zgpu.last_job.job_id, flush=True)
"""


def run_job(
    server: LocalServer, out_path: Path, state_dir: Path, lib: str = "pandas", **env: str
) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if k != KILL_AT_ENV}
    environ.update({"ZGPU_STATE_DIR": str(state_dir), **env})
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, server.url, KEY, str(out_path), str(N_ROWS), MODEL, lib],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(pred: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached in {timeout} s")
        time.sleep(0.02)


def journal_running(state_dir: Path) -> bool:
    try:
        recs = Journal(state_dir).list()
    except Exception:  # mid-creation: the folder exists before the record
        return False
    return len(recs) == 1 and recs[0].status == "running" and len(recs[0].batch_ids) == 2


def test_kill_mid_wait_and_rerun_gives_the_whole_result_without_new_batches(
    start_server: Callable[..., LocalServer], tmp_path: Path, kit: FrameKit
) -> None:
    srv = start_server(latency=0.01, concurrency=2)
    state = tmp_path / "state"
    out_path = tmp_path / "out.parquet"
    # the job's first poll hangs: the process is certainly waiting when it is killed
    srv.faults.delay_requests(seconds=30, count=1, method="GET", path=r"^/v1/batches/batch_")
    proc = run_job(srv, out_path, state, kit.name)
    try:
        wait_for(lambda: journal_running(state) or proc.poll() is not None, "job submitted")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not out_path.exists()
    (rec,) = Journal(state).list()
    first_batches = sorted(rec.batch_ids)
    posts = (api_calls(srv, "POST", "/v1/files"), api_calls(srv, "POST", "/v1/batches"))
    assert posts == (2, 2)

    srv.faults.clear()
    again = run_job(srv, out_path, state, kit.name)
    stdout, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    assert stdout.split() == ["done", rec.job_id]

    out = pd.read_parquet(out_path)
    texts = [f"question {i}" for i in range(N_ROWS)]
    assert_all_answered(out, texts)
    # the server holds exactly the batches of the first run; nothing was uploaded again
    with httpx.Client(base_url=srv.url, headers={"x-api-key": KEY, "x-project-id": "p"}) as http:
        on_server = sorted(b["id"] for b in http.get("/v1/batches").json()["data"])
    assert on_server == first_batches
    assert (api_calls(srv, "POST", "/v1/files"), api_calls(srv, "POST", "/v1/batches")) == posts
    (rec,) = Journal(state).list()
    assert rec.status == "completed" and sorted(rec.batch_ids) == first_batches
    assert KEY.encode() not in orjson.dumps(rec.to_dict())


def test_the_kill_hook_ends_a_real_job_process_after_create(
    server: LocalServer, tmp_path: Path
) -> None:
    """``ZGPU_TEST_KILL_AT=after_create``: the batch exists but its id was never written;
    the re-run finds it by its token instead of creating another."""
    state = tmp_path / "state"
    out_path = tmp_path / "out.parquet"
    first = run_job(server, out_path, state, **{KILL_AT_ENV: "after_create"})
    first.communicate(timeout=120)
    assert first.returncode == 137
    (rec,) = Journal(state).list()
    assert rec.chunks[0].token and rec.chunks[0].batch_id is None
    again = run_job(server, out_path, state)
    _, stderr = again.communicate(timeout=120)
    assert again.returncode == 0, stderr
    assert_all_answered(
        pd.read_parquet(out_path), [f"question {i}" for i in range(N_ROWS)]
    )
    assert api_calls(server, "POST", "/v1/batches") == 2
