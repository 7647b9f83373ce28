"""Jobs with the `python` reward on real train and verify workers: a user's reward function
runs in nsjail on the verify pool, its values show in the step metrics and each experience,
and hostile sources score 0 with their reason logged while the workers carry on.

Postgres only: the train job loads torch in a fresh process. The reward's own table of
hostile sources, on the in-process sandbox, is tests/rlvr/test_rewards_python.py.
"""

from __future__ import annotations

import pytest
from support import GROUP, PROMPTS, TINY, train_spec, wait_for

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

MEASURED = (
    "def reward(prompt, completion, answer):\n    return (len(prompt) + len(completion)) / 1000\n"
)
HOSTILE = [
    "def reward(p, c, a):\n    return float(len(open('/etc/passwd').read()))",
    "def reward(p, c, a):\n    while True:\n        pass",
    "import sys\ndef reward(p, c, a):\n    sys.__stdout__.write('x' * 10**8)\n    return 1.0",
    "import os\ndef reward(p, c, a):\n    while True:\n        os.fork()",
]


def submit(api, kind: str, spec: dict) -> int:
    response = api.post("/jobs", json={"kind": kind, "spec": spec})
    assert response.status_code == 201, response.json
    return response.json["id"]


def test_a_python_reward_trains_and_hostile_ones_score_zero(api, procfile, tiny_model):
    train = procfile("train")
    verify = procfile("verify")
    spec = train_spec(TINY, steps=2)
    spec["rewards"] = [
        {"name": "python", "kwargs": {"source": MEASURED}},
        *(
            {"name": "python", "weight": 0.5, "kwargs": {"source": s, "timeout": 0.2}}
            for s in HOSTILE
        ),
    ]
    job_id = submit(api, "train", spec)
    job = wait_for(api, job_id, "succeeded", "failed", timeout=300)
    assert job["status"] == "succeeded", job["error"]

    rows = api.get(f"/jobs/{job_id}/experiences?limit=500").json["experiences"]
    assert len(rows) == 2 * PROMPTS * GROUP
    for row in rows:  # the function saw this experience's prompt and completion
        measured = (len(row["prompt"]) + len(row["completion"])) / 1000
        assert row["reward_components"]["python"] == pytest.approx(measured)
        assert [row["reward_components"][f"python_{i}"] for i in range(1, 5)] == [0.0] * 4
        assert row["reward"] == pytest.approx(measured)
    names = ",".join(
        f"rewards/{n}/mean" for n in ("python", "python_1", "python_2", "python_3", "python_4")
    )
    series = api.get(f"/jobs/{job_id}/metrics?names={names}").json["series"]
    for step, value in series["rewards/python/mean"]:
        of_step = [
            (len(r["prompt"]) + len(r["completion"])) / 1000 for r in rows if r["step"] == step
        ]
        assert value == pytest.approx(sum(of_step) / len(of_step))
    assert all(value == 0.0 for n in range(1, 5) for _, value in series[f"rewards/python_{n}/mean"])
    log = train.output()
    for reason in (
        "FileNotFoundError",
        "timeout: a call ran past 0.2 s",
        "no result: output_limit",
    ):
        assert f"completions not scored by the function (first: {reason}" in log, reason

    # Both workers are still there: an eval job's references, scored on the same verify pool.
    references = {
        "task": {"name": "arithmetic", "max_digits": 1, "test_size": 5},
        "use_references": True,
        "rewards": [
            {
                "name": "python",
                "kwargs": {
                    "source": "def reward(p, c, a):\n    return 0.5 if c.strip() == '= ' + a else -1"
                },
            }
        ],
    }
    eval_id = submit(api, "eval", references)
    done = wait_for(api, eval_id, "succeeded", "failed", timeout=120)
    assert done["status"] == "succeeded", done["error"]
    metrics = api.get(f"/jobs/{eval_id}/metrics?names=eval/mean_reward").json["series"]
    assert metrics["eval/mean_reward"] == [[0, 0.5]]
    assert verify.popen.poll() is None and train.popen.poll() is None
