"""Jobs whose spec names an MLflow run, on a real train worker, logging to a real `mlflow
server` (SQLite backend, a free port on 127.0.0.1) that the test starts; the runs are read
back with `MlflowClient`.

The server is the `mlflow_server` fixture (tests/conftest.py).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow import MlflowClient
from support import TINY, train_spec, wait_for

from rlvr.callbacks import Callback
from rlvr.spec import TrainSpec
from rlvr.tracking import metric_key

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

TASK = train_spec("tiny", 1)["task"]  # the train jobs' task, with a held-out split


@pytest.fixture
def stack_env(stack_env, mlflow_server):
    """The stack's environment with the test's server as the one MLflow URI jobs may name."""
    return {**stack_env, "RLVR_MLFLOW_URIS": mlflow_server}


def submit(api, kind: str, spec: dict) -> int:
    response = api.post("/jobs", json={"kind": kind, "spec": spec})
    assert response.status_code == 201, response.json
    return response.json["id"]


def only_run(client: MlflowClient, experiment: str, job_id: int):
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs(
        [found.experiment_id], filter_string=f"tags.`rlvr.job_id` = '{job_id}'"
    )
    assert len(runs) == 1, runs
    return runs[0]


def test_train_sft_and_eval_jobs_log_their_runs(api, procfile, mlflow_server, tiny_model):
    procfile("train")
    tracking = {
        "mlflow": {"uri": mlflow_server, "experiment": "arithmetic", "run_name": "grpo-lr1e-2"}
    }
    train_id = submit(api, "train", {**train_spec(TINY, steps=3), "tracking": tracking})
    sft_id = submit(
        api,
        "sft",
        {
            "model": {"name": TINY},
            "task": TASK,
            "max_steps": 2,
            "batch_size": 4,
            "eval_size": 4,
            "max_new_tokens": 4,
            "tracking": {"mlflow": {"experiment": "arithmetic"}},
        },
    )  # the default URI
    eval_id = submit(
        api,
        "eval",
        {
            "model": {"name": TINY},
            "task": TASK,
            "num_problems": 4,
            "num_samples": 2,
            "k": [1],
            "sampling": {"max_new_tokens": 4},
            "tracking": {"mlflow": {"experiment": "evals"}},
        },
    )
    for job_id in (train_id, sft_id, eval_id):
        job = wait_for(api, job_id, "succeeded", "failed", timeout=300)
        assert job["status"] == "succeeded", job["error"]
    client = MlflowClient(tracking_uri=mlflow_server)

    run = only_run(client, "arithmetic", train_id)
    assert run.info.run_name == "grpo-lr1e-2" and run.info.status == "FINISHED"
    params = run.data.params
    assert params["optim.learning_rate"] == "0.01" and params["algorithm.group_size"] == "4"
    # The worker logs the spec it ran: the registered name, resolved to the operator's folder.
    assert params["model.name"] in (TINY, tiny_model) and params["task.name"] == "arithmetic"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "reward")] == [1, 2, 3]
    stored = api.get(f"/jobs/{train_id}/metrics?names=loss").json["series"]["loss"]
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")] == [
        tuple(point) for point in stored
    ]
    final = Path(run.data.tags["rlvr.final_model"])
    assert (
        final.parts[-3:] == ("jobs", str(train_id), "final")
        and (final / "adapter_config.json").exists()
    )

    sft = only_run(client, "arithmetic", sft_id)
    assert sft.info.run_name == f"job-{sft_id}" and sft.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(sft.info.run_id, "loss")] == [1, 2]
    assert sft.data.tags["rlvr.final_model"].endswith(f"jobs/{sft_id}/final")

    evaluated = only_run(client, "evals", eval_id)
    result = api.get(f"/jobs/{eval_id}").json["result"]
    numbers = {key: value for key, value in result.items() if isinstance(value, float)}
    assert numbers and all(
        evaluated.data.metrics[metric_key(f"summary/{key}")] == pytest.approx(value)
        for key, value in numbers.items()
    ), (evaluated.data.metrics, result)


def test_the_worker_checks_the_uri_again_before_any_request(stack_env, mlflow_server):
    """A job submitted while a URI was allowed, run by a worker whose operator took it back (or
    a spec written to the database by other means), fails before the worker calls anything."""
    from service.queues import make_services
    from service.settings import load_settings
    from worker.training import tracked

    services = make_services(
        load_settings({**stack_env, "RLVR_MLFLOW_URIS": "http://mlflow.internal:5000"})
    )
    spec = TrainSpec.model_validate({"tracking": {"mlflow": {"uri": mlflow_server}}})
    job = SimpleNamespace(
        id=1, kind="train", spec=spec.model_dump(mode="json"), created_at=datetime.now()
    )
    refused = pytest.raises(ValueError, match="not an MLflow server this service logs to")
    with refused, tracked(services, job, spec, Callback()):
        pass
    assert (
        MlflowClient(tracking_uri=mlflow_server).search_experiments(filter_string="name = 'rlvr'")
        == []
    )
