"""Streaming file jobs against the in-memory accessor: peak memory and rows/s.

One N-row Parquet file of reviews (an ``int64`` id, a rating and a review of about 90
characters) goes through the local ZeroGPU-compatible server (built-in engine, run in this
process) twice, each time in a child process of its own:

- **stream**: ``zgpu-pandas run in.parquet --prompt-col review -o out/`` (parts of
  ``--part-rows`` rows, a Parquet dataset out);
- **in-memory**: ``pd.read_parquet`` → ``df.zgpu.batch_chat("review", ...)`` →
  ``out.to_parquet``, the same job through the accessor.

Peak resident memory is the child's ``ru_maxrss`` (``os.wait4``), so the server's own memory
is not counted (the in-memory child also reports its own ``ru_maxrss`` before writing the
output, the job's peak without the caller's ``to_parquet``); rows/s is N over the child's wall-clock time, from start to the output
written. Each child has a fresh journal (``ZGPU_STATE_DIR``), so nothing is resumed.

With ``--check-cost`` it also times, each in a child process, what the whole-input check
before the first upload costs (``_stream_check.check_parts``: every part read and its
requests built, nothing sent) next to reading the parts alone and to the whole ``run`` (which
includes the check).

With ``--trace`` the stream's child also writes, at the end of every part of each pass, its
resident memory then and the highest seen during the part (``/proc/self/statm`` read every
10 ms by a thread; Linux only), and the slope over the parts is printed: a run whose memory
grows with the input shows it after a few parts, long before a big input's peak.

Run::

    python bench/bench_stream.py --rows 1000000
    python bench/bench_stream.py --rows 1000000 --skip-memory-path --trace
    python bench/bench_stream.py --rows 200000 --part-rows 25000 --skip-memory-path
    python bench/bench_stream.py --rows 1000000 --skip-memory-path --check-cost
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zgpu_pandas.server import LocalServer

MODEL = "LFM2.5-1.2B-Instruct"
_SENTENCE = (
    "great product broke after a day the shipping was slow love it fantastic would buy again "
    "terrible support price quality battery screen size fits well"
)
WORDS = np.array(_SENTENCE.split(" "))

IN_MEMORY = """
import resource, sys
import pandas as pd
import zgpu_pandas  # noqa: F401
src, dest, url, sizes = sys.argv[1:5]
df = pd.read_parquet(src)
out = df.zgpu.batch_chat("review", model="LFM2.5-1.2B-Instruct", base_url=url, api_key="k",
                         project_id="p", progress=False)
job_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB
out.to_parquet(dest)
with open(sizes, "w") as fh:  # the frames' own sizes, for the peak's ratio to them
    fh.write(f"{df.memory_usage(deep=True).sum()} {out.memory_usage(deep=True).sum()} {job_peak}")
"""


# the input's parts read (as the run reads them), or read and checked, nothing sent
CHECK_COST = """
import sys
from pathlib import Path
from zgpu_pandas import _stream_check
from zgpu_pandas._stream_run import StreamRun
from zgpu_pandas.core.spec import ChatSpec, Connection
src, what, part_rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
spec = ChatSpec(prompt="review", model="LFM2.5-1.2B-Instruct")
run = StreamRun([Path(src)], "unused/", spec, Connection(), part_rows=part_rows)
if what == "read":
    for table, _ in run._located_parts():
        table.to_pandas()
else:
    _stream_check.check_parts(run._located_parts(), spec)
"""


# the command, with a thread sampling resident memory and a line written at each part's end
TRACED = """
import os, sys, threading, time
from zgpu_pandas.core import checkpoints
from zgpu_pandas.cli import main
page, log, high = os.sysconf("SC_PAGE_SIZE"), open(os.environ["BENCH_TRACE"], "w"), [0]
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * page
def sample():
    while True:
        high[0] = max(high[0], rss())
        time.sleep(0.01)
def at(stage, checkpoint=checkpoints.checkpoint):
    if stage.startswith(("after_submit:", "after_part:")):
        log.write(f"{stage} {rss()} {high[0]}\\n")
        log.flush()
        high[0] = 0
    checkpoint(stage)
