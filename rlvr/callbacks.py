"""The one interface through which a job reports: metrics, experiences, checkpoints, cancel.

Owns the ``Experience`` record, the ``Callback`` base (every hook a no-op), a list that fans
out to several callbacks, and the CLI's implementation that appends JSONL files to a run
directory. The Celery worker implements the same hooks to write Postgres and to read the
job's cancel flag in ``should_stop``.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Experience:
    """One rollout: a completion with its reward, verdict and what the update saw."""

    step: int
    prompt_index: int
    sample_index: int
    problem_id: str
    prompt: str
    completion: str
    prompt_tokens: int
    completion_tokens: int
    truncated: bool
    reward: float | None
    reward_components: dict[str, float | None]
    verdict: (
        str  # the task's grade (rlvr.tasks.base.Grade), under the name stored rows and the API use
    )
    advantage: float
    logprob_sum: float
    logprob_mean: float
    temperature: float
    extra: dict[str, Any] = field(default_factory=dict)


class Callback:
    """Hooks a job calls; override what you need."""

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        """After each optimizer step (and each eval, with ``eval/`` names)."""

    def on_experiences(self, step: int, records: list[Experience]) -> None:
        """Every rollout of a step, once, in one batch (one bulk write)."""

    def on_checkpoint(self, step: int, path: str) -> None:
        """A checkpoint was written to ``path``."""

    def should_stop(self) -> bool:
        """Cooperative cancel: return True and the job checkpoints and stops."""
        return False


class CallbackList(Callback):
    def __init__(self, callbacks: list[Callback]):
        self.callbacks = callbacks

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        for callback in self.callbacks:
            callback.on_step(step, metrics)

    def on_experiences(self, step: int, records: list[Experience]) -> None:
        for callback in self.callbacks:
            callback.on_experiences(step, records)

    def on_checkpoint(self, step: int, path: str) -> None:
        for callback in self.callbacks:
            callback.on_checkpoint(step, path)

    def should_stop(self) -> bool:
        return any(callback.should_stop() for callback in self.callbacks)


class JsonlCallback(Callback):
    """Appends ``metrics.jsonl``, ``experiences.jsonl`` and ``checkpoints.jsonl`` in a run dir."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)

    def _append(self, name: str, rows: list[dict[str, Any]]) -> None:
        with open(self.run_dir / name, "a", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row) + "\n")

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self._append("metrics.jsonl", [{"step": step, **metrics}])

    def on_experiences(self, step: int, records: list[Experience]) -> None:
        self._append("experiences.jsonl", [asdict(record) for record in records])

    def on_checkpoint(self, step: int, path: str) -> None:
        self._append("checkpoints.jsonl", [{"step": step, "path": path}])
