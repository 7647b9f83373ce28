"""Error patterns over experiences whose grades came from the real sandbox."""

import json

import pytest

from rlvr.analysis import convergence_step, error_patterns, reward_distribution
from rlvr.rewards.code import code_tests
from rlvr.tasks.base import Problem
from rlvr.verifier import CodeGrade, local_sandbox_verifier

TESTS = ["assert f(1) == 2", "assert f(0) == 1", "assert f(-1) == 0"]
PROBLEM = Problem(
    id="inc",
    prompt="",
    answer="",
    metadata={
        "tests": {"kind": "function", "tests": TESTS},
        "limits": {"test_seconds": 1, "wall_seconds": 5},
    },
)
PROGRAMS = {
    1: [
        "def f(x):\n    return x + 1\n",
        "def f(x):\n    return 1 / x\n",
        "def f(x):\n    return y\n",
    ],
    2: [
        "def f(x):\n    return x + 1\n",
        "def f(x):\n    while True:\n        pass\n",
        "def f(x):\n    return 2\n",
    ],
}


@pytest.fixture(scope="module")
def experiences():
    verify = local_sandbox_verifier(concurrency=2)
    records = []
    for step, programs in PROGRAMS.items():
        grades = verify([PROBLEM] * len(programs), programs)
        rewards = code_tests(programs, grade=grades)
        for grade, reward in zip(grades, rewards):
            records.append(
                {
                    "step": step,
                    "verdict": str(grade),
                    "reward": reward,
                    "extra": {"code": grade.details()},
                }
            )
    records.append(
        {
            "step": 2,
            "verdict": "error",
            "reward": None,
            "extra": {"code": CodeGrade.unjudged("nsjail could not start").details()},
        }
    )
    return json.loads(json.dumps(records))  # as read back from experiences.jsonl


def test_exceptions_timeouts_and_failing_tests(experiences):
    found = error_patterns(experiences)
    assert found["samples"] == 7 and found["programs"] == 7
    assert found["verdicts"] == {"pass": 2, "fail": 4, "error": 1}
    assert found["unjudged"] == 1 and found["timeouts"] == 1
    assert found["exception_types"] == {"ZeroDivisionError": 1, "NameError": 1}
    worst = found["failing_tests"][0]
    assert worst["test"] == "assert f(0) == 1" and worst["failed"] == 4 and worst["runs"] == 6


def test_reward_distribution_per_step(experiences):
    by_step = error_patterns(experiences)["reward_by_step"]
    assert by_step[1]["count"] == 3 and by_step[1]["none"] == 0
    assert by_step[1]["max"] == 1.0 and by_step[1]["min"] == -0.5
    # A -0.5 and f = 2, which passes one test of three: -0.5 + 0.5 x 1.5 / 3 = -0.25.
    assert by_step[2]["none"] == 1 and by_step[2]["histogram"]["[-0.5,0)"] == 2


def test_records_of_rule_tasks_count_only_in_rewards():
    found = error_patterns(
        [
            {"step": 1, "verdict": "pass", "reward": 1.0},
            {"step": 1, "verdict": "fail", "reward": 0.0},
        ]
    )
    assert found["programs"] == 0 and found["reward_by_step"][1]["mean"] == 0.5
    assert reward_distribution([])["mean"] is None


RISE = [
    0.0,
    0.2,
    0.4,
    0.6,
    0.8,
    0.8,
    0.8,
    0.8,
]  # trailing means of 2: 0, .1, .3, .5, .7, .8, .8, .8


@pytest.mark.parametrize(
    "points, window, tolerance, step",
    [
        (list(enumerate(RISE, 1)), 2, 0.05, 6),  # .7 is .1 off the final .8: settled from step 6
        (list(enumerate(RISE, 1)), 2, 0.15, 5),  # .7 is close enough now; .5 is not
        ([(1, 0.5), (2, 0.5), (3, 0.5)], 2, 0.0, 1),  # flat from the start
        (
            [(1, 0.0), (2, 0.0), (3, 0.0), (4, 0.0), (5, 1.0), (6, 1.0)],
            2,
            0.1,
            None,
        ),  # means .5, 1: only the last
        ([(10, 1.0), (20, 0.0), (30, 0.0), (40, 0.0)], 1, 0.0, 20),  # steps need not be consecutive
        (
            [(1, 0.9), (2, 0.1), (3, 0.9), (4, 0.1)],
            2,
            0.05,
            2,
        ),  # oscillation: its trailing mean is steady
        ([(1, 0.2)], 2, 0.05, None),  # shorter than the window
        ([], 2, 0.05, None),
    ],
)
def test_convergence_step(points, window, tolerance, step):
    assert convergence_step(points, window=window, tolerance=tolerance) == step
