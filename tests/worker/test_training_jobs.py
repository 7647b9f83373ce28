"""Train, SFT and eval jobs on real train workers: the tiny model, a few steps, real rows.

Postgres only: these jobs load torch and a model in a fresh process per job, so each test
costs tens of seconds; SQLite's writes are covered by tests/db/test_training.py.
"""

from __future__ import annotations

import io
import tarfile

import pytest
from support import GROUP, PROMPTS, TINY, rows_per_step, timeline, train_spec, wait_for, wait_until

from service.db.models import ExperienceRow, MetricRow

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


def submit(api, kind: str, spec: dict) -> int:
    response = api.post("/jobs", json={"kind": kind, "spec": spec})
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_train_job_stores_metrics_experiences_and_its_adapter(
    api, procfile, db, tiny_model, tmp_path
):
    procfile("train")
    job_id = submit(api, "train", train_spec(TINY, steps=3, checkpoint_every=2))
    job = wait_for(api, job_id, "succeeded", "failed", timeout=240)
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["steps"] == 3 and job["progress"]["done"] == 3
    assert rows_per_step(db, job_id, ExperienceRow) == {
        1: PROMPTS * GROUP,
        2: PROMPTS * GROUP,
        3: PROMPTS * GROUP,
    }

    series = api.get(f"/jobs/{job_id}/metrics?names=reward,completions/mean_length").json["series"]
    assert set(series) == {"reward", "completions/mean_length"} and [
        step for step, _ in series["reward"]
    ] == [1, 2, 3]
    page = api.get(f"/jobs/{job_id}/experiences?step=2&limit=3&offset=1").json
    assert page["total"] == PROMPTS * GROUP and len(page["experiences"]) == 3
    assert {(e["step"], e["prompt_index"], e["sample_index"]) for e in page["experiences"]} == {
        (2, 0, 1),
        (2, 0, 2),
        (2, 0, 3),
    }
    first = page["experiences"][0]
    assert first["prompt"] and first["reward_components"] and first["verdict"] in ("pass", "fail")
    assert api.get(f"/jobs/{job_id}/experiences?limit=0").status_code == 400
    kinds = {(a["kind"], a["step"]) for a in api.get(f"/jobs/{job_id}/artifacts").json["artifacts"]}
    assert ("final", None) in kinds and ("checkpoint", 2) in kinds

    download = api.get(f"/jobs/{job_id}/download")
    assert download.status_code == 200 and download.mimetype == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(download.data)) as archive:
        archive.extractall(tmp_path, filter="data")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), tmp_path / f"job-{job_id}-model"
    )
    assert any("lora" in name for name, _ in model.named_parameters())


def test_sft_output_starts_a_train_job_and_an_eval_reports_pass_at_k(api, procfile, tiny_model):
    procfile("train")
    sft_id = submit(
        api,
        "sft",
        {
            "model": {"name": TINY, "lora": None},
            "task": {"name": "arithmetic", "max_digits": 1, "train_size": 64, "test_size": 8},
            "max_steps": 3,
            "batch_size": 8,
        },
    )
    sft = wait_for(api, sft_id, "succeeded", "failed", timeout=240)
    assert sft["status"] == "succeeded", sft["error"]
    train_id = submit(api, "train", train_spec(f"job:{sft_id}", steps=1))
    train = wait_for(api, train_id, "succeeded", "failed", timeout=240)
    assert train["status"] == "succeeded", train["error"]
    eval_id = submit(
        api,
        "eval",
        {
            "model": {"name": f"job:{train_id}"},
            "task": {"name": "arithmetic", "max_digits": 1, "train_size": 8, "test_size": 8},
            "num_samples": 4,
            "k": [1, 4],
            "sampling": {"max_new_tokens": 4},
        },
    )
    result = wait_for(api, eval_id, "succeeded", "failed", timeout=240)
    assert result["status"] == "succeeded", result["error"]
    assert 0.0 <= result["result"]["pass@1"] <= result["result"]["pass@4"] <= 1.0


def test_killed_train_worker_resumes_from_its_checkpoint(api, procfile, db, tiny_model):
    procfile("verify")  # the reaper's task runs on the verify pool
    procfile("beat")
    worker = procfile("train")
    steps = 20  # enough that the kill lands mid-run on a fast machine too
    job_id = submit(api, "train", train_spec(TINY, steps=steps, checkpoint_every=2))
    wait_until(lambda: api.get(f"/jobs/{job_id}").json["progress"]["done"] >= 3, 240, "three steps")
    worker.kill()
    assert api.get(f"/jobs/{job_id}").json["status"] == "running"
    wait_until(lambda: "crashed" in timeline(api, job_id), 60, "the reaper to mark the job crashed")
    procfile("train")
    job = wait_for(api, job_id, "succeeded", "failed", timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempt"] == 2 and job["result"]["resumed_from_step"] >= 2
    assert job["result"]["steps"] == steps
    every_step = dict.fromkeys(range(1, steps + 1), PROMPTS * GROUP)
    assert rows_per_step(db, job_id, ExperienceRow) == every_step  # none lost, none twice
    reward_rows = dict(rows_per_step(db, job_id, MetricRow).items())
    assert sorted(reward_rows) == list(range(1, steps + 1))
