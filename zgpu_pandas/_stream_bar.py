"""One progress bar for a whole streaming job (:mod:`._stream_run`), over the input's rows.

While the whole input is checked before the run (:mod:`._stream_check`) the bar counts the
rows checked; then it starts again over the total the check found, says which part's batches
are being created, and advances as the parts are collected and written. ``progress=False`` (``-q``) shows nothing; ``None`` shows the bar
when stderr is a terminal or in a notebook; ``True``/``"tqdm"``/``"widget"`` always.

Example::

    with RowsBar(total=None, progress=None) as bar:
        bar.stage("checking")
        bar.advance(120_000)
        bar.restart(120_000)
        bar.stage("creating batches", "part 1/3")
        bar.advance(50_000)
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._progress import ProgressOption

__all__ = ["RowsBar"]


def _shown(progress: ProgressOption) -> bool:
    from ._progress import _stderr_is_tty, in_notebook

    if progress is False:
        return False
    if progress is None:
        return in_notebook() or _stderr_is_tty()
    if progress in (True, "tqdm", "widget"):
        return True
    raise ValueError(f"progress must be None, True, False, 'widget' or 'tqdm', not {progress!r}")


class RowsBar:
    """A tqdm bar over ``total`` rows, or nothing at all when progress is off."""

    def __init__(self, *, total: int | None, progress: ProgressOption) -> None:
        self._bar: Any = None
        if _shown(progress):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit=" rows", unit_scale=True, dynamic_ncols=True)

    def restart(self, total: int) -> None:
        """From 0 again over ``total`` rows (the check counted them; now the run)."""
        if self._bar is not None:
            self._bar.reset(total=total)

    def stage(self, what: str, detail: str = "") -> None:
        """What the run is doing now (shown before the count) and which part."""
        if self._bar is not None:
            self._bar.set_description_str(what, refresh=False)
            self._bar.set_postfix_str(detail)

    def advance(self, rows: int) -> None:
        if self._bar is not None and rows:
            self._bar.update(rows)

    def write(self, text: str) -> None:
        """A line on stderr, above the bar when there is one (not through it)."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> RowsBar:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and self._bar is not None:
            self._bar.leave = False  # the error's one line, not a half-done bar above it
        self.close()
