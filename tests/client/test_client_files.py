"""Files endpoints against the real local server: upload, list, retrieve, delete, content."""

from __future__ import annotations

import hashlib
import io
import itertools
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from zgpu_pandas._client import Client
from zgpu_pandas.errors import NotFoundError, PayloadTooLargeError
from zgpu_pandas.server import LocalServer

Calls = Callable[..., list[int]]


def test_upload_from_a_path(client: Client, tmp_path: Path, jsonl: Callable[..., bytes]) -> None:
    data = jsonl(5)
    path = tmp_path / "reviews.jsonl"
    path.write_bytes(data)
    f = client.files.upload(path)
    assert f.id.startswith("file-")
    assert (f.bytes, f.filename, f.purpose, f.object) == (
        len(data),
        "reviews.jsonl",
        "batch",
        "file",
    )
    assert f.created_at is not None
    assert b"".join(client.files.iter_bytes(f.id)) == data


@pytest.mark.parametrize(
    "make_source",
    [
        pytest.param(lambda d: d, id="bytes"),
        pytest.param(lambda d: bytearray(d), id="bytearray"),
        pytest.param(lambda d: memoryview(d), id="memoryview"),
        pytest.param(lambda d: io.BytesIO(d), id="file-object"),
        pytest.param(lambda d: iter([d[:100], d[100:]]), id="iterator"),
        pytest.param(lambda d: [d[:7], b"", d[7:]], id="list-of-chunks"),
    ],
)
def test_upload_sources(
    client: Client, jsonl: Callable[..., bytes], make_source: Callable[[bytes], object]
) -> None:
    data = jsonl(3)
    f = client.files.upload(make_source(data), filename="in.jsonl")  # type: ignore[arg-type]
    assert f.bytes == len(data) and f.filename == "in.jsonl"
    assert b"".join(client.files.iter_bytes(f.id)) == data


def test_upload_from_a_seekable_file_starts_where_it_stands(client: Client, tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"HEADER\n" + b'{"a": 1}\n')
    with path.open("rb") as fh:
        fh.readline()
        f = client.files.upload(fh)
    assert f.filename == "x.jsonl"
    assert b"".join(client.files.iter_bytes(f.id)) == b'{"a": 1}\n'


def test_upload_errors_are_clear(client: Client, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="pass it as bytes"):
        client.files.upload('{"custom_id": "a"}\n')
    with pytest.raises(TypeError, match="binary file object"):
        client.files.upload(12)  # type: ignore[arg-type]
    (tmp_path / "t.jsonl").write_text("x\n")
    with (tmp_path / "t.jsonl").open("r") as text_mode, pytest.raises(TypeError, match="'rb'"):
        client.files.upload(text_mode)  # type: ignore[arg-type]


def test_oversized_upload_refused_before_sending(
    client: Client, server: LocalServer, tmp_path: Path
) -> None:
    big = tmp_path / "big.jsonl"
    with big.open("wb") as fh:  # sparse: no disk space used, and never read
        fh.truncate(100 * 1024 * 1024 + 1)
    before = len(server.request_log)
    with pytest.raises(PayloadTooLargeError, match="nothing was sent") as info:
        client.files.upload(big)
    assert info.value.code == "file_too_large"
    assert len(server.request_log) == before


def test_list_follows_pages(client: Client, server: LocalServer, calls: Calls) -> None:
    ids = [client.files.upload(b'{"n": %d}\n' % i, filename=f"f{i}.jsonl").id for i in range(7)]
    listed = list(client.files.list(limit=2))
    assert calls(server, "GET", "/v1/files", 4) == [200] * 4  # 2 + 2 + 2 + 1
    assert [f.id for f in listed] == ids[::-1]  # newest first
    assert [f.id for f in client.files.list(order="asc", limit=3)] == ids
    # the iterator is lazy: taking two reads one page
    before = len(calls(server, "GET", "/v1/files", 7))
    assert len(list(itertools.islice(client.files.list(limit=2), 2))) == 2
    assert len(calls(server, "GET", "/v1/files", before + 1)) == before + 1


def test_list_filters_by_purpose(client: Client, jsonl: Callable[..., bytes]) -> None:
    f = client.files.upload(jsonl(2))
    batch = client.batches.wait(client.batches.create(input_file_id=f.id).id)
    assert batch.status == "completed" and batch.output_file_id
    outputs = list(client.files.list(purpose="batch_output"))
    assert [o.id for o in outputs] == [batch.output_file_id]
    assert outputs[0].purpose == "batch_output" and not outputs[0].is_error
    assert [i.id for i in client.files.list(purpose="batch")] == [f.id]


