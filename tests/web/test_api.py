"""The JSON API without workers: validation, auth, listing, cancel/retry, idempotency.

Messages land in the test's private Redis, where nothing consumes them."""

from __future__ import annotations

import json

import pytest
import redis
from support import free_port

from service import queues
from service.settings import load_settings
from web import create_app


def verify_spec(n: int = 1) -> dict:
    return {
        "requests": [
            {
                "program": f"def f():\n    return {i}",
                "tests": {"kind": "function", "tests": [f"assert f() == {i}"]},
            }
            for i in range(n)
        ]
    }


def submit(api, headers=None):
    return api.post("/jobs", json={"kind": "verify", "spec": verify_spec()}, headers=headers)


def test_submit_queues_the_job_and_its_message(api, redis_server):
    response = submit(api)
    assert response.status_code == 201, response.json
    job = response.json
    assert (job["status"], job["kind"], job["progress"]["total"], job["attempt"]) == (
        "queued",
        "verify",
        1,
        0,
    )
    assert response.headers["Location"].endswith(f"/api/v1/jobs/{job['id']}")
    broker = redis.Redis.from_url(redis_server.url)
    # a verify job's whole run is coordinated on the CPU side, never on a train (GPU) worker
    assert broker.llen("coordinate") == 1 and broker.llen("train") == 0
    assert broker.exists(queues.job_marker(job["id"]))
    assert api.get(f"/jobs/{job['id']}").json["status"] == "queued"
    events = api.get(f"/jobs/{job['id']}/events").json["events"]
    assert [(e["status"], e["message"]) for e in events] == [("queued", "submitted")]


