"""Runs can be told apart and picked up again: ``name=`` in ``jobs()`` and on attached jobs,
a result from the journal says so in ``out.attrs``, ``attach`` reports the journal's status
and parses as the original call did, the "Resumed job" notice with ``progress=False``,
pruning old jobs, the shared local server tuned in place, and messages about keys."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from pydantic import BaseModel

import zgpu_pandas
from zgpu_pandas import Client
from zgpu_pandas._journal import Journal
from zgpu_pandas.cli import main
from zgpu_pandas.errors import AuthenticationError, ConfigurationError
from zgpu_pandas.server import LocalServer

from .resume_support import MODEL, api_calls


class Review(BaseModel):
    sentiment: str
    stars: int
    topics: list[str]


def test_name_and_metadata_show_in_jobs_and_on_attached_jobs(
    client: Client, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    df = pd.DataFrame({"q": ["a", "b"]})
    out = df.zgpu.batch_chat(
        "q", model=MODEL, client=client, progress=False, name="prompt v2", metadata={"who": "ann"}
    )
    job_id = out.attrs["zgpu"]["job_id"]
    assert out.attrs["zgpu"]["name"] == "prompt v2" and out.attrs["zgpu"]["from_journal"] is False
    listed = zgpu_pandas.jobs()
    assert listed.loc[listed["id"] == job_id, "name"].tolist() == ["prompt v2"]
    assert main(["jobs"]) == 0
    assert "prompt v2" in capsys.readouterr().out

    by_id = zgpu_pandas.attach(job_id, client=client)
    assert (by_id.name, by_id.metadata) == ("prompt v2", {"who": "ann"})
    # attached by batch id on another machine (no journal): the name travels on the batch
    (bid,) = by_id.batch_ids
    Journal().job_dir(job_id).rename(Journal().root / "moved-away")
    foreign = zgpu_pandas.attach(bid, client=client)
    assert foreign.name == "prompt v2" and foreign.metadata == {"who": "ann"}
    with pytest.raises(ValueError, match="name="):
        df.zgpu.estimate_chat("q", model=MODEL, name="  ")


def test_a_result_from_the_journal_says_so_and_the_notice_shows_without_progress(
    client: Client, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    df = pd.DataFrame({"q": ["a", "b", "c"]})
    first = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    capsys.readouterr()
    again = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    zgpu = again.attrs["zgpu"]
    assert zgpu["from_journal"] is True and zgpu["job_id"] == first.attrs["zgpu"]["job_id"]
    assert zgpu["note"].startswith(f"Resumed job {zgpu['job_id']} from the journal")
    err = capsys.readouterr().err
    assert err.strip() == zgpu["note"]  # one line, although progress=False
    assert api_calls(server, "POST", "/v1/batches") == 1


def test_attach_reports_the_journals_status_and_parses_like_the_original_call(
    client: Client, server: LocalServer, tmp_path: Path
) -> None:
    df = pd.DataFrame({"q": ["great, 5 stars", "awful", "fine"]})
    out = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False,
                             response_format=Review)
    job_id = out.attrs["zgpu"]["job_id"]
    before = len(server.request_log)
    job = zgpu_pandas.attach(job_id, client=client)
    assert "outcome=success" in repr(job)  # not "running": the journal says it is done
    assert len(server.request_log) == before  # read from the local copies
    again = job.result()
    cols = ["response_status", "sentiment", "stars", "topics"]
    pd.testing.assert_frame_equal(again[cols].reset_index(drop=True), out[cols])
    # in another process, with the frame: the same columns, the same kinds
    code = (
        "import pandas as pd, zgpu_pandas\n"
        f"job = zgpu_pandas.attach({job_id!r}, api_key='k', project_id='proj',"
        f" base_url={server.url!r})\n"
        "print(repr(job))\n"
        "out = job.result()\n"
        "print(out['stars'].dtype, type(out['topics'][0]).__name__)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "outcome=success" in proc.stdout and "Int64 list" in proc.stdout


def test_prune_deletes_old_finished_jobs_only(
    client: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    done = pd.DataFrame({"q": ["a"]}).zgpu.batch_chat(
        "q", model=MODEL, client=client, progress=False, name="old"
    )
    done_id = done.attrs["zgpu"]["job_id"]
    journal = Journal()
    running = journal.create(fingerprint="r" * 64, model=MODEL, rows=1, settings={},
                             base_url="local")
    running.status = "running"
    journal.save(running)
    long_ago = time.time() - 40 * 86400
    for job_id in (done_id, running.job_id):
        rec = journal.load(job_id)
        rec.created_at = rec.updated_at = long_ago
        (journal.job_dir(job_id) / "job.json").write_bytes(
            __import__("orjson").dumps(rec.to_dict())
        )
    assert zgpu_pandas.prune_jobs(older_than_days=60).empty
    done_lock = journal._lock_path(journal.load(done_id).fingerprint)
    assert done_lock.exists()  # taken while the job was started
    preview = zgpu_pandas.prune_jobs(older_than_days=30, dry_run=True)
    assert preview["id"].tolist() == [done_id] and preview["bytes"][0] > 0
    assert journal.job_dir(done_id).exists()
    assert main(["jobs", "prune", "--older-than", "30"]) == 0
    assert f"deleted {done_id}" in capsys.readouterr().out
    assert not journal.job_dir(done_id).exists()
    assert not done_lock.exists()  # the lock file goes with the job
    assert journal.job_dir(running.job_id).exists()  # may be paid for and still working
    # a lock held by a live process is never removed
    with journal.lock("h" * 64):
        assert not journal.drop_lock("h" * 64)
    assert journal.drop_lock("h" * 64) and not journal._lock_path("h" * 64).exists()
    with pytest.raises(ValueError, match="older_than_days"):
        zgpu_pandas.prune_jobs(older_than_days=-1)


def test_the_shared_local_server_is_tuned_in_place() -> None:
    srv = zgpu_pandas.local_server(latency=0)
    assert zgpu_pandas.local_server() is srv  # the same one, not another
    srv.faults.fail_lines(code="internal_error", rate=1.0, count=1)
    try:
        out = pd.DataFrame({"q": ["x1", "x2"]}).zgpu.batch_chat(
            "q", model=MODEL, base_url="local", progress=False, retries=1
        )
    finally:
        srv.faults.clear()
    assert out["response_status"].tolist() == ["ok", "ok"]  # the failed row was retried
    assert srv.config.latency == 0
    zgpu_pandas.local_server(latency=0.01)
    assert srv.config.latency == 0.01
    zgpu_pandas.local_server(latency=0)
    with pytest.raises(ValueError, match="latency"):
        zgpu_pandas.local_server(latency=-1)


def test_key_messages_fit_the_case(server: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # a loopback server and no key: not "use base_url='local'" (another server)
    with pytest.raises(ConfigurationError) as info:
        Client(base_url=server.url)
    text = str(info.value)
    assert server.url in text and "ZGPU_API_KEY" in text and "base_url='local'" not in text
    # a key without a project id: the 401 names what is missing
    monkeypatch.delenv("ZGPU_PROJECT_ID", raising=False)
    with Client(api_key="k", base_url=server.url) as c, pytest.raises(AuthenticationError) as err:
        c.batches.list().__next__()
    assert "ZGPU_PROJECT_ID" in str(err.value) and "project_id=" in str(err.value)
