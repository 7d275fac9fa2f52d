"""A faithful local ZeroGPU Batch API server: files, batches, the sync chat endpoint.

Three ways to run it::

    $ zgpu-pandas serve --port 8080 --data-dir ./zgpu-data        # command line

    with LocalServer() as srv:                                     # in process
        print(srv.url)

    app = create_app(ServerConfig(data_dir="zgpu-data"))           # ASGI app to embed

``shared_local_server()`` is the process-wide instance behind ``base_url="local"``.
"""

from __future__ import annotations

from .app import create_app
from .config import ServerConfig
from .engines import builtin_reply
from .faults import Faults
from .local import LocalServer, shared_local_server
from .store import DataDirDamaged, DataDirLocked

__all__ = [
    "DataDirDamaged",
    "DataDirLocked",
    "Faults",
    "LocalServer",
    "ServerConfig",
    "builtin_reply",
    "create_app",
    "shared_local_server",
]
