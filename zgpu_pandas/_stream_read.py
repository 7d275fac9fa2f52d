"""Input files read in slices, for streaming jobs (:func:`zgpu_pandas.run_files`).

Parquet, CSV and JSONL files (one file, several, a directory or a glob) are read as Arrow
record batches, in a fixed order (the paths sorted, as ``pandas.read_parquet`` orders a
directory), so that the same command always cuts the same rows into the same parts.

CSV columns get real types, decided over every file before the first slice is read (a
streaming reader that guessed from the first block would fail, or change its mind, later):
a column is ``int64`` when every cell is an integer written plainly (``12``, ``-3``; ``007``
keeps its zeros as text), ``float64`` when every cell is a plain number, ``bool`` when every
cell is ``true``/``false`` (either case), otherwise text. Only an empty cell is missing
(``NA`` or ``null`` are text). Prompt columns are always read as text exactly as written.

Example::

    paths = expand_inputs(["data/"])               # the files, sorted
    for batch in iter_slices(paths, text_columns={"review"}, slice_rows=10_000):
        ...                                         # a pyarrow.RecordBatch
"""

from __future__ import annotations

import contextlib
import glob
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ._cli_checks import input_format
from .errors import OptionError, ZgpuError

__all__ = [
    "Span",
    "check_inputs",
    "csv_types",
    "expand_inputs",
    "iter_located",
    "iter_located_parts",
    "iter_parts",
    "iter_slices",
]

# an integer that fits int64 for sure (19 digits may not): longer ones stay text
_INT = r"^-?(0|[1-9][0-9]{0,17})$"
# a number whose whole part a float64 holds exactly (up to 15 digits); longer: text
_NUMBER = r"^-?(0|[1-9][0-9]{0,14})(\.[0-9]+)?([eE][-+]?[0-9]+)?$|^-?\.[0-9]+$"
_BOOL = r"^(true|false|True|False|TRUE|FALSE)$"
_SUFFIXES = (".parquet", ".pq", ".csv", ".jsonl", ".ndjson")


def expand_inputs(inputs: str | Path | Sequence[str | Path]) -> list[Path]:
    """The input files: each item a file, a directory (its Parquet/CSV/JSONL files, sorted,
    hidden ones and ``_``-prefixed ones left out as Parquet datasets do) or a glob. One
    format for all of them; an :class:`OptionError` when nothing matches or formats mix."""
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in _SUFFIXES
                and not any(part[:1] in "._" for part in f.relative_to(p).parts)
            )
            if not found:
                raise OptionError(f"input folder {str(p)!r} holds no .parquet, .csv or .jsonl file")
            paths.extend(found)
        elif p.exists():
            paths.append(p)
        elif glob.has_magic(str(item)):
            found = sorted(Path(f) for f in glob.glob(str(item)) if Path(f).is_file())
            if not found:
                raise OptionError(f"no file matches {str(item)!r}")
            paths.extend(found)
        else:
            raise OptionError(f"input file {str(p)!r} does not exist")
    formats = {input_format(p) for p in paths}
    if len(formats) > 1:
        raise OptionError(
            f"the inputs mix formats ({', '.join(sorted(formats))}); give one format at a time"
        )
    return paths


def _csv_names(path: Path) -> list[str]:
    reader = pacsv.open_csv(path, convert_options=pacsv.ConvertOptions(null_values=[""]))
    names = list(reader.schema.names)
    reader.close()
    return names


def _options(types: dict[str, pa.DataType]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types=types,
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        true_values=["true", "True", "TRUE"],
        false_values=["false", "False", "FALSE"],
    )


