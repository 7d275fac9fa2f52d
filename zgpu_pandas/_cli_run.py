"""``zgpu-pandas run`` and ``zgpu-pandas demo``: the accessor from the command line.

``run`` reads CSV, Parquet or JSONL files, sends one chat request per row through the batch
API, and writes the input plus the answer columns, streaming part by part
(:mod:`zgpu_pandas._stream_run`). It is resumable like the accessor: re-running the same
command after an interruption reattaches to the batches already paid for (the job journal),
it never submits them again.

Exit codes: 0 every sent row answered; 2 some rows failed (the output is still written, with
the errors in it); 1 the job failed or could not start.

Example::

    $ zgpu-pandas run reviews/ --prompt-col review --model LFM2.5-1.2B-Instruct \\
          --system "Tag the sentiment." --param temperature=0 -o tagged.parquet
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from ._cli_checks import format_of, output_format
from ._fs import atomic_path

if TYPE_CHECKING:
    from ._stream_run import Tally

__all__ = ["register", "write_table"]


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write by extension, atomically (a temporary file renamed into place: _fs). List and
    dict cells (structured output) are written as JSON text in CSV and Parquet, so any tool
    reads them back (``json.loads``)."""
    from .frames._export import for_csv

    p = Path(path)
    fmt = format_of(p, what="output file")
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p, private=False) as tmp:  # the user's own output file
        if fmt == "csv":
            for_csv(df).to_csv(tmp, index=False)
        elif fmt == "parquet":
            for_csv(df).to_parquet(tmp, index=False)
        else:
            df.to_json(tmp, orient="records", lines=True, force_ascii=False)
    return p


def _key_value(option: str) -> Any:
    def parse(text: str) -> tuple[str, Any]:
        key, sep, raw = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{option} takes KEY=VALUE, got {text!r}")
        try:
            value: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = raw  # a bare word is a string
        return key, value

    return parse


_parse_param = _key_value("--param")


def _fill(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--fill takes COLUMN=TEXT, got {text!r}")
    return key, value


def _exit_code(tally: Tally) -> int:
    failed, ok = tally.status.get("error", 0), tally.status.get("ok", 0)
    if failed and not ok:
        return 1
    return 2 if failed else 0


def _summary(tally: Tally) -> str:
    """Counts by status, and why rows failed: the one reason when they all failed alike,
    else the most common codes (the messages are in the output file)."""
    text = ", ".join(f"{k}: {v}" for k, v in tally.status.most_common())
    if not tally.failures:
        return text
    codes: Counter[str] = Counter()
    for (code, _), n in tally.failures.items():
        codes[code] += n
    n_failed = sum(codes.values())
    if len(codes) == 1:
        code = next(iter(codes))
        msgs = {m for _, m in tally.failures if m is not None}
        why = f"{code}: {next(iter(msgs))}" if len(msgs) == 1 else code
        every = "every failed row" if n_failed > 1 else "the failed row"
        return f"{text} ({every}: {why})"
    top = ", ".join(f"{c} x{n}" for c, n in codes.most_common(3))
    return f"{text} (failures: {top})"


def _schema(text: str | None) -> Any:
    from ._cli_schema import load_schema

    return None if text is None else load_schema(text)


def _cmd_run(args: argparse.Namespace) -> int:
    from ._stream_read import expand_inputs
    from ._stream_run import StreamRun, is_folder_output
    from .core.messages import CLI_HINT
    from .core.spec import ChatSpec, Connection

    # the inputs and the output checked before anything is read, uploaded or paid for
    paths = expand_inputs(args.input)
    folder = is_folder_output(args.output)
    output_format(Path(args.output) / "part-000000.parquet" if folder else Path(args.output))
    schema = _schema(args.schema)
    spec = ChatSpec(
        prompt=args.template if args.template else args.prompt_col,
        messages=args.messages_col,
        model=args.model,
        system=args.system,
        output=args.output_prefix,
        overwrite=args.overwrite,
        on_oversize=args.on_oversize,
        response_format=schema,
        retries=args.retries,
        fresh=args.fresh,
        max_cost=args.max_cost,
        chat_params=dict(args.param or []),
        extra_body=dict(args.extra) if args.extra else None,
        check_model=not args.no_check_model,
        missing=dict(args.fill) if args.fill else args.missing,
        on_invalid=args.on_invalid,
        name=args.name,
    )
    progress = False if args.quiet else None

    def stream(conn: Connection) -> StreamRun:
        run = StreamRun(
            paths, args.output, spec, conn, part_rows=args.part_rows, progress=progress,
            hint=CLI_HINT,
        )
        run.run()
        return run

    if args.provider == "zerogpu":
        done = stream(Connection(base_url=args.base_url, project_id=args.project_id))
    else:  # Connection has no provider: the client carries it
        from ._cli_resources import make_client

        with make_client(args) as client:
            done = stream(Connection(client=client))
    tally = done.tally
    print(f"{_summary(tally)}; wrote {tally.rows} rows to {done.dest}")
    return _exit_code(tally)


DEMO_SYSTEM = (
    "You tag customer reviews. Reply with JSON only, exactly of the form "
    '{"sentiment": "positive|neutral|negative", "topics": ["..."]}.'
)
DEMO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
        "topics": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["sentiment", "topics"],
    "additionalProperties": False,
}


