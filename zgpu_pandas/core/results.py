"""Batch output and error JSONL → a columnar results table by row position → Arrow answers.

Output and error files are read as a stream of lines, a few megabytes at a time; each block is
parsed by pyarrow's JSON reader against a fixed schema of just the fields needed (answer text,
finish reason, usage, error code and message), so no Python object is made per row and the file
is never held whole, let alone twice. A block the fixed schema does not fit (a provider that
answers with content parts, say) is parsed line by line with orjson instead, with the same
meaning. ``custom_id`` ``row-<i>`` gives the row position ``i``; :meth:`ResultsTable.answers`
gives one Arrow column per result field aligned to row positions, which a frame adapter puts
beside the caller's rows, whatever the index.

Example::

    >>> table = ResultsTable(2)
    >>> table.add_lines([b'{"custom_id":"row-1","response":{"status_code":200,"body":'
    ...     b'{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}]}}}'])
    1
    >>> table.add_errors([0], code="internal_error", message="try again")
    >>> table.answers().column("response").to_pylist()
    [None, 'hi']
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import IO, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from ..errors import ColumnClashError, OptionError
from .align import Alignment, in_row_order, singleton_lists
from .memory import give_back, on_system_allocator

__all__ = [
    "PENDING",
    "STATUS_LABELS",
    "ColumnClashError",
    "ResultsTable",
    "answer_extras",
    "check_columns",
    "result_columns",
]

#: ``<output>_status`` values, indexed by the codes in :attr:`ResultsTable.status`.
STATUS_LABELS = ("pending", "ok", "error", "skipped")
PENDING, OK, ERROR, SKIPPED = 0, 1, 2, 3

# Blocks of ~16 MB handed to pyarrow, which splits them into 1 MB pieces parsed on all cores.
# Memory stays bounded by the block, whatever the size of the file.
_BLOCK_BYTES = 16 << 20
_INNER_BLOCK = 1 << 20

_ERR = pa.struct([("code", pa.string()), ("message", pa.large_string())])
# choices[i].logprobs.content: one entry per generated token (OpenAI's shape, bytes left out)
_TOP = pa.list_(pa.struct([("token", pa.large_string()), ("logprob", pa.float64())]))
_TOKENS = pa.list_(
    pa.struct([("token", pa.large_string()), ("logprob", pa.float64()), ("top_logprobs", _TOP)])
)
_CHOICES = pa.list_(pa.large_string())
_SCHEMA = pa.schema(
    [
        ("custom_id", pa.string()),
        (
            "response",
            pa.struct(
                [
                    ("status_code", pa.int64()),
                    (
                        "body",
                        pa.struct(
                            [
                                (
                                    "choices",
                                    pa.list_(
                                        pa.struct(
                                            [
                                                (
                                                    "message",
                                                    pa.struct([("content", pa.large_string())]),
                                                ),
                                                ("finish_reason", pa.string()),
                                                ("logprobs", pa.struct([("content", _TOKENS)])),
                                            ]
                                        )
                                    ),
                                ),
                                (
                                    "usage",
                                    pa.struct(
                                        [
                                            ("prompt_tokens", pa.int64()),
                                            ("completion_tokens", pa.int64()),
                                            ("total_tokens", pa.int64()),
                                        ]
                                    ),
                                ),
                                ("error", _ERR),
                            ]
                        ),
                    ),
                ]
            ),
        ),
        ("error", _ERR),
    ]
)
_PARSE = pajson.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")

# One row per answered line; the columns every part has, in this order.
_PART = pa.schema(
    [
        ("position", pa.int64()),
        ("status", pa.int8()),
        ("text", pa.large_string()),
        ("finish_reason", pa.large_string()),
        ("error_code", pa.large_string()),
        ("error", pa.large_string()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("total_tokens", pa.int64()),
        ("choices", _CHOICES),
        ("logprobs", _TOKENS),
    ]
)


def result_columns(output: str = "response", extras: Sequence[str] = ()) -> list[str]:
    """Names of the columns a merge adds, for ``output`` as the prefix; ``extras`` (see
    :func:`answer_extras`) adds ``{output}_choices`` and/or ``{output}_logprobs``."""
    cols = [
        output,
        f"{output}_status",
        f"{output}_error_code",
        f"{output}_error",
        f"{output}_finish_reason",
        f"{output}_prompt_tokens",
        f"{output}_completion_tokens",
        f"{output}_total_tokens",
        f"{output}_shared",
        f"{output}_cost",
    ]
    return cols + [f"{output}_{x}" for x in EXTRAS if x in extras]


#: answer columns that exist only when the request asks for them, in column order
EXTRAS = ("choices", "logprobs")


def answer_extras(chat_params: Any) -> tuple[str, ...]:
    """The extra answer columns a request's chat parameters ask for: ``choices`` when it
    asks for ``n`` > 1 (every choice, as a list, beside the first in ``{output}``) and
    ``logprobs`` when it asks for token log-probabilities (``logprobs`` or ``top_logprobs``).

    Example::

        >>> answer_extras({"n": 3, "logprobs": True})
        ('choices', 'logprobs')
    """
    params = chat_params if isinstance(chat_params, dict) else {}
    out = []
    n = params.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        out.append("choices")
    if params.get("logprobs") is True or params.get("top_logprobs") is not None:
        out.append("logprobs")
    return tuple(out)


def check_columns(
    frame: Any, output: str = "response", *, overwrite: bool = False, extras: Sequence[str] = ()
) -> None:
    """Raise :class:`ColumnClashError` if the merge would replace existing columns (unless
    ``overwrite``); ``frame`` is a DataFrame or its column names. Called before anything is
    sent, so a clash never costs a batch."""
    if not isinstance(output, str) or not output:
        raise OptionError(f"output= must be a non-empty column prefix, not {output!r}.")
    if overwrite:
        return
    names = column_names(frame)
    clash = [c for c in result_columns(output, extras) if c in names]
    if clash:
        raise ColumnClashError(
            f"The frame already has column(s) {', '.join(map(repr, clash))}. Pass "
            f"overwrite=True to replace them, or output='<other prefix>' to write the answers "
            f"under other names."
        )


def column_names(frame: Any) -> frozenset[Any]:
    """The column names of a DataFrame (pandas, Polars) or of a list of names."""
    cols = getattr(frame, "columns", frame)
    try:
        return frozenset(cols)
    except TypeError:  # unhashable labels: none of them can clash with a text name
        return frozenset(c for c in cols if isinstance(c, str))


class ResultsTable:
    """Per-row results of one job, keyed by row position.

    Feed it output and error lines (:meth:`add_lines`, in any order, from any number of
    batches), rows that were not sent (:meth:`add_skipped`) and rows a whole batch failed
    (:meth:`add_errors`). A later result for a row replaces an earlier one (a retry's answer
    replaces the failure). ``status`` holds a code per row (see :data:`STATUS_LABELS`).

    ``custom_ids``: when the lines were not sent by this library (their custom_ids are not
    ``row-<i>``), the custom_id of each row position, to key the results by it instead.

    Rows that shared another row's request (see :meth:`set_duplicates`) receive a copy of
    every result recorded for that row, as it is recorded.
    """

    def __init__(self, n_rows: int, *, custom_ids: Sequence[str] | None = None) -> None:
        self.n_rows = n_rows
        self.status = np.zeros(n_rows, dtype=np.int8)
        self.problems: list[str] = []  # lines that could not be used, said in words
        self._parts: list[pa.Table] = []
        # per part, the positions its own lines answered more than once (the last is kept)
        self._part_repeats: list[np.ndarray] = []
        # parts folded into one by compact(), so that marks keep counting from the start
        self._folded = 0
        # the parts are one table aligned to row positions (row k is position k): compact()
        self._aligned = False
        self._ids: pa.Array | None = None
        self._dup_pos: np.ndarray = np.empty(0, dtype=np.int64)
        self._dup_src: np.ndarray = np.empty(0, dtype=np.int64)
        #: extra answer columns the job's requests asked for (see :func:`answer_extras`)
        self.extras: tuple[str, ...] = ()
        if custom_ids is not None:
            if len(custom_ids) != n_rows:
                raise ValueError("custom_ids must have one entry per row")
            self._ids = pa.array(list(custom_ids), pa.string())

    # ---- feeding -------------------------------------------------------------------------

    def add_lines(self, lines: Iterable[bytes], *, source: str = "results") -> int:
        """Parse output or error JSONL lines (``\\n`` optional) and record them.

        Streams: at most a few MB of lines are held at once. Returns the number of lines
        used. ``source`` names the file in :attr:`problems` messages."""
        return self._add_blocks(_blocks_from_lines(lines), source)

    def add_file(self, f: IO[bytes], *, source: str = "results") -> int:
        """Like :meth:`add_lines` for a binary file object, read in blocks (each block read
        once and parsed where it was read, when it is a plain file)."""
        return self._add_blocks(_blocks_from_file(f), source)

    def add_chunks(self, chunks: Iterable[bytes], *, source: str = "results") -> int:
        """Like :meth:`add_lines` for raw bytes cut anywhere (a download stream): no Python
        code runs per line, and only about one block is held at a time."""
        return self._add_blocks(_blocks_from_chunks(chunks), source)

    @on_system_allocator
    def _add_blocks(self, blocks: Iterable[bytes | memoryview], source: str) -> int:
        used, start = 0, len(self._parts)
        for block in blocks:
            used += self._add_block(block, source)
            del block  # the block's bytes freed before the next one is read
        self._join_parts(start)
        return used

    def add_skipped(
        self, positions: Sequence[int] | np.ndarray, codes: Sequence[str], reasons: Sequence[str]
    ) -> None:
        """Rows that were not sent, with a code and a reason each."""
        pos = np.asarray(positions, dtype=np.int64)
        if len(pos) == 0:
            return
        self._add_part(
            pos,
            np.full(len(pos), SKIPPED, np.int8),
            error_code=pa.array(list(codes), pa.string()),
            error=pa.array(list(reasons), pa.large_string()),
        )

    def add_errors(self, positions: Sequence[int] | np.ndarray, *, code: str, message: str) -> None:
        """Mark rows failed with one code and message (a batch that failed as a whole)."""
        pos = np.asarray(positions, dtype=np.int64)
        if len(pos) == 0:
            return
        self._add_part(
            pos,
            np.full(len(pos), ERROR, np.int8),
            error_code=pa.array([code] * len(pos), pa.string()),
            error=pa.array([message] * len(pos), pa.large_string()),
        )

    def set_duplicates(
        self, positions: Sequence[int] | np.ndarray, source: Sequence[int] | np.ndarray
    ) -> None:
        """Rows ``positions[k]`` get whatever result row ``source[k]`` gets (a request sent
        once for several identical rows). Call before feeding results."""
        pos = np.asarray(positions, dtype=np.int64)
        src = np.asarray(source, dtype=np.int64)
        if pos.shape != src.shape:
            raise ValueError("positions and source must have the same length")
        if np.isin(src, pos).any():
            raise ValueError("a source row cannot itself be a duplicate")
        self._dup_pos, self._dup_src = pos, src

    def shared(self) -> np.ndarray:
        """Per row: ``True`` when its result came from another row's request (a duplicate
        set by :meth:`set_duplicates`), so its token counts are that request's too."""
        out = np.zeros(self.n_rows, dtype=bool)
        out[self._dup_pos] = True
        return out

    @property
    def keyed_by_custom_id(self) -> bool:
        """Whether rows are matched by given custom_ids (lines sent by someone else)."""
        return self._ids is not None

    def mark(self) -> int:
        """A marker for :meth:`positions_since`: results recorded from now on. (Not to be
        held across :meth:`compact`, which folds the parts recorded before it into one.)"""
        return self._folded + len(self._parts)

    def _since(self, mark: int) -> int:
        return max(mark - self._folded, 0)

    def positions_since(self, mark: int) -> np.ndarray:
        """Positions that received a result since ``mark`` (unique, ascending)."""
        got = [p.column("position").to_numpy() for p in self._parts[self._since(mark) :]]
        return np.unique(np.concatenate(got)) if got else np.empty(0, dtype=np.int64)

    def repeated_since(self, mark: int) -> np.ndarray:
        """Positions that received more than one result since ``mark`` (ascending)."""
        k = self._since(mark)
        got = [p.column("position").to_numpy() for p in self._parts[k:]]
        if not got:
            return np.empty(0, dtype=np.int64)
        pos, counts = np.unique(np.concatenate(got), return_counts=True)
        return np.union1d(pos[counts > 1], np.concatenate(self._part_repeats[k:]))

    def error_codes_since(self, mark: int) -> dict[str, int]:
        """Error codes (with row counts) among the results recorded since ``mark``."""
        out: dict[str, int] = {}
        for part in self._parts[self._since(mark) :]:
            codes = part.column("error_code").filter(
                pc.equal(part.column("status"), pa.scalar(ERROR, pa.int8()))
            )
            for item in pc.value_counts(codes.drop_null()).to_pylist():
                out[item["values"]] = out.get(item["values"], 0) + item["counts"]
        return out

    def error_codes(self) -> dict[str, int]:
        """The current error code of every row in error, counted (later results replace
        earlier ones, so a retried row counts with its latest outcome)."""
        bad = np.flatnonzero(self.status == ERROR)
        if not len(bad):
            return {}
        codes = self.columns()["error_code"].take(pa.array(bad))
        return {
            str(item["values"]): int(item["counts"])
            for item in pc.value_counts(pc.fill_null(codes, "unknown")).to_pylist()
        }

    def pending(self, positions: np.ndarray | None = None) -> np.ndarray:
        """Positions (among ``positions``, default all) with no result yet."""
        if positions is None:
            return np.flatnonzero(self.status == PENDING)
        positions = np.asarray(positions, dtype=np.int64)
        return positions[self.status[positions] == PENDING]

    def counts(self) -> dict[str, int]:
        """Rows per status label."""
        c = np.bincount(self.status, minlength=len(STATUS_LABELS))
        return {label: int(c[i]) for i, label in enumerate(STATUS_LABELS)}

    # ---- reading -------------------------------------------------------------------------

    @on_system_allocator
    def answers(
        self,
        output: str = "response",
        *,
        model: str | None = None,
        extras: Sequence[str] | None = None,
    ) -> pa.Table:
        """One column per result field, aligned to row positions, named as they are added
        to the caller's frame (see :func:`result_columns`): the answer text, status, error
        code and message, finish reason (``large_string``), the three token counts
        (``int64``, null where unknown), ``shared`` (``bool``) and ``cost`` (``float64``,
        US dollars at the catalog's list price for ``model``; see :func:`row_costs`); with
        ``extras`` (:func:`answer_extras`), every choice (``list<large_string>``) and the
        first choice's token log-probabilities (a list of ``{token, logprob,
        top_logprobs}``)."""
        cols = self.columns()
        shared = self.shared()
        extras = self.extras if extras is None else tuple(extras)
        values = [
            cols["text"],
            cols["status"],
            cols["error_code"],
            cols["error"],
            cols["finish_reason"],
            cols["prompt_tokens"],
            cols["completion_tokens"],
            cols["total_tokens"],
            pa.array(shared, pa.bool_()),
            row_costs(cols["prompt_tokens"], cols["completion_tokens"], shared, model=model),
            *(cols[x] for x in EXTRAS if x in extras),
        ]
        return pa.table(dict(zip(result_columns(output, extras), values, strict=True)))

    def columns(self) -> dict[str, pa.Array | pa.ChunkedArray]:
        """The results aligned to row positions (chunked, see :mod:`.align`): ``status``
        (labels), ``text``, ``error_code``, ``error``, ``finish_reason``, the three token
        counts, ``choices`` and ``logprobs``; after :meth:`compact`, the table's own."""
        n = self.n_rows
        # large_string, as every text column here: what pandas 3 and Polars hold, so the
        # frame takes the columns as they are (a cast would copy each one)
        labels = pa.array(STATUS_LABELS, pa.large_string())
        out: dict[str, pa.Array | pa.ChunkedArray] = {
            "status": labels.take(pa.array(self.status.astype(np.int64)))
        }
        names = _PART.names[2:]
        if not self._parts:
            out.update((f.name, pa.nulls(n, f.type)) for f in list(_PART)[2:])
            return out
        if self._aligned:
            out.update((name, self._parts[0].column(name)) for name in names)
            return out
        align = Alignment(self._parts, n)
        # one column at a time: when it must be copied, only that column is held twice
        for name in names:
            if name != "choices":
                out[name] = align.column(name)
        out["choices"] = _aligned_choices(align, out["text"])
        return {"status": out["status"], **{name: out[name] for name in names}}

    @on_system_allocator
    def compact(self) -> ResultsTable:
        """Fold the parts into one table aligned to row positions (returns the table), so
        that the results are held once: :meth:`columns`, :meth:`answers` and the frame made
        from them use its arrays without a copy. Later results are recorded as before (and
        still win). Not to be called between a :meth:`mark` and the use of that mark."""
        if self._aligned or not self._parts:
            return self
        # Arrow's allocator keeps freed pages (the blocks the files were parsed in, many by
        # the JSON reader's threads) and does not reuse them all for the aligned columns:
        # given back before and after (on 400,000 rows the job's peak went 534 -> 475 MB)
        give_back()
        cols = self.columns()
        arrays = [
            pa.array(np.arange(self.n_rows, dtype=np.int64)),
            pa.array(self.status, pa.int8()),
            *(cols[name] for name in _PART.names[2:]),
        ]
        table = pa.Table.from_arrays(arrays, schema=_PART)
        self._folded += len(self._parts) - 1
        self._parts, self._part_repeats = [table], [np.empty(0, dtype=np.int64)]
        self._aligned = True
        del cols, arrays, table
        give_back()
        return self

    # ---- internals -----------------------------------------------------------------------

    def _add_part(self, pos: np.ndarray, status: np.ndarray, **cols: pa.Array) -> None:
        k = len(pos)
        arrays = [pa.array(pos, pa.int64()), pa.array(status, pa.int8())]
        for f in list(_PART)[2:]:
            a = cols.get(f.name)
            if a is None:
                a = pa.nulls(k, f.type)
            elif a.type != f.type:
                a = a.cast(f.type)
            arrays.append(a)
        # within a part, too, the last line for a row wins (numpy's fancy assignment does not
        # promise an order for repeated indices, so resolve it explicitly)
        repeats = np.empty(0, dtype=np.int64)
        if k > 1 and bool((seen := np.bincount(pos, minlength=self.n_rows) > 1).any()):
            repeats = np.flatnonzero(seen)
            rev = pos[::-1]
            _, first_in_rev = np.unique(rev, return_index=True)
            keep = np.sort(k - 1 - first_in_rev)
            arrays = [a.take(pa.array(keep)) for a in arrays]
            pos, status = pos[keep], status[keep]
        if len(self._dup_pos):
            arrays, pos, status = _fan_out(self._dup_pos, self._dup_src, arrays, pos, status)
        self.status[pos] = status
        self._parts.append(pa.Table.from_arrays(arrays, schema=_PART))
        self._aligned = False
        self._part_repeats.append(repeats)

    def _join_parts(self, start: int) -> None:
        """The parts of one file (one per block) made one, in row order: a job's parts then
        hold its rows in long runs, which the fold slices instead of copying (.align)."""
        if start < len(self._parts):
            one, again = _one_part(self._parts[start:], self._part_repeats[start:])
            self._parts[start:], self._part_repeats[start:] = [one], [again]
        give_back()  # the file's blocks, parsed on the JSON reader's threads, now freed

    def _add_block(self, block: bytes | memoryview, source: str) -> int:
        table = self._parse_block(block)
        if table is None:
            return self._add_block_slow(block, source)
        if table.num_rows == 0 or not table.column("custom_id").num_chunks:
            return 0
        cid = table.column("custom_id").chunk(0)
        pos = self.positions_of(cid)
        self._note_foreign(pos, cid, source)
        is_err, cols = _block_columns(table)
        status = np.where(is_err.to_numpy(zero_copy_only=False), ERROR, OK).astype(np.int8)
        good = pos >= 0
        if not good.all():
            mask = pa.array(good)
            cols = {k: v.filter(mask) for k, v in cols.items()}
            pos, status = pos[good], status[good]
        self._add_part(pos, status, **cols)
        return len(pos)

    @staticmethod
    def _parse_block(block: bytes | memoryview) -> pa.Table | None:
        """The block read by pyarrow against the fixed schema (``None``: it does not fit;
        read it line by line instead)."""
        try:
            table = _read_block(block, _INNER_BLOCK)
        except pa.ArrowInvalid as exc:
            # a line longer than a piece "straddles" two pieces: read the block as one piece
            if "straddl" not in str(exc):
                return None
            try:
                table = _read_block(block, len(block) + 1)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                return None
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return None
        return table.combine_chunks()

    def _note_foreign(self, pos: np.ndarray, cid: pa.Array, source: str) -> None:
        """Lines whose custom_id this job did not send are ignored, and said so."""
        bad = np.flatnonzero(pos < 0)
        for k in bad[:5]:
            self.problems.append(
                f"{source}: a line has custom_id {cid[int(k)].as_py()!r}, which this job "
                f"did not send; it was ignored."
            )
        if len(bad) > 5:
            self.problems.append(f"{source}: {len(bad) - 5} more such lines were ignored.")

    def positions_of(self, cid: pa.Array) -> np.ndarray:
        """Row position of each custom_id, -1 where it is not one of this job's."""
        n = self.n_rows
        if self._ids is not None:
            idx = pc.fill_null(pc.index_in(cid, value_set=self._ids), -1)
            return np.asarray(idx.to_numpy(), dtype=np.int64)
        ok_prefix = pc.fill_null(pc.starts_with(cid, "row-"), False)
        digits = pc.utf8_slice_codeunits(cid, 4)
        ok = pc.and_(ok_prefix, pc.fill_null(pc.utf8_is_digit(digits), False))
        ok = pc.and_(ok, pc.less_equal(pc.utf8_length(digits), 18))
        nums = pc.cast(pc.if_else(ok, digits, pa.scalar("-1")), pa.int64()).to_numpy()
        nums = nums.copy()
        nums[(nums < 0) | (nums >= n)] = -1
        return nums

    def _add_block_slow(self, block: bytes | memoryview, source: str) -> int:
        """Line-by-line fallback for blocks the fixed schema does not fit."""
        pos: list[int] = []
        status: list[int] = []
        text: list[str | None] = []
        finish: list[str | None] = []
        codes: list[str | None] = []
        msgs: list[str | None] = []
        toks: list[list[int | None]] = [[], [], []]
        choices: list[Any] = []
        logprobs: list[Any] = []
        for raw in bytes(block).split(b"\n"):
            if not raw.strip():
                continue
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self.problems.append(
                    f"{source}: a line is not valid JSON ({raw[:60]!r}...); it was ignored."
                )
                continue
            if not isinstance(obj, dict):
                self.problems.append(f"{source}: a line is not a JSON object; it was ignored.")
                continue
            cid = obj.get("custom_id")
            p = self.position_of(cid)
            if p < 0:
                self.problems.append(
                    f"{source}: a line has custom_id {cid!r}, which this job did not send; "
                    f"it was ignored."
                )
                continue
            row = _parse_line(obj)
            pos.append(p)
            status.append(row[0])
            text.append(row[1])
            finish.append(row[2])
            codes.append(row[3])
            msgs.append(row[4])
            for i in range(3):
                toks[i].append(row[5 + i])
            choices.append(row[8])
            logprobs.append(row[9])
        if not pos:
            return 0
        self._add_part(
            np.array(pos, np.int64),
            np.array(status, np.int8),
            text=pa.array(text, pa.large_string()),
            finish_reason=pa.array(finish, pa.string()),
            error_code=pa.array(codes, pa.string()),
            error=pa.array(msgs, pa.large_string()),
            prompt_tokens=pa.array(toks[0], pa.int64()),
            completion_tokens=pa.array(toks[1], pa.int64()),
            total_tokens=pa.array(toks[2], pa.int64()),
            choices=pa.array(choices, _CHOICES),
            logprobs=pa.array(logprobs, _TOKENS),
        )
        return len(pos)

    def position_of(self, cid: Any) -> int:
        if not isinstance(cid, str):
            return -1
        return int(self.positions_of(pa.array([cid], pa.string()))[0])


