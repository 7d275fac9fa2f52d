"""``zgpu-pandas run --schema``: a JSON schema file or a Pydantic model named ``module:Class``.

Read before anything is uploaded; every mistake (no such file, not JSON, no such module or
class, not a model) is one :class:`~zgpu_pandas.errors.OptionError` line.

Example::

    $ zgpu-pandas run tickets.csv --prompt-col body --model LFM2.5-1.2B-Instruct \\
          --schema ticket_schema.json -o labelled.parquet
    $ zgpu-pandas run tickets.csv ... --schema labels:Ticket     # labels.py, class Ticket
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import orjson

from .errors import OptionError

__all__ = ["load_schema"]


def load_schema(text: str) -> Any:
    """The ``response_format=`` value ``--schema text`` stands for: a dict read from a
    ``.json`` file, or a class imported from ``module:Class`` (the current folder is
    searched first, as ``python -m`` would)."""
    path = Path(text)
    if path.suffix.lower() == ".json" or path.exists():
        return _from_file(path)
    module, sep, name = text.partition(":")
    if not sep or not module or not name:
        raise OptionError(
            f"--schema {text!r}: give a .json file that exists, or a Pydantic model as "
            f"module:Class (e.g. mymodels:Ticket)"
        )
    return _from_module(module, name, text)


def _from_file(path: Path) -> Any:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise OptionError(f"--schema file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise OptionError(f"--schema file {str(path)!r} cannot be read: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise OptionError(f"--schema file {str(path)!r} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise OptionError(
            f"--schema file {str(path)!r} holds a {type(data).__name__}; a JSON schema is an "
            f'object like {{"type": "object", "properties": {{...}}}}'
        )
    return data


def _from_module(module: str, name: str, text: str) -> Any:
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise OptionError(f"--schema {text!r}: cannot import {module!r} ({exc})") from None
    finally:
        if added:
            sys.path.remove(cwd)
    obj: Any = mod
    for part in name.split("."):
        if not hasattr(obj, part):
            raise OptionError(f"--schema {text!r}: module {module!r} has no {name!r}")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and hasattr(obj, "model_json_schema")):
        raise OptionError(f"--schema {text!r}: {name!r} is not a Pydantic model class")
    return obj