def csv_types(paths: Sequence[Path], text_columns: Iterable[str]) -> dict[str, pa.DataType]:
    """Each CSV column's type over all of ``paths`` (one streaming pass reading text)."""
    with _reading(paths[0], "csv"):
        names = _csv_names(paths[0])
    keep_text = set(text_columns)
    # candidates still possible per column, narrowest first
    left = {n: [] if n in keep_text else ["int", "number", "bool"] for n in names}
    seen = dict.fromkeys(names, False)
    pattern = {"int": _INT, "number": _NUMBER, "bool": _BOOL}
    for path in paths:
        with _reading(path, "csv"):
            if _csv_names(path) != names:
                raise OptionError(
                    f"{str(path)!r} has other columns than {str(paths[0])!r}; CSV inputs "
                    f"read together must share their header"
                )
            text = _options(dict.fromkeys(names, pa.string()))
            for batch in pacsv.open_csv(path, convert_options=text):
                for name, col in zip(names, batch.columns, strict=True):
                    if left[name]:
                        valid = col.drop_null()
                        seen[name] = seen[name] or len(valid) > 0
                        left[name] = [k for k in left[name] if _all_match(valid, pattern[k])]
    types: dict[str, pa.DataType] = {}
    for name in names:
        kinds = left[name] if seen[name] else []
        if "int" in kinds:
            types[name] = pa.int64()
        elif "number" in kinds:
            types[name] = pa.float64()
        elif "bool" in kinds:
            types[name] = pa.bool_()
        else:
            types[name] = pa.string()
    return types


def check_inputs(paths: Sequence[Path]) -> None:
    """Parquet inputs opened (their footers read) before anything is sent, so a damaged
    file is named at once, not after the parts before it were paid for. CSV inputs are
    read whole by the type pass (:func:`csv_types`) before the first part is sent."""
    for path in paths:
        if input_format(path) == "parquet":
            with _reading(path, "parquet"):
                pq.read_schema(path)


@contextlib.contextmanager
def _reading(path: Path, fmt: str) -> Iterator[None]:
    """pandas' and pyarrow's read errors as one line naming the file."""
    try:
        yield
    except ZgpuError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, pa.ArrowException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OptionError(f"cannot read {str(path)!r} as {fmt.upper()}: {first}") from None


def _all_match(values: pa.Array, regex: str) -> bool:
    return len(values) == 0 or bool(pc.all(pc.match_substring_regex(values, regex)).as_py())


def iter_slices(
    paths: Sequence[Path], *, text_columns: Iterable[str], slice_rows: int
) -> Iterator[pa.RecordBatch]:
    """Every row of ``paths`` in order, as record batches of at most ``slice_rows`` rows."""
    for _, _, batch in iter_located(paths, text_columns=text_columns, slice_rows=slice_rows):
        yield batch


def iter_located(
    paths: Sequence[Path], *, text_columns: Iterable[str], slice_rows: int
) -> Iterator[tuple[Path, int, pa.RecordBatch]]:
    """:func:`iter_slices` with where each slice comes from: its file and the number of its
    first row in that file (0-based, the header not counted), so a bad row can be named."""
    fmt = input_format(paths[0])
    types = csv_types(paths, text_columns) if fmt == "csv" else {}
    for path in paths:
        row = 0
        with _reading(path, fmt):
            if fmt == "csv":
                batches: Iterable[pa.RecordBatch] = (
                    cut
                    for batch in pacsv.open_csv(path, convert_options=_options(types))
                    for cut in _cut(batch, slice_rows)
                )
            elif fmt == "parquet":
                # pre_buffer off (ParquetFile's default in older pyarrow; recent ones turn it
                # on): with it the reader keeps the column chunks of every row group it read
                # until it is closed, so a pass over the input grew by the input's whole
                # compressed size (bench/README.md, "Streaming files")
                reader = pq.ParquetFile(path, pre_buffer=False)
                batches = reader.iter_batches(batch_size=slice_rows)
            else:
                batches = _jsonl_slices(path, slice_rows, set(text_columns))
            for batch in batches:
                yield path, row, batch
                row += batch.num_rows


