"""The public surface: every name in __all__ exists, and importing stays light."""

from __future__ import annotations

import subprocess
import sys

import zgpu_pandas


def test_all_names_resolve() -> None:
    for name in zgpu_pandas.__all__:
        assert getattr(zgpu_pandas, name) is not None, name


def test_import_does_not_load_the_server_or_widgets() -> None:
    code = (
        "import sys, zgpu_pandas\n"
        "heavy = [m for m in ('uvicorn', 'starlette', 'ipywidgets') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_all_is_unique() -> None:
    # (its order is kept by ruff's RUF022 rule: constants first, then classes, alphabetical)
    assert len(zgpu_pandas.__all__) == len(set(zgpu_pandas.__all__))
