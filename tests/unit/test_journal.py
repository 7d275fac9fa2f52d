"""The job journal on real files: atomic writes, owner-only permissions, corruption."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from zgpu_pandas._journal import ChunkRecord, Journal, JournalCorruptError, state_dir


def test_round_trip_and_find_by_fingerprint(tmp_path: Path) -> None:
    j = Journal(tmp_path / "jobs")
    rec = j.create(
        fingerprint="abc",
        model="m",
        rows=10,
        settings={"t": 0},
        base_url="local",
        chunks=[ChunkRecord(index=0, lines=10, bytes=100, sha256="x")],
    )
    rec.chunks[0].batch_id = "batch_1"
    rec.status = "running"
    j.save(rec)
    again = j.find("abc")
    assert again is not None
    assert again.job_id == rec.job_id and again.batch_ids == ["batch_1"]
    assert again.chunks[0].lines == 10 and again.settings == {"t": 0}
    assert j.find("other") is None
    assert j.find_by_batch("batch_1").job_id == rec.job_id  # type: ignore[union-attr]
    assert [r.job_id for r in j.list()] == [rec.job_id]


def test_files_and_dirs_are_private(tmp_path: Path) -> None:
    j = Journal(tmp_path / "jobs")
    rec = j.create(fingerprint="abc", model="m", rows=1, settings={}, base_url="local")
    mode = stat.S_IMODE(os.stat(j.job_dir(rec.job_id) / "job.json").st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(j.root).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(j.results_dir(rec.job_id)).st_mode) == 0o700
    # no temporary files left behind by the atomic writes
    assert sorted(p.name for p in j.job_dir(rec.job_id).iterdir()) == ["job.json", "results"]


def test_corrupted_record_raises_a_clear_error_instead_of_being_skipped(tmp_path: Path) -> None:
    j = Journal(tmp_path / "jobs")
    rec = j.create(fingerprint="abc", model="m", rows=1, settings={}, base_url="local")
    path = j.job_dir(rec.job_id) / "job.json"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(JournalCorruptError) as info:
        j.find("abc")
    msg = str(info.value)
    assert str(path) in msg and "fresh=True" in msg and "Nothing was resubmitted" in msg


def test_job_ids_cannot_escape_the_state_dir(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    for bad in ("../etc", "job_/../../x", "x"):
        with pytest.raises(ValueError):
            j.job_dir(bad)


def test_state_dir_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZGPU_STATE_DIR", str(tmp_path / "s"))
    assert state_dir() == tmp_path / "s"
    monkeypatch.delenv("ZGPU_STATE_DIR")
    assert "zgpu_pandas" in str(state_dir())
