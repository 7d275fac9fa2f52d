"""The online mode, ``df.zgpu.chat``: the batch's columns answered now, every answer kept,
nothing paid twice, and failures that a batch would also survive."""

from __future__ import annotations

import _thread
import threading
import time

import pandas as pd
import pytest

import zgpu_pandas
from tests.support import MODEL
from zgpu_pandas.errors import CostLimitError, OptionError, PermissionDeniedError

CHAT = "/v1/chat/completions"


@pytest.fixture(autouse=True)
def _credentials(monkeypatch):
    monkeypatch.setenv("ZGPU_API_KEY", "test-key-123456")
    monkeypatch.setenv("ZGPU_PROJECT_ID", "test-project")


def _chats(srv) -> int:
    return sum(1 for _, path, _ in srv.request_log if path == CHAT)


def _reviews(kit, n: int = 30):
    # a missing prompt (skipped) and a repeated one (shared) among them
    texts = [f"review number {i}" for i in range(n)]
    texts[3] = None
    texts[7] = texts[5]
    return kit.frame({"id": list(range(n)), "review": texts})


def test_chat_gives_the_batch_result_row_for_row(kit, start_server):
    srv = start_server(latency=0.01)
    df = _reviews(kit)
    online = df.zgpu.chat("Say: {review}", model=MODEL, base_url=srv.url, progress=False,
                          temperature=0)
    batch = df.zgpu.batch_chat("Say: {review}", model=MODEL, base_url=srv.url, progress=False,
                               temperature=0, fresh=True)
    if kit.name == "pandas":
        pd.testing.assert_frame_equal(online, batch)
    else:
        assert online.equals(batch)
    assert kit.col(online, "response_status").count("skipped") == 1
    assert kit.col(online, "response_shared")[7] is True
    assert kit.col(online, "response")[0] == f"[{MODEL}] Say: review number 0"
    # one request per distinct prompt, none for the skipped or shared rows
    assert _chats(srv) == 28


def test_a_rerun_pays_nothing_and_says_so(start_server, capsys):
    srv = start_server()
    df = pd.DataFrame({"q": [f"q{i}" for i in range(20)]})
    first = df.zgpu.chat("q", model=MODEL, base_url=srv.url, progress=False)
    assert first.attrs["zgpu"]["answered_now"] == 20
    sent = _chats(srv)
    capsys.readouterr()
    again = df.zgpu.chat("q", model=MODEL, base_url=srv.url, progress=False)
    assert _chats(srv) == sent  # nothing sent
    assert again.attrs["zgpu"]["reused"] == 20
    assert "20 from answers already received (not paid again)" in capsys.readouterr().err
    pd.testing.assert_frame_equal(first, again)
    # a larger sample sends only the new rows
    more = pd.DataFrame({"q": [f"q{i}" for i in range(25)]})
    out = more.zgpu.chat("q", model=MODEL, base_url=srv.url, progress=False)
    assert _chats(srv) == sent + 5
    assert out.attrs["zgpu"]["reused"] == 20 and out.attrs["zgpu"]["answered_now"] == 5


def test_sampling_requests_are_not_reused_and_fresh_resends(start_server):
    srv = start_server()
    df = pd.DataFrame({"q": ["a", "b"]})
    df.zgpu.chat("q", model=MODEL, base_url=srv.url, progress=False, temperature=0.8)
    df.zgpu.chat("q", model=MODEL, base_url=srv.url, progress=False, temperature=0.8)
    assert _chats(srv) == 4
    df.zgpu.chat("q", model=MODEL, base_url=srv.url, progress=False)
    df.zgpu.chat("q", model=MODEL, base_url=srv.url, progress=False, fresh=True)
    assert _chats(srv) == 8


def test_a_429_storm_loses_no_row(start_server):
    srv = start_server()
    srv.faults.fail_requests(status=429, count=40, path=CHAT, code="rate_limit_exceeded",
                             retry_after=0)
    df = pd.DataFrame({"q": [f"q{i}" for i in range(30)]})
    out = df.zgpu.chat("q", model=MODEL, base_url=srv.url, progress=False, concurrency=4)
    assert (out["response_status"] == "ok").all()
    assert out.attrs["zgpu"]["retries"] >= 40
    assert out["response"].tolist() == [f"[{MODEL}] q{i}" for i in range(30)]


def test_a_server_restart_during_chat_loses_no_row(start_server):
    srv = start_server(latency=0.05)
    df = pd.DataFrame({"q": [f"q{i}" for i in range(60)]})

    def restart():
        while _chats(srv) < 10:
            time.sleep(0.01)
        srv.stop()
        time.sleep(0.5)
        srv.start()

    t = threading.Thread(target=restart)
    t.start()
    out = df.zgpu.chat("q", model=MODEL, base_url=srv.url, progress=False, concurrency=4)
    t.join()
    assert (out["response_status"] == "ok").all(), out["response_error"].dropna().head()
    assert out["response"].tolist() == [f"[{MODEL}] q{i}" for i in range(60)]


