"""The python reward: the submit-time check of its source, and its runs in real nsjail jails
(the session's sandbox, through the same RequestVerifier the service wraps around its queue):
values clamped, hostile sources contained and scored 0 with their reason, batches split into
jails of CHUNK rows, the rlvr CLI's eval and train loops with it."""

from __future__ import annotations

import doctest
import json
import logging

import pytest
from pydantic import ValidationError

from rlvr.evaluate import run_eval
from rlvr.rewards import python as python_reward
from rlvr.rewards.base import score
from rlvr.spec import EvalSpec, TrainSpec
from rlvr.verifier import RequestVerifier, local_sandbox_verifier, verifier_for

GOOD = (
    "def reward(prompt, completion, answer):\n    return 1.0 if completion == answer else -0.25\n"
)


def test_doctests():
    assert doctest.testmod(python_reward).failed == 0


@pytest.mark.parametrize(
    "source, message",
    [
        ("def reward(prompt, completion, answer:\n  pass", "does not parse"),
        ("def score(prompt, completion, answer):\n    return 1", "must define `def reward"),
        ("def reward(completion):\n    return 1", "three positional arguments"),
        ("def reward(a, b, c, d):\n    return 1", "three positional arguments"),
        ("def reward(a, b, c, *, key):\n    return 1", "three positional arguments"),
        ("class C:\n    def reward(a, b, c):\n        return 1", "at top level"),
        ("x = 1\n" * 10_000, "at most 50000"),
    ],
)
def test_a_bad_source_is_refused_naming_the_field(source, message):
    spec = {"rewards": [{"name": "verdict"}, {"name": "python", "kwargs": {"source": source}}]}
    with pytest.raises(ValidationError) as raised:
        TrainSpec.model_validate(spec)
    [error] = raised.value.errors()
    assert error["loc"] == ("rewards", 1, "kwargs", "source") and message in error["msg"]


def test_good_sources_and_settings_pass():
    for source in (
        GOOD,
        "def reward(*args):\n    return 0.5",
        "def reward(p, c, a, extra=1):\n    return 0.5",
    ):
        TrainSpec.model_validate({"rewards": [{"name": "python", "kwargs": {"source": source}}]})
    with pytest.raises(ValidationError, match="min_value must not be above max_value"):
        TrainSpec.model_validate(
            {
                "rewards": [
                    {"name": "python", "kwargs": {"source": GOOD, "min_value": 1, "max_value": 0}}
                ]
            }
        )
    with pytest.raises(ValidationError, match="kwargs.timeout"):
        TrainSpec.model_validate(
            {"rewards": [{"name": "python", "kwargs": {"source": GOOD, "timeout": 60}}]}
        )


@pytest.fixture(scope="module")
def verify(sandbox):
    return local_sandbox_verifier(concurrency=2, sandbox=sandbox)


def rewards_of(source: str, verify, completions, answers=None, **kwargs):
    answers = answers or ["4"] * len(completions)
    specs = [{"name": "python", "kwargs": {"source": source, "timeout": 0.5, **kwargs}}]
    columns = {"prompt": ["2+2="] * len(completions), "answer": answers, "verify": verify}
    return score(specs, completions, columns)[0]


def test_values_are_the_functions_clamped(verify):
    source = (
        "def reward(prompt, completion, answer):\n"
        "    print('the user may print: it goes nowhere' * 100)\n"
        "    return {'4': 1, 'big': 1e9, 'neg': -7}.get(completion, len(prompt) / 10)\n"
    )
    got = rewards_of(source, verify, ["4", "big", "neg", "x"])
    assert got == [1.0, 1.0, -1.0, 0.4]
    assert rewards_of(source, verify, ["big", "neg"], min_value=-10, max_value=100) == [
        100.0,
        -7.0,
    ]


def test_a_step_of_many_completions_is_a_few_jails_and_keeps_its_order(sandbox):
    seen: list[int] = []
    inner = local_sandbox_verifier(concurrency=2, sandbox=sandbox)

    def counting(requests):
        seen.append(len(requests))
        return inner.run_requests(requests)

    completions = [str(n) for n in range(40)]
    source = "def reward(prompt, completion, answer):\n    return int(completion) / 100\n"
    got = rewards_of(source, RequestVerifier(counting), completions)
    assert got == [n / 100 for n in range(40)]
    assert seen == [3]  # 40 rows: jails of 16, 16 and 8, in one call of the transport


