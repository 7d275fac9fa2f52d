"""``zgpu-pandas run`` and ``zgpu-pandas demo``: the accessor from the command line.

``run`` reads a CSV, Parquet or JSONL file, sends one chat request per row through the batch
API, and writes the input plus the answer columns in any of those formats. It is resumable
like the accessor: re-running the same command after an interruption reattaches to the
batches already paid for (the job journal), it never submits them again.

Exit codes: 0 every sent row answered; 2 some rows failed (the output is still written, with
the errors in it); 1 the job failed or could not start.

Example::

    $ zgpu-pandas run reviews.csv --prompt-col review --model LFM2.5-1.2B-Instruct \\
          --system "Tag the sentiment." --param temperature=0 -o tagged.parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from ._fs import atomic_path

__all__ = ["read_table", "register", "write_table"]

_FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def _format_of(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise SystemExit(
            f"error: cannot tell the format of {path}: use a .csv, .parquet or .jsonl file name"
        )
    return fmt


def read_table(path: str | Path) -> pd.DataFrame:
    """Read CSV, Parquet or JSONL by extension. CSV cells are read as text (``keep_default_na``
    off except for truly empty cells) so an id like ``007`` or a review reading ``NA`` is
    sent as written."""
    p = Path(path)
    fmt = _format_of(p)
    if fmt == "csv":
        return pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""])
    if fmt == "parquet":
        return pd.read_parquet(p)
    return pd.read_json(p, lines=True, dtype=False)


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write by extension, atomically (a temporary file renamed into place: _fs)."""
    p = Path(path)
    fmt = _format_of(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p, private=False) as tmp:  # the user's own output file
        if fmt == "csv":
            df.to_csv(tmp, index=False)
        elif fmt == "parquet":
            out = df.copy()
            for col in out.columns:  # lists/dicts from structured outputs: keep them as JSON text
                if (
                    out[col].dtype == object
                    and out[col].map(lambda v: isinstance(v, dict | list)).any()
                ):
                    out[col] = out[col].map(
                        lambda v: orjson.dumps(v).decode() if isinstance(v, dict | list) else v
                    )
            out.to_parquet(tmp, index=False)
        else:
            df.to_json(tmp, orient="records", lines=True, force_ascii=False)
    return p


def _parse_param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--param takes KEY=VALUE, got {text!r}")
    try:
        value: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = raw  # a bare word is a string
    return key, value


def _exit_code(result: pd.DataFrame, output: str) -> int:
    status = result[f"{output}_status"]
    failed = int((status == "error").sum())
    ok = int((status == "ok").sum())
    if failed and not ok:
        return 1
    return 2 if failed else 0


def _summary(result: pd.DataFrame, output: str) -> str:
    counts = result[f"{output}_status"].value_counts()
    return ", ".join(f"{k}: {v}" for k, v in counts.items())


def _cmd_run(args: argparse.Namespace) -> int:
    from .frames import pandas as _registers_df_zgpu  # noqa: F401

    df = read_table(args.input)
    params = dict(args.param or [])
    prompt = args.template if args.template else args.prompt_col
    result = df.zgpu.batch_chat(
        prompt,
        model=args.model,
        system=args.system,
        messages=args.messages_col,
        output=args.output_prefix,
        overwrite=args.overwrite,
        on_oversize=args.on_oversize,
        progress=False if args.quiet else None,
        base_url=args.base_url,
        project_id=args.project_id,
        fresh=args.fresh,
        retries=args.retries,
        **params,
    )
    path = write_table(result, args.output)
    print(f"{_summary(result, args.output_prefix)}; wrote {len(result)} rows to {path}")
    return _exit_code(result, args.output_prefix)


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
        description=(__doc__ or "").split("Example::")[0].split("\n", 1)[1].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="a .csv, .parquet or .jsonl file, one row per request")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt-col", help="column holding the user prompt")
    src.add_argument("--template", help='a prompt template over columns, e.g. "Review: {review}"')
    src.add_argument("--messages-col", help="column holding whole message lists")
    p.add_argument("--model", required=True, help="model id, e.g. LFM2.5-1.2B-Instruct")
    p.add_argument("--system", help="system prompt for every row")
    p.add_argument("-o", "--output", required=True, help="output .csv, .parquet or .jsonl")
    p.add_argument(
        "--param",
        action="append",
        type=_parse_param,
        metavar="KEY=VALUE",
        help="extra chat parameter, VALUE parsed as JSON if it can be (repeatable)",
    )
    p.add_argument("--output-prefix", default="response", help="prefix of the answer columns")
    p.add_argument("--overwrite", action="store_true", help="replace existing answer columns")
    p.add_argument("--on-oversize", choices=["raise", "skip"], default="raise")
    p.add_argument(
        "--retries", type=int, default=0, help="rounds of resubmitting transiently failed rows"
    )
    p.add_argument(
        "--fresh", action="store_true", help="start a new job even if this one ran before"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_connection_options(p)
    p.set_defaults(func=_cmd_run)

    d = sub.add_parser("demo", help="tag 300 bundled reviews on a local server (offline)")
    d.add_argument(
        "--remote", action="store_true", help="run on ZeroGPU with the key from the environment"
    )
    d.add_argument("--model", default="LFM2.5-1.2B-Instruct")
    d.add_argument(
        "-o", "--output", default="zgpu-demo/reviews_tagged.csv", help="where to write the result"
    )
    d.add_argument(
        "--latency", type=float, default=0.05, help="local server seconds per line (default 0.05)"
    )
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_cmd_demo)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the zgpu-pandas command")
