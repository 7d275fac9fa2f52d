"""Retention: a deleted file's bytes leave the disk, expired files are swept (records and
bytes), unreferenced bodies are reclaimed, and ``serve --gc`` reports what it freed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support import to_jsonl
from zgpu_pandas.server.retention import sweep

_MONTH = 31 * 86400


def _finished_batch(srv, api, make_lines):
    """A completed batch with both an output and an error file."""
    srv.faults.fail_lines(code="internal_error", custom_ids="^bad-")
    done = api.wait(api.submit(make_lines(3, prefix="ok-") + make_lines(2, prefix="bad-"))["id"])
    srv.faults.clear()
    assert done["output_file_id"] and done["error_file_id"], done
    return done


def _bodies(data_dir: Path) -> list[Path]:
    return sorted(p for top in ("files", "batches") for p in (data_dir / top).rglob("*")
                  if p.is_file())


def test_deleting_output_and_error_files_removes_their_bytes(server, api, make_lines):
    done = _finished_batch(server, api, make_lines)
    out = server.data_dir / "batches" / done["id"] / "output.jsonl"
    err = server.data_dir / "batches" / done["id"] / "errors.jsonl"
    assert out.stat().st_size > 0 and err.stat().st_size > 0
    for fid, path in ((done["output_file_id"], out), (done["error_file_id"], err)):
        assert api.delete(f"/v1/files/{fid}").json()["deleted"] is True
        assert not path.exists()
        assert api.get(f"/v1/files/{fid}/content").status_code == 404
    assert api.get(f"/v1/batches/{done['id']}").json()["status"] == "completed"


def test_an_expired_file_is_swept_record_and_bytes(server, api, make_lines):
    done = _finished_batch(server, api, make_lines)
    ctx = server.context
    assert ctx is not None
    before = _bodies(server.data_dir)
    size = sum(p.stat().st_size for p in before)
    assert len(before) == 3  # the input, the output and the error file
    # nothing has expired yet: a pass removes nothing
    assert sweep(ctx.store).bytes_freed == 0
    assert _bodies(server.data_dir) == before
    report = sweep(ctx.store, now=time.time() + _MONTH)
    assert report.expired_files == 3 and report.bodies_removed == 3
    assert report.bytes_freed == size
    assert _bodies(server.data_dir) == []
    assert api.get("/v1/files").json()["data"] == []
    for fid in (done["input_file_id"], done["output_file_id"], done["error_file_id"]):
        assert api.get(f"/v1/files/{fid}").status_code == 404
    rows = ctx.store.conn.execute("SELECT count(*) FROM files").fetchone()[0]
    assert rows == 0
    # the empty batch folder went too; the batch itself is still listed
    assert not (server.data_dir / "batches" / done["id"]).exists()
    assert api.get(f"/v1/batches/{done['id']}").json()["status"] == "completed"


def test_the_report_counts_the_bytes_it_freed(server, api):
    data = b'{"x": 1}\n' * 100
    api.upload(data)
    ctx = server.context
    assert ctx is not None
    report = sweep(ctx.store, now=time.time() + _MONTH)
    assert (report.expired_files, report.bodies_removed, report.bytes_freed) == (1, 1, len(data))
    assert "freed 900 bytes" in report.line()


def test_an_expired_input_of_a_running_batch_is_hidden_and_kept_until_the_batch_ends(
    start_server, api_for, make_lines
):
    srv = start_server(latency=0.02, concurrency=1)
    api = api_for(srv)
    batch = api.submit(make_lines(40))
    ctx = srv.context
    assert ctx is not None
    body = srv.data_dir / "files" / batch["input_file_id"]
    report = sweep(ctx.store, now=time.time() + _MONTH)
    assert report.expired_files == 1 and report.bodies_removed == 0
    assert body.exists()
    assert api.get(f"/v1/files/{batch['input_file_id']}").status_code == 404
    done = api.wait(batch["id"])
    assert done["status"] == "completed" and done["request_counts"]["completed"] == 40
    # ended: its input's body went with it, and the next pass drops the record
    assert not body.exists()
    sweep(ctx.store, now=time.time() + _MONTH)
    ids = [r[0] for r in ctx.store.conn.execute("SELECT id FROM files").fetchall()]
    assert batch["input_file_id"] not in ids


def test_the_periodic_sweep_removes_expired_files(start_server, api_for):
    srv = start_server(file_retention_seconds=0, sweep_interval=0.05)
    api = api_for(srv)
    f = api.upload(b"{}\n")
    assert f["expires_at"] == f["created_at"]
    body = srv.data_dir / "files" / f["id"]
    deadline = time.monotonic() + 30
    while body.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not body.exists()
    assert api.get(f"/v1/files/{f['id']}").status_code == 404


def test_no_sweep_runs_unless_asked(server, api):
    ctx = server.context
    assert ctx is not None and ctx.sweeper is None


def test_unreferenced_bodies_are_reclaimed_once_old_enough(server, api, make_lines):
    ctx = server.context
    assert ctx is not None
    kept = api.upload(to_jsonl(make_lines(2)))
    stray_old = server.data_dir / "files" / "file-interruptedupload000000000"
    stray_new = server.data_dir / "files" / "file-uploadinflight000000000000"
    stray_old.write_bytes(b"x" * 10)
    stray_new.write_bytes(b"y" * 10)
    hour_ago = time.time() - 7200
    os.utime(stray_old, (hour_ago, hour_ago))
    report = sweep(ctx.store)
    assert (report.bodies_removed, report.bytes_freed) == (1, 10)
    assert not stray_old.exists() and stray_new.exists()
    assert api.get(f"/v1/files/{kept['id']}/content").status_code == 200


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zgpu_pandas", "serve", *args],
                          capture_output=True, text=True, timeout=120)


def test_serve_gc_reports_and_reclaims_space(start_server, api_for, tmp_path):
    data_dir = tmp_path / "gc-data"
    srv = start_server(data_dir=data_dir, file_retention_seconds=0)
    api_for(srv).upload(b'{"a": 1}\n')
    # while the server runs, the directory is its own
    busy = _serve("--gc", "--data-dir", str(data_dir))
    assert busy.returncode == 2 and "in use by another server" in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1
    srv.stop()
    proc = _serve("--gc", "--data-dir", str(data_dir))
    assert proc.returncode == 0, proc.stderr
    assert "removed 1 expired file(s) and 1 stored body(ies), freed 9 bytes" in proc.stdout
    assert _bodies(data_dir) == []


def test_serve_gc_on_a_directory_that_is_not_one_is_exit_2(tmp_path):
    proc = _serve("--gc", "--data-dir", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "is not a server data directory" in proc.stderr
