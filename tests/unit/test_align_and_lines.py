"""Results put in row order (core/align.py) and request lines written a window at a time
(core/line_buffer.py): the same values as the plain way, whatever the order, the pieces and
the text; and without the copies the plain way makes (Arrow's own allocation counts, in a
fresh process, so the peak is this step's alone)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from itertools import pairwise
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zgpu_pandas.core import align as align_module
from zgpu_pandas.core import line_buffer
from zgpu_pandas.core.align import Alignment
from zgpu_pandas.core.line_buffer import line_sizes, write_lines

_LS = pa.large_string()


@st.composite
def parts_and_truth(draw: st.DrawFn) -> tuple[list[pa.Table], int, list[str | None]]:
    n = draw(st.integers(0, 60))
    parts, truth = [], [None] * n
    for k in range(draw(st.integers(1, 5))):
        pos = draw(st.lists(st.integers(0, max(n - 1, 0)), unique=True, max_size=n)) if n else []
        if draw(st.booleans()):
            pos.sort()  # answered in order: the zero-copy path
        vals = [f"p{k}r{p}" for p in pos]
        parts.append(pa.table({"position": pa.array(pos, pa.int64()), "text": pa.array(vals, _LS)}))
        for p, v in zip(pos, vals, strict=True):
            truth[p] = v  # a later part wins
    return parts, n, truth


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=parts_and_truth(), window=st.sampled_from([1, 3, 7, 1 << 16]), runs=st.booleans())
def test_aligned_columns_are_the_parts_in_row_order(
    case: tuple[list[pa.Table], int, list[str | None]],
    window: int,
    runs: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parts, n, truth = case
    monkeypatch.setattr(align_module, "_WINDOW", window)
    monkeypatch.setattr(align_module, "_MIN_RUNS", 10**6 if runs else 0)
    monkeypatch.setattr(align_module, "_ROWS_PER_RUN", 10**6)
    got = Alignment(parts, n).column("text")
    assert got.type == _LS and got.to_pylist() == truth


def test_rows_in_order_are_slices_of_the_parts_not_copies() -> None:
    a = pa.array([f"answer {i}" for i in range(1000)], _LS)
    parts = [
        pa.table({"position": pa.array(np.arange(500, 1000)), "text": a.slice(500)}),
        pa.table({"position": pa.array(np.arange(0, 400)), "text": a.slice(0, 400)}),
    ]
    align = Alignment(parts, 1200)
    assert align.zero_copy
    col = align.column("text")
    assert (
        col.to_pylist() == a.to_pylist()[:400] + [None] * 100 + a.to_pylist()[500:] + [None] * 200
    )
    data = {c.buffers()[2].address for c in col.chunks if c.null_count < len(c)}
    assert data == {a.buffers()[2].address}  # the parts' own text buffer


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(st.one_of(st.none(), texts), max_size=40),
    cuts=st.lists(st.integers(0, 40), max_size=4),
    keep=st.data(),
    window=st.sampled_from([1, 2, 5, 1 << 16]),
)
def test_lines_are_the_json_of_every_row_sent(
    values: list[str | None],
    cuts: list[int],
    keep: st.DataObject,
    window: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(line_buffer, "_WINDOW", window)
    bounds = sorted({0, len(values), *(c for c in cuts if c <= len(values))})
    payload = pa.chunked_array(
        [pa.array(values[a:b], _LS) for a, b in pairwise(bounds)] or [[]],
        type=_LS,
    )
    sent = [i for i, v in enumerate(values) if v is not None]
    positions = np.array(
        sorted(keep.draw(st.lists(st.sampled_from(sent), unique=True))) if sent else [],
        dtype=np.int64,
    )
    head, tail = b'","body":{"content":"', b'"}}\n'
    sizes = line_sizes(payload, positions, head=head, tail=tail, escape=True)
    lines = write_lines(payload, positions, head=head, tail=tail, escape=True, sizes=sizes)
    expected = [
        b'{"custom_id":"row-%d' % p + head + orjson.dumps(values[p])[1:-1] + tail
        for p in positions.tolist()
    ]
    assert lines.to_pylist() == expected
    assert sizes.tolist() == [len(x) for x in expected]
    for raw, p in zip(lines.to_pylist(), positions.tolist(), strict=True):
        assert orjson.loads(raw)["body"]["content"] == values[p]


def _peak_over(script: str) -> float:
    """Run ``script`` (which prints two byte counts, what was live before the step and the
    result's size) in a fresh process; the step's peak Arrow allocation beyond what was
    live before, as a multiple of the result's size."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],  # the checkout: tests.support is imported
    ).stdout.split()
    before, peak, size = (int(x) for x in out)
    return (peak - before) / size


