"""JobLayout: which row each line carries, stored beside the journal record."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from zgpu_pandas.core.layout import JobLayout
from zgpu_pandas.core.requests import RequestSet, build_requests


def test_round_trip_keeps_positions_skips_and_shared_rows() -> None:
    df = pd.DataFrame({"q": ["a", None, "a", "", "b", "a", None]})
    reqs = build_requests(df, prompt="q", model="m")
    lay = JobLayout.of(reqs)
    back = JobLayout.from_bytes(lay.to_bytes())
    assert back.n_rows == 7
    assert back.sent.tolist() == [0, 4]
    assert back.skipped.tolist() == [1, 3, 6]
    assert back.skipped_codes == ["missing_prompt", "empty_prompt", "missing_prompt"]
    assert back.skipped_reasons == reqs.skipped_reasons
    assert (back.dup_pos.tolist(), back.dup_src.tolist()) == ([2, 5], [0, 0])


@pytest.mark.parametrize(
    "data", [b"", b"garbage", b"PK\x03\x04" + b"\x00" * 30, np.zeros(3).tobytes()]
)
def test_damaged_bytes_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a job layout"):
        JobLayout.from_bytes(data)


def test_inconsistent_arrays_are_refused() -> None:
    lay = JobLayout(
        n_rows=2,
        sent=np.array([0, 5]),  # row 5 of a 2-row frame
        skipped=np.empty(0, np.int64),
        skipped_codes=[],
        skipped_reasons=[],
        dup_pos=np.empty(0, np.int64),
        dup_src=np.empty(0, np.int64),
    )
    with pytest.raises(ValueError, match="inconsistent"):
        JobLayout.from_bytes(lay.to_bytes())


def test_subset_and_from_lines_give_the_same_lines() -> None:
    df = pd.DataFrame({"q": [f"t{i}" for i in range(9)]})
    reqs = build_requests(df, prompt="q", model="m", max_lines=2)
    sub = reqs.subset([7, 1, 4])
    assert sub.positions.tolist() == [1, 4, 7]
    assert [c.lines for c in sub.chunks] == [2, 1]  # the same caps
    lines = list(reqs.iter_lines())
    assert list(sub.iter_lines()) == [lines[1], lines[4], lines[7]]
    again = RequestSet.from_lines(9, [lines[7], lines[1]], [7, 1])
    assert again.positions.tolist() == [1, 7]
    assert list(again.iter_lines()) == [lines[1], lines[7]]
    assert again.chunk_bytes(0) == lines[1] + b"\n" + lines[7] + b"\n"
    with pytest.raises(ValueError, match="no request line"):
        reqs.subset([9])
