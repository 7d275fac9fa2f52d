"""The API key never shows anywhere a job leaves a trace, and the journal is the owner's.

A job runs through ``df.zgpu`` with a recognisable key (and a second one fails on a refused
key), with a notebook widget as the display and every logger at DEBUG. Then everything a
user, a notebook or another user of the machine could see is searched for the key: the job's
repr, HTML and status, the widget's value and synced state, the merged frame written out, the
exceptions (message, repr, traceback), the log, stdout and stderr, and every byte of the
journal directory. The journal's directories must be 0700 and its files 0600.

(The client-level scan of every public object and exception class is
``tests/client/test_client_secrets.py``; the server side is in ``test_security.py``.)
"""

from __future__ import annotations

import logging
import os
import pickle
import stat
import traceback
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

import zgpu_pandas  # noqa: F401  (registers df.zgpu)
from zgpu_pandas.errors import PermissionDeniedError
from zgpu_pandas.server import LocalServer

MODEL = "LFM2.5-1.2B-Instruct"
KEY = "zk-jobscan-4f6a8c0e2b4d6f81-SECRET"


def test_the_key_never_reaches_job_state_widget_journal_logs_or_output(
    start_server: Callable[..., LocalServer],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    pytest.importorskip("ipywidgets")
    caplog.set_level(logging.DEBUG)
    srv = start_server(api_keys={KEY: None})
    srv.faults.fail_lines(code="internal_error", custom_ids="^row-1$")
    df = pd.DataFrame({"review": ["good", "bad", "fine"]})
    seen: list[tuple[str, str]] = []

    job = df.zgpu.submit_chat(
        "review", model=MODEL, api_key=KEY, project_id="p", base_url=srv.url,
        progress="widget", poll_interval=0.02,
    )  # fmt: skip
    out = job.result()
    assert out["response_status"].tolist() == ["ok", "error", "ok"]
    widget = job.display.widget
    seen += [
        ("job repr", repr(job)),
        ("job html", job._repr_html_()),
        ("status", str(job.status())),
        ("status repr", repr(job.status())),
        ("widget value", widget.value),
        ("widget state", repr(widget.get_state())),
        ("client repr", repr(job.client)),
        ("frame", out.to_csv()),
    ]
    try:
        seen.append(("pickled job", repr(pickle.dumps(job))))
    except Exception as refusal:  # refusing is fine; saying the key while refusing is not
        seen.append(("pickle refusal", repr(refusal)))

    with pytest.raises(PermissionDeniedError) as info:
        df.zgpu.batch_chat(
            "review", model=MODEL, api_key=KEY + "-revoked", project_id="p", base_url=srv.url,
            progress=False, fresh=True,
        )  # fmt: skip
    exc = info.value
    seen += [
        ("exception", str(exc)),
        ("exception repr", repr(exc)),
        ("traceback", "".join(traceback.format_exception(exc))),
    ]
    captured = capsys.readouterr()
    seen += [("log", caplog.text), ("stdout", captured.out), ("stderr", captured.err)]

    for label, text in seen:
        assert KEY not in text, f"the key shows in the {label}"

    state = Path(os.environ["ZGPU_STATE_DIR"])
    files = [p for p in state.rglob("*") if p.is_file()]
    assert files, "the job must have written its journal"
    for p in files:
        assert KEY.encode() not in p.read_bytes(), f"the key was written to {p}"
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    for d in [state, *(p for p in state.rglob("*") if p.is_dir())]:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
