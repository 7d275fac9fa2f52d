"""The run sequence behind every frame adapter: check, build, find or start the job, submit.

``df.zgpu.batch_chat(...)`` (pandas) and ``pl_df.zgpu.batch_chat(...)`` (Polars) both end up
in :func:`start`; the adapters only turn their keyword arguments into a
:class:`~zgpu_pandas.core.spec.ChatSpec` and a :class:`~zgpu_pandas.core.spec.Connection`.
Everything that can be wrong with the input is found before any network call; the job is
written to the journal before the first upload; the same call run again (same rows, same
settings, same service) picks the journaled job up instead of paying again.

Example::

    job = start(df, ChatSpec(prompt="review", model="LFM2.5-1.2B-Instruct"),
                Connection(base_url="local"))
    out = job.result()
"""

from __future__ import annotations

import hashlib
import sys
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._journal import Journal, content_job_id
from ..errors import ZgpuError
from . import messages
from .attach import job_from_batches, job_from_record
from .estimate import ChatEstimate, estimate_requests, warn_over_context
from .job import BatchJob
from .preflight import check_model
from .provenance import JOB_NAME_KEY
from .requests import RequestSet, build_requests
from .resume import connection_of, job_fingerprint, parse_spec_of
from .reuse import leave_out_known, leave_out_recorded, recorded_lines
from .rows import as_output, as_rows
from .spec import ChatSpec, Connection

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._client import Client
    from .._progress import ProgressOption
    from .structured import SchemaSpec

__all__ = [
    "LAST_CHATS",
    "LAST_JOBS",
    "LastJobs",
    "attach_batches",
    "build",
    "check_budget",
    "check_estimate",
    "estimate",
    "open_checked",
    "start",
]


class LastJobs:
    """The most recent job started from each frame object (``df.zgpu.last_job``).

    Accessor objects are made anew on every ``df.zgpu`` access, so the job is kept here,
    keyed by the frame's id and dropped when the frame is garbage collected."""

    def __init__(self) -> None:
        self._jobs: dict[int, tuple[weakref.ref[Any], Any]] = {}
        self._lock = threading.Lock()

    def remember(self, frame: Any, job: Any) -> None:
        key = id(frame)

        def forget(_: object, key: int = key) -> None:
            with self._lock:
                self._jobs.pop(key, None)

        with self._lock:
            self._jobs[key] = (weakref.ref(frame, forget), job)

    def recall(self, frame: Any) -> Any:
        with self._lock:
            entry = self._jobs.get(id(frame))
        if entry is None or entry[0]() is not frame:
            return None
        return entry[1]


LAST_JOBS = LastJobs()
#: the result of the most recent online call on each frame (also an interrupted one's)
LAST_CHATS = LastJobs()


def build(frame: Any, spec: ChatSpec) -> tuple[RequestSet, SchemaSpec | None]:
    """The request lines of ``frame`` and how to parse the replies; every mistake in the
    input is found here, before any network call."""
    spec.check_options()
    params, parse = spec.structured()
    spec.check_columns(as_output(frame).columns, parse)
    requests = build_requests(
        as_rows(frame),
        model=spec.model or "",
        prompt=spec.prompt,
        messages=spec.messages,
        system=spec.system,
        on_oversize=spec.on_oversize,
        dedup=spec.dedup,
        missing=spec.missing,
        on_invalid=spec.on_invalid,
        **params,
    )
    return requests, parse


def check_budget(requests: RequestSet, spec: ChatSpec, *, online: bool = False) -> None:
    """Refuse, before anything is sent, a job whose estimate exceeds ``spec.max_cost``.

    The figure compared is the estimate's prompt cost at list price plus, when
    ``max_tokens`` (or ``max_completion_tokens``) caps the answers, their most expensive
    case. Without a cap the answers' cost is unknown before they exist; the message says so
    and how to bound it. Batches are billed below list price, so for a batch the check errs
    on the safe side."""
    if spec.max_cost is not None:
        check_estimate(estimate_requests(requests), spec, online=online)


