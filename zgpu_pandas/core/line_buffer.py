"""Request lines written straight into one buffer, a window of rows at a time.

Every line of a job is ``{"custom_id":"row-<i>`` + a constant head + the row's payload (its
prompt, JSON-escaped, or its message list) + a constant tail. Made in one go over the whole
column, the lines would sit beside a JSON-escaped copy of every prompt (and, for a column
read in pieces, a joined copy of it): on a million rows, a few hundred MB more at the job's
peak than the lines themselves. Here the lines are made in two passes over windows of rows
instead: the first learns each line's size (escaping a window, then dropping it), the second
writes each window's lines into a buffer allocated once at the exact size. Beyond the
column and the lines, only a window's worth is held. The buffer is numpy's, so the
operating system gets it back as soon as the lines are freed.

A job does not make all its lines at once either: :class:`MadeLines` keeps the payloads
and each line's size, and writes the lines of a range (a chunk to upload, a slice to read)
when asked; :class:`HeldLines` is the same interface over lines already made.

Example::

    >>> import numpy as np, pyarrow as pa
    >>> text = pa.array(['say "hi"', None, "bye"], pa.large_string())
    >>> sizes = line_sizes(text, np.array([0, 2]), head=b'","p":"', tail=b'"}\\n', escape=True)
    >>> write_lines(text, np.array([0, 2]), head=b'","p":"', tail=b'"}\\n', escape=True,
    ...             sizes=sizes).to_pylist()
    [b'{"custom_id":"row-0","p":"say \\\\"hi\\\\""}\\n', b'{"custom_id":"row-2","p":"bye"}\\n']
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .escape import json_escape
from .memory import system_allocator

__all__ = ["HeldLines", "LineSource", "MadeLines", "line_sizes", "write_lines"]

_PREFIX = b'{"custom_id":"row-'
_LB = pa.large_binary()
_LS = pa.large_string()
# Rows per window: a few MB of prompts, so the transient copies stay small.
_WINDOW = 1 << 16


def _windows(
    payload: pa.Array | pa.ChunkedArray, positions: np.ndarray
) -> Iterator[tuple[np.ndarray, pa.Array]]:
    """(row positions, their payloads) per window, in ascending row order (``positions`` is
    ascending). A window lies in one chunk of ``payload``, so its values are a zero-copy
    slice, or a window's ``take`` where some of its rows are not sent."""
    chunks = payload.chunks if isinstance(payload, pa.ChunkedArray) else [payload]
    start = 0
    for chunk in chunks:
        stop = start + len(chunk)
        for a in range(start, stop, _WINDOW):
            b = min(a + _WINDOW, stop)
            lo, hi = np.searchsorted(positions, [a, b])
            if lo == hi:
                continue
            pos = positions[lo:hi]
            piece = chunk.slice(a - start, b - a)
            if hi - lo != b - a:  # some rows of the window are not sent
                piece = piece.take(pa.array(pos - a))
            yield pos, piece
        start = stop


def _payloads(piece: pa.Array, escape: bool) -> pa.Array:
    return (json_escape(piece) if escape else piece).cast(_LB)


def line_sizes(
    payload: pa.Array | pa.ChunkedArray,
    positions: np.ndarray,
    *,
    head: bytes,
    tail: bytes,
    escape: bool,
) -> np.ndarray:
    """The size in bytes (newline included) of the line of each row in ``positions``."""
    sizes = np.empty(len(positions), dtype=np.int64)
    k = 0
    for pos, piece in _windows(payload, positions):
        m = len(pos)
        body = pc.binary_length(_payloads(piece, escape)).to_numpy(zero_copy_only=False)
        sizes[k : k + m] = body
        k += m
    assert k == len(positions), "a position outside the payload"
    digits = np.ones(len(positions), dtype=np.int64)
    for power in range(1, 19):  # the custom_id's row number, in decimal
        digits += positions >= 10**power
    return sizes + digits + len(_PREFIX) + len(head) + len(tail)