def test_ctrl_c_keeps_every_answer_and_the_rerun_sends_the_rest(start_server):
    srv = start_server(latency=0.05)
    df = pd.DataFrame({"q": [f"q{i}" for i in range(200)]})

    def interrupt():
        while _chats(srv) < 20:
            time.sleep(0.005)
        _thread.interrupt_main()

    threading.Thread(target=interrupt).start()
    with pytest.raises(KeyboardInterrupt, match="the same call again sends only the rest"):
        df.zgpu.chat("q", model=MODEL, base_url=srv.url, progress=False, concurrency=4)
    partial = df.zgpu.last_chat
    done = int((partial["response_status"] == "ok").sum())
    assert 20 <= done < 200
    assert set(partial["response_status"]) == {"ok", "pending"}
    sent = _chats(srv)
    assert sent == done  # the requests in flight were allowed to finish
    out = df.zgpu.chat("q", model=MODEL, base_url=srv.url, progress=False)
    assert out.attrs["zgpu"]["reused"] == done
    assert _chats(srv) == 200
    assert (out["response_status"] == "ok").all()


def test_a_refused_key_stops_at_once(start_server):
    srv = start_server(api_keys={"good-key-123456": None})
    df = pd.DataFrame({"q": [f"q{i}" for i in range(50)]})
    with pytest.raises(PermissionDeniedError):
        df.zgpu.chat("q", model=MODEL, base_url=srv.url, api_key="wrong-key-654321",
                      project_id="p", progress=False, concurrency=2)
    assert _chats(srv) <= 2


def test_transient_row_failures_get_retry_rounds(start_server):
    srv = start_server()
    df = pd.DataFrame({"q": [f"q{i}" for i in range(10)]})
    # 500s beyond what one request's own retries absorb
    srv.faults.fail_requests(status=500, count=200, path=CHAT)
    srv_client = zgpu_pandas.Client(base_url=srv.url, max_retries=0)  # from the environment
    out = df.zgpu.chat("q", model=MODEL, client=srv_client, progress=False, concurrency=1)
    assert set(out["response_status"]) == {"error"}
    srv.faults.clear()
    srv.faults.fail_requests(status=500, count=5, path=CHAT)
    out = df.zgpu.chat("q", model=MODEL, client=srv_client, progress=False, concurrency=1,
                       retries=1)
    assert (out["response_status"] == "ok").all()
    srv_client.close()


def test_timeout_leaves_the_rest_pending(start_server):
    # 40 rows at 2 in flight need 4 s; the timeout stops starting new ones after 1.5 s
    # (margins wide both ways, so a loaded machine does not change the outcome)
    srv = start_server(latency=0.2)
    df = pd.DataFrame({"q": [f"q{i}" for i in range(40)]})
    out = df.zgpu.chat("q", model=MODEL, base_url=srv.url, progress=False, concurrency=2,
                       timeout=1.5)
    status = out["response_status"].tolist()
    assert "pending" in status and "ok" in status
    assert out.attrs["zgpu"]["not_sent"] == status.count("pending")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "4"])
def test_concurrency_is_checked_before_sending(server, bad):
    df = pd.DataFrame({"q": ["a"]})
    with pytest.raises(OptionError, match="concurrency"):
        df.zgpu.chat("q", model=MODEL, base_url=server.url, concurrency=bad)
    assert _chats(server) == 0


def test_max_cost_refuses_before_anything_is_sent(kit, server):
    df = kit.frame({"q": [f"{i} " + "word " * 2000 for i in range(50)]})  # ~2,500 tokens each
    for call in (df.zgpu.chat, df.zgpu.batch_chat, df.zgpu.submit_chat):
        with pytest.raises(CostLimitError, match=r"exceed max_cost=\$0\.0010") as exc:
            call("q", model=MODEL, base_url=server.url, max_cost=0.001, progress=False,
                 fresh=True)
        assert exc.value.estimate_usd > 0.001
    assert server.request_log == []  # no upload, no batch, no chat request
    # under the limit it runs
    small = kit.frame({"q": ["hi"]})
    out = small.zgpu.chat("q", model=MODEL, base_url=server.url, max_cost=0.01, progress=False)
    assert kit.col(out, "response_status") == ["ok"]


def test_max_cost_counts_capped_answers(server):
    df = pd.DataFrame({"q": ["hi"] * 10})
    # prompts cost ~nothing; 10 answers of up to 100,000 tokens at $0.05/1M do not
    with pytest.raises(CostLimitError, match="answers up to"):
        df.zgpu.batch_chat("q", model=MODEL, base_url=server.url, max_cost=0.01,
                           max_tokens=100_000, dedup=False, progress=False)
    with pytest.raises(OptionError, match="max_cost"):
        df.zgpu.batch_chat("q", model=MODEL, base_url=server.url, max_cost=-1)
    assert server.request_log == []


