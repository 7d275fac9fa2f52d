"""The job journal: a durable record of every job, so a restart never loses or re-buys work.

Before anything is uploaded, a job is written to disk with a fingerprint of its request lines
and settings; file and batch ids are added the moment the service returns them; the state of
each batch is updated as it is polled. Re-running the same call finds the entry by its
fingerprint and reattaches instead of creating new batches.

Layout (``state_dir()``, default ``<user cache dir>/zgpu_pandas/jobs``, or ``$ZGPU_STATE_DIR``)::

    jobs/
      job_<id>/
        job.json          the record (never holds the API key)
        layout.npz        which row each request line carries, skipped and shared rows
        round-<n>.npy     the rows resubmitted in retry round n
        results/          local copies of downloaded output and error files
      .locks/
        <fingerprint>.lock  held (OS file lock) while a process finds or starts that job

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
import errno
import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

import orjson

from ._fs import try_lock, wait_lock, write_atomic
from ._journal_index import index_of
from .errors import JournalCorruptError, JournalWriteError

__all__ = [
    "ChunkRecord",
    "JobRecord",
    "Journal",
    "JournalCorruptError",
    "JournalWriteError",
    "content_job_id",
    "is_content_job_id",
    "state_dir",
    "using_state_dir",
]

logger = logging.getLogger(__name__)

_RECORD = "job.json"
_FORMAT = 1


#: a state directory chosen for the code running in this context (one Dask task), over the
#: environment's: tasks of different jobs may share a worker process, so not os.environ
_STATE_DIR: ContextVar[Path | None] = ContextVar("zgpu_state_dir", default=None)


@contextlib.contextmanager
def using_state_dir(path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Within the block, :func:`state_dir` is ``path`` (``None``: unchanged) in this thread
    or task only. Example: ``with using_state_dir("/shared/zgpu"): start(...)``."""
    if path is None:
        yield
        return
    token = _STATE_DIR.set(Path(path).expanduser())
    try:
        yield
    finally:
        _STATE_DIR.reset(token)


