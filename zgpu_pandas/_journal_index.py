"""Which jobs of a journal folder carry which fingerprint, so that a look-up reads one record.

``Journal.find`` is called for every job started, and a streaming run starts one job per
part, twice (to submit it, then to collect it): reading every record on each look-up made a
run of P parts read P² records (bench/README.md, "The journal's look-up"). A record's job id
and fingerprint never change once it is written, so each process learns them once per
record and keeps them here, one index per journal folder (shared by the ``Journal`` objects
of the process, as a run makes one per part).

Nothing is added on disk: the folder's listing (names only, no file read) is taken on each
look-up, so a job written meanwhile by another process (the lock of ``Journal.lock`` makes
one process wait for the other's job to be written) is seen, and read once, at the next
look-up; a folder pruned or moved away drops out. A record that cannot be read is never
learnt, so every look-up tries it again and raises, as when every record was read.

Example::

    index = index_of(Path("jobs"))
    ids = index.ids(fingerprint, learn=lambda job_id: journal.load(job_id))
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

__all__ = ["FingerprintIndex", "index_of"]


class _Record(Protocol):
    job_id: str
    fingerprint: str


class FingerprintIndex:
    """Job ids by fingerprint for one journal folder, learnt by reading each record once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._fingerprint: dict[str, str] = {}  # job id -> fingerprint
        self._ids: dict[str, set[str]] = {}  # fingerprint -> job ids
        self._other: set[str] = set()  # names in the folder that are not jobs
        self._lock = threading.Lock()  # the tasks of a Dask worker share a process

    def ids(
        self, fingerprint: str, *, learn: Callable[[str], _Record | None]
    ) -> tuple[list[str], dict[str, _Record]]:
        """The job ids with ``fingerprint`` in the folder now, and the records read to learn
        of new ones (so a record just read is not read again). ``learn(job_id)`` reads a
        record (``None``: it is gone, or not written yet); an error it raises (a damaged
        record) goes to the caller, and that record is tried again next time."""
        names = _names(self.root)
        with self._lock:
            for gone in self._fingerprint.keys() - names:
                self._forget(gone)
            self._other &= names
            new = sorted(names - self._fingerprint.keys() - self._other)
            # not a job folder's name (.locks, answers): never one
            self._other.update(n for n in new if not n.startswith("job_"))
            new = [n for n in new if n.startswith("job_")]
        read: dict[str, _Record] = {}
        for job_id in new:
            rec = learn(job_id)
            if rec is not None:
                self.add(rec.job_id, rec.fingerprint)
                read[job_id] = rec
        with self._lock:
            return sorted(self._ids.get(fingerprint, ())), read

    def add(self, job_id: str, fingerprint: str) -> None:
        """A job written (or read) by this process."""
        with self._lock:
            old = self._fingerprint.get(job_id)
            if old is not None and old != fingerprint:
                self._forget(job_id)
            self._fingerprint[job_id] = fingerprint
            self._ids.setdefault(fingerprint, set()).add(job_id)

    def _forget(self, job_id: str) -> None:
        """A job gone from the folder (or replaced): learnt again if it comes back. Called
        with the lock held."""
        fingerprint = self._fingerprint.pop(job_id, None)
        ids = self._ids.get(fingerprint or "")
        if ids is not None:
            ids.discard(job_id)
            if not ids:
                del self._ids[fingerprint or ""]


def _names(root: Path) -> set[str]:
    """The names in the folder; nothing read but the listing."""
    try:
        return set(os.listdir(root))
    except (FileNotFoundError, NotADirectoryError):
        return set()


_INDEXES: dict[str, FingerprintIndex] = {}
_INDEXES_LOCK = threading.Lock()


def index_of(root: Path) -> FingerprintIndex:
    """The process's index of the journal folder ``root``."""
    key = os.path.abspath(root)
    with _INDEXES_LOCK:
        index = _INDEXES.get(key)
        if index is None:
            index = _INDEXES[key] = FingerprintIndex(Path(key))
        return index
