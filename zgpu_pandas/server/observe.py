"""What a server tells its operator: Prometheus metrics, one structured log line per API
request, and rate-limited log lines for upstream errors and failed batch lines.

One :class:`Observer` per server (its own metric registry, so several servers in one
process never mix their numbers). The HTTP middleware reports each request, the upstream
engine each call and failed attempt, the batch runs each finished line; queue depth and
batch counts are read from the store when ``/metrics`` is scraped.

Log lines go to the ``zgpu_pandas.server`` loggers: ``...access`` (one per API request:
request id, method, route, status, latency, project, key id, batch id), ``...upstream``
(one per failed upstream attempt) and ``...lines`` (one per failed batch line). A key id is
the first 8 hex digits of the key's SHA-256: enough to tell keys apart in a log, never the
key. With ``json=True`` (``serve --log-format json``) every line is a JSON object.

Example::

    obs = Observer(store=store)
    text = obs.exposition()          # the /metrics body
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .store import ACTIVE_STATUSES, Store

__all__ = ["JsonFormatter", "Observer", "key_id", "route_of"]

access_log = logging.getLogger("zgpu_pandas.server.access")
upstream_log = logging.getLogger("zgpu_pandas.server.upstream")
lines_log = logging.getLogger("zgpu_pandas.server.lines")

#: error codes a batch's end gives its unfinished lines: counted, not logged line by line
_BATCH_ENDINGS = frozenset({"batch_cancelled", "batch_expired"})
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 600.0)


def key_id(key: str) -> str:
    """A short, stable id of an API key for logs (never the key itself)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def route_of(path: str) -> str:
    """The route template of ``path`` (``/v1/files/{id}``): a metric label must not hold
    ids, or every file and batch would start a new time series."""
    parts = path.split("/")
    if len(parts) < 3 or parts[1] != "v1":
        return path if path in ("/healthz", "/readyz", "/metrics") else "other"
    kind = parts[2]
    if kind not in ("files", "batches", "chat") or len(parts) > 5:
        return "other"
    if kind == "chat":
        return "/v1/chat/completions" if path == "/v1/chat/completions" else "other"
    out = f"/v1/{kind}"
    if len(parts) >= 4 and parts[3]:
        out += "/{file_id}" if kind == "files" else "/{batch_id}"
    if len(parts) == 5:
        out += f"/{parts[4]}" if parts[4] in ("content", "cancel") else "/other"
    return out


def batch_of(path: str) -> str | None:
    parts = path.split("/")
    return parts[3] if len(parts) >= 4 and parts[:3] == ["", "v1", "batches"] and parts[3] else None


class _Limiter:
    """At most ``burst`` lines at once and ``rate`` a second after that; the lines left out
    are counted and said with the next line that gets through."""

    def __init__(self, *, burst: int = 20, rate: float = 1.0) -> None:
        self.burst = float(burst)
        self.rate = rate
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._dropped = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """``None`` when this line must be left out, else how many were left out before."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens < 1:
                self._dropped += 1
                return None
            self._tokens -= 1
            dropped, self._dropped = self._dropped, 0
            return dropped


class _StoreCollector(Collector):
    """Queue depth by project and batches by status, read from the store at scrape time
    (the numbers the API shows, so they can never drift from them)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def describe(self) -> list[GaugeMetricFamily]:
        # without this the registry would collect (query the store) at registration,
        # before the store is open
        return [GaugeMetricFamily("zgpu_server_queue_lines", "", labels=["project"]),
                GaugeMetricFamily("zgpu_server_batches", "", labels=["status"])]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queue = GaugeMetricFamily(
            "zgpu_server_queue_lines", "Lines of active batches not finished yet, by project",
            labels=["project"],
        )
        batches = GaugeMetricFamily(
            "zgpu_server_batches", "Batches by status", labels=["status"]
        )
        marks = ",".join("?" * len(ACTIVE_STATUSES))
        c = self.store.conn
        for row in c.execute(
            f"SELECT project, SUM(total - completed - failed) AS n FROM batches"
            f" WHERE status IN ({marks}) GROUP BY project", ACTIVE_STATUSES,
        ).fetchall():
            queue.add_metric([row["project"]], max(0, int(row["n"] or 0)))
        for row in c.execute("SELECT status, COUNT(*) AS n FROM batches GROUP BY status"):
            batches.add_metric([row["status"]], int(row["n"]))
        yield queue
        yield batches


