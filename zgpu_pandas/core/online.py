"""The online mode: the same requests as a batch job, answered now through
``POST /v1/chat/completions``, for iterating on a prompt before the batch.

``df.zgpu.chat(...)`` builds exactly the request lines ``batch_chat`` would (same checks,
same skipped and shared rows), looks each deterministic request up among the answers already
paid for (:mod:`zgpu_pandas._answers`), sends the rest through a sliding window of
``concurrency`` requests in flight (:mod:`zgpu_pandas._window`, the engine the local server
uses upstream), and turns every answer into the output line a batch would have produced, so
the result columns are the batch's, built by the same code (:class:`ResultsTable`,
:func:`merge_outcome`).

Decisions:

- Every answer received is stored at once (in groups of a few, at most half a second
  apart), so Ctrl-C, a crash or a closed notebook loses nothing paid for: the same call
  again sends only what is missing. Answers to sampling requests are stored but not reused:
  a sampling request asks for a fresh sample each time. The partial result of an interrupted
  call is kept as ``df.zgpu.last_chat``.
- A failure of the account (401, 403, ``insufficient_quota``) stops the call at once and is
  raised: every other row would fail the same way. Any other failure is that row's error.
- Default concurrency: 32 on a loopback server, 8 on a remote service (a level that stays
  under common per-key rate limits; 429s are retried after ``Retry-After`` anyway).

Example::

    out = run_chat(df, ChatSpec(prompt="review", model="LFM2.5-1.2B-Instruct"),
                   Connection(base_url="local"), concurrency=8)
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from .._answers import AnswerCache, answer_key
from .._chat import ChatSession
from .._window import Done, SlidingWindow
from ..errors import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    InsufficientQuotaError,
    OptionError,
    PermissionDeniedError,
)
from .collect import TRANSIENT_CODES
from .outcome import merge_outcome
from .requests import RequestSet, asks_for_sampling
from .results import ERROR, ResultsTable, answer_extras
from .resume import connection_of
from .reuse import output_line
from .rows import as_output
from .spec import ChatSpec, Connection

if TYPE_CHECKING:
    from .._client import Client
    from .._progress import ProgressOption
    from .structured import SchemaSpec

__all__ = ["ChatRun", "default_concurrency", "run_chat"]

LOCAL_CONCURRENCY = 32
REMOTE_CONCURRENCY = 8
_FLUSH_EVERY = 32  # answers per write to the answers store
_FLUSH_SECONDS = 0.5
_DRAIN_SECONDS = 10.0  # after Ctrl-C, how long requests in flight may still finish
# failures of the account, not of a row: stop at the first
_STOPS = (AuthenticationError, PermissionDeniedError, InsufficientQuotaError)
# worth another round: the batch's transient codes and what a connection gives
TRANSIENT = frozenset(TRANSIENT_CODES) | {"connection_error", "http_500", "http_502", "http_503"}


def default_concurrency(client: Client) -> int:
    """Requests in flight when ``concurrency=`` is not given (see the module notes)."""
    return LOCAL_CONCURRENCY if client.is_local else REMOTE_CONCURRENCY


@dataclass
class ChatRun:
    """What one online call did, for its summary line and for ``out.attrs``."""

    rows: int
    sent: int = 0
    answered: int = 0
    failed: int = 0
    reused: int = 0
    retries: int = 0
    not_started: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    stopped_by: BaseException | None = None
    errors: dict[str, int] = field(default_factory=dict)
    #: the error code of each row's latest failure (a retry round takes it back)
    last_codes: dict[str, str] = field(default_factory=dict)

    def summary(self, model: str) -> str:
        parts = [f"chat ({model}): {self.rows:,} rows"]
        if self.sent:
            parts.append(f"{self.answered:,} answered now in {self.seconds:.1f} s")
        if self.failed:
            codes = ", ".join(f"{c}: {n}" for c, n in sorted(self.errors.items()))
            parts.append(f"{self.failed:,} failed ({codes})")
        if self.reused:
            parts.append(f"{self.reused:,} from answers already received (not paid again)")
        if self.retries:
            parts.append(f"{self.retries:,} retries")
        if self.not_started:
            parts.append(f"{self.not_started:,} not sent")
        return "; ".join(parts)


def _item_lines(requests: RequestSet) -> list[tuple[str, bytes]]:
    """(custom_id, body bytes) of every request line."""
    out = []
    for raw in requests.iter_lines():
        obj = orjson.loads(raw)
        out.append((obj["custom_id"], orjson.dumps(obj["body"])))
    return out


def _error_line(custom_id: str, exc: BaseException) -> tuple[bytes, str]:
    """The error line a batch would have for a request that failed with ``exc``."""
    if isinstance(exc, APIStatusError):
        code = exc.code or f"http_{exc.status_code}"
        body = {"error": {"code": code, "message": exc.message}}
        line = {"custom_id": custom_id, "response": {"status_code": exc.status_code, "body": body}}
    else:
        code = "connection_error" if isinstance(exc, APIConnectionError) else "client_error"
        text = str(exc) or type(exc).__name__
        line = {"custom_id": custom_id, "error": {"code": code, "message": text}}
    return orjson.dumps(line), code


class _Sender:
    """Runs the sliding window in a thread of its own (a notebook's loop is busy), stores
    every answer as it comes, and keeps the output lines for the merge."""

    def __init__(
        self,
        client: Client,
        todo: list[tuple[str, str, bytes]],
        *,
        concurrency: int,
        cache: AnswerCache,
        run: ChatRun,
        deadline: float | None = None,
    ) -> None:
        self.client, self.todo, self.concurrency = client, todo, concurrency
        self.deadline = deadline
        self.cache, self.run = cache, run
        self.lines: list[bytes] = []
        self.done = 0
        self.stop = threading.Event()
        self._pending: dict[str, bytes] = {}
        self._flushed_at = time.monotonic()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        # waited on instead of Thread.join: a Ctrl-C inside join() can leave the thread
        # looking finished while it still runs
        self.finished = threading.Event()
        self.thread = threading.Thread(target=self._main, name="zgpu-chat", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def cancel(self) -> None:
        """Abandon the requests in flight (a second Ctrl-C, or the drain took too long)."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)

    def _main(self) -> None:
        try:
            asyncio.run(self._send_all())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc
        finally:
            self._flush(force=True)
            self.finished.set()

    async def _send_all(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        window: SlidingWindow = SlidingWindow(limit=self.concurrency)
        async with ChatSession(self.client, limit=self.concurrency) as session:

            async def call(item: tuple[str, str, bytes]) -> dict[str, Any]:
                return await session.complete(item[2])

            try:
                async for d in window.map(self.todo, call, may_start=self._may_start):
                    self._record(d)
            finally:
                self.run.retries += session.retries
                self.run.sent += window.started

    def _may_start(self) -> bool:
        if self.stop.is_set():
            return False
        return self.deadline is None or time.monotonic() < self.deadline

    def _record(self, d: Done[tuple[str, str, bytes], dict[str, Any]]) -> None:
        cid, key, _ = d.item
        if d.error is None:
            reply = orjson.dumps(d.result)
            line = output_line(cid, reply)
            with self._lock:
                self._pending[key] = reply
                self.run.answered += 1
        else:
            if isinstance(d.error, _STOPS) and self.run.stopped_by is None:
                self.run.stopped_by = d.error
                self.stop.set()
            line, code = _error_line(cid, d.error)
            with self._lock:
                self.run.failed += 1
                self.run.errors[code] = self.run.errors.get(code, 0) + 1
                self.run.last_codes[cid] = code
        with self._lock:
            self.lines.append(line)
            self.done += 1
        self._flush()

    def _flush(self, *, force: bool = False) -> None:
        with self._lock:
            due = len(self._pending) >= _FLUSH_EVERY or (
                time.monotonic() - self._flushed_at >= _FLUSH_SECONDS
            )
            if not self._pending or not (force or due):
                return
            batch, self._pending = self._pending, {}
            self._flushed_at = time.monotonic()
        try:
            self.cache.put(batch)
        except Exception as exc:  # the answers still reach the frame; say it once
            if self.error is None:
                self.error = exc

    def take_lines(self) -> list[bytes]:
        with self._lock:
            return list(self.lines)


def run_chat(
    frame: Any,
    spec: ChatSpec,
    conn: Connection,
    *,
    concurrency: int | None = None,
    progress: ProgressOption = None,
    remember: Callable[[Any], None] | None = None,
) -> Any:
    """Answer every row of ``frame`` now (see the module docstring); returns the frame with
    the same answer columns as ``batch_chat``. ``remember`` receives the result (also the
    partial one of an interrupted call)."""
    from .run import build, check_budget, open_checked

    if concurrency is not None and (
        not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1
    ):
        raise OptionError(f"concurrency= must be a whole number >= 1, not {concurrency!r}.")
    requests, parse = build(frame, spec)
    check_budget(requests, spec, online=True)
    client, factory = open_checked(frame, spec, conn, requests)
    try:
        where = connection_of(client, conn.base_url)
        items = _item_lines(requests)
        keys = [answer_key(body, where=where) for _, body in items]
        cache = AnswerCache.open()
        params = requests.settings.get("chat_params") or {}
        reusable = not spec.fresh and not asks_for_sampling(params)
        known = cache.get_many(keys) if reusable else {}
        run = ChatRun(rows=requests.n_rows)
        table = ResultsTable(requests.n_rows)
        table.extras = answer_extras(params)
        table.set_duplicates(requests.duplicate_positions, requests.duplicate_of)
        table.add_skipped(
            requests.skipped_positions, requests.skipped_codes, requests.skipped_reasons
        )
        pairs = list(zip(items, keys, strict=True))
        reused = [output_line(cid, known[k]) for (cid, _), k in pairs if k in known]
        run.reused = len(reused)
        table.add_lines(reused, source="answers already received")
        todo = [(cid, k, body) for (cid, body), k in pairs if k not in known]
        deadline = None if spec.timeout is None else time.monotonic() + spec.timeout
        sender = _send_rounds(
            client,
            todo,
            table,
            run,
            cache=cache,
            concurrency=concurrency or default_concurrency(client),
            retries=spec.retries,
            deadline=deadline,
            progress=progress,
            model=spec.model or "",
        )
        out = _merge(table, frame, parse, spec)
        _label(out, run)
        if remember is not None:
            remember(out)
        _say(run, spec.model or "", progress)
        if run.interrupted:
            raise KeyboardInterrupt(
                f"Interrupted: {run.answered + run.reused:,} of {len(items):,} requests answered "
                f"and kept; the same call again sends only the rest (df.zgpu.last_chat has the "
                f"partial result)."
            )
        if run.stopped_by is not None:
            raise run.stopped_by
        if sender.error is not None:
            raise sender.error
        return out
    finally:
        if factory is not None:
            client.close()


def _send_rounds(
    client: Client,
    todo: list[tuple[str, str, bytes]],
    table: ResultsTable,
    run: ChatRun,
    *,
    cache: AnswerCache,
    concurrency: int,
    retries: int,
    deadline: float | None,
    progress: ProgressOption,
    model: str,
) -> _Sender:
    """Send ``todo``, then up to ``retries`` more rounds of the rows that failed
    transiently; every line lands in ``table``. Returns the last round's sender."""
    by_cid = {item[0]: item for item in todo}
    rounds_left = retries
    while True:
        sender = _Sender(
            client, todo, concurrency=concurrency, cache=cache, run=run, deadline=deadline
        )
        run.interrupted = _drive(sender, len(todo), progress=progress, model=model)
        mark = table.mark()
        table.add_lines(sender.take_lines(), source="answers")
        unsent = len(todo) - sender.done
        if run.interrupted or run.stopped_by is not None or sender.error is not None:
            run.not_started = unsent
            return sender
        if rounds_left <= 0 or unsent:
            run.not_started = unsent
            return sender
        again = _transient_failures(table, mark)
        if not again:
            return sender
        rounds_left -= 1
        # the rows of this round that failed get another try; their earlier errors no
        # longer count once they are answered
        todo = [by_cid[cid] for cid in again if cid in by_cid]
        for item in todo:
            run.failed -= 1
            code = run.last_codes.pop(item[0], None)
            if code is not None:
                run.errors[code] -= 1
                if not run.errors[code]:
                    del run.errors[code]


def _transient_failures(table: ResultsTable, mark: int) -> list[str]:
    """custom_ids of the rows whose result since ``mark`` is a transient failure."""
    codes = table.columns()["error_code"].to_pylist()
    positions = table.positions_since(mark)
    return [
        f"row-{p}"
        for p in positions.tolist()
        if table.status[p] == ERROR and codes[p] in TRANSIENT
    ]


def _drive(sender: _Sender, total: int, *, progress: ProgressOption, model: str) -> bool:
    """Run the sender, showing progress; ``True`` when Ctrl-C stopped it."""
    bar = _bar(progress, total, model)
    shown = 0
    started = time.monotonic()
    sender.start()
    interrupted = False
    try:
        try:
            while not sender.finished.is_set():
                sender.finished.wait(0.1)
                if bar is not None and sender.done > shown:
                    bar.update(sender.done - shown)
                    shown = sender.done
        except KeyboardInterrupt:
            interrupted = True
            sender.stop.set()  # start no new request; let those in flight end
            with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: stop now
                sender.finished.wait(_DRAIN_SECONDS)
            sender.cancel()
            sender.finished.wait()
    finally:
        sender.run.seconds += time.monotonic() - started
        if bar is not None:
            bar.update(sender.done - shown)
            bar.close()
    return interrupted


def _bar(progress: ProgressOption, total: int, model: str) -> Any:
    """A tqdm bar (a widget in a notebook) unless ``progress=False`` or nothing is sent."""
    from .._progress import in_notebook

    if progress is False or total == 0:
        return None
    if progress not in (None, True, "widget", "tqdm"):
        raise OptionError(f"progress= must be None, True, False, 'widget' or 'tqdm', not {progress!r}.")
    if progress is None and not in_notebook() and not _stderr_is_tty():
        return None
    if progress == "widget" or (progress is None and in_notebook()):
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm
    return tqdm(total=total, desc=f"chat {model}"[:30], unit="row", leave=True)


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _merge(table: ResultsTable, frame: Any, parse: SchemaSpec | None, spec: ChatSpec) -> Any:
    return merge_outcome(
        table.answers(spec.output, model=spec.model),
        as_output(frame),
        parse=parse,
        output=spec.output,
        overwrite=spec.overwrite,
        job_id="chat",
    )


def _label(out: Any, run: ChatRun) -> None:
    """What the call did, on the frame itself where the library has a place for it."""
    attrs = getattr(out, "attrs", None)
    if isinstance(attrs, dict):
        attrs["zgpu"] = {
            "mode": "online",
            "rows": run.rows,
            "answered_now": run.answered,
            "reused": run.reused,
            "failed": run.failed,
            "retries": run.retries,
            "not_sent": run.not_started,
        }


def _say(run: ChatRun, model: str, progress: ProgressOption) -> None:
    """The one-line summary; always when answers were reused (a fast re-run must not look
    like a bug), else unless ``progress=False``."""
    if progress is False and not run.reused:
        return
    print(run.summary(model), file=sys.stderr)
