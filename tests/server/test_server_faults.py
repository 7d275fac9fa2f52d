"""Fault injection: each kind through the real HTTP stack, the admin endpoints, and
argument checking."""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import pytest

from tests.support import to_jsonl
from zgpu_pandas.server import Faults


def test_fail_requests_matches_method_path_and_count(server, api):
    server.faults.fail_requests(status=503, count=2, method="GET", path=r"^/v1/batches")
    assert api.get("/v1/files").status_code == 200  # path does not match
    assert api.post("/v1/batches", json={}).status_code == 400  # method does not match
    r = api.get("/v1/batches")
    assert r.status_code == 503
    assert r.json()["error"]["type"] == "internal_error"
    assert r.headers["x-request-id"].startswith("req_")
    assert api.get("/v1/batches/batch_X").status_code == 503
    assert api.get("/v1/batches").status_code == 200  # count used up


@pytest.mark.parametrize(
    ("status", "type_", "code"),
    [
        (500, "internal_error", "internal_error"),
        (502, "internal_error", "internal_error"),
        (503, "internal_error", "internal_error"),
        (504, "internal_error", "internal_error"),
        (400, "invalid_request_error", "invalid_request_error"),
        (422, "invalid_request_error", "invalid_request_error"),
        (401, "authentication_error", "missing_authentication"),
        (403, "authentication_error", "invalid_credentials"),
        (413, "invalid_request_error", "file_too_large"),
    ],
)
def test_fail_requests_use_the_spec_codes(server, api, status, type_, code):
    server.faults.fail_requests(status=status)
    r = api.get("/v1/files")
    assert r.status_code == status
    err = r.json()["error"]
    assert (err["type"], err["code"]) == (type_, code)
    assert err["message"]


def test_fail_requests_429_kinds_and_retry_after(server, api):
    server.faults.fail_requests(status=429, retry_after=3)
    r = api.get("/v1/files")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "3"
    assert r.json()["error"]["type"] == "rate_limit_exceeded"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    server.faults.fail_requests(status=429, code="insufficient_quota")
    r = api.get("/v1/files")
    assert r.json()["error"]["type"] == "insufficient_quota"
    assert r.json()["error"]["code"] == "insufficient_quota"
    assert "retry-after" not in r.headers


def test_fail_requests_does_not_run_the_handler(server, api):
    f = api.upload(b"{}\n")
    server.faults.fail_requests(status=500, method="DELETE")
    assert api.delete(f"/v1/files/{f['id']}").status_code == 500
    assert api.get(f"/v1/files/{f['id']}").status_code == 200  # not deleted


def test_drop_before_handler_creates_nothing(server, api, make_lines):
    f = api.upload(to_jsonl(make_lines(2)))
    server.faults.drop_connections(method="POST", path=r"^/v1/batches$")
    with pytest.raises(httpx.TransportError):
        api.create_batch(f["id"])
    assert api.get("/v1/batches").json()["data"] == []
    assert ("POST", "/v1/batches", 0) in server.request_log


def test_drop_after_handler_loses_only_the_response(server, api, make_lines):
    f = api.upload(to_jsonl(make_lines(2)))
    server.faults.drop_connections(method="POST", path=r"^/v1/batches$", after_handler=True)
    with pytest.raises(httpx.TransportError):
        api.create_batch(f["id"], metadata={"token": "t-1"})
    listed = api.get("/v1/batches").json()["data"]
    assert len(listed) == 1  # the batch WAS created
    assert listed[0]["metadata"] == {"token": "t-1"}
    assert api.wait(listed[0]["id"])["status"] == "completed"


def test_delay_before_handler(server, api):
    server.faults.delay_requests(seconds=1, method="GET", path=r"^/v1/files$")
    with pytest.raises(httpx.ReadTimeout):
        api.get("/v1/files", timeout=0.2)
    assert api.get("/v1/files").status_code == 200  # count used up


def test_delay_after_handler_runs_the_handler_first(server, api, make_lines):
    f = api.upload(to_jsonl(make_lines(1)))
    server.faults.delay_requests(seconds=1, method="POST", path=r"^/v1/batches$",
                                 after_handler=True)
    body = {"input_file_id": f["id"], "endpoint": "/v1/chat/completions"}
    with pytest.raises(httpx.ReadTimeout):
        api.post("/v1/batches", json=body, timeout=0.2)
    # the response was late, not the work: the batch exists (poll until it shows up)
    batch = None
    for _ in range(500):
        data = api.get("/v1/batches").json()["data"]
        if data:
            batch = data[0]
            break
        threading.Event().wait(0.01)
    assert batch is not None


def test_truncate_downloads(server, api):
    data = b"0123456789" * 10_000
    f = api.upload(data)
    server.faults.truncate_downloads(after_bytes=1234)
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), api.stream(
        "GET", f"/v1/files/{f['id']}/content"
    ) as r:
        assert r.headers["content-length"] == str(len(data))
        for chunk in r.iter_raw():
            received += chunk
    assert bytes(received) == data[:1234]
    assert api.get(f"/v1/files/{f['id']}/content").content == data  # next one is whole


def test_drop_uploads(server, api):
    server.faults.drop_uploads(after_bytes=1000)
    with pytest.raises(httpx.TransportError):
        api.post("/v1/files", files={"file": ("a.jsonl", b"x" * 200_000)},
                 data={"purpose": "batch"})
    assert api.get("/v1/files").json()["data"] == []
    assert list((server.data_dir / "tmp").iterdir()) == []
    assert api.upload(b"{}\n")["bytes"] == 3


