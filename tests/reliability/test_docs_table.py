"""``docs/reliability.md`` names a test for every case, and every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
REF = re.compile(r"`([\w/]+\.py)::(\w+)`")


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_every_named_test_exists() -> None:
    refs = REF.findall(DOC.read_text())
    assert len(refs) > 50
    missing = []
    for rel, name in refs:
        path = ROOT / "tests" / rel
        if not path.is_file() or name not in _test_names(path) or not name.startswith("test_"):
            missing.append(f"{rel}::{name}")
    assert missing == []


def test_every_table_row_names_a_test() -> None:
    rows = [
        line
        for line in DOC.read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| Case") and "---" not in line
    ]
    headers = ("| Stage", "| Input")
    rows = [r for r in rows if not r.startswith(headers)]
    assert len(rows) > 60
    assert [r for r in rows if not REF.search(r.rsplit("|", 2)[-2])] == []
