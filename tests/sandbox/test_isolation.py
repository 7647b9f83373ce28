"""Programs judged one after another in the same warm jail stay apart, and a long run of them
leaves nothing behind: no process, cgroup, descriptor or temporary file (issue 13)."""

from __future__ import annotations

import os
import secrets
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sandbox_support import JAIL_UID, jailed_processes, owned_by

from sandbox import (
    FunctionTests,
    Limits,
    Sandbox,
    StdioCase,
    StdioTests,
    VerifyRequest,
    judge,
    plan,
    verify,
    zygotes,
)
from sandbox.jail import CGROUP_ROOT, CONTROLLERS, JailKey
from sandbox.zygotes import ZygoteFailed

SLOW = Limits(wall_seconds=60, cpu_seconds=60, test_seconds=30)
QUICK = Limits(wall_seconds=3, cpu_seconds=3, test_seconds=1, memory_mb=256)
SQUARE = FunctionTests(tests=["assert f(2) == 4", "assert f(3) == 9"])

# Looks for `needle` in every readable page within 64 MiB of the program's heap, its arenas,
# a large buffer and libc: where a zygote that had read another program's plan, values or
# output would still hold a copy for the next program it forks. The needle is given masked
# (xor 0x55) and unmasked byte by byte into a buffer, so this program never holds it itself.
SCANNER = """
import ctypes, os
libc = ctypes.CDLL(None)
libc.memmem.restype = ctypes.c_void_p
libc.memmem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
libc.write.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
MASKED = bytes.fromhex("{masked}")
needle = ctypes.create_string_buffer(len(MASKED))
for i, b in enumerate(MASKED):
    needle[i] = b ^ 0x55
PAGE, SPAN = 4096, 64 << 20
probe_r, probe_w = os.pipe()
big = bytearray(1 << 20)

def readable(page):  # the kernel says EFAULT where a read would crash
    if libc.write(probe_w, page, 1) != 1:
        return False
    os.read(probe_r, 1)
    return True

def search(start, end):
    found = set()
    while start < end:
        hit = libc.memmem(start, end - start, needle, len(MASKED))
        if not hit:
            break
        if hit != ctypes.addressof(needle):
            found.add(hit)
        start = hit + 1
    return found

def scan(anchor):
    found, run = set(), None
    for page in range((anchor - SPAN) & ~(PAGE - 1), anchor + SPAN, PAGE):
        if page > 0 and readable(page):
            run = page if run is None else run
        elif run is not None:
            found |= search(run, page)
            run = None
    return found | (search(run, anchor + SPAN) if run is not None else set())

def f():
    anchors = [id(object()), id({{}}), ctypes.addressof(needle), id(os),
               ctypes.addressof((ctypes.c_char * len(big)).from_buffer(big)),
               ctypes.cast(libc.memmem, ctypes.c_void_p).value]
    return len(set().union(*map(scan, anchors)))
"""


def scanner(marker: str) -> str:
    return SCANNER.format(masked=bytes(b ^ 0x55 for b in marker.encode()).hex())


@pytest.fixture(scope="module")
def one_zygote():
    """A sandbox with one warm jail, so that consecutive programs share its zygote."""
    with Sandbox(uid=JAIL_UID, max_idle=1) as box:
        yield box


def test_nothing_of_one_program_is_in_the_memory_of_the_next(one_zygote):
    marker = "MARKER-" + secrets.token_hex(12)
    leaky = textwrap.dedent(f"""
        SECRET = {marker!r}
        print(SECRET)
        def f(x):
            return [SECRET, x * x]
        """)
    first = one_zygote.run(
        VerifyRequest(program=leaky, tests=FunctionTests(tests=["assert f(2)[1] == 4"]))
    )
    assert first.all_passed and marker in first.stdout
    scan = VerifyRequest(
        program=scanner(marker), tests=FunctionTests(tests=["assert f() == 0"]), limits=SLOW
    )
    verdict = one_zygote.run(scan)
    assert verdict.all_passed, verdict
    # The scanner does find what is in its own process: the test above can fail.
    planted = VerifyRequest(
        program=f"PLANTED = {marker!r}\n" + scan.program, tests=scan.tests, limits=SLOW
    )
    assert one_zygote.run(planted).tests[0].detail.startswith("got "), (
        "the scanner found nothing at all"
    )


