"""pandas 2 versus pandas 3: every difference the package relies on, handled in one place.

The package supports pandas 2.x and 3.x. Where they differ, the rest of the code calls the
helpers here instead of branching on the version itself:

- **Copy-on-write.** pandas 3 always copies on write, so ``df.copy(deep=False)`` is a true
  snapshot. pandas 2 does so only when ``pd.options.mode.copy_on_write`` is on; otherwise an
  in-place edit of the caller's frame (``df.loc[0, "review"] = ...``) after a job was
  submitted would show through a shallow copy, next to answers to the old text.
  :func:`snapshot` deep-copies there.
- **The default string dtype.** pandas 3 reads text as ``str`` (Arrow-backed, ``NaN`` for
  missing); pandas 2 keeps ``object``. Input text is accepted in either form (and as
  ``string[python]``/``string[pyarrow]``/``ArrowDtype(string)``: :func:`is_text_dtype`), and
  every text column the package *adds* is ``string[pyarrow]`` (``pd.NA`` for missing) on both
  versions, so results compare and concatenate the same way everywhere.
- **List and dict values.** ``pd.array``/``np.array`` of equal-length lists build a 2-D
  array (pandas 3: "Buffer has wrong number of dimensions"; pandas 2 with ragged lists:
  "inhomogeneous shape"). :func:`object_array` places one Python object per row, whatever
  the shapes.

Example::

    >>> import pandas as pd
    >>> object_array([[1, 2], [3, 4]]).shape      # two rows, not a 2x2 matrix
    (2,)
    >>> str(string_array(pa.array(["a", None])).dtype)
    'string'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "PANDAS_MAJOR",
    "as_objects",
    "bool_array",
    "copy_on_write_active",
    "float_array",
    "int_array",
    "is_text_dtype",
    "object_array",
    "snapshot",
    "string_array",
]

#: the installed pandas' major version (2 or 3)
PANDAS_MAJOR = int(pd.__version__.split(".", 1)[0])


def copy_on_write_active() -> bool:
    """Whether pandas copies on write: always on pandas 3, by option on pandas 2."""
    if PANDAS_MAJOR >= 3:
        return True
    return getattr(pd.options.mode, "copy_on_write", False) is True


def snapshot(df: pd.DataFrame) -> pd.DataFrame:
    """The frame as it is now, unaffected by later in-place edits of ``df``: a shallow copy
    under copy-on-write, a deep copy otherwise (pandas 2 without the option)."""
    return df.copy(deep=not copy_on_write_active())


def is_text_dtype(dtype: Any) -> bool:
    """A dtype that holds text only: ``str`` (pandas 3's default), ``string[python]``,
    ``string[pyarrow]``, or ``ArrowDtype`` of (large) string. ``object`` is not: it may hold
    anything, and pandas 2 uses it for text."""
    if isinstance(dtype, pd.StringDtype):
        return True
    if isinstance(dtype, pd.ArrowDtype):
        t = dtype.pyarrow_dtype
        return bool(pa.types.is_string(t) or pa.types.is_large_string(t))
    return False


def string_array(arr: pa.Array | pa.ChunkedArray) -> pd.api.extensions.ExtensionArray:
    """A ``string[pyarrow]`` column (``pd.NA`` for missing) from Arrow text, zero-copy where
    pandas allows it."""
    chunked = arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])
    try:
        return pd.arrays.ArrowStringArray(chunked)
    except (TypeError, ValueError):
        if not pa.types.is_large_string(chunked.type):
            raise
    # pandas < 2.2 takes ``string`` only (32-bit offsets): cast piece by piece, each under
    # 2 GiB, so a large result column still converts.
    pieces = [p for c in chunked.chunks for p in _under_2gib(c)]
    return pd.arrays.ArrowStringArray(pa.chunked_array(pieces, type=pa.string()))


#: the largest piece cast to ``string`` at once (32-bit offsets, with a margin)
_MAX_PIECE_BYTES = (1 << 31) - (1 << 20)


def _under_2gib(chunk: pa.Array) -> list[pa.Array]:
    if chunk.nbytes < _MAX_PIECE_BYTES or len(chunk) < 2:
        return [chunk.cast(pa.string())]
    half = len(chunk) // 2
    return _under_2gib(chunk.slice(0, half)) + _under_2gib(chunk.slice(half))


def int_array(arr: pa.Array) -> pd.api.extensions.ExtensionArray:
    """A nullable ``Int64`` column from an Arrow integer array, over the array's own values
    (read-only) where they are ``int64``: the values under the mask are never read, and a
    copy with the nulls filled was 8 MB more per million rows and column. Assigned to a
    frame (``out[name] = ...``), the column is copied by pandas, writable."""
    mask = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    values = _int64_values(arr)
    if values is None:
        values = np.asarray(pc.fill_null(arr, 0).to_numpy(), dtype=np.int64)
    return pd.arrays.IntegerArray(values, mask)


def _int64_values(arr: pa.Array) -> np.ndarray | None:
    """The data buffer of an ``int64`` array as numpy, without a copy (``None``: another
    type, or no data buffer)."""
    if arr.type != pa.int64() or len(arr) == 0:
        return None
    data = arr.buffers()[1]
    if data is None:
        return None
    values = np.frombuffer(data, dtype=np.int64, count=arr.offset + len(arr))[arr.offset :]
    # read-only: never a way to write into Arrow's memory (pa.nulls shares one zero buffer
    # between the validity and the values); a frame given the column copies it
    values.flags.writeable = False
    return values


def float_array(values: Sequence[Any]) -> pd.api.extensions.ExtensionArray:
    """A nullable ``Float64`` column; ``None`` entries become ``pd.NA``."""
    mask = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    data = np.fromiter((0.0 if v is None else v for v in values), np.float64, len(values))
    return pd.arrays.FloatingArray(data, mask)


def bool_array(values: Sequence[Any]) -> pd.api.extensions.ExtensionArray:
    """A nullable ``boolean`` column; ``None`` entries become ``pd.NA``."""
    mask = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    data = np.fromiter((bool(v) for v in values), dtype=bool, count=len(values))
    return pd.arrays.BooleanArray(data, mask)


def object_array(values: Sequence[Any]) -> np.ndarray:
    """A 1-D ``object`` array holding ``values[i]`` at ``i``, whatever the values are
    (lists of equal or different lengths, dicts, ``None``): never a 2-D array."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):  # element-wise: slice assignment would broadcast lists
        out[i] = v
    return out


def as_objects(s: pd.Series) -> np.ndarray:
    """A column's values as Python objects, ``None`` where missing (``NaN``, ``pd.NA``,
    ``NaT``), for any dtype on either pandas version."""
    values = np.array(s.to_numpy(dtype=object), dtype=object)  # always a fresh copy
    values[np.asarray(s.isna().to_numpy(), dtype=bool)] = None
    return values
