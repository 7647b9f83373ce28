"""Countdown: combine the given numbers with + - * / to reach a target.

Owns the generator, the prompt, the expression parser and the checker: a completion passes
when its first line (after an optional ``=``-free prefix up to ``:``) is an expression that
uses each given number exactly once and equals the target. With ``source: bundled`` the
test split of 3-number problems is data/countdown/countdown_cd3_test.jsonl (a missing file
is an error, never a generated stand-in), other sizes' test split and every train split are
generated. Another ``source`` (``rlvr.tasks.sources``) gives both splits, with rows as in that
file (``input: "30,100,93"``, ``output: "23"``) or as on the hub's Countdown sets (``nums``,
``target``). ``solve`` finds a reference expression for SFT by brute force.
"""

import itertools
import random
from fractions import Fraction
from typing import Any, Literal

from pydantic import Field

from rlvr.tasks.base import Grade, Problem, Task, TaskOptions, check_split, register_task
from rlvr.tasks.sources import Source, load_rows, source_field
from rlvr.text import evaluate_expression


class CountdownOptions(TaskOptions):
    name: Literal["countdown"] = Field(
        "countdown", description="Reach a target from numbers with + - * /."
    )
    numbers: int = Field(3, ge=2, le=4, description="How many numbers each problem gives.")
    max_number: int = Field(100, ge=2, description="Largest number drawn by the generator.")
    max_target: int = Field(100, ge=1, description="Largest target the generator keeps.")
    template: str = Field(
        "Numbers: {numbers}. Target: {target}. Expression:",
        description="Prompt template; `{numbers}` is comma-separated, `{target}` the target.",
    )
    train_size: int = Field(
        5000, ge=1, description="Problems in the train split (generated, or the source's first)."
    )
    test_size: int = Field(
        256, ge=1, description="Test problems (the bundled file has 256 for 3 numbers)."
    )
    source: Source = source_field(
        "the 3-number test set in data/countdown; the rest is generated",
        " Other sources give both splits.",
    )
    seed: int = Field(1234, description="Seed of the generator.")


def solve(numbers: list[int], target: int) -> str | None:
    """An expression using every number once that equals ``target``, or None.

    >>> solve([3, 4, 5], 17)
    '5+(3*4)'
    """

    def search(items: list[tuple[Fraction, str]]) -> str | None:
        if len(items) == 1:
            return items[0][1] if items[0][0] == target else None
        for i, j in itertools.permutations(range(len(items)), 2):
            (a, left), (b, right) = items[i], items[j]
            rest = [item for k, item in enumerate(items) if k not in (i, j)]
            candidates = [
                (a + b, f"{left}+{right}"),
                (a - b, f"{left}-{right}"),
                (a * b, f"{left}*{right}"),
            ]
            if b != 0:
                candidates.append((a / b, f"{left}/{right}"))
            for value, text in candidates:
                found = search(rest + [(value, f"({text})" if len(rest) else text)])
                if found:
                    return found
        return None

    return search([(Fraction(n), str(n)) for n in numbers])


def _numbers_and_target(row: dict[str, Any]) -> tuple[list[int], int]:
    """A row as d1's file has it (``input: "30,100,93"``, ``output: "23"``) or as the hub's
    Countdown sets do (``nums: [30, 100, 93]``, ``target: 23``)."""
    if "nums" in row:
        return [int(n) for n in row["nums"]], int(row["target"])
    return [int(n) for n in row["input"].split(",")], int(row["output"])


@register_task("countdown")
class Countdown(Task):
    options_type = CountdownOptions
    options: CountdownOptions

    def _problem(self, numbers: list[int], target: int) -> Problem:
        listed = ", ".join(map(str, numbers))
        return Problem(
            id=f"{listed}->{target}",
            prompt=self.options.template.format(numbers=listed, target=target),
            answer=str(target),
            difficulty=float(len(numbers)),
            metadata={"numbers": numbers},
        )

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        opts = self.options
        size = opts.train_size if split == "train" else opts.test_size
        if opts.source != "bundled" or (split == "test" and opts.numbers == 3):
            rows = load_rows(opts.source, split, bundled="countdown/countdown_cd3_test.jsonl")[
                :size
            ]
            return [self._problem(*_numbers_and_target(row)) for row in rows]
        rng = random.Random(opts.seed + (split == "train"))
        problems: list[Problem] = []
        while len(problems) < size:
            numbers = [rng.randint(1, opts.max_number) for _ in range(opts.numbers)]
            value = self._random_value(rng, numbers)
            if value is not None and value.denominator == 1 and 1 <= value <= opts.max_target:
                problems.append(self._problem(numbers, int(value)))
        return problems

    @staticmethod
    def _random_value(rng: random.Random, numbers: list[int]) -> Fraction | None:
        expression = str(numbers[0])
        for number in numbers[1:]:
            expression = f"({expression}){rng.choice('+-*/')}{number}"
        found = evaluate_expression(expression)
        return found[0] if found else None

    def check(self, problem: Problem, completion: str) -> Grade:
        line = completion.strip().split("\n", 1)[0].split("=", 1)[0]
        found = evaluate_expression(line)
        if found is None:
            return "fail"
        value, used = found
        same_numbers = sorted(used) == sorted(problem.metadata["numbers"])
        return "pass" if same_numbers and value == int(problem.answer) else "fail"

    def reference(self, problem: Problem) -> str | None:
        found = solve(problem.metadata["numbers"], int(problem.answer))
        return f" {found}" if found else None
