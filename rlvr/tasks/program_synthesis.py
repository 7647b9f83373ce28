"""Programs from examples: given input/output pairs of ``f`` on lists, write ``f``'s return.

    f([3,1,4])==[4,1,3]
    f([5,9,2])==[2,9,5]
    def f(xs):
        return          ->  completion `` xs[::-1]``

Small enough for the tiny model to learn: programs are one or two list operations from a
fixed table (maps such as ``sorted(xs)``, ``xs[1:]``, ``[x+1 for x in xs]``, reducers such as
``max(xs)``, ``len(xs)``). The completion is judged by running it in the sandbox on hidden
inputs that the prompt does not show, so a completion that merely copies the shown outputs
fails. Shown examples are drawn until no other program of the table agrees with them but
differs on the hidden inputs: every problem has a determined answer.

Owns the operation table, the generator (train and test from different seeds, no test
problem in train), the prompt, turning a completion into a program, and the hidden tests.
Held-out problems are new example sets; the programs themselves recur across splits.
"""

import functools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from rlvr.code import defines, extract_code
from rlvr.tasks.base import CodeTask, Problem, TaskOptions, check_split, register_task


@dataclass(frozen=True)
class Operation:
    template: str  # "{}" stands for the input expression
    apply: Callable[[list[int]], Any]
    reduces: bool = False  # list -> int: nothing can follow it


OPERATIONS = [
    Operation("sorted({})", sorted),
    Operation("{}[::-1]", lambda xs: xs[::-1]),
    Operation("{}[1:]", lambda xs: xs[1:]),
    Operation("{}[:-1]", lambda xs: xs[:-1]),
    Operation("[x+1 for x in {}]", lambda xs: [x + 1 for x in xs]),
    Operation("[x*2 for x in {}]", lambda xs: [x * 2 for x in xs]),
    Operation("[x for x in {} if x%2==0]", lambda xs: [x for x in xs if x % 2 == 0]),
    Operation("max({})", max, reduces=True),
    Operation("min({})", min, reduces=True),
    Operation("sum({})", sum, reduces=True),
    Operation("len({})", len, reduces=True),
    Operation("{}[0]", lambda xs: xs[0], reduces=True),
    Operation("{}[-1]", lambda xs: xs[-1], reduces=True),
]


@dataclass(frozen=True)
class Program:
    source: str  # the return expression over `xs`
    steps: tuple[Operation, ...]

    def __call__(self, xs: list[int]) -> Any:
        value: Any = list(xs)
        for step in self.steps:
            value = step.apply(value)
        return value


def programs(max_depth: int) -> list[Program]:
    """Every chain of up to ``max_depth`` operations in which no reducer is followed by another step."""
    chains: list[tuple[Operation, ...]] = [(op,) for op in OPERATIONS]
    frontier = chains
    for _ in range(max_depth - 1):
        frontier = [
            chain + (op,) for chain in frontier if not chain[-1].reduces for op in OPERATIONS
        ]
        chains = chains + frontier
    found = []
    for chain in chains:
        source = "xs"
        for op in chain:
            source = op.template.format(source)
        found.append(Program(source, chain))
    return found


class ProgramSynthesisOptions(TaskOptions):
    name: Literal["program_synthesis"] = Field(
        "program_synthesis", description="Programs from input/output examples."
    )
    max_depth: int = Field(
        2, ge=1, le=3, description="Most list operations chained in one program."
    )
    examples: int = Field(3, ge=1, le=8, description="Input/output pairs shown in the prompt.")
    hidden_tests: int = Field(5, ge=1, le=20, description="Hidden inputs the program is judged on.")
    min_length: int = Field(2, ge=1, description="Shortest input list.")
    max_length: int = Field(4, ge=1, description="Longest input list.")
    max_value: int = Field(9, ge=1, description="List elements are drawn from 0..max_value.")
    train_size: int = Field(4000, ge=1, description="Problems in the train split.")
    test_size: int = Field(200, ge=1, description="Problems in the held-out test split.")
    seed: int = Field(4321, description="Seed of the generator; test uses it, train uses seed+1.")


HEADER = "def f(xs):\n    return"


