"""Hostile sizes: each row is a spec or a flood that stalled a pool before (issue 14, part B),
asserting the exact refusal and that nothing ran.

A spec refused at submit is then written straight to the database (as a spec stored before the
ceilings would be) and run by the worker's own code in this process (`worker.runners.run_job`):
the job must fail naming the same fields, with no metric, experience or verdict stored. The
operator's ceilings here are the defaults; the quotas are lowered so a flood is a few calls.
"""

from __future__ import annotations

import concurrent.futures
import json
import time
import urllib.error
import urllib.request

import pytest
import redis
from sqlalchemy import func, select
from support import TINY, free_port, train_spec

from rlvr.rewards.rules import format_reward
from service.db import Job, VerdictRow, accounts, jobs
from service.db.models import ExperienceRow, MetricRow
from worker import runners

MAX_QUEUED, MAX_VERIFY_CALLS = 3, 2
LOOP_FOREVER = {
    "program": "while True:\n    pass\n",
    "tests": {"kind": "function", "tests": ["assert True"]},
}


@pytest.fixture
def stack_env(stack_env):
    return {
        **stack_env,
        "RLVR_USER_MAX_QUEUED": str(MAX_QUEUED),
        "RLVR_USER_MAX_VERIFY_CALLS": str(MAX_VERIFY_CALLS),
    }


def train(**fields) -> dict:
    """`train(optim__prompts_per_step=8)`: the support module's train spec with fields replaced."""
    spec = train_spec(TINY, 2)
    for path, value in fields.items():
        section, key = path.split("__")
        spec[section] = {**spec.get(section, {}), key: value}
    return spec


def sft(**fields) -> dict:
    return {"model": {"name": TINY}, "task": {"name": "arithmetic"}, "max_steps": 2, **fields}


def evaluation(**fields) -> dict:
    return {"model": {"name": TINY}, "task": {"name": "arithmetic"}, "num_problems": 2, **fields}


PY = "def reward(prompt, completion, answer):\n    return 1.0\n"


def fmt(pattern: str) -> list[dict]:
    return [{"name": "format", "kwargs": {"kind": "regex", "pattern": pattern}}]


def verify(**limits) -> dict:
    return {"requests": [{**LOOP_FOREVER, "limits": limits}]}


# (id, kind, spec, the fields refused). Each spec was accepted (201) before.
SPEC_ATTACKS = [
    (
        "prompts_per_step_1e9",
        "train",
        train(optim__prompts_per_step=10**9),
        ["optim.prompts_per_step"],
    ),
    ("group_size_1e6", "train", train(algorithm__group_size=10**6), ["algorithm.group_size"]),
    (
        "prompts_times_group_past_the_ceiling",
        "train",
        train(optim__prompts_per_step=64, algorithm__group_size=64),
        ["optim.prompts_per_step"],
    ),
    (
        "max_new_tokens_1e9",
        "train",
        train(sampling__max_new_tokens=10**9),
        ["sampling.max_new_tokens"],
    ),
    ("max_steps_1e9", "train", train(stopping__max_steps=10**9), ["stopping.max_steps"]),
    (
        "ppo_epochs_and_refills_1e6",
        "train",
        train(algorithm__ppo_epochs=10**6, data__max_refills=10**6),
        ["algorithm.ppo_epochs", "data.max_refills"],
    ),
    (
        "more_minibatches_than_completions",
        "train",
        train(algorithm__minibatches=10**6),
        ["algorithm.minibatches"],
    ),
    (
        "python_reward_whose_jails_outlast_the_ceiling",
        "train",
        {**train(), "rewards": [{"name": "python", "kwargs": {"source": PY, "timeout": 10}}]},
        ["rewards.0.kwargs.timeout"],
    ),
    ("sft_batch_1e9", "sft", sft(batch_size=10**9), ["batch_size"]),
    (
        "sft_steps_and_tokens_1e9",
        "sft",
        sft(max_steps=10**9, max_new_tokens=10**9),
        ["max_steps", "max_new_tokens"],
    ),
    ("eval_samples_1e9", "eval", evaluation(num_samples=10**9), ["num_samples"]),
    ("eval_batch_1e9", "eval", evaluation(batch_size=10**9), ["batch_size"]),
    (
        "backtracking_regex_re2_refuses",
        "train",
        {**train(), "rewards": fmt(r"(a+)+\1$")},
        ["rewards.0.kwargs.pattern"],
    ),
    (
        "lookaround_regex_inside_composite",
        "eval",
        evaluation(rewards=[{"name": "composite", "kwargs": {"components": fmt(r"(?=a)(a+)+$")}}]),
        ["rewards.0.kwargs.components.0.kwargs.pattern"],
    ),
    (
        "code_task_jail_of_64_gib",
        "eval",
        evaluation(task={"name": "mbpp", "limits": {"memory_mb": 65536}}),
        ["task.limits.memory_mb"],
    ),
    (
        "verify_job_jail_of_64_gib_ten_minutes_a_gib_of_output",
        "verify",
        verify(memory_mb=65536, wall_seconds=600, output_bytes=1 << 30, max_pids=4096),
        [
            "requests.0.limits.memory_mb",
            "requests.0.limits.wall_seconds",
            "requests.0.limits.output_bytes",
            "requests.0.limits.max_pids",
        ],
    ),
]


