"""Every lifecycle path: completed, partly failed, all failed, cancelled, expired, failed
validation; plus live counts, resume after restart and input deletion mid-run."""

from __future__ import annotations

from collections import Counter

from tests.support import chat_line, to_jsonl


def _accounted(api, batch, custom_ids):
    """Output and error files together hold every custom_id exactly once."""
    out = api.jsonl_of(batch["output_file_id"])
    err = api.jsonl_of(batch["error_file_id"])
    seen = Counter(x["custom_id"] for x in out + err)
    assert seen == Counter(custom_ids)
    counts = batch["request_counts"]
    assert counts["completed"] == len(out)
    assert counts["failed"] == len(err)
    assert counts["completed"] + counts["failed"] == counts["total"] == len(custom_ids)
    return out, err


def test_completed_with_timestamps_in_order(api, make_lines):
    lines = make_lines(20)
    done = api.wait(api.submit(lines)["id"])
    assert done["status"] == "completed"
    assert done["created_at"] <= done["in_progress_at"] <= done["finalizing_at"] <= done["completed_at"]
    for key in ("failed_at", "expired_at", "cancelling_at", "cancelled_at"):
        assert done[key] is None
    _accounted(api, done, [x["custom_id"] for x in lines])
    out_file = api.get(f"/v1/files/{done['output_file_id']}").json()
    assert out_file["purpose"] == "batch_output"
    assert out_file["is_error"] is False


def test_partly_failed_batch_completes(api, make_lines):
    lines = [*make_lines(6), chat_line("bad-1", "x", model="no-such-model")]
    done = api.wait(api.submit(lines)["id"])
    assert done["status"] == "completed"
    assert done["output_file_id"] and done["error_file_id"]
    _, err = _accounted(api, done, [x["custom_id"] for x in lines])
    assert [e["custom_id"] for e in err] == ["bad-1"]
    assert err[0]["response"] is None
    assert err[0]["error"]["code"] == "not_found_error"
    assert err[0]["error"]["message"].startswith("[legacy:http_404] ")
    assert err[0]["error"]["param"] is None
    assert err[0]["id"].startswith("batch_req_")
    err_file = api.get(f"/v1/files/{done['error_file_id']}").json()
    assert err_file["is_error"] is True
    assert err_file["purpose"] == "batch_output"


def test_all_failed_batch_completes_without_output_file(api, make_lines):
    lines = make_lines(4, model="no-such-model")
    done = api.wait(api.submit(lines)["id"])
    assert done["status"] == "completed"
    assert done["output_file_id"] is None
    assert done["error_file_id"] is not None
    assert done["request_counts"] == {"total": 4, "completed": 0, "failed": 4}
    _accounted(api, done, [x["custom_id"] for x in lines])


def test_failed_validation_path(api):
    f = api.upload(b'{"custom_id": "a"}\n')
    r = api.create_batch(f["id"])
    assert r.status_code == 400
    stored = api.get("/v1/batches").json()["data"][0]
    assert stored["status"] == "failed"
    assert stored["in_progress_at"] is None
    assert stored["request_counts"] == {"total": 0, "completed": 0, "failed": 0}


