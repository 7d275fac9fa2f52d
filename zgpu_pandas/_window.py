"""A sliding window of in-flight asynchronous calls: the one concurrency engine.

Both the online mode (``chat``: rows to ``POST /v1/chat/completions``) and the local server's
upstream engine (batch lines to a model server) keep up to ``limit`` calls in flight and
start the next one the moment any call ends, instead of running chunks with a barrier that
waits for the slowest call of each chunk. With long-tailed latencies (real model servers)
the barrier wastes most of the window; the sliding window keeps it full.

This module is a leaf: asyncio only, nothing of the client or the server, so both can
import it without importing each other.

Example::

    async def main():
        window = SlidingWindow(limit=8)
        async for done in window.map(range(100), fetch):
            if done.error is None:
                print(done.item, done.result)
        print(window.peak)  # 8

Each call's exception is caught and handed back as that item's ``error``: one failing call
never stops the others. Breaking out of the ``async for`` (or cancelling the task iterating
it) cancels the calls still in flight and starts no new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Done", "SlidingWindow"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Done(Generic[T, R]):
    """One finished call: its item, and either its result or the exception it raised."""

    item: T
    result: R | None = None
    error: BaseException | None = None


class SlidingWindow:
    """Keeps at most ``limit`` calls in flight; see the module docstring.

    ``in_flight`` is the number of calls running now and ``peak`` the most that ever ran at
    once (the server reports both; the benchmark checks ``peak == limit``).
    """

    def __init__(self, *, limit: int) -> None:
        if int(limit) < 1:
            raise ValueError(f"limit must be at least 1, got {limit!r}")
        self.limit = int(limit)
        self.in_flight = 0
        self.peak = 0
        self.started = 0

    def _start(
        self, running: dict[Any, Any], call: Callable[[T], Awaitable[R]], item: T
    ) -> None:
        """Start ``call(item)`` as one more call in flight, and count it."""
        running[asyncio.ensure_future(call(item))] = item
        self.started += 1
        self.in_flight = len(running)
        self.peak = max(self.peak, self.in_flight)

    async def map(
        self,
        items: Iterable[T] | AsyncIterable[T],
        call: Callable[[T], Awaitable[R]],
        *,
        may_start: Callable[[], bool] | None = None,
        source_waits: bool = False,
    ) -> AsyncIterator[Done[T, R]]:
        """Run ``call(item)`` for every item, ``limit`` at a time, yielding each as it ends
        (completion order, not input order).

        ``may_start`` is asked before each new call starts; once it answers False no new
        call starts (a cancel, a deadline, a spending cap), the calls in flight still end
        and are yielded, and the items not started are left in ``items`` (an iterator is
        not advanced past them).

        ``source_waits=True`` is for a source that may wait a long time for its next item
        (a queue fed by new work, as the server's worker is): the next item is then awaited
        alongside the calls in flight, so finished calls are yielded while the source
        waits instead of after it. ``may_start`` is asked before each item is awaited.
        """
        if source_waits:
            async for done in self._map_waiting(_aiter(items), call, may_start):
                yield done
            return
        source = _aiter(items)
        running: dict[asyncio.Task[R], T] = {}
        exhausted = False
        try:
            while True:
                while not exhausted and len(running) < self.limit:
                    if may_start is not None and not may_start():
                        exhausted = True
                        break
                    try:
                        item = await source.__anext__()
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    self._start(running, call, item)
                if not running:
                    return
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    item = running.pop(task)
                    self.in_flight = len(running)
                    if task.cancelled():
                        yield Done(item, error=asyncio.CancelledError())
                    elif (exc := task.exception()) is not None:
                        yield Done(item, error=exc)
                    else:
                        yield Done(item, result=task.result())
        finally:
            for task in running:
                task.cancel()
            if running:
                # Let the cancelled calls unwind (close their connections) before returning.
                await asyncio.gather(*running, return_exceptions=True)
            self.in_flight = 0


    async def _map_waiting(
        self,
        source: AsyncIterator[T],
        call: Callable[[T], Awaitable[R]],
        may_start: Callable[[], bool] | None,
    ) -> AsyncIterator[Done[T, R]]:
        """``map`` with the next item awaited concurrently with the calls in flight."""
        running: dict[asyncio.Future[R], T] = {}
        pull: asyncio.Future[T] | None = None
        exhausted = False
        try:
            while True:
                while not exhausted and len(running) < self.limit:
                    if pull is None:
                        if may_start is not None and not may_start():
                            exhausted = True
                            break
                        pull = asyncio.ensure_future(source.__anext__())
                    if not pull.done():
                        break
                    ready, pull = pull, None
                    try:
                        item = ready.result()
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    self._start(running, call, item)
                if not running and pull is None:
                    return
                waiting: set[asyncio.Future[Any]] = set(running)
                if pull is not None and len(running) < self.limit:
                    waiting.add(pull)
                finished, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for fut in finished:
                    if fut is pull:
                        continue  # picked up by the filling loop above
                    item = running.pop(fut)
                    self.in_flight = len(running)
                    yield _done_of(item, fut)
        finally:
            if pull is not None:
                pull.cancel()
                await asyncio.gather(pull, return_exceptions=True)
            for fut in running:
                fut.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            self.in_flight = 0


def _done_of(item: T, task: asyncio.Future[R]) -> Done[T, R]:
    if task.cancelled():
        return Done(item, error=asyncio.CancelledError())
    exc = task.exception()
    if exc is not None:
        return Done(item, error=exc)
    return Done(item, result=task.result())


async def _aiter(items: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item
