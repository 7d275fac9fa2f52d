"""The largest classes and functions of the package, in lines (docstrings counted for
classes, not for functions: a long docstring with an example is welcome).

    .venv/bin/python tools/sizes.py            # the five largest of each
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "zgpu_pandas"


def _docstring_lines(node: ast.AST) -> int:
    body = getattr(node, "body", [])
    first = body[0] if body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return first.end_lineno - first.lineno + 1  # type: ignore[operator]
    return 0


def sizes() -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(classes, functions): (lines, "path:line name"), largest first."""
    classes, functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                classes.append((lines, f"{rel}:{node.lineno} {node.name}"))
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1 - _docstring_lines(node)  # type: ignore[operator]
                functions.append((lines, f"{rel}:{node.lineno} {node.name}"))
    return sorted(classes, reverse=True), sorted(functions, reverse=True)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    cls, fns = sizes()
    print("classes:", *(f"  {k:4d}  {w}" for k, w in cls[:n]), sep="\n")
    print("functions (without docstring):", *(f"  {k:4d}  {w}" for k, w in fns[:n]), sep="\n")
