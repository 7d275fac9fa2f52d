"""``zgpu-pandas serve``: the local server from the command line."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["register"]

ENV_UPSTREAM_KEY = "ZGPU_UPSTREAM_API_KEY"


def register(subparsers: Any) -> None:
    """Add the ``serve`` sub-command to the ``zgpu-pandas`` parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run a local ZeroGPU-compatible Batch API server",
        description=(
            "Serve the ZeroGPU Files and Batches API locally. Batches run on the built-in "
            "offline engine, or on any OpenAI-compatible server with --engine upstream. "
            f"The upstream API key is read from ${ENV_UPSTREAM_KEY}."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one (default %(default)s)")
    p.add_argument("--data-dir", default="./zgpu-data", help="where files and batches are kept (default %(default)s)")
    p.add_argument("--engine", choices=["builtin", "upstream"], default="builtin",
                   help="what answers the requests: the offline built-in engine (default) or an upstream server")
    p.add_argument("--upstream-url", help="OpenAI-compatible base URL for --engine upstream")
    p.add_argument("--upstream-header", action="append", default=[], metavar="NAME:VALUE",
                   help="extra header sent upstream (repeatable)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds spent per line (demos)")
    p.add_argument("--concurrency", type=int, default=8, help="lines run at once (default %(default)s)")
    p.add_argument("--relaxed-auth", action="store_true", help="make x-project-id optional")
    p.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                   help="accept only this key (repeatable); default: any non-empty key")
    p.add_argument("--completion-window-seconds", type=float, default=86400.0,
                   help="time before a running batch expires (default 24 h)")
    p.add_argument("--admin", action="store_true", help="enable the /_admin fault-injection endpoints")
    p.add_argument("--fail-lines-rate", type=float, default=0.0,
                   help="share of lines that fail (fault injection)")
    p.add_argument("--fail-lines-code", default="internal_error", help="code of the failing lines")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted; returns the exit code."""
    import uvicorn

    from .app import ServerContext, build_app
    from .config import ServerConfig
    from .faults import Faults
    from .local import _bind, _Server
    from .store import DataDirLocked

    headers = {}
    for item in args.upstream_header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            print(f"--upstream-header must look like NAME:VALUE, got {item!r}", file=sys.stderr)
            return 2
        headers[name.strip()] = value.strip()
    faults = Faults()
    try:
        if args.fail_lines_rate > 0:
            faults.fail_lines(code=args.fail_lines_code, rate=args.fail_lines_rate)
        config = ServerConfig(
            data_dir=args.data_dir,
            engine=args.engine,
            upstream_url=args.upstream_url,
            upstream_api_key=os.environ.get(ENV_UPSTREAM_KEY) or None,
            upstream_headers=headers or None,
            latency=args.latency,
            concurrency=args.concurrency,
            require_project_id=not args.relaxed_auth,
            api_keys=set(args.api_keys) if args.api_keys else None,
            completion_window_seconds=args.completion_window_seconds,
            admin=args.admin,
            faults=faults,
        )
    except (TypeError, ValueError) as exc:
        print(f"zgpu-pandas serve: {exc}", file=sys.stderr)
        return 2
    ctx = ServerContext(config)
    try:
        ctx.start()
    except DataDirLocked as exc:
        print(f"zgpu-pandas serve: {exc}", file=sys.stderr)
        return 2
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        ctx.stop()
        print(f"zgpu-pandas serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"zgpu-pandas local server on http://{shown}:{port} "
        f"(engine {config.engine}, data dir {ctx.data_dir})",
        flush=True,
    )
    server = _Server(
        uvicorn.Config(build_app(ctx), log_level=args.log_level, lifespan="on",
                       timeout_graceful_shutdown=5),
        ctx=ctx,
    )
    try:
        server.run(sockets=[sock])
    finally:
        ctx.stop()
    return 0
