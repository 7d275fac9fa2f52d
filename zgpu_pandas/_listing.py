"""``zgpu_pandas.jobs()``: the jobs of the local journal as a pandas DataFrame."""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from ._journal import DamagedRecord, Journal

__all__ = ["jobs"]


def jobs(*, state_dir: str | None = None) -> pd.DataFrame:
    """Every job in the journal, newest first: ``id``, ``name`` (the call's ``name=``),
    ``created`` (UTC), ``model``, ``rows``, ``status``, ``batches`` (their ids) and
    ``base_url``. ``zgpu_pandas.prune_jobs()`` deletes old finished ones.

    A damaged entry is listed with status ``damaged`` (and a warning naming it) rather than
    hiding the others. Example::

        >>> import tempfile, zgpu_pandas
        >>> zgpu_pandas.jobs(state_dir=tempfile.mkdtemp()).columns.tolist()
        ['id', 'name', 'created', 'model', 'rows', 'status', 'batches', 'base_url']
    """
    rows: list[dict[str, Any]] = []
    for rec in Journal(state_dir).scan():
        if isinstance(rec, DamagedRecord):
            warnings.warn(rec.error, RuntimeWarning, stacklevel=2)
            rows.append({"id": rec.job_id, "status": rec.status, "batches": []})
            continue
        rows.append(
            {
                "id": rec.job_id,
                "name": rec.settings.get("name"),
                "created": pd.Timestamp(rec.created_at, unit="s", tz="UTC"),
                "model": rec.model,
                "rows": rec.rows,
                "status": rec.status,
                "batches": rec.batch_ids,
                "base_url": rec.base_url,
            }
        )
    cols = ["id", "name", "created", "model", "rows", "status", "batches", "base_url"]
    out = pd.DataFrame(rows, columns=cols)
    out["created"] = pd.to_datetime(out["created"], utc=True)
    out["rows"] = out["rows"].astype("Int64")
    return out.sort_values(["created", "id"], ascending=False, na_position="first").reset_index(
        drop=True
    )
