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


REVIEW_TAGGING = [
    new_markdown_cell(
        "# Review tagging, end to end\n\n"
        "The ZeroGPU review-tagging cookbook as a DataFrame job: tag each customer review with a "
        "sentiment and up to three topics, parse the JSON replies into columns, chart the "
        "sentiment counts, and retry the rows that failed for a transient reason.\n\n"
        "It runs against a local ZeroGPU-compatible server started in this notebook, with a "
        "deterministic built-in model and, to make the retry step real, 5% of lines failing with "
        "`internal_error` on the first pass. On ZeroGPU, drop the server and the `base_url`, "
        "`api_key` and `project_id` arguments and set `ZGPU_API_KEY`."
    ),
    new_code_cell(
        "import zgpu_pandas  # noqa: F401  (registers the df.zgpu accessor)\n"
        "from zgpu_pandas import LocalServer\n"
        "from zgpu_pandas.datasets import load_reviews\n\n"
        "reviews = load_reviews()\n"
        'print(len(reviews), "reviews;", reviews["review"].isna().sum(), "without text")\n'
        "reviews.head()"
    ),
    new_code_cell(
        "server = LocalServer(latency=0.005, concurrency=16, require_project_id=False).start()\n"
        "# Transient failures on the first pass (at most 15 lines), so there is something to retry.\n"
        'server.faults.fail_lines(code="internal_error", rate=0.05, count=15)\n'
        'conn = {"base_url": server.url, "api_key": "local-key", "project_id": "demo"}\n'
        "server.url"
    ),
    new_code_cell(
        "SYSTEM = (\n"
        '    "You tag customer reviews. Reply with JSON only, exactly of the form "\n'
        '    \'{"sentiment": "positive|neutral|negative", "topics": ["..."]}.\'\n'
        ")\n"
        "SCHEMA = {\n"
        '    "type": "object",\n'
        '    "properties": {\n'
        '        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},\n'
        '        "topics": {"type": "array", "items": {"type": "string"}, "maxItems": 3},\n'
        "    },\n"
        '    "required": ["sentiment", "topics"],\n'
        "}\n\n"
        "# A price check before spending anything (no network call).\n"
        "estimate = reviews.zgpu.estimate_chat(\n"
        '    "review", model="LFM2.5-1.2B-Instruct", system=SYSTEM, response_format=SCHEMA\n'
        ")\n"
        "assert estimate.rows_skipped == reviews[\"review\"].isna().sum()\n"
        "estimate"
    ),
    new_code_cell(
        "job = reviews.zgpu.submit_chat(\n"
        '    "review",\n'
        '    model="LFM2.5-1.2B-Instruct",\n'
        "    system=SYSTEM,\n"
        "    response_format=SCHEMA,  # a schema: replies are parsed into columns\n"
        "    temperature=0,\n"
        "    **conn,\n"
        ")\n"
        "tagged = job.result()\n"
        'tagged["response_status"].value_counts()'
    ),
    new_code_cell(
        "# The JSON replies became columns; failed rows are kept, with the reason.\n"
        'assert {"sentiment", "topics"} <= set(tagged.columns)\n'
        'ok = tagged[tagged["response_status"] == "ok"]\n'
        'assert ok["sentiment"].isin(["positive", "neutral", "negative"]).all()\n'
        'failed = tagged[tagged["response_status"] == "error"]\n'
        "assert 0 < len(failed) <= 15\n"
        'assert set(failed["response_error_code"]) == {"internal_error"}\n'
        'failed[["review", "response_error_code", "response_error"]].head()'
    ),
    new_code_cell(
        "# Sentiment counts among the tagged reviews.\n"
        'counts = ok["sentiment"].value_counts()\n'
        'ax = counts.plot.bar(title="Sentiment of tagged reviews", rot=0)\n'
        'ax.set_ylabel("reviews")\n'
        "assert counts.sum() == len(ok)"
    ),
    new_code_cell(
        "# Retry only the rows that failed for a transient reason: a new batch in the same job,\n"
        "# merged into the same result. Nothing already answered is sent again.\n"
        "before = len(job.batch_ids)\n"
        "job.retry()\n"
        "retried = job.result()\n"
        'assert (retried["response_status"] != "error").all()\n'
        'assert (retried["response_status"] == "skipped").sum() == reviews["review"].isna().sum()\n'
        "assert len(job.batch_ids) == before + 1\n"
        'retried["response_status"].value_counts()'
    ),
    new_code_cell(
        "# The tagged frame, ready to save; the server can go.\n"
        'retried[["review_id", "review", "sentiment", "topics"]].head(10)'
    ),
    new_code_cell("server.stop()"),
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
    write("review_tagging.ipynb", REVIEW_TAGGING)
