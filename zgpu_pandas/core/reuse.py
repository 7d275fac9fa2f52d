"""A batch job leaves out the rows whose answer was already bought (by ``chat``).

When a new batch job starts, each deterministic request line is looked up in the answers
store (:mod:`zgpu_pandas._answers`); the rows found are not sent: they are listed as not sent
with the code :data:`REUSED` and their answers are kept beside the job's journal entry
(``reused.jsonl``), so that resuming, attaching or rebuilding the job from the journal gives
them back without the store. A resumed job takes out exactly the rows it took out when it
started (read back from that file), so its batches still match its lines.

Example::

    requests, reused = leave_out_known(requests, where=conn_identity, fresh=False)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from .._answers import AnswerCache, answer_key
from .requests import RequestSet, asks_for_sampling

if TYPE_CHECKING:
    from .._journal import JobRecord, Journal

__all__ = [
    "REUSED",
    "REUSED_FILE",
    "leave_out_known",
    "leave_out_recorded",
    "output_line",
    "recorded_lines",
]

#: the code of a row answered from the answers store (replaced by its answer in the result)
REUSED = "answered_earlier"
REUSED_FILE = "reused.jsonl"
_REASON = "answered earlier by the same request (online mode); not sent again"


def output_line(custom_id: str, reply: bytes) -> bytes:
    """The batch output line of a request answered with the chat completion ``reply``."""
    return (
        b'{"custom_id":' + orjson.dumps(custom_id)
        + b',"response":{"status_code":200,"body":' + reply + b"}}"
    )


def leave_out_known(
    requests: RequestSet, *, where: Mapping[str, Any], fresh: bool
) -> tuple[RequestSet, list[bytes]]:
    """The request set without the lines whose answer is in the answers store, and those
    answers as output lines. Sampling requests and ``fresh=True`` jobs are left whole."""
    params = requests.settings.get("chat_params") or {}
    if fresh or asks_for_sampling(params) or not len(requests):
        return requests, []
    cache = AnswerCache.open()
    if not cache.path.exists():
        return requests, []
    cids, keys = [], []
    for raw in requests.iter_lines():
        obj = orjson.loads(raw)
        cids.append(obj["custom_id"])
        keys.append(answer_key(orjson.dumps(obj["body"]), where=where))
    known = cache.get_many(keys)
    if not known:
        return requests, []
    hits = [k for k, key in enumerate(keys) if key in known]
    lines = [output_line(cids[k], known[keys[k]]) for k in hits]
    positions = requests.positions[np.asarray(hits, dtype=np.int64)]
    return requests.without(positions, code=REUSED, reason=_REASON), lines


def recorded_lines(journal: Journal, record: JobRecord) -> list[bytes]:
    """The reused answers kept beside a journaled job (none when it reused nothing)."""
    try:
        data = journal.read_blob(record.job_id, REUSED_FILE)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise journal.corrupt(record.job_id, REUSED_FILE, exc) from None
    return [line for line in data.split(b"\n") if line]


def leave_out_recorded(requests: RequestSet, lines: list[bytes]) -> RequestSet:
    """``requests`` without the rows a journaled job answered from the store when it
    started (so its chunks match its recorded batches)."""
    if not lines:
        return requests
    positions = [int(orjson.loads(line)["custom_id"][4:]) for line in lines]
    return requests.without(positions, code=REUSED, reason=_REASON)
