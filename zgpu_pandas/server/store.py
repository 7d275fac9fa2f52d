"""Durable state of the local server: SQLite metadata plus file bodies on disk.

Layout of a data directory::

    meta.sqlite3            files and batches (WAL mode, one connection per thread)
    files/<file-id>         uploaded input files
    batches/<batch-id>/     output.jsonl and errors.jsonl, appended chunk by chunk
    tmp/                    uploads in flight (emptied at start)
    .lock                   held (OS file lock) by the one server using the directory

A batch's progress is a row: the byte offset before which every input line is recorded,
the byte lengths of its partial output and error files and the counts, plus the offsets of
the lines recorded past that offset (``batch_done_lines``: lines finish out of order), all
updated in one transaction per group of finished lines. Partial files may hold bytes past
the recorded lengths after a crash; the worker truncates them back before appending, so no
line is lost or doubled.

Example::

    store = Store(Path("zgpu-data"))
    store.open()
    try:
        print(store.active_batch_ids())
    finally:
        store.close()
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from .._fs import try_lock
from .._models import BATCH_STATUSES, TERMINAL_STATUSES
from . import _ids

__all__ = [
    "ACTIVE_STATUSES",
    "FILE_RETENTION_SECONDS",
    "TERMINAL_STATUSES",
    "DataDirDamaged",
    "DataDirLocked",
    "InputFileGone",
    "Store",
    "batch_object",
    "file_object",
]

FILE_RETENTION_SECONDS = 30 * 24 * 3600
_CACHE_KB = 512  # SQLite page cache per connection
# the lifecycle's two halves, from the one definition the client uses too
ACTIVE_STATUSES = tuple(s for s in BATCH_STATUSES if s not in TERMINAL_STATUSES)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    project TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    is_error INTEGER NOT NULL DEFAULT 0,
    path TEXT NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX IF NOT EXISTS files_by_project ON files(project, seq);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    project TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    input_file_id TEXT NOT NULL,
    input_path TEXT NOT NULL,
    completion_window TEXT NOT NULL,
    status TEXT NOT NULL,
    output_file_id TEXT,
    error_file_id TEXT,
    errors TEXT,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    in_progress_at INTEGER,
    expires_at INTEGER,
    finalizing_at INTEGER,
    completed_at INTEGER,
    failed_at INTEGER,
    expired_at INTEGER,
    cancelling_at INTEGER,
    cancelled_at INTEGER,
    total INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    deadline REAL NOT NULL,
    next_offset INTEGER NOT NULL DEFAULT 0,
    out_bytes INTEGER NOT NULL DEFAULT 0,
    err_bytes INTEGER NOT NULL DEFAULT 0,
    ending TEXT
);
CREATE INDEX IF NOT EXISTS batches_by_project ON batches(project, seq);
CREATE INDEX IF NOT EXISTS batches_by_status ON batches(status);
-- lines recorded past a batch's next_offset (they finish out of order): a restart skips them
CREATE TABLE IF NOT EXISTS batch_done_lines (
    batch_id TEXT NOT NULL,
    offset INTEGER NOT NULL,
    PRIMARY KEY (batch_id, offset)
) WITHOUT ROWID;
"""


class DataDirLocked(RuntimeError):
    """Another live process serves this data directory."""


class DataDirDamaged(RuntimeError):
    """The metadata database of a data directory cannot be read (one line, no traceback)."""


class InputFileGone(LookupError):
    """A batch's input file was deleted before the batch could be recorded."""


def _now() -> int:
    return int(time.time())


