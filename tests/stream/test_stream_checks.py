"""Streaming file jobs check the WHOLE input before the first upload: a bad row in the last
file stops the run with nothing uploaded, named by file and row; ``max_cost`` is compared
with the whole input's estimate; a re-run of a checked run does not read the input for the
check again. Also the one progress bar over the input's rows."""

from __future__ import annotations

from pathlib import Path

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import zgpu_pandas
from tests.stream.test_stream_files import (
    KEY,
    MODEL,
    conn,
    creates,
    parquet_folder,
    reply,
    uploads,
)
from zgpu_pandas import _stream_check
from zgpu_pandas.cli import main
from zgpu_pandas.errors import CostLimitError, OptionError, OversizeRowsError, PromptError
from zgpu_pandas.frames import pandas as _registers_df_zgpu  # noqa: F401
from zgpu_pandas.server import LocalServer
from zgpu_pandas.server.engines import builtin_reply


def test_an_oversize_row_in_the_last_file_stops_the_run_before_any_upload(
    server: LocalServer, tmp_path: Path
) -> None:
    parquet_folder(tmp_path / "in", [30, 30])
    # the last file: five ordinary rows, then one whose request would pass 1 MB
    q = ["fine"] * 5 + ["x" * 1_100_000]
    pq.write_table(pa.table({"id": list(range(6)), "score": [0.0] * 6, "q": q}),
                   tmp_path / "in" / "f02.parquet")
    with pytest.raises(OversizeRowsError) as err:
        zgpu_pandas.run_files(tmp_path / "in", output=f"{tmp_path / 'out'}/", prompt="q",
                              model=MODEL, part_rows=20, progress=False, **conn(server))
    text = str(err.value)
    assert "f02.parquet row 6:" in text and "position" not in text
    assert err.value.rows["label"].tolist() == [f"{tmp_path / 'in' / 'f02.parquet'} row 6"]
    assert uploads(server) == 0 and creates(server) == 0  # parts 0-2 were fine: not sent


