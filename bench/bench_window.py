"""The local server's upstream engine: sliding window against the old chunked engine.

A small asyncio HTTP server plays the upstream model server: every chat request is answered
after a latency drawn uniformly from 50-500 ms (drawn from the request's prompt, so both
engines see the same latency for the same line), and it counts the requests in flight. A
``LocalServer`` with ``engine="upstream"`` and ``--concurrency 64`` runs one batch of N lines
against it. Measured, from the first upstream request to the last upstream answer:

* throughput (lines/s) as a fraction of the ideal, concurrency / mean latency (the mean of
  the latencies actually drawn for the batch's lines);
* the peak number of requests in flight at the upstream (must equal the concurrency);
* then the HTTP client alone: CPU time per call of httpx (one pool of 64 connections, as the
  old engine used it) and of the engine's own client, ``server/_wire.py``, through the same
  window against the same upstream.

The old engine is the code of ``--baseline`` (default: ``main``) checked out into a
temporary git worktree and run in its own process (two versions of the package cannot share
one); each process prints where it imported the package from. Variants alternate
(old, new, old, new, ...) for ``--rounds`` rounds.

Run: ``.venv/bin/python bench/bench_window.py [--lines 3000] [--concurrency 64]
[--rounds 2] [--baseline main]``. Prints a Markdown table for bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from _upstream import completion, serve_connection

ROOT = Path(__file__).resolve().parent.parent
HEADERS = {"x-api-key": "bench", "x-project-id": "bench"}
LOW, HIGH = 0.05, 0.5


def latency_of(prompt: bytes) -> float:
    return random.Random(zlib.crc32(prompt)).uniform(LOW, HIGH)


class Upstream:
    """Keep-alive HTTP/1.1 chat endpoint with a per-prompt latency; counts in flight.
    ``GET /stats`` answers the peak in flight and the wall-clock times of the first request
    and the last answer. Runs in a process of its own (``--upstream``), so that it takes no
    CPU time or GIL from the server being measured."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.first: float | None = None
        self.last = 0.0

    async def serve(self) -> None:
        server = await asyncio.start_server(self._client, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()

    def _stats(self) -> bytes:
        return json.dumps({"peak": self.peak, "first": self.first, "last": self.last}).encode()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(reader, writer, self._answer)

    async def _answer(self, head: bytes, body: bytes) -> bytes:
        if head.startswith(b"GET /stats"):
            return self._stats()
        return await self._chat(json.loads(body))

    async def _chat(self, body: dict) -> bytes:
        prompt = body["messages"][-1]["content"].encode()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        if self.first is None:
            self.first = time.time()
        await asyncio.sleep(latency_of(prompt))
        self.in_flight -= 1
        self.last = time.time()
        return completion(body["model"])


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--upstream"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{int(proc.stdout.readline())}"


def child(lines: int, concurrency: int) -> None:
    """One measurement with the package this interpreter imports; prints one JSON line."""
    import httpx

    import zgpu_pandas
    from zgpu_pandas.server import LocalServer

    up, up_url = start_upstream()
    prompts = [f"review {i}" for i in range(lines)]
    payload = b"".join(
        json.dumps({"custom_id": f"row-{i}", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "LFM2.5-1.2B-Instruct",
                             "messages": [{"role": "user", "content": p}]}}).encode() + b"\n"
        for i, p in enumerate(prompts)
    )
    with LocalServer(engine="upstream", upstream_url=up_url,
                     concurrency=concurrency) as srv, httpx.Client(
                         base_url=srv.url, headers=HEADERS, timeout=60) as api:
        fid = api.post("/v1/files", files={"file": ("in.jsonl", payload)},
                       data={"purpose": "batch"}).json()["id"]
        bid = api.post("/v1/batches", json={"input_file_id": fid,
                                             "endpoint": "/v1/chat/completions"}).json()["id"]
        while (batch := api.get(f"/v1/batches/{bid}").json())["status"] not in (
                "completed", "failed", "cancelled", "expired"):
            time.sleep(0.05)
    stats = httpx.get(up_url + "/stats").json()
    up.kill()
    assert batch["request_counts"]["completed"] == lines, batch
    elapsed = stats["last"] - stats["first"]
    mean = statistics.fmean(latency_of(p.encode()) for p in prompts)
    ideal = concurrency / mean
    print(json.dumps({
        "package": str(Path(zgpu_pandas.__file__).resolve().parent.parent),
        "elapsed": elapsed, "throughput": lines / elapsed, "ideal": ideal,
        "ratio": lines / elapsed / ideal, "peak": stats["peak"], "mean_latency": mean,
    }))


