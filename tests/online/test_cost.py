"""The per-row cost column and job.cost(): what was paid, at the catalog's list price,
each shared request counted once."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tests.support import MODEL
from zgpu_pandas._catalog import get_model


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    monkeypatch.setenv("ZGPU_API_KEY", "test-key-123456")
    monkeypatch.setenv("ZGPU_PROJECT_ID", "test-project")


def test_cost_column_sums_to_job_cost(kit, server):
    df = kit.frame({"q": ["alpha beta", None, "alpha beta", "a much longer question " * 20]})
    job = df.zgpu.submit_chat("q", model=MODEL, base_url=server.url, progress=False)
    out = job.result()
    info = get_model(MODEL)
    cost = kit.col(out, "response_cost")
    p = kit.col(out, "response_prompt_tokens")
    c = kit.col(out, "response_completion_tokens")
    assert cost[1] is None  # skipped: nothing sent
    assert cost[2] == 0.0  # shared row 0's request: paid once, on row 0
    for i in (0, 3):
        assert cost[i] == pytest.approx((p[i] * info.input_per_million
                                         + c[i] * info.output_per_million) / 1e6)
    assert job.cost() == pytest.approx(sum(x for x in cost if x is not None))
    assert job.cost() > 0


def test_online_rows_carry_the_same_cost(server):
    df = pd.DataFrame({"q": ["one", "two", "two"]})
    out = df.zgpu.chat("q", model=MODEL, base_url=server.url, progress=False)
    assert out["response_cost"].dtype == "Float64"
    assert out["response_cost"].iloc[2] == 0.0
    assert out["response_cost"].iloc[0] > 0


def test_a_model_without_a_price_has_no_cost(server):
    df = pd.DataFrame({"q": ["some text"]})
    job = df.zgpu.submit_chat("q", model="zlm-v1-iab-classify-edge", base_url=server.url,
                              progress=False)
    out = job.result()
    assert out["response_cost"].isna().all()
    assert math.isnan(job.cost())
