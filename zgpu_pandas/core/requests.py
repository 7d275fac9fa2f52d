"""Rows → batch request lines (JSONL), built column-wise, whatever frame the rows are in.

One request line per row that has something to send; its ``custom_id`` is ``row-<position>``
(the row's position in the frame, never its label), so any index works and the merge can map
answers back without looking at the index. The prompt comes from

- one column (``prompt="review"``),
- a ``str.format``-style template over columns (``prompt="Review: {review}\\nStars: {stars}"``),
- or a column holding whole message lists (``messages="conversation"``).

Rows whose prompt is missing (NaN/None/NA) or blank are not sent: they are listed as skipped,
with a code and a reason. Rows whose request body is byte-for-byte the same as an earlier row's
are not sent either (``dedup``): the first such row carries the request and its answer is
fanned out to the others (``duplicate_positions`` / ``duplicate_of``). By default this is done
for deterministic requests only: when the body asks for sampling (``temperature`` > 0, ``n`` > 1
or ``top_p`` < 1, see :func:`asks_for_sampling`) identical prompts are meant to give
independent samples, so each row is sent. Numbers are turned into text deliberately: integers as integers,
floats as the shortest text that reads back to the same value with no trailing ``.0``
(``4.0`` → ``4``, ``0.5`` → ``0.5``), booleans as ``true``/``false``; never ``"nan"``.

Speed: the constant parts of a line are serialised once; per row only the prompt text is
JSON-escaped (in C++ by pyarrow, with orjson for the rare rows holding other control
characters) and the pieces are joined by ``pyarrow.compute.binary_join_element_wise``. The
result is one contiguous buffer plus offsets, so a chunk of lines is a single slice.

Example::

    >>> import pandas as pd
    >>> df = pd.DataFrame({"review": ["Great!", None, "Broke."]}, index=["a", "b", "c"])
    >>> reqs = build_requests(df, prompt="review", model="LFM2.5-1.2B-Instruct", temperature=0)
    >>> reqs.positions.tolist(), reqs.skipped_positions.tolist()
    ([0, 2], [1])
    >>> next(reqs.iter_lines())[:40]
    b'{"custom_id":"row-0","method":"POST","ur'
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .._jsonl import (
    BATCH_ENDPOINT,
    MAX_LINE_BYTES,
    MAX_LINES,
    MAX_UPLOAD_BYTES,
    Validator,
    check_request,
    inexact_number,
    inexact_number_in_json,
)
from ..errors import OptionError, OversizeRowsError, PromptError
from .invalid_text import INVALID_CODE, OnInvalid, collecting, record, replace_surrogates, settle
from .line_buffer import MadeLines, line_sizes
from .memory import give_back, on_system_allocator
from .request_set import Chunk, RequestSet
from .rows import Rows, as_rows
from .template_fill import MissingOption, fills_for
from .text import blank, is_missing

__all__ = [
    "SKIP_CODES",
    "Chunk",
    "MissingOption",
    "OversizeRowsError",
    "PromptError",
    "RequestSet",
    "asks_for_sampling",
    "build_requests",
]

#: Codes put in ``<output>_error_code`` for rows that were not sent.
SKIP_CODES = {
    "missing_prompt": "the prompt is missing (NaN/None)",
    "empty_prompt": "the prompt is empty",
    "missing_messages": "the messages cell is missing (NaN/None)",
    "empty_messages": "the message list is empty",
    "line_too_large": "the request line would exceed the 1 MB limit per line",
    INVALID_CODE: "the text is not valid Unicode (lone surrogates); left out (on_invalid='skip')",
}

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
_LB = pa.large_binary()
_LS = pa.large_string()
_OPTS = orjson.OPT_SERIALIZE_NUMPY


# --------------------------------------------------------------------------------------------
# Text columns


# --------------------------------------------------------------------------------------------
# Building


def _template_fields(template: str) -> list[tuple[str, str | None, str | None, str | None]]:
    try:
        return list(string.Formatter().parse(template))
    except ValueError as exc:
        raise PromptError(
            f"The prompt template {template!r} is not a valid format string ({exc}). "
            f"Write literal braces as '{{{{' and '}}}}'."
        ) from None


def _render_template(
    rows: Rows, template: str, missing_fill: MissingOption = "skip"
) -> tuple[pa.Array, list[tuple[np.ndarray, str, str]]]:
    """The template filled in per row, and (mask, code, reason) for rows to skip; an empty
    field skips its row unless ``missing_fill`` gives it a fill (core/template_fill.py)."""
    parts: list[Any] = []
    skips: list[tuple[np.ndarray, str, str]] = []
    fields = _template_fields(template)
    fills = fills_for(missing_fill, [f for _, f, _, _ in fields if f])
    nothing = np.ones(rows.n_rows, dtype=bool)  # every filled field empty so far
    for literal, field, spec, conv in fields:
        if literal:
            parts.append(pa.scalar(literal, _LS))
        if field is None:
            continue
        if field == "" or (field.isdigit() and not rows.has_column(int(field))):
            raise PromptError(
                f"The prompt template {template!r} has a field {{{field}}} without a column name:"
                f" write {{column_name}}."
            )
        col = rows.key(field, f"The prompt template has a field {{{field}}}")
        text, missing = rows.text(col)
        if spec or conv:
            text = _formatted(rows, col, missing, spec or "", conv)
        fill = fills.get(field, fills.get(col))
        if fill is None:
            skips.append((missing, "missing_prompt", f"column {col!r} is missing (NaN/None)"))
            skips.append((~missing & blank(text), "empty_prompt", f"column {col!r} is empty"))
            nothing[:] = False
        else:
            empty = missing | blank(pc.fill_null(text, ""))
            nothing &= empty
            text = pc.if_else(pa.array(empty), pa.scalar(fill, _LS), text)
        parts.append(text)
    if not any(isinstance(p, pa.Array | pa.ChunkedArray) for p in parts):
        raise PromptError(
            f"The prompt {template!r} is neither a column nor a template with {{column}} fields."
        )
    joined = pc.binary_join_element_wise(*parts, pa.scalar("", _LS))
    if fills and nothing.any():
        skips.append((nothing, "empty_prompt", "every field of the template is empty"))
    return joined, skips


def _formatted(
    rows: Rows, col: Any, missing: np.ndarray, spec: str, conv: str | None
) -> pa.Array:
    """A field with a format spec or conversion ({price:.2f}, {x!r}): Python's own format."""
    values = rows.values(col)
    name = str(col)
    out: list[str | None] = []
    for pos, v in enumerate(values):
        if missing[pos]:
            out.append(None)
            continue
        if conv == "r":
            v = repr(v)
        elif conv == "a":
            v = ascii(v)
        elif conv == "s":
            v = str(v)
        try:
            out.append(format(v, spec))
        except (ValueError, TypeError) as exc:
            raise PromptError(
                f"Column {name!r}, {rows.label(pos)}: cannot format {v!r} with "
                f"'{spec}' ({exc})."
            ) from None
    return pa.array(out, _LS)


