"""Result frames into text files: list and dict cells written as JSON, not Python reprs.

Structured output gives ``object`` columns holding lists and dicts (``topics``,
``entities``). ``DataFrame.to_csv`` writes those as Python reprs (``"['a', 'b']"``), which no
other tool reads back; :func:`for_csv` turns them into JSON text first (``["a","b"]``), and
``zgpu-pandas run -o x.csv`` does the same. Parquet keeps real list columns (read back with
pandas they are NumPy arrays; ``.tolist()`` gives lists again).

Example::

    import zgpu_pandas
    zgpu_pandas.for_csv(out).to_csv("tagged.csv", index=False)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd

__all__ = ["for_csv", "json_cells"]

_CONTAINERS = (list, tuple, dict, np.ndarray)


def _to_json(value: Any) -> Any:
    if isinstance(value, _CONTAINERS):
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return value


def json_cells(column: pd.Series) -> pd.Series:
    """``column`` with each list, tuple, dict or NumPy array cell as JSON text; other
    cells (text, numbers, missing) unchanged. A column without such cells comes back as is."""
    if column.dtype != object or not column.map(lambda v: isinstance(v, _CONTAINERS)).any():
        return column
    return column.map(_to_json)


def for_csv(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose list and dict cells are JSON text, ready for ``to_csv``.

    Columns without such cells are shared, not copied. Read back with
    ``df[col].map(json.loads)`` (or ``orjson.loads``) where a cell is not missing.

    Example::

        >>> df = pd.DataFrame({"topics": [["price", "size"], []], "n": [1, 2]})
        >>> for_csv(df).to_csv(index=False).splitlines()
        ['topics,n', '"[""price"",""size""]",1', '[],2']
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"for_csv takes a pandas DataFrame, not {type(df).__name__}")
    out = df.copy(deep=False)
    for i in range(out.shape[1]):
        # by position: a frame may have two columns of one name
        column = out.iloc[:, i]
        converted = json_cells(column)
        if converted is not column:
            out.isetitem(i, converted.array)  # an ExtensionArray: typed alike by every pandas-stubs
    return out
