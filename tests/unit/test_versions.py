"""The supported versions are declared once and tested where they are declared: the oldest
leg of CI installs exactly the lower bounds in pyproject.toml, the classifiers name every
supported Python, the lint tools are pinned, and the README says what is supported."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = None

ROOT = Path(__file__).resolve().parents[2]
SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]
_REQ = re.compile(r"^([A-Za-z0-9_.-]+)\s*(\[[^\]]*\])?\s*([^;]*)(;.*)?$")


def _pyproject() -> dict:
    text = (ROOT / "pyproject.toml").read_text()
    if tomllib is not None:
        return tomllib.loads(text)
    import tomli  # Python 3.10 has no tomllib (the dev extra installs tomli there)

    return tomli.loads(text)


def _bounds(reqs: list[str]) -> dict[str, str]:
    out = {}
    for req in reqs:
        m = _REQ.match(req.strip())
        assert m, req
        name, spec = m.group(1).lower(), m.group(3).strip()
        lower = re.search(r">=\s*([0-9][^,\s]*)", spec)
        if lower:
            out[name] = lower.group(1)
    return out


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / ".ci" / "constraints-oldest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _same_version(a: str, b: str) -> bool:
    pad = lambda v: [int(x) for x in v.split(".")] + [0] * (3 - v.count(".") - 1)  # noqa: E731
    return pad(a) == pad(b)


def test_the_oldest_leg_installs_exactly_the_declared_minimums() -> None:
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    declared = _bounds(
        project["dependencies"]
        + extras["notebook"]
        + extras["structured"]
        + extras["polars"]
        + extras["dask"]
        # the suite's addopts need it (several processes), so its minimum is tested too
        + [r for r in extras["dev"] if r.startswith("pytest-xdist")]
    )
    pins = _constraints()
    assert set(pins) == set(declared), set(pins) ^ set(declared)
    for name, version in declared.items():
        assert _same_version(pins[name], version), (name, pins[name], version)


def test_every_runtime_dependency_has_a_lower_bound() -> None:
    for req in _pyproject()["project"]["dependencies"]:
        assert ">=" in req, f"{req}: declare the tested minimum"


def test_classifiers_and_requires_python_name_the_supported_range() -> None:
    project = _pyproject()["project"]
    assert project["requires-python"] == f">={SUPPORTED[0]}"
    named = {
        c.rsplit(" :: ", 1)[1]
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert named == set(SUPPORTED)


def test_lint_and_type_check_tools_are_pinned_exactly() -> None:
    dev = _pyproject()["project"]["optional-dependencies"]["dev"]
    for tool in ("ruff", "mypy", "pandas-stubs"):
        reqs = [r for r in dev if re.match(rf"{tool}\s*[=<>!~]", r)]
        assert reqs and all("==" in r for r in reqs), (tool, reqs)


def test_the_readme_states_the_supported_and_tested_versions() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Supported versions", 1)[1].split("\n## ", 1)[0]
    for v in SUPPORTED:
        assert v in section
    for name, version in _constraints().items():
        if name in ("pandas", "numpy", "pyarrow"):
            assert f"{name} {version}" in section, name
