"""Key rotation without a restart: the keys file is read again when it changes (its
modification time, size or inode; checked every ``interval`` seconds) or on ``SIGHUP``, and
the server's accepted keys are swapped in one assignment, so a request sees either the old
list or the new one. A file that cannot be read or holds no key keeps the old list (with a
warning): a half-written file must not lock everyone out, nor let anyone in.

Example::

    reloader = KeyReloader(ctx, path="keys.txt", load=lambda: read_keys("keys.txt"))
    reloader.start()          # and reloader.reload_soon() from a SIGHUP handler
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import ServerContext

__all__ = ["KeyReloader"]

log = logging.getLogger("zgpu_pandas.server")


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class KeyReloader:
    """Watches ``path`` and sets ``ctx.key_projects = load()`` when it changes."""

    def __init__(
        self, ctx: ServerContext, *, path: str, load: Callable[[], Any], interval: float = 2.0
    ) -> None:
        self.ctx = ctx
        self.path = path
        self.load = load
        self.interval = interval
        self._stamp = _stamp(path)
        self._now = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0  # successful reloads (for tests and the log)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="zgpu-keys", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._now.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def reload_soon(self) -> None:
        """Ask for a reload now (safe from a signal handler: it only sets an event)."""
        self._now.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            forced = self._now.wait(self.interval if self.interval > 0 else None)
            self._now.clear()
            if self._stop.is_set():
                return
            stamp = _stamp(self.path)
            if forced or stamp != self._stamp:
                self._stamp = stamp
                self.reload(why="SIGHUP" if forced else "the file changed")

    def reload(self, *, why: str) -> bool:
        try:
            keys = self.load()
        except ValueError as exc:  # messages never hold a key
            log.warning("keys file %s not reloaded (%s): %s; the keys in use are kept",
                        self.path, why, exc)
            return False
        self.ctx.key_projects = keys
        self.reloads += 1
        log.warning("keys file %s reloaded (%s): %d key(s) accepted", self.path, why,
                    len(keys or {}))
        return True
