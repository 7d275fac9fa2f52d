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


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every record parsed from now on, by job id (``JobRecord.from_dict`` wrapped)."""
    from zgpu_pandas._journal import JobRecord

    parsed: list[str] = []
    original = JobRecord.from_dict.__func__  # type: ignore[attr-defined]

    def counting(cls: type[JobRecord], data: dict) -> JobRecord:
        parsed.append(str(data.get("job_id")))
        return original(cls, data)

    monkeypatch.setattr(JobRecord, "from_dict", classmethod(counting))
    return parsed


def test_a_look_up_reads_the_records_of_its_fingerprint_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zgpu_pandas import _journal_index

    root = tmp_path / "jobs"
    recs = [
        Journal(root).create(fingerprint=f"{k:064x}", model="m", rows=1, settings={},
                             base_url="local")
        for k in range(30)
    ]
    monkeypatch.setattr(_journal_index, "_INDEXES", {})  # as in a new process
    parsed = _count_parses(monkeypatch)
    assert Journal(root).find(f"{7:064x}").job_id == recs[7].job_id  # type: ignore[union-attr]
    assert len(parsed) == 30  # the first look-up of a process reads each record once
    for k in (0, 29, 12):  # later ones, through new Journal objects as a streaming run makes
        parsed.clear()
        assert Journal(root).find(f"{k:064x}").job_id == recs[k].job_id  # type: ignore[union-attr]
        assert parsed == [recs[k].job_id]
    parsed.clear()
    assert Journal(root).find(f"{99:064x}") is None and parsed == []
    # a job started in this process is known without reading it back
    new = Journal(root).create(fingerprint="f" * 64, model="m", rows=1, settings={},
                               base_url="local")
    parsed.clear()
    assert Journal(root).find("f" * 64).job_id == new.job_id  # type: ignore[union-attr]
    assert parsed == [new.job_id]


def test_a_look_up_sees_jobs_written_and_removed_by_other_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import subprocess
    import sys

    root = tmp_path / "jobs"
    j = Journal(root)
    old = j.create(fingerprint="a" * 64, model="m", rows=1, settings={}, base_url="local")
    assert j.find("a" * 64).job_id == old.job_id  # type: ignore[union-attr]
    assert j.find("b" * 64) is None
    code = (
        "import sys, time; from zgpu_pandas._journal import Journal; j = Journal(sys.argv[1]);"
        "r = [j.create(fingerprint=f, model='m', rows=1, settings={}, base_url='local')"
        " for f in ('a' * 64, 'b' * 64)];"
        "r[0].created_at = time.time() + 60; j.save(r[0]); print(r[0].job_id, r[1].job_id)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True,
                         text=True, check=True).stdout.split()
    # the other process's jobs are found: a new fingerprint, and a newer job of a known one
    assert j.find("b" * 64).job_id == out[1]  # type: ignore[union-attr]
    assert j.find("a" * 64).job_id == out[0]  # type: ignore[union-attr]
    # a folder removed (a prune, a hand move) is no longer found; the older job is again
    shutil.rmtree(j.job_dir(out[0]))
    assert j.find("a" * 64).job_id == old.job_id  # type: ignore[union-attr]
    # a damaged record not read before stops every look-up, whatever its fingerprint, until
    # it is mended: it could be the very job being looked up
    shutil.rmtree(j.job_dir(out[1]))
    bad = j.create(fingerprint="c" * 64, model="m", rows=1, settings={}, base_url="local")
    path = j.job_dir(bad.job_id) / "job.json"
    whole = path.read_bytes()
    from zgpu_pandas import _journal_index

    monkeypatch.setattr(_journal_index, "_INDEXES", {})  # as in a new process
    path.write_bytes(whole[:20])
    for _ in range(2):
        with pytest.raises(JournalCorruptError):
            j.find("a" * 64)
    path.write_bytes(whole)
    assert j.find("a" * 64).job_id == old.job_id  # type: ignore[union-attr]
    assert j.find("c" * 64).job_id == bad.job_id  # type: ignore[union-attr]
