"""Prompt text from cells and Arrow columns, by one set of rules whatever the frame library.

Numbers are turned into text deliberately: integers as integers, floats as the shortest text
that reads back to the same value with no trailing ``.0`` (``4.0`` → ``4``), booleans as
``true``/``false``; a missing value (``None``, NaN, pandas' ``NA``/``NaT``) is never the text
``"nan"``. Lists, dicts and arrays are refused with a message pointing to ``messages=``.

Example::

    >>> arrow_text(pa.array([4.0, None, 0.5])).to_pylist()
    ['4', None, '0.5']
    >>> cell_text(True, "Column 'x', row 1,")
    'true'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import PromptError

__all__ = ["LARGE_STRING", "arrow_text", "blank", "cell_text", "is_missing", "object_text"]

LARGE_STRING = pa.large_string()
# pandas' missing markers, recognised by type name so that this module never imports pandas
_MISSING_TYPES = frozenset({"NAType", "NaTType"})


def is_missing(v: Any) -> bool:
    """``None``, a float NaN, or pandas' ``NA``/``NaT``."""
    if v is None or type(v).__name__ in _MISSING_TYPES:
        return True
    if isinstance(v, float | np.floating):
        return bool(math.isnan(v))
    return False


def _float_text(v: float) -> str:
    r = repr(float(v))
    if r.endswith(".0"):
        r = r[:-2]
    return r.replace("e-0", "e-").replace("e+0", "e+")


def cell_text(v: Any, where: str) -> str:
    """Deliberate text for one non-missing cell of a column of mixed Python values;
    ``where`` names the cell in an error ("Column 'review', row 'a' (position 0),")."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool | np.bool_):
        return "true" if v else "false"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return _float_text(float(v))
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            raise PromptError(f"{where} holds bytes that are not UTF-8 text") from None
    if isinstance(v, list | tuple | dict | np.ndarray):
        raise PromptError(
            f"{where} holds a {type(v).__name__}, not text. For a column of message lists "
            f"use messages=<column> instead of prompt=."
        )
    return str(v)


def arrow_text(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
    """An Arrow column as ``large_string`` text (nulls stay null), or ``None`` when its type
    has no deliberate text form here (temporal, nested, binary...: the adapter decides).
    Text read in pieces (a Parquet file's row groups) stays in its pieces: joining them
    would copy every prompt once more at the job's peak."""
    if isinstance(arr, pa.ChunkedArray):
        if _is_text_type(arr.type):
            return arr.cast(LARGE_STRING)
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_dictionary(t):
        text = arrow_text(arr.dictionary)
        return None if text is None else text.take(arr.indices)
    if _is_text_type(t):
        return arr.cast(LARGE_STRING)
    if pa.types.is_null(t):
        return pa.nulls(len(arr), LARGE_STRING)
    if pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t):
        if pa.types.is_floating(t):
            # NaN is a missing value here, never the text "nan"
            arr = pc.if_else(pc.is_nan(arr), pa.scalar(None, t), arr)
        return pc.cast(pc.cast(arr, pa.string()), LARGE_STRING)
    return None


def _is_text_type(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or _is_string_view(t))


def _is_string_view(t: pa.DataType) -> bool:
    # string_view arrived in pyarrow 16 (Polars can hand it over); older pyarrow has none
    check = getattr(pa.types, "is_string_view", None)
    return bool(check(t)) if check is not None else False


def object_text(
    values: Sequence[Any] | np.ndarray, name: str, label: Callable[[int], str]
) -> tuple[pa.Array, np.ndarray]:
    """Text for a column of Python objects, cell by cell, and its missing mask; ``label(pos)``
    names a row in an error."""
    out: list[str | None] = []
    missing = np.zeros(len(values), dtype=bool)
    for pos, v in enumerate(values):
        if is_missing(v):
            missing[pos] = True
            out.append(None)
        else:
            out.append(cell_text(v, f"Column {name!r}, {label(pos)},"))
    try:
        return pa.array(out, type=LARGE_STRING), missing
    except (UnicodeError, pa.ArrowException):
        pass
    from .invalid_text import record, replace_surrogates

    # lone surrogates: every bad cell is noted (and its text repaired) for the caller's
    # on_invalid= choice; with nobody collecting, the error names every bad row at once
    bad: list[str] = []
    for pos, t in enumerate(out):
        if t is None:
            continue
        try:
            t.encode("utf-8")
        except UnicodeEncodeError:
            if not record(pos, label(pos), name):
                bad.append(label(pos))
            out[pos] = replace_surrogates(t)
    if bad:
        raise PromptError(
            f"Column {name!r} holds text that is not valid Unicode (lone surrogates) in "
            f"{len(bad):,} row(s): {', '.join(bad[:20])}{' ...' if len(bad) > 20 else ''}; "
            f"clean it, e.g. with .str.encode('utf-8', 'replace').str.decode('utf-8')."
        )
    return pa.array(out, type=LARGE_STRING), missing


def blank(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """True where a non-null string is empty or whitespace only (Unicode's whitespace, the
    same characters ``utf8_trim_whitespace`` trims; a predicate, so no copy of the text)."""
    empty_or_space = pc.or_(pc.utf8_is_space(arr), pc.equal(pc.binary_length(arr), 0))
    return empty_or_space.to_numpy(zero_copy_only=False) == True  # noqa: E712
