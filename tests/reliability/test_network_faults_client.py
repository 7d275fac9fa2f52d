"""Network faults between the client and the server, on every endpoint the client calls.

Each client operation (upload, list, retrieve, download, delete, create, list batches,
retrieve batch, cancel, wait) is run against a real local server with one fault injected on
its route: a burst of 500s, a burst of 429s (with and without ``Retry-After``), connections
dropped before the handler runs, the answer lost after it ran, an answer slower than usual
but within the timeout, and one slower than the timeout after the work was done.

For each: the call returns the right thing, the server's state shows the work done exactly
once (one batch per create, one deletion, all bytes downloaded once and in order), and the
client's log says what it went through (the retry, or the reconciled create). Two faults
are specific to streams: an upload dropped part-way and a download cut part-way. Finally
the server is restarted while the client waits on a batch.

The client's backoff sleep is replaced by a recorder (no test waits for a backoff), so
only the injected slow answers take real time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from tests.support import chat_line, to_jsonl
from zgpu_pandas import _client
from zgpu_pandas._client import CLIENT_TOKEN_KEY, Client
from zgpu_pandas.errors import NotFoundError
from zgpu_pandas.server import LocalServer

KEY = "zk-netfault-5c1e9a7b3d"
SLOW_TIMEOUT = 0.4  # the client's read timeout in the "slower than the timeout" case
SLOW_DELAY = 0.8  # seconds the server holds that answer


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(_client, "_sleep", recorded.append)
    return recorded


@pytest.fixture
def srv(start_server: Callable[..., LocalServer]) -> LocalServer:
    # Slow enough that a 1000-line batch is still running when cancelled, fast for the rest.
    return start_server(latency=0.003, concurrency=1)


def _lines(n: int, prefix: str = "row") -> bytes:
    return to_jsonl([chat_line(f"{prefix}-{i}", f"review {i}") for i in range(n)])


def _custom_ids(client: Client, batch: Any) -> list[str]:
    out: list[str] = []
    for fid in (batch.output_file_id, batch.error_file_id):
        if fid:
            out += [orjson.loads(x)["custom_id"] for x in client.files.iter_lines(fid)]
    return out


# -------------------------------------------------------------------------- operations
@dataclass
class Op:
    """One client call: its route (for the fault), setup, the call, and what must hold."""

    method: str
    path: str  # regex on the URL path
    prepare: Callable[[Client], dict[str, Any]]
    call: Callable[[Client, dict[str, Any]], Any]
    check: Callable[[Client, dict[str, Any], Any], None]
    #: the call's effect cannot be reconciled: a lost answer may leave an orphan copy
    orphan_possible: bool = False


def _upload_prepare(c: Client) -> dict[str, Any]:
    return {"data": _lines(200)}


def _upload_check(c: Client, ctx: dict[str, Any], f: Any) -> None:
    assert f.bytes == len(ctx["data"])
    assert b"".join(c.files.iter_bytes(f.id)) == ctx["data"]
    stored = [x for x in c.files.list()]
    assert f.id in {x.id for x in stored}
    # every stored copy is whole: a failed attempt never leaves half a file
    assert all(x.bytes == len(ctx["data"]) for x in stored)
    ctx["stored"] = len(stored)


def _files_prepare(c: Client) -> dict[str, Any]:
    return {"ids": [c.files.upload(_lines(2, f"f{i}")).id for i in range(3)]}


def _batch_prepare(c: Client, n: int = 20) -> dict[str, Any]:
    f = c.files.upload(_lines(n))
    return {"file": f.id, "n": n}


def _create_check(c: Client, ctx: dict[str, Any], batch: Any) -> None:
    batches = list(c.batches.list())
    assert [b.id for b in batches] == [batch.id], "a create must never make two batches"
    done = c.batches.wait(batch.id)
    assert sorted(_custom_ids(c, done)) == sorted(f"row-{i}" for i in range(ctx["n"]))


def _two_batches(c: Client) -> dict[str, Any]:
    ids = []
    for i in range(2):
        f = c.files.upload(_lines(2, f"b{i}"))
        ids.append(c.batches.create(input_file_id=f.id).id)
    return {"ids": ids[::-1]}  # newest first


def _running_batch(c: Client) -> dict[str, Any]:
    f = c.files.upload(_lines(1000))
    return {"batch": c.batches.create(input_file_id=f.id).id}


def _cancel_check(c: Client, ctx: dict[str, Any], b: Any) -> None:
    assert b.id == ctx["batch"] and b.status in ("cancelling", "cancelled")
    final = c.batches.wait(b.id)
    assert final.status == "cancelled"
    ids = _custom_ids(c, final)
    assert sorted(ids) == sorted(f"row-{i}" for i in range(1000))  # each line once, either way
    assert final.request_counts.completed + final.request_counts.failed == 1000
    assert final.request_counts.failed > 0  # it really was cut short


def _created_batch(c: Client) -> dict[str, Any]:
    ctx = _batch_prepare(c)
    ctx["batch"] = c.batches.create(input_file_id=ctx["file"]).id
    return ctx


def _wait_check(c: Client, ctx: dict[str, Any], b: Any) -> None:
    assert b.status == "completed" and b.request_counts.completed == ctx["n"]
    assert sorted(_custom_ids(c, b)) == sorted(f"row-{i}" for i in range(ctx["n"]))


def _delete_check(c: Client, ctx: dict[str, Any], d: Any) -> None:
    assert d.deleted and d.id == ctx["ids"][0]
    with pytest.raises(NotFoundError):
        c.files.retrieve(ctx["ids"][0])
    assert {f.id for f in c.files.list()} == set(ctx["ids"][1:])


OPS: dict[str, Op] = {
    "upload": Op(
        "POST",
        r"^/v1/files$",
        _upload_prepare,
        lambda c, ctx: c.files.upload(ctx["data"]),
        _upload_check,
        orphan_possible=True,
    ),
    "list files": Op(
        "GET",
        r"^/v1/files$",
        _files_prepare,
        lambda c, ctx: [f.id for f in c.files.list(limit=2)],
        lambda c, ctx, ids: _eq(ids, ctx["ids"][::-1]),
    ),
    "retrieve file": Op(
        "GET",
        r"^/v1/files/file-[^/]+$",
        _files_prepare,
        lambda c, ctx: c.files.retrieve(ctx["ids"][1]),
        lambda c, ctx, f: _eq(f.id, ctx["ids"][1]),
    ),
    "download": Op(
        "GET",
        r"/content$",
        lambda c: {"data": _lines(3000), "id": c.files.upload(_lines(3000)).id},
        lambda c, ctx: b"".join(c.files.iter_bytes(ctx["id"])),
        lambda c, ctx, data: _eq(data, ctx["data"]),
    ),
    "delete file": Op(
        "DELETE",
        r"^/v1/files/",
        _files_prepare,
        lambda c, ctx: c.files.delete(ctx["ids"][0]),
        _delete_check,
    ),
    "create batch": Op(
        "POST",
        r"^/v1/batches$",
        _batch_prepare,
        lambda c, ctx: c.batches.create(input_file_id=ctx["file"], timeout=ctx.get("timeout")),
        _create_check,
    ),
    "list batches": Op(
        "GET",
        r"^/v1/batches$",
        _two_batches,
        lambda c, ctx: [b.id for b in c.batches.list(limit=1)],
        lambda c, ctx, ids: _eq(ids, ctx["ids"]),
    ),
    "retrieve batch": Op(
        "GET",
        r"^/v1/batches/batch_[^/]+$",
        _created_batch,
        lambda c, ctx: c.batches.retrieve(ctx["batch"]),
        lambda c, ctx, b: _eq(b.id, ctx["batch"]),
    ),
    "cancel batch": Op(
        "POST",
        r"/cancel$",
        _running_batch,
        lambda c, ctx: c.batches.cancel(ctx["batch"]),
        _cancel_check,
    ),
    "wait": Op(
        "GET",
        r"^/v1/batches/batch_[^/]+$",
        _created_batch,
        lambda c, ctx: c.batches.wait(ctx["batch"], poll_interval=0.01),
        _wait_check,
    ),
}


def _eq(got: Any, expected: Any) -> None:
    assert got == expected


# ------------------------------------------------------------------------------ faults
@dataclass
class Fault:
    arm: Callable[[LocalServer, str, str], None]
    #: the handler ran but its answer never arrived (or arrived after the timeout)
    answer_lost: bool = False
    #: nothing went wrong from the client's point of view: no retry may happen
    benign: bool = False
    client_timeout: float | None = None


def _fail_in_turn(
    s: LocalServer, method: str, path: str, plan: list[tuple[int, int, int | None]]
) -> None:
    """Arm failures used in order: ``(status, count, retry_after)`` each."""
    for status, count, retry_after in plan:
        s.faults.fail_requests(
            status=status, count=count, method=method, path=path, retry_after=retry_after
        )


FAULTS: dict[str, Fault] = {
    # five failures in a row at most: the client's five retries outlast them
    "burst of 500, 502 and 503s": Fault(
        lambda s, m, p: _fail_in_turn(s, m, p, [(500, 2, None), (502, 1, None), (503, 2, None)])
    ),
    "burst of 429s, the last with Retry-After": Fault(
        lambda s, m, p: _fail_in_turn(s, m, p, [(429, 2, None), (429, 1, 7)])
    ),
    "dropped before the handler": Fault(
        lambda s, m, p: s.faults.drop_connections(count=2, method=m, path=p)
    ),
    "answer lost after the handler": Fault(
        lambda s, m, p: s.faults.drop_connections(count=1, method=m, path=p, after_handler=True),
        answer_lost=True,
    ),
    "slow answer within the timeout": Fault(
        lambda s, m, p: s.faults.delay_requests(seconds=0.3, count=1, method=m, path=p),
        benign=True,
    ),
    "answer slower than the timeout": Fault(
        lambda s, m, p: s.faults.delay_requests(
            seconds=SLOW_DELAY, count=1, method=m, path=p, after_handler=True
        ),
        answer_lost=True,
        client_timeout=SLOW_TIMEOUT,
    ),
}


@pytest.mark.parametrize("fault_name", list(FAULTS))
@pytest.mark.parametrize("op_name", list(OPS))
def test_every_call_survives_every_fault_with_its_effect_exactly_once(
    srv: LocalServer,
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
    op_name: str,
    fault_name: str,
) -> None:
    op, fault = OPS[op_name], FAULTS[fault_name]
    timeout = fault.client_timeout or 30.0
    with Client(api_key=KEY, project_id="p", base_url=srv.url, timeout=timeout) as client:
        ctx = op.prepare(client)
        if fault.client_timeout is not None:
            ctx["timeout"] = fault.client_timeout  # create's own read timeout is 300 s
        caplog.clear()
        caplog.set_level(logging.INFO, logger="zgpu_pandas.client")
        sleeps.clear()
        fault.arm(srv, op.method, op.path)
        result = op.call(client, ctx)
        srv.faults.clear()
        log, slept = caplog.text, list(sleeps)
        op.check(client, ctx, result)

    if op.orphan_possible:
        # An upload whose answer was lost cannot be matched to what the server stored, so
        # it is sent again: at most one orphan copy (not billed; it expires in 30 days).
        assert ctx["stored"] == (2 if fault.answer_lost else 1)
    if fault.benign:
        assert "retry" not in log and "failed" not in log
        if op_name != "wait":  # wait sleeps between polls; nothing else may sleep
            assert slept == []
    elif op_name == "create batch" and fault.answer_lost:
        assert "not sending again" in log  # found the batch the lost answer was about
    elif op_name == "wait":
        assert "polling batch" in log or "retry" in log
    else:
        assert "retry 1 of" in log, log
    if "Retry-After" in fault_name:
        assert 7.0 in slept  # the server's delay, not a guess


# -------------------------------------------------------------------- stream faults
def test_upload_dropped_part_way_is_sent_again_whole(
    server: LocalServer, sleeps: list[float], tmp_path: Any
) -> None:
    srv = server
    path = tmp_path / "big.jsonl"
    data = _lines(20_000)  # ~2 MB
    path.write_bytes(data)
    with Client(api_key=KEY, project_id="p", base_url=srv.url) as client:
        for after in (0, 64 * 1024, len(data) // 2, len(data) - 10):
            srv.faults.drop_uploads(after_bytes=after)
        f = client.files.upload(path)
        assert [x.id for x in client.files.list()] == [f.id]  # no half file was kept
        assert b"".join(client.files.iter_bytes(f.id)) == data
        assert len(sleeps) == 4
        # the stored copy is whole and valid: create reads and checks every line
        assert client.batches.create(input_file_id=f.id).request_counts.total == 20_000


def test_download_cut_part_way_resumes_without_losing_or_repeating_a_line(
    server: LocalServer, sleeps: list[float]
) -> None:
    srv = server
    with Client(api_key=KEY, project_id="p", base_url=srv.url) as client:
        f = client.files.upload(_lines(3000))
        batch = client.batches.wait(client.batches.create(input_file_id=f.id).id)
        size = client.files.retrieve(batch.output_file_id or "").bytes or 0
        for after in (1, size // 3, size // 2, size - 1):
            srv.faults.truncate_downloads(after_bytes=after)
        sleeps.clear()
        rows = [orjson.loads(x) for x in client.files.iter_lines(batch.output_file_id or "")]
        assert sorted(r["custom_id"] for r in rows) == sorted(f"row-{i}" for i in range(3000))
        assert len(sleeps) == 4


# ------------------------------------------------------------------ server restarted
@pytest.fixture
def restartable(tmp_path: Any) -> Iterator[LocalServer]:
    srv = LocalServer(data_dir=tmp_path / "data", latency=0.005, concurrency=1).start()
    yield srv
    srv.stop()


def test_server_restarted_mid_batch_the_wait_carries_on_and_every_row_is_answered_once(
    restartable: LocalServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = restartable
    # Real sleeps, but short: the backoff between failed polls is compressed, not skipped.
    monkeypatch.setattr(_client, "_sleep", lambda d: time.sleep(min(d, 0.02)))
    caplog.set_level(logging.WARNING, logger="zgpu_pandas.client")
    with Client(api_key=KEY, project_id="p", base_url=srv.url) as client:
        f = client.files.upload(_lines(200))
        batch = client.batches.create(input_file_id=f.id, metadata={"job": "restart"})
        result: dict[str, Any] = {}

        def on_update(b: Any) -> None:
            result.setdefault("counts", []).append(b.request_counts.done)

        def wait() -> None:
            try:
                result["batch"] = client.batches.wait(
                    batch.id, poll_interval=0.05, on_update=on_update
                )
            except BaseException as exc:  # surfaced by the assertion below
                result["error"] = exc

        waiter = threading.Thread(target=wait)
        waiter.start()
        deadline = time.monotonic() + 30
        while not result.get("counts") or result["counts"][-1] < 20:
            assert time.monotonic() < deadline, "the batch never started"
            time.sleep(0.01)
        srv.stop()  # down, mid-batch: polls now fail (its data dir is kept)
        while "polling batch" not in caplog.text:
            assert time.monotonic() < deadline, "the client never noticed the outage"
            time.sleep(0.01)
        srv.start()  # same data dir, same port: unfinished work resumes
        waiter.join(60)
        assert not waiter.is_alive()
        assert "error" not in result, result.get("error")
        final = result["batch"]
        assert final.status == "completed" and final.request_counts.completed == 200
        assert sorted(_custom_ids(client, final)) == sorted(f"row-{i}" for i in range(200))
        assert [b.id for b in client.batches.list()] == [batch.id]
        assert final.metadata[CLIENT_TOKEN_KEY] == batch.metadata[CLIENT_TOKEN_KEY]
    # what the user saw: a warning that polling failed and that it kept waiting
    assert "still waiting" in caplog.text
