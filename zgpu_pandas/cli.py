"""The ``zgpu-pandas`` command line.

Each sub-command lives with the code it drives and registers itself here through a
``register(subparsers)`` function, so this module stays a thin dispatcher.

Example::

    $ zgpu-pandas serve --port 8080 --data-dir ./zgpu-data
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every sub-command registered."""
    from . import __version__, _cli_resources, _cli_run
    from .server import _cli as server_cli

    parser = argparse.ArgumentParser(
        prog="zgpu-pandas",
        description="Run DataFrames through the ZeroGPU Batch API, or serve a local copy of it.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    server_cli.register(sub)
    _cli_run.register(sub)
    _cli_resources.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from .errors import ZgpuError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ZgpuError as exc:
        # Library errors are written for the person at the keyboard: print the message, not
        # a traceback. (Messages never contain the API key.)
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
