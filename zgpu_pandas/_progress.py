"""Showing a job's progress: a live widget in Jupyter, a tqdm bar in a terminal, or nothing.

The choice is made once per job (like ``tqdm.auto``): ``progress=None`` picks the widget when
the code runs in a Jupyter kernel (tqdm's text bar there if ipywidgets is not installed), a
tqdm bar when stderr is a terminal, else nothing; ``True`` forces a display (widget or bar),
``False`` silence, and ``"widget"`` / ``"tqdm"`` one of them. The widget lives in
:mod:`zgpu_pandas._widget`, which imports ipywidgets only when a widget is shown, so a script
never pays for it.

Everything shown is rendered from a :class:`JobStatus` snapshot by pure functions
(:func:`render_html`, :func:`as_text`, :func:`summary`), which is also what
``BatchJob._repr_html_`` shows. It counts rows of the caller's frame throughout; request
lines appear only where rows share a request (dedup), with that reason, so that the numbers
before and after a retry round agree.

Example::

    display = make_progress(None)      # the right one for where the code runs
    display.update(job.status())
    display.close(job.status())
"""

from __future__ import annotations

import html
import importlib.util
import sys
from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = [
    "BatchState",
    "JobStatus",
    "Progress",
    "as_text",
    "dedup_note",
    "format_duration",
    "make_progress",
    "render_html",
    "summary",
]

Outcome = Literal["submitting", "running", "success", "partial", "failure"]
ProgressOption = bool | Literal["widget", "tqdm"] | None


@dataclass(frozen=True)
class BatchState:
    """One batch of a job as last seen (``id`` is ``None`` until it is created).

    ``lines`` and the counts are the service's: request lines, which are rows unless rows
    share a request (dedup). ``round`` is 0 for the first pass, then each retry round's."""

    index: int
    id: str | None
    status: str  # "not submitted" until created, then the service's status
    lines: int  # request lines it carries
    completed: int = 0
    failed: int = 0
    round: int = 0


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job: what the widget, the bar and ``job.status()`` show.

    Everything is counted in rows of the caller's frame: ``rows`` in all, ``sent`` with a
    prompt, ``skipped`` without; ``answered``/``errored`` once their results are in. Rows
    that repeat another row's request share it (dedup), so the service sees fewer
    ``requests`` (request lines of the first pass; equal to ``sent`` without dedup).
    ``round`` counts the retry rounds submitted; the batches of the latest one are what
    ``completed``/``failed`` and the time left (``eta``, seconds, ``None`` while unknown)
    are about. ``outcome`` is ``running`` until every batch is terminal and its results are
    in, then ``success`` (every sent row answered), ``partial`` or ``failure`` (none).
    """

    job_id: str
    model: str
    rows: int
    sent: int
    skipped: int
    batches: tuple[BatchState, ...]
    outcome: Outcome
    elapsed: float
    eta: float | None = None
    answered: int = 0
    errored: int = 0
    requests: int | None = None  # None: as many as ``sent`` (no rows share a request)
    round: int = 0

    @property
    def current(self) -> tuple[BatchState, ...]:
        """The batches of the latest round."""
        return tuple(b for b in self.batches if b.round == self.round)

    @property
    def lines(self) -> int:
        """Request lines of the latest round."""
        return sum(b.lines for b in self.current)

    @property
    def completed(self) -> int:
        """Request lines of the latest round answered so far."""
        return sum(b.completed for b in self.current)

    @property
    def failed(self) -> int:
        """Request lines of the latest round that failed so far."""
        return sum(b.failed for b in self.current)

    @property
    def shared(self) -> int:
        """Rows answered through another row's identical request (dedup)."""
        return max(self.sent - self.requests, 0) if self.requests is not None else 0

    @property
    def unit(self) -> str:
        """What the service's counts count, said plainly: rows, unless rows share requests."""
        return "requests" if self.shared else "rows"

    @property
    def done(self) -> bool:
        return self.outcome in ("success", "partial", "failure")

    @property
    def batch_ids(self) -> list[str]:
        return [b.id for b in self.batches if b.id]


def format_duration(seconds: float | None) -> str:
    """``75`` → ``1m 15s``; ``None`` → ``?``."""
    if seconds is None:
        return "?"
    s = max(round(seconds), 0)
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "es" if word.endswith("ch") else "s")


def dedup_note(st: JobStatus) -> str:
    """Why the service sees fewer requests than rows ("" when it does not)."""
    if not st.shared:
        return ""
    return (
        f"{st.sent:,} rows sent as {_plural(st.requests or 0, 'request')}: "
        f"{st.shared:,} repeat another row's request and share its answer"
    )


def _stage(st: JobStatus) -> str:
    return f"retry round {st.round}" if st.round else ""


