"""Deterministic JSON values that satisfy a JSON Schema, for the built-in engine.

Covers what ``response_format`` schemas use in practice: ``type`` (also as a list),
``enum``, ``const``, ``properties``/``required``, ``items``/``minItems``/``maxItems``/
``uniqueItems``, numeric bounds, string lengths and common formats, ``anyOf``/``oneOf``/
``allOf`` and local ``$ref`` (``#/$defs/…``, ``#/definitions/…``, as pydantic emits).
``pattern`` is not honoured. The value depends only on the schema and the request text,
so the same request always gets the same answer.

Example::

    >>> generate({"type": "object", "properties": {"ok": {"type": "boolean"}}}, text="hi")
    {'ok': True}
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from typing import Any

__all__ = ["generate", "generate_bounded", "sentiment"]

_MAX_DEPTH = 8

_POSITIVE = frozenset(
    ["good", "great", "love", "loved", "lovely", "excellent", "amazing", "awesome", "happy", "perfect", "best", "wonderful", "fantastic", "nice", "recommend", "recommended", "fast", "easy", "beautiful", "brilliant", "superb", "delighted", "pleased", "works", "fine", "solid", "favourite", "favorite", "enjoy", "enjoyed", "helpful"]
)
_NEGATIVE = frozenset(
    ["bad", "terrible", "awful", "hate", "hated", "broke", "broken", "worst", "poor", "disappointed", "disappointing", "slow", "refund", "useless", "horrible", "waste", "never", "cheap", "flimsy", "rude", "late", "missing", "defective", "angry", "annoying", "problem", "problems", "fail", "failed", "fails", "stopped", "crash", "crashed", "returned"]
)
_STOP = frozenset(
    ["the", "and", "for", "with", "this", "that", "from", "have", "has", "had", "was", "were", "are", "but", "not", "you", "your", "our", "they", "them", "their", "there", "then", "than", "what", "when", "which", "while", "will", "would", "could", "should", "about", "after", "before", "into", "onto", "over", "under", "very", "really", "just", "also", "only", "some", "more", "most", "much", "many", "such", "been", "being", "does", "did", "done", "its", "it's", "i'm", "it", "is", "a", "an", "of", "to", "in", "on", "at", "by", "as", "or", "be"]
)
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
_SENTIMENT_LABELS = frozenset({"positive", "negative", "neutral", "mixed"})


def sentiment(text: str, labels: list[str]) -> str | None:
    """Pick the label of ``labels`` (an enum that looks like sentiment labels) that a tiny
    keyword lexicon gives ``text``; ``None`` if the enum is not about sentiment."""
    by_lower = {str(v).lower(): v for v in labels if isinstance(v, str)}
    if len(_SENTIMENT_LABELS & by_lower.keys()) < 2:
        return None
    words = [w.lower() for w in _WORD.findall(text)]
    pos = sum(w in _POSITIVE for w in words)
    neg = sum(w in _NEGATIVE for w in words)
    if pos and neg and "mixed" in by_lower:
        pick = "mixed"
    elif pos > neg:
        pick = "positive"
    elif neg > pos:
        pick = "negative"
    else:
        pick = "neutral"
    if pick not in by_lower:
        pick = next(k for k in ("neutral", "mixed", "positive", "negative") if k in by_lower)
    return str(by_lower[pick])


def keywords(text: str, limit: int) -> list[str]:
    """Distinct content words of ``text``, in order of appearance."""
    seen: list[str] = []
    for w in _WORD.findall(text):
        lw = w.lower()
        if len(lw) >= 4 and lw not in _STOP and lw not in seen:
            seen.append(lw)
            if len(seen) >= limit:
                break
    return seen


def generate(schema: Any, *, text: str, seed: str = "") -> Any:
    """A value valid against ``schema``, derived from ``text`` (and ``seed``)."""
    return generate_bounded(schema, text=text, seed=seed, budget=None)[0]


def generate_bounded(schema: Any, *, text: str, seed: str = "", budget: int | None) -> tuple[Any, bool]:
    """``(value, cut)``: as :func:`generate`, but generation stops once about ``budget``
    characters are written (``cut`` is then True and the value is incomplete), so a schema
    asking for an enormous value (``minLength: 10**12``, ``minItems: 10**9``) costs
    ``budget``, not all memory: a model stops at its context size too."""
    digest = hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=8).digest()
    gen = _Gen(schema if isinstance(schema, dict) else {}, text, random.Random(digest), budget)
    value = gen.value(schema, "", 0)
    return value, gen.cut


class _Gen:
    def __init__(
        self, root: dict[str, Any], text: str, rng: random.Random, budget: int | None = None
    ) -> None:
        self.root = root
        self.text = text
        self.rng = rng
        self.left = budget if budget is not None else 1 << 62
        self.cut = False

    def spend(self, chars: int) -> None:
        self.left -= chars
        if self.left < 0:
            self.cut = True

    def resolve(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        while "$ref" in schema and depth < _MAX_DEPTH:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                return {}
            node: Any = self.root
            for part in ref[1:].split("/"):
                if not part:
                    continue
                part = part.replace("~1", "/").replace("~0", "~")
                node = node.get(part) if isinstance(node, dict) else None
            schema = node if isinstance(node, dict) else {}
            depth += 1
        return schema

    def value(self, schema: Any, name: str, depth: int) -> Any:
        if self.cut:
            return None
        self.spend(8)  # a scalar, or the brackets and separators of a container
        if schema is True or not isinstance(schema, dict):
            return self.scalar_string(name, {})
        schema = self.resolve(schema, depth)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.enum(schema["enum"])
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
                return self.value((non_null or options)[0], name, depth + 1)
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part, depth) if isinstance(part, dict) else {}
                for k, v in part.items():
                    if k in ("properties",) and isinstance(v, dict):
                        merged.setdefault("properties", {}).update(v)
                    elif k == "required" and isinstance(v, list):
                        merged["required"] = [*merged.get("required", []), *v]
                    else:
                        merged.setdefault(k, v)
            return self.value(merged, name, depth + 1)
        typ = schema.get("type")
        if isinstance(typ, list):
            typ = next((t for t in typ if t != "null"), "null")
        if typ is None:
            if "properties" in schema:
                typ = "object"
            elif "items" in schema:
                typ = "array"
            else:
                typ = "string"
        if depth >= _MAX_DEPTH:
            return {"object": {}, "array": [], "string": "", "integer": 0, "number": 0,
                    "boolean": False}.get(typ)
        if typ == "object":
            return self.obj(schema, depth)
        if typ == "array":
            return self.array(schema, name, depth)
        if typ == "integer":
            return self.integer(schema)
        if typ == "number":
            return self.number(schema)
        if typ == "boolean":
            return self.rng.random() < 0.5
        if typ == "null":
            return None
        return self.scalar_string(name, schema)

    def enum(self, options: list[Any]) -> Any:
        picked = sentiment(self.text, options)
        return picked if picked is not None else self.rng.choice(options)

    def obj(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        if not isinstance(props, dict):
            return {}
        out: dict[str, Any] = {}
        for key, sub in props.items():
            if self.cut:
                break
            self.spend(len(str(key)))
            out[key] = self.value(sub, key, depth + 1)
        return out

    def array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        items = schema.get("items", {})
        lo = _int(schema.get("minItems"), 0)
        hi = _int(schema.get("maxItems"), max(lo, 3))
        hi = max(hi, lo)
        items_schema = self.resolve(items, depth) if isinstance(items, dict) else {}
        out: list[Any] = []
        if items_schema.get("type", "string") == "string" and not items_schema.get("enum") and (
            "enum" not in items_schema
        ):
            out = keywords(self.text, hi)
            # keep the string constraints of the items
            out = [self.fit_string(w, items_schema) for w in out]
        elif isinstance(items_schema.get("enum"), list) and items_schema["enum"]:
            opts = list(items_schema["enum"])
            self.rng.shuffle(opts)
            out = opts[: max(lo, min(hi, 2))]
        else:
            count = max(lo, min(hi, 2))
            while len(out) < count and not self.cut:
                out.append(self.value(items, name, depth + 1))
        unique = bool(schema.get("uniqueItems"))
        filler = 0
        seen = {repr(v) for v in out}  # a set: minItems may be large (bounded by the budget)
        while len(out) < lo and not self.cut:
            filler += 1
            candidate = self.value(items, f"{name}{filler}", depth + 1)
            if isinstance(candidate, str) and (unique or repr(candidate) in seen):
                candidate = self.fit_string(f"item{filler}", items_schema)
            key = repr(candidate)
            if unique and key in seen and filler > 50:
                break
            if not (unique and key in seen):
                out.append(candidate)
                seen.add(key)
        return out[:hi]

    def integer(self, schema: dict[str, Any]) -> int:
        lo, hi = self.bounds(schema, 0, 10, integer=True)
        value = self.rng.randint(int(lo), int(hi))
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            value = (value // step) * step
            if value < lo:
                value += step
        return value

    def number(self, schema: dict[str, Any]) -> float:
        lo, hi = self.bounds(schema, 0.0, 1.0, integer=False)
        value = round(lo + (hi - lo) * self.rng.random(), 2)
        return min(max(value, lo), hi)

    def bounds(
        self, schema: dict[str, Any], lo: float, hi: float, *, integer: bool
    ) -> tuple[float, float]:
        span = hi - lo
        eps = 1 if integer else 1e-6
        has_lo = has_hi = False
        for key, delta in (("minimum", 0), ("exclusiveMinimum", eps)):
            if _is_num(schema.get(key)):
                lo, has_lo = schema[key] + delta, True
        for key, delta in (("maximum", 0), ("exclusiveMaximum", -eps)):
            if _is_num(schema.get(key)):
                hi, has_hi = schema[key] + delta, True
        if has_lo and not has_hi:
            hi = max(hi, lo + span)
        elif has_hi and not has_lo:
            lo = min(lo, hi - span)
        if integer:
            lo, hi = math.ceil(lo), math.floor(hi)
        return lo, max(lo, hi)

    def scalar_string(self, name: str, schema: dict[str, Any]) -> str:
        fmt = schema.get("format")
        formats = {
            "date-time": "2024-01-01T00:00:00Z",
            "date": "2024-01-01",
            "time": "00:00:00",
            "email": "user@example.com",
            "uri": "https://example.com/",
            "url": "https://example.com/",
            "hostname": "example.com",
            "ipv4": "192.0.2.1",
            "uuid": _uuid_from(self.rng),
        }
        if isinstance(fmt, str) and fmt in formats:
            return formats[fmt]
        words = keywords(self.text, 12)
        lname = name.lower()
        if lname in ("summary", "reason", "reasoning", "explanation", "rationale", "answer",
                     "text", "response", "description", "comment"):
            base = _snippet(self.text, 160) or " ".join(words)
        elif lname in ("language", "lang"):
            base = "en"
        elif words:
            base = words[self.rng.randrange(len(words))]
        else:
            base = name or "value"
        return self.fit_string(base, schema)

    def fit_string(self, value: str, schema: dict[str, Any]) -> str:
        lo = _int(schema.get("minLength"), 0)
        hi = schema.get("maxLength")
        if isinstance(hi, int) and len(value) > hi:
            value = value[:hi]
        if len(value) < lo:
            value = value + "x" * min(lo - len(value), max(self.left, 0) + 1)
        self.spend(len(value))
        return value


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(v: Any, default: int) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else default


def _snippet(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _uuid_from(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"
