"""Runs untrusted Python under nsjail and judges it outside the jail.

    from sandbox import verify, VerifyRequest, FunctionTests
    verdicts = verify([VerifyRequest(program=src, tests=FunctionTests(tests=asserts))])

Imports nothing else of this project; see README "The sandbox".
"""

from sandbox.checks import TestSpecError
from sandbox.core import Sandbox, SandboxUnavailable, verify
from sandbox.models import (
    FunctionTests,
    Limits,
    ScriptRun,
    StdioCase,
    StdioTests,
    TestOutcome,
    Verdict,
    VerifyRequest,
)

__all__ = [
    "FunctionTests",
    "Limits",
    "Sandbox",
    "SandboxUnavailable",
    "ScriptRun",
    "StdioCase",
    "StdioTests",
    "TestOutcome",
    "TestSpecError",
    "Verdict",
    "VerifyRequest",
    "verify",
]
