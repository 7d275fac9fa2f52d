"""BatchJob: one logical job over one or more batches: submit, poll, wait, retry, cancel, result.

The orchestration only; each part lives in a module of its own:

- :mod:`~zgpu_pandas.core.slots`: the batches of the job, one slot per chunk and round;
- :mod:`~zgpu_pandas.core.submit`: uploading a slot's lines and creating its batch, never twice;
- :mod:`~zgpu_pandas.core.collect`: reading a finished batch into the results;
- :mod:`~zgpu_pandas.core.rounds`: which rows a retry round resubmits, and every round's lines;
- :mod:`~zgpu_pandas.core.recorder`: what the journal keeps (a null recorder without one);
- :mod:`~zgpu_pandas.core.messages`: the wording of errors and notes.

With a journal (what ``df.zgpu.batch_chat`` uses) every step is written down before or right
after it happens, so a process that dies anywhere is resumed by running the same call again
without paying twice. Failed rows can be resubmitted in a new round (:meth:`BatchJob.retry`);
rows failing for an account-wide reason (``insufficient_quota``, ``authentication_error``) stop
the job instead (:class:`~zgpu_pandas.errors.JobStoppedError`). Waiting never cancels anything:
an interrupt (Ctrl-C) prints how to pick the job up again and how to cancel it, then re-raises.

Example::

    job = BatchJob(client=client, frame=df, requests=reqs).submit()
    job.status().outcome              # 'running'
    out = job.result()                # waits, then the caller's frame with the answers
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._journal import JobRecord, Journal, new_job_id
from .._models import Batch
from .._progress import (
    JobStatus,
    Progress,
    ProgressOption,
    make_progress,
    render_html,
    summary,
)
from .._retry import outage_grace as outage_grace_for
from ..errors import (
    JobStoppedError,
    JobSubmitError,
    JobTimeoutError,
    JobUnreachableError,
    OptionError,
    ZgpuError,
)
from . import messages
from .collect import ACCOUNT_CODES, TRANSIENT_CODES
from .display import JobDisplay
from .layout import JobLayout
from .outcome import merge_outcome
from .parts import assemble
from .provenance import job_labels, stamp
from .recorder import JobFacts
from .requests import RequestSet
from .results import check_columns, total_cost
from .rows import FrameOutput, as_output
from .submit import CHUNK_METADATA_KEY, JOB_METADATA_KEY, ROUND_METADATA_KEY
from .waiting import poll_until_done

if TYPE_CHECKING:
    from .._client import Client
    from .structured import SchemaSpec

__all__ = [
    "ACCOUNT_CODES",
    "CHUNK_METADATA_KEY",
    "JOB_METADATA_KEY",
    "ROUND_METADATA_KEY",
    "TRANSIENT_CODES",
    "BatchJob",
]

logger = logging.getLogger("zgpu_pandas.job")


class BatchJob:
    """A chat job over the rows of a DataFrame, run as one or more batches.

    Made by ``df.zgpu.submit_chat(...)`` (or ``df.zgpu.attach(...)``,
    ``zgpu_pandas.attach(job_id)``); rarely built by hand. ``status()`` polls once,
    ``wait()`` polls until done, ``result()`` gives the merged frame, ``retry()``
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
        record: JobRecord | None = None,
        custom_ids: Sequence[str] | None = None,
        batches: Sequence[Batch] = (),
        known: Sequence[bytes] = (),
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
        self._client, self._client_factory, self._owns_client = client, client_factory, owns_client
        self.requests = requests
        self.model = model or (requests.settings.get("model", "") if requests else "")
        self.output, self.overwrite, self.parse = output, overwrite, parse
        self.poll_interval = poll_interval
        self.resume_hint = resume_hint
        #: retry rounds ``result()`` runs on its own for transient failures
        self.retries = retries
        self._fingerprint = fingerprint
        self._connection = dict(connection or {})
        self._lock = threading.RLock()
        parts = assemble(
            job_id=self.job_id,
            n_rows=self._output.n_rows,
            client=lambda: self.client,
            requests=requests,
            settings=settings,
            metadata=metadata,
            layout=layout,
            journal=journal,
            record=record,
            custom_ids=custom_ids,
            batches=batches,
            known=known,
        )
        self._table, self.layout, self._recorder = parts.table, parts.layout, parts.recorder
        self._slots, self._rounds = parts.slots, parts.rounds
        self._submitter, self._clock, self._poller = parts.submitter, parts.clock, parts.poller
        # an attached job, or a resumed one whose every chunk has its batch, is submitted
        self._submitted = bool(batches) or (record is not None and not self._slots.todo())
        self._display = JobDisplay(
            progress if not isinstance(progress, bool | str | None) else make_progress(progress)
        )
        self._warned = False
        self._cancelled = False
        labels = job_labels(record, settings, batches, metadata)  # core/provenance.py
        self.name, self.metadata, self.from_journal, self.resume_note = labels

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
        return self._slots.batch_ids

    @property
    def fingerprint(self) -> str | None:
        """What identifies the job in the journal (the request set's fingerprint for a job
        without one; ``None`` for a job attached by batch ids)."""
        if self._fingerprint is not None:
            return self._fingerprint
        return self.requests.fingerprint if self.requests is not None else None

    @property
    def record(self) -> JobRecord | None:
        """The job's journal record (``None`` without a journal)."""
        return self._recorder.record

    @property
    def display(self) -> Progress:
        """The progress display the job updates (a widget, a tqdm bar, or nothing)."""
        return self._display.progress

    @property
    def watching(self) -> bool:
        """Whether a background thread keeps the display updating."""
        return self._display.watching

    def join_watcher(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s for the display's background thread to end (it ends when
        the job is done); True when it has ended or there is none."""
        return self._display.join(timeout)

    @property
    def rounds(self) -> int:
        """Retry rounds submitted so far (0 before any retry)."""
        return self._slots.rounds

    @property
    def creates_sent(self) -> int:
        """Batch creates actually sent by this object (a batch found by its token is not one)."""
        return self._submitter.creates_sent

    def __repr__(self) -> str:
        st = self._snapshot()
        return (
            f"<BatchJob {self.job_id} model={self.model!r} rows={st.rows} "
            f"batches={self.batch_ids} outcome={st.outcome}>"
        )

    def _repr_html_(self) -> str:
        return render_html(self._snapshot())

    # ---- submit and poll ---------------------------------------------------------------

    def submit(self) -> BatchJob:
        """Upload each chunk and create its batch. Chunks already submitted are skipped,
        so calling it again after a failure submits only the rest. Returns the job."""
        with self._lock:
            todo = self._slots.todo()
            if not todo:
                self._submitted = True
                return self
            if self.requests is not None and self.layout is not None:
                facts = JobFacts(
                    job_id=self.job_id,
                    fingerprint=self.fingerprint or self.requests.fingerprint,
                    model=self.model,
                    rows=self._output.n_rows,
                    settings={**self._rounds.settings, "output": self.output},
                    requests=self.requests,
                    layout=self.layout,
                    connection=self._connection,
                )
                self._recorder.begin(facts, self._slots)  # before anything is uploaded
            try:
                for slot in todo:
                    self._submitter.submit(slot)
                    self._show(self._snapshot())
            except KeyboardInterrupt:
                self._say_interrupted("submitting")
                raise
            except ZgpuError as exc:
                if not self.batch_ids:
                    raise
                text = messages.submit_stopped(
                    self.job_id, self.batch_ids, len(self._slots), exc, self.resume_hint
                )
                raise JobSubmitError(text, job=self) from exc
            self._submitted = True
            self._recorder.save("running")
        return self

    def status(self) -> JobStatus:
        """Poll the service once: refresh every unfinished batch, collect the results of
        the ones that just finished, and return a snapshot. A job whose batches are all
        finished and collected makes no network call."""
        with self._lock:
            self._poller.refresh()
            st = self._snapshot()
            if st.done:
                self._recorder.finish(self._poller.final_status(st.outcome, cancelled=self._cancelled))
            return st

    def _snapshot(self) -> JobStatus:
        with self._lock:
            return self._clock.snapshot(
                job_id=self.job_id,
                model=self.model,
                rows=self._output.n_rows,
                slots=self._slots,
                table=self._table,
                layout=self.layout,
                submitted=self._submitted,
                resumed=self.requests is None or self._recorder.resumable,
            )

    # ---- wait / result / retry / cancel ------------------------------------------------

    def wait(self, *, timeout: float | None = None, outage_grace: float | None = None) -> JobStatus:
        """Poll until every batch is finished and its results are in; returns the final
        status. Never cancels anything on its own, except that rows failing for an
        account-wide reason stop the job: the batches still running are cancelled and
        :class:`~zgpu_pandas.errors.JobStoppedError` is raised. On Ctrl-C it says how to
        resume and re-raises.

        A service that cannot be reached (each poll already retried) does not end the wait:
        polling goes on with backoff for ``outage_grace`` seconds (default 30 s for a
        loopback server, 10 min for a remote one), then
        :class:`~zgpu_pandas.errors.JobUnreachableError` says the batches keep running and
        how to pick the job up."""
        if not self._submitted:
            self.submit()

        def timed_out(st: JobStatus | None) -> JobTimeoutError:
            done = summary(st) if st is not None else "no answer from the service yet"
            text = messages.timed_out(self.job_id, timeout, done, self.resume_hint)
            return JobTimeoutError(text, job=self)

        try:
            st = poll_until_done(
                self.status,
                base=self.poll_interval or self.client.poll_interval,
                grace=outage_grace_for(outage_grace, is_local=self.client.is_local),
                deadline=None if timeout is None else time.monotonic() + timeout,
                on_status=self._show,
                unreachable=self._unreachable,
                timed_out=timed_out,
                name=f"job {self.job_id}",
            )
        except KeyboardInterrupt:
            self._display.close(None)
            self._say_interrupted("waiting")
            raise
        self._display.close(st)
        self._raise_if_stopped(st)
        return st

    def _unreachable(self, exc: Exception, gone: float) -> JobUnreachableError:
        self._display.close(None)
        text = messages.unreachable(
            self.job_id,
            self.client.base_url,
            gone,
            exc,
            self._slots.items,
            resumable=self._recorder.resumable,
            hint=self.resume_hint,
        )
        return JobUnreachableError(
            text, job=self, method=getattr(exc, "method", ""), url=getattr(exc, "url", "")
        )

    def _raise_if_stopped(self, st: JobStatus) -> None:
        codes = self._poller.stop_codes()
        if codes:
            text = messages.stopped(self.job_id, codes, st.answered, self.resume_hint)
            raise JobStoppedError(text, job=self, codes=codes)

    def result(
        self, *, wait: bool = True, timeout: float | None = None, outage_grace: float | None = None
    ) -> Any:
        """The caller's frame (of its own library: pandas, Polars) with the answer columns
        (see :func:`~zgpu_pandas.frames._pandas_columns.merge_results`): same rows, same order.

        Waits for the job first unless ``wait=False``, in which case rows still running
        show ``pending``; while waiting, it resubmits transient failures up to ``retries``
        rounds (see :meth:`retry`). With structured output (``parse``), the reply's fields
        become columns and a reply that does not parse is marked ``parse_error``.
        ``outage_grace``: see :meth:`wait`."""
        if wait:
            self._wait_and_retry(timeout, outage_grace)
        else:
            self.status()
        with self._lock:
            if self._table.problems and not self._warned:
                self._warned = True
                problems = " ".join(self._table.problems[:5])
                warnings.warn(
                    f"Job {self.job_id}: some result lines could not be used: {problems}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            answers = self._table.compact().answers(self.output, model=self.model)  # held once
            out = merge_outcome(
                answers, self._output, parse=self.parse, output=self.output,
                overwrite=self.overwrite, job_id=self.job_id,
            )
            stamp(out, self)  # out.attrs["zgpu"]: which job, from the journal or not
        done = self._snapshot().done
        if done:
            self._note_transient()
        if self._owns_client and self._client is not None and done:
            # done: free the connections; a later retry() makes a new client if it can
            self._client.close()
            if self._client_factory is not None:
                self._client = None
        return out

    def cost(self) -> float:
        """What the answers cost so far, in US dollars at the catalog's list price (an upper
        bound for batches): the sum of the ``{output}_cost`` column; ``nan`` when the model
        has no listed price. Example: ``job.cost() == out["response_cost"].sum()``."""
        with self._lock:
            return total_cost(self._table.answers(self.output, model=self.model), self.output)

    def _wait_and_retry(self, timeout: float | None, outage_grace: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        self.wait(timeout=timeout, outage_grace=outage_grace)
        while self.rounds < self.retries:
            before = self.rounds
            self.retry()
            if self.rounds == before:  # nothing left to resubmit
                break
            left = None if deadline is None else max(deadline - time.monotonic(), 1e-3)
            self.wait(timeout=left, outage_grace=outage_grace)

    def retry(self, codes: Iterable[str] | None = None) -> BatchJob:
        """Resubmit the rows whose latest error code is in ``codes`` (default: the transient
        ones, ``internal_error``, ``rate_limit_exceeded``, ``batch_expired``) as a new round:
        new batches of the same job, recorded in its journal. Their answers replace the
        failures in ``result()``. Waits for the batches still running first. Returns the
        job; with nothing to resubmit, nothing is sent.

        Rows that failed for an account-wide reason (``insufficient_quota``,
        ``authentication_error``) are resubmitted only when named in ``codes`` (after the
        account was fixed); otherwise their presence raises
        :class:`~zgpu_pandas.errors.JobStoppedError`.

        Example::

            job.retry()                                   # transient failures
            job.retry(codes=["insufficient_quota"])       # after topping up the account
            out = job.result()
        """
        if codes is None:
            wanted = set(TRANSIENT_CODES)
        else:
            wanted = {codes} if isinstance(codes, str) else set(codes)
        if not self._slots.all_collected() or not self._submitted:
            try:
                self.wait()
            except JobStoppedError:
                if not wanted & set(ACCOUNT_CODES):
                    raise
        with self._lock:
            stop = self._poller.stop_codes()
            if stop and not wanted & set(stop):
                self._raise_if_stopped(self._snapshot())
            rows = self._rounds.rows_with_codes(wanted)
            if not len(rows):
                return self
            self._rounds.add(rows)
            self._submitted = False
            self._clock.restart_rate()
        return self.submit()

    def cancel(self) -> JobStatus:
        """Cancel every batch still running (lines already dispatched finish; the rest come
        back as ``batch_cancelled``). Returns the status after asking; ``wait()`` or
        ``result()`` then collects what finished."""
        with self._lock:
            self._cancelled = True
            self._poller.cancel_running()
            return self.status()

    # ---- display -----------------------------------------------------------------------

    def note(self, text: str) -> None:
        """Say one line about the job: logged (``zgpu_pandas`` logger, INFO) and shown by
        the progress display (the widget keeps it above the status; the tqdm bar writes it;
        with no display it is printed to stderr unless ``progress=False``)."""
        self._display.note(text)

    def _note_transient(self) -> None:
        codes = {c: n for c, n in self._table.error_codes().items() if c in TRANSIENT_CODES}
        text = messages.transient(self.job_id, codes, self.resume_hint)
        if text is not None:
            self.note(text)

    def _show(self, st: JobStatus) -> None:
        self._display.update(st)

    def watch_in_background(self) -> None:
        """Keep the display updating from a daemon thread until the job is done (used for
        the notebook widget of a non-blocking job; the kernel stays free)."""
        self._display.watch(
            f"zgpu-{self.job_id}",
            self.status,
            self._snapshot,
            lambda: self.poll_interval or self.client.poll_interval,
        )

    def _say_interrupted(self, doing: str) -> None:
        text = messages.interrupted(
            doing,
            self.job_id,
            self._slots.items,
            hint=self.resume_hint,
            resumable=self._recorder.resumable,
            output=self.output,
        )
        print(text, file=sys.stderr, flush=True)
