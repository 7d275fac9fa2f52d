"""``zgpu_pandas.prune_jobs()`` and ``zgpu-pandas jobs prune``: old journal entries removed.

Every job keeps its record, its layout and a local copy of its result files in the journal,
so that a re-run or ``attach`` never pays twice; prompt iterations add up. Pruning deletes
the folders of *finished* jobs (completed, partial, failed, cancelled, stopped, abandoned)
last touched more than ``older_than_days`` ago. A job still created, submitted or running is
never pruned: its batches may be paid for and still working, and the journal is how they are
found again. A damaged entry is left alone too (its batch ids may still be read by hand).
Nothing on the service is deleted; a pruned job run again is a new job.

Example::

    import zgpu_pandas
    zgpu_pandas.prune_jobs(older_than_days=7, dry_run=True)   # what would go
    zgpu_pandas.prune_jobs(older_than_days=7)                 # delete them
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from ._journal import DamagedRecord, Journal
from .errors import OptionError

__all__ = ["FINISHED", "prune_jobs"]

FINISHED = frozenset({"completed", "partial", "failed", "cancelled", "stopped", "abandoned"})
_DAY = 86400.0


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def prune_jobs(
    *,
    older_than_days: float = 30,
    dry_run: bool = False,
    state_dir: str | None = None,
) -> pd.DataFrame:
    """Delete the journal folders (record and result copies) of finished jobs last updated
    more than ``older_than_days`` days ago (``0``: every finished job). Returns what was (or,
    with ``dry_run=True``, would be) deleted, oldest first: ``id``, ``name``, ``status``,
    ``updated`` (UTC) and ``bytes``. Answers of the online mode stored as long ago go too;
    ``out.attrs["answers_pruned"]`` says how many.

    Example::

        >>> import tempfile, zgpu_pandas
        >>> zgpu_pandas.prune_jobs(state_dir=tempfile.mkdtemp()).columns.tolist()
        ['id', 'name', 'status', 'updated', 'bytes']
    """
    if isinstance(older_than_days, bool) or not isinstance(older_than_days, int | float) or not (
        older_than_days >= 0
    ):
        raise OptionError(f"older_than_days= must be a number >= 0, not {older_than_days!r}.")
    journal = Journal(state_dir)
    cutoff = time.time() - older_than_days * _DAY
    rows: list[dict[str, Any]] = []
    for rec in journal.scan():
        if isinstance(rec, DamagedRecord) or rec.status not in FINISHED:
            continue
        touched = max(rec.updated_at or 0.0, rec.created_at)
        if touched > cutoff:
            continue
        folder = journal.job_dir(rec.job_id)
        name = rec.settings.get("name")
        rows.append(
            {
                "id": rec.job_id,
                "name": name if isinstance(name, str) else None,
                "status": rec.status,
                "updated": pd.Timestamp(touched, unit="s", tz="UTC"),
                "bytes": _size(folder),
            }
        )
        if not dry_run:
            shutil.rmtree(folder)
            journal.drop_lock(rec.fingerprint)  # its .locks/ file would stay forever
    # answers bought online (kept so no request is paid twice) age out with the jobs
    from ._answers import AnswerCache

    answers = AnswerCache.open(state_dir).prune(older_than=older_than_days * _DAY, dry_run=dry_run)
    out = pd.DataFrame(rows, columns=["id", "name", "status", "updated", "bytes"])
    out["updated"] = pd.to_datetime(out["updated"], utc=True)
    out["bytes"] = out["bytes"].astype("int64")
    out = out.iloc[::-1].reset_index(drop=True)
    out.attrs["answers_pruned"] = answers
    return out
