"""Train, eval and SFT jobs on a train worker: rlvr's loop, with the job row as its callback.

Owns: `JobCallback` (metrics, experiences and checkpoints to the database in one write per
step, progress, cooperative cancel), the job's run directory under the artifacts directory
(a crashed or resumed job's next attempt resumes from the latest checkpoint there, after
dropping the rows written past it; SFT keeps no checkpoints and starts over), and
`queue_verifier`, which sends code to the `verify` queue in batches and waits with a
timeout (a batch that does not come back is unjudged: reward None, never 0), and `tracked`,
the job's MLflow run when its spec asks for one. torch is imported only when a job of these
kinds runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from rlvr.callbacks import Callback, CallbackList, Experience
from service import queues, telemetry, tenancy
from service.db import Job, User, jobs, training
from service.queues import Services

log = logging.getLogger(__name__)

VERIFY_CHUNK = 16  # programs per verify task: small enough to spread over the verify pool


def preload() -> None:
    """Imports torch, transformers, peft and rlvr's loops once, in the train worker's main
    process. Each job runs in a process forked from it (`worker.runners`), which then starts
    with them loaded instead of spending seconds importing them (5-10 s on a small CPU).
    Importing touches no CUDA state, so forking afterwards stays safe on GPUs."""
    import rlvr.evaluate
    import rlvr.sft
    import rlvr.trainer  # noqa: F401


def job_dir(services: Services, job_id: int) -> Path:
    return services.settings.data_dir / "artifacts" / "jobs" / str(job_id)


def relative(services: Services, path: str | Path) -> str:
    return str(
        Path(path).resolve().relative_to((services.settings.data_dir / "artifacts").resolve())
    )


class JobCallback(Callback):
    """rlvr's callback interface, written to the job's rows (and each step's duration to the
    `rlvr_train_step_seconds` histogram)."""

    def __init__(self, services: Services, job: Job, cancelled: threading.Event):
        self.services, self.job_id, self.kind, self.cancelled = (
            services,
            job.id,
            job.kind,
            cancelled,
        )

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        with self.services.db.begin() as session:
            training.save_metrics(session, self.job_id, step, metrics)
            jobs.set_progress(session, self.job_id, step)
        if metrics.get("step_time") is not None:
            telemetry.observe_step(self.services.redis, self.kind, metrics["step_time"])

    def on_experiences(self, step: int, records: list[Experience]) -> None:
        with self.services.db.begin() as session:
            training.save_experiences(session, self.job_id, [asdict(r) for r in records])

    def on_checkpoint(self, step: int, path: str) -> None:
        with self.services.db.begin() as session:
            training.save_artifact(
                session, self.job_id, "checkpoint", relative(self.services, path), step
            )

    def should_stop(self) -> bool:
        return self.cancelled.is_set()


def prepared_spec[S: BaseModel](services: Services, job: Job, spec_type: type[S]) -> S:
    """The job's spec as rlvr loads it: checked again for its owner (`service.tenancy`: no path,
    address or key a user named goes further), its references (`job:<id>`, `registered:<name>`,
    `file:<id>`) made server paths, and the operator's judge endpoints declared to rlvr."""
    from rlvr.rewards.llm import use_endpoints

    use_endpoints(services.settings.judge_endpoints)
    with services.db.read() as session:
        owner = session.get(User, job.user_id)
        return spec_type.model_validate(
            tenancy.resolve(session, owner, job.spec, services.settings)
        )


def resume_point(run_dir: Path) -> int:
    """The step of the latest checkpoint in `run_dir`, 0 for none."""
    from rlvr.checkpoint import latest_checkpoint

    checkpoint = latest_checkpoint(run_dir)
    return int(checkpoint.name.split("-")[-1]) if checkpoint else 0


def run_train_job(services: Services, job: Job, cancelled: threading.Event) -> tuple[str, dict]:
    from rlvr.spec import TrainSpec
    from rlvr.trainer import Trainer

    run_dir = job_dir(services, job.id)
    start = resume_point(run_dir)
    with services.db.begin() as session:
        training.drop_after(session, job.id, start)
    spec = prepared_spec(services, job, TrainSpec)
    with tracked(services, job, spec, JobCallback(services, job, cancelled)) as (
        callback,
        end_tracking,
    ):
        result = Trainer(spec, run_dir, callback, verify=queue_verifier(services)).run()
        _save_final(services, job.id, result.final_dir)
        summary = {
            "steps": result.steps,
            "stop_reason": result.stop_reason,
            "resumed_from_step": start,
            "final": relative(services, result.final_dir),
            **_headline(result.last_metrics),
        }
        status = "cancelled" if result.stop_reason == "cancelled" else "succeeded"
        end_tracking(status, final_dir=result.final_dir, summary=summary)
    return status, summary


