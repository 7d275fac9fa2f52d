"""Resuming jobs from the journal, in process, against the real local server.

A "crash" is simulated by making ``checkpoints.checkpoint`` raise at one stage (the subprocess test in
``test_kill_subprocess.py`` does it for real with SIGKILL); the same call is then run again
and must finish the job with exactly one upload and one batch per chunk.
"""

from __future__ import annotations

import os
import stat
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import orjson
import pandas as pd
import pytest

import zgpu_pandas.core.checkpoints as job_module
import zgpu_pandas.core.run as accessor_module
from tests.support import FrameKit
from zgpu_pandas import attach, jobs
from zgpu_pandas._client import Client
from zgpu_pandas._journal import Journal
from zgpu_pandas.core.checkpoints import CHECKPOINTS
from zgpu_pandas.core.requests import build_requests
from zgpu_pandas.errors import (
    APIConnectionError,
    JobNotFoundOnServiceError,
    JobTimeoutError,
    JournalCorruptError,
    JournalWriteError,
)
from zgpu_pandas.server import LocalServer

from .resume_support import KEY, MODEL, api_calls, assert_all_answered


class Crash(BaseException):
    """Stands for the process dying at a checkpoint."""


def crash_at(stage: str) -> Callable[[str], None]:
    def checkpoint(s: str) -> None:
        if s == stage:
            raise Crash(s)

    return checkpoint


