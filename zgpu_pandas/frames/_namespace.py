"""The ``zgpu`` namespace every frame library gets: ``batch_chat``, ``submit_chat``,
``estimate_chat``, ``attach`` and ``last_job``, written once.

A thin layer: each method gathers its keywords into a
:class:`~zgpu_pandas.core.spec.ChatSpec` and a :class:`~zgpu_pandas.core.spec.Connection` and
hands them to the core (:mod:`zgpu_pandas.core.run`), which reads the rows and returns a frame
of the caller's own library through that library's adapter. ``frames/pandas.py`` registers it
as ``df.zgpu``; ``frames/polars.py`` as ``pl_df.zgpu``. The keyword lists are spelled out on
each method (not ``**kwargs``) so that editors and ``help()`` show them.

Example::

    out = df.zgpu.batch_chat("review", model="LFM2.5-1.2B-Instruct", temperature=0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from ..core import run
from ..core.estimate import ChatEstimate
from ..core.invalid_text import OnInvalid
from ..core.job import BatchJob
from ..core.spec import ChatSpec, Connection, ParseOption
from ..core.template_fill import MissingOption
from ._labelling import LabellingMixin
from ._options import chat_spec, connection

if TYPE_CHECKING:
    from .._client import Client
    from .._progress import ProgressOption

__all__ = ["FrameNamespace"]


FrameT = TypeVar("FrameT")


def _checks(
    name: str | None,
    check_model: bool,
    extra_body: Mapping[str, Any] | None,
    missing: MissingOption,
    on_invalid: OnInvalid,
) -> dict[str, Any]:
    """The ChatSpec fields of the pre-flight choices, alike for every entry point."""
    return {
        "name": name,
        "check_model": check_model,
        "extra_body": extra_body,
        "missing": missing,
        "on_invalid": on_invalid,
    }


class FrameNamespace(LabellingMixin, Generic[FrameT]):
    """Batch chat completions over the rows of a DataFrame (``df.zgpu``).

    ``df.zgpu.batch_chat(...)`` runs a job and returns the frame with the answers;
    ``df.zgpu.submit_chat(...)`` starts it and returns a :class:`BatchJob` at once;
    ``df.zgpu.estimate_chat(...)`` says what a job would send and cost, without sending;
    ``df.zgpu.attach(...)`` picks up a job or batches made earlier from this frame;
    ``df.zgpu.last_job`` is the most recent job started from this frame object.
    """

    #: how messages name the job for the user ("df.zgpu.last_job.result()")
    _hint = "df.zgpu.last_job"

    def __init__(self, frame: FrameT) -> None:
        self._df = frame

    @property
    def last_job(self) -> BatchJob | None:
        """The most recent job started from (or attached to) this frame object, e.g. to
        resume waiting after Ctrl-C: ``df.zgpu.last_job.result()``."""
        job: BatchJob | None = run.LAST_JOBS.recall(self._df)
        return job

    @property
    def last_chat(self) -> FrameT | None:
        """The result of the most recent :meth:`chat` on this frame object, also when it
        was interrupted (Ctrl-C): the rows answered by then, the others ``pending``."""
        out: FrameT | None = run.LAST_CHATS.recall(self._df)
        return out

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
        max_cost: float | None = None,
        name: str | None = None,
        check_model: bool = True,
        extra_body: Mapping[str, Any] | None = None,
        missing: MissingOption = "skip",
        on_invalid: OnInvalid = "raise",
        **chat_params: Any,
    ) -> FrameT:
        """Send one chat request per row as a batch, wait, and return the frame with the answers.

        ``prompt`` is a column name or a template over columns (``"Review: {review}"``);
        ``messages`` instead names a column of whole message lists. ``system`` adds a system
        message to every request; any other keyword (``temperature``, ``max_tokens``, ...)
        goes into every request body; an unknown keyword is refused (with the closest known
        parameter: ``temprature`` → ``temperature``), and a custom body field goes in
        ``extra_body={...}``, sent as given. ``model`` must be a ZeroGPU catalog id
        (:func:`zgpu_pandas.models`; a near miss is refused with the closest ids before
        anything is sent); ``check_model=False`` for a custom deployment. A template with
        an empty field skips the row by default; ``missing="empty"`` sends it with the field
        empty, ``missing={"body": "(none)"}`` fills it. Text that is not valid Unicode (lone
        surrogates) is refused naming every bad row; ``on_invalid="skip"``/``"replace"``.
        ``name`` labels the job in :func:`zgpu_pandas.jobs` and on the job.

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
        (:class:`~zgpu_pandas.errors.JobStoppedError`). ``timeout`` (seconds) bounds the wait
        (:class:`~zgpu_pandas.errors.JobTimeoutError`; the job keeps running).

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
        spec = chat_spec(locals())
        job = run.start(
            self._df, spec, connection(locals()), progress=progress,
            poll_interval=poll_interval, hint=self._hint,
        )
        out: FrameT = job.result(timeout=timeout)
        return out

    def chat(
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
        max_cost: float | None = None,
        concurrency: int | None = None,
        name: str | None = None,
        check_model: bool = True,
        extra_body: Mapping[str, Any] | None = None,
        missing: MissingOption = "skip",
        on_invalid: OnInvalid = "raise",
        **chat_params: Any,
    ) -> FrameT:
        """Like :meth:`batch_chat`, answered now: one ``POST /v1/chat/completions`` per row
        (``concurrency`` in flight, default 32 on a local server and 8 on a remote one), for
        trying a prompt on a few rows before sending them all as a batch. Same arguments,
        same checks, same result columns: moving to the batch is one word.

        Every answer is kept as it arrives (in the journal directory), so re-running the
        cell, or the same deterministic requests inside a later ``chat`` or ``batch_chat``,
        does not pay twice; the summary line says how many answers were reused. 429 and 5xx
        answers are retried after the ``Retry-After`` the service gives; a server that cannot
        be reached is waited for (30 s on loopback, 10 minutes remote); ``retries=N`` then
        resends the rows that still failed transiently, up to N more rounds. Ctrl-C stops
        sending, lets the requests in flight finish (up to 10 s), keeps every answer and
        leaves the partial result in ``df.zgpu.last_chat``. ``timeout`` (seconds) stops
        starting new requests after that long; those rows stay ``pending``.
        ``poll_interval``, ``metadata`` and ``name`` only apply to batches and are ignored
        here; ``check_model``, ``extra_body``, ``missing`` and ``on_invalid`` work as for
        :meth:`batch_chat`.
        Prices: online requests are billed at list price (batches cost less).

        Example::

            trial = df.sample(20, random_state=0).zgpu.chat(
                "Review: {review}", model="LFM2.5-1.2B-Instruct", temperature=0)
            # adjust the prompt, try again, then:
            out = df.zgpu.batch_chat("Review: {review}", model="LFM2.5-1.2B-Instruct",
                                     temperature=0, max_cost=5.0)
        """
        del poll_interval, metadata, name  # batch-only settings
        from ..core.online import run_chat

        spec = ChatSpec(
            prompt=prompt,
            messages=messages,
            model=model,
            system=system,
            output=output,
            overwrite=overwrite,
            on_oversize=on_oversize,
            response_format=response_format,
            parse=parse,
            dedup=dedup,
            retries=retries,
            timeout=timeout,
            fresh=fresh,
            max_cost=max_cost,
            chat_params=chat_params,
            **_checks(None, check_model, extra_body, missing, on_invalid),
        )
        conn = Connection(client=client, api_key=api_key, project_id=project_id, base_url=base_url)
        frame = self._df
        out: FrameT = run_chat(
            frame,
            spec,
            conn,
            concurrency=concurrency,
            progress=progress,
            remember=lambda result: run.LAST_CHATS.remember(frame, result),
        )
        return out

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
        max_cost: float | None = None,
        name: str | None = None,
        check_model: bool = True,
        extra_body: Mapping[str, Any] | None = None,
        missing: MissingOption = "skip",
        on_invalid: OnInvalid = "raise",
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
        spec = chat_spec(locals(), timeout=None)
        job = run.start(
            self._df, spec, connection(locals()), progress=progress,
            poll_interval=poll_interval, hint=self._hint,
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
        max_cost: float | None = None,
        name: str | None = None,
        check_model: bool = True,
        extra_body: Mapping[str, Any] | None = None,
        missing: MissingOption = "skip",
        on_invalid: OnInvalid = "raise",
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
        del progress, poll_interval  # no effect on size
        del client, api_key, project_id, base_url  # nothing is sent
        spec = chat_spec(locals())
        return run.estimate(self._df, spec)

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
        conn = Connection(client=client, api_key=api_key, project_id=project_id, base_url=base_url)
        return run.attach_batches(
            self._df,
            batch_ids,
            conn,
            output=output,
            overwrite=overwrite,
            progress=progress,
            poll_interval=poll_interval,
            hint=self._hint,
        )
