"""Retry rounds and the early stop on account-wide failures, against the real local server
with injected line failures."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import orjson
import pandas as pd
import pytest

import zgpu_pandas.core.checkpoints as job_module
import zgpu_pandas.core.run as accessor_module
from tests.support import FrameKit
from zgpu_pandas._client import Client
from zgpu_pandas._journal import Journal
from zgpu_pandas.core.requests import build_requests
from zgpu_pandas.core.resume import attach
from zgpu_pandas.errors import JobStoppedError
from zgpu_pandas.server import LocalServer
from zgpu_pandas.server.engines import builtin_reply

from .resume_support import KEY, MODEL, api_calls, assert_all_answered, body

TEXTS = [f"question {i}" for i in range(12)]


def input_lines(client: Client, batch_id: str) -> list[dict]:
    f = client.batches.retrieve(batch_id).input_file_id
    assert f is not None
    return [orjson.loads(x) for x in client.files.iter_lines(f)]


def test_transient_failures_are_retried_until_every_row_is_ok(
    server: LocalServer, client: Client, kit: FrameKit
) -> None:
    f = server.faults
    f.fail_lines(code="rate_limit_exceeded", custom_ids=r"^row-(1|4)$", count=2)
    f.fail_lines(code="internal_error", custom_ids=r"^row-7$", count=1)
    df = kit.frame({"q": TEXTS})
    out = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, retries=2)
    assert_all_answered(out, TEXTS)
    job = df.zgpu.last_job
    # one round was enough: the second batch carried exactly the three failed rows
    assert len(job.batch_ids) == 2 and job.rounds == 1
    retried = input_lines(client, job.batch_ids[1])
    assert [x["custom_id"] for x in retried] == ["row-1", "row-4", "row-7"]
    assert [x["body"] for x in retried] == [body(TEXTS[i]) for i in (1, 4, 7)]
    (rec,) = Journal().list()
    assert [(c.round, c.lines) for c in rec.chunks] == [(0, 12), (1, 3)]
    assert rec.status == "completed"
    # the same call again: the whole job, rounds included, comes from the journal
    again = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, retries=2)
    assert kit.is_native(again) and again.equals(out)
    assert api_calls(server, "POST", "/v1/batches") == 2


def test_retries_stop_after_n_rounds_and_other_errors_are_kept(
    server: LocalServer, client: Client
) -> None:
    server.faults.fail_lines(code="internal_error", custom_ids=r"^row-2$")  # every time
    server.faults.fail_lines(code="invalid_request_error", custom_ids=r"^row-5$")
    df = pd.DataFrame({"q": TEXTS})
    out = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, retries=2)
    job = df.zgpu.last_job
    assert job.rounds == 2 and len(job.batch_ids) == 3
    # only the transient row was resubmitted, in each round
    for bid in job.batch_ids[1:]:
        assert [x["custom_id"] for x in input_lines(client, bid)] == ["row-2"]
    status = out["response_status"].tolist()
    assert status[2] == "error" and out["response_error_code"][2] == "internal_error"
    assert status[5] == "error" and out["response_error_code"][5] == "invalid_request_error"
    assert status.count("ok") == 10
    assert job.status().outcome == "partial"
    assert Journal().list()[0].status == "partial"


def test_manual_retry_with_codes(server: LocalServer, client: Client) -> None:
    df = pd.DataFrame({"q": TEXTS[:4]})
    job = df.zgpu.submit_chat("q", model=MODEL, client=client, progress=False)
    job.result()
    job.retry()  # nothing failed: nothing is sent
    assert api_calls(server, "POST", "/v1/batches") == 1 and job.rounds == 0

    server.faults.fail_lines(code="invalid_request_error", custom_ids=r"^row-3$", count=1)
    df2 = pd.DataFrame({"q": TEXTS[4:8]})
    job2 = df2.zgpu.submit_chat("q", model=MODEL, client=client, progress=False)
    assert job2.result()["response_status"].tolist()[3] == "error"
    job2.retry()  # not a transient code: not resubmitted by default
    assert job2.rounds == 0
    job2.retry(codes="invalid_request_error")
    assert job2.rounds == 1
    assert_all_answered(job2.result(), TEXTS[4:8])


def test_account_wide_failure_stops_the_job_without_resubmitting(
    start_server: Callable[..., LocalServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    code = "insufficient_quota"
    # two batches: the first fails at once (injected failures skip the latency), the second
    # takes two slow steps of the server's worker and is still running when that is seen
    monkeypatch.setattr(accessor_module, "build_requests", partial(build_requests, max_lines=6))
    srv = start_server(latency=0.5, concurrency=4)
    srv.faults.fail_lines(code=code, custom_ids=r"^row-[0-5]$")
    df = pd.DataFrame({"q": TEXTS})
    with Client(api_key=KEY, project_id="p", base_url=srv.url, poll_interval=0.02) as c:
        with pytest.raises(JobStoppedError) as info:
            df.zgpu.batch_chat("q", model=MODEL, client=c, progress=False, retries=3)
        err = info.value
        msg = str(err)
        assert f"6 row(s) with {code}" in msg and "nothing was resubmitted" in msg
        assert f"retry(codes=['{code}'])" in msg and KEY not in msg
        assert err.codes == {code: 6}
        # no retry round, and the batch still running was cancelled
        assert api_calls(srv, "POST", "/v1/batches") == 2
        slow = err.job.batch_ids[1]
        assert api_calls(srv, "POST", f"/v1/batches/{slow}/cancel") == 1
        part = err.job.result(wait=False)
        codes = part["response_error_code"].fillna("").tolist()
        assert codes[:6] == [code] * 6
        assert set(codes[6:]) <= {"", "batch_cancelled"} and "batch_cancelled" in codes[6:]
        (rec,) = Journal().list()
        assert rec.status == "stopped"

        # the same call again says the same, from the journal, without sending anything
        seen = len(srv.request_log)
        with pytest.raises(JobStoppedError):
            df.zgpu.batch_chat("q", model=MODEL, client=c, progress=False, retries=3)
        assert len(srv.request_log) == seen

        # the account is fixed: resubmitting the named rows, then the cancelled ones
        srv.faults.clear()
        job = df.zgpu.last_job
        job.retry(codes=[code])
        assert [x["custom_id"] for x in input_lines(c, job.batch_ids[-1])] == [
            f"row-{i}" for i in range(6)
        ]
        job.retry(codes=["batch_cancelled"])
        assert_all_answered(job.result(), TEXTS)
        assert Journal().list()[0].status == "completed"


def test_an_authentication_error_on_some_rows_stops_the_job_too(
    server: LocalServer, client: Client
) -> None:
    server.faults.fail_lines(code="authentication_error", custom_ids=r"^row-1$")
    df = pd.DataFrame({"q": TEXTS[:3]})
    with pytest.raises(JobStoppedError, match="1 row\\(s\\) with authentication_error"):
        df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, retries=5)
    assert api_calls(server, "POST", "/v1/batches") == 1
    with pytest.raises(JobStoppedError):  # a default retry would not help either
        df.zgpu.last_job.retry()
    assert api_calls(server, "POST", "/v1/batches") == 1


def test_a_crash_inside_a_retry_round_resumes_that_round(
    server: LocalServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.faults.fail_lines(code="internal_error", custom_ids=r"^row-(0|3)$", count=2)
    calls = {"after_create": 0}

    def crash_on_second_create(stage: str) -> None:
        if stage == "after_create":
            calls["after_create"] += 1
            if calls["after_create"] == 2:  # the retry round's batch: created, not recorded
                raise KeyboardInterrupt

    df = pd.DataFrame({"q": TEXTS[:5]})
    monkeypatch.setattr(job_module, "checkpoint", crash_on_second_create)
    with pytest.raises(KeyboardInterrupt):
        df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, retries=1)
    monkeypatch.setattr(job_module, "checkpoint", lambda s: None)
    (rec,) = Journal().list()
    assert rec.chunks[1].round == 1 and rec.chunks[1].batch_id is None and rec.chunks[1].token
    out = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, retries=1)
    assert_all_answered(out, TEXTS[:5])
    assert api_calls(server, "POST", "/v1/batches") == 2  # the round's batch found by token


def test_retry_of_a_job_attached_without_its_frame(server: LocalServer, client: Client) -> None:
    server.faults.fail_lines(code="internal_error", custom_ids=r"^row-(1|2)$", count=2)
    df = pd.DataFrame({"q": TEXTS[:4]})
    first = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    assert first["response_status"].tolist() == ["ok", "error", "error", "ok"]
    job = attach(df.zgpu.last_job.job_id, client=client, progress=False)
    job.retry()  # the lines are read back from the batch's input file
    out = job.result()
    assert out["response"].tolist() == [builtin_reply(body(t)) for t in TEXTS[:4]]
    assert [x["custom_id"] for x in input_lines(client, job.batch_ids[-1])] == ["row-1", "row-2"]


def test_retry_after_the_result_closed_the_jobs_own_client(server: LocalServer) -> None:
    """A job that made its own client closes it with the result; a later retry makes a new
    one with the same settings."""
    server.faults.fail_lines(code="internal_error", custom_ids=r"^row-0$", count=1)
    df = pd.DataFrame({"q": TEXTS[:2]})
    conn = {"base_url": server.url, "api_key": KEY, "project_id": "p"}
    first = df.zgpu.batch_chat("q", model=MODEL, progress=False, **conn)
    assert first["response_status"].tolist() == ["error", "ok"]
    job = df.zgpu.last_job
    job.retry()
    assert_all_answered(job.result(), TEXTS[:2])
