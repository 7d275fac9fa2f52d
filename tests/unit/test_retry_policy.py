"""The one retry policy and the one outage-tolerant wait (used by the client, the job and the
server's upstream engine)."""

from __future__ import annotations

import email.utils

import pytest

from zgpu_pandas._retry import (
    OUTAGE_GRACE_LOCAL,
    OUTAGE_GRACE_REMOTE,
    Outage,
    RetryPolicy,
    outage_grace,
    parse_retry_after,
    transient_status,
)
from zgpu_pandas.errors import OptionError


def test_backoff_doubles_with_full_jitter_up_to_the_cap() -> None:
    p = RetryPolicy(max_retries=6, base=0.5, cap=4.0)
    assert [p.delay(n, rand=lambda: 1.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert p.delay(3, rand=lambda: 0.25) == 1.0  # anywhere in [0, window)
    assert p.delay(6) is None


def test_retry_after_is_honoured_up_to_a_limit() -> None:
    give_up = RetryPolicy(max_retry_after=120.0)
    assert give_up.delay(0, retry_after=7.5) == 7.5
    assert give_up.delay(0, retry_after=3600.0) is None  # "come back later": say so
    wait = RetryPolicy(max_retry_after=60.0, long_retry_after="wait_max")
    assert wait.delay(0, retry_after=3600.0) == 60.0
    assert wait.delay(3, retry_after=1.0) is None  # retries used up all the same


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "12"}) == 12.0
    assert parse_retry_after({"retry-after": "-3"}) == 0.0
    date = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=lambda: 1_000_000.0) == 30.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


@pytest.mark.parametrize(
    ("status", "code", "transient"),
    [
        (408, None, True),
        (429, "rate_limit_exceeded", True),
        (429, None, True),
        (429, "insufficient_quota", False),
        (500, None, True),
        (503, None, True),
        (400, None, False),
        (404, None, False),
        (413, None, False),
    ],
)
def test_transient_statuses(status: int, code: str | None, transient: bool) -> None:
    assert transient_status(status, code) is transient


def test_outage_backs_off_then_gives_up_after_the_grace() -> None:
    now = [0.0]
    outage = Outage(grace=10.0, base=1.0, max_delay=3.0, clock=lambda: now[0])
    delays = []
    while (d := outage.failed()) is not None:
        delays.append(d)
        now[0] += d
    assert delays[:3] == [2.0, 3.0, 3.0] and sum(delays) == pytest.approx(10.0)
    assert outage.gone == pytest.approx(10.0)
    outage.ok()  # a poll got through: the next outage starts afresh
    assert outage.gone == 0.0 and outage.failed() == 2.0


def test_outage_grace_defaults_and_checks() -> None:
    assert outage_grace(None, is_local=True) == OUTAGE_GRACE_LOCAL
    assert outage_grace(None, is_local=False) == OUTAGE_GRACE_REMOTE
    assert outage_grace(5, is_local=True) == 5.0
    with pytest.raises(OptionError, match="outage_grace"):
        outage_grace(-1, is_local=True)