def test_retrieve_and_delete(client: Client) -> None:
    f = client.files.upload(b'{"a": 1}\n', filename="a.jsonl")
    assert client.files.retrieve(f.id) == f
    deleted = client.files.delete(f.id)
    assert (deleted.id, deleted.deleted) == (f.id, True)
    with pytest.raises(NotFoundError) as info:
        client.files.retrieve(f.id)
    assert info.value.status_code == 404 and info.value.request_id
    with pytest.raises(NotFoundError):
        list(client.files.iter_bytes(f.id))
    with pytest.raises(NotFoundError):
        client.files.delete(f.id)
    assert f.id not in [x.id for x in client.files.list()]


def test_output_file_lines_and_download(
    client: Client, tmp_path: Path, jsonl: Callable[..., bytes]
) -> None:
    f = client.files.upload(jsonl(300))
    batch = client.batches.wait(client.batches.create(input_file_id=f.id).id)
    assert batch.request_counts.completed == 300
    rows = [orjson.loads(line) for line in client.files.iter_lines(batch.output_file_id or "")]
    assert sorted(r["custom_id"] for r in rows) == sorted(f"row-{i}" for i in range(300))
    assert all(r["response"]["status_code"] == 200 for r in rows)
    # the answer to row-7 is about row-7 (the built-in engine echoes the prompt)
    row7 = next(r for r in rows if r["custom_id"] == "row-7")
    assert "Review number 7:" in row7["response"]["body"]["choices"][0]["message"]["content"]

    target = client.files.download(batch.output_file_id or "", tmp_path / "out" / "output.jsonl")
    assert target == tmp_path / "out" / "output.jsonl"
    assert target.read_bytes().splitlines() == list(
        client.files.iter_lines(batch.output_file_id or "")
    )
    assert [p.name for p in target.parent.iterdir()] == ["output.jsonl"]  # no temp file left
    # a directory target gets <file_id>.jsonl
    (tmp_path / "dir").mkdir()
    into_dir = client.files.download(batch.output_file_id or "", tmp_path / "dir")
    assert into_dir == tmp_path / "dir" / f"{batch.output_file_id}.jsonl"
    assert into_dir.read_bytes() == target.read_bytes()


def test_download_failure_leaves_no_partial_file(client: Client, tmp_path: Path) -> None:
    target = tmp_path / "results" / "out.jsonl"
    target.parent.mkdir()
    target.write_bytes(b"previous results\n")
    with pytest.raises(NotFoundError):
        client.files.download("file-000000000000000000000000", target)
    assert target.read_bytes() == b"previous results\n"
    assert [p.name for p in target.parent.iterdir()] == ["out.jsonl"]


def _big_lines(total_bytes: int) -> Iterator[bytes]:
    filler = "x" * 900
    i = 0
    size = 0
    while size < total_bytes:
        line = orjson.dumps({"custom_id": f"row-{i}", "text": filler}) + b"\n"
        size += len(line)
        i += 1
        yield line


def test_large_file_streams_in_bounded_memory(client: Client, tmp_path: Path) -> None:
    """A 40 MB file goes up and comes back (lines and to disk) with a peak of a few MB."""
    size = 40 * 1024 * 1024
    path = tmp_path / "big.jsonl"
    digest = hashlib.sha256()
    n_lines = 0
    with path.open("wb") as fh:
        for line in _big_lines(size):
            fh.write(line)
            digest.update(line)
            n_lines += 1
    total = path.stat().st_size

    tracemalloc.start()
    try:
        f = client.files.upload(path)
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        count = 0
        last = b""
        for line in client.files.iter_lines(f.id):
            count += 1
            last = line
        _, lines_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        out = client.files.download(f.id, tmp_path / "copy.jsonl")
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert f.bytes == total
    assert count == n_lines and orjson.loads(last)["custom_id"] == f"row-{n_lines - 1}"
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest.hexdigest()
    limit = total // 8  # 5 MB for 40 MB: generous for buffers, far below one copy of the file
    assert upload_peak < limit, upload_peak
    assert lines_peak < limit, lines_peak
    assert download_peak < limit, download_peak