def summary(st: JobStatus) -> str:
    """One line that says plainly where the job stands, in rows (requests only where rows
    share them, with the reason)."""
    skipped = f", {st.skipped:,} skipped" if st.skipped else ""
    rounds = f" after {_plural(st.round, 'retry round')}" if st.round else ""
    dedup = f" ({dedup_note(st)})" if st.shared else ""
    if st.outcome == "success":
        return (
            f"Done: all {st.sent:,} sent rows answered{skipped}{rounds} "
            f"in {format_duration(st.elapsed)}{dedup}."
        )
    if st.outcome == "partial":
        return (
            f"Partly done: {st.answered:,} of {st.sent:,} sent rows answered, "
            f"{st.errored:,} failed{skipped}{rounds}; the failed rows carry their error in the "
            f"_status/_error columns."
        )
    if st.outcome == "failure":
        if st.sent == 0:
            return f"Nothing was sent: all {st.rows:,} rows were skipped (see the _error column)."
        reasons = sorted({b.status for b in st.current if b.status != "completed"})
        why = f" (batch {', '.join(reasons)})" if reasons else ""
        return f"Failed: none of the {st.sent:,} sent rows was answered{why}{rounds}."
    stage = _stage(st)
    if st.outcome == "submitting":
        if stage:  # a retry round sends the failed rows' requests again
            what = f"{stage}: {_plural(st.lines, st.unit[:-1])}"
        elif st.shared:
            what = f"{st.sent:,} rows as {_plural(st.requests or 0, 'request')}"
        else:
            what = f"{st.sent:,} rows"
        return f"Submitting {what} in {_plural(len(st.current), 'batch')}..."
    done = st.completed + st.failed
    eta = f", about {format_duration(st.eta)} left" if st.eta is not None else ""
    where = f" {stage}" if stage else ""
    return f"Running{where}: {done:,} of {st.lines:,} {st.unit} done{eta}."


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


def as_text(st: JobStatus) -> str:
    """The display as plain text (the ``text/plain`` an exported notebook keeps)."""
    head = f"zgpu job {st.job_id} · model {st.model}"
    counts = f"{st.rows:,} rows: {st.sent:,} sent, {st.skipped:,} skipped"
    if st.done:
        counts += f" · {st.answered:,} answered, {st.errored:,} failed"
    lines = [head, counts]
    if st.shared:
        lines.append(_first_upper(dedup_note(st)) + ".")
    lines.append(summary(st))
    return "\n".join(lines)


_COLOURS = {
    "success": "#1a7f37",
    "partial": "#bf8700",
    "failure": "#cf222e",
    "running": "#0969da",
    "submitting": "#0969da",
}
# Every cell of the batch table gets room on both sides, so columns never run together.
_CELL = "padding:2px 10px;border-bottom:1px solid #d0d7de"


def _batch_table(st: JobStatus) -> str:
    esc = html.escape
    right = f"{_CELL};text-align:right"
    with_round = any(b.round for b in st.batches)
    head = ["#", *(["round"] if with_round else []), "batch", "status", st.unit, "completed", "failed"]
    cells = "".join(
        f"<th style='{_CELL};text-align:{'left' if h in ('batch', 'status') else 'right'}'>{h}</th>"
        for h in head
    )
    body = "".join(
        f"<tr><td style='{right}'>{b.index + 1}</td>"
        + (f"<td style='{right}'>{b.round}</td>" if with_round else "")
        + f"<td style='{_CELL}'><code>{esc(b.id or '—')}</code></td>"
        f"<td style='{_CELL}'>{esc(b.status)}</td><td style='{right}'>{b.lines:,}</td>"
        f"<td style='{right}'>{b.completed:,}</td><td style='{right}'>{b.failed:,}</td></tr>"
        for b in st.batches
    )
    return f"<table style='border-collapse:collapse;margin:6px 0'><tr>{cells}</tr>{body}</table>"


def render_html(st: JobStatus) -> str:
    """The widget's content: job and model; rows sent and skipped (and the requests they
    make when rows share them); a bar of the latest round's completed and failed lines;
    each batch's status; elapsed time and time left; and the outcome."""
    esc = html.escape
    if st.done:  # the outcome, in rows
        total, ok, bad = max(st.sent, 1), st.answered, st.errored
    else:  # the latest round, as the service counts it
        total, ok, bad = max(st.lines, 1), st.completed, st.failed
    ok_pct = 100.0 * ok / total
    bad_pct = 100.0 * bad / total
    colour = _COLOURS[st.outcome]
    timing = f"elapsed {format_duration(st.elapsed)}"
    if not st.done:
        timing += f" · about {format_duration(st.eta)} left" if st.eta is not None else ""
    dedup = f"<div>{esc(_first_upper(dedup_note(st)))}.</div>" if st.shared else ""
    if st.done:
        counts = (
            f"{st.answered:,} answered · {st.errored:,} failed · {st.skipped:,} skipped"
        )
    else:
        stage = f"{_first_upper(_stage(st))}: " if st.round else ""
        counts = (
            f"{stage}{st.completed:,} completed · {st.failed:,} failed · "
            f"{max(st.lines - st.completed - st.failed, 0):,} to go ({st.unit})"
        )
    return (
        "<div class='zgpu-job' style='font-family:system-ui,sans-serif;font-size:13px;"
        "max-width:720px'>"
        f"<div><b>zgpu job</b> <code>{esc(st.job_id)}</code> · model <code>{esc(st.model)}</code>"
        "</div>"
        f"<div>{st.rows:,} rows: {st.sent:,} sent, {st.skipped:,} skipped · "
        f"{_plural(len(st.batches), 'batch')} · {timing}</div>{dedup}"
        "<div style='display:flex;height:14px;background:#eaeef2;border-radius:3px;"
        "overflow:hidden;margin:6px 0'>"
        f"<div title='completed' style='width:{ok_pct:.2f}%;background:#2da44e'></div>"
        f"<div title='failed' style='width:{bad_pct:.2f}%;background:#cf222e'></div></div>"
        f"<div class='zgpu-counts'>{counts}</div>"
        f"{_batch_table(st)}"
        f"<div class='zgpu-summary' style='color:{colour};font-weight:bold'>"
        f"{esc(summary(st))}</div></div>"
    )