def check_estimate(est: ChatEstimate, spec: ChatSpec, *, online: bool = False) -> None:
    """:func:`check_budget` for an estimate made elsewhere (the sum of a Dask frame's
    partitions)."""
    if spec.max_cost is None:
        return
    from ..errors import CostLimitError

    if est.prompt_cost_usd is None:
        raise CostLimitError(
            f"max_cost=${spec.max_cost:,.4f} cannot be checked: the catalog lists no price for "
            f"model {est.model!r}. Drop max_cost= to send anyway.",
            estimate_usd=float("nan"),
            max_cost=float(spec.max_cost),
        )
    worst = est.prompt_cost_usd + (est.max_completion_cost_usd or 0.0)
    if worst <= spec.max_cost:
        return
    answers = (
        f" + answers up to ${est.max_completion_cost_usd:,.4f}"
        if est.max_completion_cost_usd is not None
        else ""
    )
    how = "requests" if online else "the batch"
    raise CostLimitError(
        f"Refused before sending: {est.rows_to_send:,} {how} estimated at ${worst:,.4f} "
        f"(prompt ${est.prompt_cost_usd:,.4f} at list price{answers}) exceed "
        f"max_cost=${spec.max_cost:,.4f}. Send fewer rows (df.sample(...)), lower max_tokens, "
        f"or raise max_cost.",
        estimate_usd=worst,
        max_cost=float(spec.max_cost),
    )


def estimate(frame: Any, spec: ChatSpec) -> ChatEstimate:
    """What :func:`start` would send and cost, without any network call."""
    if spec.check_model:
        check_model(spec.model)
    requests, _ = build(frame, spec)
    return estimate_requests(requests, label=as_rows(frame).label)


def start(
    frame: Any,
    spec: ChatSpec,
    conn: Connection,
    *,
    progress: ProgressOption = None,
    poll_interval: float | None = None,
    hint: str = "job",
    announce: bool = True,
    shared: str | None = None,
) -> BatchJob:
    """Start (or resume from the journal) the job of ``spec`` over ``frame`` and submit its
    batches; returns the job at once. ``hint`` is how messages name the job for the user
    (``df.zgpu.last_job``). ``announce=False``: a resumed job's note is kept on the job, not
    printed (a streaming run finds each part's job again on purpose).

    ``shared``: the job may be started by other processes or machines too, each with a
    journal of its own (a Dask partition run twice): its id comes from its fingerprint
    (salted with ``shared``, so that a new salt buys anew), and every create looks for the
    batch of its token on the service first (core/submit.py)."""
    requests, parse = build(frame, spec)
    check_budget(requests, spec)
    the_client, factory = open_checked(frame, spec, conn, requests)
    where = connection_of(the_client, conn.base_url)
    fingerprint = job_fingerprint(requests.fingerprint, **where)
    job_id = None
    if shared is not None:
        if shared:
            fingerprint = hashlib.sha256(f"{fingerprint}:{shared}".encode()).hexdigest()
        job_id = content_job_id(fingerprint)
    journal = Journal()
    # One process at a time finds-or-starts this job and submits it: a second process
    # started at the same moment waits here, then finds the first one's record (with its
    # create tokens) and resumes it instead of uploading and creating again.
    with journal.lock(fingerprint):
        record = None if spec.fresh else journal.find(fingerprint)
        known: list[bytes] = []
        if record is not None:
            requests = leave_out_recorded(requests, recorded_lines(journal, record))
            job = job_from_record(
                record,
                journal,
                frame=frame,
                requests=requests,
                client=the_client,
                client_factory=factory,
                owns_client=factory is not None,
                output=spec.output,
                overwrite=spec.overwrite,
                poll_interval=poll_interval,
                progress=progress,
                resume_hint=hint,
                parse=parse,
                metadata=_batch_metadata(spec),
                retries=spec.retries,
            )
        else:
            job, known = _new_job(
                frame, spec, requests, parse, journal=journal, fingerprint=fingerprint,
                where=where, client=the_client, factory=factory, progress=progress,
                poll_interval=poll_interval, hint=hint, job_id=job_id,
            )
        LAST_JOBS.remember(frame, job)
        job.submit()
        _free_lines(job, spec)
    if record is not None:
        # a re-run that quietly returned old answers (or old errors) would look like a
        # new job: say it is not
        job.resume_note = messages.resumed(job.job_id, len(job.batch_ids), job.creates_sent)
        job.note(job.resume_note)
        if progress is False and announce:  # "no progress display" is not "silence"
            print(job.resume_note, file=sys.stderr, flush=True)
    elif known:
        job.note(
            f"{len(known):,} request(s) answered earlier (online mode) were not sent again; "
            f"their answers are in the result"
        )
    return job


def _free_lines(job: BatchJob, spec: ChatSpec) -> None:
    """Every batch is created: free the request lines (a few hundred MB on a million rows);
    a retry round that needs some gets them back by building again from the job's own
    snapshot of the frame (:meth:`RequestSet.release`)."""
    snapshot = getattr(job._output, "frame", None)
    if job.requests is None or snapshot is None:
        return
    job.requests.release(lambda: build(snapshot, spec)[0])


