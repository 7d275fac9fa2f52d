"""Atomic file writes: a reader sees the old file or the whole new one, never part.

And the one OS file lock (:func:`try_lock`, :func:`wait_lock`), for the journal's per-job
locks and the server's data directory lock: released when the descriptor is closed or the
process dies, so a killed process never leaves a stale lock behind.

One implementation for every file the package writes that someone may read after a crash:
journal records and side files, downloaded result copies, ``client.files.download`` and the
``run`` command's output. A temporary file beside the target (``0600`` from its first byte,
by ``mkstemp``: it holds the user's data), ``fsync``, then ``os.replace``; the temporary
file is removed if anything fails.

Example::

    write_atomic(Path("job.json"), b"{...}")
    with atomic_path(Path("out.parquet")) as tmp:
        frame.to_parquet(tmp)           # any writer that takes a path
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "try_lock", "wait_lock", "write_atomic"]


@contextlib.contextmanager
def atomic_path(path: Path, *, private: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path``; when the block ends without an error, the file
    written there is synced and renamed to ``path``. ``private=False`` gives the file the
    usual permissions (``0666`` less the umask) instead of ``0600``, for output a user
    writes for others to read."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:  # the writer may have closed it without syncing
            os.fsync(f.fileno())
        if not private:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: Path, data: bytes | bytearray | memoryview | Iterable[bytes]) -> None:
    """Write ``data`` (bytes, or chunks as they arrive) to ``path`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if isinstance(data, bytes | bytearray | memoryview):
            f.write(data)
        else:
            for chunk in data:
                f.write(chunk)


def try_lock(fh: IO[Any]) -> bool:
    """Take the exclusive lock on the open file ``fh`` if it is free (``False`` when another
    process holds it)."""
    try:
        if sys.platform == "win32":  # pragma: no cover
            import msvcrt

            fh.seek(0)
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def wait_lock(fh: IO[Any]) -> None:
    """Block until the lock on ``fh`` is ours."""
    if sys.platform == "win32":  # pragma: no cover - msvcrt has no unbounded wait
        while not try_lock(fh):
            time.sleep(0.2)
        return
    import fcntl

    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
