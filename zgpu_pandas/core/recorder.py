"""The journal side of a job: what is written down, when, so that a dead process loses nothing.

A job talks to one recorder. :class:`JournalRecorder` writes the job's record before the
first upload, each chunk's file id right after its upload, its create token before the create
is sent and its batch right after, each retry round's rows before its record names it, and
keeps a copy of every result file; so the same call run again resumes without paying twice.
:class:`NullRecorder` is the same interface for a job without a journal (attached by batch ids
or built by hand): nothing is written, and nothing needs an ``is None`` branch.

Example::

    rec = JournalRecorder(Journal(), job_id="job_...")
    rec.begin(facts, slots)          # before anything is uploaded
    rec.note_token(slot)             # before the create is sent
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._journal import ChunkRecord, JobRecord, Journal
from .._models import Batch
from ..errors import JournalCorruptError, RequestLinesUnavailableError, ZgpuError
from .layout import JobLayout
from .requests import RequestSet
from .reuse import REUSED_FILE
from .slots import Slot, Slots, npy_bytes, npy_load

__all__ = ["JobFacts", "JournalRecorder", "NullRecorder"]


@dataclass(frozen=True)
class JobFacts:
    """What a new job's record holds."""

    job_id: str
    fingerprint: str
    model: str
    rows: int
    settings: Mapping[str, Any]
    requests: RequestSet
    layout: JobLayout
    connection: Mapping[str, Any] = field(default_factory=dict)


def _copy_batch(slot: Slot, batch: Batch) -> bool:
    """Keep ``batch`` on the slot and in its record; True when the record changed."""
    slot.batch = batch
    rec = slot.rec
    if rec is None:
        return False
    wire = batch.to_dict()
    if rec.batch == wire and rec.batch_id == batch.id:
        return False
    c = batch.request_counts
    rec.batch, rec.batch_id, rec.status = wire, batch.id, batch.status
    rec.output_file_id, rec.error_file_id = batch.output_file_id, batch.error_file_id
    rec.completed, rec.failed = c.completed, c.failed
    return True


class NullRecorder:
    """A job without a journal: every note is kept on the slots only."""

    journal: Journal | None = None
    record: JobRecord | None = None

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id

    @property
    def resumable(self) -> bool:
        """Whether the same call run again finds this job (only with a journal record)."""
        return False

    def begin(self, facts: JobFacts, slots: Slots) -> None:
        """Nothing to write down."""

    def save(self, status: str | None = None) -> None:
        """Nothing to write down."""

    def note_batch(self, slot: Slot, batch: Batch) -> bool:
        _copy_batch(slot, batch)
        return False

    def note_file(self, slot: Slot) -> None:
        """Nothing to write down."""

    def note_token(self, slot: Slot) -> None:
        """Nothing to write down."""

    def note_downloaded(self, slot: Slot) -> None:
        """Nothing to write down."""

    def check_chunk(self, slot: Slot, sha256: Callable[[], str]) -> None:
        """No recorded checksum to compare with."""

    def result_copy(self, batch_id: str, kind: str) -> Path | None:
        """No local copies: results are streamed from the service."""
        return None

    def add_round(self, round_: int, src: RequestSet) -> list[ChunkRecord | None]:
        return [None] * len(src.chunks)

    def round_rows(self, round_: int) -> np.ndarray:
        raise RequestLinesUnavailableError(
            f"Job {self.job_id}: the rows of retry round {round_} are known only to the process "
            f"that made it; run the call again from the frame instead."
        )

    def finish(self, status: str) -> None:
        """Nothing to write down."""

    def corrupt(self, what: str) -> ZgpuError:
        return JournalCorruptError(f"Job {self.job_id}: {what}")

    def where(self) -> str:
        return "no journal"


