"""The notebook widget: one live display per cell that waits on a job, left as static HTML
when its call ends.

Each notebook cell that shows a job (``batch_chat``, ``submit_chat``, and a later
``job.result()`` or ``job.retry()``) gets a display of its own, in its own output: an
ipywidgets ``HTML`` widget updated in place while the call runs. When the call ends, the
display is replaced (``update_display``, by its display id) with a static snapshot of the
final state, as ``text/html`` and a readable ``text/plain``. So a display is frozen as it
was when its call finished (a retry in a later cell never redraws it), and a notebook saved
or exported without a kernel (nbconvert, GitHub) still shows the outcome rather than a
blank area or ``HTML(value=...)``. A display frozen while another cell starts waiting on
the same job stays as it was.

Who is calling decides which display an update goes to: the kernel's main thread works
for the cell being run; a background thread (the watcher that keeps a non-blocking job's
display live while the kernel is free) keeps the display that was newest when it started.

ipywidgets and IPython are imported here, when a widget is first made, never before.

Example::

    display = WidgetProgress()         # in a notebook cell
    display.update(job.status())       # shown in this cell, updated in place
    display.close(job.status())        # frozen: static HTML and text from now on
"""

from __future__ import annotations

import html
import itertools
import sys
import threading
from typing import Any

from ._progress import JobStatus, as_text, render_html

__all__ = ["WidgetProgress"]

_ids = itertools.count(1)


class _View:
    """One display in one cell: its widget, notes and last status, live or frozen."""

    def __init__(self, widget: Any, key: object, display_id: str) -> None:
        self.widget = widget
        self.key = key
        self.display_id = display_id
        self.notes: list[str] = []
        self.last: JobStatus | None = None
        self.shown = False  # displayed in its cell
        self.frozen = False  # its call ended: updates from a background thread are ignored
        self.static = False  # the front end shows the snapshot, not the widget

    def _stale(self) -> str:
        """Under a snapshot taken before the job was done: where the rest is."""
        if not self.frozen or self.last is None or self.last.done:
            return ""
        return "This display stopped when its call returned; job.result() waits for the rest."

    def html(self) -> str:
        notes = "".join(f"<div>{html.escape(n)}</div>" for n in self.notes)
        stale = self._stale()
        tail = f"<div style='color:#57606a'>{html.escape(stale)}</div>" if stale else ""
        return notes + (render_html(self.last) if self.last is not None else "") + tail

    def text(self) -> str:
        lines = [*self.notes, as_text(self.last) if self.last is not None else "", self._stale()]
        return "\n".join(x for x in lines if x)


class WidgetProgress:
    """The job's displays in a notebook, one per calling cell (see the module docstring)."""

    background = True  # a non-blocking job keeps it updating from a thread

    def __init__(self) -> None:
        import ipywidgets
        from IPython.display import display, update_display

        self._html = ipywidgets.HTML
        # replaceable, so the widget can be driven with no notebook front end; outside
        # IPython there is nowhere to show it (display() would print the bundle)
        from IPython import get_ipython

        shown = get_ipython() is not None
        self._display = display if shown else _nowhere
        self._update_display = update_display if shown else _nowhere
        self._views: list[_View] = []
        # a background thread keeps its display (keyed by the thread itself: idents are reused)
        self._threads: dict[threading.Thread, _View] = {}
        self._lock = threading.RLock()

    @property
    def widget(self) -> Any:
        """The newest display's widget (``None`` before anything is shown)."""
        return self._views[-1].widget if self._views else None

    @property
    def views(self) -> int:
        """How many displays were shown (one per cell that showed the job)."""
        return len(self._views)

    # ---- the Progress protocol -----------------------------------------------------------

    def update(self, st: JobStatus) -> None:
        with self._lock:
            view = self._view()
            if view is None:
                return
            view.last = st
            self._show(view)

    def note(self, text: str) -> None:
        """A line shown above the job's status, kept there (also in the frozen snapshot)."""
        with self._lock:
            view = self._view(for_note=True)
            if view is None:
                return
            view.notes.append(text)
            if view.frozen:
                self._freeze(view)  # the snapshot again, with the note
            else:
                self._show(view)

    def close(self, st: JobStatus | None) -> None:
        """The calling cell's call ended: show ``st`` (if given), then freeze its display."""
        with self._lock:
            view = self._view(for_note=True)
            if view is None:
                return
            if st is not None:
                view.last = st
                if not view.shown:
                    self._show(view)
            if view.shown:
                self._freeze(view)

    # ---- which display a caller gets ----------------------------------------------------

    def _view(self, *, for_note: bool = False) -> _View | None:
        """The display for the caller: a background thread keeps the one it started with
        (``None`` once that is frozen: the cell's call already ended); the cell being run
        gets its own, made on first use and made live again when a call in the same cell
        goes on after an earlier one ended (a retry round of ``result()``)."""
        thread = threading.current_thread()
        if thread is not threading.main_thread():
            view = self._threads.get(thread)
            if view is None:
                view = self._views[-1] if self._views else self._new(("thread", id(thread)))
                self._threads[thread] = view
            return None if view.frozen and not for_note else view
        key = _cell_key()
        mine = [v for v in self._views if v.key == key]
        if mine:
            view = mine[-1]
            if view.frozen and not for_note:
                view.frozen = False  # live again: the bundle with the widget is shown below
            return view
        for other in self._views:  # a new cell waits on the job: the others stay as they are
            if not other.frozen and other.shown and other not in self._threads.values():
                self._freeze(other)
        return self._new(key)

    def _new(self, key: object) -> _View:
        view = _View(self._html(), key, f"zgpu-{next(_ids)}-{id(self):x}")
        self._views.append(view)
        return view

    # ---- what is sent to the front end --------------------------------------------------

    def _show(self, view: _View) -> None:
        view.widget.value = view.html()
        bundle = {
            # what ipywidgets 8 shows for a widget, with readable text instead of its repr
            "application/vnd.jupyter.widget-view+json": {
                "version_major": 2,
                "version_minor": 0,
                "model_id": view.widget.model_id,
            },
            "text/plain": view.text(),
        }
        if not view.shown:
            view.shown = True
            self._display(bundle, raw=True, display_id=view.display_id)
        elif view.static:
            view.static = False
            self._update_display(bundle, raw=True, display_id=view.display_id)

    def _freeze(self, view: _View) -> None:
        # The widget model stays alive (never closed): were the update lost on its way, the
        # live view would still show the final state.
        view.frozen = view.static = True
        view.widget.value = view.html()
        bundle = {"text/html": view.html(), "text/plain": view.text()}
        self._update_display(bundle, raw=True, display_id=view.display_id)


def _nowhere(*objs: Any, **kw: Any) -> None:
    pass


def _cell_key() -> object:
    """What identifies the cell being run: its execute request's id (the execution count
    outside a kernel that has one)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return None
    parent = getattr(shell, "parent_header", None)
    if isinstance(parent, dict):
        msg_id = (parent.get("header") or {}).get("msg_id") or parent.get("msg_id")
        if msg_id:
            return msg_id
    return getattr(shell, "execution_count", None)
