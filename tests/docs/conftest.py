"""Shared set-up for tests that run the project's documents (README, notebooks)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture()
def isolated_env(tmp_path: Path) -> dict[str, str]:
    """An environment for a child process with private state and local-server dirs, and no
    credentials inherited from the machine running the tests."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ZGPU_", "ZEROGPU_", "OPENAI_"))
    }
    env["ZGPU_STATE_DIR"] = str(tmp_path / "state")
    env["ZGPU_LOCAL_DATA_DIR"] = str(tmp_path / "local-server")
    env["MPLBACKEND"] = "Agg"
    env["PYTHONUNBUFFERED"] = "1"
    return env
