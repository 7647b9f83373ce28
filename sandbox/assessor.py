"""Judging what a program's processes wrote, on the host but outside the verify threads.

Every frame a jail sends (the program's values, its errors, a check process's outcome) is
parsed, decoded (`sandbox.values`, with its size caps) and compared (`sandbox.expressions`)
in a helper process, never in the thread that called `verify`: the helper runs under a
memory limit (`HELPER_MEMORY_MB`), as `nobody` when the host runs as root, and a program's
frames get `JUDGE_SECONDS` of it, after which the helper is killed and replaced. Decoding
sets of hash-colliding ints, say, costs a program's own tests an `error` ("JudgeLimit"),
never the host's time or its neighbours' verdicts. Anything malformed becomes that test's
`error`; nothing here raises out of `judge` except `AssessorFailed`, for a helper that could
not start (a sandbox_error).

The helper imports this module by path without the package's `__init__` (no pydantic), so
this module imports only the standard library and the two modules above. Items and
outcomes are plain dicts; `sandbox.judge` builds them and reads them back.
"""

from __future__ import annotations

import ast
import functools
import json
import marshal
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sandbox import values
from sandbox.expressions import JudgeError, evaluate

JUDGE_SECONDS = 2.0  # per program, for all of its frames; judging an honest one takes ~1 ms
START_SECONDS = 30.0  # for a helper to start, on a loaded machine
NOBODY = 65534
HELPER_MEMORY_MB = 1024
_HELPER = f"""
import sys
sys.modules["sandbox"] = type(sys)("sandbox")
sys.modules["sandbox"].__path__ = [{str(Path(__file__).parent)!r}]
from sandbox.assessor import serve
serve()
"""


class AssessorFailed(RuntimeError):
    """A helper could not be started or talked to: not the program's doing."""


