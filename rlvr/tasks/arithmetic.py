"""Synthetic arithmetic: ``12+34`` -> `` = 46``.

Owns the generator (digits, operators, operand count), the prompt template, the parser of
``= answer`` and the checker. Train and test problems come from different seeds and the
train split never contains a test expression. Rewards: ``arithmetic_format`` (the
completion is exactly ``= <integer>``) and ``verdict`` (the integer is right), combined
with weights in the spec.
"""

import random
import re
from typing import Literal

from pydantic import Field

from rlvr.rewards.base import register_reward
from rlvr.tasks.base import Grade, Problem, Task, TaskOptions, check_split, register_task
from rlvr.text import evaluate_expression

_ANSWER = re.compile(r"=\s*(-?\d+)")
_FORMAT = re.compile(r"^\s*=\s*-?\d+\s*$")


class ArithmeticOptions(TaskOptions):
    name: Literal["arithmetic"] = Field("arithmetic", description="Synthetic integer arithmetic.")
    min_digits: int = Field(1, ge=1, le=9, description="Fewest digits in an operand.")
    max_digits: int = Field(2, ge=1, le=9, description="Most digits in an operand.")
    operators: list[Literal["+", "-", "*"]] = Field(
        ["+"], min_length=1, description="Operators to draw from."
    )
    operands: int = Field(2, ge=2, le=4, description="Numbers per expression.")
    template: str = Field(
        "{expression}", description="Prompt template; `{expression}` is e.g. `12+34`."
    )
    train_size: int = Field(20000, ge=1, description="Problems in the train split.")
    test_size: int = Field(200, ge=1, description="Problems in the held-out test split.")
    seed: int = Field(1234, description="Seed of the generator; test uses it, train uses seed+1.")


def parse_answer(completion: str) -> int | None:
    """The integer after the first ``=`` on the first line.

    >>> parse_answer(" = 46\\nmore"), parse_answer("46")
    (46, None)
    """
    found = _ANSWER.search(completion.split("\n", 1)[0])
    return int(found.group(1)) if found else None


@register_reward("arithmetic_format")
def arithmetic_format(completions: list[str], **_columns) -> list[float | None]:
    """1.0 when the completion is exactly ``= <integer>``.

    >>> arithmetic_format([" = 46", "46", "= 4 6"])
    [1.0, 0.0, 0.0]
    """
    return [1.0 if _FORMAT.match(completion) else 0.0 for completion in completions]


@register_task("arithmetic")
class Arithmetic(Task):
    options_type = ArithmeticOptions
    default_rewards = [
        {"name": "verdict", "weight": 1.0},
        {"name": "arithmetic_format", "weight": 0.1},
    ]
    options: ArithmeticOptions

    def _draw(self, rng: random.Random) -> tuple[str, int, int]:
        opts = self.options
        numbers = [
            rng.randrange(0 if digits == 1 else 10 ** (digits - 1), 10**digits)
            for digits in (
                rng.randint(opts.min_digits, opts.max_digits) for _ in range(opts.operands)
            )
        ]
        expression = str(numbers[0])
        for number in numbers[1:]:
            expression += rng.choice(opts.operators) + str(number)
        value, _ = evaluate_expression(expression)
        return expression, int(value), sum(len(str(n)) for n in numbers)

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        opts = self.options
        test_ids: set[str] = set()
        test = self._generate(random.Random(opts.seed), opts.test_size, test_ids, unique=True)
        if split == "test":
            return test
        return self._generate(random.Random(opts.seed + 1), opts.train_size, test_ids, unique=False)

    def _generate(
        self, rng: random.Random, size: int, exclude: set[str], unique: bool
    ) -> list[Problem]:
        """Up to ``size`` problems not in ``exclude``; with ``unique``, each one joins it."""
        problems: list[Problem] = []
        for _ in range(size * 100):
            if len(problems) == size:
                break
            expression, value, difficulty = self._draw(rng)
            if expression in exclude:
                continue
            if unique:
                exclude.add(expression)
            prompt = self.options.template.format(expression=expression)
            problems.append(
                Problem(id=expression, prompt=prompt, answer=str(value), difficulty=difficulty)
            )
        return problems

    def check(self, problem: Problem, completion: str) -> Grade:
        return "pass" if parse_answer(completion) == int(problem.answer) else "fail"

    def reference(self, problem: Problem) -> str:
        return f" = {problem.answer}"
