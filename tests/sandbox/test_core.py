import json
import os
import stat

import pytest

from sandbox import (
    FunctionTests,
    Limits,
    Sandbox,
    SandboxUnavailable,
    ScriptRun,
    StdioCase,
    StdioTests,
    VerifyRequest,
    verify,
)

FAST = Limits(wall_seconds=5, cpu_seconds=5, test_seconds=2)


def test_stdio_cases_compare_whole_output_with_trailing_whitespace_normalised(sandbox):
    program = "n = int(input())\nfor i in range(n):\n    print(i, end='  \\n')\nprint()\n"
    tests = StdioTests(
        cases=[
            StdioCase(stdin="2\n", stdout="0\n1"),
            StdioCase(stdin="3\n", stdout="0\n1\n2\n\n\n"),
            StdioCase(stdin="2\n", stdout="0\n2"),
            StdioCase(stdin="x\n", stdout=""),
        ]
    )
    verdict = sandbox.run(VerifyRequest(program=program, tests=tests, limits=FAST))
    assert [t.outcome for t in verdict.tests] == ["pass", "pass", "wrong", "error"]
    assert verdict.tests[3].error_type == "ValueError"
    assert verdict.passed == 2 and verdict.total == 4 and verdict.status == "ok"


def test_stdio_case_that_loops_is_a_timeout_and_the_next_case_still_runs(sandbox):
    program = "s = input()\nwhile s == 'loop':\n    pass\nprint(s)\n"
    tests = StdioTests(
        cases=[StdioCase(stdin="loop", stdout=""), StdioCase(stdin="ok", stdout="ok")]
    )
    verdict = sandbox.run(
        VerifyRequest(program=program, tests=tests, limits=Limits(test_seconds=1, wall_seconds=5))
    )
    assert [t.outcome for t in verdict.tests] == ["timeout", "pass"]


def test_script_mode_returns_what_the_program_did(sandbox):
    program = "import sys\nprint('args', sys.argv[1:], input())\nprint('oops', file=sys.stderr)\nsys.exit(3)\n"
    verdict = sandbox.run(
        VerifyRequest(program=program, tests=ScriptRun(stdin="in", args=["-v"]), limits=FAST)
    )
    assert (verdict.stdout, verdict.stderr, verdict.exit_code) == ("args ['-v'] in\n", "oops\n", 3)
    assert verdict.total == 0 and verdict.status == "ok"


def test_humaneval_style_tests(sandbox):
    program = "def add(a, b):\n    return a + b\n"
    tests = FunctionTests(
        tests="METADATA = {'author': 'x'}\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n"
        "    assert candidate(-1, 1) == 0\n",
        entry_point="add",
    )
    assert sandbox.run(VerifyRequest(program=program, tests=tests, limits=FAST)).all_passed


def test_setup_code_runs_after_the_program(sandbox):
    program = "class Node:\n    def __init__(self, v):\n        self.v = v\ndef value(n):\n    return n.v\n"
    tests = FunctionTests(tests=["assert value(root) == 7"], setup="root = Node(7)")
    assert sandbox.run(VerifyRequest(program=program, tests=tests, limits=FAST)).all_passed


def test_syntax_error_is_an_error_for_every_test(sandbox):
    verdict = sandbox.run(
        VerifyRequest(program="def f(:\n", tests=FunctionTests(tests=["assert f(1) == 1"] * 2))
    )
    assert [(t.outcome, t.error_type) for t in verdict.tests] == [("error", "SyntaxError")] * 2


def test_malformed_tests_are_a_sandbox_error_not_a_wrong_answer(sandbox):
    verdict = sandbox.run(VerifyRequest(program="x = 1", tests=FunctionTests(tests=["x == 1"])))
    assert verdict.status == "sandbox_error" and verdict.pass_fraction is None
    assert "invalid tests" in verdict.error


def test_verify_keeps_order_and_reports_time(sandbox):
    requests = [
        VerifyRequest(
            id=str(i),
            program=f"def f():\n    return {i}\n",
            tests=FunctionTests(tests=["assert f() == 3"]),
        )
        for i in range(6)
    ]
    verdicts = verify(requests, sandbox=sandbox, concurrency=3)
    assert [v.id for v in verdicts] == [str(i) for i in range(6)]
    assert [v.all_passed for v in verdicts] == [i == 3 for i in range(6)]
    assert all(v.wall_seconds > 0 and v.cpu_seconds > 0 for v in verdicts)


def test_missing_nsjail_binary_fails_at_start_naming_it(tmp_path):
    with pytest.raises(SandboxUnavailable, match="nonexistent"):
        Sandbox(nsjail=str(tmp_path / "nonexistent"))


def test_nsjail_that_cannot_make_a_jail_fails_at_start(tmp_path):
    fake = tmp_path / "nsjail"
    fake.write_text("#!/bin/sh\necho '[F] clone(): Operation not permitted' >&2\nexit 255\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(SandboxUnavailable, match="Operation not permitted"):
        Sandbox(nsjail=str(fake))


def test_cli_verifies_jsonl_and_prints_json(tmp_path, capsys):
    from sandbox.__main__ import main

    lines = [
        {
            "task_id": 1,
            "code": "def f(x):\n    return x\n",
            "test_list": ["assert f(1) == 1"],
            "test_setup_code": "",
        },
        VerifyRequest(
            id="two",
            program="def g():\n    return 0\n",
            tests=FunctionTests(tests=["assert g() == 1"]),
        ).model_dump(mode="json"),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert main(["verify", str(path), "--json"]) == 0
    out, err = capsys.readouterr()
    verdicts = [json.loads(line) for line in out.splitlines()]
    assert [(v["id"], v["passed"], v["total"]) for v in verdicts] == [("1", 1, 1), ("two", 0, 1)]
    assert "1/2 programs passed" in err and "two" in err


def test_cli_names_the_bad_line(tmp_path, capsys):
    from sandbox.__main__ import main

    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"program": "x=1", "tests": {"kind": "function", "tests": []}}\n{"program": 1}\n'
    )
    assert main(["verify", str(path)]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() != 0, reason="mapping to another uid needs root")
def test_jail_uid_outside_is_not_root(sandbox):
    assert sandbox.config.uid != 0
