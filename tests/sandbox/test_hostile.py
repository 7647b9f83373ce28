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
    ("fork_bomb", """
        import os
        def f(x):
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
        """, "ok", ["timeout", "timeout"]),
    ("infinite_loop_at_import", "while True:\n    pass\n", "ok", ["timeout", "timeout"]),
    ("infinite_loop_per_test", "def f(x):\n    while True:\n        pass\n", "ok", ["timeout", "timeout"]),
    ("sleep_past_limit", "import time\ntime.sleep(60)\n", "ok", ["timeout", "timeout"]),
    ("swallows_timeout", """
        def f(x):
            while True:
                try:
                    while True:
                        pass
                except BaseException:
                    pass
        """, "timeout", ["timeout", "timeout"]),
    ("memory_bomb", "blocks = []\nwhile True:\n    blocks.append(bytearray(10 ** 7))\n", "memory", ["error", "error"]),
    ("memory_bomb_in_test", "def f(x):\n    return len(bytearray(10 ** 10))\n", "memory", ["error", "error"]),
    ("huge_output", "import sys\nsys.stdout.write('x' * 100_000_000)\nsys.stdout.flush()\n",
     "output_limit", ["error", "error"]),
    ("huge_output_loop", "while True:\n    print('y' * 10000)\n", "output_limit", ["error", "error"]),
    ("write_outside_tmp", """
        def f(x):
            for path in ('/etc/passwd', '/lib/evil', '/evil', '/usr/lib/evil'):
                try:
                    open(path, 'w').write('pwned')
                    return 'wrote ' + path
                except OSError:
                    pass
            open('%s', 'w').write('pwned')  # the jail's own /tmp: allowed, and gone afterwards
            return x * x
        """ % HOST_MARKER, "ok", ["pass", "pass"]),
    ("read_etc_shadow", "def f(x):\n    return open('/etc/shadow').read()\n", "ok", ["error", "error"]),
    ("read_host_environment", """
        import os
        def f(x):
            return x * x if 'RLVR_TEST_SECRET' not in os.environ else -1
        """, "ok", ["pass", "pass"]),
    ("read_project_files", """
        def f(x):
            return open('%s').read()
        """ % Path(__file__).resolve(), "ok", ["error", "error"]),
    ("read_proc_environ", "def f(x):\n    return open('/proc/1/environ').read()\n", "ok", ["error", "error"]),
    ("network_socket", """
        import socket
        def f(x):
            s = socket.create_connection(('127.0.0.1', 5432), timeout=0.5)
            return x * x
        """, "ok", ["error", "error"]),
    ("spawn_subprocess", """
        import subprocess
        def f(x):
            return int(subprocess.check_output(['/bin/sh', '-c', 'echo %d' % (x * x)]))
        """, "ok", ["error", "error"]),
    # The harness is the jail's init: signals from inside its namespace cannot kill it,
    # and nothing outside is visible. The attack fails and the program is judged as usual.
    ("kill_parent", """
        import os, signal
        for pid in (os.getppid(), 1, 0):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        def f(x):
            return x * x
        """, "ok", ["pass", "pass"]),
    ("kill_everything", "import os, signal\nos.kill(-1, signal.SIGKILL)\n", "ok", ["error", "error"]),
    ("ignore_sigterm", """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        while True:
            pass
        """, "timeout", ["timeout", "timeout"]),
    ("sys_exit_before_tests", "import sys\ndef f(x):\n    return x * x\nsys.exit(0)\n", "ok", ["error", "error"]),
    ("os_exit_before_tests", "import os\ndef f(x):\n    return x * x\nos._exit(0)\n", "ok", ["error", "error"]),
    ("os_exit_in_test", "import os\ndef f(x):\n    os._exit(0)\n", "ok", ["error", "error"]),
    ("excepthook_system_exit", """
        import sys
        def hook(*args):
            raise SystemExit(0)
        sys.excepthook = hook
        def f(x):
            raise ValueError('boom')
        """, "ok", ["error", "error"]),
    ("always_equal_object", """
        class Yes:
            def __eq__(self, other):
                return True
            __hash__ = object.__hash__
        def f(x):
            return Yes()
        """, "ok", ["wrong", "wrong"]),
    ("int_subclass_eq", """
        class Int(int):
            def __eq__(self, other):
                return True
            __hash__ = int.__hash__
        def f(x):
            return Int(0)
        """, "ok", ["wrong", "wrong"]),
    ("int_subclass_repr_lies", """
        class Int(int):
            def __repr__(self):
                return '4'
        def f(x):
            return Int(-1)
        """, "ok", ["wrong", "wrong"]),
    ("frame_tampering", """
        import sys
        def f(x):
            frame = sys._getframe(1)
            for name in list(frame.f_locals):
                if 'pass' in name or name in ('result', 'ok'):
                    frame.f_locals[name] = True
            caller = frame.f_globals
            caller['emit'] = lambda **r: None
            return -1
        """, "ok", ["wrong", "wrong"]),
    ("monkeypatch_builtins", """
        import builtins, json
        builtins.AssertionError = type('Nope', (Exception,), {})
        builtins.isinstance = lambda *a: True
        builtins.int = lambda *a: 4
        json.dumps = lambda *a, **k: '{"e":"probe","t":0,"v":[{"int":"4"}]}'
        def f(x):
            return -1
        """, "ok", ["wrong", "wrong"]),
    ("fake_pass_markers", """
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
        """, "ok", ["wrong", "wrong"]),
    ("fill_tmpfs", """
        def f(x):
            with open('/tmp/fill', 'wb') as fh:
                while True:
                    fh.write(b'z' * (1 << 20))
        """, "ok", ["error", "error"]),
    ("kernel_attack_surface", """
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
        """, "ok", ["pass", "pass"]),
    ("many_threads", """
        import threading, time
        def f(x):
            for _ in range(1000):
                threading.Thread(target=time.sleep, args=(30,)).start()
            return x * x
        """, "ok", ["error", "error"]),
]


