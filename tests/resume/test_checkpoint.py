"""The ``checkpoint`` test hook: ends the process only at the stage named in the environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from zgpu_pandas.core.checkpoints import CHECKPOINTS, KILL_AT_ENV, checkpoint

SCRIPT = """
import sys
from zgpu_pandas.core.checkpoints import checkpoint
for stage in ("before_upload", "after_upload", "after_create", "mid_poll", "mid_download"):
    print(stage, flush=True)
    checkpoint(stage)
print("survived", flush=True)
"""


def _run(kill_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != KILL_AT_ENV}
    if kill_at is not None:
        env[KILL_AT_ENV] = kill_at
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("stage", ["after_upload", "mid_download"])
def test_exits_137_exactly_at_the_named_stage(stage: str) -> None:
    res = _run(stage)
    assert res.returncode == 137
    printed = res.stdout.split()
    assert printed[-1] == stage and "survived" not in printed
    assert printed == list(CHECKPOINTS[: CHECKPOINTS.index(stage) + 1])


def test_does_nothing_without_the_variable_or_for_another_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _run(None).stdout.split()[-1] == "survived"
    assert _run("no_such_stage").returncode == 0
    monkeypatch.setenv(KILL_AT_ENV, "mid_poll")
    checkpoint("before_upload")  # another stage: returns
