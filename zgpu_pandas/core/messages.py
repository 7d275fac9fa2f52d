"""The wording a job's user reads: errors, notes and what to do after an interrupt.

Every message says what happened, what was kept (nothing already paid for is lost) and the
exact call that goes on from here; ``hint`` is how the user reaches the job
(``df.zgpu.last_job``, or ``job``). Kept apart from the job's logic so that it can be read and
changed in one place.

Example::

    >>> print(timed_out("job_1", 5.0, "3 of 10 rows done", "job"))
    Job job_1 is still running after 5.0 s (3 of 10 rows done); it keeps running on the service: job.wait() resumes waiting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .._client import CLIENT_TOKEN_KEY
from .slots import Slot

__all__ = [
    "CLI_HINT",
    "interrupted",
    "not_found_on_service",
    "resumed",
    "stopped",
    "submit_stopped",
    "timed_out",
    "transient",
    "unreachable",
]


#: how ``zgpu-pandas run`` names its job: messages then speak of commands, not of Python
CLI_HINT = "zgpu-pandas run"


def _again(resumable: bool) -> str:
    if not resumable:
        return ""
    return "run the same call again (it resumes from the journal and buys nothing twice), or "


def submit_stopped(job_id: str, made: Sequence[str], total: int, exc: Exception, hint: str) -> str:
    return (
        f"Submitting job {job_id} stopped after {len(made)} of {total} batches ({exc}). The "
        f"batches created keep running: {', '.join(made)}. Call {hint}.submit() to submit the "
        f"rest (a create whose answer was lost is first looked up by its token, so no batch is "
        f"made twice), or {hint}.cancel() to stop them."
    )


def not_found_on_service(job_id: str, where: str, batch_id: str, base_url: str, why: str) -> str:
    return (
        f"Job {job_id} (journal: {where}) has batch {batch_id}, which {base_url} does not know "
        f"({why}): it was made on another server, data directory or project, or deleted. "
        f"Nothing was resubmitted. To start over (and pay again for these rows) run the call "
        f"with fresh=True; to reach the right service pass its base_url/project_id."
    )


def unreachable(
    job_id: str,
    base_url: str,
    gone: float,
    exc: Exception,
    slots: Sequence[Slot],
    *,
    resumable: bool,
    hint: str,
) -> str:
    batches = ", ".join(
        f"{s.batch.id} ({s.batch.status} when last seen)" for s in slots if s.batch is not None
    )
    return (
        f"Job {job_id}: the service at {base_url} could not be reached for {gone:.0f} s "
        f"({exc}); stopped waiting. Nothing was cancelled: the batches are still running on the "
        f"service and keep what they do: {batches or 'none'}. Once it answers again, "
        f"{_again(resumable)}{hint}.result() picks the job up."
    )


def timed_out(job_id: str, timeout: float | None, summary: str, hint: str) -> str:
    return (
        f"Job {job_id} is still running after {timeout} s ({summary}); it keeps running on the "
        f"service: {hint}.wait() resumes waiting."
    )


def stopped(job_id: str, codes: Mapping[str, int], answered: int, hint: str) -> str:
    what = ", ".join(f"{n:,} row(s) with {c}" for c, n in sorted(codes.items()))
    return (
        f"Job {job_id} stopped: {what}. That is a problem of the account or key (no credit "
        f"left, or a key that is not valid), not of the rows, so nothing was resubmitted and the "
        f"batches still running were cancelled. {answered:,} rows were answered and are kept: "
        f"{hint}.result(wait=False) gives them. Fix the account, then "
        f"{hint}.retry(codes={sorted(codes)!r}) resubmits only the rows that failed."
    )


def transient(job_id: str, codes: Mapping[str, int], hint: str) -> str | None:
    """How many rows failed transiently and how to retry them (``None`` when none did)."""
    total = sum(codes.values())
    if not total:
        return None
    what = ", ".join(f"{c}: {n:,}" for c, n in sorted(codes.items()))
    if hint == CLI_HINT:
        return (
            f"Job {job_id}: {total:,} row(s) failed with a transient error ({what}). Run the "
            f"same command with --retries N to resubmit only those rows."
        )
    return (
        f"Job {job_id}: {total:,} row(s) failed with a transient error ({what}). {hint}.retry() "
        f"resubmits only those rows (then {hint}.result()), or pass retries=N to the call to do "
        f"it on its own."
    )


def resumed(job_id: str, n_batches: int, creates_sent: int) -> str:
    made = (
        "no new batch was created"
        if creates_sent == 0
        else f"{creates_sent} batch(es) it had not created yet were created now"
    )
    return f"Resumed job {job_id} from the journal ({n_batches} batches); {made}"


def interrupted(
    doing: str,
    job_id: str,
    slots: Sequence[Slot],
    *,
    hint: str,
    resumable: bool,
    output: str,
) -> str:
    """What an interrupt (Ctrl-C) left running, and how to pick it up or stop it."""
    ids = [s.batch.id for s in slots if s.batch is not None]
    if hint == CLI_HINT:
        return _interrupted_cli(doing, job_id, ids, any(s.token is not None for s in slots))
    unanswered = [s for s in slots if s.batch is None and s.token is not None]
    if ids:
        lines = _running_lines(doing, job_id, slots, ids, hint=hint, resumable=resumable)
        if not resumable:
            ids_text = "[" + ", ".join(repr(i) for i in ids) + "]"
            lines.append(f"  in a new kernel: df.zgpu.attach({ids_text}, output={output!r})")
        lines.append(
            f"  cancel it:       {hint}.cancel()"
            + (f"  or  zgpu-pandas batches cancel {ids[0]}" if len(ids) == 1 else "")
        )
        left = sum(1 for s in slots if s.batch is None)
        if left:
            lines.append(
                f"  {left} more chunk(s) were not submitted yet: {hint}.submit() submits them."
            )
    elif not unanswered:
        lines = [f"Interrupted while {doing}: no batch was created, nothing is running."]
    else:
        lines = [f"Interrupted while {doing}."]
    return "\n".join(lines + _unknown_creates(unanswered, hint=hint, resumable=resumable))


def _interrupted_cli(doing: str, job_id: str, ids: list[str], started: bool) -> str:
    """The interrupt message for a command-line user: the same command resumes."""
    if not ids and not started:
        return f"Interrupted while {doing}: no batch was created, nothing is running."
    lines = [
        f"Interrupted while {doing}. Nothing was cancelled: job {job_id} keeps running on the "
        f"service and keeps what it has done.",
        "  to pick it up: run the same command again; it resumes from the journal and "
        "buys nothing twice, then writes the output.",
    ]
    if ids:
        cancel = " ; ".join(f"zgpu-pandas batches cancel {i}" for i in ids[:5])
        more = f" (and {len(ids) - 5} more: zgpu-pandas jobs lists them)" if len(ids) > 5 else ""
        lines.append(f"  to cancel it:  {cancel}{more}")
    return "\n".join(lines)


def _running_lines(
    doing: str, job_id: str, slots: Sequence[Slot], ids: list[str], *, hint: str, resumable: bool
) -> list[str]:
    batches = ", ".join(f"{s.batch.id} ({s.batch.status})" for s in slots if s.batch is not None)
    lines = [
        f"Interrupted while {doing}. Nothing was cancelled: job {job_id} keeps running on the "
        f"service and keeps what it has done.",
        f"  batches:         {batches}",
        f"  pick it up:      {hint}.wait()  or  {hint}.result()",
    ]
    if resumable:
        where = "df.zgpu" if hint.startswith("df.zgpu") else "zgpu_pandas"
        lines.append(
            f"  in a new kernel: run the same call again (it resumes from the journal),"
            f" or {where}.attach({job_id!r})"
        )
    return lines


def _unknown_creates(slots: Sequence[Slot], *, hint: str, resumable: bool) -> list[str]:
    if not slots:
        return []
    tokens = ", ".join(repr(s.token) for s in slots)
    again = "run the same call again (it resumes from the journal), or " if resumable else ""
    return [
        f"  A batch create was in flight: its outcome is unknown. The batch may exist and be "
        f"running on the service (token {tokens}, in metadata {CLIENT_TOKEN_KEY!r}).",
        f"  to pick it up:   {again}{hint}.submit(): it looks the batch up by its token and "
        f"does not create a second one.",
        f"  to stop it:      {hint}.submit() then {hint}.cancel()",
    ]
