"""Settings resolution: argument > ZGPU_* > ZEROGPU_* > default, presets, provider rules."""

from __future__ import annotations

import pickle

import httpx
import pytest

from zgpu_pandas._client import Client
from zgpu_pandas._config import SecretStr, is_local_url, resolve_settings
from zgpu_pandas.errors import ConfigurationError

ALL_VARS = (
    "ZGPU_API_KEY",
    "ZGPU_PROJECT_ID",
    "ZGPU_BASE_URL",
    "ZEROGPU_API_KEY",
    "ZEROGPU_PROJECT_ID",
    "ZEROGPU_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_PROJECT_ID",
    "OPENAI_BASE_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALL_VARS:
        monkeypatch.delenv(name, raising=False)


def recording_client(seen: list[httpx.Request], **kwargs: object) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"object": "list", "data": [], "has_more": False})

    return Client(http_client=httpx.Client(transport=httpx.MockTransport(handler)), **kwargs)  # type: ignore[arg-type]


def test_explicit_argument_beats_both_env_spellings() -> None:
    env = {
        "ZGPU_API_KEY": "from-zgpu",
        "ZEROGPU_API_KEY": "from-zerogpu",
        "ZGPU_PROJECT_ID": "p-zgpu",
        "ZEROGPU_PROJECT_ID": "p-zerogpu",
    }
    s = resolve_settings(api_key="explicit", project_id="p-explicit", env=env)
    assert s.api_key.get_secret_value() == "explicit"
    assert s.project_id == "p-explicit"
    assert s.key_source == "argument"


def test_zgpu_spelling_beats_zerogpu_spelling() -> None:
    env = {
        "ZGPU_API_KEY": "from-zgpu",
        "ZEROGPU_API_KEY": "from-zerogpu",
        "ZGPU_PROJECT_ID": "p-zgpu",
        "ZEROGPU_PROJECT_ID": "p-zerogpu",
        "ZGPU_BASE_URL": "staging",
        "ZEROGPU_BASE_URL": "development",
    }
    s = resolve_settings(env=env)
    assert (s.api_key.get_secret_value(), s.project_id, s.base_url) == (
        "from-zgpu",
        "p-zgpu",
        "https://staging.api.zerogpu.ai",
    )
    assert s.key_source == "ZGPU_API_KEY"


def test_zerogpu_spelling_used_when_zgpu_absent() -> None:
    env = {
        "ZEROGPU_API_KEY": "from-zerogpu",
        "ZEROGPU_PROJECT_ID": "p-zerogpu",
        "ZEROGPU_BASE_URL": "https://dev.api.zerogpu.ai/",
    }
    s = resolve_settings(env=env)
    assert (s.api_key.get_secret_value(), s.project_id, s.base_url) == (
        "from-zerogpu",
        "p-zerogpu",
        "https://dev.api.zerogpu.ai",
    )


def test_defaults_production_and_no_project() -> None:
    s = resolve_settings(api_key="k", env={})
    assert s.base_url == "https://api.zerogpu.ai"
    assert s.project_id is None
    assert not s.is_local


@pytest.mark.parametrize(
    ("preset", "url"),
    [
        ("production", "https://api.zerogpu.ai"),
        ("staging", "https://staging.api.zerogpu.ai"),
        ("development", "https://dev.api.zerogpu.ai"),
        ("STAGING", "https://staging.api.zerogpu.ai"),
    ],
)
def test_presets(preset: str, url: str) -> None:
    assert resolve_settings(api_key="k", base_url=preset, env={}).base_url == url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080"),
        ("https://proxy.example.com/zgpu/v1/", "https://proxy.example.com/zgpu"),
    ],
)
def test_base_url_normalised(given: str, expected: str) -> None:
    assert resolve_settings(api_key="k", base_url=given, env={}).base_url == expected


@pytest.mark.parametrize(
    "bad", ["prod", "ftp://x.example", "api.zerogpu.ai", "https://h.example/?a=1"]
)
def test_bad_base_url_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        resolve_settings(api_key="k", base_url=bad, env={})


def test_missing_key_names_the_variables_to_set() -> None:
    with pytest.raises(ConfigurationError) as info:
        Client()
    msg = str(info.value)
    assert "ZGPU_API_KEY" in msg and "ZEROGPU_API_KEY" in msg and "api_key=" in msg


def test_missing_openai_key_names_openai_variable() -> None:
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        Client(provider="openai")


def test_unknown_provider() -> None:
    with pytest.raises(ConfigurationError, match="provider"):
        Client(api_key="k", provider="anthropic")


