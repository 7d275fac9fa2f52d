"""The batch worker: runs the lines of every active batch, chunk by chunk, durably.

One background thread with its own event loop serves all batches round-robin, one chunk
per turn, so a huge batch does not starve a small one. A chunk is: read up to N lines from
the input at the recorded byte offset, run them through the engine (``concurrency`` at a
time), append the result lines to the partial output/error files, then record the new
offsets and counts in ONE SQLite transaction. The lines of a chunk are written in a
shuffled order (deterministic: seeded from the batch id and the chunk's input offset),
because the spec promises no order and clients must not come to rely on one. After a crash, partial files are truncated
back to the recorded lengths and the batch resumes at the recorded line: no line is lost
and no finished line runs again (lines of the chunk in flight at the crash run again, as
their results were never recorded). Cancellation and expiry are checked between chunks,
and before each line starts when the engine is asynchronous.

Example::

    worker = Worker(store=store, engine_factory=lambda: BuiltinEngine(), faults=Faults())
    worker.start()
    worker.notify()   # a batch was created or cancelled
    worker.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from . import _ids
from ._errors import legacy_message
from .engines import Engine, LineResult
from .faults import Faults
from .store import Store

__all__ = ["Worker"]

log = logging.getLogger("zgpu_pandas.server")

FAST_CHUNK = 2000  # lines per chunk when the engine answers synchronously
MAX_CHUNK = 1000  # lines per chunk for asynchronous engines
DRAIN_CHUNK = 5000  # lines per chunk when writing batch_cancelled / batch_expired lines
TARGET_CHUNK_SECONDS = 0.25  # with latency, how long a chunk should take (cancel delay)

_CANCELLED_MSG = legacy_message("batch_cancelled", "The batch was cancelled before this request ran.")
_EXPIRED_MSG = legacy_message(
    "batch_expired", "The batch expired before this request ran (completion window exceeded)."
)
_NOT_RUN_CANCELLED = LineResult(code="batch_cancelled", message=_CANCELLED_MSG, status=0)
_NOT_RUN_EXPIRED = LineResult(code="batch_expired", message=_EXPIRED_MSG, status=0)


class Worker:
    """Runs active batches in a daemon thread (see the module docstring)."""

    def __init__(
        self,
        *,
        store: Store,
        engine_factory: Callable[[], Engine],
        faults: Faults,
        concurrency: int = 8,
        latency: float = 0.0,
    ) -> None:
        self.store = store
        self.engine_factory = engine_factory
        self.faults = faults
        self.concurrency = max(1, int(concurrency))
        self.latency = latency
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._main: asyncio.Task[None] | None = None
        self._stopping = False
        self._ready = threading.Event()
        self._retry_at: dict[str, float] = {}
        # Batches with a cancel request, so a chunk in flight stops starting new lines.
        # (The durable record is the batch's "cancelling" status.)
        self._cancelled: set[str] = set()

    # --------------------------------------------------------------------- control
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="zgpu-batch-worker", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def cancel(self, bid: str) -> None:
        """A cancel request for ``bid`` was recorded: stop starting its lines, wake up."""
        self._cancelled.add(bid)
        self.notify()

    def notify(self) -> None:
        """Wake the worker (a batch was created or cancelled)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(wake.set)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop at once. A chunk in flight is abandoned, exactly like a crash: its lines
        were not recorded and run again on the next start."""
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        loop, main = self._loop, self._main
        if loop is not None and main is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(main.cancel)
        thread.join(timeout)
        self._thread = None

    # ------------------------------------------------------------------------ loop
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._amain())
        finally:
            self._ready.set()
            loop.close()
            self._loop = None

    async def _amain(self) -> None:
        self._wake = asyncio.Event()
        self._main = asyncio.current_task()
        self._ready.set()
        engine = self.engine_factory()
        try:
            while not self._stopping:
                self._wake.clear()
                worked = False
                for bid in self.store.active_batch_ids():
                    if self._stopping:
                        break
                    if self._retry_at.get(bid, 0.0) > time.monotonic():
                        continue
                    try:
                        await self._step(bid, engine)
                        worked = True
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        # Keep serving other batches; try this one again shortly.
                        log.exception("batch %s: step failed; retrying in 1 s", bid)
                        self._retry_at[bid] = time.monotonic() + 1.0
                if not worked:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=1.0)
        except asyncio.CancelledError:
            pass
        finally:
            await engine.aclose()

    # ------------------------------------------------------------------------ step
    def _chunk_size(self, engine: Engine) -> int:
        if engine.is_sync:
            return FAST_CHUNK
        latency = getattr(engine, "latency", 0.0) or 0.0
        if latency > 0:
            rounds = max(1, int(TARGET_CHUNK_SECONDS / latency))
            return min(MAX_CHUNK, self.concurrency * rounds)
        return min(MAX_CHUNK, self.concurrency * 8)

    async def _step(self, bid: str, engine: Engine) -> None:
        """Advance batch ``bid`` by one chunk (or finish it)."""
        store = self.store
        row = store.batch_row(bid)
        if row is None:
            return
        status = row["status"]
        if status == "finalizing":
            store.finish_batch(bid, "completed")
            return
        if row["ending"] == "expired" or (
            status == "in_progress" and time.time() >= row["deadline"]
        ):
            mode = "expire"
        elif status == "cancelling":
            mode = "cancel"
        else:
            mode = "run"
        size = DRAIN_CHUNK if mode != "run" else self._chunk_size(engine)
        lines, next_offset = _read_lines(store.path_of(row["input_path"]), row["next_offset"], size)
        if not lines:
            self._cancelled.discard(bid)
            if row["ending"] == "expired":
                store.finish_batch(bid, "expired")
            elif mode == "cancel":
                store.finish_batch(bid, "cancelled")
            elif store.set_finalizing(bid):
                store.finish_batch(bid, "completed")
            # else: cancelled meanwhile; the next turn sees "cancelling" and ends it.
            return
        expired = False
        if mode == "run":
            out, err, expired = await self._run_lines(lines, engine, bid, row["deadline"])
        else:
            code = "batch_cancelled" if mode == "cancel" else "batch_expired"
            out, err = [], _drain_lines(lines, code)
        seed = f"{bid}@{row['next_offset']}"
        _shuffle_chunk(out, seed + "/out")
        _shuffle_chunk(err, seed + "/err")
        batch_dir = store.batches_dir / bid
        out_bytes = _append(batch_dir / "output.jsonl", row["out_bytes"], out)
        err_bytes = _append(batch_dir / "errors.jsonl", row["err_bytes"], err)
        # Recorded with the chunk: once a line has been written as batch_expired the batch
        # must end as expired, even if the server restarts before the last line is drained.
        store.commit_chunk(
            bid,
            next_offset=next_offset,
            out_bytes=out_bytes,
            err_bytes=err_bytes,
            completed=row["completed"] + len(out),
            failed=row["failed"] + len(err),
            ending="expired" if mode == "expire" or expired else None,
        )

    async def _run_lines(
        self, lines: list[bytes], engine: Engine, bid: str, deadline: float
    ) -> tuple[list[bytes], list[bytes], bool]:
        """Run one chunk; returns the output lines, the error lines (serialised) and
        whether some lines were expired instead of run.

        With an asynchronous engine a line only starts once one of the ``concurrency``
        slots is free; a line whose turn comes after a cancel request or after the
        deadline does not run and becomes a ``batch_cancelled``/``batch_expired`` error,
        so a large chunk never delays a cancel by more than the lines in flight."""
        parsed: list[tuple[str, Any]] = []
        for raw in lines:
            obj = orjson.loads(raw)
            parsed.append((obj["custom_id"], obj.get("body")))
        injected: dict[int, tuple[str, str | None]] = {}
        if self.faults.has_line_faults:
            for i, (cid, _) in enumerate(parsed):
                hit = self.faults.line_failure(cid)
                if hit is not None:
                    injected[i] = hit
        results: list[LineResult | None]
        if engine.is_sync:
            complete = engine.complete_sync
            results = [None if i in injected else complete(body) for i, (_, body) in enumerate(parsed)]
            expired = False
        else:
            sem = asyncio.Semaphore(self.concurrency)

            async def one(body: Any) -> LineResult:
                async with sem:
                    if bid in self._cancelled:
                        return _NOT_RUN_CANCELLED
                    if time.time() >= deadline:
                        return _NOT_RUN_EXPIRED
                    return await engine.complete(body)

            todo = [(i, body) for i, (_, body) in enumerate(parsed) if i not in injected]
            done = await asyncio.gather(*(one(body) for _, body in todo))
            results = [None] * len(parsed)
            for (i, _), res in zip(todo, done, strict=True):
                results[i] = res
        expired = any(r is _NOT_RUN_EXPIRED for r in results)
        out: list[bytes] = []
        err: list[bytes] = []
        dumps = orjson.dumps
        for i, (cid, _) in enumerate(parsed):
            outcome = results[i]
            if outcome is None:
                code, message = injected[i]
                err.append(_error_line(cid, code, legacy_message(code, message or _default_msg(code))))
            elif outcome.body is not None:
                out.append(
                    dumps(
                        {
                            "id": _ids.batch_req_id(),
                            "custom_id": cid,
                            "response": {
                                "status_code": 200,
                                "request_id": outcome.request_id,
                                "body": outcome.body,
                            },
                        }
                    )
                )
            else:
                err.append(
                    _error_line(cid, outcome.code or "internal_error", outcome.message or "")
                )
        return out, err, expired


# ------------------------------------------------------------------------- helpers
def _default_msg(code: str) -> str:
    return {
        "internal_error": "Internal error while running the request.",
        "rate_limit_exceeded": "Rate limit exceeded; resubmit this request.",
        "insufficient_quota": "Insufficient quota for this request.",
        "not_found_error": "The requested model was not found.",
        "invalid_request_error": "The request is invalid.",
        "authentication_error": "Authentication failed for this request.",
        "request_too_large": "The request is too large.",
        "context_length_exceeded": "The request exceeds the model's context length.",
        "batch_cancelled": "The batch was cancelled before this request ran.",
        "batch_expired": "The batch expired before this request ran.",
    }.get(code, "The request failed.")


def _error_line(cid: str, code: str, message: str) -> bytes:
    return orjson.dumps(
        {
            "id": _ids.batch_req_id(),
            "custom_id": cid,
            "response": None,
            "error": {"code": code, "message": message, "param": None},
        }
    )


def _drain_lines(lines: list[bytes], code: str) -> list[bytes]:
    message = _CANCELLED_MSG if code == "batch_cancelled" else _EXPIRED_MSG
    return [_error_line(orjson.loads(raw)["custom_id"], code, message) for raw in lines]


def _shuffle_chunk(lines: list[bytes], seed: str) -> None:
    """Put one chunk's result lines in a deterministic order other than input order.

    The spec says output lines come in any order; writing them in input order would let
    a client that relies on order pass every test here and break on the real service.
    Seeded with a string (hashed the same way in every process), so a chunk run again
    after a restart is written in the same order. Any order but the input's own: a
    shuffle that happens to keep it is rotated by one, so even a two-line chunk moves.
    """
    if len(lines) < 2:
        return
    before = list(lines)
    random.Random(seed).shuffle(lines)
    if all(map(operator.is_, lines, before)):
        lines.append(lines.pop(0))


def _read_lines(path: Path, offset: int, limit: int) -> tuple[list[bytes], int]:
    """Up to ``limit`` non-blank lines from byte ``offset``; returns them (without
    newline) and the offset just past the last line read."""
    lines: list[bytes] = []
    with open(path, "rb", buffering=1 << 20) as f:
        f.seek(offset)
        pos = offset
        while len(lines) < limit:
            raw = f.readline()
            if not raw:
                break
            pos += len(raw)
            if raw.strip():
                lines.append(raw[:-1] if raw.endswith(b"\n") else raw)
    return lines, pos


def _append(path: Path, offset: int, lines: list[bytes]) -> int:
    """Write ``lines`` at ``offset`` of ``path`` (cutting off anything beyond it: bytes an
    interrupted chunk left behind) and return the new length."""
    if not lines:
        return offset
    data = b"\n".join(lines) + b"\n"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size < offset:
            raise RuntimeError(f"{path} is shorter ({size}) than its recorded length ({offset})")
        if size > offset:
            os.ftruncate(fd, offset)
        os.lseek(fd, offset, os.SEEK_SET)
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
    finally:
        os.close(fd)
    return offset + len(data)