class Observer:
    """The metrics and logs of one server (see the module docstring)."""

    def __init__(self, *, store: Store) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("zgpu_server_requests", "API requests answered",
                                ["method", "route", "status"], registry=r)
        self.request_seconds = Histogram("zgpu_server_request_seconds",
                                         "Time to answer an API request", ["route"],
                                         buckets=_LATENCY_BUCKETS, registry=r)
        self.lines = Counter("zgpu_server_batch_lines", "Batch lines finished, by outcome "
                             "(completed, or the error code of a failed line)", ["outcome"],
                             registry=r)
        self.upstream_in_flight = Gauge("zgpu_server_upstream_in_flight",
                                        "Upstream calls in flight", registry=r)
        self.upstream_seconds = Histogram("zgpu_server_upstream_seconds",
                                          "Latency of one upstream call",
                                          buckets=_LATENCY_BUCKETS, registry=r)
        self.upstream_errors = Counter("zgpu_server_upstream_errors",
                                       "Failed upstream attempts, by code", ["code"], registry=r)
        self.retries = Counter("zgpu_server_upstream_retries",
                               "Upstream calls retried, by the code of the failed attempt",
                               ["code"], registry=r)
        r.register(_StoreCollector(store))
        self._upstream_limit = _Limiter()
        self._lines_limit = _Limiter()

    # ------------------------------------------------------------------- requests
    def request(self, *, method: str, path: str, status: int, seconds: float, request_id: str,
                project: str | None, key_id: str | None) -> None:
        route = route_of(path)
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(route).observe(seconds)
        fields = {
            "request_id": request_id, "method": method, "route": route, "status": status,
            "latency_ms": round(seconds * 1000, 1), "project": project,
            "key_id": key_id, "batch_id": batch_of(path),
        }
        access_log.info("%s %s %s %.1f ms", method, path, status, seconds * 1000,
                        extra={"fields": fields})

    # ---------------------------------------------------------------- batch lines
    def line_finished(self, batch_id: str, project: str, line: bytes, ok: bool) -> None:
        if ok:
            self.lines.labels("completed").inc()
            return
        try:
            obj = orjson.loads(line)
            err = (obj.get("error") or {}) if isinstance(obj, dict) else {}
            code, message = str(err.get("code") or "unknown"), str(err.get("message") or "")
            cid = obj.get("custom_id")
        except (orjson.JSONDecodeError, AttributeError):
            code, message, cid = "unknown", "", None
        self.lines.labels(code).inc()
        if code in _BATCH_ENDINGS:
            return  # the batch's own end (a cancel, the deadline), not a line that failed
        dropped = self._lines_limit.take()
        if dropped is not None:
            fields = {"batch_id": batch_id, "project": project, "custom_id": cid, "code": code,
                      "status": "failed", "suppressed": dropped}
            lines_log.warning("batch %s: line %s failed: %s %s%s", batch_id, cid, code,
                              message[:300], _suppressed(dropped), extra={"fields": fields})

    # ------------------------------------------------------------------- upstream
    def call_started(self) -> None:
        self.upstream_in_flight.inc()

    def call_ended(self, seconds: float) -> None:
        self.upstream_in_flight.dec()
        self.upstream_seconds.observe(seconds)

    def upstream_error(self, result: Any, *, retry: bool) -> None:
        code = str(result.code or "internal_error")
        self.upstream_errors.labels(code).inc()
        if retry:
            self.retries.labels(code).inc()
        dropped = self._upstream_limit.take()
        if dropped is not None:
            fields = {"code": code, "status": result.status, "retry": retry,
                      "suppressed": dropped}
            upstream_log.warning("upstream error %s (HTTP %s)%s: %s%s", code, result.status,
                                 ", retrying" if retry else "", str(result.message or "")[:300],
                                 _suppressed(dropped), extra={"fields": fields})

    # -------------------------------------------------------------------- scrape
    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)


def _suppressed(n: int) -> str:
    return f" ({n} similar line(s) suppressed before this one)" if n else ""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()



def logging_config(*, fmt: str, level: str) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of ``serve`` (given to uvicorn as ``log_config``):
    the server's and uvicorn's loggers to stderr, as text or as JSON lines. uvicorn's own
    access log is left off: the ``access`` logger here says more (project, key id, ids)."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "main",
               "stream": "ext://sys.stderr"}
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "loggers": {
            "zgpu_pandas": {"handlers": ["main"], "level": upper, "propagate": False},
            "uvicorn": {"handlers": ["main"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
        },
    }
