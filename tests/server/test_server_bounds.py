"""Bounded state on the server: the request log, idle and half-sent connections, batch
metadata, and a line over 1 MB (refused before it is parsed). One test per bound."""

from __future__ import annotations

import socket
import threading
import tracemalloc
from typing import Any

import pytest

from tests.support import API_HEADERS, to_jsonl
from zgpu_pandas._jsonl import MAX_LINE_BYTES, Validator

# How long a test waits for the server to close a connection before it fails (not a
# measurement: the server is set to give up after a fraction of a second).
_WAIT = 30.0


def _connect(srv: Any) -> socket.socket:
    sock = socket.create_connection((srv.host, srv.port), timeout=_WAIT)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails on the wait)."""
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {_WAIT} s (read so far: {data!r})")
    finally:
        sock.close()


def test_the_request_log_keeps_only_the_most_recent_requests(start_server, api_for):
    srv = start_server(request_log_size=5)
    api = api_for(srv)
    for i in range(20):
        assert api.get("/v1/batches", params={"limit": i + 1}).status_code == 200
    assert len(srv.request_log) == 5
    assert srv.request_log == [("GET", "/v1/batches", 200)] * 5
    assert srv.request_log.dropped == 15  # type: ignore[attr-defined]


def test_a_connection_that_sends_nothing_is_closed(start_server):
    srv = start_server(idle_timeout=0.3)
    sock = _connect(srv)
    assert _read_until_closed(sock) == b""


def test_a_half_sent_request_head_is_closed(start_server):
    srv = start_server(idle_timeout=0.3)
    sock = _connect(srv)
    sock.sendall(b"GET /v1/batches HTTP/1.1\r\nHost: x\r\nx-api-key: test-key\r\n")
    assert _read_until_closed(sock) == b""


def test_a_half_sent_second_request_on_a_kept_alive_connection_is_closed(start_server):
    srv = start_server(idle_timeout=0.3)
    sock = _connect(srv)
    head = "".join(f"{k}: {v}\r\n" for k, v in API_HEADERS.items())
    sock.sendall(f"GET /v1/batches HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    sock.sendall(b"GET /v1/batches HTTP/1.1\r\nHost: x\r\n")  # ... and no more
    rest = _read_until_closed(sock)
    assert b"HTTP/1.1" not in rest


def test_a_half_sent_body_gets_a_408_and_is_closed(start_server):
    srv = start_server(idle_timeout=0.3)
    sock = _connect(srv)
    head = "".join(f"{k}: {v}\r\n" for k, v in API_HEADERS.items())
    sock.sendall(
        f"POST /v1/batches HTTP/1.1\r\nHost: x\r\n{head}content-type: application/json\r\n"
        "content-length: 100\r\n\r\n".encode() + b'{"input_file_id": '
    )
    answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer
    assert srv.request_log == [("POST", "/v1/batches", 408)]


def test_a_slow_but_steady_upload_is_not_cut(start_server, api_for, make_lines):
    # the body timeout is per byte-less wait, not for the whole body
    srv = start_server(idle_timeout=2.0)
    api = api_for(srv)
    f = api.upload(to_jsonl(make_lines(2000)))
    assert api.create_batch(f["id"]).status_code == 200


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({f"k{i}": "v" for i in range(17)}, "17 pairs; at most 16"),
        ({"k" * 65: "v"}, "longer than 64 characters"),
        ({"k": "v" * 513}, "513 characters; at most 512"),
        ({"k": 3}, 'value of "k" must be a string, not int'),
        ({"k": {"nested": "x" * 100}}, "must be a string, not dict"),
        (["k", "v"], "metadata must be an object"),
    ],
)
def test_batch_metadata_is_bounded_as_the_openai_api_bounds_it(api, make_lines, metadata, problem):
    f = api.upload(to_jsonl(make_lines(1)))
    r = api.create_batch(f["id"], metadata=metadata)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_metadata" and err["param"] == "metadata"
    assert problem in err["message"]
    assert api.get("/v1/batches").json()["data"] == []


def test_metadata_at_the_limits_is_accepted_and_kept(api, make_lines):
    meta = {f"{i:02d}" + "k" * 62: "v" * 512 for i in range(16)}
    f = api.upload(to_jsonl(make_lines(1)))
    r = api.create_batch(f["id"], metadata=meta)
    assert r.status_code == 200, r.text
    assert r.json()["metadata"] == meta


def test_a_line_over_1_mb_is_refused_before_it_is_parsed(api):
    # Not valid JSON at all: only the size rule, checked before parsing, can see it.
    f = api.upload(b"{" * (MAX_LINE_BYTES + 1) + b"\n")
    r = api.create_batch(f["id"])
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "line_too_large"


def test_validating_an_oversized_line_takes_no_more_memory_than_the_line():
    # 4 MB of empty lists: parsed, they would take ~20 times that (a list object each)
    raw = b"[" + b"[]," * ((4 << 20) // 3) + b"[]]"
    v = Validator()
    tracemalloc.start()
    try:
        err = v.feed(raw)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err is not None and err.code == "line_too_large"
    assert peak < len(raw)


def test_connections_of_finished_threads_are_closed(tmp_path):
    # The request thread pool retires idle threads and starts new ones: the store keeps
    # one SQLite connection per live thread, not one per thread that ever ran.
    from zgpu_pandas.server.store import Store

    store = Store(tmp_path / "data")
    store.open()
    try:
        for _ in range(20):
            t = threading.Thread(target=lambda: store.list_batches("p", after=None, limit=1))
            t.start()
            t.join()
        store.list_batches("p", after=None, limit=1)  # one more connection, this thread's
        assert len(store._conns) <= 2
    finally:
        store.close()
