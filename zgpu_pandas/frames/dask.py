"""``ddf.zgpu``: batch chat over a Dask DataFrame, partition by partition, on the workers.

Each partition becomes one job of the core (split into batches of at most 50,000 lines /
100 MB when bigger; a small partition is one batch, so join small partitions first with
``ddf.repartition(partition_size="100MB")``: the rows are not counted before the graph runs).
The batches are submitted from the workers, where the data is. ``batch_chat`` returns a
lazy Dask DataFrame with the columns of the pandas accessor; ``submit_chat`` submits every
partition now and returns a :class:`DaskJob`; ``estimate_chat`` adds up every partition's
estimate (one pass over the data, nothing sent).

A task that Dask runs twice (a lost worker, a retry), or the whole graph computed again after
the client died, never buys a partition twice: a partition's job id and create tokens come
from its content and the settings, and a worker looks the token up on the service before any
create (see :mod:`zgpu_pandas.frames._dask_tasks`). ``state_dir=`` names the journal
directory the workers use: a path they share, or by default the client's own (which a
``LocalCluster`` shares). Registered when ``dask.dataframe`` is imported beside
``zgpu_pandas`` (either order); needs the ``dask`` extra.

Example::

    import dask.dataframe as dd
    import zgpu_pandas  # noqa: F401

    ddf = dd.read_parquet("reviews/")
    out = ddf.zgpu.batch_chat("review", model="LFM2.5-1.2B-Instruct", temperature=0)
    out.to_parquet("labelled/")          # runs the jobs, partition by partition
"""

from __future__ import annotations

import inspect
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any

import dask.dataframe as dd
import pandas as pd

from .._journal import state_dir as default_state_dir
from ..core import run
from ..core.estimate import ChatEstimate, sum_estimates
from ..core.preflight import check_model
from ..errors import OptionError
from ._dask_tasks import (
    SUBMITTED_META,
    PartitionPlan,
    TaskKey,
    estimate_partition,
    run_partition,
    submit_partition,
)
from ._namespace import FrameNamespace
from ._options import chat_spec

__all__ = ["DaskJob", "ZgpuDaskNamespace", "register"]

_NOWHERE: dict[str, Any] = {"api_key": None, "project_id": None, "base_url": None}
_ESTIMATE_META = pd.DataFrame({"estimate": pd.Series([], dtype=object)})


