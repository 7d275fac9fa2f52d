"""Reading a finished batch into the job's results: its output and error files, and a row
for every line the batch never answered.

Files are streamed into the :class:`~zgpu_pandas.core.results.ResultsTable` (never held
whole); with a journal, each file is first copied into it (renamed into place only when
complete), so a finished job is rebuilt from disk with no network call.

Example::

    collector = Collector(table, lambda: client, recorder)
    account_codes = collector.collect(slot)     # {} unless the account is the problem
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import orjson
import pyarrow as pa

from .._fs import write_atomic
from . import checkpoints
from .recorder import NullRecorder
from .results import ResultsTable
from .slots import Slot

if TYPE_CHECKING:
    from .._client import Client
    from .._models import Batch

__all__ = ["ACCOUNT_CODES", "TRANSIENT_CODES", "Collector", "custom_ids_in"]

#: Error codes worth resubmitting as they are (the service's recovery guidance).
TRANSIENT_CODES = ("internal_error", "rate_limit_exceeded", "batch_expired")
#: Error codes that say the account, not the row, is the problem: resubmitting cannot help.
ACCOUNT_CODES = ("insufficient_quota", "authentication_error")


class Collector:
    """Reads finished batches into ``table``."""

    def __init__(
        self, table: ResultsTable, client: Callable[[], Client], recorder: NullRecorder
    ) -> None:
        self.table = table
        self._client = client
        self._recorder = recorder

    def collect(self, slot: Slot) -> dict[str, int]:
        """Read the output and error files of the slot's finished batch; every row the batch
        carried and did not answer gets an error saying why. Returns the rows per
        account-wide error code found (the job stops on those)."""
        b = slot.batch
        assert b is not None
        mark = self.table.mark()
        for file_id, kind in ((b.output_file_id, "output"), (b.error_file_id, "error")):
            if file_id:
                self._feed(b, file_id, kind)
        self._note_repeated(b, mark)
        if slot.positions is None:
            slot.positions = self.input_positions(b)
        missing = np.setdiff1d(slot.positions, self.table.positions_since(mark))
        if len(missing):
            code, message = _unanswered(b)
            self.table.add_errors(missing, code=code, message=message)
        slot.collected = True
        self._recorder.note_downloaded(slot)
        return {
            c: n for c, n in self.table.error_codes_since(mark).items() if c in ACCOUNT_CODES
        }

    def _feed(self, b: Batch, file_id: str, kind: str) -> None:
        source = f"{kind} file {file_id} of {b.id}"
        stream = checkpoints.killable(self._client().files.iter_bytes(file_id))
        path = self._recorder.result_copy(b.id, kind)
        if path is None:
            self.table.add_chunks(stream, source=source)
            return
        if not path.exists():  # a copy is renamed into place only when complete
            write_atomic(path, stream)
        with path.open("rb") as fh:
            self.table.add_file(fh, source=source)

    def _note_repeated(self, b: Batch, mark: int) -> None:
        """A row answered twice by one batch (its custom_id twice in the output and error
        files) keeps the last answer, and is said: it may mean a request ran, and was
        billed, twice."""
        again = self.table.repeated_since(mark)
        if len(again):
            shown = ", ".join(str(int(p)) for p in again[:5]) + (" ..." if len(again) > 5 else "")
            self.table.problems.append(
                f"batch {b.id} answered {len(again)} row(s) more than once (same custom_id "
                f"twice in its output and error files; row positions {shown}): the last "
                "answer was kept. A request may have run, and been billed, twice: ask the "
                "service about this batch."
            )

    def input_positions(self, b: Batch) -> np.ndarray:
        """Row positions a batch carries, read from its input file (attached jobs only)."""
        ids = custom_ids_in(self._client(), b.input_file_id)
        pos = self.table.positions_of(pa.array(ids, pa.string())) if ids else np.empty(0)
        return np.asarray(pos[pos >= 0], dtype=np.int64)

    def mark_unsent(self) -> None:
        """For an attached job: rows in none of its batches are ``skipped``/``not_sent``."""
        left = self.table.pending()
        if len(left):
            self.table.add_skipped(
                left,
                ["not_sent"] * len(left),
                ["this row is in none of the job's batches"] * len(left),
            )


def custom_ids_in(client: Client, file_id: str | None) -> list[str]:
    """The custom_ids of an input file's lines, in order (lines that are not JSON objects
    with a text custom_id are passed over)."""
    out: list[str] = []
    if not file_id:
        return out
    for raw in client.files.iter_lines(file_id):
        try:
            cid = orjson.loads(raw).get("custom_id")
        except (orjson.JSONDecodeError, AttributeError):
            continue
        if isinstance(cid, str):
            out.append(cid)
    return out


def _unanswered(b: Batch) -> tuple[str, str]:
    """The code and message for a row its finished batch did not answer."""
    if b.status == "failed":
        first = b.errors[0] if b.errors else None
        code = (first.code if first else None) or "batch_failed"
        return code, (first.message if first else None) or f"batch {b.id} failed"
    if b.status in ("cancelled", "expired"):
        return f"batch_{b.status}", f"batch {b.id} was {b.status} before this row ran"
    return "missing_result", f"batch {b.id} ended {b.status} with no result for this row"
