"""The trusted half of a jail: runs inside it, starts the untrusted program, reports back.

Its source is passed to the jailed interpreter with `python -c`, so it uses the standard
library only and imports nothing of ours. argv: the result descriptor and the descriptor
that becomes the program's stderr. stdin: the plan, in `marshal` format (the jail runs the
host's own interpreter version, and the plan comes from the host, not from the program).
Results: JSON lines on the result descriptor, which the host parses as untrusted; stdout is
never a result channel. Start-up time is most of a jail's cost, so it imports only C
modules: `_signal` rather than `signal` and `_json` rather than `json` (each of those pulls
in `enum` or `re`, about 8 ms apiece).

It decides nothing. In function mode it evaluates the expressions the host sent (the parts of
each assert that touch the program) and returns their values, encoded by type, never by the
objects' own `__eq__` or `__repr__`; the host compares them with expected values that never
enter the jail. In stdio mode it runs the program once per case, in a fresh forked process,
and returns what the program printed. A program can tamper with this process (it runs in
it): all it can change is which values are reported, and a value is only a pass if it
equals what the host expects.
"""

import _signal
import builtins
import marshal
import os
import sys
from _json import encode_basestring_ascii

# The program runs in this process and may patch builtins and modules; the harness keeps
# its own references, taken before the program starts.
_write = os.write
_escape = encode_basestring_ascii
_isinstance, _type, _str, _int, _list, _dict = isinstance, type, str, int, list, dict
_float, _complex, _bytes, _bytearray, _tuple, _set, _frozenset, _range = (
    float, complex, bytes, bytearray, tuple, set, frozenset, range)
_RESULT_FD = int(sys.argv[1])
_STDERR_FD = int(sys.argv[2])
_MAX_DEPTH = 100


class _TestTimeout(BaseException):
    """Raised in the program's frame when a test runs past its time."""


def emit(**record):
    data = (_json(record) + "\n").encode()
    while data:
        data = data[_write(_RESULT_FD, data):]


def _json(obj):
    """JSON for what `encode` and `emit` build: dicts, lists, str, int, bool, None."""
    t = _type(obj)
    if t is _str:
        return _escape(obj)
    if obj is None:
        return "null"
    if obj is True or obj is False:
        return "true" if obj else "false"
    if t is _int:
        return _int.__repr__(obj)
    if t is _list:
        return "[" + ",".join([_json(v) for v in obj]) + "]"
    if t is _dict:
        return "{" + ",".join([_escape(k) + ":" + _json(v) for k, v in _dict.items(obj)]) + "}"
    raise TypeError("cannot encode %s" % t.__name__)


def encode(value, depth=0):
    """A JSON form of `value` built from its type's own data, not from methods it overrides.

    Subclasses of built-in types are read through the base type (`int.__repr__(x)`,
    `list.__iter__(x)`), so an `int` whose `__eq__` always says True is reported as the int it
    really holds. Anything else is reported as an opaque object of its type name.
    """
    if depth > _MAX_DEPTH:
        raise ValueError("value nested too deeply")
    d = depth + 1
    if value is None or value is True or value is False:
        return value
    if _isinstance(value, _int):
        return {"int": _int.__repr__(value)}
    if _isinstance(value, _float):
        return {"float": _float.__repr__(value)}
    if _isinstance(value, _complex):
        real, imag = _complex.real.__get__(value), _complex.imag.__get__(value)
        return {"complex": [_float.__repr__(real), _float.__repr__(imag)]}
    if _isinstance(value, _str):
        return _str.__str__(value)
    if _isinstance(value, (_bytes, _bytearray)):
        return {"bytes": _bytes(value).hex()}
    if _isinstance(value, _list):
        return {"list": [encode(v, d) for v in _list.__iter__(value)]}
    if _isinstance(value, _tuple):
        return {"tuple": [encode(v, d) for v in _tuple.__iter__(value)]}
    if _isinstance(value, (_set, _frozenset)):
        items = [encode(v, d) for v in (_set.__iter__(value) if _isinstance(value, _set) else _frozenset.__iter__(value))]
        return {"set" if _isinstance(value, _set) else "frozenset": items}
    if _isinstance(value, _dict):
        return {"dict": [[encode(k, d), encode(v, d)] for k, v in _dict.items(value)]}
    if _isinstance(value, _range):
        return {"range": [value.start, value.stop, value.step]}
    return {"object": _type(value).__name__}


