"""The verify interface over the real nsjail sandbox: verdicts, dedup, and None on failure."""

import json
import pickle

import pytest

from rlvr.rewards.base import score
from rlvr.tasks.base import Problem
from rlvr.verifier import CodeVerdict, RequestVerifier, local_sandbox_verifier, request_for

TESTS = {"kind": "function", "tests": ["assert f([1, 2]) == [2, 1]", "assert f([]) == []"]}
PROBLEM = Problem(id="rev", prompt="", answer="", metadata={"tests": TESTS, "limits": {"test_seconds": 2}})


@pytest.fixture(scope="module")
def verify():
    return local_sandbox_verifier(concurrency=2)


def test_verdicts_carry_what_the_sandbox_found(verify):
    programs = [
        "def f(xs):\n    return xs[::-1]\n",
        "def f(xs):\n    return xs\n",
        "def f(xs):\n    return y\n",
        "def f(xs):\n    while True:\n        pass\n",
        "def f(xs) return xs",
    ]
    verdicts = verify([PROBLEM] * len(programs), programs)
    assert verdicts == ["pass", "fail", "fail", "fail", "fail"]
    assert [(v.passed, v.total) for v in verdicts[:3]] == [(2, 2), (1, 2), (0, 2)]
    assert verdicts[1].feedback() == "assert f([1, 2]) == [2, 1] failed: got [1, 2]"
    assert verdicts[2].tests[0].error_type == "NameError"
    assert "timeout" in {verdicts[3].status, verdicts[3].tests[0].outcome}
    assert verdicts[4].tests[0].error_type == "SyntaxError"
    assert score([{"name": "code_tests"}], [""] * 5, {"verdict": verdicts})[0] == [1.0, 0.25, -0.5, -0.5, -0.5]


def test_identical_programs_are_judged_once(verify):
    before = verify.stats.distinct
    verdicts = verify([PROBLEM] * 4, ["def f(xs):\n    return xs[::-1]\n"] * 3 + ["def f(xs):\n    return []\n"])
    assert verdicts == ["pass", "pass", "pass", "fail"]
    assert verify.stats.distinct - before == 2


@pytest.mark.parametrize("transport", [
    pytest.param(lambda requests: (_ for _ in ()).throw(ConnectionError("queue down")), id="raises"),
    pytest.param(lambda requests: [], id="too few verdicts"),
])
def test_a_batch_that_cannot_be_verified_scores_none_never_zero(transport):
    verify = RequestVerifier(transport)
    verdicts = verify([PROBLEM, PROBLEM], ["def f(xs):\n    return xs\n", "x = 1"])
    assert verdicts == ["error", "error"] and all(v.status == "sandbox_error" for v in verdicts)
    assert score([{"name": "code_tests"}], ["", ""], {"verdict": verdicts})[0] == [None, None]
    assert verify.stats.unjudged == 2


def test_requests_are_plain_json_for_a_queue_and_verdicts_survive_pickling(verify):
    request = request_for(PROBLEM, "def f(xs):\n    return xs[::-1]\n")
    assert json.loads(json.dumps(request)) == request
    verdict = verify([PROBLEM], [request["program"]])[0]
    copy = pickle.loads(pickle.dumps(verdict))
    assert copy == "pass" and copy.details() == verdict.details()
    assert json.dumps({"verdict": verdict}) == '{"verdict": "pass"}'
    assert CodeVerdict.from_dict({"status": "ok", "passed": 1, "total": 2, "wall_seconds": 0.1, "tests": [
        {"outcome": "pass"}, {"outcome": "wrong", "detail": "got 3"}]}, ["assert a", "assert b"]).feedback() \
        == "assert b failed: got 3"
    queued = CodeVerdict.from_dict({**verdict.details(), "judged_by": "verify@host"})  # as the verify queue sends it
    assert pickle.loads(pickle.dumps(queued)).details()["judged_by"] == "verify@host"


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
