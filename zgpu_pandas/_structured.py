"""Structured outputs: JSON schemas in, parsed fields out as columns.

``response_format=`` may be a JSON schema dict, a full OpenAI-style ``response_format``
dict, or a Pydantic model class (Pydantic is optional). The model's replies are parsed as
JSON, tolerating Markdown code fences and chatter around the object, validated against the
schema, and split into one column per top-level field. A reply that does not parse or does not
validate is reported per row (the caller marks it ``parse_error`` and keeps the raw text).

Example::

    >>> rf, spec = normalize_response_format({"type": "object",
    ...     "properties": {"sentiment": {"type": "string"}}, "required": ["sentiment"]})
    >>> rf["type"]
    'json_schema'
    >>> parsed = parse_replies(['```json\\n{"sentiment": "positive"}\\n```', "oops"], spec)
    >>> parsed.fields["sentiment"], parsed.errors[1] is not None
    (['positive', None], True)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

__all__ = [
    "PARSE_ERROR",
    "ParsedReplies",
    "SchemaSpec",
    "extract_json",
    "normalize_response_format",
    "parse_into_frame",
    "parse_replies",
]

#: ``<output>_status`` (and ``_error_code``) of a row whose reply does not parse or validate.
PARSE_ERROR = "parse_error"


@dataclass(frozen=True)
class SchemaSpec:
    """What to parse replies against: a JSON schema (may be ``None`` for ``json_object``)
    and, when given, the Pydantic model that produced it."""

    schema: dict[str, Any] | None
    name: str = "response"
    model: Any = None  # a pydantic.BaseModel subclass, when one was passed

    @property
    def fields(self) -> list[str]:
        """Top-level property names, in schema order (empty when unknown)."""
        if not self.schema:
            return []
        props = self.schema.get("properties")
        return list(props) if isinstance(props, dict) else []


def _is_pydantic_model(obj: Any) -> bool:
    return (
        isinstance(obj, type)
        and hasattr(obj, "model_json_schema")
        and hasattr(obj, "model_validate")
    )


def normalize_response_format(response_format: Any) -> tuple[dict[str, Any], SchemaSpec]:
    """Turn what the user passed into the request's ``response_format`` and a parse spec.

    Accepts a Pydantic model class, a bare JSON schema (a dict with ``properties`` or a
    ``type`` other than the OpenAI wrapper types), ``{"type": "json_schema", "json_schema":
    {...}}`` or ``{"type": "json_object"}``. Anything else raises ``TypeError``/``ValueError``
    with what to pass instead.
    """
    if _is_pydantic_model(response_format):
        schema = response_format.model_json_schema()
        name = getattr(response_format, "__name__", "response")
        return (
            {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": True},
            },
            SchemaSpec(schema=schema, name=name, model=response_format),
        )
    if not isinstance(response_format, dict):
        raise TypeError(
            "response_format must be a JSON schema dict, an OpenAI response_format dict "
            f"or a Pydantic model class, not {type(response_format).__name__}"
        )
    kind = response_format.get("type")
    if kind == "json_schema":
        inner = response_format.get("json_schema")
        if not isinstance(inner, dict) or not isinstance(inner.get("schema"), dict):
            raise ValueError(
                'response_format {"type": "json_schema"} needs "json_schema": {"name": ..., '
                '"schema": {...}}'
            )
        return dict(response_format), SchemaSpec(
            schema=inner["schema"], name=str(inner.get("name", "response"))
        )
    if kind == "json_object":
        return dict(response_format), SchemaSpec(schema=None)
    if kind == "text":
        raise ValueError('response_format {"type": "text"} asks for no structure; omit it instead')
    # A bare schema: wrap it the way the chat endpoint expects.
    name = str(response_format.get("title") or "response")
    name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "response"
    return (
        {"type": "json_schema", "json_schema": {"name": name, "schema": response_format}},
        SchemaSpec(schema=response_format, name=name),
    )


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """Parse the JSON value in ``text``: as is, else inside a code fence, else the outermost
    ``{...}`` or ``[...]`` span. Raises ``ValueError`` when there is none."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    m = _FENCE.search(text)
    if m:
        try:
            return orjson.loads(m.group(1))
        except orjson.JSONDecodeError:
            pass
    for open_, close in (("{", "}"), ("[", "]")):
        start, end = text.find(open_), text.rfind(close)
        if start != -1 and end > start:
            try:
                return orjson.loads(text[start : end + 1])
            except orjson.JSONDecodeError:
                continue
    raise ValueError("the reply is not JSON")


@dataclass
class ParsedReplies:
    """Per-row parse outcome: ``fields[name][i]`` is the value for row ``i`` (``None`` when
    absent or unparsed); ``errors[i]`` is ``None`` or a message saying why row ``i`` failed."""

    fields: dict[str, list[Any]] = field(default_factory=dict)
    errors: list[str | None] = field(default_factory=list)


