"""The notebook widget in a real Jupyter kernel: one display per cell that waits on a job,
each left as a static snapshot (HTML and text) when its call ends, so a retry in a later
cell never redraws an earlier cell, and a notebook saved without a kernel shows outcomes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest

from zgpu_pandas.server import LocalServer

MODEL = "LFM2.5-1.2B-Instruct"
WIDGET = "application/vnd.jupyter.widget-view+json"


def run_notebook(cells: list[str], tmp_path: Path) -> Any:
    """Execute ``cells`` in a fresh kernel, save the notebook, and read it back as saved."""
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    env_keys = [k for k in os.environ if k.startswith(("ZGPU_", "ZEROGPU_"))]
    saved = {k: os.environ.pop(k) for k in env_keys}
    os.environ["ZGPU_STATE_DIR"] = str(tmp_path / "kernel-state")
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    finally:
        os.environ.pop("ZGPU_STATE_DIR")
        os.environ.update(saved)
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    return nbformat.read(path, as_version=4)


def displays(cell: Any) -> list[dict[str, str]]:
    """The job displays a cell's saved outputs hold (its data bundles)."""
    return [
        o["data"]
        for o in cell.outputs
        if o.get("output_type") == "display_data" and "zgpu job" in o["data"].get("text/plain", "")
    ]


def test_each_call_shows_its_own_display_frozen_when_it_ends(
    server: LocalServer, tmp_path: Path
) -> None:
    pytest.importorskip("ipywidgets")
    # 30 rows with a prompt, 20 distinct (rows 20-29 repeat rows 0-9); three requests fail
    # once, so the first pass leaves 5 rows failed and one retry round answers them.
    server.faults.fail_lines(code="internal_error", custom_ids=r"^row-(3|7|11)$", count=3)
    nb = run_notebook(
        [
            "import pandas as pd, zgpu_pandas\n"
            "from zgpu_pandas._client import Client\n"
            f"c = Client(api_key='k', project_id='p', base_url={server.url!r}, poll_interval=0.02)\n"
            "df = pd.DataFrame({'q': [f'question {i % 20}' for i in range(30)] + [None, '']})\n"
            f"out = df.zgpu.batch_chat('q', model={MODEL!r}, client=c)\n"
            "job = df.zgpu.last_job",
            "job.retry();",
            "out = job.result()\nprint(out['response_status'].value_counts().to_dict())",
        ],
        tmp_path,
    )
    first, retry, result = (displays(cell) for cell in nb.cells)
    assert len(first) == len(retry) == len(result) == 1  # each cell shows its own
    for (bundle,) in (first, retry, result):
        # a static snapshot, readable without a kernel or the widget JavaScript
        assert WIDGET not in bundle
        assert "<div class='zgpu-job'" in bundle["text/html"]
        assert "HTML(value=" not in bundle["text/plain"]
        assert "32 rows: 30 sent, 2 skipped" in bundle["text/plain"]
        assert "30 rows sent as 20 requests" in bundle["text/plain"]
    # the first cell still says what its call ended with: the retry did not redraw it
    why = "Partly done: 25 of 30 sent rows answered, 5 failed, 2 skipped"
    assert why in first[0]["text/html"] and why in first[0]["text/plain"]
    assert "Done:" not in first[0]["text/plain"]
    assert "Retry round 1" in retry[0]["text/html"]
    done = "Done: all 30 sent rows answered, 2 skipped after 1 retry round"
    assert done in result[0]["text/html"] and done in result[0]["text/plain"]
    assert "{'ok': 30, 'skipped': 2}" in nb.cells[2].outputs[-1]["text"]


def test_an_exported_notebook_shows_the_final_counts(server: LocalServer, tmp_path: Path) -> None:
    pytest.importorskip("ipywidgets")
    nbconvert = pytest.importorskip("nbconvert")
    nb = run_notebook(
        [
            "import pandas as pd, zgpu_pandas\n"
            "from zgpu_pandas._client import Client\n"
            f"c = Client(api_key='k', project_id='p', base_url={server.url!r}, poll_interval=0.02)\n"
            "df = pd.DataFrame({'q': ['a', 'b', 'a', None]})\n"
            f"out = df.zgpu.batch_chat('q', model={MODEL!r}, client=c)",
        ],
        tmp_path,
    )
    body, _ = nbconvert.HTMLExporter().from_notebook_node(nb)
    assert "Done: all 3 sent rows answered, 1 skipped" in body
    assert "4 rows: 3 sent, 1 skipped" in body
    assert "HTML(value=" not in body


def test_a_job_left_running_keeps_its_display_while_a_later_cell_waits(
    start_server: Any, tmp_path: Path
) -> None:
    pytest.importorskip("ipywidgets")
    server = start_server(latency=0.02, concurrency=1)  # ~1 s of work, seen from two cells
    nb = run_notebook(
        [
            "import pandas as pd, zgpu_pandas\n"
            "from zgpu_pandas._client import Client\n"
            f"c = Client(api_key='k', project_id='p', base_url={server.url!r}, poll_interval=0.02)\n"
            "df = pd.DataFrame({'q': [f'q{i}' for i in range(40)]})\n"
            f"job = df.zgpu.submit_chat('q', model={MODEL!r}, client=c)",
            "out = job.result()\nprint(job.join_watcher(30))",
        ],
        tmp_path,
    )
    submitted, waited = (displays(cell) for cell in nb.cells)
    # the first cell's display, kept live by the job's thread, ended with the job; the
    # second cell's call showed its own
    assert len(submitted) == len(waited) == 1
    for (bundle,) in (submitted, waited):
        assert WIDGET not in bundle
        assert "Done: all 40 sent rows answered" in bundle["text/html"]
    assert nb.cells[1].outputs[-1]["text"].strip() == "True"


def test_a_retry_display_frozen_after_its_submit_says_running(
    server: LocalServer, tmp_path: Path
) -> None:
    pytest.importorskip("ipywidgets")
    server.faults.fail_lines(code="internal_error", custom_ids=r"^row-1$", count=1)
    nb = run_notebook(
        [
            "import pandas as pd, zgpu_pandas\n"
            "from zgpu_pandas._client import Client\n"
            f"c = Client(api_key='k', project_id='p', base_url={server.url!r}, poll_interval=0.02)\n"
            "df = pd.DataFrame({'q': ['a', 'b', 'c']})\n"
            f"out = df.zgpu.batch_chat('q', model={MODEL!r}, client=c)\n"
            "job = df.zgpu.last_job",
            "job.retry();",
            "out = job.result()",
        ],
        tmp_path,
    )
    (retry,) = displays(nb.cells[1])
    assert "Submitting" not in retry["text/plain"]
    assert "Running retry round 1: " in retry["text/plain"]
    # frozen before the job was done: it says where the rest is
    assert "job.result() waits for the rest" in retry["text/plain"]
