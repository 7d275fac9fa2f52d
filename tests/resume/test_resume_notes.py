"""Re-running a call that reattaches to a journaled job says so, and rows that came back
with transient errors are counted with how to retry them."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from zgpu_pandas._client import Client
from zgpu_pandas.server import LocalServer

from .resume_support import MODEL, api_calls


def test_rerun_says_it_resumed_and_how_to_retry_transient_failures(
    server: LocalServer,
    client: Client,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server.faults.fail_lines(code="internal_error", custom_ids=r"^row-[13]$")
    df = pd.DataFrame({"q": ["a", "b", "c", "d"]})
    caplog.set_level(logging.INFO, logger="zgpu_pandas")
    first = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    assert first["response_status"].tolist() == ["ok", "error", "ok", "error"]
    job_id = df.zgpu.last_job.job_id
    assert "Resumed" not in caplog.text
    assert "2 row(s) failed with a transient error (internal_error: 2)" in caplog.text
    assert "retries=" in caplog.text and "df.zgpu.last_job.retry()" in caplog.text
    assert capsys.readouterr().err == ""  # progress=False: nothing printed
    caplog.clear()

    creates = api_calls(server, "POST", "/v1/batches")
    again = df.zgpu.batch_chat("q", model=MODEL, client=client, progress="tqdm")
    assert again["response_status"].tolist() == first["response_status"].tolist()
    assert api_calls(server, "POST", "/v1/batches") == creates
    note = f"Resumed job {job_id} from the journal (1 batches); no new batch was created"
    assert note in caplog.text
    err = capsys.readouterr().err
    assert note in err  # visible without logging configured
    assert "2 row(s) failed with a transient error" in err


def test_a_fresh_successful_job_says_nothing_extra(
    server: LocalServer, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    df = pd.DataFrame({"q": ["a", "b"]})
    caplog.set_level(logging.INFO, logger="zgpu_pandas")
    df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    assert "Resumed" not in caplog.text and "transient" not in caplog.text
