"""Reward functions: examples, adversarial inputs, None handling, weighted sums."""

import doctest
import pickle

import pytest

from rlvr.rewards import rules
from rlvr.rewards.base import REWARDS, SETTINGS, register_reward, score


def test_doctests():
    assert doctest.testmod(rules).failed == 0


def test_every_reward_is_a_picklable_module_level_function():
    for fn in REWARDS.values():
        assert pickle.loads(pickle.dumps(fn)) is fn


@pytest.mark.parametrize(
    "name, completion, kwargs, expected",
    [
        ("numeric_match", "The answer is -3.50", {"answer": ["-3.5"]}, 1.0),
        ("numeric_match", "", {"answer": ["0"]}, 0.0),
        ("numeric_match", "1e999", {"answer": ["1"]}, 0.0),
        ("exact_match", "", {"answer": [""]}, 1.0),
        ("exact_match", "x" * 10_000, {"answer": ["x"], "pattern": r"(y)"}, 0.0),
        ("format", "{not json", {"kind": "json"}, 0.0),
        ("format", "```json\n[1, 2]\n```", {"kind": "json"}, 1.0),
        ("format", "\\boxed{", {"kind": "boxed"}, 0.0),
        ("format", "so \\boxed{4}", {"kind": "boxed"}, 1.0),
        (
            "format",
            '{"a": 1}',
            {"kind": "json_schema", "schema": {"type": "object", "required": ["b"]}},
            0.0,
        ),
        ("keyword_contains", "", {"keywords": ["a"]}, 0.0),
        (
            "classification",
            "POSITIVE",
            {"answer": ["positive"], "labels": ["positive", "negative"]},
            1.0,
        ),
        ("regression", "nan", {"answer": ["3"], "scale": 1.0}, -1.0),
        ("f1", "", {"answer": ["a b"]}, 0.0),
    ],
)
def test_adversarial_inputs(name, completion, kwargs, expected):
    assert REWARDS[name]([completion], **kwargs) == [expected]


def test_format_without_its_pattern_is_an_error_not_a_zero():
    with pytest.raises(ValueError, match="needs a pattern"):
        REWARDS["format"](["x"], kind="regex")


def test_score_weights_components_and_keeps_none():
    specs = [
        {"name": "verdict", "weight": 1.0},
        {"name": "length_penalty", "weight": 0.5, "kwargs": {"target_chars": 2}},
    ]
    totals, components = score(specs, ["ok", "long!", "ok"], {"grade": ["pass", "fail", "error"]})
    assert components == {"verdict": [1.0, 0.0, None], "length_penalty": [0.0, -1.0, 0.0]}
    assert totals == [1.0, -0.5, None]


def test_score_passes_context_such_as_an_injected_verify_to_rewards():
    seen = []

    def verify(problems, completions):
        seen.append(list(completions))
        return ["pass"] * len(completions)

    register_reward("_test_uses_verify")(
        lambda completions, verify, **_: [
            1.0 if v == "pass" else 0.0 for v in verify([], completions)
        ]
    )
    try:
        totals, _ = score([{"name": "_test_uses_verify"}], ["a", "b"], {"verify": verify})
    finally:
        del REWARDS["_test_uses_verify"], SETTINGS["_test_uses_verify"]
    assert (totals, seen) == ([1.0, 1.0], [["a", "b"]])


def test_score_rejects_a_reward_that_returns_the_wrong_count():
    register_reward("_test_short")(lambda completions, **_: [1.0])
    try:
        with pytest.raises(ValueError, match="returned 1 values for 2"):
            score([{"name": "_test_short"}], ["a", "b"], {})
    finally:
        del REWARDS["_test_short"], SETTINGS["_test_short"]


def test_settings_are_each_rewards_signature_and_score_checks_them_too():
    """The spec's check at submit and the worker's call use the same model."""
    assert SETTINGS["code_tests"].model_validate({"partial_scale": "0.25"}).model_dump() == {
        "all_pass": 1.0,
        "partial_scale": 0.25,
        "none_pass": -0.5,
    }
    assert set(SETTINGS["format"].model_validate({"schema": {}}).model_dump(by_alias=True)) == {
        "kind",
        "pattern",
        "schema",
    }
    with pytest.raises(ValueError, match="partial_scale"):
        score(
            [{"name": "code_tests", "kwargs": {"partial_scale": "x"}}], ["a"], {"grade": ["pass"]}
        )
    with pytest.raises(ValueError, match="answer"):  # a column is not a setting
        score([{"name": "exact_match", "kwargs": {"answer": "x"}}], ["a"], {"answer": ["a"]})
    totals, _ = score(
        [{"name": "format", "kwargs": {"kind": "json_schema", "schema": {"type": "integer"}}}],
        ["3", "x"],
        {},
    )
    assert totals == [1.0, 0.0]
