"""Register the Polars namespace when Polars is imported, without importing it ourselves.

Importing Polars takes a quarter of a second; most users of this package never do. So
``import zgpu_pandas`` registers ``pl_df.zgpu`` at once only when Polars is already imported,
and otherwise puts a finder on ``sys.meta_path`` that lets Polars import as usual and then
registers the namespace (and removes itself). Nothing is done when Polars is not installed.

Example::

    import zgpu_pandas          # Polars not loaded: nothing imported, a finder waits
    import polars as pl         # now pl.DataFrame.zgpu exists
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = ["install"]


def _register() -> None:
    from .frames.polars import register

    register()


class _Loader(importlib.abc.Loader):
    """Polars' own loader, plus the registration once the module has run."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        _register()


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "polars":
            return None
        sys.meta_path.remove(self)  # one shot; also keeps find_spec below from recursing
        spec = importlib.util.find_spec("polars")
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    """Register now if Polars is loaded; else wait for it (if it is installed at all)."""
    if sys.modules.get("polars") is not None:
        _register()
        return
    try:
        installed = importlib.util.find_spec("polars") is not None
    except (ImportError, ValueError):  # blocked or broken: as if absent
        installed = False
    if installed and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
