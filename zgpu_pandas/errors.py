"""Every exception zgpu_pandas raises on purpose, in one tree.

One root, so ``except ZgpuError`` catches anything this library raises on purpose. Where a
class is also a built-in kind of error (a bad value, a timeout), it subclasses that too, so
``except ValueError`` keeps working::

    ZgpuError
    ├── ConfigurationError (ValueError)   bad or missing settings (no key, key/host mismatch, ...)
    ├── OptionError (ValueError)          an option of a call is not valid (retries=, timeout=, ...)
    ├── PromptError (ValueError)          prompt, template, messages or chat parameters unusable
    ├── OversizeRowsError (ValueError)    rows over the 1 MB line limit; ``.rows`` names them
    ├── ColumnClashError (ValueError)     result columns would replace the frame's own
    ├── CostLimitError (ValueError)       the estimate exceeds max_cost=; nothing was sent
    ├── StructuredOutputError             replies could not become columns (parse=False works)
    ├── WaitTimeoutError (TimeoutError)   Batches.wait(timeout=...) ran out; carries the last Batch
    ├── JobSubmitError                    submitting stopped part-way; ``.job`` has what was made
    ├── JobTimeoutError (TimeoutError)    job.wait(timeout=...) ran out; the job keeps running
    ├── JobStoppedError                   account-wide failures stopped the job; ``.codes``
    ├── JobNotFoundError (LookupError)    no such job in the journal
    ├── JobNotFoundOnServiceError         a journaled batch is unknown to the service
    ├── RequestLinesUnavailableError      lines to (re)submit cannot be rebuilt here
    ├── JournalCorruptError (RuntimeError)  a journal file cannot be read
    ├── JournalWriteError (OSError)       the journal folder cannot be written
    └── APIError                          something went wrong talking to the API
        ├── APIConnectionError            no (complete) answer: refused, dropped, reset
        │   ├── APITimeoutError           the answer took longer than the timeout
        │   ├── UploadNotRetryableError   an upload from a one-shot stream failed; it cannot be replayed
        │   ├── CreateOutcomeUnknownError a batch create may or may not have happened
        │   └── JobUnreachableError       a job's wait gave up on an outage; the batches keep running
        ├── APIResponseValidationError    a 2xx answer that is not the JSON the API promises
        └── APIStatusError                the API answered with an error status
            ├── BadRequestError           400  (``.line`` for JSONL validation failures)
            ├── AuthenticationError       401  missing authentication headers
            ├── PermissionDeniedError     403  invalid credentials / key not in the project
            ├── NotFoundError             404  missing, deleted or another project's resource
            ├── ConflictError             409  e.g. cancelling a batch that already finished
            ├── PayloadTooLargeError      413  upload over 100 MB
            ├── TooManyRequestsError      429
            │   ├── RateLimitError        429 rate_limit_exceeded (retried automatically)
            │   └── InsufficientQuotaError  429 insufficient_quota (never retried)
            └── InternalServerError       5xx

Every :class:`APIStatusError` carries ``status_code``, ``request_id`` (the ``x-request-id``
header), ``code``, ``type``, ``param``, ``message`` and the decoded ``body``. The job errors
carry the job (``.job``) so that what was already paid for stays in reach. Example::

    from zgpu_pandas import Client
    from zgpu_pandas.errors import BadRequestError, InsufficientQuotaError

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
    from .core.job import BatchJob

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ColumnClashError",
    "ConfigurationError",
    "ConflictError",
    "CostLimitError",
    "CreateOutcomeUnknownError",
    "InsufficientQuotaError",
    "InternalServerError",
    "JobNotFoundError",
    "JobNotFoundOnServiceError",
    "JobStoppedError",
    "JobSubmitError",
    "JobTimeoutError",
    "JobUnreachableError",
    "JournalCorruptError",
    "JournalWriteError",
    "NotFoundError",
    "OptionError",
    "OversizeRowsError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PromptError",
    "RateLimitError",
    "RequestLinesUnavailableError",
    "StructuredOutputError",
    "TooManyRequestsError",
    "UploadNotRetryableError",
    "WaitTimeoutError",
    "ZgpuError",
    "status_error_class",
]


class ZgpuError(Exception):
    """Root of every exception raised on purpose by zgpu_pandas.

    Every one can be pickled, so that an error raised on a Dask worker reaches the client as
    itself, message and all: attributes that cannot travel (the ``job`` of a
    :class:`JobTimeoutError`, a key) are left behind (``None`` on the other side)."""

    def __reduce__(self) -> tuple[Any, ...]:
        # what cannot travel arrives as None (err.job exists, and says it stayed behind)
        state = {k: (v if _travels(v) else None) for k, v in vars(self).items()}
        return (_rebuild_error, (type(self), self.args, state))


def _travels(value: Any) -> bool:
    import pickle

    try:
        pickle.dumps(value)
    except Exception:  # a job, a client, a lock, a secret: stays behind
        return False
    return True


def _rebuild_error(cls: type[ZgpuError], args: tuple[Any, ...], state: dict[str, Any]) -> ZgpuError:
    """A :class:`ZgpuError` back from a pickle, without calling its ``__init__`` (which may
    want what was left behind)."""
    err = cls.__new__(cls)
    Exception.__init__(err, *args)
    vars(err).update(state)
    return err


class ConfigurationError(ZgpuError, ValueError):
    """The settings cannot work: a missing key, an unknown preset, a key bound for the wrong host."""


class OptionError(ZgpuError, ValueError):
    """An option given to a call is not valid (``retries=``, ``timeout=``, ``fresh=``,
    ``poll_interval=``, ...). The message names the option and what it takes. Raised before
    anything is uploaded."""


class PromptError(ZgpuError, ValueError):
    """The prompt, template, messages or chat parameters cannot be turned into requests.

    The message names the column or row and says how to fix it. Raised before anything is
    uploaded."""


class OversizeRowsError(ZgpuError, ValueError):
    """Some rows would make a request line over the 1 MB per-line limit.

    Raised before anything is uploaded (``on_oversize="raise"``, the default). ``rows`` is a
    frame of the caller's kind (a pandas DataFrame for ``df.zgpu``, a Polars one for
    ``pl_df.zgpu``) with the ``position``, ``label`` and ``bytes`` of each offending row."""

    def __init__(self, message: str, rows: Any) -> None:
        super().__init__(message)
        self.rows = rows


class ColumnClashError(ZgpuError, ValueError):
    """The result columns would replace columns the frame already has."""


class CostLimitError(ZgpuError, ValueError):
    """The job's estimated cost exceeds ``max_cost=``: refused before anything is uploaded or
    sent. ``estimate_usd`` is the figure compared, ``max_cost`` the limit."""

    def __init__(self, message: str, *, estimate_usd: float, max_cost: float) -> None:
        super().__init__(message)
        self.estimate_usd = estimate_usd
        self.max_cost = max_cost


class StructuredOutputError(ZgpuError):
    """The structured replies could not be turned into columns. Nothing is lost: the answers
    are in the job (and its journal), and ``parse=False`` returns them as raw JSON text."""


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


class JobUnreachableError(APIConnectionError):
    """Waiting gave up: the service could not be reached for longer than the outage grace
    (``wait(outage_grace=...)``). The batches keep running on the service; ``job.wait()``,
    ``job.result()`` or the same call run again (it resumes from the journal) pick the job
    up once the service answers."""

    def __init__(self, message: str, *, job: BatchJob, method: str = "", url: str = "") -> None:
        super().__init__(message, method=method, url=url, request_sent=True)
        self.job = job


class JobSubmitError(ZgpuError):
    """Submitting a job stopped part-way. ``job`` holds what was created: the batches in
    ``job.batch_ids`` keep running; ``job.submit()`` submits the rest, ``job.cancel()``
    stops them."""

    def __init__(self, message: str, *, job: BatchJob) -> None:
        super().__init__(message)
        self.job = job


class JobTimeoutError(ZgpuError, TimeoutError):
    """``wait(timeout=...)`` ran out. The job keeps running; ``job.wait()`` resumes."""

    def __init__(self, message: str, *, job: BatchJob) -> None:
        super().__init__(message)
        self.job = job


class JobStoppedError(ZgpuError):
    """Rows failed for an account-wide reason (``insufficient_quota``,
    ``authentication_error``): the job stopped instead of resubmitting anything, and its
    batches still running were cancelled. ``job`` holds what finished
    (``job.result(wait=False)``); ``codes`` counts the rows per account-wide code."""

    def __init__(self, message: str, *, job: BatchJob, codes: Mapping[str, int]) -> None:
        super().__init__(message)
        self.job = job
        self.codes = dict(codes)


class JobNotFoundError(ZgpuError, LookupError):
    """No job with that id in the journal folder; ``zgpu_pandas.jobs()`` lists the ones there."""


class JobNotFoundOnServiceError(ZgpuError):
    """A journaled job names a batch the service does not know (another server or data
    directory, another project, or deleted). Nothing was resubmitted."""


class RequestLinesUnavailableError(ZgpuError):
    """The request lines to submit or resubmit cannot be rebuilt here (their input files are
    gone from the service, or the job was attached without its frame): run the call again
    from the frame."""


class JournalCorruptError(ZgpuError, RuntimeError):
    """A journal file cannot be read. Nothing is resubmitted when this is raised: the
    message names the file and how to recover (inspect it, or move it away and pass
    ``fresh=True`` knowingly)."""


class JournalWriteError(ZgpuError, OSError):
    """The journal folder cannot be written. Raised before anything is uploaded for a new
    job: a job that could not be recorded could not be resumed. Raised mid-job too (a full
    disk): the message says what was kept and how to go on; ``errno`` is the OS's."""


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