def _one_part(
    parts: Sequence[pa.Table], repeats: Sequence[np.ndarray]
) -> tuple[pa.Table, np.ndarray]:
    """One file's parts as one in row order (:func:`~.align.in_row_order`), with each
    one-choice list still made over the answer's text (a reorder copies the lists' values
    apart from the text otherwise, and the answers would be held twice)."""
    i = _PART.get_field_index("choices")
    lengths = [pc.list_value_length(p.column(i)) for p in parts]
    if any(pc.any(pc.not_equal(n, 1)).as_py() for n in lengths):  # n > 1: lists as they are
        return in_row_order(parts, repeats)
    slim = [p.set_column(i, "choices", n) for p, n in zip(parts, lengths, strict=True)]
    one, again = in_row_order(slim, repeats)
    choices = singleton_lists(one.column("text"), pc.is_null(one.column(i)), _CHOICES)
    return one.set_column(i, _PART.field(i), choices), again


def _fan_out(
    dup_pos: np.ndarray,
    dup_src: np.ndarray,
    arrays: list[pa.Array],
    pos: np.ndarray,
    status: np.ndarray,
) -> tuple[list[pa.Array], np.ndarray, np.ndarray]:
    """Append a copy of each result row for the rows that share its request (row
    ``dup_pos[k]`` shares ``dup_src[k]``'s)."""
    order = np.argsort(pos, kind="stable")
    sorted_pos = pos[order]
    k = np.searchsorted(sorted_pos, dup_src)
    hit = k < len(sorted_pos)
    hit[hit] = sorted_pos[k[hit]] == dup_src[hit]
    if not hit.any():
        return arrays, pos, status
    src_rows = order[k[hit]]
    take = pa.array(src_rows)
    extra_pos = dup_pos[hit]
    arrays = [
        pa.concat_arrays([arrays[0], pa.array(extra_pos, pa.int64())]),
        pa.concat_arrays([arrays[1], arrays[1].take(take)]),
        *(pa.concat_arrays([a, a.take(take)]) for a in arrays[2:]),
    ]
    return arrays, np.concatenate([pos, extra_pos]), np.concatenate([status, status[src_rows]])


