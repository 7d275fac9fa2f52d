"""The worker's sliding window: ``concurrency`` upstream calls kept in flight across the
lines of a batch, fair turns between projects and batches, finished lines recorded as they
finish (a restart re-sends at most the calls that were in flight), and a cancel or the
deadline ending a batch within seconds even when its calls are slow."""

from __future__ import annotations

from collections import Counter

from tests.server.stub_upstream import StubUpstream


def _outputs(api, batch) -> Counter:
    return Counter(o["custom_id"] for o in api.jsonl_of(batch["output_file_id"]))


def test_the_window_stays_full_and_never_exceeds_the_concurrency(start_server, api_for, make_lines):
    with StubUpstream(latency=0.03) as up:
        srv = start_server(engine="upstream", upstream_url=up.url, concurrency=6)
        api = api_for(srv)
        done = api.wait(api.submit(make_lines(60))["id"])
    assert done["request_counts"] == {"total": 60, "completed": 60, "failed": 0}
    assert up.peak == 6  # seen by the upstream itself
    assert srv.context.worker.window.peak == 6


def test_a_restart_resends_at_most_the_calls_in_flight(start_server, api_for, make_lines):
    with StubUpstream(latency=0.05) as up:
        srv = start_server(engine="upstream", upstream_url=up.url, concurrency=4)
        api = api_for(srv)
        batch = api.submit(make_lines(80))
        api.wait_until(batch["id"], lambda b: b["request_counts"]["completed"] >= 20)
        srv.restart()
        api = api_for(srv)
        done = api.wait(batch["id"])
    assert done["request_counts"] == {"total": 80, "completed": 80, "failed": 0}
    assert _outputs(api, done) == Counter(f"row-{i}" for i in range(80))
    sent_twice = sum(n - 1 for n in up.calls.values())
    assert sum(up.calls.values()) >= 80
    assert sent_twice <= 4  # only the calls in flight when it stopped


def test_a_cancel_ends_slow_calls_within_seconds(start_server, api_for, make_lines):
    with StubUpstream(latency=60) as up:
        srv = start_server(engine="upstream", upstream_url=up.url, concurrency=3)
        api = api_for(srv)
        batch = api.submit(make_lines(10))
        api.wait_until(batch["id"], lambda b: up.in_flight == 3)
        assert api.post(f"/v1/batches/{batch['id']}/cancel").status_code == 200
        # a 60 s call would hold a waiting cancel for a minute; the grace is seconds
        done = api.wait(batch["id"], timeout=20)
    assert done["status"] == "cancelled"
    errors = {e["custom_id"]: e["error"] for e in api.jsonl_of(done["error_file_id"])}
    assert len(errors) == 10 and {e["code"] for e in errors.values()} == {"batch_cancelled"}
    in_flight = [c for c, e in errors.items() if "in flight" in e["message"]]
    assert len(in_flight) == 3


def test_expiry_ends_slow_calls_within_seconds(start_server, api_for, make_lines):
    with StubUpstream(latency=60) as up:
        srv = start_server(engine="upstream", upstream_url=up.url, concurrency=2,
                           completion_window_seconds=1.0)
        api = api_for(srv)
        done = api.wait(api.submit(make_lines(6))["id"], timeout=20)
    assert done["status"] == "expired"
    codes = Counter(e["error"]["code"] for e in api.jsonl_of(done["error_file_id"]))
    assert codes == Counter({"batch_expired": 6})


def test_a_small_batch_is_not_starved_by_a_huge_one(start_server, api_for, make_lines):
    srv = start_server(latency=0.02, concurrency=2)
    big_api = api_for(srv, x_project_id="project-big")
    small_api = api_for(srv, x_project_id="project-small")
    big = big_api.submit(make_lines(400, prefix="big-"))
    small = small_api.submit(make_lines(10, prefix="small-"))
    small_api.wait(small["id"])
    at_end_of_small = big_api.get(f"/v1/batches/{big['id']}").json()
    # turns alternate: the small batch finished long before the big one
    assert at_end_of_small["status"] == "in_progress"
    assert at_end_of_small["request_counts"]["completed"] < 200
    big_api.post(f"/v1/batches/{big['id']}/cancel")


def test_projects_take_turns_not_batches(start_server, api_for, make_lines):
    # Three batches of one project against one of another: each project gets half the
    # turns, so the lone batch ends before the three-batch project has done half its lines.
    srv = start_server(latency=0.02, concurrency=1)
    many = api_for(srv, x_project_id="project-many")
    one = api_for(srv, x_project_id="project-one")
    batches = [many.submit(make_lines(60, prefix=f"m{k}-")) for k in range(3)]
    lone = one.submit(make_lines(30, prefix="one-"))
    one.wait(lone["id"])
    done_many = sum(many.get(f"/v1/batches/{b['id']}").json()["request_counts"]["completed"]
                    for b in batches)
    assert done_many < 90
    for b in batches:
        many.post(f"/v1/batches/{b['id']}/cancel")


def test_a_batch_past_its_deadline_with_every_line_started_expires_within_seconds(
    start_server, api_for, make_lines
):
    # Every line is in flight when the window ends: they get a short grace, not a minute.
    with StubUpstream(latency=60) as up:
        srv = start_server(engine="upstream", upstream_url=up.url, concurrency=4,
                           completion_window_seconds=1.0)
        api = api_for(srv)
        done = api.wait(api.submit(make_lines(3))["id"], timeout=20)
    assert done["status"] == "expired"
    errors = api.jsonl_of(done["error_file_id"])
    assert len(errors) == 3 and all("in flight" in e["error"]["message"] for e in errors)