@pytest.mark.parametrize(
    ("source", "status", "outcomes"),
    [pytest.param(program(src), status, outcomes, id=name) for name, src, status, outcomes in HOSTILE],
)
def test_hostile_program_is_contained_and_judged(sandbox, host_guard, source, status, outcomes):
    verdict = sandbox.run(VerifyRequest(program=source, tests=SQUARE_TESTS, limits=FAST))
    assert (verdict.status, [t.outcome for t in verdict.tests]) == (status, outcomes), verdict
    assert verdict.passed == outcomes.count("pass")


def test_error_outcomes_name_the_exception(sandbox):
    verdict = sandbox.run(VerifyRequest(
        program="def f(x):\n    return 1 // 0\n", tests=SQUARE_TESTS, limits=FAST))
    assert [(t.outcome, t.error_type) for t in verdict.tests] == [("error", "ZeroDivisionError")] * 2


def test_tmp_written_by_one_run_is_gone_in_the_next(sandbox):
    writer = "open('/tmp/left-behind', 'w').write('secret')\ndef f(x):\n    return x * x\n"
    reader = "import os\ndef f(x):\n    return x * x if not os.path.exists('/tmp/left-behind') else -1\n"
    first = sandbox.run(VerifyRequest(program=writer, tests=SQUARE_TESTS, limits=FAST))
    second = sandbox.run(VerifyRequest(program=reader, tests=SQUARE_TESTS, limits=FAST))
    assert first.all_passed and second.all_passed, (first, second)


def test_stdio_case_cannot_kill_the_harness(sandbox):
    hostile = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint(input())\n"
    tests = StdioTests(cases=[StdioCase(stdin="hi\n", stdout="hi\n"), StdioCase(stdin="yo\n", stdout="no\n")])
    verdict = sandbox.run(VerifyRequest(program=hostile, tests=tests, limits=FAST))
    assert (verdict.status, [t.outcome for t in verdict.tests]) == ("ok", ["pass", "wrong"]), verdict


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
