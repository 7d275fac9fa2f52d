"""The code stays readable: no class over ~400 lines (a margin for docstrings) and no function
over 80 lines of code (its docstring not counted). tools/sizes.py lists the largest."""

from __future__ import annotations

import importlib.util

from tests.support import ROOT

_spec = importlib.util.spec_from_file_location("sizes", ROOT / "tools" / "sizes.py")
assert _spec is not None and _spec.loader is not None
sizes_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sizes_module)


def test_no_class_is_too_long_to_read_in_one_sitting() -> None:
    classes, _ = sizes_module.sizes()
    assert [c for c in classes if c[0] > 430] == []


def test_no_function_is_longer_than_a_screen() -> None:
    _, functions = sizes_module.sizes()
    assert [f for f in functions if f[0] > 80] == []
