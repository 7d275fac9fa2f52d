"""The ``zgpu-pandas`` command line against a real local server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

from zgpu_pandas.cli import build_parser, main
from zgpu_pandas.server import LocalServer
from zgpu_pandas.server.engines import builtin_reply

MODEL = "LFM2.5-1.2B-Instruct"


@pytest.fixture
def env_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ZGPU_API_KEY", "cli-test-key")
    return "cli-test-key"


def conn(srv: LocalServer) -> list[str]:
    return ["--base-url", srv.url, "--project-id", "p1"]


def expected_reply(prompt: str, *, system: str | None = None, **params: object) -> str:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    return builtin_reply({"model": MODEL, "messages": messages, **params})


def test_run_csv_to_parquet_matches_rows_one_for_one(
    server: LocalServer, env_key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(7)
    n = 1000
    df = pd.DataFrame(
        {
            "id": [f"{i:05d}" for i in range(n)],
            "text": [f"review {i}: {'great' if rng.random() > 0.5 else 'meh'} ✓" for i in range(n)],
        }
    )
    df.loc[[5, 500], "text"] = ""
    src = tmp_path / "in.csv"
    df.to_csv(src, index=False)
    out = tmp_path / "out.parquet"
    code = main(
        [
            "run",
            str(src),
            "--prompt-col",
            "text",
            "--model",
            MODEL,
            "--system",
            "Be brief.",
            "--param",
            "temperature=0",
            "-o",
            str(out),
            "-q",
            *conn(server),
        ]
    )
    assert code == 0
    res = pd.read_parquet(out)
    assert len(res) == n
    assert res["id"].tolist() == df["id"].tolist()  # leading zeros kept: CSV read as text
    assert res["text"].fillna("").tolist() == df["text"].tolist()
    status = res["response_status"].tolist()
    assert status[5] == status[500] == "skipped"
    for i in (0, 1, 499, 999):
        assert res["response"][i] == expected_reply(
            df["text"][i], system="Be brief.", temperature=0
        )
    assert sum(s == "ok" for s in status) == n - 2
    assert "ok: 998" in capsys.readouterr().out
    # the user's own output file has the usual permissions (the journal's are 0600)
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    assert not list(tmp_path.glob(".out.parquet.*"))  # no temporary file left behind


def test_run_jsonl_template_and_exit_code_on_failure(
    server: LocalServer, env_key: str, tmp_path: Path
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(orjson.dumps({"a": f"x{i}", "b": i}) + b"\n" for i in range(6)))
    out = tmp_path / "out.jsonl"
    args = ["run", str(src), "--template", "{a} / {b}", "--model", MODEL, "-o", str(out), "-q"]
    assert main([*args, *conn(server)]) == 0
    rows = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert [r["response"] for r in rows] == [expected_reply(f"x{i} / {i}") for i in range(6)]

    server.faults.fail_lines(code="internal_error", rate=1.0)
    out2 = tmp_path / "failed.csv"
    # --fresh: the same requests ran before, and would otherwise come back from the journal
    rerun = [*args[:-3], "-o", str(out2), "-q", "--output-prefix", "r2", "--fresh"]
    assert main([*rerun, *conn(server)]) == 1
    res = pd.read_csv(out2)
    assert set(res["r2_status"]) == {"error"} and set(res["r2_error_code"]) == {"internal_error"}


def test_run_again_resumes_instead_of_paying_twice(
    server: LocalServer, env_key: str, tmp_path: Path
) -> None:
    src = tmp_path / "in.csv"
    pd.DataFrame({"q": [f"question {i}" for i in range(30)]}).to_csv(src, index=False)
    args = ["run", str(src), "--prompt-col", "q", "--model", MODEL, "-q", *conn(server)]
    assert main([*args, "-o", str(tmp_path / "a.csv")]) == 0
    assert main([*args, "-o", str(tmp_path / "b.csv")]) == 0  # same job: from the journal
    creates = [r for r in server.request_log if r[0] == "POST" and r[1] == "/v1/batches"]
    assert len(creates) == 1
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)
    assert main([*args, "--fresh", "-o", str(tmp_path / "c.csv")]) == 0
    creates = [r for r in server.request_log if r[0] == "POST" and r[1] == "/v1/batches"]
    assert len(creates) == 2


def test_resource_commands(
    server: LocalServer, env_key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    df = pd.DataFrame({"q": ["one", "two"]})
    df.zgpu.batch_chat("q", model=MODEL, base_url=server.url, project_id="p1", progress=False)
    capsys.readouterr()
    assert main(["batches", "list", "--json", *conn(server)]) == 0
    batches = [orjson.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(batches) == 1 and batches[0]["status"] == "completed"
    bid, out_id = batches[0]["id"], batches[0]["output_file_id"]

    assert main(["batches", "show", bid, *conn(server)]) == 0
    assert orjson.loads(capsys.readouterr().out)["request_counts"]["completed"] == 2
    assert main(["batches", "list", *conn(server)]) == 0
    assert bid in capsys.readouterr().out

    assert main(["files", "list", "--purpose", "batch_output", *conn(server)]) == 0
    assert out_id in capsys.readouterr().out
    target = tmp_path / "o.jsonl"
    assert main(["files", "download", out_id, "-o", str(target), *conn(server)]) == 0
    answers = {orjson.loads(x)["custom_id"] for x in target.read_bytes().splitlines()}
    assert len(answers) == 2
    assert main(["files", "delete", out_id, *conn(server)]) == 0
    capsys.readouterr()
    assert main(["files", "list", "--json", *conn(server)]) == 0
    assert out_id not in capsys.readouterr().out

    # cancelling a finished batch is refused by the service: the command says so, no traceback
    assert main(["batches", "cancel", bid, *conn(server)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "completed" in err


def test_cancel_command_on_a_running_batch(
    start_server: object, env_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    srv = start_server(latency=0.5, concurrency=1)  # type: ignore[operator]
    job = pd.DataFrame({"q": [f"q{i}" for i in range(20)]}).zgpu.submit_chat(
        "q", model=MODEL, base_url=srv.url, project_id="p1", progress=False
    )
    (bid,) = job.batch_ids
    assert main(["batches", "cancel", bid, *conn(srv)]) == 0
    assert capsys.readouterr().out.strip() in {f"{bid}: cancelling", f"{bid}: cancelled"}
    job.wait()
    assert job.status().batches[0].status == "cancelled"


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    commands = [
        [],
        ["serve"],
        ["demo"],
        ["run"],
        ["jobs"],
        ["batches"],
        ["batches", "list"],
        ["batches", "show"],
        ["batches", "cancel"],
        ["files"],
        ["files", "list"],
        ["files", "download"],
        ["files", "delete"],
    ]
    for cmd in commands:
        with pytest.raises(SystemExit) as info:
            parser.parse_args([*cmd, "--help"])
        assert info.value.code == 0
        assert "usage: zgpu-pandas" in capsys.readouterr().out


def test_missing_key_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["batches", "list", "--base-url", "http://127.0.0.1:9"]) == 1
    assert "ZGPU_API_KEY" in capsys.readouterr().err


def test_demo_console_script_runs_offline(tmp_path: Path) -> None:
    exe = shutil.which("zgpu-pandas", path=os.path.dirname(sys.executable))
    cmd = (
        [exe, "demo", "--latency", "0", "-q"]
        if exe
        else [sys.executable, "-m", "zgpu_pandas", "demo", "--latency", "0", "-q"]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZGPU_", "ZEROGPU_"))}
    env["ZGPU_STATE_DIR"] = str(tmp_path / "state")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Rows by status:" in proc.stdout and "ok" in proc.stdout
    written = tmp_path / "zgpu-demo" / "reviews_tagged.csv"
    res = pd.read_csv(written)
    assert len(res) == 300
    assert (res["response_status"] == "skipped").sum() == res["review"].isna().sum()


def test_demo_remote_uses_the_environments_service_and_key(
    server: LocalServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # --remote is the real-service path: settings come from the environment only. A local
    # server stands in for ZeroGPU here (the machine running the tests has no network).
    monkeypatch.setenv("ZGPU_API_KEY", "remote-demo-key")
    monkeypatch.setenv("ZGPU_PROJECT_ID", "p1")
    monkeypatch.setenv("ZGPU_BASE_URL", server.url)
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--remote", "-q", "-o", "out.csv"]) == 0
    assert "Tagging the bundled reviews on ZeroGPU" in capsys.readouterr().out
    creates = [r for r in server.request_log if r[:2] == ("POST", "/v1/batches")]
    assert len(creates) == 1
    assert len(pd.read_csv(tmp_path / "out.csv")) == 300


def test_demo_remote_without_a_key_says_which_variable_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--remote", "-q"]) == 1
    assert "ZGPU_API_KEY" in capsys.readouterr().err


def test_jobs_lists_newest_first_and_shows_a_damaged_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command and zgpu_pandas.jobs() share one lister: a damaged record is listed as
    such, never a traceback that hides the other jobs."""
    from zgpu_pandas._journal import Journal

    j = Journal(tmp_path / "jobs")
    old = j.create(fingerprint="a", model="m", rows=3, settings={}, base_url="local",
                   job_id="job_20250101-000000_00000001")
    new = j.create(fingerprint="b", model="m", rows=5, settings={}, base_url="local",
                   job_id="job_20250102-000000_00000002")
    bad = j.create(fingerprint="c", model="m", rows=1, settings={}, base_url="local",
                   job_id="job_20250103-000000_00000003")
    (j.job_dir(bad.job_id) / "job.json").write_text("{not json")
    assert main(["jobs", "--state-dir", str(tmp_path / "jobs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    ids = [ln.split()[0] for ln in lines[1:]]
    assert ids == [bad.job_id, new.job_id, old.job_id]
    assert "damaged" in lines[1]
    assert main(["jobs", "--json", "--state-dir", str(tmp_path / "jobs")]) == 0
    rows = [orjson.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in rows] == ["damaged", "created", "created"]
