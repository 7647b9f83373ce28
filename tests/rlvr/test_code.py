"""Extracting programs from completions, and code tasks refusing to run without a verifier."""

import pytest

from rlvr.code import complete_function, extract_code
from rlvr.tasks.program_synthesis import ProgramSynthesis, ProgramSynthesisOptions

DEF = "def f(x):\n    return x + 1\n"

EXTRACTIONS = [
    ("bare code", DEF, DEF),
    ("fenced python", f"```python\n{DEF}```", DEF),
    ("fenced py3 with prose around", f"Here you go:\n```py3\n{DEF}```\nIt adds one.", DEF),
    ("untagged fence", f"```\n{DEF}```", DEF),
    ("first fence that parses wins", f"```python\ndef f(:\n```\nfixed:\n```python\n{DEF}```", DEF),
    ("prose-only fence skipped by tag", f"```text\nnot code\n```\n```python\n{DEF}```", DEF),
    ("unclosed fence (cut-off generation)", f"```python\n{DEF}", DEF),
    ("prose before bare code", f"The answer is below.\n{DEF}", DEF),
    ("prose after bare code", f"{DEF}This function adds one to x.", DEF),
    (
        "imports kept",
        "Sure.\nimport math\ndef f(x):\n    return math.floor(x)\nDone.",
        "import math\ndef f(x):\n    return math.floor(x)\n",
    ),
    ("unparseable returned for the sandbox to report", "def f(x) return x", "def f(x) return x"),
    ("empty", "", ""),
    (
        "crlf fence",
        "```python\r\ndef f(x):\r\n    return x\r\n```",
        "def f(x):\r\n    return x\r\n",
    ),
]


@pytest.mark.parametrize(
    "completion, expected", [row[1:] for row in EXTRACTIONS], ids=[row[0] for row in EXTRACTIONS]
)
def test_extract_code(completion, expected):
    assert extract_code(completion) == expected


def test_a_function_body_continues_the_prompt_and_a_whole_function_replaces_the_stub():
    prompt = 'def inc(x):\n    """Add one."""\n'
    assert complete_function(prompt, "    return x + 1\n", "inc") == prompt + "    return x + 1\n"
    whole = complete_function(prompt, "```python\ndef inc(x):\n    return x + 1\n```", "inc")
    namespace: dict = {}
    exec(
        compile(whole, "<test>", "exec"), namespace
    )  # our own string, to see which definition wins
    assert namespace["inc"](1) == 2


def test_code_tasks_need_a_verifier():
    task = ProgramSynthesis(ProgramSynthesisOptions(train_size=5, test_size=5))
    problem = task.problems("test")[0]
    with pytest.raises(ValueError, match="needs a verifier"):
        task.grade([problem], [" xs"])
    with pytest.raises(TypeError):
        task.check(problem, " xs")
