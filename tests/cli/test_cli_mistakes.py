"""``zgpu-pandas run``: a user's mistakes are one line and a non-zero exit, found before
anything is uploaded; the summary says why rows failed; --schema; JSON cells in CSV; Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pandas as pd
import pytest

from zgpu_pandas.cli import build_parser, main
from zgpu_pandas.server import LocalServer

MODEL = "LFM2.5-1.2B-Instruct"


@pytest.fixture
def env_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ZGPU_API_KEY", "cli-test-key")
    return "cli-test-key"


@pytest.fixture
def reviews(tmp_path: Path) -> Path:
    src = tmp_path / "reviews.csv"
    pd.DataFrame({"review": ["Great value", "Broke in a day", "Fine"]}).to_csv(src, index=False)
    return src


def conn(srv: LocalServer) -> list[str]:
    return ["--base-url", srv.url, "--project-id", "p1"]


def uploads(srv: LocalServer) -> list[tuple[str, str, int]]:
    return [r for r in srv.request_log if r[0] == "POST"]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("out.xlsx", "'.xlsx'"),
        ("out", "no extension"),
        ("/proc/x.parquet", "/proc"),
        ("afile/out.csv", "is a file, not a folder"),
        ("afile/deeper/out.csv", "is a file, not a folder"),
        (".", "is not empty"),  # a folder is a dataset output, and must hold no other files
    ],
)
def test_an_impossible_output_is_refused_before_anything_is_uploaded(
    server: LocalServer,
    env_key: str,
    reviews: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    output: str,
    expected: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    args = ["run", str(reviews), "--prompt-col", "review", "--model", MODEL, "-q"]
    assert main([*args, "-o", output, *conn(server)]) == 1
    assert expected in one_line_error(capsys)
    assert uploads(server) == []
    assert not list(tmp_path.glob(".zgpu-probe-*"))


def test_a_read_only_folder_is_refused(
    server: LocalServer, env_key: str, reviews: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    args = ["run", str(reviews), "--prompt-col", "review", "--model", MODEL, "-q"]
    assert main([*args, "-o", str(locked / "o.csv"), *conn(server)]) == 1
    assert "choose another folder" in one_line_error(capsys)
    assert uploads(server) == []


def test_a_missing_or_unreadable_input_is_one_line(
    server: LocalServer, env_key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--prompt-col", "review", "--model", MODEL, "-o", str(tmp_path / "o.csv"), "-q"]
    assert main(["run", str(tmp_path / "nope.csv"), *args, *conn(server)]) == 1
    assert "does not exist" in one_line_error(capsys)
    assert main(["run", str(tmp_path), *args, *conn(server)]) == 1  # a folder of nothing
    assert "holds no .parquet, .csv or .jsonl file" in one_line_error(capsys)
    (tmp_path / "in.txt").write_text("review\nx\n")
    assert main(["run", str(tmp_path / "in.txt"), *args, *conn(server)]) == 1
    assert "'.txt'" in one_line_error(capsys)
    (tmp_path / "broken.parquet").write_bytes(b"this is not parquet")
    assert main(["run", str(tmp_path / "broken.parquet"), *args, *conn(server)]) == 1
    assert "cannot read" in one_line_error(capsys)
    assert uploads(server) == []


def test_a_model_typo_is_caught_with_a_suggestion_and_can_be_overridden(
    server: LocalServer, env_key: str, reviews: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["run", str(reviews), "--prompt-col", "review", "-o", str(tmp_path / "o.csv"), "-q"]
    assert main([*args, "--model", "LFM2.5-1.2B-instruct", *conn(server)]) == 1
    assert "did you mean 'LFM2.5-1.2B-Instruct'" in one_line_error(capsys)
    assert uploads(server) == []
    # a custom deployment: sent as given; every row fails for one reason, and the summary
    # says which (not only the counts)
    code = main([*args, "--model", "my-finetune", "--no-check-model", *conn(server)])
    assert code == 1
    out = capsys.readouterr().out
    assert "error: 3" in out and "every failed row: not_found_error: " in out
    assert "my-finetune" in out


def test_unknown_param_is_refused_and_extra_is_sent_as_given(
    server: LocalServer, env_key: str, reviews: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["run", str(reviews), "--prompt-col", "review", "--model", MODEL, "-q"]
    dest = ["-o", str(tmp_path / "o.csv")]
    assert main([*args, *dest, "--param", "temprature=0", *conn(server)]) == 1
    assert "did you mean 'temperature'" in one_line_error(capsys)
    assert uploads(server) == []
    assert main([*args, *dest, "--param", "temperature=0", "--extra", "my_field=7",
                 *conn(server)]) == 0


def test_schema_from_a_file_and_from_a_pydantic_class_with_lists_as_json_in_csv(
    server: LocalServer, env_key: str, reviews: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "sentiment": {"type": "string", "enum": ["positive", "neutral", "negative"]},
            "topics": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["sentiment", "topics"],
    }
    (tmp_path / "tags.json").write_bytes(orjson.dumps(schema))
    args = ["run", str(reviews), "--prompt-col", "review", "--model", MODEL, "-q"]
    out_csv = tmp_path / "tagged.csv"
    assert main([*args, "--schema", str(tmp_path / "tags.json"), "-o", str(out_csv),
                 *conn(server)]) == 0
    res = pd.read_csv(out_csv)
    assert set(res["sentiment"]) <= {"positive", "neutral", "negative"}
    # list cells are JSON, not Python reprs: any tool reads them back
    topics = [json.loads(t) for t in res["topics"]]
    assert all(isinstance(t, list) for t in topics)
    assert not any(t.startswith("['") for t in res["topics"])

    (tmp_path / "tagmodels.py").write_text(
        "from typing import Literal\n"
        "from pydantic import BaseModel\n"
        "class Tag(BaseModel):\n"
        "    sentiment: Literal['positive', 'neutral', 'negative']\n"
        "    topics: list[str]\n"
    )
    monkeypatch.chdir(tmp_path)
    out_jsonl = tmp_path / "tagged.jsonl"
    assert main([*args, "--schema", "tagmodels:Tag", "-o", str(out_jsonl), *conn(server)]) == 0
    rows = [orjson.loads(x) for x in out_jsonl.read_bytes().splitlines()]
    assert all(isinstance(r["topics"], list) for r in rows)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("nothere.json", "does not exist"),
        ("tagmodels_absent:Tag", "cannot import"),
        ("json:JSONDecoder", "is not a Pydantic model class"),
        ("json:Nope", "has no 'Nope'"),
        ("plainword", "module:Class"),
    ],
)
def test_a_bad_schema_is_one_line_before_upload(
    server: LocalServer, env_key: str, reviews: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], value: str, expected: str,
) -> None:
    args = ["run", str(reviews), "--prompt-col", "review", "--model", MODEL, "-q"]
    assert main([*args, "--schema", value, "-o", str(tmp_path / "o.csv"), *conn(server)]) == 1
    assert expected in one_line_error(capsys)
    assert uploads(server) == []


def test_template_missing_choices_from_the_command_line(
    server: LocalServer, env_key: str, tmp_path: Path
) -> None:
    src = tmp_path / "tickets.csv"
    pd.DataFrame({"subject": ["Refund", "Login", None], "body": ["please", None, None]}).to_csv(
        src, index=False
    )
    base = ["run", str(src), "--template", "S: {subject} B: {body}", "--model", MODEL, "-q"]
    for extra, expected in [
        ([], ["ok", "skipped", "skipped"]),
        (["--missing", "empty"], ["ok", "ok", "skipped"]),
        (["--fill", "body=(none)"], ["ok", "ok", "skipped"]),
    ]:
        out = tmp_path / f"o{len(extra)}{extra[:1]}.csv".replace("[", "").replace("]", "")
        code = main([*base, *extra, "-o", str(out), *conn(server)])
        assert code == 0
        assert pd.read_csv(out)["response_status"].tolist() == expected, extra


def _polled_after_create(srv: LocalServer) -> bool:
    log = list(srv.request_log)
    created = [i for i, r in enumerate(log) if r[:2] == ("POST", "/v1/batches")]
    return bool(created) and any(
        m == "GET" and p.startswith("/v1/batches/batch") for m, p, _ in log[created[0] + 1 :]
    )


def test_ctrl_c_says_how_to_resume_from_the_command_line(
    start_server: object, tmp_path: Path
) -> None:
    """A real SIGINT to a real ``zgpu-pandas run`` while it waits: the message speaks of
    commands (not of df.zgpu), and the same command picks the job up without a new batch."""
    srv: LocalServer = start_server(latency=0.3, concurrency=1)  # type: ignore[operator]
    src = tmp_path / "in.csv"
    pd.DataFrame({"q": [f"question {i}" for i in range(20)]}).to_csv(src, index=False)
    cmd = [sys.executable, "-m", "zgpu_pandas", "run", str(src), "--prompt-col", "q",
           "--model", MODEL, "-q", "-o", str(tmp_path / "out.csv"), *conn(srv)]
    env = {**os.environ, "ZGPU_API_KEY": "k", "ZGPU_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    # Into the wait: the batch created, and then polled (a fixed pause after the create was
    # not enough on a busy machine: the interrupt could land before the wait began).
    while not _polled_after_create(srv):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "run the same command again" in err
    assert "zgpu-pandas batches cancel batch_" in err
    assert "df.zgpu" not in err and "Traceback" not in err
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Resumed job" in done.stderr  # visible even with -q
    assert len([r for r in srv.request_log if r[:2] == ("POST", "/v1/batches")]) == 1


def _walk(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, [*path, name])


_RST = re.compile(r"``|:(class|func|meth|mod|attr):|::\s*$|\.\. ")
_DANGLING = re.compile(r"\b(is|are|the|a|an|and|or|of|to|with|any)\s*$", re.IGNORECASE)


def test_help_of_every_subcommand_is_complete_and_plain(capsys: pytest.CaptureFixture[str]) -> None:
    """Every option of every sub-command has help text, no help or description is cut off
    mid-sentence, none shows reStructuredText markup, every sub-command has a description,
    and --help works for each."""
    parser = build_parser()
    seen = 0
    for path, p in _walk(parser, []):
        seen += 1
        where = " ".join(["zgpu-pandas", *path])
        if path:
            assert p.description, f"{where} has no description"
        texts = [p.description or "", p.epilog or ""]
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:
                    assert choice.help, f"{where} {choice.dest} has no help"
                    texts.append(choice.help)
                continue
            if action.help == argparse.SUPPRESS:
                continue
            assert action.help, f"{where} {'/'.join(action.option_strings) or action.dest}: no help"
            texts.append(action.help)
            assert not _DANGLING.search(action.help), f"{where}: cut-off help {action.help!r}"
        for text in texts:
            assert not _RST.search(text), f"{where}: markup in {text!r}"
        with pytest.raises(SystemExit) as info:
            parser.parse_args([*path, "--help"])
        assert info.value.code == 0
        assert f"usage: {where}" in capsys.readouterr().out
    assert seen >= 13


def test_max_cost_refuses_before_anything_is_uploaded(
    server: LocalServer, env_key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    src = tmp_path / "big.csv"
    pd.DataFrame({"t": [f"{i} " + "word " * 2000 for i in range(50)]}).to_csv(src, index=False)
    args = ["run", str(src), "--prompt-col", "t", "--model", MODEL, "-o",
            str(tmp_path / "o.csv"), "-q", *conn(server)]
    assert main([*args, "--max-cost", "0.001"]) == 1
    err = one_line_error(capsys)
    assert "exceed max_cost=$0.0010" in err
    assert uploads(server) == []
    assert main([*args, "--max-cost", "1"]) == 0
