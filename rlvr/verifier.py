"""The verify interface of code rewards, and its in-process implementation over ``sandbox/``.

A code task turns each completion into a program and calls an injected
``verify(problems, programs) -> list[CodeGrade]`` (``rlvr.tasks.base.VerifyFn``). Each problem carries its tests in
``metadata["tests"]`` (the sandbox's ``FunctionTests`` / ``StdioTests`` as a plain dict) and
optionally ``metadata["limits"]``. ``RequestVerifier`` owns everything between that call and
a transport: building request dicts, asking once per distinct (program, tests) pair, reading
the sandbox's verdict dicts back as ``CodeGrade``s, and turning any failure of the transport
into ``sandbox_error`` grades, whose reward is None (never 0).

Two transports: ``local_sandbox_verifier()`` runs an nsjail pool in this process (the CLI,
tests and benchmarks inject it); the service wraps its Celery ``verify`` queue the same way.
This is the only rlvr module that touches ``sandbox``, and only inside that factory, so the
training loop never imports it (DESIGN: rlvr never imports sandbox).
"""

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

RunRequests = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
"""A transport: sandbox ``VerifyRequest`` dicts in, sandbox ``Verdict`` dicts out, same order."""


class TestResult(NamedTuple):
    """One test of a ``CodeGrade``: the sandbox's ``TestOutcome`` (rlvr does not import the
    sandbox's models) plus the assert it ran, when the tests are a list of asserts."""

    __test__ = False  # not a pytest class

    outcome: str  # pass | wrong | error | timeout
    error_type: str | None = None
    detail: str | None = None
    test: str | None = None  # the assert as written, when the tests are a list of asserts


class CodeGrade(str):
    """A task grade, ``"pass"``, ``"fail"`` or ``"error"``, that carries the sandbox's verdict.

    It is a ``str`` so that the trainer, the evaluator and the stores, which count ``"pass"``,
    treat it like any other task's grade and serialise it as the label; ``code_tests`` reads
    ``passed`` / ``total`` for partial credit, refinement reads ``feedback()`` and analysis
    reads ``details()``. ``"error"`` means the sandbox could not judge (``sandbox_error``).
    ``verified_by`` names the verify worker that ran it, when a queue says so.

    >>> g = CodeGrade("ok", passed=1, total=2, tests=[TestResult("pass"), TestResult("wrong", None, "got 3")])
    >>> g, g == "fail", g.pass_fraction, g.feedback()
    ('fail', True, 0.5, 'Test 2 failed: got 3')
    """

    status: str
    passed: int
    total: int
    tests: tuple[TestResult, ...]
    error: str | None
    wall_seconds: float
    verified_by: str | None

    def __new__(
        cls,
        status: str,
        passed: int = 0,
        total: int = 0,
        tests: Sequence[TestResult] = (),
        error: str | None = None,
        wall_seconds: float = 0.0,
        verified_by: str | None = None,
    ) -> "CodeGrade":
        if status == "sandbox_error":
            label = "error"
        else:
            label = "pass" if status == "ok" and total > 0 and passed == total else "fail"
        self = super().__new__(cls, label)
        self.status, self.passed, self.total = status, passed, total
        self.tests, self.error, self.wall_seconds = (
            tuple(TestResult(*t) for t in tests),
            error,
            wall_seconds,
        )
        self.verified_by = verified_by
        return self

    def __reduce__(self):
        return (
            CodeGrade,
            (
                self.status,
                self.passed,
                self.total,
                self.tests,
                self.error,
                self.wall_seconds,
                self.verified_by,
            ),
        )

    @property
    def pass_fraction(self) -> float | None:
        """Fraction of tests passed; None when the sandbox could not judge."""
        if self.status == "sandbox_error":
            return None
        return self.passed / self.total if self.total else 0.0

    def feedback(self, show_tests: bool = True) -> str:
        """One line on why the program failed, as a refinement turn shows it to the model."""
        if self.status == "sandbox_error":
            return f"The program could not be judged: {self.error}"
        if self.status != "ok":
            return f"The program stopped: {self.status} ({self.error or 'no detail'})"
        for index, test in enumerate(self.tests, 1):
            if test.outcome == "pass":
                continue
            name = test.test if show_tests and test.test else f"Test {index}"
            what = (
                f"{test.error_type}: {test.detail}"
                if test.error_type
                else (test.detail or test.outcome)
            )
            return f"{name} failed: {what}"
        return "All tests passed." if self.total else "There were no tests."

    def details(self) -> dict[str, Any]:
        """A JSON-ready record for experiences and analysis."""
        return {
            "status": self.status,
            "passed": self.passed,
            "total": self.total,
            "error": self.error,
            "wall_seconds": self.wall_seconds,
            "verified_by": self.verified_by,
            "tests": [t._asdict() for t in self.tests],
        }

    @classmethod
    def from_dict(
        cls, verdict: dict[str, Any], tests: list[str] | str | None = None
    ) -> "CodeGrade":
        """Read a sandbox ``Verdict.model_dump(mode="json")`` (plus the queue's ``verified_by``, if
        any); ``tests`` names the asserts."""
        names = (
            tests
            if isinstance(tests, list) and len(tests) == len(verdict["tests"])
            else [None] * len(verdict["tests"])
        )
        results = [
            TestResult(t["outcome"], t.get("error_type"), t.get("detail"), name)
            for t, name in zip(verdict["tests"], names)
        ]
        return cls(
            verdict["status"],
            verdict["passed"],
            verdict["total"],
            results,
            verdict.get("error"),
            float(verdict.get("wall_seconds") or 0.0),
            verdict.get("verified_by"),
        )

    @classmethod
    def unjudged(cls, reason: str) -> "CodeGrade":
        return cls("sandbox_error", error=reason)


