"""Typed, immutable views of the API's objects: files, batches and their parts.

Every class parses with ``from_dict`` *tolerantly*: missing optional fields become ``None``,
fields this version does not know are kept in ``extra`` (and written back by ``to_dict``), and
the id spellings the documentation uses (``id``, ``batch_id``, ``file_id``) are all accepted.
A newer server therefore never breaks an older client. Example::

    >>> b = Batch.from_dict({"batch_id": "batch_1", "status": "completed",
    ...                      "request_counts": {"total": 2, "completed": 2, "failed": 0},
    ...                      "shiny_new_field": 1})
    >>> b.id, b.is_terminal, b.request_counts.completed, b.extra["shiny_new_field"]
    ('batch_1', True, 2, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

__all__ = [
    "BATCH_STATUSES",
    "CANCELLED",
    "CANCELLING",
    "COMPLETED",
    "EXPIRED",
    "FAILED",
    "FINALIZING",
    "IN_PROGRESS",
    "TERMINAL_STATUSES",
    "VALIDATING",
    "Batch",
    "BatchError",
    "BatchStatus",
    "FileDeleted",
    "FileObject",
    "RequestCounts",
]

BatchStatus = Literal[
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
]
VALIDATING: Final = "validating"
IN_PROGRESS: Final = "in_progress"
FINALIZING: Final = "finalizing"
COMPLETED: Final = "completed"
FAILED: Final = "failed"
EXPIRED: Final = "expired"
CANCELLING: Final = "cancelling"
CANCELLED: Final = "cancelled"
#: every status of the lifecycle, in order (the server's store uses these too)
BATCH_STATUSES: Final = (
    VALIDATING,
    IN_PROGRESS,
    FINALIZING,
    CANCELLING,
    COMPLETED,
    FAILED,
    EXPIRED,
    CANCELLED,
)
#: statuses a batch never leaves
TERMINAL_STATUSES: Final = frozenset({COMPLETED, FAILED, EXPIRED, CANCELLED})

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return _EMPTY


def _frozen(d: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d)) if d else _EMPTY


def _opt_str(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _opt_int(value: Any) -> int | None:
    # Timestamps and counts are integers on the wire, but a proxy or another implementation
    # may send floats or numeric strings; anything else is treated as absent, not an error.
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def _opt_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _pick_id(data: Mapping[str, Any], *spellings: str) -> str:
    for key in spellings:
        if data.get(key) is not None:
            return str(data[key])
    return ""


def _extra(data: Mapping[str, Any], known: frozenset[str]) -> Mapping[str, Any]:
    return _frozen({k: v for k, v in data.items() if k not in known})


def _require_mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise TypeError(f"a {what} must be a JSON object, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class FileObject:
    """A stored file: an uploaded batch input, or a batch's output or error file.

    Example::

        f = client.files.upload("input.jsonl")
        f.id, f.bytes, f.purpose      # ('file-…', 612, 'batch')
    """

    id: str
    object: str = "file"
    bytes: int | None = None
    created_at: int | None = None
    filename: str | None = None
    purpose: str | None = None
    status: str | None = None
    status_details: str | None = None
    expires_at: int | None = None
    #: ZeroGPU extension: ``True`` on a batch's error file only
    is_error: bool | None = None
    #: fields this version does not know, kept as sent
    extra: Mapping[str, Any] = field(default_factory=_empty, repr=False)

    _KNOWN = frozenset(
        {
            "id",
            "file_id",
            "object",
            "bytes",
            "created_at",
            "filename",
            "purpose",
            "status",
            "status_details",
            "expires_at",
            "is_error",
        }
    )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileObject:
        data = _require_mapping(data, "file")
        return cls(
            id=_pick_id(data, "id", "file_id"),
            object=_opt_str(data.get("object")) or "file",
            bytes=_opt_int(data.get("bytes")),
            created_at=_opt_int(data.get("created_at")),
            filename=_opt_str(data.get("filename")),
            purpose=_opt_str(data.get("purpose")),
            status=_opt_str(data.get("status")),
            status_details=_opt_str(data.get("status_details")),
            expires_at=_opt_int(data.get("expires_at")),
            is_error=_opt_bool(data.get("is_error")),
            extra=_extra(data, cls._KNOWN),
        )

    def to_dict(self) -> dict[str, Any]:
        """The wire form, unknown fields included; absent optional fields are left out."""
        out: dict[str, Any] = {"id": self.id, "object": self.object}
        for name in (
            "bytes",
            "created_at",
            "filename",
            "purpose",
            "status",
            "status_details",
            "expires_at",
            "is_error",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class FileDeleted:
    """The answer to a file delete: ``FileDeleted(id='file-…', deleted=True)``."""

    id: str
    object: str = "file"
    deleted: bool = True
    extra: Mapping[str, Any] = field(default_factory=_empty, repr=False)

    _KNOWN = frozenset({"id", "file_id", "object", "deleted"})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileDeleted:
        data = _require_mapping(data, "file deletion")
        return cls(
            id=_pick_id(data, "id", "file_id"),
            object=_opt_str(data.get("object")) or "file",
            deleted=bool(data.get("deleted", True)),
            extra=_extra(data, cls._KNOWN),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "object": self.object, "deleted": self.deleted, **self.extra}


@dataclass(frozen=True)
class RequestCounts:
    """How many lines a batch holds and how many have finished each way.

    ``completed + failed == total`` only once the batch is terminal.
    """

    total: int = 0
    completed: int = 0
    failed: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RequestCounts:
        if not isinstance(data, Mapping):
            return cls()
        return cls(
            total=_opt_int(data.get("total")) or 0,
            completed=_opt_int(data.get("completed")) or 0,
            failed=_opt_int(data.get("failed")) or 0,
        )

    @property
    def done(self) -> int:
        """Lines finished either way."""
        return self.completed + self.failed

    def to_dict(self) -> dict[str, int]:
        return {"total": self.total, "completed": self.completed, "failed": self.failed}


@dataclass(frozen=True)
class BatchError:
    """One entry of a failed batch's ``errors`` (e.g. the JSONL line that broke a rule)."""

    code: str | None = None
    message: str | None = None
    line: int | None = None
    param: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> BatchError:
        if not isinstance(data, Mapping):
            return cls(message=_opt_str(data))
        return cls(
            code=_opt_str(data.get("code")),
            message=_opt_str(data.get("message")),
            line=_opt_int(data.get("line")),
            param=_opt_str(data.get("param")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "line": self.line, "param": self.param}


def _parse_errors(value: Any) -> tuple[BatchError, ...] | None:
    # Spec: null, or {"object": "list", "data": [...]}; a bare list is accepted as well.
    if value is None:
        return None
    if isinstance(value, Mapping):
        value = value.get("data") or []
    if isinstance(value, (list, tuple)):
        return tuple(BatchError.from_dict(item) for item in value)
    return (BatchError.from_dict(value),)


_TIMESTAMPS = (
    "created_at",
    "in_progress_at",
    "expires_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
)


@dataclass(frozen=True)
class Batch:
    """A batch job and its live state. Timestamps are Unix seconds, ``None`` until reached.

    Example::

        b = client.batches.retrieve("batch_…")
        if b.is_terminal and b.output_file_id:
            for line in client.files.iter_lines(b.output_file_id): ...
    """

    id: str
    object: str = "batch"
    endpoint: str | None = None
    status: str = ""
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    completion_window: str | None = None
    created_at: int | None = None
    in_progress_at: int | None = None
    expires_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    expired_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    request_counts: RequestCounts = field(default_factory=RequestCounts)
    errors: tuple[BatchError, ...] | None = None
    metadata: Mapping[str, Any] = field(default_factory=_empty)
    #: fields this version does not know, kept as sent
    extra: Mapping[str, Any] = field(default_factory=_empty, repr=False)

    _KNOWN = frozenset(
        {
            "id",
            "batch_id",
            "object",
            "endpoint",
            "status",
            "input_file_id",
            "output_file_id",
            "error_file_id",
            "completion_window",
            "request_counts",
            "errors",
            "metadata",
            *_TIMESTAMPS,
        }
    )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Batch:
        data = _require_mapping(data, "batch")
        metadata = data.get("metadata")
        return cls(
            id=_pick_id(data, "id", "batch_id"),
            object=_opt_str(data.get("object")) or "batch",
            endpoint=_opt_str(data.get("endpoint")),
            status=_opt_str(data.get("status")) or "",
            input_file_id=_opt_str(data.get("input_file_id")),
            output_file_id=_opt_str(data.get("output_file_id")),
            error_file_id=_opt_str(data.get("error_file_id")),
            completion_window=_opt_str(data.get("completion_window")),
            request_counts=RequestCounts.from_dict(data.get("request_counts")),
            errors=_parse_errors(data.get("errors")),
            metadata=_frozen(metadata if isinstance(metadata, Mapping) else None),
            extra=_extra(data, cls._KNOWN),
            **{name: _opt_int(data.get(name)) for name in _TIMESTAMPS},
        )

    @property
    def is_terminal(self) -> bool:
        """``True`` once the status is completed, failed, expired or cancelled."""
        return self.status in TERMINAL_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """The wire form (the spec's Batch object), unknown fields included."""
        out: dict[str, Any] = {
            "id": self.id,
            "object": self.object,
            "endpoint": self.endpoint,
            "errors": None
            if self.errors is None
            else {"object": "list", "data": [e.to_dict() for e in self.errors]},
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
        }
        out.update({name: getattr(self, name) for name in _TIMESTAMPS})
        out["request_counts"] = self.request_counts.to_dict()
        out["metadata"] = dict(self.metadata)
        out.update(self.extra)
        return out
