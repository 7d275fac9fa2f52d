"""No window between check and use: a create and a delete of its input file at the same time.

The create validates the whole input (off the event loop) before it records the batch; a
delete that lands meanwhile must leave no batch that can never run, cancel or expire. The
server re-checks the file inside the transaction that records the batch: the create fails
cleanly (404 ``file_not_found``) and nothing is left behind.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import ApiClient, chat_line, to_jsonl

PROC_FD = Path("/proc/self/fd")


def _is_open(path: Path) -> bool:
    """Whether this process (the in-process server) has ``path`` open right now."""
    for fd in os.listdir(PROC_FD):
        try:
            if os.readlink(PROC_FD / fd) == str(path):
                return True
        except OSError:
            continue
    return False


@pytest.mark.skipif(not PROC_FD.is_dir(), reason="needs /proc to see the validation start")
def test_deleting_the_input_while_the_create_validates_it_fails_the_create_cleanly(server, api):
    # A big input so that validating it takes a while: the delete lands in the middle of
    # it (the test waits until the server has the file open, so no timing is assumed).
    pad = "x" * 900
    lines = [chat_line(f"row-{i}", f"question {i} {pad}") for i in range(40_000)]
    f = api.upload(to_jsonl(lines))
    body_path = server.data_dir / "files" / f["id"]
    answer: dict[str, Any] = {}

    def create() -> None:
        with ApiClient(base_url=server.url, headers=dict(api.headers), timeout=60.0) as c:
            answer["r"] = c.create_batch(f["id"])

    t = threading.Thread(target=create)
    t.start()
    deadline = time.monotonic() + 60
    while not _is_open(body_path) and t.is_alive() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert t.is_alive(), "the create ended before the test saw it read the file"
    deleted = api.delete(f"/v1/files/{f['id']}")
    assert deleted.status_code == 200, deleted.text
    t.join(60)
    r = answer["r"]
    assert r.status_code == 404, r.text
    err = r.json()["error"]
    assert err["code"] == "file_not_found" and err["param"] == "input_file_id"
    assert "deleted while the batch was being created" in err["message"]
    # nothing half-made is left: no batch, and the body is gone with its file
    assert api.get("/v1/batches").json()["data"] == []
    assert not body_path.exists()


def test_a_batch_recorded_before_the_delete_keeps_its_input_and_completes(server, api, make_lines):
    f = api.upload(to_jsonl(make_lines(3)))
    batch = api.create_batch(f["id"]).json()
    assert api.delete(f"/v1/files/{f['id']}").status_code == 200
    done = api.wait(batch["id"])
    assert done["status"] == "completed" and done["request_counts"]["completed"] == 3


def test_a_create_from_an_input_whose_body_is_missing_is_a_404_not_a_500(server, api, make_lines):
    f = api.upload(to_jsonl(make_lines(2)))
    (server.data_dir / "files" / f["id"]).unlink()  # lost from disk, still recorded
    r = api.create_batch(f["id"])
    assert r.status_code == 404, r.text
    err = r.json()["error"]
    assert err["code"] == "file_not_found" and "upload the file again" in err["message"]
    assert api.get("/v1/batches").json()["data"] == []