def test_no_file_segment_or_process_of_one_program_reaches_the_next(one_zygote):
    leaves = textwrap.dedent("""
        import ctypes, os, time
        open('/tmp/left-behind', 'w').write('secret')
        libc = ctypes.CDLL(None)
        segment = libc.shmget(0x5EC, 4096, 0o1000 | 0o666)  # IPC_CREAT: outlives its process
        if os.fork() == 0:
            time.sleep(30)  # would still be writing files when the next program runs
            os._exit(0)
        def f(x):
            return x * x if segment >= 0 else -1
        """)
    finds = textwrap.dedent("""
        import ctypes, os
        libc = ctypes.CDLL(None)
        FOUND = os.path.exists('/tmp/left-behind') or libc.shmget(0x5EC, 0, 0) >= 0
        def f(x):
            return x * x if not FOUND else -1
        """)
    first = one_zygote.run(VerifyRequest(program=leaves, tests=SQUARE, limits=QUICK))
    assert first.all_passed, first
    assert not jailed_processes(), "the program's background process outlived its run"
    assert one_zygote.run(VerifyRequest(program=finds, tests=SQUARE, limits=QUICK)).all_passed


def test_one_program_cannot_cost_its_neighbours_their_verdicts(sandbox, monkeypatch):
    good = VerifyRequest(
        id="good", program="def f(x):\n    return x * x\n", tests=SQUARE, limits=QUICK
    )
    nested = "import os\nD = b'[' * 100000 + b']' * 100000\n"
    nested += "os.write(63, len(D).to_bytes(4, 'little') + D)\n"
    hostile = [
        VerifyRequest(id="nested", program=nested, tests=SQUARE, limits=QUICK),
        VerifyRequest(id="loops", program="while True:\n    pass\n", tests=SQUARE, limits=QUICK),
        VerifyRequest(
            id="prints", program="while True:\n    print('x' * 10000)\n", tests=SQUARE, limits=QUICK
        ),
        VerifyRequest(id="boom", program=good.program, tests=SQUARE, limits=QUICK),
    ]
    real_verdict = judge.verdict

    def verdict_failing_for_boom(plan, runs, assessor):  # a bug of the host's own, on one program
        if plan.request.id == "boom":
            raise RuntimeError("the host's judge broke")
        return real_verdict(plan, runs, assessor)

    monkeypatch.setattr(judge, "verdict", verdict_failing_for_boom)
    verdicts = verify([good, *hostile, good], sandbox=sandbox, concurrency=3)
    assert [v.id for v in verdicts] == ["good", "nested", "loops", "prints", "boom", "good"]
    assert verdicts[0].all_passed and verdicts[-1].all_passed
    assert [v.status for v in verdicts[1:5]] == ["ok", "ok", "output_limit", "sandbox_error"]
    assert "the host's judge broke" in verdicts[4].error


def test_a_long_run_leaves_nothing_behind(monkeypatch):
    """Hundreds of programs, zygotes retired every 25 as over 10,000 programs they would be
    every 1,000: what is held stays bounded by the pool, and closing frees all of it."""
    monkeypatch.setattr(zygotes, "MAX_PROGRAMS", 25)
    uid = JAIL_UID + 2
    fds, children = _open_fds(), _children()
    stdio = StdioTests(cases=[StdioCase(stdin="2\n", stdout="4\n")])
    looping = FunctionTests(
        tests="def check(c):\n    for x in (2, 3):\n        assert c(x) == x * x\n", entry_point="f"
    )
    programs = [
        ("def f(x):\n    return x * x\n", SQUARE),
        ("def f(x):\n    return x + 1\n", SQUARE),
        (
            "import os\nos.fork()\ndef f(x):\n    while True:\n        pass\n",
            SQUARE,
        ),  # killed per test
        ("while True:\n    print('y' * 10000)\n", SQUARE),  # killed for its output
        ("blocks = []\nwhile True:\n    blocks.append(bytearray(10 ** 7))\n", SQUARE),
        ("print(int(input()) ** 2)\n", stdio),
        ("def f(x):\n    return x * x\n", looping),
    ]
    requests = [VerifyRequest(program=p, tests=t, limits=QUICK) for p, t in programs] * 40  # 280
    held = []
    with Sandbox(uid=uid, max_idle=2) as box:
        cgroups = (
            [CGROUP_ROOT / c / box.config.cgroup_parent for c in CONTROLLERS] if box.cgroups else []
        )
        for start in range(0, len(requests), 70):
            verdicts = verify(requests[start : start + 70], sandbox=box, concurrency=2)
            assert all(v.status != "sandbox_error" for v in verdicts), [v.error for v in verdicts]
            assert not jailed_processes(uid)
            held.append(
                (
                    len(_open_fds() - fds),
                    len(owned_by(uid)),
                    sum(len(list(c.glob("NSJAIL.*"))) for c in cgroups),
                )
            )
    # While it runs: two jails at most, each one zygote, two descriptors and a cgroup per
    # controller; two judging helpers with two pipes each; a memfd per jail configuration
    # (two: these limits and the start-up check's).
    assert all(
        d <= 2 * 2 + 2 * 2 + 2 and p <= 2 and c <= 2 * len(CONTROLLERS) for d, p, c in held
    ), held
    assert _open_fds() == fds and _children() == children and not owned_by(uid)
    assert not any(c.exists() for c in cgroups)


