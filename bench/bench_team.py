"""The local server as a team's gateway: three users' batches at once in front of a slow
upstream, throughput against the ideal and fairness between the projects.

Run: .venv/bin/python bench/bench_team.py [--lines 2000] [--concurrency 16] [--window 20]

Method: an upstream model server in a process of its own (asyncio, keep-alive HTTP/1.1)
answers every chat request after a latency drawn uniformly from 50-800 ms (drawn from the
request's text, so it is the same for the same line in every run). ``zgpu-pandas serve`` runs
in a second process with ``--engine upstream --concurrency 16`` and three keys, one per
project. Three client threads (one per project, each with its own key) upload and create a
batch of ``--lines`` lines at the same moment, then poll it every second. Reported:

* throughput, lines per second from the first create to the last batch completed, against
  the ideal ``concurrency / mean latency`` (the mean of the latencies of the lines sent);
* fairness: for every ``--window``-second window while all three batches run, each
  project's share of the lines finished in it (1/3 each is perfectly fair), and the smallest
  ratio of least to most served project over those windows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import httpx
import orjson
from _upstream import completion, serve_connection

LOW, HIGH = 0.05, 0.8
MODEL = "LFM2.5-1.2B-Instruct"
PROJECTS = ("team-a", "team-b", "team-c")


def latency_of(text: bytes) -> float:
    return random.Random(zlib.crc32(text)).uniform(LOW, HIGH)


async def _answer(head: bytes, body: bytes) -> bytes:
    text = orjson.loads(body)["messages"][-1]["content"].encode() if body else b""
    await asyncio.sleep(latency_of(text))
    return completion(MODEL)


async def _upstream_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await serve_connection(reader, writer, _answer)


async def _serve_upstream() -> None:
    server = await asyncio.start_server(_upstream_client, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lines(project: str, n: int) -> bytes:
    out = []
    for i in range(n):
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"{project} line {i}"}]}
        out.append(orjson.dumps({"custom_id": f"r{i}", "method": "POST",
                                 "url": "/v1/chat/completions", "body": body}))
    return b"\n".join(out) + b"\n"


def _run_client(url: str, key: str, project: str, n: int, start: threading.Event,
                log: list[tuple[float, str, int]], done: dict[str, float]) -> None:
    headers = {"x-api-key": key, "x-project-id": project}
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        f = http.post("/v1/files", files={"file": ("in.jsonl", _lines(project, n))},
                      data={"purpose": "batch"}).json()
        start.wait()
        b = http.post("/v1/batches", json={"input_file_id": f["id"], "completion_window": "24h",
                                           "endpoint": "/v1/chat/completions"}).json()
        while True:
            cur = http.get(f"/v1/batches/{b['id']}").json()
            c = cur["request_counts"]
            log.append((time.time(), project, c["completed"] + c["failed"]))
            if cur["status"] in ("completed", "failed", "cancelled", "expired"):
                done[project] = time.time()
                return
            time.sleep(1.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--upstream", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.upstream:
        asyncio.run(_serve_upstream())
        return
    up = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--upstream"],
                          stdout=subprocess.PIPE, text=True)
    assert up.stdout is not None
    up_url = f"http://127.0.0.1:{up.stdout.readline().strip()}"
    keys = {p: f"key-{p}-0123456789" for p in PROJECTS}
    port = _free_port()
    env = {**os.environ, "ZGPU_SERVER_API_KEYS": ",".join(f"{k} {p}" for p, k in keys.items()),
           "ZGPU_UPSTREAM_API_KEY": "upstream-key"}
    server = subprocess.Popen(
        [sys.executable, "-m", "zgpu_pandas", "serve", "--port", str(port), "--engine",
         "upstream", "--upstream-url", up_url, "--concurrency", str(args.concurrency),
         "--data-dir", tempfile.mkdtemp(prefix="zgpu-bench-team-")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        log: list[tuple[float, str, int]] = []
        done: dict[str, float] = {}
        start = threading.Event()
        threads = [threading.Thread(target=_run_client,
                                    args=(url, keys[p], p, args.lines, start, log, done))
                   for p in PROJECTS]
        for t in threads:
            t.start()
        time.sleep(1.0)  # uploads finish; the creates go out together
        t0 = time.time()
        start.set()
        for t in threads:
            t.join()
        _report(args, log, done, t0)
    finally:
        server.terminate()
        up.terminate()
        server.wait(10)
        up.wait(10)


def _report(args: argparse.Namespace, log: list[tuple[float, str, int]],
            done: dict[str, float], t0: float) -> None:
    total = args.lines * len(PROJECTS)
    elapsed = max(done.values()) - t0
    mean = statistics.fmean(latency_of(f"{p} line {i}".encode())
                            for p in PROJECTS for i in range(args.lines))
    ideal = args.concurrency / mean
    print(f"{len(PROJECTS)} projects x {args.lines} lines, concurrency {args.concurrency}, "
          f"latency {LOW * 1000:.0f}-{HIGH * 1000:.0f} ms (mean {mean * 1000:.0f} ms)")
    print(f"throughput {total / elapsed:.1f} lines/s; ideal {ideal:.1f} lines/s; "
          f"{total / elapsed / ideal:.1%} of ideal ({elapsed:.0f} s)")
    end_all = min(done.values())  # windows while all three still run
    series = {p: sorted((t, n) for t, q, n in log if q == p) for p in PROJECTS}

    def count_at(p: str, when: float) -> int:
        before = [n for t, n in series[p] if t <= when]
        return before[-1] if before else 0

    print(f"\n| window (s) | {' | '.join(PROJECTS)} | least / most |")
    print("|---|" + "---:|" * (len(PROJECTS) + 1))
    worst = 1.0
    w = t0
    while w + args.window <= end_all:
        got = [count_at(p, w + args.window) - count_at(p, w) for p in PROJECTS]
        s = sum(got) or 1
        ratio = min(got) / max(got) if max(got) else 1.0
        worst = min(worst, ratio)
        shares = " | ".join(f"{g / s:.1%}" for g in got)
        print(f"| {w - t0:.0f}-{w - t0 + args.window:.0f} | {shares} | {ratio:.2f} |")
        w += args.window
    print(f"\nworst least/most ratio over full windows: {worst:.2f}")
    print(json.dumps({"lines_per_s": round(total / elapsed, 2), "ideal": round(ideal, 2)}))


if __name__ == "__main__":
    main()
