"""The job journal: a durable record of every job, so a restart never loses or re-buys work.

Before anything is uploaded, a job is written to disk with a fingerprint of its request lines
and settings; file and batch ids are added the moment the service returns them; the state of
each batch is updated as it is polled. Re-running the same call finds the entry by its
fingerprint and reattaches instead of creating new batches.

Layout (``state_dir()``, default ``<user cache dir>/zgpu_pandas/jobs``, or ``$ZGPU_STATE_DIR``)::

    jobs/
      job_<id>/
        job.json          the record (never holds the API key)
        results/          local copies of downloaded output and error files

Writes are atomic (temporary file, fsync, ``os.replace``), the directory is created ``0700``
and every file ``0600``: prompts and answers are the user's data.

Example::

    >>> import tempfile
    >>> j = Journal(tempfile.mkdtemp())
    >>> rec = j.create(fingerprint="f" * 64, model="m", rows=3, settings={}, base_url="local")
    >>> j.find("f" * 64).job_id == rec.job_id
    True
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "ChunkRecord",
    "JobRecord",
    "Journal",
    "JournalCorruptError",
    "state_dir",
]

_RECORD = "job.json"
_FORMAT = 1


class JournalCorruptError(RuntimeError):
    """A journal file cannot be read. Nothing is resubmitted when this is raised: the
    message names the file and how to recover (inspect it, or move it away and pass
    ``fresh=True`` knowingly)."""


def state_dir() -> Path:
    """Where journals live: ``$ZGPU_STATE_DIR``, else the per-user cache directory."""
    env = os.environ.get("ZGPU_STATE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("zgpu_pandas")) / "jobs"


@dataclass
class ChunkRecord:
    """One batch of a job: the lines it carries and what the service said about it."""

    index: int
    lines: int
    bytes: int
    sha256: str
    round: int = 0  # 0 for the first submission, 1.. for retry rounds
    file_id: str | None = None
    batch_id: str | None = None
    status: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    downloaded: bool = False  # output and error copies are complete under results/

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class JobRecord:
    """A job as recorded on disk. Mutate it, then call :meth:`Journal.save`."""

    job_id: str
    fingerprint: str
    created_at: float
    model: str
    rows: int
    settings: dict[str, Any]
    base_url: str
    provider: str = "zerogpu"
    project_id: str | None = None
    status: str = (
        "created"  # created | submitted | running | completed | partial | failed | cancelled
    )
    chunks: list[ChunkRecord] = field(default_factory=list)
    updated_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_ids(self) -> list[str]:
        return [c.batch_id for c in self.chunks if c.batch_id]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = _FORMAT
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRecord:
        known = {f.name for f in fields(cls)} - {"chunks"}
        rec = cls(**{k: v for k, v in data.items() if k in known})
        rec.chunks = [ChunkRecord.from_dict(c) for c in data.get("chunks", [])]
        return rec


def _new_job_id() -> str:
    # Sortable by creation time, unique without coordination.
    return f"job_{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}_{secrets.token_hex(4)}"


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    try:
        # mkstemp creates the file 0600 already: the record is private from its first byte.
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Journal:
    """The set of job records under one state directory.

    Example::

        j = Journal()                 # $ZGPU_STATE_DIR or the user cache dir
        for rec in j.list():
            print(rec.job_id, rec.status, rec.batch_ids)
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else state_dir()

    def _ensure_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(OSError):
            os.chmod(self.root, 0o700)

    def job_dir(self, job_id: str) -> Path:
        if not job_id.startswith("job_") or "/" in job_id or "\\" in job_id or ".." in job_id:
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id

    def results_dir(self, job_id: str) -> Path:
        """Directory for local copies of a job's downloaded files (created ``0700``)."""
        path = self.job_dir(job_id) / "results"
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def create(
        self,
        *,
        fingerprint: str,
        model: str,
        rows: int,
        settings: dict[str, Any],
        base_url: str,
        provider: str = "zerogpu",
        project_id: str | None = None,
        chunks: list[ChunkRecord] | None = None,
    ) -> JobRecord:
        """Record a new job (status ``created``) and return it."""
        self._ensure_root()
        now = time.time()
        rec = JobRecord(
            job_id=_new_job_id(),
            fingerprint=fingerprint,
            created_at=now,
            updated_at=now,
            model=model,
            rows=rows,
            settings=settings,
            base_url=base_url,
            provider=provider,
            project_id=project_id,
            chunks=list(chunks or []),
        )
        self.job_dir(rec.job_id).mkdir(mode=0o700)
        self.save(rec)
        return rec

    def save(self, rec: JobRecord) -> None:
        """Write the record atomically: a reader sees the old or the new file, never half."""
        rec.updated_at = time.time()
        path = self.job_dir(rec.job_id) / _RECORD
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_atomic(path, orjson.dumps(rec.to_dict(), option=orjson.OPT_INDENT_2))

    def load(self, job_id: str) -> JobRecord:
        """Read one record; a damaged file raises :class:`JournalCorruptError`."""
        path = self.job_dir(job_id) / _RECORD
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise KeyError(f"no job {job_id!r} in the journal at {self.root}") from None
        try:
            data = orjson.loads(raw)
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            return JobRecord.from_dict(data)
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
            raise JournalCorruptError(
                f"The journal file {path} is damaged ({exc}). Nothing was resubmitted. "
                f"Its batch ids may still be read from it by hand; to start over anyway, move "
                f"the folder {path.parent} away and run the call again with fresh=True."
            ) from None

    def iter_ids(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for p in sorted(self.root.iterdir()):
            if p.name.startswith("job_") and (p / _RECORD).exists():
                yield p.name

    def list(self) -> list[JobRecord]:
        """Every readable record, oldest first. Damaged ones raise, so they are not missed."""
        return [self.load(job_id) for job_id in self.iter_ids()]

    def find(self, fingerprint: str) -> JobRecord | None:
        """The newest job with this fingerprint, or ``None``.

        A damaged record raises :class:`JournalCorruptError` instead of being skipped: a
        skipped record could be the very job being re-run, and skipping it would pay twice.
        """
        found: JobRecord | None = None
        for job_id in self.iter_ids():
            rec = self.load(job_id)
            if rec.fingerprint == fingerprint and rec.status != "abandoned":
                found = rec
        return found

    def find_by_batch(self, batch_id: str) -> JobRecord | None:
        for job_id in self.iter_ids():
            rec = self.load(job_id)
            if batch_id in rec.batch_ids:
                return rec
        return None