def row_costs(
    prompt_tokens: pa.Array, completion_tokens: pa.Array, shared: np.ndarray, *, model: str | None
) -> pa.Array:
    """What each row's request cost, in US dollars, from its usage and the catalog's list
    prices for ``model`` (:mod:`zgpu_pandas._catalog`). A row that shared another row's
    request costs 0 (the other row carries it), so the column sums to what was paid. Null
    where the usage is unknown (not answered, or an error without usage) or the model has no
    listed price. Batches are billed at a discount to list price that the service does not
    publish, so for a batch job this is an upper bound."""
    from .._catalog import get_model

    info = get_model(model) if model else None
    n = len(shared)
    if info is None or info.input_per_million is None or info.output_per_million is None:
        return pa.nulls(n, pa.float64())
    # in numpy, into one buffer: the same sum as Arrow kernels would give, without their
    # five intermediate columns (~40 MB at once on a million rows)
    known = np.ones(n, dtype=bool)
    cost = np.zeros(n, dtype=np.float64)
    for tokens, price in (
        (prompt_tokens, info.input_per_million), (completion_tokens, info.output_per_million)
    ):
        flat = tokens.combine_chunks() if isinstance(tokens, pa.ChunkedArray) else tokens
        known &= np.asarray(flat.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        values = np.asarray(flat.to_numpy(zero_copy_only=False))  # float NaN where null
        cost += values * price  # nulls give NaN, masked below
        del flat, values
    cost /= 1e6
    cost[shared] = 0.0
    return pa.array(cost, pa.float64(), mask=~known & ~shared)


def total_cost(answers: pa.Table, output: str) -> float:
    """The sum of the ``{output}_cost`` column of ``answers``; ``nan`` when no row has a
    cost although some row has usage (a model without a listed price: "free" is never
    claimed for an unknown price)."""
    cost = answers.column(f"{output}_cost")
    used = answers.column(f"{output}_total_tokens")
    if cost.null_count == len(cost) and used.null_count < len(used):
        return float("nan")
    return float(pc.sum(cost).as_py() or 0.0)


def _read_block(block: bytes | memoryview, piece: int) -> pa.Table:
    return pajson.read_json(
        pa.BufferReader(pa.py_buffer(block)),  # read in place (a file object would copy it)
        read_options=pajson.ReadOptions(block_size=piece, use_threads=True),
        parse_options=_PARSE,
    )


def _choice_texts(choices: pa.Array, is_err: pa.Array, text: pa.Array) -> pa.Array:
    """The message content of every choice of each row, as a list (null for errors).
    ``text`` is each row's first choice's content (null for errors): when every answered
    row has one choice, the lists are made over it, so the answers are held once."""
    mask = pc.or_(pc.fill_null(is_err, False), pc.is_null(choices))
    lengths = pc.fill_null(pc.list_value_length(choices), 0).to_numpy(zero_copy_only=False)
    if (lengths[~mask.to_numpy(zero_copy_only=False)] == 1).all():
        return singleton_lists(text, mask, _CHOICES)
    flat = pc.list_flatten(choices)
    texts = pc.struct_field(pc.struct_field(flat, "message"), "content")
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), texts, type=_CHOICES, mask=mask)


