"""``zgpu_pandas.local_server()``: the in-process server behind ``base_url="local"``, tuned.

``base_url="local"`` starts one ZeroGPU-compatible server per process on first use. To
rehearse a job the way it will go on the real service (batches that take time, lines that
fail and are retried), that same server is configured here rather than by starting another
one and passing its URL around: ``latency`` applies to the batches created from then on,
and ``faults`` is the live fault injector (``fail_lines``, ``clear``), effective at once.

Example::

    import zgpu_pandas
    srv = zgpu_pandas.local_server(latency=0.05)          # 50 ms per line from now on
    srv.faults.fail_lines(code="internal_error", rate=0.1, count=20)
    out = df.zgpu.batch_chat("review", model="LFM2.5-1.2B-Instruct", base_url="local",
                             retries=2)
    srv.faults.clear()
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from .errors import OptionError

if TYPE_CHECKING:
    from .server import LocalServer

__all__ = ["local_server"]


def local_server(*, latency: float | None = None) -> LocalServer:
    """The shared local server (started if it is not running yet), with ``latency``
    seconds spent per request line in the batches created from now on (``None``: leave it
    as it is; ``0``: answer at once). Its ``faults`` inject failures; ``url`` is where it
    listens; ``request_log`` lists the requests it served."""
    if latency is not None and (
        isinstance(latency, bool)
        or not isinstance(latency, int | float)
        or not math.isfinite(latency)
        or latency < 0
    ):
        raise OptionError(f"latency= must be a number of seconds >= 0, not {latency!r}.")
    from .server import shared_local_server

    srv = shared_local_server()
    if latency is not None:
        # each batch makes its engine from the config when it starts (server/app.py)
        srv.config.latency = float(latency)
    return srv
