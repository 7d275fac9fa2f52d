"""The sliding window: at most ``limit`` in flight, a new call the moment one ends, one
failing call never stops the others, and a stop leaves the rest unstarted."""

from __future__ import annotations

import asyncio

import pytest

from zgpu_pandas._window import SlidingWindow


def _run(coro):
    return asyncio.run(coro)


async def _collect(window, items, call, **kw):
    return [d async for d in window.map(items, call, **kw)]


def test_keeps_the_window_full_without_a_barrier():
    # One slow call among fast ones: a chunk barrier would hold 3 slots idle behind it.
    running, most = 0, 0
    order = []

    async def call(i):
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.3 if i == 0 else 0.01)
        running -= 1
        order.append(i)
        return i * 2

    window = SlidingWindow(limit=4)
    done = _run(_collect(window, range(40), call))
    assert sorted(d.result for d in done) == [i * 2 for i in range(40)]
    assert window.peak == most == 4
    assert window.in_flight == 0 and window.started == 40
    # the 39 fast calls all finished while the slow one was still running
    assert order[-1] == 0


def test_an_error_is_that_items_own():
    async def call(i):
        if i % 3 == 0:
            raise ValueError(f"bad {i}")
        return i

    done = _run(_collect(SlidingWindow(limit=2), range(9), call))
    errors = {d.item: str(d.error) for d in done if d.error is not None}
    assert errors == {0: "bad 0", 3: "bad 3", 6: "bad 6"}
    assert sorted(d.result for d in done if d.error is None) == [1, 2, 4, 5, 7, 8]


def test_may_start_stops_new_calls_and_leaves_the_rest_unread():
    started = []

    async def call(i):
        started.append(i)
        await asyncio.sleep(0.01)
        return i

    items = iter(range(100))
    window = SlidingWindow(limit=3)
    done = _run(_collect(window, items, call, may_start=lambda: window.started < 5))
    assert len(done) == len(started) == 5
    assert next(items) == 5  # the iterator was not advanced past what ran


def test_breaking_out_cancels_calls_in_flight():
    cancelled = []

    async def call(i):
        try:
            await asyncio.sleep(0 if i == 0 else 5)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        return i

    async def first():
        window = SlidingWindow(limit=3)
        agen = window.map(range(10), call)
        async for d in agen:
            await agen.aclose()
            return d, window

    d, window = _run(first())
    assert d.item == 0
    assert sorted(cancelled) == [1, 2]  # a finished call is yielded before its slot refills
    assert window.in_flight == 0


def test_async_iterable_items():
    async def items():
        for i in range(5):
            yield i

    async def call(i):
        return -i

    done = _run(_collect(SlidingWindow(limit=2), items(), call))
    assert sorted(d.result for d in done) == [-4, -3, -2, -1, 0]


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_must_be_positive(limit):
    with pytest.raises(ValueError, match="at least 1"):
        SlidingWindow(limit=limit)


def test_a_waiting_source_does_not_hold_back_finished_calls():
    # A queue fed later (the server's worker): while the source waits for its next item,
    # the calls already started are still yielded as they end.
    async def main():
        queue: asyncio.Queue = asyncio.Queue()
        yielded_before_more = []

        async def source():
            while True:
                item = await queue.get()
                if item is None:
                    return
                yield item

        async def call(i):
            await asyncio.sleep(0.01)
            return i

        for i in range(3):
            queue.put_nowait(i)
        window = SlidingWindow(limit=2)
        got = []
        async for done in window.map(source(), call, source_waits=True):
            got.append(done.result)
            if len(got) == 3:
                yielded_before_more.extend(got)
                for i in range(3, 6):
                    queue.put_nowait(i)
                queue.put_nowait(None)
        return got, yielded_before_more, window

    got, early, window = _run(main())
    assert sorted(early) == [0, 1, 2]  # all three came back while the source was waiting
    assert sorted(got) == list(range(6))
    assert window.peak == 2 and window.in_flight == 0


def test_a_waiting_source_is_cancelled_cleanly_when_the_loop_stops():
    async def main():
        started = []

        async def source():
            yield 1
            await asyncio.Event().wait()  # never another item
            yield 2  # pragma: no cover

        async def call(i):
            started.append(i)
            return i

        window = SlidingWindow(limit=4)
        async for done in window.map(source(), call, source_waits=True):
            assert done.result == 1
            break
        return started, window

    started, window = _run(main())
    assert started == [1] and window.in_flight == 0
