"""Client settings: where the key, project and base URL come from, and which host may see a key.

Resolution order, per setting: explicit argument, then ``ZGPU_*``, then ``ZEROGPU_*``
environment variables, then the default. ``base_url`` takes a URL or a preset name::

    production   https://api.zerogpu.ai          (default)
    staging      https://staging.api.zerogpu.ai
    development  https://dev.api.zerogpu.ai
    local        the process-wide local server (started on first use; any key accepted)

With ``provider="openai"`` the key comes from ``OPENAI_API_KEY``, the base URL from
``OPENAI_BASE_URL`` or ``https://api.openai.com``, and it is sent as ``Authorization: Bearer``.
A key meant for one provider is never sent to the other's host. Example::

    >>> s = resolve_settings(api_key="k", base_url="staging", env={})
    >>> s.base_url, s.api_key
    ('https://staging.api.zerogpu.ai', '***')
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from .errors import ConfigurationError

__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "LOCAL_POLL_INTERVAL",
    "OPENAI_BASE_URL",
    "PRESETS",
    "Provider",
    "SecretStr",
    "Settings",
    "is_local_url",
    "resolve_settings",
]

logger = logging.getLogger("zgpu_pandas.client")

Provider = Literal["zerogpu", "openai"]

PRESETS: Final[Mapping[str, str]] = {
    "production": "https://api.zerogpu.ai",
    "staging": "https://staging.api.zerogpu.ai",
    "development": "https://dev.api.zerogpu.ai",
}
OPENAI_BASE_URL: Final = "https://api.openai.com"
#: the real service asks for polls no faster than this
DEFAULT_POLL_INTERVAL: Final = 30.0
#: a loopback server answers in microseconds; a demo should not sit idle for 30 s
LOCAL_POLL_INTERVAL: Final = 0.2

_ZEROGPU_KEY_VARS = ("ZGPU_API_KEY", "ZEROGPU_API_KEY")
_ZEROGPU_PROJECT_VARS = ("ZGPU_PROJECT_ID", "ZEROGPU_PROJECT_ID")
_ZEROGPU_URL_VARS = ("ZGPU_BASE_URL", "ZEROGPU_BASE_URL")
_OPENAI_KEY_VARS = ("OPENAI_API_KEY",)
_OPENAI_PROJECT_VARS = ("OPENAI_PROJECT_ID",)
_OPENAI_URL_VARS = ("OPENAI_BASE_URL",)

# The hosts each provider owns. A key configured for one provider must never reach a host
# owned by the other; custom hosts (proxies, self-hosted servers, the local server) are the
# user's explicit choice and are allowed for either.
_PROVIDER_DOMAINS: Final[Mapping[str, str]] = {"zerogpu": "zerogpu.ai", "openai": "openai.com"}
_A_NAME: Final[Mapping[str, str]] = {"zerogpu": "a ZeroGPU", "openai": "an OpenAI"}


class SecretStr:
    """A string that does not show itself: ``repr``/``str`` give ``'***'``.

    The value is reachable only through :meth:`get_secret_value`, so printing a settings
    object, a client or a traceback's locals never shows the key.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the key to disk (e.g. a cached job object); refuse.
        raise TypeError("a SecretStr (an API key) cannot be pickled")


@dataclass(frozen=True)
class Settings:
    """Resolved client settings. ``api_key`` is a :class:`SecretStr`."""

    api_key: SecretStr
    project_id: str | None
    base_url: str
    provider: Provider
    is_local: bool
    #: where the key came from, for messages ("argument", "ZGPU_API_KEY", "local default")
    key_source: str

    def auth_headers(self) -> dict[str, str]:
        """The headers that carry the credentials for this provider."""
        key = self.api_key.get_secret_value()
        if self.provider == "openai":
            headers = {"Authorization": f"Bearer {key}"}
            if self.project_id:
                headers["OpenAI-Project"] = self.project_id
            return headers
        headers = {"x-api-key": key}
        if self.project_id:  # spec decision: sent whenever configured, never required
            headers["x-project-id"] = self.project_id
        return headers


def _first_env(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str | None, str | None]:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value, name
    return None, None