class _DirLock:
    """An exclusive OS lock on ``<dir>/.lock``, released when the process dies (so a
    killed server never leaves a stale lock behind)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        fh = open(self.path, "a+")  # noqa: SIM115 (held open for the lock's lifetime)
        if not try_lock(fh):
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise DataDirLocked(
                f"the data directory {self.path.parent} is in use by another server "
                f"(pid {holder}); stop it or choose another data directory"
            )
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.seek(0)
                self._fh.truncate()
            self._fh.close()  # closing the descriptor drops the flock
            self._fh = None


class Store:
    """SQLite metadata + blobs under ``data_dir``. Thread-safe: each thread gets its own
    SQLite connection; writes go through short ``BEGIN IMMEDIATE`` transactions."""

    def __init__(self, data_dir: Path, *, file_retention: float = FILE_RETENTION_SECONDS) -> None:
        self.data_dir = Path(data_dir)
        self.file_retention = math.ceil(file_retention)  # expires_at = creation + this
        self.files_dir = self.data_dir / "files"
        self.batches_dir = self.data_dir / "batches"
        self.tmp_dir = self.data_dir / "tmp"
        self._lock = _DirLock(self.data_dir / ".lock")
        self._local = threading.local()
        # every thread's connection, with its thread: the request thread pool retires idle
        # threads and starts new ones, so a dead thread's connection is closed (not kept
        # until the server stops, which would grow without bound over a long run)
        self._conns: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._conns_lock = threading.Lock()
        self._open = False
        #: told of each finished batch line (bid, project, line, ok) by the worker; observe.py
        self.line_observer: Callable[[str, str, bytes, bool], None] | None = None

    # ------------------------------------------------------------------ life cycle
    def open(self) -> None:
        """Lock the directory, create the layout and schema, drop stale uploads."""
        if self._open:
            return
        # 0700 when created here: the files are users' prompts and answers (an existing
        # directory keeps the permissions its owner gave it).
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock.acquire()
        try:
            for d in (self.files_dir, self.batches_dir):
                d.mkdir(exist_ok=True, mode=0o700)
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            self.tmp_dir.mkdir(exist_ok=True, mode=0o700)
            self._open_schema()
        except BaseException:
            self.close()
            raise
        self._open = True

    def _open_schema(self) -> None:
        db = self.data_dir / "meta.sqlite3"
        try:
            self.conn.executescript(_SCHEMA)
            # A damaged header or schema shows here, at start, in one line, rather than as
            # a traceback or as failing requests later.
            self.conn.execute("SELECT count(*) FROM batches WHERE status = 'x'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise DataDirDamaged(
                f"the metadata database {db} is damaged ({exc}); move it away to start "
                "afresh (its files and batches are then unknown to the server) or choose "
                "another data directory"
            ) from None

    def close(self) -> None:
        with self._conns_lock:
            for _, c in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    c.close()
            self._conns.clear()
        self._local = threading.local()
        self._lock.release()
        self._open = False

    @property
    def conn(self) -> sqlite3.Connection:
        c: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if c is None:
            # isolation_level=None: autocommit, with explicit BEGIN IMMEDIATE where several
            # statements must land together. check_same_thread=False only so close() can
            # close every thread's connection; each is used by its own thread alone.
            c = sqlite3.connect(
                self.data_dir / "meta.sqlite3",
                isolation_level=None,
                check_same_thread=False,
                timeout=30.0,
            )
            c.row_factory = sqlite3.Row
            c.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a process crash (the case that matters here:
            # a killed server); only an OS crash may lose the last transactions.
            c.execute("PRAGMA synchronous=NORMAL")
            # Each request thread has a connection (the thread pool holds about 40), and
            # each caches up to 2 MB of pages by default, which a long-running server fills
            # as the database grows. 512 KB each holds every index path a request walks;
            # the OS caches the rest.
            c.execute(f"PRAGMA cache_size=-{_CACHE_KB}")
            self._local.conn = c
            with self._conns_lock:
                live = []
                for thread, other in self._conns:
                    if thread.is_alive():
                        live.append((thread, other))
                    else:
                        with contextlib.suppress(sqlite3.Error):
                            other.close()
                live.append((threading.current_thread(), c))
                self._conns = live
        return c

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")

    def tmp_path(self) -> Path:
        return self.tmp_dir / f"upload-{_ids.file_id()}"

    def path_of(self, rel: str) -> Path:
        return self.data_dir / rel

    # ----------------------------------------------------------------------- files
    def add_file(
        self, *, project: str, tmp: Path, size: int, filename: str | None, purpose: str = "batch"
    ) -> sqlite3.Row:
        """Move an uploaded body from ``tmp`` into place and record it."""
        fid = _ids.file_id()
        rel = f"files/{fid}"
        os.replace(tmp, self.data_dir / rel)
        now = _now()
        with self.tx() as c:
            c.execute(
                "INSERT INTO files (id, project, bytes, created_at, expires_at, filename, purpose,"
                " path) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (fid, project, size, now, now + self.file_retention,
                 filename or f"{fid}.jsonl", purpose, rel),
            )
        row = self.get_file(project, fid)
        assert row is not None
        return row

    def get_file(self, project: str, fid: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM files WHERE id = ? AND project = ? AND deleted_at IS NULL",
            (fid, project),
        ).fetchone()
        return row

    def list_files(
        self, project: str, *, purpose: str | None, order: str, after: str | None, limit: int
    ) -> tuple[list[sqlite3.Row], bool] | None:
        """A page of files and ``has_more``; ``None`` when ``after`` is unknown."""
        sql = "SELECT * FROM files WHERE project = ? AND deleted_at IS NULL"
        args: list[Any] = [project]
        if purpose is not None:
            sql += " AND purpose = ?"
            args.append(purpose)
        desc = order == "desc"
        if after is not None:
            seq = self._seq("files", project, after)
            if seq is None:
                return None
            sql += " AND seq < ?" if desc else " AND seq > ?"
            args.append(seq)
        sql += f" ORDER BY seq {'DESC' if desc else 'ASC'} LIMIT ?"
        args.append(limit + 1)
        rows = self.conn.execute(sql, args).fetchall()
        return rows[:limit], len(rows) > limit

    def delete_file(self, project: str, fid: str) -> bool:
        """Soft delete (later reads give 404). The body (input, output or error) goes at once
        unless a running batch reads it, then when that batch ends; the record stays (a page
        cursor) until a retention sweep after ``expires_at``."""
        with self.tx() as c:
            row = c.execute(
                "SELECT path FROM files WHERE id = ? AND project = ? AND deleted_at IS NULL",
                (fid, project),
            ).fetchone()
            if row is None:
                return False
            c.execute("UPDATE files SET deleted_at = ? WHERE id = ?", (_now(), fid))
            in_use = self._input_in_use(c, fid)
        if not in_use:
            drop_body(self.data_dir, row["path"])
        return True

    def _input_in_use(self, c: sqlite3.Connection, fid: str) -> bool:
        marks = ",".join("?" * len(ACTIVE_STATUSES))
        hit = c.execute(
            f"SELECT 1 FROM batches WHERE input_file_id = ? AND status IN ({marks}) LIMIT 1",
            (fid, *ACTIVE_STATUSES),
        ).fetchone()
        return hit is not None

    def _seq(self, table: str, project: str, ident: str) -> int | None:
        # Deleted rows still count as cursors: a page boundary may be deleted meanwhile.
        row = self.conn.execute(
            f"SELECT seq FROM {table} WHERE id = ? AND project = ?", (ident, project)
        ).fetchone()
        return None if row is None else int(row["seq"])

    # --------------------------------------------------------------------- batches
    def add_batch(
        self,
        *,
        project: str,
        endpoint: str,
        input_file: sqlite3.Row,
        completion_window: str,
        metadata: dict[str, Any],
        window_seconds: float,
        total: int,
        errors: dict[str, Any] | None = None,
    ) -> sqlite3.Row:
        """Record a new batch: ``in_progress`` with ``total`` lines, or ``failed`` when
        ``errors`` is given (a create that failed validation)."""
        bid = _ids.batch_id()
        t = time.time()
        failed = errors is not None
        # The batch's folder exists before its row: the worker may pick a new batch up
        # the moment the row is committed, and appends to files in that folder.
        bdir = self.batches_dir / bid
        if not failed:
            bdir.mkdir(exist_ok=True)
        try:
            self._insert_batch(
                bid, t, project=project, endpoint=endpoint, input_file=input_file,
                completion_window=completion_window, metadata=metadata,
                window_seconds=window_seconds, total=total, errors=errors,
            )
        except BaseException:
            with contextlib.suppress(OSError):
                bdir.rmdir()
            raise
        row = self.batch_row(bid)
        assert row is not None
        return row

    def _insert_batch(
        self,
        bid: str,
        t: float,
        *,
        project: str,
        endpoint: str,
        input_file: sqlite3.Row,
        completion_window: str,
        metadata: dict[str, Any],
        window_seconds: float,
        total: int,
        errors: dict[str, Any] | None,
    ) -> None:
        now = int(t)
        failed = errors is not None
        with self.tx() as c:
            # Checked in the same transaction as the insert (a delete is a transaction too):
            # a file deleted while the create validated it never becomes a batch that can
            # neither run nor end. Deleted after this point, its body is kept for the batch.
            alive = c.execute(
                "SELECT 1 FROM files WHERE id = ? AND deleted_at IS NULL", (input_file["id"],)
            ).fetchone()
            if alive is None and not failed:
                raise InputFileGone(input_file["id"])
            c.execute(
                "INSERT INTO batches (id, project, endpoint, input_file_id, input_path,"
                " completion_window, status, errors, metadata, created_at, in_progress_at,"
                " expires_at, failed_at, total, deadline)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    bid, project, endpoint, input_file["id"], input_file["path"],
                    completion_window, "failed" if failed else "in_progress",
                    None if errors is None else orjson.dumps(errors).decode(),
                    orjson.dumps(metadata).decode(), now, None if failed else now,
                    now + math.ceil(window_seconds), now if failed else None,
                    0 if failed else total, t + window_seconds,
                ),
            )

    def batch_row(self, bid: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM batches WHERE id = ?", (bid,)
        ).fetchone()
        return row

    def get_batch(self, project: str, bid: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM batches WHERE id = ? AND project = ?", (bid, project)
        ).fetchone()
        return row

    def list_batches(
        self, project: str, *, after: str | None, limit: int
    ) -> tuple[list[sqlite3.Row], bool] | None:
        sql = "SELECT * FROM batches WHERE project = ?"
        args: list[Any] = [project]
        if after is not None:
            seq = self._seq("batches", project, after)
            if seq is None:
                return None
            sql += " AND seq < ?"
            args.append(seq)
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit + 1)
        rows = self.conn.execute(sql, args).fetchall()
        return rows[:limit], len(rows) > limit

    def cancel_batch(self, project: str, bid: str) -> tuple[sqlite3.Row | None, bool]:
        """Move a running batch to ``cancelling``. Returns ``(row, ok)``: row ``None`` when
        unknown; ``ok`` False when the batch can no longer be cancelled (terminal or
        finalizing). Repeat calls on a cancelling/cancelled batch are ``ok``."""
        with self.tx() as c:
            row = c.execute(
                "SELECT status FROM batches WHERE id = ? AND project = ?", (bid, project)
            ).fetchone()
            if row is None:
                return None, False
            status = row["status"]
            if status in ("validating", "in_progress"):
                c.execute(
                    "UPDATE batches SET status = 'cancelling', cancelling_at = ? WHERE id = ?",
                    (_now(), bid),
                )
                ok = True
            else:
                ok = status in ("cancelling", "cancelled")
            # Read inside the transaction: the answer shows the state this call left
            # ("cancelling"), not whatever the worker made of it a moment later.
            after = c.execute("SELECT * FROM batches WHERE id = ?", (bid,)).fetchone()
        return after, ok

    def active_batch_ids(self) -> list[str]:
        marks = ",".join("?" * len(ACTIVE_STATUSES))
        rows = self.conn.execute(
            f"SELECT id FROM batches WHERE status IN ({marks}) ORDER BY seq", ACTIVE_STATUSES
        ).fetchall()
        return [r["id"] for r in rows]

    def commit_chunk(
        self, bid: str, *, next_offset: int, out_bytes: int, err_bytes: int, completed: int,
        failed: int,
        ending: str | None = None,
    ) -> None:
        """Record the progress of one chunk (its lines are already in the partial files).
        ``ending="expired"`` marks a batch whose remaining lines are being expired."""
        with self.tx() as c:
            c.execute(
                "UPDATE batches SET next_offset = ?, out_bytes = ?, err_bytes = ?, completed = ?,"
                " failed = ?, ending = COALESCE(?, ending) WHERE id = ?",
                (next_offset, out_bytes, err_bytes, completed, failed, ending, bid),
            )

    def commit_lines(
        self, bid: str, *, next_offset: int, out_bytes: int, err_bytes: int, completed: int,
        failed: int, done_offsets: list[int], ending: str | None = None,
    ) -> None:
        """Record lines that finished in any order (their result lines are already in the
        partial files): every input line before ``next_offset`` is recorded, and so are the
        lines starting at ``done_offsets`` past it. One transaction."""
        with self.tx() as c:
            c.execute(
                "UPDATE batches SET next_offset = ?, out_bytes = ?, err_bytes = ?, completed = ?,"
                " failed = ?, ending = COALESCE(?, ending) WHERE id = ?",
                (next_offset, out_bytes, err_bytes, completed, failed, ending, bid),
            )
            c.execute(
                "DELETE FROM batch_done_lines WHERE batch_id = ? AND offset < ?", (bid, next_offset)
            )
            c.executemany(
                "INSERT OR IGNORE INTO batch_done_lines (batch_id, offset) VALUES (?, ?)",
                [(bid, o) for o in done_offsets if o >= next_offset],
            )

    def done_offsets(self, bid: str) -> set[int]:
        """Offsets of the lines recorded past the batch's ``next_offset``."""
        rows = self.conn.execute(
            "SELECT offset FROM batch_done_lines WHERE batch_id = ?", (bid,)
        ).fetchall()
        return {int(r["offset"]) for r in rows}

    def set_finalizing(self, bid: str) -> bool:
        """``in_progress → finalizing``; False if the batch was cancelled meanwhile."""
        with self.tx() as c:
            cur = c.execute(
                "UPDATE batches SET status = 'finalizing', finalizing_at = ?"
                " WHERE id = ? AND status = 'in_progress'",
                (_now(), bid),
            )
            return cur.rowcount == 1

    def finish_batch(self, bid: str, status: str, *, errors: dict[str, Any] | None = None) -> None:
        """Publish the output/error files and move the batch to its terminal ``status``
        (``completed``, ``cancelled``, ``expired``, or ``failed`` with ``errors`` when its
        input can no longer be read), in one transaction, so a crash leaves it either
        still running or fully done."""
        row = self.batch_row(bid)
        assert row is not None
        now = _now()
        stamp = {"completed": "completed_at", "cancelled": "cancelled_at", "expired": "expired_at",
                 "failed": "failed_at"}
        with self.tx() as c:
            ids: dict[str, str | None] = {"output": None, "errors": None}
            for kind, count, size in (
                ("output", row["completed"], row["out_bytes"]),
                ("errors", row["failed"], row["err_bytes"]),
            ):
                if count <= 0:
                    continue
                fid = _ids.file_id()
                ids[kind] = fid
                suffix = "output" if kind == "output" else "error"
                c.execute(
                    "INSERT INTO files (id, project, bytes, created_at, expires_at, filename,"
                    " purpose, is_error, path) VALUES (?, ?, ?, ?, ?, ?, 'batch_output', ?, ?)",
                    (fid, row["project"], size, now, now + self.file_retention,
                     f"{bid}_{suffix}.jsonl", int(kind == "errors"),
                     f"batches/{bid}/{kind}.jsonl"),
                )
            c.execute(
                f"UPDATE batches SET status = ?, {stamp[status]} = ?, output_file_id = ?,"
                " error_file_id = ?, errors = COALESCE(?, errors) WHERE id = ?",
                (status, now, ids["output"], ids["errors"],
                 None if errors is None else orjson.dumps(errors).decode(), bid),
            )
            c.execute("DELETE FROM batch_done_lines WHERE batch_id = ?", (bid,))
            deleted_input = c.execute(
                "SELECT path FROM files WHERE id = ? AND deleted_at IS NOT NULL",
                (row["input_file_id"],),
            ).fetchone()
            drop_input = deleted_input is not None and not self._input_in_use(
                c, row["input_file_id"]
            )
        if drop_input:
            drop_body(self.data_dir, deleted_input["path"])


