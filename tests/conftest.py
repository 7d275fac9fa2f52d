"""Shared fixtures: a real local server on loopback and an HTTP client for it.

Fixtures:
    server       a fresh LocalServer (admin on, strict auth, temp data dir) per test
    api          an httpx.Client on ``server`` with the two ZeroGPU headers, plus helpers
                 (``upload``, ``create_batch``, ``submit``, ``wait``, ``jsonl_of``)
    make_lines   builds request lines: ``make_lines(3)`` -> list of dicts
    start_server factory: ``start_server(latency=0.05, ...)`` -> a started LocalServer with
                 those options (temp data dir unless given), stopped after the test
    api_for      factory: ``api_for(srv, **headers)`` -> ApiClient on any server

The suite runs in several processes (pytest-xdist; pyproject's addopts). ``-n 0`` runs it in
one; ``-p no:xdist`` (or an environment without xdist) also runs it in one, the two xdist
options in addopts then being accepted and ignored here.

Also, for the whole session, ``ZGPU_LOCAL_DATA_DIR`` points at a temp dir (unless already
set), so ``base_url="local"`` in tests never touches the user's cache directory.

Helpers (``chat_line``, ``to_jsonl``, ``ApiClient``, ``API_HEADERS``, ``MODEL``...) live in
``tests/support.py``: import them from there, never from a conftest.
"""

from __future__ import annotations

import gc
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import API_HEADERS, MODEL, ApiClient, FrameKit, chat_line
from zgpu_pandas.server import LocalServer


def _interrupts_reach_python() -> None:
    """Ctrl-C raises KeyboardInterrupt in this process and in the processes it starts,
    however the suite was launched. A command started in the background by a
    non-interactive shell (``.ci/run``'s legs 2 and 3, ``nohup ... &``) inherits SIGINT as
    ignored, and Python then never raises KeyboardInterrupt: the tests that press Ctrl-C
    (a real SIGINT, to this process or to a child) saw their signal vanish. A handler set
    here is reset to the default in every child at exec, so children handle it too."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


_interrupts_reach_python()


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    """Accept (and ignore) the xdist options of pyproject's addopts when xdist is not loaded,
    so ``pytest -p no:xdist`` runs the suite in one process instead of refusing the options."""
    if pluginmanager.hasplugin("xdist"):
        return
    group = parser.getgroup("xdist", "pytest-xdist is not loaded: its options are ignored")
    group.addoption("--numprocesses", action="store", default=None, help="(ignored)")
    group.addoption("--dist", action="store", default="no", help="(ignored)")


@pytest.fixture(autouse=True, scope="session")
def _isolated_local_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the shared local server (``base_url="local"``) out of the user's cache dir."""
    key = "ZGPU_LOCAL_DATA_DIR"
    if os.environ.get(key):
        yield
        return
    os.environ[key] = str(tmp_path_factory.mktemp("zgpu-local-data"))
    try:
        yield
    finally:
        os.environ.pop(key, None)


@pytest.fixture(autouse=True)
def _isolated_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own job journal (``ZGPU_STATE_DIR``) and no credentials from the
    machine running the suite, so no test reads or writes the user's real journal or key."""
    for key in ("ZGPU_API_KEY", "ZEROGPU_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ZGPU_STATE_DIR", str(tmp_path / "zgpu-state"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    """A fresh local server per test: admin endpoints on, strict auth, its own data dir."""
    with LocalServer(data_dir=tmp_path / "zgpu-server", admin=True) as srv:
        yield srv


@pytest.fixture
def api(server: LocalServer) -> Iterator[ApiClient]:
    """An HTTP client on ``server`` sending ``API_HEADERS``."""
    with ApiClient(base_url=server.url, headers=API_HEADERS, timeout=30.0) as client:
        yield client


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., LocalServer]]:
    """Factory of extra servers with chosen options (admin on unless told otherwise)."""
    started: list[LocalServer] = []

    def start(**options: Any) -> LocalServer:
        options.setdefault("admin", True)
        options.setdefault("data_dir", tmp_path / f"zgpu-server-{len(started) + 1}")
        srv = LocalServer(**options).start()
        started.append(srv)
        return srv

    yield start
    for srv in reversed(started):
        srv.stop()


@pytest.fixture
def api_for() -> Iterator[Callable[..., ApiClient]]:
    """Factory of API clients: ``api_for(srv)`` uses API_HEADERS, keyword headers
    override them (``None`` drops one)."""
    clients: list[ApiClient] = []

    def make(srv: LocalServer, **headers: str | None) -> ApiClient:
        merged = {**API_HEADERS, **{k.replace("_", "-"): v for k, v in headers.items()}}
        client = ApiClient(
            base_url=srv.url, headers={k: v for k, v in merged.items() if v is not None},
            timeout=30.0,
        )
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def make_lines() -> Callable[..., list[dict[str, Any]]]:
    """``make_lines(n, prefix="row-", model=MODEL, **body)``: n chat request lines asking
    "question <i>"."""

    def make(n: int, *, prefix: str = "row-", model: str = MODEL, **body: Any) -> list[dict[str, Any]]:
        return [chat_line(f"{prefix}{i}", f"question {i}", model=model, **body) for i in range(n)]

    return make


@pytest.fixture(params=["pandas", "polars"])
def kit(request: pytest.FixtureRequest) -> FrameKit:
    """The frame library a behaviour test runs with: each such test runs for both."""
    return FrameKit(request.param)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move every object alive after collection (modules, test functions, parametrize data)
    out of the garbage collector's sight: they live for the whole session, and the library
    runs full collections (a finished part of ``run_files`` frees its cycles at once) whose
    cost grows with everything the test process holds. Objects made later are collected as
    before."""
    gc.freeze()
