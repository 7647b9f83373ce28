"""What every process the zygote forks goes through before untrusted code runs in it.

`spawn` forks twice: a short-lived parent unshares a PID namespace, and its child, the first
process of that namespace, is the one returned. When it ends, the kernel kills everything it
started, so a program cannot leave a process behind for the next one. That child then
(`_enter`) takes a new mount and IPC namespace with a fresh size-capped tmpfs on /tmp, so no
file or shared-memory segment outlives it; keeps only the descriptors it was given; lowers
its resource limits; drops every capability (the zygote keeps them to do the above, the
child cannot get them back); and installs a seccomp filter on top of nsjail's.

The filter (`seccomp_filter`, x86-64 only: any other architecture is killed) fails with EPERM
the calls in `DENIED`, which a program never needs and kernel exploits often do, and any
`clone` that asks for a new namespace; `clone3` fails with ENOSYS, as container runtimes do,
because its flags sit in memory a filter cannot read and libc falls back to `clone`.
Standard library only; `seccomp_filter` is a pure function the host's tests also call.
"""

import contextlib
import os
import resource
import struct

# x86-64 numbers (arch/x86/entry/syscalls/syscall_64.tbl), by kafel's names (its "umount" is
# umount2). nsjail's own policy denies the
# same names except unshare and mount, which the zygote itself needs.
DENIED = {
    "unshare": 272, "setns": 308, "ptrace": 101, "process_vm_readv": 310,
    "process_vm_writev": 311, "bpf": 321, "userfaultfd": 323, "perf_event_open": 298,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "keyctl": 250,
    "add_key": 248, "request_key": 249, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320, "mount": 165,
    "umount": 166, "pivot_root": 155, "chroot": 161, "open_by_handle_at": 304,
    "name_to_handle_at": 303, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "move_mount": 429, "open_tree": 428, "mount_setattr": 442, "personality": 135,
    "acct": 163, "swapon": 167, "swapoff": 168, "reboot": 169, "syslog": 103,
}  # fmt: skip
CLONE, CLONE3 = 56, 435
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET (clone's low word;
# CLONE_NEWTIME shares its bit with the exit signal there and exists for clone3 only).
CLONE_NAMESPACES = (
    0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
)
AUDIT_ARCH_X86_64 = 0xC000003E
EPERM, ENOSYS = 1, 38

_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _ERRNO, _KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000


def seccomp_filter():
    """The classic-BPF program, as the bytes of a `struct sock_filter` array."""
    code = [
        (_LD_ABS, 0, 0, 4),  # seccomp_data.arch
        (_JEQ, 0, "kill", AUDIT_ARCH_X86_64),
        (_LD_ABS, 0, 0, 0),  # seccomp_data.nr
        (_JGE, "eperm", 0, 0x40000000),  # the x32 ABI: same calls under other numbers
        *((_JEQ, "eperm", 0, nr) for nr in DENIED.values()),
        (_JEQ, "enosys", 0, CLONE3),
        (_JEQ, 0, "allow", CLONE),
        (_LD_ABS, 0, 0, 16),  # args[0], low 32 bits: clone's flags
        (_JSET, "eperm", 0, CLONE_NAMESPACES),
    ]
    labels = {
        "allow": _ALLOW,
        "eperm": _ERRNO | EPERM,
        "enosys": _ERRNO | ENOSYS,
        "kill": _KILL_PROCESS,
    }
    where = {name: len(code) + i for i, name in enumerate(labels)}
    code += [(_RET, 0, 0, value) for value in labels.values()]

    def jump(target, at):
        return target if type(target) is int else where[target] - at - 1

    return b"".join(
        struct.pack("<HBBI", op, jump(jt, i), jump(jf, i), k)
        for i, (op, jt, jf, k) in enumerate(code)
    )


class Confiner:
    """The system calls `_enter` needs, looked up once in the zygote."""

    def __init__(self):
        import ctypes

        self.ctypes = ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        program = seccomp_filter()
        self._filter = ctypes.create_string_buffer(program, len(program))

        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        self._fprog = SockFprog(len(program) // 8, ctypes.addressof(self._filter))
        # capset(2): version 3 header and two zeroed data words: no effective, permitted or
        # inheritable capabilities (ambient ones go with them).
        self._cap_header = struct.pack("<Ii", 0x20080522, 0)
        self._cap_data = ctypes.create_string_buffer(24)

    def check(self, result, what):
        if result != 0:
            errno = self.ctypes.get_errno()
            raise OSError(errno, f"{what}: {os.strerror(errno)}")

    def spawn(self, fds, limits, run):
        """Fork a confined process that runs `run()` with `fds` ({number in child: ours})."""
        ready_r, ready_w = os.pipe()
        parent = os.fork()
        if parent == 0:
            code = 1
            try:
                os.close(ready_r)
                os.unshare(os.CLONE_NEWPID)  # for this process's children only
                child = os.fork()
                if child == 0:
                    self._child(fds, limits, run, ready_w)
                os.write(ready_w, b"P" + child.to_bytes(4, "little"))
                code = 0
            finally:
                os._exit(code)
        os.close(ready_w)
        try:
            os.waitpid(parent, 0)
            # "P" and the child's pid from the parent, "K" from the child once it is confined:
            # two atomic writes, in either order.
            reply = b""
            while len(reply) < 6 and (chunk := os.read(ready_r, 6 - len(reply))):
                reply += chunk
        finally:
            os.close(ready_r)
        at = reply.find(b"P")  # the first "P" is the tag: only a "K" can come before it
        if at < 0 or len(reply) < at + 5:
            return None, False
        return int.from_bytes(reply[at + 1 : at + 5], "little"), reply[:at] + reply[
            at + 5 :
        ] == b"K"

    def _child(self, fds, limits, run, ready_w):
        code = 70  # EX_SOFTWARE: the zygote sees no ready byte and reports a failed start
        try:
            ready_w = self._enter(fds, limits, ready_w)
            os.write(ready_w, b"K")
            os.close(ready_w)
            run()
            code = 0
        finally:
            os._exit(code)

    def _enter(self, fds, limits, keep):
        keep = _arrange(fds, keep)
        os.unshare(os.CLONE_NEWNS | os.CLONE_NEWIPC)
        # Private first, so that the mount below never propagates back to the zygote.
        self.check(self.libc.mount(b"none", b"/", None, 1 << 14 | 1 << 18, None), "mount private")
        options = f"size={limits['tmpfs_mb']}m,nr_inodes=4096".encode()
        self.check(
            self.libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 2 | 4, options), "mount /tmp"
        )  # nosuid, nodev
        os.chdir("/tmp")
        for name, value in limits["rlimits"].items():
            resource.setrlimit(getattr(resource, name), (value, value))
        for cap in range(64):  # the bounding set, up to the kernel's last capability
            if self.libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                break
        self.check(self.libc.syscall(126, self._cap_header, self._cap_data), "capset")
        self.check(self.libc.prctl(38, 1, 0, 0, 0), "no_new_privs")
        self.check(self.libc.prctl(22, 2, self.ctypes.byref(self._fprog), 0, 0), "seccomp")
        return keep


def _arrange(fds, keep):
    """Put each of `fds` at its number, keep `keep` (returned at its new number), close the rest."""
    high = 900
    os.dup2(keep, high)
    for target, source in fds.items():
        os.dup2(source, high + 1 + target)
    for target in fds:
        os.dup2(high + 1 + target, target)
    wanted = max(fds, default=-1)
    os.closerange(wanted + 1, high)
    os.closerange(high + 1, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    for fd in range(wanted):
        if fd not in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
    return high
