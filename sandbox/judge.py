"""From what a run's processes did to a Verdict.

Runs on the host and decides: which tests passed, and what the run as a whole came to. It
parses nothing a jail wrote: every frame goes to the assessor (`sandbox.assessor`), which
judges it in a bounded helper; here only stdio output is compared, as capped text. A test
with no frame is judged by how its process ended: killed by the host's clock (`timeout`),
over an output cap (`output_limit`), by the kernel (a SIGKILL the host did not send is the
cgroup's OOM killer: `memory`; SIGXCPU: `timeout`), or on its own (`error`, "NoResult").
"""

from __future__ import annotations

import ast
import os
import signal

from sandbox.assessor import Assessor
from sandbox.checks import Check, TestSpecError, parse_tests
from sandbox.models import FunctionTests, Status, StdioTests, TestOutcome, Verdict, VerifyRequest
from sandbox.plan import Plan, Runs
from sandbox.runner import Child, Launch

_TEXT_CAP = 4096  # stdout/stderr kept in a verdict
_LOADING = "the program failed before its tests ran"


def verdict(plan: Plan, runs: Runs, assessor: Assessor) -> Verdict:
    request = plan.request
    if plan.cases:
        outcomes, shown = _case_outcomes(plan, runs.cases)
    else:
        outcomes = _function_outcomes(plan, runs, assessor)
        shown = (
            runs.probes.children[0]
            if runs.probes
            else next((la.children[0] for la in runs.jail.values()), None)
        )
    status = _status(runs, outcomes)
    filler = _missing(status)
    outcomes = [o or filler for o in outcomes]
    children = [c for la in runs.launches for c in la.children]
    return Verdict(
        id=request.id,
        status=status,
        tests=outcomes,
        total=len(outcomes),
        passed=sum(o.outcome == "pass" for o in outcomes),
        wall_seconds=round(runs.wall_seconds, 4),
        cpu_seconds=round(sum(c.cpu for c in children), 4),
        exit_code=_exit_code(shown) if shown else None,
        stdout=_text(shown, "stdout")[:_TEXT_CAP],
        stderr=_text(shown, "stderr")[-_TEXT_CAP:],
        error=None if status == "ok" else _REASONS[status],
    )


def sandbox_error(request: VerifyRequest, reason: str) -> Verdict:
    n = _count_tests(request)
    return Verdict(
        id=request.id,
        status="sandbox_error",
        passed=0,
        total=n,
        tests=[TestOutcome(outcome="error", error_type="SandboxError", detail=reason[:300])] * n,
        wall_seconds=0.0,
        cpu_seconds=0.0,
        error=reason,
    )


def memory_verdict(request: VerifyRequest, wall_seconds: float) -> Verdict:
    """The whole jail was killed by the kernel mid-run: the program's memory, by elimination."""
    n = _count_tests(request)
    return Verdict(
        id=request.id,
        status="memory",
        passed=0,
        total=n,
        tests=[_missing("memory")] * n,
        wall_seconds=round(wall_seconds, 4),
        cpu_seconds=0.0,
        error=_REASONS["memory"],
    )


def _count_tests(request: VerifyRequest) -> int:
    match request.tests:
        case FunctionTests(tests=list() as tests):
            return len(tests)
        case FunctionTests(tests=str() as tests, entry_point=entry):
            try:
                return len(parse_tests(tests, entry_point=entry, program=request.program)[1])
            except TestSpecError:
                return 1
        case StdioTests(cases=cases):
            return len(cases)
    return 0


def _function_outcomes(plan: Plan, runs: Runs, assessor: Assessor) -> list[TestOutcome | None]:
    """Outcomes from the assessor, by test; None where no process reported one."""
    items: list[dict] = []
    owners: list[int | None] = []  # the test each item judges; None for the load report
    if runs.probes:
        frames = runs.probes.children[0].frames
        items.append({"kind": "load", "frame": frames[0] if frames else None})
        owners.append(None)
        for n, index in enumerate(plan.host_checks):
            frame = frames[n + 1] if n + 1 < len(frames) else None
            items.append({"kind": "test", "frame": frame, "expr": _unparse(plan.checks[index])})
            owners.append(index)
    for index, launch in runs.jail.items():
        frames = launch.children[1].frames
        items.append({"kind": "check", "frame": frames[0] if frames else None})
        owners.append(index)
    judged = assessor.judge(items, plan.max_frame_bytes)
    outcomes: list[TestOutcome | None] = [None] * len(plan.checks)
    loaded = True
    for owner, result in zip(owners, judged, strict=True):
        if owner is None:
            loaded = result.get("loaded") is True or result.get("outcome") == "missing"
            if not loaded:
                outcomes = [None if c.jail else _outcome(result, _LOADING) for c in plan.checks]
        elif loaded or plan.checks[owner].jail:
            outcomes[owner] = _outcome(result, _LOADING if result.get("context") == "load" else "")
    _fill_killed(plan, runs, outcomes)
    return outcomes


def _unparse(check: Check) -> str:
    return ast.unparse(check.expr)