def client_cpu(calls: int, concurrency: int) -> list[tuple[str, float, float]]:
    """CPU per call of the HTTP client alone: ``calls`` POSTs through the sliding window
    (``concurrency`` in flight) against the same upstream, with httpx (one pool of
    ``concurrency`` connections, as the old engine had) and with the engine's own client."""
    import httpx

    from zgpu_pandas._window import SlidingWindow
    from zgpu_pandas.server._wire import WirePool

    up, url = start_upstream()
    bodies = [json.dumps({"model": "m", "messages": [{"role": "user", "content": f"r {i}"}]}).encode()
              for i in range(calls)]
    out: list[tuple[str, float, float]] = []

    async def measure(name: str, post: Any, close: Any) -> None:
        window = SlidingWindow(limit=concurrency)
        wall, cpu = time.perf_counter(), time.process_time()
        async for done in window.map(bodies, post):
            assert done.error is None, done.error
        out.append((name, (time.process_time() - cpu) / calls * 1000, time.perf_counter() - wall))
        await close()

    async def main() -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        client = httpx.AsyncClient(limits=limits, trust_env=False, timeout=60)

        async def with_httpx(body: bytes) -> bytes:
            return (await client.post(url + "/v1/chat/completions", content=body)).content

        pool = WirePool(url + "/v1/chat/completions", limit=concurrency)

        async def with_wire(body: bytes) -> bytes:
            return (await pool.post(body, {"content-type": "application/json"})).body

        await measure("httpx, one pool of connections", with_httpx, client.aclose)
        await measure("server/_wire.py", with_wire, pool.aclose)

    try:
        asyncio.run(main())
    finally:
        up.kill()
    return out


def run_variant(where: Path, lines: int, concurrency: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(where)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--lines", str(lines),
           "--concurrency", str(concurrency)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=where, check=True)
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    if Path(str(result["package"])).resolve() != where.resolve():
        raise SystemExit(f"imported from {result['package']}, expected {where}")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--baseline", default="main")
    ap.add_argument("--calls", type=int, default=1500, help="calls of the client-only measure")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--upstream", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.upstream:
        asyncio.run(Upstream().serve())
        return
    if args.child:
        child(args.lines, args.concurrency)
        return
    rev = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    results: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), rev], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            for _ in range(args.rounds):
                for name, where in (("old", base), ("new", ROOT)):
                    r = run_variant(where, args.lines, args.concurrency)
                    results[name].append(r)
                    print(f"{name}: {r['ratio']:.1%} of ideal, peak {r['peak']}", file=sys.stderr)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
    cpu = client_cpu(args.calls, args.concurrency)
    print(f"\n{args.lines} lines, latency uniform {LOW * 1000:.0f}-{HIGH * 1000:.0f} ms, "
          f"concurrency {args.concurrency}, best of {args.rounds}; old = {rev}\n")
    print("| engine | lines/s | ideal (concurrency / mean latency) | fraction of ideal | peak in flight |")
    print("|---|---:|---:|---:|---:|")
    for name, label in (("old", f"chunked ({rev})"), ("new", "sliding window (this checkout)")):
        best = max(results[name], key=lambda r: r["ratio"])
        print(f"| {label} | {best['throughput']:.1f} | {best['ideal']:.1f} | "
              f"{best['ratio']:.1%} | {best['peak']:.0f} |")
    print(f"\nHTTP client alone, {args.calls} calls, {args.concurrency} in flight:\n")
    print("| client | CPU per call | wall clock |")
    print("|---|---:|---:|")
    for name, ms, wall in cpu:
        print(f"| {name} | {ms:.2f} ms | {wall:.1f} s |")


if __name__ == "__main__":
    main()
