"""Hostile programs: each row asserts the exact verdict, then that the host is untouched.

Every program is judged against the same two tests, `assert f(2) == 4` and
`assert f(3) == 9` (f squares its argument), unless the row says otherwise; a correct
program passes both, so a row that "passes" anything has broken out.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from sandbox import FunctionTests, Limits, StdioCase, StdioTests, VerifyRequest
from sandbox_support import JAIL_UID, jailed_processes, owned_by

SQUARE_TESTS = FunctionTests(tests=["assert f(2) == 4", "assert f(3) == 9"])
FAST = Limits(wall_seconds=3, cpu_seconds=3, test_seconds=1, memory_mb=256, output_bytes=1 << 20)
HOST_MARKER = "/tmp/rlvr-sandbox-host-marker"
SECRET_ENV = "RLVR_TEST_SECRET"


def program(body: str) -> str:
    return textwrap.dedent(body).strip() + "\n"


# (id, program, expected status, expected outcomes for the two tests, expected error types)
HOSTILE = [
    ("correct", "def f(x):\n    return x * x\n", "ok", ["pass", "pass"]),
    (
        "fork_bomb",
        """
        import os
        def f(x):
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
        """,
        "ok",
        ["timeout", "timeout"],
    ),
    ("infinite_loop_at_import", "while True:\n    pass\n", "ok", ["timeout", "timeout"]),
    (
        "infinite_loop_per_test",
        "def f(x):\n    while True:\n        pass\n",
        "ok",
        ["timeout", "timeout"],
    ),
    ("sleep_past_limit", "import time\ntime.sleep(60)\n", "ok", ["timeout", "timeout"]),
    (
        "swallows_timeout",
        """
        def f(x):
            while True:
                try:
                    while True:
                        pass
                except BaseException:
                    pass
        """,
        "timeout",
        ["timeout", "timeout"],
    ),
    (
        "memory_bomb",
        "blocks = []\nwhile True:\n    blocks.append(bytearray(10 ** 7))\n",
        "memory",
        ["error", "error"],
    ),
    (
        "memory_bomb_in_test",
        "def f(x):\n    return len(bytearray(10 ** 10))\n",
        "memory",
        ["error", "error"],
    ),
    (
        "huge_output",
        "import sys\nsys.stdout.write('x' * 100_000_000)\nsys.stdout.flush()\n",
        "output_limit",
        ["error", "error"],
    ),
    (
        "huge_output_loop",
        "while True:\n    print('y' * 10000)\n",
        "output_limit",
        ["error", "error"],
    ),
    (
        "write_outside_tmp",
        """
        def f(x):
            for path in ('/etc/passwd', '/lib/evil', '/evil', '/usr/lib/evil'):
                try:
                    open(path, 'w').write('pwned')
                    return 'wrote ' + path
                except OSError:
                    pass
            open('%s', 'w').write('pwned')  # the jail's own /tmp: allowed, and gone afterwards
            return x * x
        """
        % HOST_MARKER,
        "ok",
        ["pass", "pass"],
    ),
    (
        "read_etc_shadow",
        "def f(x):\n    return open('/etc/shadow').read()\n",
        "ok",
        ["error", "error"],
    ),
    (
        "read_host_environment",
        """
        import os
        def f(x):
            return x * x if 'RLVR_TEST_SECRET' not in os.environ else -1
        """,
        "ok",
        ["pass", "pass"],
    ),
    (
        "read_project_files",
        """
        def f(x):
            return open('%s').read()
        """
        % Path(__file__).resolve(),
        "ok",
        ["error", "error"],
    ),
    (
        "read_proc_environ",
        "def f(x):\n    return open('/proc/1/environ').read()\n",
        "ok",
        ["error", "error"],
    ),
    (
        "network_socket",
        """
        import socket
        def f(x):
            s = socket.create_connection(('127.0.0.1', 5432), timeout=0.5)
            return x * x
        """,
        "ok",
        ["error", "error"],
    ),
    (
        "spawn_subprocess",
        """
        import subprocess
        def f(x):
            return int(subprocess.check_output(['/bin/sh', '-c', 'echo %d' % (x * x)]))
        """,
        "ok",
        ["error", "error"],
    ),
    # The harness is the jail's init: signals from inside its namespace cannot kill it,
    # and nothing outside is visible. The attack fails and the program is judged as usual.
    (
        "kill_parent",
        """
        import os, signal
        for pid in (os.getppid(), 1, 0):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        def f(x):
            return x * x
        """,
        "ok",
        ["pass", "pass"],
    ),
    (
        "kill_everything",
        "import os, signal\nos.kill(-1, signal.SIGKILL)\n",
        "ok",
        ["error", "error"],
    ),
    (
        "ignore_sigterm",
        """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        while True:
            pass
        """,
        "timeout",
        ["timeout", "timeout"],
    ),
    (
        "sys_exit_before_tests",
        "import sys\ndef f(x):\n    return x * x\nsys.exit(0)\n",
        "ok",
        ["error", "error"],
    ),
    (
        "os_exit_before_tests",
        "import os\ndef f(x):\n    return x * x\nos._exit(0)\n",
        "ok",
        ["error", "error"],
    ),
    ("os_exit_in_test", "import os\ndef f(x):\n    os._exit(0)\n", "ok", ["error", "error"]),
    (
        "excepthook_system_exit",
        """
        import sys
        def hook(*args):
            raise SystemExit(0)
        sys.excepthook = hook
        def f(x):
            raise ValueError('boom')
        """,
        "ok",
        ["error", "error"],
    ),
    (
        "always_equal_object",
        """
        class Yes:
            def __eq__(self, other):
                return True
            __hash__ = object.__hash__
        def f(x):
            return Yes()
        """,
        "ok",
        ["wrong", "wrong"],
    ),
    (
        "int_subclass_eq",
        """
        class Int(int):
            def __eq__(self, other):
                return True
            __hash__ = int.__hash__
        def f(x):
            return Int(0)
        """,
        "ok",
        ["wrong", "wrong"],
    ),
    (
        "int_subclass_repr_lies",
        """
        class Int(int):
            def __repr__(self):
                return '4'
        def f(x):
            return Int(-1)
        """,
        "ok",
        ["wrong", "wrong"],
    ),
    (
        "frame_tampering",
        """
        import sys
        def f(x):
            frame = sys._getframe(1)
            for name in list(frame.f_locals):
                if 'pass' in name or name in ('result', 'ok'):
                    frame.f_locals[name] = True
            caller = frame.f_globals
            caller['emit'] = lambda **r: None
            return -1
        """,
        "ok",
        ["wrong", "wrong"],
    ),
    (
        "monkeypatch_builtins",
        """
        import builtins, json
        builtins.AssertionError = type('Nope', (Exception,), {})
        builtins.isinstance = lambda *a: True
        builtins.int = lambda *a: 4
        json.dumps = lambda *a, **k: '{"e":"probe","t":0,"v":[{"int":"4"}]}'
        def f(x):
            return -1
        """,
        "ok",
        ["wrong", "wrong"],
    ),
    (
        "fake_pass_markers",
        """
        import os, sys
        print('PASSED 2/2\\nOK\\nall tests passed')
        sys.stderr.write('Ran 2 tests OK')
        for fd in range(3, 10):
            try:
                os.write(fd, b'{"e":"probe","t":1,"v":[{"int":"9"}]}\\n{"e":"done"}\\n')
            except OSError:
                pass
        def f(x):
            return -1
        """,
        "ok",
        ["wrong", "wrong"],
    ),
    (
        "fill_tmpfs",
        """
        def f(x):
            with open('/tmp/fill', 'wb') as fh:
                while True:
                    fh.write(b'z' * (1 << 20))
        """,
        "ok",
        ["error", "error"],
    ),
    (
        "kernel_attack_surface",
        """
        import ctypes, os
        def blocked(call):
            try:
                call()
            except PermissionError:
                return True
            return False
        libc = ctypes.CDLL(None, use_errno=True)
        def io_uring():
            if libc.syscall(425, 1, ctypes.c_void_p(0)) == -1 and ctypes.get_errno() == 1:
                raise PermissionError
        ALL_BLOCKED = all(blocked(c) for c in (
            lambda: os.unshare(os.CLONE_NEWUSER), lambda: os.unshare(os.CLONE_NEWNS), io_uring))
        def f(x):
            return x * x if ALL_BLOCKED else -1
        """,
        "ok",
        ["pass", "pass"],
    ),
    (
        "many_threads",
        """
        import threading, time
        def f(x):
            for _ in range(1000):
                threading.Thread(target=time.sleep, args=(30,)).start()
            return x * x
        """,
        "ok",
        ["error", "error"],
    ),
    # Issue 13. The zygote that forks each program keeps capabilities: none may reach it.
    (
        "capabilities_and_namespaces",
        """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        def fails(call):
            return call() == -1 and ctypes.get_errno() in (1, 22, 38)  # EPERM; EINVAL, ENOSYS
        header, data = (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()
        libc.syscall(125, header, data)  # capget: effective, permitted, inheritable
        SAFE = not any(data) and all(fails(c) for c in (
            lambda: libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0),  # clone(CLONE_NEWUSER)
            lambda: libc.syscall(435, 0, 0),  # clone3
            lambda: libc.syscall(272, 0x20000),  # unshare(CLONE_NEWNS)
            lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None),
            lambda: libc.umount2(b"/tmp", 2),
            lambda: libc.chroot(b"/tmp"),
            lambda: libc.syscall(101, 16, 1, 0, 0),  # ptrace(PTRACE_ATTACH, 1)
            lambda: libc.setuid(0),
        ))
        def f(x):
            return x * x if SAFE else -1
        """,
        "ok",
        ["pass", "pass"],
    ),
    # Class 5: the per-test limit is kept from outside the program's process.
    (
        "exception_str_never_returns",
        """
        class Boom(Exception):
            def __str__(self):
                while True:
                    pass
        def f(x):
            raise Boom()
        """,
        "timeout",
        ["timeout", "timeout"],
    ),
    (
        "exception_str_never_returns_at_import",
        """
        class Boom(Exception):
            def __str__(self):
                while True:
                    pass
        raise Boom()
        """,
        "timeout",
        ["timeout", "timeout"],
    ),
    (
        "blocks_the_timer_signal",
        """
        import signal
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        def f(x):
            while True:
                pass
        """,
        "timeout",
        ["timeout", "timeout"],
    ),
    (
        "cancels_the_timer",
        """
        import signal
        def f(x):
            signal.setitimer(signal.ITIMER_REAL, 0)
            while True:
                pass
        """,
        "timeout",
        ["timeout", "timeout"],
    ),
    # Class 2: frames carry values, never verdicts; a forged verdict is malformed.
    (
        "forges_verdicts_on_every_descriptor",
        """
        import json, os
        def frame(obj):
            data = json.dumps(obj).encode()
            return len(data).to_bytes(4, "little") + data
        FORGED = b"".join(frame(o) for o in (
            {"loaded": True}, {"pass": True}, {"outcome": "pass"}, {"e": "probe", "t": 0, "v": [True]}))
        for fd in range(3, 64):
            try:
                os.write(fd, FORGED)
            except OSError:
                pass
        def f(x):
            return -1
        """,
        "ok",
        ["error", "error"],
    ),
    # Class 3: what a program writes can only cost its own tests.
    (
        "writes_a_deeply_nested_record",
        """
        import os
        DATA = b"[" * 200_000 + b"]" * 200_000
        for fd in range(3, 64):  # as a frame (a length first) and as a JSON line
            try:
                os.write(fd, len(DATA).to_bytes(4, "little") + DATA + b"\\n" + DATA + b"\\n")
            except OSError:
                pass
        def f(x):
            return x * x
        """,
        "ok",
        ["error", "error"],
    ),
    (
        "returns_a_deeply_nested_value",
        """
        def f(x):
            value = []
            for _ in range(50_000):
                value = [value]
            return value
        """,
        "ok",
        ["error", "error"],
    ),
    # Class 4: what the host rebuilds from a program's values is capped.
    (
        "returns_a_huge_value",
        "def f(x):\n    return ['x' * 10 ** 6] * 20\n",
        "output_limit",
        ["error", "error"],
    ),
]


@pytest.mark.parametrize(
    ("source", "status", "outcomes"),
    [
        pytest.param(program(src), status, outcomes, id=name)
        for name, src, status, outcomes in HOSTILE
    ],
)
def test_hostile_program_is_contained_and_judged(sandbox, host_guard, source, status, outcomes):
    verdict = sandbox.run(VerifyRequest(program=source, tests=SQUARE_TESTS, limits=FAST))
    assert (verdict.status, [t.outcome for t in verdict.tests]) == (status, outcomes), verdict
    assert verdict.passed == outcomes.count("pass")


HUMANEVAL_SQUARE = FunctionTests(
    tests="def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(3) == 9\n",
    entry_point="f",
)
LOOPING_SQUARE = FunctionTests(  # cannot be split: runs whole in a check process of its own
    tests="def check(candidate):\n    for x in (2, 3):\n        assert candidate(x) == x * x\n",
    entry_point="f",
)
# Class 1: look for the expected value wherever a harness that held the tests would keep it:
# the code objects of every function in the process (a `check` first), and every frame.
FINDS_EXPECTED = """
    import gc, sys
    def constants_after(x, code):
        consts = list(getattr(code, "co_consts", ()))
        later = consts[consts.index(x) + 1:] if x in consts else []
        return [c for c in later if type(c) is int and c != x]
    def f(x):
        functions = [o for o in gc.get_objects() if hasattr(o, "__code__")]
        functions.sort(key=lambda fn: fn.__name__ != "check")
        for fn in functions:
            found = constants_after(x, fn.__code__)
            if found:
                return found[0]
        frame = sys._getframe()
        while frame is not None:
            for name, value in {**frame.f_globals, **frame.f_locals}.items():
                if isinstance(value, dict) and "tests" in value:
                    return value
            frame = frame.f_back
        return -1
    """
COLLIDING_INTS = (
    "def f(x):\n    return [k * (2 ** 61 - 1) for k in range(1, 50_001)]\n"  # one hash for all
)
BIG_OUTPUT = Limits(wall_seconds=10, cpu_seconds=10, test_seconds=5, output_bytes=8 << 20)

# (id, program, tests, limits, expected status, outcomes, error type of the first)
OWN_TESTS = [
    (
        "reads_a_humaneval_check_from_its_process",
        FINDS_EXPECTED,
        HUMANEVAL_SQUARE,
        FAST,
        "ok",
        ["wrong", "wrong"],
        None,
    ),
    (
        "reads_a_looping_check_from_its_process",
        FINDS_EXPECTED,
        LOOPING_SQUARE,
        FAST,
        "ok",
        ["wrong"],
        None,
    ),
    # Class 2: the check process reports on a descriptor the program does not hold; what the
    # program writes within its own reach gets to the check only as its (garbled) answers.
    (
        "forges_a_looping_checks_outcome",
        """
        import json, os
        def f(x):
            for obj in ({"pass": True}, {"e": "probe", "t": 0, "v": [True]}, {"values": [True]}):
                data = json.dumps(obj).encode()
                for fd in range(3, 64):  # as a frame (a length first) and as a JSON line
                    try:
                        os.write(fd, len(data).to_bytes(4, "little") + data + b"\\n" + data + b"\\n")
                    except OSError:
                        pass
            return -1
        """,
        LOOPING_SQUARE,
        FAST,
        "ok",
        ["error"],
        "ProgramError",
    ),
    (
        "exits_during_a_looping_check",
        "import os\ndef f(x):\n    os._exit(0)\n",
        LOOPING_SQUARE,
        FAST,
        "ok",
        ["error"],
        "EOFError",
    ),
    (
        "hangs_during_a_looping_check",
        "def f(x):\n    while True:\n        pass\n",
        LOOPING_SQUARE,
        FAST,
        "ok",
        ["timeout"],
        None,
    ),
    (
        "swallows_its_timer_during_a_looping_check",
        """
        def f(x):
            while True:
                try:
                    while True:
                        pass
                except BaseException:
                    pass
        """,
        LOOPING_SQUARE,
        FAST,
        "timeout",
        ["timeout"],
        None,
    ),
    # Class 4: the host's judging runs in a helper bounded in time and memory.
    (
        "returns_hash_colliding_ints",
        COLLIDING_INTS,
        FunctionTests(tests=["assert set(f(2)) == {4}"]),
        BIG_OUTPUT,
        "ok",
        ["error"],
        "JudgeLimit",
    ),
    (
        "returns_a_range_to_sum",
        "def f(x):\n    return range(10 ** 15)\n",
        FunctionTests(tests=["assert sum(f(2)) == 4"]),
        FAST,
        "ok",
        ["error"],
        "JudgeLimit",
    ),
    (
        "returns_a_range_to_expand",
        "def f(x):\n    return range(10 ** 10)\n",
        FunctionTests(tests=["assert list(f(2)) == [4]"]),
        FAST,
        "ok",
        ["error"],
        "JudgeLimit",
    ),
]


@pytest.mark.parametrize(
    ("source", "tests", "limits", "status", "outcomes", "error_type"),
    [pytest.param(program(src), *rest, id=name) for name, src, *rest in OWN_TESTS],
)
def test_hostile_program_with_its_own_tests(
    sandbox, host_guard, source, tests, limits, status, outcomes, error_type
):
    start = time.monotonic()
    verdict = sandbox.run(VerifyRequest(program=source, tests=tests, limits=limits))
    assert (verdict.status, [t.outcome for t in verdict.tests]) == (status, outcomes), verdict
    assert verdict.tests[0].error_type == error_type, verdict
    # Judging is bounded too: a few seconds past the run's own limit at most (assessor.JUDGE_SECONDS).
    assert time.monotonic() - start < limits.wall_seconds + 5


def test_a_test_that_never_returns_ends_at_its_own_limit_not_the_runs(sandbox):
    never = (
        "class Boom(Exception):\n    def __str__(self):\n        while True:\n            pass\n"
    )
    limits = Limits(wall_seconds=60, cpu_seconds=60, test_seconds=1)
    verdict = sandbox.run(
        VerifyRequest(program=never + "raise Boom()\n", tests=SQUARE_TESTS, limits=limits)
    )
    assert verdict.status == "timeout" and verdict.wall_seconds < 10, verdict


def test_error_outcomes_name_the_exception(sandbox):
    verdict = sandbox.run(
        VerifyRequest(program="def f(x):\n    return 1 // 0\n", tests=SQUARE_TESTS, limits=FAST)
    )
    assert [(t.outcome, t.error_type) for t in verdict.tests] == [
        ("error", "ZeroDivisionError")
    ] * 2


def test_tmp_written_by_one_run_is_gone_in_the_next(sandbox):
    writer = "open('/tmp/left-behind', 'w').write('secret')\ndef f(x):\n    return x * x\n"
    reader = (
        "import os\ndef f(x):\n    return x * x if not os.path.exists('/tmp/left-behind') else -1\n"
    )
    first = sandbox.run(VerifyRequest(program=writer, tests=SQUARE_TESTS, limits=FAST))
    second = sandbox.run(VerifyRequest(program=reader, tests=SQUARE_TESTS, limits=FAST))
    assert first.all_passed and second.all_passed, (first, second)


def test_stdio_case_cannot_kill_the_harness(sandbox):
    hostile = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint(input())\n"
    tests = StdioTests(
        cases=[StdioCase(stdin="hi\n", stdout="hi\n"), StdioCase(stdin="yo\n", stdout="no\n")]
    )
    verdict = sandbox.run(VerifyRequest(program=hostile, tests=tests, limits=FAST))
    assert (verdict.status, [t.outcome for t in verdict.tests]) == ("ok", ["pass", "wrong"]), (
        verdict
    )


def test_runs_as_unprivileged_uid_without_network_interfaces(sandbox):
    probe = """
        import os, socket
        def f(x):
            names = [name for _, name in socket.if_nameindex()]
            return (os.getuid(), os.geteuid(), names)
        """
    tests = FunctionTests(tests=["assert f(0)[0] == 1000", "assert f(0)[2] in ([], ['lo'])"])
    verdict = sandbox.run(VerifyRequest(program=program(probe), tests=tests, limits=FAST))
    assert verdict.all_passed, verdict


@pytest.fixture
def host_guard(monkeypatch):
    """The host's view before and after: no marker file, no stray processes."""
    monkeypatch.setenv(SECRET_ENV, "hunter2")
    Path(HOST_MARKER).unlink(missing_ok=True)
    yield
    assert not Path(HOST_MARKER).exists()
    # The kernel tears a PID namespace down asynchronously; give it a moment, not forever.
    for _ in range(50):
        if not jailed_processes():
            break
        time.sleep(0.1)
    assert not jailed_processes(), "a jailed process outlived its run"
    assert Path("/etc/passwd").read_text().count("pwned") == 0


