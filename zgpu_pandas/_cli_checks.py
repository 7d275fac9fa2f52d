"""The command line's checks of its files, made before anything is read, uploaded or paid for.

``zgpu-pandas run`` reads one file and writes another once the job is done. A mistake in
either (a missing input, an output name whose format cannot be told, a folder that cannot be
written) is found here, as one :class:`~zgpu_pandas.errors.OptionError` line, so the job never
runs only to fail at the very end.

Example::

    fmt = output_format(Path("tagged.parquet"))   # "parquet"; raises OptionError if unusable
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from .errors import OptionError

__all__ = ["FORMATS", "format_of", "input_format", "output_format"]

FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def format_of(path: Path, *, what: str = "file") -> str:
    """``csv``, ``parquet`` or ``jsonl`` from the file name's extension."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        got = f"{path.suffix!r}" if path.suffix else "no extension"
        raise OptionError(
            f"cannot tell the format of the {what} {str(path)!r} ({got}): use a name ending in "
            ".csv, .parquet or .jsonl"
        )
    return fmt


def input_format(path: Path) -> str:
    """The input's format, once it is known to be a readable file."""
    if not path.exists():
        raise OptionError(f"input file {str(path)!r} does not exist")
    if path.is_dir():
        raise OptionError(f"input {str(path)!r} is a folder; give a .csv, .parquet or .jsonl file")
    if not os.access(path, os.R_OK):
        raise OptionError(f"input file {str(path)!r} cannot be read (permission denied)")
    return format_of(path, what="input file")


def output_format(path: Path) -> str:
    """The output's format, once a file can be written at ``path``.

    Probed by creating (and removing) a temporary file in the nearest folder that exists:
    permissions alone do not tell (``/proc`` looks writable to root; a read-only mount
    passes ``os.access``). Missing folders are not created here, only when writing."""
    if path.is_dir():
        raise OptionError(f"output {str(path)!r} is a folder; give a file name, e.g. out.csv")
    fmt = format_of(path, what="output file")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise OptionError(
            f"cannot write the output {str(path)!r}: {str(folder)!r} is a file, not a folder"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".zgpu-probe-", dir=folder)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            reason += "; choose another folder with -o"
        raise OptionError(f"cannot write the output {str(path)!r} in {str(folder)!r}: {reason}") from None
    os.close(fd)
    os.unlink(probe)
    return fmt
