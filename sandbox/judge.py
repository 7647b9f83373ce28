"""From a request to the harness's plan, and from what the jail said to a Verdict.

Everything here runs on the host and decides: which tests passed, and what the run as a whole
came to. It trusts nothing the jail wrote: results are parsed defensively, and a test with no
result is judged by how the run ended.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from typing import Any

from sandbox.checks import Check, JudgeError, evaluate, parse_tests
from sandbox.jail import RawRun
from sandbox.models import FunctionTests, ScriptRun, Status, StdioTests, TestOutcome, Verdict, VerifyRequest
from sandbox.values import decode

_TEXT_CAP = 4096  # stdout/stderr kept in a verdict


@dataclass(frozen=True)
class Plan:
    """What the harness is sent, and what the host keeps to judge its answers."""

    harness_input: dict[str, Any]
    checks: list[Check] | None  # function mode
    expected: list[str] | None  # stdio mode


def plan(request: VerifyRequest) -> Plan:
    """Raises `TestSpecError` when the tests are malformed."""
    tests, limits = request.tests, request.limits
    base = {"program": request.program, "test_seconds": limits.test_seconds}
    match tests:
        case FunctionTests():
            parsed_setup, checks = parse_tests(tests.tests, entry_point=tests.entry_point, program=request.program)
            setup = "\n".join(s for s in (tests.setup, parsed_setup) if s)
            probes = [list(c.probes) for c in checks]
            return Plan({**base, "mode": "function", "setup": setup, "tests": probes}, checks, None)
        case StdioTests():
            cases = [{"stdin": c.stdin, "args": []} for c in tests.cases]
            return Plan({**base, "mode": "cases", "cases": cases, "case_output_bytes": _case_cap(limits.output_bytes, len(cases))},
                        None, [c.stdout for c in tests.cases])
        case ScriptRun():
            cases = [{"stdin": tests.stdin, "args": tests.args}]
            return Plan({**base, "mode": "cases", "cases": cases, "case_output_bytes": _case_cap(limits.output_bytes, 1)},
                        None, None)
    raise TypeError(f"unknown tests {type(tests).__name__}")


def _case_cap(total: int, n: int) -> int:
    # All cases' outputs come back through one capped channel; JSON escaping can double them.
    return max(1024, total // (2 * n) - 256)


def normalise_output(text: str) -> str:
    """Trailing whitespace on each line and trailing blank lines do not count."""
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def verdict(request: VerifyRequest, plan_: Plan, raw: RawRun) -> Verdict:
    records = _records(raw.results)
    events = {r.get("e") for r in records}
    if "start" not in events and not (raw.timed_out or raw.output_exceeded):
        return sandbox_error(request, _log_reason(raw), raw)
    if plan_.checks is not None:
        outcomes, memory = _function_outcomes(plan_.checks, records)
        cases = []
    else:
        cases = [r for r in records if r.get("e") == "case"]
        outcomes, memory = _case_outcomes(plan_.expected, cases, len(plan_.harness_input["cases"]))
    status = _status(raw, memory, any(c.get("output_limit") for c in cases))
    missing = _missing_outcome(status, "done" in events)
    total = len(outcomes)
    outcomes = [o or missing for o in outcomes]
    stdout = raw.stdout.decode("utf-8", "replace")
    stderr = raw.stderr.decode("utf-8", "replace")
    exit_code = raw.exit_code
    if cases:  # stdio and script: show the first case that did not pass
        shown = next((c for c, o in zip(cases, outcomes) if o.outcome != "pass"), cases[0])
        stdout, stderr = str(shown.get("stdout", "")), str(shown.get("stderr", ""))
        exit_code = shown.get("exit") if isinstance(shown.get("exit"), int) else exit_code
    return Verdict(
        id=request.id, status=status, tests=outcomes, total=total,
        passed=sum(o.outcome == "pass" for o in outcomes),
        wall_seconds=round(raw.wall_seconds, 4), cpu_seconds=round(raw.cpu_seconds, 4),
        exit_code=exit_code, stdout=stdout[:_TEXT_CAP], stderr=stderr[-_TEXT_CAP:],
        error=None if status == "ok" else _status_reason(status, raw),
    )


def sandbox_error(request: VerifyRequest, reason: str, raw: RawRun | None = None) -> Verdict:
    n = _count_tests(request)
    return Verdict(
        id=request.id, status="sandbox_error", passed=0, total=n,
        tests=[TestOutcome(outcome="error", error_type="SandboxError", detail=reason[:300])] * n,
        wall_seconds=round(raw.wall_seconds, 4) if raw else 0.0,
        cpu_seconds=round(raw.cpu_seconds, 4) if raw else 0.0,
        exit_code=raw.exit_code if raw else None, error=reason,
    )


def _count_tests(request: VerifyRequest) -> int:
    match request.tests:
        case FunctionTests(tests=list() as tests):
            return len(tests)
        case FunctionTests():
            return 1  # test source (HumanEval style): its asserts were never counted
        case StdioTests(cases=cases):
            return len(cases)
    return 0


def _records(data: bytes) -> list[dict[str, Any]]:
    records = []
    for line in data.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # the program wrote to the result descriptor; it gains nothing by it
        if isinstance(record, dict):
            records.append(record)
    return records


def _function_outcomes(checks: list[Check], records: list[dict]) -> tuple[list[TestOutcome | None], bool]:
    outcomes: list[TestOutcome | None] = [None] * len(checks)
    memory = False
    for r in records:
        if r.get("e") == "load_error":
            memory |= r.get("type") == "MemoryError"
            outcome = _raised(r, "the program failed before its tests ran")
            return [outcome] * len(checks), memory
        index = r.get("t")
        if r.get("e") != "probe" or type(index) is not int or not 0 <= index < len(checks) or outcomes[index]:
            continue
        if r.get("timeout") is True:
            outcomes[index] = TestOutcome(outcome="timeout", detail="test ran past its time limit")
        elif "type" in r:
            memory |= r.get("type") == "MemoryError"
            outcomes[index] = _raised(r, "")
        else:
            outcomes[index] = _judge(checks[index], r.get("v"))
    return outcomes, memory


def _raised(record: dict, context: str) -> TestOutcome:
    if record.get("timeout") is True:
        return TestOutcome(outcome="timeout", detail=context or "test ran past its time limit")
    message = str(record.get("msg", ""))[:200]
    return TestOutcome(outcome="error", error_type=str(record.get("type", "Error"))[:64],
                       detail=f"{context}: {message}" if context else message)


def _judge(check: Check, encoded: Any) -> TestOutcome:
    try:
        values = [decode(v) for v in encoded] if isinstance(encoded, list) else None
        if values is None:
            raise ValueError("malformed result")
        if evaluate(check, values):
            return TestOutcome(outcome="pass")
        got = ", ".join(repr(v)[:100] for v in values)
        return TestOutcome(outcome="wrong", detail=f"got {got}"[:300])
    except (JudgeError, ValueError, TypeError, RecursionError) as exc:
        return TestOutcome(outcome="wrong", detail=f"could not judge the returned value: {exc}"[:300])


def _case_outcomes(expected: list[str] | None, cases: list[dict], n: int) -> tuple[list[TestOutcome | None], bool]:
    if expected is None:  # script mode: nothing to judge
        return [], False
    outcomes: list[TestOutcome | None] = [None] * n
    for case in cases:
        index = case.get("c")
        if type(index) is not int or not 0 <= index < n or outcomes[index]:
            continue
        if case.get("timeout") is True:
            outcomes[index] = TestOutcome(outcome="timeout", detail="case ran past its time limit")
        elif case.get("output_limit") is True:
            outcomes[index] = TestOutcome(outcome="error", error_type="OutputLimit", detail="printed too much")
        elif "signal" in case:
            outcomes[index] = TestOutcome(outcome="error", error_type="Killed", detail=f"killed by signal {case['signal']}")
        elif case.get("exit") != 0:
            tail = str(case.get("stderr", "")).strip().splitlines()[-1:] or [""]
            outcomes[index] = TestOutcome(outcome="error", error_type=_error_type(tail[0]),
                                          detail=f"exit status {case.get('exit')}: {tail[0][:200]}")
        elif normalise_output(str(case.get("stdout", ""))) == normalise_output(expected[index]):
            outcomes[index] = TestOutcome(outcome="pass")
        else:
            outcomes[index] = TestOutcome(outcome="wrong", detail="output differs")
    memory = any("MemoryError" in str(c.get("stderr", "")) for c in cases)
    return outcomes, memory


def _error_type(line: str) -> str:
    name = line.split(":", 1)[0].strip()
    return name if name.isidentifier() else "RuntimeError"


def _status(raw: RawRun, memory: bool, case_output_limit: bool) -> Status:
    if raw.output_exceeded or case_output_limit:
        return "output_limit"
    if raw.timed_out or _killed_by(raw, signal.SIGXCPU) or b"time limit" in raw.log:
        return "timeout"
    if memory or _killed_by(raw, signal.SIGKILL):  # a SIGKILL we did not send is the OOM killer's
        return "memory"
    return "ok"


def _killed_by(raw: RawRun, sig: int) -> bool:
    # nsjail reports a jailed process killed by signal N as exit status 128 + N.
    return raw.exit_code == 128 + sig


def _missing_outcome(status: Status, finished: bool) -> TestOutcome:
    match status:
        case "timeout":
            return TestOutcome(outcome="timeout", detail="the run passed its time limit before this test finished")
        case "memory":
            return TestOutcome(outcome="error", error_type="MemoryError", detail="the run passed its memory limit")
        case "output_limit":
            return TestOutcome(outcome="error", error_type="OutputLimit", detail="the run printed more than its output limit")
    detail = "no result for this test" if finished else "the program ended the process before this test ran"
    return TestOutcome(outcome="error", error_type="NoResult", detail=detail)


def _status_reason(status: Status, raw: RawRun) -> str:
    return {
        "timeout": f"passed the time limit ({raw.wall_seconds:.2f}s wall, {raw.cpu_seconds:.2f}s CPU)",
        "memory": "passed the memory limit",
        "output_limit": "passed the output limit",
    }.get(status, _log_reason(raw))


def _log_reason(raw: RawRun) -> str:
    lines = [ln for ln in raw.log.decode("utf-8", "replace").splitlines()
             if ln.startswith(("[E]", "[F]")) or "error" in ln.lower()]
    return "nsjail could not start the jail: " + ("; ".join(lines[-3:]) or f"exit status {raw.exit_code}")
