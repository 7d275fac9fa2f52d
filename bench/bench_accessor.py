"""Request building and result merging for 100,000 rows: zgpu_pandas vs a plain loop vs orjson.

Three ways to do each half of the job, on the same data, in one run:

- **zgpu_pandas**: ``build_requests`` (DataFrame → the JSONL payload bytes of every batch)
  and ``ResultsTable.add_file`` + ``merge_results`` (the downloaded output file → a new
  DataFrame with the answer, status, error, finish reason and usage columns).
- **cookbook loop**: what the review-tagging cookbook does by hand: a Python loop building one
  dict per row, ``json.dumps`` per line, ``"\n".join``; then ``json.loads`` per line of the
  output file into a dict keyed by custom_id, and a lookup per row back into the frame.
- **orjson floor**: ``orjson.dumps`` of the same, already built, line dicts; splitting the
  same output file into lines and ``orjson.loads`` of each, nothing else. This is the
  serialisation work alone, without building anything from or into a DataFrame.

All three start from the same frame and the same output file (in memory, shaped like the
service's: full ``chat.completion`` bodies, in a shuffled order as the service writes them in
completion order), and are checked to produce the same bytes / the same answers before timing.
An extra row times the merge fed a list of lines (as ``client.files.iter_lines`` yields) rather
than the file's bytes. Each figure is the best of ``--repeat`` runs with the garbage collector
paused, as ``timeit`` does.

Run::

    python bench/bench_accessor.py            # 100,000 rows
    python bench/bench_accessor.py --rows 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pandas as pd

from zgpu_pandas.core.requests import build_requests
from zgpu_pandas.core.results import ResultsTable
from zgpu_pandas.frames._pandas_columns import merge_results

MODEL = "LFM2.5-1.2B-Instruct"
SYSTEM = (
    'You tag customer reviews. Reply with JSON only: {"sentiment": "positive|neutral|negative", '
    '"topics": ["..."]}.'
)
WORDS = (  # noqa: SIM905  (reads better as one sentence)
    'great product broke after a day the shipping was slow love it "fantastic" would buy again '
    "terrible support ünïcödé 🎉 price quality battery screen\tsize fits\nwell"
).split(" ")


def make_frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = random.Random(seed)
    reviews = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 60))) for _ in range(n)]
    return pd.DataFrame(
        {"review_id": [f"r{i:07d}" for i in range(n)], "review": reviews},
        index=pd.RangeIndex(1000, 1000 + n),
    )


def make_output(n: int, seed: int = 1) -> list[bytes]:
    """Output lines for rows 0..n-1, as the service writes them, in a shuffled order."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        content = f'{{"sentiment": "positive", "topics": ["row {i}", "quality"]}} ✓'
        body = {
            "id": f"chatcmpl-{i:012x}",
            "object": "chat.completion",
            "created": 1764000000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "annotations": []},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": 40 + i % 7,
                "completion_tokens": 12,
                "total_tokens": 52 + i % 7,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
            "service_tier": "default",
            "system_fingerprint": None,
        }
        line = {
            "id": f"batch_req_{i:020x}",
            "custom_id": f"row-{i}",
            "response": {"status_code": 200, "request_id": f"req_{i:016x}", "body": body},
        }
        lines.append(orjson.dumps(line))
    rng.shuffle(lines)
    return lines


# ---- the three request builders -------------------------------------------------------------


def ours_build(df: pd.DataFrame) -> list[bytes]:
    reqs = build_requests(df, prompt="review", model=MODEL, system=SYSTEM, temperature=0)
    return [reqs.chunk_bytes(c) for c in reqs.chunks]


def cookbook_build(df: pd.DataFrame) -> bytes:
    lines = []
    for i, review in enumerate(df["review"]):
        if not isinstance(review, str) or not review.strip():
            continue
        req = {
            "custom_id": f"row-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": review},
                ],
                "temperature": 0,
            },
        }
        lines.append(json.dumps(req, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


def line_dicts(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "custom_id": f"row-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": MODEL,
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": review},
                ],
                "temperature": 0,
            },
        }
        for i, review in enumerate(df["review"])
    ]


def floor_build(dicts: list[dict[str, Any]]) -> bytes:
    return b"\n".join([orjson.dumps(d) for d in dicts]) + b"\n"


# ---- the three mergers ----------------------------------------------------------------------


def ours_merge(df: pd.DataFrame, data: bytes) -> pd.DataFrame:
    table = ResultsTable(len(df))
    table.add_file(io.BytesIO(data))
    return merge_results(df, table)


