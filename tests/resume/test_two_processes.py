"""The same call in two processes at the same moment pays once.

Two real Python processes (two notebooks, a script and a notebook) are started together on
the same frame, the same settings and the same journal folder, against one local server.
The upload is slowed down on the server so that the two runs overlap for sure. Without the
per-job lock both would find no journaled job, and both would upload and create: two
batches for one job, one of them recorded nowhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from tests.resume.resume_support import KEY, MODEL, api_calls
from tests.support import API_HEADERS, ApiClient

_CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    import pandas as pd
    import zgpu_pandas  # noqa: F401  (registers df.zgpu)

    url, ready, go = sys.argv[1:4]
    df = pd.DataFrame({"t": [f"review number {i}" for i in range(40)]})
    Path(ready).touch()
    while not os.path.exists(go):
        time.sleep(0.001)
    job = df.zgpu.submit_chat(
        "t", model=%r, base_url=url, api_key=%r, project_id=%r, progress=False
    )
    print(job.job_id, ",".join(job.batch_ids), job.creates_sent)
    """
)


def test_two_processes_starting_the_same_job_at_once_create_one_batch(server, tmp_path):
    project = API_HEADERS["x-project-id"]
    script = tmp_path / "child.py"
    script.write_text(_CHILD % (MODEL, KEY, project))
    # Each upload waits a second on the server: the first process is still submitting
    # when the second one looks for the job.
    server.faults.delay_requests(seconds=1.0, method="POST", path=r"^/v1/files$", count=2)
    go = tmp_path / "go"
    procs = []
    for i in range(2):
        ready = tmp_path / f"ready-{i}"
        procs.append((ready, subprocess.Popen(
            [sys.executable, str(script), server.url, str(ready), str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
        )))
    deadline = time.monotonic() + 120
    while not all(r.exists() for r, _ in procs):
        assert time.monotonic() < deadline, "the child processes did not get ready"
        assert all(p.poll() is None for _, p in procs), [p.communicate() for _, p in procs]
        time.sleep(0.01)
    go.touch()  # both start now
    results = []
    for _, p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(out.split())
    (job_a, batches_a, sent_a), (job_b, batches_b, sent_b) = results
    # one job, one batch, one upload: the second process resumed the first one's job
    assert job_a == job_b and batches_a == batches_b
    assert sorted([sent_a, sent_b]) == ["0", "1"]
    assert api_calls(server, "POST", "/v1/files") == 1
    assert api_calls(server, "POST", "/v1/batches") == 1
    with ApiClient(base_url=server.url, headers=API_HEADERS, timeout=30.0) as api:
        listed = api.get("/v1/batches").json()["data"]
    assert [b["id"] for b in listed] == batches_a.split(",")
    assert Path(os.environ["ZGPU_STATE_DIR"], ".locks").is_dir()
