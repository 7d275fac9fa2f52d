"""Every ``zgpu-pandas serve`` setting in one table, read from flags, the environment and a
TOML file, in that order of precedence: a flag beats ``$ZGPU_SERVER_<NAME>``, which beats
the file's ``name = value``, which beats the default.

The table :data:`SETTINGS` is the one place a setting is declared: the command-line flags
are built from it, and docs/server.md lists it (a test keeps the two equal). Secrets are not
settings: the upstream key stays in ``$ZGPU_UPSTREAM_API_KEY`` and the accepted keys in a
keys file (``api_keys_file``) or ``$ZGPU_SERVER_API_KEYS``, never in a config file that may
be copied around.

Example::

    values, sources = resolve(args, os.environ)   # args from the serve parser
    values["concurrency"], sources["concurrency"]  # (16, "$ZGPU_SERVER_CONCURRENCY")
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SETTINGS", "Setting", "SettingsError", "add_flags", "load_file", "resolve"]

ENV_PREFIX = "ZGPU_SERVER_"
ENV_CONFIG = "ZGPU_SERVER_CONFIG"
#: variables with the prefix that are not settings (the key list is a secret, not a setting)
_NOT_SETTINGS = {"ZGPU_SERVER_API_KEYS", ENV_CONFIG}


class SettingsError(ValueError):
    """One line naming the setting, where it came from and what it accepts (server-internal)."""


@dataclass(frozen=True)
class Setting:
    """One setting: its name (the TOML key; the flag and variable derive from it), its
    kind (``str``, ``int``, ``float``, ``bool`` or ``list``), default and meaning."""

    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


_DAY = 86400.0
SETTINGS: tuple[Setting, ...] = (
    Setting("host", "str", "127.0.0.1", "interface to listen on"),
    Setting("port", "int", 8080, "port; 0 picks a free one"),
    Setting("data_dir", "str", "./zgpu-data", "where files and batches are kept"),
    Setting("engine", "str", "builtin", "what answers: the offline built-in engine or an "
            "OpenAI-compatible upstream server", choices=("builtin", "upstream")),
    Setting("upstream_url", "str", None, "OpenAI-compatible base URL for engine upstream"),
    Setting("upstream_header", "list", [], "extra header sent upstream, NAME:VALUE "
            "(repeatable flag; comma-separated in the variable; a list or a table in the file)"),
    Setting("upstream_timeout", "float", 600.0, "seconds an upstream call may take"),
    Setting("upstream_retries", "int", 3, "retries of an upstream call on 429, 5xx or no "
            "answer"),
    Setting("upstream_backoff", "float", 0.5, "first wait in seconds between retries, "
            "doubling (a Retry-After is honoured)"),
    Setting("upstream_ca_bundle", "str", None, "PEM file of the CA(s) that signed an https "
            "upstream's certificate (a private CA), trusted besides the system's"),
    Setting("upstream_insecure", "bool", False, "do not verify the upstream's TLS "
            "certificate (test rigs only)"),
    Setting("concurrency", "int", 8, "lines run at once"),
    Setting("latency", "float", 0.0, "seconds spent per line (demos)"),
    Setting("max_upload_bytes", "int", 100 * 1024 * 1024, "largest upload accepted"),
    Setting("idle_timeout", "float", 60.0, "seconds before an idle or half-sent "
            "connection is closed"),
    Setting("completion_window_seconds", "float", _DAY, "time before a running batch "
            "expires"),
    Setting("file_retention_seconds", "float", 30 * _DAY, "a file's expires_at is its "
            "creation plus this"),
    Setting("sweep_interval", "float", 3600.0, "seconds between retention sweeps (expired "
            "files, unreferenced bodies); 0 = never"),
    Setting("api_keys_file", "str", None, "the accepted keys, one per line, each optionally "
            "followed by the project ids it may use ('KEY team-a team-b', 'KEY *')"),
    Setting("keys_reload_interval", "float", 2.0, "seconds between checks of the keys "
            "file for changes (it is also read again on SIGHUP); 0 = on SIGHUP only"),
    Setting("relaxed_auth", "bool", False, "make x-project-id optional"),
    Setting("accept_bearer", "bool", False, "also take the key from 'Authorization: Bearer' "
            "and the project from OpenAI-Project (OpenAI-style clients)"),
    Setting("allow_any_key", "bool", False, "on a host other machines reach, accept any key "
            "for any project with no key list"),
    Setting("admin", "bool", False, "enable the /_admin endpoints (fault injection)"),
    Setting("log_level", "str", "info", "how much the server logs",
            choices=("critical", "error", "warning", "info", "debug")),
    Setting("log_format", "str", "text", "log lines as text, or as JSON objects (one a "
            "line: request id, project, key id, batch id, status, latency)",
            choices=("text", "json")),
)
BY_NAME = {s.name: s for s in SETTINGS}
_PATHS = ("data_dir", "upstream_ca_bundle", "api_keys_file")


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, each defaulting to ``None`` (not given), so that
    :func:`resolve` can tell a flag from a default."""
    for s in SETTINGS:
        shown = "" if s.default in (None, []) else f" (default {s.default})"
        help_text = f"{s.help}{shown}; ${s.env}"
        if s.kind == "bool":
            parser.add_argument(s.flag, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        elif s.kind == "list":
            parser.add_argument(s.flag, action="append", default=None, metavar="NAME:VALUE",
                                help=help_text)
        else:
            conv: Callable[[str], Any] = {"int": int, "float": float}.get(s.kind, str)
            metavar = {"int": "N", "float": "SECONDS"}.get(s.kind, s.name.split("_")[-1].upper())
            parser.add_argument(s.flag, type=conv, default=None, choices=s.choices,
                                metavar=None if s.choices else metavar, help=help_text)


def load_file(path: str) -> dict[str, Any]:
    """The settings of a TOML file (top-level ``name = value``; ``[server]`` table also
    accepted), checked against the table: an unknown name is an error naming it."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        raw = tomllib.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read --config {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"--config {path} is not valid TOML: {exc}") from None
    table = raw.get("server", raw) if isinstance(raw.get("server"), dict) else raw
    for name in table:
        if name not in BY_NAME:
            near = difflib.get_close_matches(name, list(BY_NAME), n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise SettingsError(f"--config {path}: unknown setting {name!r}{hint}")
    values = {name: _from_file(BY_NAME[name], value, path) for name, value in table.items()}
    # a relative path in the file means beside the file, wherever the server is started from
    base = Path(path).expanduser().resolve().parent
    for name in _PATHS:
        if isinstance(values.get(name), str):
            values[name] = str(base / Path(values[name]).expanduser())
    return values


def _from_file(s: Setting, value: Any, path: str) -> Any:
    where = f"--config {path}: {s.name}"
    if s.kind == "list":
        if isinstance(value, dict):  # [upstream_header] table: name = "value"
            return [f"{k}:{v}" for k, v in value.items()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise SettingsError(f"{where} must be a list of \"NAME:VALUE\" strings or a table")
    ok = {
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
    }[s.kind]
    if not ok:
        raise SettingsError(f"{where} must be {_a(s.kind)}, got {value!r}")
    return _check_choice(s, float(value) if s.kind == "float" else value, where)


def _from_env(s: Setting, text: str) -> Any:
    where = f"${s.env}"
    if s.kind == "list":
        return [x.strip() for x in text.split(",") if x.strip()]
    if s.kind == "bool":
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise SettingsError(f"{where} must be true or false (1/0, yes/no), got {text!r}")
    if s.kind in ("int", "float"):
        try:
            return int(text) if s.kind == "int" else float(text)
        except ValueError:
            raise SettingsError(f"{where} must be {_a(s.kind)}, got {text!r}") from None
    return _check_choice(s, text, where)


def _check_choice(s: Setting, value: Any, where: str) -> Any:
    if s.choices and value not in s.choices:
        raise SettingsError(f"{where} must be one of {', '.join(s.choices)}, got {value!r}")
    return value


def _a(kind: str) -> str:
    return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}[kind]


def resolve(
    args: argparse.Namespace, environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each setting's value and where it came from (``--flag``, ``$VAR``, the config file
    or ``default``): flag > environment > file > default. The file is ``--config`` or
    ``$ZGPU_SERVER_CONFIG``. Raises :class:`SettingsError` (one line) on a bad value."""
    config_path = getattr(args, "config", None) or environ.get(ENV_CONFIG) or None
    from_file = load_file(config_path) if config_path else {}
    for var in environ:
        if var.startswith(ENV_PREFIX) and var not in _NOT_SETTINGS and \
                var[len(ENV_PREFIX):].lower() not in BY_NAME:
            near = difflib.get_close_matches(var, [s.env for s in SETTINGS], n=1)
            hint = f" (did you mean ${near[0]}?)" if near else ""
            raise SettingsError(f"${var} is not a server setting{hint}")
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for s in SETTINGS:
        given = getattr(args, s.name, None)
        if given is not None:
            values[s.name], sources[s.name] = given, s.flag
        elif s.env in environ:
            values[s.name], sources[s.name] = _from_env(s, environ[s.env]), f"${s.env}"
        elif s.name in from_file:
            values[s.name], sources[s.name] = from_file[s.name], f"--config {config_path}"
        else:
            default = list(s.default) if isinstance(s.default, list) else s.default
            values[s.name], sources[s.name] = default, "default"
    return values, sources
