"""The public ZeroGPU model catalog: ids, context sizes and list prices.

``zgpu_pandas.models()`` shows it as a table. Used by the local server's built-in engine (an unknown model id fails a line with
``not_found_error``, as the real service does) and by cost estimates. Prices are US dollars
per one million tokens at list price; batch jobs are billed at a discount to these, so an
estimate from them is an upper bound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["MODELS", "ModelInfo", "get_model", "models"]


@dataclass(frozen=True)
class ModelInfo:
    """One catalog entry. ``kind`` is ``chat``, ``classification``, ``moderation``,
    ``pii`` or ``summarization``; prices are ``None`` where the catalog lists none."""

    id: str
    kind: str = "chat"
    context_tokens: int | None = None
    input_per_million: float | None = None
    output_per_million: float | None = None


_ENTRIES = (
    ModelInfo("gpt-oss-120b", "chat", 131_072, 0.15, 0.60),
    ModelInfo("qwen3-30b-a3b-fp8", "chat", 32_768, 0.05, 0.30),
    ModelInfo("glm-5.2", "chat", 1_048_576, 1.10, 3.50),
    ModelInfo("deepseek-v4-flash", "chat", 1_048_576, 0.07, 0.14),
    ModelInfo("llama-3.1-8b-instruct-fast", "chat", 131_072, 0.02, 0.05),
    ModelInfo("LFM2.5-1.2B-Instruct", "chat", 32_768, 0.02, 0.05),
    ModelInfo("LFM2.5-1.2B-Thinking", "chat", 32_768, 0.02, 0.05),
    ModelInfo("zlm-v2-iab-classify-edge-enriched", "classification"),
    ModelInfo("zlm-v1-iab-classify-edge", "classification"),
    ModelInfo("zlm-v1-multi-iab-classify", "classification"),
    ModelInfo("deberta-v3-small", "classification"),
    ModelInfo("zlm-v1-moderation-edge", "moderation"),
    ModelInfo("gliner-multi-pii-v1", "pii"),
    ModelInfo("gliner2-base-v1", "pii"),
    ModelInfo("t5-small", "summarization"),
)

MODELS: dict[str, ModelInfo] = {m.id: m for m in _ENTRIES}


def get_model(model_id: str) -> ModelInfo | None:
    """The catalog entry for ``model_id`` (exact, case-sensitive), or ``None``.

    Example::

        >>> get_model("LFM2.5-1.2B-Instruct").context_tokens
        32768
    """
    return MODELS.get(model_id)


def models(*, kind: str | None = None) -> Any:
    """The ZeroGPU catalog as a pandas DataFrame, one model per row: ``id``, ``kind``,
    ``context_tokens`` and the list prices in US dollars per million tokens
    (``input_per_million``, ``output_per_million``). ``kind="chat"`` keeps the chat models
    (the ones ``batch_chat`` can use). Model ids are checked against this list before a job
    is sent (``check_model=False`` for a custom deployment).

    Example::

        >>> import zgpu_pandas
        >>> "LFM2.5-1.2B-Instruct" in zgpu_pandas.models(kind="chat")["id"].tolist()
        True
    """
    import pandas as pd

    kinds = sorted({m.kind for m in _ENTRIES})
    if kind is not None and kind not in kinds:
        from .errors import OptionError

        raise OptionError(f"kind= must be one of {', '.join(map(repr, kinds))}, not {kind!r}.")
    rows = [asdict(m) for m in _ENTRIES if kind is None or m.kind == kind]
    out = pd.DataFrame(
        rows,
        columns=["id", "kind", "context_tokens", "input_per_million", "output_per_million"],
    )
    out["context_tokens"] = out["context_tokens"].astype("Int64")
    return out
