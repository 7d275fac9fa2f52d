"""BatchJob: one logical job over one or more batches: submit, poll, wait, retry, cancel, result.

A job is built from a :class:`~zgpu_pandas.core.requests.RequestSet` (its chunks become batches)
and the frame the rows came from. Results are collected per batch as soon as that batch is
terminal (streamed into a :class:`~zgpu_pandas.core.results.ResultsTable`, never held whole), and
``result()`` merges them into a new DataFrame with the frame's index and order.

With a :class:`~zgpu_pandas._journal.Journal` (what ``df.zgpu.batch_chat`` uses), every step
is written down before or right after it happens, so a process that dies anywhere can be
resumed by running the same call again without paying twice:

- the record (and which row each line carries) is written before the first upload;
- a chunk's file id is recorded right after its upload;
- its create token (``zgpu_client_token`` = ``<job_id>:<chunk>:<round>``) is recorded before
  the create is sent, and the batch id right after it returns; a create whose answer was
  never recorded is found again by its token;
- output and error files are downloaded into the journal (``results/``, ``0600``) and read
  from there, so a finished job's result is rebuilt from disk with no network call.

Failed rows can be resubmitted in a new *round* (:meth:`BatchJob.retry`): a new batch of the
same job, whose answers replace the failures. Rows failing for an account-wide reason
(``insufficient_quota``, ``authentication_error``) stop the job instead
(:class:`JobStoppedError`).

Waiting never cancels anything. An interrupt (Ctrl-C, a kernel interrupt) while waiting or
submitting prints how to pick the job up again and how to cancel it, then re-raises; the
batches keep running on the service and what they did is kept.

Example::

    job = BatchJob(client=client, frame=df, requests=reqs).submit()
    job.status().outcome              # 'running'
    out = job.result()                # waits, then the merged DataFrame
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa

from .._client import CLIENT_TOKEN_KEY
from .._journal import ChunkRecord, JobRecord, Journal, new_job_id, write_atomic
from .._jsonl import BATCH_ENDPOINT
from .._models import TERMINAL_STATUSES, Batch
from .._progress import (
    BatchState,
    JobStatus,
    NullProgress,
    Progress,
    ProgressOption,
    make_progress,
    render_html,
    summary,
)
from .._retry import Outage
from .._retry import outage_grace as outage_grace_for
from ..errors import (
    APIConnectionError,
    APIStatusError,
    ColumnClashError,
    ConflictError,
    InternalServerError,
    JobNotFoundOnServiceError,
    JobStoppedError,
    JobSubmitError,
    JobTimeoutError,
    JobUnreachableError,
    NotFoundError,
    OptionError,
    RateLimitError,
    RequestLinesUnavailableError,
    StructuredOutputError,
    ZgpuError,
)
from .layout import JobLayout
from .requests import RequestSet
from .results import ERROR, ResultsTable, check_columns
from .rows import FrameOutput, as_output, position_output

if TYPE_CHECKING:
    from .._client import Client
    from .structured import SchemaSpec

__all__ = [
    "ACCOUNT_CODES",
    "TRANSIENT_CODES",
    "BatchJob",
    "JobNotFoundOnServiceError",
    "JobStoppedError",
    "JobSubmitError",
    "JobTimeoutError",
    "JobUnreachableError",
]

logger = logging.getLogger("zgpu_pandas.job")

JOB_METADATA_KEY = "zgpu_job"
CHUNK_METADATA_KEY = "zgpu_chunk"
ROUND_METADATA_KEY = "zgpu_round"

#: Error codes worth resubmitting as they are (the service's recovery guidance).
TRANSIENT_CODES = ("internal_error", "rate_limit_exceeded", "batch_expired")
#: Error codes that say the account, not the row, is the problem: resubmitting cannot help.
ACCOUNT_CODES = ("insufficient_quota", "authentication_error")


# How far before a job's creation a token search looks (clock skew between us and the service).
_TOKEN_LOOKBACK = 600

#: Environment variable read by :func:`_checkpoint` (a test hook, see docs/resume.md).
KILL_AT_ENV = "ZGPU_TEST_KILL_AT"
CHECKPOINTS = ("before_upload", "after_upload", "after_create", "mid_poll", "mid_download")


def _checkpoint(stage: str) -> None:
    """Test hook: end the process at once (``os._exit(137)``, as a SIGKILL would) when
    ``$ZGPU_TEST_KILL_AT`` equals ``stage``.

    Lets the reliability tests kill a job at an exact point (``before_upload``,
    ``after_upload``, ``after_create``, ``mid_poll``, ``mid_download``) and check that
    re-running the call resumes without paying twice. The variable is read at call time;
    nothing else depends on this function.
    """
    if os.environ.get(KILL_AT_ENV) == stage:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(137)


def _killable(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A download stream with the ``mid_download`` checkpoint after its first chunk."""
    for k, chunk in enumerate(chunks):
        yield chunk
        if k == 0:
            _checkpoint("mid_download")


class _Slot:
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
        self.rec = rec
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


