"""Answer parsing helpers."""

import doctest

import pytest

from rlvr import text
from rlvr.text import evaluate_expression, last_boxed, normalize_latex, normalize_number


def test_doctests():
    assert doctest.testmod(text).failed == 0


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("42", "42"),
        ("-0.50", "-0.5"),
        ("1,000,000", "1000000"),
        ("$5.", "5"),
        ("12%", "12"),
        ("abc", None),
        ("", None),
        ("1/0", None),
        ("7.0", "7"),
    ],
)
def test_normalize_number(raw, expected):
    assert normalize_number(raw) == expected


@pytest.mark.parametrize(
    "expression",
    [
        "2**100000",
        "(1).__class__",
        "x+1",
        "abs(-1)",
        "1 if 1 else 2",
        "[1]",
        "1/0",
        "1;2",
        "True+1",
    ],
)
def test_evaluate_expression_refuses_anything_but_arithmetic(expression):
    assert evaluate_expression(expression) is None


def test_last_boxed_takes_the_last_one_and_handles_nesting():
    assert last_boxed(r"\boxed{1} then \boxed{\sqrt{2}}") == r"\sqrt{2}"
    assert last_boxed("no box") is None


def test_normalize_latex_equates_common_spellings():
    assert normalize_latex(r"\left( 3, \frac{\pi}{2} \right)") == normalize_latex(
        r"(3,\frac{\pi}{2})"
    )
    assert normalize_latex("90^\\circ") == "90"
