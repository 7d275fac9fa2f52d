"""The code base stays ruff- and mypy-clean: the test command enforces it, so CI does too."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_ruff_is_clean() -> None:
    proc = _run("ruff", "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean() -> None:
    # a cache per environment: CI runs the suite in several at once, with different stubs
    tag = hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    proc = _run("mypy", "--cache-dir", str(ROOT / ".mypy_cache" / f"env-{tag}"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