checkpoints.checkpoint = at
threading.Thread(target=sample, daemon=True).start()
raise SystemExit(main(sys.argv[1:]))
"""


def trace_summary(path: Path) -> list[str]:
    """Per pass: memory at the end of the first and last parts, the highest during them, and
    the slope (MB per part, least squares from the second part on)."""
    rows: dict[str, list[tuple[float, float]]] = {"after_submit": [], "after_part": []}
    for line in path.read_text().splitlines():
        stage, now, high = line.split()
        rows[stage.split(":")[0]].append((int(now) / 1e6, int(high) / 1e6))
    out = []
    for key, name in (("after_submit", "submit"), ("after_part", "collect")):
        xs = rows[key]
        if len(xs) < 3:
            continue
        ends, highs = np.array([x[0] for x in xs]), np.array([x[1] for x in xs])
        k = np.arange(len(xs))
        slope_end = np.polyfit(k[1:], ends[1:], 1)[0]
        slope_high = np.polyfit(k[1:], highs[1:], 1)[0]
        out.append(
            f"{name}: {len(xs)} parts; at a part's end {ends[0]:.0f} -> {ends[-1]:.0f} MB "
            f"({slope_end:+.2f} MB/part); highest in a part {highs[0]:.0f} -> {highs[-1]:.0f} "
            f"MB (max {highs.max():.0f}, {slope_high:+.2f} MB/part)"
        )
    return out


def make_input(path: Path, n: int, *, group: int = 50_000, seed: int = 0) -> int:
    """Write the input in row groups (the bench process never holds all of it)."""
    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, n, group):
        m = min(group, n - start)
        words = WORDS[rng.integers(0, len(WORDS), size=(m, 16))]
        reviews = [f"{start + i}: " + " ".join(row) for i, row in enumerate(words)]
        table = pa.table({
            "id": pa.array(np.arange(start, start + m, dtype=np.int64)),
            "rating": pa.array(rng.integers(1, 6, size=m, dtype=np.int64)),
            "review": pa.array(reviews, pa.string()),
        })
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()
    return path.stat().st_size


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 2):
        raise SystemExit(f"{cmd[:4]} failed with exit code {proc.returncode}")
    return wall, usage.ru_maxrss / 1024  # Linux: kilobytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--part-rows", type=int, default=50_000)
    ap.add_argument("--skip-memory-path", action="store_true", help="only the streaming run")
    ap.add_argument(
        "--trace", action="store_true",
        help="sample the stream's memory in each part (Linux), print the slope over the parts",
    )
    ap.add_argument(
        "--check-cost", action="store_true",
        help="also time the whole-input check alone and a plain read of the parts",
    )
    args = ap.parse_args()
    n = args.rows
    with tempfile.TemporaryDirectory() as tmp_name, LocalServer(
        data_dir=Path(tmp_name) / "server", require_project_id=False
    ) as srv:
        tmp = Path(tmp_name)
        size = make_input(tmp / "in.parquet", n)
        rows = []
        frames: list[float] = []
        env = {**os.environ, "ZGPU_API_KEY": "k", "ZGPU_STATE_DIR": str(tmp / "state-stream")}
        head = [sys.executable, "-c", TRACED] if args.trace else [
            sys.executable, "-m", "zgpu_pandas"]
        if args.trace:
            env["BENCH_TRACE"] = str(tmp / "trace.txt")
        cmd = [*head, "run", str(tmp / "in.parquet"),
               "--prompt-col", "review", "--model", MODEL, "-o", f"{tmp / 'out'}/", "-q",
               "--part-rows", str(args.part_rows), "--base-url", srv.url, "--project-id", "p"]
        wall, rss = measure(cmd, env)
        assert pq.ParquetDataset(tmp / "out").read(columns=["id"]).num_rows == n
        rows.append(("stream (`run`, -o out/)", wall, rss))
        traced = trace_summary(tmp / "trace.txt") if args.trace else []
        if args.check_cost:
            for what, name in [("read", "read the parts only"), ("check", "the check alone")]:
                cmd = [sys.executable, "-c", CHECK_COST, str(tmp / "in.parquet"), what,
                       str(args.part_rows)]
                wall, rss = measure(cmd, env)
                rows.append((name, wall, rss))
        if not args.skip_memory_path:
            env = {**os.environ, "ZGPU_STATE_DIR": str(tmp / "state-memory")}
            cmd = [sys.executable, "-c", IN_MEMORY, str(tmp / "in.parquet"),
                   str(tmp / "out.parquet"), srv.url, str(tmp / "sizes")]
            wall, rss = measure(cmd, env)
            rows.append(("in-memory accessor", wall, rss))
            frames = [int(x) / 1e6 for x in (tmp / "sizes").read_text().split()]
    print(f"{n:,} rows, input {size / 1e6:.1f} MB Parquet, parts of {args.part_rows:,} rows; "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print("| path | rows | wall clock | rows/s | peak RSS of the job's process |")
    print("|---|---:|---:|---:|---:|")
    for name, wall, rss in rows:
        print(f"| {name} | {n:,} | {wall:.1f} s | {n / wall:,.0f} | {rss:,.0f} MB |")
    for line in traced:
        print(line)
    if args.check_cost:
        walls = {name: wall for name, wall, _ in rows}
        check, read = walls["the check alone"], walls["read the parts only"]
        print(f"check / read: {check / read:.2f}x; check / whole run: "
              f"{check / walls['stream (`run`, -o out/)']:.0%}")
    if not args.skip_memory_path:
        # memory_usage(deep=True): the result frame counts the input columns it shares
        both = frames[0] + frames[1]
        print(f"in-memory: input frame {frames[0]:,.0f} MB, result frame {frames[1]:,.0f} MB; "
              f"peak = {rows[-1][2] / both:.2f}x their sum; the job's own peak (read and "
              f"batch_chat, before to_parquet) {frames[2]:,.0f} MB = {frames[2] / both:.2f}x")


if __name__ == "__main__":
    main()