def _messages_json(
    rows: Rows, col: Any, system: str | None
) -> tuple[pa.Array, list[tuple[np.ndarray, str, str]]]:
    """One JSON message list per row (nulls for rows to skip)."""
    values = rows.values(col)
    n = len(values)
    out: list[bytes | None] = [None] * n
    missing = np.zeros(n, dtype=bool)
    empty = np.zeros(n, dtype=bool)
    sys_prefix = (
        b'[{"role":"system","content":' + orjson.dumps(system) + b"},"
        if system is not None
        else None
    )
    for pos, cell in enumerate(values):
        if is_missing(cell):
            missing[pos] = True
            continue
        where = f"Column {col!r}, {rows.label(pos)},"
        msgs = _as_message_list(cell, where)
        if not msgs:
            empty[pos] = True
            continue
        bad = inexact_number(msgs, "messages")
        if bad is not None:
            raise PromptError(
                f"{where} {bad} is a number JSON cannot carry exactly (NaN, infinity, or an "
                "integer beyond 64 bits); give a finite value, or a string."
            )
        try:
            data = orjson.dumps(msgs, default=_json_default, option=_OPTS)
        except TypeError as exc:
            if "surrogates" not in str(exc):
                raise PromptError(f"{where} cannot be sent as JSON ({exc}).") from None
            # lone surrogates: noted for on_invalid= (core/invalid_text.py), sent repaired
            if not record(pos, rows.label(pos), str(col)):
                raise PromptError(
                    f"{where} holds text that is not valid Unicode (lone surrogates); pass "
                    f"on_invalid='replace' or 'skip', or clean the messages first."
                ) from None
            data = orjson.dumps(replace_surrogates(msgs), default=_json_default, option=_OPTS)
        out[pos] = sys_prefix + data[1:] if sys_prefix is not None else data
    skips = [
        (missing, "missing_messages", SKIP_CODES["missing_messages"]),
        (empty, "empty_messages", SKIP_CODES["empty_messages"]),
    ]
    return pa.array(out, _LB), skips


