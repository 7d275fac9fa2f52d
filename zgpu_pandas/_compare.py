"""Comparing two runs row by row: what a prompt change changed.

``zgpu_pandas.compare(old, new)`` lines up two result frames (by position, or by the key
columns ``on=``) and, for every answer column they share, counts the rows whose value
changed, and gives a frame of the changed rows with the old and new values side by side.
Token counts, costs, error messages and the other bookkeeping columns are left out by default
(they differ on every run and say nothing about the answers); pass ``columns=`` to choose.
Missing values compare equal to each other; list and dict values compare by content.

pandas and Polars frames are both accepted; the comparison itself is a small pandas report.

Example::

    old = df.zgpu.chat("Sentiment of: {review}", model=m)
    new = df.zgpu.chat("Sentiment (positive/negative) of: {review}", model=m)
    cmp = zgpu_pandas.compare(old, new)
    cmp                      # per column: rows changed / unchanged
    cmp.changed              # the rows that changed, old and new side by side
    cmp.crosstab("label")    # old label x new label
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .errors import OptionError

__all__ = ["Comparison", "compare"]

# answer columns that change on every run without saying anything about the answer
_BOOKKEEPING = (
    "_error",
    "_error_code",
    "_finish_reason",
    "_prompt_tokens",
    "_completion_tokens",
    "_total_tokens",
    "_shared",
    "_cost",
    "_logprobs",
)


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare`: ``summary`` (one row per compared column: rows
    ``changed``, ``unchanged``, ``became_missing``, ``became_present``), ``changed`` (the
    changed rows, ``<col>_old``/``<col>_new`` per compared column, keyed like the inputs)
    and ``rows`` (rows lined up). ``only_old``/``only_new``: rows with a key on one side
    only (with ``on=``)."""

    summary: pd.DataFrame
    changed: pd.DataFrame
    rows: int
    only_old: int
    only_new: int
    _old: pd.DataFrame
    _new: pd.DataFrame

    def crosstab(self, column: str) -> pd.DataFrame:
        """Old value x new value counts for one column (a label, a status)."""
        if column not in self.summary.index:
            raise OptionError(f"{column!r} was not compared; compared: {list(self.summary.index)}.")
        old = self._old[column].astype(object).where(self._old[column].notna(), "<missing>")
        new = self._new[column].astype(object).where(self._new[column].notna(), "<missing>")
        return pd.crosstab(old.map(_hashable), new.map(_hashable), rownames=["old"],
                           colnames=["new"])

    def __repr__(self) -> str:
        head = f"{self.rows:,} rows compared"
        if self.only_old or self.only_new:
            head += f" ({self.only_old:,} only in old, {self.only_new:,} only in new)"
        return f"{head}\n{self.summary.to_string()}"

    def _repr_html_(self) -> str:
        head = f"<p>{self.rows:,} rows compared</p>"
        return head + self.summary.to_html()


def _as_pandas(frame: Any, name: str) -> pd.DataFrame:
    if isinstance(frame, pd.DataFrame):
        return frame
    to_pandas = getattr(frame, "to_pandas", None)
    if callable(to_pandas):
        out = to_pandas()
        if isinstance(out, pd.DataFrame):
            return out
    raise OptionError(f"{name} must be a pandas or Polars DataFrame, not {type(frame).__name__}.")


