"""The exceptions raised by :class:`zgpu_pandas.Client` and everything built on it.

One root, so ``except ZgpuError`` catches anything this library raises on purpose::

    ZgpuError
    ├── ConfigurationError               bad or missing settings (no key, key/host mismatch, ...)
    ├── WaitTimeoutError                 Batches.wait(timeout=...) ran out; carries the last Batch
    └── APIError                         something went wrong talking to the API
        ├── APIConnectionError           no (complete) answer: refused, dropped, reset
        │   ├── APITimeoutError          the answer took longer than the timeout
        │   ├── UploadNotRetryableError  an upload from a one-shot stream failed; it cannot be replayed
        │   └── CreateOutcomeUnknownError  a batch create may or may not have happened
        ├── APIResponseValidationError   a 2xx answer that is not the JSON the API promises
        └── APIStatusError               the API answered with an error status
            ├── BadRequestError          400  (``.line`` for JSONL validation failures)
            ├── AuthenticationError      401  missing authentication headers
            ├── PermissionDeniedError    403  invalid credentials / key not in the project
            ├── NotFoundError            404  missing, deleted or another project's resource
            ├── ConflictError            409  e.g. cancelling a batch that already finished
            ├── PayloadTooLargeError     413  upload over 100 MB
            ├── TooManyRequestsError     429
            │   ├── RateLimitError       429 rate_limit_exceeded (retried automatically)
            │   └── InsufficientQuotaError  429 insufficient_quota (never retried)
            └── InternalServerError      5xx

Every :class:`APIStatusError` carries ``status_code``, ``request_id`` (the ``x-request-id``
header), ``code``, ``type``, ``param``, ``message`` and the decoded ``body``. Example::

    from zgpu_pandas import Client
    from zgpu_pandas._errors import BadRequestError, InsufficientQuotaError

    try:
        batch = client.batches.create(input_file_id=file.id)
    except BadRequestError as exc:
        print(exc.line, exc.code, exc.message)  # 3 duplicate_custom_id Line 3 duplicates ...
    except InsufficientQuotaError:
        print("top up the account, then run again")

No exception text ever contains the API key: the client scrubs it out of anything a server
echoes back before an exception is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import Batch

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "CreateOutcomeUnknownError",
    "InsufficientQuotaError",
    "InternalServerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "TooManyRequestsError",
    "UploadNotRetryableError",
    "WaitTimeoutError",
    "ZgpuError",
    "status_error_class",
]


class ZgpuError(Exception):
    """Root of every exception raised on purpose by zgpu_pandas."""


class ConfigurationError(ZgpuError, ValueError):
    """The settings cannot work: a missing key, an unknown preset, a key bound for the wrong host."""


class WaitTimeoutError(ZgpuError, TimeoutError):
    """``Batches.wait`` gave up before the batch reached a terminal status.

    The batch keeps running on the server; ``.batch`` is the last state seen, so the wait can
    be resumed with ``client.batches.wait(exc.batch.id)``.
    """

    def __init__(self, message: str, *, batch: Batch) -> None:
        super().__init__(message)
        self.batch = batch


class APIError(ZgpuError):
    """Something went wrong while talking to the API."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(APIError):
    """No complete answer arrived: connection refused, reset or dropped mid-message."""

    def __init__(
        self,
        message: str = "Connection error.",
        *,
        method: str = "",
        url: str = "",
        request_sent: bool = True,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url
        #: ``False`` only when the request certainly never reached the server (connection
        #: refused, connect timeout); ``True`` means it may have been processed.
        self.request_sent = request_sent


class APITimeoutError(APIConnectionError):
    """The server did not answer within the configured timeout."""


class UploadNotRetryableError(APIConnectionError):
    """An upload failed part-way and its source (a one-shot iterator or stream) cannot be replayed.

    Pass a path, ``bytes``, a seekable file object or a re-iterable (e.g. a list of chunks)
    instead, and the client retries uploads on its own.
    """


class CreateOutcomeUnknownError(APIConnectionError):
    """A batch create was sent, its answer was lost, and the client could not find out whether
    the batch exists. ``client_token`` is the value stored under
    ``metadata["zgpu_client_token"]``: look for a batch carrying it before creating another.
    """

    def __init__(self, message: str, *, client_token: str, method: str = "", url: str = "") -> None:
        super().__init__(message, method=method, url=url, request_sent=True)
        self.client_token = client_token


class APIResponseValidationError(APIError):
    """A success status whose body is not the JSON the API promises."""

    def __init__(self, message: str, *, status_code: int, request_id: str | None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.request_id = request_id


class APIStatusError(APIError):
    """The API answered with an error status (4xx or 5xx)."""

    #: the status this class stands for; ``None`` on the generic base
    default_status: int | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        code: str | None = None,
        type: str | None = None,  # mirrors the wire field name
        param: str | None = None,
        body: Any = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.request_id = request_id
        self.code = code
        self.type = type
        self.param = param
        self.body = body
        #: seconds the server asked to wait (``Retry-After``), if it said
        self.retry_after = retry_after
        #: what to do about it, for the person at the keyboard
        self.hint = hint

    def __str__(self) -> str:
        details = [f"status {self.status_code}"]
        if self.code:
            details.append(f"code {self.code}")
        if self.request_id:
            details.append(f"request id {self.request_id}")
        text = f"{self.message} ({', '.join(details)})"
        return f"{text}. {self.hint}" if self.hint else text

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code}, code={self.code!r}, "
            f"request_id={self.request_id!r}, message={self.message!r})"
        )


