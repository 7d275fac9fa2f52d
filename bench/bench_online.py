"""The online mode against a local server with fixed per-request latency: wall time of
``df.zgpu.chat`` over 200 rows against the ideal ``rows x latency / concurrency``, and
against a bare httpx client keeping the same number of requests in flight (the baseline: what
the HTTP round trips themselves cost on this machine).

Run: .venv/bin/python bench/bench_online.py [--rows 200] [--latency 0.2]

Method: ``zgpu-pandas serve`` in a separate process (so server and client do not share one
interpreter lock), built-in engine with ``--latency`` seconds per request (an asyncio sleep),
``--concurrency 256`` so the server is never the limit. For each concurrency: the baseline
(httpx.AsyncClient + asyncio.Semaphore, no library code), then ``chat`` on ``rows`` distinct
prompts with ``fresh=True`` (nothing reused), best of ``--repeat`` each. Columns: the ideal,
both wall times, chat / ideal and chat / baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import orjson
import pandas as pd

import zgpu_pandas

MODEL = "LFM2.5-1.2B-Instruct"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(latency: float, data: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "ZGPU_SERVER_API_KEYS": "bench-key"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "zgpu_pandas", "serve", "--port", str(port), "--latency",
         str(latency), "--concurrency", "256", "--data-dir", data, "--relaxed-auth"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the server did not start")


async def _bare(url: str, rows: int, concurrency: int) -> None:
    sem = asyncio.Semaphore(concurrency)
    headers = {"x-api-key": "bench-key", "content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as http:

        async def one(i: int) -> None:
            async with sem:
                body = {"model": MODEL, "messages": [{"role": "user", "content": f"q {i}"}]}
                r = await http.post("/v1/chat/completions", content=orjson.dumps(body))
                r.raise_for_status()

        await asyncio.gather(*(one(i) for i in range(rows)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("ZGPU_STATE_DIR", tempfile.mkdtemp(prefix="zgpu-bench-state-"))
    df = pd.DataFrame({"q": [f"question {i}" for i in range(args.rows)]})
    proc, url = _serve(args.latency, tempfile.mkdtemp(prefix="zgpu-bench-data-"))
    try:
        client = zgpu_pandas.Client(base_url=url, api_key="bench-key", project_id="bench")
        print(f"{args.rows} rows, {args.latency * 1000:.0f} ms per request")
        print("| concurrency | ideal s | bare httpx s | chat s | chat / ideal | chat / bare |")
        print("|---:|---:|---:|---:|---:|---:|")
        for c in (4, 8, 16, 32, 64):
            ideal = args.rows * args.latency / c
            bare = chat = float("inf")
            for _ in range(args.repeat):
                t = time.perf_counter()
                asyncio.run(_bare(url, args.rows, c))
                bare = min(bare, time.perf_counter() - t)
                t = time.perf_counter()
                out = df.zgpu.chat("q", model=MODEL, client=client, concurrency=c, fresh=True,
                                   progress=False)
                chat = min(chat, time.perf_counter() - t)
                assert (out["response_status"] == "ok").all()
            print(f"| {c} | {ideal:.2f} | {bare:.2f} | {chat:.2f} | {chat / ideal:.2f} | "
                  f"{chat / bare:.2f} |")
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
