"""A lean HTTP/1.1 client for the upstream engine's one kind of call: POST a JSON body,
read the answer (up to a size cap), keep the connection for the next call.

Why not httpx here: at 64 calls in flight httpx spends about 13 ms of CPU per call (its
connection pool scans every connection on each request and answer, through anyio; still
about 2 ms with the connections split over clients of 8), more than the rest of the server
together, so on a busy machine the upstream engine was CPU-bound long before the upstream
was (see bench/README.md, "Upstream engine"). This client needs about 0.5 ms: asyncio
streams, one write per request, Content-Length or chunked answers.
It speaks plain HTTP and HTTPS (an ``ssl.SSLContext``; the system's CA store by default) and
nothing else: no proxies, redirects, cookies or compression, none of which an upstream model
server needs.

Example::

    pool = WirePool("http://127.0.0.1:8000/v1/chat/completions", limit=8)
    answer = await pool.post(b'{"model": "m", "messages": []}', {"authorization": "Bearer k"})
    print(answer.status, answer.body)
    await pool.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["Answer", "TlsError", "TooLarge", "Unreachable", "WireError", "WirePool", "WireTimeout"]

HEAD_LIMIT = 1 << 20  # the status line and headers of an answer, at most


class WireError(Exception):
    """A call that got no usable answer."""


class Unreachable(WireError):
    """No answer at all: connection refused, reset or timed out before the status line."""


class WireTimeout(WireError):
    """The upstream took the request but did not answer within the timeout."""


class TooLarge(WireError):
    """The answer is larger than the cap; it was not read."""


class TlsError(WireError):
    """The TLS handshake failed (a certificate that does not verify, say)."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    body: bytes = b""


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class WirePool:
    """Keep-alive connections to one URL, at most ``limit`` calls at once."""

    def __init__(
        self,
        url: str,
        *,
        limit: int,
        timeout: float = 600.0,
        connect_timeout: float = 30.0,
        max_body: int = 64 * 1024 * 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the upstream URL must be http:// or https://, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        self.authority = parts.hostname if default_port else f"{parts.hostname}:{self.port}"
        if ":" in parts.hostname:  # an IPv6 literal goes in brackets
            self.authority = f"[{parts.hostname}]" + ("" if default_port else f":{self.port}")
        self.tls = (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_body = max_body
        self._idle: list[_Conn] = []
        self._slots = asyncio.Semaphore(max(1, int(limit)))
        self._limit = max(1, int(limit))

    async def post(self, body: bytes, headers: dict[str, str]) -> Answer:
        """POST ``body``; raises a :class:`WireError` when there is no usable answer."""
        head = [f"POST {self.path} HTTP/1.1", f"host: {self.authority}",
                f"content-length: {len(body)}", "user-agent: zgpu-pandas-server"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} holds a line break")
            if name.lower() not in ("host", "content-length"):
                head.append(f"{name}: {value}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        async with self._slots:
            for attempt in range(2):
                conn, reused = await self._acquire()
                try:
                    try:
                        conn.writer.write(request)
                        await conn.writer.drain()
                    except ConnectionError as exc:
                        raise _Stale(f"WriteError: {exc}", before_answer=True) from exc
                    answer, keep = await asyncio.wait_for(self._read(conn.reader), self.timeout)
                except asyncio.TimeoutError:
                    conn.close()
                    raise WireTimeout(f"no answer within {self.timeout:g} s") from None
                except _Stale as exc:
                    conn.close()
                    if reused and attempt == 0 and exc.before_answer:
                        continue  # a kept connection the upstream had closed: a new one
                    raise Unreachable(exc.reason) from None
                except BaseException:
                    conn.close()
                    raise
                if keep and len(self._idle) < self._limit:
                    self._idle.append(conn)
                else:
                    conn.close()
                return answer
        raise Unreachable("connection closed")  # pragma: no cover - the loop returns or raises

    async def _acquire(self) -> tuple[_Conn, bool]:
        while self._idle:
            conn = self._idle.pop()
            if not conn.reader.at_eof() and not conn.writer.is_closing():
                return conn, True
            conn.close()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.host, self.port, ssl=self.tls, limit=HEAD_LIMIT,
                    server_hostname=self.host if self.tls is not None else None,
                ),
                self.connect_timeout,
            )
        except asyncio.TimeoutError:
            raise Unreachable("ConnectTimeout") from None
        except ssl.SSLError as exc:
            raise TlsError(f"TLS handshake with {self.authority} failed: {exc}") from None
        except OSError as exc:
            raise Unreachable(f"ConnectError: {exc.strerror or type(exc).__name__}") from None
        return _Conn(reader, writer), False

    async def _read(self, reader: asyncio.StreamReader) -> tuple[Answer, bool]:
        """The answer and whether the connection can be kept."""
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise _Stale("RemoteProtocolError: connection closed without an answer",
                         before_answer=True) from exc
        except asyncio.LimitOverrunError:
            raise TooLarge("the answer's headers are too large") from None
        lines = raw.decode("latin-1").split("\r\n")
        try:
            version, code = lines[0].split(" ", 2)[:2]
            status = int(code)
        except ValueError:
            raise WireError(f"not an HTTP answer: {lines[0][:80]!r}") from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        try:
            if status in (204, 304) or 100 <= status < 200:
                body = b""
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                body = await self._chunked(reader)
            elif "content-length" in headers:
                size = int(headers["content-length"])
                if size > self.max_body:
                    raise TooLarge(f"the answer is {size} bytes, over the cap of "
                                   f"{self.max_body} bytes (max_answer_bytes); it was not kept")
                body = await reader.readexactly(size)
            else:
                body = await self._until_eof(reader)
                keep = False
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise _Stale("RemoteProtocolError: the answer was cut off") from exc
        return Answer(status, headers, body), keep

    async def _chunked(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > self.max_body:
                raise TooLarge(f"the answer is over the cap of {self.max_body} bytes "
                               "(max_answer_bytes); it was not kept")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    async def _until_eof(self, reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        while chunk := await reader.read(1 << 16):
            total += len(chunk)
            if total > self.max_body:
                raise TooLarge(f"the answer is over the cap of {self.max_body} bytes "
                               "(max_answer_bytes); it was not kept")
            parts.append(chunk)
        return b"".join(parts)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class _Stale(Exception):
    """The connection ended before a whole answer (internal: retried or Unreachable)."""

    def __init__(self, reason: str, *, before_answer: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.before_answer = before_answer  # no byte of an answer came: safe to send again
