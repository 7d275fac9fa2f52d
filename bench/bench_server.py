"""Benchmarks of the local server (issue 2's two figures).

1. Create-time validation of a 50,000-line, ~100 MB input, against parsing the same file
   with orjson alone (target: validation <= 2x the orjson-only time).
2. The built-in engine running a 50,000-line batch on a real LocalServer over loopback
   (target: >= 20,000 lines/s), timed from the create response to ``completed``; the
   create call (which validates the whole file) is reported separately.

Run: ``/work/venv/bin/python bench/bench_server.py [--lines 50000] [--line-bytes 2000]``.
Prints a Markdown table row set for bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from zgpu_pandas._jsonl import validate_stream
from zgpu_pandas.server import LocalServer

HEADERS = {"x-api-key": "bench", "x-project-id": "bench"}


def make_input(path: Path, lines: int, line_bytes: int) -> int:
    """Write ``lines`` chat request lines of about ``line_bytes`` bytes each."""
    filler = "lorem ipsum dolor sit amet " * (line_bytes // 27 + 1)
    with open(path, "wb") as f:
        for i in range(lines):
            text = f"Review {i}: " + filler[: max(0, line_bytes - 190)]
            f.write(
                orjson.dumps(
                    {
                        "custom_id": f"row-{i}",
                        "method": "POST",
                        "url": "/v1/chat/completions",
                        "body": {
                            "model": "LFM2.5-1.2B-Instruct",
                            "temperature": 0,
                            "messages": [{"role": "user", "content": text}],
                        },
                    }
                )
                + b"\n"
            )
    return path.stat().st_size


def orjson_only(path: Path) -> float:
    t = time.perf_counter()
    with open(path, "rb", buffering=1 << 20) as f:
        for raw in f:
            orjson.loads(raw)
    return time.perf_counter() - t


def validation(path: Path) -> float:
    t = time.perf_counter()
    with open(path, "rb", buffering=1 << 20) as f:
        result = validate_stream(f)
    elapsed = time.perf_counter() - t
    assert result.ok, result.error
    return elapsed


def engine_run(path: Path) -> tuple[float, float, int, float]:
    """(create seconds, create->completed seconds, lines, upload seconds) on a fresh
    LocalServer."""
    with LocalServer() as srv, httpx.Client(base_url=srv.url, headers=HEADERS, timeout=300) as c:
        tu = time.perf_counter()
        with open(path, "rb") as f:
            r = c.post("/v1/files", files={"file": ("input.jsonl", f)}, data={"purpose": "batch"})
        r.raise_for_status()
        t0 = time.perf_counter()
        upload = t0 - tu
        r = c.post(
            "/v1/batches",
            json={"input_file_id": r.json()["id"], "endpoint": "/v1/chat/completions"},
        )
        r.raise_for_status()
        t1 = time.perf_counter()
        bid = r.json()["id"]
        while True:
            b = c.get(f"/v1/batches/{bid}").json()
            if b["status"] in ("completed", "failed", "expired", "cancelled"):
                break
            time.sleep(0.01)
        t2 = time.perf_counter()
        assert b["status"] == "completed" and b["request_counts"]["completed"] == b["request_counts"]["total"], b
        return t1 - t0, t2 - t1, b["request_counts"]["total"], upload


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=50_000)
    ap.add_argument("--line-bytes", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.jsonl"
        size = make_input(path, args.lines, args.line_bytes)
        print(f"input: {args.lines} lines, {size / 1e6:.1f} MB, python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs")
        orjson_only(path)  # warm the page cache
        base = min(orjson_only(path) for _ in range(args.repeat))
        val = min(validation(path) for _ in range(args.repeat))
        runs = [engine_run(path) for _ in range(args.repeat)]
        create = min(r[0] for r in runs)
        run = min(r[1] for r in runs)
        lines = runs[0][2]
        upload = min(r[3] for r in runs)
        print()
        print("| measure | result | target |")
        print("|---|---|---|")
        print(f"| orjson.loads of every line (baseline) | {base:.3f} s | |")
        print(f"| create-time validation (`_jsonl.validate_stream`) | {val:.3f} s "
              f"({val / base:.2f}x baseline) | <= 2x |")
        print(f"| `POST /v1/files` upload over loopback | {upload:.3f} s "
              f"({size / 1e6 / upload:,.0f} MB/s) | |")
        print(f"| `POST /v1/batches` incl. validation, over HTTP | {create:.3f} s | |")
        print(f"| built-in engine, create -> completed | {run:.3f} s = "
              f"{lines / run:,.0f} lines/s | >= 20,000 lines/s |")
        print(f"| built-in engine, incl. create | {lines / (run + create):,.0f} lines/s | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
