"""Finding jobs again: the journal fingerprint, ``zgpu_pandas.jobs()`` and
``zgpu_pandas.attach()``.

A job is found again by a fingerprint of what it buys and where: the request set's
fingerprint (every request byte, so model, prompts and chat parameters; which rows were
skipped or share a line) plus the *configured* service (``"local"`` or the URL given, not the
port a local server happened to get), the provider and the project. Never the key. The output
prefix and the parse settings are left out on purpose: they change what is done with the
answers, not what is bought, so a re-run that only renames the columns reuses the answers.

Example::

    import zgpu_pandas
    zgpu_pandas.jobs()                                   # every job in the journal
    job = zgpu_pandas.attach("job_20250101-120000_ab12cd34")
    out = job.result()                                   # indexed by row position
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from .._journal import JobRecord, Journal
from .._progress import ProgressOption
from ..errors import (
    JobNotFoundError,
    OptionError,
    RequestLinesUnavailableError,
)
from .attach import job_from_batches, job_from_record
from .collect import custom_ids_in
from .job import BatchJob
from .rows import as_output, custom_id_output
from .spec import Connection

if TYPE_CHECKING:
    from .._client import Client
    from .structured import SchemaSpec

__all__ = ["attach", "configured_base_url", "job_fingerprint"]

_FINISHED = frozenset({"completed", "partial", "failed", "cancelled", "stopped"})


def job_fingerprint(
    requests_fingerprint: str, *, base_url: str, provider: str, project_id: str | None
) -> str:
    """The journal key of a job: what it sends, and to which service, provider and project."""
    h = hashlib.sha256(b"zgpu-job/1\n")
    h.update(
        orjson.dumps(
            {
                "requests": requests_fingerprint,
                "base_url": base_url,
                "provider": provider,
                "project_id": project_id,
            },
            option=orjson.OPT_SORT_KEYS,
        )
    )
    return h.hexdigest()


def configured_base_url(client: Client, base_url: str | None = None) -> str:
    """How the service was named: ``"local"`` for the shared local server (whose port
    changes with every process), else the client's base URL."""
    if base_url is not None and base_url.strip().lower() == "local":
        return "local"
    local = sys.modules.get("zgpu_pandas.server.local")
    shared = getattr(local, "_shared", None) if local is not None else None
    if shared is not None and shared.running and shared.url == client.base_url:
        return "local"
    return client.base_url


def connection_of(client: Client, base_url: str | None = None) -> dict[str, Any]:
    """The service identity recorded with a job (no secret in it)."""
    return {
        "base_url": configured_base_url(client, base_url),
        "provider": client.provider,
        "project_id": client.project_id,
    }


def parse_spec_of(record: JobRecord) -> SchemaSpec | None:
    """The structured-output parsing a recorded job asked for (``None`` when none)."""
    if record.settings.get("parse") != "json":
        return None
    from .structured import SchemaSpec

    rf = (record.settings.get("chat_params") or {}).get("response_format")
    inner = rf.get("json_schema") if isinstance(rf, dict) else None
    schema = inner.get("schema") if isinstance(inner, dict) else None
    return SchemaSpec(schema=schema if isinstance(schema, dict) else None)