def test_fail_lines_count_then_retry_succeeds(server, api, make_lines):
    server.faults.fail_lines(code="rate_limit_exceeded", count=3)
    lines = make_lines(10)
    first = api.wait(api.submit(lines)["id"])
    assert first["request_counts"] == {"total": 10, "completed": 7, "failed": 3}
    errs = api.jsonl_of(first["error_file_id"])
    assert {e["error"]["code"] for e in errs} == {"rate_limit_exceeded"}
    assert errs[0]["error"]["message"].startswith("[legacy:http_429] ")
    # resubmitting the failed rows works: the fault is used up
    retry = [x for x in lines if x["custom_id"] in {e["custom_id"] for e in errs}]
    second = api.wait(api.submit(retry)["id"])
    assert second["request_counts"] == {"total": 3, "completed": 3, "failed": 0}


def test_fail_lines_by_custom_id_and_message(server, api, make_lines):
    server.faults.fail_lines(code="insufficient_quota", custom_ids=r"^row-[12]$",
                             message="Top up your account")
    done = api.wait(api.submit(make_lines(5))["id"])
    errs = api.jsonl_of(done["error_file_id"])
    assert sorted(e["custom_id"] for e in errs) == ["row-1", "row-2"]
    assert errs[0]["error"]["message"] == "[legacy:http_429] Top up your account"


@pytest.mark.parametrize("code", ["internal_error", "not_found_error", "invalid_request_error",
                                  "context_length_exceeded", "request_too_large",
                                  "authentication_error"])
def test_fail_lines_any_spec_code(server, api, make_lines, code):
    server.faults.fail_lines(code=code)
    done = api.wait(api.submit(make_lines(2))["id"])
    assert {e["error"]["code"] for e in api.jsonl_of(done["error_file_id"])} == {code}
    assert done["output_file_id"] is None


def test_fail_lines_rate_is_seeded(start_server, api_for, make_lines):
    failing = []
    for _ in range(2):
        srv = start_server(faults=Faults(seed=7))
        srv.faults.fail_lines(rate=0.3)
        api = api_for(srv)
        done = api.wait(api.submit(make_lines(100))["id"])
        failing.append(sorted(e["custom_id"] for e in api.jsonl_of(done["error_file_id"])))
    assert failing[0] == failing[1]
    assert 10 < len(failing[0]) < 60


def test_clear(server, api):
    server.faults.fail_requests(status=500, count=5)
    server.faults.fail_lines()
    server.faults.clear()
    assert server.faults.describe() == []
    assert api.get("/v1/files").status_code == 200


def test_admin_endpoints(server, api):
    base = server.url + "/_admin/faults"
    r = httpx.post(base, json={"kind": "fail_requests", "status": 502, "path": "^/v1/files$"})
    assert r.status_code == 200
    assert r.json()["faults"][0]["status"] == 502
    assert httpx.get(base).json()["faults"][0]["kind"] == "fail"
    assert api.get("/v1/files").status_code == 502
    httpx.post(base, json=[{"kind": "fail_lines", "code": "internal_error", "rate": 1.0}])
    assert server.faults.has_line_faults
    assert httpx.delete(base).json() == {"faults": []}
    bad = httpx.post(base, json={"kind": "explode"})
    assert bad.status_code == 400
    bad = httpx.post(base, json={"kind": "fail_lines", "code": "nope"})
    assert bad.status_code == 400
    assert httpx.post(base, content=b"{not json").status_code == 400
    cfg = httpx.get(server.url + "/_admin/config").json()
    assert cfg["admin"] is True and cfg["data_dir"] == str(server.data_dir)
    # admin calls are not API calls
    assert not any(p.startswith("/_admin") for _, p, _ in server.request_log)


def test_admin_endpoints_off_by_default(start_server):
    srv = start_server(admin=False)
    assert httpx.get(srv.url + "/_admin/faults").status_code == 404
    assert httpx.post(srv.url + "/_admin/faults", json={"kind": "fail_lines"}).status_code == 404


def test_faults_via_config(start_server, api_for, make_lines):
    faults = Faults()
    faults.fail_lines(code="internal_error", custom_ids="row-0$")
    srv = start_server(faults=faults)
    assert srv.faults is faults
    api = api_for(srv)
    done = api.wait(api.submit(make_lines(3))["id"])
    assert [e["custom_id"] for e in api.jsonl_of(done["error_file_id"])] == ["row-0"]


def test_faults_are_off_by_default(server, api, make_lines):
    assert server.faults.describe() == []
    done = api.wait(api.submit(make_lines(30))["id"])
    assert done["request_counts"]["failed"] == 0


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        ("fail_requests", {"status": 200}),
        ("fail_requests", {"count": 0}),
        ("drop_connections", {"count": -1}),
        ("delay_requests", {"seconds": -1}),
        ("truncate_downloads", {"after_bytes": -5}),
        ("drop_uploads", {"after_bytes": -1}),
        ("fail_lines", {"code": "bogus"}),
        ("fail_lines", {"rate": 1.5}),
        ("fail_lines", {"count": 0}),
    ],
)
def test_bad_fault_arguments_raise(call, kwargs):
    with pytest.raises(ValueError):
        getattr(Faults(), call)(**kwargs)


def test_request_log_records_every_api_call(server, api):
    api.get("/v1/files")
    api.get("/v1/files/file-nope")
    server.faults.fail_requests(status=500)
    api.get("/v1/batches")
    assert Counter(server.request_log) == Counter(
        [("GET", "/v1/files", 200), ("GET", "/v1/files/file-nope", 404), ("GET", "/v1/batches", 500)]
    )