def test_cancelled_path(start_server, api_for, make_lines):
    srv = start_server(latency=0.02, concurrency=1)
    api = api_for(srv)
    lines = make_lines(200)
    batch = api.submit(lines)
    running = api.wait_until(batch["id"], lambda b: b["request_counts"]["completed"] >= 2)
    assert running["status"] == "in_progress"
    r = api.post(f"/v1/batches/{batch['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "cancelling"
    assert isinstance(r.json()["cancelling_at"], int)
    again = api.post(f"/v1/batches/{batch['id']}/cancel")  # idempotent
    assert again.status_code == 200
    assert again.json()["status"] in ("cancelling", "cancelled")
    done = api.wait(batch["id"])
    assert done["status"] == "cancelled"
    assert isinstance(done["cancelled_at"], int)
    assert done["completed_at"] is None
    out, err = _accounted(api, done, [x["custom_id"] for x in lines])
    assert len(out) >= 2
    cancelled = [e for e in err if e["error"]["code"] == "batch_cancelled"]
    assert len(cancelled) == len(err) > 0
    assert cancelled[0]["error"]["message"].startswith("[legacy:batch_cancelled] ")
    # cancelling a cancelled batch is still fine
    assert api.post(f"/v1/batches/{batch['id']}/cancel").status_code == 200


def test_expired_path(start_server, api_for, make_lines):
    srv = start_server(latency=0.02, concurrency=1, completion_window_seconds=0.5)
    api = api_for(srv)
    lines = make_lines(200)
    batch = api.submit(lines)
    assert batch["expires_at"] == batch["created_at"] + 1  # the window, rounded up
    done = api.wait(batch["id"])
    assert done["status"] == "expired"
    assert isinstance(done["expired_at"], int)
    out, err = _accounted(api, done, [x["custom_id"] for x in lines])
    assert 0 < len(out) < len(lines)  # what finished stays
    assert {e["error"]["code"] for e in err} == {"batch_expired"}
    assert err[0]["error"]["message"].startswith("[legacy:batch_expired] ")


def test_cancel_terminal_batch_is_409(api, make_lines):
    done = api.wait(api.submit(make_lines(2))["id"])
    r = api.post(f"/v1/batches/{done['id']}/cancel")
    assert r.status_code == 409
    assert "completed" in r.json()["error"]["message"]
    f = api.upload(b"[]\n")
    assert api.create_batch(f["id"]).status_code == 400
    failed = api.get("/v1/batches").json()["data"][0]
    assert api.post(f"/v1/batches/{failed['id']}/cancel").status_code == 409


def test_cancel_expired_batch_is_409(start_server, api_for, make_lines):
    srv = start_server(latency=0.02, concurrency=1, completion_window_seconds=0.2)
    api = api_for(srv)
    done = api.wait(api.submit(make_lines(100))["id"])
    assert done["status"] == "expired"
    assert api.post(f"/v1/batches/{done['id']}/cancel").status_code == 409


def test_live_counts_while_running(start_server, api_for, make_lines):
    srv = start_server(latency=0.01, concurrency=2)
    api = api_for(srv)
    batch = api.submit(make_lines(150))
    mid = api.wait_until(
        batch["id"], lambda b: 0 < b["request_counts"]["completed"] < 150 or b["status"] != "in_progress"
    )
    assert mid["status"] == "in_progress"
    assert mid["request_counts"]["total"] == 150
    assert api.wait(batch["id"])["request_counts"]["completed"] == 150


def test_restart_mid_batch_resumes_without_loss_or_duplicates(start_server, api_for, make_lines):
    srv = start_server(latency=0.01, concurrency=2)
    api = api_for(srv)
    lines = make_lines(120)
    batch = api.submit(lines)
    api.wait_until(batch["id"], lambda b: b["request_counts"]["completed"] >= 10)
    srv.restart()
    api2 = api_for(srv)
    done = api2.wait(batch["id"])
    assert done["status"] == "completed"
    _accounted(api2, done, [x["custom_id"] for x in lines])


def test_deleting_input_does_not_stop_running_batch(start_server, api_for, make_lines):
    srv = start_server(latency=0.005, concurrency=2)
    api = api_for(srv)
    f = api.upload(to_jsonl(make_lines(60)))
    batch = api.create_batch(f["id"]).json()
    assert api.delete(f"/v1/files/{f['id']}").json() == {"id": f["id"], "object": "file", "deleted": True}
    done = api.wait(batch["id"])
    assert done["status"] == "completed"
    assert done["request_counts"]["completed"] == 60
    assert not (srv.data_dir / "files" / f["id"]).exists()  # body dropped once the batch ended


def test_several_batches_progress_together(start_server, api_for, make_lines):
    srv = start_server(latency=0.01, concurrency=2)
    api = api_for(srv)
    big = api.submit(make_lines(2000, prefix="big-"))
    small = api.submit(make_lines(3, prefix="small-"))
    # round-robin: the small batch must not wait for the big one to finish
    done_small = api.wait(small["id"])
    assert done_small["status"] == "completed"
    assert api.get(f"/v1/batches/{big['id']}").json()["status"] == "in_progress"
    api.post(f"/v1/batches/{big['id']}/cancel")
    assert api.wait(big["id"])["status"] == "cancelled"


def test_cancel_answers_the_state_it_left(start_server, api_for, make_lines, monkeypatch):
    """The worker may end a cancelled batch between the cancel's write and its answer;
    the answer is still ``cancelling`` (what this call did), as the spec shows it."""
    from zgpu_pandas.server.store import Store

    read = Store.batch_row
    raced = []

    def worker_finishes_first(self, bid):
        row = read(self, bid)
        if row is not None and row["status"] == "cancelling" and not raced:
            raced.append(bid)  # what a fast worker does right after the cancel commits
            with self.tx() as c:
                c.execute("UPDATE batches SET status = 'cancelled' WHERE id = ?", (bid,))
            row = read(self, bid)
        return row

    monkeypatch.setattr(Store, "batch_row", worker_finishes_first)
    srv = start_server(latency=0.05, concurrency=1)
    api = api_for(srv)
    batch = api.submit(make_lines(50))
    r = api.post(f"/v1/batches/{batch['id']}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "cancelling"
