"""Text JSON-escaped column-wise, as it goes between the quotes of a JSON string.

Most prompts need no escape at all, and those that do mostly need the five common ones
(backslash, quote, newline, carriage return, tab): these are replaced in C++ over the rows
that need them. The rare control characters (``\\u00XX``) are left to orjson, row by row,
for the few rows that have them.
"""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["json_escape"]

_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
_RARE_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
_SIMPLE_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_LB = pa.large_binary()
_LS = pa.large_string()


def json_escape(arr: pa.Array) -> pa.Array:
    """JSON-escape the contents of a (large_)string array without the surrounding quotes.

    Example::

        >>> json_escape(pa.array(['say "hi"\\n'], pa.large_string())).to_pylist()
        ['say \\\\"hi\\\\"\\\\n']
    """
    if len(arr) == 0:
        return arr
    need = pc.match_substring_regex(arr, _NEEDS_ESCAPE)
    if not pc.any(need).as_py():
        return arr
    idx = np.flatnonzero(need.to_numpy(zero_copy_only=False) == True)  # noqa: E712
    sub = arr.take(pa.array(idx))
    rare = pc.match_substring_regex(sub, _RARE_CONTROL).to_numpy(zero_copy_only=False) == True  # noqa: E712
    for a, b in _SIMPLE_ESCAPES:  # backslash first, so later escapes are not doubled
        sub = pc.replace_substring(sub, a, b)
    if rare.any():
        # orjson knows every escape; it sees only these few rows (the originals)
        originals = arr.take(pa.array(idx[rare])).to_pylist()
        escaped = orjson.dumps(originals)[2:-2].split(b'","') if originals else []
        # between elements orjson writes '","' and nowhere else: a '"' inside a string is
        # always written as '\\"', so the split is exact.
        sub = pc.replace_with_mask(sub, pa.array(rare), pa.array(escaped, _LB).cast(_LS))
    return pc.replace_with_mask(arr, need, sub)
