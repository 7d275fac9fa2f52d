"""Execution engines: what answers each chat request of a batch.

* :class:`BuiltinEngine`: offline and deterministic. The reply to a request is
  :func:`builtin_reply` of its body: the last user message echoed behind a model tag, a JSON
  object valid against ``response_format``'s schema, or a JSON object for ``json_object``.
  Unknown model ids fail with ``not_found_error``, like the real service.
* :class:`UpstreamEngine`: forwards each body to an OpenAI-compatible
  ``/v1/chat/completions`` (vLLM, llama.cpp server, Ollama, ZeroGPU's sync endpoint) with
  bounded concurrency and retries, mapping upstream errors to the spec's line error codes.

Example::

    >>> body = {"model": "LFM2.5-1.2B-Instruct",
    ...         "messages": [{"role": "user", "content": "Hello"}]}
    >>> builtin_reply(body)
    '[LFM2.5-1.2B-Instruct] Hello'
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import ssl
import time
from dataclasses import dataclass
from typing import Any

import orjson

from .._catalog import MODELS
from .._retry import RetryPolicy, parse_retry_after, transient_status
from . import _ids
from ._errors import legacy_message
from ._schema_gen import generate_bounded, keywords, sentiment
from ._wire import Answer, TlsError, TooLarge, Unreachable, WireError, WirePool

__all__ = [
    "BuiltinEngine",
    "Engine",
    "LineResult",
    "UpstreamEngine",
    "builtin_reply",
    "make_engine",
]

ECHO_CHARS = 300  # how much of the user's text the plain reply echoes
# The largest upstream answer kept (a chat completion of a 1M-token context is ~4 MB per
# choice; this leaves room for n > 1 and logprobs while bounding memory per call in flight).
MAX_ANSWER_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class LineResult:
    """The outcome of one chat request: ``body`` (a chat.completion) on success, else
    ``code`` and ``message`` (``message`` already carries the ``[legacy:…]`` prefix)."""

    body: dict[str, Any] | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    status: int = 200
    # True when the upstream could not be reached at all (no answer): the batch worker
    # pauses such a line instead of failing it (the sync endpoint answers the error)
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.body is not None


def _fail(code: str, message: str, status: int) -> LineResult:
    return LineResult(code=code, message=legacy_message(code, message), status=status)


class Engine:
    """Base class. ``is_sync`` engines answer through :meth:`complete_sync` (no event-loop
    round trip per line, which is what makes the built-in engine fast)."""

    is_sync = False

    def complete_sync(self, body: Any) -> LineResult:  # pragma: no cover - overridden
        raise NotImplementedError

    async def complete(self, body: Any) -> LineResult:
        return self.complete_sync(body)

    async def aclose(self) -> None:
        return None


# ---------------------------------------------------------------------------- built-in
def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def _last_user_text(messages: list[Any]) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            return _text_of(m.get("content"))
    last = messages[-1] if messages else None
    return _text_of(last.get("content")) if isinstance(last, dict) else ""


def _echo(text: str) -> str:
    return text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "…"


def _tokens(n_chars: int) -> int:
    return max(1, math.ceil(n_chars / 4))


def _prompt_tokens(messages: list[Any]) -> int:
    total = 3
    for m in messages:
        if isinstance(m, dict):
            total += 3 + _tokens(len(_text_of(m.get("content"))))
    return total


def _max_tokens(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        v = body.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def _reply(body: dict[str, Any], choice: int = 0, *, budget: int | None = None) -> tuple[str, str]:
    """``(content, finish_reason)`` of choice ``choice`` of the built-in engine for a valid
    body. ``budget`` bounds the content in characters (the model's context left after the
    prompt); ``max_tokens`` bounds it further."""
    model = str(body.get("model"))
    messages = body.get("messages")
    text = _last_user_text(messages if isinstance(messages, list) else [])
    fmt = body.get("response_format")
    fmt_type = fmt.get("type") if isinstance(fmt, dict) else None
    info = MODELS.get(model)
    kind = info.kind if info is not None else "chat"
    limit = _max_tokens(body)
    chars = MAX_REPLY_CHARS if budget is None else min(budget, MAX_REPLY_CHARS)
    if limit is not None:
        chars = min(chars, limit * 4)
    tag = _sample_tag(body, choice)
    cut = False
    if fmt_type == "json_schema":
        spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
        schema = spec.get("schema", {}) if isinstance(spec, dict) else {}
        value, cut = generate_bounded(
            schema, text=text, seed=model if tag is None else f"{model}/{tag}", budget=chars
        )
        content = orjson.dumps(value).decode()
    elif fmt_type == "json_object":
        obj: dict[str, Any] = {"model": model, "reply": _echo(text)}
        if tag is not None:
            obj["sample"] = tag
        content = orjson.dumps(obj).decode()
    elif kind == "chat":
        content = f"[{model}] {_echo(text)}" + ("" if tag is None else f" ({tag})")
    else:
        content = orjson.dumps(_special(kind, model, text)).decode()
    if cut or len(content) > chars:
        return content[:chars], "length"
    return content, "stop"


MAX_REPLY_CHARS = 4 * 1024 * 1024  # one built-in reply at most (whatever the context)


def _temperature(body: dict[str, Any]) -> float:
    t = body.get("temperature")
    return float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else 1.0


def _sample_tag(body: dict[str, Any], choice: int) -> str | None:
    """How choice ``choice`` differs from the deterministic reply: ``None`` for the
    deterministic reply itself (every choice at temperature 0, and choice 0 when no seed
    is given), else a tag drawn from the seed, distinct per choice. Same seed, same tags."""
    seed = body.get("seed")
    if _temperature(body) == 0 or (seed is None and choice == 0):
        return None
    n = _n_of(body)
    key = f"{seed!r}\x00{body.get('model')}\x00{_last_user_text(body.get('messages') or [])}"
    rng = random.Random(hashlib.blake2b(key.encode(), digest_size=8).digest())
    tags = rng.sample(range(100_000), max(n, choice + 1))  # distinct across the choices
    return f"sample {tags[choice]:05d}"


def _n_of(body: dict[str, Any]) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_N else 1


MAX_N = 128  # as the OpenAI API allows
MAX_TOP_LOGPROBS = 20
_ALTERNATIVES = [" the", " a", ",", ".", " and", " of", " to", " is", " in", " it", " that",
                 " for", " on", " with", " as", " was", " be", " this", " not", " or", " but"]


def _check_sampling(body: dict[str, Any]) -> LineResult | None:
    """``n``, ``logprobs`` and ``top_logprobs`` as the OpenAI API checks them."""
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N):
        return _fail("invalid_request_error", f"n must be an integer from 1 to {MAX_N}, got {n!r}.", 400)
    lp = body.get("logprobs")
    if lp is not None and not isinstance(lp, bool):
        return _fail("invalid_request_error", f"logprobs must be a boolean, got {lp!r}.", 400)
    top = body.get("top_logprobs")
    if top is not None:
        if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= MAX_TOP_LOGPROBS:
            return _fail("invalid_request_error",
                         f"top_logprobs must be an integer from 0 to {MAX_TOP_LOGPROBS}, got {top!r}.", 400)
        if lp is not True:
            return _fail("invalid_request_error", "top_logprobs requires logprobs: true.", 400)
    return None


def _logprobs(content: str, body: dict[str, Any], choice: int) -> dict[str, Any]:
    """OpenAI-shaped logprobs of ``content``: one entry per token (4 characters, the same
    split as the usage estimate), each with its ``top_logprobs`` alternatives. Probabilities
    are drawn from the request (same request, same numbers); the chosen token is the most
    likely one, lower temperatures make it likelier, and the alternatives of a token never
    add up to more than the probability left."""
    top = body.get("top_logprobs") or 0
    temperature = _temperature(body)
    key = f"{body.get('seed')!r}\x00{choice}\x00{content}"
    rng = random.Random(hashlib.blake2b(key.encode(), digest_size=8).digest())
    spread = min(0.5, 0.05 + 0.2 * temperature)
    entries = []
    for i in range(0, len(content), 4):
        token = content[i : i + 4]
        p = 1.0 - spread * rng.random()
        alts = [a for a in _ALTERNATIVES if a != token][: max(0, top - 1)]
        top_list = [{"token": token, "logprob": math.log(p), "bytes": list(token.encode())}]
        rest = 1.0 - p
        for j, alt in enumerate(alts, start=1):
            top_list.append({"token": alt, "logprob": math.log(rest * 0.5**j),
                             "bytes": list(alt.encode())})
        entries.append({"token": token, "logprob": top_list[0]["logprob"],
                        "bytes": top_list[0]["bytes"], "top_logprobs": top_list[:top]})
    return {"content": entries, "refusal": None}


_IAB = {
    "Technology & Computing": {"phone", "laptop", "software", "computer", "app", "battery", "screen"},
    "Food & Drink": {"food", "pizza", "coffee", "restaurant", "taste", "delicious", "meal"},
    "Travel": {"hotel", "flight", "trip", "travel", "airport", "beach", "room"},
    "Sports": {"football", "soccer", "tennis", "team", "match", "game", "score"},
    "Shopping": {"price", "delivery", "order", "shipping", "package", "refund", "store"},
}
_PII = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|\+?\d[\d -]{7,}\d")


def _special(kind: str, model: str, text: str) -> dict[str, Any]:
    """JSON answers of the non-chat catalog models (they put a JSON string in content)."""
    words = {w.lower() for w in re.findall(r"\w+", text)}
    if kind == "classification":
        label = next((k for k, v in _IAB.items() if words & v), "Other")
        return {"model": model, "label": label, "input": _echo(text)}
    if kind == "moderation":
        flagged = sentiment(text, ["positive", "negative"]) == "negative" and bool(
            words & {"hate", "kill", "stupid", "idiot"}
        )
        return {"model": model, "flagged": flagged, "input": _echo(text)}
    if kind == "pii":
        ents = [{"text": m.group(0), "start": m.start(), "end": m.end(),
                 "label": "email" if "@" in m.group(0) else "phone"}
                for m in _PII.finditer(text)]
        return {"model": model, "entities": ents}
    return {"model": model, "summary": " ".join(keywords(text, 12)) or _echo(text)}


def _check_body(body: Any) -> LineResult | None:
    if not isinstance(body, dict):
        return _fail("invalid_request_error", "The request body must be a JSON object.", 400)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return _fail("invalid_request_error", "model is required.", 400)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _fail("invalid_request_error", "messages must be a non-empty array.", 400)
    info = MODELS.get(model)
    if info is None:
        return _fail(
            "not_found_error",
            f"The model `{model}` does not exist or you do not have access to it.",
            404,
        )
    if info.context_tokens is not None:
        used = _prompt_tokens(messages)
        if used > info.context_tokens:
            return _fail(
                "context_length_exceeded",
                f"This model's maximum context length is {info.context_tokens} tokens. "
                f"However, your messages resulted in {used} tokens.",
                400,
            )
    return None


def builtin_reply(body: dict[str, Any]) -> str:
    """The exact ``message.content`` the built-in engine answers for request ``body``
    (its first choice).

    Deterministic: the same body always gets the same reply, and the reply contains the
    last user message (truncated to a few hundred characters) behind a ``[model]`` tag, so
    a test can check that every answer reached its own row. With a ``json_schema``
    ``response_format`` it is a JSON object valid against the schema.

    Example::

        >>> builtin_reply({"model": "gpt-oss-120b",
        ...                "messages": [{"role": "user", "content": "Hi there"}]})
        '[gpt-oss-120b] Hi there'
    """
    return _reply(body, 0, budget=_budget(body))[0]


def _budget(body: dict[str, Any]) -> int | None:
    """Characters the model can still write: its context minus the prompt, 4 a token."""
    info = MODELS.get(str(body.get("model")))
    messages = body.get("messages")
    if info is None or info.context_tokens is None or not isinstance(messages, list):
        return None
    return max(0, info.context_tokens - _prompt_tokens(messages)) * 4


def builtin_completion(body: dict[str, Any], *, created: int | None = None) -> LineResult:
    """The built-in engine's full answer (chat.completion body or a line error).

    ``n`` choices (distinct when ``temperature`` is not 0; reproducible per ``seed``),
    ``logprobs``/``top_logprobs`` in the OpenAI shape when asked, and usage counting every
    choice."""
    bad = _check_body(body) or _check_sampling(body)
    if bad is not None:
        return bad
    prompt = _prompt_tokens(body["messages"])
    budget = _budget(body)
    n = _n_of(body)
    choices = []
    completion = 0
    for i in range(n):
        try:
            content, finish = _reply(body, i, budget=None if budget is None else budget // n)
        except orjson.JSONEncodeError as exc:  # e.g. an integer schema with minimum 1e300
            return _fail("invalid_request_error",
                         f"response_format asks for a value that cannot be written as JSON ({exc}).", 400)
        completion += _tokens(len(content))
        choices.append({
            "index": i,
            "message": {"role": "assistant", "content": content, "refusal": None,
                        "annotations": []},
            "finish_reason": finish,
            "logprobs": _logprobs(content, body, i) if body.get("logprobs") is True else None,
        })
    completion_body = {
        "id": _ids.chatcmpl_id(),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": body["model"],
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0,
                                          "rejected_prediction_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": None,
    }
    return LineResult(body=completion_body, request_id=_ids.request_id())


class BuiltinEngine(Engine):
    """The offline engine. ``latency`` seconds are spent per request (asynchronously, so
    ``concurrency`` requests overlap), to make a batch take visible time in demos."""

    def __init__(self, *, latency: float = 0.0) -> None:
        self.latency = max(0.0, float(latency))
        self.is_sync = self.latency == 0.0

    def complete_sync(self, body: Any) -> LineResult:
        return builtin_completion(body)

    async def complete(self, body: Any) -> LineResult:
        if self.latency:
            await asyncio.sleep(self.latency)
        return builtin_completion(body)

    def __repr__(self) -> str:
        return f"BuiltinEngine(latency={self.latency})"


# ---------------------------------------------------------------------------- upstream
_CONTEXT_RE = re.compile(
    r"context.length|maximum context|context window|too many tokens|prompt is too long",
    re.IGNORECASE,
)


def chat_url(base_url: str) -> str:
    """``<base>/v1/chat/completions`` for a base given with or without ``/v1``."""
    base = base_url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


def _forwardable(body: dict[str, Any]) -> bytes:
    """The body as sent upstream: every value as the client sent it. orjson writes it fast;
    an integer beyond 64 bits (kept exact by the line parser) goes through the standard
    library instead of being refused or rounded."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError as exc:
        if "Integer exceeds 64-bit range" not in str(exc):
            raise
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def map_upstream_error(status: int, payload: Any, text: str) -> tuple[str, str]:
    """``(code, message)`` of the spec for an upstream HTTP error."""
    err = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(err, dict):
        message = str(err.get("message") or text)
        up_code = f"{err.get('code')} {err.get('type')}"
    elif isinstance(err, str):
        message, up_code = err, ""
    else:
        message, up_code = (text[:500] or f"HTTP {status}"), ""
    message = message[:2000]
    if _CONTEXT_RE.search(message) or "context_length" in up_code:
        return "context_length_exceeded", message
    if status == 429:
        quota = "insufficient_quota" in up_code or "quota" in message.lower()
        return ("insufficient_quota" if quota else "rate_limit_exceeded"), message
    if status in (401, 403):
        return "authentication_error", message
    if status == 404:
        return "not_found_error", message
    if status == 413:
        return "request_too_large", message
    if 400 <= status < 500:
        return "invalid_request_error", message
    return "internal_error", message


