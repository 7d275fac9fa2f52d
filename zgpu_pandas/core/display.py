"""What a job shows while it runs: its progress display (a widget, a tqdm bar, or nothing),
notes, and the watcher thread that keeps a notebook widget live while the kernel is free.
The widget gives each notebook cell that waits on the job a display of its own and freezes
it when that cell's call ends (see :mod:`zgpu_pandas._widget`).

A display that breaks never costs a paid-for job: it is replaced by a silent one.

Example::

    display = JobDisplay(make_progress(None))
    display.update(status)
    display.note("Resumed job ... from the journal")
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .._progress import JobStatus, NullProgress, Progress

__all__ = ["JobDisplay"]

logger = logging.getLogger("zgpu_pandas.job")


class JobDisplay:
    """A job's progress display, made safe."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._watcher: threading.Thread | None = None

    @property
    def watching(self) -> bool:
        return self._watcher is not None

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the watcher thread to end; True when it has (or there is none)."""
        if self._watcher is None:
            return True
        self._watcher.join(timeout)
        return not self._watcher.is_alive()

    def update(self, st: JobStatus) -> None:
        try:
            self.progress.update(st)
        except Exception:  # a broken display must never cost a paid-for job
            self.progress = NullProgress()

    def close(self, st: JobStatus | None) -> None:
        """The call that showed the job ended (the widget freezes its display into a
        static snapshot; the bar closes)."""
        try:
            self.progress.close(st)
        except Exception:  # a broken display must never cost a paid-for job
            self.progress = NullProgress()

    def note(self, text: str) -> None:
        """Log one line (``zgpu_pandas`` logger, INFO) and show it (the widget keeps it above
        the status; the tqdm bar writes it; with no display it is printed to stderr unless
        ``progress=False``)."""
        logger.info("%s", text)
        show = getattr(self.progress, "note", None)
        if show is None:
            return
        try:
            show(text)
        except Exception:  # a broken display must never cost a paid-for job
            self.progress = NullProgress(quiet=True)

    def watch(
        self,
        name: str,
        poll: Callable[[], JobStatus],
        fallback: Callable[[], JobStatus],
        interval: Callable[[], float],
    ) -> None:
        """Keep the display updating from a daemon thread until the job is done (for the
        notebook widget of a non-blocking job); only displays that update in the background
        are watched."""
        if self._watcher is not None or not getattr(self.progress, "background", False):
            return

        def run() -> None:
            while True:
                try:
                    st = poll()
                except Exception:  # the next poll or the user's own call will say what broke
                    st = fallback()
                self.update(st)
                if st.done:
                    self.close(st)
                    return
                time.sleep(interval())

        self._watcher = threading.Thread(target=run, name=name, daemon=True)
        self._watcher.start()
