"""The server's answers checked against the published OpenAPI file, with schemathesis.

``zerogpu-batch.openapi.json`` here is a byte-for-byte copy of the published file. For every
operation, schemathesis generates requests from the schema (a fixed number of examples, a
derandomised seed, so a run is reproducible) and sends them over loopback to a real
:class:`LocalServer`. The credentials are always valid, so every request reaches its
handler; the server only accepts that one key in that one project, so schemathesis's own
"wrong key" probe (``ignored_auth``) really tests that a wrong key is refused.

Half of the path-parameter examples use ids that exist (a completed batch, a failed one, a
cancelled one, their input, output and error files), so the 200 answers are checked against
the schema too, not only the 404s.

What the checks hold: no 5xx, only documented status codes, documented content types and
headers, bodies that match the schema, a wrong key refused. ``negative_data_rejection``
(schema-violating input must get a 4xx) holds for ``POST /v1/batches``. It is deliberately
not applied where the server is lenient on purpose, as the API document allows:
``GET /v1/batches`` clamps ``limit`` into 1..100 rather than refusing it; an empty query
value (``order=``) means "not given"; unknown query parameters are ignored; a missing
``purpose`` on upload takes the schema's own default (``batch``).
``positive_data_acceptance`` is not applied: schema-valid requests may still be refused by
rules the schema cannot express and the API document lists (an empty upload is
``empty_file``, an unknown ``after`` cursor is ``invalid_after``, an empty
``input_file_id`` is "input_file_id is required").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import schemathesis.checks as checks
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.support import TERMINAL, chat_line, to_jsonl
from zgpu_pandas.server import LocalServer

SPEC = Path(__file__).with_name("zerogpu-batch.openapi.json")
KEY = "conformance-key"
PROJECT = "conformance-project"
HEADERS = {"x-api-key": KEY, "x-project-id": PROJECT}

SCHEMA = schemathesis.openapi.from_path(SPEC)

# Spec conformance, for every answer.
CONFORMANCE = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.unsupported_method,  # 405 with Allow for a method a path does not serve
]
POSITIVE_EXAMPLES = 40
NEGATIVE_EXAMPLES = 30


def _settings(n: int) -> settings:
    return settings(
        max_examples=n,
        derandomize=True,  # the same examples on every run and every machine
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure prints its curl
        suppress_health_check=list(HealthCheck),
    )


class Ids:
    """Resources that exist on the module's server, by kind."""

    def __init__(self) -> None:
        self.files: list[str] = []
        self.batches: list[str] = []


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    # One key, one project: any other key must be refused (schemathesis probes that).
    data_dir = tmp_path_factory.mktemp("conformance")
    with LocalServer(
        data_dir=data_dir, api_keys={KEY: {PROJECT}}, latency=0.05, concurrency=1
    ) as server:
        yield server


@pytest.fixture(scope="module")
def ids(srv: LocalServer) -> Ids:
    """A completed batch with output and error files, a failed one, a cancelled one."""
    found = Ids()
    with httpx.Client(base_url=srv.url, headers=HEADERS, timeout=30) as c:

        def upload(data: bytes) -> str:
            r = c.post("/v1/files", files={"file": ("in.jsonl", data)}, data={"purpose": "batch"})
            assert r.status_code == 200, r.text
            return str(r.json()["id"])

        def create(fid: str) -> httpx.Response:
            return c.post(
                "/v1/batches", json={"input_file_id": fid, "endpoint": "/v1/chat/completions"}
            )

        srv.faults.fail_lines(code="internal_error", custom_ids="^bad$")
        good = upload(to_jsonl([chat_line("ok", "hello"), chat_line("bad", "fails")]))
        done = create(good).json()
        long = upload(to_jsonl([chat_line(f"r{i}", "x") for i in range(200)]))
        running = create(long).json()
        assert c.post(f"/v1/batches/{running['id']}/cancel").status_code == 200
        broken = upload(b'{"custom_id": "a"}\nnot json\n')
        assert create(broken).status_code == 400
        deadline = time.monotonic() + 60
        while True:
            batches = c.get("/v1/batches").json()["data"]
            if all(b["status"] in TERMINAL for b in batches) or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert {b["status"] for b in batches} == {"completed", "failed", "cancelled"}
        found.batches = [b["id"] for b in batches]
        found.files = [f["id"] for f in c.get("/v1/files").json()["data"]]
        assert done["id"] in found.batches and len(found.files) >= 5
    return found