def _outcome(result: dict, context: str) -> TestOutcome | None:
    kind = result.get("outcome")
    if kind not in ("pass", "wrong", "error", "timeout"):
        return None  # "missing": no frame; how the process ended decides
    detail = result.get("detail") or None
    if context and kind == "timeout":
        detail = "loading the program ran past its time limit"
    elif context and kind != "pass":
        detail = f"{context}: {detail}" if detail else context
    return TestOutcome(
        outcome=kind,
        error_type=result.get("error_type") if kind == "error" else None,
        detail=detail[:300] if detail else None,
    )


def _fill_killed(plan: Plan, runs: Runs, outcomes: list[TestOutcome | None]) -> None:
    """The test in flight when the host's clock killed a process timed out; so did a check."""
    if runs.probes and runs.probes.killed == "time":
        index = next((i for i in plan.host_checks if outcomes[i] is None), None)
        if index is not None:
            outcomes[index] = TestOutcome(
                outcome="timeout", detail="test ran past its time limit and was killed"
            )
    for index, launch in runs.jail.items():
        if outcomes[index] is None and launch.killed == "time":
            outcomes[index] = TestOutcome(
                outcome="timeout", detail="the check ran past its time limit"
            )


def _case_outcomes(
    plan: Plan, cases: list[Launch]
) -> tuple[list[TestOutcome | None], Child | None]:
    if plan.expected is None:  # script mode: nothing to judge
        return [], cases[0].children[0] if cases else None
    outcomes: list[TestOutcome | None] = [None] * len(plan.cases)
    for index, launch in enumerate(cases):
        outcomes[index] = _case_outcome(launch, plan.expected[index])
    shown = next(
        (
            la.children[0]
            for la, o in zip(cases, outcomes, strict=False)
            if o and o.outcome != "pass"
        ),
        None,
    )
    return outcomes, shown or (cases[0].children[0] if cases else None)


def _case_outcome(launch: Launch, expected: str) -> TestOutcome | None:
    child = launch.children[0]
    if launch.killed == "time":
        return TestOutcome(outcome="timeout", detail="case ran past its time limit")
    if launch.killed == "output":
        return TestOutcome(outcome="error", error_type="OutputLimit", detail="printed too much")
    if child.status is None or launch.killed:
        return None
    if os.WIFSIGNALED(child.status):
        return TestOutcome(
            outcome="error",
            error_type="Killed",
            detail=f"killed by signal {os.WTERMSIG(child.status)}",
        )
    code = os.waitstatus_to_exitcode(child.status)
    if code != 0:
        tail = _text(child, "stderr").strip().splitlines()[-1:] or [""]
        return TestOutcome(
            outcome="error",
            error_type=_error_type(tail[0]),
            detail=f"exit status {code}: {tail[0][:200]}",
        )
    if normalise_output(_text(child, "stdout")) == normalise_output(expected):
        return TestOutcome(outcome="pass")
    return TestOutcome(outcome="wrong", detail="output differs")


def normalise_output(text: str) -> str:
    """Trailing whitespace on each line and trailing blank lines do not count."""
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def _error_type(line: str) -> str:
    name = line.split(":", 1)[0].strip()
    return name if name.isidentifier() else "RuntimeError"


def _status(runs: Runs, outcomes: list[TestOutcome | None]) -> Status:
    launches = runs.launches
    if any(la.killed == "output" for la in launches):
        return "output_limit"
    # The run's own clock; a program the host killed because it ignored its per-test timer,
    # or a check past its time; RLIMIT_CPU. A long stdio case is only that case's timeout.
    function = [*([runs.probes] if runs.probes else []), *runs.jail.values()]
    if (
        runs.out_of_time
        or any(la.killed == "time" for la in function)
        or _signalled(launches, signal.SIGXCPU)
    ):
        return "timeout"
    memory = any(o and o.error_type == "MemoryError" for o in outcomes)
    if memory or _signalled(launches, signal.SIGKILL):
        return "memory"
    return "ok"


def _signalled(launches: list[Launch], sig: int) -> bool:
    """Some process of a launch the host did not kill ended by `sig`."""
    return any(
        not la.killed
        and c.status is not None
        and os.WIFSIGNALED(c.status)
        and os.WTERMSIG(c.status) == sig
        for la in launches
        for c in la.children
    )


def _missing(status: Status) -> TestOutcome:
    match status:
        case "timeout":
            return TestOutcome(
                outcome="timeout", detail="the run passed its time limit before this test finished"
            )
        case "memory":
            return TestOutcome(
                outcome="error", error_type="MemoryError", detail="the run passed its memory limit"
            )
        case "output_limit":
            return TestOutcome(
                outcome="error",
                error_type="OutputLimit",
                detail="the run printed more than its output limit",
            )
    return TestOutcome(
        outcome="error",
        error_type="NoResult",
        detail="the program ended the process before this test ran",
    )


_REASONS = {
    "timeout": "passed the time limit",
    "memory": "passed the memory limit",
    "output_limit": "passed the output limit",
}


def _exit_code(child: Child) -> int | None:
    if child.status is None:
        return None
    if os.WIFSIGNALED(child.status):
        return 128 + os.WTERMSIG(child.status)  # as a shell reports it
    return os.WEXITSTATUS(child.status)


def _text(child: Child | None, name: str) -> str:
    if child is None or name not in child.streams:
        return ""
    return bytes(child.streams[name]).decode("utf-8", "replace")
