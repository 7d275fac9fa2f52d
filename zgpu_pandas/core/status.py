"""A job's status as the user sees it: counts, outcome, elapsed time and time left.

Example::

    clock = StatusClock()
    st = clock.snapshot(job_id="job_1", model="m", rows=10, slots=slots, table=table,
                        layout=None, submitted=True, resumed=False)
    st.outcome, st.eta
"""

from __future__ import annotations

import time
from dataclasses import replace

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
        # each batch with its round: the counts and the time left are about the latest one
        states = tuple(replace(s.state(), round=s.round) for s in slots)
        round_ = max((b.round for b in states), default=0)
        counts = table.counts()
        if layout is not None:
            # rows, one unit throughout: rows sharing another row's request count as sent
            skipped = len(layout.skipped)
            sent = layout.n_rows - skipped
            requests: int | None = len(layout.sent)
        else:  # attached by batch ids: one line per row, as far as is known
            skipped = counts["skipped"]
            sent = sum(b.lines for b in states if b.round == 0)
            requests = None
        all_in = submitted and slots.all_collected()
        # every batch made (the last one a moment ago) is running, even before the job
        # marks itself submitted: a display frozen then says so, not "Submitting"
        if not submitted and any(b.id is None for b in states):
            outcome = "submitting"
        elif not all_in:
            outcome = "running"
        elif sent == 0 or counts["ok"] == 0:
            outcome = "failure"
        elif counts["error"] == 0 and counts["pending"] == 0:
            outcome = "success"
        else:
            outcome = "partial"
        current = [b for b in states if b.round == round_]
        done_lines = sum(b.completed + b.failed for b in current)
        return JobStatus(
            job_id=job_id,
            model=model,
            rows=rows,
            sent=sent,
            skipped=skipped,
            batches=states,
            outcome=outcome,  # type: ignore[arg-type]
            elapsed=self._elapsed(slots, resumed),
            eta=None if all_in else self._eta(done_lines, sum(b.lines for b in current)),
            answered=counts["ok"],
            errored=counts["error"],
            requests=requests if requests != sent else None,
            round=round_,
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