def _hashable(v: Any) -> Any:
    return repr(v) if isinstance(v, list | dict | np.ndarray) else v


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Per row: equal values, or both missing."""
    a_na = a.isna().to_numpy(dtype=bool)
    b_na = b.isna().to_numpy(dtype=bool)
    av = a.to_numpy(dtype=object)
    bv = b.to_numpy(dtype=object)
    out = np.empty(len(av), dtype=bool)
    for i in range(len(av)):  # lists, dicts and arrays compare by content
        if a_na[i] or b_na[i]:
            out[i] = a_na[i] and b_na[i]
        else:
            x, y = av[i], bv[i]
            if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
                out[i] = bool(np.array_equal(np.asarray(x, dtype=object), np.asarray(y, dtype=object)))
            else:
                out[i] = bool(x == y)
    return out


def _default_columns(old: pd.DataFrame, new: pd.DataFrame, on: Sequence[str]) -> list[str]:
    both = [c for c in new.columns if c in old.columns and c not in on]
    return [c for c in both if not (isinstance(c, str) and c.endswith(_BOOKKEEPING))]


def compare(
    old: Any,
    new: Any,
    *,
    on: str | Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> Comparison:
    """Line two results up row by row and say what changed (see the module docstring).

    ``on``: key column(s) to match rows by (rows whose key is on one side only are counted
    and left out); without it the frames must have the same number of rows, matched by
    position. ``columns``: what to compare (default: every column both frames have, except
    the bookkeeping answer columns and the keys).

    Example::

        cmp = zgpu_pandas.compare(first_try, second_try, on="ticket_id")
        cmp.summary.loc["label", "changed"]
    """
    a, b = _as_pandas(old, "old"), _as_pandas(new, "new")
    keys = [on] if isinstance(on, str) else list(on or [])
    for k in keys:
        if k not in a.columns or k not in b.columns:
            raise OptionError(f"on={k!r} must be a column of both frames.")
    only_old = only_new = 0
    if keys:
        if a.duplicated(keys).any() or b.duplicated(keys).any():
            raise OptionError(f"on={keys!r} does not identify rows: some keys repeat.")
        ka = pd.MultiIndex.from_frame(a[keys])
        kb = pd.MultiIndex.from_frame(b[keys])
        common = ka.intersection(kb, sort=False)
        only_old, only_new = len(ka) - len(common), len(kb) - len(common)
        a = a.set_axis(ka).loc[common].reset_index(drop=True)
        b = b.set_axis(kb).loc[common].reset_index(drop=True)
        key_frame = pd.DataFrame(list(common), columns=keys)
    else:
        if len(a) != len(b):
            raise OptionError(
                f"old has {len(a):,} rows and new {len(b):,}: pass on='<key column>' to match "
                f"rows by a key."
            )
        key_frame = pd.DataFrame(index=a.index)
        a = a.reset_index(drop=True)
        b = b.reset_index(drop=True)
    cols = list(columns) if columns is not None else _default_columns(a, b, keys)
    missing = [c for c in cols if c not in a.columns or c not in b.columns]
    if missing:
        raise OptionError(f"columns {missing!r} are not in both frames.")
    stats = []
    any_change = np.zeros(len(a), dtype=bool)
    diffs = {}
    for c in cols:
        changed = ~_same(a[c], b[c])
        diffs[c] = changed
        any_change |= changed
        a_na, b_na = a[c].isna().to_numpy(dtype=bool), b[c].isna().to_numpy(dtype=bool)
        stats.append(
            {
                "column": c,
                "changed": int(changed.sum()),
                "unchanged": int((~changed).sum()),
                "became_missing": int((~a_na & b_na).sum()),
                "became_present": int((a_na & ~b_na).sum()),
            }
        )
    summary = pd.DataFrame(stats, columns=["column", "changed", "unchanged", "became_missing",
                                           "became_present"]).set_index("column")
    parts = {}
    for c in cols:
        parts[f"{c}_old"] = a[c].to_numpy(dtype=object)
        parts[f"{c}_new"] = b[c].to_numpy(dtype=object)
    side = pd.DataFrame(parts)
    side.index = key_frame.index if not keys else pd.RangeIndex(len(side))
    if keys:
        side = pd.concat([key_frame.reset_index(drop=True), side], axis=1)
    changed_rows = side[any_change]
    return Comparison(summary=summary, changed=changed_rows, rows=len(a), only_old=only_old,
                      only_new=only_new, _old=a[cols], _new=b[cols])
