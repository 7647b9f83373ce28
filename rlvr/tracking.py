"""Experiment tracking: a job's MLflow run, fed through the same callback hooks as everything else.

Owns: opening (or reopening) the run of a job, the spec as flattened params, each step's
metrics under names MLflow accepts, and the run's end with the final model's location.
Does not own: which tracking servers a job may reach (the service checks a spec's URI
against its operator's list before it opens anything; the CLI trusts its user).

mlflow is an optional dependency (the `mlflow` extra, `mlflow-skinny`: the client only), imported
when a spec asks for tracking. A step's metrics that fail to reach the server are logged as
a warning and dropped, never failing the job (the service's database keeps every value); a
run that cannot be opened fails the job at its start, where a wrong URI or experiment
shows at once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any

from rlvr.callbacks import Callback

log = logging.getLogger(__name__)

PARAMS_PER_CALL = 100  # MLflow's log_batch limit
MAX_PARAM_CHARS = 6000  # MLflow's longest param value
END_STATUS = {"succeeded": "FINISHED", "cancelled": "KILLED", "failed": "FAILED"}


def flatten(spec: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested spec -> `{"optim.learning_rate": "0.01", ...}`; lists stay whole, as JSON.

    >>> flatten({"optim": {"learning_rate": 0.01}, "rewards": [{"name": "verdict"}], "lora": None})
    {'optim.learning_rate': '0.01', 'rewards': '[{"name": "verdict"}]', 'lora': 'None'}
    """
    flat: dict[str, str] = {}
    for key, value in spec.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
            flat[name] = text[:MAX_PARAM_CHARS]
    return flat


def metric_key(name: str) -> str:
    """A metric name MLflow accepts (letters, digits, `_ - . / : ` and space).

    >>> metric_key("eval/pass@1")
    'eval/pass_at_1'
    """
    return re.sub(r"[^\w\-./: ]", "_", name.replace("@", "_at_"))


class MlflowRun(Callback):
    """One job's MLflow run. `open` finds the run that `key` tags (a resumed or retried job
    continues its run) or starts one; the hooks log to it; `finish` ends it."""

    def __init__(self, client, run_id: str):
        self.client, self.run_id, self.failures = client, run_id, 0

    @classmethod
    def open(
        cls,
        uri: str | None,
        experiment: str,
        run_name: str,
        *,
        params: dict[str, Any],
        key: dict[str, str],
    ) -> MlflowRun:
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise RuntimeError(
                "tracking.mlflow needs the mlflow client where the job runs: "
                "pip install 'rlvr-service[mlflow]'"
            ) from None
        # MLflow retries a failed request 7 times with backoff by default, which would stall a
        # step for minutes while its server is down; fewer, unless the environment says more.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        query = " and ".join(f"tags.`{name}` = '{value}'" for name, value in key.items())
        runs = client.search_runs([experiment_id], filter_string=query, max_results=1)
        if runs:
            run_id = runs[0].info.run_id
            client.update_run(run_id, status="RUNNING")
        else:
            run_id = client.create_run(experiment_id, run_name=run_name, tags=key).info.run_id
        run = cls(client, run_id)
        run.log_params(flatten(params))
        return run

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        # A resumed run logs the same values again, which MLflow accepts (a changed one it refuses).
        items = [Param(key, value) for key, value in params.items()]
        for start in range(0, len(items), PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=items[start : start + PARAMS_PER_CALL])

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        values = [
            Metric(metric_key(name), float(value), now, step)
            for name, value in metrics.items()
            if value is not None and value == value
        ]  # NaN: not logged, as the database skips it
        try:
            self.client.log_batch(self.run_id, metrics=values)
        except Exception:
            self.failures += 1
            log.warning(
                "MLflow run %s: step %s's metrics were not logged", self.run_id, step, exc_info=True
            )

    def on_checkpoint(self, step: int, path: str) -> None:
        self._tag("rlvr.last_checkpoint", f"{path} (step {step})")

    def finish(
        self, status: str, *, final_dir: str | None = None, summary: dict[str, Any] | None = None
    ) -> None:
        """Ends the run as FINISHED, KILLED or FAILED (`status` is the job's), with the final
        model's location and the job's numeric summary (an eval's results) as metrics."""
        if final_dir:
            self._tag("rlvr.final_model", str(final_dir))
        numbers = {
            name: value for name, value in flatten(summary or {}).items() if _is_number(value)
        }
        if numbers:
            self.on_step(0, {f"summary/{name}": float(value) for name, value in numbers.items()})
        self._call("end", self.client.set_terminated, status=END_STATUS.get(status, "FAILED"))

    def _tag(self, name: str, value: str) -> None:
        self._call(f"tag {name}", self.client.set_tag, name, value)

    def _call(self, what: str, method, *args, **kwargs) -> None:
        try:
            method(self.run_id, *args, **kwargs)
        except Exception:
            self.failures += 1
            log.warning("MLflow run %s: %s failed", self.run_id, what, exc_info=True)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
