"""Server settings in one place: flags, ``$ZGPU_SERVER_*`` and a TOML file, flag > env >
file > default; a wrong value is one line and exit 2; the docs table lists every setting."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest

from tests.support import ROOT
from zgpu_pandas.cli import build_parser, main
from zgpu_pandas.server._cli import build_config
from zgpu_pandas.server.settings import SETTINGS, load_file, resolve


def _resolve(argv: list[str], env: dict[str, str]):
    return resolve(build_parser().parse_args(["serve", *argv]), env)


def test_a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default(tmp_path):
    cfg = tmp_path / "server.toml"
    cfg.write_text('concurrency = 4\nupstream_timeout = 30\nadmin = true\n'
                   'upstream_header = ["x-project-id: p"]\n')
    env = {"ZGPU_SERVER_CONCURRENCY": "6", "ZGPU_SERVER_UPSTREAM_TIMEOUT": "45.5"}
    v, src = _resolve(["--config", str(cfg), "--concurrency", "8"], env)
    assert (v["concurrency"], src["concurrency"]) == (8, "--concurrency")
    assert (v["upstream_timeout"], src["upstream_timeout"]) == (45.5, "$ZGPU_SERVER_UPSTREAM_TIMEOUT")
    assert (v["admin"], src["admin"]) == (True, f"--config {cfg}")
    assert v["upstream_header"] == ["x-project-id: p"]
    assert (v["upstream_retries"], src["upstream_retries"]) == (3, "default")
    v, src = _resolve(["--config", str(cfg)], {})
    assert (v["concurrency"], v["upstream_timeout"]) == (4, 30.0)
    # a boolean flag can also turn off what the file turned on
    v, src = _resolve(["--config", str(cfg), "--no-admin"], {})
    assert (v["admin"], src["admin"]) == (False, "--admin")


def test_the_config_file_can_come_from_the_environment_and_a_server_table(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('[server]\nsweep_interval = 60\nengine = "upstream"\n'
                   'upstream_url = "http://gpu:8000/v1"\n[server.upstream_header]\nx-team = "a"\n')
    v, _ = _resolve([], {"ZGPU_SERVER_CONFIG": str(cfg)})
    assert (v["sweep_interval"], v["engine"], v["upstream_header"]) == (60.0, "upstream", ["x-team:a"])
    config, _ = build_config(build_parser().parse_args(["serve"]), {"ZGPU_SERVER_CONFIG": str(cfg)})
    assert config.sweep_interval == 60.0 and config.upstream_url == "http://gpu:8000/v1"
    assert config.upstream_headers == {"x-team": "a"}


def test_relative_paths_in_the_file_are_beside_the_file(tmp_path, monkeypatch):
    (tmp_path / "etc").mkdir()
    cfg = tmp_path / "etc" / "server.toml"
    cfg.write_text('data_dir = "state"\napi_keys_file = "keys.txt"\n')
    monkeypatch.chdir(tmp_path)
    v, _ = _resolve(["--config", "etc/server.toml"], {})
    assert v["data_dir"] == str((tmp_path / "etc" / "state").resolve())
    assert v["api_keys_file"] == str((tmp_path / "etc" / "keys.txt").resolve())
    # on the command line a path is the shell's: relative to where serve starts
    v, _ = _resolve(["--config", "etc/server.toml", "--data-dir", "here"], {})
    assert v["data_dir"] == "here"


@pytest.mark.parametrize(
    ("toml", "env", "said"),
    [
        ("concurency = 4\n", {}, "unknown setting 'concurency' (did you mean concurrency?)"),
        ('concurrency = "many"\n', {}, "concurrency must be an integer, got 'many'"),
        ('engine = "gpu"\n', {}, "engine must be one of builtin, upstream, got 'gpu'"),
        ("concurrency = [\n", {}, "is not valid TOML"),
        ("", {"ZGPU_SERVER_CONCURRENCY": "lots"}, "$ZGPU_SERVER_CONCURRENCY must be an integer"),
        ("", {"ZGPU_SERVER_ADMIN": "maybe"}, "$ZGPU_SERVER_ADMIN must be true or false"),
        ("", {"ZGPU_SERVER_CONCURENCY": "4"}, "$ZGPU_SERVER_CONCURENCY is not a server setting "
         "(did you mean $ZGPU_SERVER_CONCURRENCY?)"),
        ("concurrency = 0\n", {}, "concurrency must be >= 1, got 0"),
    ],
)
def test_a_wrong_setting_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, toml, env, said):
    cfg = tmp_path / "server.toml"
    cfg.write_text(toml)
    for k, val in env.items():
        monkeypatch.setenv(k, val)
    code = main(["serve", "--config", str(cfg), "--check", "--data-dir", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert said in err[0]


def test_a_missing_config_file_is_exit_2(tmp_path, capsys):
    assert main(["serve", "--config", str(tmp_path / "nope.toml"), "--check"]) == 2
    assert "cannot read --config" in capsys.readouterr().err


def test_serve_runs_with_the_settings_of_file_and_environment(tmp_path):
    cfg = tmp_path / "server.toml"
    cfg.write_text(f'port = 0\nadmin = true\nconcurrency = 3\ndata_dir = "{tmp_path / "data"}"\n'
                   "upstream_timeout = 12\n")
    env = {"PATH": "/usr/bin:/bin", "ZGPU_SERVER_CONFIG": str(cfg),
           "ZGPU_SERVER_FILE_RETENTION_SECONDS": "3600", "ZGPU_SERVER_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "zgpu_pandas", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = re.search(r"http://\S+", first)
        assert url, first + (proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
        shown = httpx.get(url.group(0) + "/_admin/config").json()
        assert shown["concurrency"] == 3 and shown["upstream_timeout"] == 12.0
        assert shown["file_retention_seconds"] == 3600.0 and shown["sweep_interval"] == 3600.0
        assert shown["data_dir"] == str((tmp_path / "data").resolve())
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_the_docs_table_lists_every_setting_with_its_flag_variable_and_default():
    text = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith("| `") and "ZGPU_SERVER_" in line}
    for s in SETTINGS:
        row = rows.get(f"`{s.name}`")
        assert row is not None, f"docs/server.md has no row for the setting {s.name}"
        assert f"`{s.flag}" in row and f"`${s.env}`" in row, row


def test_every_settings_file_shown_in_the_docs_is_valid(tmp_path):
    text = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 2  # the settings table's example and "Running it for a team"
    for i, block in enumerate(blocks):
        path = tmp_path / f"example-{i}.toml"
        path.write_text(block)
        values = load_file(str(path))  # an unknown name or a wrong type raises
        assert values["data_dir"].endswith("zgpu")
