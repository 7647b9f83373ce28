"""The verify interface over the real nsjail sandbox: verdicts, dedup, and None on failure."""

import json
import pickle

import pytest

from rlvr.rewards.base import score
from rlvr.tasks.base import Problem
from rlvr.verifier import CodeGrade, RequestVerifier, local_sandbox_verifier, request_for

TESTS = {"kind": "function", "tests": ["assert f([1, 2]) == [2, 1]", "assert f([]) == []"]}
PROBLEM = Problem(
    id="rev", prompt="", answer="", metadata={"tests": TESTS, "limits": {"test_seconds": 2}}
)


@pytest.fixture(scope="module")
def verify():
    return local_sandbox_verifier(concurrency=2)


def test_grades_carry_what_the_sandbox_found(verify):
    programs = [
        "def f(xs):\n    return xs[::-1]\n",
        "def f(xs):\n    return xs\n",
        "def f(xs):\n    return y\n",
        "def f(xs):\n    while True:\n        pass\n",
        "def f(xs) return xs",
    ]
    grades = verify([PROBLEM] * len(programs), programs)
    assert grades == ["pass", "fail", "fail", "fail", "fail"]
    assert [(g.passed, g.total) for g in grades[:3]] == [(2, 2), (1, 2), (0, 2)]
    assert grades[1].feedback() == "assert f([1, 2]) == [2, 1] failed: got [1, 2]"
    assert grades[2].tests[0].error_type == "NameError"
    assert "timeout" in {grades[3].status, grades[3].tests[0].outcome}
    assert grades[4].tests[0].error_type == "SyntaxError"
    assert score([{"name": "code_tests"}], [""] * 5, {"grade": grades})[0] == [
        1.0,
        -0.125,  # one test of two: -0.5 + 0.5 x 1.5 / 2
        -0.5,
        -0.5,
        -0.5,
    ]


def test_identical_programs_are_judged_once(verify):
    before = verify.stats.distinct
    grades = verify(
        [PROBLEM] * 4, ["def f(xs):\n    return xs[::-1]\n"] * 3 + ["def f(xs):\n    return []\n"]
    )
    assert grades == ["pass", "pass", "pass", "fail"]
    assert verify.stats.distinct - before == 2


@pytest.mark.parametrize(
    "transport",
    [
        pytest.param(
            lambda requests: (_ for _ in ()).throw(ConnectionError("queue down")), id="raises"
        ),
        pytest.param(lambda requests: [], id="too few verdicts"),
    ],
)
def test_a_batch_that_cannot_be_verified_scores_none_never_zero(transport):
    verify = RequestVerifier(transport)
    grades = verify([PROBLEM, PROBLEM], ["def f(xs):\n    return xs\n", "x = 1"])
    assert grades == ["error", "error"] and all(g.status == "sandbox_error" for g in grades)
    assert score([{"name": "code_tests"}], ["", ""], {"grade": grades})[0] == [None, None]
    assert verify.stats.unjudged == 2


def test_requests_are_plain_json_for_a_queue_and_grades_survive_pickling(verify):
    request = request_for(PROBLEM, "def f(xs):\n    return xs[::-1]\n")
    assert json.loads(json.dumps(request)) == request
    grade = verify([PROBLEM], [request["program"]])[0]
    copy = pickle.loads(pickle.dumps(grade))
    assert copy == "pass" and copy.details() == grade.details()
    assert json.dumps({"grade": grade}) == '{"grade": "pass"}'
    assert (
        CodeGrade.from_dict(
            {
                "status": "ok",
                "passed": 1,
                "total": 2,
                "wall_seconds": 0.1,
                "tests": [{"outcome": "pass"}, {"outcome": "wrong", "detail": "got 3"}],
            },
            ["assert a", "assert b"],
        ).feedback()
        == "assert b failed: got 3"
    )
    queued = CodeGrade.from_dict(
        {**grade.details(), "verified_by": "verify@host"}
    )  # as the verify queue sends it
    assert pickle.loads(pickle.dumps(queued)).details()["verified_by"] == "verify@host"


def test_unjudged_programs_are_asked_again(verify):
    calls = []

    def lost_once(requests):  # the first delivery is lost, as when a verify worker dies
        calls.append(len(requests))
        if len(calls) == 1:
            raise ConnectionError("worker lost")
        return verify.run_requests(requests)

    programs = ["def f(xs):\n    return xs[::-1]\n", "def f(xs):\n    return xs\n"]
    assert RequestVerifier(lost_once, retries=1)([PROBLEM] * 2, programs) == ["pass", "fail"]
    assert calls == [2, 2]
    calls.clear()
    assert RequestVerifier(lost_once, retries=0)([PROBLEM], programs[:1]) == ["error"]
