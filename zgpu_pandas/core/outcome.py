"""A job's outcome as a frame: the answer columns, and with structured output the reply's
fields, put beside the caller's rows by their library's adapter.

Example::

    out = merge_outcome(table.answers("response"), sink, parse=spec, output="response",
                        overwrite=False, job_id="job_1")
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..errors import ColumnClashError, StructuredOutputError
from .memory import give_back, on_system_allocator
from .results import EXTRAS, check_columns
from .rows import FrameOutput
from .structured import SchemaSpec, parse_answers

__all__ = ["merge_outcome"]


@on_system_allocator
def merge_outcome(
    answers: pa.Table,
    sink: FrameOutput,
    *,
    parse: SchemaSpec | None,
    output: str,
    overwrite: bool,
    job_id: str,
) -> Any:
    """The caller's frame plus ``answers`` (and the parsed reply fields when ``parse``).

    Replies that do not parse are marked ``parse_error``. Anything else that goes wrong while
    splitting replies into columns (a shape no test foresaw) raises
    :class:`~zgpu_pandas.errors.StructuredOutputError`, which says that the answers are kept
    and that ``parse=False`` returns them as raw text."""
    extras = [x for x in EXTRAS if f"{output}_{x}" in answers.column_names]
    check_columns(sink.columns, output, overwrite=overwrite, extras=extras)
    # The pages Arrow's allocator kept from folding the results (ResultsTable.compact) and
    # making the answers, given back before the frame is made beside them: on a million
    # rows, the peak of this step went from ~870 to ~750 MB.
    give_back()
    try:
        if parse is None:
            return sink.merge(answers, {})
        parsed = parse_answers(
            answers, parse, output=output, frame_columns=sink.columns, overwrite=overwrite
        )
        return sink.merge(parsed.answers, parsed.fields)
    except ColumnClashError:
        raise
    except Exception as exc:  # a reply shape no test foresaw: say how to go on
        if parse is None:
            raise
        raise StructuredOutputError(
            f"Job {job_id}: the answers arrived but could not be split into columns "
            f"({type(exc).__name__}: {exc}). They are kept: call the same way with parse=False "
            f"to get the raw JSON text in {output!r}."
        ) from exc
    finally:
        # what making the frame freed (the casts, the columns' intermediate forms), given
        # back now rather than held for as long as the caller keeps the result (~40 MB on
        # a million rows)
        give_back()
