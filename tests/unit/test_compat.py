"""Each difference between pandas 2 and pandas 3 that the package handles, tested on
whichever pandas is installed (CI runs the suite on both): copy-on-write, the default string
dtype, Arrow-backed versus object text, and list values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from zgpu_pandas.core.requests import build_requests
from zgpu_pandas.frames._pandas_compat import (
    PANDAS_MAJOR,
    as_objects,
    copy_on_write_active,
    is_text_dtype,
    object_array,
    snapshot,
    string_array,
)

MODEL = "LFM2.5-1.2B-Instruct"


def test_the_installed_pandas_is_one_we_support() -> None:
    assert PANDAS_MAJOR in (2, 3)


def test_copy_on_write_is_known() -> None:
    assert copy_on_write_active() is (PANDAS_MAJOR >= 3 or pd.options.mode.copy_on_write is True)


@pytest.mark.parametrize("cow", [False, True])
def test_snapshot_is_unaffected_by_later_in_place_edits(cow: bool) -> None:
    if PANDAS_MAJOR >= 3 and not cow:
        pytest.skip("pandas 3 always copies on write")
    ctx = pd.option_context("mode.copy_on_write", cow) if PANDAS_MAJOR < 3 else _nullcontext()
    with ctx:
        df = pd.DataFrame({"review": ["good", "bad"], "n": [1, 2]})
        snap = snapshot(df)
        df.loc[0, "review"] = "edited"
        df.iloc[1, 1] = 99
        assert snap["review"].tolist() == ["good", "bad"]
        assert snap["n"].tolist() == [1, 2]


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize(
    "dtype",
    [
        object,  # pandas 2's default for text
        "str",  # pandas 3's default (object on pandas 2)
        "string[python]",
        "string[pyarrow]",
        pd.ArrowDtype(pa.string()),
        pd.ArrowDtype(pa.large_string()),
        "category",
    ],
    ids=str,
)
def test_text_in_every_dtype_makes_the_same_requests(dtype: object) -> None:
    values = ["café 🎉", None, "b"]
    df = pd.DataFrame({"p": pd.Series(values, dtype=dtype)})  # type: ignore[call-overload]
    reqs = build_requests(df, prompt="p", model=MODEL)
    ref = build_requests(pd.DataFrame({"p": pd.Series(values, dtype=object)}), prompt="p", model=MODEL)
    assert reqs.positions.tolist() == [0, 2] and reqs.skipped_positions.tolist() == [1]
    assert list(reqs.iter_lines()) == list(ref.iter_lines())
    assert b"caf\xc3\xa9 \xf0\x9f\x8e\x89" in next(reqs.iter_lines())


def test_is_text_dtype() -> None:
    assert is_text_dtype(pd.StringDtype("python")) and is_text_dtype(pd.StringDtype("pyarrow"))
    assert is_text_dtype(pd.ArrowDtype(pa.large_string()))
    assert not is_text_dtype(np.dtype(object)) and not is_text_dtype(pd.ArrowDtype(pa.int64()))
    # pandas 3's default text dtype is a StringDtype; pandas 2's is object
    assert is_text_dtype(pd.Series(["a"]).dtype) is (PANDAS_MAJOR >= 3)


def test_added_text_columns_are_string_pyarrow_on_both() -> None:
    for arr in (pa.array(["a", None]), pa.array(["a", None], pa.large_string())):
        col = pd.Series(string_array(arr))
        assert col.dtype == pd.StringDtype("pyarrow")
        assert col.tolist()[0] == "a" and col.isna().tolist() == [False, True]
        assert (col == "a").tolist()[0] is True  # comparisons give nullable booleans
    chunked = pa.chunked_array([pa.array(["x"]), pa.array(["y"])])
    assert pd.Series(string_array(chunked)).tolist() == ["x", "y"]


@pytest.mark.parametrize(
    "values",
    [
        [[1, 2], [3, 4]],  # equal length: np.array would make a 2x2 matrix
        [["a"], ["b", "c"]],  # ragged: np.array fails on pandas 2 / numpy 2
        [None, None],
        [[1, 2], None, [3, 4]],
        [{"a": 1}, {"a": 2}],
        [],
    ],
)
def test_object_array_holds_one_value_per_row(values: list[object]) -> None:
    arr = object_array(values)
    assert arr.shape == (len(values),) and arr.dtype == object
    assert all(a is b for a, b in zip(arr, values, strict=True))
    s = pd.Series(arr)
    assert s.tolist() == values


def test_as_objects_gives_none_for_every_missing_marker() -> None:
    s = pd.Series(["a", None, np.nan, pd.NA], dtype=object)
    assert as_objects(s).tolist() == ["a", None, None, None]
    assert as_objects(pd.Series([1, None], dtype="Int64")).tolist() == [1, None]
    lists = pd.Series(object_array([[1, 2], [3, 4]]))
    assert [type(v) for v in as_objects(lists)] == [list, list]
    original = pd.Series(["x", None], dtype="string[pyarrow]")
    out = as_objects(original)
    out[0] = "changed"
    assert original.tolist()[0] == "x"  # a copy, never a view into the column


def test_a_large_string_column_converts_in_pieces_on_every_pandas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pandas < 2.2 refuses large_string; the fallback casts in pieces under 2 GiB (the
    limit is lowered here so that the test needs kilobytes, not gigabytes)."""
    import zgpu_pandas.frames._pandas_compat as compat

    arr = pa.array([f"row {i} " + "x" * 100 for i in range(64)] + [None], pa.large_string())
    real = pd.arrays.ArrowStringArray
    seen: list[int] = []

    def strict(values: pa.ChunkedArray) -> object:  # behave like pandas 2.0
        if pa.types.is_large_string(values.type):
            raise TypeError("ArrowStringArray requires a PyArrow (chunked) array of string type")
        seen.append(values.num_chunks)
        return real(values)

    monkeypatch.setattr(compat, "_MAX_PIECE_BYTES", 1000)
    monkeypatch.setattr(pd.arrays, "ArrowStringArray", strict)
    col = pd.Series(compat.string_array(arr))
    assert col.tolist()[:-1] == arr.to_pylist()[:-1] and col.isna().tolist()[-1]
    assert seen and seen[0] > 4  # it really was cut into pieces


