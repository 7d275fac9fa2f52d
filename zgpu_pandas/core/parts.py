"""The parts a job is made of, put together for a new, resumed or attached job.

:func:`assemble` builds them from what the job is given: the request lines (a new job), a
journal record (a resumed one), or batches (one attached by their ids). Kept apart from the
job's lifecycle so that the constructor reads in one screen.

Example::

    parts = assemble(job_id="job_1", n_rows=3, client=lambda: client, requests=reqs)
    parts.slots.todo()                  # the chunks to submit
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._journal import JobRecord, Journal
from .._models import Batch
from .collect import Collector
from .layout import JobLayout
from .polling import Poller
from .recorder import JournalRecorder, NullRecorder
from .requests import RequestSet
from .results import ResultsTable, answer_extras
from .reuse import recorded_lines
from .rounds import Rounds
from .slots import Slots
from .status import StatusClock
from .submit import Submitter

if TYPE_CHECKING:
    from .._client import Client

__all__ = ["JobParts", "assemble"]


@dataclass
class JobParts:
    """A job's state and the objects that work on it (see :mod:`zgpu_pandas.core.job`)."""

    table: ResultsTable
    layout: JobLayout | None
    recorder: NullRecorder
    slots: Slots
    rounds: Rounds
    submitter: Submitter
    poller: Poller
    clock: StatusClock


def assemble(
    *,
    job_id: str,
    n_rows: int,
    client: Callable[[], Client],
    requests: RequestSet | None = None,
    settings: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    layout: JobLayout | None = None,
    journal: Journal | None = None,
    record: JobRecord | None = None,
    custom_ids: Sequence[str] | None = None,
    batches: Sequence[Batch] = (),
    known: Sequence[bytes] = (),
) -> JobParts:
    """The parts of a job over ``n_rows`` rows (see the module docstring)."""
    table = ResultsTable(n_rows, custom_ids=custom_ids)
    asked = settings or (record.settings if record else None) or (
        requests.settings if requests else {}
    )
    table.extras = answer_extras(asked.get("chat_params"))
    layout = _take_layout(table, requests, layout)
    # answers bought earlier (online mode) for rows the job does not send
    reused = recorded_lines(journal, record) if journal and record else known
    table.add_lines(reused, source="answers received earlier")
    recorder = (
        JournalRecorder(journal, job_id, record, reused=known)
        if journal
        else NullRecorder(job_id)
    )
    slots = _first_slots(table, layout, requests, record, journal, batches)
    rounds = Rounds(
        job_id=job_id,
        n_rows=n_rows,
        requests=requests,
        settings=settings or (requests.settings if requests else {}),
        table=table,
        slots=slots,
        recorder=recorder,
        client=client,
        layout=layout,
    )
    submitter = Submitter(
        job_id=job_id,
        metadata=metadata or {},
        client=client,
        recorder=recorder,
        rounds=rounds,
        slots=slots,
        created_at=time.time(),
    )
    poller = Poller(
        job_id=job_id,
        slots=slots,
        table=table,
        recorder=recorder,
        collector=Collector(table, client, recorder),
        client=client,
        attached=layout is None,
    )
    return JobParts(table, layout, recorder, slots, rounds, submitter, poller, StatusClock())


def _take_layout(
    table: ResultsTable, requests: RequestSet | None, layout: JobLayout | None
) -> JobLayout | None:
    """Which rows were skipped or share a line: from the request set, or as recorded."""
    if requests is not None:
        if requests.n_rows != table.n_rows:
            raise ValueError("the request set was built from a frame of another length")
        layout = JobLayout.of(requests)
    if layout is not None:
        if layout.n_rows != table.n_rows:
            raise ValueError("the job's layout is for a frame of another length")
        table.set_duplicates(layout.dup_pos, layout.dup_src)
        table.add_skipped(layout.skipped, layout.skipped_codes, layout.skipped_reasons)
    return layout


def _first_slots(
    table: ResultsTable,
    layout: JobLayout | None,
    requests: RequestSet | None,
    record: JobRecord | None,
    journal: Journal | None,
    batches: Sequence[Batch],
) -> Slots:
    """A new job's chunks, a resumed job's slots as its record has them, or the batches of
    a job attached by their ids."""
    if batches:
        every_row = table.n_rows if table.keyed_by_custom_id else None
        return Slots.of_batches(batches, every_row=every_row)
    if record is None or journal is None:
        return Slots.of(requests) if requests is not None else Slots()
    assert layout is not None
    slots = Slots.from_record(record, journal, layout.sent)
    round0 = [s.lines for s in slots if s.round == 0]
    if requests is not None and round0 != [c.lines for c in requests.chunks]:
        raise journal.corrupt(record.job_id, "job.json", "its chunks do not match the request lines")
    return slots