def state_dir() -> Path:
    """Where journals live: the directory of :func:`using_state_dir`, else
    ``$ZGPU_STATE_DIR``, else the per-user cache directory."""
    chosen = _STATE_DIR.get()
    if chosen is not None:
        return chosen
    env = os.environ.get("ZGPU_STATE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("zgpu_pandas")) / "jobs"


@dataclass
class ChunkRecord:
    """One batch of a job: the lines it carries and what the service said about it."""

    index: int  # the chunk's number within its round
    lines: int
    bytes: int
    sha256: str
    round: int = 0  # 0 for the first submission, 1.. for retry rounds
    start: int = 0  # first line of the chunk within its round's lines
    file_id: str | None = None
    # the create's idempotency token, written before the create is sent: a process that dies
    # before it hears the answer finds the batch by it (``batches.find_by_token``)
    token: str | None = None
    batch_id: str | None = None
    status: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0
    downloaded: bool = False  # output and error copies are complete under results/
    batch: dict[str, Any] | None = None  # the batch as last seen (its wire form)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkRecord:
        if not isinstance(data, dict):
            raise TypeError("a chunk entry is not a JSON object")
        known = {f.name for f in fields(cls)}
        rec = cls(**{k: v for k, v in data.items() if k in known})
        _check(rec, _CHUNK_TYPES, "chunk")
        return rec


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
    # created | submitted | running | completed | partial | failed | cancelled | stopped
    status: str = "created"
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
        _check(rec, _JOB_TYPES, "job")
        chunks = data.get("chunks", [])
        if not isinstance(chunks, list):
            raise TypeError("chunks is not a list")
        rec.chunks = [ChunkRecord.from_dict(c) for c in chunks]
        return rec


_OPT_STR = (str, type(None))
_CHUNK_TYPES: dict[str, tuple[type, ...]] = {
    "index": (int,),
    "lines": (int,),
    "bytes": (int,),
    "sha256": (str,),
    "round": (int,),
    "start": (int,),
    "file_id": _OPT_STR,
    "token": _OPT_STR,
    "batch_id": _OPT_STR,
    "status": _OPT_STR,
    "output_file_id": _OPT_STR,
    "error_file_id": _OPT_STR,
    "completed": (int,),
    "failed": (int,),
    "downloaded": (bool,),
    "batch": (dict, type(None)),
}
_JOB_TYPES: dict[str, tuple[type, ...]] = {
    "job_id": (str,),
    "fingerprint": (str,),
    "created_at": (int, float),
    "model": (str,),
    "rows": (int,),
    "settings": (dict,),
    "base_url": (str,),
    "provider": (str,),
    "project_id": _OPT_STR,
    "status": (str,),
    "updated_at": (int, float),
    "extra": (dict,),
}


def _check(obj: object, types: dict[str, tuple[type, ...]], what: str) -> None:
    """Refuse a record whose fields have the wrong JSON types (a hand edit gone wrong)."""
    for name, allowed in types.items():
        value = getattr(obj, name)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise TypeError(f"{what} field {name!r} is {value!r}")


_FINGERPRINT = re.compile(r"[0-9a-f]{16,128}")


def new_job_id() -> str:
    """A new job id: ``job_<UTC time>_<8 hex>``, sortable by creation time and unique
    without coordination (the journal's folder names)."""
    return f"job_{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}_{secrets.token_hex(4)}"


#: the prefix of a job id derived from the job's fingerprint (:func:`content_job_id`)
_CONTENT_PREFIX = "job_c-"


def content_job_id(fingerprint: str) -> str:
    """The job id of a job that several processes or machines may start independently (a
    Dask partition run twice): the same rows and settings give the same id everywhere, so
    its create tokens name the same batches and can be looked up before any create."""
    return f"{_CONTENT_PREFIX}{fingerprint[:32]}"


def is_content_job_id(job_id: str) -> bool:
    """Whether ``job_id`` came from :func:`content_job_id`."""
    return job_id.startswith(_CONTENT_PREFIX)


@dataclass(frozen=True)
class DamagedRecord:
    """A journal entry whose record cannot be read (listed, never resumed)."""

    job_id: str
    error: str
    status: str = "damaged"

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "status": self.status, "error": self.error}


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

    @contextlib.contextmanager
    def lock(self, fingerprint: str) -> Iterator[None]:
        """Hold the lock of one job (by its fingerprint) across processes: an OS file lock
        under ``<root>/.locks``, released when the block ends or the process dies.

        The same call started by two processes at once (two notebooks, a script and a
        notebook) would otherwise both find no job and both upload and create. Under the
        lock, the find and the submit of one run happen before the other's find, which
        then resumes the journaled job (its create tokens included) instead of paying
        again. A process that waits says so in the log."""
        path = self._lock_path(fingerprint)
        fh = self._locked(path)
        try:
            yield
        finally:
            fh.close()  # closing the descriptor releases the lock

    def _locked(self, path: Path) -> IO[bytes]:
        """The lock file at ``path``, open and locked by us. A file removed by
        :meth:`drop_lock` while we waited on it is a lock nobody else sees: open the path
        again until the file we hold is the one there."""
        while True:
            try:
                self._ensure_root()
                path.parent.mkdir(exist_ok=True, mode=0o700)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                fh = os.fdopen(fd, "r+b")
            except OSError as exc:
                raise self._not_started(exc) from exc
            if not try_lock(fh):
                logger.info(
                    "Another process is starting the same job; waiting for it to finish "
                    "submitting, then this one resumes it (lock %s)", path
                )
                wait_lock(fh)
            try:
                if os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino:
                    return fh
            except OSError:
                pass  # removed: open it again
            fh.close()

    def _lock_path(self, fingerprint: str) -> Path:
        name = fingerprint if _FINGERPRINT.fullmatch(fingerprint) else (
            hashlib.sha256(fingerprint.encode()).hexdigest()
        )
        return self.root / ".locks" / f"{name}.lock"

    def drop_lock(self, fingerprint: str) -> bool:
        """Remove the lock file of a job that is gone (``prune_jobs``), unless a process
        holds it now; ``True`` when removed. The file is unlinked while held, so a process
        that opens it later makes a new one."""
        path = self._lock_path(fingerprint)
        try:
            fh = open(path, "r+b")  # noqa: SIM115 (closed below, after the unlink)
        except OSError:
            return False
        try:
            if not try_lock(fh):
                return False
            path.unlink()
            return True
        except OSError:
            return False
        finally:
            fh.close()

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
        job_id: str | None = None,
    ) -> JobRecord:
        """Record a new job (status ``created``) and return it. A folder that cannot be
        written raises :class:`JournalWriteError`."""
        try:
            return self._create(
                fingerprint=fingerprint,
                model=model,
                rows=rows,
                settings=settings,
                base_url=base_url,
                provider=provider,
                project_id=project_id,
                chunks=chunks,
                job_id=job_id,
            )
        except FileExistsError:  # a job id used twice: a bug, not the folder's fault
            raise
        except OSError as exc:
            raise self._not_started(exc) from exc

    def _not_started(self, exc: OSError) -> JournalWriteError:
        return JournalWriteError(
            f"Cannot write the job journal in {self.root} ({exc.strerror or exc}), so the "
            f"job was not started (nothing was uploaded): without a record it could not be "
            f"resumed. Point the environment variable ZGPU_STATE_DIR at a writable folder."
        )

    def _create(
        self,
        *,
        fingerprint: str,
        model: str,
        rows: int,
        settings: dict[str, Any],
        base_url: str,
        provider: str,
        project_id: str | None,
        chunks: list[ChunkRecord] | None,
        job_id: str | None,
    ) -> JobRecord:
        self._ensure_root()
        now = time.time()
        rec = JobRecord(
            job_id=job_id or new_job_id(),
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
        self.job_dir(rec.job_id).mkdir(mode=0o700)  # an existing id fails here: never reused
        self.save(rec)
        index_of(self.root).add(rec.job_id, rec.fingerprint)
        return rec

    def save(self, rec: JobRecord) -> None:
        """Write the record atomically: a reader sees the old or the new file, never half.
        A write that fails (a full disk) raises :class:`JournalWriteError` saying how to
        go on; the previous record is left whole."""
        rec.updated_at = time.time()
        path = self.job_dir(rec.job_id) / _RECORD
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(path, orjson.dumps(rec.to_dict(), option=orjson.OPT_INDENT_2))
        except OSError as exc:
            raise self._write_error(path, exc) from exc

    def write_blob(self, job_id: str, name: str, data: bytes) -> None:
        """Store a side file of a job (atomically, ``0600``); a failed write raises
        :class:`JournalWriteError`."""
        path = self._blob_path(job_id, name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomic(path, data)
        except OSError as exc:
            raise self._write_error(path, exc) from exc

    @staticmethod
    def _write_error(path: Path, exc: OSError) -> JournalWriteError:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        why = "the disk is full" if full else (exc.strerror or str(exc))
        err = JournalWriteError(
            f"Cannot write the job journal file {path} ({why}). Its previous version is "
            f"intact, and batches already created keep running on the service. "
            f"{'Free some disk space' if full else 'Make the folder writable'}, then run "
            f"the same call again: it resumes from the journal without paying twice."
        )
        err.errno = exc.errno
        return err

    def read_blob(self, job_id: str, name: str) -> bytes:
        """Read a side file written by :meth:`write_blob` (``FileNotFoundError`` if absent)."""
        return self._blob_path(job_id, name).read_bytes()

    def _blob_path(self, job_id: str, name: str) -> Path:
        if not name or "/" in name or "\\" in name or name.startswith(".") or name == _RECORD:
            raise ValueError(f"not a side file name: {name!r}")
        return self.job_dir(job_id) / name

    def corrupt(self, job_id: str, what: str, exc: BaseException | str) -> JournalCorruptError:
        """The error for a damaged part of a job's journal entry (same wording as
        :meth:`load`)."""
        path = self.job_dir(job_id) / what
        return JournalCorruptError(
            f"The journal file {path} is damaged ({exc}). Nothing was resubmitted. "
            f"Its batch ids may still be read from {path.parent / _RECORD} by hand; to start "
            f"over anyway, move the folder {path.parent} away and run the call again with "
            f"fresh=True."
        )

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
            rec = JobRecord.from_dict(data)
            if rec.job_id != job_id or not isinstance(rec.fingerprint, str):
                raise ValueError(f"it names job {rec.job_id!r}, in the folder of {job_id!r}")
            return rec
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

    def scan(self) -> Iterator[JobRecord | DamagedRecord]:
        """Every job, newest first, for listings: a damaged record comes as a
        :class:`DamagedRecord` (with the error saying what is wrong) instead of hiding the
        others. The one lister behind ``zgpu_pandas.jobs()`` and ``zgpu-pandas jobs``."""
        for job_id in sorted(self.iter_ids(), reverse=True):  # ids sort by creation time
            try:
                yield self.load(job_id)
            except JournalCorruptError as exc:
                yield DamagedRecord(job_id=job_id, error=str(exc))

    def find(self, fingerprint: str) -> JobRecord | None:
        """The newest job with this fingerprint, or ``None``.

        Reads the records of this fingerprint only (usually one), plus, once per process,
        each record it has not seen yet (:mod:`._journal_index`): a streaming run of many
        parts looks up every part's job, and reading every record each time made the run's
        look-ups grow with the square of its parts.

        A damaged record raises :class:`JournalCorruptError` instead of being skipped: a
        skipped record could be the very job being re-run, and skipping it would pay twice.
        """
        ids, read = index_of(self.root).ids(fingerprint, learn=self._learn)
        found: JobRecord | None = None
        for job_id in ids:
            rec = read.get(job_id)
            if rec is None:
                try:
                    rec = self.load(job_id)
                except KeyError:  # removed since the listing
                    continue
            if not isinstance(rec, JobRecord):
                continue
            if rec.fingerprint != fingerprint:  # the folder now holds another record
                index_of(self.root).add(rec.job_id, rec.fingerprint)
                continue
            if rec.status == "abandoned":
                continue
            if found is None or (rec.created_at, rec.job_id) > (found.created_at, found.job_id):
                found = rec
        return found

    def _learn(self, job_id: str) -> JobRecord | None:
        """A record not seen by this process yet (``None``: not written yet, or gone)."""
        if not (self.job_dir(job_id) / _RECORD).exists():
            return None
        try:
            return self.load(job_id)
        except KeyError:
            return None

    def find_by_batch(self, batch_id: str) -> JobRecord | None:
        for job_id in self.iter_ids():
            rec = self.load(job_id)
            if batch_id in rec.batch_ids:
                return rec
        return None
