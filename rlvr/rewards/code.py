"""The ``code_tests`` reward: credit for the tests a program passed in the sandbox.

Owns the partial-credit rule only. The program was already run by the task's ``grade``
(through the injected verifier), so this reads the ``CodeGrade`` in the ``grade`` column
and never runs anything itself. Registered in
``rlvr.rewards.base.REWARDS`` on import.
"""

from collections.abc import Sequence

from rlvr.rewards.base import register_reward


@register_reward("code_tests", settings=("all_pass", "partial_scale", "none_pass"))
def code_tests(
    completions: list[str],
    grade: Sequence[str],
    all_pass: float = 1.0,
    partial_scale: float = 0.5,
    none_pass: float = -0.5,
    **_columns,
) -> list[float | None]:
    """``all_pass`` when every test passes, ``none_pass`` when none do (syntax errors and
    timeouts included), None when the sandbox could not judge. A program that passes some of
    its tests earns ``partial_scale`` x the passed fraction of the gap between the two, so
    ``partial_scale: 0`` is a binary reward and ``1`` is linear in the passed fraction. A
    grade without test counts (a rule task's) scores as all or none.

    Partial credit sits on top of ``none_pass`` rather than on top of 0: with ``none_pass`` at
    -0.5 a program passing one test of four and scoring 0 would, in a group where nothing
    passes, get an advantage of about +2.5 for being wrong (bench/learn_code.py measured the
    two rules side by side; README, "Where only the verifier teaches").

    >>> from rlvr.verifier import CodeGrade
    >>> grades = [CodeGrade("ok", 4, 4), CodeGrade("ok", 1, 4), CodeGrade("ok", 0, 4),
    ...           CodeGrade("timeout", 0, 4), CodeGrade("sandbox_error")]
    >>> code_tests([""] * 5, grade=grades)
    [1.0, -0.3125, -0.5, -0.5, None]
    >>> code_tests([""] * 5, grade=grades, partial_scale=0.0)
    [1.0, -0.5, -0.5, -0.5, None]
    >>> code_tests(["", ""], grade=["pass", "fail"], none_pass=0.0)
    [1.0, 0.0]
    """
    scores: list[float | None] = []
    for one in grade:
        passed, total = getattr(one, "passed", None), getattr(one, "total", None)
        if one == "error":
            scores.append(None)
        elif one == "pass":
            scores.append(all_pass)
        elif passed and total:
            scores.append(none_pass + partial_scale * (all_pass - none_pass) * passed / total)
        else:
            scores.append(none_pass)
    return scores
