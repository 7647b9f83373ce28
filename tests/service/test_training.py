"""Metrics, experiences and artifacts of training jobs, on SQLite and Postgres."""

import pytest

from service.db import jobs, training


@pytest.fixture
def job_id(db, make_user):
    user_id, _ = make_user()
    with db.begin() as session:
        job, _ = jobs.submit(
            session, user_id=user_id, kind="train", spec={}, total=3, max_attempts=2
        )
        return job.id


def experience(
    step: int, prompt: int, sample: int, reward: float | None = 1.0, verdict: str = "pass"
) -> dict:
    return {
        "step": step,
        "prompt_index": prompt,
        "sample_index": sample,
        "problem_id": f"p{prompt}",
        "prompt": "1+1=",
        "completion": " 2",
        "prompt_tokens": 4,
        "completion_tokens": 2,
        "truncated": False,
        "reward": reward,
        "reward_components": {"correct": reward},
        "verdict": verdict,
        "advantage": 0.5,
        "logprob_sum": -1.0,
        "logprob_mean": -0.5,
        "temperature": 1.0,
        "extra": {"turns": 1},
    }


def test_experiences_are_written_once_per_key(db, job_id):
    batch = [experience(1, p, s) for p in range(3) for s in range(4)]
    with db.begin() as session:
        assert training.save_experiences(session, job_id, batch) == 12
    nul = {
        **experience(2, 0, 0, reward=None, verdict="error"),
        "completion": "a\x00b",
        "extra": {"c": "\x00"},
    }
    with (
        db.begin() as session
    ):  # a replayed step: the same keys again, and a model that generated NUL
        training.save_experiences(session, job_id, batch + [nul])
    with db.read() as session:
        assert training.count_experiences(session, job_id) == 13
        total, page = training.experiences(session, job_id, step=1, limit=5, offset=5)
        assert total == 12 and [(r.prompt_index, r.sample_index) for r in page] == [
            (1, 1),
            (1, 2),
            (1, 3),
            (2, 0),
            (2, 1),
        ]
        assert page[0].reward_components == {"correct": 1.0} and page[0].extra["turns"] == 1
        total, errors = training.experiences(session, job_id, verdict="error")
        assert total == 1 and errors[0].reward is None
        assert errors[0].completion == "a\ufffdb" and errors[0].extra["c"] == "\ufffd"


def test_metric_series_and_drop_after_resume_point(db, job_id):
    with db.begin() as session:
        for step in (1, 2, 3):
            training.save_metrics(
                session, job_id, step, {"reward": step / 10, "kl": 0.0, "nan": float("nan")}
            )
            training.save_experiences(session, job_id, [experience(step, 0, 0)])
    with db.begin() as session:
        training.drop_after(session, job_id, 2)
    with db.read() as session:
        assert training.series(session, job_id, ["reward"]) == {"reward": [[1, 0.1], [2, 0.2]]}
        assert set(training.series(session, job_id)) == {"reward", "kl"}
        assert training.count_experiences(session, job_id) == 2


def test_artifacts_are_indexed_once(db, job_id):
    with db.begin() as session:
        training.save_artifact(
            session, job_id, "checkpoint", "jobs/1/checkpoints/step-000002", step=2
        )
        training.save_artifact(
            session, job_id, "checkpoint", "jobs/1/checkpoints/step-000002", step=2
        )
        training.save_artifact(session, job_id, "checkpoint", "jobs/1/final", step=3)
        training.save_artifact(session, job_id, "final", "jobs/1/final")
    with db.read() as session:
        assert [(a.kind, a.step) for a in training.artifacts(session, job_id)] == [
            ("checkpoint", 2),
            ("checkpoint", 3),
            ("final", None),
        ]
        assert [a.path for a in training.artifacts(session, job_id, "final")] == ["jobs/1/final"]


def test_outcomes_are_read_in_chunks_without_the_texts(db, job_id):
    with db.begin() as session:
        training.save_experiences(
            session,
            job_id,
            [
                experience(step, p, 0, reward=None if p == 2 else 0.5)
                for step in (1, 2)
                for p in range(3)
            ],
        )
    with db.read() as session:
        rows = list(training.outcomes(session, job_id, chunk=4))  # two pages, the second short
        assert [(r["step"], r["reward"]) for r in rows] == [
            (1, 0.5),
            (1, 0.5),
            (1, None),
            (2, 0.5),
            (2, 0.5),
            (2, None),
        ]
        assert set(rows[0]) == {"id", "step", "reward", "verdict", "extra"}
        assert training.unverified_rewards(session, [job_id, job_id + 1000]) == {
            job_id: 2,
            job_id + 1000: 0,
        }


def test_latest_values_and_recent_step_seconds(db, job_id):
    with db.begin() as session:
        for step in range(1, 13):
            training.save_metrics(
                session,
                job_id,
                step,
                {"step_time": float(step), **({"kl": step} if step < 5 else {})},
            )
        jobs.set_progress(session, job_id, 12)
    with db.read() as session:
        assert training.latest_values(session, [job_id], ["kl", "step_time", "reward"]) == {
            job_id: {"kl": 4.0, "step_time": 12.0}
        }
        assert sorted(training.recent_step_seconds(session, [job_id], last=3)[job_id]) == [
            10.0,
            11.0,
            12.0,
        ]
