"""``df.zgpu``: the DataFrame accessor. A thin layer: it checks, builds and delegates.

Importing this module registers the accessor (``import zgpu_pandas`` does it for you).

Example::

    import pandas as pd
    import zgpu_pandas  # noqa: F401

    df = pd.DataFrame({"review": ["Great!", "Broke after a day.", None]})
    out = df.zgpu.batch_chat("review", model="LFM2.5-1.2B-Instruct",
                             system="Answer positive, neutral or negative.", temperature=0)
    out[["review", "response", "response_status"]]
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from .._journal import Journal
from .._progress import ProgressOption
from ..core.estimate import ChatEstimate, estimate_requests
from ..core.job import JOB_METADATA_KEY, BatchJob
from ..core.requests import RequestSet, build_requests
from ..core.results import check_columns, result_columns
from ..errors import ColumnClashError, ConfigurationError, OptionError, PromptError, ZgpuError

if TYPE_CHECKING:
    from .._client import Client
    from ..core.structured import SchemaSpec

__all__ = ["ZgpuAccessor"]

_RESUME_HINT = "df.zgpu.last_job"

ParseOption = Literal["json"] | bool | None

# pandas makes a new accessor object on every ``df.zgpu`` access, so the last job of a frame
# is kept here, keyed by the frame's id and dropped when the frame is garbage collected.
_LAST_JOBS: dict[int, tuple[weakref.ref[pd.DataFrame], BatchJob]] = {}
_LAST_LOCK = threading.Lock()


def _remember(df: pd.DataFrame, job: BatchJob) -> None:
    key = id(df)

    def forget(_: object, key: int = key) -> None:
        with _LAST_LOCK:
            _LAST_JOBS.pop(key, None)

    with _LAST_LOCK:
        _LAST_JOBS[key] = (weakref.ref(df, forget), job)


def _recall(df: pd.DataFrame) -> BatchJob | None:
    with _LAST_LOCK:
        entry = _LAST_JOBS.get(id(df))
    if entry is None or entry[0]() is not df:
        return None
    return entry[1]


def _client_for(
    client: Client | None, api_key: str | None, project_id: str | None, base_url: str | None
) -> tuple[Client, Callable[[], Client] | None]:
    """The client to use and, when the job owns it (and so closes it when done), how to
    make it again (a job may be retried after its result closed the first one)."""
    if client is not None:
        if api_key is not None or project_id is not None or base_url is not None:
            raise ConfigurationError(
                "Pass either client= or api_key=/project_id=/base_url=, not both: a client "
                "already carries its settings."
            )
        return client, None
    from .._client import Client

    factory = partial(Client, api_key=api_key, project_id=project_id, base_url=base_url)
    return factory(), factory


def _structured(
    response_format: Any, parse: ParseOption, chat_params: dict[str, Any]
) -> SchemaSpec | None:
    """Put the request's ``response_format`` into ``chat_params`` and say how to parse."""
    from ..core.structured import SchemaSpec, normalize_response_format

    if parse not in (None, True, False, "json"):
        raise OptionError(f"parse= must be 'json', True, False or None, not {parse!r}.")
    spec: SchemaSpec | None = None
    if response_format is not None:
        try:
            wire, spec = normalize_response_format(response_format)
        except (TypeError, ValueError) as exc:
            raise PromptError(f"response_format: {exc}.") from None
        chat_params["response_format"] = wire
    if parse is False:
        return None
    if parse in ("json", True):
        return spec or SchemaSpec(schema=None)
    # parse=None: a schema implies parsing; json_object without a schema does not (its keys
    # are unknown, so columns could not be checked before sending)
    return spec if spec is not None and spec.schema is not None else None


def _check_fields(df: pd.DataFrame, spec: SchemaSpec | None, output: str, overwrite: bool) -> None:
    """Schema fields that would clash with columns: found before anything is sent."""
    if spec is None or not spec.fields:
        return
    own = [f for f in spec.fields if f in set(result_columns(output))]
    if own:
        raise ColumnClashError(
            f"The schema field(s) {', '.join(map(repr, own))} would replace the answer columns; "
            f"pass output='<other prefix>'."
        )
    if overwrite:
        return
    clash = [f for f in spec.fields if f in df.columns]
    if clash:
        raise ColumnClashError(
            f"The schema field(s) {', '.join(map(repr, clash))} are already columns of the "
            f"frame. Pass overwrite=True to replace them, or rename the columns."
        )


