"""Every Python block in README.md runs, in order, in one fresh interpreter.

Blocks share one namespace (as a reader pasting them into one notebook would), against the
in-process local server (``base_url="local"``), with private state directories.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


# A block that cannot run offline says so on its first line and is left out; every other
# Python block in the README must run.
_SKIP_MARK = "# illustration:"


def python_blocks(text: str) -> list[str]:
    blocks = [m.group(1) for m in _BLOCK.finditer(text)]
    return [b for b in blocks if not b.lstrip().startswith(_SKIP_MARK)]


def test_readme_has_exactly_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```bash\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    assert len(commands) == 2, commands
    assert all(c.strip().count("\n") == 0 for c in commands), "each set-up command is one line"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1].strip() in ci, ".ci/run must run the README's test command verbatim"


def test_readme_python_blocks_run(tmp_path: Path, isolated_env: dict[str, str]) -> None:
    blocks = python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks, "README.md has no Python examples"
    script = tmp_path / "readme_blocks.py"
    script.write_text(
        "\n".join(f"# --- README block {i + 1}\n{b}" for i, b in enumerate(blocks)),
        encoding="utf-8",
    )
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=isolated_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