HOSTILE = {
    "reads a file": (
        "def reward(p, c, a):\n    return float(len(open('/etc/passwd').read()))",
        "FileNotFoundError",
    ),
    "runs a shell": (
        "import os\ndef reward(p, c, a):\n"
        "    if os.system('cat /etc/shadow > /tmp/x') != 0:\n"
        "        raise RuntimeError('no shell')\n    return 1.0",
        "RuntimeError: no shell",
    ),
    "opens a socket": (
        "import socket\ndef reward(p, c, a):\n"
        "    socket.create_connection(('1.1.1.1', 80), timeout=1)\n    return 1.0",
        "OSError",
    ),
    "loops forever": ("def reward(p, c, a):\n    while True:\n        pass", "timeout"),
    "loops while loading": (
        "while True:\n    pass\ndef reward(p, c, a):\n    return 1.0",
        "timeout",
    ),
    "floods stdout": (
        "import sys\ndef reward(p, c, a):\n    sys.__stdout__.write('x' * 10**8)\n    return 1.0",
        "output_limit",
    ),
    "forks without end": (
        "import os\ndef reward(p, c, a):\n    while True:\n        os.fork()",
        "",
    ),
    "raises": ("def reward(p, c, a):\n    return 1 / 0", "ZeroDivisionError"),
    "exits": ("import os\ndef reward(p, c, a):\n    os._exit(0)", "no result"),
    "returns text": ("def reward(p, c, a):\n    return 'high'", "not a number"),
    "returns nan": ("def reward(p, c, a):\n    return float('nan')", "not a finite number"),
}


@pytest.mark.parametrize("source, reason", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_sources_score_zero_with_their_reason(source, reason, verify, caplog):
    with caplog.at_level(logging.WARNING, logger="rlvr.rewards.python"):
        assert rewards_of(source, verify, ["4", "5", "6"]) == [0.0, 0.0, 0.0]
    [logged] = [r.getMessage() for r in caplog.records if r.name == "rlvr.rewards.python"]
    assert logged.startswith("python reward: 3 of 3 completions not scored") and reason in logged
    # the jails were contained: the same pool judges the next source as before
    assert rewards_of(GOOD, verify, ["4", "5"]) == [1.0, -0.25]


def test_an_unreachable_sandbox_is_none_never_zero():
    def down(requests):
        raise ConnectionError("verify queue unreachable")

    assert rewards_of(GOOD, RequestVerifier(down, retries=0), ["4", "5"]) == [None, None]


def test_without_a_sandbox_the_source_never_runs_here():
    with pytest.raises(ValueError, match="runs in the sandbox"):
        rewards_of("import os\ndef reward(p, c, a):\n    os._exit(3)", None, ["4"])


def test_the_cli_verifier_is_made_for_a_python_reward():
    spec = TrainSpec.model_validate(
        {
            "rewards": [
                {
                    "name": "composite",
                    "kwargs": {"components": [{"name": "python", "kwargs": {"source": GOOD}}]},
                }
            ]
        }
    )
    assert verifier_for(spec.task, spec.verifier) is None  # arithmetic runs no code
    assert isinstance(verifier_for(spec.task, spec.verifier, spec.rewards), RequestVerifier)


def test_an_eval_of_references_scored_by_a_python_reward(tmp_path, verify):
    source = (
        "def reward(prompt, completion, answer):\n"
        "    return 1.0 if completion.strip() == '= ' + answer else 0.0\n"
    )
    spec = EvalSpec.model_validate(
        {
            "task": {"name": "arithmetic", "max_digits": 1, "test_size": 6},
            "use_references": True,
            "rewards": [{"name": "python", "kwargs": {"source": source}}],
        }
    )
    metrics = run_eval(spec, tmp_path, verify=verify)
    assert metrics["num_problems"] == 6 and metrics["mean_reward"] == 1.0
    assert json.loads((tmp_path / "eval.json").read_text())["mean_reward"] == 1.0
