"""Parsing helpers shared by tasks and rewards: numbers, boxed answers, LaTeX normalisation.

Owns string-level answer extraction only; what counts as correct for a task lives in that
task's file.
"""

import ast
import operator
import re
from fractions import Fraction

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def normalize_number(text: str) -> str | None:
    """Canonical form of a number written in ``text``, or None if it is not one number.

    >>> normalize_number(" $1,234.50 ")
    '1234.5'
    >>> normalize_number("3/4")
    '0.75'
    """
    cleaned = text.strip().strip("$").replace(",", "").rstrip(".").strip()
    cleaned = cleaned.removesuffix("%").strip()
    try:
        value = Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None
    if value.denominator == 1:
        return str(value.numerator)
    return repr(float(value)).rstrip("0").rstrip(".")


def last_number(text: str) -> str | None:
    """The last number in ``text``, normalised, or None.

    >>> last_number("so 3 + 4 = 7 apples.")
    '7'
    """
    found = _NUMBER.findall(text)
    return normalize_number(found[-1]) if found else None


def last_boxed(text: str) -> str | None:
    r"""Content of the last ``\boxed{...}`` (nested braces allowed), or None.

    >>> last_boxed(r"so \boxed{\frac{1}{2}}.")
    '\\frac{1}{2}'
    """
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for index in range(begin, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            if depth == 0:
                return text[begin:index]
            depth -= 1
    return None


_LATEX_DROPS = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\ ", "$", "^\\circ", "^{\\circ}")


def normalize_latex(answer: str) -> str:
    r"""A loose canonical form of a LaTeX answer, for string comparison.

    >>> normalize_latex(r"\dfrac{x}{2} ")
    '\\frac{x}{2}'
    >>> normalize_latex(r"\text{(B)}")
    '(B)'
    >>> normalize_latex(r"\frac{3}{4}"), normalize_latex("0.75")
    ('0.75', '0.75')
    """
    text = answer.strip()
    for drop in _LATEX_DROPS:
        text = text.replace(drop, "")
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = re.sub(r"\\text\{(.*?)\}", r"\1", text)
    text = re.sub(r"\\mbox\{(.*?)\}", r"\1", text)
    text = text.replace(" ", "").rstrip(".")
    text = re.sub(r"^\\frac\{(-?\d+)\}\{(\d+)\}$", r"\1/\2", text)
    number = normalize_number(text)
    return number if number is not None else text


_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def evaluate_expression(expression: str) -> tuple[Fraction, list[int]] | None:
    """Exact value of an expression of integers, + - * / and brackets, with the integers used.

    None when it is anything else (names, calls, powers) or divides by zero.

    >>> evaluate_expression("(100-93)*3")
    (Fraction(21, 1), [100, 93, 3])
    >>> evaluate_expression("__import__('os')") is None
    True
    """
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        return None
    numbers: list[int] = []

    def value(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            numbers.append(node.value)
            return Fraction(node.value)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        raise ValueError(f"not allowed: {ast.dump(node)[:40]}")

    try:
        return value(tree.body), numbers
    except (ValueError, ZeroDivisionError):
        return None
