"""Network faults under ``df.zgpu.batch_chat``: the job completes, every row gets exactly
one result (the answer to its own prompt), no batch is created twice, and what the user
sees says what happened.

The frame has 50,001 rows, so the job really is two batches (two uploads, two creates,
polls of both, two downloads). Each test injects one kind of fault on *every* route the
job uses at once: ``POST /v1/files``, ``POST /v1/batches``, ``GET /v1/batches/{id}`` and
``GET /v1/files/{id}/content``. The client's backoff sleep is replaced by a recorder, so
only the injected slow answers take real time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

import zgpu_pandas  # noqa: F401  (registers df.zgpu)
from zgpu_pandas import _client
from zgpu_pandas._client import Client
from zgpu_pandas.errors import JobSubmitError
from zgpu_pandas.server import LocalServer
from zgpu_pandas.server.engines import builtin_reply

MODEL = "LFM2.5-1.2B-Instruct"
KEY = "zk-accessor-faults-1d3f5b7a9c"
ROWS = 50_001
ROUTES = [
    ("POST", r"^/v1/files$"),
    ("POST", r"^/v1/batches$"),
    ("GET", r"^/v1/batches/batch_[^/]+$"),
    ("GET", r"^/v1/files/[^/]+/content$"),
]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    # a reversed integer index with duplicates: answers must land by position, not label
    index = np.repeat(np.arange(ROWS // 2 + 1), 2)[:ROWS][::-1]
    return pd.DataFrame({"review": [f"review {i}" for i in range(ROWS)]}, index=index)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(_client, "_sleep", recorded.append)
    return recorded


def _arm_everywhere(srv: LocalServer, arm: Callable[[str, str], None]) -> None:
    for method, path in ROUTES:
        arm(method, path)


def _status_bursts(s: LocalServer, m: str, p: str) -> None:
    # rules are used in order: 500, 500, 503, 429, 429 on each route, five failures in a
    # row, which the client's five retries outlast
    for status, count in ((500, 2), (503, 1), (429, 2)):
        s.faults.fail_requests(status=status, count=count, method=m, path=p)


def _drops(s: LocalServer, m: str, p: str) -> None:
    s.faults.drop_connections(count=1, method=m, path=p)  # before the handler ran
    s.faults.drop_connections(count=1, method=m, path=p, after_handler=True)  # after


# Several faults per run, on every route: each run is a real two-batch job (~2 s).
FAULTS: dict[str, Callable[[LocalServer, str, str], None]] = {
    "a burst of 500, 503 and 429": _status_bursts,
    "connections dropped before and after the handler": _drops,
    "slow answers": lambda s, m, p: s.faults.delay_requests(
        seconds=0.3, count=1, method=m, path=p, after_handler=True
    ),
}


def _check_complete(out: pd.DataFrame, frame: pd.DataFrame) -> None:
    """Every row ok, with the answer to its own prompt, in the frame's order and index."""
    assert len(out) == ROWS and out.index.equals(frame.index)
    assert (out["response_status"] == "ok").all(), out["response_status"].value_counts()
    assert (out["response"] == f"[{MODEL}] " + frame["review"]).all()
    for pos in (0, 25_000, 25_001, ROWS - 1):  # the engine's own function agrees
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"review {pos}"}]}
        assert out["response"].iloc[pos] == builtin_reply(body)


def _check_two_batches(client: Client) -> None:
    batches = list(client.batches.list())
    assert len(batches) == 2, [b.id for b in batches]  # never created twice
    assert sorted(b.request_counts.total for b in batches) == [25_000, 25_001]
    assert all(b.status == "completed" for b in batches)
    jobs = {b.metadata.get("zgpu_job") for b in batches}
    assert len(jobs) == 1 and None not in jobs


