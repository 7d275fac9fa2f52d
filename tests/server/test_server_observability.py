"""What an operator sees: /metrics parsed by the Prometheus client's own parser, /readyz,
one structured access line per request (key id, never the key), and rate-limited lines for
upstream errors and failed batch lines."""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import subprocess
import sys

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.support import API_HEADERS
from zgpu_pandas.server.observe import JsonFormatter, route_of


def _metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_count_requests_lines_by_outcome_and_batches(server, api, make_lines):
    server.faults.fail_lines(code="internal_error", custom_ids="^bad-")
    done = api.wait(api.submit(make_lines(3, prefix="ok-") + make_lines(2, prefix="bad-"))["id"])
    assert done["status"] == "completed"
    m = _metrics(server.url)
    assert m[("zgpu_server_batch_lines_total", (("outcome", "completed"),))] == 3
    assert m[("zgpu_server_batch_lines_total", (("outcome", "internal_error"),))] == 2
    assert m[("zgpu_server_batches", (("status", "completed"),))] == 1
    created = (("method", "POST"), ("route", "/v1/batches"), ("status", "200"))
    assert m[("zgpu_server_requests_total", created)] == 1
    polls = (("method", "GET"), ("route", "/v1/batches/{batch_id}"), ("status", "200"))
    assert m[("zgpu_server_requests_total", polls)] >= 1
    # ids never become labels; the scrape and probes are not counted as API requests
    ids = re.compile(r"batch_[0-9A-Z]{10}|file-[0-9a-zA-Z]{10}")
    assert not any(ids.search(v) for (_, labels) in m for _, v in labels)
    assert not any(dict(labels).get("route") == "/metrics" for (_, labels) in m)


def test_queue_depth_is_by_project(start_server, api_for, make_lines):
    srv = start_server(latency=0.05, concurrency=1)
    a = api_for(srv, x_project_id="team-a")
    batch = a.submit(make_lines(40))
    a.wait_until(batch["id"], lambda b: b["request_counts"]["completed"] >= 1)
    m = _metrics(srv.url)
    depth = m[("zgpu_server_queue_lines", (("project", "team-a"),))]
    assert 0 < depth < 40
    assert ("zgpu_server_queue_lines", (("project", "test-project"),)) not in m
    a.post(f"/v1/batches/{batch['id']}/cancel")
    a.wait(batch["id"])
    assert ("zgpu_server_queue_lines", (("project", "team-a"),)) not in _metrics(srv.url)


