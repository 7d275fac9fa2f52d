"""Hostile requests against the real server: path traversal in ids, oversized bodies,
malformed multipart, missing and foreign credentials, cross-project isolation, CORS
preflight, and where the key and the users' data may end up (logs, disk, answers).

Everything runs over loopback against :class:`LocalServer`; each test says what must hold
and checks that the server is still healthy and that nothing was stored or changed.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import API_HEADERS, ENDPOINTS, ApiClient, chat_line, to_jsonl
from zgpu_pandas.server import LocalServer

KEY = "zk-security-3b9d5e1f7a2c4e6b8d0f"  # long and unusual: finding it anywhere is a leak
MIB = 1 << 20


def _post_multipart(
    api: httpx.Client,
    body: bytes | Iterator[bytes],
    ctype: str = "multipart/form-data; boundary=XyZ",
) -> httpx.Response:
    return api.post("/v1/files", content=body, headers={"content-type": ctype})


def _part(name: str, data: bytes, filename: bytes | None = None) -> bytes:
    disp = f'form-data; name="{name}"'.encode()
    if filename is not None:
        disp += b'; filename="' + filename + b'"'
    return b"--XyZ\r\nContent-Disposition: " + disp + b"\r\n\r\n" + data + b"\r\n"


END = b"--XyZ--\r\n"


def _stored_files(api: httpx.Client) -> list[dict[str, Any]]:
    return list(api.get("/v1/files").json()["data"])


def _assert_nothing_left_behind(srv: LocalServer) -> None:
    assert list((srv.data_dir / "tmp").iterdir()) == []
    assert httpx.get(srv.url + "/healthz").status_code == 200


# ------------------------------------------------------------------- path traversal
TRAVERSALS = [
    "..%2F..%2Fmeta.sqlite3",
    "..%2F..%2F..%2Fsentinel.txt",
    "file-..%2F..%2Fmeta.sqlite3",
    "file-..%2F..%2F..%2Fsentinel.txt",
    "%2e%2e",
    "file-%2e%2e%2f%2e%2e%2fsentinel.txt",
    "file-abc%00.jsonl",
    "file-%5c..%5c..%5csentinel.txt",
    "batch_..%2F..%2Fmeta.sqlite3",
    "batch_x%2F..%2F..%2Fsentinel.txt",
    "file-" + "a" * 300,
]
ID_ROUTES = [
    ("GET", "/v1/files/{}"),
    ("GET", "/v1/files/{}/content"),
    ("DELETE", "/v1/files/{}"),
    ("GET", "/v1/batches/{}"),
    ("POST", "/v1/batches/{}/cancel"),
]


@pytest.fixture
def sentinel(server: LocalServer) -> Path:
    """A file beside the data directory that no request may read or delete."""
    path = server.data_dir.parent / "sentinel.txt"
    path.write_text("SENTINEL-CONTENT")
    return path


@pytest.mark.parametrize(("method", "route"), ID_ROUTES)
def test_traversal_in_a_path_id_is_404_and_touches_nothing(
    server: LocalServer, api: ApiClient, sentinel: Path, method: str, route: str
) -> None:
    mine = api.upload(b"{}\n")
    with httpx.Client(headers=API_HEADERS) as raw:  # no base_url: the path goes as written
        for evil in TRAVERSALS:
            r = raw.request(method, server.url + route.format(evil))
            assert r.status_code == 404, (evil, r.status_code, r.text)
            assert r.json()["error"]["type"] == "invalid_request_error"
            assert b"SENTINEL" not in r.content and b"SQLite format" not in r.content
    assert sentinel.read_text() == "SENTINEL-CONTENT"
    assert (server.data_dir / "meta.sqlite3").exists()
    assert [f["id"] for f in _stored_files(api)] == [mine["id"]]


@pytest.mark.parametrize("evil", ["../../meta.sqlite3", "file-../../sentinel.txt", "file-\x00"])
def test_traversal_in_body_ids_and_cursors_is_refused(
    server: LocalServer, api: ApiClient, sentinel: Path, evil: str
) -> None:
    r = api.create_batch(evil)
    assert r.status_code == 404 and r.json()["error"]["message"] == f"Input file not found: {evil}"
    for path in ("/v1/files", "/v1/batches"):
        r = api.get(path, params={"after": evil})
        assert r.status_code == 400 and r.json()["error"]["param"] == "after"
    assert sentinel.read_text() == "SENTINEL-CONTENT"
    assert api.get("/v1/batches").json()["data"] == []


def test_upload_filename_cannot_escape_the_data_dir_or_inject_headers(
    server: LocalServer, api: ApiClient
) -> None:
    outside_before = sorted(p.name for p in server.data_dir.parent.iterdir())
    names = {
        b"../../../../escape.jsonl": "escape.jsonl",
        b"..\\..\\win.jsonl": "win.jsonl",
        b'x.jsonl"\r\nSet-Cookie: stolen=1': None,  # cut at the CR by the parser
        b"a\x00b.jsonl": None,
        b"\xff\xfe.jsonl": None,
    }
    for raw, expected in names.items():
        r = _post_multipart(api, _part("purpose", b"batch") + _part("file", b"{}\n", raw) + END)
        assert r.status_code == 200, r.text
        f = r.json()
        if expected is not None:
            assert f["filename"] == expected
        assert "/" not in f["filename"] and "\\" not in f["filename"]
        got = api.get(f"/v1/files/{f['id']}/content")
        assert got.content == b"{}\n"
        assert "set-cookie" not in got.headers
        disposition = got.headers["content-disposition"]
        assert disposition.isascii() and "\r" not in disposition and "\n" not in disposition
    assert sorted(p.name for p in server.data_dir.parent.iterdir()) == outside_before
    assert not any(p.name.endswith(".jsonl") for p in server.data_dir.rglob("*"))


# ------------------------------------------------------------------ oversized bodies
def test_oversized_upload_is_413_with_or_without_a_declared_length(
    start_server: Callable[..., LocalServer], api_for: Callable[..., ApiClient]
) -> None:
    srv = start_server(max_upload_bytes=64 * 1024)
    api = api_for(srv)
    big = b'{"custom_id": "x"}\n' * 10_000  # ~190 KB, three times the cap
    declared = api.post("/v1/files", files={"file": ("a.jsonl", big)}, data={"purpose": "batch"})
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "file_too_large"
    body = _part("purpose", b"batch") + _part("file", big, b"a.jsonl") + END

    def chunked() -> Iterator[bytes]:  # no Content-Length: the server must count as it reads
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    streamed = _post_multipart(api, chunked())
    assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "file_too_large"
    assert _stored_files(api) == []
    _assert_nothing_left_behind(srv)


@pytest.mark.parametrize("path", ["/v1/batches", "/v1/chat/completions"])
@pytest.mark.parametrize("declared", [True, False])
def test_oversized_json_body_is_413_and_never_held_whole(
    server: LocalServer, api: ApiClient, path: str, declared: bool
) -> None:
    head = b'{"input_file_id": "file-x", "metadata": {"pad": "'
    pad = b"x" * (17 * MIB)
    tail = b'"}}'
    if declared:
        r = api.post(path, content=head + pad + tail, headers={"content-type": "application/json"})
    else:

        def chunks() -> Iterator[bytes]:
            yield head
            for i in range(0, len(pad), MIB):
                yield pad[i : i + MIB]
            yield tail

        r = api.post(path, content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text[:200]
    assert r.json()["error"]["code"] == "request_too_large"
    assert api.get("/v1/batches").json()["data"] == []
    _assert_nothing_left_behind(server)


# ---------------------------------------------------------------- malformed multipart
_GOOD_FILE = _part("file", b"{}\n", b"a.jsonl")
MALFORMED = {
    "no closing boundary": (_part("purpose", b"batch") + _GOOD_FILE, None),
    "another boundary": (
        (_part("purpose", b"batch") + _GOOD_FILE + END).replace(b"XyZ", b"AbC"),
        None,
    ),
    "part headers never end": (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"' + b"x" * 10_000,
        None,
    ),
    "header line without colon": (b"--XyZ\r\nnocolon\r\n\r\n{}\n\r\n" + END, None),
    "random bytes": (bytes(range(256)) * 20, None),
    "empty body": (b"", None),
    "only the closing boundary": (END, "missing_file"),
    "part without a name": (
        b"--XyZ\r\nContent-Disposition: form-data\r\n\r\n{}\n\r\n" + END,
        "missing_file",
    ),
    "part without a disposition": (
        b"--XyZ\r\nContent-Type: text/plain\r\n\r\n{}\n\r\n" + END,
        "missing_file",
    ),
    "a 2 MB header": (b"--XyZ\r\nX-Pad: " + b"a" * (2 * MIB) + b"\r\n\r\n{}\n\r\n" + END, None),
    "a 5 MB purpose": (_part("purpose", b"b" * (5 * MIB)) + _GOOD_FILE + END, "invalid_purpose"),
}
BAD_CONTENT_TYPES = {
    "boundary over 256 bytes": ("multipart/form-data; boundary=" + "a" * 5000, "invalid_multipart"),
    "no boundary": ("multipart/form-data; charset=utf-8", "invalid_multipart"),
    "multipart/mixed": ("multipart/mixed; boundary=XyZ", "invalid_content_type"),
    "json": ("application/json", "invalid_content_type"),
    "none": ("", "invalid_content_type"),
}


@pytest.mark.parametrize("label", sorted(MALFORMED))
def test_malformed_multipart_is_400_and_stores_nothing(
    server: LocalServer, api: ApiClient, label: str
) -> None:
    body, code = MALFORMED[label]
    r = _post_multipart(api, body)
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["code"] == (code or "invalid_multipart")
    assert _stored_files(api) == []
    _assert_nothing_left_behind(server)


@pytest.mark.parametrize("label", sorted(BAD_CONTENT_TYPES))
def test_bad_multipart_content_type_is_400(server: LocalServer, api: ApiClient, label: str) -> None:
    ctype, code = BAD_CONTENT_TYPES[label]
    r = _post_multipart(api, _part("purpose", b"batch") + _GOOD_FILE + END, ctype)
    assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
    assert _stored_files(api) == []
    _assert_nothing_left_behind(server)


# ------------------------------------------------------------------------ credentials


@pytest.fixture
def keyed(start_server: Callable[..., LocalServer]) -> LocalServer:
    """Two keys, each limited to its own project."""
    return start_server(api_keys={KEY: {"proj-a"}, "other-key-b": {"proj-b"}})


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_credentials_outside_the_api_headers_are_not_accepted(
    keyed: LocalServer, method: str, path: str
) -> None:
    elsewhere = [
        {"authorization": f"Bearer {KEY}", "x-project-id": "proj-a"},
        {"cookie": f"x-api-key={KEY}", "x-project-id": "proj-a"},
        {"x-project-id": "proj-a", "x-api-key-2": KEY},
    ]
    for headers in elsewhere:
        r = httpx.request(method, keyed.url + path, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["error"]["message"] == "Missing authentication headers"
    r = httpx.request(
        method, keyed.url + path, params={"x-api-key": KEY}, headers={"x-project-id": "proj-a"}
    )
    assert r.status_code == 401


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_foreign_or_unknown_credentials_are_403_and_never_echoed(
    keyed: LocalServer, method: str, path: str
) -> None:
    refused = [
        {"x-api-key": KEY, "x-project-id": "proj-b"},  # a real key, another project
        {"x-api-key": "other-key-b", "x-project-id": "proj-a"},
        {"x-api-key": KEY + "x", "x-project-id": "proj-a"},  # almost the key
        {"x-api-key": KEY.upper(), "x-project-id": "proj-a"},
        {"x-api-key": "k" * 8000, "x-project-id": "proj-a"},
    ]
    for headers in refused:
        r = httpx.request(method, keyed.url + path, headers=headers)
        assert r.status_code == 403, (headers["x-api-key"][:40], r.text)
        assert r.json()["error"] == {
            "message": "Invalid credentials",
            "type": "authentication_error",
            "code": "invalid_credentials",
            "param": None,
        }
        assert headers["x-api-key"][:20].encode() not in r.content
        assert not any(headers["x-api-key"][:20] in v for v in r.headers.values())


def test_a_repeated_project_header_scopes_to_the_value_that_was_authorised(
    keyed: LocalServer,
) -> None:
    b_headers = {"x-api-key": "other-key-b", "x-project-id": "proj-b"}
    with ApiClient(base_url=keyed.url, headers=b_headers) as b_only:
        fid = b_only.upload(b"{}\n")["id"]
    a_then_b = [("x-api-key", KEY), ("x-project-id", "proj-a"), ("x-project-id", "proj-b")]
    r = httpx.get(keyed.url + "/v1/files", headers=a_then_b)
    assert r.status_code == 200 and r.json()["data"] == []  # proj-a's (empty) list, not b's
    assert httpx.get(keyed.url + f"/v1/files/{fid}", headers=a_then_b).status_code == 404
    b_then_a = [("x-api-key", KEY), ("x-project-id", "proj-b"), ("x-project-id", "proj-a")]
    assert httpx.get(keyed.url + "/v1/files", headers=b_then_a).status_code == 403


# ------------------------------------------------------------------ project isolation
@pytest.mark.parametrize(
    "intruder", ["proj-b", "%", "_", "' OR '1'='1", "proj-", "proj-aa", "PROJ-A"]
)
def test_projects_never_see_each_others_files_batches_or_content(
    server: LocalServer, api_for: Callable[..., ApiClient], intruder: str
) -> None:
    owner = api_for(server, x_project_id="proj-a")
    server.faults.fail_lines(code="internal_error", custom_ids="^bad$")
    batch = owner.wait(owner.submit([chat_line("ok", "hello"), chat_line("bad", "no")])["id"])
    files = {
        "input": batch["input_file_id"],
        "output": batch["output_file_id"],
        "error": batch["error_file_id"],
    }
    assert None not in files.values()
    before = {k: owner.get(f"/v1/files/{v}/content").content for k, v in files.items()}

    other = api_for(server, x_project_id=intruder)
    for purpose in (None, "batch", "batch_output"):
        params = {"purpose": purpose} if purpose else {}
        assert other.get("/v1/files", params=params).json()["data"] == []
    assert other.get("/v1/batches").json()["data"] == []
    for fid in files.values():
        for method, path in [
            ("GET", f"/v1/files/{fid}"),
            ("GET", f"/v1/files/{fid}/content"),
            ("DELETE", f"/v1/files/{fid}"),
        ]:
            r = other.request(method, path)
            assert r.status_code == 404 and r.json()["error"]["message"] == f"File {fid} not found"
        r = other.create_batch(fid)
        assert (
            r.status_code == 404 and r.json()["error"]["message"] == f"Input file not found: {fid}"
        )
        # another project's id is no cursor either: a 400, not a page after it
        assert other.get("/v1/files", params={"after": fid}).status_code == 400
    bid = batch["id"]
    assert other.get(f"/v1/batches/{bid}").status_code == 404
    assert other.post(f"/v1/batches/{bid}/cancel").status_code == 404
    assert other.get("/v1/batches", params={"after": bid}).status_code == 400
    assert other.get("/v1/batches").json()["data"] == []  # the failed create left nothing

    # the owner's things are untouched
    assert owner.get(f"/v1/batches/{bid}").json()["status"] == "completed"
    after = {k: owner.get(f"/v1/files/{v}/content").content for k, v in files.items()}
    assert after == before


# ------------------------------------------------------------------------------ CORS
@pytest.mark.parametrize(
    "path",
    [
        "/v1/files",
        "/v1/files/{file}",
        "/v1/files/{file}/content",
        "/v1/batches",
        "/v1/batches/{batch}",
        "/v1/batches/{batch}/cancel",
        "/v1/chat/completions",
        "/v1/unknown",
    ],
)
def test_cors_preflight_is_204_without_auth_and_runs_nothing(
    start_server: Callable[..., LocalServer], api_for: Callable[..., ApiClient], path: str
) -> None:
    srv = start_server(latency=0.05, concurrency=1)  # the batch stays cancellable
    api = api_for(srv)
    batch = api.submit([chat_line(f"r{i}", "x") for i in range(100)])
    url = srv.url + path.format(file=batch["input_file_id"], batch=batch["id"])
    log_before = len(srv.request_log)
    r = httpx.options(
        url,
        headers={
            "origin": "http://localhost:8888",
            "access-control-request-method": "POST",
            "access-control-request-headers": "x-api-key, x-project-id, content-type",
        },
    )
    assert r.status_code == 204 and r.content == b""
    assert r.headers.get_list("access-control-allow-origin") == ["*"]
    allowed_methods = {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
    assert {"GET", "POST", "DELETE"} <= allowed_methods
    allowed = {h.strip() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"x-api-key", "x-project-id", "content-type"} <= allowed
    # nothing ran: the batch is still running, the file still there
    assert api.get(f"/v1/batches/{batch['id']}").json()["status"] == "in_progress"
    assert api.get(f"/v1/files/{batch['input_file_id']}").status_code == 200
    assert not [e for e in srv.request_log[log_before:] if e[0] in ("POST", "DELETE")]
    api.post(f"/v1/batches/{batch['id']}/cancel")


def test_every_answer_carries_one_cors_origin_header(server: LocalServer, api: ApiClient) -> None:
    server.faults.fail_requests(status=500, method="GET", path="^/v1/batches$")
    answers = [
        api.get("/v1/files"),  # 200
        api.get("/v1/files/file-nope"),  # 404
        httpx.get(server.url + "/v1/files"),  # 401
        api.get("/v1/batches"),  # 500 injected
        api.put("/v1/files"),  # 405
    ]
    assert [r.status_code for r in answers] == [200, 404, 401, 500, 405]
    for r in answers:
        assert r.headers.get_list("access-control-allow-origin") == ["*"]
        assert "x-request-id" in r.headers["access-control-expose-headers"]


# ------------------------------------------------------------- the key, logs and disk
def test_the_server_never_logs_stores_or_echoes_the_key(
    start_server: Callable[..., LocalServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    srv = start_server(api_keys={KEY: None}, log_level="debug")
    seen: list[bytes] = []
    with ApiClient(
        base_url=srv.url, headers={"x-api-key": KEY, "x-project-id": "p"}, timeout=30
    ) as api:
        srv.faults.fail_lines(code="authentication_error", custom_ids="^b$")
        batch = api.wait(
            api.submit([chat_line("a", f"my key is {KEY[:6]}"), chat_line("b", "x")])["id"]
        )
        responses = [
            api.get("/v1/files"),
            api.get(f"/v1/files/{batch['output_file_id']}/content"),
            api.get(f"/v1/files/{batch['error_file_id']}/content"),
            api.get("/v1/batches/batch_nope"),
            api.post("/v1/batches", content=b"not json"),
            api.post("/v1/chat/completions", json={"model": "nope", "messages": []}),
        ]
        srv.faults.fail_requests(status=500, method="GET")
        responses.append(api.get("/v1/batches"))
        srv.faults.drop_connections(method="GET")
        with pytest.raises(httpx.TransportError):
            api.get("/v1/batches")
        responses.append(
            httpx.get(
                srv.url + "/v1/files", headers={"x-api-key": KEY + "-wrong", "x-project-id": "p"}
            )
        )
        for r in responses:
            seen.append(r.content)
            seen.extend(v.encode() for v in r.headers.values())
    admin = httpx.get(srv.url + "/_admin/config").content
    srv.stop()  # flush the store before reading it
    needle = KEY.encode()
    assert not any(needle in chunk for chunk in seen)
    assert needle not in admin
    assert KEY not in caplog.text and KEY not in repr(srv.request_log) and KEY not in repr(srv)
    on_disk = [p for p in srv.data_dir.rglob("*") if p.is_file()]
    assert on_disk, "the scan must have something to scan"
    for p in on_disk:
        assert needle not in p.read_bytes(), f"the key was written to {p}"


def test_a_data_dir_the_server_creates_is_private(tmp_path: Path) -> None:
    fresh = tmp_path / "cache" / "zgpu_pandas" / "local-server"
    with LocalServer(data_dir=fresh) as srv, ApiClient(base_url=srv.url, headers=API_HEADERS) as c:
        c.upload(to_jsonl([chat_line("a", "secret")]))
    for d in (fresh, fresh / "files", fresh / "batches", fresh / "tmp"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    # a directory the user made keeps the permissions they gave it
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o750)
    os.chmod(mine, 0o750)
    with LocalServer(data_dir=mine):
        pass
    assert stat.S_IMODE(mine.stat().st_mode) == 0o750
