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

With ``operations: composed`` the table grows to 31 primitives (parametrised maps, filters,
strided slices, a descending sort): about 800 distinct programs at depth 2, too many to
memorise, so a model must read the examples. ``verifier_only: 0.5`` then sets half of the
compositions (drawn by the seed; every primitive alone stays seen) apart from supervision:
their problems carry no reference, so SFT never sees them, and only a verifier can teach
them. Every problem says which part its
program is in (``metadata["part"]``: ``seen`` or ``verifier_only``), so held-out results can
be reported per part, and ``train_part`` restricts the train split to one part (RL on the
problems SFT could not learn from).

Owns the operation tables, the generator (train and test from different seeds, no test
problem in train), the prompt, turning a completion into a program, and the hidden tests.
Held-out problems are new example sets; the programs themselves recur across splits.
"""

import functools
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, model_validator

from rlvr.code import defines, extract_code
from rlvr.tasks.base import CodeTask, Problem, TaskOptions, check_split, register_task


@dataclass(frozen=True)
class Operation:
    template: str  # "{}" stands for the input expression
    apply: Callable[[list[int]], Any]
    reduces: bool = False  # list -> int: nothing can follow it


BASIC = [
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
OPERATIONS = BASIC  # the table `max_depth` chains by default


def _map(template: str, fn: Callable[[int], int]) -> Operation:
    return Operation(f"[{template} for x in {{}}]", lambda xs: [fn(x) for x in xs])


def _filter(condition: str, keep: Callable[[int], bool]) -> Operation:
    return Operation(f"[x for x in {{}} if {condition}]", lambda xs: [x for x in xs if keep(x)])


COMPOSED = BASIC + [
    _map("x+2", lambda x: x + 2),
    _map("x+3", lambda x: x + 3),
    _map("x-1", lambda x: x - 1),
    _map("x*3", lambda x: x * 3),
    _map("x//2", lambda x: x // 2),
    _map("x%3", lambda x: x % 3),
    _map("10-x", lambda x: 10 - x),
    _filter("x%2==1", lambda x: x % 2 == 1),
    _filter("x>2", lambda x: x > 2),
    _filter("x>4", lambda x: x > 4),
    _filter("x<5", lambda x: x < 5),
    _filter("x!=0", lambda x: x != 0),
    Operation("{}[::2]", lambda xs: xs[::2]),
    Operation("{}[1::2]", lambda xs: xs[1::2]),
    Operation("{}[:2]", lambda xs: xs[:2]),
    Operation("{}[-2:]", lambda xs: xs[-2:]),
    Operation("sorted({},reverse=True)", lambda xs: sorted(xs, reverse=True)),
    Operation("sum({})%10", lambda xs: sum(xs) % 10, reduces=True),
]
TABLES = {"basic": BASIC, "composed": COMPOSED}


@dataclass(frozen=True)
class Program:
    source: str  # the return expression over `xs`
    steps: tuple[Operation, ...]
    run: Callable[[list[int]], Any] = field(compare=False, repr=False)

    def __call__(self, xs: list[int]) -> Any:
        return self.run(xs)


def _compiled(source: str) -> Callable[[list[int]], Any]:
    """The expression as one function that answers ``FAILED`` where the input does not suit
    it (``max([])``, ``[][0]``). Generating problems runs every program of the table on each
    drawn input (millions of calls for the composed table), and one compiled function is
    several times faster than chaining the steps. ``source`` comes from the tables above,
    never from a user."""
    namespace: dict[str, Any] = {"FAILED": FAILED}
    exec(
        f"def run(xs):\n    try:\n        return {source}\n"
        "    except (ValueError, IndexError):\n        return FAILED\n",
        namespace,
    )
    return namespace["run"]


FAILED = object()


def programs(max_depth: int, operations: str = "basic") -> list[Program]:
    """Every chain of up to ``max_depth`` operations of a table in which no reducer is followed
    by another step."""
    table = TABLES[operations]
    chains: list[tuple[Operation, ...]] = [(op,) for op in table]
    frontier = chains
    for _ in range(max_depth - 1):
        frontier = [chain + (op,) for chain in frontier if not chain[-1].reduces for op in table]
        chains = chains + frontier
    found = []
    for chain in chains:
        source = "xs"
        for op in chain:
            source = op.template.format(source)
        found.append(Program(source, chain, _compiled(source)))
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
    operations: Literal["basic", "composed"] = Field(
        "basic",
        description="The primitive table: `basic` (13 operations, 91 programs at depth 2) or "
        "`composed` (31 operations, about 800 programs at depth 2).",
    )
    verifier_only: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of the programs whose problems have no reference program: SFT never "
        "sees them and only the verifier can teach them (`metadata.part` says which part).",
    )
    train_part: Literal["all", "seen", "verifier_only"] = Field(
        "all", description="Train on the problems of one part only (the test split keeps both)."
    )

    @model_validator(mode="after")
    def _part_exists(self) -> "ProgramSynthesisOptions":
        """A spec that trains on a part with no program in it is refused at submit, naming
        ``train_part``, rather than failing on the worker."""
        empty = {"verifier_only": self.verifier_only == 0.0, "seen": self.verifier_only == 1.0}
        if empty.get(self.train_part):
            raise ValueError(
                f"train_part: no program is in the {self.train_part!r} part with "
                f"verifier_only {self.verifier_only:g}"
            )
        return self


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
    table = programs(opts.max_depth, opts.operations)
    unseen = verifier_only_programs(table, opts.verifier_only, opts.seed)
    test_ids: set[str] = set()
    test = _draw_problems(
        opts, table, unseen, random.Random(opts.seed), opts.test_size, test_ids, unique=True
    )
    if split == "test":
        return tuple(test)
    parts = {"all": (SEEN, VERIFIER_ONLY), "seen": (SEEN,), "verifier_only": (VERIFIER_ONLY,)}
    wanted = parts[opts.train_part]
    pool = [p for p in table if (VERIFIER_ONLY if p.source in unseen else SEEN) in wanted]
    if not pool:
        raise ValueError(f"train_part: no program is in the {opts.train_part!r} part")
    return tuple(
        _draw_problems(
            opts,
            pool,
            unseen,
            random.Random(opts.seed + 1),
            opts.train_size,
            test_ids,
            unique=False,
            judges=table,
        )
    )


SEEN, VERIFIER_ONLY = "seen", "verifier_only"


def verifier_only_programs(table: list[Program], share: float, seed: int) -> frozenset[str]:
    """The sources of the programs set apart from supervision: ``share`` of the compositions
    (programs of two or more operations), drawn by ``seed`` (the same for both splits, so a
    held-out problem is in the part its program is in).

    Every primitive alone stays seen, so SFT teaches each operation and the verifier is left
    to teach how they compose. Setting primitives apart leaves nothing to learn from: with
    ``max_depth: 1`` (where the share is drawn among the primitives, there being nothing else)
    the SFT model's pass@8 on the set-apart programs was 0 (`bench/learn_code.py`), so RL never
    sampled a passing program.
    """
    composed = [p for p in table if len(p.steps) > 1] or table
    sources = sorted(p.source for p in composed)
    random.Random(seed).shuffle(sources)
    return frozenset(sources[: round(share * len(sources))])


def _draw_problems(
    opts: ProgramSynthesisOptions,
    table: list[Program],
    unseen: frozenset[str],
    rng: random.Random,
    size: int,
    exclude: set[str],
    unique: bool,
    judges: list[Program] | None = None,
) -> list[Problem]:
    """``size`` problems of programs drawn from ``table``, each determined among ``judges``
    (every program of the task, so a part's problems are as determined as the others')."""
    problems: list[Problem] = []
    for _ in range(size * 50):
        if len(problems) == size:
            break
        drawn = _draw_one(opts, table, judges or table, rng)
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
                metadata={
                    "tests": {"kind": "function", "tests": tests},
                    "part": VERIFIER_ONLY if program.source in unseen else SEEN,
                },
            )
        )
    return problems


def _run(program: Program, xs: list[int]) -> Any:
    """``program(xs)``, or ``FAILED`` where the input does not suit the program."""
    return program(xs)


def _draw_one(
    opts: ProgramSynthesisOptions,
    table: list[Program],
    judges: list[Program],
    rng: random.Random,
):
    """A program of ``table`` with shown and hidden examples that determine it among
    ``judges``, or None after a few tries."""
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
        if any(out is FAILED for out in outputs) or all(
            out == xs for out, xs in zip(outputs, inputs)
        ):
            continue
        shown_in, hidden_in = inputs[: opts.examples], inputs[opts.examples :]
        shown_out, hidden_out = outputs[: opts.examples], outputs[opts.examples :]
        first_in, first_out = shown_in[0], shown_out[0]
        if not any(
            other.run(first_in) == first_out
            and other is not program
            and _fits(other, shown_in, shown_out)
            and not _fits(other, hidden_in, hidden_out)
            for other in judges
        ):
            pairs = list(zip(inputs, outputs))
            return program, pairs[: opts.examples], pairs[opts.examples :]
    return None


def _ambiguous(
    other: Program, program: Program, shown: list[list[int]], hidden: list[list[int]]
) -> bool:
    """``other`` fits the shown examples yet fails a hidden one."""
    if other is program:
        return False
    return _fits(other, shown, [program(xs) for xs in shown]) and not _fits(
        other, hidden, [program(xs) for xs in hidden]
    )


def _fits(other: Program, inputs: list[list[int]], outputs: list[Any]) -> bool:
    run = other.run
    return all(run(xs) == out for xs, out in zip(inputs, outputs))


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

    def reference(self, problem: Problem) -> str | None:
        """The program as a completion, except for a program set apart for the verifier."""
        if problem.metadata.get("part") == VERIFIER_ONLY:
            return None
        return f" {problem.answer}"