def test_upstream_calls_latency_and_retries(start_server, api_for, make_lines, caplog):
    upstream = start_server()  # a real local server as the upstream, failing twice
    upstream.faults.fail_requests(status=500, count=2, path="/v1/chat/completions")
    srv = start_server(engine="upstream", upstream_url=upstream.url, upstream_api_key="test-key",
                       upstream_headers={"x-project-id": "up"}, upstream_backoff=0.01,
                       concurrency=1)
    api = api_for(srv)
    with caplog.at_level(logging.WARNING, logger="zgpu_pandas.server.upstream"):
        done = api.wait(api.submit(make_lines(3))["id"])
    assert done["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    m = _metrics(srv.url)
    assert m[("zgpu_server_upstream_retries_total", (("code", "internal_error"),))] == 2
    assert m[("zgpu_server_upstream_errors_total", (("code", "internal_error"),))] == 2
    assert m[("zgpu_server_upstream_seconds_count", ())] == 5  # 3 answered + 2 failed
    assert m[("zgpu_server_upstream_in_flight", ())] == 0
    said = [r for r in caplog.records if r.name == "zgpu_pandas.server.upstream"]
    assert len(said) == 2 and all("internal_error (HTTP 500), retrying" in r.getMessage()
                                  for r in said)


def test_failed_lines_are_logged_rate_limited(server, api, make_lines, caplog):
    server.faults.fail_lines(code="rate_limit_exceeded")
    with caplog.at_level(logging.WARNING, logger="zgpu_pandas.server.lines"):
        done = api.wait(api.submit(make_lines(300))["id"])
    assert done["request_counts"]["failed"] == 300
    said = [r for r in caplog.records if r.name == "zgpu_pandas.server.lines"]
    assert 20 <= len(said) < 100  # a burst of 20, then about one a second
    first = said[0]
    assert first.fields["batch_id"] == done["id"] and first.fields["code"] == "rate_limit_exceeded"
    assert "line row-" in first.getMessage()
    m = _metrics(server.url)
    assert m[("zgpu_server_batch_lines_total", (("outcome", "rate_limit_exceeded"),))] == 300


def test_lines_a_cancel_ends_are_counted_not_logged(start_server, api_for, make_lines, caplog):
    srv = start_server(latency=0.05, concurrency=1)
    api = api_for(srv)
    with caplog.at_level(logging.WARNING, logger="zgpu_pandas.server.lines"):
        batch = api.submit(make_lines(30))
        api.post(f"/v1/batches/{batch['id']}/cancel")
        done = api.wait(batch["id"])
    assert done["status"] == "cancelled" and done["request_counts"]["failed"] > 0
    assert not [r for r in caplog.records if r.name == "zgpu_pandas.server.lines"]
    m = _metrics(srv.url)
    cancelled = m[("zgpu_server_batch_lines_total", (("outcome", "batch_cancelled"),))]
    assert cancelled == done["request_counts"]["failed"]


def test_access_lines_carry_ids_project_and_a_key_id_never_the_key(server, api, caplog):
    with caplog.at_level(logging.INFO, logger="zgpu_pandas.server.access"):
        r = api.get("/v1/batches/batch_01HZX0000000000000000000AB")
    assert r.status_code == 404
    (rec,) = [x for x in caplog.records if x.name == "zgpu_pandas.server.access"]
    line = orjson.loads(JsonFormatter().format(rec))
    assert line["request_id"] == r.headers["x-request-id"]
    assert line["project"] == "test-project" and line["status"] == 404
    assert line["batch_id"] == "batch_01HZX0000000000000000000AB"
    assert line["route"] == "/v1/batches/{batch_id}" and line["latency_ms"] >= 0
    key = API_HEADERS["x-api-key"]
    assert line["key_id"] == hashlib.sha256(key.encode()).hexdigest()[:8]
    assert key not in orjson.dumps(line).decode()


def test_readyz_says_what_is_not_ready(start_server, server):
    r = httpx.get(server.url + "/readyz")
    assert r.status_code == 200 and r.json()["status"] == "ready"
    assert r.json()["checks"]["data_dir"] == "ok"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = start_server(engine="upstream", upstream_url=f"http://127.0.0.1:{port}")
    r = httpx.get(down.url + "/readyz")
    assert r.status_code == 503 and r.json()["status"] == "not ready"
    assert "cannot reach the upstream" in r.json()["checks"]["upstream"]
    assert httpx.get(down.url + "/healthz").status_code == 200  # alive, though not ready
    up = start_server(engine="upstream", upstream_url=server.url, upstream_api_key="test-key",
                      upstream_headers={"x-project-id": "p"})
    r = httpx.get(up.url + "/readyz")
    assert r.status_code == 200 and r.json()["checks"]["upstream"] == "ok"


def test_route_labels_hold_no_ids():
    assert route_of("/v1/files/file-abc/content") == "/v1/files/{file_id}/content"
    assert route_of("/v1/batches/batch_x/cancel") == "/v1/batches/{batch_id}/cancel"
    assert route_of("/v1/batches") == "/v1/batches"
    assert route_of("/v1/nope/x/y/z") == "other" and route_of("/etc/passwd") == "other"


def test_serve_log_format_json_writes_one_json_object_per_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "ZGPU_SERVER_API_KEYS": "sk-team-secret team-a"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "zgpu_pandas", "serve", "--port", "0", "--log-format", "json",
         "--data-dir", str(tmp_path / "d")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        url = re.search(r"http://\S+", proc.stdout.readline())
        assert url
        r = httpx.get(url.group(0) + "/v1/files",
                      headers={"x-api-key": "sk-team-secret", "x-project-id": "team-a"})
        assert r.status_code == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    lines = [orjson.loads(x) for x in err.splitlines() if x.strip()]  # every line is JSON
    access = [x for x in lines if x.get("logger") == "zgpu_pandas.server.access"]
    assert len(access) == 1
    assert access[0]["project"] == "team-a" and access[0]["status"] == 200
    assert access[0]["request_id"] == r.headers["x-request-id"]
    assert "sk-team-secret" not in err
