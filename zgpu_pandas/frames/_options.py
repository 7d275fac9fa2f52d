"""The keyword arguments of a namespace method as a :class:`ChatSpec` and a
:class:`Connection`, in one place for every entry point (pandas, Polars, Dask).

The methods spell their keywords out (so that editors and ``help()`` show them) and hand
their arguments here, so that the same keyword always lands in the same field.

Example::

    spec = chat_spec({"prompt": "review", "model": "LFM2.5-1.2B-Instruct",
                      "chat_params": {"temperature": 0}})
    conn = connection({"base_url": "local"})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..core.spec import ChatSpec, Connection

__all__ = ["chat_spec", "connection"]

#: the ChatSpec fields a method's keyword of the same name fills
_SPEC_FIELDS = (
    "prompt", "messages", "model", "system", "output", "overwrite", "on_oversize",
    "response_format", "parse", "dedup", "retries", "timeout", "fresh", "metadata",
    "max_cost", "name", "check_model", "extra_body", "missing", "on_invalid",
)  # fmt: skip
_CONNECTION_FIELDS = ("client", "api_key", "project_id", "base_url")


def chat_spec(arguments: Mapping[str, Any], **override: Any) -> ChatSpec:
    """The spec of a call whose arguments are ``arguments`` (a method's ``locals()``: the
    keywords it does not know, such as ``self``, are ignored; ``chat_params`` holds the rest
    of the keywords); ``override`` replaces fields (``timeout=None``)."""
    fields = {k: arguments[k] for k in _SPEC_FIELDS if k in arguments}
    fields.update(override)
    return ChatSpec(**fields, chat_params=dict(arguments.get("chat_params") or {}))


def connection(arguments: Mapping[str, Any]) -> Connection:
    """Where a call goes: its ``client``/``api_key``/``project_id``/``base_url``."""
    return Connection(**{k: arguments[k] for k in _CONNECTION_FIELDS if k in arguments})