def test_client_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEROGPU_API_KEY", "env-key-zerogpu")
    monkeypatch.setenv("ZEROGPU_PROJECT_ID", "proj-env")
    seen: list[httpx.Request] = []
    with recording_client(seen) as client:
        list(client.batches.list())
    assert seen[0].headers["x-api-key"] == "env-key-zerogpu"
    assert seen[0].headers["x-project-id"] == "proj-env"
    assert seen[0].url.host == "api.zerogpu.ai"


def test_project_header_only_when_configured() -> None:
    seen: list[httpx.Request] = []
    with recording_client(seen, api_key="k") as client:
        list(client.files.list())
    assert "x-project-id" not in seen[0].headers
    assert "authorization" not in seen[0].headers


def test_key_is_not_in_the_pool_default_headers() -> None:
    with Client(api_key="a-secret-value-xyz") as client:
        assert "a-secret-value-xyz" not in repr(dict(client._http.headers))


def test_openai_provider_uses_bearer_and_openai_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-value")
    monkeypatch.setenv("ZGPU_API_KEY", "zgpu-value")  # must be ignored for provider="openai"
    seen: list[httpx.Request] = []
    with recording_client(seen, provider="openai") as client:
        assert client.base_url == "https://api.openai.com"
        assert client.provider == "openai"
        list(client.batches.list())
    req = seen[0]
    assert req.headers["authorization"] == "Bearer sk-openai-value"
    assert "x-api-key" not in req.headers
    assert str(req.url).startswith("https://api.openai.com/v1/batches")


def test_openai_base_url_with_v1_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    s = resolve_settings(provider="openai", api_key="sk-x", env=None)
    assert s.base_url == "https://api.openai.com"


def test_zerogpu_key_never_sent_to_openai_host() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"Refusing to send a ZeroGPU key to api\.openai\.com \(an OpenAI host",
    ):
        Client(api_key="zgpu-key", base_url="https://api.openai.com")


def test_openai_key_never_sent_to_zerogpu_host() -> None:
    with pytest.raises(
        ConfigurationError,
        match=r"Refusing to send an OpenAI key to api\.zerogpu\.ai \(a ZeroGPU host",
    ):
        Client(provider="openai", api_key="sk-x", base_url="https://api.zerogpu.ai/v1")
    with pytest.raises(ConfigurationError, match="ZeroGPU host"):
        Client(provider="openai", api_key="sk-x", base_url="staging")


def test_openai_env_key_passed_as_zerogpu_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-openai-key")
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        Client(api_key="sk-the-openai-key")


def test_zerogpu_env_key_passed_with_openai_provider_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZEROGPU_API_KEY", "zgpu-the-key")
    with pytest.raises(ConfigurationError, match="ZEROGPU_API_KEY"):
        Client(provider="openai", api_key="zgpu-the-key")


def test_custom_host_allowed_for_either_provider() -> None:
    assert (
        Client(api_key="k", base_url="https://gateway.example.com").base_url
        == "https://gateway.example.com"
    )
    assert Client(provider="openai", api_key="k", base_url="http://localhost:9000/v1").is_local


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:1", True),
        ("http://localhost:8080", True),
        ("http://[::1]:9", True),
        ("http://127.5.5.5", True),
        ("http://zgpu.localhost", True),
        ("https://api.zerogpu.ai", False),
        ("http://10.0.0.5:8000", False),
        ("http://localhost.example.com", False),
    ],
)
def test_is_local_url(url: str, local: bool) -> None:
    assert is_local_url(url) is local


def test_poll_interval_defaults() -> None:
    assert Client(api_key="k").poll_interval == 30.0
    assert Client(api_key="k", base_url="https://gpu-box.example.org").poll_interval == 30.0
    assert Client(api_key="k", base_url="http://127.0.0.1:9").poll_interval == 0.2
    # explicit always wins, even against the real service
    assert Client(api_key="k", poll_interval=5).poll_interval == 5


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_poll_interval(bad: float) -> None:
    with pytest.raises(ValueError, match="poll_interval"):
        Client(api_key="k", poll_interval=bad)


def test_secret_str_hides_itself() -> None:
    s = SecretStr("hunter2-secret")
    assert repr(s) == "'***'" and str(s) == "***" and f"{s}" == "***"
    assert s.get_secret_value() == "hunter2-secret"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(s)


def test_settings_and_client_repr_hide_key() -> None:
    s = resolve_settings(api_key="hunter2-secret", project_id="p", env={})
    assert "hunter2" not in repr(s)
    client = Client(api_key="hunter2-secret", project_id="p")
    assert "hunter2" not in repr(client) and "hunter2" not in str(vars(client))
