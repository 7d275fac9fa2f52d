"""``GET /readyz``: may this server take work now? Its data directory must be writable and
its upstream (with ``engine="upstream"``) must answer and accept the key (the probe of
``serve --check``). The upstream's answer is kept for a few seconds, so a load balancer
probing every second costs the upstream one request per ``_UPSTREAM_TTL``.

Example::

    ok, checks = await readiness(ctx)   # (False, {"data_dir": "ok", "upstream": "cannot reach ..."})
"""

from __future__ import annotations

import tempfile
import time
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool

from ._check import CheckFailed, probe_upstream

if TYPE_CHECKING:
    from .app import ServerContext

__all__ = ["readiness"]

_UPSTREAM_TTL = 10.0  # seconds an upstream probe's answer is reused
_PROBE_TIMEOUT = 5.0


def _data_dir_problem(ctx: ServerContext) -> str | None:
    try:
        with tempfile.NamedTemporaryFile(dir=ctx.store.tmp_dir, prefix="readyz-"):
            pass
    except OSError as exc:
        return f"data dir {ctx.data_dir} is not writable ({exc.strerror or exc})"
    return None


def _upstream_problem(ctx: ServerContext) -> str | None:
    cfg = ctx.config
    assert cfg.upstream_url is not None
    try:
        probe_upstream(cfg.upstream_url, api_key=cfg.upstream_api_key,
                       headers=cfg.upstream_headers, ssl_context=cfg.ssl_context(),
                       timeout=min(cfg.upstream_timeout, _PROBE_TIMEOUT))
    except CheckFailed as exc:
        return str(exc)
    return None


async def readiness(ctx: ServerContext) -> tuple[bool, dict[str, str]]:
    """``(ready, {check: "ok" or the problem})``."""
    checks: dict[str, str] = {}
    problem = await run_in_threadpool(_data_dir_problem, ctx)
    checks["data_dir"] = problem or "ok"
    if ctx.config.engine == "upstream":
        cached = ctx.upstream_probe
        now = time.monotonic()
        if cached is None or now - cached[0] > _UPSTREAM_TTL:
            cached = (now, await run_in_threadpool(_upstream_problem, ctx))
            ctx.upstream_probe = cached
        checks["upstream"] = cached[1] or "ok"
    else:
        checks["upstream"] = "not used (built-in engine)"
    ready = all(v == "ok" or v.startswith("not used") for v in checks.values())
    return ready, checks