def _validator(spec: SchemaSpec) -> Any:
    if spec.schema is None or spec.model is not None:
        return None
    import jsonschema

    cls = jsonschema.validators.validator_for(spec.schema)
    cls.check_schema(spec.schema)
    return cls(spec.schema)


def parse_replies(texts: Sequence[str | None], spec: SchemaSpec) -> ParsedReplies:
    """Parse and validate each reply; ``None`` entries (rows with no answer) stay ``None``
    without counting as parse errors."""
    validator = _validator(spec)
    names = spec.fields
    out = ParsedReplies(fields={n: [None] * len(texts) for n in names}, errors=[None] * len(texts))
    for i, text in enumerate(texts):
        if text is None:
            continue
        try:
            value = extract_json(text)
        except ValueError as exc:
            out.errors[i] = str(exc)
            continue
        if spec.model is not None:
            try:
                value = spec.model.model_validate(value).model_dump(mode="json")
            except Exception as exc:  # pydantic.ValidationError, without importing pydantic
                out.errors[i] = f"does not match {spec.name}: {_first_line(exc)}"
                continue
        elif validator is not None:
            err = next(iter(validator.iter_errors(value)), None)
            if err is not None:
                where = "/".join(str(p) for p in err.absolute_path) or "the top level"
                out.errors[i] = f"does not match the schema at {where}: {err.message}"
                continue
        if not isinstance(value, dict):
            out.errors[i] = f"expected a JSON object, got {type(value).__name__}"
            continue
        for key, v in value.items():
            col = out.fields.get(key)
            if col is None:
                if names:  # schema given: extra keys are not columns
                    continue
                col = out.fields[key] = [None] * len(texts)
            col[i] = v
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(t.strip() for t in text[:3]) if text else type(exc).__name__


def _column_values(values: list[Any]) -> Any:
    """A pandas array for one field: nullable ints/floats/booleans, arrow strings, else
    objects (lists, dicts, mixed)."""
    arr = pd.array(values)
    if isinstance(arr.dtype, pd.StringDtype):
        return pd.array(values, dtype=pd.StringDtype("pyarrow"))
    return arr


def parse_into_frame(
    out: pd.DataFrame, spec: SchemaSpec, *, output: str = "response", overwrite: bool = False
) -> pd.DataFrame:
    """Parse the answers in ``out[output]`` (rows with status ``ok``) and add one column per
    field. A reply that does not parse or validate gets status and error code
    ``parse_error`` and a message in ``{output}_error``; its raw text stays in ``{output}``.

    A field named like a column the frame already has replaces it only with ``overwrite``
    (else :class:`~zgpu_pandas._results.ColumnClashError`); a field named like one of the
    answer columns is always refused (choose another ``output=`` prefix).

    Example::

        out = parse_into_frame(out, spec, output="response")
        out[["sentiment", "topics", "response_status"]]
    """
    from ._results import ColumnClashError, result_columns

    status_col, code_col, err_col = f"{output}_status", f"{output}_error_code", f"{output}_error"
    ok = (out[status_col] == "ok").fillna(False).to_numpy(dtype=bool)
    raw = out[output].astype(object).where(out[output].notna(), None).to_numpy()
    texts: list[str | None] = [t if good else None for t, good in zip(raw, ok, strict=True)]
    parsed = parse_replies(texts, spec)
    own = set(result_columns(output))
    clash_own = [n for n in parsed.fields if n in own]
    if clash_own:
        raise ColumnClashError(
            f"The reply field(s) {', '.join(map(repr, clash_own))} would replace the answer "
            f"columns; pass output='<other prefix>' so that the answers go elsewhere."
        )
    if not overwrite:
        clash = [n for n in parsed.fields if _has_column(out, n)]
        if clash:
            raise ColumnClashError(
                f"The reply field(s) {', '.join(map(repr, clash))} are also columns of the "
                f"frame. The answers are kept (in the journal, for a job run by batch_chat): "
                f"run the same call again with overwrite=True to replace the columns."
            )
    res = out.copy(deep=False)
    bad = [i for i, e in enumerate(parsed.errors) if e is not None]
    if bad:
        status, codes, errors = (
            np.array(res[c].astype(object).where(res[c].notna(), None), dtype=object)
            for c in (status_col, code_col, err_col)
        )
        for i in bad:
            status[i] = PARSE_ERROR
            codes[i] = PARSE_ERROR
            errors[i] = f"the reply is not valid structured output: {parsed.errors[i]}"
        for name, fixed in ((status_col, status), (code_col, codes), (err_col, errors)):
            res[name] = pd.array(fixed, dtype=res[name].dtype)
    for name, values in parsed.fields.items():
        res[name] = _column_values(values)
    return res


def _has_column(df: pd.DataFrame, name: str) -> bool:
    try:
        return name in df.columns
    except TypeError:
        return False
