"""The progress display: what it renders, the choice of display, and a real Jupyter kernel."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

import zgpu_pandas.frames.pandas  # noqa: F401  (registers df.zgpu)
from zgpu_pandas._client import Client
from zgpu_pandas._progress import (
    BatchState,
    JobStatus,
    NullProgress,
    TqdmProgress,
    as_text,
    format_duration,
    make_progress,
    render_html,
    summary,
)
from zgpu_pandas.server import LocalServer

MODEL = "LFM2.5-1.2B-Instruct"


@pytest.fixture(autouse=True)
def _own_job_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own job journal, so jobs never resume across tests."""
    monkeypatch.setenv("ZGPU_STATE_DIR", str(tmp_path / "zgpu-state"))


def status(outcome: str, **kw: object) -> JobStatus:
    base: dict[str, object] = {
        "job_id": "job_x",
        "model": MODEL,
        "rows": 12,
        "sent": 10,
        "skipped": 2,
        "batches": (
            BatchState(0, "batch_a", "completed", 6, completed=6),
            BatchState(1, "batch_b", "in_progress", 4, completed=1, failed=1),
        ),
        "outcome": outcome,
        "elapsed": 75.0,
        "eta": 30.0,
    }
    base.update(kw)
    return JobStatus(**base)  # type: ignore[arg-type]


def test_render_shows_everything_the_widget_promises() -> None:
    html = render_html(status("running"))
    for piece in (
        "job_x",
        MODEL,
        "12 rows: 10 sent, 2 skipped",
        "2 batches",
        "batch_a",
        "in_progress",
        "7 completed · 1 failed · 2 to go (rows)",
        "elapsed 1m 15s",
        "about 30s left",
        "width:70.00%",  # completed share of the bar
        "width:10.00%",  # failed share
        "Running: 8 of 10 rows done",
    ):
        assert piece in html, piece


def test_render_escapes_what_it_shows() -> None:
    html = render_html(status("running", model="<script>x</script>"))
    assert "<script>" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize(
    ("outcome", "kw", "text"),
    [
        ("success", {}, "Done: all 10 sent rows answered, 2 skipped in 1m 15s."),
        ("partial", {"answered": 9, "errored": 1}, "Partly done: 9 of 10 sent rows answered, 1 failed"),
        ("failure", {}, "Failed: none of the 10 sent rows was answered (batch in_progress)."),
        ("failure", {"sent": 0}, "Nothing was sent: all 12 rows were skipped"),
        ("submitting", {}, "Submitting 10 rows in 2 batches"),
    ],
)
def test_summary_says_plainly_where_the_job_stands(outcome: str, kw: dict, text: str) -> None:
    assert text in summary(status(outcome, **kw))


def test_durations() -> None:
    assert [format_duration(x) for x in (None, 0.4, 59, 61, 3600 + 120)] == [
        "?",
        "0s",
        "59s",
        "1m 01s",
        "1h 02m",
    ]


def test_choice_of_display_outside_a_notebook() -> None:
    assert isinstance(make_progress(False), NullProgress)
    assert isinstance(make_progress(None), NullProgress)  # pytest's stderr is not a terminal
    assert isinstance(make_progress(True), TqdmProgress)
    assert isinstance(make_progress("tqdm"), TqdmProgress)
    with pytest.raises(ValueError, match="progress must be"):
        make_progress("fancy")  # type: ignore[arg-type]


def test_notes_reach_every_display_except_a_silenced_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    NullProgress(quiet=True).note("hidden <note>")
    make_progress(False).note("hidden <note>")  # type: ignore[attr-defined]
    assert capsys.readouterr().err == ""
    NullProgress().note("printed <note>")  # no display chosen: stderr still says it
    bar = TqdmProgress()
    bar.update(status("running"))
    bar.note("above the bar <note>")
    bar.close(None)
    err = capsys.readouterr().err
    assert "printed <note>" in err and "above the bar <note>" in err
    pytest.importorskip("ipywidgets")
    from zgpu_pandas._widget import WidgetProgress

    widget = WidgetProgress()

    def no_frontend(*objs: Any, **kw: Any) -> None:  # no notebook here to show it in
        pass

    widget._display = widget._update_display = no_frontend
    widget.note("Resumed job <x>")
    widget.update(status("running"))
    widget.close(status("success"))
    value = widget.widget.value
    assert "Resumed job &lt;x&gt;" in value and "Done:" in value  # kept above the status


def test_background_widget_keeps_updating_without_any_call(server: LocalServer) -> None:
    pytest.importorskip("ipywidgets")
    df = pd.DataFrame({"t": ["a", "b"]})
    with Client(api_key="k", project_id="p", base_url=server.url, poll_interval=0.02) as c:
        job = df.zgpu.submit_chat("t", model=MODEL, client=c, progress="widget")
        widget = job.display.widget
        deadline = time.monotonic() + 30
        while "Done:" not in widget.value:  # nobody calls the job: its thread does the work
            assert time.monotonic() < deadline, widget.value
            time.sleep(0.02)
        assert job.watching
        assert job.join_watcher(5)
        assert job.result(wait=False)["response_status"].tolist() == ["ok", "ok"]