def is_local_url(url: str) -> bool:
    """``True`` for loopback hosts (``localhost``, ``127.x``, ``::1``, ``*.localhost``)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_owner(url: str) -> str | None:
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    for provider, domain in _PROVIDER_DOMAINS.items():
        if host == domain or host.endswith("." + domain):
            return provider
    return None


def _normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"base_url {url!r} is not a URL or a preset; use an http(s) URL such as "
            f"'https://api.zerogpu.ai', or one of {', '.join([*PRESETS, 'local'])}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"base_url {url!r} must not carry a query string or fragment")
    # Paths are appended as "/v1/...", but OpenAI-style base URLs usually end in "/v1": accept both.
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


def _local_server_url() -> str:
    # Imported lazily: most clients never start a server, and the server pulls in uvicorn.
    server = importlib.import_module(".server", __package__)
    return str(server.shared_local_server().url)


def _no_key(
    prov: Provider, key_vars: tuple[str, ...], url: str, *, is_local: bool
) -> ConfigurationError:
    if is_local and prov == "zerogpu":
        # a server on this machine (zgpu-pandas serve, LocalServer): "use base_url='local'"
        # would point at another server than the one holding the batches
        return ConfigurationError(
            f"No API key for the server at {url}. A local server started without "
            f"--api-key accepts any non-empty key: set {key_vars[0]} (e.g. `export "
            f"{key_vars[0]}=local`) or pass api_key='local'; if it was started with "
            "--api-key, use that key."
        )
    names = " or ".join(key_vars)
    return ConfigurationError(
        f"No API key for provider {prov!r}. Set the environment variable {names} "
        f"(e.g. `export {key_vars[0]}=...`), or pass Client(api_key=...). "
        "For offline work use base_url='local'."
    )


def resolve_settings(
    *,
    api_key: str | None = None,
    project_id: str | None = None,
    base_url: str | None = None,
    provider: str = "zerogpu",
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from explicit arguments, then the environment, then defaults.

    Raises :class:`ConfigurationError` when no key is found (naming the variables to set), for
    an unknown preset or provider, and when a key would be sent to the other provider's host.
    """
    env = os.environ if env is None else env
    if provider not in ("zerogpu", "openai"):
        raise ConfigurationError(f"provider must be 'zerogpu' or 'openai', not {provider!r}")
    prov: Provider = "openai" if provider == "openai" else "zerogpu"
    key_vars = _OPENAI_KEY_VARS if prov == "openai" else _ZEROGPU_KEY_VARS
    project_vars = _OPENAI_PROJECT_VARS if prov == "openai" else _ZEROGPU_PROJECT_VARS
    url_vars = _OPENAI_URL_VARS if prov == "openai" else _ZEROGPU_URL_VARS

    # base URL
    url_source = "argument"
    if base_url is None or not base_url.strip():
        base_url, url_source = _first_env(env, url_vars)  # type: ignore[assignment]
    if base_url is None:
        base_url, url_source = (
            (OPENAI_BASE_URL if prov == "openai" else PRESETS["production"]),
            "default",
        )
    preset = base_url.strip().lower()
    if preset == "local":
        resolved_url = _local_server_url()
    elif preset in PRESETS:
        if prov == "openai":
            raise ConfigurationError(
                f"base_url preset {preset!r} is a ZeroGPU host, but provider='openai'; "
                "use provider='zerogpu' with it"
            )
        resolved_url = PRESETS[preset]
    else:
        resolved_url = _normalise_url(base_url)
    is_local = preset == "local" or is_local_url(resolved_url)

    # key
    key_source = "argument"
    key = api_key.strip() if api_key is not None else None
    if not key and preset == "local":
        # The shared local server accepts any key, so a notebook needs no setup, and a real
        # key from the environment has no business travelling to a toy server.
        key, key_source = "local", "local default"
    if not key:
        key, key_source = _first_env(env, key_vars)  # type: ignore[assignment]
    if not key:
        raise _no_key(prov, key_vars, resolved_url, is_local=is_local)

    # project
    project = project_id.strip() if project_id is not None else None
    if not project and preset == "local":
        project = "local"
    if not project:
        project, _ = _first_env(env, project_vars)

    _check_key_destination(prov, key, key_source, resolved_url, url_source, env)
    if not is_local and urlsplit(resolved_url).scheme == "http":
        logger.warning("base_url %s uses plain http: the API key travels unencrypted", resolved_url)
    return Settings(
        api_key=SecretStr(key),
        project_id=project or None,
        base_url=resolved_url,
        provider=prov,
        is_local=is_local,
        key_source=key_source,
    )


def _check_key_destination(
    provider: Provider, key: str, key_source: str, url: str, url_source: str, env: Mapping[str, str]
) -> None:
    """Refuse to send a key to the other provider's host (both directions)."""
    owner = _host_owner(url)
    if owner is not None and owner != provider:
        other_vars = _OPENAI_KEY_VARS if owner == "openai" else _ZEROGPU_KEY_VARS
        raise ConfigurationError(
            f"Refusing to send {_A_NAME[provider]} key to {urlsplit(url).hostname} "
            f"({_A_NAME[owner]} host, base_url from {url_source}). Use provider={owner!r} with "
            f"a key from {' or '.join(other_vars)}, or point base_url at {_A_NAME[provider]} host."
        )
    # The same key value in the other provider's variable means it was issued by that provider.
    other_vars = _ZEROGPU_KEY_VARS if provider == "openai" else _OPENAI_KEY_VARS
    for name in other_vars:
        if key_source != name and env.get(name, "").strip() == key:
            raise ConfigurationError(
                f"The API key given ({key_source}) is the value of {name}, a key for the other "
                f"provider; refusing to send it with provider={provider!r}. Pass the matching "
                "provider, or the key issued for this one."
            )
