"""A ``BatchJob`` used directly (no journal) never creates a chunk's batch twice: after a
create whose outcome is unknown, ``job.submit()`` looks the batch up by its token first."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from zgpu_pandas._client import Client
from zgpu_pandas._progress import JobStatus
from zgpu_pandas.core.job import BatchJob
from zgpu_pandas.core.requests import build_requests
from zgpu_pandas.errors import CreateOutcomeUnknownError, JobSubmitError
from zgpu_pandas.server import LocalServer

from .resume_support import KEY, MODEL, api_calls, assert_all_answered


class LoseTheSecondCreate:
    """A progress display that, once the first batch exists, makes the service lose the
    answer of the next create (after creating it) and fail every batch listing, so the
    client cannot tell whether the create went through."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.armed = False

    def update(self, st: JobStatus) -> None:
        if not self.armed and st.batch_ids:
            self.armed = True
            f = self.server.faults
            f.drop_connections(method="POST", path="^/v1/batches$", after_handler=True)
            f.fail_requests(status=503, count=50, method="GET", path="^/v1/batches$")

    def close(self, st: JobStatus | None) -> None:
        pass


@pytest.fixture
def quick_client(server: LocalServer) -> Iterator[Client]:
    with Client(
        api_key=KEY, project_id="proj", base_url=server.url, poll_interval=0.02, max_retries=1
    ) as c:
        yield c


def test_submit_after_an_unknown_create_finds_the_batch_instead_of_creating_another(
    server: LocalServer, quick_client: Client
) -> None:
    texts = ["a", "b", "c", "d"]
    df = pd.DataFrame({"q": texts})
    reqs = build_requests(df, model=MODEL, prompt="q", max_lines=2)
    job = BatchJob(
        client=quick_client, frame=df, requests=reqs, progress=LoseTheSecondCreate(server)
    )
    with pytest.raises(JobSubmitError) as info:
        job.submit()
    assert isinstance(info.value.__cause__, CreateOutcomeUnknownError)
    assert len(job.batch_ids) == 1
    assert api_calls(server, "POST", "/v1/batches") == 2  # the second one did create a batch

    server.faults.clear()
    job.submit()  # the advice of the error
    assert api_calls(server, "POST", "/v1/batches") == 2  # found by token, not sent again
    assert len(job.batch_ids) == 2
    assert len(list(quick_client.batches.list())) == 2
    assert_all_answered(job.result(), texts)


def test_a_single_chunk_job_retried_after_an_unknown_create_is_not_bought_twice(
    server: LocalServer, quick_client: Client
) -> None:
    texts = ["x", "y"]
    df = pd.DataFrame({"q": texts})
    job = BatchJob(
        client=quick_client, frame=df, requests=build_requests(df, model=MODEL, prompt="q")
    )
    server.faults.drop_connections(method="POST", path="^/v1/batches$", after_handler=True)
    server.faults.fail_requests(status=503, count=50, method="GET", path="^/v1/batches$")
    with pytest.raises(CreateOutcomeUnknownError):
        job.submit()
    server.faults.clear()
    job.submit()
    assert len(list(quick_client.batches.list())) == 1
    assert_all_answered(job.result(), texts)