def render_prompt(shown: list[tuple[list[int], Any]]) -> str:
    """The examples without spaces (the tiny tokenizer spends a token per character), then
    the function header the completion continues.

    >>> print(render_prompt([([1, 2], [2, 1]), ([3], 3)]))
    f([1,2])==[2,1]
    f([3])==3
    def f(xs):
        return
    """
    return "".join(f"f({_compact(xs)})=={_compact(out)}\n" for xs, out in shown) + HEADER


def _compact(value: Any) -> str:
    return repr(value).replace(" ", "")


@functools.lru_cache(maxsize=8)
def _generate(options_json: str, split: str) -> tuple[Problem, ...]:
    opts = ProgramSynthesisOptions.model_validate_json(options_json)
    table = programs(opts.max_depth)
    test_ids: set[str] = set()
    test = _draw_problems(
        opts, table, random.Random(opts.seed), opts.test_size, test_ids, unique=True
    )
    if split == "test":
        return tuple(test)
    return tuple(
        _draw_problems(
            opts, table, random.Random(opts.seed + 1), opts.train_size, test_ids, unique=False
        )
    )


def _draw_problems(
    opts: ProgramSynthesisOptions,
    table: list[Program],
    rng: random.Random,
    size: int,
    exclude: set[str],
    unique: bool,
) -> list[Problem]:
    problems: list[Problem] = []
    for _ in range(size * 50):
        if len(problems) == size:
            break
        drawn = _draw_one(opts, table, rng)
        if drawn is None:
            continue
        program, shown, hidden = drawn
        problem_id = f"{program.source} | {json.dumps([xs for xs, _ in shown])}"
        if problem_id in exclude:
            continue
        if unique:
            exclude.add(problem_id)
        tests = [f"assert f({xs}) == {out!r}" for xs, out in hidden]
        problems.append(
            Problem(
                id=problem_id,
                prompt=render_prompt(shown),
                answer=program.source,
                difficulty=float(len(program.steps)),
                metadata={"tests": {"kind": "function", "tests": tests}},
            )
        )
    return problems


def _run(program: Program, xs: list[int]) -> Any:
    try:
        return program(xs)
    except (ValueError, IndexError):  # max([]) and [][0]: that input does not suit this program
        return _FAILED


_FAILED = object()


def _draw_one(opts: ProgramSynthesisOptions, table: list[Program], rng: random.Random):
    """A program with shown and hidden examples that determine it, or None after a few tries."""
    program = rng.choice(table)

    def draw_input() -> list[int]:
        return [
            rng.randint(0, opts.max_value)
            for _ in range(rng.randint(opts.min_length, opts.max_length))
        ]

    for _ in range(20):
        inputs = [draw_input() for _ in range(opts.examples + opts.hidden_tests)]
        if len({json.dumps(xs) for xs in inputs}) < len(inputs):
            continue
        outputs = [_run(program, xs) for xs in inputs]
        if any(out is _FAILED for out in outputs) or all(
            out == xs for out, xs in zip(outputs, inputs)
        ):
            continue
        shown_in, hidden_in = inputs[: opts.examples], inputs[opts.examples :]
        if not any(_ambiguous(other, program, shown_in, hidden_in) for other in table):
            pairs = list(zip(inputs, outputs))
            return program, pairs[: opts.examples], pairs[opts.examples :]
    return None


def _ambiguous(
    other: Program, program: Program, shown: list[list[int]], hidden: list[list[int]]
) -> bool:
    """``other`` fits the shown examples yet fails a hidden one."""
    if other is program or any(_run(other, xs) != program(xs) for xs in shown):
        return False
    return any(_run(other, xs) != program(xs) for xs in hidden)


@register_task("program_synthesis")
class ProgramSynthesis(CodeTask):
    options_type = ProgramSynthesisOptions
    options: ProgramSynthesisOptions

    def problems(self, split: str) -> list[Problem]:
        check_split(split)
        return list(_generate(self.options.model_dump_json(), split))

    def program(self, problem: Problem, completion: str) -> str:
        """A completion defining ``f`` is taken whole; otherwise its first line is the return expression.

        >>> task = ProgramSynthesis(ProgramSynthesisOptions())
        >>> task.program(None, " sorted(xs)\\nmore text")
        'def f(xs):\\n    return sorted(xs)\\n'
        """
        code = extract_code(completion)
        if defines(code, "f"):
            return code
        expression = completion.strip().split("\n", 1)[0] if completion.strip() else ""
        return f"{HEADER} {expression}\n"

    def reference(self, problem: Problem) -> str:
        return f" {problem.answer}"
