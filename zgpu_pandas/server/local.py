"""The server in-process: :class:`LocalServer` (uvicorn in a background thread) and the
process-wide :func:`shared_local_server` behind ``base_url="local"``.

Example::

    from zgpu_pandas.server import LocalServer

    with LocalServer(latency=0.01) as srv:
        print(srv.url)                 # http://127.0.0.1:<free port>
        srv.faults.fail_requests(status=503, count=1)
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import socket
import tempfile
import threading
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from ._conn import guarded_protocol
from ._http import RequestLog
from .app import ServerContext, build_app
from .config import ServerConfig, is_loopback
from .faults import Faults
from .store import DataDirLocked

__all__ = ["LocalServer", "shared_local_server"]

ENV_DATA_DIR = "ZGPU_LOCAL_DATA_DIR"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP;
    # without it every response (headers, then body) waits ~40 ms on a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # Lets restart() take the same port again right away.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, woken at once by :meth:`request_exit` (uvicorn itself polls its
    exit flag every 0.1 s), which keeps a stop, and so every test using a server, short."""

    _exit: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def __init__(self, config: uvicorn.Config, *, ctx: ServerContext | None = None) -> None:
        super().__init__(config)
        self._ctx = ctx

    async def main_loop(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._exit.wait(), 0.1)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's shutdown waits a fixed 0.1 s for connections to close; polling instead
        # makes stop() about five times faster, which adds up over a test suite.
        state = getattr(self, "server_state", None)
        if state is None or not hasattr(self, "servers"):  # pragma: no cover - other uvicorn
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(self.config.timeout_graceful_shutdown or 0)
        while (state.connections or state.tasks) and loop.time() < deadline:
            await asyncio.sleep(0.005)
        if self._ctx is not None:
            # Requests still running past the grace period are cancelled next; the
            # middleware sees this flag and ends them quietly (see ServerMiddleware).
            self._ctx.shutting_down = True
        for task in list(state.tasks):
            task.cancel()
        if not self.force_exit:
            await self.lifespan.shutdown()

    def request_exit(self) -> None:
        self.should_exit = True
        loop, event = self._loop, self._exit
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(event.set)


class LocalServer:
    """A ZeroGPU-compatible server on a local port, run by uvicorn in a daemon thread.

    Takes the keyword options of :class:`ServerConfig` plus ``host`` and ``port`` (0 =
    a free port). ``data_dir=None`` uses a temporary directory, removed on :meth:`stop`.

    Example::

        with LocalServer(admin=True) as srv:
            client = httpx.Client(base_url=srv.url + "/v1",
                                  headers={"x-api-key": "k", "x-project-id": "p"})
            client.get("/batches").json()

    Attributes: ``url`` (``http://host:port``, no trailing slash, no ``/v1``), ``faults``
    (live :class:`Faults`), ``data_dir``, ``request_log`` (``(method, path, status)`` of
    the last ``request_log_size`` API requests; status 0 = connection dropped), ``config``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        **options: Any,
    ) -> None:
        self.config = ServerConfig(**options)
        if self.config.faults is None:
            self.config.faults = Faults()
        self.faults: Faults = self.config.faults
        self.host = host
        self._port = port
        self.log_level = log_level
        self._temp = self.config.data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="zgpu-local-"))
            if self._temp
            else Path(self.config.data_dir).expanduser().resolve()  # type: ignore[arg-type]
        )
        self.config.data_dir = self.data_dir
        self.request_log: list[tuple[str, str, int]] = RequestLog(self.config.request_log_size)
        self._ctx: ServerContext | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ properties
    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def context(self) -> ServerContext | None:
        """The running server's internals (store, worker), for tests and tools."""
        return self._ctx

    # -------------------------------------------------------------------- control
    def start(self) -> LocalServer:
        """Start serving; returns once the port accepts requests. Raises
        :class:`~zgpu_pandas.server.store.DataDirLocked` if another process serves the
        same data directory."""
        with self._lock:
            if self.running:
                return self
            if self.config.api_keys is None and not is_loopback(self.host):
                warnings.warn(
                    f"LocalServer on {self.host} accepts any key for any project from any "
                    "machine that reaches it: pass api_keys={key: projects} to restrict it",
                    RuntimeWarning,
                    stacklevel=2,
                )
            ctx = ServerContext(self.config, request_log=self.request_log)
            ctx.start()  # here, not in the lifespan, so errors raise in this thread
            try:
                sock = _bind(self.host, self._port)
            except BaseException:
                ctx.stop()
                raise
            self._port = sock.getsockname()[1]
            uv_config = uvicorn.Config(
                build_app(ctx),
                log_level=self.log_level,
                log_config=None,  # never reconfigure the host application's logging
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=1,  # in-flight requests get a second at stop()
                http=guarded_protocol(self.config.idle_timeout),
            )
            server = _Server(uv_config, ctx=ctx)
            thread = threading.Thread(
                target=server.run, kwargs={"sockets": [sock]}, name="zgpu-local-server",
                daemon=True,
            )
            self._ctx, self._server, self._thread = ctx, server, thread
            thread.start()
            while not server.started:
                if not thread.is_alive():
                    sock.close()
                    ctx.stop()
                    self._ctx = self._server = self._thread = None
                    raise RuntimeError("the local server failed to start (see the log)")
                thread.join(0.01)
            self._sock = sock
            return self

    def stop(self) -> None:
        """Stop serving (the batch worker too). A temporary data dir is removed."""
        self._shutdown()
        if self._temp:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self) -> LocalServer:
        """Stop and start again on the same data dir and port (a durability check:
        unfinished batches resume from their recorded lines)."""
        with self._lock:
            self._shutdown()
            return self.start()

    def _shutdown(self) -> None:
        with self._lock:
            server, thread, ctx = self._server, self._thread, self._ctx
            if server is not None:
                server.request_exit()
            if thread is not None:
                thread.join(30)
            if ctx is not None:
                ctx.stop()
            if self._sock is not None:
                self._sock.close()  # asyncio closed it already; this is for a failed start
            self._server = self._thread = self._ctx = None
            self._sock = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LocalServer {self.url} {state} data_dir={str(self.data_dir)!r}>"


# ------------------------------------------------------------------------ shared
_shared: LocalServer | None = None
_shared_lock = threading.Lock()


def default_data_dir() -> Path:
    """``$ZGPU_LOCAL_DATA_DIR``, else the per-user cache dir ``…/zgpu_pandas/local-server``."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("zgpu_pandas")) / "local-server"


def shared_local_server() -> LocalServer:
    """The process-wide local server behind ``base_url="local"``, started on first use.

    Its data directory persists (``$ZGPU_LOCAL_DATA_DIR`` or the user cache dir), so
    batches survive a kernel restart: a new process (on a new port) finds them again. If
    another live process already serves that directory, a fresh temporary directory is
    used instead, with a warning. Auth is relaxed: any API key, ``x-project-id`` optional.

    Example::

        srv = shared_local_server()
        srv.url   # 'http://127.0.0.1:41234'
    """
    global _shared
    with _shared_lock:
        if _shared is not None and _shared.running:
            return _shared
        data_dir = default_data_dir()
        srv = LocalServer(data_dir=data_dir, require_project_id=False)
        try:
            srv.start()
        except DataDirLocked as exc:
            warnings.warn(
                f"{exc}; the local server uses a temporary data directory instead, so its "
                "batches will not survive this process",
                RuntimeWarning,
                stacklevel=2,
            )
            srv = LocalServer(data_dir=None, require_project_id=False)
            srv.start()
        atexit.register(srv.stop)
        _shared = srv
        return srv
