"""One poll of a job: refresh its unfinished batches, collect the finished ones, and stop the
job when rows fail for an account-wide reason.

Example::

    poller = Poller(job_id="job_1", slots=slots, table=table, recorder=rec,
                    collector=collector, client=lambda: client, attached=False)
    poller.refresh()                   # no network call once everything is collected
    poller.stop_codes()                # {} unless the account is the problem
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ConflictError, JobNotFoundOnServiceError, NotFoundError
from . import checkpoints, messages
from .collect import ACCOUNT_CODES, Collector
from .recorder import NullRecorder
from .results import ResultsTable
from .slots import Slots

if TYPE_CHECKING:
    from .._client import Client
    from .._models import Batch

__all__ = ["Poller"]


class Poller:
    """Keeps a job's batches and results up to date with the service."""

    def __init__(
        self,
        *,
        job_id: str,
        slots: Slots,
        table: ResultsTable,
        recorder: NullRecorder,
        collector: Collector,
        client: Callable[[], Client],
        attached: bool,
    ) -> None:
        self.job_id = job_id
        self._slots, self._table, self._recorder = slots, table, recorder
        self._collector, self._client = collector, client
        self._attached = attached  # made from batch ids: rows in no batch are "not sent"
        self._stop_codes: dict[str, int] = {}

    def refresh(self) -> None:
        """Refresh every unfinished batch and collect the results of the finished ones. A
        job whose batches are all finished and collected makes no network call."""
        running = self._slots.running()
        changed = False
        for slot in running:
            assert slot.batch is not None
            changed |= self._recorder.note_batch(slot, self._retrieve(slot.batch.id))
        if changed:
            self._recorder.save()
        if running:
            checkpoints.checkpoint("mid_poll")
        for slot in self._slots:
            if slot.terminal and not slot.collected:
                account = self._collector.collect(slot)
                if account:
                    for c, n in account.items():
                        self._stop_codes[c] = self._stop_codes.get(c, 0) + n
                    self.cancel_running()  # the other batches would fail the same way
        if self._attached and len(self._slots) and self._slots.all_collected():
            self._collector.mark_unsent()

    def _retrieve(self, batch_id: str) -> Batch:
        client = self._client()
        try:
            return client.batches.retrieve(batch_id)
        except NotFoundError as exc:
            if not self._recorder.resumable:
                raise
            text = messages.not_found_on_service(
                self.job_id, self._recorder.where(), batch_id, client.base_url, exc.message
            )
            raise JobNotFoundOnServiceError(text) from None

    def cancel_running(self) -> None:
        """Cancel every batch still running (one that finished meanwhile is kept as is)."""
        batches = self._client().batches
        for slot in self._slots.running():
            assert slot.batch is not None
            try:
                self._recorder.note_batch(slot, batches.cancel(slot.batch.id))
            except ConflictError:  # it finished meanwhile: nothing to stop
                self._recorder.note_batch(slot, batches.retrieve(slot.batch.id))
        self._recorder.save()

    def stop_codes(self) -> dict[str, int]:
        """Account-wide codes among the rows' latest results (a successful retry clears)."""
        if not self._stop_codes:
            return {}
        return {c: n for c, n in self._table.error_codes().items() if c in ACCOUNT_CODES}

    def final_status(self, outcome: str, *, cancelled: bool) -> str:
        """The journal's word for a finished job."""
        if self.stop_codes():
            return "stopped"
        if cancelled:
            return "cancelled"
        return {"success": "completed", "partial": "partial"}.get(outcome, "failed")
