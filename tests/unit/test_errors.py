"""One public module holds every exception: each class the package defines lives in
``zgpu_pandas.errors``, is exported from ``zgpu_pandas`` too, and sits in the tree drawn in the
module's docstring under its real parent."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any

import zgpu_pandas
import zgpu_pandas.errors as errors

PACKAGE = Path(zgpu_pandas.__file__).parent


def _exception_classes() -> dict[str, type[BaseException]]:
    return {
        name: obj
        for name in errors.__all__
        if isinstance(obj := getattr(errors, name), type) and issubclass(obj, BaseException)
    }


def test_no_exception_is_defined_outside_the_errors_module() -> None:
    """The server is separate (it answers HTTP errors and imports nothing of the client)."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "server" or rel.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and re.search(r"(Error|Exception)$", node.name):
                bases = {ast.unparse(b) for b in node.bases}
                if any(re.search(r"(Error|Exception)$", b) for b in bases):
                    offenders.append(f"{rel}:{node.lineno} {node.name}")
    assert not offenders, offenders


def test_every_package_module_raises_only_classes_from_the_tree() -> None:
    """No module keeps a private exception class alive under another name."""
    known = set(_exception_classes().values())
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="zgpu_pandas."):
        if ".server" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                isinstance(obj, type)
                and issubclass(obj, zgpu_pandas.ZgpuError)
                and obj.__module__ != "zgpu_pandas.errors"
            ):
                raise AssertionError(f"{info.name}.{name} is defined outside errors")
            if isinstance(obj, type) and issubclass(obj, zgpu_pandas.ZgpuError):
                assert obj in known, name


def test_every_exception_is_exported_from_the_package() -> None:
    for name, cls in _exception_classes().items():
        assert getattr(zgpu_pandas, name) is cls, name
        assert name in zgpu_pandas.__all__, name


def test_the_docstring_tree_is_the_real_tree() -> None:
    doc = errors.__doc__ or ""
    tree = [line for line in doc.splitlines() if re.match(r"^\s+(ZgpuError|[│ ]*[├└]── )", line)]
    depth_of: dict[str, int] = {}
    parent_of: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in tree:
        m = re.match(r"^(\s*(?:[│ ]*[├└]── )?)(\w+)", line)
        assert m, line
        depth, name = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parent_of[name] = stack[-1][1] if stack else None
        depth_of[name] = depth
        stack.append((depth, name))
    classes = _exception_classes()
    assert set(parent_of) == set(classes), set(parent_of) ^ set(classes)
    for name, parent in parent_of.items():
        cls = classes[name]
        if parent is None:
            assert cls is errors.ZgpuError
        else:
            assert classes[parent] in cls.__mro__[1:], (name, parent)
            # the drawn parent is the nearest class of the tree above it
            nearest = next(b for b in cls.__mro__[1:] if b in classes.values())
            assert nearest is classes[parent], (name, parent, nearest)


def test_the_core_imports_no_frame_library() -> None:
    """zgpu_pandas/core works on Arrow: pandas and Polars are imported by the adapters in
    zgpu_pandas/frames (the core reaches them only through as_rows/as_output)."""
    for path in (PACKAGE / "core").glob("*.py"):
        for node in ast.parse(path.read_text()).body:  # module level only
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in ("pandas", "polars", "narwhals"), (path, name)
                assert "frames" not in name.split("."), (path, name)


def test_every_error_crosses_a_process_boundary_as_itself() -> None:
    """A Dask worker's error reaches the client pickled: class, message and the attributes
    that can travel; a job or a key stays behind instead of breaking the pickle."""
    import pickle

    from zgpu_pandas.errors import APIStatusError, AuthenticationError, JobTimeoutError

    class Job:  # like a BatchJob: holds a client and locks, cannot be pickled
        def __reduce__(self) -> Any:
            raise TypeError("not picklable")

    cases = [
        AuthenticationError("Bad key", status_code=401, code="invalid_api_key", hint="Fix it."),
        JobTimeoutError("Job job_1 timed out after 3 s; it keeps running.", job=Job()),
        errors.CostLimitError("Too much", estimate_usd=2.5, max_cost=1.0),
        errors.OptionError("retries must be >= 0"),
    ]
    for err in cases:
        back = pickle.loads(pickle.dumps(err))
        assert type(back) is type(err) and str(back) == str(err)
    assert pickle.loads(pickle.dumps(cases[0])).status_code == 401
    assert isinstance(pickle.loads(pickle.dumps(cases[0])), APIStatusError)
    assert pickle.loads(pickle.dumps(cases[1])).job is None  # stayed behind
    assert pickle.loads(pickle.dumps(cases[2])).estimate_usd == 2.5
