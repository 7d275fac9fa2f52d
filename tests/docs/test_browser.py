"""What a person sees in JupyterLab, in a real headless Chromium: the quickstart notebook run
from the Run menu shows each job's widget as rendered HTML (never a text repr) with its final
counts, and a retry in a later cell gets a display of its own while the earlier one stays
as it was.

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``browser`` extra
(``pip install -e '.[dev,browser]'``); skipped when they are missing. ``.ci/run`` installs
them for its first leg. Set ``ZGPU_BROWSER_SHOTS`` to a folder to keep a screenshot of each
job display (to look at while working on the widget).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.support import ROOT

from .browser import chromium, lab, missing, run_all

pytestmark = [
    pytest.mark.slow,
    # one worker process for the module: JupyterLab and Chromium start once (module fixture)
    pytest.mark.xdist_group("browser"),
    pytest.mark.skipif(missing() is not None, reason=f"browser test: {missing()}"),
]

# Records, from before Run All, every job display the page draws and whether it was drawn by
# the widget (inside a rendered ipywidgets view) or is the static snapshot left afterwards.
WATCH = """
window.zgpuSeen = new Set();
new MutationObserver(() => {
  for (const el of document.querySelectorAll('.zgpu-job')) {
    window.zgpuSeen.add(el.closest('.jupyter-widgets') ? 'widget' : 'static');
  }
}).observe(document.body, {subtree: true, childList: true, characterData: true});
"""
BROKEN = ("HTML(value=", "Loading widget", "Error displaying widget", "Model not found")


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str, Path]]:
    """A JupyterLab server on a folder of notebooks, and a browser; private state dirs."""
    tmp = tmp_path_factory.mktemp("browser")
    root = tmp / "notebooks"
    root.mkdir()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ZGPU_", "ZEROGPU_", "OPENAI_"))
    }
    env["ZGPU_STATE_DIR"] = str(tmp / "state")
    env["ZGPU_LOCAL_DATA_DIR"] = str(tmp / "local-server")
    with lab(root, env) as url, chromium(tmp / "profile") as driver:
        yield driver, url, root


def job_displays(driver: Any) -> list[list[str]]:
    """For each code cell, the text of each job display in its outputs."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.jp-CodeCell')].map(c =>"
        " [...c.querySelectorAll('.jp-OutputArea-output .zgpu-job')].map(e => e.innerText));"
    )


def check_page(driver: Any, name: str) -> None:
    outputs = driver.execute_script(
        "return [...document.querySelectorAll('.jp-OutputArea-output')].map(e => e.innerText);"
    )
    for text in outputs:
        assert not any(b in text for b in BROKEN), text
    # the widget really rendered (as DOM, not a text repr) before its snapshot replaced it
    assert set(driver.execute_script("return [...window.zgpuSeen];")) == {"widget", "static"}
    shots = os.environ.get("ZGPU_BROWSER_SHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        for k, el in enumerate(driver.find_elements("css selector", ".zgpu-job")):
            driver.execute_script("arguments[0].scrollIntoView()", el)
            el.screenshot(str(Path(shots) / f"{name}-{k}.png"))


def _notebook() -> Any:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    return nb


def test_quickstart_shows_each_job_with_its_final_counts(page: tuple[Any, str, Path]) -> None:
    driver, url, root = page
    shutil.copy(ROOT / "notebooks" / "quickstart.ipynb", root / "quickstart.ipynb")
    run_all(driver, url, "quickstart.ipynb", timeout=240, script=WATCH)
    check_page(driver, "quickstart")
    shown = job_displays(driver)
    # code cells: the frame, batch_chat, the checks, submit_chat + result()
    assert [len(x) for x in shown] == [0, 1, 0, 1], shown
    for (text,) in (shown[1], shown[3]):
        assert "4 rows: 2 sent, 2 skipped" in text, text
        assert "2 answered · 0 failed · 2 skipped" in text, text
        assert "Done: all 2 sent rows answered, 2 skipped" in text, text


def test_a_retry_in_a_later_cell_gets_its_own_display(
    page: tuple[Any, str, Path], tmp_path: Path
) -> None:
    driver, url, root = page
    nb = _notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(code)
        for code in (
            "import pandas as pd, zgpu_pandas\n"
            "from zgpu_pandas.server import LocalServer\n"
            "from zgpu_pandas._client import Client\n"
            f"srv = LocalServer(data_dir={str(tmp_path / 'server')!r}).__enter__()\n"
            "srv.faults.fail_lines(code='internal_error', custom_ids=r'^row-(3|7)$', count=2)\n"
            "c = Client(api_key='k', project_id='p', base_url=srv.url, poll_interval=0.05)\n"
            "df = pd.DataFrame({'q': [f'question {i % 8}' for i in range(12)]})\n"
            "out = df.zgpu.batch_chat('q', model='LFM2.5-1.2B-Instruct', client=c)\n"
            "job = df.zgpu.last_job",
            "job.retry();",
            "out = job.result()",
        )
    ]
    nbformat.write(nb, root / "retry.ipynb")
    run_all(driver, url, "retry.ipynb", timeout=240, script=WATCH)
    check_page(driver, "retry")
    first, retry, result = job_displays(driver)
    assert len(first) == len(retry) == len(result) == 1
    # rows 3 and 7 and the rows repeating them (11) failed in the first pass, which the
    # first cell still says; the later cells show the retry round and its outcome
    assert "Partly done: 9 of 12 sent rows answered, 3 failed" in first[0]
    assert "12 rows sent as 8 requests: 4 repeat another row's request" in first[0]
    assert "Retry round 1" in retry[0]
    assert "Done: all 12 sent rows answered after 1 retry round" in result[0]


def test_the_online_mode_shows_a_rendered_progress_bar(
    page: tuple[Any, str, Path], tmp_path: Path
) -> None:
    driver, url, root = page
    nb = _notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import pandas as pd, zgpu_pandas\n"
            "from zgpu_pandas.server import LocalServer\n"
            f"srv = LocalServer(data_dir={str(tmp_path / 'server')!r}).__enter__()\n"
            "df = pd.DataFrame({'q': [f'question {i}' for i in range(20)]})\n"
            "out = df.zgpu.chat('q', model='LFM2.5-1.2B-Instruct', base_url=srv.url,\n"
            "                   api_key='k', project_id='p')\n"
            "print(out['response_status'].value_counts().to_dict())"
        )
    ]
    nbformat.write(nb, root / "chat.ipynb")
    run_all(driver, url, "chat.ipynb", timeout=240)
    cell = driver.execute_script(
        "const c = document.querySelector('.jp-CodeCell .jp-OutputArea');"
        "return {text: c.innerText,"
        " bars: c.querySelectorAll('.jupyter-widgets progress, .jupyter-widgets .progress,"
        " .jupyter-widgets .widget-progress').length};"
    )
    text = cell["text"]
    assert not any(b in text for b in (*BROKEN, "HBox(children")), text
    assert cell["bars"] >= 1, text  # drawn by the widget, not printed as text
    assert "20/20" in text and "{'ok': 20}" in text, text
