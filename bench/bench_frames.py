"""Frame edges for 100,000 rows: direct pandas/Polars <-> Arrow calls versus narwhals.

A frame-agnostic core works on Arrow; what differs per frame library is the two edges:

1. **Edge IN**: the prompt column (text) and the whole frame as Arrow, from (a) a pandas
   frame with pandas' default text dtype (``str`` on pandas 3, ``object`` on pandas 2), (b) a
   pandas frame with ``string[pyarrow]`` text, (c) a Polars frame. Direct:
   ``pa.array(series, from_pandas=True)`` / ``pa.Table.from_pandas(df, preserve_index=False)``
   for pandas, ``series.to_arrow()`` / ``df.to_arrow()`` for Polars. narwhals:
   ``nw.from_native(df)``, then the column's ``.to_arrow()`` and the frame's ``.to_arrow()``.
2. **Edge OUT**: adding 9 result columns, given as Arrow arrays of the frame's length (5
   text columns: a ~200 character answer, status, error code, error, finish reason; 3 int64
   token counts with nulls on the failed rows; 1 bool). Direct: for pandas, a shallow copy
   of the frame and one ``out[name] = ...`` per column with ``pd.arrays.ArrowStringArray``
   (``string[pyarrow]``), ``pd.arrays.IntegerArray`` (``Int64``) and a numpy bool array; for
   Polars, ``df.with_columns([pl.Series(name, arr), ...])``. narwhals: ``nw.from_native(df)``
   ``.with_columns(nw.Series.from_arrow(name, arr, backend=...), ...)`` ``.to_native()``,
   the one narwhals constructor that takes Arrow arrays with nulls for every backend
   (``nw.new_series(name, arr, nw.Int64, backend="pandas")`` raises on the nulls, so it is
   timed on Polars only). One more pandas row lets narwhals attach columns built the direct
   way (wrapped with ``nw.from_native(..., series_only=True)``), which keeps the direct dtypes.
3. **import narwhals**: wall clock of a fresh ``python -c "import narwhals"`` minus
   ``python -c "pass"``; the cumulative figure ``python -X importtime`` gives for the
   ``narwhals`` package; and, timed inside a fresh interpreter that has already imported
   pandas (or Polars) and pyarrow and used the direct edges once, ``import narwhals`` and then
   its first ``from_native``, column ``to_arrow`` and ``with_columns`` (narwhals imports its
   per-backend modules on first use).

Before timing, the script checks that both ways give equal Arrow data (IN) and the same
values in the added columns (OUT: each column read back to Arrow and cast to the source type
equals the source array; the index and the original columns are unchanged), and prints the
dtypes each way produces. The variants are interleaved (A, B, A, B, ...) and each figure is
the best of ``--repeat`` samples with the garbage collector paused; a sample repeats a call
that takes under 20 ms enough times to last about 20 ms and reports the time per call.

narwhals and Polars are not dependencies of the package; install them next to it first::

    .venv/bin/pip install narwhals polars
    .venv/bin/python bench/bench_frames.py            # 100,000 rows, best of 5
    .venv/bin/python bench/bench_frames.py --rows 20000 --repeat 7
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

try:
    import narwhals as nw
    import polars as pl
except ImportError as exc:  # pragma: no cover - depends on the environment
    sys.exit(
        f"bench_frames.py needs narwhals and polars, which the package does not depend on "
        f"({exc}). Install them first: .venv/bin/pip install narwhals polars"
    )

WORDS = (  # noqa: SIM905  (reads better as one sentence)
    'great product broke after a day the shipping was slow love it "fantastic" would buy again '
    "terrible support ünïcödé 🎉 price quality battery screen\tsize fits\nwell 'quoted' café"
).split(" ")
ANSWER = (
    '{"sentiment": "positive", "topics": ["quality", "battery", "shipping"], "summary": '
    '"Le client est ravi 🎉 mais trouve la livraison lente; the screen is \\"fine\\"."} '
    'Confidence: high. Notes: ünïcödé text, quotes "like this", and a second line\nhere.'
)
PANDAS_MAJOR = int(pd.__version__.split(".", 1)[0])


# ---- data -----------------------------------------------------------------------------------


def make_columns(n: int, seed: int = 0) -> dict[str, Any]:
    """Review-like rows: an int id, a float score and 8-60 words of text."""
    rng = random.Random(seed)
    reviews = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 60))) for _ in range(n)]
    nrng = np.random.default_rng(seed)
    return {
        "review_id": np.arange(n, dtype=np.int64) + 10_000,
        "score": np.round(nrng.random(n) * 5, 2),
        "review": reviews,
    }


def make_frames(n: int) -> dict[str, Any]:
    cols = make_columns(n)
    index = pd.RangeIndex(1000, 1000 + n)  # not 0-based, as a user's frame may be
    default = pd.DataFrame(cols, index=index)
    arrow_text = default.astype({"review": "string[pyarrow]"})
    return {
        "pandas default": default,
        "pandas string[pyarrow]": arrow_text,
        "polars": pl.DataFrame(cols),
    }


def make_results(n: int, seed: int = 1) -> dict[str, pa.Array]:
    """The 9 columns a merge adds, as Arrow arrays: 2% failed rows (no answer, no counts)."""
    rng = random.Random(seed)
    failed = [rng.random() < 0.02 for _ in range(n)]
    answer, status, code, error, finish = [], [], [], [], []
    prompt_t, completion_t, total_t, shared = [], [], [], []
    for i, bad in enumerate(failed):
        if bad:
            answer.append(None)
            status.append("error")
            code.append(rng.choice(["rate_limited", "invalid_request", "server_error"]))
            error.append(f"row {i}: the request failed «{code[-1]}» after 3 tries")
            finish.append(None)
            prompt_t.append(None)
            completion_t.append(None)
            total_t.append(None)
        else:
            start = rng.randint(0, 40)
            answer.append(f"row {i}: " + ANSWER[start : start + rng.randint(180, 220)])
            status.append("ok")
            code.append(None)
            error.append(None)
            finish.append("length" if rng.random() < 0.05 else "stop")
            p, c = rng.randint(20, 90), rng.randint(5, 60)
            prompt_t.append(p)
            completion_t.append(c)
            total_t.append(p + c)
        shared.append(rng.random() < 0.1)
    text, ints = pa.string(), pa.int64()
    return {
        "response": pa.array(answer, text),
        "response_status": pa.array(status, text),
        "response_error_code": pa.array(code, text),
        "response_error": pa.array(error, text),
        "response_finish_reason": pa.array(finish, text),
        "response_prompt_tokens": pa.array(prompt_t, ints),
        "response_completion_tokens": pa.array(completion_t, ints),
        "response_total_tokens": pa.array(total_t, ints),
        "response_shared": pa.array(shared, pa.bool_()),
    }


# ---- edge IN --------------------------------------------------------------------------------


def direct_column(df: Any) -> pa.Array | pa.ChunkedArray:
    if isinstance(df, pl.DataFrame):
        return df["review"].to_arrow()
    return pa.array(df["review"], from_pandas=True)


def nw_column(df: Any) -> pa.Array | pa.ChunkedArray:
    return nw.from_native(df, eager_only=True)["review"].to_arrow()


def direct_table(df: Any) -> pa.Table:
    if isinstance(df, pl.DataFrame):
        return df.to_arrow()
    return pa.Table.from_pandas(df, preserve_index=False)


def nw_table(df: Any) -> pa.Table:
    return nw.from_native(df, eager_only=True).to_arrow()


# ---- edge OUT -------------------------------------------------------------------------------


def pandas_array(arr: pa.Array) -> Any:
    """The column the package promises: string[pyarrow], Int64 (pd.NA for missing), bool."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return pd.arrays.ArrowStringArray(pa.chunked_array([arr]))
    if pa.types.is_integer(arr.type):
        mask = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        values = np.asarray(pc.fill_null(arr, 0).to_numpy(), dtype=np.int64)
        return pd.arrays.IntegerArray(values, mask)
    return arr.to_numpy(zero_copy_only=False)  # bool, no nulls


