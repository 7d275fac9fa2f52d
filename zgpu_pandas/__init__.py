"""zgpu_pandas: the ZeroGPU Batch API as a one-liner for pandas.

Importing the package registers the ``df.zgpu`` accessor. Example::

    import pandas as pd
    import zgpu_pandas  # noqa: F401  (registers df.zgpu)

    df = pd.DataFrame({"review": ["Great!", "Broke after a day."]})
    out = df.zgpu.batch_chat("review", model="LFM2.5-1.2B-Instruct", base_url="local")
"""

from __future__ import annotations

__version__ = "0.1.0"
