"""Ctrl-C while a batch create is in flight: the batch may exist, and the message says so.

The server holds the answer to ``POST /v1/batches`` after creating the batch; a real SIGINT
arrives while the client waits for it. Running the same call again must find that batch by
its token and create no second one.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pandas as pd
import pytest

from zgpu_pandas._client import Client
from zgpu_pandas.server import LocalServer

from .resume_support import KEY, MODEL, assert_all_answered


def _interrupt_once_a_batch_exists(server: LocalServer) -> threading.Thread:
    """SIGINT to this process as soon as the server has created a batch (its answer is
    still held back), so the interrupt lands while the create is in flight."""

    def run() -> None:
        with Client(api_key=KEY, project_id="proj", base_url=server.url) as watcher:
            for _ in range(1000):
                if next(iter(watcher.batches.list()), None) is not None:
                    os.kill(os.getpid(), signal.SIGINT)
                    return
                time.sleep(0.01)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_ctrl_c_during_create_says_the_outcome_is_unknown_and_rerun_finds_the_batch(
    server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = ["one", "two", "three"]
    df = pd.DataFrame({"q": texts})
    server.faults.delay_requests(seconds=3, method="POST", path="^/v1/batches$", after_handler=True)
    call = dict(model=MODEL, api_key=KEY, project_id="proj", base_url=server.url, progress=False)
    watcher = _interrupt_once_a_batch_exists(server)
    with pytest.raises(KeyboardInterrupt):
        df.zgpu.batch_chat("q", **call)
    watcher.join(10)
    err = capsys.readouterr().err
    assert "no batch was created" not in err
    assert "outcome is unknown" in err
    job = df.zgpu.last_job
    assert job is not None
    token = f"{job.job_id}:0:0"
    assert token in err  # the token it will be found by
    assert "run the same call again" in err and "df.zgpu.last_job.submit()" in err

    out = df.zgpu.batch_chat("q", **call)
    assert_all_answered(out, texts)
    with Client(api_key=KEY, project_id="proj", base_url=server.url) as c:
        assert len(list(c.batches.list())) == 1  # the interrupted create's batch, no other