def direct_out(df: Any, results: dict[str, pa.Array]) -> Any:
    if isinstance(df, pl.DataFrame):
        return df.with_columns([pl.Series(name, arr) for name, arr in results.items()])
    out = df.copy(deep=False)
    for name, arr in results.items():
        out[name] = pandas_array(arr)
    return out


def nw_out(df: Any, results: dict[str, pa.Array]) -> Any:
    frame = nw.from_native(df, eager_only=True)
    backend = frame.implementation
    cols = [nw.Series.from_arrow(name, arr, backend=backend) for name, arr in results.items()]
    return frame.with_columns(*cols).to_native()


NW_DTYPES = {pa.string(): nw.String, pa.int64(): nw.Int64, pa.bool_(): nw.Boolean}


def nw_out_new_series(df: Any, results: dict[str, pa.Array]) -> Any:
    frame = nw.from_native(df, eager_only=True)
    backend = frame.implementation
    cols = [
        nw.new_series(name, arr, NW_DTYPES[arr.type], backend=backend)
        for name, arr in results.items()
    ]
    return frame.with_columns(*cols).to_native()


def nw_out_wrapped(df: Any, results: dict[str, pa.Array]) -> Any:
    """narwhals attaches the columns; they are built the direct (pandas-only) way."""
    frame = nw.from_native(df, eager_only=True)
    cols = [
        nw.from_native(pd.Series(pandas_array(arr), name=name), series_only=True)
        for name, arr in results.items()
    ]
    return frame.with_columns(*cols).to_native()


