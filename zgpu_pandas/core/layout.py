"""Which row each request line of a job carries: the part of a job that lets its results be
rebuilt, and its failed rows resubmitted, without the frame it came from.

A :class:`JobLayout` is taken from the :class:`~zgpu_pandas.core.requests.RequestSet` when a job
starts and stored beside the journal record (``layout.npz``), once: row positions of the
lines in order, the rows not sent (with code and reason) and the rows that share another
row's line.

Example::

    >>> import pandas as pd
    >>> from zgpu_pandas.core.requests import build_requests
    >>> reqs = build_requests(pd.DataFrame({"q": ["a", None, "a"]}), prompt="q", model="m")
    >>> lay = JobLayout.of(reqs)
    >>> lay.sent.tolist(), lay.skipped.tolist(), lay.dup_pos.tolist(), lay.dup_src.tolist()
    ([0], [1], [2], [0])
    >>> JobLayout.from_bytes(lay.to_bytes()).skipped_codes
    ['missing_prompt']
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from .requests import RequestSet

__all__ = ["JobLayout"]


@dataclass(frozen=True)
class JobLayout:
    """Row positions of a job's lines (``sent``, in line order), of the rows not sent
    (``skipped`` with their codes and reasons) and of the rows answered by another row's line
    (``dup_pos[k]`` gets the answer of ``dup_src[k]``)."""

    n_rows: int
    sent: np.ndarray
    skipped: np.ndarray
    skipped_codes: list[str]
    skipped_reasons: list[str]
    dup_pos: np.ndarray
    dup_src: np.ndarray

    @classmethod
    def of(cls, reqs: RequestSet) -> JobLayout:
        return cls(
            n_rows=reqs.n_rows,
            sent=np.asarray(reqs.positions, dtype=np.int64),
            skipped=np.asarray(reqs.skipped_positions, dtype=np.int64),
            skipped_codes=list(reqs.skipped_codes),
            skipped_reasons=list(reqs.skipped_reasons),
            dup_pos=np.asarray(reqs.duplicate_positions, dtype=np.int64),
            dup_src=np.asarray(reqs.duplicate_of, dtype=np.int64),
        )

    def to_bytes(self) -> bytes:
        """The layout as an ``.npz`` archive (no pickles: plain arrays and text)."""
        # Skip reasons repeat ("column 'x' is missing"): store each distinct pair once.
        pairs = sorted(set(zip(self.skipped_codes, self.skipped_reasons, strict=True)))
        kind_of = {p: k for k, p in enumerate(pairs)}
        kinds = np.array(
            [kind_of[p] for p in zip(self.skipped_codes, self.skipped_reasons, strict=True)],
            dtype=np.int32,
        )
        buf = io.BytesIO()
        np.savez(
            buf,
            n_rows=np.array([self.n_rows], dtype=np.int64),
            sent=self.sent,
            skipped=self.skipped,
            skipped_kind=kinds,
            kind_code=np.array([c for c, _ in pairs], dtype=str),
            kind_reason=np.array([r for _, r in pairs], dtype=str),
            dup_pos=self.dup_pos,
            dup_src=self.dup_src,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> JobLayout:
        """Read :meth:`to_bytes` back; a damaged archive raises ``ValueError``."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                n_rows = int(z["n_rows"][0])
                arrays = {
                    k: np.asarray(z[k], dtype=np.int64)
                    for k in ("sent", "skipped", "dup_pos", "dup_src")
                }
                kinds = np.asarray(z["skipped_kind"], dtype=np.int64)
                codes = [str(c) for c in z["kind_code"]]
                reasons = [str(r) for r in z["kind_reason"]]
        except Exception as exc:  # a damaged archive fails in many ways (zip, zlib, npy)
            raise ValueError(f"not a job layout ({type(exc).__name__}: {exc})") from None
        everything = np.concatenate([arrays["sent"], arrays["skipped"], arrays["dup_pos"]])
        if (
            len(kinds) != len(arrays["skipped"])
            or len(arrays["dup_pos"]) != len(arrays["dup_src"])
            or (len(kinds) and (kinds.min() < 0 or kinds.max() >= len(codes)))
            or (len(everything) and (everything.min() < 0 or everything.max() >= n_rows))
        ):
            raise ValueError("not a job layout (inconsistent arrays)")
        return cls(
            n_rows=n_rows,
            sent=arrays["sent"],
            skipped=arrays["skipped"],
            skipped_codes=[codes[k] for k in kinds],
            skipped_reasons=[reasons[k] for k in kinds],
            dup_pos=arrays["dup_pos"],
            dup_src=arrays["dup_src"],
        )
