"""The training API beyond reading rows: analysis, live statistics and Prometheus gauges,
resume, clone and compare.

Rows are written with `service.db.training` as a train worker would, on SQLite and Postgres;
messages land in the test's private Redis, where nothing consumes them. The last test runs
a real train worker: cancel, resume, and the job ends with every step exactly once."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
import redis
from support import GROUP, PROMPTS, TINY, rows_per_step, timeline, train_spec, wait_for, wait_until

from service.db import Job, jobs, training
from service.db.models import ExperienceRow

SPEC = {
    "model": {"name": "tiny"},
    "task": {"name": "arithmetic", "max_digits": 1},
    "stopping": {"max_steps": 10},
}


def submit(api, kind: str = "train", spec: dict = SPEC) -> int:
    response = api.post("/jobs", json={"kind": kind, "spec": spec})
    assert response.status_code == 201, response.json
    return response.json["id"]


def claim(db, job_id: int) -> None:
    with db.begin() as s:
        assert jobs.claim(s, job_id, "test-worker")


def record(
    step: int, sample: int, reward: float | None, verdict: str, code: dict | None = None
) -> dict:
    return {
        "step": step,
        "prompt_index": 0,
        "sample_index": sample,
        "problem_id": "p0",
        "prompt": "def f",
        "completion": "...",
        "prompt_tokens": 3,
        "completion_tokens": 1,
        "truncated": False,
        "reward": reward,
        "reward_components": {},
        "verdict": verdict,
        "advantage": 0.0,
        "logprob_mean": -1.0,
        "extra": {"code": code} if code else {},
    }


def code(status: str, *outcomes: tuple[str, str | None]) -> dict:
    return {
        "status": status,
        "tests": [
            {"test": f"assert f({i}) == {i}", "outcome": outcome, "error_type": error}
            for i, (outcome, error) in enumerate(outcomes)
        ],
    }


def store(
    db, job_id: int, metrics: dict[int, dict[str, float]], experiences: list[dict] = ()
) -> None:
    with db.begin() as s:
        for step, values in metrics.items():
            training.save_metrics(s, job_id, step, values)
            jobs.set_progress(s, job_id, step)
        training.save_experiences(s, job_id, experiences)


# ---- analysis ------------------------------------------------------------------------------


def test_analysis_of_error_patterns_rewards_and_convergence(api, db):
    job_id = submit(api)
    claim(db, job_id)
    store(
        db,
        job_id,
        {
            step: {"pass_rate": rate, "reward": rate}
            for step, rate in enumerate([0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0], 1)
        },
        [
            record(1, 0, 1.0, "pass", code("ok", ("pass", None), ("pass", None))),
            record(1, 1, 0.0, "fail", code("ok", ("pass", None), ("error", "ZeroDivisionError"))),
            record(1, 2, None, "error", code("sandbox_error")),
            record(2, 0, 0.0, "fail", code("timeout", ("timeout", None), ("wrong", None))),
            record(2, 1, 0.5, "fail"),
        ],
    )
    found = api.get(f"/jobs/{job_id}/analysis?window=2&tolerance=0.05")
    assert found.status_code == 200, found.json
    analysis = found.json
    assert (
        analysis["samples"],
        analysis["programs"],
        analysis["unjudged"],
        analysis["timeouts"],
    ) == (5, 4, 1, 1)
    assert analysis["verdicts"] == {"pass": 1, "fail": 3, "error": 1}
    assert analysis["exception_types"] == {"ZeroDivisionError": 1}
    assert analysis["failing_tests"][0] == {
        "test": "assert f(1) == 1",
        "failed": 2,
        "runs": 3,
        "fail_rate": 2 / 3,
    }
    step1, step2 = analysis["reward_by_step"]["1"], analysis["reward_by_step"]["2"]
    assert (step1["count"], step1["none"], step1["mean"], step1["histogram"]) == (
        3,
        1,
        0.5,
        {"[0,0.25)": 1, ">=1": 1},
    )
    assert (step2["min"], step2["max"]) == (0.0, 0.5)
    # pass_rate trailing means of 2: 0, .25, .75, 1, 1, 1, 1 -> within .05 of 1 from step 4 on
    assert analysis["convergence"] == {
        "metric": "pass_rate",
        "step": 4,
        "window": 2,
        "tolerance": 0.05,
    }
    wider = api.get(f"/jobs/{job_id}/analysis?metric=reward&window=2&tolerance=0.3").json[
        "convergence"
    ]
    assert (wider["metric"], wider["step"]) == ("reward", 3)  # .75 is within .3 of 1


def test_analysis_of_a_job_without_rows_and_bad_queries(api):
    job_id = submit(api)
    empty = api.get(f"/jobs/{job_id}/analysis").json
    assert (empty["samples"], empty["reward_by_step"], empty["convergence"]["step"]) == (
        0,
        {},
        None,
    )
    assert empty["convergence"]["metric"] is None
    for query, field in (
        ("window=0", "window"),
        ("tolerance=-1", "tolerance"),
        ("colour=red", "colour"),
    ):
        response = api.get(f"/jobs/{job_id}/analysis?{query}")
        assert response.status_code == 400 and [e["field"] for e in response.json["detail"]] == [
            field
        ]


# ---- live statistics and Prometheus --------------------------------------------------------


def test_stats_and_metrics_show_running_training_jobs(api, as_user, client, db):
    job_id = submit(api)
    claim(db, job_id)
    store(
        db,
        job_id,
        {
            1: {"reward": 0.1, "pass_rate": 0.0, "kl": 0.01, "step_time": 2.0},
            2: {"reward": 0.5, "pass_rate": 0.25, "kl": 0.02, "step_time": 4.0},
        },
        [record(2, 0, None, "error"), record(2, 1, 1.0, "pass"), record(2, 2, None, "error")],
    )
    queued = submit(api)  # not running: not in the live list

    live = {entry["job_id"]: entry for entry in api.get("/stats").json["training"]}
    assert queued not in live
    assert live[job_id] == {
        "job_id": job_id,
        "kind": "train",
        "step": 2,
        "total": 10,
        "reward": 0.5,
        "pass_rate": 0.25,
        "kl": 0.02,
        "loss": None,
        "unverified_rewards": 2,
        "steps_per_minute": 20.0,
        "eta_seconds": 8 * 3.0,
    }
    assert job_id not in {e["job_id"] for e in as_user().get("/stats").json["training"]}
    admin = as_user(admin=True)
    assert job_id in {e["job_id"] for e in admin.get("/stats").json["training"]}

    text = client.get("/metrics", headers=admin.headers).get_data(
        as_text=True
    )  # per job: admins only
    labels = f'{{job_id="{job_id}",kind="train"}}'
    for line in (
        f"rlvr_train_step{labels} 2.0",
        f"rlvr_train_max_steps{labels} 10.0",
        f"rlvr_train_reward{labels} 0.5",
        f"rlvr_train_pass_rate{labels} 0.25",
        f"rlvr_train_unverified_rewards_total{labels} 2.0",
        f"rlvr_train_seconds_per_step{labels} 3.0",
        f"rlvr_train_eta_seconds{labels} 24.0",
    ):
        assert line in text.splitlines(), line
    assert f"rlvr_train_loss{labels}" not in text and f'job_id="{queued}"' not in text

    with db.begin() as s:
        jobs.finish(s, job_id, "succeeded")
    assert job_id not in {e["job_id"] for e in api.get("/stats").json["training"]}
    assert f'job_id="{job_id}"' not in client.get(
        "/api/v1/metrics", headers=admin.headers
    ).get_data(as_text=True)


# ---- resume --------------------------------------------------------------------------------


def test_resume_requeues_the_same_job(api, as_user, db, redis_server, stack_settings):
    job_id = submit(api)
    claim(db, job_id)
    with db.begin() as s:
        jobs.finish(s, job_id, "failed", error="RuntimeError: out of memory")
    resumed = api.post(f"/jobs/{job_id}/resume")
    assert resumed.status_code == 202, resumed.json
    job = resumed.json
    assert (job["id"], job["status"], job["error"], job["attempt"]) == (job_id, "queued", None, 1)
    assert job["max_attempts"] == 1 + stack_settings.max_attempts  # a fresh budget for crashes
    assert timeline(api, job_id) == ["queued", "running", "failed", "queued"]
    assert (
        api.get(f"/jobs/{job_id}/events").json["events"][-1]["message"]
        == "resumed by its owner for attempt 2"
    )
    assert (
        redis.Redis.from_url(redis_server.url).llen("train") == 2
    )  # the submit's message and the resume's
    claim(db, job_id)
    assert api.get(f"/jobs/{job_id}").json["attempt"] == 2

    with db.begin() as s:  # a worker lost for good: crashed with no attempts left
        assert jobs.transition(s, job_id, "crashed", from_=("running",))
    assert api.post(f"/jobs/{job_id}/resume").json["status"] == "queued"
    assert as_user().post(f"/jobs/{job_id}/resume").status_code == 404


@pytest.mark.parametrize("state", ["queued", "running", "succeeded", "verify job"])
def test_only_stopped_train_and_sft_jobs_resume(api, db, state):
    if state == "verify job":
        job_id = submit(
            api,
            "verify",
            {
                "requests": [
                    {"program": "x = 1", "tests": {"kind": "function", "tests": ["assert x == 1"]}}
                ]
            },
        )
        api.post(f"/jobs/{job_id}/cancel")
    else:
        job_id = submit(api)
    if state in ("running", "succeeded"):
        claim(db, job_id)
    if state == "succeeded":
        with db.begin() as s:
            jobs.finish(s, job_id, "succeeded")
    response = api.post(f"/jobs/{job_id}/resume")
    assert response.status_code == 409 and response.json["error"] == "conflict", response.json


def test_a_cancelled_sft_job_resumes(api):
    job_id = submit(
        api, "sft", {"model": {"name": "tiny"}, "task": {"name": "arithmetic"}, "max_steps": 4}
    )
    assert api.post(f"/jobs/{job_id}/cancel").json["status"] == "cancelled"
    assert api.post(f"/jobs/{job_id}/resume").json["status"] == "queued"


# ---- clone ---------------------------------------------------------------------------------


def stored_spec(db, job_id: int) -> dict:
    with db.read() as s:
        return s.get(Job, job_id).spec


def test_clone_with_an_edited_spec(api, db):
    parent = submit(api)
    same = api.post(f"/jobs/{parent}/clone")
    assert same.status_code == 201, same.json
    assert (same.json["parent_id"], same.json["kind"], same.json["status"]) == (
        parent,
        "train",
        "queued",
    )
    assert same.headers["Location"].endswith(f"/api/v1/jobs/{same.json['id']}")
    assert stored_spec(db, same.json["id"]) == stored_spec(db, parent)
    assert (
        api.get(f"/jobs/{same.json['id']}/events").json["events"][0]["message"]
        == f"clone of job {parent}"
    )

    edited = api.post(
        f"/jobs/{parent}/clone",
        json={
            "spec": {
                "optim": {"learning_rate": 0.5},
                "stopping": {"max_steps": 7},
                "model": {"lora": None},
            }
        },
    )
    assert edited.status_code == 201, edited.json
    assert edited.json["progress"]["total"] == 7
    old, new = stored_spec(db, parent), stored_spec(db, edited.json["id"])
    assert (new["optim"]["learning_rate"], new["model"]["lora"], new["model"]["name"]) == (
        0.5,
        None,
        "tiny",
    )
    assert new["task"] == old["task"] and new["optim"]["seed"] == old["optim"]["seed"]


@pytest.mark.parametrize(
    "body, fields",
    [
        (
            {"spec": {"optim": {"learning_rate": -1, "colour": 1}}},
            ["spec.optim.learning_rate", "spec.optim.colour"],
        ),
        ({"spec": {"stopping": {"max_steps": "many"}}}, ["spec.stopping.max_steps"]),
        ({"spec": [1]}, ["spec"]),
        ({"specs": {}}, ["specs"]),
    ],
)
def test_clone_with_a_bad_edit_is_a_400_naming_the_field(api, body, fields):
    parent = submit(api)
    response = api.post(f"/jobs/{parent}/clone", json=body)
    assert response.status_code == 400
    assert sorted(e["field"] for e in response.json["detail"]) == sorted(fields)


def test_clone_of_someone_elses_job_or_a_body_that_is_not_an_object(api, as_user):
    parent = submit(api)
    assert as_user().post(f"/jobs/{parent}/clone").status_code == 404
    response = api.post(f"/jobs/{parent}/clone", data=b"[1]", content_type="application/json")
    assert response.status_code == 400 and response.json["error"] == "invalid request"


# ---- compare and following -----------------------------------------------------------------


def test_compare_two_jobs(api, as_user, db):
    first, second = submit(api), submit(api)
    store(db, first, {1: {"reward": 0.1, "kl": 0.0}, 2: {"reward": 0.3, "kl": 0.1}})
    store(db, second, {1: {"reward": 0.2, "pass_rate": 0.5}})
    compared = api.get(f"/compare?jobs={first},{second}&names=reward,pass_rate")
    assert compared.status_code == 200, compared.json
    assert compared.json == {
        "jobs": [
            {
                "id": first,
                "kind": "train",
                "status": "queued",
                "series": {"reward": [[1, 0.1], [2, 0.3]]},
            },
            {
                "id": second,
                "kind": "train",
                "status": "queued",
                "series": {"reward": [[1, 0.2]], "pass_rate": [[1, 0.5]]},
            },
        ]
    }
    assert set(api.get(f"/compare?jobs={first}").json["jobs"][0]["series"]) == {"reward", "kl"}
    assert api.get(f"/jobs/{first}/metrics?names=reward&after=1").json["series"] == {
        "reward": [[2, 0.3]]
    }
    for query, field in (("jobs=1,x", "jobs.1"), ("", "jobs"), ("jobs=", "jobs")):
        response = api.get(f"/compare?{query}")
        assert response.status_code == 400 and [e["field"] for e in response.json["detail"]] == [
            field
        ], query
    assert as_user().get(f"/compare?jobs={first}").status_code == 404


# ---- resume on a real train worker ---------------------------------------------------------


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_cancelled_train_job_resumes_from_its_checkpoint(api, procfile, db, tiny_model):
    procfile("train")
    steps = 30  # enough that the cancel lands mid-run on a fast machine too
    job_id = submit(api, "train", train_spec(TINY, steps=steps))
    wait_until(lambda: api.get(f"/jobs/{job_id}").json["progress"]["done"] >= 2, 240, "two steps")
    assert api.post(f"/jobs/{job_id}/cancel").status_code == 202
    cancelled = wait_for(api, job_id, "cancelled", "succeeded", "failed", timeout=120)
    assert cancelled["status"] == "cancelled", cancelled
    stopped_at = cancelled["result"]["steps"]
    assert 2 <= stopped_at < steps

    assert api.post(f"/jobs/{job_id}/resume").status_code == 202
    job = wait_for(api, job_id, "succeeded", "failed", "cancelled", timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert (job["attempt"], job["result"]["resumed_from_step"], job["result"]["steps"]) == (
        2,
        stopped_at,
        steps,
    )
    assert timeline(api, job_id) == [
        "queued",
        "running",
        "cancelling",
        "cancelled",
        "queued",
        "running",
        "succeeded",
    ]
    every_step = dict.fromkeys(range(1, steps + 1), PROMPTS * GROUP)
    assert rows_per_step(db, job_id, ExperienceRow) == every_step  # none lost, none twice


# ---- metrics download and MLflow tracking at submit -------------------------------------------


def test_metrics_download_as_json_lines(api, as_user, db):
    job_id = submit(api)
    claim(db, job_id)
    store(
        db, job_id, {1: {"reward": 0.1, "loss": 2.0}, 2: {"reward": 0.5}, 10: {"eval/pass@1": 0.25}}
    )
    response = api.get(f"/jobs/{job_id}/metrics.jsonl")
    assert response.status_code == 200 and response.mimetype == "application/x-ndjson"
    assert (
        response.headers["Content-Disposition"]
        == f"attachment; filename=job-{job_id}-metrics.jsonl"
    )
    rows = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert rows == [
        {"step": 1, "loss": 2.0, "reward": 0.1},
        {"step": 2, "reward": 0.5},
        {"step": 10, "eval/pass@1": 0.25},
    ]
    only = api.get(f"/jobs/{job_id}/metrics.jsonl?names=reward").get_data(as_text=True).splitlines()
    assert [json.loads(line) for line in only] == [
        {"step": 1, "reward": 0.1},
        {"step": 2, "reward": 0.5},
    ]
    assert (
        api.get(f"/jobs/{submit(api)}/metrics.jsonl").get_data(as_text=True) == ""
    )  # no steps yet
    assert as_user().get(f"/jobs/{job_id}/metrics.jsonl").status_code == 404
    assert api.get(f"/jobs/{job_id}/metrics.jsonl?colour=red").status_code == 400


@pytest.mark.parametrize(
    ("allowed", "uri", "error"),
    [
        ("", None, "logs to no MLflow server"),
        (
            "http://mlflow.internal:5000",
            "http://169.254.169.254/latest/meta-data",
            "not an MLflow server",
        ),
        ("http://mlflow.internal:5000", "file:///etc/cron.d", "not an MLflow server"),
        ("http://mlflow.internal:5000", None, None),
        ("http://mlflow.internal:5000", "http://mlflow.internal:5000/", None),
    ],
)
def test_a_specs_mlflow_uri_is_checked_at_submit(stack_env, make_user, allowed, uri, error):
    from service.settings import load_settings
    from web import create_app

    app = create_app(load_settings({**stack_env, "RLVR_MLFLOW_URIS": allowed}), TESTING=True)
    headers = {"Authorization": f"Bearer {make_user()[1]}"}
    spec = {**SPEC, "tracking": {"mlflow": {"uri": uri, "experiment": "grpo"}}}
    response = app.test_client().post(
        "/api/v1/jobs", json={"kind": "train", "spec": spec}, headers=headers
    )
    app.extensions["rlvr"].db.dispose()
    if error is None:
        assert response.status_code == 201, response.json
    else:
        assert (
            response.status_code == 400
            and response.json["detail"][0]["field"] == "spec.tracking.mlflow.uri"
        )
        assert error in response.json["detail"][0]["message"], response.json


@pytest.mark.parametrize(
    "spec, fields",
    [
        (
            {
                "rewards": [
                    {"name": "verdict"},
                    {"name": "code_tests", "kwargs": {"partial_scale": "x"}},
                ]
            },
            ["spec.rewards.1.kwargs.partial_scale"],
        ),
        (
            {"rewards": [{"name": "exact_match", "kwargs": {"patern": "a"}}]},
            ["spec.rewards.0.kwargs.patern"],
        ),
        (
            {"rewards": [{"name": "format", "kwargs": {"kind": "xml"}}]},
            ["spec.rewards.0.kwargs.kind"],
        ),
        ({"rewards": [{"name": "classification"}]}, ["spec.rewards.0.kwargs.labels"]),
        (
            {
                "rewards": [
                    {
                        "name": "composite",
                        "kwargs": {
                            "components": [
                                {"name": "f1"},
                                {"name": "length_penalty", "kwargs": {"target_chars": []}},
                            ]
                        },
                    }
                ]
            },
            ["spec.rewards.0.kwargs.components.1.kwargs.target_chars"],
        ),
        ({"rewards": [{"name": "no_such_reward"}]}, ["spec.rewards.0.name"]),
        (
            {"rewards": [{"name": "python", "kwargs": {"source": "def reward(completion): ..."}}]},
            ["spec.rewards.0.kwargs.source"],
        ),
        ({"task": {"name": "gsm8k", "source": "local:nobody-saved-this"}}, ["spec.task.source"]),
        ({"task": {"name": "gsm8k", "source": "/etc/passwd"}}, ["spec.task.source"]),
    ],
)
def test_reward_settings_and_dataset_refs_are_checked_at_submit(api, spec, fields):
    """A 400 naming the field, not a 201 and a job that fails on the worker."""
    response = api.post("/jobs", json={"kind": "train", "spec": {**SPEC, **spec}})
    assert response.status_code == 400, response.json
    assert sorted(e["field"] for e in response.json["detail"]) == fields


def test_a_downloaded_adapter_names_the_model_as_the_spec_did(
    api, db, stack_settings, tiny_model, tmp_path
):
    """peft writes the server's path of the base model into the adapter's config and its model
    card; the download names it as the user did, and the copy on disk keeps the path that
    `job:<id>` specs are resolved through."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    job_id = submit(api, spec={**SPEC, "model": {"name": TINY}})
    final = stack_settings.data_dir / "artifacts" / "jobs" / str(job_id) / "final"
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    get_peft_model(base, LoraConfig(r=2, target_modules="all-linear")).save_pretrained(final)
    with db.begin() as s:
        training.save_artifact(s, job_id, "final", f"jobs/{job_id}/final")

    download = api.get(f"/jobs/{job_id}/download")
    assert download.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(download.data)) as archive:
        names = sorted(archive.getnames())
        archive.extractall(tmp_path, filter="data")
    unpacked = tmp_path / f"job-{job_id}-model"
    assert names.count(f"job-{job_id}-model/adapter_config.json") == 1
    assert (
        json.loads((unpacked / "adapter_config.json").read_text())["base_model_name_or_path"]
        == TINY
    )
    for file in unpacked.iterdir():
        if file.suffix in (".json", ".md"):
            assert str(stack_settings.models_dir) not in file.read_text(), file.name
    assert f"base_model: {TINY}" in (unpacked / "README.md").read_text()
    on_disk = json.loads((final / "adapter_config.json").read_text())
    assert on_disk["base_model_name_or_path"] == tiny_model
    # what a user does with it: load it onto their own copy of the base model
    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), unpacked)
    assert any("lora" in name for name, _ in loaded.named_parameters())
