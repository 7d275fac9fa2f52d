"""What a job asks (:class:`ChatSpec`) and where it goes (:class:`Connection`).

Every frame adapter turns its keyword arguments into these two and hands them to
:mod:`zgpu_pandas.core.run`, so that the options mean the same thing, are checked the same way
(:class:`~zgpu_pandas.errors.OptionError`, before anything is sent) and reach the same job,
whichever DataFrame library the rows came from.

Example::

    spec = ChatSpec(prompt="review", model="LFM2.5-1.2B-Instruct", temperature_params={})
    conn = Connection(base_url="local")
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

from .._jsonl import MAX_METADATA_PAIRS, check_metadata
from ..errors import ColumnClashError, ConfigurationError, OptionError, PromptError
from .preflight import chat_params
from .requests import MissingOption
from .results import answer_extras, check_columns, column_names, result_columns

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._client import Client
    from .structured import SchemaSpec

__all__ = ["JOB_METADATA_PREFIX", "ChatSpec", "Connection", "ParseOption"]

ParseOption = Literal["json"] | bool | None
#: metadata keys starting with this are the job's own bookkeeping
JOB_METADATA_PREFIX = "zgpu_"
#: how many metadata pairs a job puts on each batch (job, chunk, create token, round)
JOB_METADATA_KEYS = 4


@dataclass(frozen=True, kw_only=True)
class ChatSpec:
    """What to ask of every row, and how the answers come back.

    ``prompt`` (a column or a ``{column}`` template) or ``messages`` (a column of message
    lists); ``system``; ``chat_params`` go into every request body (``temperature``,
    ``max_tokens``, ...). ``output`` prefixes the answer columns; ``overwrite`` lets them
    (and reply fields) replace the frame's own. ``response_format``/``parse``: structured
    output. ``dedup``: merge identical requests (``None``: only deterministic ones).
    ``retries``: rounds of resubmitting transient failures; ``timeout``: how long a blocking
    call waits; ``fresh``: never resume a journaled job; ``metadata``: put on each batch.
    ``max_cost``: refuse, before anything is sent, a job whose estimate exceeds it (USD).
    ``check_model``: refuse a model id the catalog does not list; ``extra_body``: body
    fields sent as given; ``missing``: what an empty template field does; ``on_invalid``:
    what text that is not valid Unicode does; ``name``: shown by ``jobs()`` and on the job.
    """

    prompt: Any = None
    messages: Any = None
    model: str | None = None
    system: str | None = None
    output: str = "response"
    overwrite: bool = False
    on_oversize: Literal["raise", "skip"] = "raise"
    response_format: Any = None
    parse: ParseOption = None
    dedup: bool | None = None
    retries: int = 0
    timeout: float | None = None
    fresh: bool = False
    metadata: Mapping[str, Any] | None = None
    max_cost: float | None = None
    chat_params: Mapping[str, Any] = field(default_factory=dict)
    # checks and choices of issue 12 (core/preflight.py, core/requests.py)
    check_model: bool = True
    extra_body: Mapping[str, Any] | None = None
    missing: MissingOption = "skip"
    on_invalid: Literal["raise", "skip", "replace"] = "raise"
    name: str | None = None

    def check_options(self) -> None:
        """The options that are not about the rows: an :class:`OptionError` naming the
        first one that is wrong."""
        r = self.retries
        if not isinstance(r, int) or isinstance(r, bool) or r < 0:
            raise OptionError(f"retries= must be a whole number >= 0, not {r!r}.")
        if self.timeout is not None and not self.timeout > 0:
            raise OptionError(
                f"timeout= must be a positive number of seconds, not {self.timeout!r}."
            )
        if not isinstance(self.fresh, bool):
            raise OptionError(f"fresh= must be True or False, not {self.fresh!r}.")
        if self.dedup is not None and not isinstance(self.dedup, bool):
            raise OptionError(
                f"dedup= must be True, False or None (automatic), not {self.dedup!r}."
            )
        reserved = [k for k in (self.metadata or {}) if str(k).startswith(JOB_METADATA_PREFIX)]
        if reserved:
            raise OptionError(
                f"metadata key(s) {', '.join(map(repr, reserved))}: keys starting with "
                f"{JOB_METADATA_PREFIX!r} are reserved for the job's own bookkeeping (e.g. "
                f"'zgpu_job'); rename them."
            )
        mc = self.max_cost
        if mc is not None and (
            isinstance(mc, bool) or not isinstance(mc, int | float) or not mc >= 0
        ):
            raise OptionError(f"max_cost= must be a number of US dollars >= 0, not {mc!r}.")
        self._check_metadata()
        if "response_format" in self.chat_params or "response_format" in (self.extra_body or {}):
            raise PromptError("pass response_format= once.")
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()):
            raise OptionError(f"name= must be a non-empty text, not {self.name!r}.")
        if not isinstance(self.check_model, bool):
            raise OptionError(f"check_model= must be True or False, not {self.check_model!r}.")

    def _check_metadata(self) -> None:
        """The user's metadata, with room left for the job's own keys, by the service's
        rules (16 pairs of strings): refused here rather than by the create, after the
        upload."""
        if self.metadata is None:
            return
        meta = dict(self.metadata)
        problem = check_metadata(meta)
        if problem is None and len(meta) > MAX_METADATA_PAIRS - JOB_METADATA_KEYS:
            problem = (
                f"metadata has {len(meta)} pairs; a job adds {JOB_METADATA_KEYS} of its own, "
                f"so at most {MAX_METADATA_PAIRS - JOB_METADATA_KEYS} are allowed"
            )
        if problem is not None:
            raise OptionError(f"metadata=: {problem}.")

    def structured(self) -> tuple[dict[str, Any], SchemaSpec | None]:
        """The chat parameters with ``response_format`` in its wire form, and how to parse
        the replies (``None``: keep the raw text)."""
        from .structured import SchemaSpec, normalize_response_format

        parse = self.parse
        if parse not in (None, True, False, "json"):
            raise OptionError(f"parse= must be 'json', True, False or None, not {parse!r}.")
        params = chat_params(self.chat_params, extra_body=self.extra_body)
        spec: SchemaSpec | None = None
        if self.response_format is not None:
            try:
                wire, spec = normalize_response_format(self.response_format)
            except (TypeError, ValueError) as exc:
                raise PromptError(f"response_format: {exc}.") from None
            params["response_format"] = wire
        if parse is False:
            return params, None
        if parse in ("json", True):
            return params, spec or SchemaSpec(schema=None)
        # parse=None: a schema implies parsing; json_object without a schema does not (its
        # keys are unknown, so columns could not be checked before sending)
        return params, (spec if spec is not None and spec.schema is not None else None)

    def check_columns(self, columns: Any, parse: SchemaSpec | None) -> None:
        """Answer columns and schema fields that would replace the frame's ``columns``:
        found before anything is sent."""
        extras = answer_extras(dict(self.chat_params))
        check_columns(columns, self.output, overwrite=self.overwrite, extras=extras)
        if parse is None or not parse.fields:
            return
        own = [f for f in parse.fields if f in set(result_columns(self.output))]
        if own:
            raise ColumnClashError(
                f"The schema field(s) {', '.join(map(repr, own))} would replace the answer "
                f"columns; pass output='<other prefix>'."
            )
        if self.overwrite:
            return
        taken = column_names(columns)
        clash = [f for f in parse.fields if f in taken]
        if clash:
            raise ColumnClashError(
                f"The schema field(s) {', '.join(map(repr, clash))} are already columns of the "
                f"frame. Pass overwrite=True to replace them, or rename the columns."
            )


@dataclass(frozen=True, kw_only=True)
class Connection:
    """Where a job goes: a ``client``, or ``api_key``/``project_id``/``base_url`` to make
    one (each defaulting to the ``ZGPU_*``/``ZEROGPU_*`` environment variables;
    ``base_url="local"`` is the bundled local server)."""

    client: Client | None = None
    api_key: str | None = None
    project_id: str | None = None
    base_url: str | None = None

    def open_check(self) -> None:
        """A client and the settings to make one are not given together."""
        if self.client is not None and (
            self.api_key is not None or self.project_id is not None or self.base_url is not None
        ):
            raise ConfigurationError(
                "Pass either client= or api_key=/project_id=/base_url=, not both: a client "
                "already carries its settings."
            )

    def open(self) -> tuple[Client, Callable[[], Client] | None]:
        """The client to use and, when the job owns it (and so closes it when done), how to
        make it again (a job may be retried after its result closed the first one)."""
        self.open_check()
        if self.client is not None:
            return self.client, None
        from .._client import Client

        factory = partial(
            Client, api_key=self.api_key, project_id=self.project_id, base_url=self.base_url
        )
        return factory(), factory

    @contextmanager
    def session(self) -> Iterator[Connection]:
        """A connection on one open client for a run of several jobs (a streaming run's
        parts), the client closed at the end when it was made here (a given one is the
        caller's to close).

        Example::

            with Connection(base_url="local").session() as conn:
                ...                      # every job started with conn shares one client
        """
        client, factory = self.open()
        try:
            yield Connection(client=client)
        finally:
            if factory is not None:
                client.close()
