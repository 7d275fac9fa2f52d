"""Atomic file writes: a reader sees the old file or the whole new one, never part.

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
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_atomic"]


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
