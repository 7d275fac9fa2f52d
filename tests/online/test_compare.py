"""compare(): two runs lined up row by row, what changed per answer column."""

from __future__ import annotations

import pandas as pd
import pytest

import zgpu_pandas
from tests.support import MODEL
from zgpu_pandas.errors import OptionError


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    monkeypatch.setenv("ZGPU_API_KEY", "test-key-123456")
    monkeypatch.setenv("ZGPU_PROJECT_ID", "test-project")


def test_a_prompt_change_is_judged_without_a_hand_written_merge(kit, server):
    df = kit.frame({"id": [1, 2, 3, 4], "review": ["great", "awful", "fine", None]})
    old = df.zgpu.chat("{review}", model=MODEL, base_url=server.url, progress=False)
    new = df.zgpu.chat("Say: {review}", model=MODEL, base_url=server.url, progress=False)
    cmp = zgpu_pandas.compare(old, new, on="id")
    assert cmp.rows == 4
    assert set(cmp.summary.index) == {"review", "response", "response_status"}
    changed = cmp.summary["changed"].to_dict()
    assert changed == {"review": 0, "response": 3, "response_status": 0}
    assert cmp.changed["id"].tolist() == [1, 2, 3]
    assert cmp.changed["response_new"].tolist()[0] == f"[{MODEL}] Say: great"
    assert cmp.crosstab("response_status").to_numpy().sum() == 4
    assert "rows compared" in repr(cmp)
    labels = ["positive", "negative", "neutral"]
    a = df.zgpu.classify("{review}", labels=labels, model=MODEL, base_url=server.url,
                         mode="online", progress=False)
    b = df.zgpu.classify("Review: {review}", labels=labels, model=MODEL,
                         base_url=server.url, mode="online", progress=False)
    table = zgpu_pandas.compare(a, b).crosstab("label")
    assert table.to_numpy().sum() == 4 and "<missing>" in table.index


def test_values_compare_by_content_and_missing_equals_missing():
    old = pd.DataFrame({"x": [["a", "b"], None, {"k": 1}, "s", None]})
    new = pd.DataFrame({"x": [["a", "b"], None, {"k": 2}, "t", "u"]})
    cmp = zgpu_pandas.compare(old, new)
    s = cmp.summary.loc["x"]
    assert (s["changed"], s["unchanged"], s["became_present"]) == (3, 2, 1)
    assert cmp.changed.index.tolist() == [2, 3, 4]


def test_keys_on_one_side_only_are_counted():
    old = pd.DataFrame({"k": [1, 2, 3], "response": ["a", "b", "c"]})
    new = pd.DataFrame({"k": [2, 3, 4], "response": ["b", "z", "d"]})
    cmp = zgpu_pandas.compare(old, new, on="k")
    assert (cmp.rows, cmp.only_old, cmp.only_new) == (2, 1, 1)
    assert cmp.changed["k"].tolist() == [3]
    assert cmp.changed["response_new"].tolist() == ["z"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"on": "nope"}, "column of both"), ({"columns": ["zz"]}, "not in both")],
)
def test_mistakes_say_what_to_do(kwargs, match):
    a = pd.DataFrame({"k": [1], "r": ["x"]})
    with pytest.raises(OptionError, match=match):
        zgpu_pandas.compare(a, a, **kwargs)
    with pytest.raises(OptionError, match="pass on="):
        zgpu_pandas.compare(a, pd.concat([a, a]))
    with pytest.raises(OptionError, match="keys repeat"):
        zgpu_pandas.compare(pd.concat([a, a]), pd.concat([a, a]), on="k")
