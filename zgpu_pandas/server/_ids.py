"""Identifiers in the shapes the service uses: ``file-…``, ``batch_…``, ``batch_req_…``,
``req_…``, ``chatcmpl-…``."""

from __future__ import annotations

import os
import re
import secrets
import time

__all__ = [
    "BATCH_ID_RE",
    "FILE_ID_RE",
    "batch_id",
    "batch_req_id",
    "chatcmpl_id",
    "file_id",
    "request_id",
]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# What a well-formed id may look like; anything else is answered 404 without a lookup.
FILE_ID_RE = re.compile(r"^file-[A-Za-z0-9_-]{1,64}$")
BATCH_ID_RE = re.compile(r"^batch_[A-Za-z0-9]{1,64}$")


def file_id() -> str:
    """``file-`` and 24 hex digits."""
    return "file-" + secrets.token_hex(12)


def batch_id() -> str:
    """``batch_`` and a 26-character ULID (time-ordered, like ``batch_01HZX…``)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "batch_" + "".join(reversed(chars))


def batch_req_id() -> str:
    return "batch_req_" + secrets.token_hex(12)


def request_id() -> str:
    return "req_" + secrets.token_hex(12)


def chatcmpl_id() -> str:
    return "chatcmpl-" + secrets.token_hex(12)
