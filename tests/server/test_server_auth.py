"""Auth as the quickstart states it, the relaxed rule, key lists and project scoping."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support import ENDPOINTS, to_jsonl


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_missing_api_key_is_401_everywhere(server, method, path):
    r = httpx.request(method, server.url + path, headers={"x-project-id": "p"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Missing authentication headers"
    assert r.json()["error"]["type"] == "authentication_error"
    assert r.headers["x-request-id"].startswith("req_")


def test_empty_api_key_is_401(server):
    r = httpx.get(server.url + "/v1/files", headers={"x-api-key": "", "x-project-id": "p"})
    assert r.status_code == 401


def test_missing_project_is_401_by_default(server):
    r = httpx.get(server.url + "/v1/files", headers={"x-api-key": "k"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "Missing authentication headers"


def test_relaxed_rule_makes_project_optional(start_server, api_for, make_lines):
    srv = start_server(require_project_id=False)
    bare = api_for(srv, x_project_id=None)
    batch = bare.submit(make_lines(2))
    assert bare.wait(batch["id"])["status"] == "completed"
    # no project = the default project; a named project does not see its resources
    other = api_for(srv, x_project_id="elsewhere")
    assert other.get(f"/v1/batches/{batch['id']}").status_code == 404
    assert bare.get(f"/v1/batches/{batch['id']}").status_code == 200


def test_any_nonempty_key_accepted_by_default(server):
    r = httpx.get(server.url + "/v1/files", headers={"x-api-key": "whatever", "x-project-id": "p"})
    assert r.status_code == 200


def test_key_not_accepted_is_403(start_server):
    srv = start_server(api_keys={"good-key"})
    bad = httpx.get(srv.url + "/v1/files", headers={"x-api-key": "bad-key", "x-project-id": "p"})
    assert bad.status_code == 403
    assert bad.json()["error"]["message"] == "Invalid credentials"
    assert bad.json()["error"]["type"] == "authentication_error"
    good = httpx.get(srv.url + "/v1/files", headers={"x-api-key": "good-key", "x-project-id": "p"})
    assert good.status_code == 200


def test_key_not_in_that_project_is_403(start_server):
    srv = start_server(api_keys={"k1": {"proj-a"}, "admin-key": None})
    h = {"x-api-key": "k1"}
    assert httpx.get(srv.url + "/v1/files", headers={**h, "x-project-id": "proj-a"}).status_code == 200
    assert httpx.get(srv.url + "/v1/files", headers={**h, "x-project-id": "proj-b"}).status_code == 403
    h2 = {"x-api-key": "admin-key", "x-project-id": "proj-b"}
    assert httpx.get(srv.url + "/v1/files", headers=h2).status_code == 200


def test_other_projects_resources_are_404(server, api, api_for, make_lines):
    batch = api.submit(make_lines(1))
    api.wait(batch["id"])
    fid = batch["input_file_id"]
    other = api_for(server, x_project_id="another-project")
    assert other.get(f"/v1/files/{fid}").status_code == 404
    assert other.get(f"/v1/files/{fid}").json()["error"]["message"] == f"File {fid} not found"
    assert other.get(f"/v1/files/{fid}/content").status_code == 404
    assert other.delete(f"/v1/files/{fid}").status_code == 404
    r = other.create_batch(fid)
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"Input file not found: {fid}"
    assert other.get(f"/v1/batches/{batch['id']}").status_code == 404
    assert other.get(f"/v1/batches/{batch['id']}").json()["error"]["message"] == (
        f"Batch not found: {batch['id']}"
    )
    assert other.post(f"/v1/batches/{batch['id']}/cancel").status_code == 404
    assert other.get("/v1/files").json()["data"] == []
    assert other.get("/v1/batches").json()["data"] == []
    # and the owner still sees everything
    assert api.get(f"/v1/files/{fid}").status_code == 200


def test_same_key_different_projects_are_isolated(server, api_for):
    a = api_for(server, x_project_id="a")
    b = api_for(server, x_project_id="b")
    fa = a.upload(to_jsonl([b"{}"]))
    assert [f["id"] for f in a.get("/v1/files").json()["data"]] == [fa["id"]]
    assert b.get("/v1/files").json()["data"] == []


def test_preflight_needs_no_auth(server):
    r = httpx.options(
        server.url + "/v1/batches",
        headers={"origin": "http://localhost:8888", "access-control-request-method": "POST",
                 "access-control-request-headers": "x-api-key, x-project-id"},
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "*"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "x-api-key" in r.headers["access-control-allow-headers"]
    assert "x-project-id" in r.headers["access-control-allow-headers"]


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9a-z-]+$")


def _allowed_headers(r: httpx.Response) -> list[str]:
    value = r.headers["access-control-allow-headers"]
    items = [h.strip() for h in value.split(",")]
    # A list of real header names: no wildcard inside a list, every item a header token.
    assert "*" not in value
    assert all(_TOKEN.match(h) for h in items), items
    return items


def test_preflight_allow_headers_are_real_names(server):
    url = server.url + "/v1/files"
    plain = httpx.options(url, headers={"origin": "http://localhost:8888",
                                        "access-control-request-method": "POST"})
    allowed = _allowed_headers(plain)
    # The ZeroGPU headers, and those the official openai SDK sends, by their names.
    for name in ("x-api-key", "x-project-id", "content-type", "authorization",
                 "x-stainless-retry-count", "x-stainless-lang", "x-stainless-timeout"):
        assert name in allowed
    # Whatever a browser says it will send is allowed by name (reflected), if it is a
    # header name at all; anything else is left out.
    asked = httpx.options(url, headers={
        "origin": "http://localhost:8888", "access-control-request-method": "POST",
        "access-control-request-headers": "X-Api-Key,x-stainless-new-thing, x-my-tracing,"
                                          " not a header, <b>",
    })
    allowed = _allowed_headers(asked)
    assert {"x-api-key", "x-stainless-new-thing", "x-my-tracing"} <= set(allowed)
    assert "not a header" not in allowed and "<b>" not in allowed
    assert len(allowed) == len(set(allowed))
    assert "access-control-request-headers" in asked.headers["vary"].lower()


def test_healthz_needs_no_auth(server):
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}


def test_keys_never_reach_disk_logs_or_admin(start_server, api_for, make_lines, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    upstream = start_server(api_keys={"sk-upstream-secret-42"})
    srv = start_server(engine="upstream", upstream_url=upstream.url,
                       upstream_api_key="sk-upstream-secret-42",
                       upstream_headers={"x-project-id": "p"}, api_keys={"sk-client-secret-7"})
    api = api_for(srv, x_api_key="sk-client-secret-7")
    done = api.wait(api.submit(make_lines(3))["id"])
    assert done["request_counts"]["completed"] == 3
    api.get("/v1/files/file-nope")  # an error path too
    admin = httpx.get(srv.url + "/_admin/config").text
    blobs = [p.read_bytes() for d in (srv.data_dir, upstream.data_dir) for p in d.rglob("*")
             if p.is_file()]
    for secret in ("sk-upstream-secret-42", "sk-client-secret-7"):
        assert secret not in admin
        assert secret not in caplog.text
        assert secret not in repr(srv) + repr(srv.config) + repr(srv.faults)
        assert not any(secret.encode() in b for b in blobs)


# ------------------------------------------------------------- accept_bearer option
def test_bearer_is_ignored_by_default(server):
    r = httpx.get(server.url + "/v1/files",
                  headers={"authorization": "Bearer k", "x-project-id": "p"})
    assert r.status_code == 401


def test_accept_bearer_reads_authorization_and_openai_project(start_server):
    srv = start_server(accept_bearer=True, api_keys={"sk-good"})
    url = srv.url + "/v1/files"

    def status(**headers: str) -> int:
        return httpx.get(url, headers={k.replace("_", "-"): v for k, v in headers.items()}).status_code

    assert status(authorization="Bearer sk-good", openai_project="p") == 200
    assert status(authorization="bearer   sk-good", x_project_id="p") == 200
    assert status(authorization="Bearer sk-bad", openai_project="p") == 403
    assert status(authorization="Bearer sk-good") == 401  # still needs a project
    assert status(authorization="Basic sk-good", openai_project="p") == 401
    assert status(authorization="Bearer", openai_project="p") == 401
    # The ZeroGPU header, when present, is the key; the Bearer token is then not used.
    assert status(x_api_key="sk-bad", authorization="Bearer sk-good", x_project_id="p") == 403
    assert status(x_api_key="sk-good", authorization="Bearer sk-bad", x_project_id="p") == 200
    # x-project-id wins over OpenAI-Project, and both scope resources alike.
    up = httpx.post(url, headers={"authorization": "Bearer sk-good", "openai-project": "a",
                                  "x-project-id": "b"},
                    files={"file": ("a.jsonl", b"{}\n")}, data={"purpose": "batch"})
    assert up.status_code == 200
    fid = up.json()["id"]
    assert httpx.get(f"{url}/{fid}", headers={"x-api-key": "sk-good", "x-project-id": "b"}
                     ).status_code == 200
    assert httpx.get(f"{url}/{fid}", headers={"authorization": "Bearer sk-good",
                                              "openai-project": "a"}).status_code == 404
    assert httpx.get(srv.url + "/_admin/config").json()["accept_bearer"] is True
