"""Streaming file jobs: :func:`run_files` and ``zgpu-pandas run``.

The input is cut into *parts* of ``part_rows`` consecutive rows (50,000 by default, one
batch's worth of lines). Each part is an ordinary journaled job of the in-memory core
(:func:`zgpu_pandas.core.run.start`), so it inherits everything that path guarantees: the
request rules, dedup, the create tokens that never buy a batch twice, resuming.

Before anything is uploaded, every part is read once and its requests built, nothing sent
(:mod:`._stream_check`): a bad row anywhere stops the run before the first batch is paid for,
and ``max_cost`` is compared with the whole input's estimate. Then two passes over the input
keep memory to about one part (plus its requests and answers):

1. *submit*: each part is read, its request lines built and its batches created, then the
   part is dropped (the journal holds the job);
2. *collect*: in input order, each part is read again, its job found in the journal (no new
   batch), waited for, and written as ``part-000000.parquet``, ``part-000001.parquet``, ...
   (a lexical order that is the input order) with every input column and the answers.

A killed run re-run with the same command finds its parts' jobs in the journal (no new batch)
and skips the part files already written (none is rewritten). A manifest
(``_zgpu_run.json``, ignored by Parquet readers as ``_`` files are) records which inputs and
settings the parts belong to, so parts of another run are never mixed in. ``-o out.parquet``
(or ``.csv``/``.jsonl``) stages the parts in a hidden folder beside it and joins them into the
one file at the end, part by part.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from . import _stream_read
from ._cli_checks import format_of
from ._fs import atomic_path, write_atomic
from .core import checkpoints
from .core.memory import give_back
from .errors import OptionError

if TYPE_CHECKING:
    import pandas as pd

    from ._progress import ProgressOption
    from ._stream_bar import RowsBar
    from ._stream_check import Checked
    from .core.spec import ChatSpec, Connection

__all__ = ["MANIFEST", "PART_ROWS", "StreamRun", "Tally", "prompt_columns"]

#: rows per part: one batch's worth of lines (the service's 50,000-line limit)
PART_ROWS = 50_000
#: the file that says which run a folder of parts belongs to
MANIFEST = "_zgpu_run.json"


def prompt_columns(spec: ChatSpec) -> set[str]:
    """The columns the requests are built from, read as text exactly as written."""
    from .core.requests import _template_fields

    if spec.messages is not None:
        return {str(spec.messages)}
    prompt = str(spec.prompt)
    # a template field with a format spec ("{price:.2f}") asks for the column's real type;
    # a plain field is sent as written
    fields = {f[1] for f in _template_fields(prompt) if f[1] and not f[2]}
    # a plain column name, or a template's fields (with their attribute/index parts cut)
    return {prompt} | {f.split(".")[0].split("[")[0] for f in fields}


def part_name(k: int) -> str:
    return f"part-{k:06d}.parquet"


class StreamRun:
    """One streaming job: its inputs, where the parts go, and the two passes."""

    def __init__(
        self,
        inputs: Sequence[Path],
        dest: str | Path,
        spec: ChatSpec,
        conn: Connection,
        *,
        part_rows: int = PART_ROWS,
        progress: ProgressOption = None,
        poll_interval: float | None = None,
        hint: str = "job",
    ) -> None:
        if not isinstance(part_rows, int) or isinstance(part_rows, bool) or part_rows < 1:
            raise OptionError(f"part_rows must be a whole number >= 1, not {part_rows!r}")
        self.inputs, self.spec, self.conn = list(inputs), spec, conn
        self.dest = Path(dest)
        if progress not in (None, True, False, "tqdm", "widget"):
            raise OptionError(
                f"progress must be None, True, False, 'widget' or 'tqdm', not {progress!r}"
            )
        self.part_rows, self.progress, self.poll_interval = part_rows, progress, poll_interval
        self.hint = hint
        # "" for a folder of parts, else the one output file's format
        self.fmt = "" if is_folder_output(dest) else format_of(Path(dest), what="output file")
        # a folder of parts: the output itself, or a hidden staging folder beside the file
        self.parts_dir = (
            self.dest if not self.fmt else self.dest.parent / f".{self.dest.name}.zgpu-parts"
        )
        self.text_columns = prompt_columns(spec)
        self.batches_created = 0

    # ---- the run -------------------------------------------------------------------------

    def run(self) -> Path:
        """Check the whole input, submit every part, then collect and write them in order;
        the output path."""
        from ._stream_bar import RowsBar
        from ._stream_check import check_budget

        _stream_read.check_inputs(self.inputs)
        checked = self._prepare_folder()
        with self.conn.session() as conn:  # one client for every part's job
            self._check_model(conn)
            total = None if checked is None else checked.rows
            with RowsBar(total=total, progress=self.progress) as bar:
                if checked is None:
                    bar.stage("checking")
                    checked = self._check_all(bar)
                    bar.restart(checked.rows)
                check_budget(checked, self.spec)  # the whole input's estimate, not a part's
                done = self._written()
                self._submit_all(conn, done, bar, checked.parts)
                self._collect_all(conn, done, bar, checked)
        #: how the rows ended, for a summary
        self.tally = self._tally()
        if self.fmt:
            self._join()
        return self.dest

    def _check_model(self, conn: Connection) -> None:
        """The model id against the catalog before the input is read through (each part's
        job checks it again; OpenAI's models are not listed)."""
        client = conn.client
        if self.spec.check_model and client is not None and client.provider == "zerogpu":
            from .core.preflight import check_model

            check_model(self.spec.model)

    def _located_parts(self) -> Iterator[tuple[pa.Table, list[_stream_read.Span]]]:
        slices = _stream_read.iter_located(
            self.inputs, text_columns=self.text_columns, slice_rows=min(self.part_rows, 65_536)
        )
        return _stream_read.iter_located_parts(slices, self.part_rows)

    def _parts(self) -> Iterator[pa.Table]:
        return (table for table, _ in self._located_parts())

    def _check_all(self, bar: RowsBar) -> Checked:
        """Every part's requests built once before anything is uploaded (a bad row in the
        last part stops the run before the first one is paid for); the result is kept in
        the manifest, so a re-run of the same command does not read the input for it."""
        from ._stream_check import check_parts

        checked = check_parts(self._located_parts(), self.spec, advance=bar.advance)
        write_atomic(
            self.parts_dir / MANIFEST,
            orjson.dumps({**self._manifest(), "checked": checked.to_json()}),
        )
        return checked

    def _start(self, table: pa.Table, conn: Connection, *, fresh: bool) -> Any:
        from .core import run

        frame = _to_pandas(table)
        spec = dataclasses.replace(self.spec, fresh=fresh)
        return run.start(
            frame, spec, conn, progress=False, poll_interval=self.poll_interval,
            hint=self.hint, announce=False,
        )

    def _submit_all(self, conn: Connection, done: set[int], bar: RowsBar, parts: int) -> None:
        """Pass 1: every part not written yet gets its batches (or finds them)."""
        resumed: list[str] = []
        for k, table in enumerate(self._parts()):
            if k in done:
                continue
            bar.stage("creating batches", f"part {k + 1}/{parts}")
            job = self._start(table, conn, fresh=self.spec.fresh)
            self.batches_created += job.creates_sent
            if job.resume_note:
                resumed.append(f"part {k}: {job.resume_note}")
            del job, table  # the journal holds the job; memory holds one part at a time
            _release()
            checkpoints.checkpoint(f"after_submit:{k}")
        if done or resumed:  # said even with progress off: a re-run is not a new job
            kept = f"{len(done)} part(s) already written were kept; " if done else ""
            more = f" (and {len(resumed) - 1} more part(s) resumed)" if len(resumed) > 1 else ""
            first = resumed[0] if resumed else "every other part was new"
            bar.write(f"{kept}{first}{more}")

    def _collect_all(
        self, conn: Connection, done: set[int], bar: RowsBar, checked: Checked
    ) -> None:
        """Pass 2: in input order, each part's job found again, waited for and written."""
        reference: pa.Schema | None = self._reference_schema(done)
        bar.advance(sum(_part_size(k, self.part_rows, checked.rows) for k in done))
        for k, table in enumerate(self._parts()):
            if k in done:
                continue
            bar.stage("collecting", f"part {k + 1}/{checked.parts}")
            job = self._start(table, conn, fresh=False)  # the job pass 1 made: no new batch
            self.batches_created += job.creates_sent
            result = job.result(timeout=self.spec.timeout)
            out = _to_arrow(result, table, json_text=self.fmt != "jsonl")
            if reference is None:
                reference = out.schema
            out = _conform(out, reference, k)
            with atomic_path(self.parts_dir / part_name(k), private=False) as tmp:
                pq.write_table(out, tmp)
            bar.advance(out.num_rows)
            del job, table, result, out
            _release()
            checkpoints.checkpoint(f"after_part:{k}")
        bar.stage("done")

    # ---- the folder of parts -------------------------------------------------------------

    def _manifest(self) -> dict[str, Any]:
        """Which inputs and settings the parts belong to (not the job's name or retries)."""
        spec = dataclasses.replace(
            self.spec, fresh=False, name=None, retries=0, timeout=None, max_cost=None
        )
        files = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in self.inputs]
        key = repr((files, repr(spec), self.part_rows)).encode()
        return {"run": hashlib.sha256(key).hexdigest(), "inputs": len(files)}

    def _prepare_folder(self) -> Checked | None:
        """The folder of parts, ready for this run: parts of this very run are kept (a
        re-run goes on from them); parts of another run are never mixed in. A hidden
        staging folder is ours and simply emptied; the user's own output folder is only
        emptied with ``fresh``. Returns the whole-input check of this very run when an
        earlier one passed it (then the input is not read through again for it)."""
        from ._stream_check import Checked

        manifest = self._manifest()
        path = self.parts_dir / MANIFEST
        if self.parts_dir.exists() and not self.parts_dir.is_dir():
            raise OptionError(f"output {str(self.parts_dir)!r} is a file, not a folder")
        old = _read_manifest(path)
        same = old is not None and old.get("run") == manifest["run"]
        parts = list(self.parts_dir.glob("part-*.parquet"))
        if old is None and not self.fmt and self.parts_dir.is_dir() and any(
            self.parts_dir.iterdir()
        ):
            raise OptionError(
                f"output folder {str(self.dest)!r} is not empty and holds no run of this "
                f"command; choose an empty or new folder"
            )
        if old is not None and not same and parts and not (self.fmt or self.spec.fresh):
            raise OptionError(
                f"{str(self.dest)!r} holds parts of another run (other inputs or settings); "
                f"choose another output, remove it, or pass --fresh (fresh=True) to replace "
                f"them"
            )
        if same and not self.spec.fresh:
            return Checked.from_json((old or {}).get("checked"))
        for f in parts:
            f.unlink()
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(path, orjson.dumps(manifest))
        return None

    def _written(self) -> set[int]:
        return {int(f.name[5:11]) for f in self.parts_dir.glob("part-*.parquet")}

    def _reference_schema(self, done: set[int]) -> pa.Schema | None:
        return pq.read_schema(self.parts_dir / part_name(min(done))) if done else None

    def part_files(self) -> list[Path]:
        return sorted(self.parts_dir.glob("part-*.parquet"))

    def _join(self) -> None:
        """The parts into the one output file, part by part, then the staging folder goes."""
        files = self.part_files()
        with atomic_path(self.dest, private=False) as tmp:
            if self.fmt == "parquet":
                schema = pq.read_schema(files[0]) if files else pa.schema([])
                with pq.ParquetWriter(tmp, schema) as writer:
                    for f in files:
                        writer.write_table(pq.read_table(f))
            else:
                with open(tmp, "wb") as fh:
                    for k, f in enumerate(files):
                        df = pq.read_table(f).to_pandas()
                        if self.fmt == "csv":
                            df.to_csv(fh, index=False, header=k == 0)
                        else:
                            text = df.to_json(orient="records", lines=True, force_ascii=False)
                            fh.write(text.rstrip("\n").encode() + b"\n" if len(df) else b"")
        shutil.rmtree(self.parts_dir, ignore_errors=True)

    def _tally(self) -> Tally:
        """Rows by status and failures by (code, message), read part by part from the
        status and error columns alone (memory stays one part's three columns)."""
        prefix = self.spec.output
        cols = [f"{prefix}_status", f"{prefix}_error_code", f"{prefix}_error"]
        tally = Tally()
        for f in self.part_files():
            df = pq.read_table(f, columns=cols).to_pandas()
            status = df[cols[0]].astype(object)
            tally.rows += len(df)
            tally.status.update(status.value_counts().to_dict())
            failed = df[status.isin(["error", "parse_error"])]
            codes = failed[cols[1]].astype(object).fillna(status[failed.index])
            msgs = failed[cols[2]].astype(object).where(failed[cols[2]].notna(), None)
            tally.failures.update(zip(codes.tolist(), msgs.tolist(), strict=True))
        return tally


