"""Typed models: spec objects parse, unknown fields survive, missing ones do not break."""

from __future__ import annotations

import dataclasses

import pytest

from zgpu_pandas._models import (
    TERMINAL_STATUSES,
    Batch,
    BatchError,
    FileDeleted,
    FileObject,
    RequestCounts,
)

SPEC_BATCH = {
    "id": "batch_01HZX",
    "object": "batch",
    "endpoint": "/v1/chat/completions",
    "errors": None,
    "input_file_id": "file-abc",
    "completion_window": "24h",
    "status": "completed",
    "output_file_id": "file-out",
    "error_file_id": "file-err",
    "created_at": 1736290000,
    "in_progress_at": 1736290001,
    "expires_at": 1736376400,
    "finalizing_at": 1736290100,
    "completed_at": 1736290101,
    "failed_at": None,
    "expired_at": None,
    "cancelling_at": None,
    "cancelled_at": None,
    "request_counts": {"total": 3, "completed": 2, "failed": 1},
    "metadata": {"job": "docs"},
}


def test_spec_batch_round_trips() -> None:
    b = Batch.from_dict(SPEC_BATCH)
    assert b.id == "batch_01HZX" and b.status == "completed" and b.is_terminal
    assert b.request_counts == RequestCounts(total=3, completed=2, failed=1)
    assert b.request_counts.done == 3
    assert b.completed_at == 1736290101 and b.failed_at is None
    assert b.metadata == {"job": "docs"}
    assert b.to_dict() == SPEC_BATCH


def test_quickstart_batch_with_missing_fields() -> None:
    # the create answer in the quickstart omits most timestamps, errors and metadata
    b = Batch.from_dict(
        {
            "id": "batch_1",
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "status": "in_progress",
            "input_file_id": "file-a",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": 1736290000,
            "expires_at": 1736376400,
            "request_counts": {"total": 3, "completed": 0, "failed": 0},
        }
    )
    assert not b.is_terminal
    assert b.in_progress_at is None and b.errors is None and dict(b.metadata) == {}
    assert b.completion_window is None


def test_unknown_fields_kept_and_written_back() -> None:
    b = Batch.from_dict({**SPEC_BATCH, "usage": {"total_tokens": 9}, "model": "m"})
    assert b.extra == {"usage": {"total_tokens": 9}, "model": "m"}
    assert b.to_dict()["usage"] == {"total_tokens": 9}
    f = FileObject.from_dict({"id": "file-1", "bytes": 3, "sha256": "ab"})
    assert f.extra == {"sha256": "ab"} and f.to_dict()["sha256"] == "ab"


def test_id_spellings_accepted() -> None:
    assert Batch.from_dict({"batch_id": "batch_x", "status": "failed"}).id == "batch_x"
    assert FileObject.from_dict({"file_id": "file-x"}).id == "file-x"
    assert FileDeleted.from_dict({"file_id": "file-x", "deleted": True}).id == "file-x"
    assert "batch_id" not in Batch.from_dict({"batch_id": "b"}).extra


def test_failed_batch_errors_list_envelope_and_bare_list() -> None:
    err = {
        "code": "duplicate_custom_id",
        "message": 'Line 2 duplicates custom_id "a"',
        "line": 2,
        "param": None,
    }
    b = Batch.from_dict(
        {"id": "b", "status": "failed", "errors": {"object": "list", "data": [err]}}
    )
    message = 'Line 2 duplicates custom_id "a"'
    assert b.errors == (BatchError(code="duplicate_custom_id", message=message, line=2),)
    assert Batch.from_dict({"id": "b", "errors": [err]}).errors == b.errors
    assert b.to_dict()["errors"] == {"object": "list", "data": [err]}


def test_tolerant_numbers() -> None:
    b = Batch.from_dict(
        {
            "id": "b",
            "created_at": 1.7e9,
            "expires_at": "1736376400",
            "completed_at": "soon",
            "request_counts": {"total": "5", "completed": None},
        }
    )
    assert b.created_at == 1_700_000_000 and b.expires_at == 1736376400 and b.completed_at is None
    assert b.request_counts == RequestCounts(total=5, completed=0, failed=0)
    assert (
        Batch.from_dict({"id": "b", "request_counts": None, "metadata": None}).request_counts.total
        == 0
    )


def test_file_object_spec_example() -> None:
    f = FileObject.from_dict(
        {
            "id": "file-0123",
            "object": "file",
            "bytes": 5000,
            "created_at": 1736290000,
            "filename": "input.jsonl",
            "purpose": "batch",
            "status": "processed",
            "expires_at": 1738882000,
        }
    )
    assert (f.bytes, f.purpose, f.is_error, f.filename) == (5000, "batch", None, "input.jsonl")
    err_file = FileObject.from_dict({"id": "file-e", "purpose": "batch_output", "is_error": True})
    assert err_file.is_error is True


def test_models_are_immutable() -> None:
    b = Batch.from_dict(SPEC_BATCH)
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.status = "failed"  # type: ignore[misc]
    with pytest.raises(TypeError):
        b.metadata["job"] = "other"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.request_counts.total = 1  # type: ignore[misc]


def test_not_a_mapping_is_a_clear_type_error() -> None:
    with pytest.raises(TypeError, match="a batch must be a JSON object"):
        Batch.from_dict(["nope"])  # type: ignore[arg-type]


def test_terminal_statuses() -> None:
    assert {"completed", "failed", "expired", "cancelled"} == TERMINAL_STATUSES
    for status in ("validating", "in_progress", "finalizing", "cancelling"):
        assert not Batch.from_dict({"id": "b", "status": status}).is_terminal