def ours_merge_lines(df: pd.DataFrame, lines: list[bytes]) -> pd.DataFrame:
    table = ResultsTable(len(df))
    table.add_lines(lines)
    return merge_results(df, table)


def cookbook_merge(df: pd.DataFrame, data: bytes) -> pd.DataFrame:
    answers: dict[str, dict[str, Any]] = {}
    for raw in io.BytesIO(data):
        rec = json.loads(raw)
        answers[rec["custom_id"]] = rec
    text, status, finish, prompt_t, completion_t, total_t = [], [], [], [], [], []
    for i in range(len(df)):
        rec = answers.get(f"row-{i}")
        if rec is None or rec.get("response") is None:
            text.append(None)
            status.append("error")
            finish.append(None)
            prompt_t.append(None)
            completion_t.append(None)
            total_t.append(None)
            continue
        body = rec["response"]["body"]
        choice = body["choices"][0]
        text.append(choice["message"]["content"])
        status.append("ok")
        finish.append(choice["finish_reason"])
        prompt_t.append(body["usage"]["prompt_tokens"])
        completion_t.append(body["usage"]["completion_tokens"])
        total_t.append(body["usage"]["total_tokens"])
    out = df.copy()
    out["response"] = text
    out["response_status"] = status
    out["response_finish_reason"] = finish
    out["response_prompt_tokens"] = prompt_t
    out["response_completion_tokens"] = completion_t
    out["response_total_tokens"] = total_t
    return out


def floor_merge(data: bytes) -> int:
    loads = orjson.loads
    k = 0
    for raw in data.split(b"\n"):
        if raw:
            loads(raw)
            k += 1
    return k


# ---- harness --------------------------------------------------------------------------------


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        finally:
            gc.enable()
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    n = args.rows

    df = make_frame(n)
    lines = make_output(n)
    dicts = line_dicts(df)

    # Same work, same answers: check before timing anything.
    assert b"".join(ours_build(df)) == cookbook_build(df) == floor_build(dicts)
    data = b"\n".join(lines) + b"\n"  # the output file, as downloaded
    mine, theirs = ours_merge(df, data), cookbook_merge(df, data)
    assert mine["response"].tolist() == theirs["response"].tolist()
    assert mine["response"].tolist() == ours_merge_lines(df, lines)["response"].tolist()
    assert np.array_equal(
        mine["response_total_tokens"].to_numpy(dtype=np.int64),
        theirs["response_total_tokens"].to_numpy(dtype=np.int64),
    )

    res = {
        "build": {
            "zgpu_pandas": best_of(lambda: ours_build(df), args.repeat),
            "cookbook loop": best_of(lambda: cookbook_build(df), args.repeat),
            "orjson floor": best_of(lambda: floor_build(dicts), args.repeat),
        },
        "merge": {
            "zgpu_pandas": best_of(lambda: ours_merge(df, data), args.repeat),
            "cookbook loop": best_of(lambda: cookbook_merge(df, data), args.repeat),
            "orjson floor": best_of(lambda: floor_merge(data), args.repeat),
        },
    }
    from_lines = best_of(lambda: ours_merge_lines(df, lines), args.repeat)
    payload = sum(map(len, lines))
    print(
        f"{n:,} rows; request payload {len(floor_build(dicts)) / 1e6:.1f} MB, output {payload / 1e6:.1f} MB;"
        f" best of {args.repeat}; Python {platform.python_version()}, pandas {pd.__version__},"
        f" {platform.machine()}"
    )
    print()
    print("| step | zgpu_pandas | cookbook loop | orjson floor | vs loop | vs floor |")
    print("|---|---:|---:|---:|---:|---:|")
    ok = True
    for step, r in res.items():
        ours, loop, floor = r["zgpu_pandas"], r["cookbook loop"], r["orjson floor"]
        vs_loop, vs_floor = loop / ours, ours / floor
        ok &= vs_loop >= 5 and vs_floor <= 2
        print(
            f"| {step} | {ours * 1e3:.0f} ms | {loop * 1e3:.0f} ms | {floor * 1e3:.0f} ms |"
            f" {vs_loop:.1f}x faster | {vs_floor:.2f}x |"
        )
    m = res["merge"]
    print(
        f"| merge, fed a list of lines | {from_lines * 1e3:.0f} ms | | |"
        f" {m['cookbook loop'] / from_lines:.1f}x faster | {from_lines / m['orjson floor']:.2f}x |"
    )
    print()
    print("goal (>= 5x faster than the loop, within 2x of the floor):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