@pytest.mark.parametrize("start", [0, 1, 3])
def test_int_and_float_answer_columns_over_arrow_values(start: int) -> None:
    # Int64 columns over the Arrow array's own values (sliced, with nulls, all null, another
    # integer type) and Float64 ones (with and without nulls): values and missing as the
    # input says; put in a frame as the merge does, a cell can be set, and the Arrow array
    # the column was made from is not changed by it
    from zgpu_pandas.frames._pandas_columns import _column
    from zgpu_pandas.frames._pandas_compat import int_array

    full = pa.array([1, None, 3, 2**40, None, -5], pa.int64())
    arr = full.slice(start)
    want = full.to_pylist()[start:]
    for col in (int_array(arr), _column(pa.chunked_array([arr.slice(0, 1), arr.slice(1)]))):
        out = pd.DataFrame({"q": range(len(want))})
        out["n"] = col
        assert str(out["n"].dtype) == "Int64"
        assert [None if v is pd.NA else v for v in out["n"].tolist()] == want
        out.loc[0, "n"] = 9
        assert out["n"].iloc[0] == 9 and arr.to_pylist() == want
    nulls = pa.nulls(4, pa.int64())
    out = pd.DataFrame({"n": int_array(nulls)})
    assert out["n"].isna().all()
    out.loc[0, "n"] = 5
    assert nulls.null_count == 4 and nulls.to_pylist() == [None] * 4
    assert pd.Series(int_array(pa.array([7, None], pa.int32()))).tolist()[0] == 7
    for values in ([0.5, None, 2.0], [0.5, 1.5, 2.0]):
        floats = pa.array(values, pa.float64()).slice(start % 3)
        out = pd.DataFrame({"c": _column(floats)})
        assert str(out["c"].dtype) == "Float64"
        assert [None if v is pd.NA else v for v in out["c"].tolist()] == values[start % 3 :]
        out.loc[0, "c"] = 1.25
        assert out["c"].iloc[0] == 1.25 and floats.to_pylist() == values[start % 3 :]
