"""``zgpu-pandas serve --check``: is this server ready to run, before anyone submits a batch?

Checks, in order, stopping at the first problem (told in one line):

1. the data directory can be created or written, and its database (if any) can be read;
2. with ``--engine upstream``: the upstream answers (a wrong host, port or TLS setting
   shows here, not as every line failing later), accepts the key, and serves the API:
   ``GET <base>/v1/models`` lists the models; an upstream without that route (404) is
   asked ``POST <base>/v1/chat/completions`` with an empty body instead, which a real chat
   endpoint refuses as invalid (400/422, nothing run or billed) and a wrong URL answers 404.

Example::

    ok = check_setup(data_dir=Path("zgpu-data"), upstream_url="http://gpu:8000/v1",
                     api_key=os.environ.get("ZGPU_UPSTREAM_API_KEY"))
    print(ok)   # data dir zgpu-data writable; upstream http://gpu:8000/v1 serves 2 model(s): ...
"""

from __future__ import annotations

import contextlib
import sqlite3
import ssl
import tempfile
from pathlib import Path
from typing import Any

import httpx

from .engines import chat_url

__all__ = ["CheckFailed", "check_setup", "models_url"]

ENV_UPSTREAM_KEY = "ZGPU_UPSTREAM_API_KEY"


class CheckFailed(Exception):
    """One line naming what is wrong and how to fix it (server-internal)."""


def models_url(base_url: str) -> str:
    """``<base>/v1/models`` for a base given with or without ``/v1``."""
    return chat_url(base_url).removesuffix("/chat/completions") + "/models"


def check_setup(
    *,
    data_dir: Path,
    upstream_url: str | None = None,
    api_key: str | None = None,
    headers: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> str:
    """Run the checks; returns a one-line summary, or raises :class:`CheckFailed`."""
    said = [check_data_dir(data_dir)]
    if upstream_url is not None:
        said.append(probe_upstream(upstream_url, api_key=api_key, headers=headers,
                                   ssl_context=ssl_context, timeout=timeout))
    return "; ".join(said)


def check_data_dir(data_dir: Path) -> str:
    path = Path(data_dir).expanduser()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise CheckFailed(
            f"data dir {path} cannot be created: {probe} is not a directory (give another "
            "--data-dir)"
        )
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".zgpu-check-"):
            pass
    except OSError as exc:
        raise CheckFailed(
            f"data dir {path} is not writable ({exc.strerror or exc}): give another --data-dir "
            "or fix its permissions"
        ) from None
    db = path / "meta.sqlite3"
    if db.exists():
        try:
            with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as c:
                c.execute("SELECT count(*) FROM batches").fetchone()
        except sqlite3.DatabaseError as exc:
            raise CheckFailed(
                f"the metadata database {db} is damaged ({exc}); move it away to start afresh "
                "or choose another data directory"
            ) from None
    return f"data dir {path} writable"


def probe_upstream(
    base_url: str,
    *,
    api_key: str | None,
    headers: dict[str, str] | None,
    ssl_context: ssl.SSLContext | None,
    timeout: float,
) -> str:
    sent = dict(headers or {})
    if api_key:
        sent.setdefault("authorization", f"Bearer {api_key}")
        sent.setdefault("x-api-key", api_key)
    verify: Any = ssl_context if ssl_context is not None else True
    url = models_url(base_url)
    with httpx.Client(headers=sent, verify=verify, timeout=timeout, trust_env=False) as client:
        r = _send(client, "GET", url, base_url)
        _refused(r, api_key)
        if r.status_code == 200:
            names = _model_names(r)
            if names is None:
                raise CheckFailed(
                    f"GET {url} answered 200 but not an OpenAI-compatible model list: is "
                    "--upstream-url the API's base URL (e.g. http://host:8000/v1)?"
                )
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            return f"upstream {base_url} serves {len(names)} model(s): {shown}"
        if r.status_code != 404:
            raise CheckFailed(f"GET {url} answered HTTP {r.status_code}: {_said(r, api_key)}")
        chat = chat_url(base_url)
        r = _send(client, "POST", chat, base_url, json={})
        _refused(r, api_key)
        if r.status_code in (400, 422):
            return f"upstream {base_url} answers (no model list: GET {url} is 404)"
        if r.status_code == 404:
            raise CheckFailed(
                f"wrong --upstream-url {base_url}: both GET {url} and POST {chat} answered "
                "404; give the OpenAI-compatible base URL (e.g. http://host:8000/v1)"
            )
        raise CheckFailed(f"POST {chat} answered HTTP {r.status_code}: {_said(r, api_key)}")


def _send(client: httpx.Client, method: str, url: str, base: str, **kw: Any) -> httpx.Response:
    try:
        return client.request(method, url, **kw)
    except httpx.TimeoutException:
        raise CheckFailed(f"cannot reach the upstream {base}: no answer in time") from None
    except httpx.HTTPError as exc:
        text = str(exc) or type(exc).__name__
        if "CERTIFICATE_VERIFY_FAILED" in text:
            raise CheckFailed(
                f"the upstream {base} has a TLS certificate this machine does not trust "
                f"({text.split('] ', 1)[-1]}): give its CA with --upstream-ca-bundle"
            ) from None
        raise CheckFailed(f"cannot reach the upstream {base}: {text}") from None


def _refused(r: httpx.Response, api_key: str | None) -> None:
    if r.status_code not in (401, 403):
        return
    if not api_key:
        raise CheckFailed(
            f"the upstream refused the request (HTTP {r.status_code}) and no upstream key is "
            f"set: export ${ENV_UPSTREAM_KEY}"
        )
    raise CheckFailed(
        f"the upstream refused the key in ${ENV_UPSTREAM_KEY} (HTTP {r.status_code}: "
        f"{_said(r, api_key)})"
    )


def _said(r: httpx.Response, key: str | None = None) -> str:
    """The upstream's error message, short and on one line, never with our key (an
    upstream may echo back what it refused)."""
    try:
        err = r.json().get("error")
        text = str(err.get("message") if isinstance(err, dict) else err or r.text)
    except (ValueError, AttributeError):
        text = r.text
    text = " ".join(redact(text, key).split())[:200]
    return text or r.reason_phrase


def _model_names(r: httpx.Response) -> list[str] | None:
    try:
        data = r.json().get("data")
    except (ValueError, AttributeError):
        return None
    if not isinstance(data, list):
        return None
    return [str(m.get("id")) for m in data if isinstance(m, dict)]


def redact(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` (an upstream may echo what it refused)."""
    return text.replace(secret, "[key]") if secret else text