def test_aligning_shuffled_answers_holds_the_parts_and_the_result_only() -> None:
    # a `take` over the parts joined end to end held them twice, then three times (2x here)
    ratio = _peak_over("""
        import numpy as np, pyarrow as pa
        from zgpu_pandas.core import align
        from zgpu_pandas.core.align import Alignment
        align._WINDOW = 16_384  # a window's copies small beside the column, as on 1M rows
        rng = np.random.default_rng(0)
        n = 400_000
        pos = rng.permutation(n)
        parts = [pa.table({"position": pa.array(pos[a:a + 20_000]),
                           "text": pa.array([f"answer {i:08d} " * 8 for i in pos[a:a + 20_000]],
                                            pa.large_string())})
                 for a in range(0, n, 20_000)]
        from tests.support import arrow_peak_since, arrow_pools
        before = [p.bytes_allocated() for p in arrow_pools()]
        col = Alignment(parts, n).column("text")
        print(0, arrow_peak_since(before), col.nbytes)
    """)
    assert ratio < 1.25, ratio


def test_request_lines_are_made_without_a_second_copy_of_the_prompts() -> None:
    # the whole column joined, then escaped, then joined into lines, all in Arrow's pool:
    # over 3x the prompts; now the lines are numpy's and only a window's escaped prompts and
    # lines are transient (a window here is one piece: an eighth of the column)
    ratio = _peak_over("""
        import pandas as pd, pyarrow as pa
        from zgpu_pandas.core.requests import build_requests
        n, k = 200_000, 8
        chunks = [pa.array([f'row {i}: "quoted" text\\n' * 6 for i in range(a, a + n // k)],
                           pa.string()) for a in range(0, n, n // k)]
        col = pd.arrays.ArrowStringArray(pa.chunked_array(chunks))  # pandas 2.0: string only
        df = pd.DataFrame({"q": pd.Series(col)})
        from tests.support import arrow_peak_since, arrow_pools
        before = [p.bytes_allocated() for p in arrow_pools()]
        reqs = build_requests(df, model="m", prompt="q", dedup=False)
        print(0, arrow_peak_since(before), sum(c.nbytes for c in chunks))
        assert len(reqs) == n
    """)
    assert ratio < 1.0, ratio


def test_a_request_set_holds_the_size_of_each_line_not_the_lines() -> None:
    # the lines are made a range at a time when needed (a chunk when it is uploaded): after
    # the build, what the set holds beyond the caller's column is a few numbers per line
    import tracemalloc

    import pandas as pd

    from tests.support import arrow_pools
    from zgpu_pandas.core.requests import build_requests

    n = 100_000
    col = pa.array([f"row {i}: a review of some length, " * 3 for i in range(n)], pa.large_string())
    df = pd.DataFrame({"q": pd.Series(pd.arrays.ArrowStringArray(col))}) if _takes_large() else (
        pd.DataFrame({"q": col.to_pylist()})
    )
    before = sum(p.bytes_allocated() for p in arrow_pools())
    tracemalloc.start()
    try:
        reqs = build_requests(df, model="m", prompt="q", system="be brief", dedup=False)
        numpy_held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    arrow_held = sum(p.bytes_allocated() for p in arrow_pools()) - before
    assert reqs.total_bytes > 20_000_000
    held = numpy_held + max(arrow_held, 0)
    # positions, sizes and offsets: 8 bytes each per line, and the prompts (an Arrow copy
    # only where pandas holds them as Python objects); the lines would be 100% and more
    limit = 0.3 * reqs.total_bytes + (0 if _takes_large() else col.nbytes)
    assert held < limit, (held, reqs.total_bytes)
    # and what is made on demand is the very JSONL of each chunk
    c = reqs.chunks[0]
    lines = bytes(reqs.chunk_view(c)).split(b"\n")[:-1]
    assert len(lines) == c.lines and orjson.loads(lines[-1])["custom_id"] == f"row-{c.stop - 1}"


def _takes_large() -> bool:
    import pandas as pd

    try:
        pd.arrays.ArrowStringArray(pa.chunked_array([pa.array(["x"], pa.large_string())]))
    except (TypeError, ValueError):
        return False
    return True
