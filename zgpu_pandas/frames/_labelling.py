"""``classify`` and ``extract`` on every frame namespace: thin wrappers that write the
request (see :mod:`zgpu_pandas.core.labelling`) and run it through the namespace's own
``batch_chat`` (``mode="batch"``) or ``chat`` (``mode="online"``).

Example::

    out = df.zgpu.classify("review", labels=["positive", "negative"],
                           model="LFM2.5-1.2B-Instruct")
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from ..core.spec import ChatSpec

__all__ = ["LabellingMixin"]

# keywords of batch_chat/chat that are not chat parameters (left out of a prompt preview)
_NOT_CHAT_PARAMS = frozenset(
    {
        "overwrite", "on_oversize", "parse", "retries", "timeout", "fresh", "dedup",
        "progress", "poll_interval", "client", "api_key", "project_id", "base_url",
        "metadata", "max_cost", "concurrency",
    }
)


class LabellingMixin:
    """The labelling helpers; mixed into :class:`~zgpu_pandas.frames._namespace.FrameNamespace`,
    which provides ``_df``, ``chat`` and ``batch_chat``."""

    _df: Any
    chat: Any
    batch_chat: Any

    def classify(
        self,
        prompt: Any,
        *,
        labels: Sequence[str],
        model: str | None = None,
        multi: bool = False,
        mode: Literal["batch", "online"] = "batch",
        column: str | None = None,
        instructions: str | None = None,
        prompt_preview: bool = False,
        output: str = "response",
        **options: Any,
    ) -> Any:
        """Label every row with one of ``labels`` (``multi=True``: any number of them).

        ``prompt`` is a column or a template, as for :meth:`batch_chat`. The label column
        (``column=``, default ``"label"``, or ``"labels"`` with ``multi``) only ever holds
        values from ``labels``: the reply is validated against a schema that allows nothing
        else, and a reply outside it is a ``parse_error`` row (raw text kept in
        ``{output}``). ``mode="batch"`` (default) runs :meth:`batch_chat`, ``"online"``
        runs :meth:`chat`; every other keyword (``max_cost``, ``retries``, ``base_url``,
        ``temperature``...) is theirs. ``temperature`` defaults to 0. ``instructions`` adds to
        the system message; ``prompt_preview=True`` returns the first request as it would
        be sent, and sends nothing.

        Example::

            out = df.zgpu.classify("review", labels=["positive", "negative", "mixed"],
                                   model="LFM2.5-1.2B-Instruct")
            out["label"].value_counts()
        """
        from ..core.labelling import classify_request

        col = column or ("labels" if multi else "label")
        system, schema = classify_request(labels, multi=multi, column=col, instructions=instructions)
        return self._labelling(
            prompt, model, system, schema, mode, prompt_preview, output, options
        )

    def extract(
        self,
        prompt: Any,
        *,
        schema: Any,
        model: str | None = None,
        mode: Literal["batch", "online"] = "batch",
        instructions: str | None = None,
        prompt_preview: bool = False,
        output: str = "response",
        **options: Any,
    ) -> Any:
        """Extract the fields of ``schema`` (a JSON schema of an object, or a Pydantic
        model) from every row: one column per field, typed by the schema. Field
        ``description``s go into the system message. Modes and keywords as for
        :meth:`classify`.

        Example::

            out = df.zgpu.extract("ticket", model="LFM2.5-1.2B-Instruct", schema={
                "type": "object",
                "properties": {"product": {"type": "string"},
                               "urgent": {"type": "boolean"}},
                "required": ["product", "urgent"]})
        """
        from ..core.labelling import extract_request

        system, rf = extract_request(schema, instructions=instructions)
        return self._labelling(prompt, model, system, rf, mode, prompt_preview, output, options)

    def _labelling(
        self,
        prompt: Any,
        model: str | None,
        system: str,
        response_format: Any,
        mode: str,
        prompt_preview: bool,
        output: str,
        options: dict[str, Any],
    ) -> Any:
        from ..errors import OptionError

        for taken in ("system", "response_format", "messages"):
            if taken in options:
                raise OptionError(
                    f"{taken}= is set by this helper; use instructions= to add to the system "
                    f"message, or batch_chat/chat for full control."
                )
        if mode not in ("batch", "online"):
            raise OptionError(f"mode= must be 'batch' or 'online', not {mode!r}.")
        options.setdefault("temperature", 0)
        if prompt_preview:
            from ..core.labelling import preview

            params = {
                k: v for k, v in options.items() if k not in _NOT_CHAT_PARAMS
            }
            spec = ChatSpec(prompt=prompt, model=model, system=system, output=output,
                            response_format=response_format, chat_params=params)
            return preview(self._df, spec)
        run_it = self.chat if mode == "online" else self.batch_chat
        return run_it(prompt, model, system=system, response_format=response_format,
                      output=output, **options)

