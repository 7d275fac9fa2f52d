"""Submitting one slot: upload its lines, create its batch, never twice.

Each create carries a token (``zgpu_client_token`` = ``<job_id>:<chunk>:<round>``) written
down before the create is sent. A slot whose create was sent but whose answer never arrived
(lost, interrupted, or the process died) is first looked up by its token; only when the
service has no such batch is a new one created. An input file recorded earlier but gone from
the service (expired, deleted) is uploaded again, once.

A job whose id is derived from its content (:func:`~zgpu_pandas._journal.content_job_id`: a
Dask partition, which another process or machine may run too, with a journal of its own) has
tokens that mean the same everywhere, so every create is preceded by a look-up of its token,
recorded or not. Two processes that look up at the same moment may still both create; each
then looks again after its create and the later batch of the two cancels itself and takes the
earlier one (at most a few seconds of one batch's lines are bought twice, never the batch).

Example::

    submitter = Submitter(job_id=..., metadata={}, client=lambda: client, recorder=rec,
                          rounds=rounds, slots=slots, created_at=time.time())
    submitter.submit(slot)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._client import CLIENT_TOKEN_KEY, TOKEN_MAX_SCAN
from .._journal import is_content_job_id
from .._jsonl import BATCH_ENDPOINT
from ..errors import APIStatusError, ConflictError, NotFoundError
from . import checkpoints
from .recorder import NullRecorder
from .rounds import Rounds
from .slots import Slot, Slots

if TYPE_CHECKING:
    from .._client import Client
    from .._models import Batch

__all__ = ["CHUNK_METADATA_KEY", "JOB_METADATA_KEY", "ROUND_METADATA_KEY", "Submitter"]

JOB_METADATA_KEY = "zgpu_job"
CHUNK_METADATA_KEY = "zgpu_chunk"
ROUND_METADATA_KEY = "zgpu_round"
# How far before a job's creation a token search looks (clock skew between us and the service).
_TOKEN_LOOKBACK = 600


def _earliest(batches: list[Batch]) -> Batch:
    """The one batch of several with the same token that counts: the earliest created that
    was not cancelled (a twin cancels itself), else the earliest."""
    live = [b for b in batches if b.status not in ("cancelling", "cancelled")]
    return min(live or batches, key=lambda b: (b.created_at or 0, b.id))


class Submitter:
    """Creates the batch of a slot of one job."""

    def __init__(
        self,
        *,
        job_id: str,
        metadata: Mapping[str, Any],
        client: Callable[[], Client],
        recorder: NullRecorder,
        rounds: Rounds,
        slots: Slots,
        created_at: float,
    ) -> None:
        self.job_id = job_id
        self.metadata = dict(metadata)
        self._client = client
        self._recorder = recorder
        self._rounds = rounds
        self._slots = slots
        self._created_at = created_at  # bounds a search by create token (service clock)
        #: creates actually sent (a batch found by its token is not one)
        self.creates_sent = 0
        # tokens shared with other processes: look before every create (module docstring)
        self._shared_tokens = is_content_job_id(job_id)

    def submit(self, slot: Slot) -> None:
        """Give the slot its batch: found by the token of a create already sent, else
        uploaded (unless already) and created."""
        found = self._find_sent(slot)
        if found is not None:
            self._recorder.note_batch(slot, found)
            self._recorder.save()
            return
        n = self._slots.in_round(slot.round)
        reused = slot.file_id is not None
        if slot.file_id is None:
            self._upload(slot, n)
        slot.token = self._token(slot)
        self._recorder.note_token(slot)  # before the create is sent
        meta = {
            **self.metadata,
            JOB_METADATA_KEY: self.job_id,
            CHUNK_METADATA_KEY: f"{slot.chunk + 1}/{n}",
            CLIENT_TOKEN_KEY: slot.token,
        }
        if slot.round:
            meta[ROUND_METADATA_KEY] = str(slot.round)
        self.creates_sent += 1
        try:
            batch = self._create(slot, meta, n, reused=reused)
        except APIStatusError:
            # the service answered (the client already looked for a lost create by its
            # token): nothing was created, so no create is in doubt
            slot.token = None
            raise
        checkpoints.checkpoint("after_create")  # the batch exists, its id is not recorded yet
        if self._shared_tokens:
            batch = self._earliest_twin(batch)
        self._recorder.note_batch(slot, batch)
        self._recorder.save()

    def _find_sent(self, slot: Slot) -> Batch | None:
        sent = slot.token or (slot.rec.token if slot.rec is not None else None)
        if self._shared_tokens:
            # another process may have created it, whatever this journal says: no time
            # bound (its record may be older than ours), the client's scan limit only
            return self._find_shared(slot)
        if not sent:
            return None
        # A create was sent whose answer never arrived: look for the batch it made.
        rec = self._recorder.record
        since = rec.created_at if rec is not None else self._created_at
        return self._client().batches.find_by_token(sent, created_after=int(since) - _TOKEN_LOOKBACK)

    def _token(self, slot: Slot) -> str:
        return f"{self.job_id}:{slot.chunk}:{slot.round}"

    def _earliest_twin(self, ours: Batch) -> Batch:
        """The batch to keep when another process created one with the same token at the
        same moment: the earliest live one (by creation time, then id); ours is cancelled
        when it is not that one."""
        since = (ours.created_at or 0) - _TOKEN_LOOKBACK
        keep = _earliest([ours, *self._with_token(self._token_of(ours), since=since)])
        if keep.id != ours.id:
            with contextlib.suppress(ConflictError, NotFoundError):
                self._client().batches.cancel(ours.id)
        return keep

    def _find_shared(self, slot: Slot) -> Batch | None:
        """The batch another process (or an earlier run) created for this slot, if any."""
        found = self._with_token(self._token(slot), since=None)
        return _earliest(found) if found else None

    @staticmethod
    def _token_of(batch: Batch) -> str:
        return str(batch.metadata.get(CLIENT_TOKEN_KEY))

    def _with_token(self, token: str, *, since: float | None) -> list[Batch]:
        """The batches carrying ``token`` among the newest (back to ``since``, at most
        the client's scan limit)."""
        found = []
        for seen, batch in enumerate(self._client().batches.list(limit=100), start=1):
            if seen > TOKEN_MAX_SCAN or (
                since is not None and batch.created_at is not None and batch.created_at < since
            ):
                break
            if batch.metadata.get(CLIENT_TOKEN_KEY) == token:
                found.append(batch)
        return found

    def _create(self, slot: Slot, meta: dict[str, Any], n: int, *, reused: bool) -> Batch:
        batches = self._client().batches
        assert slot.file_id is not None
        try:
            return batches.create(input_file_id=slot.file_id, endpoint=BATCH_ENDPOINT, metadata=meta)
        except NotFoundError:
            if not reused:
                raise
            # the recorded upload is gone (expired or deleted): upload it again, once
            self._upload(slot, n)
            return batches.create(input_file_id=slot.file_id, endpoint=BATCH_ENDPOINT, metadata=meta)

    def _upload(self, slot: Slot, n: int) -> None:
        src = self._rounds.source(slot.round)
        chunk = src.chunks[slot.chunk]
        self._recorder.check_chunk(slot, lambda: src.chunk_sha256(chunk))
        checkpoints.checkpoint("before_upload")
        suffix = f"-r{slot.round}" if slot.round else ""
        # a view, not a copy: a 100 MB chunk is not held twice while uploading
        f = self._client().files.upload(
            src.chunk_view(chunk),
            filename=f"{self.job_id}{suffix}-part{slot.chunk + 1}of{n}.jsonl",
        )
        slot.file_id = f.id
        self._recorder.note_file(slot)
        checkpoints.checkpoint("after_upload")
