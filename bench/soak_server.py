"""Soak test of the local server: many concurrent clients for minutes, memory sampled.

A ``zgpu-pandas serve`` process (the real command, built-in engine) is driven over loopback
HTTP by ``--clients`` threads (default 32), each repeating the public API's whole cycle:
upload a small input, create a batch, poll it to the end, download its output, list batches
and files, ask the sync endpoint once, delete the input. Every ``--sample`` seconds the
server process's resident memory (``VmRSS`` from ``/proc``, so Linux only) is recorded.
The script uses the public HTTP API only, so it measures whatever the server does inside.

Run: ``python bench/soak_server.py [--minutes 3] [--clients 32] [--sample 10]``.
Prints the samples, the request counts, any non-2xx answers, and a Markdown summary for
bench/README.md ("Soak"). Memory is flat when the last samples are within a few MB of the
first ones taken after warm-up.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson

HEADERS = {"x-api-key": "soak-key", "x-project-id": "soak"}
MODEL = "LFM2.5-1.2B-Instruct"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _input(client: int, n: int, lines: int) -> bytes:
    return b"".join(
        orjson.dumps({
            "custom_id": f"row-{i}", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": MODEL, "messages": [
                {"role": "user", "content": f"client {client} cycle {n} review {i}"}]},
        }) + b"\n"
        for i in range(lines)
    )


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.bad: Counter[str] = Counter()
        self.cycles = 0
        self.lines = 0

    def note(self, what: str, r: httpx.Response) -> httpx.Response:
        with self.lock:
            self.calls[what] += 1
            if r.status_code >= 300:
                self.bad[f"{what} {r.status_code}"] += 1
        return r


def _client_loop(url: str, k: int, stop: threading.Event, stats: Stats, lines: int) -> None:
    n = 0
    with httpx.Client(base_url=url, headers=HEADERS, timeout=60.0) as c:
        while not stop.is_set():
            n += 1
            r = stats.note("upload", c.post(
                "/v1/files", files={"file": ("in.jsonl", _input(k, n, lines))},
                data={"purpose": "batch"}))
            if r.status_code != 200:
                continue
            fid = r.json()["id"]
            r = stats.note("create", c.post("/v1/batches", json={
                "input_file_id": fid, "endpoint": "/v1/chat/completions",
                "metadata": {"client": str(k), "cycle": str(n)}}))
            if r.status_code != 200:
                continue
            bid = r.json()["id"]
            while True:
                b = stats.note("poll", c.get(f"/v1/batches/{bid}")).json()
                if b.get("status") in ("completed", "failed", "expired", "cancelled"):
                    break
                time.sleep(0.05)
            if b.get("output_file_id"):
                out = stats.note("download", c.get(f"/v1/files/{b['output_file_id']}/content"))
                got = len(out.content.splitlines())
                with stats.lock:
                    stats.lines += got
            stats.note("list", c.get("/v1/batches", params={"limit": 20}))
            stats.note("list", c.get("/v1/files", params={"limit": 20}))
            stats.note("chat", c.post("/v1/chat/completions", json={
                "model": MODEL, "messages": [{"role": "user", "content": f"hi {k} {n}"}]}))
            stats.note("delete", c.delete(f"/v1/files/{fid}"))
            with stats.lock:
                stats.cycles += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--lines", type=int, default=20, help="lines per batch")
    args = ap.parse_args()
    if not Path("/proc/self/status").exists():
        print("needs Linux (/proc) to sample memory", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="zgpu-soak-") as tmp:
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "zgpu_pandas", "serve", "--port", str(port), "--data-dir",
             str(Path(tmp) / "data"), "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "ZGPU_SERVER_API_KEYS": HEADERS["x-api-key"]},
        )
        try:
            first = server.stdout.readline() if server.stdout else ""
            if "http://" not in first:
                print(f"serve did not start: {first!r}", file=sys.stderr)
                return 1
            url = f"http://127.0.0.1:{port}"
            stats, stop = Stats(), threading.Event()
            threads = [
                threading.Thread(target=_client_loop, args=(url, k, stop, stats, args.lines),
                                 daemon=True)
                for k in range(args.clients)
            ]
            samples: list[tuple[float, float, int]] = []
            t0 = time.monotonic()
            samples.append((0.0, _rss_mb(server.pid), 0))
            for t in threads:
                t.start()
            end = t0 + args.minutes * 60
            while time.monotonic() < end:
                time.sleep(min(args.sample, max(0.0, end - time.monotonic())))
                with stats.lock:
                    done = sum(stats.calls.values())
                samples.append((time.monotonic() - t0, _rss_mb(server.pid), done))
                print(f"{samples[-1][0]:7.0f} s  RSS {samples[-1][1]:7.1f} MB  "
                      f"requests {done}", flush=True)
            stop.set()
            for t in threads:
                t.join(120)
        finally:
            server.terminate()
            server.communicate(timeout=60)
    warm = [s for s in samples if s[0] >= min(60.0, args.minutes * 30)]
    base = warm[0][1] if warm else samples[0][1]
    last = samples[-1][1]
    total = sum(stats.calls.values())
    print()
    print("| clients | minutes | requests | batches | lines answered | non-2xx | RSS start "
          "| RSS after warm-up | RSS end | peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.clients} | {args.minutes:g} | {total} | {stats.cycles} | {stats.lines} | "
          f"{sum(stats.bad.values())} | {samples[0][1]:.0f} MB | {base:.0f} MB | {last:.0f} MB | "
          f"{max(s[1] for s in samples):.0f} MB |")
    if stats.bad:
        print("non-2xx:", dict(stats.bad))
    print("calls:", dict(stats.calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