def run_sft_job(services: Services, job: Job, cancelled: threading.Event) -> tuple[str, dict]:
    from rlvr.sft import run_sft
    from rlvr.spec import SFTSpec

    run_dir = job_dir(services, job.id)
    with services.db.begin() as session:  # SFT keeps no checkpoints: a resumed SFT job starts over
        training.drop_after(session, job.id, 0)
    spec = prepared_spec(services, job, SFTSpec)
    with tracked(services, job, spec, JobCallback(services, job, cancelled)) as (
        callback,
        end_tracking,
    ):
        result = run_sft(spec, run_dir, callback, verify=queue_verifier(services))
        _save_final(services, job.id, result.final_dir)
        status = "cancelled" if cancelled.is_set() else "succeeded"
        summary = {"final": relative(services, result.final_dir), **_headline(result.metrics)}
        end_tracking(status, final_dir=result.final_dir, summary=summary)
    return status, summary


def run_eval_job(services: Services, job: Job, cancelled: threading.Event) -> tuple[str, dict]:
    from rlvr.evaluate import run_eval
    from rlvr.spec import EvalSpec

    run_dir = job_dir(services, job.id)
    spec = prepared_spec(services, job, EvalSpec)
    with tracked(services, job, spec, JobCallback(services, job, cancelled)) as (
        callback,
        end_tracking,
    ):
        summary = run_eval(spec, run_dir, callback, verify=queue_verifier(services))
        with services.db.begin() as session:
            jobs.set_progress(session, job.id, 1)
        end_tracking("succeeded", summary=summary)
    return "succeeded", summary


@contextmanager
def tracked(
    services: Services, job: Job, spec, callback: Callback
) -> Iterator[tuple[Callback, Callable]]:
    """`callback`, joined by the job's MLflow run when its spec asks for one, and the function
    that ends that run. The spec's URI must be one the operator allows (`RLVR_MLFLOW_URIS`,
    checked at submit and again here, where the request would leave): a job must not make the
    worker call arbitrary hosts, nor write `file:` or `sqlite:` stores on its disk. A job
    that raises ends its run FAILED."""
    wanted = spec.tracking.mlflow
    if wanted is None:
        yield callback, lambda *args, **kwargs: None
        return
    from rlvr.tracking import MlflowRun

    run = MlflowRun.open(
        services.settings.mlflow_uri(wanted.uri),
        wanted.experiment,
        wanted.run_name or f"job-{job.id}",
        params=job.spec,
        key={"rlvr.job_id": str(job.id), "rlvr.job_created": f"{job.created_at:%Y-%m-%dT%H:%M:%S}"},
    )
    try:
        yield CallbackList([callback, run]), run.finish
    except BaseException:
        run.finish("failed")
        raise


def _save_final(services: Services, job_id: int, final_dir: Path) -> None:
    with services.db.begin() as session:
        training.save_artifact(session, job_id, "final", relative(services, final_dir))


def _headline(metrics: dict[str, float]) -> dict[str, float]:
    """The few numbers a job's result shows; the rest is in its metric series."""
    keep = (
        "reward",
        "pass_rate",
        "loss",
        "kl",
        "eval/greedy/pass_rate",
        "eval/pass@1",
        "eval_loss",
    )
    return {name: round(float(value), 4) for name, value in metrics.items() if name in keep}


def queue_verifier(services: Services, timeout: float | None = None):
    """A `verify(problems, programs)` for code rewards that runs on the verify pool."""
    from rlvr.verifier import RequestVerifier

    wait = timeout or services.settings.verify_hard_seconds

    def run_requests(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        chunks = [requests[i : i + VERIFY_CHUNK] for i in range(0, len(requests), VERIFY_CHUNK)]
        pending = [queues.send_requests(services, chunk, source="rewards") for chunk in chunks]
        verdicts: list[dict[str, Any]] = []
        for result in pending:
            verdicts.extend(result.get(timeout=wait, disable_sync_subtasks=False))
        return verdicts

    return RequestVerifier(run_requests)
