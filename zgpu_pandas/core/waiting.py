"""Polling a job until it is done, riding out a service that cannot be reached for a while.

Each poll already retried on its own; a failed one does not end the wait: polls back off for
the outage grace (see :class:`~zgpu_pandas._retry.Outage`) before the wait gives up. A
``deadline`` bounds the whole wait. Nothing here cancels anything.

Example::

    st = poll_until_done(job.status, base=0.2, grace=30.0, deadline=None,
                         on_status=show, unreachable=make_error, timed_out=make_timeout)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .._progress import JobStatus
from .._retry import Outage
from ..errors import APIConnectionError, InternalServerError, RateLimitError

__all__ = ["poll_until_done"]

logger = logging.getLogger("zgpu_pandas.job")

#: what a poll raises when the service could not be reached (after its own retries)
UNREACHABLE = (APIConnectionError, RateLimitError, InternalServerError)


def poll_until_done(
    poll: Callable[[], JobStatus],
    *,
    base: float,
    grace: float,
    deadline: float | None,
    on_status: Callable[[JobStatus], None],
    unreachable: Callable[[Exception, float], Exception],
    timed_out: Callable[[JobStatus | None], Exception],
    name: str = "job",
) -> JobStatus:
    """Call ``poll`` every ``base`` seconds until it says done; returns that status.

    ``on_status`` sees every status. An outage longer than ``grace`` raises
    ``unreachable(last_error, seconds_gone)``; passing ``deadline`` (a ``time.monotonic()``
    value) raises ``timed_out(last_status)``."""
    outage = Outage(grace=grace, base=base)
    st: JobStatus | None = None
    while True:
        try:
            st = poll()
        except UNREACHABLE as exc:
            delay = outage.failed()
            if delay is None or (deadline is not None and time.monotonic() >= deadline):
                raise unreachable(exc, outage.gone) from exc
            logger.warning(
                "%s: polling failed (%s); the batches keep running, still waiting (next poll "
                "in %.1f s)",
                name,
                exc,
                delay,
            )
        else:
            outage.ok()
            on_status(st)
            if st.done:
                return st
            delay = base
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise timed_out(st)
            delay = min(delay, left)
        time.sleep(delay)
