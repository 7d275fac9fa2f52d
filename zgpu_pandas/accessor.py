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
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from ._job import BatchJob
from ._progress import ProgressOption
from ._requests import PromptError, build_requests
from ._results import check_columns

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["ZgpuAccessor"]

_RESUME_HINT = "df.zgpu.last_job"

# Options of jobs, not of the model: never to be sent inside a request body by mistake.
_JOB_OPTIONS = ("fresh", "retries", "parse", "timeout")

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
) -> tuple[Client, bool]:
    """The client to use and whether the job owns it (and so closes it when done)."""
    if client is not None:
        if api_key is not None or project_id is not None or base_url is not None:
            raise ValueError(
                "Pass either client= or api_key=/project_id=/base_url=, not both: a client "
                "already carries its settings."
            )
        return client, False
    from ._client import Client

    return Client(api_key=api_key, project_id=project_id, base_url=base_url), True


@pd.api.extensions.register_dataframe_accessor("zgpu")
class ZgpuAccessor:
    """Batch chat completions over the rows of a DataFrame (``df.zgpu``).

    ``df.zgpu.batch_chat(...)`` runs a job and returns the frame with the answers;
    ``df.zgpu.submit_chat(...)`` starts it and returns a :class:`BatchJob` at once;
    ``df.zgpu.attach(batch_ids)`` picks up batches made earlier from this frame;
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
        message to every request; any other keyword (``temperature``, ``max_tokens``,
        ``response_format``, ...) goes into every request body.

        Returns a new DataFrame (the input is not modified) with the same index and order,
        plus ``{output}`` (the answer), ``{output}_status`` (``ok``/``error``/``skipped``),
        ``{output}_error_code``, ``{output}_error``, ``{output}_finish_reason`` and the
        token counts. Rows with a missing or empty prompt are not sent (``skipped``). More
        than 50,000 rows (or 100 MB) are split into several batches and merged back.

        Connection: ``client=``, or ``api_key``/``project_id``/``base_url`` (default from
        ``ZGPU_*``/``ZEROGPU_*`` environment variables; ``base_url="local"`` runs on the
        bundled local server). Progress: a widget in Jupyter, a tqdm bar in a terminal,
        ``progress=False`` for none (``"widget"`` / ``"tqdm"`` to choose). ``poll_interval``
        defaults to the client's (30 s for the real service, 0.2 s for a local server).

        Interrupting (Ctrl-C) does not cancel the batches: the message says how to pick the
        job up again (``df.zgpu.last_job``) and how to cancel it.

        Example::

            out = df.zgpu.batch_chat("Review: {review}\\nStars: {stars}",
                                     model="LFM2.5-1.2B-Instruct", temperature=0,
                                     system="Tag the sentiment.")
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
            progress=progress,
            poll_interval=poll_interval,
            client=client,
            api_key=api_key,
            project_id=project_id,
            base_url=base_url,
            metadata=metadata,
            chat_params=chat_params,
        )
        return job.result()

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
        are created. In Jupyter its widget keeps updating while the kernel is free.

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
            progress=progress,
            poll_interval=poll_interval,
            client=client,
            api_key=api_key,
            project_id=project_id,
            base_url=base_url,
            metadata=metadata,
            chat_params=chat_params,
        )
        job.watch_in_background()
        return job

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
        """A :class:`BatchJob` for batches submitted earlier from this frame (for example
        before a kernel restart), to wait for and merge. Nothing is submitted.

        Example::

            job = df.zgpu.attach(["batch_abc", "batch_def"], base_url="local")
            out = job.result()
        """
        the_client, owned = _client_for(client, api_key, project_id, base_url)
        job = BatchJob.from_batch_ids(
            self._df,
            [batch_ids] if isinstance(batch_ids, str) else list(batch_ids),
            client=the_client,
            output=output,
            overwrite=overwrite,
            poll_interval=poll_interval,
            progress=progress,
            owns_client=owned,
            resume_hint=_RESUME_HINT,
        )
        _remember(self._df, job)
        job.watch_in_background()
        return job

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
        progress: ProgressOption,
        poll_interval: float | None,
        client: Client | None,
        api_key: str | None,
        project_id: str | None,
        base_url: str | None,
        metadata: Mapping[str, Any] | None,
        chat_params: dict[str, Any],
    ) -> BatchJob:
        # Everything that can be wrong with the input is found before any network call.
        for name in _JOB_OPTIONS:
            if name in chat_params:
                raise PromptError(
                    f"{name}= is an option of the job, not a chat parameter, and this version "
                    f"of zgpu_pandas does not support it; remove it (it would otherwise be "
                    f"sent to the model inside every request)."
                )
        check_columns(self._df, output, overwrite=overwrite)
        requests = build_requests(
            self._df,
            model=model or "",
            prompt=prompt,
            messages=messages,
            system=system,
            on_oversize=on_oversize,
            **chat_params,
        )
        the_client, owned = _client_for(client, api_key, project_id, base_url)
        job = BatchJob(
            client=the_client,
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
        )
        _remember(self._df, job)
        job.submit()
        return job
