"""The frame-agnostic core: a job over rows given as Arrow arrays, whatever DataFrame library
they came from. Nothing here imports pandas or Polars; the adapters in ``zgpu_pandas.frames``
convert in and out. See docs/architecture.md."""