def test_batch_chat_does_not_buy_again_what_chat_bought(start_server, caplog):
    srv = start_server()
    df = pd.DataFrame({"q": [f"q{i}" for i in range(40)] + [None, "q3"]})
    trial = df.head(10).zgpu.chat("q", model=MODEL, base_url=srv.url, progress=False)
    assert (trial["response_status"] == "ok").all()
    caplog.set_level("INFO", logger="zgpu_pandas")
    job = df.zgpu.submit_chat("q", model=MODEL, base_url=srv.url, progress=False)
    out = job.result()
    # only the 30 rows chat had not answered went into the batch
    uploads = [p for m, p, _ in srv.request_log if m == "POST" and p == "/v1/files"]
    assert len(uploads) == 1
    batch = job.client.batches.retrieve(job.batch_ids[0]) if job.batch_ids else None
    assert batch is not None and batch.request_counts.total == 30
    assert out["response_status"].tolist() == ["ok"] * 40 + ["skipped", "ok"]
    assert out["response"].tolist()[:40] == [f"[{MODEL}] q{i}" for i in range(40)]
    assert out["response_shared"].tolist()[41] is True  # "q3" again: row 3's answer
    pd.testing.assert_frame_equal(out.head(10), trial)
    assert "10 request(s) answered earlier (online mode) were not sent again" in caplog.text
    # the same call again resumes the journaled job (no new batch), reused rows included
    again = df.zgpu.batch_chat("q", model=MODEL, base_url=srv.url, progress=False)
    pd.testing.assert_frame_equal(again, out)
    assert sum(1 for m, p, _ in srv.request_log if m == "POST" and p == "/v1/batches") == 1
    # and the journal alone rebuilds it (the reused answers are kept beside the record)
    alone = zgpu_pandas.attach(job.job_id, base_url=srv.url).result()
    assert alone["response"].tolist() == out["response"].tolist()


def test_chat_takes_the_same_pre_flight_choices(server):
    from zgpu_pandas.errors import PromptError, ZgpuError

    df = pd.DataFrame({"q": ["hello"]})
    with pytest.raises(ZgpuError, match="did you mean"):
        df.zgpu.chat("q", model="LFM2.5-1.2B-Instructt", base_url=server.url, progress=False)
    with pytest.raises(PromptError, match="temperature"):
        df.zgpu.chat("q", model=MODEL, base_url=server.url, temprature=0)
    assert _chats(server) == 0
    out = df.zgpu.chat("q", model=MODEL, base_url=server.url, progress=False,
                       extra_body={"my_field": 1})
    assert out["response_status"].tolist() == ["ok"]


def test_prune_also_ages_out_stored_answers(server):
    import os

    from zgpu_pandas._answers import AnswerCache

    df = pd.DataFrame({"q": ["a", "b"]})
    df.zgpu.chat("q", model=MODEL, base_url=server.url, progress=False)
    store = AnswerCache.open(os.environ["ZGPU_STATE_DIR"])
    assert len(store) == 2
    kept = zgpu_pandas.prune_jobs(older_than_days=1)
    assert kept.attrs["answers_pruned"] == 0 and len(store) == 2
    assert zgpu_pandas.prune_jobs(older_than_days=0, dry_run=True).attrs["answers_pruned"] == 2
    assert len(store) == 2
    assert zgpu_pandas.prune_jobs(older_than_days=0).attrs["answers_pruned"] == 2
    assert len(store) == 0
    df.zgpu.chat("q", model=MODEL, base_url=server.url, progress=False)
    assert _chats(server) == 4  # pruned answers are bought again


@pytest.mark.parametrize("mode", ["chat", "batch_chat"])
def test_every_choice_and_the_logprobs_come_back(kit, server, mode):
    df = kit.frame({"q": ["pick a word", "another one"]})
    out = getattr(df.zgpu, mode)("q", model=MODEL, base_url=server.url, progress=False,
                                 n=3, seed=7, temperature=0.9, logprobs=True, top_logprobs=2)
    choices = kit.col(out, "response_choices")
    assert [len(c) for c in choices] == [3, 3]
    assert kit.col(out, "response") == [c[0] for c in choices]
    assert len(set(choices[0])) == 3  # distinct samples
    tokens = kit.col(out, "response_logprobs")
    for row in tokens:
        assert row and all(t["logprob"] <= 0 and len(t["top_logprobs"]) == 2 for t in row)
    # the same seed gives the same choices
    again = getattr(df.zgpu, mode)("q", model=MODEL, base_url=server.url, progress=False,
                                   n=3, seed=7, temperature=0.9, logprobs=True, top_logprobs=2,
                                   fresh=True)
    assert kit.col(again, "response_choices") == choices
