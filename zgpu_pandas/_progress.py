"""Showing a job's progress: a live widget in Jupyter, a tqdm bar in a terminal, or nothing.

The choice is made once per job (like ``tqdm.auto``): ``progress=None`` picks the widget when
the code runs in a Jupyter kernel (tqdm's text bar there if ipywidgets is not installed), a
tqdm bar when stderr is a terminal, else nothing; ``True`` forces a display (widget or bar),
``False`` silence, and ``"widget"`` / ``"tqdm"`` one of them. ipywidgets is imported only when a widget is shown, so
a script never pays for it.

Everything shown is rendered from a :class:`JobStatus` snapshot by pure functions
(:func:`render_html`, :func:`summary`), which is also what ``BatchJob._repr_html_`` shows.

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
    "format_duration",
    "make_progress",
    "render_html",
    "summary",
]

Outcome = Literal["submitting", "running", "success", "partial", "failure"]
ProgressOption = bool | Literal["widget", "tqdm"] | None


@dataclass(frozen=True)
class BatchState:
    """One batch of a job as last seen (``id`` is ``None`` until it is created)."""

    index: int
    id: str | None
    status: str  # "not submitted" until created, then the service's status
    lines: int  # request lines it carries
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job: what the widget, the bar and ``job.status()`` show.

    ``outcome`` is ``running`` until every batch is terminal and its results are in, then
    ``success`` (every sent row answered), ``partial`` or ``failure`` (no row answered).
    ``completed``/``failed`` count request lines; ``answered``/``errored`` count rows in the
    results once they are in. ``eta`` is seconds left (``None`` while unknown).
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

    @property
    def completed(self) -> int:
        return sum(b.completed for b in self.batches)

    @property
    def failed(self) -> int:
        return sum(b.failed for b in self.batches)

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


def summary(st: JobStatus) -> str:
    """One line that says plainly where the job stands."""
    skipped = f", {st.skipped:,} skipped" if st.skipped else ""
    if st.outcome == "success":
        return (
            f"Done: all {st.sent:,} sent rows answered{skipped} in {format_duration(st.elapsed)}."
        )
    if st.outcome == "partial":
        return (
            f"Partly done: {st.answered:,} rows answered, {st.errored:,} failed{skipped}; "
            f"the failed rows carry their error in the _status/_error columns."
        )
    if st.outcome == "failure":
        if st.sent == 0:
            return f"Nothing was sent: all {st.rows:,} rows were skipped (see the _error column)."
        reasons = sorted({b.status for b in st.batches if b.status != "completed"})
        why = f" (batch {', '.join(reasons)})" if reasons else ""
        return f"Failed: none of the {st.sent:,} sent rows was answered{why}."
    if st.outcome == "submitting":
        return f"Submitting {st.sent:,} rows in {len(st.batches)} batch(es)..."
    done = st.completed + st.failed
    eta = f", about {format_duration(st.eta)} left" if st.eta is not None else ""
    return f"Running: {done:,} of {st.sent:,} lines done{eta}."


_COLOURS = {
    "success": "#1a7f37",
    "partial": "#bf8700",
    "failure": "#cf222e",
    "running": "#0969da",
    "submitting": "#0969da",
}


def render_html(st: JobStatus) -> str:
    """The widget's content: job and model, rows, batches, a bar of completed and failed
    lines, each batch's status, elapsed time and time left, and the outcome."""
    esc = html.escape
    total = max(st.sent, 1)
    ok_pct = 100.0 * st.completed / total
    bad_pct = 100.0 * st.failed / total
    colour = _COLOURS[st.outcome]
    rows = "".join(
        f"<tr><td>{b.index + 1}</td><td><code>{esc(b.id or '—')}</code></td>"
        f"<td>{esc(b.status)}</td><td style='text-align:right'>{b.completed:,}</td>"
        f"<td style='text-align:right'>{b.failed:,}</td>"
        f"<td style='text-align:right'>{b.lines:,}</td></tr>"
        for b in st.batches
    )
    timing = f"elapsed {format_duration(st.elapsed)}"
    if not st.done:
        timing += f" · about {format_duration(st.eta)} left" if st.eta is not None else ""
    return (
        "<div style='font-family:system-ui,sans-serif;font-size:13px;max-width:720px'>"
        f"<div><b>zgpu job</b> <code>{esc(st.job_id)}</code> · model <code>{esc(st.model)}</code>"
        "</div>"
        f"<div>{st.rows:,} rows: {st.sent:,} sent, {st.skipped:,} skipped · "
        f"{len(st.batches)} batch(es) · {timing}</div>"
        "<div style='display:flex;height:14px;background:#eaeef2;border-radius:3px;"
        "overflow:hidden;margin:6px 0'>"
        f"<div title='completed' style='width:{ok_pct:.2f}%;background:#2da44e'></div>"
        f"<div title='failed' style='width:{bad_pct:.2f}%;background:#cf222e'></div></div>"
        f"<div>{st.completed:,} completed · {st.failed:,} failed · "
        f"{max(st.sent - st.completed - st.failed, 0):,} to go</div>"
        "<table style='border-collapse:collapse;margin:6px 0'>"
        "<tr><th>#</th><th>batch</th><th>status</th><th>completed</th><th>failed</th>"
        f"<th>lines</th></tr>{rows}</table>"
        f"<div style='color:{colour};font-weight:bold'>{esc(summary(st))}</div></div>"
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
    """A tqdm bar over request lines, with ok/failed counts and the batches' statuses."""

    background = False

    def __init__(self, *, file: Any = None) -> None:
        self._bar: Any = None
        self._file = file

    def _ensure(self, st: JobStatus) -> Any:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=st.sent,
                desc=f"{st.job_id} {st.model}",
                unit="line",
                file=self._file,
                dynamic_ncols=True,
                leave=True,
            )
        return self._bar

    def update(self, st: JobStatus) -> None:
        bar = self._ensure(st)
        bar.n = st.completed + st.failed
        statuses = ",".join(b.status for b in st.batches)
        bar.set_postfix_str(f"ok={st.completed:,} failed={st.failed:,} batches={statuses}")

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


class WidgetProgress:
    """An ipywidgets HTML widget updated in place (ipywidgets imported here, not before)."""

    background = True  # a non-blocking job keeps it updating from a thread

    def __init__(self) -> None:
        import ipywidgets
        from IPython.display import display

        self.widget = ipywidgets.HTML()
        self._shown = False
        self._display = display
        self._notes: list[str] = []
        self._last: JobStatus | None = None

    def _render(self) -> str:
        notes = "".join(f"<div>{html.escape(n)}</div>" for n in self._notes)
        return notes + (render_html(self._last) if self._last is not None else "")

    def update(self, st: JobStatus) -> None:
        self._last = st
        self.widget.value = self._render()
        if not self._shown:
            self._display(self.widget)
            self._shown = True

    def note(self, text: str) -> None:
        """A line shown above the job's status, kept there."""
        self._notes.append(text)
        self.widget.value = self._render()
        if not self._shown:
            self._display(self.widget)
            self._shown = True

    def close(self, st: JobStatus | None) -> None:
        if st is not None:
            self.update(st)


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
        return WidgetProgress()
    if option == "tqdm":
        return TqdmProgress()
    if option is not None and option is not True:
        raise ValueError(f"progress must be None, True, False, 'widget' or 'tqdm', not {option!r}")
    if in_notebook():
        # without ipywidgets a notebook still shows tqdm's text bar
        return WidgetProgress() if _has_ipywidgets() else TqdmProgress()
    if option is True or _stderr_is_tty():
        return TqdmProgress()
    return NullProgress()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
