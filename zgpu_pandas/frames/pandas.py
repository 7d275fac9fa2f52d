"""``df.zgpu``: the pandas accessor, registered on import (``import zgpu_pandas`` does it).

The methods are those of :class:`~zgpu_pandas.frames._namespace.FrameNamespace`; the rows
are read through :class:`~zgpu_pandas.frames._pandas_rows.PandasRows` and the answers come
back through :class:`~zgpu_pandas.frames._pandas_columns.PandasOutput` (same index and order,
the caller's frame never changed).

Example::

    import pandas as pd
    import zgpu_pandas  # noqa: F401

    df = pd.DataFrame({"review": ["Great!", "Broke after a day.", None]})
    out = df.zgpu.batch_chat("review", model="LFM2.5-1.2B-Instruct",
                             system="Answer positive, neutral or negative.", temperature=0)
    out[["review", "response", "response_status"]]
"""

from __future__ import annotations

import pandas as pd

from ._namespace import FrameNamespace

__all__ = ["ZgpuAccessor"]


@pd.api.extensions.register_dataframe_accessor("zgpu")
class ZgpuAccessor(FrameNamespace[pd.DataFrame]):
    """Batch chat completions over the rows of a DataFrame (``df.zgpu``).

    ``df.zgpu.batch_chat(...)`` runs a job and returns the frame with the answers;
    ``df.zgpu.submit_chat(...)`` starts it and returns a :class:`BatchJob` at once;
    ``df.zgpu.estimate_chat(...)`` says what a job would send and cost, without sending;
    ``df.zgpu.attach(...)`` picks up a job or batches made earlier from this frame;
    ``df.zgpu.last_job`` is the most recent job started from this frame object.
    """
