"""zgpu_pandas: the ZeroGPU Batch API as a one-liner for pandas.

Importing the package registers the ``df.zgpu`` accessor. Example::

    import pandas as pd
    import zgpu_pandas  # registers df.zgpu

    df = pd.DataFrame({"review": ["Great!", "Broke after a day."]})
    out = df.zgpu.batch_chat("review", model="LFM2.5-1.2B-Instruct", base_url="local")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors
from ._catalog import models
from ._client import Client
from ._compare import Comparison, compare
from ._import_hooks import install as _install_namespaces
from ._listing import jobs
from ._local import local_server
from ._models import TERMINAL_STATUSES, Batch, BatchError, FileDeleted, FileObject, RequestCounts
from ._progress import JobStatus
from ._prune import prune_jobs
from ._run_files import run_files
from .core.estimate import ChatEstimate
from .core.job import ACCOUNT_CODES, TRANSIENT_CODES, BatchJob
from .core.resume import attach
from .errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ColumnClashError,
    ConfigurationError,
    ConflictError,
    CostLimitError,
    CreateOutcomeUnknownError,
    InsufficientQuotaError,
    InternalServerError,
    JobNotFoundError,
    JobNotFoundOnServiceError,
    JobStoppedError,
    JobSubmitError,
    JobTimeoutError,
    JobUnreachableError,
    JournalCorruptError,
    JournalWriteError,
    NotFoundError,
    OptionError,
    OversizeRowsError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PromptError,
    RateLimitError,
    RequestLinesUnavailableError,
    StructuredOutputError,
    TooManyRequestsError,
    UploadNotRetryableError,
    WaitTimeoutError,
    ZgpuError,
)
from .frames import pandas as _pandas_frames  # noqa: F401  (registers the df.zgpu accessor)
from .frames._export import for_csv

_install_namespaces()  # pl_df.zgpu, ddf.zgpu: once Polars or Dask is imported

if TYPE_CHECKING:
    from .server import LocalServer

__version__ = "0.1.0"

__all__ = [
    "ACCOUNT_CODES",
    "TERMINAL_STATUSES",
    "TRANSIENT_CODES",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "Batch",
    "BatchError",
    "BatchJob",
    "ChatEstimate",
    "Client",
    "ColumnClashError",
    "Comparison",
    "ConfigurationError",
    "ConflictError",
    "CostLimitError",
    "CreateOutcomeUnknownError",
    "FileDeleted",
    "FileObject",
    "InsufficientQuotaError",
    "InternalServerError",
    "JobNotFoundError",
    "JobNotFoundOnServiceError",
    "JobStatus",
    "JobStoppedError",
    "JobSubmitError",
    "JobTimeoutError",
    "JobUnreachableError",
    "JournalCorruptError",
    "JournalWriteError",
    "LocalServer",
    "NotFoundError",
    "OptionError",
    "OversizeRowsError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PromptError",
    "RateLimitError",
    "RequestCounts",
    "RequestLinesUnavailableError",
    "StructuredOutputError",
    "TooManyRequestsError",
    "UploadNotRetryableError",
    "WaitTimeoutError",
    "ZgpuError",
    "__version__",
    "attach",
    "compare",
    "errors",
    "for_csv",
    "jobs",
    "local_server",
    "models",
    "prune_jobs",
    "run_files",
]


def __getattr__(name: str) -> Any:
    # The server pulls in starlette and uvicorn: load it only when someone asks for it, so
    # `import zgpu_pandas` stays light for scripts that only talk to the real service.
    if name == "LocalServer":
        from .server import LocalServer

        return LocalServer
    raise AttributeError(f"module 'zgpu_pandas' has no attribute {name!r}")