@dataclasses.dataclass
class Tally:
    """How a run's rows ended: rows by status, failed rows by (error code, message)."""

    rows: int = 0
    status: Counter[str] = dataclasses.field(default_factory=Counter)
    failures: Counter[tuple[str, str | None]] = dataclasses.field(default_factory=Counter)


def _read_manifest(path: Path) -> dict[str, Any] | None:
    """A folder's manifest; an unreadable one counts as another run's."""
    if not path.exists():
        return None
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _part_size(k: int, part_rows: int, rows: int) -> int:
    """How many rows part ``k`` holds (every part is full but the last)."""
    return max(0, min(part_rows, rows - k * part_rows))


def _release() -> None:
    """Free a finished part now: a job sits in reference cycles (its parts point back at
    it), which only a full collection frees, and Arrow's allocator keeps freed pages until
    asked; without this, memory grew with the number of parts (bench/README.md)."""
    gc.collect()
    give_back()


def is_folder_output(dest: str | Path) -> bool:
    """Whether the output is a folder of parts: an existing folder, or a name ending in
    ``/`` (a name without an extension stays an error: it is more often a typo)."""
    return Path(dest).is_dir() or str(dest).endswith(("/", "\\"))


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """A part as a pandas frame whose columns keep their Arrow types exactly (an integer
    column with a missing cell stays integer), so they are written back unchanged."""
    import pandas as pd

    return table.to_pandas(types_mapper=pd.ArrowDtype)


