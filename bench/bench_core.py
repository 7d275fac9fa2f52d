"""The frame-agnostic core against 0.1, and Polars beside pandas: request building and result
merging for 100,000 rows, every variant in the same run.

Variants (same data as bench_accessor.py: review-like prompts with escapes, a system prompt,
``temperature=0``; a service-shaped output file in a shuffled order):

- **0.1** (pandas): the code of a baseline git revision (default ``3b3d591``, the last commit
  of 0.1), checked out into a temporary worktree and imported from there;
- **now** (pandas): this checkout, through the core (``Rows`` in, Arrow answers out);
- **now** (Polars): the same frame as a ``polars.DataFrame`` (only where Polars is installed).

Build: frame → the JSONL payload of every batch (``build_requests`` and ``chunk_bytes``).
Merge: output file → ``ResultsTable`` → the caller's frame plus the nine answer columns
(``merge_results`` for pandas, ``PolarsOutput.merge`` for Polars). Each variant runs in its own
process (the two versions cannot share one), the processes alternate ``--rounds`` times, and
each figure is the best over all rounds of ``--repeat`` timings with the garbage collector
paused. Before timing, the script checks that every variant produces the same request bytes and
the same answers.

Run::

    .venv/bin/python bench/bench_core.py                 # 100,000 rows
    .venv/bin/python bench/bench_core.py --rows 20000 --baseline HEAD~5
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


# ---- worker: one variant, in its own process ---------------------------------------------------


def worker(lib: str, rows: int, repeat: int) -> dict[str, Any]:
    import io

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_accessor import MODEL, SYSTEM, best_of, make_frame, make_output

    try:  # now
        from zgpu_pandas.core.requests import build_requests
        from zgpu_pandas.core.results import ResultsTable
        from zgpu_pandas.frames._pandas_columns import merge_results
    except ImportError:  # 0.1
        from zgpu_pandas._requests import build_requests  # type: ignore[no-redef]
        from zgpu_pandas._results import ResultsTable, merge_results  # type: ignore[no-redef]
    import zgpu_pandas

    df = make_frame(rows)
    data = b"\n".join(make_output(rows)) + b"\n"
    if lib == "polars":
        import polars as pl

        from zgpu_pandas.frames._polars_io import PolarsOutput

        frame: Any = pl.from_pandas(df.reset_index(drop=True))

        def merge() -> Any:
            table = ResultsTable(rows)
            table.add_file(io.BytesIO(data))
            return PolarsOutput(frame).merge(table.answers(), {})
    else:
        frame = df

        def merge() -> Any:
            table = ResultsTable(rows)
            table.add_file(io.BytesIO(data))
            return merge_results(df, table)

    def build() -> bytes:
        reqs = build_requests(frame, prompt="review", model=MODEL, system=SYSTEM, temperature=0)
        return b"".join(reqs.chunk_bytes(c) for c in reqs.chunks)

    out = merge()
    answers = out["response"].to_list() if lib == "polars" else out["response"].tolist()
    return {
        "build": best_of(build, repeat),
        "merge": best_of(merge, repeat),
        "build_sha256": hashlib.sha256(build()).hexdigest(),
        "answers_sha256": hashlib.sha256(json.dumps(answers).encode()).hexdigest(),
        "source": str(Path(zgpu_pandas.__file__).parent.parent),
    }


# ---- driver -------------------------------------------------------------------------------------


def _run(lib: str, where: Path, rows: int, repeat: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(where)}
    cmd = [sys.executable, __file__, "--worker", lib, "--rows", str(rows), "--repeat", str(repeat)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=where, check=True)
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if Path(result["source"]).resolve() != where.resolve():
        raise SystemExit(f"the {lib} worker imported zgpu_pandas from {result['source']}, not {where}")
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", default="3b3d591", help="git revision of the baseline")
    ap.add_argument("--worker", choices=["pandas", "polars"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.rows, args.repeat)))
        return 0
    try:
        import polars  # noqa: F401

        have_polars = True
    except ImportError:
        have_polars = False
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.baseline],
            cwd=ROOT, check=True, capture_output=True,
        )
        try:
            variants = [("0.1", "pandas", base), ("now", "pandas", ROOT)]
            if have_polars:
                variants.append(("now", "polars", ROOT))
            best: dict[tuple[str, str], dict[str, Any]] = {}
            for _ in range(args.rounds):  # interleaved: A, B, C, A, B, C, ...
                for name, lib, where in variants:
                    r = _run(lib, where, args.rows, args.repeat)
                    prev = best.get((name, lib))
                    if prev is not None:
                        r["build"] = min(r["build"], prev["build"])
                        r["merge"] = min(r["merge"], prev["merge"])
                    best[(name, lib)] = r
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    ref = best[("0.1", "pandas")]
    for key, r in best.items():
        assert r["build_sha256"] == ref["build_sha256"], f"{key}: other request bytes"
        assert r["answers_sha256"] == ref["answers_sha256"], f"{key}: other answers"
    print(
        f"{args.rows:,} rows; best of {args.rounds} rounds x {args.repeat}; Python "
        f"{platform.python_version()}, {platform.machine()}; baseline {args.baseline}"
    )
    print()
    print("| step | 0.1 (pandas) | now (pandas) | now / 0.1 |" + (" now (Polars) | Polars / 0.1 |" if have_polars else ""))
    print("|---|---:|---:|---:|" + ("---:|---:|" if have_polars else ""))
    for step in ("build", "merge"):
        old, new = ref[step], best[("now", "pandas")][step]
        row = f"| {step} | {old * 1e3:.0f} ms | {new * 1e3:.0f} ms | {new / old:.2f}x |"
        if have_polars:
            pl_t = best[("now", "polars")][step]
            row += f" {pl_t * 1e3:.0f} ms | {pl_t / old:.2f}x |"
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