def _operations() -> list[Any]:
    return [result.ok() for result in SCHEMA.get_all_operations()]  # type: ignore[union-attr]


OPERATIONS = {f"{op.method.upper()} {op.path}": op for op in _operations()}


def test_the_spec_copy_lists_every_route() -> None:
    assert sorted(OPERATIONS) == [
        "DELETE /v1/files/{file_id}",
        "GET /v1/batches",
        "GET /v1/batches/{batch_id}",
        "GET /v1/files",
        "GET /v1/files/{file_id}",
        "GET /v1/files/{file_id}/content",
        "POST /v1/batches",
        "POST /v1/batches/{batch_id}/cancel",
        "POST /v1/files",
    ]


def _run(
    op: Any,
    strategy: st.SearchStrategy[Any],
    n: int,
    call: Callable[[Any], Any],
) -> dict[int, int]:
    """Run ``n`` generated cases of ``op``; returns how often each status was answered."""
    statuses: dict[int, int] = {}

    @_settings(n)
    @given(case=strategy)
    def check(case: Any) -> None:
        response = call(case)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    check()
    return statuses


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_generated_requests_get_answers_that_match_the_spec(
    label: str, srv: LocalServer, ids: Ids
) -> None:
    op = OPERATIONS[label]
    real: list[str] = []
    if "{file_id}" in op.path:
        real = ids.files
    elif "{batch_id}" in op.path:
        real = ids.batches
    param = "file_id" if "{file_id}" in op.path else "batch_id"
    pick = st.one_of(st.none(), st.sampled_from(real)) if real else st.none()
    strategy = st.tuples(op.as_strategy(headers=HEADERS), pick)

    def call(pair: tuple[Any, str | None]) -> Any:
        case, existing = pair
        if existing is not None:
            if op.method == "delete":
                existing = _fresh_file(srv)  # keep the shared ids alive for the other tests
            case.path_parameters = {param: existing}
        response = case.call(base_url=srv.url)
        case.validate_response(response, checks=[*CONFORMANCE, checks.ignored_auth])
        return response

    statuses = _run(op, strategy, POSITIVE_EXAMPLES, call)
    assert not any(s >= 500 for s in statuses), statuses
    if real:
        assert statuses.get(200), f"no example reached an existing resource: {statuses}"


def test_create_from_existing_files_matches_the_spec(srv: LocalServer, ids: Ids) -> None:
    """``POST /v1/batches`` with generated bodies naming files that exist (valid or not),
    so created batches (200) and validation failures (400) are both checked."""
    op = OPERATIONS["POST /v1/batches"]

    def call(pair: tuple[Any, str]) -> Any:
        case, fid = pair
        if isinstance(case.body, dict):
            case.body = {**case.body, "input_file_id": fid}
        response = case.call(base_url=srv.url)
        case.validate_response(response, checks=CONFORMANCE)
        return response

    strategy = st.tuples(op.as_strategy(headers=HEADERS), st.sampled_from(ids.files))
    statuses = _run(op, strategy, POSITIVE_EXAMPLES, call)
    assert statuses.get(200) and statuses.get(400), statuses


@pytest.mark.parametrize(
    ("label", "rejects_all"),
    [
        ("POST /v1/files", False),
        ("GET /v1/files", False),
        ("POST /v1/batches", True),
        ("GET /v1/batches", False),
    ],
)
def test_schema_violating_requests_get_documented_answers(
    label: str, rejects_all: bool, srv: LocalServer, ids: Ids
) -> None:
    """Negative examples (operations whose inputs the schema constrains; a path id is any
    string, so there is nothing to violate there)."""
    op = OPERATIONS[label]
    extra = [checks.negative_data_rejection] if rejects_all else []

    def call(case: Any) -> Any:
        response = case.call(base_url=srv.url)
        case.validate_response(response, checks=[*CONFORMANCE, *extra])
        return response

    strategy = op.as_strategy(GenerationMode.NEGATIVE, headers=HEADERS)
    statuses = _run(op, strategy, NEGATIVE_EXAMPLES, call)
    assert any(400 <= s < 500 for s in statuses), statuses


def _fresh_file(srv: LocalServer) -> str:
    r = httpx.post(
        srv.url + "/v1/files",
        headers=HEADERS,
        files={"file": ("d.jsonl", b"{}\n")},
        data={"purpose": "batch"},
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])