class BatchJob:
    """A chat job over the rows of a DataFrame, run as one or more batches.

    Made by ``df.zgpu.submit_chat(...)`` (or ``df.zgpu.attach(...)``,
    ``zgpu_pandas.attach(job_id)``); rarely built by hand. ``status()`` polls once,
    ``wait()`` polls until done, ``result()`` gives the merged DataFrame, ``retry()``
    resubmits failed rows, ``cancel()`` stops the batches still running. Safe to use from a
    second thread (a notebook widget updates from one).

    Example::

        job = df.zgpu.submit_chat("review", model="LFM2.5-1.2B-Instruct")
        job.batch_ids                 # ['batch_...']
        ...                           # the kernel is free meanwhile
        out = job.result()            # waits if needed
        job.retry()                   # resubmit rows that failed transiently
        out = job.result()
    """

    def __init__(
        self,
        *,
        client: Client | None = None,
        frame: Any,
        requests: RequestSet | None,
        model: str = "",
        output: str = "response",
        overwrite: bool = False,
        metadata: Mapping[str, Any] | None = None,
        poll_interval: float | None = None,
        progress: ProgressOption | Progress = False,
        job_id: str | None = None,
        owns_client: bool = False,
        resume_hint: str = "job",
        client_factory: Callable[[], Client] | None = None,
        journal: Journal | None = None,
        fingerprint: str | None = None,
        connection: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
        parse: SchemaSpec | None = None,
        layout: JobLayout | None = None,
        retries: int = 0,
    ) -> None:
        if client is None and client_factory is None:
            raise ValueError("a job needs client= (or client_factory=)")
        # where the results go: the caller's frame as it was at submit time (a snapshot the
        # job never changes); a pandas or Polars frame, or any FrameOutput
        self._output: FrameOutput = as_output(frame)
        check_columns(self._output.columns, output, overwrite=overwrite)
        if poll_interval is not None and not poll_interval > 0:
            raise OptionError(f"poll_interval must be a positive number, not {poll_interval!r}")
        self.job_id = job_id or new_job_id()
        self._client = client
        self._client_factory = client_factory
        self.requests = requests
        self.model = model or (requests.settings.get("model", "") if requests else "")
        self.output = output
        self.overwrite = overwrite
        self.metadata = dict(metadata or {})
        self.poll_interval = poll_interval
        self.resume_hint = resume_hint
        self.parse = parse
        #: retry rounds ``result()`` runs on its own for transient failures
        self.retries = retries
        self.journal = journal
        self.record: JobRecord | None = None
        self._fingerprint = fingerprint
        self._connection = dict(connection or {})
        self._settings = dict(settings or (requests.settings if requests else {}))
        self._owns_client = owns_client
        self._lock = threading.RLock()
        self._table = ResultsTable(self._output.n_rows)
        self._slots: list[_Slot] = []
        self._round_sources: dict[int, RequestSet] = {}
        # (round, chunk) whose recorded checksum was computed from the bytes in hand
        self._verified: set[tuple[int, int]] = set()
        if requests is not None:
            if requests.n_rows != self._output.n_rows:
                raise ValueError("the request set was built from a frame of another length")
            layout = JobLayout.of(requests)
            self._round_sources[0] = requests
        self.layout = layout
        if layout is not None:
            if layout.n_rows != self._output.n_rows:
                raise ValueError("the job's layout is for a frame of another length")
            self._table.set_duplicates(layout.dup_pos, layout.dup_src)
            self._table.add_skipped(layout.skipped, layout.skipped_codes, layout.skipped_reasons)
        if requests is not None:
            self._slots = [
                _Slot(c.index, c.lines, requests.chunk_positions(c)) for c in requests.chunks
            ]
        self._started = time.monotonic()
        self._created_at = time.time()  # bounds a search by create token (service clock)
        self._rate_base: tuple[float, int] | None = None
        self._submitted = False
        self._display: Progress = (
            progress if not isinstance(progress, bool | str | None) else make_progress(progress)
        )
        self._watcher: threading.Thread | None = None
        self._warned = False
        self._stop_codes: dict[str, int] = {}
        self._cancelled = False
        #: creates actually sent by this object (a batch found by its token is not one)
        self.creates_sent = 0

    # ---- identity ----------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The client the job talks through (made on first use when the job was given a
        factory, so a job rebuilt from the journal alone never needs one)."""
        with self._lock:
            if self._client is None:
                assert self._client_factory is not None
                self._client = self._client_factory()
                self._owns_client = True
            return self._client

    @property
    def batch_ids(self) -> list[str]:
        """Ids of the batches created so far, in chunk order (retry rounds after)."""
        return [s.batch.id for s in self._slots if s.batch is not None]

    @property
    def fingerprint(self) -> str | None:
        """What identifies the job in the journal (the request set's fingerprint for a job
        without one; ``None`` for a job attached by batch ids)."""
        if self._fingerprint is not None:
            return self._fingerprint
        return self.requests.fingerprint if self.requests is not None else None

    @property
    def display(self) -> Progress:
        """The progress display the job updates (a widget, a tqdm bar, or nothing)."""
        return self._display

    @property
    def rounds(self) -> int:
        """Retry rounds submitted so far (0 before any retry)."""
        return max((s.round for s in self._slots), default=0)

    def __repr__(self) -> str:
        st = self._snapshot()
        return (
            f"<BatchJob {self.job_id} model={self.model!r} rows={st.rows} "
            f"batches={self.batch_ids} outcome={st.outcome}>"
        )

    def _repr_html_(self) -> str:
        return render_html(self._snapshot())

    # ---- journal -----------------------------------------------------------------------

    def _save(self, status: str | None = None) -> None:
        if self.journal is None or self.record is None:
            return
        if status is not None:
            self.record.status = status
        self.journal.save(self.record)

    def _ensure_record(self) -> None:
        """Write the job down before anything is uploaded (no-op without a journal)."""
        if self.journal is None or self.record is not None:
            return
        reqs = self.requests
        assert reqs is not None and self.layout is not None
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
        rec = self.journal.create(
            fingerprint=self.fingerprint or reqs.fingerprint,
            model=self.model,
            rows=self._output.n_rows,
            settings={**self._settings, "output": self.output},
            base_url=str(self._connection.get("base_url", "")),
            provider=str(self._connection.get("provider", "zerogpu")),
            project_id=self._connection.get("project_id"),
            chunks=chunks,
            job_id=self.job_id,
        )
        # the layout first: a record without it could not be rebuilt without the frame
        self.journal.write_blob(rec.job_id, "layout.npz", self.layout.to_bytes())
        for slot, crec in zip(self._slots, rec.chunks, strict=True):
            slot.rec = crec
            self._verified.add((0, crec.index))
        self.record = rec

    def _note_batch(self, slot: _Slot, batch: Batch) -> bool:
        """Keep the batch as seen; True when the record changed (and needs saving)."""
        slot.batch = batch
        rec = slot.rec
        if rec is None:
            return False
        wire = batch.to_dict()
        if rec.batch == wire and rec.batch_id == batch.id:
            return False
        c = batch.request_counts
        rec.batch = wire
        rec.batch_id = batch.id
        rec.status = batch.status
        rec.output_file_id = batch.output_file_id
        rec.error_file_id = batch.error_file_id
        rec.completed, rec.failed = c.completed, c.failed
        return True

    # ---- submit ------------------------------------------------------------------------

    def _source(self, round_: int) -> RequestSet:
        """The request lines of one round (rebuilt if the job was resumed)."""
        src = self._round_sources.get(round_)
        if src is None:
            src = self._rebuild_round(round_)
            self._round_sources[round_] = src
        return src

    def submit(self) -> BatchJob:
        """Upload each chunk and create its batch. Chunks already submitted are skipped,
        so calling it again after a failure submits only the rest. Returns the job."""
        with self._lock:
            todo = [s for s in self._slots if s.batch is None]
            if not todo:
                self._submitted = True
                return self
            self._ensure_record()
            try:
                for slot in todo:
                    self._submit_slot(slot)
                    self._show(self._snapshot())
            except KeyboardInterrupt:
                self._say_interrupted("submitting")
                raise
            except ZgpuError as exc:
                if not self.batch_ids:
                    raise
                n = len(self._slots)
                raise JobSubmitError(
                    f"Submitting job {self.job_id} stopped after {len(self.batch_ids)} of {n} "
                    f"batches ({exc}). The batches created keep running: "
                    f"{', '.join(self.batch_ids)}. Call {self.resume_hint}.submit() to submit the "
                    f"rest (a create whose answer was lost is first looked up by its token, so "
                    f"no batch is made twice), or {self.resume_hint}.cancel() to stop them.",
                    job=self,
                ) from exc
            self._submitted = True
            self._save("running")
        return self

    def _submit_slot(self, slot: _Slot) -> None:
        rec = slot.rec
        sent = slot.token or (rec.token if rec is not None else None)
        if sent:
            # A create was sent whose answer never arrived (lost, interrupted, or the process
            # that sent it died): look for the batch it made before making another.
            since = self.record.created_at if self.record is not None else self._created_at
            found = self.client.batches.find_by_token(
                sent, created_after=int(since) - _TOKEN_LOOKBACK
            )
            if found is not None:
                self._note_batch(slot, found)
                self._save()
                return
        n = sum(1 for s in self._slots if s.round == slot.round)
        reused = slot.file_id is not None
        if slot.file_id is None:
            self._upload(slot, n)
        token = f"{self.job_id}:{slot.chunk}:{slot.round}"
        slot.token = token
        if rec is not None:
            rec.token = token
            self._save()  # before the create is sent
        meta = {
            **self.metadata,
            JOB_METADATA_KEY: self.job_id,
            CHUNK_METADATA_KEY: f"{slot.chunk + 1}/{n}",
            CLIENT_TOKEN_KEY: token,
        }
        if slot.round:
            meta[ROUND_METADATA_KEY] = str(slot.round)
        assert slot.file_id is not None
        self.creates_sent += 1
        try:
            try:
                batch = self.client.batches.create(
                    input_file_id=slot.file_id, endpoint=BATCH_ENDPOINT, metadata=meta
                )
            except NotFoundError:
                if not reused:
                    raise
                # the recorded upload is gone (expired or deleted): upload it again, once
                self._upload(slot, n)
                batch = self.client.batches.create(
                    input_file_id=slot.file_id, endpoint=BATCH_ENDPOINT, metadata=meta
                )
        except APIStatusError:
            # the service answered (the client already looked for a lost create by its
            # token): nothing was created, so no create is in doubt
            slot.token = None
            raise
        _checkpoint("after_create")  # the batch exists, its id is not recorded yet
        self._note_batch(slot, batch)
        self._save()

    def _upload(self, slot: _Slot, n: int) -> None:
        src = self._source(slot.round)
        chunk = src.chunks[slot.chunk]
        if (
            slot.rec is not None
            and (slot.round, slot.chunk) not in self._verified
            and src.chunk_sha256(chunk) != slot.rec.sha256
        ):
            raise self._corrupt(
                f"chunk {slot.chunk + 1} of round {slot.round} no longer matches its recorded "
                f"checksum"
            )
        _checkpoint("before_upload")
        suffix = f"-r{slot.round}" if slot.round else ""
        # a view, not a copy: a 100 MB chunk is not held twice while uploading
        f = self.client.files.upload(
            src.chunk_view(chunk),
            filename=f"{self.job_id}{suffix}-part{slot.chunk + 1}of{n}.jsonl",
        )
        slot.file_id = f.id
        if slot.rec is not None:
            slot.rec.file_id = f.id
            self._save()
        _checkpoint("after_upload")

    def _corrupt(self, what: str) -> ZgpuError:
        assert self.journal is not None
        return self.journal.corrupt(self.job_id, "job.json", what)

    # ---- poll --------------------------------------------------------------------------

    def status(self) -> JobStatus:
        """Poll the service once: refresh every unfinished batch, collect the results of
        the ones that just finished, and return a snapshot. A job whose batches are all
        finished and collected makes no network call."""
        with self._lock:
            changed = False
            polled = False
            for slot in self._slots:
                if slot.batch is not None and not slot.terminal:
                    changed |= self._note_batch(slot, self._retrieve(slot.batch.id))
                    polled = True
            if changed:
                self._save()
            if polled:
                _checkpoint("mid_poll")
            for slot in self._slots:
                if slot.terminal and not slot.collected:
                    self._collect(slot)
            if self.layout is None and self._slots and all(s.collected for s in self._slots):
                self._finish_attached()
            st = self._snapshot()
            if st.done and self.record is not None:
                final = self._final_status(st)
                if self.record.status != final:
                    self._save(final)
            return st

    def _retrieve(self, batch_id: str) -> Batch:
        try:
            return self.client.batches.retrieve(batch_id)
        except NotFoundError as exc:
            if self.record is None:
                raise
            where = self.journal.job_dir(self.job_id) if self.journal else "the journal"
            raise JobNotFoundOnServiceError(
                f"Job {self.job_id} (journal: {where}) has batch {batch_id}, which "
                f"{self.client.base_url} does not know ({exc.message}): it was made on another "
                f"server, data directory or project, or deleted. Nothing was resubmitted. To "
                f"start over (and pay again for these rows) run the call with fresh=True; to "
                f"reach the right service pass its base_url/project_id."
            ) from None

    def _final_status(self, st: JobStatus) -> str:
        if self._stop_codes_now():
            return "stopped"
        if self._cancelled:
            return "cancelled"
        return {"success": "completed", "partial": "partial"}.get(st.outcome, "failed")

    def _collect(self, slot: _Slot) -> None:
        """Read the output and error files of a finished batch into the results."""
        b = slot.batch
        assert b is not None
        mark = self._table.mark()
        for file_id, kind in ((b.output_file_id, "output"), (b.error_file_id, "error")):
            if file_id:
                self._feed(slot, file_id, kind)
        if slot.positions is None:
            slot.positions = self._input_positions(b)
        missing = np.setdiff1d(slot.positions, self._table.positions_since(mark))
        if len(missing):
            if b.status == "failed":
                first = b.errors[0] if b.errors else None
                code = (first.code if first else None) or "batch_failed"
                message = (first.message if first else None) or f"batch {b.id} failed"
            elif b.status in ("cancelled", "expired"):
                code = f"batch_{b.status}"
                message = f"batch {b.id} was {b.status} before this row ran"
            else:
                code = "missing_result"
                message = f"batch {b.id} ended {b.status} with no result for this row"
            self._table.add_errors(missing, code=code, message=message)
        slot.collected = True
        if slot.rec is not None and not slot.rec.downloaded:
            slot.rec.downloaded = True
            self._save()
        account = {
            c: n for c, n in self._table.error_codes_since(mark).items() if c in ACCOUNT_CODES
        }
        if account:
            for c, n in account.items():
                self._stop_codes[c] = self._stop_codes.get(c, 0) + n
            self._stop_running()

    def _feed(self, slot: _Slot, file_id: str, kind: str) -> None:
        b = slot.batch
        assert b is not None
        source = f"{kind} file {file_id} of {b.id}"
        if self.journal is None or self.record is None:
            self._table.add_chunks(_killable(self.client.files.iter_bytes(file_id)), source=source)
            return
        path = self.journal.results_dir(self.job_id) / f"{b.id}-{kind}.jsonl"
        if not path.exists():  # a copy is renamed into place only when complete
            self._download(file_id, path)
        with path.open("rb") as fh:
            self._table.add_file(fh, source=source)

    def _download(self, file_id: str, path: Path) -> None:
        # The copy appears under its name only when complete (a re-run never reads half).
        write_atomic(path, _killable(self.client.files.iter_bytes(file_id)))

    def _stop_running(self) -> None:
        """Account-wide failures: the other batches would fail the same way; stop them."""
        for slot in self._slots:
            if slot.batch is not None and not slot.terminal:
                try:
                    self._note_batch(slot, self.client.batches.cancel(slot.batch.id))
                except ConflictError:  # it finished meanwhile
                    self._note_batch(slot, self.client.batches.retrieve(slot.batch.id))
        self._save()

    def _stop_codes_now(self) -> dict[str, int]:
        """Account-wide codes among the rows' latest results (a successful retry clears)."""
        if not self._stop_codes:
            return {}
        return {c: n for c, n in self._table.error_codes().items() if c in ACCOUNT_CODES}

    def _input_positions(self, b: Batch) -> np.ndarray:
        """Row positions a batch carries, read from its input file (attached jobs only)."""
        if not b.input_file_id:
            return np.empty(0, dtype=np.int64)
        ids: list[str] = []
        for raw in self.client.files.iter_lines(b.input_file_id):
            try:
                cid = orjson.loads(raw).get("custom_id")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(cid, str):
                ids.append(cid)
        pos = self._table._positions(pa.array(ids, pa.string())) if ids else np.empty(0)
        return np.asarray(pos[pos >= 0], dtype=np.int64)

    def _snapshot(self) -> JobStatus:
        with self._lock:
            states = tuple(s.state() for s in self._slots)
            counts = self._table.counts()
            sent = sum(s.lines for s in states)
            skipped = len(self.layout.skipped) if self.layout is not None else counts["skipped"]
            all_in = self._submitted and all(s.collected for s in self._slots)
            if not self._submitted:
                outcome = "submitting"
            elif not all_in:
                outcome = "running"
            elif sent == 0 or counts["ok"] == 0:
                outcome = "failure"
            elif counts["error"] == 0 and counts["pending"] == 0:
                outcome = "success"
            else:
                outcome = "partial"
            done_lines = sum(s.completed + s.failed for s in states)
            return JobStatus(
                job_id=self.job_id,
                model=self.model,
                rows=self._output.n_rows,
                sent=sent,
                skipped=skipped,
                batches=states,
                outcome=outcome,  # type: ignore[arg-type]
                elapsed=self._elapsed(),
                eta=None if all_in else self._eta(done_lines, sent),
                answered=counts["ok"],
                errored=counts["error"],
            )

    def _elapsed(self) -> float:
        created = [s.batch.created_at for s in self._slots if s.batch and s.batch.created_at]
        if created and (self.requests is None or self.record is not None):
            # attached or resumed: count from the service's clock
            return max(time.time() - min(created), 0.0)
        return time.monotonic() - self._started

    def _eta(self, done: int, total: int) -> float | None:
        now = time.monotonic()
        if self._rate_base is None or done < self._rate_base[1]:
            self._rate_base = (now, done)
            return None
        t0, d0 = self._rate_base
        if done <= d0 or now <= t0:
            return None
        rate = (done - d0) / (now - t0)
        return max(total - done, 0) / rate

    # ---- wait / result / retry / cancel ------------------------------------------------

    def wait(self, *, timeout: float | None = None, outage_grace: float | None = None) -> JobStatus:
        """Poll until every batch is finished and its results are in; returns the final
        status. Never cancels anything on its own, except that rows failing for an
        account-wide reason stop the job: the batches still running are cancelled and
        :class:`JobStoppedError` is raised. On Ctrl-C it says how to resume and re-raises.

        A service that cannot be reached (each poll already retried) does not end the wait:
        polling goes on with backoff for ``outage_grace`` seconds (default 30 s for a
        loopback server, 10 min for a remote one), then :class:`JobUnreachableError` says
        the batches keep running and how to pick the job up."""
        if not self._submitted:
            self.submit()
        deadline = None if timeout is None else time.monotonic() + timeout
        base = self.poll_interval or self.client.poll_interval
        outage = Outage(grace=outage_grace_for(outage_grace, is_local=self.client.is_local), base=base)
        st: JobStatus | None = None
        try:
            while True:
                try:
                    st = self.status()
                except (APIConnectionError, RateLimitError, InternalServerError) as exc:
                    now = time.monotonic()
                    delay = outage.failed()
                    if delay is None or (deadline is not None and now >= deadline):
                        raise self._unreachable(exc, outage.gone) from exc
                    if deadline is not None:
                        delay = min(delay, max(deadline - now, 0.0))
                    logger.warning(
                        "job %s: polling failed (%s); the batches keep running, still "
                        "waiting (next poll in %.1f s)",
                        self.job_id,
                        exc,
                        delay,
                    )
                    time.sleep(delay)
                    continue
                outage.ok()
                self._show(st)
                if st.done:
                    self._display.close(st)
                    self._raise_if_stopped(st)
                    return st
                delay = base
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise JobTimeoutError(
                            f"Job {self.job_id} is still running after {timeout} s "
                            f"({summary(st)}); it keeps running on the service: "
                            f"{self.resume_hint}.wait() resumes waiting.",
                            job=self,
                        )
                    delay = min(delay, left)
                time.sleep(delay)
        except KeyboardInterrupt:
            self._display.close(None)
            self._say_interrupted("waiting")
            raise

    def _unreachable(self, exc: Exception, gone: float) -> JobUnreachableError:
        h = self.resume_hint
        batches = ", ".join(
            f"{s.batch.id} ({s.batch.status} when last seen)"
            for s in self._slots
            if s.batch is not None
        )
        again = (
            "run the same call again (it resumes from the journal and buys nothing twice), or "
            if self.record is not None
            else ""
        )
        self._display.close(None)
        return JobUnreachableError(
            f"Job {self.job_id}: the service at {self.client.base_url} could not be reached "
            f"for {gone:.0f} s ({exc}); stopped waiting. Nothing was cancelled: the batches "
            f"are still running on the service and keep what they do: {batches or 'none'}. "
            f"Once it answers again, {again}{h}.result() picks the job up.",
            job=self,
            method=getattr(exc, "method", ""),
            url=getattr(exc, "url", ""),
        )

    def _raise_if_stopped(self, st: JobStatus) -> None:
        codes = self._stop_codes_now()
        if not codes:
            return
        what = ", ".join(f"{n:,} row(s) with {c}" for c, n in sorted(codes.items()))
        h = self.resume_hint
        raise JobStoppedError(
            f"Job {self.job_id} stopped: {what}. That is a problem of the account or key "
            f"(no credit left, or a key that is not valid), not of the rows, so nothing was "
            f"resubmitted and the batches still running were cancelled. {st.answered:,} rows "
            f"were answered and are kept: {h}.result(wait=False) gives them. Fix the account, "
            f"then {h}.retry(codes={sorted(codes)!r}) resubmits only the rows that failed.",
            job=self,
            codes=codes,
        )

    def result(
        self, *, wait: bool = True, timeout: float | None = None, outage_grace: float | None = None
    ) -> Any:
        """The caller's frame (of its own library: pandas, Polars) with the answer columns
        (see :func:`~zgpu_pandas.frames._pandas_columns.merge_results`): same rows, same order.

        Waits for the job first unless ``wait=False``, in which case rows still running
        show ``pending``; while waiting, it resubmits transient failures up to ``retries``
        rounds (see :meth:`retry`). With structured output (``parse``), the reply's fields become
        columns and a reply that does not parse is marked ``parse_error``. ``outage_grace``:
        see :meth:`wait`."""
        if wait:
            deadline = None if timeout is None else time.monotonic() + timeout
            self.wait(timeout=timeout, outage_grace=outage_grace)
            while self.rounds < self.retries:
                before = self.rounds
                self.retry()
                if self.rounds == before:  # nothing left to resubmit
                    break
                left = None if deadline is None else max(deadline - time.monotonic(), 1e-3)
                self.wait(timeout=left, outage_grace=outage_grace)
        else:
            self.status()
        with self._lock:
            if self._table.problems and not self._warned:
                self._warned = True
                warnings.warn(
                    f"Job {self.job_id}: some result lines could not be used: "
                    + " ".join(self._table.problems[:5]),
                    RuntimeWarning,
                    stacklevel=2,
                )
            answers = self._table.answers(self.output)
            check_columns(self._output.columns, self.output, overwrite=self.overwrite)
            if self.parse is None:
                out = self._output.merge(answers, {})
            else:
                out = self._merge_parsed(answers, self.parse)
        if self._snapshot().done:
            self._note_transient()
        if self._owns_client and self._client is not None and self._snapshot().done:
            # done: free the connections; a later retry() makes a new client if it can
            self._client.close()
            if self._client_factory is not None:
                self._client = None
        return out

    def _merge_parsed(self, answers: pa.Table, spec: SchemaSpec) -> Any:
        from .structured import parse_answers

        try:
            parsed = parse_answers(
                answers,
                spec,
                output=self.output,
                frame_columns=self._output.columns,
                overwrite=self.overwrite,
            )
            return self._output.merge(parsed.answers, parsed.fields)
        except ColumnClashError:
            raise
        except Exception as exc:  # a reply shape no test foresaw: say how to go on
            raise StructuredOutputError(
                f"Job {self.job_id}: the answers arrived but could not be split into "
                f"columns ({type(exc).__name__}: {exc}). They are kept: call the same way "
                f"with parse=False to get the raw JSON text in {self.output!r}."
            ) from exc

    def retry(self, codes: Iterable[str] | None = None) -> BatchJob:
        """Resubmit the rows whose latest error code is in ``codes`` (default: the transient
        ones, ``internal_error``, ``rate_limit_exceeded``, ``batch_expired``) as a new round:
        new batches of the same job, recorded in its journal. Their answers replace the
        failures in ``result()``. Waits for the batches still running first. Returns the
        job; with nothing to resubmit, nothing is sent.

        Rows that failed for an account-wide reason (``insufficient_quota``,
        ``authentication_error``) are resubmitted only when named in ``codes`` (after the
        account was fixed); otherwise their presence raises :class:`JobStoppedError`.

        Example::

            job.retry()                                   # transient failures
            job.retry(codes=["insufficient_quota"])       # after topping up the account
            out = job.result()
        """
        if codes is None:
            wanted = set(TRANSIENT_CODES)
        else:
            wanted = {codes} if isinstance(codes, str) else set(codes)
        if not all(s.collected for s in self._slots) or not self._submitted:
            try:
                self.wait()
            except JobStoppedError:
                if not wanted & set(ACCOUNT_CODES):
                    raise
        with self._lock:
            stop = self._stop_codes_now()
            if stop and not wanted & set(stop):
                self._raise_if_stopped(self._snapshot())
            rows = self._rows_with_codes(wanted)
            if not len(rows):
                return self
            self._add_round(rows)
        return self.submit()

    def _rows_with_codes(self, wanted: set[str]) -> np.ndarray:
        """Rows (that carry a request line) whose latest result is an error in ``wanted``."""
        cols = self._table.columns()
        codes = cols["error_code"].to_numpy(zero_copy_only=False)
        bad = (self._table.status == ERROR) & np.isin(codes.astype(object), list(wanted))
        rows = np.flatnonzero(bad)
        if self.layout is not None and len(self.layout.dup_pos):
            rows = rows[~np.isin(rows, self.layout.dup_pos)]  # they follow their source row
        carried = [s.positions for s in self._slots if s.positions is not None]
        if carried:
            rows = rows[np.isin(rows, np.concatenate(carried))]
        return rows.astype(np.int64)

    def _add_round(self, rows: np.ndarray) -> None:
        round_ = self.rounds + 1
        src = self._lines_of(rows)
        self._round_sources[round_] = src
        if self.journal is not None and self.record is not None:
            # the rows first: a record naming a round must be able to rebuild its lines
            buf = _npy_bytes(src.positions)
            self.journal.write_blob(self.job_id, f"round-{round_}.npy", buf)
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
            self._save("running")
            self._verified.update((round_, c.index) for c in src.chunks)
            recs: list[ChunkRecord | None] = list(self.record.chunks[-len(src.chunks) :])
        else:
            recs = [None] * len(src.chunks)
        for c, crec in zip(src.chunks, recs, strict=True):
            self._slots.append(
                _Slot(
                    len(self._slots),
                    c.lines,
                    src.chunk_positions(c),
                    chunk=c.index,
                    round=round_,
                    rec=crec,
                )
            )
        self._submitted = False
        self._rate_base = None

    def _lines_of(self, rows: np.ndarray) -> RequestSet:
        """The request lines of some rows: from the request set, else from the input files
        they were first sent in."""
        if self.requests is not None:
            return self.requests.subset(rows)
        want = set(rows.tolist())
        lines: list[bytes] = []
        pos: list[int] = []
        for slot in self._slots:
            if slot.positions is None or not np.isin(slot.positions, rows).any():
                continue
            file_id = slot.file_id or (slot.batch.input_file_id if slot.batch else None)
            if not file_id:
                continue
            for raw in self.client.files.iter_lines(file_id):
                cid = orjson.loads(raw).get("custom_id")
                p = self._table._position_of(cid)
                if p in want:
                    want.discard(p)
                    lines.append(raw)
                    pos.append(p)
        if want:
            raise RequestLinesUnavailableError(
                f"Job {self.job_id}: the request lines of {len(want)} row(s) could not be read "
                f"back from the service (their input files are gone), so they cannot be "
                f"resubmitted from here; run the call again from the frame instead."
            )
        return RequestSet.from_lines(
            self._output.n_rows, lines, pos, settings=self._settings
        )

    def _rebuild_round(self, round_: int) -> RequestSet:
        """The lines of a recorded retry round (the job was resumed)."""
        if round_ == 0:
            if self.requests is None:
                raise RequestLinesUnavailableError(
                    f"Job {self.job_id} has chunks that were never uploaded, and its request "
                    f"lines are not known here: run the same call from the frame to submit them."
                )
            return self.requests
        assert self.journal is not None
        try:
            rows = _npy_load(self.journal.read_blob(self.job_id, f"round-{round_}.npy"))
        except (OSError, ValueError) as exc:
            raise self.journal.corrupt(self.job_id, f"round-{round_}.npy", exc) from None
        return self._lines_of(rows)

    def cancel(self) -> JobStatus:
        """Cancel every batch still running (lines already dispatched finish; the rest come
        back as ``batch_cancelled``). Returns the status after asking; ``wait()`` or
        ``result()`` then collects what finished."""
        with self._lock:
            self._cancelled = True
            for slot in self._slots:
                if slot.batch is not None and not slot.terminal:
                    try:
                        self._note_batch(slot, self.client.batches.cancel(slot.batch.id))
                    except ConflictError:  # it finished meanwhile: nothing to stop
                        self._note_batch(slot, self.client.batches.retrieve(slot.batch.id))
            self._save()
            return self.status()

    # ---- display -----------------------------------------------------------------------

    def note(self, text: str) -> None:
        """Say one line about the job: logged (``zgpu_pandas`` logger, INFO) and shown by
        the progress display (the widget keeps it above the status; the tqdm bar writes it;
        with no display it is printed to stderr unless ``progress=False``)."""
        logger.info("%s", text)
        show = getattr(self._display, "note", None)
        if show is None:
            return
        try:
            show(text)
        except Exception:  # a broken display must never cost a paid-for job
            self._display = NullProgress(quiet=True)

    def _note_transient(self) -> None:
        """Rows whose latest result is a transient error: how many, and how to retry."""
        codes = {c: n for c, n in self._table.error_codes().items() if c in TRANSIENT_CODES}
        total = sum(codes.values())
        if not total:
            return
        what = ", ".join(f"{c}: {n:,}" for c, n in sorted(codes.items()))
        h = self.resume_hint
        self.note(
            f"Job {self.job_id}: {total:,} row(s) failed with a transient error ({what}). "
            f"{h}.retry() resubmits only those rows (then {h}.result()), or pass retries=N "
            f"to the call to do it on its own."
        )

    def _show(self, st: JobStatus) -> None:
        try:
            self._display.update(st)
        except Exception:  # a broken display must never cost a paid-for job
            self._display = NullProgress()

    def watch_in_background(self) -> None:
        """Keep the display updating from a daemon thread until the job is done (used for
        the notebook widget of a non-blocking job; the kernel stays free)."""
        if self._watcher is not None or not getattr(self._display, "background", False):
            return

        def run() -> None:
            while True:
                try:
                    st = self.status()
                except Exception:  # the next poll or the user's own call will say what broke
                    st = self._snapshot()
                self._show(st)
                if st.done:
                    self._display.close(st)
                    return
                time.sleep(self.poll_interval or self.client.poll_interval)

        self._watcher = threading.Thread(target=run, name=f"zgpu-{self.job_id}", daemon=True)
        self._watcher.start()

    def _say_interrupted(self, doing: str) -> None:
        h = self.resume_hint
        ids = self.batch_ids
        if ids:
            batches = ", ".join(
                f"{s.batch.id} ({s.batch.status})" for s in self._slots if s.batch is not None
            )
            ids_text = "[" + ", ".join(repr(i) for i in ids) + "]"
            lines = [
                f"Interrupted while {doing}. Nothing was cancelled: job {self.job_id} keeps "
                f"running on the service and keeps what it has done.",
                f"  batches:         {batches}",
                f"  pick it up:      {h}.wait()  or  {h}.result()",
            ]
            if self.record is not None:
                where = "df.zgpu" if h.startswith("df.zgpu") else "zgpu_pandas"
                lines.append(
                    f"  in a new kernel: run the same call again (it resumes from the journal),"
                    f" or {where}.attach({self.job_id!r})"
                )
            else:
                lines.append(
                    f"  in a new kernel: df.zgpu.attach({ids_text}, output={self.output!r})"
                )
            lines.append(
                f"  cancel it:       {h}.cancel()"
                + (f"  or  zgpu-pandas batches cancel {ids[0]}" if len(ids) == 1 else "")
            )
            left = sum(1 for s in self._slots if s.batch is None)
            if left:
                lines.append(
                    f"  {left} more chunk(s) were not submitted yet: {h}.submit() submits them."
                )
        elif not self._unanswered_creates():
            lines = [f"Interrupted while {doing}: no batch was created, nothing is running."]
        else:
            lines = [f"Interrupted while {doing}."]
        lines += self._unknown_create_lines()
        print("\n".join(lines), file=sys.stderr, flush=True)

    def _unanswered_creates(self) -> list[_Slot]:
        """Slots whose create was sent (token set) but whose batch is not known: the create
        may have gone through, so its outcome is unknown until looked up by token."""
        return [s for s in self._slots if s.batch is None and s.token is not None]

    def _unknown_create_lines(self) -> list[str]:
        slots = self._unanswered_creates()
        if not slots:
            return []
        h = self.resume_hint
        tokens = ", ".join(repr(s.token) for s in slots)
        again = "run the same call again (it resumes from the journal), or " if self.record else ""
        return [
            f"  A batch create was in flight: its outcome is unknown. The batch may exist and "
            f"be running on the service (token {tokens}, in metadata {CLIENT_TOKEN_KEY!r}).",
            f"  to pick it up:   {again}{h}.submit(): it looks the batch up by its token "
            f"and does not create a second one.",
            f"  to stop it:      {h}.submit() then {h}.cancel()",
        ]

    # ---- attach / resume ---------------------------------------------------------------

    @classmethod
    def from_batch_ids(
        cls,
        frame: Any,
        batch_ids: Sequence[str],
        *,
        client: Client,
        client_factory: Callable[[], Client] | None = None,
        output: str = "response",
        overwrite: bool = False,
        poll_interval: float | None = None,
        progress: ProgressOption | Progress = False,
        owns_client: bool = False,
        resume_hint: str = "job",
        custom_ids: Sequence[str] | None = None,
    ) -> BatchJob:
        """A job for batches created earlier from ``frame`` (custom_ids ``row-<i>``), e.g.
        after a kernel restart. Rows in none of the batches come back ``skipped`` with code
        ``not_sent``. With ``custom_ids`` (one per row of ``frame``), lines are matched to
        rows by those instead (batches made elsewhere). Example::

            job = BatchJob.from_batch_ids(df, ["batch_abc", "batch_def"], client=client)
            out = job.result()
        """
        if isinstance(batch_ids, str):
            batch_ids = [batch_ids]
        if not batch_ids:
            raise OptionError("batch_ids is empty: give the ids of the job's batches")
        batches = [client.batches.retrieve(b) for b in batch_ids]
        meta_job = {b.metadata.get(JOB_METADATA_KEY) for b in batches} - {None}
        job = cls(
            client=client,
            frame=frame,
            requests=None,
            output=output,
            overwrite=overwrite,
            poll_interval=poll_interval,
            progress=progress,
            job_id=str(meta_job.pop()) if len(meta_job) == 1 else None,
            owns_client=owns_client,
            resume_hint=resume_hint,
            client_factory=client_factory,
        )
        if custom_ids is not None:
            job._table = ResultsTable(job._output.n_rows, custom_ids=custom_ids)
        for k, b in enumerate(batches):
            # one batch made elsewhere, matched by its custom_ids: it carries every row
            known = custom_ids is not None and len(batches) == 1
            positions = np.arange(len(custom_ids or ()), dtype=np.int64) if known else None
            slot = _Slot(k, b.request_counts.total, positions)
            slot.batch = b
            slot.file_id = b.input_file_id
            job._slots.append(slot)
        job._submitted = True
        return job

    @classmethod
    def from_record(
        cls,
        record: JobRecord,
        journal: Journal,
        *,
        frame: Any = None,
        requests: RequestSet | None = None,
        client: Client | None = None,
        client_factory: Callable[[], Client] | None = None,
        owns_client: bool = False,
        output: str | None = None,
        overwrite: bool = False,
        poll_interval: float | None = None,
        progress: ProgressOption | Progress = False,
        resume_hint: str = "job",
        parse: SchemaSpec | None = None,
        metadata: Mapping[str, Any] | None = None,
        retries: int = 0,
    ) -> BatchJob:
        """The job of a journal record, picked up where it stopped: batches still running
        are waited on, finished ones read from the local copies, chunks never created are
        submitted by ``submit()`` (found by their token first if a create was sent).

        Without ``frame``, the result is indexed by row position (``0..rows-1``) and holds
        the answer columns only. Example::

            rec = Journal().load("job_20250101-120000_ab12cd34")
            out = BatchJob.from_record(rec, Journal(), client=client).result()
        """
        sink = position_output(record.rows) if frame is None else as_output(frame)
        if sink.n_rows != record.rows:
            raise OptionError(
                f"job {record.job_id} was made from a frame of {record.rows:,} rows; this one "
                f"has {sink.n_rows:,}"
            )
        layout: JobLayout | None = None
        if requests is None:
            try:
                layout = JobLayout.from_bytes(journal.read_blob(record.job_id, "layout.npz"))
            except (OSError, ValueError) as exc:
                raise journal.corrupt(record.job_id, "layout.npz", exc) from None
            if layout.n_rows != record.rows:
                raise journal.corrupt(record.job_id, "layout.npz", "it is for another job")
        job = cls(
            client=client,
            client_factory=client_factory,
            frame=sink,
            requests=requests,
            model=record.model,
            output=output or str(record.settings.get("output") or "response"),
            overwrite=overwrite,
            metadata=metadata,
            poll_interval=poll_interval,
            progress=progress,
            job_id=record.job_id,
            resume_hint=resume_hint,
            journal=journal,
            fingerprint=record.fingerprint,
            connection={
                "base_url": record.base_url,
                "provider": record.provider,
                "project_id": record.project_id,
            },
            settings=record.settings,
            parse=parse,
            layout=layout,
            owns_client=owns_client,
            retries=retries,
        )
        job.record = record
        lay = job.layout
        assert lay is not None
        job._slots = []
        round_rows: dict[int, np.ndarray] = {0: lay.sent}
        for k, crec in enumerate(record.chunks):
            if crec.round not in round_rows:
                try:
                    blob = journal.read_blob(record.job_id, f"round-{crec.round}.npy")
                    round_rows[crec.round] = _npy_load(blob)
                except (OSError, ValueError) as exc:
                    raise journal.corrupt(record.job_id, f"round-{crec.round}.npy", exc) from None
            rows = round_rows[crec.round]
            if crec.start < 0 or crec.start + crec.lines > len(rows):
                raise journal.corrupt(record.job_id, "job.json", f"chunk {k} is out of range")
            slot = _Slot(
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
            job._slots.append(slot)
        round0 = [s.lines for s in job._slots if s.round == 0]
        if requests is not None and round0 != [c.lines for c in requests.chunks]:
            raise journal.corrupt(
                record.job_id, "job.json", "its chunks do not match the request lines"
            )
        job._submitted = all(s.batch is not None for s in job._slots)
        return job

    def _finish_attached(self) -> None:
        """For an attached job: rows in no batch are marked skipped (``not_sent``)."""
        left = self._table.pending()
        if len(left):
            self._table.add_skipped(
                left,
                ["not_sent"] * len(left),
                ["this row is in none of the job's batches"] * len(left),
            )


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(arr, dtype=np.int64), allow_pickle=False)
    return buf.getvalue()


def _npy_load(data: bytes) -> np.ndarray:
    """Row positions stored by :func:`_npy_bytes`; anything else raises ``ValueError``."""
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # a damaged file fails in many ways
        raise ValueError(f"not a list of row positions ({type(exc).__name__}: {exc})") from None
    if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise ValueError("not a list of row positions")
    return np.asarray(arr, dtype=np.int64)