def _user_id(db, api) -> int:
    with db.read() as s:
        return accounts.user_for_token(s, api.headers["Authorization"].split()[1]).id


def _rows(db, job_id: int) -> int:
    with db.read() as s:
        return sum(
            s.scalar(select(func.count()).where(table.job_id == job_id))
            for table in (MetricRow, ExperienceRow, VerdictRow)
        )


@pytest.mark.parametrize(
    ("kind", "spec", "fields"),
    [row[1:] for row in SPEC_ATTACKS],
    ids=[row[0] for row in SPEC_ATTACKS],
)
def test_a_spec_asks_no_more_than_the_operators_ceilings(
    api, app, db, tiny_model, kind, spec, fields
):
    response = api.post("/jobs", json={"kind": kind, "spec": spec})
    assert (response.status_code, response.json["error"]) == (400, "invalid spec"), response.json
    refused = sorted(f"spec.{field}" for field in fields)
    assert sorted(e["field"] for e in response.json["detail"]) == refused, response.json
    with db.read() as s:
        assert s.scalar(select(func.count()).where(Job.user_id == _user_id(db, api))) == 0

    # The same spec in the database, as if stored before the ceilings: the worker refuses it.
    with db.begin() as s:
        job, _ = jobs.submit(
            s, user_id=_user_id(db, api), kind=kind, spec=spec, total=1, max_attempts=1
        )
    started = time.monotonic()
    runners.run_job(app.extensions["rlvr"], job.id, "hostile-test")
    with db.read() as s:
        stored = s.get(Job, job.id)
    assert stored.status == "failed" and stored.error.startswith("Refused: "), stored.error
    named = [part.split(":")[0] for part in stored.error.removeprefix("Refused: ").split("; ")]
    assert sorted(named) == refused, stored.error
    assert _rows(db, job.id) == 0 and time.monotonic() - started < 10  # refused, not run


def test_a_catastrophic_regex_that_re2_accepts_returns_at_once(api, app, tiny_model):
    """`(a+)+$` held a worker's GIL for hours under `re`; under RE2 a long miss is microseconds,
    and a job with such a pattern runs to its end."""
    started = time.monotonic()
    assert format_reward(["a" * 200_000 + "b"], kind="regex", pattern=r"(a+)+$") == [0.0]
    assert time.monotonic() - started < 1
    spec = evaluation(use_references=True, rewards=fmt(r"(\d+)+$"))
    response = api.post("/jobs", json={"kind": "eval", "spec": spec})
    assert response.status_code == 201, response.json
    runners.run_job(app.extensions["rlvr"], response.json["id"], "hostile-test")
    job = api.get(f"/jobs/{response.json['id']}").json
    assert job["status"] == "succeeded", job


