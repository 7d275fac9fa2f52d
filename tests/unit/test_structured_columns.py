"""Reply fields become columns: generated schemas of every JSON-schema type, generated field
names and values, generated answered/missing patterns. Each column has the dtype its schema
promises and holds exactly the value each row's reply gave (one Python object per row for
lists and objects, never a 2-D array), on pandas 2 and 3 alike."""

from __future__ import annotations

import json
import math
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from zgpu_pandas.core.results import result_columns
from zgpu_pandas.core.structured import field_kind, normalize_response_format
from zgpu_pandas.frames._pandas_columns import field_column, parse_into_frame
from zgpu_pandas.frames._pandas_compat import string_array

INT64 = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=64)
TEXT = st.text(max_size=12)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | INT64 | FLOATS | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
NULL = {"type": "null"}


@st.composite
def fields(draw: st.DrawFn) -> tuple[dict[str, Any], st.SearchStrategy[Any], str | None]:
    """A field's schema, a strategy for its values, and the dtype its column must have
    (``None``: whatever the values present make it)."""
    kind = draw(
        st.sampled_from(
            ["string", "enum", "integer", "number", "boolean", "fixed_list", "list",
             "object", "nested", "any", "multi"]
        )
    )
    if kind == "string":
        schema, values, dtype = {"type": "string"}, TEXT, "string"
    elif kind == "enum":
        options = draw(st.lists(TEXT, min_size=1, max_size=4, unique=True))
        schema, values, dtype = {"enum": options}, st.sampled_from(options), "string"
    elif kind == "integer":
        schema, values, dtype = {"type": "integer"}, INT64, "Int64"
    elif kind == "number":
        schema = {"type": "number"}
        values, dtype = FLOATS | st.integers(-(2**53), 2**53), "Float64"
    elif kind == "boolean":
        schema, values, dtype = {"type": "boolean"}, st.booleans(), "boolean"
    elif kind == "fixed_list":  # every row the same length: the case that built a 2-D array
        n = draw(st.integers(0, 4))
        item = draw(st.sampled_from([{"type": "string"}, {"type": "integer"}, {"type": "number"}]))
        item_values = {"string": TEXT, "integer": INT64, "number": FLOATS}[item["type"]]
        schema = {"type": "array", "items": item, "minItems": n, "maxItems": n}
        values, dtype = st.lists(item_values, min_size=n, max_size=n), "object"
    elif kind == "list":
        schema, values, dtype = {"type": "array"}, st.lists(JSON_VALUES, max_size=5), "object"
    elif kind == "object":
        schema = {"type": "object"}
        values, dtype = st.dictionaries(TEXT, JSON_VALUES, max_size=4), "object"
    elif kind == "nested":  # a Pydantic-style $ref to a sub-model
        schema = {"$ref": "#/$defs/Sub"}
        values = st.fixed_dictionaries({"x": INT64, "tags": st.lists(TEXT, max_size=3)})
        dtype = "object"
    elif kind == "multi":  # several kinds allowed: an object column, one value per row
        schema = {"type": ["string", "integer", "array"]}
        values, dtype = TEXT | INT64 | st.lists(TEXT, max_size=2), None
    else:
        schema, values, dtype = {}, JSON_VALUES, None
    if kind not in ("any", "nested") and draw(st.booleans()):  # optional: null allowed
        schema = {"anyOf": [schema, NULL]} if draw(st.booleans()) else _with_null(schema)
        values = st.none() | values
    return schema, values, dtype


def _with_null(schema: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, NULL]}


FIELD_NAMES = st.text(min_size=1, max_size=10).filter(
    lambda n: n not in result_columns("response") and n not in ("q",)
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str | None], list[dict[str, Any] | None]]:
    names = draw(st.lists(FIELD_NAMES, min_size=1, max_size=5, unique=True))
    specs = {n: draw(fields()) for n in names}
    schema = {
        "type": "object",
        "properties": {n: s for n, (s, _, _) in specs.items()},
        "$defs": {
            "Sub": {
                "type": "object",
                "properties": {"x": {"type": "integer"}, "tags": {"type": "array"}},
                "required": ["x", "tags"],
            }
        },
    }
    n_rows = draw(st.integers(1, 6))
    rows: list[dict[str, Any] | None] = []
    for _ in range(n_rows):
        if draw(st.integers(0, 4)) == 0:  # a row with no answer (skipped or failed)
            rows.append(None)
            continue
        rows.append({n: draw(v) for n, (_, v, _) in specs.items() if draw(st.integers(0, 5))})
    return schema, {n: d for n, (_, _, d) in specs.items()}, rows


