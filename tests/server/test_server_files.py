"""Files endpoints: upload errors, list/pagination, content streaming, delete, ids."""

from __future__ import annotations

import httpx
import pytest

from tests.support import API_HEADERS, to_jsonl


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "XyZ") -> bytes:
    out = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _post_raw(api, body: bytes, ctype: str = "multipart/form-data; boundary=XyZ"):
    return api.post("/v1/files", content=body, headers={"content-type": ctype})


def test_upload_returns_file_object(api):
    data = b'{"a": 1}\n'
    f = api.upload(data, filename="my input.jsonl")
    assert f["id"].startswith("file-") and len(f["id"]) == len("file-") + 24
    assert f["object"] == "file"
    assert f["bytes"] == len(data)
    assert f["filename"] == "my input.jsonl"
    assert f["purpose"] == "batch"
    assert f["status"] == "processed"
    assert f["expires_at"] == f["created_at"] + 30 * 86400
    assert "is_error" not in f
    assert api.get(f"/v1/files/{f['id']}").json() == f


def test_upload_without_filename_defaults_to_id(api):
    r = _post_raw(api, _multipart([("purpose", None, b"batch"), ("file", None, b"{}\n")]))
    assert r.status_code == 200, r.text
    assert r.json()["filename"] == f"{r.json()['id']}.jsonl"


def test_upload_keeps_base_name_only(api):
    body = _multipart([("purpose", None, b"batch"), ("file", "C:\\Users\\me\\in.jsonl", b"{}\n")])
    assert _post_raw(api, body).json()["filename"] == "in.jsonl"


