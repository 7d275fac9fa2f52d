"""Register the Polars and Dask namespaces when those libraries are imported, without
importing them ourselves.

Importing Polars takes a quarter of a second, Dask's DataFrame more; most users of this
package never use either. So ``import zgpu_pandas`` registers ``pl_df.zgpu`` (``ddf.zgpu``)
at once only when Polars (``dask.dataframe``) is already imported, and otherwise puts a
finder on ``sys.meta_path`` that lets the library import as usual and then registers the
namespace (and removes itself). Nothing is done for a library that is not installed.

Example::

    import zgpu_pandas          # Polars not loaded: nothing imported, a finder waits
    import polars as pl         # now pl.DataFrame.zgpu exists
    import dask.dataframe as dd # now dd.DataFrame.zgpu exists
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = ["install"]

#: the module whose import triggers a registration, and the module that registers
_HOOKS = {
    "polars": "zgpu_pandas.frames.polars",
    "dask.dataframe": "zgpu_pandas.frames.dask",
}


def _register(module: str) -> None:
    # our module registers the namespace when it is imported; while it is being imported
    # (it imported the library, which brought us here) this returns the partial module
    # and its own last line does the registering
    importlib.import_module(_HOOKS[module])


class _Loader(importlib.abc.Loader):
    """The library's own loader, plus the registration once the module has run."""

    def __init__(self, inner: importlib.abc.Loader, module: str) -> None:
        self._inner = inner
        self._module = module

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._inner.exec_module(module)
        _register(self._module)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, module: str) -> None:
        self.module = module

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.module:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps find_spec below from recursing
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader, fullname)
        return spec


def _installed(module: str) -> bool:
    top = module.split(".")[0]
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):  # blocked or broken: as if absent
        return False


def install() -> None:
    """For each library: register now if it is loaded; else wait for it (if installed)."""
    for module in _HOOKS:
        if sys.modules.get(module) is not None:
            _register(module)
            continue
        waiting = any(isinstance(f, _Finder) and f.module == module for f in sys.meta_path)
        if _installed(module) and not waiting:
            sys.meta_path.insert(0, _Finder(module))
