"""The journal's look-up by fingerprint (``Journal.find``) over many jobs: time and records
read.

A streaming run (``zgpu-pandas run``) is one journaled job per part, and looks each part's
job up twice (to submit it, then to collect it), so a run of P parts makes 2P look-ups in a
journal that holds P jobs (and whatever earlier runs left). This fills a fresh journal with
P records shaped like a part's (one chunk, the batch as last seen), then, as the run does,
looks every one of them up twice, in order, each time through a new ``Journal`` object (the
run makes one per part). It reports the wall clock of the look-ups and how many records
were parsed.

Run::

    python bench/bench_journal.py --jobs 2000
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import platform
import tempfile
import time

from zgpu_pandas._journal import ChunkRecord, JobRecord, Journal


def _batch(k: int) -> dict[str, object]:
    """A batch's wire form, as the journal keeps it (about 700 bytes)."""
    return {
        "id": f"batch_{k:024x}", "object": "batch", "endpoint": "/v1/chat/completions",
        "input_file_id": f"file-in-{k:020x}", "output_file_id": f"file-out-{k:020x}",
        "error_file_id": None, "completion_window": "24h", "status": "completed",
        "created_at": 1_700_000_000 + k, "in_progress_at": 1_700_000_001 + k,
        "completed_at": 1_700_000_060 + k, "expires_at": 1_700_086_400 + k,
        "request_counts": {"total": 50_000, "completed": 50_000, "failed": 0},
        "metadata": {"zgpu_job": f"job_{k}", "zgpu_chunk": "0"}, "errors": None,
        "usage": {"input_tokens": 1_250_000, "output_tokens": 900_000},
    }


def fill(journal: Journal, n: int) -> list[str]:
    """``n`` jobs of one chunk each; their fingerprints, in creation order."""
    fps = []
    for k in range(n):
        fp = hashlib.sha256(f"part {k}".encode()).hexdigest()
        chunk = ChunkRecord(index=0, lines=50_000, bytes=26_000_000, sha256=fp, file_id="f",
                            token=fp[:32], batch_id=f"batch_{k:024x}", status="completed",
                            completed=50_000, batch=_batch(k))
        journal.create(fingerprint=fp, model="LFM2.5-1.2B-Instruct", rows=50_000,
                       settings={"model": "LFM2.5-1.2B-Instruct", "chat_params": {}},
                       base_url="local", chunks=[chunk])
        fps.append(fp)
    return fps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2000)
    args = ap.parse_args()
    parsed = 0
    original = JobRecord.from_dict.__func__  # type: ignore[attr-defined]

    def counting(cls: type[JobRecord], data: dict[str, object]) -> JobRecord:
        nonlocal parsed
        parsed += 1
        return original(cls, data)

    JobRecord.from_dict = classmethod(counting)  # type: ignore[method-assign,assignment]
    with tempfile.TemporaryDirectory() as root:
        fps = fill(Journal(root), args.jobs)
        # a new process: nothing learnt about this folder yet (a checkout from before the
        # index has none: the same script measures it)
        with contextlib.suppress(ImportError):
            importlib.import_module("zgpu_pandas._journal_index")._INDEXES.clear()
        parsed = 0
        t0 = time.perf_counter()
        for _ in range(2):  # the submit pass, then the collect pass
            for fp in fps:
                assert Journal(root).find(fp) is not None
        wall = time.perf_counter() - t0
    looks = 2 * args.jobs
    print(f"{args.jobs:,} jobs, {looks:,} look-ups: {wall:.2f} s ({wall / looks * 1e3:.2f} ms "
          f"each), {parsed:,} records parsed ({parsed / looks:.1f} per look-up); "
          f"Python {platform.python_version()}")


if __name__ == "__main__":
    main()
