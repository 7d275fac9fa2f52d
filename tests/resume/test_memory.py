"""What a job holds in memory: its request lines only until they are sent, and its answers
once (bench/README.md, "Streaming files", gives the figures on a million rows)."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from tests.support import FrameKit, arrow_bytes
from zgpu_pandas._client import Client
from zgpu_pandas.core import estimate as estimate_module
from zgpu_pandas.core.estimate import estimate_requests
from zgpu_pandas.core.requests import build_requests
from zgpu_pandas.core.results import ResultsTable
from zgpu_pandas.server import LocalServer

from .resume_support import MODEL, assert_all_answered, body

TEXTS = [f"question {i}" for i in range(12)]


def _input_lines(client: Client, batch_id: str) -> list[dict]:
    f = client.batches.retrieve(batch_id).input_file_id
    assert f is not None
    return [orjson.loads(x) for x in client.files.iter_lines(f)]


def test_sent_lines_are_freed_and_a_retry_builds_them_again(
    server: LocalServer, client: Client, kit: FrameKit
) -> None:
    server.faults.fail_lines(code="internal_error", custom_ids=r"^row-2$", count=1)
    server.faults.fail_lines(code="internal_error", custom_ids=r"^row-9$", count=1)
    df = kit.frame({"q": TEXTS})
    job = df.zgpu.submit_chat("q", model=MODEL, client=client, progress=False)
    assert job.requests is not None and job.requests.released  # every batch created
    job.wait()
    job.retry()
    assert_all_answered(job.result(), TEXTS)
    # the round's lines, built again from the job's rows, are the very lines of those rows
    assert [x["custom_id"] for x in _input_lines(client, job.batch_ids[1])] == ["row-2", "row-9"]
    assert [x["body"] for x in _input_lines(client, job.batch_ids[1])] == [
        body(TEXTS[2]), body(TEXTS[9])
    ]
    lines = [orjson.loads(x) for x in job.requests.iter_lines()]  # given back on demand
    assert [x["body"] for x in lines] == [body(t) for t in TEXTS]


def test_lines_the_rows_no_longer_give_are_read_back_from_the_service(
    server: LocalServer, client: Client
) -> None:
    # message lists are Python objects a shallow snapshot shares with the caller: changed in
    # place after the submit, they would give other lines; the retry must send the old ones
    server.faults.fail_lines(code="internal_error", custom_ids=r"^row-1$", count=1)
    convo = [[{"role": "user", "content": t}] for t in TEXTS[:3]]
    df = pd.DataFrame({"m": convo})
    job = df.zgpu.submit_chat(messages="m", model=MODEL, client=client, progress=False)
    assert job.requests is not None and job.requests.released
    assert job.result()["response_status"].tolist() == ["ok", "error", "ok"]
    convo[1][0]["content"] = "changed since"
    job.retry()
    assert job.result()["response_status"].tolist() == ["ok"] * 3
    (line,) = _input_lines(client, job.batch_ids[1])
    assert line["custom_id"] == "row-1" and line["body"] == body(TEXTS[1])


def _answer_lines(n: int, size: int) -> list[bytes]:
    return [
        orjson.dumps({
            "custom_id": f"row-{i}",
            "response": {"status_code": 200, "body": {
                "choices": [{"message": {"content": f"{i:08d}" + "a" * (size - 8)},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
            }},
        })
        for i in range(n)
    ]


def test_answers_are_held_once_and_the_result_shares_them() -> None:
    n, size = 20_000, 400  # 8 MB of answer text
    lines = _answer_lines(n, size)[::-1]  # in another order than the rows, as batches answer
    before = arrow_bytes()
    table = ResultsTable(n)
    table.add_lines(lines)
    held = arrow_bytes() - before
    text = n * size
    # the text once plus about 100 bytes a row of offsets, counts and codes; the first
    # version held each answer twice (its text, and the one-choice list beside it)
    assert held < text + 150 * n, held / text
    table.compact()
    compacted = arrow_bytes() - before
    assert compacted < text + 150 * n, compacted / text
    answers = table.answers("r")
    again = table.answers("r")
    # the answer columns are the table's own arrays: no second copy, however often asked
    assert arrow_bytes() - before < compacted + 40 * n
    first = answers.column("r").chunk(0)
    assert first.buffers()[2].address == again.column("r").chunk(0).buffers()[2].address
    assert first.to_pylist()[:2] == [f"{0:08d}" + "a" * (size - 8), f"{1:08d}" + "a" * (size - 8)]
    # and the extra columns still come when asked, after the fold
    table.extras = ("choices",)
    choices = table.answers("r").column("r_choices")
    assert choices.to_pylist()[5] == [f"{5:08d}" + "a" * (size - 8)]


def test_a_fold_keeps_later_results_winning_and_marks_counting() -> None:
    table = ResultsTable(3)
    table.add_lines(_answer_lines(3, 20))
    table.compact()
    mark = table.mark()
    table.add_errors([1], code="internal_error", message="boom")
    assert table.positions_since(mark).tolist() == [1]
    assert table.error_codes_since(mark) == {"internal_error": 1}
    cols = table.columns()
    assert cols["status"].to_pylist() == ["ok", "error", "ok"]
    assert cols["text"][1].as_py() is None and cols["error_code"][1].as_py() == "internal_error"


def test_token_estimate_is_the_same_read_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    df = pd.DataFrame({"q": [f"row {i} " + "word " * (i % 50) for i in range(3000)]})
    reqs = build_requests(df, prompt="q", model=MODEL, system="be brief")
    whole = estimate_requests(reqs)
    monkeypatch.setattr(estimate_module, "_SLICE_BYTES", 4096)  # dozens of slices
    again = build_requests(df, prompt="q", model=MODEL, system="be brief")
    sliced = estimate_requests(again)  # a new set: the first one's estimate is kept with it
    assert sliced == whole and whole.prompt_tokens > 0
    assert again.fingerprint == reqs.fingerprint  # learnt in the estimate's slices
    assert [again.chunk_sha256(c) for c in again.chunks] == [
        reqs.chunk_sha256(c) for c in reqs.chunks
    ]
    per_line = estimate_module._line_tokens(again)
    assert len(per_line) == len(reqs) and np.all(per_line > 0)
