"""pandas rows in: the :class:`~zgpu_pandas.core.rows.Rows` view of a ``pandas.DataFrame``.

Text comes out of every dtype on purpose: ``str``/``string``/``ArrowDtype(string)`` as it is,
numbers and booleans through Arrow (``4.0`` → ``4``), categoricals through their categories,
``object`` columns through Arrow when they hold plain scalars and cell by cell otherwise,
datetimes and periods as pandas writes them. Rows are named by index label and position, so
any index (duplicates, MultiIndex, timestamps) reads well in an error.

Example::

    >>> rows = PandasRows(pd.DataFrame({"q": ["a", None]}, index=["x", "y"]))
    >>> rows.text("q")[0].to_pylist(), rows.label(1)
    (['a', None], "row 'y' (position 1)")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..core.rows import Cells
from ..core.text import LARGE_STRING, arrow_text, object_text
from ..errors import PromptError
from ._pandas_compat import is_text_dtype

__all__ = ["PandasRows", "row_label"]


def row_label(index: pd.Index, position: int) -> str:
    """How a row is named in messages: its index label (repr) and its position."""
    label = index[position]
    if isinstance(label, np.generic):  # np.int64(3) reads worse than 3
        label = label.item()
    elif isinstance(label, tuple):
        label = tuple(x.item() if isinstance(x, np.generic) else x for x in label)
    return f"row {label!r} (position {position})"


class PandasRows:
    """A pandas DataFrame as ``Rows`` (column names may be any hashable, as in pandas)."""

    def __init__(self, df: pd.DataFrame) -> None:
        self.df = df
        self.n_rows = len(df)

    def has_column(self, name: Any) -> bool:
        try:
            return name in self.df.columns
        except TypeError:  # unhashable
            return False

    def key(self, name: Any, what: str) -> Any:
        if not self.has_column(name):
            # "{0}" in a template names the column 0 when the frame has integer labels
            if isinstance(name, str) and name.isdigit() and self.has_column(int(name)):
                name = int(name)
            else:
                cols = ", ".join(repr(c) for c in list(self.df.columns)[:20])
                more = " ..." if len(self.df.columns) > 20 else ""
                raise PromptError(
                    f"{what}: there is no column {name!r}. The columns are: {cols}{more}."
                )
        self._series(name)  # refuses duplicated names
        return name

    def _series(self, key: Any) -> pd.Series:
        col = self.df[key]
        if isinstance(col, pd.DataFrame):
            raise PromptError(
                f"There are {col.shape[1]} columns named {key!r}; rename them so that one is "
                f"meant."
            )
        return col

    def text(self, key: Any) -> tuple[pa.Array | pa.ChunkedArray, np.ndarray]:
        return _text_column(self._series(key), str(key), self.label)

    def values(self, key: Any) -> Cells:
        return self._series(key).to_numpy(dtype=object)

    def label(self, position: int) -> str:
        return row_label(self.df.index, position)

    def row_ids(self, positions: Sequence[int]) -> list[Any]:
        return [self.df.index[int(p)] for p in positions]

    def frame(self, columns: Mapping[str, Cells]) -> pd.DataFrame:
        return pd.DataFrame(dict(columns))


def _text_column(
    s: pd.Series, name: str, label: Any
) -> tuple[pa.Array | pa.ChunkedArray, np.ndarray]:
    missing = s.isna().to_numpy(dtype=bool, na_value=True)
    dtype = s.dtype
    arr: pa.Array | pa.ChunkedArray | None = None
    if isinstance(dtype, pd.CategoricalDtype):
        cats, _ = _text_column(pd.Series(dtype.categories), name, label)
        codes = s.cat.codes.to_numpy()
        arr = cats.take(pa.array(codes, mask=codes < 0))
    elif is_text_dtype(dtype) or pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype)
    ):
        arr = arrow_text(_to_arrow(s))
    elif pd.api.types.is_object_dtype(dtype):
        try:
            arr = arrow_text(pa.array(s.to_numpy(), from_pandas=True))
        except (pa.ArrowException, TypeError, ValueError, UnicodeError, OverflowError):
            arr = None  # lists, dicts, bytes, mixed...: cell by cell below
        if arr is None:
            arr, cell_missing = object_text(s.to_numpy(dtype=object), name, label)
            missing = missing | cell_missing
    if arr is None:  # datetimes, periods, intervals: pandas' own text for them
        text = s.astype(str).to_numpy(dtype=object)
        text[missing] = None
        arr = pa.array(text, type=LARGE_STRING)
    # a column in pieces (pandas' Arrow-backed text keeps a Parquet file's row groups) stays
    # in them: the request lines are made a window at a time (core/line_buffer.py)
    if arr.type != LARGE_STRING:
        arr = pc.cast(arr, LARGE_STRING)
    return arr, missing


def _to_arrow(s: pd.Series) -> pa.Array | pa.ChunkedArray:
    if isinstance(s.dtype, np.dtype):  # NaN becomes null here, never the text "nan"
        return pa.array(s.to_numpy(), from_pandas=True)
    # extension arrays (string, Int64, Arrow...) know their own arrow form
    return pa.array(s.array, from_pandas=True)
