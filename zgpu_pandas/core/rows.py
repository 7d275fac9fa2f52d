"""The two sides of a frame adapter, as the core sees them, whatever DataFrame library holds
the rows.

- ``Rows`` (in): the caller's rows read column by column; the core builds requests from it.
- ``FrameOutput`` (out): the caller's frame, kept as it was when the job started, that the
  core's Arrow answers and reply fields are put beside.

Each adapter in ``zgpu_pandas.frames`` implements both over its library's frame; the core
never imports pandas or Polars. :func:`as_rows` and :func:`as_output` turn a native frame into
them (lazily importing only the adapter of the library the frame comes from), so core
functions accept a frame directly.

Example::

    rows = as_rows(df)                    # a pandas or Polars DataFrame
    text, missing = rows.text(rows.key("review", "prompt="))
    rows.label(3)                         # "row 'd' (position 3)" for pandas, "row 3" for Polars
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa

__all__ = ["Cells", "FrameOutput", "Rows", "as_output", "as_rows", "custom_id_output", "position_output"]

#: a column's values as Python objects: a list, tuple or 1-D object array
Cells = Sequence[Any] | np.ndarray


@runtime_checkable
class Rows(Protocol):
    """The rows of one job, read column by column."""

    #: how many rows there are (positions ``0..n_rows-1``)
    n_rows: int

    def has_column(self, name: Any) -> bool:
        """Whether ``name`` names exactly one column."""
        ...

    def key(self, name: Any, what: str) -> Any:
        """The column ``name`` refers to; a :class:`~zgpu_pandas.errors.PromptError` that
        starts with ``what`` and lists the columns when there is none (or several)."""
        ...

    def text(self, key: Any) -> tuple[pa.Array | pa.ChunkedArray, np.ndarray]:
        """A column as ``large_string`` prompt text (null where missing; in one array, or
        in the pieces the frame holds it in) and the missing mask, by the rules of
        :mod:`zgpu_pandas.core.text`."""
        ...

    def values(self, key: Any) -> Cells:
        """A column's cells as Python objects (for message lists and ``{x:.2f}`` fields)."""
        ...

    def label(self, position: int) -> str:
        """How a row is named in messages, e.g. ``row 'a' (position 0)``."""
        ...

    def row_ids(self, positions: Sequence[int]) -> list[Any]:
        """The rows' own names (index labels; positions for a library without an index)."""
        ...

    def frame(self, columns: Mapping[str, Cells]) -> Any:
        """A small native frame of these columns (e.g. the rows an error is about)."""
        ...


@runtime_checkable
class FrameOutput(Protocol):
    """Where a job's results go: the caller's frame, and how to add columns to it."""

    #: how many rows the frame has
    n_rows: int

    @property
    def columns(self) -> Sequence[Any]:
        """The frame's column names (for clash checks before anything is sent)."""
        ...

    def merge(self, answers: pa.Table, fields: Mapping[str, tuple[list[Any], Any]]) -> Any:
        """A new native frame: the caller's rows, in order, plus one column per answer
        column and per reply field (values per row and the kind their schema promises)."""
        ...


def _library(obj: Any) -> str:
    return type(obj).__module__.split(".", 1)[0]


def as_output(obj: Any) -> FrameOutput:
    """``obj`` if it already is a ``FrameOutput``, else the adapter's output side of a pandas
    or Polars frame (a snapshot: later edits of the caller's frame do not reach it)."""
    if isinstance(obj, FrameOutput):
        return obj
    if _library(obj) == "pandas":
        from ..frames._pandas_columns import PandasOutput

        return PandasOutput(obj)
    if _library(obj) == "polars":
        from ..frames._polars_io import PolarsOutput

        return PolarsOutput(obj)
    raise TypeError(
        f"expected a pandas or Polars DataFrame, got {type(obj).__module__}.{type(obj).__name__}"
    )


def position_output(n_rows: int) -> FrameOutput:
    """Where results go when no frame is given (a job picked up from the journal alone): a
    pandas frame indexed by row position, holding the answer columns only."""
    from ..frames._pandas_columns import PandasOutput, position_frame

    return PandasOutput(position_frame(n_rows))


def custom_id_output(custom_ids: Sequence[str]) -> FrameOutput:
    """Where results go for a batch made elsewhere, attached without a frame: a pandas frame
    indexed by the lines' custom_ids."""
    from ..frames._pandas_columns import PandasOutput, custom_id_frame

    return PandasOutput(custom_id_frame(custom_ids))


def as_rows(obj: Any) -> Rows:
    """``obj`` if it already is ``Rows``, else the adapter's view of a pandas or Polars frame.
    Anything else raises ``TypeError`` naming what is accepted."""
    if isinstance(obj, Rows):
        return obj
    if _library(obj) == "pandas":
        from ..frames._pandas_rows import PandasRows

        return PandasRows(obj)
    if _library(obj) == "polars":
        from ..frames._polars_io import PolarsRows

        return PolarsRows(obj)
    raise TypeError(
        f"expected a pandas or Polars DataFrame, got {type(obj).__module__}.{type(obj).__name__}"
    )
