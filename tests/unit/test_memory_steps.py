"""core/memory.py: a job's steps allocate Arrow memory from the system allocator, the
default pool is put back after them whatever happens, and freed memory is given back."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pyarrow as pa
import pytest

from zgpu_pandas.core.memory import give_back, system_allocator
from zgpu_pandas.core.results import ResultsTable


def _backend() -> str:
    return pa.default_memory_pool().backend_name


def test_the_default_pool_is_the_system_allocator_inside_and_the_callers_after() -> None:
    before = _backend()
    with system_allocator():
        assert _backend() == "system"
        with system_allocator():
            assert _backend() == "system"
        assert _backend() == "system"  # the outer step still runs
    assert _backend() == before
    with pytest.raises(KeyError), system_allocator():
        raise KeyError("a step that fails")
    assert _backend() == before


def test_a_pool_set_by_someone_else_meanwhile_is_kept() -> None:
    if "jemalloc" not in pa.supported_memory_backends():
        pytest.skip("this pyarrow has no second pool to set")
    original = pa.default_memory_pool()
    try:
        with system_allocator():
            pa.set_memory_pool(pa.jemalloc_memory_pool())
        assert _backend() == "jemalloc"
    finally:
        pa.set_memory_pool(original)


def test_overlapping_steps_in_threads_put_the_pool_back_once_the_last_ends() -> None:
    before = _backend()
    entered, release_first = threading.Event(), threading.Event()
    seen: list[str] = []

    def first() -> None:
        with system_allocator():
            entered.set()
            release_first.wait(10)

    t = threading.Thread(target=first)
    t.start()
    assert entered.wait(10)
    with system_allocator():
        pass
    seen.append(_backend())  # the first thread's step still runs: still the system's
    release_first.set()
    t.join(10)
    assert seen == ["system"] and _backend() == before


def test_parsed_answers_are_held_by_the_system_allocator() -> None:
    system = pa.system_memory_pool()
    n, size = 5_000, 400
    lines = [
        b'{"custom_id":"row-%d","response":{"status_code":200,"body":{"choices":[{"message":'
        b'{"role":"assistant","content":"%s"}}]}}}' % (i, b"a" * size)
        for i in range(n)
    ]
    before = system.bytes_allocated()
    table = ResultsTable(n)
    table.add_lines(lines)
    assert system.bytes_allocated() - before > n * size  # the answers' text, at least
    del table


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_give_back_returns_freed_heap_memory_to_the_system() -> None:
    # 200 MB in blocks below glibc's mmap threshold (so on the heap), all freed but the last,
    # which pins the heap's top: glibc keeps the freed memory resident until trimmed
    code = textwrap.dedent("""
        import ctypes
        from zgpu_pandas.core.memory import give_back
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        def rss():
            return int(open("/proc/self/statm").read().split()[1]) * 4096
        blocks = []
        for _ in range(2_000):
            p = libc.malloc(100_000)
            ctypes.memset(p, 1, 100_000)
            blocks.append(p)
        for p in blocks[:-1]:
            libc.free(p)
        held = rss()
        give_back()
        print(held - rss())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) > 100_000_000, out.stdout


def test_give_back_outside_a_step_is_harmless() -> None:
    give_back()
    with system_allocator():
        give_back()