@pytest.mark.parametrize("bad", [b'{"name": "n", "price": "twelve"}', b'{"name": "n", "pri'])
def test_a_bad_jsonl_line_late_in_the_input_is_named_before_any_upload(
    server: LocalServer, tmp_path: Path, bad: bytes
) -> None:
    for k in range(3):
        lines = [orjson.dumps({"name": f"n{k}{i}", "price": 1.5 + i}) for i in range(8)]
        if k == 2:
            lines[6] = bad  # a text among numbers, or a line cut short
        (tmp_path / f"in{k}.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
    with pytest.raises(OptionError, match=r"cannot read '.*in2\.jsonl' as JSONL"):
        zgpu_pandas.run_files(str(tmp_path / "in*.jsonl"), output=tmp_path / "o.parquet",
                              prompt="{name} costs {price:.2f}", model=MODEL, part_rows=5,
                              progress=False, **conn(server))
    assert uploads(server) == 0


def test_a_template_field_missing_from_a_later_file_names_the_rows_it_was_looked_for_in(
    server: LocalServer, tmp_path: Path
) -> None:
    (tmp_path / "a.jsonl").write_bytes(b"".join(
        orjson.dumps({"title": f"t{i}", "body": f"b{i}"}) + b"\n" for i in range(4)))
    (tmp_path / "b.jsonl").write_bytes(b"".join(
        orjson.dumps({"title": f"u{i}"}) + b"\n" for i in range(4)))
    with pytest.raises(PromptError) as err:
        zgpu_pandas.run_files([tmp_path / "a.jsonl", tmp_path / "b.jsonl"],
                              output=tmp_path / "o.csv", prompt="{title}: {body}", model=MODEL,
                              part_rows=4, progress=False, **conn(server))
    text = str(err.value)
    assert f"from {tmp_path / 'b.jsonl'} row 1 to {tmp_path / 'b.jsonl'} row 4:" in text
    assert "body" in text
    assert uploads(server) == 0


def test_max_cost_is_checked_against_the_whole_input_not_each_part(
    server: LocalServer, tmp_path: Path
) -> None:
    src = parquet_folder(tmp_path / "in", [40, 40, 40])
    est = src.zgpu.estimate_chat("q", model=MODEL, max_tokens=50)
    total = est.prompt_cost_usd + est.max_completion_cost_usd
    # each part of 40 rows costs about a third of the total: under the limit on its own
    with pytest.raises(CostLimitError, match=r"before sending: 120 .* exceed max_cost") as err:
        zgpu_pandas.run_files(tmp_path / "in", output=f"{tmp_path / 'out'}/", prompt="q",
                              model=MODEL, part_rows=40, max_cost=total * 0.75, max_tokens=50,
                              progress=False, **conn(server))
    assert err.value.estimate_usd == pytest.approx(total)
    assert uploads(server) == 0
    zgpu_pandas.run_files(tmp_path / "in", output=f"{tmp_path / 'out'}/", prompt="q",
                          model=MODEL, part_rows=40, max_cost=total * 1.01, max_tokens=50,
                          progress=False, **conn(server))
    assert creates(server) == 3


def test_a_rerun_of_a_checked_run_does_not_read_the_input_for_the_check(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parquet_folder(tmp_path / "in", [30, 30])
    out = tmp_path / "out"
    kw = dict(output=f"{out}/", prompt="q", model=MODEL, part_rows=25, progress=False,
              **conn(server))
    zgpu_pandas.run_files(tmp_path / "in", **kw)
    manifest = orjson.loads((out / "_zgpu_run.json").read_bytes())
    assert manifest["checked"]["rows"] == 60 and manifest["checked"]["parts"] == 3
    assert manifest["checked"]["estimate"]["rows_to_send"] == 60
    (out / "part-000002.parquet").unlink()  # the re-run has something to do

    def read_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("the input was checked again")

    monkeypatch.setattr(_stream_check, "check_parts", read_again)
    zgpu_pandas.run_files(tmp_path / "in", **kw)
    assert len(pd.read_parquet(out)) == 60 and creates(server) == 3
    # the recorded estimate still answers a max_cost given on the re-run
    with pytest.raises(CostLimitError):
        zgpu_pandas.run_files(tmp_path / "in", max_cost=1e-12, **kw)


def test_the_command_names_the_bad_row_in_one_line_and_sends_nothing(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ZGPU_API_KEY", KEY)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("q\n" + "hello\n" * 10)
    (tmp_path / "in" / "b.csv").write_text("q\nfine\n" + "y" * 1_100_000 + "\n")
    args = ["run", str(tmp_path / "in"), "--prompt-col", "q", "--model", MODEL, "-o",
            str(tmp_path / "o.parquet"), "--part-rows", "4", "--base-url", server.url,
            "--project-id", "p"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "b.csv row 2" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert uploads(server) == 0


def test_one_progress_bar_over_every_row_and_none_with_progress_off(
    server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parquet_folder(tmp_path / "in", [50, 70])
    zgpu_pandas.run_files(tmp_path / "in", output=tmp_path / "o.parquet", prompt="q",
                          model=MODEL, part_rows=40, progress=True, **conn(server))
    err = capsys.readouterr().err
    assert "120/120" in err and "rows" in err
    assert "checking" in err and "collecting" in err  # the check, then the run, one bar
    assert "rows written" not in err  # no line per part any more
    # progress off: not a line (another input, so that no job is resumed and said so)
    parquet_folder(tmp_path / "in2", [10])
    zgpu_pandas.run_files(tmp_path / "in2", output=tmp_path / "o2.parquet", prompt="q",
                          system="Short.", model=MODEL, part_rows=4, progress=False,
                          **conn(server))
    assert capsys.readouterr().err == ""


def test_a_run_uses_one_client_and_closes_only_the_one_it_made(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zgpu_pandas._client import Client

    made: list[Client] = []
    closed: list[Client] = []
    real_init, real_close = Client.__init__, Client.close

    def init(self: Client, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    def close(self: Client) -> None:
        closed.append(self)
        real_close(self)

    monkeypatch.setattr(Client, "__init__", init)
    monkeypatch.setattr(Client, "close", close)
    parquet_folder(tmp_path / "in", [30])
    zgpu_pandas.run_files(tmp_path / "in", output=tmp_path / "a.parquet", prompt="q",
                          model=MODEL, part_rows=10, progress=False, **conn(server))
    assert len(made) == 1 and closed == made  # three parts, one client, closed at the end
    with Client(base_url=server.url, api_key=KEY, project_id="p") as mine:
        zgpu_pandas.run_files(tmp_path / "in", output=tmp_path / "b.parquet", prompt="q",
                              system="Other.", model=MODEL, part_rows=10, progress=False,
                              client=mine, poll_interval=0.05)
        assert mine not in closed  # the caller's client stays open for the caller
        assert len(list(mine.batches.list(limit=100))) == 6  # and still works: 2 runs x 3


def test_jsonl_keeps_integer_columns_with_gaps_and_reads_prompts_as_text(
    server: LocalServer, tmp_path: Path
) -> None:
    rows = [
        {"id": 1, "q": "hello", "m": None},
        {"id": None, "q": 5, "m": None},        # a number in the prompt column: its text
        {"id": 3, "q": True, "m": None},
        {"id": 4, "q": None, "m": None},        # missing: skipped
        {"id": 5, "q": "a\u00e9 \"quoted\"", "m": None},
    ]
    (tmp_path / "in.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = zgpu_pandas.run_files(tmp_path / "in.jsonl", output=tmp_path / "o.parquet",
                                prompt="q", model=MODEL, part_rows=2, progress=False,
                                **conn(server))
    table = pq.read_table(out)
    assert table.schema.field("id").type == pa.int64()  # not float64 for the gap
    assert table.column("id").to_pylist() == [1, None, 3, 4, 5]
    assert table.column("q").to_pylist() == ["hello", "5", "true", None, "a\u00e9 \"quoted\""]
    assert table.column("response").to_pylist()[:3] == [reply("hello"), reply("5"),
                                                         reply("true")]
    assert table.column("response_status").to_pylist()[3] == "skipped"


def test_jsonl_message_lists_are_sent_as_written(server: LocalServer, tmp_path: Path) -> None:
    # message lists in a JSONL column reach the requests (read as their JSON text)
    msgs = [{"role": "system", "content": "Be short."},
            {"role": "user", "content": "hi", "name": "ann"}]
    (tmp_path / "in.jsonl").write_bytes(orjson.dumps({"id": 1, "m": msgs}) + b"\n")
    out = zgpu_pandas.run_files(tmp_path / "in.jsonl", output=tmp_path / "o.parquet",
                                messages="m", model=MODEL, progress=False, **conn(server))
    res = pd.read_parquet(out)
    assert res["response"].tolist() == [builtin_reply({"model": MODEL, "messages": msgs})]


def test_an_option_mistake_is_said_as_it_is_not_as_a_row_of_the_input(
    server: LocalServer, tmp_path: Path
) -> None:
    parquet_folder(tmp_path / "in", [10])
    kw = dict(output=tmp_path / "o.parquet", prompt="q", model=MODEL, **conn(server))
    with pytest.raises(OptionError) as err:
        zgpu_pandas.run_files(tmp_path / "in", on_invalid="bogus", progress=False, **kw)
    assert "on_invalid" in str(err.value) and " row " not in str(err.value)
    with pytest.raises(OptionError, match="progress must be"):
        zgpu_pandas.run_files(tmp_path / "in", progress="bar", **kw)
    assert uploads(server) == 0