def write_lines(
    payload: pa.Array | pa.ChunkedArray,
    positions: np.ndarray,
    *,
    head: bytes,
    tail: bytes,
    escape: bool,
    sizes: np.ndarray,
) -> pa.LargeBinaryArray:
    """The line of each row in ``positions`` (ascending), in one buffer; ``sizes`` from
    :func:`line_sizes` for the same arguments."""
    offsets = np.zeros(len(positions) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    data = np.empty(int(offsets[-1]), dtype=np.uint8)
    k = 0
    for pos, piece in _windows(payload, positions):
        m = len(pos)
        lines = pc.binary_join_element_wise(
            pa.scalar(_PREFIX, _LB),
            pc.cast(pa.array(pos), _LS).cast(_LB),
            pa.scalar(head, _LB),
            _payloads(piece, escape),
            pa.scalar(tail, _LB),
            pa.scalar(b"", _LB),
        )
        own = np.frombuffer(lines.buffers()[1], dtype=np.int64)[lines.offset : lines.offset + m + 1]
        lo, hi = int(own[0]), int(own[-1])
        if not np.array_equal(np.diff(own), sizes[k : k + m]):  # the passes must agree
            raise AssertionError("request lines changed size between the two passes")
        if hi > lo:
            data[offsets[k] : offsets[k + m]] = np.frombuffer(lines.buffers()[2], np.uint8)[lo:hi]
        k += m
    assert k == len(positions), "a position outside the payload"
    return pa.Array.from_buffers(
        _LB, len(positions), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


class HeldLines:
    """Lines already made, held in one buffer (read back from a file, or a few lines made
    for a retry): a range of them is a slice of the buffer."""

    def __init__(self, lines: pa.LargeBinaryArray) -> None:
        n = len(lines)
        bufs = lines.buffers()
        self._lines = lines
        count = lines.offset + n + 1
        self._offsets = np.frombuffer(bufs[1], dtype=np.int64, count=count)[lines.offset :]
        self._data: pa.Buffer = bufs[2] if bufs[2] is not None else pa.py_buffer(b"")
        self.sizes = np.diff(self._offsets)

    def bytes_of(self, start: int, stop: int) -> pa.Buffer:
        lo, hi = int(self._offsets[start]), int(self._offsets[stop])
        return self._data.slice(lo, hi - lo)

    def take(self, k: np.ndarray) -> HeldLines:
        return HeldLines(self._lines.take(pa.array(k)) if len(k) else self._lines.slice(0, 0))


class MadeLines:
    """Lines made when they are needed, from the rows' payloads: a job holds its prompts
    (often the frame's own column) and the size of each line, not the lines. A range of
    lines is written by :func:`write_lines` each time it is asked for (a chunk when it is
    uploaded, a slice when the lines are read for the token estimate and the checksums), so
    beyond the column only a chunk's lines exist at a time: on a million rows, ~260 MB less
    at the start of a job, for one more pass over the lines (~1 s)."""

    def __init__(
        self,
        payload: pa.Array | pa.ChunkedArray,
        positions: np.ndarray,
        *,
        head: bytes,
        tail: bytes,
        escape: bool,
        sizes: np.ndarray,
    ) -> None:
        self._payload = payload
        self._positions = positions
        self._head, self._tail, self._escape = head, tail, escape
        self.sizes = sizes

    def bytes_of(self, start: int, stop: int) -> pa.Buffer:
        if stop <= start:
            return pa.py_buffer(b"")
        with system_allocator():  # its transient windows, given back when freed
            lines = write_lines(
                self._payload,
                self._positions[start:stop],
                head=self._head,
                tail=self._tail,
                escape=self._escape,
                sizes=self.sizes[start:stop],
            )
        data = lines.buffers()[2]
        assert data is not None
        return data

    def take(self, k: np.ndarray) -> MadeLines:
        return MadeLines(
            self._payload,
            self._positions[k],
            head=self._head,
            tail=self._tail,
            escape=self._escape,
            sizes=self.sizes[k],
        )


LineSource = HeldLines | MadeLines