def _as_message_list(cell: Any, where: str) -> list[Any]:
    if isinstance(cell, str | bytes):
        bad = inexact_number_in_json(cell)
        if bad is not None:  # orjson would read it as a float: say so instead
            raise PromptError(
                f"{where} has an integer beyond 64 bits at "
                f"{'messages' + bad if bad.startswith('[') else bad}; "
                "it cannot be sent exactly: write it as a string."
            )
        try:
            cell = orjson.loads(cell) if cell.strip() else []
        except orjson.JSONDecodeError:
            raise PromptError(
                f"{where} is text but not a JSON list of messages; a messages column holds "
                f'lists like [{{"role": "user", "content": "..."}}].'
            ) from None
    if isinstance(cell, np.ndarray):
        cell = cell.tolist()
    if not isinstance(cell, list | tuple):
        raise PromptError(
            f"{where} holds a {type(cell).__name__}; a messages column holds lists like "
            f'[{{"role": "user", "content": "..."}}].'
        )
    msgs = list(cell)
    for k, m in enumerate(msgs):
        if not isinstance(m, Mapping):
            raise PromptError(f"{where} message {k} is a {type(m).__name__}, not a mapping.")
        role = m.get("role")
        if role not in _ROLES:
            raise PromptError(
                f"{where} message {k} has role {role!r}; use one of {', '.join(sorted(_ROLES))}."
            )
        if "content" not in m and role != "assistant":
            raise PromptError(f"{where} message {k} has no 'content'.")
    return [dict(m) for m in msgs]


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _params_json(chat_params: Mapping[str, Any]) -> bytes:
    """The chat parameters as a JSON fragment ``,"k":v,...`` (empty when there are none)."""
    for key in ("model", "messages"):
        if key in chat_params:
            raise PromptError(
                f"{key!r} cannot be a chat parameter here: pass model= and prompt=/messages=."
            )
    if chat_params.get("stream") is True:
        raise PromptError(
            "stream=True is not supported in batch mode: batches return whole answers. "
            "Remove stream=True."
        )
    if not chat_params:
        return b""
    inexact = inexact_number(dict(chat_params))
    if inexact is not None:
        raise PromptError(
            f"Chat parameter {inexact} is a number JSON cannot carry exactly (NaN, infinity, or "
            "an integer beyond 64 bits would reach the model as null or as another number); "
            "give a finite value, or a string."
        )
    try:
        data = orjson.dumps(dict(chat_params), default=_json_default, option=_OPTS)
    except TypeError as exc:
        bad = []
        for k, v in chat_params.items():
            try:
                orjson.dumps(v, default=_json_default, option=_OPTS)
            except TypeError:
                bad.append(k)
        raise PromptError(
            f"Chat parameter(s) {', '.join(map(repr, bad))} cannot be sent as JSON ({exc})."
        ) from None
    return b"," + data[1:-1]


def asks_for_sampling(chat_params: Mapping[str, Any]) -> bool:
    """Whether a request body asks for random samples: ``temperature`` > 0 set explicitly,
    ``n`` > 1 or ``top_p`` < 1. Identical prompts then are meant to give independent
    answers, so they are not merged by default. Example::

        >>> asks_for_sampling({"temperature": 1.0}), asks_for_sampling({"temperature": 0})
        (True, False)
    """

    def num(key: str) -> float | None:
        v = chat_params.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float):
            return None  # absent, or a value the line rules will refuse anyway
        return float(v)

    t, n, p = num("temperature"), num("n"), num("top_p")
    return (t is not None and t > 0) or (n is not None and n > 1) or (p is not None and p < 1)


