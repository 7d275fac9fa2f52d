"""Labelling helpers on top of structured output: ``classify`` and ``extract``.

Each helper only writes the request: a system message that says what to do, and a JSON
schema as ``response_format`` that makes the answer a column. The run itself is the ordinary
``batch_chat`` (``mode="batch"``) or ``chat`` (``mode="online"``), so journal, resume, dedup,
retries, ``max_cost`` and the widget all apply unchanged.

- ``classify``: the schema is ``{"label": {"enum": labels}}`` (``{"labels": {"type": "array",
  "items": {"enum": labels}, "uniqueItems": true}}`` with ``multi=True``); every reply is
  validated against it, so a value outside ``labels`` can never reach the label column: such a
  reply is a ``parse_error`` row with its raw text kept.
- ``extract``: the caller's schema (a dict or a Pydantic model); one column per field.

The prompt is never hidden: ``prompt_preview=True`` returns the first request as it would be
sent, instead of sending anything.

Example::

    system, rf = classify_request(["positive", "negative"], multi=False, column="label")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ..errors import OptionError
from .spec import ChatSpec

__all__ = ["classify_request", "extract_request", "preview"]

_CLASSIFY = (
    "You are a careful annotator. Classify the text the user sends into {how} of these "
    "labels: {labels}. Answer with a JSON object only: {shape}."
)
_EXTRACT = (
    "You are a careful annotator. Extract the following fields from the text the user "
    "sends: {fields}. Answer with a JSON object only, with exactly these keys; use null for "
    "a field the text does not give."
)


def _check_labels(labels: Any) -> list[str]:
    if isinstance(labels, str) or not isinstance(labels, Sequence) or not labels:
        raise OptionError(
            "labels= must be a non-empty list of label strings, e.g. labels=['positive', "
            "'negative']."
        )
    bad = [x for x in labels if not isinstance(x, str) or not x.strip()]
    if bad:
        raise OptionError(f"labels= must hold non-empty strings only; not {bad[0]!r}.")
    seen: set[str] = set()
    dups = [x for x in labels if x in seen or seen.add(x)]  # type: ignore[func-returns-value]
    if dups:
        raise OptionError(f"labels= repeats {dups[0]!r}; give each label once.")
    return list(labels)


def classify_request(
    labels: Any, *, multi: bool, column: str, instructions: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The system message and the JSON schema of a classification."""
    names = _check_labels(labels)
    if not isinstance(column, str) or not column:
        raise OptionError(f"column= must be a non-empty column name, not {column!r}.")
    if multi:
        prop: dict[str, Any] = {"type": "array", "items": {"type": "string", "enum": names},
                                "uniqueItems": True}
        shape = f'{{"{column}": [the labels that apply]}}'
        how = "every one that applies (possibly none)"
    else:
        prop = {"type": "string", "enum": names}
        shape = f'{{"{column}": "<one label>"}}'
        how = "exactly one"
    schema = {
        "type": "object",
        "properties": {column: prop},
        "required": [column],
        "additionalProperties": False,
    }
    system = _CLASSIFY.format(how=how, labels=", ".join(names), shape=shape)
    if instructions:
        system = f"{system}\n{instructions}"
    return system, schema


def extract_request(schema: Any, *, instructions: str | None = None) -> tuple[str, Any]:
    """The system message for extracting ``schema``'s fields (the schema is sent as is)."""
    from .structured import normalize_response_format

    if schema is None:
        raise OptionError(
            "extract needs schema=: a JSON schema dict of an object, or a Pydantic model, e.g. "
            "schema={'type': 'object', 'properties': {'city': {'type': 'string'}}}."
        )
    try:
        _, spec = normalize_response_format(schema)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"schema=: {exc}.") from None
    fields = spec.fields
    if not fields:
        raise OptionError("schema= has no properties to extract; list them under 'properties'.")
    props = (spec.schema or {}).get("properties", {})
    described = []
    for name in fields:
        desc = props.get(name, {}).get("description") if isinstance(props.get(name), dict) else None
        described.append(f"{name} ({desc})" if desc else name)
    system = _EXTRACT.format(fields=", ".join(described))
    if instructions:
        system = f"{system}\n{instructions}"
    return system, schema


def preview(frame: Any, spec: ChatSpec) -> str:
    """The first request the call would send, as indented JSON (nothing is sent)."""
    from .run import build

    requests, _ = build(frame, spec)
    for raw in requests.iter_lines():
        body = orjson.loads(raw)["body"]
        return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
    return "(no row has a prompt: nothing would be sent)"
