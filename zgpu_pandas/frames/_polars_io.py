"""Polars in and out: the :class:`~zgpu_pandas.core.rows.Rows` and
:class:`~zgpu_pandas.core.rows.FrameOutput` sides of a ``polars.DataFrame``.

In: text columns as they are (no copy beyond Arrow's), numbers and booleans by the core's
rules (``4.0`` → ``4``; a NaN is missing, never ``"nan"``), categoricals and enums through
their categories, dates and times as Polars writes them, ``Object``, list and struct cells
one by one (a list of messages belongs in ``messages=``). Polars has no index, so a row is
named by its position.

Out: a new frame with the answer columns (``String``, ``Int64``, ``Boolean``) and one column
per reply field: the schema's kind when every value fits it (``String``, ``Int64``,
``Float64``, ``Boolean``), else the type Polars infers from the values (``List``, ``Struct``),
else ``Object`` (values of several kinds). Row order is the caller's; Polars frames are
immutable, so the caller's frame is never changed.

Example::

    >>> import polars as pl
    >>> rows = PolarsRows(pl.DataFrame({"q": ["a", None]}))
    >>> rows.text("q")[0].to_pylist(), rows.label(1)
    (['a', None], 'row 1')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from ..core.rows import Cells
from ..core.structured import FieldKind, column_kind
from ..core.text import LARGE_STRING, arrow_text, object_text
from ..errors import PromptError

__all__ = ["PolarsOutput", "PolarsRows", "field_series"]

_KIND_DTYPES: dict[str, Any] = {
    "string": pl.String,
    "integer": pl.Int64,
    "number": pl.Float64,
    "boolean": pl.Boolean,
}


class PolarsRows:
    """A Polars DataFrame as ``Rows``."""

    def __init__(self, df: pl.DataFrame) -> None:
        self.df = df
        self.n_rows = df.height

    def has_column(self, name: Any) -> bool:
        return isinstance(name, str) and name in self.df.columns

    def key(self, name: Any, what: str) -> Any:
        if not self.has_column(name):
            cols = ", ".join(repr(c) for c in self.df.columns[:20])
            more = " ..." if self.df.width > 20 else ""
            raise PromptError(f"{what}: there is no column {name!r}. The columns are: {cols}{more}.")
        return name

    def text(self, key: Any) -> tuple[pa.Array, np.ndarray]:
        s = self.df.get_column(key)
        dtype = s.dtype
        arr: pa.Array | None = None
        if dtype.is_temporal() or dtype in (pl.Categorical, pl.Enum) or isinstance(dtype, pl.Categorical | pl.Enum):
            arr = arrow_text(s.cast(pl.String).to_arrow())
        elif dtype.is_numeric() or dtype in (pl.String, pl.Boolean, pl.Null):
            arr = arrow_text(s.to_arrow())
        if arr is None:  # Object, List, Struct, Binary...: cell by cell (lists are refused)
            arr, _ = object_text(s.to_list(), str(key), self.label)
        if arr.type != LARGE_STRING:
            arr = arr.cast(LARGE_STRING)
        missing = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        return arr, missing

    def values(self, key: Any) -> Cells:
        return self.df.get_column(key).to_list()

    def label(self, position: int) -> str:
        return f"row {position}"

    def row_ids(self, positions: Sequence[int]) -> list[Any]:
        return [int(p) for p in positions]

    def frame(self, columns: Mapping[str, Cells]) -> pl.DataFrame:
        return pl.DataFrame({k: list(v) for k, v in columns.items()})


def field_series(name: str, values: Sequence[Any], kind: FieldKind = None) -> pl.Series:
    """One reply field's values (``None`` where missing) as a Polars Series: the schema's
    kind when every value fits it, else what Polars infers (``List``, ``Struct``), else
    ``Object``.

    Example::

        >>> field_series("topics", [["a", "b"], ["c", "d"], None], "array").dtype
        List(String)
    """
    kind = column_kind(values, kind)
    dtype = _KIND_DTYPES.get(kind or "")
    if dtype is not None:
        return pl.Series(name, list(values), dtype=dtype)
    try:  # strict: a value that does not fit the inferred type fails here, never turns null
        series = pl.Series(name, list(values), strict=True)
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        return pl.Series(name, list(values), dtype=pl.Object)
    if series.to_list() != list(values):  # an inferred type that changed a value
        return pl.Series(name, list(values), dtype=pl.Object)
    return series


class PolarsOutput:
    """The caller's Polars frame as a job's ``FrameOutput``."""

    def __init__(self, df: pl.DataFrame) -> None:
        self.frame = df  # Polars frames are not changed in place: no snapshot needed
        self.n_rows = df.height

    @property
    def columns(self) -> Sequence[Any]:
        return list(self.frame.columns)

    def merge(
        self, answers: pa.Table, fields: Mapping[str, tuple[list[Any], FieldKind]]
    ) -> pl.DataFrame:
        if answers.num_rows != self.n_rows:
            raise ValueError(
                f"the frame has {self.n_rows} rows but the results are for {answers.num_rows}"
            )
        added = pl.from_arrow(answers)
        assert isinstance(added, pl.DataFrame)
        columns = [added.get_column(n) for n in added.columns]
        columns += [field_series(n, values, kind) for n, (values, kind) in fields.items()]
        # with_columns replaces a column of the same name in place and appends the others,
        # as pandas does (a replaced column exists only with overwrite=True)
        return self.frame.with_columns(columns)