def check_out(df: Any, out: Any, results: dict[str, pa.Array]) -> None:
    """The added columns hold the source values, the user's rows and columns are unchanged."""
    assert list(out.columns) == [*df.columns, *results], list(out.columns)
    if isinstance(df, pl.DataFrame):
        assert out.select(df.columns).equals(df)
        got = {name: out[name].to_arrow() for name in results}
    else:
        assert out.index.equals(df.index)
        pd.testing.assert_frame_equal(out[list(df.columns)], df)
        got = {name: pa.array(out[name], from_pandas=True) for name in results}
    for name, arr in results.items():
        back = got[name]
        back = back.combine_chunks() if isinstance(back, pa.ChunkedArray) else back
        assert back.cast(arr.type).equals(arr), name


def describe_dtype(dtype: Any) -> str:
    if isinstance(dtype, pd.StringDtype):
        na = "pd.NA" if dtype.na_value is pd.NA else "NaN"
        return f"{dtype} ({dtype.storage}, {na} for missing)"
    return str(dtype)


def out_dtypes(out: Any, results: dict[str, pa.Array]) -> str:
    """The dtypes of the added text / int / bool columns, e.g. "string / Int64 / bool"."""
    kinds: dict[str, set[str]] = {"text": set(), "int": set(), "bool": set()}
    for name, arr in results.items():
        kind = "int" if pa.types.is_integer(arr.type) else "bool"
        kind = "text" if pa.types.is_string(arr.type) else kind
        dtype = out.schema[name] if isinstance(out, pl.DataFrame) else out[name].dtype
        kinds[kind].add(describe_dtype(dtype))
    return " / ".join(", ".join(sorted(v)) for v in kinds.values())


# ---- harness --------------------------------------------------------------------------------


def _calls_per_sample(fn: Callable[[], Any], target: float = 0.02) -> int:
    t0 = time.perf_counter()
    fn()
    once = time.perf_counter() - t0
    return max(1, min(10_000, int(target / max(once, 1e-7))))


