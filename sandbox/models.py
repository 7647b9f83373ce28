"""The sandbox's data: what a caller asks to verify and the verdict it gets back.

These are plain pydantic models so that the CLI, the Celery `verify` queue and the JSON API
all validate and serialise them the same way (`model_dump()` / `model_validate()`).
This module owns no behaviour beyond validation and a few derived properties.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Model):
    """Resource limits for one jail (one program with all of its test cases)."""

    wall_seconds: float = Field(
        20.0, gt=0, le=600, description="Wall-clock limit for the whole jail."
    )
    cpu_seconds: int = Field(
        20, gt=0, le=600, description="CPU-time limit (RLIMIT_CPU) for each process of the run."
    )
    test_seconds: float = Field(
        5.0,
        gt=0,
        le=600,
        description="Limit for a single test case; a slow case becomes `timeout`.",
    )
    memory_mb: int = Field(
        512,
        ge=32,
        le=65536,
        description="Memory for the program and all it starts (the jail's cgroup holds this plus the zygote's).",
    )
    max_pids: int = Field(
        16, ge=2, le=4096, description="Most processes and threads alive at once."
    )
    output_bytes: int = Field(
        1 << 20,
        ge=1024,
        le=1 << 30,
        description="Cap on each process's stdout, stderr and reports, each.",
    )
    tmpfs_mb: int = Field(
        16, ge=1, le=4096, description="Size of the writable /tmp inside the jail."
    )


class FunctionTests(_Model):
    """Assert-style tests, as MBPP's `test_list` + `test_setup_code` or HumanEval's `test`.

    Each assert is split with `ast`: the parts that touch the program's namespace run in the
    program's process and come back as plain values; the comparison runs on the host, so
    expected values never reach the program. With `entry_point`, `tests` is HumanEval style
    code defining `check(candidate)`, called with the program's `entry_point`; test code that
    cannot be split runs in a check process of its own. `setup` runs in the program's process.
    """

    kind: Literal["function"] = "function"
    tests: list[str] | str = Field(
        description="Assert statements (a list) or test source code (a string)."
    )
    setup: str = Field("", description="Code run in the jail after the program, before the tests.")
    entry_point: str | None = Field(
        None, description="Name of the function HumanEval's `check` receives."
    )


class StdioCase(_Model):
    stdin: str = ""
    stdout: str = Field(
        description="Expected output; compared whole, trailing whitespace normalised."
    )


class StdioTests(_Model):
    """The program reads stdin and writes stdout, once per case, each in a fresh process."""

    kind: Literal["stdio"] = "stdio"
    cases: list[StdioCase] = Field(min_length=1)


class ScriptRun(_Model):
    """Run the program once and hand back what it did; a custom verifier judges it."""

    kind: Literal["script"] = "script"
    stdin: str = ""
    args: list[str] = Field(default_factory=list)


TestSpec = Annotated[FunctionTests | StdioTests | ScriptRun, Field(discriminator="kind")]


class VerifyRequest(_Model):
    """One program and the tests to judge it by."""

    program: str = Field(description="Python source text, untrusted.")
    tests: TestSpec
    limits: Limits = Field(default_factory=Limits)
    id: str | None = Field(None, description="Caller's label, echoed in the verdict.")


Outcome = Literal["pass", "wrong", "error", "timeout"]
Status = Literal["ok", "timeout", "memory", "output_limit", "sandbox_error"]


class TestOutcome(_Model):
    __test__ = False  # not a pytest class

    outcome: Outcome
    error_type: str | None = Field(
        None, description="Exception type name for `error`, e.g. `ZeroDivisionError`."
    )
    detail: str | None = Field(None, description="What the program returned or raised, shortened.")


class Verdict(_Model):
    """What the sandbox decided about one program.

    `status` describes the run as a whole; `tests` has one outcome per test case. A
    `sandbox_error` is an infrastructure failure, not a wrong answer: callers must not score it.
    """

    id: str | None = None
    status: Status
    passed: int
    total: int
    tests: list[TestOutcome]
    wall_seconds: float
    cpu_seconds: float
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = Field(None, description="Why the run as a whole failed, if it did.")

    @property
    def all_passed(self) -> bool:
        return self.status == "ok" and self.total > 0 and self.passed == self.total

    @property
    def pass_fraction(self) -> float | None:
        """Fraction of tests passed, or None when the sandbox itself failed."""
        if self.status == "sandbox_error":
            return None
        return self.passed / self.total if self.total else 0.0