def answered_frame(rows: list[dict[str, Any] | None]) -> pd.DataFrame:
    """The frame merge_results hands to the parser: raw reply text on answered rows."""
    text = [None if r is None else json.dumps(r) for r in rows]
    status = ["error" if r is None else "ok" for r in rows]
    frame = pd.DataFrame({"q": range(len(rows))})
    frame["response"] = string_array(pa.array(text, pa.string()))
    frame["response_status"] = string_array(pa.array(status, pa.string()))
    for c in ("response_error_code", "response_error"):
        frame[c] = string_array(pa.array([None] * len(rows), pa.string()))
    return frame


def same(got: Any, want: Any) -> bool:
    if want is None:
        return got is None or got is pd.NA
    if isinstance(want, float) or (isinstance(got, float) and isinstance(want, int)):
        return math.isclose(float(got), float(want), rel_tol=0, abs_tol=0) or float(got) == float(want)
    if isinstance(want, list | dict):
        return type(got) is type(want) and got == want
    return bool(got == want) and not isinstance(got, np.ndarray)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_every_field_becomes_a_column_of_its_schema_type(case: Any) -> None:
    schema, dtypes, rows = case
    _, spec = normalize_response_format(schema)
    out = parse_into_frame(answered_frame(rows), spec)
    assert out["response_status"].tolist() == ["error" if r is None else "ok" for r in rows]
    for name, dtype in dtypes.items():
        col = out[name]
        if dtype is not None:
            assert str(col.dtype) == dtype, (name, schema["properties"][name], col.dtype)
        assert col.shape == (len(rows),)
        for i, row in enumerate(rows):
            want = None if row is None else row.get(name)
            assert same(col.iloc[i], want), (name, i, col.iloc[i], want)


@pytest.mark.parametrize(
    ("values", "kind", "dtype"),
    [
        ([["a", "b"], ["c", "d"]], "array", "object"),  # equal-length lists
        ([["a"], ["b", "c", "d"], []], "array", "object"),  # ragged
        ([None, None], "array", "object"),  # all null
        ([["a", "b"], None, ["c", "d"]], "array", "object"),  # mixed null
        ([{"a": 1}, {"a": 2}], "object", "object"),
        ([None, None], "integer", "Int64"),  # all null keeps the schema's dtype
        ([3.0, 4], "integer", "Int64"),  # JSON Schema counts 3.0 as an integer
        ([2**63, 1], "integer", "object"),  # past 64 bits: kept exact, as objects
        ([1, 2], "number", "Float64"),
        (["5", "x"], "integer", "string"),  # does not fit the kind: read off the values
        ([1, "x", None], None, "object"),
        ([True, None], None, "boolean"),
        ([1, 2.5], None, "Float64"),
        ([], None, "object"),
    ],
)
def test_field_column_shapes(values: list[Any], kind: str | None, dtype: str) -> None:
    col = pd.Series(field_column(values, kind))
    assert str(col.dtype) == dtype and len(col) == len(values)
    for got, want in zip(col, values, strict=True):
        assert same(got, want), (got, want)


def test_field_kind_reads_the_forms_users_write() -> None:
    root = {"$defs": {"Tag": {"type": "string", "enum": ["a"]}}}
    assert field_kind({"$ref": "#/$defs/Tag"}, root=root) == "string"
    assert field_kind({"$ref": "#/$defs/Missing"}, root=root) is None
    assert field_kind({"type": ["integer", "number", "null"]}) == "number"
    assert field_kind({"oneOf": [{"type": "string"}, {"type": "integer"}]}) is None
    assert field_kind({"const": True}) == "boolean"
    assert field_kind({"properties": {"a": {}}}) == "object"
    assert field_kind({"items": {}}) == "array"
    assert field_kind({"allOf": [{"$ref": "#/$defs/Tag"}]}, root=root) == "string"
    assert field_kind({"type": "null"}) is None and field_kind(True) is None
