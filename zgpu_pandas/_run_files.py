"""``zgpu_pandas.run_files``: a batch chat job over Parquet, CSV or JSONL files, streamed.

The file counterpart of ``df.zgpu.batch_chat``: the same options, the same journal (a killed
run resumes without paying twice), but the rows are read, sent and written part by part
(:mod:`zgpu_pandas._stream_run`), so memory stays about one part whatever the input size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._stream_run import PART_ROWS, StreamRun

if TYPE_CHECKING:
    from ._client import Client
    from ._progress import ProgressOption
    from .core.requests import MissingOption

__all__ = ["run_files"]


def run_files(
    inputs: str | Path | Sequence[str | Path],
    *,
    output: str | Path,
    prompt: Any = None,
    model: str | None = None,
    system: str | None = None,
    messages: Any = None,
    output_prefix: str = "response",
    overwrite: bool = False,
    on_oversize: Literal["raise", "skip"] = "raise",
    response_format: Any = None,
    parse: Any = None,
    retries: int = 0,
    timeout: float | None = None,
    fresh: bool = False,
    dedup: bool | None = None,
    part_rows: int = PART_ROWS,
    progress: ProgressOption = None,
    poll_interval: float | None = None,
    client: Client | None = None,
    api_key: str | None = None,
    project_id: str | None = None,
    base_url: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    max_cost: float | None = None,
    name: str | None = None,
    check_model: bool = True,
    extra_body: Mapping[str, Any] | None = None,
    missing: MissingOption = "skip",
    on_invalid: Literal["raise", "skip", "replace"] = "raise",
    **chat_params: Any,
) -> Path:
    """Send one chat request per row of ``inputs`` as batches and write the rows with their
    answers to ``output``; returns the output path.

    ``inputs``: a .parquet, .csv or .jsonl file, a list of them, a folder or a glob (read in
    sorted path order). ``output``: ``out.parquet`` (``.csv``, ``.jsonl``) for one file, or a
    folder (``out/``, or any path without a suffix) for a Parquet dataset of
    ``part-000000.parquet``, ... that ``pandas.read_parquet("out/")`` reads back in input
    order. Every input column is kept, then the answer columns of ``batch_chat``
    (``output_prefix`` names them, as ``output=`` does there).

    The rows go in parts of ``part_rows`` (default 50,000: one batch each); every part's
    batches are created first, then the parts are collected and written in order as they
    finish. Running the same call again after an interruption creates no batch for parts
    already submitted and rewrites no part already written. Before anything is uploaded the
    whole input is read once and every part's requests built: a bad row anywhere stops the
    run with nothing sent, named by file and row (``in/b.csv row 17``), and ``max_cost`` is
    compared with the whole input's estimate. ``progress``: one bar over the input's rows
    (``False``: none). CSV: columns holding numbers or booleans get those types (``007``
    stays text), prompt columns are text as written, only an empty cell is missing. Every
    other option is ``batch_chat``'s.

    Example::

        zgpu_pandas.run_files("reviews/", output="tagged/", prompt="review",
                              model="LFM2.5-1.2B-Instruct", temperature=0)
        pd.read_parquet("tagged/")          # every review with its answer, in order
    """
    from ._stream_read import expand_inputs
    from .core.messages import CLI_HINT
    from .core.spec import ChatSpec, Connection

    spec = ChatSpec(
        prompt=prompt,
        messages=messages,
        model=model,
        system=system,
        output=output_prefix,
        overwrite=overwrite,
        on_oversize=on_oversize,
        response_format=response_format,
        parse=parse,
        dedup=dedup,
        retries=retries,
        timeout=timeout,
        fresh=fresh,
        metadata=metadata,
        max_cost=max_cost,
        chat_params=chat_params,
        name=name,
        check_model=check_model,
        extra_body=extra_body,
        missing=missing,
        on_invalid=on_invalid,
    )
    conn = Connection(client=client, api_key=api_key, project_id=project_id, base_url=base_url)
    paths = expand_inputs(inputs)
    stream = StreamRun(
        paths, output, spec, conn, part_rows=part_rows, progress=progress,
        # interrupted or stopped parts are picked up by running the same call again, as for
        # the command: its wording fits
        poll_interval=poll_interval, hint=CLI_HINT,
    )
    return stream.run()
