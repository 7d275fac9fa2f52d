"""The client for the ZeroGPU (and OpenAI) Files and Batches API.

One :class:`Client` holds the settings and an HTTP connection pool; ``client.files`` and
``client.batches`` hold the calls. Everything streams: uploads are sent from the source in
chunks, downloads are written or iterated in chunks, so memory stays flat for 100 MB files.
Transient failures are retried with exponential backoff and full jitter, and a batch create
whose answer was lost is reconciled (by a client token in ``metadata``) before it is ever
sent again, so a flaky network never pays for a batch twice. Example::

    from zgpu_pandas import Client

    with Client(base_url="local") as client:          # or Client() with ZGPU_API_KEY set
        f = client.files.upload("input.jsonl")
        batch = client.batches.create(input_file_id=f.id, metadata={"job": "reviews"})
        batch = client.batches.wait(batch.id, on_update=lambda b: print(b.request_counts))
        for line in client.files.iter_lines(batch.output_file_id):
            ...
"""

from __future__ import annotations

import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, TypeVar, Union
from urllib.parse import quote

import httpx
import orjson

from ._config import (
    DEFAULT_POLL_INTERVAL,
    LOCAL_POLL_INTERVAL,
    Provider,
    resolve_settings,
)
from ._fs import write_atomic
from ._jsonl import BATCH_ENDPOINT, MAX_UPLOAD_BYTES, check_metadata
from ._models import Batch, FileDeleted, FileObject
from ._retry import Outage, RetryPolicy, parse_retry_after, transient_status
from ._retry import outage_grace as outage_grace_for
from .errors import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    BadRequestError,
    CreateOutcomeUnknownError,
    InsufficientQuotaError,
    InternalServerError,
    NotFoundError,
    OptionError,
    PayloadTooLargeError,
    RateLimitError,
    UploadNotRetryableError,
    WaitTimeoutError,
    status_error_class,
)

__all__ = ["CLIENT_TOKEN_KEY", "Batches", "Client", "Files", "UploadSource"]

logger = logging.getLogger("zgpu_pandas.client")

T = TypeVar("T")

#: metadata key under which ``batches.create`` stores its idempotency token
CLIENT_TOKEN_KEY: Final = "zgpu_client_token"

UploadSource = Union[
    str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes], Iterable[bytes]
]

_UPLOAD_CHUNK: Final = 1 << 20  # 1 MiB: few syscalls, small enough to keep memory flat
# Create validates the whole input file before answering; a 100 MB file takes a while, and a
# read timeout on create is exactly the "outcome unknown" case we want to make rare.
_CREATE_READ_TIMEOUT: Final = 300.0
# How far back (seconds, beyond the first attempt) a token lookup scans, allowing clock skew.
_TOKEN_LOOKBACK: Final = 600
_TOKEN_MAX_SCAN: Final = 2000  # batches
# Keys shorter than this are test placeholders ("k", "local"); scrubbing them out of messages
# would garble ordinary words without protecting anything.
_MIN_SCRUB_LEN: Final = 8

# Patch points for tests (record delays instead of sleeping); looked up at call time.
_sleep: Callable[[float], None] = time.sleep
_random: Callable[[], float] = random.random


def _timeout_error(exc: httpx.TimeoutException) -> bool:
    return not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))


def _never_sent(exc: httpx.TransportError) -> bool:
    # Only these guarantee the server never saw the request: no connection was made.
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


@dataclass
class _RetryState:
    """What happened across the attempts of one call."""

    attempts: int = 0
    #: an earlier attempt may have been processed although no answer arrived
    ambiguous: bool = False