def _new_job(
    frame: Any,
    spec: ChatSpec,
    requests: RequestSet,
    parse: SchemaSpec | None,
    *,
    journal: Journal,
    fingerprint: str,
    where: dict[str, Any],
    client: Client,
    factory: Callable[[], Client] | None,
    progress: ProgressOption,
    poll_interval: float | None,
    hint: str,
    job_id: str | None = None,
) -> tuple[BatchJob, list[bytes]]:
    """A new job (not in the journal) and the lines answered earlier online that it leaves
    out."""
    # a job other processes may start too (job_id given) must build the same request lines
    # everywhere: what this machine's answers store holds must not change them
    requests, known = leave_out_known(requests, where=where, fresh=spec.fresh or bool(job_id))
    job = BatchJob(
        job_id=job_id,
        client=client,
        client_factory=factory,
        frame=frame,
        requests=requests,
        model=spec.model or "",
        output=spec.output,
        overwrite=spec.overwrite,
        metadata=_batch_metadata(spec),
        poll_interval=poll_interval,
        progress=progress,
        owns_client=factory is not None,
        resume_hint=hint,
        journal=journal,
        fingerprint=fingerprint,
        connection=where,
        settings={
            **requests.settings,
            "parse": "json" if parse is not None else None,
            "name": spec.name,
            "metadata": dict(spec.metadata or {}),
        },
        parse=parse,
        retries=spec.retries,
        known=known,
    )
    return job, known


def open_checked(
    frame: Any, spec: ChatSpec, conn: Connection, requests: RequestSet
) -> tuple[Client, Callable[[], Client] | None]:
    """The client, once the model id is known to the catalog (core/preflight.py); rows too
    long for the model's context are warned about."""
    the_client, factory = conn.open()
    try:
        if spec.check_model and the_client.provider == "zerogpu":  # OpenAI's are not listed
            check_model(spec.model)
    except ZgpuError:
        if factory is not None:
            the_client.close()
        raise
    warn_over_context(requests, label=as_rows(frame).label)
    return the_client, factory


def _batch_metadata(spec: ChatSpec) -> dict[str, Any]:
    """The metadata put on each batch: the caller's, and the job's name (so that a job
    attached by batch id gets it back)."""
    meta = dict(spec.metadata or {})
    if spec.name:
        meta[JOB_NAME_KEY] = spec.name
    return meta


def attach_batches(
    frame: Any,
    batch_ids: str | Sequence[str],
    conn: Connection,
    *,
    output: str = "response",
    overwrite: bool = False,
    progress: ProgressOption = None,
    poll_interval: float | None = None,
    hint: str = "job",
) -> BatchJob:
    """A job for a journal job id (``"job_..."``) or for batches made earlier from
    ``frame``; nothing is submitted. When the batches belong to a job of the local journal,
    the journal's record is used (shared and skipped rows come back right)."""
    ids = [batch_ids] if isinstance(batch_ids, str) else list(batch_ids)
    if len(ids) == 1 and ids[0].startswith("job_"):
        from .resume import attach

        job = attach(
            ids[0],
            frame=frame,
            output=output,
            overwrite=overwrite,
            progress=progress,
            poll_interval=poll_interval,
            client=conn.client,
            api_key=conn.api_key,
            project_id=conn.project_id,
            base_url=conn.base_url,
            hint=hint,
        )
        LAST_JOBS.remember(frame, job)
        return job
    the_client, factory = conn.open()
    job = job_from_batches(
        frame,
        ids,
        client=the_client,
        client_factory=factory,
        output=output,
        overwrite=overwrite,
        poll_interval=poll_interval,
        progress=progress,
        owns_client=factory is not None,
        resume_hint=hint,
    )
    journaled = _journaled(job, frame, ids, factory=factory, hint=hint)
    if journaled is not None:
        job = journaled
    LAST_JOBS.remember(frame, job)
    job.watch_in_background()
    return job


def _journaled(
    job: BatchJob, frame: Any, ids: list[str], *, factory: Any, hint: str
) -> BatchJob | None:
    """The journal's version of a job attached by batch ids, when the local journal holds it
    (then rows that shared a line, or were skipped, come back right)."""
    journal = Journal()
    try:
        rec = journal.load(job.job_id) if job.job_id.startswith("job_") else None
    except (KeyError, ValueError, ZgpuError):
        return None
    if rec is None or rec.rows != as_output(frame).n_rows or set(ids) != set(rec.batch_ids):
        return None
    return job_from_record(
        rec,
        journal,
        frame=frame,
        client=job.client,
        client_factory=factory,
        owns_client=factory is not None,
        output=job.output,
        overwrite=job.overwrite,
        poll_interval=job.poll_interval,
        progress=job.display,
        resume_hint=hint,
        parse=parse_spec_of(rec),
    )