def _jsonl_slices(
    path: Path, slice_rows: int, text_columns: set[str]
) -> Iterator[pa.RecordBatch]:
    """JSONL through pandas' chunked reader; values keep the types JSON gives them, but the
    prompt columns are text: a JSON string as written, any other value as its JSON text
    (``5``, ``true``, a message list), so that a column mixing numbers and text is read
    and a message list reaches the request as it was written.

    Not ``pyarrow.json.open_json``: it is missing from the oldest pyarrow supported (14),
    and where present it fixes each column's type from the first block, then stops at a
    later line of another type (``1`` then ``1.5``, a number then a text) and cannot read a
    JSON number as text."""
    import pandas as pd

    # nullable dtypes: an integer column with a null stays integer (not float64, 1 -> 1.0)
    with pd.read_json(
        path, lines=True, dtype=False, dtype_backend="numpy_nullable", chunksize=slice_rows
    ) as chunks:
        for chunk in chunks:
            for name in text_columns.intersection(chunk.columns):
                chunk[name] = _json_text(chunk[name].astype(object).tolist())
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            yield from _untyped_nulls(table).to_batches()


def _untyped_nulls(table: pa.Table) -> pa.Table:
    """A column all null in this chunk typed ``null`` (the nullable reader calls it
    ``Int64``), so that it takes the type the other chunks give it."""
    for k, column in enumerate(table.columns):
        if len(column) and column.null_count == len(column) and column.type != pa.null():
            table = table.set_column(k, table.field(k).name, pa.nulls(len(column)))
    return table


def _json_text(values: list[Any]) -> pa.Array:
    """Cells as text: strings as they are, missing ones (null, NaN) missing, any other value
    as its JSON text."""
    import pandas as pd

    out = [
        v if isinstance(v, str)
        else None if v is None or v is pd.NA or (isinstance(v, float) and v != v)
        else orjson.dumps(v).decode()
        for v in values
    ]
    return pa.array(out, pa.string())


def _cut(batch: pa.RecordBatch, rows: int) -> Iterator[pa.RecordBatch]:
    for start in range(0, batch.num_rows, rows):
        yield batch.slice(start, rows)


#: where a run of a part's rows comes from: the file, its first row there, how many rows
Span = tuple[Path, int, int]


def iter_parts(slices: Iterable[pa.RecordBatch], part_rows: int) -> Iterator[pa.Table]:
    """The slices regrouped into tables of exactly ``part_rows`` rows (the last one fewer):
    the same input always gives the same parts."""
    located = ((Path(), 0, batch) for batch in slices)
    for table, _ in iter_located_parts(located, part_rows):
        yield table


def iter_located_parts(
    slices: Iterable[tuple[Path, int, pa.RecordBatch]], part_rows: int
) -> Iterator[tuple[pa.Table, list[Span]]]:
    """:func:`iter_parts` over :func:`iter_located` slices, each part with the spans of
    file rows it holds, in order."""
    pending: list[pa.RecordBatch] = []
    spans: list[Span] = []
    have = 0
    for path, row, batch in slices:
        while batch.num_rows:
            take = min(part_rows - have, batch.num_rows)
            pending.append(batch.slice(0, take))
            if spans and spans[-1][0] == path and spans[-1][1] + spans[-1][2] == row:
                spans[-1] = (path, spans[-1][1], spans[-1][2] + take)
            else:
                spans.append((path, row, take))
            have += take
            row += take
            batch = batch.slice(take)
            if have == part_rows:
                yield _table(pending), spans
                pending, spans, have = [], [], 0
    if have:
        yield _table(pending), spans


def _table(batches: list[pa.RecordBatch]) -> pa.Table:
    try:
        return pa.Table.from_batches(batches)
    except pa.ArrowInvalid:  # JSONL chunks may type a column differently (all null in one)
        tables = [pa.Table.from_batches([b]) for b in batches]
        return pa.concat_tables(tables, promote_options="permissive")
