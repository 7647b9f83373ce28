"""From completions to grades and rewards: defaults, columns, the injected verify."""

from rlvr.scoring import reward_specs, score_batch
from rlvr.spec import RewardSpec
from rlvr.tasks.arithmetic import ArithmeticOptions
from rlvr.tasks.base import Problem, build_task
from rlvr.tasks.countdown import CountdownOptions


def test_the_task_defaults_apply_when_the_spec_lists_no_rewards():
    task = build_task(ArithmeticOptions())
    assert reward_specs(task, []) == task.default_rewards
    configured = reward_specs(task, [RewardSpec(name="f1", weight=2.0)])
    assert configured == [{"name": "f1", "weight": 2.0, "kwargs": {}}]


def test_grades_then_weighted_rewards_with_components():
    task = build_task(ArithmeticOptions())
    problems = [Problem(id="1+2", prompt="1+2", answer="3")] * 3
    result = score_batch(task, problems, [" = 3", " = 4", "3"], reward_specs(task, []))
    assert result.grades == ["pass", "fail", "fail"]
    assert result.components == {"verdict": [1.0, 0.0, 0.0], "arithmetic_format": [1.0, 1.0, 0.0]}
    assert result.rewards == [1.1, 0.1, 0.0]


def test_rewards_see_task_metadata_and_the_injected_verify():
    task = build_task(CountdownOptions())
    problem = Problem(id="x", prompt="", answer="7", metadata={"numbers": [3, 4]})
    calls = []

    def verify(problems, completions):
        calls.append(len(completions))
        return ["pass"] * len(completions)

    from rlvr.rewards.base import REWARDS, SETTINGS, register_reward

    register_reward("_sees_columns")(
        lambda completions, numbers, verify, **_: [
            float(sum(n)) if v == "pass" else 0.0
            for n, v in zip(numbers, verify([problem], completions))
        ]
    )
    try:
        result = score_batch(task, [problem], [" 3+4"], [{"name": "_sees_columns"}], verify=verify)
    finally:
        del REWARDS["_sees_columns"], SETTINGS["_sees_columns"]
    assert (result.rewards, result.grades, calls) == ([7.0], ["pass"], [1])
