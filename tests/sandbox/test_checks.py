import ast

import pytest

from sandbox.checks import TestSpecError, parse_tests
from sandbox.expressions import JudgeError, evaluate


def split(test: str, program: str = ""):
    _, [check] = parse_tests([test], program=program)
    return check.probes, ast.unparse(check.expr)


@pytest.mark.parametrize(
    ("test", "probes", "host"),
    [
        ("assert f(2) == 4", ("f(2)",), "P0 == 4"),
        (
            "assert set(similar((3, 4), (4, 5))) == set((4, 5))",
            ("similar((3, 4), (4, 5))",),
            "set(P0) == set((4, 5))",
        ),
        (
            "assert math.isclose(area(3), 28.27, rel_tol=0.001)",
            ("area(3)",),
            "math.isclose(P0, 28.27, rel_tol=0.001)",
        ),
        ("assert f(x) == g(y)", ("f(x)", "g(y)"), "P0 == P1"),
        ("assert not is_prime(4)", ("is_prime(4)",), "not P0"),
        ("assert f(1).upper() == 'A'", ("f(1).upper()",), "P0 == 'A'"),
        ("assert max_height(root) == 3", ("max_height(root)",), "P0 == 3"),
        (
            "assert sorted(f(1), key=lambda t: t[1]) == [1]",
            ("sorted(f(1), key=lambda t: t[1])",),
            "P0 == [1]",
        ),
        ("assert [x * 2 for x in f(3)] == [2, 4]", ("[x * 2 for x in f(3)]",), "P0 == [2, 4]"),
        ("assert abs(f(2) - 0.5) < 1e-06", ("f(2)",), "abs(P0 - 0.5) < 1e-06"),
        ("assert f(2) == 4, 'message'", ("f(2)",), "P0 == 4"),
    ],
)
def test_split_keeps_expected_values_on_the_host(test, probes, host):
    assert split(test) == (probes, host)


def test_program_function_shadowing_a_builtin_is_called_when_nothing_else_is():
    assert split("assert sum(10, 15) == 6", program="def sum(a, b):\n    return 0\n") == (
        ("sum(10, 15)",),
        "P0 == 6",
    )


def test_program_cannot_take_over_the_expected_side_by_shadowing_a_builtin():
    program = "set = lambda *a: 'x'\ndef f(x):\n    return 'x'\n"
    assert split("assert f(1) == set([1, 2])", program=program) == (("f(1)",), "P0 == set([1, 2])")


def test_humaneval_check_function_uses_the_entry_point_and_stays_out_of_the_program():
    tests = "import math\nMETADATA = {}\n\ndef check(candidate):\n    assert candidate(1) == 2\n    assert not candidate(0)\n"  # noqa: E501
    setup, checks = parse_tests(tests, entry_point="inc")
    assert [c.probes for c in checks] == [("inc(1)",), ("inc(0)",)]
    assert setup == "import math" and not any(c.judged_in_jail for c in checks)


def test_check_function_with_loops_is_judged_in_the_jail():
    tests = (
        "def check(candidate):\n    for i in range(3):\n        assert candidate(i) == helper(i)\n"
    )
    setup, [check] = parse_tests(
        tests, entry_point="ident", program="def ident(x): ...\ndef helper(x): ...\n"
    )
    assert check.judged_in_jail and check.probes == () and setup == ""
    assert (check.jail.tests, check.jail.entry_point, check.jail.program_names) == (
        tests,
        "ident",
        ("helper",),
    )


@pytest.mark.parametrize(
    "tests",
    [
        "EXPECTED = 4\ndef check(candidate):\n    assert candidate(2) == EXPECTED\n",
        "def reference(x):\n    return x * x\ndef check(candidate):\n    assert candidate(2) == reference(2)\n",
        "expected = [4, 9]\nassert [f(2), f(3)] == expected\n",
    ],
)
def test_asserts_reading_values_the_tests_define_are_not_split(tests):
    setup, [check] = parse_tests(tests, entry_point="f" if "check" in tests else None)
    assert check.judged_in_jail and setup == ""


@pytest.mark.parametrize("bad", ["x = 1", "assert (", "f(1) == 2", "assert f(1); assert f(2)"])
def test_malformed_tests_are_rejected(bad):
    with pytest.raises(TestSpecError):
        parse_tests([bad])


@pytest.mark.parametrize(
    ("test", "values", "result"),
    [
        ("assert f(2) == 4", [4], True),
        ("assert f(2) == 4", [4.0], True),
        ("assert f(2) == 4", [5], False),
        ("assert set(f(1)) == {1, 2}", [[2, 1, 1]], True),
        ("assert math.isclose(f(1), 3.14, rel_tol=0.01)", [3.141], True),
        ("assert f(1) == (1, [2])", [(1, [2])], True),
        ("assert f(1) == (1, [2])", [[1, [2]]], False),
        ("assert f(1)[0] == 'a'", [["a"]], True),
    ],
)
def test_evaluate(test, values, result):
    _, [check] = parse_tests([test])
    assert evaluate(check.expr, values) is result


@pytest.mark.parametrize(
    ("test", "values"),
    [
        ("assert 2 ** f(1) == 0", [10**9]),
        ("assert f(1) * 10 ** 8 == 'x'", ["yy"]),
        ("assert 1 << f(1) == 0", [10**12]),
        ("assert len(range(f(1))) == 0", [10**12]),
    ],
)
def test_host_refuses_to_build_huge_values(test, values):
    _, [check] = parse_tests([test])
    with pytest.raises(JudgeError):
        evaluate(check.expr, values)
