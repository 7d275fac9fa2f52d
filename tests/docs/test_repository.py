"""The repository as a new user meets it: the README's command-line example runs from a
checkout as written, the demo's output stays out of git, the README says how long the tests
take, and no test reads files from outside the repository (so nothing is skipped on a fresh
clone)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd

from tests.support import ROOT
from zgpu_pandas.cli import build_parser


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_run_example_uses_a_file_that_exists_and_runs(
    tmp_path: Path, isolated_env: dict[str, str]
) -> None:
    section = _readme().split("## Command line", 1)[1]
    block = re.search(r"^```bash\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    assert block is not None
    text = block.group(1).replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.strip().startswith("zgpu-pandas run ")]
    argv = shlex.split(line.split("#", 1)[0])[1:]
    assert (ROOT / argv[1]).is_file(), f"the README's run example reads {argv[1]}, not in the repo"
    out = tmp_path / "tagged.parquet"
    argv[argv.index("-o") + 1] = str(out)
    proc = subprocess.run(
        [sys.executable, "-m", "zgpu_pandas", *argv, "-q"],
        cwd=ROOT,
        env=isolated_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode in (0, 2), proc.stdout + proc.stderr
    assert len(pd.read_parquet(out)) == 300


def test_the_demos_output_folder_is_ignored_by_git() -> None:
    args = build_parser().parse_args(["demo"])
    top = Path(args.output).parts[0]
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert f"/{top}/" in ignored or f"{top}/" in ignored, f"add /{top}/ to .gitignore"


def test_readme_says_how_long_the_tests_take() -> None:
    setup = _readme().split("## Set-up", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"takes about \d+ minutes", setup), "say how long the test suite takes"


def test_no_test_reads_files_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|/work/|parents\[[3-9]\]")
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("*.py")
        if p.name != "test_repository.py" and outside.search(p.read_text(encoding="utf-8"))
    ]
    assert offenders == []
