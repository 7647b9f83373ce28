"""`/metrics`: the Prometheus text is what `promtool check metrics` accepts, with every family
filled in (a running train job, verified programs of each source, step times), and each
name carries its type's conventions. The counts come from the test's private Redis, added
to with the same `service.telemetry` calls the workers make."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from service import telemetry
from service.db import jobs, training

SPEC = {
    "model": {"name": "tiny"},
    "task": {"name": "arithmetic", "max_digits": 1},
    "stopping": {"max_steps": 10},
}
VERDICTS = [
    {"status": "ok", "passed": 2, "total": 2, "wall_seconds": 0.04},
    {"status": "ok", "passed": 1, "total": 2, "wall_seconds": 0.3},
    {"status": "timeout", "passed": 0, "total": 2, "wall_seconds": 5.2},
]


@pytest.fixture
def scraped(api, as_user, client, db, redis_server):
    """The /metrics text, as an admin sees it (per-job series too), of a stack with one running
    train job and counts of each kind."""
    job_id = api.post("/jobs", json={"kind": "train", "spec": SPEC}).json["id"]
    with db.begin() as s:
        jobs.claim(s, job_id, "test-worker")
        for step in (1, 2):
            training.save_metrics(
                s, job_id, step, {"reward": 0.5, "pass_rate": 0.25, "kl": 0.01, "step_time": 2.0}
            )
            jobs.set_progress(s, job_id, step)
    broker = redis.Redis.from_url(redis_server.url)
    telemetry.count_verified(broker, "verify", "verify_job", VERDICTS)
    telemetry.count_verified(broker, "verify", "rewards", VERDICTS[:2])
    telemetry.count_verified(broker, "verify", "api", VERDICTS[:1])
    for seconds in (0.05, 2.0, 2.0, 900.0):
        telemetry.observe_step(broker, "train", seconds)
    response = client.get("/metrics", headers=as_user(admin=True).headers)
    assert response.status_code == 200 and response.content_type.startswith(
        "text/plain; version=0.0.4"
    )
    return response.get_data(as_text=True)


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed"
)
def test_promtool_accepts_the_metrics(scraped):
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=scraped, capture_output=True, text=True
    )
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), (
        check.stdout + check.stderr + scraped
    )


def test_names_follow_their_types(scraped):
    families = {f.name: f for f in text_string_to_metric_families(scraped)}
    for family in families.values():
        assert family.documentation, family.name
        assert not family.name.endswith(("_minutes", "_per_minute", "_milliseconds")), family.name
        for sample in family.samples:  # `_total` on every counter sample, on nothing else
            assert sample.name.endswith("_total") == (family.type == "counter"), sample
    types = {name: family.type for name, family in families.items()}
    assert types == {
        "rlvr_jobs": "gauge",
        "rlvr_queue_depth": "gauge",
        "rlvr_workers": "gauge",
        "rlvr_verified_programs": "counter",
        "rlvr_verify_seconds": "histogram",
        "rlvr_train_step_seconds": "histogram",
        "rlvr_train_step": "gauge",
        "rlvr_train_max_steps": "gauge",
        "rlvr_train_reward": "gauge",
        "rlvr_train_pass_rate": "gauge",
        "rlvr_train_kl": "gauge",
        "rlvr_train_loss": "gauge",
        "rlvr_train_seconds_per_step": "gauge",
        "rlvr_train_eta_seconds": "gauge",
        "rlvr_train_unverified_rewards": "counter",
    }


def test_programs_are_counted_by_queue_source_and_verdict(scraped):
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(scraped)
        for s in f.samples
    }

    def verified(source: str, verdict: str) -> float:
        labels = (("queue", "verify"), ("source", source), ("verdict", verdict))
        return samples.get(("rlvr_verified_programs_total", labels), 0)

    assert [verified("verify_job", v) for v in ("passed", "failed", "timeout")] == [1, 1, 1]
    assert [verified("rewards", v) for v in ("passed", "failed", "timeout")] == [1, 1, 0]
    assert verified("api", "passed") == 1

    # Cumulative buckets: 0.04 s <= 0.05, 0.3 s <= 0.5, 5.2 s <= 10.
    def bucket(le: str) -> float:
        return samples[("rlvr_verify_seconds_bucket", (("le", le), ("source", "verify_job")))]

    assert [bucket(le) for le in ("0.05", "0.25", "0.5", "5.0", "10.0", "+Inf")] == [
        1,
        1,
        2,
        2,
        3,
        3,
    ]
    assert samples[("rlvr_verify_seconds_sum", (("source", "verify_job"),))] == pytest.approx(5.54)
    step = lambda le: samples[("rlvr_train_step_seconds_bucket", (("kind", "train"), ("le", le)))]  # noqa: E731
    assert [step(le) for le in ("0.1", "1.0", "2.5", "600.0", "+Inf")] == [1, 1, 3, 3, 4]
    assert samples[("rlvr_train_step_seconds_count", (("kind", "train"),))] == 4


def test_the_old_path_answers_the_same(client, scraped):
    old = client.get("/api/v1/metrics").get_data(as_text=True)
    assert [line for line in old.splitlines() if "rlvr_verified" in line] == [
        line for line in scraped.splitlines() if "rlvr_verified" in line
    ]