def _cmd_demo(args: argparse.Namespace) -> int:
    from .datasets import load_reviews
    from .frames import pandas as _registers_df_zgpu  # noqa: F401

    df = load_reviews()
    kwargs: dict[str, Any] = {}
    server = None
    if args.remote:
        print("Tagging the bundled reviews on ZeroGPU (key from ZGPU_API_KEY / ZEROGPU_API_KEY).")
    else:
        from .server import LocalServer

        # A visible per-line latency so the progress display has something to show.
        server = LocalServer(latency=args.latency, concurrency=16, require_project_id=False)
        server.start()
        kwargs.update(base_url=server.url, api_key="demo", project_id="demo")
        print(f"Started a local ZeroGPU-compatible server at {server.url} (built-in model).")
    try:
        result = df.zgpu.batch_chat(
            "review",
            model=args.model,
            system=DEMO_SYSTEM,
            temperature=0,
            response_format=DEMO_SCHEMA,
            progress=False if args.quiet else None,
            poll_interval=None if args.remote else 0.1,
            **kwargs,
        )
    finally:
        if server is not None:
            server.stop()
    out = Path(args.output)
    path = write_table(result, out)
    print()
    print("Rows by status:")
    for status, n in result["response_status"].value_counts().items():
        print(f"  {status:<12}{n}")
    if "sentiment" in result.columns:
        print("Sentiment:")
        for label, n in result["sentiment"].value_counts().items():
            print(f"  {label:<12}{n}")
    cols = [
        c for c in ("review_id", "review", "response_status", "sentiment", "topics") if c in result
    ]
    with pd.option_context("display.max_colwidth", 48, "display.width", 160):
        print()
        print(result[cols].head(8).to_string(index=False))
    print(f"\nWrote {len(result)} rows to {path.resolve()}")
    return 0 if (result["response_status"] != "error").all() else 2


def register(sub: Any) -> None:
    """Add ``run`` and ``demo`` to the top-level sub-parsers."""
    from ._cli_resources import add_connection_options

    p = sub.add_parser(
        "run",
        help="send one chat request per row of a CSV/Parquet/JSONL file and write the answers",
        description=RUN_DESCRIPTION,
        epilog=RUN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "input",
        nargs="+",
        help=".csv, .parquet or .jsonl file(s), a folder of them or a quoted glob, one row "
        "per request (read in sorted path order)",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt-col", help="column holding the user prompt")
    src.add_argument("--template", help='a prompt template over columns, e.g. "Review: {review}"')
    src.add_argument("--messages-col", help="column holding whole message lists (JSON)")
    p.add_argument("--model", required=True, help="model id, e.g. LFM2.5-1.2B-Instruct")
    p.add_argument(
        "--no-check-model",
        action="store_true",
        help="send a model id the ZeroGPU catalog does not list (a custom deployment)",
    )
    p.add_argument("--system", help="system prompt for every row")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="output .csv, .parquet or .jsonl file, or a folder ending in / for a Parquet "
        "dataset (part-000000.parquet and on, in input order)",
    )
    p.add_argument(
        "--part-rows",
        type=int,
        default=50_000,
        metavar="N",
        help="rows read, sent and written at a time (default %(default)s: one batch each); "
        "memory stays about one part",
    )
    _add_request_options(p)
    p.add_argument("--output-prefix", default="response", help="prefix of the answer columns")
    p.add_argument("--overwrite", action="store_true", help="replace existing answer columns")
    p.add_argument(
        "--retries", type=int, default=0, help="rounds of resubmitting transiently failed rows"
    )
    p.add_argument(
        "--fresh", action="store_true", help="start a new job even if this one ran before"
    )
    p.add_argument("--name", help="a label for the job, shown by zgpu-pandas jobs")
    p.add_argument(
        "--max-cost",
        type=float,
        metavar="USD",
        help="refuse to start when the estimated cost (list price) is over this many US dollars",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true",
        help="no progress bar (one bar over the input's rows when stderr is a terminal)",
    )
    add_connection_options(p)
    p.set_defaults(func=_cmd_run)
    _register_demo(sub)


