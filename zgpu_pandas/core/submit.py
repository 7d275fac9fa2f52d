"""Submitting one slot: upload its lines, create its batch, never twice.

Each create carries a token (``zgpu_client_token`` = ``<job_id>:<chunk>:<round>``) written
down before the create is sent. A slot whose create was sent but whose answer never arrived
(lost, interrupted, or the process died) is first looked up by its token; only when the
service has no such batch is a new one created. An input file recorded earlier but gone from
the service (expired, deleted) is uploaded again, once.

Example::

    submitter = Submitter(job_id=..., metadata={}, client=lambda: client, recorder=rec,
                          rounds=rounds, slots=slots, created_at=time.time())
    submitter.submit(slot)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._client import CLIENT_TOKEN_KEY
from .._jsonl import BATCH_ENDPOINT
from ..errors import APIStatusError, NotFoundError
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
        slot.token = f"{self.job_id}:{slot.chunk}:{slot.round}"
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
        self._recorder.note_batch(slot, batch)
        self._recorder.save()

    def _find_sent(self, slot: Slot) -> Batch | None:
        sent = slot.token or (slot.rec.token if slot.rec is not None else None)
        if not sent:
            return None
        # A create was sent whose answer never arrived: look for the batch it made.
        rec = self._recorder.record
        since = rec.created_at if rec is not None else self._created_at
        return self._client().batches.find_by_token(sent, created_after=int(since) - _TOKEN_LOOKBACK)

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
