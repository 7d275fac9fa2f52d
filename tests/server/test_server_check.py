"""``zgpu-pandas serve --check``: exit 0 and one line when ready; exit 2 and one line naming
the problem (wrong URL, missing or refused key, unreachable upstream, unusable data dir)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys

import pytest

from tests.server.stub_upstream import StubUpstream
from zgpu_pandas.cli import main

KEY = "sk-upstream-secret-123"


def _check(tmp_path, capsys, *args: str) -> tuple[int, list[str], list[str]]:
    code = main(["serve", "--check", "--data-dir", str(tmp_path / "data"), *args])
    out, err = capsys.readouterr()
    return code, out.strip().splitlines(), err.strip().splitlines()


@pytest.fixture
def upstream():
    with StubUpstream(key=KEY, models=["m-small", "m-large"]) as up:
        yield up


def test_ready_upstream_passes_with_its_model_list(tmp_path, capsys, monkeypatch, upstream):
    monkeypatch.setenv("ZGPU_UPSTREAM_API_KEY", KEY)
    code, out, err = _check(tmp_path, capsys, "--engine", "upstream", "--upstream-url",
                            upstream.url + "/v1")
    assert (code, err) == (0, [])
    assert len(out) == 1 and "serves 2 model(s): m-small, m-large" in out[0]
    assert "writable" in out[0] and KEY not in out[0]
    assert not (tmp_path / "data").exists()  # a check creates nothing


def test_a_wrong_url_is_exit_2_and_one_line(tmp_path, capsys, monkeypatch, upstream):
    monkeypatch.setenv("ZGPU_UPSTREAM_API_KEY", KEY)
    code, out, err = _check(tmp_path, capsys, "--engine", "upstream", "--upstream-url",
                            upstream.url + "/wrong/prefix")
    assert code == 2 and out == [] and len(err) == 1
    assert "wrong --upstream-url" in err[0] and "404" in err[0]
    assert upstream.calls == {}  # nothing was run upstream


def test_a_missing_key_is_exit_2_and_one_line(tmp_path, capsys, monkeypatch, upstream):
    monkeypatch.delenv("ZGPU_UPSTREAM_API_KEY", raising=False)
    code, _, err = _check(tmp_path, capsys, "--engine", "upstream", "--upstream-url", upstream.url)
    assert code == 2 and len(err) == 1
    assert "no upstream key is set: export $ZGPU_UPSTREAM_API_KEY" in err[0]


def test_a_refused_key_is_exit_2_and_never_shown(tmp_path, capsys, monkeypatch, upstream):
    monkeypatch.setenv("ZGPU_UPSTREAM_API_KEY", "sk-wrong-key-456")
    code, _, err = _check(tmp_path, capsys, "--engine", "upstream", "--upstream-url", upstream.url)
    assert code == 2 and len(err) == 1
    assert "refused the key in $ZGPU_UPSTREAM_API_KEY (HTTP 401" in err[0]
    assert "sk-wrong-key-456" not in err[0]


def test_an_unreachable_upstream_is_exit_2(tmp_path, capsys, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = _check(tmp_path, capsys, "--engine", "upstream", "--upstream-url",
                          f"http://127.0.0.1:{port}/v1")
    assert code == 2 and len(err) == 1 and "cannot reach the upstream" in err[0]


def test_an_upstream_without_a_model_list_is_probed_with_an_invalid_chat(
    tmp_path, capsys, monkeypatch, start_server
):
    # the local server itself as the upstream: it has no /v1/models route
    up = start_server()
    monkeypatch.setenv("ZGPU_UPSTREAM_API_KEY", "test-key")
    code, out, err = _check(tmp_path, capsys, "--engine", "upstream", "--upstream-url", up.url,
                            "--upstream-header", "x-project-id: p")
    assert (code, err) == (0, []), err
    assert "answers (no model list" in out[0]
    assert not [r for r in up.request_log if r[0] == "POST" and r[2] == 200]  # nothing ran


def test_an_impossible_data_dir_is_exit_2(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code = main(["serve", "--check", "--data-dir", str(blocker / "data")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "is not a directory" in err[0]


def test_a_damaged_database_is_exit_2(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meta.sqlite3").write_bytes(b"not a database " * 200)
    code, _, err = _check(tmp_path, capsys)
    assert code == 2 and len(err) == 1 and "is damaged" in err[0]


def test_an_unusable_ca_bundle_is_exit_2(tmp_path, capsys, upstream):
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    code, _, err = _check(tmp_path, capsys, "--engine", "upstream", "--upstream-url",
                          upstream.url, "--upstream-ca-bundle", str(bad))
    assert code == 2 and len(err) == 1 and "ca.pem cannot be used" in err[0]


def test_the_command_line_exits_2_with_one_line(tmp_path, upstream):
    proc = subprocess.run(
        [sys.executable, "-m", "zgpu_pandas", "serve", "--check", "--engine", "upstream",
         "--upstream-url", upstream.url + "/nope", "--data-dir", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _private_ca(d) -> tuple[str, ssl.SSLContext]:
    """A CA of our own and a server certificate for localhost signed by it: the CA's PEM
    path and the server's TLS context."""
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=zgpu test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
        "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext.cnf")
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(d / "srv.pem", d / "srv.key")
    return str(d / "ca.pem"), server_side


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_a_private_ca_is_named_and_then_trusted_with_the_ca_bundle(
    tmp_path, capsys, monkeypatch, start_server, api_for, make_lines
):
    ca, tls = _private_ca(tmp_path)
    monkeypatch.setenv("ZGPU_UPSTREAM_API_KEY", KEY)
    with StubUpstream(key=KEY, models=["m"], tls=tls) as up:
        code, _, err = _check(tmp_path, capsys, "--engine", "upstream", "--upstream-url", up.url)
        assert code == 2 and len(err) == 1
        assert "TLS certificate this machine does not trust" in err[0]
        assert "--upstream-ca-bundle" in err[0]
        code, out, err = _check(tmp_path, capsys, "--engine", "upstream", "--upstream-url",
                                up.url, "--upstream-ca-bundle", ca)
        assert (code, err) == (0, []) and "serves 1 model(s): m" in out[0]
        # and the batches go through it, with the same setting
        srv = start_server(engine="upstream", upstream_url=up.url, upstream_api_key=KEY,
                           upstream_ca_bundle=ca)
        api = api_for(srv)
        done = api.wait(api.submit(make_lines(3))["id"])
        assert done["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
