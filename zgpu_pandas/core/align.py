"""The results of a job's parts put in row order, without copying the answers where possible.

A :class:`~zgpu_pandas.core.results.ResultsTable` keeps its results as parts (one per parsed
block of an output file, per retry round, per batch that failed whole), in the order they
came. Its answer columns are aligned to row positions here. The answers are the bulk of a
job's memory (on a million rows, a hundred MB or more of text), so how they are aligned
decides the job's peak:

- Usually the parts, end to end, already hold the rows in row order, in a few long runs (a
  batch's lines are consecutive rows and the service answers them in order; rows without a
  result, like pending ones, make gaps). Then each aligned column is a chunked array of
  zero-copy slices of the parts' own arrays: no answer is copied, and nothing is held twice.
- Otherwise (the service answered a batch's lines out of order, many retried rows scattered
  over the frame), the column is copied into row order a window of rows at a time, each
  window from the few parts its results are in: the parts and the aligned column are held,
  never a third copy (one ``take`` over the parts joined end to end would join them first).

Example::

    >>> import pyarrow as pa
    >>> parts = [pa.table({"position": [2, 3], "text": ["c", "d"]}),
    ...          pa.table({"position": [0], "text": ["a"]})]
    >>> align = Alignment(parts, 5)
    >>> align.column("text").to_pylist()
    ['a', None, 'c', 'd', None]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa

__all__ = ["Alignment", "in_row_order", "one_array", "singleton_lists"]

# Slices are worth it while a column has at most this many runs per row (plus a floor): each
# run is one Python step per column, and a column of tiny slices is slower to use than a copy.
_ROWS_PER_RUN = 256
_MIN_RUNS = 256
# Rows copied at once when the results are not in row order (a few MB of answers).
_WINDOW = 1 << 16


class Alignment:
    """Where each row position's result is in ``parts`` (tables with a ``position`` column,
    later parts winning), and the columns of ``parts`` put in row order (null where a row
    has no result)."""

    def __init__(self, parts: Sequence[pa.Table], n_rows: int) -> None:
        self.parts = list(parts)
        self.n_rows = n_rows
        self.source = _sources(self.parts, n_rows)
        self._runs = _runs(self.source, max_runs=max(_MIN_RUNS, n_rows // _ROWS_PER_RUN))

    @property
    def zero_copy(self) -> bool:
        """Whether columns are slices of the parts' arrays (no copy of their values)."""
        return self._runs is not None

    def column(
        self, name: str, fn: Callable[[pa.Array], pa.Array] | None = None
    ) -> pa.ChunkedArray:
        """Column ``name`` of the parts (through ``fn`` per chunk, when given) in row order."""
        chunks = [c for p in self.parts for c in p.column(name).chunks]
        if fn is not None:
            chunks = [fn(c) for c in chunks]
        typ = chunks[0].type if chunks else _type_of(self.parts, name, fn)
        if self._runs is not None:
            whole = pa.chunked_array(chunks, type=typ)
            pieces: list[pa.Array] = []
            for start, stop in self._runs:
                src = int(self.source[start])
                if src < 0:
                    pieces.append(pa.nulls(stop - start, typ))
                else:
                    pieces.extend(whole.slice(src, stop - start).chunks)
            return pa.chunked_array(pieces, type=typ)
        return self._gathered(chunks, typ)

    def _gathered(self, chunks: list[pa.Array], typ: pa.DataType) -> pa.ChunkedArray:
        """The column copied into row order a window of rows at a time, each window taken
        from the few chunks its rows' results are in: never more than a window's worth of
        values is held beyond the parts and the result (a ``take`` of the parts joined end
        to end would hold them twice, then three times)."""
        starts = np.cumsum([0] + [len(c) for c in chunks[:-1]])
        out: list[pa.Array] = []
        for a in range(0, self.n_rows, _WINDOW):
            src = self.source[a : a + _WINDOW]
            rows = np.flatnonzero(src >= 0)
            which = np.searchsorted(starts, src[rows], side="right") - 1
            order = np.argsort(which, kind="stable")
            found = [
                chunks[u].take(pa.array(src[rows[which == u]] - starts[u]))
                for u in np.unique(which).tolist()
            ]
            # the values chunk by chunk, then put in the window's row order (nulls: none)
            idx = np.full(len(src), -1, dtype=np.int64)
            idx[rows[order]] = np.arange(len(rows))
            values = pa.concat_arrays(found) if found else pa.nulls(0, typ)
            out.append(values.take(pa.array(idx, mask=idx < 0)))
        return pa.chunked_array(out, type=typ)