@pytest.mark.parametrize("fault", list(FAULTS))
def test_the_job_completes_exactly_once_under_faults_on_every_route(
    server: LocalServer,
    frame: pd.DataFrame,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    caplog.set_level(logging.INFO, logger="zgpu_pandas")
    _arm_everywhere(server, lambda m, p: FAULTS[fault](server, m, p))
    with Client(api_key=KEY, project_id="p", base_url=server.url, poll_interval=0.02) as client:
        job = frame.zgpu.submit_chat("review", model=MODEL, client=client, progress=False)
        out = job.result()
        _check_complete(out, frame)
        _check_two_batches(client)
        assert job.status().outcome == "success"
    log = caplog.text
    if fault == "slow answers":
        assert sleeps == [] and "retry" not in log  # slow is not broken: nothing resent
    else:
        assert "retry 1 of" in log, log  # the client says what it went through
    if fault.startswith("connections dropped"):
        # the lost create answer was looked up, not guessed: "not sending again"
        assert "not sending again" in log


def test_an_outage_longer_than_the_retries_stops_submitting_with_a_clear_message(
    server: LocalServer, frame: pd.DataFrame, sleeps: list[float]
) -> None:
    """The service refuses the second create past every retry: the call stops, says which
    batch exists and how to go on; going on finishes the job with no batch made twice and
    no chunk uploaded twice."""
    # Both uploads are held 0.5 s, so the failure can be armed between the two creates.
    server.faults.delay_requests(seconds=0.5, count=2, method="POST", path=r"^/v1/files$")
    errors: list[BaseException] = []
    with Client(api_key=KEY, project_id="p", base_url=server.url, poll_interval=0.02) as client:

        def submit() -> None:
            try:
                frame.zgpu.submit_chat("review", model=MODEL, client=client, progress=False)
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=submit)
        worker.start()
        deadline = time.monotonic() + 30
        while ("POST", "/v1/batches", 200) not in server.request_log:
            assert time.monotonic() < deadline and worker.is_alive()
            time.sleep(0.002)
        server.faults.fail_requests(status=503, count=6, method="POST", path=r"^/v1/batches$")
        worker.join(60)
        [exc] = errors
        assert isinstance(exc, JobSubmitError)
        first = next(iter(client.batches.list()))
        message = str(exc)
        for needle in ("1 of 2 batches", first.id, "keep running", ".submit()", ".cancel()"):
            assert needle in message, (needle, message)
        job = frame.zgpu.last_job
        assert job is exc.job and job.batch_ids == [first.id]
        out = job.submit().result()
        _check_complete(out, frame)
        _check_two_batches(client)
        uploads = [e for e in server.request_log if e[:2] == ("POST", "/v1/files")]
        assert [e[2] for e in uploads] == [200, 200]  # the second chunk was not sent again


@pytest.fixture
def restartable(tmp_path: Any) -> Iterator[LocalServer]:
    srv = LocalServer(data_dir=tmp_path / "data").start()
    yield srv
    srv.stop()


def test_server_restarted_mid_job_the_job_completes_exactly_once(
    restartable: LocalServer,
    frame: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server goes down while the job polls and comes back within the client's retries:
    the job carries on where the batches were, and the user is told a poll failed."""
    srv = restartable
    monkeypatch.setattr(_client, "_random", lambda: 1.0)  # backoff 0.5, 1, 2, ... s exactly
    caplog.set_level(logging.INFO, logger="zgpu_pandas")
    result: dict[str, Any] = {}
    with Client(api_key=KEY, project_id="p", base_url=srv.url, poll_interval=0.02) as client:
        job = frame.zgpu.submit_chat("review", model=MODEL, client=client, progress=False)

        def wait() -> None:
            try:
                result["out"] = job.result()
            except BaseException as exc:  # reported by the assertion below
                result["error"] = exc

        waiter = threading.Thread(target=wait)
        waiter.start()
        deadline = time.monotonic() + 60
        while job.status().batches[0].completed < 1000:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        srv.stop()  # mid-job: both batches unfinished
        while "retry 1 of" not in caplog.text:  # the job's next poll found the server gone
            assert time.monotonic() < deadline, "no poll noticed the outage"
            time.sleep(0.005)
        srv.start()  # same data dir and port, within the 0.5 s before the retry
        waiter.join(60)
        assert "error" not in result, result.get("error")
        _check_complete(result["out"], frame)
        _check_two_batches(client)
    assert "failed (APIConnectionError); retry 1 of" in caplog.text
