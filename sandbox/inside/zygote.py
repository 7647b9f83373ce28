"""The zygote: a warm, trusted interpreter in a long-lived nsjail that forks a confined
process per program (and per stdio case, and per in-jail check), as Android's zygote does.

It talks to the host over one SOCK_SEQPACKET socket: JSON messages, with the pipes for each
child attached as SCM_RIGHTS. It never reads a program, a test, a value or an output: those
travel in pipes between the host and the children. So a process forked from here holds no
trace of another program, and nothing a program writes can reach the host except through
its own pipes. Its whole job: spawn (`confine.Confiner.spawn`), kill on the host's word, and
report each child's exit status and CPU time. Modules a program often imports are imported
here once, before any program, so a forked child finds them loaded.

Messages in:  {"op": "spawn", "slot", "role", "limits"} + fds (the child's 0, 1, 2[, reports])
              {"op": "spawn_check", "slots": [serve, check], "limits"} + fds
                  (serve's 0, 1, 2; check's 0, reports): the two talk over pipes made here
              {"op": "kill", "slots": [...]}
Messages out: {"op": "ready"}, {"op": "exit", "slot", "status", "cpu"},
              {"op": "spawn_failed", "slot", "error"}
"""

import contextlib
import json
import os
import selectors
import signal
import socket

from sandbox.inside import check, confine, program

ROLES = {"probes": program.run_probes, "serve": program.serve, "script": program.run_script}


def main(sock, hello):
    import ctypes

    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no core, no /proc access
    for name in hello["preload"]:
        with contextlib.suppress(ImportError):  # an interpreter built without one
            __import__(name)
    Zygote(sock, confine.Confiner()).loop()


class Zygote:
    def __init__(self, sock, confiner):
        self.sock = sock
        self.confiner = confiner
        self.children = {}  # pid -> (slot, pidfd)
        self.selector = selectors.DefaultSelector()
        self.selector.register(sock, selectors.EVENT_READ)
        self.devnull = os.open("/dev/null", os.O_RDWR)

    def send(self, **message):
        self.sock.send(json.dumps(message).encode())

    def loop(self):
        self.send(op="ready")
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.sock:
                    if not self.command():
                        return self.shutdown()
                else:
                    self.reap(key.data)

    def command(self):
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, 8)
        except OSError:
            return False
        if not data:
            return False  # the host closed its end: it is done with this jail
        message = json.loads(data)
        try:
            if message["op"] == "spawn":
                role = ROLES[message["role"]]
                self.start(
                    message["slot"],
                    dict(zip((0, 1, 2, program.REPORTS), fds, strict=False)),
                    message["limits"],
                    role,
                )
            elif message["op"] == "spawn_check":
                self.start_check(message["slots"], fds, message["limits"])
            elif message["op"] == "kill":
                for pid, (slot, _) in list(self.children.items()):
                    if slot in message["slots"]:
                        os.kill(pid, signal.SIGKILL)
        finally:
            for fd in fds:
                os.close(fd)
        return True

    def start(self, slot, fds, limits, run):
        try:
            pid, confined = self.confiner.spawn(fds, limits, run)
            if pid is not None:
                pidfd = os.pidfd_open(pid)
                self.children[pid] = (slot, pidfd)
                self.selector.register(pidfd, selectors.EVENT_READ, pid)
        except OSError as exc:  # out of processes, say: the host ends this jail and tries another
            self.send(op="spawn_failed", slot=slot, error=str(exc))
            return
        if not confined:
            self.send(op="spawn_failed", slot=slot, error="the child could not confine itself")

    def start_check(self, slots, fds, limits):
        serve_body, out, err, check_body, outcome = fds
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        try:
            serve_fds = {
                0: serve_body,
                1: out,
                2: err,
                program.REPORTS: replies_w,
                program.REQUESTS: requests_r,
            }
            self.start(slots[0], serve_fds, limits, program.serve)
            check_fds = {
                0: check_body,
                1: self.devnull,
                2: self.devnull,
                program.REPORTS: outcome,
                program.REQUESTS: requests_w,
                check.REPLIES: replies_r,
            }
            self.start(slots[1], check_fds, limits, check.run)
        finally:
            for fd in (requests_r, requests_w, replies_r, replies_w):
                os.close(fd)

    def reap(self, pid):
        slot, pidfd = self.children.pop(pid)
        self.selector.unregister(pidfd)
        os.close(pidfd)
        _, status, usage = os.wait4(pid, 0)
        self.send(op="exit", slot=slot, status=status, cpu=usage.ru_utime + usage.ru_stime)

    def shutdown(self):
        for pid, (_, pidfd) in self.children.items():
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(pidfd)
        os._exit(0)
