"""The client process killed (SIGKILL, a real subprocess) at each stage of a job, then the
same call run again in a new process: the result is complete and nothing is paid twice.

The job runs in a child Python process against a local server owned by the test. In the
child, the job's checkpoint hook (``zgpu_pandas.core.job._checkpoint``, the function behind
``ZGPU_TEST_KILL_AT``) is replaced by one that announces the stage on stdout and then
blocks; the test reads the announcement and sends SIGKILL from outside, so the process dies
exactly there with no cleanup of any kind. A second child then runs the very same call
with the same journal directory (``ZGPU_STATE_DIR``).

Stages: ``before_upload``, ``after_upload`` (the file exists, no batch), ``after_create``
(the batch exists but its id was never recorded), ``mid_poll``, ``mid_download``. For each:
the re-run returns every row answered with the answer to its own prompt; the server holds
exactly one batch per chunk, all of the same job (no double spend), and one uploaded input
file per chunk. A third run of a finished job makes no request at all (its results come
back from the journal's local copy).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from zgpu_pandas.core.checkpoints import CHECKPOINTS, KILL_AT_ENV
from zgpu_pandas.server import LocalServer

MODEL = "LFM2.5-1.2B-Instruct"
KEY = "zk-process-kill-6a8c0e2d4f"

CHILD = r"""
import sys, time
import pandas as pd
import zgpu_pandas
import zgpu_pandas.core.checkpoints as checkpoints

stage, url, rows, out_path, model, key = sys.argv[1:7]

if stage != "none":
    def checkpoint(name: str) -> None:
        if name == stage:
            print("AT " + name, flush=True)
            time.sleep(600)  # the test sends SIGKILL now
    checkpoints.checkpoint = checkpoint

df = pd.DataFrame({"review": [f"review {i}" for i in range(int(rows))]})
out = df.zgpu.batch_chat(
    "review", model=model, api_key=key, project_id="p", base_url=url,
    progress=False, poll_interval=0.02,
)
out.to_pickle(out_path)
print("DONE", flush=True)
"""


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[LocalServer]:
    with LocalServer(data_dir=tmp_path / "server") as server:
        yield server


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != KILL_AT_ENV}
    assert env.get("ZGPU_STATE_DIR"), "each test has its own journal (tests/conftest.py)"
    return env


def _run(stage: str, srv: LocalServer, rows: int, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, stage, srv.url, str(rows), str(out), MODEL, KEY],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_at(stage: str, srv: LocalServer, rows: int, out: Path) -> str:
    """Run the call until it reaches ``stage``, SIGKILL it there; returns its stderr."""
    proc = _run(stage, srv, rows, out)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == f"AT {stage}", (line, proc.stderr.read() if proc.stderr else "")
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    return err


def _finish(srv: LocalServer, rows: int, out: Path) -> tuple[pd.DataFrame, str]:
    proc = _run("none", srv, rows, out)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert stdout.strip().endswith("DONE")
    return pd.read_pickle(out), stderr


def _check_result(out: pd.DataFrame, rows: int) -> None:
    assert len(out) == rows
    assert (out["response_status"] == "ok").all(), out["response_status"].value_counts()
    expected = pd.Series([f"[{MODEL}] review {i}" for i in range(rows)], index=out.index)
    assert (out["response"] == expected).all()


def _check_no_double_spend(srv: LocalServer, chunks: int) -> None:
    import httpx

    headers = {"x-api-key": KEY, "x-project-id": "p"}
    batches = httpx.get(srv.url + "/v1/batches", headers=headers).json()["data"]
    assert len(batches) == chunks, [b["id"] for b in batches]
    assert {b["status"] for b in batches} == {"completed"}
    assert len({b["metadata"]["zgpu_job"] for b in batches}) == 1  # one job, resumed
    inputs = httpx.get(srv.url + "/v1/files", headers=headers, params={"purpose": "batch"})
    assert len(inputs.json()["data"]) == chunks  # no chunk uploaded twice


@pytest.mark.parametrize("stage", CHECKPOINTS)
def test_killed_at_each_stage_then_rerun_completes_without_paying_twice(
    srv: LocalServer, tmp_path: Path, stage: str
) -> None:
    rows = 40
    _kill_at(stage, srv, rows, tmp_path / "first.pkl")
    out, _ = _finish(srv, rows, tmp_path / "second.pkl")
    _check_result(out, rows)
    _check_no_double_spend(srv, chunks=1)
    if stage == "mid_download":
        # once finished, the same call again needs no network at all
        before = len(srv.request_log)
        again, _ = _finish(srv, rows, tmp_path / "third.pkl")
        assert srv.request_log[before:] == []
        pd.testing.assert_frame_equal(again, out)


def test_a_two_batch_job_killed_after_its_first_create_makes_only_the_second(
    srv: LocalServer, tmp_path: Path
) -> None:
    rows = 50_001  # two chunks: the process dies before the second batch exists
    _kill_at("after_create", srv, rows, tmp_path / "first.pkl")
    out, _ = _finish(srv, rows, tmp_path / "second.pkl")
    _check_result(out, rows)
    _check_no_double_spend(srv, chunks=2)


def test_the_kill_stages_are_the_ones_the_docs_list() -> None:
    doc = Path(__file__).parents[2] / "docs" / "reliability.md"
    text = doc.read_text()
    for stage in CHECKPOINTS:
        assert f"`{stage}`" in text, stage
