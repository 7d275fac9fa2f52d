"""A test hook: end the process at an exact point of a job, as a SIGKILL would.

The reliability tests set ``$ZGPU_TEST_KILL_AT`` to one of :data:`CHECKPOINTS` and check
that re-running the call resumes without paying twice. The job's modules call
``checkpoints.checkpoint(stage)`` through this module (not a copied name), so a test can also
replace :func:`checkpoint` in a child process. Nothing else depends on it.

Example::

    ZGPU_TEST_KILL_AT=after_create python job.py    # dies right after the batch is created
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator

__all__ = ["CHECKPOINTS", "KILL_AT_ENV", "checkpoint", "killable"]

#: Environment variable read by :func:`checkpoint` (see docs/resume.md).
KILL_AT_ENV = "ZGPU_TEST_KILL_AT"
CHECKPOINTS = ("before_upload", "after_upload", "after_create", "mid_poll", "mid_download")


def checkpoint(stage: str) -> None:
    """End the process at once (``os._exit(137)``) when ``$ZGPU_TEST_KILL_AT`` is ``stage``;
    the variable is read at call time."""
    if os.environ.get(KILL_AT_ENV) == stage:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(137)


def killable(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """A download stream with the ``mid_download`` checkpoint after its first chunk."""
    for k, chunk in enumerate(chunks):
        yield chunk
        if k == 0:
            checkpoint("mid_download")