def _type_of(
    parts: Sequence[pa.Table], name: str, fn: Callable[[pa.Array], pa.Array] | None
) -> pa.DataType:
    typ = parts[0].schema.field(name).type if parts else pa.null()
    return typ if fn is None else fn(pa.nulls(0, typ)).type


def _sources(parts: Sequence[pa.Table], n_rows: int) -> np.ndarray:
    """For each row position, its result's index in the parts end to end (-1: none)."""
    src = np.full(n_rows, -1, dtype=np.int64)
    # parts in the order they came, so a later result for a row wins (a part has no
    # repeated positions, see ResultsTable._add_part)
    start = 0
    for part in parts:
        k = part.num_rows
        src[part.column("position").to_numpy()] = np.arange(start, start + k)
        start += k
    return src


def _runs(source: np.ndarray, *, max_runs: int) -> list[tuple[int, int]] | None:
    """``source`` cut into runs ``[start, stop)`` of rows whose results are consecutive in
    the parts (or of rows without one); ``None`` when there are more than ``max_runs``."""
    n = len(source)
    if n == 0:
        return []
    has = source >= 0
    new = np.empty(n, dtype=bool)
    new[0] = True
    new[1:] = (has[1:] != has[:-1]) | (has[1:] & (source[1:] != source[:-1] + 1))
    starts = np.flatnonzero(new)
    if len(starts) > max_runs:
        return None
    stops = np.append(starts[1:], n)
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def in_row_order(
    parts: Sequence[pa.Table], repeats: Sequence[np.ndarray]
) -> tuple[pa.Table, np.ndarray]:
    """``parts`` (tables with a ``position`` column, in the order they came; ``repeats``:
    the positions each one had more than once) as one table in row order, where a row in
    several keeps its last result; and every position seen more than once. Not copied when
    the rows already are in order (a service that answers a batch's lines in order), else
    copied once: a batch's results, a few MB."""
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    pos = table.column("position").to_numpy()
    k = len(pos)
    again = np.concatenate(list(repeats)) if len(repeats) else np.empty(0, dtype=np.int64)
    # np.unique sorts: the index of each position's last occurrence, in row order
    rows, first_in_rev = np.unique(pos[::-1], return_index=True)
    keep = k - 1 - first_in_rev
    if len(rows) < k:
        seen = np.bincount(pos, minlength=int(rows[-1]) + 1) > 1
        again = np.union1d(again, np.flatnonzero(seen))
    if not np.array_equal(keep, np.arange(k)):
        table = table.take(pa.array(keep))
    return table, np.unique(again)


def singleton_lists(
    values: pa.Array | pa.ChunkedArray, mask: pa.Array | pa.ChunkedArray, typ: pa.DataType
) -> pa.Array | pa.ChunkedArray:
    """``[values[i]]`` for each row ``i``, null where ``mask``; the lists share the buffers
    of ``values`` (no copy), chunk by chunk when ``values`` is chunked."""
    if isinstance(values, pa.Array):
        offsets = pa.array(np.arange(len(values) + 1, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, values, type=typ, mask=one_array(mask))
    pieces, start = [], 0
    for chunk in values.chunks:
        k = len(chunk)
        pieces.append(singleton_lists(chunk, mask.slice(start, k), typ))
        start += k
    return pa.chunked_array(pieces, type=typ)


def one_array(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as one array (a column of one chunk is not copied)."""
    if isinstance(col, pa.ChunkedArray):
        return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    return col