class JournalRecorder(NullRecorder):
    """A job written down in a :class:`~zgpu_pandas._journal.Journal` as it goes."""

    def __init__(
        self,
        journal: Journal,
        job_id: str,
        record: JobRecord | None = None,
        *,
        reused: Sequence[bytes] = (),
    ) -> None:
        super().__init__(job_id)
        self.journal = journal
        self.record = record
        # answers bought earlier for rows this job does not send (see core/reuse.py)
        self._reused = list(reused)
        # (round, chunk) whose recorded checksum was computed from the bytes in hand
        self._verified: set[tuple[int, int]] = set()

    @property
    def resumable(self) -> bool:
        return self.record is not None

    def begin(self, facts: JobFacts, slots: Slots) -> None:
        """Write the job down before anything is uploaded (once)."""
        if self.record is not None:
            return
        reqs = facts.requests
        chunks = [
            ChunkRecord(
                index=c.index,
                lines=c.lines,
                bytes=c.bytes,
                sha256=reqs.chunk_sha256(c),
                round=0,
                start=c.start,
            )
            for c in reqs.chunks
        ]
        rec = self._store().create(
            fingerprint=facts.fingerprint,
            model=facts.model,
            rows=facts.rows,
            settings=dict(facts.settings),
            base_url=str(facts.connection.get("base_url", "")),
            provider=str(facts.connection.get("provider", "zerogpu")),
            project_id=facts.connection.get("project_id"),
            chunks=chunks,
            job_id=facts.job_id,
        )
        # the layout first: a record without it could not be rebuilt without the frame
        self._store().write_blob(rec.job_id, "layout.npz", facts.layout.to_bytes())
        if self._reused:
            self._store().write_blob(rec.job_id, REUSED_FILE, b"\n".join(self._reused) + b"\n")
        for slot, crec in zip(slots, rec.chunks, strict=True):
            slot.rec = crec
            self._verified.add((0, crec.index))
        self.record = rec

    def _store(self) -> Journal:
        assert self.journal is not None
        return self.journal

    def save(self, status: str | None = None) -> None:
        if self.record is None:
            return
        if status is not None:
            self.record.status = status
        self._store().save(self.record)

    def note_batch(self, slot: Slot, batch: Batch) -> bool:
        return _copy_batch(slot, batch)

    def note_file(self, slot: Slot) -> None:
        if slot.rec is not None:
            slot.rec.file_id = slot.file_id
            self.save()

    def note_token(self, slot: Slot) -> None:
        if slot.rec is not None:
            slot.rec.token = slot.token
            self.save()

    def note_downloaded(self, slot: Slot) -> None:
        if slot.rec is not None and not slot.rec.downloaded:
            slot.rec.downloaded = True
            self.save()

    def check_chunk(self, slot: Slot, sha256: Callable[[], str]) -> None:
        """A resumed job's lines, rebuilt, must be the bytes the record describes."""
        if slot.rec is None or (slot.round, slot.chunk) in self._verified:
            return
        if sha256() != slot.rec.sha256:
            raise self.corrupt(
                f"chunk {slot.chunk + 1} of round {slot.round} no longer matches its recorded "
                f"checksum"
            )
        self._verified.add((slot.round, slot.chunk))

    def result_copy(self, batch_id: str, kind: str) -> Path | None:
        if self.record is None:
            return None
        return self._store().results_dir(self.job_id) / f"{batch_id}-{kind}.jsonl"

    def add_round(self, round_: int, src: RequestSet) -> list[ChunkRecord | None]:
        if self.record is None:
            return super().add_round(round_, src)
        # the rows first: a record naming a round must be able to rebuild its lines
        self._store().write_blob(self.job_id, f"round-{round_}.npy", npy_bytes(src.positions))
        for c in src.chunks:
            self.record.chunks.append(
                ChunkRecord(
                    index=c.index,
                    lines=c.lines,
                    bytes=c.bytes,
                    sha256=src.chunk_sha256(c),
                    round=round_,
                    start=c.start,
                )
            )
        self.save("running")
        self._verified.update((round_, c.index) for c in src.chunks)
        return list(self.record.chunks[-len(src.chunks) :])

    def round_rows(self, round_: int) -> np.ndarray:
        try:
            return npy_load(self._store().read_blob(self.job_id, f"round-{round_}.npy"))
        except (OSError, ValueError) as exc:
            raise self._store().corrupt(self.job_id, f"round-{round_}.npy", exc) from None

    def finish(self, status: str) -> None:
        if self.record is not None and self.record.status != status:
            self.save(status)

    def corrupt(self, what: str) -> ZgpuError:
        return self._store().corrupt(self.job_id, "job.json", what)

    def where(self) -> str:
        return str(self._store().job_dir(self.job_id))