def request_for(problem: Any, program: str) -> dict[str, Any]:
    """The sandbox request (as a dict) that judges ``program`` by ``problem``'s tests."""
    tests = problem.metadata.get("tests")
    if tests is None:
        raise ValueError(f"problem {problem.id!r} has no metadata['tests'] to verify against")
    request = {"id": str(problem.id), "program": program, "tests": tests}
    if problem.metadata.get("limits"):
        request["limits"] = problem.metadata["limits"]
    return request


@dataclass
class VerifyStats:
    """Running totals a benchmark or a trainer can read: calls, programs, seconds, failures."""

    calls: int = 0
    programs: int = 0
    distinct: int = 0
    seconds: float = 0.0
    unjudged: int = 0


class RequestVerifier:
    """``verify(problems, programs)`` over any transport of request dicts.

    Identical (program, tests) pairs in one call are judged once. A transport that raises or
    returns the wrong number of verdicts yields ``sandbox_error`` for the whole batch.
    Programs left ``sandbox_error`` are asked again up to ``retries`` times: such errors are
    the infrastructure's (a jail that failed to start on a loaded host), not the program's.
    Calls may come from several threads at once (a pipelined trainer judges in a background
    thread) as long as ``run_requests`` allows it.
    """

    def __init__(self, run_requests: RunRequests, batch_size: int | None = None, retries: int = 1):
        self.run_requests = run_requests
        self.batch_size = batch_size
        self.retries = retries
        self.stats = VerifyStats()
        self._stats_lock = threading.Lock()

    def __call__(self, problems: Sequence[Any], programs: Sequence[str]) -> list[CodeGrade]:
        started = time.perf_counter()
        requests = [
            request_for(problem, program)
            for problem, program in zip(problems, programs, strict=True)
        ]
        keys = [
            json.dumps([r["program"], r["tests"], r.get("limits")], sort_keys=True)
            for r in requests
        ]
        distinct = list(dict.fromkeys(keys))
        first = {key: requests[keys.index(key)] for key in distinct}
        found: dict[str, CodeGrade] = {}
        todo = distinct
        for _ in range(1 + self.retries):
            step = self.batch_size or max(len(todo), 1)
            for start in range(0, len(todo), step):
                chunk = todo[start : start + step]
                found.update(zip(chunk, self._run([first[key] for key in chunk])))
            todo = [key for key in todo if found[key].status == "sandbox_error"]
            if not todo:
                break
        grades = [found[key] for key in keys]
        with self._stats_lock:
            self.stats.calls += 1
            self.stats.programs += len(programs)
            self.stats.distinct += len(distinct)
            self.stats.unjudged += sum(g.status == "sandbox_error" for g in grades)
            self.stats.seconds += time.perf_counter() - started
        return grades

    def run_scripts(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Sandbox verdict dicts for requests whose caller reads the run itself (``ScriptRun``
        tests: the ``python`` reward), in ``batch_size`` batches over the same transport. A
        failed batch's verdicts are ``sandbox_error`` dicts, asked again up to ``retries``
        times, as programs are."""
        found: dict[int, dict[str, Any]] = {}
        todo = list(range(len(requests)))
        for _ in range(1 + self.retries):
            step = self.batch_size or max(len(todo), 1)
            for start in range(0, len(todo), step):
                chunk = todo[start : start + step]
                found.update(zip(chunk, self._run_raw([requests[i] for i in chunk])))
            todo = [i for i in todo if found[i].get("status") == "sandbox_error"]
            if not todo:
                break
        return [found[i] for i in range(len(requests))]

    def _run_raw(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        try:
            raw = self.run_requests(requests)
            if len(raw) != len(requests):
                raise RuntimeError(
                    f"the verifier returned {len(raw)} verdicts for {len(requests)} programs"
                )
            return raw
        except Exception as error:  # any transport failure: unjudged, never scored as wrong
            log.warning("script batch of %d failed: %s", len(requests), error)
            reason = f"{type(error).__name__}: {error}"
            return [{"status": "sandbox_error", "error": reason} for _ in requests]

    def _run(self, requests: list[dict[str, Any]]) -> list[CodeGrade]:
        try:
            raw = self.run_requests(requests)
            if len(raw) != len(requests):
                raise RuntimeError(
                    f"the verifier returned {len(raw)} verdicts for {len(requests)} programs"
                )
            return [CodeGrade.from_dict(v, r["tests"].get("tests")) for v, r in zip(raw, requests)]
        except Exception as error:  # any transport failure: unjudged, never scored as wrong
            log.warning("verify batch of %d failed: %s", len(requests), error)
            return [CodeGrade.unjudged(f"{type(error).__name__}: {error}") for _ in requests]


def local_sandbox_verifier(
    concurrency: int | None = None, sandbox: Any = None, retries: int = 1
) -> RequestVerifier:
    """A verifier running nsjail jails in this process, ``concurrency`` at a time.

    Raises ``sandbox.SandboxUnavailable`` at once if nsjail cannot run here.
    """
    import sandbox as sandbox_package

    box = sandbox or sandbox_package.Sandbox()

    def run_requests(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        parsed = [sandbox_package.VerifyRequest.model_validate(r) for r in requests]
        verdicts = sandbox_package.verify(parsed, sandbox=box, concurrency=concurrency)
        return [v.model_dump(mode="json") for v in verdicts]

    return RequestVerifier(run_requests, retries=retries)


def verifier_for(
    task_options: Any, settings: Any = None, rewards: Sequence[Any] = ()
) -> RequestVerifier | None:
    """The CLI's verifier: an in-process sandbox pool when the task runs code or a reward is
    ``python`` (a user's reward function, run in the sandbox), else None.

    ``settings`` is a spec's ``VerifierSpec`` (``concurrency``, ``retries``); ``rewards`` its
    ``RewardSpec`` list.
    """
    from rlvr.tasks.base import TASKS, CodeTask

    runs_code = issubclass(TASKS[task_options.name], CodeTask)
    if not runs_code and not any(_names_python(reward.model_dump()) for reward in rewards):
        return None
    return local_sandbox_verifier(
        getattr(settings, "concurrency", None), retries=getattr(settings, "retries", 1)
    )


def _names_python(reward: dict[str, Any]) -> bool:
    """Whether a reward entry is ``python``, or a ``composite`` with one among its components."""
    components = (reward.get("kwargs") or {}).get("components") or []
    return reward.get("name") == "python" or any(_names_python(c) for c in components)
