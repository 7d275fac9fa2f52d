"""Waiting on a job rides out a service outage longer than one poll's retries, and when it
finally gives up says that the batches keep running and how to resume."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pandas as pd
import pytest

from zgpu_pandas._client import Client
from zgpu_pandas.errors import APIConnectionError, JobUnreachableError
from zgpu_pandas.server import LocalServer

from .resume_support import KEY, MODEL, api_calls, assert_all_answered

TEXTS = ["one", "two", "three"]


@pytest.fixture
def no_retry_client(server: LocalServer) -> Iterator[Client]:
    """One attempt per request: a stopped server fails a poll at once."""
    with Client(
        api_key=KEY, project_id="proj", base_url=server.url, poll_interval=0.05, max_retries=0
    ) as c:
        yield c


def test_a_server_down_for_a_while_then_back_does_not_end_the_wait(
    server: LocalServer, no_retry_client: Client
) -> None:
    df = pd.DataFrame({"q": TEXTS})
    job = df.zgpu.submit_chat("q", model=MODEL, client=no_retry_client, progress=False)
    server.stop()  # same port and data dir when it comes back
    back = threading.Timer(1.0, server.start)
    back.start()
    try:
        out = job.result()
    finally:
        back.join()
    assert_all_answered(out, TEXTS)
    assert api_calls(server, "POST", "/v1/batches") == 1


def test_a_server_gone_for_good_ends_with_how_to_resume(
    server: LocalServer, no_retry_client: Client
) -> None:
    df = pd.DataFrame({"q": TEXTS})
    job = df.zgpu.submit_chat("q", model=MODEL, client=no_retry_client, progress=False)
    (bid,) = job.batch_ids
    server.stop()
    with pytest.raises(JobUnreachableError) as info:
        job.result(outage_grace=0.3)
    err = info.value
    assert isinstance(err, APIConnectionError)  # callers catching that still do
    assert err.job is job
    msg = str(err)
    assert job.job_id in msg and bid in msg
    assert "still running on the service" in msg
    assert "run the same call again" in msg and "df.zgpu.last_job.result()" in msg

    server.start()  # back: the same call picks the job up, buying nothing new
    out = df.zgpu.batch_chat("q", model=MODEL, client=no_retry_client, progress=False)
    assert_all_answered(out, TEXTS)
    assert api_calls(server, "POST", "/v1/batches") == 1
