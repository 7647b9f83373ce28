"""Helpers that tests import by name (`from support import wait_until`).

They live here, not in conftest.py: every directory's conftest.py is imported as the
module `conftest`, so `from conftest import ...` finds whichever was imported first.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Api:
    """The test client speaking as one user: `api.post("/jobs", json=...)`."""

    def __init__(self, client, token: str):
        self.client, self.headers = client, {"Authorization": f"Bearer {token}"}

    def __getattr__(self, verb):
        def call(path, headers=None, **kw):
            return getattr(self.client, verb)(
                "/api/v1" + path, headers={**self.headers, **(headers or {})}, **kw
            )

        return call


def wait_for(api, job_id: int, *statuses: str, timeout: float = 90) -> dict:
    """Polls `GET /jobs/<id>` until the job is in one of `statuses`; returns it."""
    last = {}

    def reached():
        last.update(api.get(f"/jobs/{job_id}").json)
        return dict(last) if last["status"] in statuses else None

    try:
        return wait_until(
            reached, timeout, f"job {job_id} to be {' or '.join(statuses)}", every=0.2
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen {last}; timeline {timeline(api, job_id)}") from None


def timeline(api, job_id: int) -> list[str]:
    return [e["status"] for e in api.get(f"/jobs/{job_id}/events").json["events"]]


PROMPTS, GROUP = 2, 4  # of `train_spec`: each step stores PROMPTS * GROUP experiences
TINY = "registered:tiny"  # the `tiny_model` fixture, as a user's spec names it


def train_spec(model: str, steps: int, **data) -> dict:
    """A train job of a few seconds a step on the tiny model (`TINY`, after the `tiny_model` fixture)."""
    return {
        "model": {"name": model, "lora": {"r": 4, "alpha": 8}},
        "task": {"name": "arithmetic", "max_digits": 1, "train_size": 64, "test_size": 8},
        "algorithm": {"group_size": GROUP},
        "sampling": {"max_new_tokens": 4},
        "optim": {"prompts_per_step": PROMPTS, "learning_rate": 1e-2, "seed": 3},
        "stopping": {"max_steps": steps},
        "data": data,
    }


def rows_per_step(db, job_id: int, table) -> dict[int, int]:
    """`{step: rows}` of a job in `table` (ExperienceRow, MetricRow)."""
    with db.read() as session:
        return dict(
            session.execute(
                select(table.step, func.count()).where(table.job_id == job_id).group_by(table.step)
            ).all()
        )