def test_jail_dies_with_the_worker_that_started_it(tmp_path):
    """SIGKILL the process running a jail: nsjail gets its parent-death signal, the jail's
    PID namespace goes with it, and nothing the program started lives on."""
    import signal
    import subprocess
    import sys

    started = tmp_path / "started"
    uid = JAIL_UID + 1  # its own, so that the zygote it leaves idle is not excluded
    worker = f"""
import pathlib
from sandbox import FunctionTests, Limits, Sandbox, VerifyRequest
box = Sandbox(uid={uid})
pathlib.Path({str(started)!r}).touch()
box.run(VerifyRequest(program="import os\\nos.fork()\\nwhile True:\\n    pass\\n",
                      tests=FunctionTests(tests=["assert f() == 1"]),
                      limits=Limits(wall_seconds=120, cpu_seconds=120, test_seconds=120)))
"""
    proc = subprocess.Popen([sys.executable, "-c", worker], cwd=Path(__file__).resolve().parents[2])
    for _ in range(300):
        if started.exists() and jailed_processes(uid):
            break
        time.sleep(0.05)
    assert jailed_processes(uid), "the jail never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for _ in range(100):
        if not owned_by(uid):
            break
        time.sleep(0.05)
    assert not owned_by(uid), "a jail outlived the worker that started it"