class Progress(Protocol):
    """What a job talks to while it runs."""

    def update(self, status: JobStatus) -> None: ...

    def close(self, status: JobStatus | None) -> None: ...


class NullProgress:
    """Shows no progress. A note (:meth:`note`) is printed to stderr unless ``quiet``
    (``progress=False``), so a one-line message about the job is never lost."""

    background = False

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet

    def update(self, status: JobStatus) -> None:
        pass

    def close(self, status: JobStatus | None) -> None:
        pass

    def note(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)


class TqdmProgress:
    """A tqdm bar over the latest round (rows, or requests where rows share them), with the
    failed count and the time left.

    The job id and model get a line of their own when the bar starts: in the bar's label
    they would take ~50 of a terminal's 80 columns, leaving no room for the bar, the counts
    and the time left. ``ncols`` fixes the width (default: the terminal's, as it changes).
    """

    background = False
    # "zgpu: 45%|████▌     | 112/248 rows [00:05<00:06, 3 failed]": short label, no rate
    _FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}{postfix}]"

    def __init__(self, *, file: Any = None, ncols: int | None = None) -> None:
        self._bar: Any = None
        self._round = -1
        self._file = file
        self._ncols = ncols

    def _ensure(self, st: JobStatus) -> Any:
        if self._bar is not None and self._round == st.round:
            return self._bar
        from tqdm import tqdm

        if self._bar is None and self._round < 0:
            shared = f" as {_plural(st.requests or 0, 'request')}" if st.shared else ""
            self.note(f"zgpu job {st.job_id} · {st.model} · {st.sent:,} of {st.rows:,} rows sent{shared}")
        elif self._bar is not None:
            self._bar.close()  # a new retry round: a bar of its own
        self._round = st.round
        self._bar = tqdm(
            total=st.lines,
            desc=f"retry {st.round}" if st.round else "zgpu",
            unit=st.unit,
            bar_format=self._FORMAT,
            file=self._file,
            ncols=self._ncols,
            dynamic_ncols=self._ncols is None,
            leave=True,
        )
        return self._bar

    def update(self, st: JobStatus) -> None:
        bar = self._ensure(st)
        bar.total = st.lines
        bar.n = st.completed + st.failed
        bar.set_postfix_str(f"{st.failed:,} failed" if st.failed else "", refresh=False)
        bar.refresh()

    def note(self, text: str) -> None:
        """A line of text above the bar (or alone, before the bar exists)."""
        from tqdm import tqdm

        tqdm.write(text, file=self._file or sys.stderr)

    def close(self, st: JobStatus | None) -> None:
        if self._bar is None:
            return
        if st is not None:
            self.update(st)
        self._bar.close()
        if st is not None and st.done:
            self._bar.write(summary(st), file=self._file or sys.stderr)
        self._bar = None
        self._round = -1 if st is None else self._round


def in_notebook() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython), without importing IPython."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _has_ipywidgets() -> bool:
    return importlib.util.find_spec("ipywidgets") is not None


def make_progress(option: ProgressOption = None) -> Progress:
    """The display for ``option`` (see the module docstring)."""
    if option is False:
        return NullProgress(quiet=True)
    if option == "widget":
        from ._widget import WidgetProgress

        return WidgetProgress()
    if option == "tqdm":
        return TqdmProgress()
    if option is not None and option is not True:
        raise ValueError(f"progress must be None, True, False, 'widget' or 'tqdm', not {option!r}")
    if in_notebook():
        # without ipywidgets a notebook still shows tqdm's text bar
        if not _has_ipywidgets():
            return TqdmProgress()
        from ._widget import WidgetProgress

        return WidgetProgress()
    if option is True or _stderr_is_tty():
        return TqdmProgress()
    return NullProgress()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