class ZgpuDaskNamespace:
    """Batch chat completions over the partitions of a Dask DataFrame (``ddf.zgpu``).

    The methods take the keywords of the pandas accessor's (``df.zgpu.batch_chat``: prompt,
    model, system, messages, output, response_format, retries, timeout, max_cost, api_key,
    base_url, ... and chat parameters such as ``temperature``), plus ``state_dir``. Not
    here: ``client=`` (a client cannot travel to the workers: pass ``api_key``/
    ``base_url``), ``progress=`` (Dask's dashboard or ``dask.diagnostics.ProgressBar``
    shows the tasks). ``timeout`` bounds each partition's wait. ``max_cost`` is checked
    against the whole frame's estimate before anything is sent, which reads the data once.
    """

    def __init__(self, ddf: dd.DataFrame) -> None:
        self._ddf = ddf

    def batch_chat(
        self, prompt: Any = None, model: str | None = None, *, state_dir: str | None = None,
        part_rows: int | None = None, **options: Any,
    ) -> dd.DataFrame:
        """A lazy Dask DataFrame: every row of this one plus the answer columns of
        ``df.zgpu.batch_chat`` (same names, same types), one job per partition when it is
        computed.

        Example::

            out = ddf.zgpu.batch_chat("Review: {review}", model="LFM2.5-1.2B-Instruct",
                                      temperature=0, max_cost=20.0)
            out[out.response_status == "error"].compute()
        """
        plan = self._plan(prompt, model, options, state_dir=state_dir, connect=True)
        ddf = joined(self._ddf, part_rows)
        plan = self._within_budget(plan, ddf)
        return ddf.map_partitions(run_partition, plan, meta=plan.meta(ddf._meta))

    def submit_chat(
        self, prompt: Any = None, model: str | None = None, *, state_dir: str | None = None,
        part_rows: int | None = None, **options: Any,
    ) -> DaskJob:
        """Submit every partition's batches now (a short task per partition: read, build,
        upload, create) and return a :class:`DaskJob`; ``job.result()`` is the lazy frame
        of :meth:`batch_chat`, which finds these batches again instead of buying new ones.

        Example::

            job = ddf.zgpu.submit_chat("review", model="LFM2.5-1.2B-Instruct")
            job.status()
            job.result().to_parquet("labelled/")
        """
        plan = self._plan(prompt, model, options, state_dir=state_dir, connect=True)
        ddf = joined(self._ddf, part_rows)
        plan = self._within_budget(plan, ddf)
        table = ddf.map_partitions(submit_partition, plan, meta=SUBMITTED_META).compute()
        return DaskJob(ddf, plan, table.reset_index(drop=True))

    def estimate_chat(
        self, prompt: Any = None, model: str | None = None, *, state_dir: str | None = None,
        part_rows: int | None = None, **options: Any,
    ) -> ChatEstimate:
        """What :meth:`batch_chat` would send and cost, every partition's estimate added up
        (computes the frame once; nothing is sent). Example::

            print(ddf.zgpu.estimate_chat("review", model="LFM2.5-1.2B-Instruct"))
        """
        plan = self._plan(prompt, model, options, state_dir=state_dir, connect=False)
        return self._estimate(plan, joined(self._ddf, part_rows))

    # ---- the plan each task receives ---------------------------------------------------

    def _estimate(self, plan: PartitionPlan, ddf: dd.DataFrame) -> ChatEstimate:
        table = ddf.map_partitions(estimate_partition, plan, meta=_ESTIMATE_META)
        return sum_estimates(list(table.compute()["estimate"]))

    def _within_budget(self, plan: PartitionPlan, ddf: dd.DataFrame) -> PartitionPlan:
        """``max_cost`` against the estimate of the jobs ``ddf``'s partitions will be (one
        pass over the data); checked once for the whole frame, so the tasks need not."""
        if plan.spec.max_cost is None:
            return plan
        run.check_estimate(self._estimate(plan, ddf), plan.spec)
        return replace(plan, spec=replace(plan.spec, max_cost=None))

    def _plan(
        self, prompt: Any, model: str | None, options: dict[str, Any], *,
        state_dir: str | None, connect: bool,
    ) -> PartitionPlan:
        """The spec and connection of a call, checked on the client before any data is
        read: the options, the columns, the model id and (``connect``) the key."""
        args = _arguments(prompt, model, options)
        fresh = bool(args.get("fresh"))
        spec = chat_spec(args, fresh=False)
        _, parse = run.build(self._ddf._meta, spec)  # options, columns, templates: no rows
        if parse is not None and parse.schema is None:
            raise OptionError(
                "ddf.zgpu needs the reply fields before the graph runs: pass "
                "response_format=<a JSON schema or Pydantic model> instead of parse='json' "
                "without one (or parse=False for the raw reply text)."
            )
        if spec.check_model:
            check_model(spec.model)
        plan = PartitionPlan(
            spec=spec,
            # an estimate sends nothing, so it needs no key (as df.zgpu.estimate_chat)
            **(_connection(args) if connect else _NOWHERE),
            state_dir=_journal_dir(state_dir),
            # fresh=True: a new salt, so that this graph's partitions are new jobs (its own
            # task retries still find their batches: the salt is fixed in the graph)
            salt=secrets.token_hex(8) if fresh else "",
            poll_interval=args.get("poll_interval"),
        )
        return plan


class DaskJob:
    """The partitions of a Dask frame submitted by ``ddf.zgpu.submit_chat``: one journaled
    job each. ``partitions`` lists them (job id, batch ids, rows, creates sent).

    Example::

        job = ddf.zgpu.submit_chat("review", model="LFM2.5-1.2B-Instruct")
        job.status()                     # {"completed": 6, "in_progress": 2, ...}
        out = job.result().compute()     # waits, partition by partition
    """

    def __init__(self, ddf: dd.DataFrame, plan: PartitionPlan, partitions: pd.DataFrame):
        self._ddf = ddf
        self._plan = plan
        self.partitions = partitions

    @property
    def batch_ids(self) -> list[str]:
        """Every batch of every partition."""
        return [b for ids in self.partitions["batch_ids"] for b in str(ids).split(",") if b]

    def __repr__(self) -> str:
        return (
            f"<DaskJob partitions={len(self.partitions)} batches={len(self.batch_ids)} "
            f"rows={int(self.partitions['rows'].sum()):,}>"
        )

    def result(self) -> dd.DataFrame:
        """The lazy frame with the answers (as :meth:`ZgpuDaskNamespace.batch_chat`): its
        tasks find these batches again, wait for them and merge."""
        return self._ddf.map_partitions(
            run_partition, self._plan, meta=self._plan.meta(self._ddf._meta)
        )

    def status(self) -> dict[str, int]:
        """How many batches are in each status, and the lines done and failed so far
        (one ``GET`` per batch, from the client)."""
        counts: dict[str, int] = {"lines": 0, "lines_completed": 0, "lines_failed": 0}
        with self._plan.connection().session() as conn:
            assert conn.client is not None
            for batch_id in self.batch_ids:
                batch = conn.client.batches.retrieve(batch_id)
                counts[batch.status] = counts.get(batch.status, 0) + 1
                counts["lines"] += batch.request_counts.total
                counts["lines_completed"] += batch.request_counts.completed
                counts["lines_failed"] += batch.request_counts.failed
        return counts

    def cancel(self) -> None:
        """Ask the service to stop every batch that is not finished."""
        with self._plan.connection().session() as conn:
            assert conn.client is not None
            for batch_id in self.batch_ids:
                if not conn.client.batches.retrieve(batch_id).is_terminal:
                    conn.client.batches.cancel(batch_id)