def attach(
    job_or_batch_id: str,
    *,
    frame: Any = None,
    output: str | None = None,
    overwrite: bool = False,
    progress: ProgressOption = None,
    poll_interval: float | None = None,
    client: Client | None = None,
    api_key: str | None = None,
    project_id: str | None = None,
    base_url: str | None = None,
    state_dir: str | None = None,
    hint: str = "job",
) -> BatchJob:
    """A :class:`BatchJob` for a job of the journal (by job id, or by the id of one of its
    batches), or for a batch made elsewhere. Nothing is submitted.

    - A journal job is picked up where it stopped: running batches are waited on, finished
      ones read from the local copies (no network call for a finished job). Its service,
      provider and project come from the journal unless given. The result is indexed by row
      position (``0..rows-1``) and holds the answer columns, or is ``frame`` plus them when
      the frame the job was made from is passed.
    - A batch id the journal does not know: its results keyed by ``custom_id`` (a frame
      indexed by custom_id, read from the batch's input file).

    Example::

        job = zgpu_pandas.attach("job_20250101-120000_ab12cd34")
        out = job.result()
        other = zgpu_pandas.attach("batch_abc123", base_url="local").result()
    """
    if not isinstance(job_or_batch_id, str) or not job_or_batch_id:
        raise OptionError(f"give a job id (job_...) or a batch id, not {job_or_batch_id!r}")
    conn = Connection(client=client, api_key=api_key, project_id=project_id, base_url=base_url)
    conn.open_check()
    journal = Journal(state_dir)
    record = _journaled(journal, job_or_batch_id)
    view = dict(frame=frame, overwrite=overwrite, poll_interval=poll_interval, progress=progress)
    if record is not None:
        job = job_from_record(
            record,
            journal,
            client=client,
            client_factory=None if client is not None else _factory(record, conn),
            output=output,
            resume_hint=hint,
            parse=parse_spec_of(record),
            **view,
        )
    else:
        job = _foreign_batch(job_or_batch_id, conn, output=output, hint=hint, **view)
    if record is not None and record.status in _FINISHED:
        # the journal says it is done: read the local result copies now, so that the job
        # reports the journal's status (not "running") before anyone polls it
        job.status()
    job.watch_in_background()
    return job


def _journaled(journal: Journal, job_or_batch_id: str) -> JobRecord | None:
    """The journal's record of a job id (which must be there) or of a batch id (if any)."""
    if not job_or_batch_id.startswith("job_"):
        return journal.find_by_batch(job_or_batch_id)
    try:
        return journal.load(job_or_batch_id)
    except KeyError:
        raise JobNotFoundError(
            f"There is no job {job_or_batch_id!r} in the journal at {journal.root}; "
            f"zgpu_pandas.jobs() lists the jobs there (ZGPU_STATE_DIR chooses the folder)."
        ) from None


def _foreign_batch(
    batch_id: str,
    conn: Connection,
    *,
    frame: Any,
    output: str | None,
    overwrite: bool,
    poll_interval: float | None,
    progress: ProgressOption,
    hint: str,
) -> BatchJob:
    """A batch the journal does not know: its rows are its lines, keyed by custom_id."""
    the_client, factory = conn.open()
    batch = the_client.batches.retrieve(batch_id)
    custom_ids = custom_ids_in(the_client, batch.input_file_id)
    if not custom_ids:
        raise RequestLinesUnavailableError(
            f"Batch {batch.id} has no readable input file, so its lines cannot be listed by "
            f"custom_id; read its output file directly (client.files.iter_lines("
            f"{batch.output_file_id!r}))."
        )
    base = custom_id_output(custom_ids) if frame is None else as_output(frame)
    if base.n_rows != len(custom_ids):
        raise OptionError(
            f"batch {batch.id} has {len(custom_ids):,} lines; the frame has {base.n_rows:,} rows"
        )
    return job_from_batches(
        base,
        [batch.id],
        client=the_client,
        output=output or "response",
        overwrite=overwrite,
        poll_interval=poll_interval,
        progress=progress,
        owns_client=factory is not None,
        client_factory=factory,
        resume_hint=hint,
        custom_ids=custom_ids,
    )


def _factory(record: JobRecord, conn: Connection) -> Callable[[], Client]:
    """A client for the journaled job's service, provider and project, unless given."""

    def make() -> Client:
        from .._client import Client

        return Client(
            api_key=conn.api_key,
            project_id=conn.project_id if conn.project_id is not None else record.project_id,
            base_url=conn.base_url if conn.base_url is not None else record.base_url,
            provider=record.provider,
        )

    return make