@pd.api.extensions.register_dataframe_accessor("zgpu")
class ZgpuAccessor:
    """Batch chat completions over the rows of a DataFrame (``df.zgpu``).

    ``df.zgpu.batch_chat(...)`` runs a job and returns the frame with the answers;
    ``df.zgpu.submit_chat(...)`` starts it and returns a :class:`BatchJob` at once;
    ``df.zgpu.estimate_chat(...)`` says what a job would send and cost, without sending;
    ``df.zgpu.attach(...)`` picks up a job or batches made earlier from this frame;
    ``df.zgpu.last_job`` is the most recent job started from this frame object.
    """

    def __init__(self, pandas_obj: pd.DataFrame) -> None:
        self._df = pandas_obj

    @property
    def last_job(self) -> BatchJob | None:
        """The most recent job started from (or attached to) this frame object, e.g. to
        resume waiting after Ctrl-C: ``df.zgpu.last_job.result()``."""
        return _recall(self._df)

    def batch_chat(
        self,
        prompt: Any = None,
        model: str | None = None,
        *,
        system: str | None = None,
        messages: Any = None,
        output: str = "response",
        overwrite: bool = False,
        on_oversize: Literal["raise", "skip"] = "raise",
        response_format: Any = None,
        parse: ParseOption = None,
        retries: int = 0,
        timeout: float | None = None,
        fresh: bool = False,
        dedup: bool | None = None,
        progress: ProgressOption = None,
        poll_interval: float | None = None,
        client: Client | None = None,
        api_key: str | None = None,
        project_id: str | None = None,
        base_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        **chat_params: Any,
    ) -> pd.DataFrame:
        """Send one chat request per row as a batch, wait, and return the frame with the answers.

        ``prompt`` is a column name or a template over columns (``"Review: {review}"``);
        ``messages`` instead names a column of whole message lists. ``system`` adds a system
        message to every request; any other keyword (``temperature``, ``max_tokens``, ...)
        goes into every request body.

        Returns a new DataFrame (the input is not modified) with the same index and order,
        plus ``{output}`` (the answer), ``{output}_status`` (``ok``/``error``/``skipped``,
        ``parse_error``), ``{output}_error_code``, ``{output}_error``,
        ``{output}_finish_reason``, the token counts and ``{output}_shared``. Rows with a
        missing or empty prompt are not sent (``skipped``). Rows whose request is identical
        to an earlier row's are sent once and get its answer, marked ``{output}_shared``
        (so ``out.loc[~out.response_shared, "response_total_tokens"].sum()`` is the usage);
        this is on by default for deterministic requests and off when the body asks for
        sampling (``temperature`` > 0, ``n`` > 1 or ``top_p`` < 1), where identical prompts
        are meant to give independent samples; ``dedup=True``/``False`` decides it. More
        than 50,000 rows (or 100 MB) are split into several batches and merged back.

        Never lose, never pay twice: the job is recorded in a journal on disk
        (``$ZGPU_STATE_DIR``, default the user cache dir) before anything is uploaded.
        Running the same call again (same frame, same settings), even in a new process,
        picks the job up where it stopped instead of buying it again, and a finished job
        comes back from the local copy of its results. ``fresh=True`` starts a new job.

        Structured output: ``response_format=`` a JSON schema dict, an OpenAI-style
        ``response_format`` or a Pydantic model class; with a schema the replies are parsed
        (``parse="json"`` asks for it without one, ``parse=False`` turns it off) and each
        field becomes a column; a reply that does not parse or validate is marked
        ``parse_error`` and keeps its raw text.

        ``retries=N`` resubmits rows that failed transiently (``internal_error``,
        ``rate_limit_exceeded``, ``batch_expired``) up to N more rounds; rows failing with
        ``insufficient_quota`` / ``authentication_error`` stop the job
        (:class:`~zgpu_pandas.core.job.JobStoppedError`). ``timeout`` (seconds) bounds the wait
        (:class:`~zgpu_pandas.core.job.JobTimeoutError`; the job keeps running).

        Connection: ``client=``, or ``api_key``/``project_id``/``base_url`` (default from
        ``ZGPU_*``/``ZEROGPU_*`` environment variables; ``base_url="local"`` runs on the
        bundled local server). Progress: a widget in Jupyter, a tqdm bar in a terminal,
        ``progress=False`` for none (``"widget"`` / ``"tqdm"`` to choose). ``poll_interval``
        defaults to the client's (30 s for the real service, 0.2 s for a local server).

        Interrupting (Ctrl-C) does not cancel the batches: the message says how to pick the
        job up again (``df.zgpu.last_job``, or the same call) and how to cancel it.

        Example::

            out = df.zgpu.batch_chat("Review: {review}\\nStars: {stars}",
                                     model="LFM2.5-1.2B-Instruct", temperature=0,
                                     system="Tag the sentiment.", retries=2)
            out[out["response_status"] == "error"]
        """
        job = self._start(
            prompt=prompt,
            model=model,
            system=system,
            messages=messages,
            output=output,
            overwrite=overwrite,
            on_oversize=on_oversize,
            response_format=response_format,
            parse=parse,
            retries=retries,
            fresh=fresh,
            dedup=dedup,
            progress=progress,
            poll_interval=poll_interval,
            client=client,
            api_key=api_key,
            project_id=project_id,
            base_url=base_url,
            metadata=metadata,
            chat_params=chat_params,
            timeout=timeout,
        )
        return job.result(timeout=timeout)

    def submit_chat(
        self,
        prompt: Any = None,
        model: str | None = None,
        *,
        system: str | None = None,
        messages: Any = None,
        output: str = "response",
        overwrite: bool = False,
        on_oversize: Literal["raise", "skip"] = "raise",
        response_format: Any = None,
        parse: ParseOption = None,
        retries: int = 0,
        fresh: bool = False,
        dedup: bool | None = None,
        progress: ProgressOption = None,
        poll_interval: float | None = None,
        client: Client | None = None,
        api_key: str | None = None,
        project_id: str | None = None,
        base_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        **chat_params: Any,
    ) -> BatchJob:
        """Like :meth:`batch_chat`, but return a :class:`BatchJob` as soon as the batches
        are created (or the journaled job is found again). In Jupyter its widget keeps
        updating while the kernel is free. ``job.result()`` waits, does the ``retries``
        rounds and merges.

        Example::

            job = df.zgpu.submit_chat("review", model="LFM2.5-1.2B-Instruct")
            job.status()          # poll once
            out = job.result()    # wait and merge
            job.cancel()          # or stop it
        """
        job = self._start(
            prompt=prompt,
            model=model,
            system=system,
            messages=messages,
            output=output,
            overwrite=overwrite,
            on_oversize=on_oversize,
            response_format=response_format,
            parse=parse,
            retries=retries,
            fresh=fresh,
            dedup=dedup,
            progress=progress,
            poll_interval=poll_interval,
            client=client,
            api_key=api_key,
            project_id=project_id,
            base_url=base_url,
            metadata=metadata,
            chat_params=chat_params,
            timeout=None,
        )
        job.watch_in_background()
        return job

    def estimate_chat(
        self,
        prompt: Any = None,
        model: str | None = None,
        *,
        system: str | None = None,
        messages: Any = None,
        output: str = "response",
        overwrite: bool = False,
        on_oversize: Literal["raise", "skip"] = "raise",
        response_format: Any = None,
        parse: ParseOption = None,
        retries: int = 0,
        timeout: float | None = None,
        fresh: bool = False,
        dedup: bool | None = None,
        progress: ProgressOption = None,
        poll_interval: float | None = None,
        client: Client | None = None,
        api_key: str | None = None,
        project_id: str | None = None,
        base_url: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        **chat_params: Any,
    ) -> ChatEstimate:
        """What :meth:`batch_chat` with the same arguments would send and cost, without any
        network call: rows to send, rows skipped, rows answered by an identical row,
        batches, bytes, an estimate of the prompt tokens (about 4 characters per token) and
        the list-price cost from the public catalog (an upper bound: batches cost less).
        The connection and job options are accepted so the same call can be estimated, and
        ignored.

        Example::

            est = df.zgpu.estimate_chat("review", model="LFM2.5-1.2B-Instruct", max_tokens=50)
            print(est)                 # or est.to_series()
            est.prompt_cost_usd
        """
        del retries, timeout, fresh, progress, poll_interval, metadata  # no effect on size
        del client, api_key, project_id, base_url  # nothing is sent
        requests, _ = self._build(
            prompt=prompt,
            model=model,
            system=system,
            messages=messages,
            output=output,
            overwrite=overwrite,
            on_oversize=on_oversize,
            response_format=response_format,
            parse=parse,
            dedup=dedup,
            chat_params=chat_params,
        )
        return estimate_requests(requests)

    def attach(
        self,
        batch_ids: str | Sequence[str],
        *,
        output: str = "response",
        overwrite: bool = False,
        progress: ProgressOption = None,
        poll_interval: float | None = None,
        client: Client | None = None,
        api_key: str | None = None,
        project_id: str | None = None,
        base_url: str | None = None,
    ) -> BatchJob:
        """A :class:`BatchJob` for a job made earlier from this frame (for example before a
        kernel restart): a journal job id (``"job_..."``) or the ids of its batches. Nothing
        is submitted. When the batches belong to a job of the local journal, the journal's
        record is used (shared and skipped rows come back right).

        Example::

            job = df.zgpu.attach(["batch_abc", "batch_def"], base_url="local")
            out = job.result()
        """
        ids = [batch_ids] if isinstance(batch_ids, str) else list(batch_ids)
        if len(ids) == 1 and ids[0].startswith("job_"):
            from ..core.resume import attach

            job = attach(
                ids[0],
                frame=self._df,
                output=output,
                overwrite=overwrite,
                progress=progress,
                poll_interval=poll_interval,
                client=client,
                api_key=api_key,
                project_id=project_id,
                base_url=base_url,
            )
            job.resume_hint = _RESUME_HINT
            _remember(self._df, job)
            return job
        the_client, factory = _client_for(client, api_key, project_id, base_url)
        job = BatchJob.from_batch_ids(
            self._df,
            ids,
            client=the_client,
            output=output,
            overwrite=overwrite,
            poll_interval=poll_interval,
            progress=progress,
            owns_client=factory is not None,
            resume_hint=_RESUME_HINT,
        )
        job._client_factory = factory
        journaled = self._journaled(job, ids)
        if journaled is not None:
            journaled._owns_client = factory is not None
            journaled._client_factory = factory
            job = journaled
        _remember(self._df, job)
        job.watch_in_background()
        return job

    def _journaled(self, job: BatchJob, ids: list[str]) -> BatchJob | None:
        """The journal's version of a job attached by batch ids, when the local journal
        holds it (then rows that shared a line, or were skipped, come back right)."""
        journal = Journal()
        try:
            rec = journal.load(job.job_id) if job.job_id.startswith("job_") else None
        except (KeyError, ValueError, ZgpuError):
            return None
        if rec is None or rec.rows != len(self._df) or set(ids) != set(rec.batch_ids):
            return None
        from ..core.resume import parse_spec_of

        return BatchJob.from_record(
            rec,
            journal,
            frame=self._df,
            client=job.client,
            output=job.output,
            overwrite=job.overwrite,
            poll_interval=job.poll_interval,
            progress=job._display,
            resume_hint=_RESUME_HINT,
            parse=parse_spec_of(rec),
        )

    def _build(
        self,
        *,
        prompt: Any,
        model: str | None,
        system: str | None,
        messages: Any,
        output: str,
        overwrite: bool,
        on_oversize: Literal["raise", "skip"],
        response_format: Any,
        parse: ParseOption,
        dedup: bool | None,
        chat_params: dict[str, Any],
    ) -> tuple[RequestSet, SchemaSpec | None]:
        """Everything that can be wrong with the input is found here, before any network
        call."""
        chat_params = dict(chat_params)
        if "response_format" in chat_params:  # cannot happen through the signature; be sure
            raise PromptError("pass response_format= once.")
        spec = _structured(response_format, parse, chat_params)
        check_columns(self._df, output, overwrite=overwrite)
        _check_fields(self._df, spec, output, overwrite)
        if dedup is not None and not isinstance(dedup, bool):
            raise OptionError(f"dedup= must be True, False or None (automatic), not {dedup!r}.")
        requests = build_requests(
            self._df,
            model=model or "",
            prompt=prompt,
            messages=messages,
            system=system,
            on_oversize=on_oversize,
            dedup=dedup,
            **chat_params,
        )
        return requests, spec

    def _start(
        self,
        *,
        prompt: Any,
        model: str | None,
        system: str | None,
        messages: Any,
        output: str,
        overwrite: bool,
        on_oversize: Literal["raise", "skip"],
        response_format: Any,
        parse: ParseOption,
        retries: int,
        fresh: bool,
        dedup: bool | None,
        progress: ProgressOption,
        poll_interval: float | None,
        client: Client | None,
        api_key: str | None,
        project_id: str | None,
        base_url: str | None,
        metadata: Mapping[str, Any] | None,
        chat_params: dict[str, Any],
        timeout: float | None,
    ) -> BatchJob:
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise OptionError(f"retries= must be a whole number >= 0, not {retries!r}.")
        if timeout is not None and not timeout > 0:
            raise OptionError(f"timeout= must be a positive number of seconds, not {timeout!r}.")
        if not isinstance(fresh, bool):
            raise OptionError(f"fresh= must be True or False, not {fresh!r}.")
        reserved = [k for k in (metadata or {}) if str(k).startswith("zgpu_")]
        if reserved:
            raise OptionError(
                f"metadata key(s) {', '.join(map(repr, reserved))}: keys starting with 'zgpu_' "
                f"are reserved for the job's own bookkeeping (e.g. {JOB_METADATA_KEY!r}); "
                f"rename them."
            )
        requests, spec = self._build(
            prompt=prompt,
            model=model,
            system=system,
            messages=messages,
            output=output,
            overwrite=overwrite,
            on_oversize=on_oversize,
            response_format=response_format,
            parse=parse,
            dedup=dedup,
            chat_params=chat_params,
        )
        from ..core.resume import connection_of, job_fingerprint

        the_client, factory = _client_for(client, api_key, project_id, base_url)
        owned = factory is not None
        conn = connection_of(the_client, base_url)
        fingerprint = job_fingerprint(requests.fingerprint, **conn)
        journal = Journal()
        record = None if fresh else journal.find(fingerprint)
        settings = {**requests.settings, "parse": "json" if spec is not None else None}
        if record is not None:
            job = BatchJob.from_record(
                record,
                journal,
                frame=self._df,
                requests=requests,
                client=the_client,
                client_factory=factory,
                output=output,
                overwrite=overwrite,
                poll_interval=poll_interval,
                progress=progress,
                resume_hint=_RESUME_HINT,
                parse=spec,
                metadata=metadata,
            )
            job._owns_client = owned
        else:
            job = BatchJob(
                client=the_client,
                client_factory=factory,
                frame=self._df,
                requests=requests,
                model=model or "",
                output=output,
                overwrite=overwrite,
                metadata=metadata,
                poll_interval=poll_interval,
                progress=progress,
                owns_client=owned,
                resume_hint=_RESUME_HINT,
                journal=journal,
                fingerprint=fingerprint,
                connection=conn,
                settings=settings,
                parse=spec,
            )
        job.retries = retries
        _remember(self._df, job)
        job.submit()
        if record is not None:
            # a re-run that quietly returned old answers (or old errors) would look like a
            # new job: say it is not
            n = len(job.batch_ids)
            made = (
                "no new batch was created"
                if job.creates_sent == 0
                else f"{job.creates_sent} batch(es) it had not created yet were created now"
            )
            job.note(f"Resumed job {job.job_id} from the journal ({n} batches); {made}")
        return job
