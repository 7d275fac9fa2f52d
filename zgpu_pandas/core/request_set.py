"""The request lines of one job, and their split into batches (chunks).

A :class:`RequestSet` knows, for every line, the row it carries and its size; the lines
themselves come from a source (``core/line_buffer.py``): made from the rows' prompts when
a range of them is needed (what :func:`~zgpu_pandas.core.requests.build_requests` gives),
or held in one buffer (lines read back from a file). Everything that reads all the lines
(the fingerprint, each chunk's checksum, the token estimate) does it in one pass of slices
(:meth:`RequestSet.scan`), so at no point are all of a job's lines in memory at once.

Example::

    >>> import pandas as pd
    >>> from zgpu_pandas.core.requests import build_requests
    >>> reqs = build_requests(pd.DataFrame({"q": ["a", "b"]}), prompt="q", model="m")
    >>> [c.lines for c in reqs.chunks], len(reqs.fingerprint)
    ([2], 64)
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from .._jsonl import MAX_LINES, MAX_UPLOAD_BYTES
from ..errors import RequestLinesUnavailableError
from .line_buffer import HeldLines, LineSource
from .memory import give_back

__all__ = ["Chunk", "RequestSet"]

_LB = pa.large_binary()
#: bytes of lines made and read at once by :meth:`RequestSet.scan` and ``iter_lines``
SCAN_BYTES = 16 << 20


@dataclass(frozen=True)
class Chunk:
    """One future batch: lines ``start:stop`` of the request set (not row positions)."""

    index: int
    start: int
    stop: int
    bytes: int  # size of the JSONL payload, newlines included

    @property
    def lines(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class _Digests:
    """What one pass over the lines learnt: the job's fingerprint and each chunk's SHA-256."""

    fingerprint: str
    chunks: tuple[str, ...]


class RequestSet:
    """The request lines of one job.

    ``positions[k]`` is the row position of line ``k``; ``line_sizes[k]`` its size in bytes
    without the newline. Rows that are not sent are in ``skipped_positions`` (ascending) with
    ``skipped_codes`` and ``skipped_reasons``. Rows whose request is the same as an earlier
    row's are in ``duplicate_positions`` (ascending); ``duplicate_of[k]`` is the position of
    the row whose line carries it. ``chunks`` splits the lines into batches of at most 50,000
    lines and 100 MB. ``lines`` is where the bytes come from: a source (``line_buffer.py``)
    or an Arrow array of lines, each with its newline.
    """

    def __init__(
        self,
        *,
        n_rows: int,
        lines: pa.LargeBinaryArray | LineSource,
        positions: np.ndarray,
        skipped_positions: np.ndarray,
        skipped_codes: list[str],
        skipped_reasons: list[str],
        settings: Mapping[str, Any],
        max_lines: int = MAX_LINES,
        max_bytes: int = MAX_UPLOAD_BYTES,
        duplicate_positions: np.ndarray | None = None,
        duplicate_of: np.ndarray | None = None,
    ) -> None:
        self.n_rows = n_rows
        self.positions = positions
        self.skipped_positions = skipped_positions
        self.skipped_codes = skipped_codes
        self.skipped_reasons = skipped_reasons
        empty = np.empty(0, dtype=np.int64)
        self.duplicate_positions = empty if duplicate_positions is None else duplicate_positions
        self.duplicate_of = empty if duplicate_of is None else duplicate_of
        self.settings = dict(settings)
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        source = HeldLines(lines) if isinstance(lines, pa.Array) else lines
        if len(source.sizes) != len(positions):
            raise ValueError("one position per line is needed")
        self._source: LineSource | None = source
        # where each line starts in the JSONL of all of them (the chunks' byte ranges)
        self._offsets = np.zeros(len(positions) + 1, dtype=np.int64)
        np.cumsum(source.sizes, out=self._offsets[1:])
        self.line_sizes = source.sizes - 1
        self.chunks = _split(self._offsets, max_lines=max_lines, max_bytes=max_bytes)
        self._digests: _Digests | None = None
        self._rebuild: Callable[[], RequestSet] | None = None  # after release()
        self._lock = threading.Lock()

    # ---- where the bytes come from ------------------------------------------------------

    def _bytes(self, start: int, stop: int) -> pa.Buffer:
        """The JSONL of lines ``start:stop`` (newlines included), made or sliced."""
        return self._own_source().bytes_of(start, stop)

    def _own_source(self) -> LineSource:
        return self._source if self._source is not None else self._restore()

    def _slice_stop(self, start: int, stop: int, slice_bytes: int) -> int:
        """Where a slice of lines from ``start`` ends: the last line whose end stays within
        ``slice_bytes`` of its start (at least one line, at most ``stop``)."""
        limit = self._offsets[start] + slice_bytes
        end = int(np.searchsorted(self._offsets, limit, side="right")) - 1
        return min(max(end, start + 1), stop)

    @property
    def released(self) -> bool:
        """Whether the lines' source was let go by :meth:`release` (and not needed since)."""
        return self._source is None

    def release(self, rebuild: Callable[[], RequestSet]) -> None:
        """Let go of what the lines are made from, once every batch of them was created (a
        copy of the prompts a template or a message column made, or the lines themselves).
        Anything that needs them later (a retry round, :meth:`iter_lines`) gets them back
        from ``rebuild``, the same build from the same rows; they must be the very bytes let
        go (checked against each chunk's checksum), else
        :class:`~zgpu_pandas.errors.RequestLinesUnavailableError`."""
        if self._source is None or not len(self):
            return
        self._scanned()  # the fingerprint and checksums, learnt while the rows are here
        self._rebuild = rebuild
        self._source = None
        give_back()

    def _restore(self) -> LineSource:
        """The released lines' source made again (see :meth:`release`)."""
        with self._lock:
            if self._source is not None:
                return self._source
            assert self._rebuild is not None and self._digests is not None
            fresh = self._rebuild()
            try:
                same = fresh if np.array_equal(fresh.positions, self.positions) else (
                    fresh.subset(self.positions)
                )
            except ValueError:  # a row that had a line has none now
                same = None
            if (
                same is None
                or not np.array_equal(same._offsets, self._offsets)
                or same._scanned().chunks != self._digests.chunks
            ):
                raise RequestLinesUnavailableError(
                    "the request lines of this job could not be made again from its rows (they "
                    "no longer give the same requests); run the call again from the frame"
                )
            assert same._source is not None
            self._source = same._source
            return self._source

    # ---- reading every line once --------------------------------------------------------

    def scan(
        self,
        visit: Callable[[int, int, pa.Buffer], None] | None = None,
        *,
        slice_bytes: int = SCAN_BYTES,
    ) -> None:
        """Make every line once, a slice of about ``slice_bytes`` at a time (never across a
        chunk's end), and call ``visit(start, stop, jsonl)`` for each slice of lines
        ``start:stop``. The fingerprint and the chunks' checksums are learnt on the way,
        so a job that estimates its tokens reads its lines once for all three."""
        fingerprint = self._fingerprint_head()
        digests: list[str] = []
        for c in self.chunks:
            h = hashlib.sha256()
            start = c.start
            while start < c.stop:
                stop = self._slice_stop(start, c.stop, slice_bytes)
                jsonl = self._bytes(start, stop)
                h.update(jsonl)
                fingerprint.update(jsonl)
                if visit is not None:
                    visit(start, stop, jsonl)
                del jsonl
                start = stop
            digests.append(h.hexdigest())
        if self._digests is None:
            self._digests = _Digests(fingerprint.hexdigest(), tuple(digests))

    def _scanned(self) -> _Digests:
        if self._digests is None:
            self.scan()
        assert self._digests is not None
        return self._digests

    def _fingerprint_head(self) -> Any:
        h = hashlib.sha256(b"zgpu-requests/2\n")
        h.update(b"%d\n" % self.n_rows)
        h.update(np.ascontiguousarray(self.skipped_positions, dtype="<i8").tobytes())
        h.update(orjson.dumps(self.skipped_codes))
        h.update(b"%d\n" % len(self.duplicate_positions))
        h.update(np.ascontiguousarray(self.duplicate_positions, dtype="<i8").tobytes())
        h.update(np.ascontiguousarray(self.duplicate_of, dtype="<i8").tobytes())
        return h

    @property
    def fingerprint(self) -> str:
        """A stable SHA-256 of everything that defines the job: the frame's row count, the
        skipped rows and why, and the exact request bytes (which carry model, settings and
        every prompt), and which rows share a line. Same frame + same settings → same
        fingerprint, across processes."""
        return self._scanned().fingerprint

    def __len__(self) -> int:
        return len(self.positions)

    def __repr__(self) -> str:
        return (
            f"<RequestSet rows={self.n_rows} lines={len(self)} skipped={len(self.skipped_positions)}"
            f" duplicates={len(self.duplicate_positions)} chunks={len(self.chunks)}"
            f" bytes={self.total_bytes}>"
        )

    @classmethod
    def from_lines(
        cls,
        n_rows: int,
        lines: Sequence[bytes],
        positions: Sequence[int] | np.ndarray,
        *,
        settings: Mapping[str, Any] | None = None,
        max_lines: int = MAX_LINES,
        max_bytes: int = MAX_UPLOAD_BYTES,
    ) -> RequestSet:
        """A request set from request lines already made (without their newlines), e.g.
        read back from an input file to resubmit some of them."""
        pos = np.asarray(positions, dtype=np.int64)
        if len(pos) != len(lines):
            raise ValueError("one position per line is needed")
        order = np.argsort(pos, kind="stable")
        arr = pa.array([lines[int(k)] + b"\n" for k in order], _LB)
        return cls(
            n_rows=n_rows,
            lines=arr,
            positions=pos[order],
            skipped_positions=np.empty(0, dtype=np.int64),
            skipped_codes=[],
            skipped_reasons=[],
            settings=settings or {},
            max_lines=max_lines,
            max_bytes=max_bytes,
        )

    def subset(self, positions: Sequence[int] | np.ndarray) -> RequestSet:
        """The lines of some rows only (row positions that have a line here), as a new
        request set over the same frame, chunked by the same caps: a retry round.

        Example::

            again = reqs.subset([3, 17])     # the lines for rows 3 and 17, re-chunked
        """
        want = np.unique(np.asarray(positions, dtype=np.int64))
        k = np.searchsorted(self.positions, want)
        ok = k < len(self.positions)
        ok[ok] = self.positions[k[ok]] == want[ok]
        if not ok.all():
            raise ValueError(
                f"rows {want[~ok][:5].tolist()} have no request line in this request set"
            )
        return RequestSet(
            n_rows=self.n_rows,
            lines=self._own_source().take(k),
            positions=want,
            skipped_positions=np.empty(0, dtype=np.int64),
            skipped_codes=[],
            skipped_reasons=[],
            settings=self.settings,
            max_lines=self.max_lines,
            max_bytes=self.max_bytes,
        )

    def without(
        self, positions: Sequence[int] | np.ndarray, *, code: str, reason: str
    ) -> RequestSet:
        """The same request set with the lines of some rows taken out and those rows listed
        as not sent (``code``/``reason``), e.g. rows whose answer was bought earlier. Rows
        sharing a taken-out row's line stay its duplicates (they get the answer it gets).

        Example::

            rest = reqs.without([0, 4], code="answered_earlier", reason="...")
        """
        drop = np.unique(np.asarray(positions, dtype=np.int64))
        keep = ~np.isin(self.positions, drop)
        skipped = np.concatenate([self.skipped_positions, drop])
        order = np.argsort(skipped, kind="stable")
        codes = [*self.skipped_codes, *([code] * len(drop))]
        reasons = [*self.skipped_reasons, *([reason] * len(drop))]
        return RequestSet(
            n_rows=self.n_rows,
            lines=self._own_source().take(np.flatnonzero(keep)),
            positions=self.positions[keep],
            skipped_positions=skipped[order],
            skipped_codes=[codes[int(i)] for i in order],
            skipped_reasons=[reasons[int(i)] for i in order],
            settings=self.settings,
            max_lines=self.max_lines,
            max_bytes=self.max_bytes,
            duplicate_positions=self.duplicate_positions,
            duplicate_of=self.duplicate_of,
        )

    @property
    def total_bytes(self) -> int:
        """Size of all request lines as JSONL, newlines included."""
        return int(self._offsets[-1])

    def _chunk(self, chunk: Chunk | int) -> Chunk:
        return self.chunks[chunk] if isinstance(chunk, int) else chunk

    def chunk_bytes(self, chunk: Chunk | int) -> bytes:
        """The JSONL payload of one chunk (each line ends with ``\\n``)."""
        c = self._chunk(chunk)
        return self._bytes(c.start, c.stop).to_pybytes()

    def chunk_view(self, chunk: Chunk | int) -> memoryview:
        """The JSONL payload of one chunk without a copy (an upload reads it in place):
        lines made from the prompts are made for it, so only this chunk's lines exist
        while it is sent; lines held are a slice of their buffer."""
        c = self._chunk(chunk)
        return memoryview(self._bytes(c.start, c.stop))

    def chunk_positions(self, chunk: Chunk | int) -> np.ndarray:
        """Row positions carried by one chunk."""
        c = self._chunk(chunk)
        return self.positions[c.start : c.stop]

    def chunk_sha256(self, chunk: Chunk | int) -> str:
        """The SHA-256 of one chunk's JSONL (learnt with every other chunk's in one pass)."""
        c = self._chunk(chunk)
        if self.chunks[c.index] != c:
            raise ValueError(f"{c} is not a chunk of this request set")
        return self._scanned().chunks[c.index]

    def line(self, k: int) -> bytes:
        """Request line ``k`` without its newline."""
        return self._bytes(k, k + 1).to_pybytes()[:-1]

    def iter_lines(self) -> Iterator[bytes]:
        """Every request line without its newline (for inspection and tests)."""
        start = 0
        while start < len(self):
            stop = self._slice_stop(start, len(self), SCAN_BYTES)
            view = memoryview(self._bytes(start, stop))
            base = self._offsets[start]
            for k in range(start, stop):
                yield bytes(view[self._offsets[k] - base : self._offsets[k + 1] - base - 1])
            start = stop


def _split(offsets: np.ndarray, *, max_lines: int, max_bytes: int) -> tuple[Chunk, ...]:
    """Split lines into chunks under both caps, of near-equal line counts so that the
    batches of one job finish at about the same time."""
    n = len(offsets) - 1
    if n <= 0:
        return ()
    total = int(offsets[-1] - offsets[0])
    k = max(math.ceil(n / max_lines), math.ceil(total / max_bytes), 1)
    chunks: list[Chunk] = []
    start = 0
    while start < n:
        # the remaining lines shared evenly among the remaining chunks: 10 lines in 3 → 4, 3, 3
        left = max(k - len(chunks), 1)
        stop = min(start + math.ceil((n - start) / left), n)
        # the byte cap: the last line index whose end stays within max_bytes of the start
        limit = int(np.searchsorted(offsets, offsets[start] + max_bytes, side="right")) - 1
        stop = max(min(stop, limit), start + 1)
        chunks.append(Chunk(len(chunks), start, stop, int(offsets[stop] - offsets[start])))
        start = stop
    return tuple(chunks)
