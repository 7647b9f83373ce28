"""From a request to what runs: the processes to launch, what each is sent, their clocks.

What a process is sent holds no expected value. The program's process gets the program,
the setup code and the probe expressions (`sandbox.checks`); a check that must run whole
gets a check process of its own, with the program in another process answering its calls;
expected stdout stays here for `sandbox.judge`. `execute` runs the launches one after
another in one zygote: the request's `wall_seconds` bounds them all, `test_seconds` each
test (with `GRACE` on top for a program that swallows its own timer) or stdio case.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sandbox import runner
from sandbox.checks import Check, parse_tests
from sandbox.jail import ZYGOTE_PIDS
from sandbox.models import FunctionTests, Limits, ScriptRun, StdioTests, VerifyRequest
from sandbox.runner import Child, Launch
from sandbox.values import MAX_CHARS
from sandbox.zygotes import Zygote

GRACE = 0.5  # seconds past test_seconds before the host kills a program ignoring its timer
MAX_FRAME_BYTES = 2 * MAX_CHARS + (1 << 20)  # one value's JSON: its text, escapes, and tags


@dataclass(frozen=True)
class Plan:
    request: VerifyRequest
    checks: list[Check] = field(default_factory=list)  # function tests, one per test
    setup: str = ""  # run after the program, in its process
    cases: list[tuple[str, list[str]]] = field(default_factory=list)  # stdio/script: (stdin, argv)
    expected: list[str] | None = None  # stdio: expected stdout per case

    @property
    def host_checks(self) -> list[int]:
        return [i for i, c in enumerate(self.checks) if c.jail is None]

    @property
    def max_frame_bytes(self) -> int:
        return min(self.request.limits.output_bytes, MAX_FRAME_BYTES)


@dataclass
class Runs:
    """What `execute` started: launches by test (or case), and what stopped the rest."""

    probes: Launch | None = None
    jail: dict[int, Launch] = field(default_factory=dict)
    cases: list[Launch] = field(default_factory=list)
    out_of_time: bool = False  # the wall clock ran out before every launch ran
    wall_seconds: float = 0.0

    @property
    def launches(self) -> list[Launch]:
        return [*([self.probes] if self.probes else []), *self.jail.values(), *self.cases]


def plan(request: VerifyRequest) -> Plan:
    """Raises `TestSpecError` when the tests are malformed."""
    tests = request.tests
    match tests:
        case FunctionTests():
            parsed_setup, checks = parse_tests(
                tests.tests, entry_point=tests.entry_point, program=request.program
            )
            setup = "\n".join(s for s in (tests.setup, parsed_setup) if s)
            return Plan(request, checks=checks, setup=setup)
        case StdioTests():
            return Plan(
                request,
                cases=[(c.stdin, []) for c in tests.cases],
                expected=[c.stdout for c in tests.cases],
            )
        case ScriptRun():
            return Plan(request, cases=[(tests.stdin, list(tests.args))])
    raise TypeError(f"unknown tests {type(tests).__name__}")


def child_limits(limits: Limits) -> dict:
    """What each confined process sets for itself (sandbox.inside.confine)."""
    return {
        "tmpfs_mb": limits.tmpfs_mb,
        "rlimits": {
            "RLIMIT_AS": (limits.memory_mb + 64)
            << 20,  # above the cgroup's share: the cgroup decides
            "RLIMIT_CPU": limits.cpu_seconds,
            "RLIMIT_FSIZE": limits.tmpfs_mb << 20,
            "RLIMIT_NOFILE": 64,
            # Counted per user: the program's own processes plus the zygote's and a check's.
            "RLIMIT_NPROC": limits.max_pids + ZYGOTE_PIDS,
        },
    }


def execute(plan_: Plan, zygote: Zygote) -> Runs:
    request, limits = plan_.request, plan_.request.limits
    start = time.monotonic()
    deadline = start + limits.wall_seconds
    confined = child_limits(limits)
    runs = Runs()

    def launch(
        children: list[Child], seconds: float | None = None, frame_seconds: float | None = None
    ) -> Launch:
        end = deadline if seconds is None else min(deadline, time.monotonic() + seconds)
        return runner.run(
            zygote,
            children,
            confined,
            deadline=end,
            output_bytes=limits.output_bytes,
            frame_seconds=frame_seconds,
        )

    def stopped() -> bool:
        runs.out_of_time = time.monotonic() >= deadline
        return runs.out_of_time or any(la.killed == "output" for la in runs.launches)

    program = {
        "program": request.program,
        "setup": plan_.setup,
        "test_seconds": limits.test_seconds,
    }
    if plan_.host_checks:
        probes = [list(plan_.checks[i].probes) for i in plan_.host_checks]
        runs.probes = launch(
            [Child("probes", {**program, "probes": probes})],
            frame_seconds=limits.test_seconds + GRACE,
        )
    for index, check in enumerate(plan_.checks):
        if check.jail is None or stopped():
            continue
        body = {
            "tests": check.jail.tests,
            "entry_point": check.jail.entry_point,
            "test_seconds": limits.test_seconds,
            "program_names": list(check.jail.program_names),
            "max_bytes": plan_.max_frame_bytes,
        }
        children = [
            Child("serve", program, outputs=("stdout", "stderr")),
            Child("check", body, outputs=("frames",)),
        ]
        runs.jail[index] = launch(children, seconds=limits.test_seconds + GRACE)
    for stdin, args in plan_.cases:
        if stopped():
            break
        child = Child(
            "script",
            {"program": request.program, "args": args},
            stdin=stdin.encode(),
            outputs=("stdout", "stderr"),
            keep_stdout=limits.output_bytes,
        )
        runs.cases.append(launch([child], seconds=limits.test_seconds))
    stopped()
    runs.wall_seconds = time.monotonic() - start
    return runs
