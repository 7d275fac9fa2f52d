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

import orjson
import pyarrow as pa

from ..errors import StructuredOutputError

__all__ = [
    "PARSE_ERROR",
    "ParsedAnswers",
    "ParsedReplies",
    "SchemaSpec",
    "StructuredOutputError",
    "column_kind",
    "extract_json",
    "field_kind",
    "field_kinds",
    "normalize_response_format",
    "parse_answers",
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


#: the column kinds a reply field can have; ``None`` stands for "any JSON value" (object column)
FieldKind = str | None
_KINDS = ("string", "integer", "number", "boolean", "array", "object")


def _kind_of_value(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object" if isinstance(v, dict) else "null"


def _merge_kinds(kinds: set[str]) -> FieldKind:
    kinds = kinds - {"null"}
    if kinds == {"integer", "number"}:
        return "number"
    return next(iter(kinds)) if len(kinds) == 1 else None


def field_kind(schema: Any, *, root: Any = None, _depth: int = 0) -> FieldKind:
    """The column kind a field's JSON schema promises, or ``None`` when it allows values of
    several kinds (or says nothing). ``null`` alternatives are dropped (they become missing
    values); ``$ref`` is followed inside ``root``; integer-or-number is a number.

    Example::

        >>> field_kind({"anyOf": [{"type": "integer"}, {"type": "null"}]})
        'integer'
        >>> field_kind({"enum": ["a", "b"]}), field_kind({"type": ["string", "number"]})
        ('string', None)
    """
    if not isinstance(schema, dict) or _depth > 32:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return field_kind(_resolve_ref(ref, root), root=root, _depth=_depth + 1)
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind if kind in _KINDS else None
    if isinstance(kind, list):
        return _merge_kinds({k for k in kind if isinstance(k, str)}) if kind else None
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            kinds = set()
            for option in options:
                if isinstance(option, dict) and option.get("type") == "null":
                    continue
                k = field_kind(option, root=root, _depth=_depth + 1)
                if k is None:
                    return None
                kinds.add(k)
            return _merge_kinds(kinds)
    if "const" in schema:
        return _merge_kinds({_kind_of_value(schema["const"])})
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return _merge_kinds({_kind_of_value(v) for v in schema["enum"]})
    for key in ("allOf",):
        for option in schema.get(key) or []:
            k = field_kind(option, root=root, _depth=_depth + 1)
            if k is not None:
                return k
    if "properties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return None


def _resolve_ref(ref: str, root: Any) -> Any:
    if not ref.startswith("#/") or not isinstance(root, dict):
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def field_kinds(spec: SchemaSpec) -> dict[str, FieldKind]:
    """Each top-level field's kind, from the schema (empty without one)."""
    if not spec.schema:
        return {}
    props = spec.schema.get("properties")
    if not isinstance(props, dict):
        return {}
    return {name: field_kind(sub, root=spec.schema) for name, sub in props.items()}


def _fits(kind: str, v: Any) -> bool:
    if kind == "string":
        return isinstance(v, str)
    if kind == "boolean":
        return isinstance(v, bool)
    if kind == "integer":
        if isinstance(v, float) and v.is_integer():
            v = int(v)  # JSON Schema counts 3.0 as an integer
        return isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63
    if kind == "number":
        if isinstance(v, int) and not isinstance(v, bool):
            try:
                float(v)
            except OverflowError:  # an integer past the largest float
                return False
            return True
        return isinstance(v, float)
    return True


def column_kind(values: Sequence[Any], kind: FieldKind = None) -> FieldKind:
    """The kind to build a field's column with: the schema's ``kind`` when every value fits
    it, else the kind the values present share, else ``None`` (a column of Python objects).
    Integers past 64 bits fit no integer column; JSON Schema counts ``3.0`` as an integer.

    Example::

        >>> column_kind([1, None], "integer"), column_kind(["5", "x"], "integer")
        ('integer', 'string')
        >>> column_kind([1, 2.5]), column_kind([1, "a"]) is None
        ('number', True)
    """
    present = [v for v in values if v is not None]
    if kind is not None and not all(_fits(kind, v) for v in present):
        kind = None
    if kind is None:
        kind = _merge_kinds({_kind_of_value(v) for v in present})
        if kind is not None and not all(_fits(kind, v) for v in present):
            kind = None  # e.g. integers past 64 bits
    return kind


@dataclass(frozen=True)
class ParsedAnswers:
    """The answers with replies that did not parse marked ``parse_error``, and each reply
    field's values per row (``None`` where missing) with the kind its schema promises."""

    answers: pa.Table
    fields: dict[str, tuple[list[Any], FieldKind]]


def parse_answers(
    answers: pa.Table,
    spec: SchemaSpec,
    *,
    output: str = "response",
    frame_columns: Any = (),
    overwrite: bool = False,
) -> ParsedAnswers:
    """Parse the answer text of rows with status ``ok`` and split each reply into fields.

    A reply that does not parse or validate gets status and error code ``parse_error`` and
    a message in ``{output}_error``; its raw text stays in ``{output}``. A field named like
    a column of the frame (``frame_columns``) replaces it only with ``overwrite`` (else
    :class:`~zgpu_pandas.errors.ColumnClashError`); a field named like one of the answer
    columns is always refused (choose another ``output=`` prefix).

    Example::

        parsed = parse_answers(table.answers(), spec)
        parsed.fields["sentiment"]          # (['positive', None, ...], 'string')
    """
    from ..errors import ColumnClashError
    from .results import column_names, result_columns

    status_col, code_col, err_col = f"{output}_status", f"{output}_error_code", f"{output}_error"
    status = answers.column(status_col).to_pylist()
    raw = answers.column(output).to_pylist()
    texts = [t if st == "ok" else None for t, st in zip(raw, status, strict=True)]
    parsed = parse_replies(texts, spec)
    own = set(result_columns(output))
    clash_own = [n for n in parsed.fields if n in own]
    if clash_own:
        raise ColumnClashError(
            f"The reply field(s) {', '.join(map(repr, clash_own))} would replace the answer "
            f"columns; pass output='<other prefix>' so that the answers go elsewhere."
        )
    if not overwrite:
        taken = column_names(frame_columns)
        clash = [n for n in parsed.fields if n in taken]
        if clash:
            raise ColumnClashError(
                f"The reply field(s) {', '.join(map(repr, clash))} are also columns of the "
                f"frame. The answers are kept (in the journal, for a job run by batch_chat): "
                f"run the same call again with overwrite=True to replace the columns."
            )
    bad = [i for i, e in enumerate(parsed.errors) if e is not None]
    if bad:
        codes = answers.column(code_col).to_pylist()
        errors = answers.column(err_col).to_pylist()
        for i in bad:
            status[i] = PARSE_ERROR
            codes[i] = PARSE_ERROR
            errors[i] = f"the reply is not valid structured output: {parsed.errors[i]}"
        for name, fixed in ((status_col, status), (code_col, codes), (err_col, errors)):
            col = answers.column_names.index(name)
            answers = answers.set_column(col, name, pa.array(fixed, pa.large_string()))
    kinds = field_kinds(spec)
    fields = {name: (values, kinds.get(name)) for name, values in parsed.fields.items()}
    return ParsedAnswers(answers=answers, fields=fields)
