"""Settings of one local server.

Example::

    cfg = ServerConfig(data_dir="zgpu-data", latency=0.05, admin=True)
    app = create_app(cfg)
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._jsonl import MAX_UPLOAD_BYTES
from .faults import Faults
from .store import FILE_RETENTION_SECONDS

__all__ = ["ServerConfig", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (a name other than
    ``localhost`` counts as shared: it may resolve to any interface)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class ServerConfig:
    """Everything a server needs to know; all options are keyword-only.

    ``api_keys``: ``None`` accepts any non-empty key; a set of keys accepts only those; a
    mapping ``{key: projects}`` also limits each key to the given project ids (``None`` =
    any project). ``require_project_id=False`` is the relaxed rule where ``x-project-id``
    is optional (requests without it use the default project ``""``).
    ``accept_bearer=True`` also takes the key from ``Authorization: Bearer <key>`` and the
    project from ``OpenAI-Project`` when the ZeroGPU headers are absent (the headers of
    ``Client(provider="openai")`` and of OpenAI-style clients); off by default, as the
    quickstart only knows ``x-api-key``.
    ``completion_window_seconds`` is how long a batch may run before it expires (the
    public value is 24 h; shorten it in tests). ``idle_timeout``: a connection that sends
    no request head, or no byte of a request body it announced, for this many seconds is
    closed (a body answered 408 first), so idle or half-sent connections cannot pile up.
    ``request_log_size``: how many recent API requests the request log keeps (the oldest
    are dropped). ``upstream_ca_bundle``: a PEM file of the CA(s) that signed an https
    upstream's certificate (a private CA), trusted besides the system's;
    ``upstream_verify_tls=False`` does not verify it at all (a test rig only).
    ``file_retention_seconds``: a file's ``expires_at`` is its creation plus
    this (30 days, as the public API). ``sweep_interval``: every this many seconds a
    retention sweep removes expired files (record and bytes) and unreferenced bodies;
    ``None`` (the default here; ``zgpu-pandas serve`` sweeps hourly) never sweeps, so no file
    vanishes under a test. Secrets never appear in the repr.
    """

    data_dir: str | Path | None = None
    engine: str = "builtin"
    upstream_url: str | None = None
    upstream_api_key: str | None = field(default=None, repr=False)
    upstream_headers: dict[str, str] | None = field(default=None, repr=False)
    latency: float = 0.0
    concurrency: int = 8
    require_project_id: bool = True
    accept_bearer: bool = False
    api_keys: Iterable[str] | Mapping[str, Iterable[str] | None] | None = field(
        default=None, repr=False
    )
    completion_window_seconds: float = 86400.0
    admin: bool = False
    faults: Faults | None = None
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    upstream_max_retries: int = 3
    upstream_timeout: float = 600.0
    upstream_backoff: float = 0.5
    idle_timeout: float = 60.0
    request_log_size: int = 10_000
    upstream_ca_bundle: str | Path | None = None
    upstream_verify_tls: bool = True
    file_retention_seconds: float = FILE_RETENTION_SECONDS
    sweep_interval: float | None = None

    def __post_init__(self) -> None:
        if self.engine not in ("builtin", "upstream"):
            raise ValueError(f"engine must be 'builtin' or 'upstream', got {self.engine!r}")
        if self.engine == "upstream" and not self.upstream_url:
            raise ValueError("engine='upstream' needs upstream_url (an OpenAI-compatible base URL)")
        if self.latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {self.latency!r}")
        if int(self.concurrency) < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency!r}")
        if self.completion_window_seconds <= 0:
            raise ValueError(
                f"completion_window_seconds must be > 0, got {self.completion_window_seconds!r}"
            )
        if not self.idle_timeout > 0:
            raise ValueError(f"idle_timeout must be > 0 seconds, got {self.idle_timeout!r}")
        if int(self.request_log_size) < 1:
            raise ValueError(f"request_log_size must be >= 1, got {self.request_log_size!r}")
        if not self.upstream_timeout > 0:
            raise ValueError(f"upstream_timeout must be > 0 seconds, got {self.upstream_timeout!r}")
        if int(self.upstream_max_retries) < 0 or not self.upstream_backoff >= 0:
            raise ValueError("upstream_max_retries and upstream_backoff must be >= 0")
        if not self.file_retention_seconds >= 0:
            raise ValueError(
                f"file_retention_seconds must be >= 0, got {self.file_retention_seconds!r}"
            )
        if self.sweep_interval is not None and not self.sweep_interval > 0:
            raise ValueError(
                f"sweep_interval must be > 0 seconds (or None: never), got {self.sweep_interval!r}"
            )
        self._ssl = self._make_ssl_context()
        if isinstance(self.api_keys, str):
            raise TypeError("api_keys must be a set of keys (or a mapping), not one string")

    def _make_ssl_context(self) -> ssl.SSLContext | None:
        if self.upstream_ca_bundle is None and self.upstream_verify_tls:
            return None  # the engine's default: the system's CA store
        ctx = ssl.create_default_context()
        if self.upstream_ca_bundle is not None:
            bundle = Path(self.upstream_ca_bundle).expanduser()
            try:
                ctx.load_verify_locations(cafile=str(bundle))
            except (OSError, ssl.SSLError) as exc:
                why = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
                raise ValueError(
                    f"upstream_ca_bundle {bundle} cannot be used ({why}): give a PEM file of "
                    "CA certificates"
                ) from None
        if not self.upstream_verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for an https upstream (``None``: the system's CA store)."""
        return self._ssl

    def key_projects(self) -> dict[str, frozenset[str] | None] | None:
        """``None`` (any key) or ``{key: allowed projects or None for any}``."""
        if self.api_keys is None:
            return None
        if isinstance(self.api_keys, Mapping):
            return {
                k: None if v is None else frozenset([v] if isinstance(v, str) else v)
                for k, v in self.api_keys.items()
            }
        return dict.fromkeys(self.api_keys)

    def public(self) -> dict[str, Any]:
        """The settings without secrets (for logs and the admin endpoint)."""
        return {
            "data_dir": None if self.data_dir is None else str(self.data_dir),
            "engine": self.engine,
            "upstream_url": self.upstream_url,
            "upstream_timeout": self.upstream_timeout,
            "upstream_max_retries": self.upstream_max_retries,
            "upstream_backoff": self.upstream_backoff,
            "upstream_ca_bundle": None if self.upstream_ca_bundle is None
            else str(self.upstream_ca_bundle),
            "upstream_verify_tls": self.upstream_verify_tls,
            "latency": self.latency,
            "concurrency": self.concurrency,
            "require_project_id": self.require_project_id,
            "accept_bearer": self.accept_bearer,
            "api_keys": "any" if self.api_keys is None else "restricted",
            "completion_window_seconds": self.completion_window_seconds,
            "admin": self.admin,
            "file_retention_seconds": self.file_retention_seconds,
            "sweep_interval": self.sweep_interval,
        }
