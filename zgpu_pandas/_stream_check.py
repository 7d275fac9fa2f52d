"""The whole input checked before a streaming job uploads anything (:mod:`._stream_run`).

A streaming job sends its input part by part, so a mistake found while building part 7's
requests would stop the run after parts 0-6 were uploaded and paid for. :func:`check_parts`
therefore reads every part once before the first upload and builds its requests with the
core (the very rules the run applies: empty prompts per ``missing``, text that is not valid
Unicode, lines over 1 MB, template fields, result-column clashes), keeping only counts and
the estimate's sums. The first bad part stops the check with the core's own message, its
rows named by file and row number (``reviews/b.csv row 17``: data rows counted from 1, a
CSV's header not counted) instead of a position inside a part. ``max_cost`` is compared with
the estimate of the whole input.

Memory stays one part (its frame and its request lines), as in the run itself. The price is
one more read of the input and one more request build per part: ``bench/bench_stream.py
--no-check`` measures it (``bench/README.md``).

Example::

    checked = check_parts(located_parts, spec)   # raises naming e.g. "in/b.csv row 17"
    checked.rows, checked.parts                   # what the progress bar counts
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .errors import OversizeRowsError, ZgpuError

if TYPE_CHECKING:
    import pyarrow as pa

    from ._stream_read import Span
    from .core.estimate import ChatEstimate
    from .core.spec import ChatSpec

__all__ = ["Checked", "check_budget", "check_parts", "locate"]

# how the core names a row of a frame with the default index (frames/_pandas_rows.py)
_ROW = re.compile(r"row (\d+) \(position (\d+)\)")


@dataclasses.dataclass
class Checked:
    """What the check found: rows and parts, and the estimate of the whole input (the sum of
    every part's; ``None`` for an input without rows)."""

    rows: int = 0
    parts: int = 0
    estimate: ChatEstimate | None = None

    def add(self, rows: int, est: ChatEstimate) -> None:
        """One more part: its rows and its estimate (the rows over the model's context are
        warned about by the part's job, not kept here: memory stays flat)."""
        from .core.estimate import sum_estimates

        est = dataclasses.replace(est, rows_over_context=())
        self.rows += rows
        self.parts += 1
        self.estimate = est if self.estimate is None else sum_estimates([self.estimate, est])

    def to_json(self) -> dict[str, Any]:
        est = None if self.estimate is None else dataclasses.asdict(self.estimate)
        return {"rows": self.rows, "parts": self.parts, "estimate": est}

    @classmethod
    def from_json(cls, data: Any) -> Checked | None:
        """The record a manifest holds, or ``None`` when it holds none (or a broken one)."""
        from .core.estimate import ChatEstimate

        if not isinstance(data, dict):
            return None
        try:
            raw = data["estimate"]
            est = None if raw is None else ChatEstimate(**{**raw, "rows_over_context": ()})
            return cls(rows=int(data["rows"]), parts=int(data["parts"]), estimate=est)
        except (KeyError, TypeError, ValueError):
            return None


def where(spans: list[Span], position: int) -> str:
    """The file and row number (from 1) of a part's row at ``position``."""
    for path, first, n in spans:
        if position < n:
            return f"{path} row {first + position + 1}"
        position -= n
    return f"position {position}"  # not reached: the spans cover the part


def locate(exc: ZgpuError, spans: list[Span]) -> ZgpuError:
    """``exc`` with each row named by file and row number instead of its place in a part;
    an error about no row in particular (a missing column) names the part's files."""
    text = str(exc)
    named = _ROW.sub(lambda m: where(spans, int(m.group(2))), text)
    if named == text:
        first, last = spans[0], spans[-1]
        start = f"{first[0]} row {first[1] + 1}"
        end = f"{last[0]} row {last[1] + last[2]}"
        named = f"in the rows from {start} to {end}: {text}"
    exc.args = (named, *exc.args[1:])
    rows = getattr(exc, "rows", None)
    if isinstance(exc, OversizeRowsError) and rows is not None and "position" in rows:
        rows["label"] = [where(spans, int(p)) for p in rows["position"]]
    return exc


def check_parts(
    parts: Iterable[tuple[pa.Table, list[Span]]],
    spec: ChatSpec,
    *,
    advance: Callable[[int], None] | None = None,
) -> Checked:
    """Build every part's requests (nothing is sent) and sum their estimates; the first
    mistake raised with its rows located (:func:`locate`). ``advance(rows)`` is told of each
    part checked (a progress bar)."""
    from ._stream_run import _release, _to_pandas
    from .core.estimate import estimate_requests
    from .core.run import build

    checked = Checked()
    for table, spans in parts:
        if not checked.parts:
            # no rows yet: a mistake in the options or the columns is no row's, said as it is
            build(_to_pandas(table.slice(0, 0)), spec)
        frame = _to_pandas(table)
        try:
            requests, _ = build(frame, spec)
        except ZgpuError as exc:
            raise locate(exc, spans) from None
        checked.add(table.num_rows, estimate_requests(requests))
        if advance is not None:
            advance(table.num_rows)
        del frame, requests, table
        _release()
    return checked


def check_budget(checked: Checked, spec: ChatSpec) -> None:
    """Refuse the whole input when its estimate exceeds ``max_cost``: the in-memory path's
    own check (:func:`zgpu_pandas.core.run.check_estimate`) on the sum of every part's."""
    from .core.run import check_estimate

    if checked.estimate is not None:
        check_estimate(checked.estimate, spec)