def test_idempotency_key_makes_a_retried_submit_return_the_same_job(api, as_user):
    first = submit(api, headers={"Idempotency-Key": "abc"})
    again = submit(api, headers={"Idempotency-Key": "abc"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json["id"] == first.json["id"]
    assert submit(as_user(), headers={"Idempotency-Key": "abc"}).json["id"] != first.json["id"]


@pytest.mark.parametrize(
    "body, fields",
    [
        ({"spec": verify_spec()}, ["kind"]),
        ({"kind": "bake", "spec": {}}, ["kind"]),
        ({"kind": "verify"}, ["spec"]),
        ({"kind": "verify", "spec": {"requests": []}}, ["spec.requests"]),
        (
            {
                "kind": "verify",
                "spec": {"requests": [{"tests": {"kind": "function", "tests": []}}]},
            },
            ["spec.requests.0.program"],
        ),
        (
            {
                "kind": "verify",
                "spec": {"requests": [{"program": 3, "tests": {"kind": "nope"}}], "batch_size": 0},
            },
            ["spec.requests.0.program", "spec.requests.0.tests", "spec.batch_size"],
        ),
        ({"kind": "verify", "spec": verify_spec(), "extra": 1}, ["extra"]),
    ],
)
def test_bad_specs_get_400_naming_each_field(api, body, fields):
    response = api.post("/jobs", json=body)
    assert response.status_code == 400
    assert response.json["error"].startswith("invalid")
    assert sorted({e["field"] for e in response.json["detail"]}) == sorted(fields)


@pytest.mark.parametrize(
    "data", [b"", b"{", b"[1, 2]", b"null", b"\xff\xfe", json.dumps("x").encode()]
)
def test_malformed_bodies_are_json_400s(api, data):
    response = api.post("/jobs", data=data, content_type="application/json")
    assert response.status_code == 400 and set(response.json) == {"error", "detail"}


def test_oversized_body_is_413(api, stack_settings):
    big = json.dumps(
        {"kind": "verify", "spec": {"requests": [], "pad": "x" * stack_settings.max_body_bytes}}
    )
    response = api.post("/jobs", data=big, content_type="application/json")
    assert response.status_code == 413 and response.json["error"]


def test_auth(client, api, as_user):
    job_id = submit(api).json["id"]
    assert client.get("/api/v1/jobs").status_code == 401
    no_token = client.get(f"/api/v1/jobs/{job_id}", headers={"Authorization": "Bearer nope"})
    assert no_token.status_code == 401 and no_token.json["error"] == "unauthorized"
    stranger = as_user()
    for call in (
        stranger.get(f"/jobs/{job_id}"),
        stranger.get(f"/jobs/{job_id}/events"),
        stranger.get(f"/jobs/{job_id}/verdicts"),
        stranger.post(f"/jobs/{job_id}/cancel"),
        stranger.post(f"/jobs/{job_id}/retry"),
    ):
        assert call.status_code == 404
    assert job_id not in [j["id"] for j in stranger.get("/jobs").json["jobs"]]
    assert as_user(admin=True).get(f"/jobs/{job_id}").status_code == 200


def test_list_filters_and_pages(api):
    ids = [submit(api).json["id"] for _ in range(3)]
    api.post(f"/jobs/{ids[0]}/cancel")
    page = api.get("/jobs?limit=2").json
    assert (page["total"], [j["id"] for j in page["jobs"]]) == (3, ids[:0:-1])
    assert [j["id"] for j in api.get("/jobs?limit=2&offset=2").json["jobs"]] == [ids[0]]
    assert [j["id"] for j in api.get("/jobs?status=cancelled").json["jobs"]] == [ids[0]]
    assert api.get("/jobs?kind=verify").json["total"] == 3
    for bad in ("status=done", "limit=0", "limit=x", "offset=-1", "kind=bake", "colour=red"):
        assert api.get(f"/jobs?{bad}").status_code == 400, bad


def test_cancel_and_retry(api):
    job_id = submit(api).json["id"]
    assert api.post(f"/jobs/{job_id}/retry").status_code == 409  # not finished yet
    cancelled = api.post(f"/jobs/{job_id}/cancel")
    assert (cancelled.status_code, cancelled.json["status"]) == (202, "cancelled")
    assert api.post(f"/jobs/{job_id}/cancel").status_code == 409
    retry = api.post(f"/jobs/{job_id}/retry")
    assert retry.status_code == 201
    assert (retry.json["parent_id"], retry.json["status"]) == (job_id, "queued")
    assert api.get("/jobs/999999").status_code == 404


def test_unknown_routes_and_methods_are_json(api):
    assert api.get("/nope").json["error"] == "not found"
    assert api.delete("/jobs").status_code == 405


def seen(app, *keys) -> None:
    """Marks beat or the reaper seen, as a running beat and reaper do."""
    for key in keys:
        queues.mark_seen(app.extensions["rlvr"], key)


def test_health_metrics_and_stats(app, client, api):
    submit(api)
    seen(app, queues.BEAT_SEEN, queues.REAPER_SEEN)
    health = client.get("/api/v1/health")
    assert health.status_code == 200, health.json
    assert all(health.json[check]["ok"] for check in ("database", "redis", "beat", "reaper"))
    assert (
        health.json["workers"] == {"train": 0, "verify": 0, "coordinate": 0}
        and health.json["gpus"] == {}
    )
    metrics = client.get("/api/v1/metrics").get_data(as_text=True)
    assert 'rlvr_jobs{kind="verify",state="queued"}' in metrics
    assert 'rlvr_queue_depth{queue="coordinate"} 1.0' in metrics
    assert (
        "# TYPE rlvr_verify_seconds histogram" in metrics and "# TYPE rlvr_workers gauge" in metrics
    )
    stats = api.get("/stats").json
    assert stats["jobs"]["queued"] >= 1 and stats["queues"]["coordinate"] == 1


def test_health_reports_a_dead_beat_and_a_stale_reaper(app, client, stack_settings):
    beat_dead = client.get("/api/v1/health")
    assert beat_dead.status_code == 503 and beat_dead.json["status"] == "degraded"
    assert "is beat running?" in beat_dead.json["beat"]["error"]
    assert "has not finished a run" in beat_dead.json["reaper"]["error"]
    seen(app, queues.BEAT_SEEN)  # beat sends the reaper, but no verify worker runs it
    stale = client.get("/api/v1/health").json
    assert stale["beat"]["ok"] and stale["beat"]["last_seen"] and not stale["reaper"]["ok"]
    assert stale["status"] == "degraded"
    assert queues.seen_window(stack_settings) == 3 * stack_settings.reaper_seconds + 5


def test_health_reports_a_dead_redis(client, redis_server):
    redis_server.stop()
    try:
        response = client.get("/api/v1/health")
    finally:
        redis_server.start()
    assert response.status_code == 503 and not response.json["redis"]["ok"]


def test_a_database_out_of_reach_is_a_503_with_retry_after(stack_env):
    nobody_there = f"postgresql://postgres@127.0.0.1:{free_port()}/rlvr"
    app = create_app(load_settings({**stack_env, "DATABASE_URL": nobody_there}), TESTING=True)
    client = app.test_client()
    for call in (
        client.get("/api/v1/jobs/1", headers={"Authorization": "Bearer x"}),
        client.post("/api/v1/jobs", headers={"Authorization": "Bearer x"}, json={}),
    ):
        assert call.status_code == 503 and call.headers["Retry-After"] == "5"
        assert call.json == {
            "error": "unavailable",
            "detail": "the database cannot be reached for the moment; retry",
        }
    health = client.get("/api/v1/health")
    assert health.status_code == 503 and not health.json["database"]["ok"]


def test_submit_survives_a_dead_redis(api, redis_server):
    redis_server.stop()
    try:
        response = submit(api)
    finally:
        redis_server.start()
    assert (response.status_code, response.json["status"]) == (201, "queued")


def test_a_job_reads_back_with_its_spec_and_can_be_left_without_it(api):
    job_id = submit(api).json["id"]
    job = api.get(f"/jobs/{job_id}").json
    assert job["spec"]["requests"][0]["program"] == "def f():\n    return 0"
    assert job["spec"]["requests"][0]["limits"]["wall_seconds"] > 0  # defaults filled in
    assert api.get(f"/jobs/{job_id}?spec=false").json["spec"] is None


def test_names_and_tags_are_set_at_submit_filtered_and_edited_by_the_owner_only(api, as_user):
    body = {"kind": "verify", "spec": verify_spec(), "name": " Baseline run ", "tags": ["lr-1e5"]}
    first = api.post("/jobs", json=body).json
    assert (first["name"], first["tags"]) == ("Baseline run", ["lr-1e5"])
    other = submit(api).json["id"]
    assert (api.get(f"/jobs/{other}").json["name"], api.get(f"/jobs/{other}").json["tags"]) == (
        None,
        [],
    )
    # "lr_1e5" must not match "lr-1e5" (the LIKE wildcard `_` is escaped), nor "lr" a part of it
    for tag, ids in (("lr-1e5", [first["id"]]), ("lr_1e5", []), ("lr", [])):
        assert [j["id"] for j in api.get(f"/jobs?tag={tag}").json["jobs"]] == ids, tag
    assert [j["id"] for j in api.get("/jobs?q=BASELINE").json["jobs"]] == [first["id"]]
    assert api.get("/jobs?q=100%25").json["total"] == 0

    renamed = api.patch(f"/jobs/{other}", json={"name": "second", "tags": ["lr-1e5", "big"]})
    assert renamed.status_code == 200 and renamed.json["tags"] == ["lr-1e5", "big"]
    assert [j["id"] for j in api.get("/jobs?tag=lr-1e5").json["jobs"]] == [other, first["id"]]
    kept = api.patch(f"/jobs/{other}", json={"tags": []}).json
    assert (kept["name"], kept["tags"]) == ("second", [])
    assert api.patch(f"/jobs/{other}", json={"name": None}).json["name"] is None

    assert api.post(f"/jobs/{first['id']}/cancel").status_code == 202
    retried = api.post(f"/jobs/{first['id']}/retry").json  # the same run again: same labels
    assert (retried["name"], retried["tags"]) == ("Baseline run", ["lr-1e5"])

    for bad in ({"tags": ['quo"te']}, {"tags": ["x" * 41]}, {"name": ""}, {"colour": "red"}):
        assert api.patch(f"/jobs/{other}", json=bad).status_code == 400, bad
    assert as_user().patch(f"/jobs/{other}", json={"name": "mine"}).status_code == 404
    assert as_user(admin=True).patch(f"/jobs/{other}", json={"name": "mine"}).status_code == 403
    assert api.get(f"/jobs/{other}").json["name"] is None
