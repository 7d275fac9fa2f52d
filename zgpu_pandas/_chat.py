"""Synchronous chat completions (``POST /v1/chat/completions``) for the online mode.

:class:`ChatSession` sends request bodies through the settings of a :class:`~zgpu_pandas.Client`
(base URL, key, project, timeout, retry policy) on an ``httpx.AsyncClient`` of its own, so that
many requests can be in flight at once (see :mod:`zgpu_pandas._window`). Each request is
retried on its own: a 5xx after the ``Retry-After`` the service gave (else jittered backoff),
up to the client's ``max_retries``; a 429 rate limit and a connection that cannot be made (a
server restarting) for up to the outage grace of the host (30 s on loopback, 10 minutes
remote), since both pass on their own.
What still fails raises the same exceptions as the rest of the client, with the key scrubbed.

A chat completion is not idempotent: a request whose connection broke after it was sent may
have been answered (and billed) although no answer arrived; it is sent again, as every
OpenAI-compatible SDK does. Batches do not have this gap, which is one more reason to run the
big job as a batch.

Example::

    async def main(client):
        async with ChatSession(client, limit=8) as session:
            reply = await session.complete(b'{"model": "LFM2.5-1.2B-Instruct", "messages": [...]}')
            print(reply["choices"][0]["message"]["content"])
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from ._retry import Outage, outage_grace, transient_status
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    RateLimitError,
)

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["CHAT_PATH", "ChatSession"]

CHAT_PATH = "/v1/chat/completions"


class ChatSession:
    """Chat completions through ``client``'s settings, ``limit`` connections at most.

    ``retries`` counts the retries made (429/5xx and connection failures), for the summary a
    caller shows. Use as an async context manager (or call :meth:`aclose`)."""

    def __init__(self, client: Client, *, limit: int) -> None:
        self._client = client
        self._http = httpx.AsyncClient(
            timeout=client.timeout,
            follow_redirects=False,  # the key must never reach another host
            limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
        )
        self._url = client.base_url + CHAT_PATH
        self._grace = outage_grace(None, is_local=client.is_local)
        self.retries = 0

    async def __aenter__(self) -> ChatSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def complete(self, body: bytes) -> dict[str, Any]:
        """The chat completion object for the JSON request ``body``, after retries."""
        policy = self._client.retry_policy
        attempt = 0
        outage = Outage(grace=self._grace, base=0.2, max_delay=5.0)
        while True:
            try:
                reply = await self._once(body)
            except APIConnectionError as exc:
                if isinstance(exc, APITimeoutError):
                    delay = policy.delay(attempt)
                    attempt += 1
                else:
                    delay = outage.failed()
                if delay is None:
                    raise
            except RateLimitError as exc:
                # "slow down", not "broken": waited out like an outage (the service's
                # Retry-After, else backoff), for as long as the outage grace
                limited = outage.failed()
                if limited is None:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else limited
            except APIStatusError as exc:
                if not transient_status(exc.status_code, exc.code):
                    raise
                delay = policy.delay(attempt, retry_after=exc.retry_after)
                attempt += 1
                if delay is None:
                    raise
            else:
                return reply
            self.retries += 1
            await asyncio.sleep(delay)

    async def _once(self, body: bytes) -> dict[str, Any]:
        client = self._client
        headers = client._headers({"Content-Type": "application/json"})
        try:
            response = await self._http.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise APITimeoutError(
                f"POST {CHAT_PATH} timed out: no answer from {client.base_url} in time "
                f"(the request may have been processed)",
                method="POST",
                url=self._url,
                request_sent=True,
            ) from exc
        except httpx.TransportError as exc:
            raise client._connection_error(exc, "POST", CHAT_PATH) from exc
        if response.status_code >= 300:
            raise client._status_error(response, "POST", CHAT_PATH)
        try:
            reply = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            reply = None
        if not isinstance(reply, dict):
            raise APIResponseValidationError(
                f"POST {CHAT_PATH} answered {response.status_code} with a body that is not a "
                f"JSON object",
                status_code=response.status_code,
                request_id=response.headers.get("x-request-id"),
            )
        return reply
