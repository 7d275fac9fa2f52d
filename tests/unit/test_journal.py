"""The job journal on real files: atomic writes, owner-only permissions, corruption."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from zgpu_pandas._journal import ChunkRecord, Journal, state_dir
from zgpu_pandas.errors import JournalCorruptError, JournalWriteError


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


def test_side_files_are_private_and_their_names_cannot_escape(tmp_path: Path) -> None:
    j = Journal(tmp_path / "jobs")
    rec = j.create(fingerprint="abc", model="m", rows=1, settings={}, base_url="local")
    j.write_blob(rec.job_id, "layout.npz", b"data")
    assert j.read_blob(rec.job_id, "layout.npz") == b"data"
    path = j.job_dir(rec.job_id) / "layout.npz"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for bad in ("../x", ".hidden", "", "job.json", "a/b"):
        with pytest.raises(ValueError):
            j.write_blob(rec.job_id, bad, b"")
    with pytest.raises(FileNotFoundError):
        j.read_blob(rec.job_id, "round-1.npy")


def test_find_takes_the_newest_job_and_skips_abandoned_ones(tmp_path: Path) -> None:
    j = Journal(tmp_path / "jobs")
    old = j.create(fingerprint="f", model="m", rows=1, settings={}, base_url="local")
    new = j.create(fingerprint="f", model="m", rows=1, settings={}, base_url="local")
    old.created_at = new.created_at + 10  # ids need not sort by time: created_at decides
    j.save(old)
    assert j.find("f").job_id == old.job_id  # type: ignore[union-attr]
    old.status = "abandoned"
    j.save(old)
    assert j.find("f").job_id == new.job_id  # type: ignore[union-attr]
    with pytest.raises(FileExistsError):
        j.create(fingerprint="g", model="m", rows=1, settings={}, base_url="l", job_id=new.job_id)


@pytest.mark.parametrize(
    "change",
    [
        {"rows": "ten"},
        {"fingerprint": None},
        {"chunks": "no"},
        {"chunks": [{"index": 0, "lines": 1, "bytes": 1, "sha256": "x", "downloaded": "yes"}]},
        {"chunks": [{"index": 0, "lines": True, "bytes": 1, "sha256": "x"}]},
        {"job_id": "job_someone_else"},
    ],
)
def test_a_record_with_wrong_types_is_corrupt(tmp_path: Path, change: dict) -> None:
    import orjson

    j = Journal(tmp_path / "jobs")
    rec = j.create(fingerprint="abc", model="m", rows=1, settings={}, base_url="local")
    path = j.job_dir(rec.job_id) / "job.json"
    path.write_bytes(orjson.dumps({**orjson.loads(path.read_bytes()), **change}))
    with pytest.raises(JournalCorruptError, match="Nothing was resubmitted"):
        j.load(rec.job_id)


def test_an_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(JournalWriteError, match="ZGPU_STATE_DIR"):
        Journal(tmp_path / "file" / "jobs").create(
            fingerprint="f", model="m", rows=1, settings={}, base_url="local"
        )