def test_a_jail_killed_while_its_program_runs_leaves_no_cgroup_or_process():
    """The host ends a jail itself when its zygote stops answering; nsjail, killed, removes
    nothing, and the jail's processes are still being torn down when it is gone."""
    uid = JAIL_UID + 4
    busy = "import os\nfor _ in range(3):\n    os.fork()\nwhile True:\n    pass\n"  # 8 processes
    with Sandbox(uid=uid, max_idle=1) as box:
        if not box.cgroups:
            pytest.skip("cgroups are not writable here")
        request = VerifyRequest(
            program=busy, tests=SQUARE, limits=Limits(wall_seconds=30, test_seconds=30)
        )
        with box.zygotes.zygote(
            JailKey(request.limits.memory_mb, request.limits.max_pids)
        ) as zygote:
            dirs = box.config.cgroup_dirs(zygote.proc.pid)
            killer = threading.Timer(1.0, zygote.proc.kill)
            killer.start()
            with pytest.raises(ZygoteFailed):
                plan.execute(plan.plan(request), zygote)
            killer.join()
        assert not any(d.exists() for d in dirs), dirs
        for _ in range(50):  # the kernel reaps a dead PID namespace's processes a moment later
            if not owned_by(uid):
                break
            time.sleep(0.1)
        assert not owned_by(uid)


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_runs_jails_of_its_own_and_leaves_its_parents_alone():
    """A Celery prefork worker builds its Sandbox before forking its children."""
    good = VerifyRequest(program="def f(x):\n    return x * x\n", tests=SQUARE, limits=QUICK)
    with Sandbox(uid=JAIL_UID + 3) as box:
        assert box.run(good).all_passed
        parents = (
            [CGROUP_ROOT / c / box.config.cgroup_parent for c in CONTROLLERS] if box.cgroups else []
        )
        pid = os.fork()
        if pid == 0:
            try:
                verdict = box.run(good)
                mine = box.config.cgroup_parent.startswith(f"rlvr-{os.getpid()}-")
                box.close()  # the child's own jails and cgroups
                os._exit(0 if verdict.all_passed and mine else 1)
            finally:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert all(p.exists() for p in parents) and box.run(good).all_passed
        assert not [p for c in CONTROLLERS for p in (CGROUP_ROOT / c).glob(f"rlvr-{pid}-*")]


def test_the_cli_leaves_no_jail_cgroup_or_temporary_file(tmp_path, monkeypatch):
    from sandbox.__main__ import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    rows = tmp_path / "in.jsonl"
    rows.write_text(
        '{"task_id": 1, "code": "def f(x):\\n    return x\\n", "test_list": ["assert f(1) == 1"]}\n'
    )
    mine = f"rlvr-{os.getpid()}-"
    before = {p for c in CONTROLLERS for p in (CGROUP_ROOT / c).glob(mine + "*")}
    assert main(["verify", str(rows)]) == 0
    assert {p for c in CONTROLLERS for p in (CGROUP_ROOT / c).glob(mine + "*")} == before
    assert not any((tmp_path / "tmp").iterdir())


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def _children() -> set[int]:
    mine = str(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1] == mine:
                    found.add(int(entry))
            except OSError:
                pass
    return found