def joined(ddf: dd.DataFrame, part_rows: int | None) -> dd.DataFrame:
    """``ddf`` with adjacent partitions joined into partitions of up to ``part_rows`` rows
    (a partition already bigger stays as it is: the core splits it into batches of 50,000
    lines). ``None``: ``ddf`` unchanged."""
    if part_rows is None:
        return ddf
    if isinstance(part_rows, bool) or not isinstance(part_rows, int) or part_rows < 1:
        raise OptionError(f"part_rows must be a whole number of rows >= 1, not {part_rows!r}")
    import dask

    sizes = [int(n) for n in ddf.map_partitions(len).compute()]
    groups: list[list[int]] = []
    rows = 0
    for i, n in enumerate(sizes):
        if not groups or rows + n > part_rows:
            groups.append([])
            rows = 0
        groups[-1].append(i)
        rows += n
    if len(groups) == len(sizes):
        return ddf
    parts = ddf.to_delayed()
    concat = dask.delayed(_concat)
    return dd.from_delayed(
        [concat([parts[i] for i in g]) for g in groups], meta=ddf._meta, verify_meta=False
    )


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return frames[0] if len(frames) == 1 else pd.concat(frames)


def _arguments(prompt: Any, model: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments as ``df.zgpu.batch_chat`` would bind them (the same keywords,
    the same defaults, the other keywords as chat parameters)."""
    for name, why in (
        ("client", "a client cannot travel to the workers: pass api_key=/base_url= instead"),
        ("progress", "Dask shows the tasks (its dashboard, or dask.diagnostics.ProgressBar)"),
    ):
        if options.get(name) is not None:
            raise OptionError(f"{name}= is not taken by ddf.zgpu: {why}.")
    try:
        bound = inspect.signature(FrameNamespace.batch_chat).bind(None, prompt, model, **options)
    except TypeError as exc:
        raise OptionError(f"ddf.zgpu: {exc}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def _connection(args: dict[str, Any]) -> dict[str, Any]:
    """Where the workers send: ``base_url="local"`` is this process's local server (started
    here, reached by its URL); a key is checked here, and sent along only when given."""
    from .._config import resolve_settings

    base_url, project_id = args.get("base_url"), args.get("project_id")
    settings = resolve_settings(api_key=args.get("api_key"), project_id=project_id,
                                base_url=base_url)  # fmt: skip
    if base_url is not None and base_url.strip().lower() == "local":
        return {"api_key": TaskKey("local"), "project_id": settings.project_id,
                "base_url": settings.base_url}  # fmt: skip
    key = args.get("api_key")
    return {"api_key": TaskKey(key) if key else None, "project_id": project_id,
            "base_url": base_url}  # fmt: skip


def _journal_dir(state_dir: str | None) -> str:
    """The journal directory the workers use, as an absolute path."""
    if state_dir is None:
        return str(default_state_dir())
    if not isinstance(state_dir, str | Path) or not str(state_dir).strip():
        raise OptionError(f"state_dir must be a folder path, not {state_dir!r}")
    return str(Path(state_dir).expanduser().resolve())


_registered = False


def register() -> None:
    """Register ``dd.DataFrame.zgpu`` (once)."""
    global _registered
    if not _registered:
        from dask.dataframe.extensions import register_dataframe_accessor

        register_dataframe_accessor("zgpu")(ZgpuDaskNamespace)
        _registered = True


register()  # on import: the import hook (zgpu_pandas._import_hooks) only imports this module
