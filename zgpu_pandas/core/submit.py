"""Submitting one slot: upload its lines, create its batch, never twice.

Each create carries a token (``zgpu_client_token`` = ``<job_id>:<chunk>:<round>``) written
down before the create is sent. A slot whose create was sent but whose answer never arrived
(lost, interrupted, or the process died) is first looked up by its token; only when the
service has no such batch is a new one created. An input file recorded earlier but gone from
the service (expired, deleted) is uploaded again, once.

A job whose id is derived from its content (:func:`~zgpu_pandas._journal.content_job_id`: a
Dask partition, which another process or machine may run too, with a journal of its own) has
tokens that mean the same everywhere, so its token is looked up (core/tokens.py) before the
upload and again just before the create, recorded or not. Two processes that look up at the
same moment may still both create; each then looks again after its create, and the later
batch of the two (in the service's own order) cancels itself and takes the earlier one. What
the later one ran before its cancel is paid twice; if it already finished (a tiny batch), all
of it was.

Example::

    submitter = Submitter(job_id=..., metadata={}, client=lambda: client, recorder=rec,
                          rounds=rounds, slots=slots, created_at=time.time())
    submitter.submit(slot)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._client import CLIENT_TOKEN_KEY
from .._journal import is_content_job_id
from .._jsonl import BATCH_ENDPOINT
from ..errors import APIStatusError, ConflictError, NotFoundError
from . import checkpoints
from .recorder import NullRecorder
from .rounds import Rounds
from .slots import Slot, Slots
from .tokens import keep_of, token_index

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
        # tokens shared with other processes: look before every create (module docstring)
        self._shared_tokens = is_content_job_id(job_id)

    def submit(self, slot: Slot) -> None:
        """Give the slot its batch: found by the token of a create already sent, else
        uploaded (unless already) and created."""
        if self._adopt(slot, self._find_sent(slot)):
            return
        n = self._slots.in_round(slot.round)
        reused = slot.file_id is not None
        if slot.file_id is None:
            self._upload(slot, n)
            if self._shared_tokens and self._adopt(slot, self._find_shared(slot)):
                return  # created elsewhere while this one uploaded
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
            # another process may have created it, whatever this journal says
            return self._find_shared(slot)
        if not sent:
            return None
        # A create was sent whose answer never arrived: look for the batch it made.
        rec = self._recorder.record
        since = rec.created_at if rec is not None else self._created_at
        return self._client().batches.find_by_token(sent, created_after=int(since) - _TOKEN_LOOKBACK)

    def _token(self, slot: Slot) -> str:
        return f"{self.job_id}:{slot.chunk}:{slot.round}"

    def _adopt(self, slot: Slot, found: Batch | None) -> bool:
        """Give the slot a batch found on the service (``False`` when none was)."""
        if found is None:
            return False
        self._recorder.note_batch(slot, found)
        self._recorder.save()
        return True

    def _earliest_twin(self, ours: Batch) -> Batch:
        """The batch to keep when another process created one with the same token at the
        same moment: the oldest live one in the service's order; ours is cancelled when it
        is not that one."""
        client = self._client()
        found = token_index(client).batches(client, self._token_of(ours))
        if all(b.id != ours.id for b in found):
            found.insert(0, ours)  # not listed yet: the newest
        keep = keep_of(found) or ours
        if keep.id != ours.id:
            with contextlib.suppress(ConflictError, NotFoundError):  # finished: paid anyway
                client.batches.cancel(ours.id)
        return keep

    def _find_shared(self, slot: Slot) -> Batch | None:
        """The batch another process (or an earlier run) created for this slot, if any."""
        client = self._client()
        return keep_of(token_index(client).batches(client, self._token(slot)))

    @staticmethod
    def _token_of(batch: Batch) -> str:
        return str(batch.metadata.get(CLIENT_TOKEN_KEY))

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
