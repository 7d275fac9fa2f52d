"""The happy path over real HTTP: files, a batch to completion, output shapes."""

from __future__ import annotations

import httpx
import pytest

from tests.support import API_HEADERS, ApiClient
from zgpu_pandas.server import LocalServer, builtin_reply


def test_upload_batch_complete_and_download(api, make_lines):
    lines = make_lines(5)
    batch = api.submit(lines, metadata={"job": "t"})
    assert batch["status"] == "in_progress"
    assert batch["request_counts"] == {"total": 5, "completed": 0, "failed": 0}
    assert batch["metadata"] == {"job": "t"}
    done = api.wait(batch["id"])
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    assert done["error_file_id"] is None
    for key in ("in_progress_at", "finalizing_at", "completed_at"):
        assert isinstance(done[key], int)
    out = api.jsonl_of(done["output_file_id"])
    by_id = {x["custom_id"]: x for x in out}
    assert sorted(by_id) == sorted(line["custom_id"] for line in lines)
    for line in lines:
        got = by_id[line["custom_id"]]
        assert got["id"].startswith("batch_req_")
        assert got["response"]["status_code"] == 200
        assert got["response"]["request_id"].startswith("req_")
        content = got["response"]["body"]["choices"][0]["message"]["content"]
        assert content == builtin_reply(line["body"])
        assert line["body"]["messages"][0]["content"] in content


def test_every_response_has_request_id(api):
    r = api.get("/v1/files")
    assert r.headers["x-request-id"].startswith("req_")
    r = api.get("/v1/files/file-nope")
    assert r.status_code == 404
    assert r.headers["x-request-id"].startswith("req_")


def test_fail_requests_and_drop_connections(server, api):
    server.faults.fail_requests(status=500, count=2, method="GET", path=r"^/v1/files$")
    assert api.get("/v1/files").status_code == 500
    assert api.get("/v1/files").json()["error"]["type"] == "internal_error"
    assert api.get("/v1/files").status_code == 200
    server.faults.drop_connections(method="GET")
    with pytest.raises(httpx.TransportError):
        api.get("/v1/batches")
    assert api.get("/v1/batches").status_code == 200
    assert ("GET", "/v1/batches", 0) in server.request_log


def test_restart_keeps_data(tmp_path, make_lines):
    with LocalServer(data_dir=tmp_path / "d") as srv:
        with ApiClient(base_url=srv.url, headers=API_HEADERS) as c:
            b = c.submit(make_lines(3))
            c.wait(b["id"])
        port = srv.port
        srv.restart()
        assert srv.port == port
        with ApiClient(base_url=srv.url, headers=API_HEADERS) as c:
            assert c.get(f"/v1/batches/{b['id']}").json()["status"] == "completed"
