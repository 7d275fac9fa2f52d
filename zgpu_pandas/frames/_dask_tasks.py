"""What a Dask worker does with one partition: start (or find again) its batch job, wait,
and return the partition with the answer columns; or only submit it; or only estimate it.

Every partition is a job of the core (core/run.py) over a pandas frame, with two
differences that make a task safe to run twice, on any worker, even after the client died:

- its job id and create tokens come from the partition's content and the job's settings
  (``run.start(..., shared=salt)``): a worker that runs the task again, with a journal of its
  own or none in common, looks the token up on the service before any create and reattaches;
- the journal it uses is the one the plan names (``state_dir``), set for the task only
  (``using_state_dir``), since tasks of other jobs may share the worker process.

The API key travels in the plan only when the caller passed ``api_key=``; otherwise each
worker reads its own environment (``ZGPU_API_KEY``/``ZEROGPU_API_KEY``), which a
``LocalCluster`` inherits from the client.

Example::

    plan = PartitionPlan(spec=spec, base_url="http://127.0.0.1:8000", ...)
    ddf.map_partitions(run_partition, plan, meta=plan.meta(ddf._meta))
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .._config import SecretStr
from .._journal import using_state_dir
from ..core import run
from ..core.outcome import merge_outcome
from ..core.results import ResultsTable, answer_extras
from ..core.rows import as_output
from ..core.spec import ChatSpec, Connection

__all__ = [
    "PartitionPlan",
    "TaskKey",
    "estimate_partition",
    "run_partition",
    "submit_partition",
]


class TaskKey(SecretStr):
    """An API key on its way to the workers: unlike a plain :class:`SecretStr` it may be
    pickled (the graph is sent to the scheduler and the workers, in memory), but it still
    never shows itself in a repr, a log or a dashboard, and takes no part in task names."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return (TaskKey, (self.get_secret_value(),))

    def __dask_tokenize__(self) -> str:
        return "zgpu-api-key"


@dataclass(frozen=True)
class PartitionPlan:
    """Everything a task needs, made once on the client (nothing here is secret but
    ``api_key``, a :class:`TaskKey`)."""

    spec: ChatSpec
    api_key: TaskKey | None
    project_id: str | None
    base_url: str | None
    #: the journal's directory on the workers (a shared path, or the client's)
    state_dir: str
    #: salts the partitions' job ids: "" normally, a new value for fresh=True
    salt: str
    poll_interval: float | None
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))

    def connection(self) -> Connection:
        key = self.api_key.get_secret_value() if self.api_key is not None else None
        return Connection(api_key=key, project_id=self.project_id, base_url=self.base_url)

    def meta(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The result of a partition with no rows: the input's columns and the answer
        columns (and reply fields) with the types every partition's result has."""
        _, parse = self.spec.structured()
        extras = answer_extras(dict(self.spec.chat_params))
        answers = ResultsTable(0).answers(
            self.spec.output, model=self.spec.model, extras=extras
        )
        empty = frame.iloc[:0]
        out: pd.DataFrame = merge_outcome(
            answers, as_output(empty), parse=parse, output=self.spec.output,
            overwrite=self.spec.overwrite, job_id="meta",
        )
        return out

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        # task names unique to this plan: two calls whose settings print alike (two
        # notebook classes of one name as response_format) must not share results
        return ("zgpu-plan", self.nonce)


def _start(frame: pd.DataFrame, plan: PartitionPlan) -> Any:
    job = run.start(
        frame,
        plan.spec,
        plan.connection(),
        progress=False,
        poll_interval=plan.poll_interval,
        announce=False,
        shared=plan.salt,
    )
    # how messages (a timeout, a stop) tell the user to reach this partition's job: from
    # the client, by id and journal (computing the frame again works too)
    job.resume_hint = f"zgpu_pandas.attach({job.job_id!r}, state_dir={plan.state_dir!r})"
    return job


def run_partition(frame: pd.DataFrame, plan: PartitionPlan) -> pd.DataFrame:
    """The partition with its answer columns (a task of ``ddf.zgpu.batch_chat``)."""
    meta = plan.meta(frame)
    if not len(frame):
        return meta
    with using_state_dir(plan.state_dir):
        job = _start(frame, plan)
        out: pd.DataFrame = job.result(timeout=plan.spec.timeout)
    return _like(out, meta)


def submit_partition(
    frame: pd.DataFrame, plan: PartitionPlan, partition_info: dict[str, Any] | None = None
) -> pd.DataFrame:
    """One row: the partition's job id and batch ids, once its batches exist (a task of
    ``ddf.zgpu.submit_chat``)."""
    number = partition_info.get("number") if partition_info else None
    row: dict[str, Any] = {"partition": number, "rows": len(frame), "job_id": None,
                           "batch_ids": "", "creates_sent": 0}  # fmt: skip
    if len(frame):
        with using_state_dir(plan.state_dir):
            job = _start(frame, plan)
            row.update(
                job_id=job.job_id, batch_ids=",".join(job.batch_ids),
                creates_sent=job.creates_sent,
            )
            job.client.close()
    return pd.DataFrame([row], columns=list(SUBMITTED_META.columns)).astype(SUBMITTED_META.dtypes)


def estimate_partition(frame: pd.DataFrame, plan: PartitionPlan) -> pd.DataFrame:
    """One row: the partition's :class:`ChatEstimate` fields (a task of
    ``ddf.zgpu.estimate_chat``; nothing is sent)."""
    est = run.estimate(frame, plan.spec)
    return pd.DataFrame({"estimate": pd.Series([est], dtype=object)})


def _like(out: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """``out`` with the columns, order and types of ``meta``: Dask relies on every
    partition having them (a column a partition's replies happened not to fill is still
    there, empty)."""
    missing = [c for c in meta.columns if c not in out.columns]
    for c in missing:
        out[c] = pd.Series(pd.NA, index=out.index, dtype=meta[c].dtype)
    out = out[list(meta.columns)]
    differ = {c: meta[c].dtype for c in meta.columns if out[c].dtype != meta[c].dtype}
    return out.astype(differ) if differ else out


SUBMITTED_META = pd.DataFrame(
    {
        "partition": pd.Series([], dtype="Int64"),
        "rows": pd.Series([], dtype="int64"),
        "job_id": pd.Series([], dtype=object),
        "batch_ids": pd.Series([], dtype=object),
        "creates_sent": pd.Series([], dtype="int64"),
    }
)
