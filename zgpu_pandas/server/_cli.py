"""``zgpu-pandas serve``: the local server from the command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .config import is_loopback
from .settings import ENV_CONFIG, add_flags, resolve

__all__ = ["accepted_keys", "register", "scope_keys"]

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
            f"accepts come from --api-keys-file and ${ENV_SERVER_KEYS} (comma-separated entries, "
            "each a key optionally followed by its project ids), "
            "which, unlike --api-key, other users cannot see in the process list."
        ),
    )
    add_flags(p)
    p.add_argument("--config", metavar="FILE",
                   help="read settings from this TOML file (name = value, the names of the "
                   f"flags with '_' for '-'; also ${ENV_CONFIG}); a flag beats "
                   "$ZGPU_SERVER_<NAME>, which beats the file, which beats the default")
    p.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                   help="accept this key (repeatable). A command-line value is visible to "
                   "other users of this machine (ps); prefer --api-keys-file or "
                   f"${ENV_SERVER_KEYS}. Keys from all three are accepted; when none of them "
                   "is given, any non-empty key is accepted")
    p.add_argument("--check", action="store_true",
                   help="do not serve: check the settings and the data directory, probe the "
                   "upstream (reachable, key accepted, model list), exit 0 or 2 with one line")
    p.add_argument("--gc", action="store_true",
                   help="do not serve: run one retention sweep on the data directory (the "
                   "server must be stopped), print what it removed and exit")
    p.add_argument("--fail-lines-rate", type=float, default=0.0,
                   help="share of lines that fail (fault injection)")
    p.add_argument("--fail-lines-code", default="internal_error", help="code of the failing lines")
    p.set_defaults(func=serve)


#: what ``accepted_keys`` gives: each key and the projects it may use (``None``: any
#: project, from ``*``; an empty set: the key named none, resolved by :func:`scope_keys`)
KeyProjects = dict[str, "frozenset[str] | None"]


def _add_entry(keys: KeyProjects, entry: str) -> None:
    """One ``KEY [PROJECT ...]`` entry (``*`` for any project) into ``keys``."""
    key, *projects = entry.split()
    named: frozenset[str] | None = None if "*" in projects else frozenset(projects)
    old = keys.get(key, frozenset())
    keys[key] = None if old is None or named is None else old | named


def accepted_keys(
    argv_keys: list[str] | None, keys_file: str | None, env_value: str | None
) -> KeyProjects | None:
    """The keys ``serve`` accepts and the projects each may use: the union of ``--api-key``
    values, the lines of ``--api-keys-file`` and the comma-separated entries of
    ``$ZGPU_SERVER_API_KEYS``; ``None`` (any key) when none of them is given. Each entry is
    a key, then optionally the project ids it may use, separated by spaces (``*`` for any
    project). A key that names no project maps to an empty set (see :func:`scope_keys`).
    A file or variable that is given but holds no key is an error, not "any key". Messages
    never contain a key.

    Example::

        accepted_keys(None, None, "sk-a team-a team-b, sk-b *")
        # {'sk-a': frozenset({'team-a', 'team-b'}), 'sk-b': None}
    """
    keys: KeyProjects = {}
    given = False
    for k in argv_keys or []:
        given = True
        if k.strip():
            _add_entry(keys, k)
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
        for entry in found:
            _add_entry(keys, entry)
        _warn_if_readable_by_others(path, "--api-keys-file")
    if env_value is not None and env_value != "":
        given = True
        found = [k.strip() for k in env_value.split(",") if k.strip()]
        if not found:
            raise ValueError(
                f"${ENV_SERVER_KEYS} holds no keys (give them comma-separated: key1,key2)"
            )
        for entry in found:
            _add_entry(keys, entry)
    return keys if given else None


def scope_keys(
    keys: KeyProjects | None, *, host: str, allow_any_key: bool
) -> dict[str, frozenset[str] | None] | None:
    """The ``api_keys`` mapping of a server bound to ``host``, or a ``ValueError`` saying
    why it must not start.

    On a loopback address a key that names no project may use any (one user, one
    machine). On an address other machines reach, the server is shared: it needs a key
    list (or ``--allow-any-key``, said loudly), and each key must name its projects (``*``
    for all), so that one key cannot read, download or cancel another project's work.
    """
    if is_loopback(host):
        if keys is None:
            return None
        return {k: (None if p is None or not p else p) for k, p in keys.items()}
    if keys is None:
        if not allow_any_key:
            raise ValueError(
                f"--host {host} is reachable from other machines and no keys are set, so "
                "anyone who reaches the port could use the server (and spend its upstream "
                f"key): give the accepted keys (--api-keys-file or ${ENV_SERVER_KEYS}), or "
                "pass --allow-any-key to accept any key on purpose"
            )
        print(
            f"zgpu-pandas serve: WARNING: --allow-any-key on {host}: any key is accepted for "
            "any project, from any machine that reaches this port",
            file=sys.stderr,
        )
        return None
    unscoped = sum(1 for p in keys.values() if p is not None and not p)
    if unscoped:
        raise ValueError(
            f"--host {host} is reachable from other machines, so each key must name the "
            f"projects it may use, and {unscoped} key(s) name none: write 'KEY PROJECT "
            "[PROJECT ...]' (or 'KEY *' for every project) per line or entry"
        )
    return dict(keys)


def _warn_if_readable_by_others(path: Path, what: str) -> None:
    # Like ssh with a private key: worth a word, since the file exists to keep keys private.
    with contextlib.suppress(OSError):
        if os.name == "posix" and path.stat().st_mode & 0o077:
            print(
                f"zgpu-pandas serve: warning: {what} {path} can be read by other users "
                f"(chmod 600 {path})",
                file=sys.stderr,
            )


def build_config(args: argparse.Namespace, environ: Any) -> tuple[Any, dict[str, Any]]:
    """The :class:`ServerConfig` of the settings (flag > environment > file > default) and
    the settings themselves; a ``ValueError`` (one line) when one is wrong."""
    from .config import ServerConfig
    from .faults import Faults

    v, _sources = resolve(args, environ)
    for name in ("sweep_interval", "file_retention_seconds", "keys_reload_interval"):
        if v[name] < 0:
            raise ValueError(f"{name.replace('_', '-')} must be >= 0, got {v[name]!r}")
    headers = {}
    for item in v["upstream_header"]:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"--upstream-header must look like NAME:VALUE, got {item!r}")
        headers[name.strip()] = value.strip()
    api_keys = scope_keys(
        accepted_keys(args.api_keys, v["api_keys_file"], environ.get(ENV_SERVER_KEYS)),
        host=v["host"],
        allow_any_key=v["allow_any_key"],
    )
    faults = Faults()
    if args.fail_lines_rate > 0:
        faults.fail_lines(code=args.fail_lines_code, rate=args.fail_lines_rate)
    config = ServerConfig(
        data_dir=v["data_dir"],
        engine=v["engine"],
        upstream_url=v["upstream_url"],
        upstream_api_key=environ.get(ENV_UPSTREAM_KEY) or None,
        upstream_headers=headers or None,
        upstream_timeout=v["upstream_timeout"],
        upstream_max_retries=v["upstream_retries"],
        upstream_backoff=v["upstream_backoff"],
        upstream_ca_bundle=v["upstream_ca_bundle"],
        upstream_verify_tls=not v["upstream_insecure"],
        latency=v["latency"],
        concurrency=v["concurrency"],
        max_upload_bytes=v["max_upload_bytes"],
        idle_timeout=v["idle_timeout"],
        require_project_id=not v["relaxed_auth"],
        accept_bearer=v["accept_bearer"],
        api_keys=api_keys,
        completion_window_seconds=v["completion_window_seconds"],
        file_retention_seconds=v["file_retention_seconds"],
        sweep_interval=v["sweep_interval"] or None,
        admin=v["admin"],
        faults=faults,
    )
    return config, v


def serve(args: argparse.Namespace) -> int:
    """Run the server until interrupted; returns the exit code."""
    import uvicorn

    from ._conn import guarded_protocol
    from .app import ServerContext, build_app
    from .local import _bind, _Server
    from .observe import logging_config
    from .store import DataDirDamaged, DataDirLocked

    try:
        config, v = build_config(args, os.environ)
    except (TypeError, ValueError) as exc:  # SettingsError is a ValueError
        print(f"zgpu-pandas serve: {exc}", file=sys.stderr)
        return 2
    if args.gc:
        return collect_garbage(v["data_dir"])
    if args.check:
        return check(config)
    ctx = ServerContext(config)
    try:
        ctx.start()
    except (DataDirLocked, DataDirDamaged) as exc:
        print(f"zgpu-pandas serve: {exc}", file=sys.stderr)
        return 2
    try:
        sock = _bind(v["host"], v["port"])
    except OSError as exc:
        ctx.stop()
        print(f"zgpu-pandas serve: cannot listen on {v['host']}:{v['port']}: {exc}",
              file=sys.stderr)
        return 2
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(
        f"zgpu-pandas local server on http://{shown}:{port} "
        f"(engine {config.engine}, data dir {ctx.data_dir})",
        flush=True,
    )
    reloader = _key_reloader(ctx, args, v)
    server = _Server(
        uvicorn.Config(build_app(ctx), log_level=v["log_level"], lifespan="on",
                       access_log=False,  # the server's own access log says more
                       log_config=logging_config(fmt=v["log_format"], level=v["log_level"]),
                       timeout_graceful_shutdown=5, http=guarded_protocol(config.idle_timeout)),
        ctx=ctx,
    )
    try:
        server.run(sockets=[sock])
    finally:
        if reloader is not None:
            reloader.stop()
        ctx.stop()
    return 0


def _key_reloader(ctx: Any, args: argparse.Namespace, v: dict[str, Any]) -> Any:
    """With a keys file: re-read it when it changes and on SIGHUP (rotation without a
    restart). The other key sources (--api-key, the variable) are read again with it."""
    from .keyreload import KeyReloader

    path = v["api_keys_file"]
    if path is None:
        return None

    def load() -> Any:
        return scope_keys(
            accepted_keys(args.api_keys, path, os.environ.get(ENV_SERVER_KEYS)),
            host=v["host"], allow_any_key=v["allow_any_key"],
        )

    reloader = KeyReloader(ctx, path=path, load=load, interval=v["keys_reload_interval"])
    reloader.start()
    if hasattr(signal, "SIGHUP"):  # not on Windows
        signal.signal(signal.SIGHUP, lambda signum, frame: reloader.reload_soon())
    return reloader


def collect_garbage(data_dir: str) -> int:
    """``serve --gc``: one retention sweep over a stopped server's data directory; prints
    one line of what it removed. Exit 2 with one line when the directory is missing, in
    use by a running server (whose own periodic sweep does the same) or damaged."""
    from .retention import sweep
    from .store import DataDirDamaged, DataDirLocked, Store

    path = Path(data_dir).expanduser()
    if not (path / "meta.sqlite3").is_file():
        print(f"zgpu-pandas serve --gc: {path} is not a server data directory (no "
              "meta.sqlite3); give it with --data-dir", file=sys.stderr)
        return 2
    store = Store(path.resolve())
    try:
        store.open()
    except DataDirLocked as exc:
        print(f"zgpu-pandas serve --gc: {exc} (a running server sweeps its directory "
              "itself every --sweep-interval seconds)", file=sys.stderr)
        return 2
    except (DataDirDamaged, OSError) as exc:
        print(f"zgpu-pandas serve --gc: {exc}", file=sys.stderr)
        return 2
    try:
        report = sweep(store)
    finally:
        store.close()
    print(f"zgpu-pandas serve --gc: {report.line()}")
    return 0


def check(config: Any) -> int:
    """``serve --check``: exit 0 with one line when ready to serve, else 2 with one line."""
    from ._check import CheckFailed, check_setup

    try:
        said = check_setup(
            data_dir=Path(config.data_dir),
            upstream_url=config.upstream_url if config.engine == "upstream" else None,
            api_key=config.upstream_api_key,
            headers=config.upstream_headers,
            ssl_context=config.ssl_context(),
            timeout=min(config.upstream_timeout, 15.0),
        )
    except CheckFailed as exc:
        print(f"zgpu-pandas serve --check: {exc}", file=sys.stderr)
        return 2
    print(f"zgpu-pandas serve --check: ok: {said}")
    return 0
