"""Dask (``ddf.zgpu.batch_chat``) against the in-memory accessor and streaming ``run``, on
the same Parquet input: wall clock, rows/s and peak memory per process.

One N-row Parquet file of reviews (bench_stream.py's input: an ``int64`` id, a rating and a
review of about 110 characters, row groups of 50,000) goes through one local server
(built-in engine, in this process) three ways, each in a child process of its own with a
fresh journal:

- **dask**: ``dd.read_parquet`` (one partition per row group) → ``ddf.zgpu.batch_chat`` →
  ``to_parquet("out/")`` on a ``distributed.LocalCluster`` of W worker processes (2 threads
  each), started by the child. Peak memory: the child's (the client's) and the largest
  worker's, each its own ``ru_maxrss``;
- **stream**: ``zgpu-pandas run in.parquet -o out/`` (parts of 50,000 rows);
- **in-memory**: ``pd.read_parquet`` → ``df.zgpu.batch_chat`` → ``to_parquet``.

Run::

    python bench/bench_dask.py --rows 1000000 --workers 2
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from zgpu_pandas.server import LocalServer

_spec = importlib.util.spec_from_file_location("bench_stream", Path(__file__).with_name("bench_stream.py"))
assert _spec is not None and _spec.loader is not None
bench_stream = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_stream)

MODEL = bench_stream.MODEL

DASK = """
import resource, sys
import dask.dataframe as dd
import distributed
import zgpu_pandas  # noqa: F401
src, dest, url, workers = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

if __name__ == "__main__":
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=2, processes=True,
                                  dashboard_address=None, silence_logs=40) as lc, \\
            distributed.Client(lc) as client:
        ddf = dd.read_parquet(src, split_row_groups=True)
        out = ddf.zgpu.batch_chat("review", model="LFM2.5-1.2B-Instruct", base_url=url,
                                  api_key="k", project_id="p")
        out.to_parquet(dest)
        worker_peak = max(client.run(peak_mb).values())
        print(f"PEAKS {peak_mb():.0f} {worker_peak:.0f} {ddf.npartitions}", flush=True)
"""


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one child process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:4]} failed")
    return wall, usage.ru_maxrss / 1024, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only-dask", action="store_true")
    args = ap.parse_args()
    n = args.rows
    rows = []
    with tempfile.TemporaryDirectory() as tmp_name, LocalServer(
        data_dir=Path(tmp_name) / "server", require_project_id=False
    ) as srv:
        tmp = Path(tmp_name)
        size = bench_stream.make_input(tmp / "in.parquet", n)
        src = str(tmp / "in.parquet")

        env = {**os.environ, "ZGPU_STATE_DIR": str(tmp / "state-dask")}
        cmd = [sys.executable, "-c", DASK, src, f"{tmp / 'out-dask'}/", srv.url, str(args.workers)]
        wall, rss, out = run_child(cmd, env)
        client_peak, worker_peak, parts = out.split("PEAKS", 1)[1].split()
        assert pq.ParquetDataset(tmp / "out-dask").read(columns=["id"]).num_rows == n
        rows.append((f"dask, {args.workers} workers x 2 threads, {parts} partitions", wall,
                     f"client {client_peak} MB, largest worker {worker_peak} MB"))
        if not args.only_dask:
            env = {**os.environ, "ZGPU_API_KEY": "k", "ZGPU_STATE_DIR": str(tmp / "state-stream")}
            cmd = [sys.executable, "-m", "zgpu_pandas", "run", src, "--prompt-col", "review",
                   "--model", MODEL, "-o", f"{tmp / 'out-stream'}/", "-q", "--base-url", srv.url,
                   "--project-id", "p"]
            wall, rss, _ = run_child(cmd, env)
            rows.append(("stream (`run`, -o out/)", wall, f"{rss:,.0f} MB"))
            env = {**os.environ, "ZGPU_STATE_DIR": str(tmp / "state-memory")}
            cmd = [sys.executable, "-c", bench_stream.IN_MEMORY, src, str(tmp / "out.parquet"),
                   srv.url, str(tmp / "sizes.txt")]
            wall, rss, _ = run_child(cmd, env)
            rows.append(("in-memory accessor", wall, f"{rss:,.0f} MB"))
    print(f"{n:,} rows, input {size / 1e6:.1f} MB Parquet; Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs")
    print("| path | rows | wall clock | rows/s | peak RSS |")
    print("|---|---:|---:|---:|---|")
    for name, wall, mem in rows:
        print(f"| {name} | {n:,} | {wall:.1f} s | {n / wall:,.0f} | {mem} |")


if __name__ == "__main__":
    main()