@on_system_allocator
def build_requests(
    frame: Any,
    *,
    model: str,
    prompt: Any = None,
    messages: Any = None,
    system: str | None = None,
    on_oversize: Literal["raise", "skip"] = "raise",
    dedup: bool | None = None,
    max_lines: int = MAX_LINES,
    max_bytes: int = MAX_UPLOAD_BYTES,
    missing: MissingOption = "skip",
    on_invalid: OnInvalid = "raise",
    **chat_params: Any,
) -> RequestSet:
    """Turn the rows of ``frame`` (a pandas or Polars DataFrame, or any
    :class:`~zgpu_pandas.core.rows.Rows`) into request lines, one per row with a prompt.

    Exactly one of ``prompt`` (a column name or a ``{column}`` template) and ``messages`` (a
    column of message lists, or of their JSON text) is given. ``system`` adds a system
    message to every request; other keyword arguments go into every request body. A row
    whose line would exceed 1 MB raises :class:`OversizeRowsError` naming it
    (``on_oversize="raise"``) or is skipped (``"skip"``). With ``dedup``, rows whose request
    body is identical to an earlier row's share that row's line; ``dedup=None`` (the default)
    means on unless the body asks for sampling (:func:`asks_for_sampling`). ``missing``: what
    an empty template field does (``core/template_fill.py``); ``on_invalid``: what text that
    is not valid Unicode does (``core/invalid_text.py``). Nothing is sent anywhere.

    Example::

        reqs = build_requests(df, model="LFM2.5-1.2B-Instruct",
                              prompt="Review: {review}\\nStars: {stars}", temperature=0)
        for chunk in reqs.chunks:
            payload = reqs.chunk_bytes(chunk)      # JSONL bytes for one batch
    """
    _check_args(model, prompt, messages, system, on_oversize, max_lines, max_bytes)
    params = _params_json(chat_params)
    if dedup is None:
        dedup = not asks_for_sampling(chat_params)
    rows = as_rows(frame)
    # what the caller's earlier steps freed (reading the file the frame came from leaves
    # ~80 MB per million rows in Arrow's allocator) is given back before the lines are made
    give_back()
    with collecting() as invalid:
        head, payload, tail, skips, escape = _payload(
            rows, model, prompt, messages, system, params, missing
        )
    bad = settle(invalid, on_invalid, rows.n_rows)
    if bad is not None:
        skips.insert(0, (bad, INVALID_CODE, SKIP_CODES[INVALID_CODE]))
    send, sk_pos, sk_codes, sk_reasons = _skipped(rows.n_rows, skips)
    positions = np.flatnonzero(send).astype(np.int64)
    shared = _Shared.none()
    if dedup and len(positions) > 1:
        positions, shared = _dedup(positions, payload)
    sizes = line_sizes(payload, positions, head=head, tail=tail, escape=escape)
    positions, sizes, shared, too_large = _drop_oversize(
        rows, sizes, positions, shared, on_oversize
    )
    give_back()  # the dedup's sort and the sizing pass's escaped windows, now freed
    # the lines are made from the payloads when a range of them is needed (line_buffer.py)
    lines = MadeLines(payload, positions, head=head, tail=tail, escape=escape, sizes=sizes)
    if len(too_large.positions):
        sk_pos, sk_codes, sk_reasons = too_large.merge_into(sk_pos, sk_codes, sk_reasons)
    settings: dict[str, Any] = {
        "model": model,
        "system": system,
        "prompt": prompt if isinstance(prompt, str) or prompt is None else repr(prompt),
        "messages": messages if isinstance(messages, str) or messages is None else repr(messages),
        "chat_params": orjson.loads(b"{" + params[1:] + b"}") if params else {},
        "on_oversize": on_oversize,
        "dedup": dedup,
    }
    reqs = RequestSet(
        n_rows=rows.n_rows,
        lines=lines,
        positions=positions,
        skipped_positions=sk_pos,
        skipped_codes=sk_codes,
        skipped_reasons=sk_reasons,
        settings=settings,
        max_lines=max_lines,
        max_bytes=max_bytes,
        duplicate_positions=shared.positions,
        duplicate_of=shared.sources,
    )
    _self_check(reqs)
    return reqs


def _check_args(
    model: Any,
    prompt: Any,
    messages: Any,
    system: Any,
    on_oversize: Any,
    max_lines: int,
    max_bytes: int,
) -> None:
    if not isinstance(model, str) or not model:
        raise PromptError("model= is required, e.g. model='LFM2.5-1.2B-Instruct'.")
    if (prompt is None) == (messages is None):
        raise PromptError(
            "Give exactly one of prompt= (a column, or a template like 'Review: {review}') "
            "and messages= (a column of message lists)."
        )
    if on_oversize not in ("raise", "skip"):
        raise OptionError(f"on_oversize must be 'raise' or 'skip', not {on_oversize!r}.")
    if system is not None and not isinstance(system, str):
        raise PromptError(f"system= must be text, not {type(system).__name__}.")
    if max_lines < 1 or max_bytes < MAX_LINE_BYTES + 1:
        raise OptionError("max_lines must be >= 1 and max_bytes above the 1 MB line limit.")


