"""``zgpu-pandas serve``: the local server from the command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

ENV_UPSTREAM_KEY = "ZGPU_UPSTREAM_API_KEY"
ENV_SERVER_KEYS = "ZGPU_SERVER_API_KEYS"


def register(subparsers: Any) -> None:
    """Add the ``serve`` sub-command to the ``zgpu-pandas`` parser."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run a local ZeroGPU-compatible Batch API server",
        description=(
            "Serve the ZeroGPU Files and Batches API locally. Batches run on the built-in "
            "offline engine, or on any OpenAI-compatible server with --engine upstream. "
            f"The upstream API key is read from ${ENV_UPSTREAM_KEY}. The keys the server "
            f"accepts come from --api-keys-file and ${ENV_SERVER_KEYS} (comma-separated), "
            "which, unlike --api-key, other users cannot see in the process list."
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
    p.add_argument("--accept-bearer", action="store_true",
                   help="also take the key from 'Authorization: Bearer <key>' and the project "
                   "from OpenAI-Project when x-api-key/x-project-id are absent (OpenAI-style "
                   "clients)")
    p.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                   help="accept this key (repeatable). A command-line value is visible to "
                   "other users of this machine (ps); prefer --api-keys-file or "
                   f"${ENV_SERVER_KEYS}. Keys from all three are accepted; when none of them "
                   "is given, any non-empty key is accepted")
    p.add_argument("--api-keys-file", metavar="PATH",
                   help="accept the keys listed in this file, one per line (blank lines and "
                   "lines starting with # are skipped)")
    p.add_argument("--completion-window-seconds", type=float, default=86400.0,
                   help="time before a running batch expires (default 24 h)")
    p.add_argument("--admin", action="store_true", help="enable the /_admin fault-injection endpoints")
    p.add_argument("--fail-lines-rate", type=float, default=0.0,
                   help="share of lines that fail (fault injection)")
    p.add_argument("--fail-lines-code", default="internal_error", help="code of the failing lines")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="how much the server logs (default %(default)s)")
    p.set_defaults(func=serve)


def accepted_keys(
    argv_keys: list[str] | None, keys_file: str | None, env_value: str | None
) -> set[str] | None:
    """The keys ``serve`` accepts: the union of ``--api-key`` values, the lines of
    ``--api-keys-file`` and the comma-separated ``$ZGPU_SERVER_API_KEYS``; ``None`` (any
    key) when none of them is given. A file or variable that is given but holds no key
    is an error, not "any key". Messages never contain a key.

    Example::

        accepted_keys(None, None, "sk-a, sk-b")   # {'sk-a', 'sk-b'}
    """
    keys: set[str] = set()
    given = False
    if argv_keys:
        given = True
        keys.update(k for k in argv_keys if k)
    if keys_file is not None:
        given = True
        path = Path(keys_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise ValueError(f"cannot read --api-keys-file {keys_file}: {reason}") from None
        found = [ln.strip() for ln in text.splitlines()]
        found = [k for k in found if k and not k.startswith("#")]
        if not found:
            raise ValueError(
                f"--api-keys-file {keys_file} holds no keys (write one key per line)"
            )
        keys.update(found)
        _warn_if_readable_by_others(path, "--api-keys-file")
    if env_value is not None and env_value != "":
        given = True
        found = [k.strip() for k in env_value.split(",") if k.strip()]
        if not found:
            raise ValueError(
                f"${ENV_SERVER_KEYS} holds no keys (give them comma-separated: key1,key2)"
            )
        keys.update(found)
    return keys if given else None


def _warn_if_readable_by_others(path: Path, what: str) -> None:
    # Like ssh with a private key: worth a word, since the file exists to keep keys private.
    with contextlib.suppress(OSError):
        if os.name == "posix" and path.stat().st_mode & 0o077:
            print(
                f"zgpu-pandas serve: warning: {what} {path} can be read by other users "
                f"(chmod 600 {path})",
                file=sys.stderr,
            )


def serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted; returns the exit code."""
    import uvicorn

    from ._conn import guarded_protocol
    from .app import ServerContext, build_app
    from .config import ServerConfig
    from .faults import Faults
    from .local import _bind, _Server
    from .store import DataDirDamaged, DataDirLocked

    headers = {}
    for item in args.upstream_header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            print(f"--upstream-header must look like NAME:VALUE, got {item!r}", file=sys.stderr)
            return 2
        headers[name.strip()] = value.strip()
    faults = Faults()
    try:
        api_keys = accepted_keys(args.api_keys, args.api_keys_file, os.environ.get(ENV_SERVER_KEYS))
    except ValueError as exc:
        print(f"zgpu-pandas serve: {exc}", file=sys.stderr)
        return 2
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
            accept_bearer=args.accept_bearer,
            api_keys=api_keys,
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
    except (DataDirLocked, DataDirDamaged) as exc:
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
                       timeout_graceful_shutdown=5, http=guarded_protocol(config.idle_timeout)),
        ctx=ctx,
    )
    try:
        server.run(sockets=[sock])
    finally:
        ctx.stop()
    return 0
