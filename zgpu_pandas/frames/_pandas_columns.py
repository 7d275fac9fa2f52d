"""pandas out: the core's Arrow answers and parsed reply fields as columns of the caller's
frame.

Every column the package adds has the same dtype on pandas 2 and 3: text is
``string[pyarrow]`` (``<NA>`` when missing), token counts ``Int64``, ``{output}_shared``
``bool``. A reply field's column follows its schema (:func:`field_column`). The caller's frame
is never changed: the result is a shallow copy with new columns.

Example::

    out = merge_answers(df, table.answers("tag"))
    out[out["tag_status"] == "error"]         # the failed rows, with their errors
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..core.results import ResultsTable, check_columns
from ..core.structured import FieldKind, ParsedAnswers, SchemaSpec, column_kind, parse_answers
from ._pandas_compat import (
    as_objects,
    bool_array,
    float_array,
    int_array,
    object_array,
    snapshot,
    string_array,
)

__all__ = ["PandasOutput", "field_column", "merge_answers", "merge_results", "parse_into_frame", "position_frame"]


def field_column(values: Sequence[Any], kind: FieldKind = None) -> Any:
    """One reply field's values (``None`` where missing) as a pandas array.

    The dtype comes from the schema's kind, so that it does not change with the rows at hand
    (an all-missing integer field is still ``Int64``): ``string[pyarrow]`` for strings,
    ``Int64``, ``Float64``, ``boolean``; arrays and objects, fields of several kinds and
    values that do not fit the kind (a lax Pydantic coercion, an integer past 64 bits) are an
    ``object`` column with one Python value (list, dict, ...) per row. Without a schema
    (``json_object``), the kind is read off the values present.

    Example::

        >>> field_column([["a", "b"], ["c", "d"], None], "array").tolist()
        [['a', 'b'], ['c', 'd'], None]
        >>> str(field_column([1, None], "integer").dtype), str(field_column([1, 2.5]).dtype)
        ('Int64', 'Float64')
    """
    kind = column_kind(values, kind)
    if kind == "string":
        return string_array(pa.array(values, type=pa.string()))
    if kind == "integer":
        ints = [None if v is None else int(v) for v in values]
        return int_array(pa.array(ints, type=pa.int64()))
    if kind == "number":
        return float_array(values)
    if kind == "boolean":
        return bool_array(values)
    return object_array(values)


def _column(arr: pa.Array | pa.ChunkedArray) -> Any:
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return string_array(arr)
    if pa.types.is_integer(t):
        return int_array(arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr)
    if pa.types.is_boolean(t):
        return arr.to_numpy(zero_copy_only=False)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        # every choice / the token log-probabilities: one Python list per row
        return object_array(arr.to_pylist())
    if pa.types.is_floating(t):
        flat = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        # NaN under the mask where null (one copy), else the array's own values, read-only
        # (the frame the column is assigned to copies it)
        data = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float64)
        mask = np.asarray(flat.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        return pd.arrays.FloatingArray(data, mask)
    raise TypeError(f"no pandas column for Arrow type {t}")


def merge_answers(
    df: pd.DataFrame,
    answers: pa.Table,
    fields: dict[str, tuple[list[Any], FieldKind]] | None = None,
) -> pd.DataFrame:
    """A new DataFrame: ``df`` (unchanged, same index and order) plus one column per answer
    column and per reply field (replacing columns of the same name: clashes are refused
    before anything is sent, unless ``overwrite=True`` was given)."""
    if len(df) != answers.num_rows:
        raise ValueError(f"the frame has {len(df)} rows but the results are for {answers.num_rows}")
    # A shallow copy plus new columns: the caller's frame is never touched (new columns,
    # and columns replaced with overwrite=True, are new arrays on any pandas), and its data
    # is not copied.
    out = df.copy(deep=False)
    for name in answers.column_names:
        out[name] = _column(answers.column(name))
    for name, (values, kind) in (fields or {}).items():
        out[name] = field_column(values, kind)
    return out


def position_frame(n_rows: int) -> pd.DataFrame:
    """An empty frame of ``n_rows`` rows indexed by position (``0..n_rows-1``)."""
    return pd.DataFrame(index=pd.RangeIndex(n_rows, name="position"))


def custom_id_frame(custom_ids: Sequence[str]) -> pd.DataFrame:
    """An empty frame indexed by custom_ids (a batch made elsewhere, attached alone)."""
    return pd.DataFrame(index=pd.Index(list(custom_ids), name="custom_id"))


class PandasOutput:
    """The caller's pandas frame as a job's ``FrameOutput``: a snapshot taken when the job
    starts (later in-place edits of the caller's frame do not reach the result)."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.frame = snapshot(df)
        self.n_rows = len(df)

    @property
    def columns(self) -> Sequence[Any]:
        return list(self.frame.columns)

    def merge(
        self, answers: pa.Table, fields: Mapping[str, tuple[list[Any], FieldKind]]
    ) -> pd.DataFrame:
        return merge_answers(self.frame, answers, dict(fields))


def merge_results(
    df: pd.DataFrame, table: ResultsTable, *, output: str = "response", overwrite: bool = False
) -> pd.DataFrame:
    """``df`` plus the answer columns of ``table`` (see :func:`merge_answers`): ``{output}``
    (the answer text), ``{output}_status`` (ok / error / skipped), ``{output}_error_code``,
    ``{output}_error``, ``{output}_finish_reason``, the token counts
    ``{output}_prompt_tokens`` / ``_completion_tokens`` / ``_total_tokens``, and
    ``{output}_shared`` (``True`` on rows whose result came from another row's identical
    request: their token counts repeat that request's, so sum usage over ``~shared`` rows).

    Example::

        out = merge_results(df, table, output="tag")
        out[out["tag_status"] == "error"]         # the failed rows, with their errors
    """
    if len(df) != table.n_rows:
        raise ValueError(f"the frame has {len(df)} rows but the results are for {table.n_rows}")
    check_columns(df, output, overwrite=overwrite)
    return merge_answers(df, table.answers(output))


def parse_into_frame(
    out: pd.DataFrame, spec: SchemaSpec, *, output: str = "response", overwrite: bool = False
) -> pd.DataFrame:
    """Parse the answers already in ``out`` (a merged frame) and add one column per reply
    field, marking replies that do not parse ``parse_error`` (see
    :func:`~zgpu_pandas.core.structured.parse_answers`).

    Example::

        out = parse_into_frame(merge_results(df, table), spec)
        out[["sentiment", "topics", "response_status"]]
    """
    names = [output, f"{output}_status", f"{output}_error_code", f"{output}_error"]
    answers = pa.table(
        {n: pa.array(as_objects(out[n]).tolist(), pa.large_string()) for n in names}
    )
    others = [c for c in out.columns if c not in set(names)]
    parsed: ParsedAnswers = parse_answers(
        answers, spec, output=output, frame_columns=others, overwrite=overwrite
    )
    return merge_answers(out.drop(columns=names), parsed.answers, parsed.fields)[
        [*out.columns, *[f for f in parsed.fields if f not in set(out.columns)]]
    ]
