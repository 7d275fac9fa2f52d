"""Retry rounds: which rows a new round resubmits, and the request lines of every round.

Round 0 sends the job's request lines. A retry round resubmits the rows whose latest result
is an error with one of the wanted codes, as new batches of the same job; their answers
replace the failures. Rows that shared another row's request follow their source row. A
resumed job rebuilds a round's lines from the rows its journal recorded (or, for a job
attached without its frame, from the input files the rows were first sent in).

Example::

    rounds = Rounds(job_id=..., n_rows=..., requests=reqs, ...)
    rows = rounds.rows_with_codes({"internal_error"})
    rounds.add(rows)                    # new slots, recorded before anything is sent
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ..errors import RequestLinesUnavailableError
from .layout import JobLayout
from .recorder import NullRecorder
from .requests import RequestSet
from .results import ERROR, ResultsTable
from .slots import Slots

if TYPE_CHECKING:
    from .._client import Client

__all__ = ["Rounds"]


class Rounds:
    """The request lines of each round of one job."""

    def __init__(
        self,
        *,
        job_id: str,
        n_rows: int,
        requests: RequestSet | None,
        settings: Mapping[str, Any],
        table: ResultsTable,
        slots: Slots,
        recorder: NullRecorder,
        client: Callable[[], Client],
        layout: JobLayout | None,
    ) -> None:
        self.job_id = job_id
        self.n_rows = n_rows
        self.requests = requests
        self.settings = dict(settings)
        self._table = table
        self._slots = slots
        self._recorder = recorder
        self._client = client
        self._layout = layout
        self._sources: dict[int, RequestSet] = {0: requests} if requests is not None else {}

    def source(self, round_: int) -> RequestSet:
        """The request lines of one round (rebuilt if the job was resumed)."""
        src = self._sources.get(round_)
        if src is None:
            src = self._rebuild(round_)
            self._sources[round_] = src
        return src

    def rows_with_codes(self, wanted: set[str]) -> np.ndarray:
        """Rows (that carry a request line) whose latest result is an error in ``wanted``."""
        codes = self._table.columns()["error_code"].to_numpy(zero_copy_only=False)
        bad = (self._table.status == ERROR) & np.isin(codes.astype(object), list(wanted))
        rows = np.flatnonzero(bad)
        if self._layout is not None and len(self._layout.dup_pos):
            rows = rows[~np.isin(rows, self._layout.dup_pos)]  # they follow their source row
        carried = self._slots.carried()
        if carried is not None:
            rows = rows[np.isin(rows, carried)]
        return rows.astype(np.int64)

    def add(self, rows: np.ndarray) -> None:
        """A new round for ``rows``: its lines, written down, and its slots."""
        round_ = self._slots.rounds + 1
        src = self._lines_of(rows)
        self._sources[round_] = src
        recs = self._recorder.add_round(round_, src)
        self._slots.add_round(round_, src, recs)

    def _lines_of(self, rows: np.ndarray) -> RequestSet:
        """The request lines of some rows: from the request set, else from the input files
        they were first sent in."""
        if self.requests is not None:
            try:
                return self.requests.subset(rows)
            except RequestLinesUnavailableError:
                pass  # freed once sent, and the rows no longer give them: read them back
        want = set(rows.tolist())
        lines: list[bytes] = []
        pos: list[int] = []
        for slot in self._slots:
            if slot.positions is None or not np.isin(slot.positions, rows).any():
                continue
            file_id = slot.file_id or (slot.batch.input_file_id if slot.batch else None)
            if not file_id:
                continue
            for raw in self._client().files.iter_lines(file_id):
                p = self._table.position_of(orjson.loads(raw).get("custom_id"))
                if p in want:
                    want.discard(p)
                    lines.append(raw)
                    pos.append(p)
        if want:
            raise RequestLinesUnavailableError(
                f"Job {self.job_id}: the request lines of {len(want)} row(s) could not be read "
                f"back from the service (their input files are gone), so they cannot be "
                f"resubmitted from here; run the call again from the frame instead."
            )
        return RequestSet.from_lines(self.n_rows, lines, pos, settings=self.settings)

    def _rebuild(self, round_: int) -> RequestSet:
        """The lines of a recorded round (the job was resumed)."""
        if round_ == 0:
            raise RequestLinesUnavailableError(
                f"Job {self.job_id} has chunks that were never uploaded, and its request "
                f"lines are not known here: run the same call from the frame to submit them."
            )
        return self._lines_of(self._recorder.round_rows(round_))
