"""Where a result came from, written on the frame (``out.attrs["zgpu"]``) and kept on the job.

A re-run that finds its job in the journal returns in a fraction of a second with the old
answers: correct, but it looks like a bug unless the frame says so. pandas frames carry it in
``DataFrame.attrs`` (kept by most pandas operations, dropped by some, e.g. ``merge``); Polars
frames have no such slot, there the job (``pl_df.zgpu.last_job``) says it.

Example::

    out = df.zgpu.batch_chat("review", model="LFM2.5-1.2B-Instruct")   # run again
    out.attrs["zgpu"]   # {'job_id': 'job_...', 'name': None, 'from_journal': True, ...}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["JOB_NAME_KEY", "job_labels", "stamp"]

#: the batch metadata key that carries a job's name= (jobs attached by batch id get it back)
JOB_NAME_KEY = "zgpu_name"


def job_labels(
    record: Any,
    settings: Mapping[str, Any] | None,
    batches: Sequence[Any],
    metadata: Mapping[str, Any] | None,
) -> tuple[str | None, dict[str, Any], bool, str | None]:
    """A job's ``name`` and the caller's own metadata (from its journal record, or the
    settings it was made with, or else the metadata of one of its batches, without the
    job's bookkeeping keys), whether it comes from the journal, and its resume note (none
    yet: set when the run picks the job up)."""
    settings = (record.settings if record is not None else settings) or {}
    batch_metadata = batches[0].metadata if batches else metadata
    if "metadata" in settings or "name" in settings:
        name = settings.get("name")
        own = dict(settings.get("metadata") or {})
        return (name if isinstance(name, str) else None), own, record is not None, None
    meta = dict(batch_metadata or {})
    name = meta.get(JOB_NAME_KEY)
    own = {k: v for k, v in meta.items() if not str(k).startswith("zgpu_")}
    return (name if isinstance(name, str) else None), own, record is not None, None


def stamp(out: Any, job: Any) -> Any:
    """Put ``job``'s identity on ``out`` (a pandas frame's ``attrs``; other frames as they
    are) and return it."""
    attrs = getattr(out, "attrs", None)
    if isinstance(attrs, dict):
        attrs["zgpu"] = {
            "mode": "batch",  # as the online path (core/online.py) says "online"
            "job_id": job.job_id,
            "name": job.name,
            "from_journal": job.from_journal,
            "note": job.resume_note,
        }
    return out
