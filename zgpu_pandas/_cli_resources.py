"""``zgpu-pandas batches|files|jobs``: look at and manage what is on the service and on disk.

The API key is read from the environment only (``ZGPU_API_KEY`` / ``ZEROGPU_API_KEY``, or
``OPENAI_API_KEY`` with ``--provider openai``), never from a flag, so it stays out of shell
history and process listings.

Example::

    $ zgpu-pandas batches list --limit 5
    $ zgpu-pandas files download file-0123 -o output.jsonl
    $ zgpu-pandas jobs
"""

from __future__ import annotations

import argparse
import datetime as _dt
import itertools
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

__all__ = ["add_connection_options", "make_client", "register"]


def add_connection_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that talks to a service."""
    g = p.add_argument_group("connection (the API key comes from the environment only)")
    g.add_argument(
        "--base-url",
        help='a URL, or "production", "staging", "development", "local" '
        "(default: $ZGPU_BASE_URL, else production)",
    )
    g.add_argument("--project-id", help="x-project-id (default: $ZGPU_PROJECT_ID)")
    g.add_argument(
        "--provider",
        choices=["zerogpu", "openai"],
        default="zerogpu",
        help="whose API: zerogpu (default), or openai with the key from $OPENAI_API_KEY",
    )


def make_client(args: argparse.Namespace) -> Any:
    from ._client import Client

    return Client(base_url=args.base_url, project_id=args.project_id, provider=args.provider)


def _ts(value: int | float | None) -> str:
    if not value:
        return "-"
    return _dt.datetime.fromtimestamp(value, tz=_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    return "\n".join(lines)


def _emit(objs: Iterable[Any], *, as_json: bool, header: Sequence[str], row: Any) -> None:
    if as_json:
        for o in objs:
            sys.stdout.buffer.write(
                orjson.dumps(o.to_dict() if hasattr(o, "to_dict") else o) + b"\n"
            )
        sys.stdout.flush()
        return
    rows = [row(o) for o in objs]
    print(_table(rows, header) if rows else "(none)")


def _batch_row(b: Any) -> list[str]:
    rc = b.request_counts
    counts = f"{rc.completed}/{rc.failed}/{rc.total}" if rc is not None else "-"
    job = (b.metadata or {}).get("zgpu_job", "")
    return [b.id, b.status, _ts(b.created_at), counts, str(job)]


def _cmd_batches_list(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        items = list(itertools.islice(client.batches.list(), args.limit))
        _emit(
            items,
            as_json=args.json,
            header=["id", "status", "created (UTC)", "ok/failed/total", "job"],
            row=_batch_row,
        )
    return 0


def _cmd_batches_show(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        b = client.batches.retrieve(args.batch_id)
    sys.stdout.buffer.write(orjson.dumps(b.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def _cmd_batches_cancel(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        b = client.batches.cancel(args.batch_id)
    print(f"{b.id}: {b.status}")
    return 0


def _file_row(f: Any) -> list[str]:
    kind = f.purpose + (" (errors)" if getattr(f, "is_error", False) else "")
    return [f.id, kind, str(f.bytes), _ts(f.created_at), f.filename or ""]


def _cmd_files_list(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        items = list(itertools.islice(client.files.list(purpose=args.purpose), args.limit))
        _emit(
            items,
            as_json=args.json,
            header=["id", "purpose", "bytes", "created (UTC)", "filename"],
            row=_file_row,
        )
    return 0


def _cmd_files_download(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        path = client.files.download(args.file_id, args.output or f"{args.file_id}.jsonl")
    print(f"wrote {path}")
    return 0


def _cmd_files_delete(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        client.files.delete(args.file_id)
    print(f"deleted {args.file_id}")
    return 0


def _cmd_jobs(args: argparse.Namespace) -> int:
    from ._journal import DamagedRecord, Journal

    records = list(Journal(args.state_dir).scan())  # newest first; damaged ones listed too
    _emit(
        records,
        as_json=args.json,
        header=["job", "name", "status", "created (UTC)", "model", "rows", "batches"],
        row=lambda r: (
            [r.job_id, "-", r.status, "-", "-", "-", r.error.split(" (", 1)[0]]
            if isinstance(r, DamagedRecord)
            else [
                r.job_id,
                str(r.settings.get("name") or "-"),
                r.status,
                _ts(r.created_at),
                r.model,
                str(r.rows),
                ",".join(r.batch_ids) or "-",
            ]
        ),
    )
    return 0


def _cmd_jobs_prune(args: argparse.Namespace) -> int:
    from ._prune import prune_jobs

    gone = prune_jobs(
        older_than_days=args.older_than, dry_run=args.dry_run, state_dir=args.state_dir
    )
    verb = "would delete" if args.dry_run else "deleted"
    for row in gone.itertuples():
        print(f"{verb} {row.id} ({row.status}, {row.bytes:,} bytes)")
    total = int(gone["bytes"].sum())
    answers = gone.attrs.get("answers_pruned", 0)
    print(
        f"{verb} {len(gone)} finished job(s), {total:,} bytes, and {answers:,} stored online "
        f"answer(s); running jobs are kept"
    )
    return 0


def register(sub: Any) -> None:
    """Add ``batches``, ``files`` and ``jobs`` to the top-level sub-parsers."""
    b = sub.add_parser(
        "batches",
        help="list, show or cancel batches on the service",
        description="List, show or cancel the batches of the project on the service.",
    )
    bsub = b.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = bsub.add_parser("list", help="newest first", description="List batches, newest first.")
    p.add_argument("--limit", type=int, default=20, help="how many to show (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    add_connection_options(p)
    p.set_defaults(func=_cmd_batches_list)
    p = bsub.add_parser(
        "show", help="print one batch as JSON", description="Print one batch as JSON."
    )
    p.add_argument("batch_id", help="the batch's id (batch_...)")
    add_connection_options(p)
    p.set_defaults(func=_cmd_batches_show)
    p = bsub.add_parser(
        "cancel",
        help="cancel a running batch (finished lines are kept)",
        description="Cancel a running batch; the lines it finished are kept in its output.",
    )
    p.add_argument("batch_id", help="the batch's id (batch_...)")
    add_connection_options(p)
    p.set_defaults(func=_cmd_batches_cancel)

    f = sub.add_parser(
        "files",
        help="list, download or delete files on the service",
        description="List, download or delete the files of the project on the service.",
    )
    fsub = f.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = fsub.add_parser("list", help="newest first", description="List files, newest first.")
    p.add_argument(
        "--purpose",
        choices=["batch", "batch_output"],
        help="only input files (batch) or only output and error files (batch_output)",
    )
    p.add_argument("--limit", type=int, default=50, help="how many to show (default 50)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    add_connection_options(p)
    p.set_defaults(func=_cmd_files_list)
    p = fsub.add_parser(
        "download",
        help="stream a file's content to disk",
        description="Stream a file's content to disk (resumed if the connection drops).",
    )
    p.add_argument("file_id", help="the file's id (file-...)")
    p.add_argument("-o", "--output", help="where to write (default: <file_id>.jsonl)")
    add_connection_options(p)
    p.set_defaults(func=_cmd_files_download)
    p = fsub.add_parser("delete", help="delete a file", description="Delete a file on the service.")
    p.add_argument("file_id", help="the file's id (file-...)")
    add_connection_options(p)
    p.set_defaults(func=_cmd_files_delete)

    _register_jobs(sub)


def _register_jobs(sub: Any) -> None:
    state = "journal directory (default: $ZGPU_STATE_DIR or the user cache)"
    j = sub.add_parser(
        "jobs",
        help="list (or prune) the jobs recorded in the local journal",
        description="List the jobs of the local journal, newest first; "
        "zgpu-pandas jobs prune deletes old finished ones.",
    )
    j.add_argument("--state-dir", help=state)
    j.add_argument("--json", action="store_true", help="one JSON object per line")
    j.set_defaults(func=_cmd_jobs)
    jsub = j.add_subparsers(dest="action", metavar="ACTION")
    p = jsub.add_parser(
        "prune",
        help="delete old finished jobs and their result copies",
        description="Delete the journal entries (records and local result copies) of "
        "finished jobs older than --older-than days. Running jobs are never deleted; "
        "nothing on the service is touched.",
    )
    p.add_argument(
        "--older-than",
        type=float,
        default=30.0,
        metavar="DAYS",
        help="last updated more than DAYS days ago (default 30; 0: every finished job)",
    )
    p.add_argument("--dry-run", action="store_true", help="list what would go, delete nothing")
    # SUPPRESS: "jobs --state-dir X prune" keeps X (the sub-command's default would replace it)
    p.add_argument("--state-dir", help=state, default=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_jobs_prune)