def _aligned_choices(align: Alignment, text: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The ``choices`` column in row order. An answered row's list of one choice always
    holds exactly its ``text`` (both are read from the same line), so when every list has
    one choice (``n`` = 1, the usual case) the lists are made over the aligned ``text``
    itself: the answers are then held once, not twice."""
    lengths = align.column("choices", pc.list_value_length)
    if pc.any(pc.not_equal(lengths, 1)).as_py():  # n > 1 somewhere: the lists themselves
        return align.column("choices")
    return singleton_lists(text, pc.is_null(lengths), _CHOICES)


def _first_choice(choices: pa.Array) -> pa.Array:
    """``choices[0]`` of each row, null where the list is null or empty."""
    sliced = pc.list_slice(choices, 0, 1)
    flat = pc.list_flatten(sliced)
    parents = pc.list_parent_indices(sliced).to_numpy()
    idx = np.full(len(choices), -1, dtype=np.int64)
    idx[parents] = np.arange(len(parents))
    return flat.take(pa.array(idx, mask=idx < 0))


def _int_or_none(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str_or_none(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else orjson.dumps(v).decode()


def _content_text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones, in order
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if texts and all(isinstance(t, str) for t in texts):
            return "".join(t for t in texts if isinstance(t, str))
    return orjson.dumps(content).decode()


def _token_list(tokens: Any) -> list[dict[str, Any]] | None:
    """``logprobs.content`` kept to the fields of the column's type (token, logprob,
    top_logprobs), ``None`` when the line has none."""
    if not isinstance(tokens, list):
        return None
    out = []
    for t in tokens:
        t = _dict(t)
        top = t.get("top_logprobs")
        out.append(
            {
                "token": _str_or_none(t.get("token")),
                "logprob": _float_or_none(t.get("logprob")),
                "top_logprobs": [
                    {
                        "token": _str_or_none(_dict(x).get("token")),
                        "logprob": _float_or_none(_dict(x).get("logprob")),
                    }
                    for x in top
                ]
                if isinstance(top, list)
                else None,
            }
        )
    return out


def _float_or_none(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


#: the old API's code in front of a line error's message: "[legacy:http_500] "
_LEGACY_PREFIX = r"^\[legacy:[^\]]*\] "


def _without_legacy(message: str | None) -> str | None:
    return None if message is None else re.sub(_LEGACY_PREFIX, "", message, count=1)


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _parse_line(obj: dict[str, Any]) -> tuple[Any, ...]:
    """(status, text, finish_reason, error_code, error, prompt, completion, total tokens)
    of one output or error line, with the same meaning as the columnar path."""
    err = obj.get("error")
    resp = obj.get("response")
    body = _dict(resp.get("body")) if isinstance(resp, dict) else {}
    usage = _dict(body.get("usage"))
    tok = (
        _int_or_none(usage.get("prompt_tokens")),
        _int_or_none(usage.get("completion_tokens")),
        _int_or_none(usage.get("total_tokens")),
    )
    if isinstance(err, dict):
        return (
            ERROR,
            None,
            None,
            _str_or_none(err.get("code")),
            _without_legacy(_str_or_none(err.get("message"))),
            *tok,
            None,
            None,
        )
    if not isinstance(resp, dict):
        return (
            ERROR,
            None,
            None,
            "missing_response",
            "the line has neither a response nor an error",
            *tok,
            None,
            None,
        )
    sc = resp.get("status_code")
    if isinstance(sc, int) and not 200 <= sc < 300:
        berr = _dict(body.get("error"))
        code = _str_or_none(berr.get("code")) or f"http_{sc}"
        said = _without_legacy(_str_or_none(berr.get("message")))
        return (ERROR, None, None, code, said, *tok, None, None)
    choices = body.get("choices")
    first = _dict(choices[0]) if isinstance(choices, list) and choices else {}
    message = _dict(first.get("message"))
    texts = (
        [_content_text(_dict(_dict(c).get("message")).get("content")) for c in choices]
        if isinstance(choices, list)
        else None
    )
    tokens = _dict(first.get("logprobs")).get("content")
    return (
        OK,
        _content_text(message.get("content")),
        _str_or_none(first.get("finish_reason")),
        None,
        None,
        *tok,
        texts,
        _token_list(tokens),
    )


def _blocks_from_lines(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Join lines into blocks of about ``_BLOCK_BYTES``.

    Lines are taken in groups with ``islice`` (no Python code runs per line); the group size
    follows the average line size seen so far, so a block stays near the target whether
    the lines are 200 bytes or 200 KB."""
    it = iter(lines)
    count = 256
    while True:
        group = list(islice(it, count))
        if not group:
            return
        size = sum(map(len, group))
        # Lines with their own "\n" leave a blank line behind them: both readers skip it.
        yield b"\n".join([*group, b""])
        avg = max(size // len(group), 1)
        count = max(1, min(_BLOCK_BYTES // avg, 1 << 20))


def _block_columns(table: pa.Table) -> tuple[pa.Array, dict[str, pa.Array]]:
    """Per line of a parsed block: whether it is an error, and its result columns (answer
    text and finish reason for answers; code and message for errors; the token counts)."""
    resp = table.column("response").chunk(0)
    top_err = table.column("error").chunk(0)
    sc = pc.struct_field(resp, "status_code")
    body = pc.struct_field(resp, "body")
    first = _first_choice(pc.struct_field(body, "choices"))
    usage = pc.struct_field(body, "usage")
    body_err = pc.struct_field(body, "error")
    has_top = top_err.is_valid()
    sc_bad = pc.fill_null(pc.or_(pc.less(sc, 200), pc.greater_equal(sc, 300)), False)
    no_resp = pc.invert(resp.is_valid())
    is_err = pc.or_(pc.or_(has_top, sc_bad), no_resp)
    http_code = pc.binary_join_element_wise(
        pa.scalar("http_"), pc.cast(sc, pa.string()), pa.scalar("")
    )
    none_code, none_text = pa.scalar(None, pa.string()), pa.scalar(None, pa.large_string())
    code = pc.if_else(
        has_top,
        pc.struct_field(top_err, "code"),
        pc.if_else(sc_bad, pc.coalesce(pc.struct_field(body_err, "code"), http_code), none_code),
    )
    message = pc.if_else(
        has_top,
        pc.struct_field(top_err, "message"),
        pc.if_else(sc_bad, pc.struct_field(body_err, "message"), none_text),
    )
    bare = pc.and_(no_resp, pc.invert(has_top))
    code = pc.if_else(bare, pa.scalar("missing_response"), code)
    message = pc.if_else(
        bare, pa.scalar("the line has neither a response nor an error", pa.large_string()), message
    )
    text = pc.struct_field(pc.struct_field(first, "message"), "content")
    # The service prefixes line errors with the code of its old API ("[legacy:http_500] ");
    # the code column already says what failed, so the message column keeps the sentence.
    message = pc.replace_substring_regex(message, pattern=_LEGACY_PREFIX, replacement="")
    choices = pc.struct_field(body, "choices")
    text = pc.if_else(is_err, none_text, text)
    return is_err, {
        "choices": _choice_texts(choices, is_err, text),
        "logprobs": pc.if_else(
            is_err,
            pa.scalar(None, _TOKENS),
            pc.struct_field(pc.struct_field(first, "logprobs"), "content"),
        ),
        "text": text,
        "finish_reason": pc.if_else(is_err, none_code, pc.struct_field(first, "finish_reason")),
        "error_code": code,
        "error": message,
        "prompt_tokens": pc.struct_field(usage, "prompt_tokens"),
        "completion_tokens": pc.struct_field(usage, "completion_tokens"),
        "total_tokens": pc.struct_field(usage, "total_tokens"),
    }


def _blocks_from_chunks(chunks: Iterable[bytes]) -> Iterator[bytes | memoryview]:
    """Regroup bytes cut anywhere into blocks of whole lines of about ``_BLOCK_BYTES``.

    The chunks of a block are joined once (nothing when one chunk is the block) and the
    block is handed on as a view up to its last newline; only the part after it is copied,
    to start the next block. Growing one buffer instead held the chunk, the buffer (with
    its spare room) and a copy of the block at once: ~100 MB above the answers kept while
    each 42 MB results file of 50,000 answers was read."""
    parts: list[bytes] = []
    held = 0
    for chunk in chunks:
        if not chunk:
            continue
        # kept past the next read: a copy when the caller may reuse it (a bytearray)
        parts.append(chunk if isinstance(chunk, bytes) else bytes(chunk))
        held += len(chunk)
        if held < _BLOCK_BYTES or b"\n" not in parts[-1]:
            continue  # (a line longer than a block: joined once, when it ends)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        cut = data.rfind(b"\n") + 1  # > 0: the last chunk has a newline
        rest = data[cut:]
        yield memoryview(data)[:cut]
        del data
        parts = [rest] if rest else []
        held = len(rest)
    yield from _last_block(b"".join(parts))


def _last_block(data: bytes) -> Iterator[bytes]:
    """What is left at the end of the input, as a block ending with a newline (none when
    it is blank)."""
    if data.strip():
        yield data if data.endswith(b"\n") else data + b"\n"


def _blocks_from_file(f: IO[bytes]) -> Iterator[bytes | memoryview]:
    """The blocks of a file: each read once, up to its last whole line, the reading going
    back to that line's end for the next block (no copy at all); a file that cannot seek is
    regrouped as chunks, and so is any other file object: a compressed file seeks by
    reading again from its start, a raw stream may return less than asked before its end."""
    raw = getattr(f, "raw", None)
    try:
        plain = isinstance(f, io.BufferedReader | io.BufferedRandom) and (
            isinstance(raw, io.FileIO) and f.seekable()
        )
    except (OSError, ValueError):
        plain = False
    if not plain:
        yield from _blocks_from_chunks(iter(lambda: f.read(_BLOCK_BYTES), b""))
        return
    size = _BLOCK_BYTES
    while data := f.read(size):
        if len(data) < size:  # the end of the file
            yield from _last_block(data)
            return
        cut = data.rfind(b"\n") + 1
        if not cut:  # one line longer than the block: read more from the same place
            f.seek(-len(data), io.SEEK_CUR)
            size *= 2
            continue
        f.seek(cut - len(data), io.SEEK_CUR)
        yield memoryview(data)[:cut]
        del data
        size = _BLOCK_BYTES
