"""Streaming file jobs (``zgpu_pandas.run_files``, ``zgpu-pandas run``) against a real local
server: many input files in parts, every input column kept, the output in input order,
re-runs that buy and rewrite nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import zgpu_pandas
from zgpu_pandas.cli import main
from zgpu_pandas.errors import OptionError
from zgpu_pandas.server import LocalServer
from zgpu_pandas.server.engines import builtin_reply

MODEL = "LFM2.5-1.2B-Instruct"
KEY = "stream-test-key"


def reply(prompt: str, **params: object) -> str:
    return builtin_reply({"model": MODEL, "messages": [{"role": "user", "content": prompt}],
                          **params})


def creates(server: LocalServer) -> int:
    return sum(1 for m, p, _ in server.request_log if m == "POST" and p == "/v1/batches")


def uploads(server: LocalServer) -> int:
    return sum(1 for m, p, _ in server.request_log if m == "POST" and p == "/v1/files")


def conn(server: LocalServer) -> dict[str, object]:
    return {"base_url": server.url, "api_key": KEY, "project_id": "p", "poll_interval": 0.05}


def parquet_folder(folder: Path, sizes: list[int]) -> pd.DataFrame:
    """Files of the given row counts (several row groups each); the whole input in order."""
    folder.mkdir()
    frames, start = [], 0
    for k, n in enumerate(sizes):
        ids = np.arange(start, start + n, dtype=np.int64)
        df = pd.DataFrame({
            "id": ids,
            "score": ids / 4,
            "q": [f"question {i}" for i in ids],
        })
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False),
                       folder / f"f{k:02d}.parquet", row_group_size=17)
        frames.append(df)
        start += n
    return pd.concat(frames, ignore_index=True)


def test_a_folder_of_parquet_becomes_a_dataset_in_input_order(
    server: LocalServer, tmp_path: Path
) -> None:
    src = parquet_folder(tmp_path / "in", [50, 7, 63])  # parts span file boundaries
    out = tmp_path / "out"
    path = zgpu_pandas.run_files(tmp_path / "in", output=f"{out}/", prompt="q", model=MODEL,
                                 part_rows=40, progress=False, **conn(server))
    assert path == out
    assert sorted(f.name for f in out.glob("*.parquet")) == [
        "part-000000.parquet", "part-000001.parquet", "part-000002.parquet"
    ]
    res = pd.read_parquet(out)
    assert len(res) == 120 and creates(server) == 3  # one batch per part of 40 rows
    assert res["id"].tolist() == src["id"].tolist()  # input order, every row once
    assert pq.read_schema(out / "part-000000.parquet").field("id").type == pa.int64()
    assert res["id"].dtype == "int64" and res["score"].tolist() == src["score"].tolist()
    assert res["q"].tolist() == src["q"].tolist()
    assert res["response"].tolist() == [reply(q) for q in src["q"]]
    assert set(res["response_status"]) == {"ok"}


def test_the_same_call_again_buys_nothing_and_rewrites_no_part(
    server: LocalServer, tmp_path: Path
) -> None:
    parquet_folder(tmp_path / "in", [30, 30])
    kw = dict(output=f"{tmp_path / 'out'}/", prompt="q", model=MODEL, part_rows=25,
              progress=False, **conn(server))
    zgpu_pandas.run_files(tmp_path / "in", **kw)
    before = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns)
              for f in (tmp_path / "out").glob("part-*")}
    assert len(before) == 3 and creates(server) == 3
    n_uploads = uploads(server)
    zgpu_pandas.run_files(tmp_path / "in", **kw)
    after = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns)
             for f in (tmp_path / "out").glob("part-*")}
    assert after == before
    assert creates(server) == 3 and uploads(server) == n_uploads
    # a lost part is made again from its journaled job: still no new batch
    (tmp_path / "out" / "part-000001.parquet").unlink()
    zgpu_pandas.run_files(tmp_path / "in", **kw)
    assert creates(server) == 3
    res = pd.read_parquet(tmp_path / "out")
    assert res["response"].tolist() == [reply(f"question {i}") for i in range(60)]


def test_parts_of_another_run_are_never_mixed_in(server: LocalServer, tmp_path: Path) -> None:
    parquet_folder(tmp_path / "in", [10])
    out = f"{tmp_path / 'out'}/"
    kw = dict(prompt="q", model=MODEL, part_rows=4, progress=False, **conn(server))
    zgpu_pandas.run_files(tmp_path / "in", output=out, **kw)
    n = uploads(server)
    with pytest.raises(OptionError, match=r"parts of another run.*--fresh"):
        zgpu_pandas.run_files(tmp_path / "in", output=out, system="Be brief.", **kw)
    assert uploads(server) == n  # refused before anything was sent
    zgpu_pandas.run_files(tmp_path / "in", output=out, system="Be brief.", fresh=True, **kw)
    res = pd.read_parquet(out)
    assert len(res) == 10
    brief = [{"role": "system", "content": "Be brief."}]
    assert res["response"][3] == builtin_reply(
        {"model": MODEL, "messages": [*brief, {"role": "user", "content": "question 3"}]}
    )
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(OptionError, match="not empty"):
        zgpu_pandas.run_files(tmp_path / "in", output=tmp_path / "other", **kw)


def test_csv_columns_get_real_types_and_prompts_stay_as_written(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZGPU_API_KEY", KEY)
    (tmp_path / "in").mkdir()
    head = "id,code,price,flag,note,text\n"
    (tmp_path / "in" / "a.csv").write_text(
        head + "1,007,1.5,true,x,NA\n2,010,2,false,,  spaced  \n"
    )
    # the second file has the only missing id and a non-number note: types are decided over
    # every file, not guessed from the first block
    (tmp_path / "in" / "b.csv").write_text(head + ",12,3e2,True,12abc,007\n4,5,4,false,5,\n")
    out = tmp_path / "out.parquet"
    args = ["run", str(tmp_path / "in"), "--prompt-col", "text", "--model", MODEL, "-o",
            str(out), "-q", "--part-rows", "3", "--base-url", server.url, "--project-id", "p"]
    assert main(args) == 0
    res = pq.read_table(out)
    assert res.schema.field("id").type == pa.int64()
    assert res.schema.field("price").type == pa.float64()
    assert res.schema.field("flag").type == pa.bool_()
    assert res.schema.field("code").type == pa.string()  # 007 keeps its zeros
    assert res.schema.field("note").type == pa.string()
    assert res.column("id").to_pylist() == [1, 2, None, 4]
    assert res.column("code").to_pylist() == ["007", "010", "12", "5"]
    assert res.column("price").to_pylist() == [1.5, 2.0, 300.0, 4.0]
    assert res.column("text").to_pylist() == ["NA", "  spaced  ", "007", None]
    assert res.column("response").to_pylist()[:3] == [reply("NA"), reply("  spaced  "),
                                                      reply("007")]
    assert res.column("response_status").to_pylist() == ["ok", "ok", "ok", "skipped"]
    assert not list(tmp_path.glob(".out.parquet*"))  # the staging folder is gone


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_one_csv_or_jsonl_output_file_from_a_glob_of_jsonl(
    server: LocalServer, tmp_path: Path, suffix: str
) -> None:
    for k in range(3):
        (tmp_path / f"in{k}.jsonl").write_bytes(b"".join(
            orjson.dumps({"n": 10 * k + i, "a": f"x{10 * k + i}"}) + b"\n" for i in range(5)
        ))
    out = tmp_path / f"out.{suffix}"
    zgpu_pandas.run_files(str(tmp_path / "in*.jsonl"), output=out, prompt="{a} / {n}",
                          model=MODEL, part_rows=4, progress=False, **conn(server))
    res = pd.read_csv(out) if suffix == "csv" else pd.read_json(out, lines=True)
    ns = [10 * k + i for k in range(3) for i in range(5)]
    assert res["n"].tolist() == ns
    assert res["response"].tolist() == [reply(f"x{n} / {n}") for n in ns]
    assert creates(server) == 4


def test_run_help_says_how_csv_is_read(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "read as text exactly as written" in text and "integers" in text
    assert "--part-rows" in text


def test_bad_inputs_are_one_line_errors_before_anything_is_sent(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZGPU_API_KEY", KEY)
    (tmp_path / "a.csv").write_text("q\nhello\n")
    (tmp_path / "b.jsonl").write_text('{"q": "hi"}\n')
    base = ["--prompt-col", "q", "--model", MODEL, "-q", "--base-url", server.url]
    for inputs, out, msg in [
        ([str(tmp_path / "a.csv"), str(tmp_path / "b.jsonl")], "o.csv", "mix formats"),
        ([str(tmp_path / "nothing*.csv")], "o.csv", "no file matches"),
        ([str(tmp_path / "a.csv")], "o.txt", "cannot tell the format"),
    ]:
        assert main(["run", *inputs, *base, "-o", str(tmp_path / out)]) == 1
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert uploads(server) == 0


def test_a_damaged_file_late_in_the_input_is_named_before_anything_is_sent(
    server: LocalServer, tmp_path: Path
) -> None:
    parquet_folder(tmp_path / "in", [5, 5])
    (tmp_path / "in" / "f99.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(OptionError, match=r"cannot read '.*f99\.parquet' as PARQUET"):
        zgpu_pandas.run_files(tmp_path / "in", output=tmp_path / "o.parquet", prompt="q",
                              model=MODEL, part_rows=4, progress=False, **conn(server))
    assert uploads(server) == 0


def test_a_csv_integer_too_long_for_64_bits_stays_text(
    server: LocalServer, tmp_path: Path
) -> None:
    big = "123456789012345678901234"
    (tmp_path / "in.csv").write_text(f"id,small,q\n{big},1,a\n5,2,b\n")
    out = zgpu_pandas.run_files(tmp_path / "in.csv", output=tmp_path / "o.parquet", prompt="q",
                                model=MODEL, progress=False, **conn(server))
    table = pq.read_table(out)
    assert table.column("id").to_pylist() == [big, "5"]
    assert table.column("small").type == pa.int64()


def test_a_template_field_with_a_format_gets_its_csv_columns_type(
    server: LocalServer, tmp_path: Path
) -> None:
    (tmp_path / "in.csv").write_text("name,price\n007,2.5\nb,10\n")
    out = zgpu_pandas.run_files(tmp_path / "in.csv", output=tmp_path / "o.parquet",
                                prompt="{name} costs {price:.2f}", model=MODEL,
                                progress=False, **conn(server))
    res = pd.read_parquet(out)
    assert res["response"].tolist() == [reply("007 costs 2.50"), reply("b costs 10.00")]
