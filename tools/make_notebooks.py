"""Write the notebooks in ``notebooks/`` from the cell sources below (without outputs).

Keeping the source here makes notebook diffs reviewable; the test suite executes the
written notebooks top to bottom. Run: ``python tools/make_notebooks.py``
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent

QUICKSTART = [
    new_markdown_cell(
        "# zgpu_pandas quickstart\n\n"
        "One call sends every row of a DataFrame to a chat model through the ZeroGPU Batch API "
        "and merges the answers back. This notebook runs offline: `base_url=\"local\"` starts a "
        "local ZeroGPU-compatible server inside this kernel, with a deterministic built-in model. "
        "To use ZeroGPU itself, set `ZGPU_API_KEY` (and `ZGPU_PROJECT_ID`) and drop `base_url`."
    ),
    new_code_cell(
        "import pandas as pd\n\n"
        "import zgpu_pandas  # noqa: F401  (registers the df.zgpu accessor)\n\n"
        "df = pd.DataFrame(\n"
        "    {\n"
        '        "review": ["Boils fast and looks great.", "", "Stopped working after a week.", None],\n'
        '        "stars": [5, 3, 1, 2],\n'
        "    },\n"
        '    index=["a", "b", "c", "d"],\n'
        ")\n"
        "df"
    ),
    new_code_cell(
        "out = df.zgpu.batch_chat(\n"
        '    "review",\n'
        '    model="LFM2.5-1.2B-Instruct",\n'
        '    system="Answer with one word: positive, neutral or negative.",\n'
        "    temperature=0,\n"
        '    base_url="local",\n'
        ")\n"
        'out[["review", "response_status", "response", "response_total_tokens"]]'
    ),
    new_code_cell(
        "# Same index and order as the input; empty prompts are skipped, not sent.\n"
        "assert out.index.equals(df.index)\n"
        'assert out["response_status"].tolist() == ["ok", "skipped", "ok", "skipped"]\n'
        "# The built-in model echoes each row's prompt, so each answer is visibly its own row's.\n"
        'assert "Boils fast" in out.loc["a", "response"] and "Stopped working" in out.loc["c", "response"]\n'
        'out["response_status"].value_counts()'
    ),
    new_code_cell(
        "# A template over two columns, submitted without blocking: the widget keeps updating\n"
        "# while the kernel is free, and job.result() waits and merges.\n"
        "job = df.zgpu.submit_chat(\n"
        '    "Review: {review}\\nStars: {stars}", model="LFM2.5-1.2B-Instruct", base_url="local"\n'
        ")\n"
        "tagged = job.result()\n"
        'assert "Stars: 5" in tagged.loc["a", "response"]\n'
        'tagged[["review", "stars", "response"]]'
    ),
]


def write(name: str, cells: list) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path = ROOT / "notebooks" / name
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    write("quickstart.ipynb", QUICKSTART)
