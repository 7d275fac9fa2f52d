"""What is particular to Polars frames (the behaviour both libraries share is tested with the
``kit`` fixture in test_accessor.py and the resume tests): the namespace's registration, the
text of every Polars dtype, reply fields as Polars columns, and a 100,000-row job end to end
with each answer on its own row."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

import zgpu_pandas  # noqa: F401  (registers pl.DataFrame.zgpu once Polars is imported)
from zgpu_pandas._client import Client
from zgpu_pandas.core.requests import build_requests
from zgpu_pandas.errors import PromptError
from zgpu_pandas.frames._polars_io import field_series
from zgpu_pandas.server import LocalServer
from zgpu_pandas.server.engines import builtin_reply

MODEL = "LFM2.5-1.2B-Instruct"


@pytest.fixture
def client(server: LocalServer) -> Iterator[Client]:
    with Client(api_key="k-polars", project_id="p", base_url=server.url, poll_interval=0.02) as c:
        yield c


def body(user: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": user}]}


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_importing_the_package_does_not_import_polars_and_registers_it_later() -> None:
    code = (
        "import sys, zgpu_pandas\n"
        "assert 'polars' not in sys.modules, 'polars was imported'\n"
        "import polars as pl\n"
        "assert hasattr(pl.DataFrame({'a': [1]}), 'zgpu')\n"
        "print(type(pl.DataFrame({'a': [1]}).zgpu).__name__)\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ZgpuPolarsNamespace"


def test_polars_imported_first_is_registered_at_once() -> None:
    proc = _run("import polars as pl, zgpu_pandas\nassert hasattr(pl.DataFrame, 'zgpu')\n")
    assert proc.returncode == 0, proc.stderr


def test_the_package_works_without_polars() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'polars' or name.startswith('polars.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import pandas as pd, zgpu_pandas\n"
        "out = pd.DataFrame({'q': ['a']}).zgpu.estimate_chat('q', model='LFM2.5-1.2B-Instruct')\n"
        "assert out.rows_to_send == 1\n"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        (pl.Series([1, None, 3], dtype=pl.Int64), ["1", None, "3"]),
        (pl.Series([4.0, float("nan"), None, 0.5]), ["4", None, None, "0.5"]),
        (pl.Series([True, False, None]), ["true", "false", None]),
        (pl.Series(["a", None, "b"], dtype=pl.Categorical), ["a", None, "b"]),
        (pl.Series(["lo", "hi", None], dtype=pl.Enum(["lo", "hi"])), ["lo", "hi", None]),
        (pl.Series([dt.date(2024, 1, 2), None]), ["2024-01-02", None]),
        (pl.Series([None, None], dtype=pl.Null), [None, None]),
        (pl.Series(["café 🎉", "x\ny"]), ["café 🎉", "x\ny"]),
        (pl.Series([b"bytes", None], dtype=pl.Binary), ["bytes", None]),
    ],
    ids=lambda v: str(v.dtype) if isinstance(v, pl.Series) else "",
)
def test_text_of_every_polars_dtype(series: pl.Series, expected: list[str | None]) -> None:
    df = pl.DataFrame({"p": series})
    reqs = build_requests(df, prompt="p", model=MODEL)
    sent = {int(p): t for p, t in zip(reqs.positions, expected_texts(reqs), strict=True)}
    want = {i: t for i, t in enumerate(expected) if t is not None}
    assert sent == want
    assert reqs.skipped_positions.tolist() == [i for i, t in enumerate(expected) if t is None]


def expected_texts(reqs: Any) -> list[str]:
    import orjson

    return [orjson.loads(x)["body"]["messages"][-1]["content"] for x in reqs.iter_lines()]


def test_a_list_column_as_prompt_points_to_messages() -> None:
    df = pl.DataFrame({"p": [["a", "b"], ["c"]]})
    with pytest.raises(PromptError, match=r"Column 'p', row 0, holds a list.*messages="):
        build_requests(df, prompt="p", model=MODEL)


def test_a_template_over_polars_columns_and_a_missing_one() -> None:
    df = pl.DataFrame({"review": ["Love it", None], "stars": [5.0, 3.0]})
    reqs = build_requests(df, prompt="Review: {review} ({stars:.1f} stars)", model=MODEL)
    assert expected_texts(reqs) == ["Review: Love it (5.0 stars)"]
    with pytest.raises(PromptError, match=r"no column 'nope'.*'review', 'stars'"):
        build_requests(df, prompt="{nope}", model=MODEL)


@pytest.mark.parametrize(
    ("values", "kind", "dtype"),
    [
        (["a", None], "string", pl.String),
        ([1, None], "integer", pl.Int64),
        ([1, 2.5], "number", pl.Float64),
        ([True, None], "boolean", pl.Boolean),
        ([["a", "b"], ["c", "d"], None], "array", pl.List(pl.String)),  # equal lengths
        ([["a"], ["b", "c"], []], "array", pl.List(pl.String)),  # ragged
        ([{"x": 1}, {"x": 2}], "object", pl.Struct({"x": pl.Int64})),
        ([{"x": 1}, {"y": "a"}], "object", pl.Object),  # would gain nulls as a Struct
        ([1, "a", None], None, pl.Object),
        # past 64 bits: whatever Polars holds exactly (Int128 where it has one)
        ([2**70, 1], "integer", (getattr(pl, "Int128", pl.Object), pl.Object)),
    ],
)
def test_reply_fields_as_polars_columns(values: list[Any], kind: str | None, dtype: Any) -> None:
    s = field_series("f", values, kind)
    assert s.dtype in (dtype if isinstance(dtype, tuple) else (dtype,))
    assert s.to_list() == values


def test_structured_output_on_a_polars_frame(client: Client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "stars": {"type": "integer", "minimum": 1, "maximum": 5},
            "topics": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
        },
        "required": ["label", "stars", "topics"],
    }
    df = pl.DataFrame({"review": ["Great battery and screen", None, "Slow delivery, bad box"]})
    out = df.zgpu.batch_chat(
        "review", model=MODEL, client=client, progress=False, response_format=schema
    )
    assert out.schema["label"] == pl.String and out.schema["stars"] == pl.Int64
    assert out.schema["topics"] == pl.List(pl.String)
    assert out.get_column("response_status").to_list() == ["ok", "skipped", "ok"]
    topics = out.get_column("topics").to_list()
    assert topics[1] is None and all(len(t) == 2 for t in (topics[0], topics[2]))


def test_100000_rows_end_to_end_each_answer_on_its_own_row(
    server: LocalServer, client: Client
) -> None:
    n = 100_000
    # ids out of order and repeated texts: the answer's place comes from the row position
    df = pl.DataFrame(
        {"id": [(i * 7919) % n for i in range(n)], "q": [f"question {i % 90_000}" for i in range(n)]}
    )
    out = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    assert isinstance(out, pl.DataFrame) and out.height == n
    assert out.get_column("id").to_list() == df.get_column("id").to_list()
    expected = [builtin_reply(body(f"question {i % 90_000}")) for i in range(n)]
    assert out.get_column("response").to_list() == expected
    assert set(out.get_column("response_status").to_list()) == {"ok"}
    shared = out.get_column("response_shared").to_list()
    assert sum(shared) == 10_000 and not any(shared[:90_000])  # the repeats, answered once
    job = df.zgpu.last_job
    assert job is not None and len(job.batch_ids) == 2  # 90,000 lines: two batches
    creates = sum(1 for m, p, _ in server.request_log if (m, p) == ("POST", "/v1/batches"))
    again = df.zgpu.batch_chat("q", model=MODEL, client=client, progress=False)
    assert again.equals(out)  # from the journal: no new batch
    assert sum(1 for m, p, _ in server.request_log if (m, p) == ("POST", "/v1/batches")) == creates
