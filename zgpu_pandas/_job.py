"""BatchJob: one logical job over one or more batches: submit, poll, wait, cancel, result.

A job is built from a :class:`~zgpu_pandas._requests.RequestSet` (its chunks become batches)
and the frame the rows came from. Results are collected per batch as soon as that batch is
terminal (streamed into a :class:`~zgpu_pandas._results.ResultsTable`, never held whole), and
``result()`` merges them into a new DataFrame with the frame's index and order.

Waiting never cancels anything. An interrupt (Ctrl-C, a kernel interrupt) while waiting or
submitting prints how to pick the job up again and how to cancel it, then re-raises; the
batches keep running on the service and what they did is kept.

Example::

    job = BatchJob(client=client, frame=df, requests=reqs).submit()
    job.status().outcome              # 'running'
    out = job.result()                # waits, then the merged DataFrame
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from ._errors import ConflictError, ZgpuError
from ._jsonl import BATCH_ENDPOINT
from ._progress import (
    BatchState,
    JobStatus,
    NullProgress,
    Progress,
    ProgressOption,
    make_progress,
    render_html,
    summary,
)
from ._requests import RequestSet
from ._results import ResultsTable, check_columns, merge_results

if TYPE_CHECKING:
    from ._client import Client
    from ._models import Batch

__all__ = ["BatchJob", "JobSubmitError", "JobTimeoutError"]

_TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
JOB_METADATA_KEY = "zgpu_job"
CHUNK_METADATA_KEY = "zgpu_chunk"


class JobSubmitError(ZgpuError):
    """Submitting a job stopped part-way. ``job`` holds what was created: the batches in
    ``job.batch_ids`` keep running; ``job.submit()`` submits the rest, ``job.cancel()``
    stops them."""

    def __init__(self, message: str, *, job: BatchJob) -> None:
        super().__init__(message)
        self.job = job


class JobTimeoutError(ZgpuError, TimeoutError):
    """``wait(timeout=...)`` ran out. The job keeps running; ``job.wait()`` resumes."""

    def __init__(self, message: str, *, job: BatchJob) -> None:
        super().__init__(message)
        self.job = job


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


def _new_job_id() -> str:
    # Sortable by creation time, unique without coordination (the journal's format).
    return f"job_{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}_{secrets.token_hex(4)}"


def _killable(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """A download stream with the ``mid_download`` checkpoint after its first chunk."""
    for k, chunk in enumerate(chunks):
        yield chunk
        if k == 0:
            _checkpoint("mid_download")


class _Slot:
    """One chunk of the job and the batch carrying it."""

    __slots__ = ("batch", "collected", "file_id", "index", "lines", "positions")

    def __init__(self, index: int, lines: int, positions: np.ndarray | None) -> None:
        self.index = index
        self.lines = lines
        self.positions = positions  # None until known (a job attached by batch ids)
        self.file_id: str | None = None
        self.batch: Batch | None = None
        self.collected = False

    @property
    def terminal(self) -> bool:
        return self.batch is not None and self.batch.status in _TERMINAL

    def state(self) -> BatchState:
        b = self.batch
        if b is None:
            return BatchState(self.index, None, "not submitted", self.lines)
        c = b.request_counts
        return BatchState(self.index, b.id, b.status, c.total or self.lines, c.completed, c.failed)


class BatchJob:
    """A chat job over the rows of a DataFrame, run as one or more batches.

    Made by ``df.zgpu.submit_chat(...)`` (or ``df.zgpu.attach(batch_ids)``); rarely built by
    hand. ``status()`` polls once, ``wait()`` polls until done, ``result()`` gives the merged
    DataFrame, ``cancel()`` stops the batches still running. Safe to use from a second
    thread (a notebook widget updates from one).

    Example::

        job = df.zgpu.submit_chat("review", model="LFM2.5-1.2B-Instruct")
        job.batch_ids                 # ['batch_...']
        ...                           # the kernel is free meanwhile
        out = job.result()            # waits if needed
    """

    def __init__(
        self,
        *,
        client: Client,
        frame: pd.DataFrame,
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
    ) -> None:
        check_columns(frame, output, overwrite=overwrite)
        if poll_interval is not None and not poll_interval > 0:
            raise ValueError(f"poll_interval must be a positive number, not {poll_interval!r}")
        self.job_id = job_id or _new_job_id()
        self.client = client
        # A shallow copy: the job sees the frame as it was at submit time (copy-on-write),
        # and never changes it.
        self.frame = frame.copy(deep=False)
        self.requests = requests
        self.model = model or (requests.settings.get("model", "") if requests else "")
        self.output = output
        self.overwrite = overwrite
        self.metadata = dict(metadata or {})
        self.poll_interval = poll_interval
        self.resume_hint = resume_hint
        self._owns_client = owns_client
        self._lock = threading.RLock()
        self._table = ResultsTable(len(frame))
        self._slots: list[_Slot] = []
        if requests is not None:
            if requests.n_rows != len(frame):
                raise ValueError("the request set was built from a frame of another length")
            self._table.add_skipped(
                requests.skipped_positions, requests.skipped_codes, requests.skipped_reasons
            )
            self._slots = [
                _Slot(c.index, c.lines, requests.chunk_positions(c)) for c in requests.chunks
            ]
        self._started = time.monotonic()
        self._rate_base: tuple[float, int] | None = None
        self._submitted = False
        self._display: Progress = (
            progress if not isinstance(progress, bool | str | None) else make_progress(progress)
        )
        self._watcher: threading.Thread | None = None
        self._warned = False

    # ---- identity ----------------------------------------------------------------------

    @property
    def batch_ids(self) -> list[str]:
        """Ids of the batches created so far, in chunk order."""
        return [s.batch.id for s in self._slots if s.batch is not None]

    @property
    def fingerprint(self) -> str | None:
        """The request set's fingerprint (``None`` for a job attached by batch ids)."""
        return self.requests.fingerprint if self.requests is not None else None

    def __repr__(self) -> str:
        st = self._snapshot()
        return (
            f"<BatchJob {self.job_id} model={self.model!r} rows={st.rows} "
            f"batches={self.batch_ids} outcome={st.outcome}>"
        )

    def _repr_html_(self) -> str:
        return render_html(self._snapshot())

    # ---- submit ------------------------------------------------------------------------

    def submit(self) -> BatchJob:
        """Upload each chunk and create its batch. Chunks already submitted are skipped,
        so calling it again after a failure submits only the rest. Returns the job."""
        with self._lock:
            if self.requests is None:
                self._submitted = True
                return self
            n = len(self._slots)
            try:
                for slot in self._slots:
                    if slot.batch is not None:
                        continue
                    if slot.file_id is None:
                        _checkpoint("before_upload")
                        # a view, not a copy: a 100 MB chunk is not held twice while uploading
                        f = self.client.files.upload(
                            self.requests.chunk_view(slot.index),
                            filename=f"{self.job_id}-part{slot.index + 1}of{n}.jsonl",
                        )
                        slot.file_id = f.id
                        _checkpoint("after_upload")
                    meta = {
                        **self.metadata,
                        JOB_METADATA_KEY: self.job_id,
                        CHUNK_METADATA_KEY: f"{slot.index + 1}/{n}",
                    }
                    slot.batch = self.client.batches.create(
                        input_file_id=slot.file_id, endpoint=BATCH_ENDPOINT, metadata=meta
                    )
                    _checkpoint("after_create")
                    self._show(self._snapshot())
            except KeyboardInterrupt:
                self._say_interrupted("submitting")
                raise
            except ZgpuError as exc:
                if not self.batch_ids:
                    raise
                raise JobSubmitError(
                    f"Submitting job {self.job_id} stopped after {len(self.batch_ids)} of {n} "
                    f"batches ({exc}). The batches created keep running: "
                    f"{', '.join(self.batch_ids)}. Call {self.resume_hint}.submit() to submit the "
                    f"rest, or {self.resume_hint}.cancel() to stop them.",
                    job=self,
                ) from exc
            self._submitted = True
        return self

    # ---- poll --------------------------------------------------------------------------

    def status(self) -> JobStatus:
        """Poll the service once: refresh every unfinished batch, collect the results of
        the ones that just finished, and return a snapshot."""
        with self._lock:
            for slot in self._slots:
                if slot.batch is not None and not slot.terminal:
                    slot.batch = self.client.batches.retrieve(slot.batch.id)
                    _checkpoint("mid_poll")
                if slot.terminal and not slot.collected:
                    self._collect(slot)
                    if self.requests is None and all(s.collected for s in self._slots):
                        self._finish_attached()
            return self._snapshot()

    def _collect(self, slot: _Slot) -> None:
        """Stream the output and error files of a finished batch into the results."""
        b = slot.batch
        assert b is not None
        for file_id, kind in ((b.output_file_id, "output"), (b.error_file_id, "error")):
            if file_id:
                self._table.add_chunks(
                    _killable(self.client.files.iter_bytes(file_id)),
                    source=f"{kind} file {file_id} of {b.id}",
                )
        if slot.positions is None:
            slot.positions = self._input_positions(b)
        missing = self._table.pending(slot.positions)
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
            reqs = self.requests
            counts = self._table.counts()
            sent = len(reqs) if reqs is not None else sum(s.lines for s in states)
            skipped = len(reqs.skipped_positions) if reqs is not None else counts["skipped"]
            all_in = self._submitted and all(s.collected for s in self._slots)
            if not self._submitted:
                outcome = "submitting"
            elif not all_in:
                outcome = "running"
            elif sent == 0 or counts["ok"] == 0:
                outcome = "failure"
            elif counts["error"] == 0 and all(s.status == "completed" for s in states):
                outcome = "success"
            else:
                outcome = "partial"
            done_lines = sum(s.completed + s.failed for s in states)
            return JobStatus(
                job_id=self.job_id,
                model=self.model,
                rows=len(self.frame),
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
        if created and self.requests is None:  # attached: count from the service's clock
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

    # ---- wait / result / cancel --------------------------------------------------------

    def wait(self, *, timeout: float | None = None) -> JobStatus:
        """Poll until every batch is finished and its results are in; returns the final
        status. Never cancels anything: on Ctrl-C it says how to resume and re-raises."""
        if not self._submitted:
            self.submit()
        interval = self.poll_interval or self.client.poll_interval
        deadline = None if timeout is None else time.monotonic() + timeout
        st: JobStatus | None = None
        try:
            while True:
                st = self.status()
                self._show(st)
                if st.done:
                    self._display.close(st)
                    return st
                delay = interval
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

    def result(self, *, wait: bool = True, timeout: float | None = None) -> pd.DataFrame:
        """The frame with the answer columns (see ``merge_results``): same index and order.

        Waits for the job first unless ``wait=False``, in which case rows still running
        show ``pending``."""
        if wait:
            self.wait(timeout=timeout)
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
            out = merge_results(
                self.frame, self._table, output=self.output, overwrite=self.overwrite
            )
        if self._owns_client and self._snapshot().done:
            self.client.close()
        return out

    def cancel(self) -> JobStatus:
        """Cancel every batch still running (lines already dispatched finish; the rest come
        back as ``batch_cancelled``). Returns the status after asking; ``wait()`` or
        ``result()`` then collects what finished."""
        with self._lock:
            for slot in self._slots:
                if slot.batch is not None and not slot.terminal:
                    try:
                        slot.batch = self.client.batches.cancel(slot.batch.id)
                    except ConflictError:  # it finished meanwhile: nothing to stop
                        slot.batch = self.client.batches.retrieve(slot.batch.id)
            return self.status()

    # ---- display -----------------------------------------------------------------------

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
            interval = self.poll_interval or self.client.poll_interval
            while True:
                try:
                    st = self.status()
                except Exception:  # the next poll or the user's own call will say what broke
                    st = self._snapshot()
                self._show(st)
                if st.done:
                    self._display.close(st)
                    return
                time.sleep(interval)

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
                f"  in a new kernel: df.zgpu.attach({ids_text}, output={self.output!r})",
                f"  cancel it:       {h}.cancel()"
                + (f"  or  zgpu-pandas batches cancel {ids[0]}" if len(ids) == 1 else ""),
            ]
            if len(ids) < len(self._slots):
                lines.append(
                    f"  {len(self._slots) - len(ids)} more chunk(s) were not submitted yet: "
                    f"{h}.submit() submits them."
                )
        else:
            lines = [f"Interrupted while {doing}: no batch was created, nothing is running."]
        print("\n".join(lines), file=sys.stderr, flush=True)

    # ---- attach ------------------------------------------------------------------------

    @classmethod
    def from_batch_ids(
        cls,
        frame: pd.DataFrame,
        batch_ids: Sequence[str],
        *,
        client: Client,
        output: str = "response",
        overwrite: bool = False,
        poll_interval: float | None = None,
        progress: ProgressOption | Progress = False,
        owns_client: bool = False,
        resume_hint: str = "job",
    ) -> BatchJob:
        """A job for batches created earlier from ``frame`` (custom_ids ``row-<i>``), e.g.
        after a kernel restart. Rows in none of the batches come back ``skipped`` with code
        ``not_sent``. Example::

            job = BatchJob.from_batch_ids(df, ["batch_abc", "batch_def"], client=client)
            out = job.result()
        """
        if isinstance(batch_ids, str):
            batch_ids = [batch_ids]
        if not batch_ids:
            raise ValueError("batch_ids is empty: give the ids of the job's batches")
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
        )
        for k, b in enumerate(batches):
            slot = _Slot(k, b.request_counts.total, None)
            slot.batch = b
            slot.file_id = b.input_file_id
            job._slots.append(slot)
        job._submitted = True
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
