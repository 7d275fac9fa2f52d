"""Retention of a data directory: expired files go, and so does every byte nothing refers to.

:func:`sweep` is one pass; :class:`Sweeper` runs it every ``interval`` seconds in a thread
of the server (``zgpu-pandas serve`` does, every hour by default; ``LocalServer`` does not
unless ``sweep_interval`` is given, so tests see no file vanish under them), and
``zgpu-pandas serve --gc`` runs one pass on a stopped server's directory and reports.

What one pass removes:

- files past their ``expires_at`` (30 days after creation by default): their record and
  their bytes. An input file a running batch still reads is only hidden (as by a delete);
  its bytes and record go at a later pass, once that batch has ended;
- the bytes of deleted files that are still on disk (a running batch held them, or an
  older server version kept the bodies of deleted output files);
- bodies no record refers to: an upload interrupted between its move into place and its
  record, and the partial files of ended batches that published no file (a cancelled
  batch with no finished line). Only when older than ``grace`` seconds, so a pass never
  races an upload or a batch being created.

Example::

    store = Store(Path("zgpu-data"))
    store.open()
    print(sweep(store).line())   # removed 3 expired file(s), freed 12.0 MB
    store.close()
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .store import ACTIVE_STATUSES, Store, safe_rel

__all__ = ["SweepReport", "Sweeper", "sweep"]

log = logging.getLogger("zgpu_pandas.server")

#: how old an unreferenced body must be before a pass removes it (an upload moves its body
#: into place a moment before recording it; a batch's folder exists a moment before its row)
ORPHAN_GRACE_SECONDS = 3600.0


@dataclass
class SweepReport:
    """What one pass removed."""

    expired_files: int = 0
    bodies_removed: int = 0
    bytes_freed: int = 0

    def line(self) -> str:
        """One human line, for logs and ``serve --gc``."""
        return (
            f"removed {self.expired_files} expired file(s) and {self.bodies_removed} "
            f"stored body(ies), freed {_human(self.bytes_freed)}"
        )


def _human(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"  # pragma: no cover - the loop always returns


def sweep(
    store: Store, *, now: float | None = None, grace: float = ORPHAN_GRACE_SECONDS
) -> SweepReport:
    """One retention pass over an open ``store`` (see the module docstring); safe while
    the server runs. ``now`` stands for the current time (tests pass a later one)."""
    t = time.time() if now is None else now
    report = SweepReport()
    doomed = _forget_expired(store, int(t), report)
    doomed |= _deleted_bodies(store)
    doomed |= _orphans(store, t - grace)
    for rel in sorted(doomed):
        path = store.path_of(rel)
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError:
            continue  # gone already (a delete got there first)
        report.bodies_removed += 1
        report.bytes_freed += size
    _drop_empty_batch_dirs(store)
    return report


def _forget_expired(store: Store, now: int, report: SweepReport) -> set[str]:
    """Remove the records of expired files nothing reads; hide those a running batch reads.
    Returns the bodies to remove. One transaction, so a batch created meanwhile either sees
    the file (and keeps it alive) or finds it gone (and is refused)."""
    marks = ",".join("?" * len(ACTIVE_STATUSES))
    doomed: set[str] = set()
    with store.tx() as c:
        rows = c.execute(
            "SELECT id, path, deleted_at FROM files WHERE expires_at IS NOT NULL"
            " AND expires_at <= ?", (now,),
        ).fetchall()
        for row in rows:
            in_use = c.execute(
                f"SELECT 1 FROM batches WHERE input_file_id = ? AND status IN ({marks}) LIMIT 1",
                (row["id"], *ACTIVE_STATUSES),
            ).fetchone()
            if in_use is not None:
                if row["deleted_at"] is None:
                    c.execute("UPDATE files SET deleted_at = ? WHERE id = ?", (now, row["id"]))
                    report.expired_files += 1
                continue
            c.execute("DELETE FROM files WHERE id = ?", (row["id"],))
            if row["deleted_at"] is None:
                report.expired_files += 1
            if safe_rel(row["path"]):
                doomed.add(row["path"])
    return doomed


def _deleted_bodies(store: Store) -> set[str]:
    """Bodies of deleted files that no running batch reads and that are still on disk."""
    marks = ",".join("?" * len(ACTIVE_STATUSES))
    rows = store.conn.execute(
        "SELECT path FROM files f WHERE deleted_at IS NOT NULL AND NOT EXISTS ("
        f" SELECT 1 FROM batches b WHERE b.input_file_id = f.id AND b.status IN ({marks}))",
        ACTIVE_STATUSES,
    ).fetchall()
    return {r["path"] for r in rows if safe_rel(r["path"]) and store.path_of(r["path"]).exists()}


def _orphans(store: Store, older_than: float) -> set[str]:
    """Bodies on disk that no file record refers to, in ``files/`` and in the folders of
    batches that ended (a running batch's partial files are its own)."""
    c = store.conn
    c.execute("BEGIN")  # one snapshot: a batch's status and its published files agree
    try:
        known = {r["path"] for r in c.execute("SELECT path FROM files").fetchall()}
        marks = ",".join("?" * len(ACTIVE_STATUSES))
        active = {
            r["id"] for r in c.execute(
                f"SELECT id FROM batches WHERE status IN ({marks})", ACTIVE_STATUSES
            ).fetchall()
        }
        inputs = {r["input_path"] for r in c.execute(
            f"SELECT input_path FROM batches WHERE status IN ({marks})", ACTIVE_STATUSES
        ).fetchall()}
    finally:
        c.execute("COMMIT")
    found: set[str] = set()
    for top in (store.files_dir, store.batches_dir):
        for dirpath, _dirs, names in os.walk(top):
            rel_dir = Path(dirpath).relative_to(store.data_dir)
            if rel_dir.parts[:1] == ("batches",) and len(rel_dir.parts) >= 2 \
                    and rel_dir.parts[1] in active:
                continue
            for name in names:
                rel = (rel_dir / name).as_posix()
                if rel in known or rel in inputs:
                    continue
                with contextlib.suppress(OSError):
                    if os.stat(os.path.join(dirpath, name)).st_mtime < older_than:
                        found.add(rel)
    return found


def _drop_empty_batch_dirs(store: Store) -> None:
    with contextlib.suppress(OSError):
        for d in store.batches_dir.iterdir():
            with contextlib.suppress(OSError):
                if d.is_dir() and not any(d.iterdir()) and _ended_or_unknown(store, d.name):
                    d.rmdir()


def _ended_or_unknown(store: Store, bid: str) -> bool:
    row = store.batch_row(bid)
    if row is None:
        # a folder made a moment before its batch's row: keep it while it is young
        return _age(store.batches_dir / bid) > ORPHAN_GRACE_SECONDS
    return row["status"] not in ACTIVE_STATUSES


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


class Sweeper:
    """Runs :func:`sweep` every ``interval`` seconds in a daemon thread until stopped."""

    def __init__(self, store: Store, *, interval: float) -> None:
        if not interval > 0:
            raise ValueError(f"sweep interval must be > 0 seconds, got {interval!r}")
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="zgpu-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                report = sweep(self.store)
            except Exception:  # a failed pass must not end the thread: the next one retries
                log.exception("retention sweep failed")
                continue
            if report.bodies_removed or report.expired_files:
                log.info("retention sweep: %s", report.line())
