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
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import CostLimitError, OversizeRowsError, ZgpuError

if TYPE_CHECKING:
    import pyarrow as pa

    from ._stream_read import Span
    from .core.spec import ChatSpec

__all__ = ["Checked", "check_budget", "check_parts", "locate"]

# how the core names a row of a frame with the default index (frames/_pandas_rows.py)
_ROW = re.compile(r"row (\d+) \(position (\d+)\)")


@dataclasses.dataclass
class Checked:
    """What the check found: rows and parts, and the estimate's sums over every part."""

    rows: int = 0
    parts: int = 0
    rows_to_send: int = 0
    #: list-price estimates in USD (None: the catalog lists no price for the model)
    prompt_cost_usd: float | None = 0.0
    max_completion_cost_usd: float | None = 0.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> Checked | None:
        """The record a manifest holds, or ``None`` when it holds none (or a broken one)."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(**data)
        except TypeError:
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


def check_parts(parts: Iterable[tuple[pa.Table, list[Span]]], spec: ChatSpec) -> Checked:
    """Build every part's requests (nothing is sent) and sum their estimates; the first
    mistake raised with its rows located (:func:`locate`)."""
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
        est = estimate_requests(requests)
        checked.rows += table.num_rows
        checked.parts += 1
        checked.rows_to_send += est.rows_to_send
        checked.prompt_cost_usd = _add(checked.prompt_cost_usd, est.prompt_cost_usd)
        checked.max_completion_cost_usd = _add(
            checked.max_completion_cost_usd, est.max_completion_cost_usd
        )
        del frame, requests, table
        _release()
    return checked


def _add(total: float | None, more: float | None) -> float | None:
    return None if total is None or more is None else total + more


def check_budget(checked: Checked, spec: ChatSpec) -> None:
    """Refuse the whole input when its estimate exceeds ``max_cost`` (the same figure the
    in-memory path compares: prompt cost at list price plus, under a ``max_tokens`` cap,
    the answers' most expensive case)."""
    if spec.max_cost is None:
        return
    limit = float(spec.max_cost)
    if checked.prompt_cost_usd is None:
        raise CostLimitError(
            f"max_cost=${limit:,.4f} cannot be checked: the catalog lists no price for model "
            f"{spec.model!r}. Drop max_cost= to send anyway.",
            estimate_usd=float("nan"),
            max_cost=limit,
        )
    worst = checked.prompt_cost_usd + (checked.max_completion_cost_usd or 0.0)
    if worst <= limit:
        return
    answers = (
        f" + answers up to ${checked.max_completion_cost_usd:,.4f}"
        if checked.max_completion_cost_usd is not None
        else ""
    )
    raise CostLimitError(
        f"Refused before sending: the {checked.rows:,} input rows ({checked.rows_to_send:,} "
        f"requests) are estimated at ${worst:,.4f} (prompt ${checked.prompt_cost_usd:,.4f} at "
        f"list price{answers}) and exceed max_cost=${limit:,.4f}. Send fewer rows, lower "
        f"max_tokens, or raise max_cost.",
        estimate_usd=worst,
        max_cost=limit,
    )