def test_in_a_jupyter_kernel_a_widget_is_shown_and_updates_while_the_kernel_is_free(
    server: LocalServer, tmp_path: Path
) -> None:
    pytest.importorskip("ipywidgets")
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import os, sys, pandas as pd, zgpu_pandas.frames.pandas\n"
            f"os.environ['ZGPU_STATE_DIR'] = {str(tmp_path / 'kernel-state')!r}\n"
            "from zgpu_pandas._client import Client\n"
            f"c = Client(api_key='k', project_id='p', base_url={server.url!r}, poll_interval=0.02)\n"
            "df = pd.DataFrame({'t': ['a', 'b', None]})\n"
            f"job = df.zgpu.submit_chat('t', model={MODEL!r}, client=c)\n"
        ),
        nbformat.v4.new_code_cell(
            "import time\n"
            "t0 = time.time()\n"
            "while 'Done:' not in job.display.widget.value and time.time() - t0 < 60:\n"
            "    time.sleep(0.05)\n"
            "print(type(job.display).__name__, 'Done:' in job.display.widget.value)\n"
        ),
        nbformat.v4.new_code_cell(
            "out = df.zgpu.batch_chat('t', model='LFM2.5-1.2B-Instruct', client=c)\n"
            "print(out['response_status'].tolist())"
        ),
    ]
    env_keys = [k for k in os.environ if k.startswith(("ZGPU_", "ZEROGPU_"))]
    saved = {k: os.environ.pop(k) for k in env_keys}
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    finally:
        os.environ.update(saved)
    # the first cell's widget, finished while the kernel was free, was left as a snapshot
    (first,) = nb.cells[0].outputs
    assert "Done: all 2 sent rows answered" in first["data"]["text/html"]
    assert "Done: all 2 sent rows answered" in first["data"]["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" not in first["data"]
    assert nb.cells[1].outputs[0]["text"].strip() == "WidgetProgress True"
    third = nb.cells[2].outputs
    assert any("Done: all 2" in o.get("data", {}).get("text/html", "") for o in third)
    assert "['ok', 'ok', 'skipped']" in "".join(o.get("text", "") for o in third)


# ---- the batch table, the terminal bar, the counts ------------------------------------


def test_every_cell_of_the_batch_table_has_room_around_it() -> None:
    import re

    html = render_html(status("running"))
    table = html[html.index("<table") : html.index("</table>")]
    cells = re.findall(r"<t[hd]( style='[^']*')?>", table)
    assert len(cells) == 6 * 3  # a header and two batches, six columns each
    assert all("padding:" in style for style in cells), cells


@pytest.mark.parametrize("ncols", [80, 120])
def test_the_terminal_bar_keeps_bar_counts_and_time_left_in_view(ncols: int) -> None:
    import io
    import re

    out = io.StringIO()
    bar = TqdmProgress(file=out, ncols=ncols)
    st = status("running", job_id="job_20261130-201953_1a2b3c4d", model="LFM2.5-1.2B-Instruct")
    bar.update(st)
    bar.close(None)
    lines = [x for x in re.split(r"[\r\n]", out.getvalue()) if x.strip()]
    # the job and the model get a line of their own, above the bar
    assert lines[0] == "zgpu job job_20261130-201953_1a2b3c4d · LFM2.5-1.2B-Instruct · 10 of 12 rows sent"
    line = lines[-1].rstrip()
    assert len(line) <= ncols, line
    filled = line.split("|")[1]  # the bar itself, between its two edges
    assert len(filled) >= ncols // 4, line
    assert "8/10 rows" in line and "<" in line and "1 failed" in line, line


def test_counts_are_rows_and_agree_before_and_after_a_retry_of_shared_requests(
    server: LocalServer,
) -> None:
    # 30 rows with a prompt, 20 distinct: rows 20-29 repeat rows 0-9 and share their request.
    # Three requests fail once, taking the five rows that carry or share them with them.
    texts = [f"question {i % 20}" for i in range(30)] + [None, ""]
    server.faults.fail_lines(code="internal_error", custom_ids=r"^row-(3|7|11)$", count=3)
    df = pd.DataFrame({"q": texts})
    with Client(api_key="k", project_id="p", base_url=server.url, poll_interval=0.02) as c:
        df.zgpu.batch_chat("q", model=MODEL, client=c, progress=False)
        job = df.zgpu.last_job
        first = job.status()
        assert (first.rows, first.sent, first.skipped, first.requests) == (32, 30, 2, 20)
        assert (first.answered, first.errored, first.shared) == (25, 5, 10)
        assert summary(first).startswith("Partly done: 25 of 30 sent rows answered, 5 failed")
        why = "30 rows sent as 20 requests: 10 repeat another row's request and share its answer"
        assert why in as_text(first)
        assert "requests</th>" in render_html(first)  # the service's counts, named as such
        job.retry()
        during = (job.status(),)
        job.result()
        final = job.status()
    for st in (*during, final):  # the same rows, whatever round the job is in
        assert (st.rows, st.sent, st.skipped, st.requests) == (32, 30, 2, 20)
    assert during[0].round == final.round == 1
    assert final.lines == 3  # the retry round: the three failed requests
    assert (final.answered, final.errored) == (30, 0)
    assert summary(final).startswith(
        "Done: all 30 sent rows answered, 2 skipped after 1 retry round in "
    )
    assert summary(final).endswith(f"({why}).")


def test_without_shared_requests_the_counts_say_rows_only() -> None:
    st = status("success", answered=10)
    assert st.requests is None and st.unit == "rows"
    text = as_text(st) + render_html(st)
    assert "request" not in text.replace("_status/_error", "")


def test_a_display_that_breaks_on_close_costs_nothing(server: LocalServer) -> None:
    class Breaks:
        def update(self, st: JobStatus) -> None:
            pass

        def close(self, st: JobStatus | None) -> None:
            raise RuntimeError("front end gone")

    df = pd.DataFrame({"t": ["a", "b"]})
    with Client(api_key="k", project_id="p", base_url=server.url, poll_interval=0.02) as c:
        job = df.zgpu.submit_chat("t", model=MODEL, client=c, progress=Breaks())
        assert job.result()["response_status"].tolist() == ["ok", "ok"]
        assert isinstance(job.display, NullProgress)
