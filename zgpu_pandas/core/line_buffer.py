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

__all__ = ["line_sizes", "write_lines"]

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