def safe_rel(rel: str) -> bool:
    """Whether a recorded body path stays in the data directory's ``files/`` or
    ``batches/`` (paths come from the database, written by the store: still, never leave)."""
    parts = Path(rel).parts
    return len(parts) >= 2 and parts[0] in ("files", "batches") and ".." not in parts


def drop_body(data_dir: Path, rel: str) -> None:
    """Remove a stored body, given its path as recorded."""
    if safe_rel(rel):
        with contextlib.suppress(OSError):
            (data_dir / rel).unlink()


# ------------------------------------------------------------------------- objects
def file_object(row: sqlite3.Row) -> dict[str, Any]:
    """The API's File object for a stored row."""
    obj: dict[str, Any] = {
        "id": row["id"],
        "object": "file",
        "bytes": row["bytes"],
        "created_at": row["created_at"],
        "filename": row["filename"],
        "purpose": row["purpose"],
        "status": "processed",
        "expires_at": row["expires_at"],
    }
    if row["purpose"] == "batch_output":
        obj["is_error"] = bool(row["is_error"])
    return obj


def batch_object(row: sqlite3.Row) -> dict[str, Any]:
    """The API's Batch object for a stored row."""
    return {
        "id": row["id"],
        "object": "batch",
        "endpoint": row["endpoint"],
        "errors": None if row["errors"] is None else orjson.loads(row["errors"]),
        "input_file_id": row["input_file_id"],
        "completion_window": row["completion_window"],
        "status": row["status"],
        "output_file_id": row["output_file_id"],
        "error_file_id": row["error_file_id"],
        "created_at": row["created_at"],
        "in_progress_at": row["in_progress_at"],
        "expires_at": row["expires_at"],
        "finalizing_at": row["finalizing_at"],
        "completed_at": row["completed_at"],
        "failed_at": row["failed_at"],
        "expired_at": row["expired_at"],
        "cancelling_at": row["cancelling_at"],
        "cancelled_at": row["cancelled_at"],
        "request_counts": {
            "total": row["total"],
            "completed": row["completed"],
            "failed": row["failed"],
        },
        "metadata": orjson.loads(row["metadata"]),
    }
