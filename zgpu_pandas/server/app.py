"""The ZeroGPU Files and Batches API as a Starlette (ASGI) application.

Routes (all under auth, see :mod:`zgpu_pandas.server._http`)::

    POST   /v1/files                  multipart upload (purpose=batch, file)
    GET    /v1/files                  list (purpose, order, after, limit)
    GET    /v1/files/{id}             metadata
    GET    /v1/files/{id}/content     the body, streamed
    DELETE /v1/files/{id}             soft delete
    POST   /v1/batches                create (validates the whole input synchronously)
    GET    /v1/batches                list (after, limit), newest first
    GET    /v1/batches/{id}           live status and counts
    POST   /v1/batches/{id}/cancel    cancel
    POST   /v1/chat/completions       the synchronous endpoint, same engine
    GET    /healthz                   liveness (no auth)
    GET    /readyz                    readiness: data dir writable, upstream answers (no auth)
    GET    /metrics                   Prometheus metrics (no auth)
    GET|POST|DELETE /_admin/faults    fault injection (only with admin=True)

Example::

    import uvicorn
    from zgpu_pandas.server import ServerConfig, create_app

    uvicorn.run(create_app(ServerConfig(data_dir="zgpu-data")), port=8080)
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import shutil
import tempfile
import threading
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from .._jsonl import ValidationResult, check_metadata, inexact_number_in_json, validate_stream
from . import _ids
from ._errors import STATUS_FOR_LINE_CODE, ApiError, envelope, type_for_status
from ._http import ConnectionDropped, RequestLog, ServerMiddleware
from .config import ServerConfig
from .engines import Engine, make_engine
from .faults import Faults
from .observe import Observer
from .readiness import readiness
from .retention import Sweeper
from .store import InputFileGone, Store, batch_object, file_object
from .worker import Worker

__all__ = ["ServerContext", "create_app"]

log = logging.getLogger("zgpu_pandas.server")

_READ_CHUNK = 1 << 20
_MAX_FIELD = 4096  # bytes kept of a non-file multipart field


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# ------------------------------------------------------------------------- context
class ServerContext:
    """The running parts of one server: config, store, worker, faults, request log.

    ``start()``/``stop()`` are idempotent; the app's lifespan calls them, and
    :class:`~zgpu_pandas.server.LocalServer` calls ``start()`` early so that a locked
    data directory raises in the caller's thread.
    """

    def __init__(
        self, config: ServerConfig, *, request_log: list[tuple[str, str, int]] | None = None
    ) -> None:
        self.config = config
        self.faults: Faults = config.faults if config.faults is not None else Faults()
        self._own_dir = config.data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="zgpu-server-"))
            if config.data_dir is None
            else Path(config.data_dir).expanduser().resolve()
        )
        self.store = Store(self.data_dir, file_retention=config.file_retention_seconds)
        self.sweeper = (
            None if config.sweep_interval is None
            else Sweeper(self.store, interval=config.sweep_interval)
        )
        self.request_log: list[tuple[str, str, int]] = (
            RequestLog(config.request_log_size) if request_log is None else request_log
        )
        self.key_projects = config.key_projects()
        self.observer = Observer(store=self.store)
        self.store.line_observer = self.observer.line_finished
        #: the last /readyz probe of the upstream: (monotonic time, problem or None)
        self.upstream_probe: tuple[float, str | None] | None = None
        self.worker = Worker(
            store=self.store,
            engine_factory=self.new_engine,
            faults=self.faults,
            concurrency=config.concurrency,
        )
        self._sync_engine: Engine | None = None
        self._lock = threading.Lock()
        self._started = False
        # Set by the HTTP server once it gives up on requests in flight and cancels them,
        # so the middleware answers those quietly (503) instead of letting the
        # cancellation surface as an "Exception in ASGI application" traceback.
        self.shutting_down = False

    def new_engine(self) -> Engine:
        cfg = self.config
        return make_engine(
            cfg.engine,
            latency=cfg.latency,
            upstream_url=cfg.upstream_url,
            upstream_api_key=cfg.upstream_api_key,
            upstream_headers=cfg.upstream_headers,
            concurrency=cfg.concurrency,
            max_retries=cfg.upstream_max_retries,
            timeout=cfg.upstream_timeout,
            backoff=cfg.upstream_backoff,
            ssl_context=cfg.ssl_context(),
            observer=self.observer,
        )

    def sync_engine(self) -> Engine:
        """The engine of the synchronous endpoint (lives in the server's event loop)."""
        if self._sync_engine is None:
            self._sync_engine = self.new_engine()
        return self._sync_engine

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self.shutting_down = False
            self.store.open()
            try:
                self.worker.start()
            except BaseException:
                self.store.close()
                raise
            if self.sweeper is not None:
                self.sweeper.start()
            self._started = True

    def stop(self) -> None:
        with self._lock:
            if not self._started:
                return
            if self.sweeper is not None:
                self.sweeper.stop()
            self.worker.stop()
            self.store.close()
            self._started = False
            if self._own_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    async def aclose(self) -> None:
        engine, self._sync_engine = self._sync_engine, None
        if engine is not None:
            await engine.aclose()


# ------------------------------------------------------------------------- helpers
Handler = Callable[[Request], Awaitable[Response]]


def _endpoint(fn: Handler) -> Handler:
    """Turn :class:`ApiError` and unexpected exceptions into the error envelope."""

    @functools.wraps(fn)
    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiError as exc:
            return _error(exc)
        except ConnectionDropped:
            raise
        except ClientDisconnect:
            # The client went away mid-request (e.g. an interrupted upload): nobody is
            # left to answer, and it is not a server error worth a traceback.
            return Response(status_code=400)
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            return _error(ApiError(500, "Internal server error", code="internal_error"))

    return wrapper


def _error(exc: ApiError) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _ctx(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


def _project(request: Request) -> str:
    return str(request.scope.get("zgpu.project", ""))


# A create body is two ids and some metadata; a chat body is one request (1 MB at most as a
# batch line). Capped, and read in chunks, so one request cannot fill the server's memory.
_MAX_JSON_BODY = 16 << 20


async def _json_body(request: Request) -> dict[str, Any]:
    too_large = ApiError(
        413, f"Request body exceeds the maximum of {_MAX_JSON_BODY} bytes",
        code="request_too_large",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > _MAX_JSON_BODY:
        raise too_large
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _MAX_JSON_BODY:
            raise too_large
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, "Request body must be valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object", code="invalid_json")
    where = inexact_number_in_json(bytes(raw))
    if where is not None:
        # orjson read it as a float already: refuse rather than forward another number
        raise ApiError(
            400, f"The request has an integer beyond 64 bits at {where}; it cannot be "
            "forwarded exactly (it would become a float): send it as a string",
            code="invalid_number", param=where,
        )
    return body


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(
            400, f"{name} must be an integer, got {raw!r}", code=f"invalid_{name}", param=name
        ) from None


def _file_or_404(request: Request, fid: str) -> Any:
    row = _ctx(request).store.get_file(_project(request), fid) if _ids.FILE_ID_RE.match(fid) else None
    if row is None:
        raise ApiError(404, f"File {fid} not found", code="file_not_found", param="file_id")
    return row


def _batch_or_404(request: Request, bid: str) -> Any:
    ok = _ids.BATCH_ID_RE.match(bid)
    row = _ctx(request).store.get_batch(_project(request), bid) if ok else None
    if row is None:
        raise ApiError(404, f"Batch not found: {bid}", code="batch_not_found", param="batch_id")
    return row


def _page(objects: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": objects,
        "first_id": objects[0]["id"] if objects else None,
        "last_id": objects[-1]["id"] if objects else None,
        "has_more": has_more,
    }


# --------------------------------------------------------------------------- files
class _Upload:
    """python-multipart callbacks that stream the ``file`` part straight to disk."""

    def __init__(self, tmp: Path, cap: int) -> None:
        self.tmp = tmp
        self.cap = cap
        self.size = 0
        self.has_file = False
        self.too_large = False
        self.filename: str | None = None
        self.purpose: str | None = None
        self.ended = False
        self._fh: IO[bytes] | None = None
        self._field = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._kind: str | None = None
        self._buf = bytearray()
        #: the first error writing the body to disk (a full disk); the rest is discarded
        self.write_error: OSError | None = None

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._headers = {}
        self._kind = None
        self._buf = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = b""
        self._value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name == b"file" and not self.has_file:
            self.has_file = True
            self._kind = "file"
            raw_name = options.get(b"filename")
            if raw_name:
                name_str = raw_name.decode("utf-8", "replace")
                # Keep the base name only: some clients send a full local path.
                self.filename = name_str.replace("\\", "/").rsplit("/", 1)[-1] or None
            try:
                self._fh = open(self.tmp, "wb")  # noqa: SIM115 (closed in on_part_end/close)
            except OSError as exc:
                self.write_error = exc
        elif name == b"purpose":
            self._kind = "purpose"
        else:
            self._kind = None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._kind == "file":
            self.size += end - start
            if self.size > self.cap:
                if not self.too_large:
                    self.too_large = True
                    self.close()
            elif self._fh is not None:
                self._write(data[start:end])
        elif self._kind == "purpose" and len(self._buf) < _MAX_FIELD:
            self._buf += data[start:end]

    def _write(self, data: bytes) -> None:
        """The one place an upload's bytes reach the disk."""
        assert self._fh is not None
        try:
            self._fh.write(data)
        except OSError as exc:
            # Keep reading (and dropping) the body, so the client gets the answer.
            self.write_error = exc
            self.close()

    def on_part_end(self) -> None:
        if self._kind == "file":
            self.close()
        elif self._kind == "purpose":
            self.purpose = self._buf.decode("utf-8", "replace").strip()
        self._kind = None

    def on_end(self) -> None:
        self.ended = True

    def close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()  # flushes: a full disk may show here first
            except OSError as exc:
                self.write_error = self.write_error or exc


def _storage_error(exc: OSError) -> ApiError:
    """The spec's ``storage_error`` for an upload the server could not keep, logged in one
    line (a full disk is the server's operator's to fix, not a bug with a traceback)."""
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    log.error("storing an upload failed: %s", exc.strerror or exc)
    why = "the server's disk is full" if full else "the server could not write it"
    return ApiError(500, f"Could not store the file: {why}", code="storage_error", param="file")


@_endpoint
async def upload_file(request: Request) -> Response:
    ctx = _ctx(request)
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        raise ApiError(
            400, "Content-Type must be multipart/form-data", code="invalid_content_type"
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "Malformed multipart body: no boundary", code="invalid_multipart")
    cap = ctx.config.max_upload_bytes
    tmp = ctx.store.tmp_path()
    up = _Upload(tmp, cap)
    try:
        try:
            # Inside the try: the parser refuses some boundaries itself (over 256 bytes).
            parser = MultipartParser(boundary, up.callbacks())  # type: ignore[arg-type]
            async for chunk in request.stream():
                if chunk:
                    parser.write(chunk)
            parser.finalize()
        except FormParserError:
            raise ApiError(400, "Malformed multipart body", code="invalid_multipart") from None
        finally:
            up.close()
        if not up.ended:
            raise ApiError(400, "Malformed multipart body: it ends early", code="invalid_multipart")
        if up.too_large:
            raise ApiError(
                413, f"File exceeds the maximum upload size of {cap} bytes", code="file_too_large",
                param="file",
            )
        if up.purpose is not None and up.purpose != "batch":
            raise ApiError(
                400, f'purpose must be "batch", got "{up.purpose}"', code="invalid_purpose",
                param="purpose",
            )
        if not up.has_file:
            raise ApiError(
                400, 'Missing file: send the JSONL as the multipart field "file"',
                code="missing_file", param="file",
            )
        if up.purpose is None:
            # Checked after the file, so a body with neither is a missing_file.
            # Required by the published OpenAPI file (its "default" only names the one
            # allowed value); accepting an upload without it would hide a client bug.
            raise ApiError(
                400, 'Missing purpose: send the multipart field "purpose" with the value '
                '"batch" along with "file"', code="invalid_purpose", param="purpose",
            )
        if up.size == 0:
            raise ApiError(400, "The uploaded file is empty", code="empty_file", param="file")
        if up.write_error is not None:
            raise _storage_error(up.write_error)
        try:
            row = await run_in_threadpool(
                ctx.store.add_file, project=_project(request), tmp=tmp, size=up.size,
                filename=up.filename,
            )
        except OSError as exc:
            raise _storage_error(exc) from None
        return JSONResponse(file_object(row))
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


@_endpoint
async def list_files(request: Request) -> Response:
    q = request.query_params
    purpose = q.get("purpose") or None
    if purpose is not None and purpose not in ("batch", "batch_output"):
        raise ApiError(
            400, f'purpose must be "batch" or "batch_output", got "{purpose}"',
            code="invalid_purpose", param="purpose",
        )
    order = q.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise ApiError(400, f'order must be "asc" or "desc", got "{order}"', code="invalid_order",
                       param="order")
    limit = _int_param(request, "limit", 10000)
    if not 1 <= limit <= 10000:
        raise ApiError(400, "limit must be between 1 and 10000", code="invalid_limit",
                       param="limit")
    page = _ctx(request).store.list_files(
        _project(request), purpose=purpose, order=order, after=q.get("after") or None, limit=limit
    )
    if page is None:
        raise ApiError(400, f"after: no file with id {q.get('after')}", code="invalid_after",
                       param="after")
    rows, has_more = page
    return JSONResponse(_page([file_object(r) for r in rows], has_more))


@_endpoint
async def retrieve_file(request: Request) -> Response:
    return JSONResponse(file_object(_file_or_404(request, request.path_params["file_id"])))


@_endpoint
async def delete_file(request: Request) -> Response:
    fid = request.path_params["file_id"]
    _file_or_404(request, fid)
    if not _ctx(request).store.delete_file(_project(request), fid):
        raise ApiError(404, f"File {fid} not found", code="file_not_found", param="file_id")
    return JSONResponse({"id": fid, "object": "file", "deleted": True})


def _disposition(filename: str) -> str:
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != filename:
        value += f"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"
    return value


@_endpoint
async def file_content(request: Request) -> Response:
    row = _file_or_404(request, request.path_params["file_id"])
    size = int(row["bytes"])
    try:
        fh = open(_ctx(request).store.path_of(row["path"]), "rb")  # noqa: SIM115 (closed by the stream)
    except OSError:
        log.exception("file body missing for %s", row["id"])
        raise ApiError(500, "Could not read the file", code="storage_error") from None

    async def chunks() -> AsyncIterator[bytes]:
        try:
            left = size
            while left > 0:
                data = await run_in_threadpool(fh.read, min(_READ_CHUNK, left))
                if not data:
                    break
                left -= len(data)
                yield data
        finally:
            fh.close()

    headers = {
        "content-length": str(size),
        "content-disposition": _disposition(row["filename"]),
    }
    return StreamingResponse(chunks(), media_type="application/jsonl", headers=headers)


# ------------------------------------------------------------------------- batches
def _validate_file(path: Path) -> ValidationResult:
    with open(path, "rb", buffering=_READ_CHUNK) as f:
        return validate_stream(f)


async def _validate_input(ctx: ServerContext, fid: str, rel: str) -> ValidationResult:
    # Reading and checking up to 100 MB takes a while: off the event loop, so polls and
    # other requests are served meanwhile.
    try:
        return await run_in_threadpool(_validate_file, ctx.store.path_of(rel))
    except FileNotFoundError:
        # The record is there but its body is not (removed by hand, or lost): the caller
        # can fix that by uploading again, so a 404 on the input, not a server error.
        raise ApiError(
            404, f"Input file {fid} has no content on this server (its body is missing); "
            "upload the file again", code="file_not_found", param="input_file_id",
        ) from None
    except OSError:
        log.exception("reading the input file %s failed", fid)
        raise ApiError(500, "Could not read the input file", code="storage_error") from None


@_endpoint
async def create_batch(request: Request) -> Response:
    ctx = _ctx(request)
    body = await _json_body(request)
    fid = body.get("input_file_id")
    if not isinstance(fid, str) or not fid:
        raise ApiError(400, "input_file_id is required", code="missing_required_parameter",
                       param="input_file_id")
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise ApiError(400, "endpoint is required", code="missing_required_parameter",
                       param="endpoint")
    window = body.get("completion_window")
    if window is None:
        window = "24h"
    if window != "24h":
        raise ApiError(400, 'completion_window must be "24h"', code="invalid_completion_window",
                       param="completion_window")
    metadata = body.get("metadata")
    if metadata is None:
        metadata = {}
    problem = check_metadata(metadata)
    if problem is not None:
        # Bounded (16 pairs of short strings, as the OpenAI-compatible API): metadata is
        # stored with the batch and repeated in every list answer.
        raise ApiError(400, problem, code="invalid_metadata", param="metadata")
    project = _project(request)
    frow = ctx.store.get_file(project, fid) if _ids.FILE_ID_RE.match(fid) else None
    if frow is None:
        raise ApiError(404, f"Input file not found: {fid}", code="file_not_found",
                       param="input_file_id")
    result = await _validate_input(ctx, fid, frow["path"])
    error = None
    if result.error is not None:
        error = result.error.to_dict()
    elif result.url != endpoint:
        error = {
            "code": "endpoint_mismatch",
            "message": f'endpoint "{endpoint}" does not match the url "{result.url}" used by '
            "the input file",
            "line": None,
            "param": "endpoint",
        }
    add = functools.partial(
        ctx.store.add_batch,
        project=project,
        endpoint=endpoint,
        input_file=frow,
        completion_window=window,
        metadata=metadata,
        window_seconds=ctx.config.completion_window_seconds,
        total=result.lines,
    )
    if error is not None:
        await run_in_threadpool(add, errors={"object": "list", "data": [error]})
        raise ApiError(400, error["message"], code=error["code"], param=error["param"],
                       line=error["line"])
    try:
        row = await run_in_threadpool(add)
    except InputFileGone:
        raise ApiError(
            404, f"Input file {fid} was deleted while the batch was being created; no batch "
            "was created", code="file_not_found", param="input_file_id",
        ) from None
    ctx.worker.notify()
    return JSONResponse(batch_object(row))


@_endpoint
async def list_batches(request: Request) -> Response:
    limit = min(100, max(1, _int_param(request, "limit", 20)))
    after = request.query_params.get("after") or None
    page = _ctx(request).store.list_batches(_project(request), after=after, limit=limit)
    if page is None:
        raise ApiError(400, f"after: no batch with id {after}", code="invalid_after",
                       param="after")
    rows, has_more = page
    return JSONResponse(_page([batch_object(r) for r in rows], has_more))


@_endpoint
async def retrieve_batch(request: Request) -> Response:
    return JSONResponse(batch_object(_batch_or_404(request, request.path_params["batch_id"])))


@_endpoint
async def cancel_batch(request: Request) -> Response:
    ctx = _ctx(request)
    bid = request.path_params["batch_id"]
    _batch_or_404(request, bid)
    row, ok = ctx.store.cancel_batch(_project(request), bid)
    if row is None:
        raise ApiError(404, f"Batch not found: {bid}", code="batch_not_found", param="batch_id")
    if not ok:
        raise ApiError(
            409, f"Batch {bid} cannot be cancelled: its status is {row['status']}",
            code="batch_not_cancellable", param="batch_id",
        )
    ctx.worker.cancel(bid)
    return JSONResponse(batch_object(row))


# --------------------------------------------------------------------- sync + admin
@_endpoint
async def chat_completions(request: Request) -> Response:
    body = await _json_body(request)
    if body.get("stream") is True:
        raise ApiError(400, "stream=true is not supported by this server",
                       code="stream_not_supported", param="stream")
    result = await _ctx(request).sync_engine().complete(body)
    if result.body is not None:
        return JSONResponse(result.body)
    code = result.code or "internal_error"
    message = result.message or ""
    if message.startswith("[legacy:"):
        message = message.split("] ", 1)[-1]
    status = result.status if result.status >= 400 else STATUS_FOR_LINE_CODE.get(code, 500)
    return JSONResponse(
        envelope(message, type=type_for_status(status, code), code=code), status_code=status
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Ready to take work: the data directory is writable and the upstream (if any)
    answers and accepts the key; 503 naming what is not."""
    ok, checks = await readiness(_ctx(request))
    return JSONResponse({"status": "ready" if ok else "not ready", "checks": checks},
                        status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(_ctx(request).observer.exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@_endpoint
async def admin_faults(request: Request) -> Response:
    faults = _ctx(request).faults
    if request.method == "DELETE":
        faults.clear()
    elif request.method == "POST":
        try:
            raw = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            raise ApiError(400, "Request body must be valid JSON", code="invalid_json") from None
        specs = raw if isinstance(raw, list) else [raw]
        try:
            for spec in specs:
                if not isinstance(spec, dict):
                    raise ValueError("each fault must be a JSON object with a kind")
                faults.arm(spec)
        except (TypeError, ValueError) as exc:
            raise ApiError(400, str(exc), code="invalid_fault") from None
    return JSONResponse({"faults": faults.describe()})


@_endpoint
async def admin_config(request: Request) -> Response:
    ctx = _ctx(request)
    return JSONResponse({**ctx.config.public(), "data_dir": str(ctx.data_dir)})


async def _not_found(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    message = "Method not allowed" if status == 405 else f"No route for {request.url.path}"
    headers = exc.headers if isinstance(exc, HTTPException) else None  # 405 carries Allow
    return JSONResponse(
        envelope(message, type="invalid_request_error",
                 code="method_not_allowed" if status == 405 else "not_found"),
        status_code=status,
        headers=headers,
    )


# ----------------------------------------------------------------------------- app
def _route(path: str, **handlers: Handler) -> Route:
    """One route per path with a handler per method, so a 405 lists every method the
    path allows in its ``Allow`` header."""
    if len(handlers) == 1:
        ((method, handler),) = handlers.items()
        return Route(path, handler, methods=[method])

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method  # Starlette adds HEAD
        return await handlers[method](request)

    return Route(path, dispatch, methods=list(handlers))


def build_app(ctx: ServerContext) -> Starlette:
    """The Starlette app over an existing :class:`ServerContext`."""
    routes = [
        _route("/v1/files", POST=upload_file, GET=list_files),
        _route("/v1/files/{file_id}", GET=retrieve_file, DELETE=delete_file),
        _route("/v1/files/{file_id}/content", GET=file_content),
        _route("/v1/batches", POST=create_batch, GET=list_batches),
        _route("/v1/batches/{batch_id}", GET=retrieve_batch),
        _route("/v1/batches/{batch_id}/cancel", POST=cancel_batch),
        _route("/v1/chat/completions", POST=chat_completions),
        _route("/healthz", GET=healthz),
        _route("/readyz", GET=readyz),
        _route("/metrics", GET=metrics),
    ]
    if ctx.config.admin:
        routes += [
            Route("/_admin/faults", admin_faults, methods=["GET", "POST", "DELETE"]),
            Route("/_admin/config", admin_config, methods=["GET"]),
        ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(ctx.start)
        try:
            yield
        finally:
            await ctx.aclose()
            await run_in_threadpool(ctx.stop)

    app = Starlette(
        routes=routes,
        middleware=[Middleware(ServerMiddleware, ctx=ctx)],
        exception_handlers={404: _not_found, 405: _not_found},
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    return app


def create_app(config: ServerConfig | None = None, /, **options: Any) -> Starlette:
    """An ASGI app serving the API; its lifespan starts and stops the batch worker.

    Pass a :class:`ServerConfig`, or its options as keywords. Example::

        app = create_app(data_dir="zgpu-data", admin=True)
        # uvicorn.run(app, port=8080), or mount it in another ASGI app
    """
    if config is None:
        config = ServerConfig(**options)
    elif options:
        raise TypeError("pass either a ServerConfig or keyword options, not both")
    return build_app(ServerContext(config))