_Skips = list[tuple[np.ndarray, str, str]]


def _payload(
    rows: Rows,
    model: str,
    prompt: Any,
    messages: Any,
    system: str | None,
    params: bytes,
    missing_fill: MissingOption = "skip",
) -> tuple[bytes, pa.Array | pa.ChunkedArray, bytes, _Skips, bool]:
    """What differs per row (``payload``) between the constant ``head`` and ``tail`` of
    every line, (mask, code, reason) for the rows to skip, and whether the payload is text
    still to be JSON-escaped (a prompt) or JSON already (a message list)."""
    head = b'","method":"POST","url":"' + BATCH_ENDPOINT.encode() + b'","body":{"model":'
    head += orjson.dumps(model) + b',"messages":'
    if messages is not None:
        if not (isinstance(missing_fill, str) and missing_fill == "skip"):
            raise OptionError("missing= is for prompt templates and columns, not messages=.")
        payload, skips = _messages_json(rows, rows.key(messages, "messages="), system)
        return head, payload, params + b"}}\n", skips, False
    if rows.has_column(prompt):
        col = rows.key(prompt, "prompt=")
        text, missing = rows.text(col)
        # one column: a fill text (missing={col: "..."}) is sent where it is empty;
        # "empty" would send empty prompts, so such rows are still skipped
        fill = fills_for(missing_fill, [col]).get(col) if isinstance(missing_fill, Mapping) else None
        if fill is not None:
            empty = missing | blank(pc.fill_null(text, ""))
            text, skips = pc.if_else(pa.array(empty), pa.scalar(fill, _LS), text), []
        else:
            skips = [
                (missing, "missing_prompt", SKIP_CODES["missing_prompt"]),
                (~missing & blank(text), "empty_prompt", SKIP_CODES["empty_prompt"]),
            ]
    elif isinstance(prompt, str) and any(f is not None for _, f, _, _ in _template_fields(prompt)):
        text, skips = _render_template(rows, prompt, missing_fill)
    else:
        rows.key(prompt, "prompt= is neither a column nor a template with {column} fields")
        raise AssertionError("unreachable")
    if system is not None:
        head += b'[{"role":"system","content":' + orjson.dumps(system) + b"},"
    else:
        head += b"["
    head += b'{"role":"user","content":"'
    return head, text, b'"}]' + params + b"}}\n", skips, True