def test_a_queue_flood_is_a_429_past_the_users_quota(api, as_user, db, redis_server):
    """One user queued 4,830 jobs in 15 minutes; now the queue holds `RLVR_USER_MAX_QUEUED` of
    theirs, and the rest are 429s with Retry-After that queue nothing."""
    verify_job = {"kind": "verify", "spec": {"requests": [LOOP_FOREVER]}}
    for _ in range(MAX_QUEUED):
        assert api.post("/jobs", json=verify_job).status_code == 201
    refused = api.post("/jobs", json=verify_job, headers={"Idempotency-Key": "k1"})
    assert (refused.status_code, refused.json["error"]) == (429, "too many queued jobs")
    assert refused.headers["Retry-After"] == "60"
    assert "RLVR_USER_MAX_QUEUED" in refused.json["detail"]
    with db.read() as s:
        assert jobs.queued_count(s, _user_id(db, api)) == MAX_QUEUED
    assert redis.Redis(port=redis_server.port).llen("train") == 0  # verify jobs: no train message
    # Another user is not held back by the first one's flood.
    assert as_user().post("/jobs", json=verify_job).status_code == 201


def call(request: urllib.request.Request) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


def test_a_verify_flood_holds_no_web_thread(api, as_user, procfile, redis_server):
    """Eight calls of a program that loops forever against a web process of two threads: each
    answers at once (202 with a ticket, or 429 past the user's cap), `/health` answers
    meanwhile, and only the accepted calls reach the verify queue (no verify worker runs, so
    nothing is judged). Before, each call held a thread until its program's time ran out."""
    bind = f"127.0.0.1:{free_port()}"
    procfile("web", RLVR_BIND=bind, WEB_CONCURRENCY="1", RLVR_WEB_THREADS="2")
    users = [api, as_user(), as_user()]
    callers = [users[0]] * 4 + [users[1]] * 2 + [users[2]] * 2
    body = json.dumps({"requests": [LOOP_FOREVER]}).encode()

    def post(user) -> tuple[int, dict]:
        headers = {**user.headers, "Content-Type": "application/json"}
        return call(urllib.request.Request(f"http://{bind}/api/v1/verify", body, headers))

    call(urllib.request.Request(f"http://{bind}/api/v1/health"))  # the process's first connections
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(callers)) as pool:
        pending = [pool.submit(post, user) for user in callers]
        health_started = time.monotonic()
        health = call(urllib.request.Request(f"http://{bind}/api/v1/health"))
        health_seconds = time.monotonic() - health_started
        answers = [future.result() for future in pending]
    # It answers (503: no worker or beat runs here) within seconds, while the calls come in;
    # before, it waited for a thread, which the calls held for RLVR_SYNC_VERIFY_TIMEOUT (60 s).
    assert health[0] in (200, 503) and health_seconds < 5, (health, health_seconds)
    assert time.monotonic() - started < 15
    statuses = [status for status, _ in answers]
    assert sorted(statuses[:4]) == [202] * MAX_VERIFY_CALLS + [429] * 2, answers
    assert statuses[4:] == [202] * 4, answers
    assert all(headers["Retry-After"] == "2" for status, headers in answers if status == 429)
    assert redis.Redis(port=redis_server.port).llen("verify") == 6  # the 429s sent nothing

    # A ticket is its owner's alone; it stays pending while no worker judges it.
    ticket = next(h["Location"] for s, h in answers[:4] if s == 202).rsplit("/", 1)[1]
    mine = api.get(f"/verify/{ticket}")
    assert mine.json == {"id": ticket, "status": "pending", "verdicts": None}
    assert users[1].get(f"/verify/{ticket}").status_code == 404


def test_a_verify_call_asks_no_more_than_the_sandbox_ceilings(api, redis_server):
    """A jail of 64 GiB through `POST /verify`: a 400 naming the field, and nothing sent."""
    body = {"requests": [{**LOOP_FOREVER, "limits": {"memory_mb": 65536, "tmpfs_mb": 4096}}]}
    response = api.post("/verify", json=body)
    assert (response.status_code, response.json["error"]) == (400, "invalid request")
    assert sorted(e["field"] for e in response.json["detail"]) == [
        "requests.0.limits.memory_mb",
        "requests.0.limits.tmpfs_mb",
    ]
    assert redis.Redis(port=redis_server.port).llen("verify") == 0
