"""A job's status as the user sees it: counts, outcome, elapsed time and time left.

Example::

    clock = StatusClock()
    st = clock.snapshot(job_id="job_1", model="m", rows=10, slots=slots, table=table,
                        layout=None, submitted=True, resumed=False)
    st.outcome, st.eta
"""

from __future__ import annotations

import time

from .._progress import JobStatus
from .layout import JobLayout
from .results import ResultsTable
from .slots import Slots

__all__ = ["StatusClock"]


class StatusClock:
    """Turns a job's state into :class:`~zgpu_pandas._progress.JobStatus` snapshots, keeping
    what the time-left estimate needs between them (the rate since the last restart)."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._rate_base: tuple[float, int] | None = None

    def restart_rate(self) -> None:
        """A new round began: the rate so far says nothing of it."""
        self._rate_base = None

    def snapshot(
        self,
        *,
        job_id: str,
        model: str,
        rows: int,
        slots: Slots,
        table: ResultsTable,
        layout: JobLayout | None,
        submitted: bool,
        resumed: bool,
    ) -> JobStatus:
        states = tuple(s.state() for s in slots)
        counts = table.counts()
        sent = sum(s.lines for s in states)
        skipped = len(layout.skipped) if layout is not None else counts["skipped"]
        all_in = submitted and slots.all_collected()
        if not submitted:
            outcome = "submitting"
        elif not all_in:
            outcome = "running"
        elif sent == 0 or counts["ok"] == 0:
            outcome = "failure"
        elif counts["error"] == 0 and counts["pending"] == 0:
            outcome = "success"
        else:
            outcome = "partial"
        done_lines = sum(s.completed + s.failed for s in states)
        return JobStatus(
            job_id=job_id,
            model=model,
            rows=rows,
            sent=sent,
            skipped=skipped,
            batches=states,
            outcome=outcome,  # type: ignore[arg-type]
            elapsed=self._elapsed(slots, resumed),
            eta=None if all_in else self._eta(done_lines, sent),
            answered=counts["ok"],
            errored=counts["error"],
        )

    def _elapsed(self, slots: Slots, resumed: bool) -> float:
        created = [s.batch.created_at for s in slots if s.batch and s.batch.created_at]
        if created and resumed:
            # attached or resumed: count from the service's clock
            return max(time.time() - min(created), 0.0)
        return time.monotonic() - self._started

    def _eta(self, done: int, total: int) -> float | None:
        now = time.monotonic()
        if self._rate_base is None or done < self._rate_base[1]:
            self._rate_base = (now, done)
            return None
        t0, d0 = self._rate_base
        if done <= d0 or now <= t0:
            return None
        return max(total - done, 0) / ((done - d0) / (now - t0))
