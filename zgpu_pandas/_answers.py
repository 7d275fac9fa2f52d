"""Answers already paid for, kept by request fingerprint, so the same request is not bought
twice: the online mode (``df.zgpu.chat``) writes every answer it receives and reads them back
before sending, and ``batch_chat`` leaves out of its batches the rows whose answer is here.

Only deterministic requests are looked up (no sampling: ``temperature`` 0 or unset, ``n`` 1,
``top_p`` 1); an answer to a sampling request is kept too but never handed to a later call,
which asked for a fresh sample. A fingerprint covers every byte of the request body and the
service it went to (the configured base URL, provider and project), never the key.

The store is one SQLite file in the journal's directory (``$ZGPU_STATE_DIR``), private to the
user (``0600``), safe for several processes at once (SQLite's own locking; a writer waits up
to 30 s). ``AnswerCache.prune(older_than=...)`` drops old answers.

Example::

    cache = AnswerCache.open()
    key = answer_key(body_bytes, where={"base_url": "local", "provider": "zerogpu",
                                       "project_id": None})
    cache.put({key: response_bytes})
    cache.get_many([key])      # {key: response_bytes}
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from ._journal import state_dir
from .errors import JournalWriteError

__all__ = ["AnswerCache", "answer_key"]

_FILE = "answers.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    created_at REAL NOT NULL
);
"""
# SQLite before 3.32 allows at most 999 parameters in one statement.
_IN_BATCH = 900


def answer_key(body: bytes, *, where: Mapping[str, Any]) -> str:
    """The fingerprint of one request body sent to the service ``where`` names."""
    h = hashlib.sha256(b"zgpu-answer/1\n")
    h.update(orjson.dumps(dict(where), option=orjson.OPT_SORT_KEYS))
    h.update(b"\n")
    h.update(body)
    return h.hexdigest()


class AnswerCache:
    """The answers store (see the module docstring). One connection per thread."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._local = threading.local()

    @classmethod
    def open(cls, root: str | os.PathLike[str] | None = None) -> AnswerCache:
        """The store of the journal directory ``root`` (default: ``$ZGPU_STATE_DIR``)."""
        return cls((Path(root) if root is not None else state_dir()) / _FILE)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fresh = not self.path.exists()
                conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                if fresh:
                    # answers are the user's data: readable by the user only
                    with contextlib.suppress(OSError):
                        os.chmod(self.path, 0o600)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
            except (OSError, sqlite3.Error) as exc:
                raise JournalWriteError(
                    f"Cannot open the answers store {self.path}: {exc}. Check that the "
                    f"directory is writable (or set ZGPU_STATE_DIR to one that is)."
                ) from exc
            self._local.conn = conn
        return conn

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The stored answers among ``keys`` (missing keys are left out)."""
        wanted = list(dict.fromkeys(keys))
        if not wanted or not self.path.exists():
            return {}
        conn = self._conn()
        found: dict[str, bytes] = {}
        for start in range(0, len(wanted), _IN_BATCH):
            part = wanted[start : start + _IN_BATCH]
            marks = ",".join("?" * len(part))
            rows = conn.execute(f"SELECT key, body FROM answers WHERE key IN ({marks})", part)
            found.update((k, bytes(b)) for k, b in rows)
        return found

    def put(self, answers: Mapping[str, bytes]) -> None:
        """Store answers (a later answer for the same key replaces the earlier one)."""
        if not answers:
            return
        now = time.time()
        try:
            conn = self._conn()
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT OR REPLACE INTO answers (key, body, created_at) VALUES (?, ?, ?)",
                    [(k, v, now) for k, v in answers.items()],
                )
        except sqlite3.Error as exc:
            raise JournalWriteError(
                f"Cannot write to the answers store {self.path}: {exc}. The answers of this "
                f"call are still returned; free some disk space so later calls can reuse them."
            ) from exc

    def prune(self, *, older_than: float, dry_run: bool = False) -> int:
        """Drop answers stored more than ``older_than`` seconds ago; the number dropped
        (with ``dry_run``, the number that would be)."""
        if not self.path.exists():
            return 0
        if dry_run:
            row = self._conn().execute(
                "SELECT COUNT(*) FROM answers WHERE created_at < ?", (time.time() - older_than,)
            ).fetchone()
            return int(row[0])
        conn = self._conn()
        with conn:
            cur = conn.execute("DELETE FROM answers WHERE created_at < ?", (time.time() - older_than,))
        return int(cur.rowcount)

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        return int(self._conn().execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