def test_upload_wrong_content_type(api):
    r = api.post("/v1/files", json={"purpose": "batch"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_content_type"


def test_upload_malformed_multipart(api):
    r = _post_raw(api, b"--XyZ\r\nthis is not a part")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_multipart"
    r = _post_raw(api, b"whatever", ctype="multipart/form-data")  # no boundary
    assert r.json()["error"]["code"] == "invalid_multipart"


def test_upload_invalid_purpose(api):
    r = _post_raw(api, _multipart([("purpose", None, b"fine-tune"), ("file", "a.jsonl", b"{}\n")]))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_purpose"
    assert r.json()["error"]["param"] == "purpose"


def test_upload_without_purpose_is_400_and_says_what_to_send(api):
    # The OpenAPI file marks purpose as required (its "default" is only the one value).
    r = _post_raw(api, _multipart([("file", "a.jsonl", b"{}\n")]))
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "invalid_purpose"
    assert err["type"] == "invalid_request_error"
    assert err["param"] == "purpose"
    assert 'purpose' in err["message"] and '"batch"' in err["message"]
    assert api.get("/v1/files").json()["data"] == []  # nothing stored
    # A purpose after the file is as good as before it.
    r = _post_raw(api, _multipart([("file", "a.jsonl", b"{}\n"), ("purpose", None, b"batch")]))
    assert r.status_code == 200, r.text


def test_upload_missing_file(api):
    r = _post_raw(api, _multipart([("purpose", None, b"batch")]))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "missing_file"


def test_upload_empty_file(api):
    r = _post_raw(api, _multipart([("purpose", None, b"batch"), ("file", "a.jsonl", b"")]))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "empty_file"


def test_upload_too_large_is_413_and_stores_nothing(start_server, api_for):
    srv = start_server(max_upload_bytes=1000)
    api = api_for(srv)
    r = api.post("/v1/files", files={"file": ("a.jsonl", b"x" * 1001)}, data={"purpose": "batch"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "file_too_large"
    assert api.get("/v1/files").json()["data"] == []
    assert list((srv.data_dir / "tmp").iterdir()) == []
    ok = api.post("/v1/files", files={"file": ("a.jsonl", b"x" * 1000)}, data={"purpose": "batch"})
    assert ok.status_code == 200


def test_default_upload_cap_is_100_mb(server):
    assert server.config.max_upload_bytes == 104_857_600


def test_list_files_pagination_and_order(api):
    ids = [api.upload(b"{}\n", filename=f"f{i}.jsonl")["id"] for i in range(5)]
    page = api.get("/v1/files").json()
    assert page["object"] == "list"
    assert [f["id"] for f in page["data"]] == ids[::-1]  # newest first
    assert page["first_id"] == ids[-1] and page["last_id"] == ids[0]
    assert page["has_more"] is False

    seen, after = [], None
    while True:
        params = {"limit": 2, **({"after": after} if after else {})}
        page = api.get("/v1/files", params=params).json()
        seen += [f["id"] for f in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == ids[::-1]

    asc = api.get("/v1/files", params={"order": "asc", "limit": 3}).json()
    assert [f["id"] for f in asc["data"]] == ids[:3] and asc["has_more"] is True
    rest = api.get("/v1/files", params={"order": "asc", "after": asc["last_id"]}).json()
    assert [f["id"] for f in rest["data"]] == ids[3:]


def test_list_files_empty_and_bad_params(api):
    empty = api.get("/v1/files").json()
    assert empty == {"object": "list", "data": [], "first_id": None, "last_id": None,
                     "has_more": False}
    for bad in ("0", "10001", "abc"):
        r = api.get("/v1/files", params={"limit": bad})
        assert r.status_code == 400, bad
        assert r.json()["error"]["code"] == "invalid_limit"
    assert api.get("/v1/files", params={"limit": 10000}).status_code == 200
    assert api.get("/v1/files", params={"order": "sideways"}).status_code == 400
    assert api.get("/v1/files", params={"purpose": "fine-tune"}).status_code == 400


def test_list_files_purpose_filter(api, make_lines):
    done = api.wait(api.submit(make_lines(2))["id"])
    outputs = api.get("/v1/files", params={"purpose": "batch_output"}).json()["data"]
    assert [f["id"] for f in outputs] == [done["output_file_id"]]
    assert outputs[0]["is_error"] is False
    inputs = api.get("/v1/files", params={"purpose": "batch"}).json()["data"]
    assert [f["id"] for f in inputs] == [done["input_file_id"]]


def test_content_is_streamed_back_byte_for_byte(api):
    data = b'{"x": "caf\xc3\xa9"}\r\n' + b"\x00\xff binary is kept as is\n" * 50_000
    f = api.upload(data, filename="données.jsonl")
    with api.stream("GET", f"/v1/files/{f['id']}/content") as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/jsonl"
        assert r.headers["content-length"] == str(len(data))
        assert r.headers["content-disposition"].startswith('attachment; filename="donn_es.jsonl"')
        assert "filename*=UTF-8''donn%C3%A9es.jsonl" in r.headers["content-disposition"]
        body = b"".join(r.iter_bytes())
    assert body == data


def test_delete_file(api):
    f = api.upload(b"{}\n")
    r = api.delete(f"/v1/files/{f['id']}")
    assert r.json() == {"id": f["id"], "object": "file", "deleted": True}
    assert api.get(f"/v1/files/{f['id']}").status_code == 404
    assert api.get(f"/v1/files/{f['id']}/content").status_code == 404
    assert api.get("/v1/files").json()["data"] == []
    assert api.delete(f"/v1/files/{f['id']}").status_code == 404
    # a deleted file still works as a page cursor
    assert api.get("/v1/files", params={"after": f["id"]}).status_code == 200


def test_unknown_cursor_is_400(api):
    r = api.get("/v1/files", params={"after": "file-nope"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "after"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/files/..%2F..%2Fmeta.sqlite3/content",
        "/v1/files/file-..%2F..%2Fmeta.sqlite3/content",
        "/v1/files/%2e%2e/content",
        "/v1/files/file-abc%00/content",
        "/v1/files/file-" + "a" * 200,
        "/v1/batches/..%2Fmeta.sqlite3",
        "/v1/batches/batch_x%2F..%2F..",
    ],
)
def test_malformed_ids_and_traversal_are_404(server, path):
    r = httpx.get(server.url + path, headers=API_HEADERS)
    assert r.status_code == 404
    assert "error" in r.json()
    assert b"SQLite" not in r.content


def test_unknown_route_and_method_get_json_errors(api):
    r = api.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
    r = api.put("/v1/files")
    assert r.status_code == 405 and "error" in r.json()
    assert set(r.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    head = api.head("/v1/files")
    assert head.status_code == 200 and head.content == b""


def test_list_batches_pagination(api, make_lines):
    ids = [api.submit(make_lines(1, prefix=f"b{i}-"))["id"] for i in range(4)]
    page = api.get("/v1/batches", params={"limit": 3}).json()
    assert [b["id"] for b in page["data"]] == ids[::-1][:3]
    assert page["has_more"] is True
    rest = api.get("/v1/batches", params={"limit": 3, "after": page["last_id"]}).json()
    assert [b["id"] for b in rest["data"]] == [ids[0]]
    assert rest["has_more"] is False
    # limit is clamped to 1..100, not rejected
    assert len(api.get("/v1/batches", params={"limit": 0}).json()["data"]) == 1
    assert len(api.get("/v1/batches", params={"limit": 500}).json()["data"]) == 4
    assert api.get("/v1/batches", params={"limit": "x"}).status_code == 400


def test_batch_ids_look_like_the_service(api, make_lines):
    b = api.submit(make_lines(1))
    assert b["id"].startswith("batch_") and len(b["id"]) == len("batch_") + 26


def test_upload_of_jsonl_made_by_helper(api):
    data = to_jsonl([{"a": 1}, {"b": 2}])
    assert api.upload(data)["bytes"] == len(data)
