"""One active batch as the worker sees it: where its input is read, which lines are in
flight, which finished lines wait to be recorded, and recording them durably.

Lines finish in any order (a sliding window of upstream calls), so progress is recorded as
a prefix plus a set: every input line before ``next_offset`` is recorded, and so are the
lines past it whose offsets are in the store's ``batch_done_lines``. Finished lines are
recorded a few at a time (whatever finished since the last record, usually one or a few):
their result lines are appended to the partial output/error files, then the new prefix, the
set, the file lengths and the counts land in one SQLite transaction. After a crash the files
are cut back to the recorded lengths and reading starts again at ``next_offset``, skipping
the recorded lines: only the requests in flight at the crash are sent again.

Example::

    run = BatchRun(store, store.batch_row(bid))
    line = run.take_line()            # (offset, raw) or None at the end of the input
    run.finished(offset, b'{...}', ok=True)
    run.flush()                       # durable from here on
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import IO, Any

from ._lines import append, error_line, parse_line, shuffle_lines
from .store import Store

__all__ = ["BatchRun", "RecordError"]

log = logging.getLogger("zgpu_pandas.server")

FLUSH_RETRY_FIRST = 1.0  # seconds before recording is tried again after a failure (disk full)
FLUSH_RETRY_MAX = 30.0
LOG_EVERY = 60.0  # at most one log line per batch and kind of trouble per minute


class RecordError(Exception):
    """Finished lines could not be recorded (disk full, database locked); kept in memory."""


class BatchRun:
    """See the module docstring. ``mode`` is ``run``, ``cancel``, ``expire`` or ``broken``
    (the input can no longer be read: the batch fails once its calls in flight end)."""

    def __init__(self, store: Store, row: Any) -> None:
        self.store = store
        self.bid: str = row["id"]
        self.project: str = row["project"]
        self.deadline: float = float(row["deadline"])
        self.input_path = store.path_of(row["input_path"])
        self.next_offset: int = int(row["next_offset"])
        self.out_bytes: int = int(row["out_bytes"])
        self.err_bytes: int = int(row["err_bytes"])
        self.completed: int = int(row["completed"])
        self.failed: int = int(row["failed"])
        self.skip = store.done_offsets(self.bid)
        self.read_pos = self.next_offset
        self.exhausted = False
        self.outstanding: set[int] = set()  # offsets taken and not yet recorded
        self.pending: list[tuple[int, bytes, bool]] = []  # finished, not yet recorded
        self.tasks: set[asyncio.Task[Any]] = set()  # calls in flight
        self.mode = "run"
        if row["ending"] == "expired":
            self.mode = "expire"
        elif row["status"] == "cancelling":
            self.mode = "cancel"
        self.broken_reason: str | None = None
        self.late = False  # past the deadline with every line started (see the worker)
        self.blocked_until = 0.0
        self._retry_delay = FLUSH_RETRY_FIRST
        self._logged: dict[str, float] = {}
        self._fh: IO[bytes] | None = None

    # ------------------------------------------------------------------- reading
    def take_line(self) -> tuple[int, bytes] | None:
        """The next input line not yet recorded (``(offset, raw)``, now outstanding), or
        ``None`` at the end of the input. Raises ``OSError`` when the input cannot be read."""
        if self.exhausted:
            return None
        if self._fh is None:
            self._fh = open(self.input_path, "rb", buffering=1 << 20)  # noqa: SIM115
            self._fh.seek(self.read_pos)
        while True:
            raw = self._fh.readline()
            if not raw:
                self.exhausted = True
                self.close()
                return None
            offset = self.read_pos
            self.read_pos += len(raw)
            if offset in self.skip:
                self.skip.discard(offset)
                continue
            if raw.strip():
                self.outstanding.add(offset)
                return offset, raw[:-1] if raw.endswith(b"\n") else raw

    def drain(self, limit: int, code: str, message: str) -> None:
        """Finish up to ``limit`` lines never started as ``code`` error lines (a cancel, the
        deadline). An input that cannot be read any more ends the draining."""
        try:
            for _ in range(limit):
                taken = self.take_line()
                if taken is None:
                    break
                cid, _, _ = parse_line(taken[1])
                self.finished(taken[0], error_line(cid, code, message), False)
        except OSError as exc:
            self.warn("drain", "batch %s: input unreadable while ending it (%s)", self.bid, exc)
            self.exhausted = True
            self.close()

    def failure(self) -> dict[str, Any]:
        """The batch's ``errors`` once its input could not be read."""
        message = (
            f"The batch's input file can no longer be read ({self.broken_reason}); "
            f"{self.completed + self.failed} of its lines had finished and are in its output "
            "and error files."
        )
        return {"object": "list", "data": [
            {"code": "input_file_unreadable", "message": message, "line": None, "param": None}]}

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def in_flight(self) -> int:
        return len(self.outstanding) - len(self.pending)

    # ----------------------------------------------------------------- recording
    def finished(self, offset: int, line: bytes, ok: bool) -> None:
        self.pending.append((offset, line, ok))
        if self.store.line_observer is not None:  # the server's metrics and failed-line log
            self.store.line_observer(self.bid, self.project, line, ok)

    def flush(self, *, ending: str | None = None) -> bool:
        """Record the pending lines durably; False (and the lines kept) when that fails."""
        if not self.pending or time.monotonic() < self.blocked_until:
            return not self.pending
        pending = self.pending
        out = [line for _, line, ok in pending if ok]
        err = [line for _, line, ok in pending if not ok]
        first = min(offset for offset, _, _ in pending)
        # deterministic for the same lines, never their input order (see shuffle_lines)
        shuffle_lines(out, f"{self.bid}@{first}/out")
        shuffle_lines(err, f"{self.bid}@{first}/err")
        done = {offset for offset, _, _ in pending}
        left = self.outstanding - done
        prefix = min(left) if left else self.read_pos
        batch_dir = self.store.batches_dir / self.bid
        try:
            out_bytes = append(batch_dir / "output.jsonl", self.out_bytes, out)
            err_bytes = append(batch_dir / "errors.jsonl", self.err_bytes, err)
            self.store.commit_lines(
                self.bid,
                next_offset=prefix,
                out_bytes=out_bytes,
                err_bytes=err_bytes,
                completed=self.completed + len(out),
                failed=self.failed + len(err),
                done_offsets=sorted(done),
                ending="expired" if self.mode == "expire" else ending,
            )
        except (OSError, sqlite3.Error) as exc:
            self.blocked_until = time.monotonic() + self._retry_delay
            self.warn(
                "record",
                "batch %s: cannot record %d finished lines (%s: %s); they are kept and "
                "recording is tried again in %.0f s (no request is sent again)",
                self.bid, len(pending), type(exc).__name__, exc, self._retry_delay,
            )
            self._retry_delay = min(self._retry_delay * 2, FLUSH_RETRY_MAX)
            return False
        self.out_bytes, self.err_bytes = out_bytes, err_bytes
        self.completed += len(out)
        self.failed += len(err)
        self.next_offset = prefix
        self.outstanding = left
        self.pending = []
        self.blocked_until = 0.0
        self._retry_delay = FLUSH_RETRY_FIRST
        return True

    @property
    def blocked(self) -> bool:
        return bool(self.pending) and time.monotonic() < self.blocked_until

    def warn(self, kind: str, msg: str, *args: Any) -> None:
        """A warning, at most once a minute per batch and ``kind`` (no traceback)."""
        now = time.monotonic()
        if now - self._logged.get(kind, -LOG_EVERY) >= LOG_EVERY:
            self._logged[kind] = now
            log.warning(msg, *args)