class UpstreamEngine(Engine):
    """Forward chat requests to an OpenAI-compatible server.

    Retries connection errors, 429 ``rate_limit_exceeded`` and 5xx answers up to
    ``max_retries`` times with exponential backoff (honouring ``Retry-After``); the final
    failure becomes a line error with the spec's code. The API key is sent both as
    ``Authorization: Bearer`` and ``x-api-key`` (OpenAI-style servers read the first,
    ZeroGPU the second) and only to ``base_url``. The HTTP client is ``_wire.WirePool``
    (keep-alive HTTP/1.1 and HTTPS on asyncio streams, answers capped at
    ``max_answer_bytes``). An upstream that gives no answer at all yields a result with
    ``unreachable=True`` after the retries (the batch worker pauses such lines).

    Example::

        engine = UpstreamEngine(base_url="http://localhost:8000/v1", concurrency=16)
        result = await engine.complete({"model": "m", "messages": [...]})
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
        concurrency: int = 8,
        max_retries: int = 3,
        timeout: float = 600.0,
        backoff: float = 0.5,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        ssl_context: ssl.SSLContext | None = None,
        observer: Any = None,
    ) -> None:
        self.url = chat_url(base_url)
        # told of each call (call_started/call_ended) and each failed attempt
        # (upstream_error): the server's metrics and log (see observe.py)
        self.observer = observer
        self._ssl_context = ssl_context  # None: the system's CA store (for a private CA, pass one)
        self.max_answer_bytes = max(1, int(max_answer_bytes))
        self._headers = {"content-type": "application/json", **(headers or {})}
        if api_key:
            self._headers.setdefault("authorization", f"Bearer {api_key}")
            self._headers.setdefault("x-api-key", api_key)
        # what an upstream (or a proxy before it) might echo back into an error message,
        # which becomes a line's error for whoever reads the batch: the key and header values
        secrets = {api_key or "", *(headers or {}).values()}
        secrets |= {v.split(" ", 1)[-1] for v in secrets}  # "Bearer <key>" -> "<key>"
        self._secrets = sorted((x for x in secrets if len(x) >= 8), key=len, reverse=True)
        self.concurrency = max(1, int(concurrency))
        self.max_retries = max(0, int(max_retries))
        self.timeout = timeout
        self.backoff = backoff
        # the client's policy, except that a long Retry-After is waited out (capped at a
        # minute) rather than given up on: a batch line has hours, not a user at a prompt
        self._policy = RetryPolicy(
            max_retries=self.max_retries,
            base=backoff,
            cap=60.0,
            max_retry_after=60.0,
            long_retry_after="wait_max",
        )
        self._pool: WirePool | None = None
        self._rng = random.Random()

    def _wire(self) -> WirePool:
        if self._pool is None:
            self._pool = WirePool(self.url, limit=self.concurrency, timeout=self.timeout,
                                  connect_timeout=min(self.timeout, 30.0),
                                  max_body=self.max_answer_bytes, ssl_context=self._ssl_context)
        return self._pool

    async def complete(self, body: Any) -> LineResult:
        if not isinstance(body, dict):
            return _fail("invalid_request_error", "The request body must be a JSON object.", 400)
        try:
            payload = _forwardable(body)
        except (orjson.JSONEncodeError, ValueError, RecursionError) as exc:
            # parsed, but deeper than a JSON writer goes
            return _fail("invalid_request_error", f"The request body cannot be forwarded: {exc}", 400)
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                result, retryable, retry_after = await self._post(payload)
            except Unreachable as exc:
                result = LineResult(
                    code="internal_error", status=500, unreachable=True,
                    message=legacy_message("internal_error", f"Upstream request failed: {exc}"),
                )
                retryable = True
            except (TooLarge, TlsError) as exc:  # the same again: not retried
                result = _fail("internal_error", f"Upstream request failed: {self._scrub(exc)}", 500)
                retryable = False
            except WireError as exc:  # a timeout, an answer that is not HTTP
                result = _fail("internal_error", f"Upstream request failed: {self._scrub(exc)}", 500)
                retryable = True
            if result.ok:
                return result
            delay = self._policy.delay(attempt, retry_after=retry_after, rand=self._rng.random)
            if self.observer is not None:
                self.observer.upstream_error(result, retry=retryable and delay is not None)
            if not retryable or delay is None:
                return result
            await asyncio.sleep(delay)
            attempt += 1

    async def _post(self, payload: bytes) -> tuple[LineResult, bool, float | None]:
        """One POST; its answer is read up to ``max_answer_bytes`` (a bigger one is not
        kept: it becomes an ``internal_error`` that is not retried)."""
        obs = self.observer
        if obs is not None:
            obs.call_started()
        t0 = time.monotonic()
        try:
            answer = await self._wire().post(payload, self._headers)
        finally:
            if obs is not None:
                obs.call_ended(time.monotonic() - t0)
        result, retryable = self._result(answer)
        return result, retryable, None if result.ok else parse_retry_after(answer.headers)

    def _result(self, answer: Answer) -> tuple[LineResult, bool]:
        request_id = answer.headers.get("x-request-id")
        try:
            payload = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            payload = None
        if answer.status < 300:
            if isinstance(payload, dict):
                return LineResult(body=payload, request_id=request_id), False
            return _fail("internal_error", "Upstream answered with a body that is not JSON", 500), True
        text = answer.body[:4000].decode("utf-8", "replace")
        code, message = map_upstream_error(answer.status, payload, text)
        retryable = transient_status(answer.status, code)
        status = answer.status if answer.status < 600 else 500
        return _fail(code, self._scrub(message), status), retryable

    def _scrub(self, text: object) -> str:
        """``text`` without the upstream key or any configured header value."""
        out = str(text)
        for secret in self._secrets:
            if secret in out:
                out = out.replace(secret, "***")
        return out

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    def __repr__(self) -> str:  # never the key, which may sit in the headers
        return f"UpstreamEngine(url={self.url!r}, concurrency={self.concurrency})"


def make_engine(
    kind: str,
    *,
    latency: float = 0.0,
    upstream_url: str | None = None,
    upstream_api_key: str | None = None,
    upstream_headers: dict[str, str] | None = None,
    concurrency: int = 8,
    max_retries: int = 3,
    timeout: float = 600.0,
    backoff: float = 0.5,
    ssl_context: ssl.SSLContext | None = None,
    observer: Any = None,
) -> Engine:
    """The engine named ``kind`` (``builtin`` or ``upstream``)."""
    if kind == "builtin":
        return BuiltinEngine(latency=latency)
    if kind == "upstream":
        if not upstream_url:
            raise ValueError("engine='upstream' needs upstream_url (an OpenAI-compatible base URL)")
        return _LatentUpstream(
            latency,
            base_url=upstream_url,
            api_key=upstream_api_key,
            headers=upstream_headers,
            concurrency=concurrency,
            max_retries=max_retries,
            timeout=timeout,
            backoff=backoff,
            ssl_context=ssl_context,
            observer=observer,
        )
    raise ValueError(f"engine must be 'builtin' or 'upstream', got {kind!r}")


class _LatentUpstream(UpstreamEngine):
    """An upstream engine that also adds the configured per-line latency."""

    def __init__(self, latency: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.latency = max(0.0, float(latency))

    async def complete(self, body: Any) -> LineResult:
        if self.latency:
            await asyncio.sleep(self.latency)
        return await super().complete(body)
