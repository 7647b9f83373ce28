"""rlvr.tracking: the spec as MLflow params, metric names MLflow accepts, and a CLI run logged
to a real MLflow server (the `mlflow_server` fixture) and read back with `MlflowClient`."""

from __future__ import annotations

import yaml
from mlflow import MlflowClient
from support import free_port, train_spec

from rlvr.cli import main
from rlvr.tracking import MlflowRun, flatten, metric_key


def test_flatten_keeps_lists_whole_and_caps_long_values():
    flat = flatten(
        {"a": {"b": {"c": 1}}, "k": [1, 4], "empty": {}, "long": "x" * 7000, "none": None}
    )
    assert flat == {"a.b.c": "1", "k": "[1, 4]", "empty": "{}", "long": "x" * 6000, "none": "None"}


def test_metric_keys_mlflow_refuses_are_rewritten():
    assert [metric_key(n) for n in ("reward", "eval/greedy/pass_rate", "eval/pass@4", "a(b)")] == [
        "reward",
        "eval/greedy/pass_rate",
        "eval/pass_at_4",
        "a_b_",
    ]


def test_a_reopened_run_continues_where_it_was(mlflow_server):
    key = {"rlvr.job_id": "7", "rlvr.job_created": "2026-01-01T00:00:00"}
    first = MlflowRun.open(mlflow_server, "reopen", "job-7", params={"optim": {"seed": 1}}, key=key)
    first.on_step(1, {"reward": 0.5, "nan": float("nan")})
    first.finish("failed")  # a crash; the next attempt reopens the same run
    again = MlflowRun.open(mlflow_server, "reopen", "job-7", params={"optim": {"seed": 1}}, key=key)
    assert again.run_id == first.run_id
    again.on_step(2, {"reward": 0.75})
    again.finish(
        "succeeded",
        final_dir="/srv/rlvr/artifacts/jobs/7/final",
        summary={"steps": 2, "stop": "max"},
    )
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"optim.seed": "1"}
    assert [(m.step, m.value) for m in client.get_metric_history(first.run_id, "reward")] == [
        (1, 0.5),
        (2, 0.75),
    ]
    assert "nan" not in run.data.metrics and run.data.metrics["summary/steps"] == 2
    assert run.data.tags["rlvr.final_model"] == "/srv/rlvr/artifacts/jobs/7/final"
    assert again.failures == 0


def test_the_cli_logs_a_run(mlflow_server, tiny_model, tmp_path):
    spec = {
        **train_spec(tiny_model, steps=2),
        "tracking": {"mlflow": {"uri": mlflow_server, "experiment": "cli"}},
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["train", str(tmp_path / "spec.yaml"), "--run-dir", str(tmp_path / "run")]) == 0
    client = MlflowClient(tracking_uri=mlflow_server)
    [run] = client.search_runs([client.get_experiment_by_name("cli").experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert run.data.tags["rlvr.run_dir"] == str((tmp_path / "run").resolve())
    assert [m.step for m in client.get_metric_history(run.info.run_id, "reward")] == [1, 2]
    assert run.data.params["optim.learning_rate"] == "0.01"


def test_a_server_that_went_away_costs_the_job_nothing(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    run = MlflowRun(MlflowClient(tracking_uri=f"http://127.0.0.1:{free_port()}"), "gone")
    run.on_step(1, {"reward": 1.0})
    run.on_checkpoint(1, "/srv/rlvr/artifacts/jobs/7/checkpoint-1")
    run.finish("succeeded", final_dir="/srv/rlvr/artifacts/jobs/7/final")
    assert run.failures == 4  # the step, two tags and the end: each a warning, none raised
