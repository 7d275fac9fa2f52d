"""What a job would send and cost, worked out locally before anything is spent.

:func:`estimate_requests` reads a :class:`~zgpu_pandas.core.requests.RequestSet` (no network
call) and counts the lines to send, the rows skipped or answered by another row's line, the
batches and bytes, and estimates the prompt tokens:

    tokens(line) = 3 + sum over its messages of (3 + ceil(characters(content) / 4))

that is about four characters per token (a common rule of thumb for English text with
today's tokenizers) plus a small overhead per message and per request, the same rule the
local server uses to report usage. Real tokenizers differ by model and language, so this is
an estimate, not a quote. The cost uses the public catalog's list prices per million tokens;
batch jobs are billed at a discount to these, so the figure is an upper bound for the prompt
part. The completion part is unknown before the answers exist: it is bounded only when
``max_tokens`` (or ``max_completion_tokens``) caps it.

Example::

    >>> import pandas as pd
    >>> from zgpu_pandas.core.requests import build_requests
    >>> reqs = build_requests(pd.DataFrame({"q": ["abcd", "abcd", None]}), prompt="q",
    ...                       model="LFM2.5-1.2B-Instruct")
    >>> est = estimate_requests(reqs)
    >>> est.rows_to_send, est.rows_deduplicated, est.rows_skipped, est.prompt_tokens
    (1, 1, 1, 7)
"""

from __future__ import annotations

import html
import math
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from .._catalog import get_model
from .memory import give_back, on_system_allocator
from .preflight import over_context
from .requests import RequestSet

__all__ = ["ChatEstimate", "estimate_requests", "sum_estimates"]

_PER_MESSAGE = 3
_PER_REQUEST = 3
_CHARS_PER_TOKEN = 4

_SCHEMA = pa.schema(
    [
        (
            "body",
            pa.struct(
                [
                    (
                        "messages",
                        pa.list_(pa.struct([("content", pa.large_string())])),
                    )
                ]
            ),
        )
    ]
)
_PARSE = pajson.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")


@dataclass(frozen=True)
class ChatEstimate:
    """The size and list-price cost of a chat job, before it is sent.

    ``rows_to_send`` request lines go out in ``batches`` batches of ``bytes`` bytes in all;
    ``rows_skipped`` rows have nothing to send; ``rows_deduplicated`` rows get the answer of
    an identical request of another row. ``prompt_tokens`` is an estimate (see the module
    notes); ``prompt_cost_usd`` prices it at the catalog's list price (``None`` when the
    model has no listed price); ``max_completion_cost_usd`` bounds the answers' cost when
    ``max_tokens`` is set (else ``None``).
    """

    model: str
    rows: int
    rows_to_send: int
    rows_skipped: int
    rows_deduplicated: int
    batches: int
    bytes: int
    prompt_tokens: int
    max_completion_tokens: int | None
    input_price_per_million: float | None
    output_price_per_million: float | None
    prompt_cost_usd: float | None
    max_completion_cost_usd: float | None
    #: the model's context in tokens (catalog), and the rows whose estimated prompt plus
    #: max_tokens exceeds it (their labels): they would fail ``context_length_exceeded``
    context_tokens: int | None = None
    rows_over_context: tuple[str, ...] = ()

    def to_series(self) -> Any:
        """The figures as a pandas Series (one entry per field)."""
        import pandas as pd

        return pd.Series(asdict(self), dtype=object)

    def __str__(self) -> str:
        lines = [
            f"{self.rows:,} rows: {self.rows_to_send:,} to send, {self.rows_skipped:,} skipped, "
            f"{self.rows_deduplicated:,} answered by an identical row",
            f"{self.batches} batch(es), {self.bytes:,} bytes",
            f"about {self.prompt_tokens:,} prompt tokens (~4 characters per token)",
        ]
        if self.prompt_cost_usd is not None:
            lines.append(
                f"prompt: at most ${self.prompt_cost_usd:,.4f} at list price "
                f"(${self.input_price_per_million}/1M tokens for {self.model}; batches cost less)"
            )
        else:
            lines.append(f"no list price for {self.model!r} in the catalog")
        if self.max_completion_cost_usd is not None:
            lines.append(
                f"answers: at most ${self.max_completion_cost_usd:,.4f} "
                f"({self.max_completion_tokens:,} tokens at most)"
            )
        if self.rows_over_context:
            lines.append(over_context_text(self.model, self.context_tokens, self.rows_over_context))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return "<pre>" + html.escape(str(self)) + "</pre>"


