"""Errors that say what happened: a full disk during an upload, a damaged metadata database,
a full disk under the job journal, and an output file that answers a row twice."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.support import to_jsonl
from zgpu_pandas import _journal
from zgpu_pandas._journal import Journal
from zgpu_pandas._models import Batch
from zgpu_pandas.core.collect import Collector
from zgpu_pandas.core.recorder import NullRecorder
from zgpu_pandas.core.results import ResultsTable
from zgpu_pandas.core.slots import Slot
from zgpu_pandas.errors import JournalWriteError, ZgpuError
from zgpu_pandas.server import DataDirDamaged, LocalServer, local
from zgpu_pandas.server.app import _Upload


def _disk_full(*args: Any, **kwargs: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_an_upload_is_the_specs_storage_error(server, api, make_lines, monkeypatch, caplog):
    # The one write point of an upload fails as a full disk does (a case a test cannot
    # make the real disk produce).
    monkeypatch.setattr(_Upload, "_write", lambda self, data: _Upload_fail(self))
    r = api.post("/v1/files", files={"file": ("in.jsonl", to_jsonl(make_lines(50)))},
                 data={"purpose": "batch"})
    assert r.status_code == 500, r.text
    err = r.json()["error"]
    assert err["code"] == "storage_error" and "disk is full" in err["message"]
    assert "Traceback" not in caplog.text
    # nothing half-stored, and the server serves on once space is back
    assert api.get("/v1/files").json()["data"] == []
    assert list((server.data_dir / "tmp").iterdir()) == []
    monkeypatch.undo()
    assert api.upload(to_jsonl(make_lines(2)))["bytes"] > 0


def _Upload_fail(up: _Upload) -> None:
    up.write_error = OSError(errno.ENOSPC, "No space left on device")
    up.close()


def _damage(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "meta.sqlite3").write_bytes(b"this is not a database, it was overwritten" * 100)


def test_a_damaged_metadata_database_is_one_clear_error_for_local_server(tmp_path):
    data_dir = tmp_path / "data"
    _damage(data_dir)
    with pytest.raises(DataDirDamaged, match=r"metadata database .*meta\.sqlite3 is damaged"):
        LocalServer(data_dir=data_dir).start()
    # the directory is not left locked: a repaired one starts
    (data_dir / "meta.sqlite3").unlink()
    with LocalServer(data_dir=data_dir) as srv:
        assert srv.running


def test_a_damaged_metadata_database_makes_serve_exit_2_with_one_line(tmp_path):
    data_dir = tmp_path / "data"
    _damage(data_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "zgpu_pandas", "serve", "--data-dir", str(data_dir), "--port", "0"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("zgpu-pandas serve: the metadata database") and "damaged" in lines[0]


def test_base_url_local_with_a_damaged_database_raises_a_clear_exception(tmp_path, monkeypatch, kit):
    data_dir = tmp_path / "local-data"
    _damage(data_dir)
    monkeypatch.setenv("ZGPU_LOCAL_DATA_DIR", str(data_dir))
    monkeypatch.setattr(local, "_shared", None)
    df = kit.frame({"t": ["a"]})
    with pytest.raises(DataDirDamaged, match=r"is damaged .*move it away"):
        df.zgpu.batch_chat("t", model="LFM2.5-1.2B-Instruct", base_url="local", progress=False)


def test_a_full_disk_under_the_journal_is_a_journal_write_error_with_a_fix(tmp_path, monkeypatch):
    j = Journal(tmp_path / "jobs")
    rec = j.create(fingerprint="f" * 64, model="m", rows=1, settings={}, base_url="local")
    before = (j.job_dir(rec.job_id) / "job.json").read_bytes()
    monkeypatch.setattr(_journal, "write_atomic", _disk_full)
    rec.status = "running"
    with pytest.raises(JournalWriteError) as info:
        j.save(rec)
    exc = info.value
    assert isinstance(exc, ZgpuError) and isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    text = str(exc)
    assert "the disk is full" in text and "Free some disk space" in text
    assert "run the same call again" in text
    with pytest.raises(JournalWriteError, match="the disk is full"):
        j.write_blob(rec.job_id, "layout.npz", b"x")
    assert (j.job_dir(rec.job_id) / "job.json").read_bytes() == before


class _Files:
    def __init__(self, files: dict[str, bytes]) -> None:
        self._files = files

    def iter_bytes(self, file_id: str) -> Any:
        yield self._files[file_id]


class _StubClient:
    """Serves a batch's files as bytes: an output file answering a row twice is a case
    the local server cannot produce."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = _Files(files)


def test_a_row_answered_twice_in_an_output_file_warns(api, make_lines):
    batch = api.submit(make_lines(3))
    done = api.wait(batch["id"])
    out = api.get(f"/v1/files/{done['output_file_id']}/content").content
    first = out.splitlines()[0]
    again = orjson.loads(first)
    again["response"]["body"]["choices"][0]["message"]["content"] = "a second answer"
    doubled = out + orjson.dumps(again) + b"\n"
    table = ResultsTable(3)
    client = _StubClient({done["output_file_id"]: doubled})
    collector = Collector(table, lambda: client, NullRecorder("job_x"))  # type: ignore[arg-type,return-value]
    slot = Slot(0, 3, np.arange(3))
    slot.batch = Batch.from_dict(done)
    collector.collect(slot)
    assert len(table.problems) == 1
    problem = table.problems[0]
    assert f"batch {done['id']} answered 1 row(s) more than once" in problem
    assert "billed, twice" in problem
    row = int(orjson.loads(first)["custom_id"].split("-")[1])
    assert table.answers().column("response")[row].as_py() == "a second answer"
    assert os.environ.get("ZGPU_STATE_DIR")  # the journal stays the test's own
