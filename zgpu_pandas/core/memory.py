"""How a job's large, short-lived allocations are made and handed back to the system.

A job's steps make large things and free them one after the other: the dedup's hash table,
the request lines (freed once every batch is created), each results file's blocks (freed
once parsed), the blocks once folded into row order. Freed is not given back:

- Arrow's default allocator (mimalloc) keeps freed pages for its next allocations, in an
  arena that it asks the kernel to back with transparent huge pages, where a page freed
  inside a 2 MB huge page stays resident;
- glibc keeps freed memory in the arena of the thread that freed it (the JSON reader parses
  on a pool of threads, each with its own arena).

The next large thing, often made by another allocator (numpy's line buffer) or on another
thread, does not reuse them, so the process's resident memory became the sum of what the
steps once held rather than the largest of them (bench/README.md, "Where the in-memory peak
came from"). Two measures:

- :func:`system_allocator`: the job's compute steps allocate Arrow memory from the system
  allocator (glibc), which gives large blocks back when they are freed. The process-wide
  default pool is switched for the duration of the step only, and put back afterwards (the
  buffers made meanwhile keep their pool, so they are freed correctly whenever they are).
  Nested and concurrent steps (Dask tasks in threads) share one switch.
- :func:`give_back`: the memory freed so far, returned at the points where a step has just
  let go of something large (about a millisecond; never called per row or per block).

Example::

    with system_allocator():
        table = parse(block)
    del table
    give_back()
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import pyarrow as pa

__all__ = ["give_back", "on_system_allocator", "system_allocator"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (Linux), which returns the free memory of every arena, not
    only the top of the main heap; ``None`` elsewhere (the macOS and Windows allocators give
    large freed blocks back by themselves)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # musl (Alpine) has no malloc_trim
        return None
    return trim


_TRIM = _malloc_trim()


def give_back() -> None:
    """Return the memory freed so far by Arrow's allocators and by the C heap to the system."""
    pa.default_memory_pool().release_unused()
    if _SAVED is not None:  # inside system_allocator(): the switched-off pool's pages too
        _SAVED.release_unused()
    if _TRIM is not None:
        _TRIM(0)


_LOCK = threading.Lock()
_DEPTH = 0
_SAVED: pa.MemoryPool | None = None  # the default pool while it is switched off


@contextmanager
def system_allocator() -> Iterator[None]:
    """Arrow's default memory pool is the system allocator inside the block (see the module
    docstring); the pool it was is put back when the last such block ends, unless someone
    else set another pool meanwhile (theirs is kept)."""
    global _DEPTH, _SAVED
    with _LOCK:
        if _DEPTH == 0:
            current = pa.default_memory_pool()
            if current.backend_name != "system":
                _SAVED = current
                pa.set_memory_pool(pa.system_memory_pool())
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0 and _SAVED is not None:
                if pa.default_memory_pool().backend_name == "system":
                    pa.set_memory_pool(_SAVED)
                _SAVED = None


def on_system_allocator(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` run inside :func:`system_allocator`."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with system_allocator():
            return fn(*args, **kwargs)

    return wrapper