class BadRequestError(APIStatusError):
    """400: the request or, at batch create, a line of the input JSONL broke a rule.

    For JSONL validation failures ``.line`` is the 1-based line number and ``.code`` names the
    rule (e.g. ``duplicate_custom_id``); the message names both.
    """

    default_status = 400

    def __init__(self, message: str, *, line: int | None = None, **kwargs: Any) -> None:
        if line is not None and f"Line {line}" not in message:
            message = f"Line {line}: {message}"
        super().__init__(message, **kwargs)
        self.line = line

    def __str__(self) -> str:
        text = super().__str__()
        if self.line is not None:
            rule = f"rule {self.code}" if self.code else "a JSONL rule"
            text += f"; fix line {self.line} of the input file ({rule}) and upload it again"
        return text


class AuthenticationError(APIStatusError):
    """401: the authentication headers are missing."""

    default_status = 401


class PermissionDeniedError(APIStatusError):
    """403: the key is not valid, not active, or not part of that project."""

    default_status = 403


class NotFoundError(APIStatusError):
    """404: no such file or batch in this project (or it was deleted)."""

    default_status = 404


class ConflictError(APIStatusError):
    """409: the resource is in a state that forbids the call (e.g. cancel a completed batch)."""

    default_status = 409


class PayloadTooLargeError(APIStatusError):
    """413: the upload is larger than the service accepts (100 MB on ZeroGPU)."""

    default_status = 413


class TooManyRequestsError(APIStatusError):
    """429: common base of the rate-limit and the quota cases."""

    default_status = 429


class RateLimitError(TooManyRequestsError):
    """429 ``rate_limit_exceeded``: slow down; the client already retried with backoff."""


class InsufficientQuotaError(TooManyRequestsError):
    """429 ``insufficient_quota``: the account is out of credit. Never retried: waiting does not help."""


class InternalServerError(APIStatusError):
    """5xx: the service failed. Reads are retried; creates are reconciled before any retry."""


_BY_STATUS: Mapping[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
}


def status_error_class(
    status_code: int, code: str | None, type_: str | None
) -> type[APIStatusError]:
    """The exception class for an error answer, from its status and error code/type."""
    if status_code == 429:
        if "insufficient_quota" in (code, type_):
            return InsufficientQuotaError
        return RateLimitError
    if status_code >= 500:
        return InternalServerError
    return _BY_STATUS.get(status_code, APIStatusError)