def _on_alarm(signum, frame):
    raise _TestTimeout()


def _timer(seconds):
    _signal.setitimer(_signal.ITIMER_REAL, seconds)


def _error(exc):
    try:
        message = _str(exc)[:300]
    except BaseException:
        message = "(the exception's message could not be read)"
    return {"type": _type(exc).__name__, "msg": message}


def run_function(plan):
    _signal.signal(_signal.SIGALRM, _on_alarm)
    limit = plan["test_seconds"]
    namespace = {"__name__": "__solution__", "__builtins__": builtins}
    try:
        _timer(limit)
        exec(compile(plan["program"], "<program>", "exec"), namespace)
        if plan["setup"]:
            exec(compile(plan["setup"], "<setup>", "exec"), namespace)
        _timer(0)
    except _TestTimeout:
        emit(e="load_error", timeout=True)
        return
    except BaseException as exc:  # SystemExit and KeyboardInterrupt included: the tests never ran
        _timer(0)
        emit(e="load_error", **_error(exc))
        return
    emit(e="loaded")
    for index, probes in enumerate(plan["tests"]):
        values = []
        try:
            _timer(limit)
            for source in probes:
                values.append(encode(eval(compile(source, "<test %d>" % index, "eval"), namespace)))
            _timer(0)
        except _TestTimeout:
            emit(e="probe", t=index, timeout=True)
            continue
        except BaseException as exc:
            _timer(0)
            emit(e="probe", t=index, **_error(exc))
            continue
        emit(e="probe", t=index, v=values)


def run_cases(plan):
    code = compile(plan["program"], "<program>", "exec")
    cap = plan["case_output_bytes"]
    for index, case in enumerate(plan["cases"]):
        emit(e="case", c=index, **_run_case(code, case, plan["test_seconds"], cap))


def _memfd(name, data=b""):
    fd = os.memfd_create(name)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _run_case(code, case, seconds, cap):
    """Run the program as __main__ in a forked child with the case's stdin and argv."""
    import select
    stdin = _memfd("stdin", case["stdin"].encode())
    out, err = _memfd("stdout"), _memfd("stderr")
    pid = os.fork()
    if pid == 0:
        _child(code, case, stdin, out, err, cap)
    os.close(stdin)
    pidfd = os.pidfd_open(pid)
    ready, _, _ = select.select([pidfd], [], [], seconds)
    timed_out = not ready
    if timed_out:
        os.kill(-pid, _signal.SIGKILL)  # the child's whole process group
    _, status = os.waitpid(pid, 0)
    os.close(pidfd)
    try:
        os.kill(-pid, _signal.SIGKILL)  # anything it left running
    except ProcessLookupError:
        pass
    result = {"timeout": timed_out}
    if os.WIFSIGNALED(status):
        result["signal"] = os.WTERMSIG(status)
        result["output_limit"] = os.WTERMSIG(status) == _signal.SIGXFSZ
    else:
        result["exit"] = os.WEXITSTATUS(status)
    result["stdout"] = os.pread(out, cap, 0).decode("utf-8", "replace")
    result["stderr"] = os.pread(err, 4096, 0).decode("utf-8", "replace")
    os.close(out)
    os.close(err)
    return result


def _child(code, case, stdin, out, err, cap):
    import resource

    os.setpgid(0, 0)
    os.dup2(stdin, 0)
    os.dup2(out, 1)
    os.dup2(err, 2)
    for fd in (stdin, out, err, _RESULT_FD, _STDERR_FD):
        os.close(fd)
    resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
    sys.stdin = open(0, "r", encoding="utf-8", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)
    sys.argv = ["program.py", *case["args"]]
    status = 0
    try:
        exec(code, {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:
        sys.stderr.write("%s: %s\n" % (type(exc).__name__, exc))
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        status = status or 1
    os._exit(status & 0xFF)


def main():
    plan = marshal.loads(sys.stdin.buffer.read())
    emit(e="start")
    os.dup2(_STDERR_FD, 2)
    sys.stdin = open(os.devnull)
    if plan["mode"] == "function":
        run_function(plan)
    else:
        run_cases(plan)
    emit(e="done")
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(0)


main()