class Assessor:
    """A pool of helper processes; `judge` may be called from many threads at once."""

    def __init__(self) -> None:
        self._idle: list[subprocess.Popen] = []
        self._lock = threading.Lock()

    def judge(self, items: list[dict], max_bytes: int) -> list[dict]:
        """One outcome per item, in order. An item is {"kind": "load" | "test" | "check",
        "frame": bytes or None, "expr": the host side's source (tests)}."""
        if not items:
            return []
        helper = self._take()
        request = marshal.dumps({"items": items, "max_bytes": max_bytes})
        outcomes: list[dict] = []
        try:
            data = memoryview(len(request).to_bytes(4, "little") + request)
            while data:
                data = data[helper.stdin.write(data) :]
            fd, pending = helper.stdout.fileno(), b""
            deadline = time.monotonic() + JUDGE_SECONDS
            while len(outcomes) < len(items):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([fd], [], [], left)[0]:
                    break
                chunk = os.read(fd, 1 << 16)  # unbuffered: select must see what is left to read
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                outcomes += [json.loads(line) for line in lines]
        except (OSError, ValueError):
            pass
        if len(outcomes) < len(items):
            _discard(helper)  # over its time, or broken: its state is not worth keeping
            over = {
                "outcome": "error",
                "error_type": "JudgeLimit",
                "detail": f"judging the program's values took over {JUDGE_SECONDS} s or failed",
            }
            return outcomes + [over] * (len(items) - len(outcomes))
        with self._lock:
            self._idle.append(helper)
        return outcomes

    def _take(self) -> subprocess.Popen:
        with self._lock:
            while self._idle:
                helper = self._idle.pop()
                if helper.poll() is None:
                    return helper
                _discard(helper)
        try:
            # -S: no site, so no virtualenv packages; the helper needs the standard library only.
            helper = subprocess.Popen(
                [sys.executable, "-S", "-s", "-B", "-c", _HELPER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
            )
        except OSError as exc:
            raise AssessorFailed(f"could not start a judging helper: {exc}") from exc
        # Its start (an interpreter and three modules) is not a program's to pay for out of
        # JUDGE_SECONDS: the clock starts once it says it is ready.
        fd = helper.stdout.fileno()
        if not select.select([fd], [], [], START_SECONDS)[0] or os.read(fd, 6) != b"ready\n":
            _discard(helper)
            raise AssessorFailed("a judging helper did not start")
        return helper

    def forget(self) -> None:
        """In a forked child: drop the parent's helpers, closing only this process's pipes."""
        self._lock = threading.Lock()
        for helper in self._idle:
            helper.stdin.close()
            helper.stdout.close()
        self._idle = []

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for helper in idle:
            helper.stdin.close()  # it reads EOF and exits
            try:
                helper.wait(timeout=5)
            except subprocess.TimeoutExpired:
                helper.kill()
                helper.wait()
            helper.stdout.close()


def _discard(helper: subprocess.Popen) -> None:
    helper.kill()
    helper.wait()
    helper.stdin.close()
    helper.stdout.close()


def serve() -> None:
    """The helper's loop: read a request, write one JSON line per item."""
    limit = HELPER_MEMORY_MB << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if os.geteuid() == 0:  # it parses what programs wrote: never as root (its modules are loaded)
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is for the host process
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(b"ready\n")
    stdout.flush()
    while header := stdin.read(4):
        request = marshal.loads(stdin.read(int.from_bytes(header, "little")))
        for item in request["items"]:
            try:
                outcome = assess(item, request["max_bytes"])
            except MemoryError:
                outcome = {
                    "outcome": "error",
                    "error_type": "JudgeLimit",
                    "detail": "values too large to judge",
                }
            except BaseException as exc:
                outcome = {
                    "outcome": "error",
                    "error_type": "JudgeError",
                    "detail": f"{type(exc).__name__}: {exc}",
                }
            stdout.write(json.dumps(outcome).encode() + b"\n")
            stdout.flush()
    os._exit(0)


def assess(item: dict, max_bytes: int) -> dict:
    """The outcome of one frame; "loaded" for a program that loaded."""
    if item["frame"] is None:
        return {"outcome": "missing"}
    try:
        frame = values.loads(item["frame"], max_bytes)
        if type(frame) is not dict:
            raise ValueError("not an object")
    except values.ValueLimit as exc:
        return _error("JudgeLimit", str(exc))
    except ValueError as exc:
        return _error("MalformedResult", str(exc))
    if frame.get("timeout") is True:
        return {"outcome": "timeout", "detail": "test ran past its time limit"}
    if "error" in frame or "load_error" in frame:
        return _raised(frame)
    match item["kind"]:
        case "load":
            return (
                {"loaded": True}
                if frame.get("loaded") is True
                else _error("MalformedResult", "no load report")
            )
        case "check":
            if frame.get("pass") is True:
                return {"outcome": "pass"}
            if "fail" in frame:
                kind, message = _pair(frame["fail"])
                return {"outcome": "wrong", "detail": f"{kind}: {message}" if message else kind}
            return _error("MalformedResult", "no outcome")
    return _judge(item["expr"], frame.get("values"), max_bytes)


def _judge(expr: str, encoded: object, max_bytes: int) -> dict:
    if type(encoded) is not list:
        return _error("MalformedResult", "no values")
    try:
        decoder = values.Decoder()
        got = [decoder.decode(v) for v in encoded]
    except values.ValueLimit as exc:
        return _error("JudgeLimit", str(exc))
    except ValueError as exc:
        return _error("MalformedResult", str(exc))
    try:
        if evaluate(_parsed(expr), got):
            return {"outcome": "pass"}
        shown = ", ".join(repr(v)[:100] for v in got)
        return {"outcome": "wrong", "detail": f"got {shown}"[:300]}
    except (JudgeError, RecursionError) as exc:
        return {"outcome": "wrong", "detail": f"could not judge the returned value: {exc}"[:300]}


@functools.lru_cache(maxsize=4096)
def _parsed(expr: str) -> ast.Expression:
    return ast.parse(expr, mode="eval")


def _raised(frame: dict) -> dict:
    load = frame.get("load_error")
    if isinstance(load, dict):  # a check process whose program did not load
        timeout = {"outcome": "timeout", "detail": "loading ran past the time limit"}
        return {**(timeout if load.get("timeout") is True else _raised(load)), "context": "load"}
    kind, message = _pair(frame.get("error"))
    return {"outcome": "error", "error_type": kind[:64], "detail": message[:300]}


def _pair(value: object) -> tuple[str, str]:
    if isinstance(value, list) and len(value) == 2:
        return str(value[0]), str(value[1])
    return "Error", ""


def _error(kind: str, detail: str) -> dict:
    return {"outcome": "error", "error_type": kind, "detail": detail[:300]}