def _add_request_options(p: argparse.ArgumentParser) -> None:
    """What goes into each request, and what happens to rows that cannot be sent."""
    p.add_argument(
        "--schema",
        metavar="FILE.json|module:Class",
        help="structured output: a JSON schema file, or a Pydantic model as module:Class; "
        "each field of the reply becomes a column",
    )
    p.add_argument(
        "--param",
        action="append",
        type=_parse_param,
        metavar="KEY=VALUE",
        help="chat parameter such as temperature=0 or max_tokens=50, VALUE parsed as JSON "
        "if it can be (repeatable)",
    )
    p.add_argument(
        "--extra",
        action="append",
        type=_key_value("--extra"),
        metavar="KEY=VALUE",
        help="a custom request body field, sent as given and not checked (repeatable)",
    )
    p.add_argument(
        "--missing",
        choices=["skip", "empty"],
        default="skip",
        help="a --template row with an empty field: skip the row (default), or send it "
        "with the field empty (skipped only when every field is empty)",
    )
    p.add_argument(
        "--fill",
        action="append",
        type=_fill,
        metavar="COLUMN=TEXT",
        help="a --template field's text where its column is empty, e.g. body='(no body)' "
        "(repeatable; other columns follow --missing skip)",
    )
    p.add_argument(
        "--on-invalid",
        choices=["raise", "skip", "replace"],
        default="raise",
        help="text that is not valid Unicode: stop naming every bad row (default), skip "
        "those rows, or replace the bad characters with U+FFFD",
    )
    p.add_argument(
        "--on-oversize",
        choices=["raise", "skip"],
        default="raise",
        help="a row whose request exceeds 1 MB: stop naming it (default) or skip it",
    )


def _register_demo(sub: Any) -> None:
    d = sub.add_parser(
        "demo",
        help="tag 300 bundled reviews on a local server (offline)",
        description=(
            "Tag the 300 customer reviews bundled with the package with a sentiment and up "
            "to three topics (structured output), on a local ZeroGPU-compatible server "
            "started for the purpose (no key, no network), or on ZeroGPU with --remote. "
            "Prints a summary and writes the tagged rows to a CSV file."
        ),
    )
    d.add_argument(
        "--remote", action="store_true", help="run on ZeroGPU with the key from the environment"
    )
    d.add_argument("--model", default="LFM2.5-1.2B-Instruct", help="model id (default %(default)s)")
    d.add_argument(
        "-o",
        "--output",
        default="zgpu-demo/reviews_tagged.csv",
        help="where to write the result (default %(default)s)",
    )
    d.add_argument(
        "--latency", type=float, default=0.05, help="local server seconds per line (default 0.05)"
    )
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_cmd_demo)


RUN_DESCRIPTION = """\
Read CSV, Parquet or JSONL files (one, several, a folder or a glob), send one chat request
per row through the batch API, and write the input plus the answer columns: to one .csv,
.parquet or .jsonl file, or with -o out/ to a Parquet dataset in input order. The rows are
read, sent and written in parts (--part-rows), so memory stays about one part whatever the
input size. Re-running the same command after an interruption picks up the batches already
paid for (the job journal) and keeps the parts already written; it never submits them
again. The files, the model id, the parameters and every row (the whole input is read once
first; a bad row is named by file and row number) are checked before anything is uploaded,
and --max-cost is compared with the whole input's estimate.

CSV input: the prompt columns (--prompt-col, the --template fields, --messages-col) are read
as text exactly as written (a template field with a format, {price:.2f}, keeps its column's
type); every other column gets a real type when all its cells fit one:
integers written plainly (12, -3) are integers, numbers are floats, true/false are booleans,
anything else (007, 12abc) is text. Only an empty cell is missing ("NA" is text).

Exit codes: 0 every sent row answered; 2 some rows failed (the output is still written, with
the errors in it); 1 the job failed or could not start."""

RUN_EPILOG = """\
structured output:
  --schema tags.json          a JSON schema: {"type": "object", "properties": {...}}
  --schema mypkg.models:Tag   a Pydantic model class (importable from the current folder)
  Each field becomes a column; list and dict fields are written as JSON text in CSV and
  Parquet. A reply that does not match is marked parse_error and keeps its raw text.

interrupting: Ctrl-C does not cancel the batches. Run the same command again to pick the job
up (nothing is bought twice); zgpu-pandas batches cancel BATCH_ID stops a batch.
"""


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the zgpu-pandas command")
