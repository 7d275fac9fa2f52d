"""The batches of a job: one :class:`Slot` per chunk of each round, in order.

Round 0 holds the chunks of the job's request lines; each retry round adds the chunks of the
rows it resubmits. A slot knows the rows its lines carry, its input file, the create token
sent for it, the batch that carries it (as last seen) and whether that batch's results were
read, so the job can be resumed at any step.

Example::

    slots = Slots.of(requests)          # round 0, one slot per chunk
    slots.todo()                        # not submitted yet
    slots.batch_ids                     # ['batch_...', ...]
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence

import numpy as np

from .._journal import ChunkRecord, JobRecord, Journal
from .._models import TERMINAL_STATUSES, Batch
from .._progress import BatchState
from .requests import RequestSet

__all__ = ["Slot", "Slots", "npy_bytes", "npy_load"]


class Slot:
    """One chunk of one round of the job, and the batch carrying it."""

    __slots__ = (
        "batch",
        "chunk",
        "collected",
        "file_id",
        "index",
        "lines",
        "positions",
        "rec",
        "round",
        "token",
    )

    def __init__(
        self,
        index: int,
        lines: int,
        positions: np.ndarray | None,
        *,
        chunk: int | None = None,
        round: int = 0,
        rec: ChunkRecord | None = None,
    ) -> None:
        self.index = index  # position among all the job's slots (rounds included)
        self.chunk = index if chunk is None else chunk  # chunk number within its round
        self.round = round
        self.lines = lines
        self.positions = positions  # None until known (a job attached by batch ids)
        self.rec = rec  # its journal entry, when the job has a journal
        self.file_id: str | None = None
        self.batch: Batch | None = None
        self.collected = False
        # the create token sent for this slot (kept in memory too, for a job without journal)
        self.token: str | None = None

    @property
    def terminal(self) -> bool:
        return self.batch is not None and self.batch.status in TERMINAL_STATUSES

    def state(self) -> BatchState:
        b = self.batch
        if b is None:
            return BatchState(self.index, None, "not submitted", self.lines)
        c = b.request_counts
        return BatchState(self.index, b.id, b.status, c.total or self.lines, c.completed, c.failed)


class Slots:
    """The job's slots in order: round 0's chunks, then each retry round's."""

    def __init__(self, items: list[Slot] | None = None) -> None:
        self.items: list[Slot] = items or []

    @classmethod
    def of(cls, requests: RequestSet) -> Slots:
        """Round 0 of a new job: one slot per chunk of its request lines."""
        return cls([Slot(c.index, c.lines, requests.chunk_positions(c)) for c in requests.chunks])

    @classmethod
    def of_batches(cls, batches: Sequence[Batch], *, every_row: int | None = None) -> Slots:
        """The batches of a job attached by their ids. Which rows each carries is read later
        from its input file, unless ``every_row`` (a row count) says that the one batch
        carries every row (a batch made elsewhere, keyed by its own custom_ids)."""
        items = []
        for k, b in enumerate(batches):
            rows: np.ndarray | None = None
            if every_row is not None and len(batches) == 1:
                rows = np.arange(every_row, dtype=np.int64)
            slot = Slot(k, b.request_counts.total, rows)
            slot.batch = b
            slot.file_id = b.input_file_id
            items.append(slot)
        return cls(items)

    @classmethod
    def from_record(cls, record: JobRecord, journal: Journal, sent: np.ndarray) -> Slots:
        """The slots of a journaled job, as recorded (``sent``: round 0's rows in line
        order). A record that does not fit raises the journal's corrupt error."""
        items: list[Slot] = []
        round_rows: dict[int, np.ndarray] = {0: sent}
        for k, crec in enumerate(record.chunks):
            if crec.round not in round_rows:
                try:
                    blob = journal.read_blob(record.job_id, f"round-{crec.round}.npy")
                    round_rows[crec.round] = npy_load(blob)
                except (OSError, ValueError) as exc:
                    raise journal.corrupt(record.job_id, f"round-{crec.round}.npy", exc) from None
            rows = round_rows[crec.round]
            if crec.start < 0 or crec.start + crec.lines > len(rows):
                raise journal.corrupt(record.job_id, "job.json", f"chunk {k} is out of range")
            slot = Slot(
                k,
                crec.lines,
                rows[crec.start : crec.start + crec.lines],
                chunk=crec.index,
                round=crec.round,
                rec=crec,
            )
            slot.file_id = crec.file_id
            slot.token = crec.token
            if crec.batch is not None:
                try:
                    slot.batch = Batch.from_dict(crec.batch)
                except (TypeError, ValueError, KeyError) as exc:
                    raise journal.corrupt(record.job_id, "job.json", exc) from None
            items.append(slot)
        return cls(items)

    def __iter__(self) -> Iterator[Slot]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def batch_ids(self) -> list[str]:
        return [s.batch.id for s in self.items if s.batch is not None]

    @property
    def rounds(self) -> int:
        return max((s.round for s in self.items), default=0)

    def todo(self) -> list[Slot]:
        """Slots whose batch is not known yet (never created, or created but unanswered)."""
        return [s for s in self.items if s.batch is None]

    def running(self) -> list[Slot]:
        return [s for s in self.items if s.batch is not None and not s.terminal]

    def all_collected(self) -> bool:
        return all(s.collected for s in self.items)

    def in_round(self, round_: int) -> int:
        return sum(1 for s in self.items if s.round == round_)

    def unanswered_creates(self) -> list[Slot]:
        """Slots whose create was sent (token set) but whose batch is not known: the create
        may have gone through, so its outcome is unknown until looked up by token."""
        return [s for s in self.items if s.batch is None and s.token is not None]

    def carried(self) -> np.ndarray | None:
        """Every row position some slot's lines carry (``None`` when none is known)."""
        known = [s.positions for s in self.items if s.positions is not None]
        return np.concatenate(known) if known else None

    def add_round(
        self, round_: int, src: RequestSet, recs: list[ChunkRecord | None]
    ) -> None:
        for c, crec in zip(src.chunks, recs, strict=True):
            self.items.append(
                Slot(
                    len(self.items),
                    c.lines,
                    src.chunk_positions(c),
                    chunk=c.index,
                    round=round_,
                    rec=crec,
                )
            )


def npy_bytes(arr: np.ndarray) -> bytes:
    """Row positions as a ``.npy`` file's bytes (a retry round's rows, in the journal)."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr, dtype=np.int64), allow_pickle=False)
    return buf.getvalue()


def npy_load(data: bytes) -> np.ndarray:
    """Row positions stored by :func:`npy_bytes`; anything else raises ``ValueError``."""
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # a damaged file fails in many ways
        raise ValueError(f"not a list of row positions ({type(exc).__name__}: {exc})") from None
    if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError("not a list of row positions")
    return np.asarray(arr, dtype=np.int64)
