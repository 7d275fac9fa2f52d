"""Each accessor test gets its own job journal, so jobs never resume across tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "zgpu-state"
    monkeypatch.setenv("ZGPU_STATE_DIR", str(state))
    return state