def _to_arrow(result: pd.DataFrame, part: pa.Table, *, json_text: bool) -> pa.Table:
    """The part's rows to write: each input column as it was read (its Arrow type exactly,
    so an integer column stays integer), then the answer columns as the in-memory path
    writes them (pandas' metadata for those only: ``Int64`` counts read back as ``Int64``;
    input columns read back as ``pandas.read_parquet`` reads the user's own file)."""
    import pandas as pd

    from .frames._export import for_csv

    frame = for_csv(result) if json_text else result
    def unchanged(c: Any) -> bool:
        dtype = frame[c].dtype
        return (
            c in part.column_names
            and isinstance(dtype, pd.ArrowDtype)
            and dtype.pyarrow_dtype == part.schema.field(c).type
        )

    kept = [c for c in frame.columns if unchanged(c)]
    answers = pa.Table.from_pandas(frame.drop(columns=kept), preserve_index=False)
    columns = [part.column(c) if c in kept else answers.column(c) for c in frame.columns]
    table = pa.table(columns, names=[str(c) for c in frame.columns])
    return table.replace_schema_metadata(answers.schema.metadata)


def _conform(table: pa.Table, schema: pa.Schema, k: int) -> pa.Table:
    """A part with the first part's column types (a column all missing in one part is typed
    null there), so that the parts read back as one dataset."""
    if table.schema.equals(schema):
        return table
    try:
        return table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError) as exc:
        raise OptionError(
            f"part {k} of the input has other columns or column types than part 0 "
            f"({str(exc).splitlines()[0]}); give inputs of one schema"
        ) from None
