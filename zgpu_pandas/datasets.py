"""Small data sets shipped with the package, for the demo, the notebooks and experiments.

Example::

    >>> from zgpu_pandas.datasets import load_reviews
    >>> df = load_reviews()
    >>> len(df), list(df.columns)
    (300, ['review_id', 'product', 'stars', 'review'])
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["load_reviews"]


def load_reviews() -> pd.DataFrame:
    """300 short product reviews made up by the project (``tools/make_reviews.py``), with a
    few deliberately awkward rows: missing, blank, emoji only, other scripts, embedded quotes
    and newlines, numbers only, and a few very long ones. Columns: ``review_id``, ``product``,
    ``stars`` (1-5), ``review`` (text, ``NaN`` where missing)."""
    with resources.files("zgpu_pandas").joinpath("data/reviews.csv").open("rb") as f:
        return pd.read_csv(
            f,
            dtype={"review_id": str, "product": str, "review": str},
            keep_default_na=False,
            na_values=[""],
        )
