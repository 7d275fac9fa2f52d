"""``zgpu-pandas run`` on a multi-file input, killed mid-way in a real subprocess (SIGKILL
while parts are being written; the job's own kill hook while batches are being created),
then run again with the same command: the server ends up with exactly the batches needed
(one per part), every input row appears once with its own answer, and no part written
before the kill is written again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zgpu_pandas.core.checkpoints import KILL_AT_ENV
from zgpu_pandas.server import LocalServer
from zgpu_pandas.server.engines import builtin_reply

MODEL = "LFM2.5-1.2B-Instruct"
KEY = "sk-stream-kill-0123456789abcdef"
FILES, ROWS_PER_FILE, PART_ROWS = 4, 30, 20
N_PARTS = FILES * ROWS_PER_FILE // PART_ROWS


def make_input(folder: Path) -> list[str]:
    folder.mkdir()
    prompts = []
    for k in range(FILES):
        q = [f"file {k} question {i}" for i in range(ROWS_PER_FILE)]
        pq.write_table(pa.table({"id": list(range(k * 100, k * 100 + ROWS_PER_FILE)), "q": q}),
                       folder / f"{k}.parquet", row_group_size=7)
        prompts += q
    return prompts


def start_run(server: LocalServer, src: Path, out: Path, state: Path,
              **env: str) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if k != KILL_AT_ENV}
    environ.update({"ZGPU_STATE_DIR": str(state), "ZGPU_API_KEY": KEY, **env})
    cmd = [sys.executable, "-m", "zgpu_pandas", "run", str(src), "--prompt-col", "q",
           "--model", MODEL, "-o", f"{out}/", "--part-rows", str(PART_ROWS), "-q",
           "--base-url", server.url, "--project-id", "p"]
    return subprocess.Popen(cmd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(pred: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not reached in {timeout} s")
        time.sleep(0.01)


def creates(server: LocalServer) -> int:
    return sum(1 for m, p, _ in server.request_log if m == "POST" and p == "/v1/batches")


def check_output(out: Path, prompts: list[str]) -> None:
    res = pd.read_parquet(out)
    ids = [k * 100 + i for k in range(FILES) for i in range(ROWS_PER_FILE)]
    assert res["id"].tolist() == ids  # every input row once, in input order
    assert res["q"].tolist() == prompts
    assert res["response"].tolist() == [
        builtin_reply({"model": MODEL, "messages": [{"role": "user", "content": q}]})
        for q in prompts
    ]


def test_sigkill_while_writing_parts_then_the_same_command_finishes(
    start_server: Callable[..., LocalServer], tmp_path: Path
) -> None:
    srv = start_server(latency=0.05, concurrency=1)
    prompts = make_input(tmp_path / "in")
    out, state = tmp_path / "out", tmp_path / "state"
    proc = start_run(srv, tmp_path / "in", out, state)
    try:
        wait_for(lambda: (out / "part-000001.parquet").exists() or proc.poll() is not None,
                 "two parts written")
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    written = {f.name: f.stat().st_ino for f in out.glob("part-*.parquet")}
    assert 2 <= len(written) < N_PARTS
    assert creates(srv) == N_PARTS  # every part was submitted before the first was written

    again = start_run(srv, tmp_path / "in", out, state)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert creates(srv) == N_PARTS
    assert {n: i for n, i in ((f.name, f.stat().st_ino) for f in out.glob("part-*.parquet"))
            if n in written} == written  # no finished part rewritten
    check_output(out, prompts)


def test_killed_while_creating_batches_then_the_same_command_finishes(
    server: LocalServer, tmp_path: Path
) -> None:
    prompts = make_input(tmp_path / "in")
    out, state = tmp_path / "out", tmp_path / "state"
    # the process ends right after the third part's batch is created
    first = start_run(server, tmp_path / "in", out, state, **{KILL_AT_ENV: "after_submit:2"})
    first.communicate(timeout=300)
    assert first.returncode == 137
    assert creates(server) == 3 and not list(out.glob("part-*"))
    again = start_run(server, tmp_path / "in", out, state)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert creates(server) == N_PARTS
    check_output(out, prompts)