def _skipped(n: int, skips: _Skips) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Which rows are sent, and the skipped ones with code and reason: the first rule that
    applies to a row wins."""
    code = np.full(n, -1, dtype=np.int16)
    reasons: list[tuple[str, str]] = []
    for mask, c, reason in skips:
        hit = mask & (code < 0)
        if hit.any():
            code[hit] = len(reasons)
            reasons.append((c, reason))
    send = code < 0
    skipped = np.flatnonzero(~send).astype(np.int64)
    return (
        send,
        skipped,
        [reasons[i][0] for i in code[skipped]],
        [reasons[i][1] for i in code[skipped]],
    )


@dataclass(frozen=True)
class _Shared:
    """Rows answered by another row's line: ``positions[k]`` shares ``sources[k]``'s."""

    positions: np.ndarray
    sources: np.ndarray

    @classmethod
    def none(cls) -> _Shared:
        empty = np.empty(0, dtype=np.int64)
        return cls(empty, empty)


def _dedup(
    positions: np.ndarray, payload: pa.Array | pa.ChunkedArray
) -> tuple[np.ndarray, _Shared]:
    """Everything but the custom_id is a constant around the payload, so equal payloads are
    equal request bodies (and equal texts equal escaped texts): number the distinct payloads
    in C++ and keep the first row of each.

    The numbers are a dense rank (equal payloads, equal rank), made by a sort of indices
    that compares the payloads where they are: no copy of them. A dictionary encoding did
    the same with a copy of every distinct payload and its hash table beside it (on a
    million rows of ~110 characters: 3x slower, and 250 MB more at the job's start)."""
    codes = pc.rank(payload, tiebreaker="dense").to_numpy()[positions]
    _, first, rep = np.unique(codes, return_index=True, return_inverse=True)
    rep_line = first[rep.reshape(-1)]  # numpy 2 gives the inverse the input's shape
    is_dup = rep_line != np.arange(len(codes))
    if not is_dup.any():
        return positions, _Shared.none()
    return positions[~is_dup], _Shared(positions[is_dup], positions[rep_line[is_dup]])


@dataclass(frozen=True)
class _TooLarge:
    """Rows skipped because their line is over the per-line limit, with the reason."""

    positions: np.ndarray
    reasons: list[str]

    def merge_into(
        self, skipped: np.ndarray, codes: list[str], reasons: list[str]
    ) -> tuple[np.ndarray, list[str], list[str]]:
        allpos = np.concatenate([skipped, self.positions])
        order = np.argsort(allpos, kind="stable")
        all_codes = codes + ["line_too_large"] * len(self.positions)
        all_reasons = reasons + self.reasons
        return allpos[order], [all_codes[i] for i in order], [all_reasons[i] for i in order]


def _drop_oversize(
    rows: Rows,
    with_newline: np.ndarray,
    positions: np.ndarray,
    shared: _Shared,
    on_oversize: str,
) -> tuple[np.ndarray, np.ndarray, _Shared, _TooLarge]:
    """Lines over the per-line limit (``with_newline`` with their newline): raise naming their
    rows (and the rows sharing them), or leave them out and say why
    (``on_oversize="skip"``). Returns the positions and sizes of the lines to write."""
    sizes = with_newline - 1
    over = np.flatnonzero(sizes > MAX_LINE_BYTES)
    if len(over):
        # The shared rule decides (same check and message as the service), the numpy
        # comparison only narrows down which lines to ask about.
        errors = [
            (k, check_request({"custom_id": "x"}, line=int(k) + 1, size=int(sizes[k])))
            for k in over
        ]
        over = np.array([k for k, e in errors if e is not None], dtype=np.int64)
    if not len(over):
        return positions, with_newline, shared, _TooLarge(np.empty(0, dtype=np.int64), [])
    over_pos = positions[over]
    size_of = dict(zip(over_pos.tolist(), sizes[over].tolist(), strict=True))
    along = np.isin(shared.sources, over_pos)  # rows sharing an oversize line
    if on_oversize == "raise":
        all_pos = np.concatenate([over_pos, shared.positions[along]])
        all_sizes = np.array(
            [size_of[int(p)] for p in over_pos] + [size_of[int(p)] for p in shared.sources[along]],
            dtype=np.int64,
        )
        order = np.argsort(all_pos, kind="stable")
        raise _oversize_error(rows, all_pos[order], all_sizes[order])
    keep = np.ones(len(positions), dtype=bool)
    keep[over] = False
    reason_of = {
        int(p): f"the request line would be {int(b):,} bytes, over the {MAX_LINE_BYTES:,}-byte "
        f"limit per line"
        for p, b in size_of.items()
    }
    skip_pos = np.concatenate([over_pos, shared.positions[along]])
    skip_reasons = [reason_of[int(p)] for p in over_pos]
    skip_reasons += [reason_of[int(p)] for p in shared.sources[along]]
    left = _Shared(shared.positions[~along], shared.sources[~along])
    return positions[keep], with_newline[keep], left, _TooLarge(skip_pos, skip_reasons)


def _oversize_error(rows: Rows, positions: np.ndarray, sizes: np.ndarray) -> OversizeRowsError:
    table = rows.frame(
        {"position": positions, "label": rows.row_ids(positions.tolist()), "bytes": sizes}
    )
    shown = "; ".join(
        f"{rows.label(int(p))}: {int(b):,} bytes"
        for p, b in zip(positions[:5], sizes[:5], strict=True)
    )
    more = f"; and {len(positions) - 5} more" if len(positions) > 5 else ""
    return OversizeRowsError(
        f"{len(positions)} row(s) would make a request line over the {MAX_LINE_BYTES:,}-byte "
        f"(1 MB) limit per line, so nothing was uploaded: {shown}{more}. Shorten these "
        f"prompts, or pass on_oversize='skip' to send the other rows and mark these 'skipped'. "
        f"The rows are in this error's .rows attribute.",
        table,
    )


def _self_check(reqs: RequestSet) -> None:
    """Run the shared line rules on the first and last line of every chunk: the lines are
    built by construction, this guards the construction itself at negligible cost."""
    for c in reqs.chunks:
        v = Validator()
        picks: Sequence[int] = (c.start,) if c.lines == 1 else (c.start, c.stop - 1)
        for k in picks:
            err = v.feed(reqs.line(k))
            if err is not None:
                raise PromptError(
                    f"The request line for row position {reqs.positions[k]} breaks the batch "
                    f"rules ({err.message}); check the chat parameters."
                )
