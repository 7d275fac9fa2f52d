"""``df.zgpu.estimate_chat``: size and list-price cost before spending, with no network."""

from __future__ import annotations

import math
from functools import partial

import httpx
import pandas as pd
import pytest

import zgpu_pandas.core.run as accessor_module
from zgpu_pandas._client import Client
from zgpu_pandas.core.estimate import ChatEstimate
from zgpu_pandas.core.requests import build_requests
from zgpu_pandas.server import LocalServer

from .resume_support import MODEL


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any HTTP request fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("estimate_chat made a network call")

    monkeypatch.setattr(httpx.Client, "send", refuse)


def test_a_hand_computed_case(no_network: None) -> None:
    df = pd.DataFrame({"q": ["abcd", "abcdefgh", None, "abcd", ""]})
    est = df.zgpu.estimate_chat(
        "q",
        model=MODEL,
        system="xy",
        max_tokens=10,
        base_url="https://api.zerogpu.ai",  # accepted, never contacted
        api_key="k",
        retries=2,
        fresh=True,
    )
    assert isinstance(est, ChatEstimate)
    # rows 0 and 1 are sent; row 3 repeats row 0; rows 2 (None) and 4 ("") are skipped
    assert (est.rows, est.rows_to_send, est.rows_skipped, est.rows_deduplicated) == (5, 2, 2, 1)
    assert est.batches == 1
    line0 = (
        '{"custom_id":"row-0","method":"POST","url":"/v1/chat/completions","body":{"model":'
        '"LFM2.5-1.2B-Instruct","messages":[{"role":"system","content":"xy"},{"role":"user",'
        '"content":"abcd"}],"max_tokens":10}}\n'
    )
    line1 = line0.replace("row-0", "row-1").replace('"abcd"', '"abcdefgh"')
    assert est.bytes == len(line0) + len(line1)
    # per line 3, per message 3 + ceil(chars / 4):
    #   row 0: 3 + (3 + 1) + (3 + 1) = 11;  row 1: 3 + (3 + 1) + (3 + 2) = 12
    assert est.prompt_tokens == 23
    assert est.input_price_per_million == 0.02 and est.output_price_per_million == 0.05
    assert est.prompt_cost_usd == pytest.approx(23 * 0.02 / 1e6)
    assert est.max_completion_tokens == 20  # 2 lines x max_tokens
    assert est.max_completion_cost_usd == pytest.approx(20 * 0.05 / 1e6)
    s = est.to_series()
    assert s["prompt_tokens"] == 23 and s["rows_to_send"] == 2
    assert "23 prompt tokens" in str(est) and "<pre>" in est._repr_html_()


def test_batches_bytes_and_unpriced_models(
    monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.setattr(accessor_module, "build_requests", partial(build_requests, max_lines=4))
    df = pd.DataFrame({"q": [f"text {i}" for i in range(10)]})
    est = df.zgpu.estimate_chat("q", model=MODEL)
    assert est.batches == 3 and est.rows_to_send == 10
    assert est.max_completion_tokens is None and est.max_completion_cost_usd is None
    assert est.prompt_tokens == 10 * (3 + 3 + math.ceil(len("text 0") / 4))
    for model in ("zlm-v1-moderation-edge", "not-in-the-catalog"):
        other = df.zgpu.estimate_chat("q", model=model, check_model=False)
        assert other.prompt_cost_usd is None and other.prompt_tokens == est.prompt_tokens
        assert "no list price" in str(other)
    # bad input is reported as for batch_chat, still before anything is sent
    with pytest.raises(ValueError, match="no column 'nope'"):
        df.zgpu.estimate_chat("nope", model=MODEL)


def test_the_estimate_matches_the_local_servers_token_count(
    server: LocalServer, client: Client
) -> None:
    """The local server counts usage with the same rule, so the two must agree exactly,
    for text prompts and for message lists with content parts alike."""
    texts = ["short", "a bit longer text here", "ünïcödé ✓ 🎉", "x" * 1001, "short"]
    df = pd.DataFrame({"q": texts})
    est = df.zgpu.estimate_chat("q", model=MODEL, system="You tag reviews.")
    out = df.zgpu.batch_chat(
        "q", model=MODEL, system="You tag reviews.", client=client, progress=False
    )
    sent = out.iloc[:4]  # row 4 repeats row 0
    assert est.prompt_tokens == int(sent["response_prompt_tokens"].sum())

    convs = [
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "part one"},
                    {"type": "text", "text": "and two"},
                ],
            }
        ],
        [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Bye"},
        ],
    ]
    mdf = pd.DataFrame({"conv": convs})
    est = mdf.zgpu.estimate_chat(messages="conv", model=MODEL)
    out = mdf.zgpu.batch_chat(messages="conv", model=MODEL, client=client, progress=False)
    assert est.prompt_tokens == int(out["response_prompt_tokens"].sum())
