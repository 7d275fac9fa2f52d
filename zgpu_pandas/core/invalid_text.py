"""Text that is not valid Unicode (lone surrogates): every bad row named, and a choice.

A Python ``str`` can hold a lone surrogate (``"\\ud83d"``, half an emoji cut by a careless
truncation or decoded with ``surrogateescape``); UTF-8, JSON and the service cannot. While
the request lines are built (:func:`collecting`), each such cell is recorded and its
surrogates are replaced by U+FFFD; :func:`settle` then applies the caller's choice:

- ``on_invalid="raise"`` (default): :class:`~zgpu_pandas.errors.PromptError` naming every
  bad row (not just the first), with the fix;
- ``"skip"``: those rows are not sent (status ``skipped``, code ``invalid_text``);
- ``"replace"``: they are sent with U+FFFD in place of each lone surrogate.

The same holds for a prompt column, a template field and a ``messages`` column.

Example::

    with collecting() as found:
        text = object_text(values, "review", label)   # records, replaces
    skip_mask = settle(found, "raise", n_rows)          # raises, naming every bad row
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import OptionError, PromptError

__all__ = [
    "INVALID_CODE",
    "InvalidText",
    "OnInvalid",
    "collecting",
    "record",
    "replace_surrogates",
    "settle",
]

OnInvalid = Literal["raise", "skip", "replace"]
INVALID_CODE = "invalid_text"
_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN = 20  # rows named in the message; the count says how many more


@dataclass
class InvalidText:
    """The cells found so far: (position, label, column) in the order met."""

    cells: list[tuple[int, str, str]] = field(default_factory=list)


_FOUND: ContextVar[InvalidText | None] = ContextVar("zgpu_invalid_text", default=None)


@contextmanager
def collecting() -> Iterator[InvalidText]:
    """Record invalid cells met while the block runs, instead of raising at the first."""
    found = InvalidText()
    token = _FOUND.set(found)
    try:
        yield found
    finally:
        _FOUND.reset(token)


def replace_surrogates(value: Any) -> Any:
    """``value`` (text, or lists/dicts of it) with each lone surrogate as U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list | tuple):
        return [replace_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {k: replace_surrogates(v) for k, v in value.items()}
    return value


def record(position: int, label: str, column: str) -> bool:
    """Note one invalid cell; ``False`` when nobody is collecting (the caller then raises)."""
    found = _FOUND.get()
    if found is None:
        return False
    found.cells.append((position, label, column))
    return True


def message(cells: list[tuple[int, str, str]]) -> str:
    """The error for ``cells``: every bad row (up to a screenful), and what to do."""
    rows = sorted({(pos, label) for pos, label, _ in cells})
    columns = sorted({col for _, _, col in cells})
    shown = ", ".join(label for _, label in rows[:_SHOWN])
    more = f" and {len(rows) - _SHOWN:,} more" if len(rows) > _SHOWN else ""
    return (
        f"{len(rows):,} row(s) hold text that is not valid Unicode (lone surrogates) in "
        f"column(s) {', '.join(map(repr, columns))}: {shown}{more}. Pass on_invalid='replace' "
        f"to send them with U+FFFD in place of the bad characters, or on_invalid='skip' to "
        f"leave them out; or clean the column first, e.g. "
        f"s.str.encode('utf-8', 'replace').str.decode('utf-8')."
    )


def settle(found: InvalidText, on_invalid: OnInvalid, n_rows: int) -> np.ndarray | None:
    """Apply ``on_invalid`` to what was found: raise, a mask of rows to skip, or ``None``
    (nothing to skip)."""
    if on_invalid not in ("raise", "skip", "replace"):
        raise OptionError(f"on_invalid= must be 'raise', 'skip' or 'replace', not {on_invalid!r}.")
    if not found.cells or on_invalid == "replace":
        return None
    if on_invalid == "raise":
        raise PromptError(message(found.cells))
    mask = np.zeros(n_rows, dtype=bool)
    mask[[pos for pos, _, _ in found.cells]] = True
    return mask
