"""One retry policy and one outage-tolerant wait, shared by the client, the job and the local
server's upstream engine.

A leaf module (the standard library only), so that the server can use it without importing
the client, and the client without importing the server.

- :class:`RetryPolicy` says how long to wait before attempt ``n + 1``: the service's
  ``Retry-After`` when it gave one (up to a limit), else exponential backoff with full jitter
  (clients that failed together do not come back together).
- :func:`parse_retry_after` reads ``Retry-After-Ms``, ``Retry-After`` in seconds or as an
  HTTP date.
- :func:`transient_status` says which HTTP statuses are worth another try.
- :class:`Outage` rides out a service that cannot be reached while polling something that
  keeps running anyway (a batch): polls back off, and the wait gives up only after a grace
  period (:data:`OUTAGE_GRACE_LOCAL` for a loopback server, which is back soon or gone;
  :data:`OUTAGE_GRACE_REMOTE` for a remote one, whose outage of minutes must not end a wait on
  batches that run for hours).

Example::

    >>> policy = RetryPolicy(max_retries=2, base=0.5, cap=4.0)
    >>> policy.delay(0, rand=lambda: 1.0), policy.delay(1, rand=lambda: 0.5)
    (0.5, 0.5)
    >>> policy.delay(2) is None                   # retries used up
    True
    >>> policy.delay(0, retry_after=3.0)          # the service said when
    3.0
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "OUTAGE_GRACE_LOCAL",
    "OUTAGE_GRACE_REMOTE",
    "Outage",
    "RetryPolicy",
    "outage_grace",
    "parse_retry_after",
    "transient_status",
]

#: How long waiting rides out an unreachable loopback server (seconds).
OUTAGE_GRACE_LOCAL = 30.0
#: How long waiting rides out an unreachable remote service (seconds).
OUTAGE_GRACE_REMOTE = 600.0


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again, and after how long.

    ``max_retries`` retries after the first attempt. Attempt ``n`` (0-based) waits
    ``uniform(0, min(cap, base * 2**n))`` seconds, or the ``Retry-After`` the service sent.
    A ``Retry-After`` above ``max_retry_after`` is a "come back later", not a hiccup:
    ``long_retry_after="give_up"`` stops retrying (a notebook call says so instead of
    freezing for an hour); ``"wait_max"`` waits ``max_retry_after`` and tries again (a
    server working through a batch has the time).
    """

    max_retries: int = 3
    base: float = 0.5
    cap: float = 20.0
    max_retry_after: float = 120.0
    long_retry_after: Literal["give_up", "wait_max"] = "give_up"

    def delay(
        self,
        attempt: int,
        *,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``; ``None``: do not retry."""
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            if retry_after <= self.max_retry_after:
                return float(retry_after)
            return None if self.long_retry_after == "give_up" else self.max_retry_after
        return rand() * min(self.cap, self.base * (2**attempt))


def transient_status(status: int, code: str | None = None) -> bool:
    """An HTTP error that may pass on its own: 408, every 5xx, and a 429 unless its code
    says the account is out of credit (``insufficient_quota``: waiting does not help).

    Example::

        >>> transient_status(503), transient_status(429, "insufficient_quota")
        (True, False)
    """
    if status == 429:
        return code != "insufficient_quota"
    return status == 408 or status >= 500


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds the service asks to wait: ``retry-after-ms``, else ``retry-after`` as seconds
    or as an HTTP date; ``None`` when absent or unreadable. Never negative.

    Example::

        >>> parse_retry_after({"retry-after": "2"}), parse_retry_after({"retry-after-ms": "250"})
        (2.0, 0.25)
    """
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now())


def outage_grace(given: float | None, *, is_local: bool) -> float:
    """The grace period to use: ``given`` (checked), else the default for the host."""
    if given is not None:
        if not given >= 0:
            from .errors import OptionError

            raise OptionError(f"outage_grace must be a number of seconds >= 0, not {given!r}")
        return float(given)
    return OUTAGE_GRACE_LOCAL if is_local else OUTAGE_GRACE_REMOTE


class Outage:
    """One outage while polling: how long it has lasted, and when to poll next.

    Call :meth:`failed` after a poll that could not reach the service (each poll already
    retried on its own): it returns the delay before the next poll, backing off from
    ``base`` up to ``max(base, max_delay)``, or ``None`` once the outage has lasted
    ``grace`` seconds. Call :meth:`ok` after a poll that worked.

    Example::

        outage = Outage(grace=30.0, base=0.2)
        while True:
            try:
                batch = poll()
            except ConnectionError:
                delay = outage.failed()
                if delay is None:
                    raise
                time.sleep(delay)
                continue
            outage.ok()
            ...
    """

    def __init__(
        self,
        *,
        grace: float,
        base: float,
        max_delay: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grace = grace
        self.base = base
        self.max_delay = max(base, max_delay)
        self._clock = clock
        self._since: float | None = None
        self._failures = 0

    @property
    def gone(self) -> float:
        """Seconds since the first failed poll of this outage (0 when there is none)."""
        return 0.0 if self._since is None else self._clock() - self._since

    def ok(self) -> None:
        self._since, self._failures = None, 0

    def failed(self) -> float | None:
        now = self._clock()
        if self._since is None:
            self._since = now
        gone = now - self._since
        if gone >= self.grace:
            return None
        self._failures += 1
        return min(self.base * 2**self._failures, self.max_delay, self.grace - gone)