class Client:
    """A client for the ZeroGPU Files and Batches API (or OpenAI's, with ``provider="openai"``).

    Settings resolve as: explicit argument, then ``ZGPU_*``, then ``ZEROGPU_*`` environment
    variables, then defaults (see :mod:`zgpu_pandas._config`). ``base_url`` takes a URL or
    ``"production"``, ``"staging"``, ``"development"`` or ``"local"`` (a process-wide local
    server, started on first use). Use as a context manager, or call :meth:`close`.

    ``max_retries`` is the number of *re*-tries after the first attempt. ``poll_interval`` is
    the default for :meth:`Batches.wait`: 30 s against remote hosts, 0.2 s against a
    loopback server. ``http_client`` lets you bring your own ``httpx.Client`` (proxies,
    certificates); it is not closed by :meth:`close`. Example::

        with Client(base_url="local") as client:
            print(client.base_url, client.is_local)   # http://127.0.0.1:54321 True
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        project_id: str | None = None,
        base_url: str | None = None,
        provider: Provider | str = "zerogpu",
        timeout: float | httpx.Timeout = 60.0,
        max_retries: int = 5,
        poll_interval: float | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, not {max_retries}")
        if poll_interval is not None and not poll_interval > 0:
            raise ValueError(
                f"poll_interval must be a positive number of seconds, not {poll_interval}"
            )
        self._settings = resolve_settings(
            api_key=api_key, project_id=project_id, base_url=base_url, provider=provider
        )
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_retries = max_retries
        self._poll_interval = poll_interval
        from . import __version__

        self._user_agent = f"zgpu-pandas/{__version__} httpx/{httpx.__version__}"
        self._owns_http = http_client is None
        # The key is added per request, never to the pool's default headers, so it does not
        # sit in an object the caller may print or share; redirects are never followed, so it
        # cannot be carried to a host it was not meant for.
        self._http = http_client or httpx.Client(timeout=self._timeout, follow_redirects=False)
        self.files = Files(self)
        self.batches = Batches(self)

    # -- public properties -------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The service root, without ``/v1`` (e.g. ``https://api.zerogpu.ai``)."""
        return self._settings.base_url

    @property
    def provider(self) -> Provider:
        return self._settings.provider

    @property
    def project_id(self) -> str | None:
        return self._settings.project_id

    @property
    def retry_policy(self) -> RetryPolicy:
        """How requests are retried (``max_retries`` may be changed on a live client)."""
        return RetryPolicy(max_retries=self.max_retries)

    @property
    def is_local(self) -> bool:
        """``True`` for a loopback server (or ``base_url="local"``): fast polling is fine."""
        return self._settings.is_local

    @property
    def timeout(self) -> httpx.Timeout:
        return self._timeout

    @property
    def poll_interval(self) -> float:
        """The interval :meth:`Batches.wait` uses when none is given."""
        if self._poll_interval is not None:
            return self._poll_interval
        return LOCAL_POLL_INTERVAL if self.is_local else DEFAULT_POLL_INTERVAL

    def __repr__(self) -> str:
        return (
            f"Client(base_url={self.base_url!r}, provider={self.provider!r}, "
            f"project_id={self.project_id!r})"
        )

    def close(self) -> None:
        """Close the connection pool (unless it was passed in as ``http_client``)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """Remove the key from text a server sent back (a misbehaving proxy may echo headers)."""
        key = self._settings.api_key.get_secret_value()
        if len(key) >= _MIN_SCRUB_LEN and key in text:
            text = text.replace(key, "***")
        return text

    def _header(self, response: httpx.Response, name: str, default: str | None = None) -> str | None:
        """A response header as it may reach a message or a log: scrubbed of the key (a
        proxy may reflect request headers into a request id or a redirect's Location)."""
        value = response.headers.get(name)
        return default if value is None else self._scrub(value)

    def _scrub_obj(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self._scrub(obj)
        if isinstance(obj, Mapping):
            return {self._scrub(str(k)): self._scrub_obj(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._scrub_obj(v) for v in obj]
        return obj

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        headers.update(self._settings.auth_headers())
        if extra:
            headers.update(extra)
        return headers

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | Iterator[bytes] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """One attempt. Returns a 2xx response; raises our exceptions for anything else."""
        url = self.base_url + path
        extra = dict(headers or {})
        if json is not None:
            content = orjson.dumps(json)
            extra["Content-Type"] = "application/json"
        request = self._http.build_request(
            method,
            url,
            params={k: v for k, v in (params or {}).items() if v is not None},
            content=content,
            headers=self._headers(extra),
            timeout=timeout or self._timeout,
        )
        try:
            response = self._http.send(request, stream=stream, follow_redirects=False)
        except httpx.TimeoutException as exc:
            if _timeout_error(exc):
                raise APITimeoutError(
                    f"{method} {path} timed out: no answer from {self.base_url} in time "
                    f"(the request may have been processed)",
                    method=method,
                    url=url,
                    request_sent=True,
                ) from exc
            raise self._connection_error(exc, method, path) from exc
        except httpx.TransportError as exc:
            raise self._connection_error(exc, method, path) from exc
        request_id = self._header(response, "x-request-id")
        logger.debug("%s %s -> %s (%s)", method, path, response.status_code, request_id)
        if response.status_code < 300:
            return response
        try:
            response.read()
        except httpx.TransportError as exc:
            raise self._connection_error(exc, method, path) from exc
        finally:
            response.close()
        raise self._status_error(response, method, path)

    def _connection_error(
        self, exc: httpx.TransportError, method: str, path: str
    ) -> APIConnectionError:
        sent = not _never_sent(exc)
        reason = self._scrub(str(exc) or type(exc).__name__)
        if sent:
            tail = "the connection was lost before a complete answer arrived"
        else:
            tail = "could not connect"
        return APIConnectionError(
            f"{method} {path} to {self.base_url}: {tail} ({reason})",
            method=method,
            url=self.base_url + path,
            request_sent=sent,
        )

    def _status_error(self, response: httpx.Response, method: str, path: str) -> APIStatusError:
        status = response.status_code
        request_id = self._header(response, "x-request-id")
        body: Any
        try:
            body = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            body = response.text[:2000]
        body = self._scrub_obj(body)
        err = body.get("error") if isinstance(body, Mapping) else None
        message = code = type_ = param = None
        line = None
        if isinstance(err, Mapping):
            message = err.get("message")
            code, type_, param = err.get("code"), err.get("type"), err.get("param")
            raw_line = err.get("line")
            line = (
                raw_line if isinstance(raw_line, int) and not isinstance(raw_line, bool) else None
            )
        elif isinstance(err, str):
            message = err
        elif isinstance(body, Mapping) and isinstance(body.get("message"), str):
            message = body["message"]
        if 300 <= status < 400:
            location = self._header(response, "location", "?")
            return APIStatusError(
                f"{method} {path} was redirected to {location}; redirects are not followed so "
                "the API key is never sent to another host. Set base_url to the final address",
                status_code=status,
                request_id=request_id,
                body=body,
            )
        if not message:
            snippet = body.strip()[:200] if isinstance(body, str) else ""
            message = f"{method} {path} failed with HTTP {status}" + (
                f": {snippet}" if snippet else ""
            )
        cls = status_error_class(status, str(code) if code else None, str(type_) if type_ else None)
        kwargs: dict[str, Any] = {
            "status_code": status,
            "request_id": request_id,
            "code": str(code) if code is not None else None,
            "type": str(type_) if type_ is not None else None,
            "param": str(param) if param is not None else None,
            "body": body,
            "retry_after": parse_retry_after(response.headers),
            "hint": self._hint(status, cls),
        }
        if cls is BadRequestError:
            kwargs["line"] = line
        return cls(str(message), **kwargs)

    def _hint(self, status: int, cls: type[APIStatusError]) -> str | None:
        s = self._settings
        if status == 401:
            if s.provider == "zerogpu" and not s.project_id:
                # the common case: a key was set, the project id was not
                return (
                    f"No project id was sent (x-project-id): set ZGPU_PROJECT_ID (or pass "
                    f"project_id=..., zgpu-pandas --project-id); the key came from {s.key_source}"
                )
            what = (
                "the key"
                if s.provider == "openai"
                else "the key (x-api-key) and project id (x-project-id)"
            )
            return f"Check that {what} are set; the key came from {s.key_source}"
        if status == 403:
            project = f"project {s.project_id!r}" if s.project_id else "no project id"
            return (
                f"The key (from {s.key_source}) was refused for {project} at {s.base_url}: "
                "check that it is active and belongs to that project"
            )
        if cls is InsufficientQuotaError:
            return "The account is out of credit; add credit and run again (not retried)"
        return None

    def _backoff(self, attempt: int, exc: Exception) -> float | None:
        """Seconds to wait before retry number ``attempt + 1``; ``None`` means do not retry."""
        return self.retry_policy.delay(
            attempt, retry_after=getattr(exc, "retry_after", None), rand=_random
        )

    def _retryable(self, exc: Exception, *, idempotent: bool) -> bool:
        if isinstance(exc, APIConnectionError):
            return idempotent or not exc.request_sent
        if isinstance(exc, APIStatusError) and transient_status(exc.status_code, exc.code):
            # a 429 means "not processed": safe to repeat for any method
            return idempotent or isinstance(exc, RateLimitError)
        return False

    def _sleep_before_retry(self, attempt: int, exc: Exception, what: str) -> bool:
        """Sleep before the next attempt; ``False`` when retries are used up (or refused)."""
        delay = self._backoff(attempt, exc)
        if delay is None:
            return False
        logger.info(
            "%s failed (%s); retry %d of %d in %.2f s",
            what,
            _short(exc),
            attempt + 1,
            self.max_retries,
            delay,
        )
        _sleep(delay)
        return True

    def _request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        state: _RetryState | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries (connection errors, 429 rate limit, and 5xx when idempotent)."""
        state = state or _RetryState()
        while True:
            try:
                return self._send(method, path, **kwargs)
            except (APIConnectionError, APIStatusError) as exc:
                if isinstance(exc, APIConnectionError) and exc.request_sent:
                    state.ambiguous = True
                if not self._retryable(exc, idempotent=idempotent):
                    raise
                if not self._sleep_before_retry(state.attempts, exc, f"{method} {path}"):
                    raise
                state.attempts += 1

    def _json(self, response: httpx.Response) -> Any:
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            ctype = self._header(response, "content-type", "?")
            snippet = self._scrub(response.text[:200])
            raise APIResponseValidationError(
                f"{response.request.method} {response.request.url.path}: expected JSON, got "
                f"{ctype}: {snippet!r}",
                status_code=response.status_code,
                request_id=self._header(response, "x-request-id"),
            ) from None
        # An answer that echoes the key (a reflecting proxy) would carry it into objects'
        # reprs and the journal: scrubbed, at the cost of one byte search per answer.
        key = self._settings.api_key.get_secret_value()
        if len(key) >= _MIN_SCRUB_LEN and key.encode() in response.content:
            data = self._scrub_obj(data)
        return data

    def _object(self, response: httpx.Response) -> Mapping[str, Any]:
        data = self._json(response)
        if not isinstance(data, Mapping):
            raise APIResponseValidationError(
                f"{response.request.method} {response.request.url.path}: expected a JSON object, "
                f"got {type(data).__name__}",
                status_code=response.status_code,
                request_id=self._header(response, "x-request-id"),
            )
        return data

    def _paginate(
        self, path: str, params: Mapping[str, Any], parse: Callable[[Mapping[str, Any]], T]
    ) -> Iterator[T]:
        after: str | None = None
        seen: set[str] = set()
        while True:
            page = self._object(self._request("GET", path, params={**params, "after": after}))
            data = page.get("data") or []
            for item in data:
                yield parse(item)
            if not page.get("has_more") or not data:
                return
            last = page.get("last_id") or (
                data[-1].get("id") if isinstance(data[-1], Mapping) else None
            )
            # A server that repeats a cursor would otherwise loop forever.
            if not last or last in seen:
                logger.warning("%s: pagination cursor %r repeated or missing; stopping", path, last)
                return
            seen.add(last)
            after = str(last)


def _short(exc: Exception) -> str:
    if isinstance(exc, APIStatusError):
        return f"HTTP {exc.status_code}" + (f" {exc.code}" if exc.code else "")
    return type(exc).__name__


def _path_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    # Quoted as one path segment: an id like "../batches" must not walk to another endpoint.
    return quote(value, safe="")


# -- uploads ------------------------------------------------------------------------------


class _Source:
    """An upload source: its name, size if known, and a way to (re)read it in chunks."""

    def __init__(
        self,
        filename: str,
        size: int | None,
        opener: Callable[[], Iterator[bytes]],
        *,
        replayable: bool,
        description: str,
    ) -> None:
        self.filename = filename
        self.size = size
        self._opener = opener
        self.replayable = replayable
        self.description = description
        self.started = False
        self.sent = 0

    def chunks(self) -> Iterator[bytes]:
        """A fresh pass over the data (counts bytes sent, marks one-shot sources as used)."""
        self.sent = 0
        self.started = True
        for chunk in self._opener():
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise TypeError(
                    f"upload chunks must be bytes, got {type(chunk).__name__} from {self.description}"
                )
            self.sent += len(chunk)
            yield bytes(chunk) if not isinstance(chunk, bytes) else chunk

    @property
    def can_retry(self) -> bool:
        return self.replayable or not self.started


def _read_path(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(_UPLOAD_CHUNK):
            yield chunk


def _read_fileobj(fh: IO[bytes], start: int | None) -> Iterator[bytes]:
    if start is not None:
        fh.seek(start)
    while chunk := fh.read(_UPLOAD_CHUNK):
        if isinstance(chunk, str):
            raise TypeError("the file object is open in text mode; open it with 'rb' to upload it")
        yield chunk


def _slices(data: bytes | bytearray | memoryview) -> Iterator[bytes]:
    if isinstance(data, bytes):
        yield data  # sent as is: no copy
        return
    view = memoryview(data).cast("B")
    for i in range(0, len(view), _UPLOAD_CHUNK):
        yield bytes(view[i : i + _UPLOAD_CHUNK])


def _make_source(source: Any, filename: str | None) -> _Source:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            hint = ""
            if isinstance(source, str) and (source.lstrip().startswith("{") or "\n" in source):
                hint = " (a str is read as a path; to upload text, pass it as bytes: text.encode())"
            raise FileNotFoundError(f"cannot upload {str(source)[:80]!r}: no such file{hint}")
        return _Source(
            filename or path.name,
            path.stat().st_size,
            lambda: _read_path(path),
            replayable=True,
            description=f"file {path.name!r}",
        )
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = source
        return _Source(
            filename or "input.jsonl",
            memoryview(data).nbytes,
            lambda: _slices(data),
            replayable=True,
            description="bytes",
        )
    if hasattr(source, "read"):
        fh: IO[bytes] = source
        raw_name = getattr(fh, "name", None)
        name = filename or (
            Path(raw_name).name
            if isinstance(raw_name, str) and not raw_name.startswith("<")
            else "input.jsonl"
        )
        seekable = False
        try:
            seekable = bool(fh.seekable())
        except (AttributeError, OSError, ValueError):
            seekable = False
        if seekable:
            start = fh.tell()
            size = fh.seek(0, os.SEEK_END) - start
            fh.seek(start)
            return _Source(
                name,
                size,
                lambda: _read_fileobj(fh, start),
                replayable=True,
                description=f"file object {name!r}",
            )
        return _Source(
            name,
            None,
            lambda: _read_fileobj(fh, None),
            replayable=False,
            description=f"non-seekable stream {name!r}",
        )
    if isinstance(source, Iterable):
        iterable: Iterable[Any] = source
        # An iterator is exhausted by one pass; a list/tuple/custom iterable can be re-read.
        one_shot = iter(iterable) is iterable
        return _Source(
            filename or "input.jsonl",
            None,
            lambda: iter(iterable),
            replayable=not one_shot,
            description="iterator of chunks" if one_shot else "iterable of chunks",
        )
    raise TypeError(
        "upload source must be a path, bytes, a binary file object or an iterable of bytes, "
        f"not {type(source).__name__}"
    )


def _disposition_value(name: str) -> str:
    # HTML5 form encoding of a filename: escape the characters that would end the header.
    return name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _multipart(
    source: _Source, purpose: str, boundary: str
) -> tuple[int | None, Callable[[], Iterator[bytes]]]:
    """A streaming multipart/form-data body: (length if known, body factory)."""
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="purpose"\r\n\r\n'
        f"{purpose}\r\n"
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{_disposition_value(source.filename)}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = None if source.size is None else len(head) + source.size + len(tail)

    def body() -> Iterator[bytes]:
        yield head
        yield from source.chunks()
        yield tail

    return length, body


class Files:
    """``client.files``: upload, list, retrieve, delete, and stream file contents."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def upload(
        self, source: UploadSource, *, filename: str | None = None, purpose: str = "batch"
    ) -> FileObject:
        """Upload a JSONL file, streamed from ``source`` (never read into memory whole).

        ``source`` is a path (``str``/``Path``), ``bytes``, a binary file object, or an
        iterable of ``bytes`` chunks. Paths, bytes, seekable files and re-iterables (lists)
        are retried after a dropped connection; a one-shot iterator or pipe cannot be
        replayed, so a failure part-way raises :class:`UploadNotRetryableError`. Example::

            f = client.files.upload("reviews.jsonl")
            f = client.files.upload(b'{"custom_id": "a", ...}\\n', filename="tiny.jsonl")
        """
        c = self._client
        src = _make_source(source, filename)
        if src.size is not None and c.provider == "zerogpu" and src.size > MAX_UPLOAD_BYTES:
            raise PayloadTooLargeError(
                f"{src.description} is {src.size:,} bytes; the service accepts at most "
                f"{MAX_UPLOAD_BYTES:,} bytes (100 MB) per upload. Split the input into smaller "
                "files (nothing was sent)",
                status_code=413,
                code="file_too_large",
            )
        attempt = 0
        while True:
            boundary = uuid.uuid4().hex
            length, body = _multipart(src, purpose, boundary)
            headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
            if length is not None:
                headers["Content-Length"] = str(length)
            try:
                response = c._send("POST", "/v1/files", content=body(), headers=headers)
                return FileObject.from_dict(c._object(response))
            except (APIConnectionError, APIStatusError) as exc:
                # An upload that fails part-way stores nothing, so repeating it is safe
                # whenever the bytes can be produced again.
                retryable = isinstance(exc, (APIConnectionError, RateLimitError)) or (
                    isinstance(exc, APIStatusError) and exc.status_code >= 500
                )
                if not retryable:
                    raise
                if not src.can_retry:
                    if isinstance(exc, APIConnectionError):
                        raise UploadNotRetryableError(
                            f"The upload of {src.description} failed after {src.sent:,} bytes "
                            f"({exc.message}), and it cannot be retried: a one-shot stream cannot "
                            "be read twice. Pass a path, bytes, a seekable file or a list of "
                            "chunks to let the client retry.",
                            method="POST",
                            url=exc.url,
                            request_sent=exc.request_sent,
                        ) from exc
                    raise
                if not c._sleep_before_retry(attempt, exc, f"upload of {src.description}"):
                    raise
                attempt += 1

    def list(
        self, *, purpose: str | None = None, order: str = "desc", limit: int | None = None
    ) -> Iterator[FileObject]:
        """Iterate over the project's files, following ``after``/``has_more`` across pages.

        ``limit`` is the page size sent to the API (1..10000), not a cap on the total: use
        ``itertools.islice`` for that. ``purpose`` filters (``batch`` or ``batch_output``).
        Example::

            for f in client.files.list(purpose="batch_output"):
                print(f.id, f.bytes)
        """
        if order not in ("asc", "desc"):
            raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
        _check_limit(limit)
        params = {"purpose": purpose, "order": order, "limit": limit}
        return self._client._paginate("/v1/files", params, FileObject.from_dict)

    def retrieve(self, file_id: str) -> FileObject:
        """The file's metadata (no content). Raises :class:`NotFoundError` if it is gone."""
        path = f"/v1/files/{_path_id(file_id, 'file_id')}"
        return FileObject.from_dict(self._client._object(self._client._request("GET", path)))

    def delete(self, file_id: str) -> FileDeleted:
        """Delete a file (a running batch that reads it is not affected).

        If an earlier attempt was lost on the way back and the retry finds the file already
        gone, the delete is reported as done rather than as a 404.
        """
        c = self._client
        path = f"/v1/files/{_path_id(file_id, 'file_id')}"
        state = _RetryState()
        try:
            return FileDeleted.from_dict(c._object(c._request("DELETE", path, state=state)))
        except NotFoundError:
            if state.ambiguous:
                logger.info(
                    "delete of %s: the first attempt went through; the file is gone", file_id
                )
                return FileDeleted(id=file_id, deleted=True)
            raise

    def iter_bytes(self, file_id: str, *, chunk_size: int | None = None) -> Iterator[bytes]:
        """Stream a file's content in chunks. A dropped connection resumes where it stopped
        (``Range``, or a restart that skips what was already delivered): every byte is
        delivered exactly once, in order. Chunks come as they arrive unless ``chunk_size``
        asks for fixed-size ones. Example::

            with open("out.jsonl", "wb") as fh:
                for chunk in client.files.iter_bytes(file_id):
                    fh.write(chunk)
        """
        c = self._client
        path = f"/v1/files/{_path_id(file_id, 'file_id')}/content"
        offset = 0
        attempt = 0
        while True:
            headers = {"Accept": "*/*", "Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            try:
                response = c._send("GET", path, headers=headers, stream=True)
            except (APIConnectionError, APIStatusError) as exc:
                if not c._retryable(exc, idempotent=True) or not c._sleep_before_retry(
                    attempt, exc, f"download of {file_id}"
                ):
                    raise
                attempt += 1
                continue
            expected: int | None = None
            try:
                skip = 0
                if response.status_code == 206 and _range_start(response) == offset:
                    expected = _range_total(response)
                else:
                    # A full body: after a resume, drop what the caller already has.
                    skip = offset
                    length = response.headers.get("content-length")
                    expected = int(length) if length and length.isdigit() else None
                for chunk in response.iter_bytes(chunk_size):
                    if skip:
                        if len(chunk) <= skip:
                            skip -= len(chunk)
                            continue
                        chunk, skip = chunk[skip:], 0
                    offset += len(chunk)
                    attempt = 0  # progress was made: a long download may survive many hiccups
                    yield chunk
            except httpx.TransportError as exc:
                err = c._connection_error(exc, "GET", path)
                if not c._sleep_before_retry(
                    attempt, err, f"download of {file_id} at byte {offset:,}"
                ):
                    raise err from exc
                attempt += 1
                continue
            finally:
                response.close()
            if expected is None:
                # No length announced (chunked): the file's metadata says how long it is.
                expected = self.retrieve(file_id).bytes
            if expected is not None and offset < expected:
                err = APIConnectionError(
                    f"download of {file_id} ended at byte {offset:,} of {expected:,}",
                    method="GET",
                    url=c.base_url + path,
                )
                if not c._sleep_before_retry(attempt, err, f"download of {file_id}"):
                    raise err
                attempt += 1
                continue
            return

    def iter_lines(self, file_id: str) -> Iterator[bytes]:
        """Stream a JSONL file line by line, in bounded memory.

        Each line comes without its line ending; blank lines are skipped. Resumes after a
        dropped connection without repeating or losing a line. Example::

            import orjson
            for raw in client.files.iter_lines(batch.output_file_id):
                row = orjson.loads(raw)
        """
        pending = bytearray()
        for chunk in self.iter_bytes(file_id):
            nl = chunk.find(b"\n")
            if nl == -1:
                pending += chunk
                continue
            start = 0
            if pending:
                pending += chunk[:nl]
                line = bytes(pending)
                pending.clear()
                start = nl + 1
                if line.strip():
                    yield line.rstrip(b"\r")
            while (nl := chunk.find(b"\n", start)) != -1:
                line = chunk[start:nl]
                start = nl + 1
                if line.strip():
                    yield line.rstrip(b"\r")
            pending += chunk[start:]
        if pending.strip():
            yield bytes(pending).rstrip(b"\r")

    def download(self, file_id: str, path: str | os.PathLike[str]) -> Path:
        """Stream a file to ``path`` (a file, or a directory to hold ``<file_id>.jsonl``).

        Written to a temporary file next to the target and renamed into place at the end,
        so ``path`` never holds half a file, even if the process dies mid-download. Example::

            client.files.download(batch.output_file_id, "results/output.jsonl")
        """
        target = Path(path)
        if target.is_dir():
            target = target / f"{file_id}.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, self.iter_bytes(file_id))
        return target


def _range_start(response: httpx.Response) -> int | None:
    # "bytes 100-199/200"
    value = response.headers.get("content-range", "")
    try:
        return int(value.split(" ", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


def _range_total(response: httpx.Response) -> int | None:
    value = response.headers.get("content-range", "")
    total = value.rsplit("/", 1)[-1] if "/" in value else ""
    return int(total) if total.isdigit() else None


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"limit must be a positive int (the page size), not {limit!r}")


# -- batches ------------------------------------------------------------------------------


class Batches:
    """``client.batches``: create (at most once), retrieve, list, cancel, wait."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def create(
        self,
        *,
        input_file_id: str,
        endpoint: str = BATCH_ENDPOINT,
        completion_window: str = "24h",
        metadata: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Batch:
        """Create a batch from an uploaded input file, and never create it twice.

        The client stores a token under ``metadata["zgpu_client_token"]`` (a fresh one, or
        the one you pass, e.g. from a job journal). When an attempt's outcome is unknown (the
        connection dropped after sending, a timeout, a 5xx) the recent batches are searched
        for that token before anything is sent again. Validation is synchronous, so the read
        timeout of a create is at least 300 s unless ``timeout`` says otherwise. Example::

            batch = client.batches.create(input_file_id=f.id, metadata={"job": "reviews"})
            batch.status, batch.request_counts.total     # ('in_progress', 3)
        """
        c = self._client
        meta = {str(k): v for k, v in (metadata or {}).items()}
        token = str(meta.get(CLIENT_TOKEN_KEY) or uuid.uuid4().hex)
        meta[CLIENT_TOKEN_KEY] = token
        problem = check_metadata(meta)
        if problem is not None:  # the service would refuse it: say so before sending
            raise OptionError(f"metadata=: {problem}; nothing was sent.")
        body = {
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": completion_window,
            "metadata": meta,
        }
        if timeout is not None:
            http_timeout = httpx.Timeout(timeout)
        else:
            base = c.timeout
            read = max(base.read or 0.0, _CREATE_READ_TIMEOUT)
            http_timeout = httpx.Timeout(base.connect, read=read, write=base.write, pool=base.pool)
        started = int(time.time())
        attempt = 0
        unknown = False
        while True:
            if unknown:
                found = self._reconcile(token, started)
                if found is not None:
                    return found
            try:
                response = c._send("POST", "/v1/batches", json=body, timeout=http_timeout)
                return Batch.from_dict(c._object(response))
            except APIConnectionError as exc:
                last: APIConnectionError | APIStatusError = exc
                unknown = unknown or exc.request_sent
            except APIStatusError as exc:
                if not (isinstance(exc, RateLimitError) or exc.status_code >= 500):
                    raise
                last = exc
                # A 5xx may come from a gateway after the service committed the batch.
                unknown = unknown or exc.status_code >= 500
            if not c._sleep_before_retry(attempt, last, "batch create"):
                if unknown:
                    found = self._reconcile(token, started)
                    if found is not None:
                        return found
                raise last
            attempt += 1

    def _reconcile(self, token: str, started: int) -> Batch | None:
        """After an attempt with unknown outcome: the batch it created, if any."""
        try:
            found = self.find_by_token(token, created_after=started - _TOKEN_LOOKBACK)
        except (APIConnectionError, APIStatusError) as exc:
            raise CreateOutcomeUnknownError(
                "A batch create was sent but its answer was lost, and listing batches to check "
                f"whether it exists failed too ({_short(exc)}). Before creating it again, look "
                f'for a batch with metadata["{CLIENT_TOKEN_KEY}"] == "{token}" '
                "(client.batches.find_by_token(token)).",
                client_token=token,
                method="POST",
                url=self._client.base_url + "/v1/batches",
            ) from exc
        if found is None:
            logger.info("batch create: no batch carries token %s yet; sending again", token)
            return None
        logger.info("batch create: the earlier attempt created %s; not sending again", found.id)
        if found.status == "failed" and found.errors:
            # The lost answer was a validation failure: say so as the answer would have.
            first = found.errors[0]
            raise BadRequestError(
                first.message or "the input file failed validation",
                status_code=400,
                code=first.code,
                param=first.param,
                line=first.line,
                body=found.to_dict(),
            )
        return found

    def find_by_token(self, token: str, *, created_after: int | None = None) -> Batch | None:
        """The batch whose ``metadata["zgpu_client_token"]`` is ``token``, or ``None``.

        Scans the newest batches first and stops at ``created_after`` (Unix seconds). Used to
        find out whether a create whose answer was lost (or a process that died right after
        sending it) went through. Example::

            batch = client.batches.find_by_token(journal_entry.token)
        """
        for seen, batch in enumerate(self.list(limit=100), start=1):
            if batch.metadata.get(CLIENT_TOKEN_KEY) == token:
                return batch
            if (
                created_after is not None
                and batch.created_at is not None
                and batch.created_at < created_after
            ):
                return None
            if seen >= _TOKEN_MAX_SCAN:
                return None
        return None

    def retrieve(self, batch_id: str) -> Batch:
        """The batch with its live ``request_counts``. Raises :class:`NotFoundError` if unknown."""
        path = f"/v1/batches/{_path_id(batch_id, 'batch_id')}"
        return Batch.from_dict(self._client._object(self._client._request("GET", path)))

    def list(self, *, limit: int | None = None) -> Iterator[Batch]:
        """Iterate over the project's batches, newest first, across all pages.

        ``limit`` is the page size sent to the API (clamped by the service to 1..100).
        Example::

            running = [b for b in client.batches.list() if not b.is_terminal]
        """
        _check_limit(limit)
        return self._client._paginate("/v1/batches", {"limit": limit}, Batch.from_dict)

    def cancel(self, batch_id: str) -> Batch:
        """Ask the service to stop a batch; returns it in ``cancelling`` (idempotent).

        Lines already dispatched finish; the rest go to the error file as
        ``batch_cancelled``. Raises :class:`ConflictError` if the batch already finished.
        """
        path = f"/v1/batches/{_path_id(batch_id, 'batch_id')}/cancel"
        # The spec makes repeated cancels idempotent, so retrying one is safe.
        return Batch.from_dict(self._client._object(self._client._request("POST", path)))

    def wait(
        self,
        batch_id: str,
        *,
        poll_interval: float | None = None,
        timeout: float | None = None,
        on_update: Callable[[Batch], object] | None = None,
        outage_grace: float | None = None,
    ) -> Batch:
        """Poll until the batch is terminal and return it; ``on_update(batch)`` on every poll.

        The default interval is the client's (30 s for remote hosts, as the service asks;
        0.2 s for a loopback server). ``timeout`` (seconds) raises :class:`WaitTimeoutError`
        carrying the last state; the batch keeps running. A service that cannot be reached
        does not end the wait: polls back off for ``outage_grace`` seconds (30 s for a
        loopback server, 10 min for a remote one) before the last error is raised. Example::

            batch = client.batches.wait(batch.id, on_update=lambda b: print(b.status,
                                                                            b.request_counts))
        """
        if poll_interval is not None and not poll_interval > 0:
            raise OptionError(
                f"poll_interval must be a positive number of seconds, not {poll_interval}"
            )
        interval = poll_interval if poll_interval is not None else self._client.poll_interval
        deadline = None if timeout is None else time.monotonic() + timeout
        # Each poll already retried; a batch runs for hours, and a network outage of a few
        # minutes must not end the wait (the batch does not care).
        outage = Outage(
            grace=outage_grace_for(outage_grace, is_local=self._client.is_local), base=interval
        )
        batch: Batch | None = None
        while True:
            delay = interval
            try:
                batch = self.retrieve(batch_id)
            except (APIConnectionError, RateLimitError, InternalServerError) as exc:
                next_poll = outage.failed()
                if next_poll is None or (deadline is not None and time.monotonic() >= deadline):
                    raise
                delay = next_poll
                logger.warning(
                    "polling batch %s failed (%s); still waiting, next poll in %.1f s",
                    batch_id,
                    _short(exc),
                    delay,
                )
            else:
                outage.ok()
                if on_update is not None:
                    on_update(batch)
                if batch.is_terminal:
                    return batch
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 and batch is not None:
                    counts = batch.request_counts
                    raise WaitTimeoutError(
                        f"batch {batch.id} is still {batch.status} after {timeout} s "
                        f"({counts.done} of {counts.total} lines done); it keeps running on the "
                        f"server: call client.batches.wait({batch.id!r}) to resume waiting",
                        batch=batch,
                    )
                delay = max(0.0, min(delay, remaining))
            _sleep(delay)