@pytest.fixture
def three_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of at most 4 lines, so 10 rows make 3 batches (4, 3, 3)."""
    monkeypatch.setattr(accessor_module, "build_requests", partial(build_requests, max_lines=4))


TEXTS = [f"question {i}" for i in range(10)]


@pytest.mark.parametrize("stage", CHECKPOINTS)
def test_crash_at_any_stage_then_the_same_call_finishes_without_paying_twice(
    stage: str,
    start_server: Callable[..., LocalServer],
    monkeypatch: pytest.MonkeyPatch,
    three_chunks: None,
    kit: FrameKit,
) -> None:
    # slow lines where the crash must come while a batch runs; fast ones elsewhere
    slow = stage in ("mid_poll",)
    srv = start_server(latency=0.2 if slow else 0.0, concurrency=1)
    df = kit.frame({"q": TEXTS})
    with Client(api_key=KEY, project_id="p", base_url=srv.url, poll_interval=0.02) as c:
        monkeypatch.setattr(job_module, "checkpoint", crash_at(stage))
        with pytest.raises(Crash):
            df.zgpu.batch_chat("q", model=MODEL, client=c, progress=False)
        monkeypatch.setattr(job_module, "checkpoint", lambda s: None)
        (rec,) = Journal().list()
        assert rec.status in ("created", "running")

        out = df.zgpu.batch_chat("q", model=MODEL, client=c, progress=False)
        assert_all_answered(out, TEXTS)
        on_server = sorted(b.id for b in c.batches.list())
    # exactly one upload and one batch per chunk, over both runs
    assert api_calls(srv, "POST", "/v1/files") == 3
    assert api_calls(srv, "POST", "/v1/batches") == 3
    (rec,) = Journal().list()
    assert sorted(rec.batch_ids) == on_server
    assert rec.status == "completed" and all(ch.downloaded for ch in rec.chunks)
    if stage == "after_create":
        # the batch whose id was never recorded was found by its token
        assert api_calls(srv, "GET", "/v1/batches") >= 1


def test_a_resumed_job_waits_for_batches_still_running(
    start_server: Callable[..., LocalServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = start_server(latency=0.2, concurrency=1)
    df = pd.DataFrame({"q": TEXTS[:4]})
    with Client(api_key=KEY, project_id="p", base_url=srv.url, poll_interval=0.02) as c:
        monkeypatch.setattr(job_module, "checkpoint", crash_at("mid_poll"))
        with pytest.raises(Crash):
            df.zgpu.batch_chat("q", model=MODEL, client=c, progress=False)
        monkeypatch.setattr(job_module, "checkpoint", lambda s: None)
        (rec,) = Journal().list()
        # the journal saw the batch running when the process died
        assert rec.chunks[0].status == "in_progress" and not rec.chunks[0].downloaded
        job = df.zgpu.submit_chat("q", model=MODEL, client=c, progress=False)
        assert job.job_id == rec.job_id and job.batch_ids == rec.batch_ids
        out = job.result()
    assert_all_answered(out, TEXTS[:4])
    assert api_calls(srv, "POST", "/v1/batches") == 1


def test_a_finished_job_comes_back_from_disk_with_the_server_stopped(
    server: LocalServer, client: Client
) -> None:
    df = pd.DataFrame({"q": TEXTS})
    first = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    job_id = df.zgpu.last_job.job_id
    seen = len(server.request_log)
    server.stop()
    # no retries: any network call would fail this test at once
    with Client(api_key=KEY, project_id="proj", base_url=server.url, max_retries=0) as dead:
        again = df.zgpu.batch_chat("q", model=MODEL, client=dead, progress=False)
        pd.testing.assert_frame_equal(first, again)
        assert df.zgpu.last_job.job_id == job_id
        # the journal's copy also answers attach(), by job id or batch id, without a frame
        by_id = attach(job_id, client=dead, progress=False).result()
        by_batch = attach(df.zgpu.last_job.batch_ids[0], client=dead, progress=False).result()
        with pytest.raises(APIConnectionError):  # and the dead server really is dead
            dead.batches.list().__next__()
    assert len(server.request_log) == seen
    assert by_id.index.equals(pd.RangeIndex(len(df), name="position"))
    pd.testing.assert_frame_equal(by_id, by_batch)
    pd.testing.assert_series_equal(
        by_id["response"], first["response"].rename_axis("position"), check_index_type=False
    )


def test_same_call_twice_buys_once_and_fresh_buys_again(
    server: LocalServer, client: Client
) -> None:
    df = pd.DataFrame({"q": TEXTS[:3]})
    a = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    first_job = df.zgpu.last_job.job_id
    # same frame content in another object, other output prefix: the same job
    b = df.copy().zgpu.batch_chat("q", model=MODEL, client=client, progress=False, output="tag")
    assert api_calls(server, "POST", "/v1/batches") == 1
    assert b["tag"].tolist() == a["response"].tolist()
    c = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, fresh=True)
    assert api_calls(server, "POST", "/v1/batches") == 2
    assert df.zgpu.last_job.job_id != first_job
    pd.testing.assert_frame_equal(a, c)
    # a changed setting or row is another job
    df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, temperature=0)
    df.iloc[:2].zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    assert api_calls(server, "POST", "/v1/batches") == 4
    listed = jobs()
    assert len(listed) == 4 and set(listed["status"]) == {"completed"}
    assert listed.columns.tolist() == [
        "id",
        "name",
        "created",
        "model",
        "rows",
        "status",
        "batches",
        "base_url",
    ]
    assert listed["rows"].tolist()[0] == 2  # newest first
    assert (listed["base_url"] == server.url).all()


def test_corrupted_journal_is_a_clear_error_not_a_resubmission(
    server: LocalServer, client: Client, state_dir: Path
) -> None:
    df = pd.DataFrame({"q": TEXTS[:3]})
    df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    job_id = df.zgpu.last_job.job_id
    record = state_dir / job_id / "job.json"
    good = record.read_bytes()
    posts = api_calls(server, "POST", "/v1/batches")

    for damage in (
        good[: len(good) // 2],  # cut short (a disk that filled up)
        b"\x00" * 40,  # garbage
        orjson.dumps({**orjson.loads(good), "chunks": [{"index": "zero"}]}),  # wrong types
        orjson.dumps([1, 2]),  # not a record at all
    ):
        record.write_bytes(damage)
        with pytest.raises(JournalCorruptError) as info:
            df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
        msg = str(info.value)
        assert str(record) in msg and "Nothing was resubmitted" in msg and "fresh=True" in msg
        assert api_calls(server, "POST", "/v1/batches") == posts
        assert api_calls(server, "POST", "/v1/files") == posts
    # jobs() still lists everything, the damaged entry marked
    with pytest.warns(RuntimeWarning, match="damaged"):
        listed = jobs()
    assert listed.loc[listed["id"] == job_id, "status"].item() == "damaged"

    # a damaged side file is refused the same way
    record.write_bytes(good)
    (state_dir / job_id / "layout.npz").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(JournalCorruptError, match=r"layout\.npz"):
        attach(job_id, client=client, progress=False)

    # the way out the message gives: a fresh job
    out = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, fresh=True)
    assert_all_answered(out, TEXTS[:3])
    assert api_calls(server, "POST", "/v1/batches") == posts + 1


def test_journal_is_private_and_never_holds_the_key(
    server: LocalServer, client: Client, state_dir: Path
) -> None:
    df = pd.DataFrame({"q": TEXTS[:3]})
    df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False, system="Be brief.")
    files = [p for p in state_dir.rglob("*") if p.is_file()]
    names = sorted(p.name for p in files)
    assert "job.json" in names and "layout.npz" in names
    assert any(n.endswith("-output.jsonl") for n in names)
    for p in files:
        assert KEY.encode() not in p.read_bytes(), p
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, p
    for d in [state_dir, *(p for p in state_dir.rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d
    assert not any(p.name.startswith(".") for p in files)  # no temporary file left


def test_a_batch_the_service_does_not_know_stops_with_a_clear_error(
    start_server: Callable[..., LocalServer], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first = start_server(latency=0.2, concurrency=1, data_dir=tmp_path / "a")
    df = pd.DataFrame({"q": TEXTS[:3]})
    with Client(api_key=KEY, project_id="p", base_url=first.url, poll_interval=0.02) as c:
        monkeypatch.setattr(job_module, "checkpoint", crash_at("mid_poll"))
        with pytest.raises(Crash):
            df.zgpu.batch_chat("q", model=MODEL, client=c, progress=False)
        monkeypatch.setattr(job_module, "checkpoint", lambda s: None)
        first.stop()
        # the same address, but an empty data directory: the batch is unknown there
        second = start_server(port=first.port, data_dir=tmp_path / "b")
        with pytest.raises(JobNotFoundOnServiceError) as info:
            df.zgpu.batch_chat("q", model=MODEL, client=c, progress=False)
    msg = str(info.value)
    assert "Nothing was resubmitted" in msg and "fresh=True" in msg
    assert Journal().list()[0].batch_ids[0] in msg
    assert api_calls(second, "POST", "/v1/batches") == 0
    assert api_calls(second, "POST", "/v1/files") == 0


def test_attach_by_job_id_in_a_new_session_with_and_without_the_frame(
    server: LocalServer, client: Client
) -> None:
    df = pd.DataFrame({"q": ["a", None, "b", "a"]}, index=list("wxyz"))
    out = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    job_id = df.zgpu.last_job.job_id
    # by job id, with the journal's service settings and this key
    bare = attach(job_id, client=client, progress=False).result()
    assert bare["response_status"].tolist() == ["ok", "skipped", "ok", "ok"]
    assert bare["response_error_code"].tolist()[1] == "missing_prompt"
    assert bare["response"].tolist()[3] == bare["response"].tolist()[0]  # shared line
    with_frame = df.zgpu.attach(job_id, client=client, progress=False).result()
    pd.testing.assert_frame_equal(with_frame, out)
    with pytest.raises(ValueError, match="frame of 4 rows; this one has 3"):
        attach(job_id, frame=df.iloc[:3], client=client)
    with pytest.raises(Exception, match="no job 'job_nope'"):
        attach("job_nope", client=client)


def test_attach_a_batch_made_elsewhere_is_keyed_by_custom_id(
    server: LocalServer, client: Client
) -> None:
    lines = [
        {
            "custom_id": cid,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [{"role": "user", "content": text}]},
        }
        for cid, text in (("review-17", "good"), ("review-3", "bad"), ("x", "meh"))
    ]
    server.faults.fail_lines(code="internal_error", custom_ids="^x$")
    f = client.files.upload(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    batch = client.batches.create(input_file_id=f.id)
    out = attach(batch.id, client=client, progress=False).result()
    assert out.index.tolist() == ["review-17", "review-3", "x"]
    assert out.index.name == "custom_id"
    assert out["response_status"].tolist() == ["ok", "ok", "error"]
    assert out.loc["review-3", "response"] == f"[{MODEL}] bad"
    assert out.loc["x", "response_error_code"] == "internal_error"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert jobs().empty  # nothing was journaled for a foreign batch


def test_timeout_leaves_the_job_running_and_the_same_call_picks_it_up(
    start_server: Callable[..., LocalServer],
) -> None:
    srv = start_server(latency=0.1, concurrency=1)
    df = pd.DataFrame({"q": TEXTS[:5]})
    with Client(api_key=KEY, project_id="p", base_url=srv.url, poll_interval=0.02) as c:
        with pytest.raises(JobTimeoutError, match="keeps running"):
            df.zgpu.batch_chat("q", model=MODEL, client=c, progress=False, timeout=0.05)
        out = df.zgpu.batch_chat("q", model=MODEL, client=c, progress=False)
    assert_all_answered(out, TEXTS[:5])
    assert api_calls(srv, "POST", "/v1/batches") == 1


def test_a_cancelled_job_is_recorded_as_cancelled(
    start_server: Callable[..., LocalServer],
) -> None:
    srv = start_server(latency=0.1, concurrency=1)
    df = pd.DataFrame({"q": TEXTS})
    with Client(api_key=KEY, project_id="p", base_url=srv.url, poll_interval=0.02) as c:
        job = df.zgpu.submit_chat("q", model=MODEL, client=c, progress=False)
        job.cancel()
        out = job.result()
    assert "batch_cancelled" in set(out["response_error_code"].dropna())
    (rec,) = Journal().list()
    assert rec.status == "cancelled" and rec.chunks[0].status == "cancelled"


def test_an_unwritable_journal_stops_before_anything_is_uploaded(
    server: LocalServer, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ZGPU_STATE_DIR", str(blocker / "jobs"))
    with pytest.raises(JournalWriteError, match="ZGPU_STATE_DIR") as info:
        pd.DataFrame({"q": ["a"]}).zgpu.batch_chat("q", model=MODEL, client=client)
    assert "nothing was uploaded" in str(info.value)
    assert server.request_log == []


def test_a_recorded_upload_the_service_lost_is_uploaded_again_once(
    server: LocalServer, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    df = pd.DataFrame({"q": TEXTS[:3]})
    monkeypatch.setattr(job_module, "checkpoint", crash_at("after_upload"))
    with pytest.raises(Crash):
        df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    monkeypatch.setattr(job_module, "checkpoint", lambda s: None)
    (rec,) = Journal().list()
    assert rec.chunks[0].file_id is not None
    client.files.delete(rec.chunks[0].file_id)  # expired, or deleted by hand
    out = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    assert_all_answered(out, TEXTS[:3])
    assert api_calls(server, "POST", "/v1/files") == 2
    assert api_calls(server, "POST", "/v1/batches") == 2  # the refused create, then the batch
    assert len(list(client.batches.list())) == 1


def test_a_chunk_whose_bytes_do_not_match_the_record_is_not_uploaded(
    server: LocalServer, client: Client, monkeypatch: pytest.MonkeyPatch, state_dir: Path
) -> None:
    df = pd.DataFrame({"q": TEXTS[:3]})
    monkeypatch.setattr(job_module, "checkpoint", crash_at("before_upload"))
    with pytest.raises(Crash):
        df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    monkeypatch.setattr(job_module, "checkpoint", lambda s: None)
    (rec,) = Journal().list()
    rec.chunks[0].sha256 = "0" * 64  # a record edited by hand, or for other bytes
    Journal().save(rec)
    with pytest.raises(JournalCorruptError, match="no longer matches its recorded checksum"):
        df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    assert server.request_log == []
