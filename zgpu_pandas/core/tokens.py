"""Finding the batches that carry a create token, for jobs that other processes or machines
may start too (a Dask partition run twice: :func:`~zgpu_pandas._journal.content_job_id`).

The service lists a project's batches newest first, in the order it created them, the same
order for everyone who asks. So "which of two batches with one token came first" is decided
by that order (not by ``created_at``, which has whole seconds, nor by ids): everyone keeps the
oldest one that is not cancelled, and a batch that finds an older live twin cancels itself.

A look-up must see every batch a re-run could attach to, yet a graph of thousands of
partitions must not list the whole project once per create. A :class:`TokenIndex` (one per
service and project, per process) lists only the batches created since its last look-up (down
to the newest it has already seen), back at most ``FILE_RETENTION`` (30 days: an older
batch's files are gone, so it could not be attached to anyway).

Example::

    found = token_index(client).batches(client, "job_c-ab12...:0:0")   # oldest last
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from .._client import CLIENT_TOKEN_KEY

if TYPE_CHECKING:
    from .._client import Client
    from .._models import Batch

__all__ = ["FILE_RETENTION", "TokenIndex", "keep_of", "token_index"]

#: how far back a look-up goes: the service keeps files 30 days
FILE_RETENTION = 30 * 86400
_DEAD = ("cancelling", "cancelled")


def keep_of(batches: list[Batch]) -> Batch | None:
    """Of the batches carrying one token, listed newest first, the one that counts: the
    oldest not cancelled, else the oldest."""
    if not batches:
        return None
    live = [b for b in batches if b.status not in _DEAD]
    return (live or batches)[-1]


class TokenIndex:
    """The batches of one service and project, by create token, brought up to date at each
    look-up by listing only what is new."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        #: token -> batch ids, newest first
        self._by_token: dict[str, list[str]] = {}
        self._batches: dict[str, Batch] = {}

    def batches(self, client: Client, token: str) -> list[Batch]:
        """Every batch carrying ``token``, newest first, with their statuses as listed now
        (a batch seen earlier is asked for again, since its status may have moved)."""
        with self._lock:
            self._catch_up(client)
            ids = list(self._by_token.get(token, ()))
        fresh = []
        for batch_id in ids:
            batch = self._batches[batch_id]
            if batch.status not in _DEAD:
                batch = client.batches.retrieve(batch_id)
            fresh.append(batch)
        return fresh

    def _catch_up(self, client: Client) -> None:
        since = time.time() - FILE_RETENTION
        new: list[Batch] = []
        for batch in client.batches.list(limit=100):
            if batch.id in self._seen:
                break  # everything older was listed before
            if batch.created_at is not None and batch.created_at < since:
                break
            new.append(batch)
        for batch in reversed(new):  # oldest of the new first, so each list stays newest first
            self._seen.add(batch.id)
            self._batches[batch.id] = batch
            token = batch.metadata.get(CLIENT_TOKEN_KEY)
            if isinstance(token, str):
                self._by_token.setdefault(token, []).insert(0, batch.id)


_INDEXES: dict[tuple[str, str | None], TokenIndex] = {}
_INDEXES_LOCK = threading.Lock()


def token_index(client: Client) -> TokenIndex:
    """The process's index for the client's service and project."""
    key = (client.base_url, client.project_id)
    with _INDEXES_LOCK:
        return _INDEXES.setdefault(key, TokenIndex())