def interleaved(variants: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Best time per call of each variant; samples taken A, B, A, B, ..."""
    loops = {name: _calls_per_sample(fn) for name, fn in variants.items()}
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeat):
        for name, fn in variants.items():
            k = loops[name]
            gc.collect()
            gc.disable()
            try:
                t0 = time.perf_counter()
                for _ in range(k):
                    fn()
                best[name] = min(best[name], (time.perf_counter() - t0) / k)
            finally:
                gc.enable()
    return best


FIRST_USE = """
import sys, time
import pyarrow as pa
if sys.argv[1] == "pandas":  # the direct edges once first, so only narwhals is new below
    import pandas as pd
    df = pd.DataFrame({"a": ["x", "y"]})
    pa.array(df["a"], from_pandas=True)
    df.assign(c=pd.array([1, None], dtype="Int64"))
else:
    import polars as pl
    df = pl.DataFrame({"a": ["x", "y"]})
    df["a"].to_arrow()
    df.with_columns(pl.Series("c", pa.array([1, None])))
t0 = time.perf_counter()
import narwhals as nw
t1 = time.perf_counter()
frame = nw.from_native(df, eager_only=True)
frame["a"].to_arrow()
frame.with_columns(nw.Series.from_arrow("b", pa.array([1, None]), backend=frame.implementation))
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def import_costs(repeat: int) -> dict[str, float]:
    """What importing (and first using) narwhals adds to a fresh interpreter, best of
    ``repeat`` for each figure."""
    repeat = max(repeat, 7)
    best: dict[str, float] = {}

    def keep(name: str, secs: float) -> None:
        best[name] = min(best.get(name, float("inf")), secs)

    for _ in range(repeat):
        for name, code in (("bare", "pass"), ("narwhals", "import narwhals")):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            keep(name, time.perf_counter() - t0)
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import narwhals"],
            check=True,
            capture_output=True,
            text=True,
        )
        for line in proc.stderr.splitlines():
            m = re.match(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|\s*narwhals$", line)
            if m:
                keep("importtime", int(m.group(1)) / 1e6)
        for lib in ("pandas", "polars"):
            proc = subprocess.run(
                [sys.executable, "-c", FIRST_USE, lib], check=True, capture_output=True, text=True
            )
            t_import, t_first = map(float, proc.stdout.split())
            keep(f"{lib} import", t_import)
            keep(f"{lib} first", t_first)
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, narwhals; print(sorted({m.split('.')[0] for m in sys.modules}"
            " & {'pandas', 'polars', 'pyarrow', 'numpy'}))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    print(
        "of pandas, polars, pyarrow, numpy, `import narwhals` alone loads:", loaded.stdout.strip()
    )
    return {
        '`python -c "import narwhals"` minus `python -c "pass"`': (best["narwhals"] - best["bare"]),
        "`-X importtime`, cumulative for `narwhals`": best["importtime"],
        "`import narwhals` in a process with pandas and pyarrow loaded": best["pandas import"],
        "then the first from_native, column to_arrow, with_columns (pandas)": best["pandas first"],
        "`import narwhals` in a process with polars and pyarrow loaded": best["polars import"],
        "then the first from_native, column to_arrow, with_columns (polars)": best["polars first"],
    }


def fmt_ms(t: float) -> str:
    ms = t * 1e3
    if ms < 1:
        return f"{ms:.3f} ms"
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    n, repeat = args.rows, args.repeat

    frames = make_frames(n)
    results = make_results(n)
    print(
        f"{n:,} rows, best of {repeat}, interleaved; Python {platform.python_version()},"
        f" pandas {pd.__version__}, pyarrow {pa.__version__}, polars {pl.__version__},"
        f" narwhals {nw.__version__}, numpy {np.__version__}, {platform.machine()}"
    )
    print()

    rows: list[tuple[str, str, str, float, float]] = []
    notes: list[str] = []
    for label, df in frames.items():
        # edge IN: same Arrow data both ways, checked before timing
        a, b = direct_column(df), nw_column(df)
        assert a.type == b.type and a.equals(b), (label, a.type, b.type)
        ta, tb = direct_table(df), nw_table(df)
        assert ta.equals(tb), (label, ta.schema, tb.schema)
        text_dtype = (
            df.schema["review"] if label == "polars" else describe_dtype(df["review"].dtype)
        )
        notes.append(
            f"IN  {label:24} text dtype {text_dtype} -> column {a.type} ({type(a).__name__}),"
            f" table {ta.schema.field('review').type}; the same both ways"
        )
        t = interleaved(
            {"direct": lambda df=df: direct_column(df), "nw": lambda df=df: nw_column(df)},
            repeat,
        )
        rows.append(("IN: prompt column", label, "`.to_arrow()`", t["direct"], t["nw"]))
        t = interleaved(
            {"direct": lambda df=df: direct_table(df), "nw": lambda df=df: nw_table(df)},
            repeat,
        )
        rows.append(("IN: whole frame", label, "`.to_arrow()`", t["direct"], t["nw"]))

        # edge OUT
        others: dict[str, Callable[[Any, dict[str, pa.Array]], Any]] = {
            "`Series.from_arrow`": nw_out
        }
        if label == "polars":
            others["`new_series(.., dtype)`"] = nw_out_new_series
        else:
            others["columns built directly"] = nw_out_wrapped
            try:
                nw_out_new_series(df, results)
                notes.append(f"OUT {label:24} new_series(name, arr, nw.Int64): no error")
            except Exception as exc:
                notes.append(
                    f"OUT {label:24} new_series(name, arr, nw.Int64) with nulls raises"
                    f" {type(exc).__name__}: {str(exc).splitlines()[0][:70]}"
                )
            text = nw.new_series("t", results["response"], nw.String, backend="pandas")
            notes.append(
                f"OUT {label:24} new_series(name, arr, nw.String) ->"
                f" {describe_dtype(text.to_native().dtype)}"
            )
            counts = nw.Series.from_arrow("c", results["response_total_tokens"], backend="pandas")
            try:
                counts.cast(nw.Int64)
                notes.append(f"OUT {label:24} Series.from_arrow(..).cast(nw.Int64): no error")
            except Exception as exc:
                notes.append(
                    f"OUT {label:24} Series.from_arrow(..).cast(nw.Int64) raises"
                    f" {type(exc).__name__}"
                )
        ref = direct_out(df, results)
        check_out(df, ref, results)
        notes.append(f"OUT {label:24} direct -> {out_dtypes(ref, results)}")
        for how, fn in others.items():
            out = fn(df, results)
            check_out(df, out, results)
            notes.append(f"OUT {label:24} narwhals {how} -> {out_dtypes(out, results)}")
        if label != "polars":  # narwhals rebuilds the pandas frame with a concat of all columns
            shared = np.shares_memory(out["score"].to_numpy(), df["score"].to_numpy())
            notes.append(f"OUT {label:24} narwhals result shares the user's float column: {shared}")
        variants: dict[str, Callable[[], Any]] = {"direct": lambda df=df: direct_out(df, results)}
        for how, fn in others.items():
            variants[how] = lambda df=df, fn=fn: fn(df, results)
        t = interleaved(variants, repeat)
        for how in others:
            rows.append(("OUT: 9 columns", label, how, t["direct"], t[how]))

    # a pandas frame whose index is not a RangeIndex (e.g. ids as the index)
    keyed = frames["pandas default"].set_axis(pd.Index([f"r{i:07d}" for i in range(n)]))
    names = nw_table(keyed).column_names
    notes.append(f"IN  pandas, string index      narwhals frame .to_arrow() columns: {names}")
    # a pandas frame with a duplicate name among its other columns
    dup = frames["pandas default"].set_axis(["x", "x", "review"], axis=1)
    direct_column(dup)
    try:
        nw.from_native(dup, eager_only=True)
        notes.append("IN  pandas, duplicate names   nw.from_native: no error")
    except Exception as exc:
        notes.append(
            f"IN  pandas, duplicate names   direct column read works; nw.from_native raises"
            f" {type(exc).__name__}"
        )
    # Polars text is stored as string views: the default to_arrow() copies into large_string
    series = frames["polars"]["review"]
    newest = pl.CompatLevel.newest()
    t = interleaved(
        {
            "large": lambda: series.to_arrow(),
            "view": lambda: series.to_arrow(compat_level=newest),
        },
        repeat,
    )
    notes.append(
        f"IN  polars column              to_arrow() {fmt_ms(t['large'])} (large_string),"
        f" to_arrow(compat_level=newest) {fmt_ms(t['view'])}"
        f" ({series.to_arrow(compat_level=newest).type}); narwhals has no such option"
    )

    print("| edge | frame | narwhals way | direct | narwhals | narwhals / direct |")
    print("|---|---|---|---:|---:|---:|")
    for edge, label, how, direct, other in rows:
        print(
            f"| {edge} | {label} | {how} | {fmt_ms(direct)} | {fmt_ms(other)} |"
            f" {other / direct:.2f}x |"
        )
    print()
    costs = import_costs(repeat)
    print()
    print(f"| import cost (fresh interpreter) | best of {max(repeat, 7)} |")
    print("|---|---:|")
    for what, secs in costs.items():
        print(f"| {what} | {secs * 1e3:.1f} ms |")
    print()
    print("dtypes (text / int / bool for OUT):")
    for line in notes:
        print(" ", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
