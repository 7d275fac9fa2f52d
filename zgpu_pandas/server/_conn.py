"""Connection timeouts below the ASGI app: a connection that never finishes sending a
request head is closed.

uvicorn times out a connection that is idle *between* requests (its keep-alive timeout), but
not one that connects and sends nothing, or half a request head, or half a body: enough of
those would hold every file descriptor and lock every user out. This module covers the head
(uvicorn's HTTP protocol, subclassed); the body is covered in the middleware
(:mod:`zgpu_pandas.server._http`), which answers 408 when no byte of it arrives in time.

Example::

    uvicorn.Config(app, http=guarded_protocol(30.0))
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["guarded_protocol"]


def guarded_protocol(head_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class, closing a connection whose next request head is not
    complete ``head_timeout`` seconds after the connection opened or its last response
    ended."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol

    class GuardedProtocol(base):
        _zgpu_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._zgpu_arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._zgpu_arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._zgpu_cancel()
            super().connection_lost(exc)

        def _zgpu_cancel(self) -> None:
            if self._zgpu_timer is not None:
                self._zgpu_timer.cancel()
                self._zgpu_timer = None

        def _zgpu_arm(self) -> None:
            # Both of uvicorn's protocols make a new ``cycle`` once a request head is
            # complete: the same cycle at expiry means no new request arrived in time.
            self._zgpu_cancel()
            self._zgpu_timer = self.loop.call_later(
                head_timeout, self._zgpu_expire, getattr(self, "cycle", None)
            )

        def _zgpu_expire(self, cycle: Any) -> None:
            self._zgpu_timer = None
            transport = getattr(self, "transport", None)
            now = getattr(self, "cycle", None)
            # No new request since arming, and none in flight (a pipelined request may be
            # the current cycle already; a body in flight is timed by the middleware).
            idle = now is cycle and (now is None or getattr(now, "response_complete", True))
            if idle and transport is not None and not transport.is_closing():
                transport.close()

    GuardedProtocol.__name__ = GuardedProtocol.__qualname__ = f"Guarded{base.__name__}"
    return GuardedProtocol
