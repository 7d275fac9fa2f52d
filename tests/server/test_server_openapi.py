"""The server's answers checked against the published OpenAPI file with schemathesis:
generated requests for every operation, answers validated for status codes, content types,
response schemas and the absence of server errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from tests.support import API_HEADERS
from zgpu_pandas.server import LocalServer

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "zerogpu-batch.openapi.json"
if not SPEC.exists():  # pragma: no cover - the spec lives beside the repository
    pytest.skip(f"OpenAPI file not found at {SPEC}", allow_module_level=True)

schema = schemathesis.openapi.from_path(SPEC)
# Valid requests only: where the OpenAPI file and the spec disagree the spec wins (e.g. the
# batches list clamps an out-of-range limit instead of rejecting it), and invalid input is
# covered rule by rule in the other test files.
schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE])
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.ignored_auth,
    checks.unsupported_method,
]


@pytest.fixture(scope="module")
def openapi_server(tmp_path_factory):
    # a key list, so that requests with a made-up key are refused as the spec says
    with LocalServer(data_dir=tmp_path_factory.mktemp("openapi"),
                     api_keys={API_HEADERS["x-api-key"]}) as srv:
        yield srv


@schema.parametrize()
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_answers_conform_to_openapi(case, openapi_server):
    case.call_and_validate(base_url=openapi_server.url, headers=API_HEADERS, checks=CHECKS)
