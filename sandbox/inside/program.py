"""The program's side: what runs in the confined process the zygote forks for a program.

Nothing here is trusted once the program starts, since the program runs in this process and
may change any of it. So this code decides nothing: it reads its plan (the program, setup
code and the expressions to evaluate, never an expected value) from descriptor 0, runs the
program, and writes frames (a 4-byte length, then JSON) to `REPORTS`, which only the host
(or, for `serve`, the check process) reads, as untrusted values.

Roles, one per process:
- `run_probes`: load the program, then evaluate each test's probe expressions in its
  namespace, one frame per test, each under a soft per-test timer (SIGALRM). The host keeps
  the hard limit: a program that swallows the timer is killed from outside.
- `serve`: load the program, then answer a check process's calls read from `REQUESTS`.
- `run_script`: run the program as `__main__`; the rest of descriptor 0 is its stdin.
"""

import _signal
import builtins
import contextlib
import marshal
import os
import sys
from _json import encode_basestring_ascii

from sandbox import values

# Where the harness talks, out of the way of the descriptors a program opens (the lowest
# free ones): a program that writes to 3, 4, ... corrupts nothing. 63: RLIMIT_NOFILE is 64.
REPORTS, REQUESTS = 63, 62
# The program may patch builtins and modules (json's encoder looks up `isinstance` at call
# time); the harness keeps its own references, taken before the program starts.
_write, _escape = os.write, encode_basestring_ascii
_type, _str, _int, _float, _list, _dict, _len = type, str, int, float, list, dict, len


class _TestTimeout(BaseException):
    """Raised in the program's frame when a test runs past its time."""


def read_body(fd=0):
    """The plan the host wrote, read exactly, so that what follows stays in the pipe."""
    return marshal.loads(_read_exact(fd, int.from_bytes(_read_exact(fd, 4), "little")))


def _read_exact(fd, size):
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError("the pipe closed mid-message")
        data += chunk
    return data


def send(fd, obj):
    data = _json(obj).encode()
    data = _int.to_bytes(_len(data), 4, "little") + data
    while data:
        data = data[_write(fd, data) :]


def _json(obj):
    """JSON for what `values.encode` and this module build: dicts, lists, str, numbers, None."""
    t = _type(obj)
    if t is _str:
        return _escape(obj)
    if obj is None:
        return "null"
    if obj is True or obj is False:
        return "true" if obj else "false"
    if t is _int:
        return _int.__repr__(obj)
    if t is _float:
        return _float.__repr__(obj)  # finite: only the harness's own clock readings
    if t is _list:
        return "[" + ",".join([_json(v) for v in obj]) + "]"
    if t is _dict:
        return "{" + ",".join([_escape(k) + ":" + _json(v) for k, v in _dict.items(obj)]) + "}"
    raise TypeError(f"cannot send {t.__name__}")


def receive(fd, max_bytes=1 << 30):
    size = int.from_bytes(_read_exact(fd, 4), "little")
    if size > max_bytes:
        raise ValueError(f"a reply of {size} bytes is over the {max_bytes}-byte limit")
    return values.loads(_read_exact(fd, size), max_bytes)


def error(exc):
    try:
        message = str(exc)[:300]
    except BaseException:  # a __str__ that raises; one that never returns meets the host's clock
        message = "(the exception's message could not be read)"
    return {"error": [type(exc).__name__, message]}


def _on_alarm(signum, frame):
    raise _TestTimeout()


def _timer(seconds):
    _signal.setitimer(_signal.ITIMER_REAL, seconds)


def _guarded(seconds, work):
    """`work()`'s frame, or a timeout or error frame; the timer is off on the way out."""
    try:
        try:
            _timer(seconds)
            return work()
        finally:
            _timer(0)
    except _TestTimeout:
        return {"timeout": True}
    except BaseException as exc:  # SystemExit included: the program's, reported as its error
        return error(exc)


def _start(plan):
    _stdio()
    _signal.signal(_signal.SIGALRM, _on_alarm)
    namespace = {"__name__": "__solution__", "__builtins__": builtins}

    def load():
        exec(compile(plan["program"], "<program>", "exec"), namespace)
        if plan["setup"]:
            exec(compile(plan["setup"], "<setup>", "exec"), namespace)
        return {"loaded": True}

    return namespace, _guarded(plan["test_seconds"], load)


def _stdio():
    # Fresh streams over the descriptors the zygote put in place; they live as long as the process.
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115


def _flush():
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):  # the program may have closed or replaced them
            stream.flush()


def run_probes():
    plan = read_body()
    namespace, loaded = _start(plan)
    send(REPORTS, loaded)
    if "loaded" in loaded:
        for index, probes in enumerate(plan["probes"]):
            codes = [compile(source, f"<test {index}>", "eval") for source in probes]

            def evaluate(codes=codes):
                return {"values": [values.encode(eval(code, namespace)) for code in codes]}

            send(REPORTS, _guarded(plan["test_seconds"], evaluate))
    _flush()


def serve():
    plan = read_body()
    namespace, loaded = _start(plan)
    send(REPORTS, loaded)
    if "loaded" in loaded:
        while True:
            try:
                request = receive(REQUESTS)
            except EOFError:
                break
            # The check's own clock: what is left of its test_seconds (see check.py).
            seconds = request.get("seconds", plan["test_seconds"])
            send(REPORTS, _guarded(seconds, lambda r=request: _answer(r, namespace)))
    _flush()


def _answer(request, namespace):
    if "lookup" in request:
        if request["lookup"] not in namespace:
            return {"missing": True}
        value = namespace[request["lookup"]]
        if isinstance(value, type(sys)):
            return {"missing": True}  # a module the program imported: the tests import their own
        return {"callable": True} if callable(value) else {"value": values.encode(value)}
    decoder = values.Decoder()
    args = [decoder.decode(a) for a in request["args"]]
    kwargs = {k: decoder.decode(v) for k, v in request["kwargs"].items()}
    return {"value": values.encode(namespace[request["call"]](*args, **kwargs))}


def run_script():
    plan = read_body()
    _stdio()  # stdin: what follows the plan on descriptor 0 (a stdio case's input)
    sys.argv = ["program.py", *plan["args"]]
    status = 0
    try:
        exec(
            compile(plan["program"], "program.py", "exec"),
            {"__name__": "__main__", "__builtins__": builtins},
        )
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            status = exc.code or 0
        else:
            sys.stderr.write(f"{exc.code}\n")
            status = 1
    except BaseException as exc:
        sys.stderr.write(f"{type(exc).__name__}: {error(exc)['error'][1]}\n")
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        status = status or 1
    os._exit(status & 0xFF)
