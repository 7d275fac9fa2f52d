"""``pl_df.zgpu``: the Polars namespace, with the same methods, arguments, result columns,
statuses, journal, resume, dedup, structured output and progress as the pandas accessor.

Registered when Polars is imported alongside ``zgpu_pandas`` (in either order: see
:func:`zgpu_pandas._import_hooks.install`), so a plain ``import zgpu_pandas`` never pays for
importing Polars. Results come back as a new ``polars.DataFrame`` in the caller's row order
(Polars has no index; rows are named by position in messages).

Example::

    import polars as pl
    import zgpu_pandas  # noqa: F401

    df = pl.DataFrame({"review": ["Great!", "Broke after a day.", None]})
    out = df.zgpu.batch_chat("review", model="LFM2.5-1.2B-Instruct", base_url="local")
    out.select("review", "response", "response_status")
"""

from __future__ import annotations

import polars as pl

from ._namespace import FrameNamespace

__all__ = ["ZgpuPolarsNamespace", "register"]


class ZgpuPolarsNamespace(FrameNamespace[pl.DataFrame]):
    """Batch chat completions over the rows of a Polars DataFrame (``pl_df.zgpu``): the
    methods of the pandas accessor (``batch_chat``, ``submit_chat``, ``estimate_chat``,
    ``attach``, ``last_job``), returning Polars frames."""


_registered = False


def register() -> None:
    """Register ``pl.DataFrame.zgpu`` (once)."""
    global _registered
    if not _registered:
        pl.api.register_dataframe_namespace("zgpu")(ZgpuPolarsNamespace)
        _registered = True


register()  # on import: the import hook (zgpu_pandas._import_hooks) only imports this module
