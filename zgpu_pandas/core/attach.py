"""Jobs picked up after the fact: from the ids of their batches, or from a journal record.

Example::

    job = job_from_batches(df, ["batch_abc", "batch_def"], client=client)
    job = job_from_record(Journal().load("job_..."), Journal(), frame=df, client=client)
    out = job.result()
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._journal import JobRecord, Journal
from .._progress import Progress, ProgressOption
from ..errors import OptionError
from .job import BatchJob
from .layout import JobLayout
from .requests import RequestSet
from .rows import as_output, position_output
from .submit import JOB_METADATA_KEY

if TYPE_CHECKING:
    from .._client import Client
    from .structured import SchemaSpec

__all__ = ["job_from_batches", "job_from_record"]


def job_from_batches(
    frame: Any,
    batch_ids: str | Sequence[str],
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
    """A job for batches created earlier from ``frame`` (custom_ids ``row-<i>``), e.g. after
    a kernel restart. Rows in none of the batches come back ``skipped`` with code
    ``not_sent``. With ``custom_ids`` (one per row of ``frame``), lines are matched to rows
    by those instead (a batch made elsewhere). Nothing is submitted."""
    ids = [batch_ids] if isinstance(batch_ids, str) else list(batch_ids)
    if not ids:
        raise OptionError("batch_ids is empty: give the ids of the job's batches")
    batches = [client.batches.retrieve(b) for b in ids]
    meta_job = {b.metadata.get(JOB_METADATA_KEY) for b in batches} - {None}
    return BatchJob(
        client=client,
        client_factory=client_factory,
        frame=frame,
        requests=None,
        output=output,
        overwrite=overwrite,
        poll_interval=poll_interval,
        progress=progress,
        job_id=str(meta_job.pop()) if len(meta_job) == 1 else None,
        owns_client=owns_client,
        resume_hint=resume_hint,
        custom_ids=custom_ids,
        batches=batches,
    )


def job_from_record(
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
    """The job of a journal record, picked up where it stopped: batches still running are
    waited on, finished ones read from the local copies, chunks never created are submitted
    by ``submit()`` (found by their token first if a create was sent). Without ``frame``,
    the result is indexed by row position (``0..rows-1``) and holds the answer columns only."""
    sink = position_output(record.rows) if frame is None else as_output(frame)
    if sink.n_rows != record.rows:
        raise OptionError(
            f"job {record.job_id} was made from a frame of {record.rows:,} rows; this one "
            f"has {sink.n_rows:,}"
        )
    return BatchJob(
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
        record=record,
        fingerprint=record.fingerprint,
        connection={
            "base_url": record.base_url,
            "provider": record.provider,
            "project_id": record.project_id,
        },
        settings=record.settings,
        parse=parse,
        layout=None if requests is not None else _recorded_layout(record, journal),
        owns_client=owns_client,
        retries=retries,
    )


def _recorded_layout(record: JobRecord, journal: Journal) -> JobLayout:
    try:
        layout = JobLayout.from_bytes(journal.read_blob(record.job_id, "layout.npz"))
    except (OSError, ValueError) as exc:
        raise journal.corrupt(record.job_id, "layout.npz", exc) from None
    if layout.n_rows != record.rows:
        raise journal.corrupt(record.job_id, "layout.npz", "it is for another job")
    return layout