def _content_chars(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):  # content parts: the text ones
        return sum(
            len(p["text"])
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return len(orjson.dumps(content).decode())


def _tokens_line_by_line(jsonl: bytes) -> np.ndarray:
    """The estimate of each line of ``jsonl``, one line at a time: message content given as
    a list of parts (``messages=`` columns), which the column-wise reader does not take."""
    lines = jsonl.split(b"\n")[:-1]
    out = np.zeros(len(lines), dtype=np.int64)
    for k, raw in enumerate(lines):
        msgs = orjson.loads(raw)["body"]["messages"]
        out[k] = _PER_REQUEST + sum(
            _PER_MESSAGE + math.ceil(_content_chars(m.get("content")) / _CHARS_PER_TOKEN)
            for m in msgs
        )
    return out


def _slice_tokens(jsonl: pa.Buffer, n: int) -> np.ndarray:
    """The estimate of each of the ``n`` lines of ``jsonl``, computed column-wise."""
    try:
        table = pajson.read_json(
            pa.BufferReader(jsonl),
            read_options=pajson.ReadOptions(block_size=max(jsonl.size, 1 << 20) + 1),
            parse_options=_PARSE,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return _tokens_line_by_line(jsonl.to_pybytes())
    msgs = table.column("body").combine_chunks().field("messages")
    del table
    flat = pc.list_flatten(msgs)
    parents = pc.list_parent_indices(msgs).to_numpy()
    chars = pc.fill_null(pc.utf8_length(flat.field("content")), 0).to_numpy()
    per_msg = _PER_MESSAGE + (chars + _CHARS_PER_TOKEN - 1) // _CHARS_PER_TOKEN
    counts = np.bincount(parents, weights=per_msg, minlength=n)
    return _PER_REQUEST + counts.astype(np.int64)


#: request bytes parsed at once by :func:`_line_tokens` (memory stays about one slice)
_SLICE_BYTES = 16 << 20
#: each request set's estimate, kept while the set lives (a job asks for it twice: the
#: budget check and the context warning; each time is a pass over every line)
_KNOWN: weakref.WeakKeyDictionary[RequestSet, np.ndarray] = weakref.WeakKeyDictionary()


@on_system_allocator
def _line_tokens(reqs: RequestSet) -> np.ndarray:
    """Estimated prompt tokens of each line, computed column-wise over the lines a slice at
    a time (:meth:`RequestSet.scan`, which learns the job's fingerprint and checksums in the
    same pass): the lines are never all made, nor parsed at once."""
    known = _KNOWN.get(reqs)
    if known is not None:
        return known
    out = np.zeros(len(reqs), dtype=np.int64)

    def visit(start: int, stop: int, jsonl: pa.Buffer) -> None:
        out[start:stop] = _slice_tokens(jsonl, stop - start)
        # each slice's table given back before the next is parsed: the C heap kept them
        # (glibc serves blocks below its rising mmap threshold from the heap)
        give_back()

    reqs.scan(visit, slice_bytes=_SLICE_BYTES)
    _KNOWN[reqs] = out
    return out


def _cap(reqs: RequestSet) -> int | None:
    params = reqs.settings.get("chat_params") or {}
    cap = params.get("max_completion_tokens", params.get("max_tokens"))
    return int(cap) if isinstance(cap, int) and not isinstance(cap, bool) else None


def _over_context(
    reqs: RequestSet, per_line: np.ndarray, label: Callable[[int], str] | None
) -> tuple[str, ...]:
    """Labels of the rows (sent ones and the rows sharing their line) whose line does not
    fit the model's context."""
    model = str(reqs.settings.get("model", ""))
    lines = over_context(model, per_line, _cap(reqs) or 0)
    if len(lines) == 0:
        return ()
    positions = np.asarray(reqs.positions)[lines]
    if len(reqs.duplicate_positions):
        shares = np.isin(np.asarray(reqs.duplicate_of), positions)
        positions = np.concatenate([positions, np.asarray(reqs.duplicate_positions)[shares]])
    name = label or (lambda p: f"position {p}")
    return tuple(name(int(p)) for p in np.sort(positions))


def over_context_text(model: str, context: int | None, rows: Sequence[str]) -> str:
    """The one-line warning about rows too long for ``model``'s context."""
    shown = ", ".join(rows[:10]) + (f" and {len(rows) - 10:,} more" if len(rows) > 10 else "")
    return (
        f"{len(rows):,} row(s) have a prompt (plus max_tokens) estimated over {model}'s "
        f"context of {context:,} tokens and would fail with context_length_exceeded: {shown}. "
        f"Shorten them, leave them out, or use a model with a larger context."
    )


def warn_over_context(reqs: RequestSet, *, label: Callable[[int], str] | None = None) -> None:
    """Warn (``UserWarning``) before a run about rows too long for the model's context.

    A warning, not an error: the token count is an estimate (~4 characters per token),
    and a row near the limit may fit; the rows are named so they can be left out."""
    rows = _over_context(reqs, _line_tokens(reqs), label)
    if rows:
        info = get_model(str(reqs.settings.get("model", "")))
        text = over_context_text(info.id if info else "", info.context_tokens if info else None, rows)
        warnings.warn(text, UserWarning, stacklevel=5)


def estimate_requests(
    reqs: RequestSet, *, label: Callable[[int], str] | None = None
) -> ChatEstimate:
    """Count and price a request set without sending anything (see the module notes);
    ``label(position)`` names a row in ``rows_over_context``."""
    model = str(reqs.settings.get("model", ""))
    per_line = _line_tokens(reqs)
    tokens = int(per_line.sum())
    cap = _cap(reqs)
    max_out = cap * len(reqs) if cap is not None else None
    info = get_model(model)
    p_in = info.input_per_million if info else None
    p_out = info.output_per_million if info else None
    return ChatEstimate(
        model=model,
        rows=reqs.n_rows,
        rows_to_send=len(reqs),
        rows_skipped=len(reqs.skipped_positions),
        rows_deduplicated=len(reqs.duplicate_positions),
        batches=len(reqs.chunks),
        bytes=reqs.total_bytes,
        prompt_tokens=tokens,
        max_completion_tokens=max_out,
        input_price_per_million=p_in,
        output_price_per_million=p_out,
        prompt_cost_usd=None if p_in is None else tokens * p_in / 1e6,
        max_completion_cost_usd=None
        if (p_out is None or max_out is None)
        else max_out * p_out / 1e6,
        context_tokens=info.context_tokens if info else None,
        rows_over_context=_over_context(reqs, per_line, label),
    )


def sum_estimates(parts: Sequence[ChatEstimate]) -> ChatEstimate:
    """One estimate for a job sent in parts (a Dask frame's partitions, each its own job):
    counts and costs added up, ``None`` costs staying ``None``.

    Example: ``total = sum_estimates([est_a, est_b]); total.prompt_cost_usd``"""
    if not parts:
        raise ValueError("no estimates to add up")
    first = parts[0]

    def total(name: str) -> Any:
        values = [getattr(p, name) for p in parts]
        return None if any(v is None for v in values) else sum(values)

    return replace(
        first,
        **{
            name: total(name)
            for name in (
                "rows", "rows_to_send", "rows_skipped", "rows_deduplicated", "batches",
                "bytes", "prompt_tokens", "max_completion_tokens", "prompt_cost_usd",
                "max_completion_cost_usd",
            )
        },
        rows_over_context=tuple(r for p in parts for r in p.rows_over_context),
    )
