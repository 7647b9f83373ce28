"""Running one launch in a zygote: its pipes, its clocks and its output caps.

A launch is one or two confined processes started together (a program; or a check process
and the program it calls). The host makes every pipe, so that what a process writes comes
straight here: the zygote only passes the descriptors on. The host keeps the clocks too, as
hard limits a program cannot see or swallow: the wall-clock deadline of the whole run, and,
for a program reporting tests one frame at a time, `frame_seconds` from the previous frame
(the program's own per-test timer is the soft limit under it). Past a limit, or past
`output_bytes` on any pipe, the zygote is told to kill the launch; a process that was given
its own PID namespace takes everything it started with it. Nothing read here is parsed
beyond frame lengths: judging what was written is `sandbox.judge`'s job.
"""

from __future__ import annotations

import marshal
import os
import selectors
import time
from dataclasses import dataclass, field

from sandbox.zygotes import Zygote, ZygoteFailed

KEEP_BYTES = 1 << 14  # of stdout (its start) and stderr (its end) kept for the verdict
KILL_GRACE = 5.0  # seconds for the zygote to report a killed launch before the jail is ended


@dataclass
class Child:
    """One process of a launch: its role, its plan (sent on descriptor 0), what it writes."""

    role: str
    plan: dict
    stdin: bytes = b""  # follows the plan on descriptor 0 (stdio cases)
    outputs: tuple[str, ...] = ("stdout", "stderr", "frames")
    keep_stdout: int = KEEP_BYTES  # stdio cases keep all of it, to compare
    slot: int = -1
    # Filled in by `run`:
    streams: dict[str, bytearray] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)  # bytes written to each, kept or not
    frames: list[bytes] = field(default_factory=list)
    status: int | None = None  # a wait status, from the zygote
    cpu: float = 0.0


@dataclass
class Launch:
    children: list[Child]
    killed: str | None = None  # "time" or "output": why the host ended it
    wall_seconds: float = 0.0
    spawn_error: str | None = None


def run(
    zygote: Zygote,
    children: list[Child],
    limits: dict,
    *,
    deadline: float,
    output_bytes: int,
    frame_seconds: float | None = None,
) -> Launch:
    """Start `children` (one, or a serve and check pair), feed them, read them, reap them.

    Raises ZygoteFailed when the zygote dies or stops answering; the caller ends it.
    """
    launch = Launch(children)
    start = time.monotonic()
    readers: dict[int, tuple[Child, str]] = {}
    writers: dict[int, memoryview] = {}
    sent: list[int] = []
    try:
        for child in children:
            child.slot = zygote.slot()
            body = marshal.dumps(child.plan)
            body_r, body_w = os.pipe()
            sent.append(body_r)
            writers[body_w] = memoryview(len(body).to_bytes(4, "little") + body + child.stdin)
            for name in child.outputs:
                r, w = os.pipe()
                sent.append(w)
                readers[r] = (child, name)
                child.streams[name] = bytearray()
        if len(children) == 1:
            message = {
                "op": "spawn",
                "slot": children[0].slot,
                "role": children[0].role,
                "limits": limits,
            }
        else:
            message = {"op": "spawn_check", "slots": [c.slot for c in children], "limits": limits}
        zygote.send(message, sent)
    except BaseException:
        for fd in [*readers, *writers]:
            os.close(fd)
        raise
    finally:
        for fd in sent:
            os.close(fd)
    try:
        _pump(zygote, launch, readers, writers, start, deadline, frame_seconds, output_bytes)
    finally:
        for fd in [*readers, *writers]:
            os.close(fd)
    launch.wall_seconds = time.monotonic() - start
    if launch.spawn_error:
        zygote.broken = True
        raise ZygoteFailed(f"the zygote could not start a process: {launch.spawn_error}")
    return launch


def _pump(zygote, launch, readers, writers, start, deadline, frame_seconds, cap) -> None:
    slots = {c.slot: c for c in launch.children}
    last_frame = start
    kill_sent = None
    with selectors.DefaultSelector() as sel:
        for fd in readers:
            sel.register(fd, selectors.EVENT_READ)
        for fd in writers:
            os.set_blocking(fd, False)
            sel.register(fd, selectors.EVENT_WRITE)
        sel.register(zygote.ctl, selectors.EVENT_READ)
        sel.register(zygote.log_fd, selectors.EVENT_READ)
        while any(c.status is None for c in launch.children) or len(sel.get_map()) > 2:
            now = time.monotonic()
            limit = deadline if frame_seconds is None else min(deadline, last_frame + frame_seconds)
            if kill_sent is None and now >= limit:
                launch.killed = "time"
            if launch.killed and kill_sent is None:
                zygote.send({"op": "kill", "slots": list(slots)})
                kill_sent = now
            if kill_sent is not None and now - kill_sent > KILL_GRACE:
                zygote.broken = True
                raise ZygoteFailed("the zygote did not end a killed launch")
            wait = max(0.0, (limit if kill_sent is None else kill_sent + KILL_GRACE) - now)
            for key, _ in sel.select(wait):
                fd = key.fd
                if key.fileobj is zygote.ctl:
                    _message(zygote, launch, slots)
                elif fd == zygote.log_fd:
                    zygote.drain_log()
                elif fd in writers:
                    _write(sel, writers, fd)
                else:
                    child, name = readers[fd]
                    frames = len(child.frames)
                    if _read(sel, fd, child, name, cap):
                        launch.killed = launch.killed or "output"
                    if len(child.frames) > frames:
                        last_frame = time.monotonic()


def _message(zygote: Zygote, launch: Launch, slots: dict) -> None:
    message = zygote.receive(time.monotonic() + KILL_GRACE)
    if message is None:
        zygote.broken = True
        raise ZygoteFailed(f"the zygote died: {zygote.reason()}")
    if message.get("op") == "exit" and message.get("slot") in slots:
        child = slots[message["slot"]]
        child.status, child.cpu = message["status"], message["cpu"]
    elif message.get("op") == "spawn_failed":
        launch.spawn_error = str(message.get("error"))
        launch.killed = launch.killed or "spawn"


def _write(sel, writers: dict[int, memoryview], fd: int) -> None:
    pending = writers[fd]
    try:
        pending = pending[os.write(fd, pending[: 1 << 16]) :]
    except BrokenPipeError:
        pending = pending[:0]  # the process stopped reading: its business
    writers[fd] = pending
    if not pending:
        sel.unregister(fd)
        os.close(fd)
        del writers[fd]


def _read(sel, fd: int, child: Child, name: str, cap: int) -> bool:
    """Read what is there; True if the stream went over `cap`."""
    chunk = os.read(fd, 1 << 16)
    if not chunk:
        sel.unregister(fd)
        return False
    stream = child.streams[name]
    total = child.totals[name] = child.totals.get(name, 0) + len(chunk)
    if total > cap:
        return True  # the rest is not kept: the launch is being ended
    if name == "stderr":
        stream += chunk
        del stream[:-KEEP_BYTES]
    elif name == "stdout":
        stream += chunk[: max(0, child.keep_stdout - len(stream))]
    else:
        stream += chunk
        if name == "frames":
            _split_frames(child)
    return False


def _split_frames(child: Child) -> None:
    """Move whole frames (a 4-byte length, then that many bytes) from the stream to `frames`."""
    stream = child.streams["frames"]
    while len(stream) >= 4:
        size = int.from_bytes(stream[:4], "little")
        if len(stream) < 4 + size:
            break
        child.frames.append(bytes(stream[4 : 4 + size]))
        del stream[: 4 + size]
