"""Checks of a call's model and chat parameters, made before anything is uploaded.

A typo costs a whole job otherwise: a model id the service does not know fails every line
(``not_found_error``) after the upload, and a misspelt ``temprature=0`` goes into every
request body, where the service ignores it and the answers are sampled. So:

- the model id must be one of the ZeroGPU catalog's (:func:`zgpu_pandas.models`), with the
  closest ids suggested; ``check_model=False`` turns the check off for a custom deployment
  (and it is off for ``provider="openai"``, whose ids the catalog does not list);
- chat keywords must be known chat-completion parameters; one close to a known name gets
  the suggestion, and a truly custom field goes through ``extra_body={...}`` (as in the
  openai SDK), which is sent as given;
- rows whose prompt (estimated at about 4 characters per token) does not fit the model's
  context are named (:func:`over_context`), by the estimate and, as a warning, by the run.

Example::

    params = chat_params({"temperature": 0}, extra_body={"my_field": 1})
    check_model("LFM2.5-1.2B-Instruct")
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._catalog import MODELS, get_model
from ..errors import OptionError, PromptError

__all__ = ["KNOWN_CHAT_PARAMS", "chat_params", "check_model", "over_context", "suggest"]

#: the chat-completion body fields a keyword may set: OpenAI's, plus the sampling fields of
#: open-model servers (top_k, min_p, repetition_penalty). Anything else: ``extra_body=``.
KNOWN_CHAT_PARAMS = frozenset(
    {
        "audio",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "min_p",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "reasoning_effort",
        "repetition_penalty",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_k",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)


def suggest(word: str, candidates: Sequence[str] | frozenset[str], *, n: int = 3) -> list[str]:
    """The closest ``candidates`` to ``word`` (a case-insensitive exact match first).

    Example::

        >>> suggest("temprature", KNOWN_CHAT_PARAMS)
        ['temperature']
    """
    same_case = [c for c in candidates if c.lower() == word.lower()]
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.6)
    return list(dict.fromkeys([*same_case, *(lowered[c] for c in close)]))[:n]


def _did_you_mean(names: list[str]) -> str:
    return "did you mean " + " or ".join(repr(x) for x in names) + "?"


def check_model(model: str | None) -> None:
    """Refuse a model id that is not in the ZeroGPU catalog, suggesting the closest ones.

    Example::

        >>> check_model("LFM2.5-1.2B-instruct")
        Traceback (most recent call last):
        ...
        zgpu_pandas.errors.OptionError: model='LFM2.5-1.2B-instruct' is not a ZeroGPU model ...
    """
    if not isinstance(model, str) or not model or get_model(model) is not None:
        return  # a missing model is the request builder's error, with its own message
    close = suggest(model, list(MODELS))
    hint = _did_you_mean(close) if close else "zgpu_pandas.models() lists them."
    raise OptionError(
        f"model={model!r} is not a ZeroGPU model id; {hint} For a custom deployment, pass "
        "check_model=False (zgpu-pandas run: --no-check-model)."
    )


def chat_params(
    params: Mapping[str, Any], *, extra_body: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The body fields of every request: the known chat keywords of ``params`` (an unknown
    one is a :class:`PromptError` with the closest known names) plus ``extra_body`` as given.

    Example::

        >>> chat_params({"temperature": 0}, extra_body={"guided_choice": ["a", "b"]})
        {'temperature': 0, 'guided_choice': ['a', 'b']}
    """
    unknown = [k for k in params if k not in KNOWN_CHAT_PARAMS]
    if unknown:
        parts = []
        for k in unknown:
            close = suggest(k, KNOWN_CHAT_PARAMS)
            parts.append(f"{k!r} ({_did_you_mean(close)})" if close else repr(k))
        raise PromptError(
            f"Unknown chat parameter(s) {', '.join(parts)}. A field the service should get as "
            f"is goes in extra_body={{...}} (zgpu-pandas run: --extra KEY=VALUE)."
        )
    if extra_body is None:
        return dict(params)
    if not isinstance(extra_body, Mapping):
        raise OptionError(f"extra_body= must be a dict, not {type(extra_body).__name__}.")
    both = sorted(set(params) & set(extra_body))
    if both:
        raise PromptError(
            f"{', '.join(map(repr, both))} given both as a keyword and in extra_body=; pass it once."
        )
    return {**params, **extra_body}


def over_context(model: str, tokens: np.ndarray, reserve: int = 0) -> np.ndarray:
    """Indices into ``tokens`` (estimated prompt tokens per line) whose prompt plus
    ``reserve`` (the ``max_tokens`` asked for) exceeds ``model``'s context; empty when the
    catalog does not know the model's context."""
    info = get_model(model)
    if info is None or info.context_tokens is None or len(tokens) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(tokens + max(reserve, 0) > info.context_tokens)
