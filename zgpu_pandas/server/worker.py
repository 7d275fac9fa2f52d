"""The batch worker: runs the lines of every active batch, durably, one line at a time.

One background thread with its own event loop serves all batches. With an asynchronous
engine (an upstream model server, or the built-in engine with latency) the lines go through
one sliding window (``zgpu_pandas._window``) of ``concurrency`` calls: a new line starts the
moment any call ends, with no chunk barrier waiting for the slowest line. Lines are taken
round-robin, first between projects, then between the batches of a project, so a huge
batch (or a project with many batches) never starves a small one. With the synchronous
built-in engine (no latency) lines are run in chunks of ``FAST_CHUNK``, one chunk per batch
in turn, which is what makes it fast.

Durability (see ``_batchrun``): finished lines are recorded a few at a time, as soon as
they finish, so a crash re-sends only the requests that were in flight. Any failure of one
line (the engine raising, an answer that cannot be serialised, an input line that no longer
parses, an injected fault) becomes that line's error line and the batch goes on; no line is
ever sent again once its call returned. An input that can no longer be read fails the batch
(its finished lines are published). An upstream that cannot be reached pauses the lines
(each waits with a growing delay, up to ``OUTAGE_MAX_DELAY``) until it is back, until the
completion window ends, or until a cancel. Recording that fails (a full disk) keeps the
finished lines in memory, starts no new line of that batch, logs one line a minute and
tries again.

A cancel (or the deadline) stops new lines of that batch at once; the calls in flight get
``STOP_GRACE`` seconds to finish, then are abandoned (their lines become ``batch_cancelled``
/ ``batch_expired``), and the lines never started are written as such.

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
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from typing import Any, cast

from .._window import Done, SlidingWindow
from ._batchrun import BatchRun
from ._errors import legacy_message
from ._lines import default_message, error_line, outcome_line, parse_line, shuffle_lines
from .engines import Engine, LineResult
from .faults import Faults
from .store import Store

__all__ = ["Worker"]

log = logging.getLogger("zgpu_pandas.server")

FAST_CHUNK = 2000  # lines per chunk when the engine answers synchronously
DRAIN_CHUNK = 5000  # lines per step when writing batch_cancelled / batch_expired lines
STOP_GRACE = 2.0  # seconds calls in flight may still take after a cancel or the deadline
HOUSEKEEPING_EVERY = 0.25  # seconds between looks at new, cancelled and finished batches
OUTAGE_MAX_DELAY = 10.0  # longest wait between two tries of a line while the upstream is down

_shuffle_chunk = shuffle_lines  # the name the tests of output order use

_CANCELLED_MSG = legacy_message("batch_cancelled", "The batch was cancelled before this request ran.")
_EXPIRED_MSG = legacy_message(
    "batch_expired", "The batch expired before this request ran (completion window exceeded)."
)
_ABANDONED = {
    "cancel": ("batch_cancelled", legacy_message(
        "batch_cancelled", "The batch was cancelled while this request was in flight; its "
        "answer was not awaited.")),
    "expire": ("batch_expired", legacy_message(
        "batch_expired", "The batch expired while this request was in flight; its answer "
        "was not awaited.")),
}
_NOT_RUN = {
    "cancel": LineResult(code="batch_cancelled", message=_CANCELLED_MSG, status=0),
    "expire": LineResult(code="batch_expired", message=_EXPIRED_MSG, status=0),
    "broken": LineResult(code="internal_error", message=legacy_message(
        "internal_error", "The batch's input could not be read any more, so this request "
        "was not sent."), status=0),
}


class Worker:
    """Runs active batches in a daemon thread (see the module docstring).

    ``window`` is the sliding window of the asynchronous engine (``window.peak`` is the most
    upstream calls ever in flight at once; ``None`` with the synchronous engine)."""

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
        self.window: SlidingWindow | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._work = asyncio.Event()  # (re)made in the worker's loop: the source may pick
        self._main: asyncio.Task[None] | None = None
        self._stopping = False
        self._ready = threading.Event()
        # Batches with a cancel request, so lines stop starting at once (the durable record
        # is the batch's "cancelling" status). Added to from the server's threads.
        self._cancelled: set[str] = set()
        self._runs: dict[str, BatchRun] = {}
        self._projects: deque[str] = deque()
        self._by_project: dict[str, deque[BatchRun]] = {}
        self._poked = True
        self._next_housekeeping = 0.0
        self._flush_soon = False
        self._outage_since: float | None = None
        self._warned: dict[str, float] = {}

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
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(self._poke)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop at once. Finished lines are recorded; calls in flight are abandoned, exactly
        like a crash: they were not recorded and run again on the next start."""
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

    def _poke(self) -> None:
        self._poked = True
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------------ loop
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._amain())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            self._ready.set()
            loop.close()
            self._loop = None

    async def _amain(self) -> None:
        self._wake = asyncio.Event()
        self._work = asyncio.Event()
        self._flush_soon = False  # (a flush scheduled before a stop never ran)
        self._outage_since = None
        self._main = asyncio.current_task()
        self._ready.set()
        engine = self.engine_factory()
        try:
            if engine.is_sync:
                await self._drive_sync(engine)
            else:
                await self._drive_window(engine)
        except asyncio.CancelledError:
            pass
        finally:
            for run in self._runs.values():
                with contextlib.suppress(Exception):
                    run.flush()  # what finished is kept; what was in flight runs again
                run.close()
            self._runs.clear()
            self._projects.clear()
            self._by_project.clear()
            await engine.aclose()

    async def _idle(self) -> None:
        assert self._wake is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=HOUSEKEEPING_EVERY)
        self._wake.clear()

    # ---------------------------------------------------------------- sync engine
    async def _drive_sync(self, engine: Engine) -> None:
        complete = engine.complete_sync
        while not self._stopping:
            self._housekeeping()
            picked = self._pick(FAST_CHUNK)
            if picked is None:
                await self._idle()
                self._poked = True
                continue
            run, items = picked
            for offset, cid, body in items:
                try:
                    outcome = complete(body)
                except Exception as exc:  # one line's failure is that line's error
                    outcome = self._crashed(run, exc)
                self._finish_line(run, offset, cid, outcome)
            run.flush()
            await asyncio.sleep(0)  # let a cancel or a stop in between chunks

    # --------------------------------------------------------------- async engine
    async def _drive_window(self, engine: Engine) -> None:
        self.window = window = SlidingWindow(limit=self.concurrency)

        async def call(item: tuple[BatchRun, int, str, Any]) -> LineResult:
            return await self._call(engine, *item)

        # Housekeeping runs beside the window, so a cancel or the deadline is seen even
        # while every slot is held by a slow call and no line is being asked for.
        keeper = asyncio.ensure_future(self._keep_house())
        lines = cast(AsyncGenerator[Done[Any, LineResult], None],
                     window.map(self._lines(), call, source_waits=True))
        try:
            async for done in lines:
                run, offset, cid, _ = done.item
                if done.error is None:
                    assert done.result is not None
                    outcome = done.result
                elif isinstance(done.error, asyncio.CancelledError) and run.mode in _ABANDONED:
                    code, message = _ABANDONED[run.mode]
                    outcome = LineResult(code=code, message=message, status=0)
                else:
                    outcome = self._crashed(run, done.error)
                self._finish_line(run, offset, cid, outcome)
                self._schedule_flush()
        finally:
            keeper.cancel()
            await lines.aclose()  # cancels the calls in flight (a stop is a crash for them)
            await asyncio.gather(keeper, return_exceptions=True)

    async def _keep_house(self) -> None:
        while not self._stopping:
            await self._idle()
            self._housekeeping(force=True)
            self._work.set()

    async def _lines(self) -> Any:
        """The window's source: the next line to start, round-robin; waits when none."""
        while not self._stopping:
            picked = self._pick(1)
            if picked is None:
                self._work.clear()
                await self._work.wait()
                continue
            run, items = picked
            yield (run, *items[0])

    def _pick(self, limit: int) -> tuple[BatchRun, list[tuple[int, str, Any]]] | None:
        """Up to ``limit`` lines of the next batch in turn: projects take turns, and so do
        the batches of each project, so neither a huge batch nor a project with many
        batches starves the others."""
        for _ in range(len(self._projects)):
            project = self._projects[0]
            self._projects.rotate(-1)
            queue = self._by_project[project]
            for _ in range(len(queue)):
                run = queue[0]
                queue.rotate(-1)
                if self._may_start(run):
                    items = self._take(run, limit)
                    if items:
                        return run, items
        return None

    async def _call(self, engine: Engine, run: BatchRun, offset: int, cid: str, body: Any) -> LineResult:
        """One line's call; an unreachable upstream pauses it (see the module docstring)."""
        task = asyncio.current_task()
        assert task is not None
        run.tasks.add(task)
        delay = 0.5
        try:
            while True:
                if run.mode != "run":
                    return _NOT_RUN[run.mode]
                if time.time() >= run.deadline:
                    self._stop_run(run, "expire")
                    return _NOT_RUN["expire"]
                outcome = await engine.complete(body)
                if not outcome.unreachable:
                    if self._outage_since is not None:
                        log.warning("upstream reachable again after %.0f s; paused lines resume",
                                    time.monotonic() - self._outage_since)
                        self._outage_since = None
                    return outcome
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    log.warning("upstream unreachable (%s); lines are paused, not failed, and "
                                "tried again until it is back", outcome.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, OUTAGE_MAX_DELAY)
        finally:
            run.tasks.discard(task)

    def _schedule_flush(self) -> None:
        # Everything that finished in this turn of the event loop is recorded together,
        # right after it: small units without one transaction per line under load.
        if not self._flush_soon and self._loop is not None:
            self._flush_soon = True
            self._loop.call_soon(self._flush_all)

    def _flush_all(self) -> None:
        self._flush_soon = False
        for run in list(self._runs.values()):
            if run.pending:
                run.flush()
                if not run.in_flight and (run.exhausted or run.mode != "run"):
                    self._poke()  # its end (or its drain) is due

    # -------------------------------------------------------------------- lines
    def _take(self, run: BatchRun, limit: int) -> list[tuple[int, str, Any]]:
        """Up to ``limit`` lines of ``run`` to start; lines that cannot run (unparseable,
        an injected fault) are finished on the spot. Marks the run broken on a read error."""
        todo: list[tuple[int, str, Any]] = []
        try:
            while len(todo) < limit:
                taken = run.take_line()
                if taken is None:
                    self._poke()  # its end is due
                    break
                offset, raw = taken
                cid, body, problem = parse_line(raw)
                if problem is not None:
                    message = legacy_message("invalid_request_error", f"This request cannot run: {problem}.")
                    run.finished(offset, error_line(cid, "invalid_request_error", message), False)
                    continue
                assert cid is not None
                hit = self.faults.line_failure(cid) if self.faults.has_line_faults else None
                if hit is not None:
                    code, message_ = hit
                    run.finished(offset, error_line(
                        cid, code, legacy_message(code, message_ or default_message(code))), False)
                    continue
                todo.append((offset, cid, body))
        except OSError as exc:
            run.mode = "broken"
            run.broken_reason = f"{type(exc).__name__}: {exc.strerror or exc}"
            run.close()
            self._poke()
        if not todo and run.pending:
            self._schedule_flush()
        return todo

    def _finish_line(self, run: BatchRun, offset: int, cid: str, outcome: LineResult) -> None:
        line, ok = outcome_line(cid, outcome)
        run.finished(offset, line, ok)

    def _crashed(self, run: BatchRun, exc: BaseException) -> LineResult:
        run.warn("line", "batch %s: a line failed with %s: %s (that line gets an internal_error; "
                 "the batch goes on)", run.bid, type(exc).__name__, exc)
        return LineResult(code="internal_error", status=500, message=legacy_message(
            "internal_error", f"Internal error while running this request ({type(exc).__name__})."))

    # ------------------------------------------------------------- housekeeping
    def _may_start(self, run: BatchRun) -> bool:
        if run.mode == "run":
            if run.bid in self._cancelled:
                self._stop_run(run, "cancel")
            elif time.time() >= run.deadline:
                if not run.exhausted:
                    self._stop_run(run, "expire")
                elif run.tasks and not run.late and self._loop is not None:
                    # Every line has started: those still in flight get STOP_GRACE to end
                    # (the batch then completes), then they are given up and it expires.
                    run.late = True
                    self._loop.call_later(STOP_GRACE, self._expire_late, run)
        return run.mode == "run" and not run.exhausted and not run.blocked

    def _expire_late(self, run: BatchRun) -> None:
        if run.mode == "run" and run.tasks:
            run.mode = "expire"
            _abandon(run)
            self._poke()

    def _stop_run(self, run: BatchRun, mode: str) -> None:
        run.mode = mode
        self._poke()
        if run.tasks and self._loop is not None:
            self._loop.call_later(STOP_GRACE, _abandon, run)

    def _housekeeping(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not (force or self._poked or now >= self._next_housekeeping):
            return
        self._poked = False
        self._next_housekeeping = now + HOUSEKEEPING_EVERY
        try:
            active = self.store.active_batch_ids()
        except Exception as exc:  # the database is busy or broken: try again shortly
            self._warn("list", "batch worker: cannot list active batches (%s)", exc)
            return
        for bid in active:
            if bid not in self._runs:
                try:
                    self._add_run(bid)
                except Exception as exc:  # tried again on the next turn
                    self._warn(f"add {bid}", "batch %s: cannot start it yet (%s: %s)",
                               bid, type(exc).__name__, exc)
        gone = set(self._runs) - set(active)
        for run in list(self._runs.values()):
            if run.bid in gone:
                self._drop_run(run)
                continue
            try:
                self._may_start(run)
                self._advance(run)
            except Exception as exc:  # keep serving the other batches
                run.warn("step", "batch %s: %s: %s; tried again shortly", run.bid,
                         type(exc).__name__, exc)

    def _warn(self, key: str, msg: str, *args: Any) -> None:
        """A warning at most once a minute per ``key`` (a stuck batch must not flood)."""
        now = time.monotonic()
        if now - self._warned.get(key, -60.0) >= 60.0:
            self._warned[key] = now
            log.warning(msg, *args)

    def _add_run(self, bid: str) -> None:
        row = self.store.batch_row(bid)
        if row is None:
            return
        if row["status"] == "finalizing":
            self.store.finish_batch(bid, "completed")
            return
        run = BatchRun(self.store, row)
        self._runs[bid] = run
        if run.project not in self._by_project:
            self._by_project[run.project] = deque()
            self._projects.append(run.project)
        self._by_project[run.project].append(run)

    def _drop_run(self, run: BatchRun) -> None:
        run.close()
        self._runs.pop(run.bid, None)
        self._cancelled.discard(run.bid)
        queue = self._by_project.get(run.project)
        if queue is not None:
            with contextlib.suppress(ValueError):
                queue.remove(run)
            if not queue:
                del self._by_project[run.project]
                self._projects.remove(run.project)

    def _advance(self, run: BatchRun) -> None:
        """Record what finished, then end the batch (or drain its unstarted lines) once
        nothing of it is in flight."""
        if run.pending and not run.flush():
            return
        if run.in_flight:
            return
        if run.mode == "broken":
            self._fail(run)
        elif run.mode in ("cancel", "expire"):
            self._drain(run)
        elif run.exhausted:
            if self.store.set_finalizing(run.bid):
                self.store.finish_batch(run.bid, "completed")
                self._drop_run(run)
            else:  # cancelled meanwhile
                self._stop_run(run, "cancel")

    def _drain(self, run: BatchRun) -> None:
        """Write up to DRAIN_CHUNK unstarted lines as batch_cancelled/batch_expired; end
        the batch when none is left."""
        if run.mode == "cancel":
            run.drain(DRAIN_CHUNK, "batch_cancelled", _CANCELLED_MSG)
        else:
            run.drain(DRAIN_CHUNK, "batch_expired", _EXPIRED_MSG)
        if not run.flush(ending="expired" if run.mode == "expire" else None):
            return
        if run.exhausted:
            self.store.finish_batch(run.bid, "cancelled" if run.mode == "cancel" else "expired")
            self._drop_run(run)
        else:
            self._poke()  # the next DRAIN_CHUNK lines on the next turn

    def _fail(self, run: BatchRun) -> None:
        errors = run.failure()
        log.warning("batch %s failed: %s", run.bid, errors["data"][0]["message"])
        self.store.finish_batch(run.bid, "failed", errors=errors)
        self._drop_run(run)


def _abandon(run: BatchRun) -> None:
    """After STOP_GRACE: give up the calls of a cancelled or expired batch still in flight."""
    for task in list(run.tasks):
        task.cancel()
