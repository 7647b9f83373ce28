"""The Python interpreter that runs inside the jail, and the host files it needs.

The jailed process runs as an unprivileged uid, so it can only reach files whose every parent
directory is world-traversable. A pyenv or venv interpreter under /root is not, so this module
keeps a read-only copy of the interpreter and its standard library (no site-packages, no test
suite) in a runtime directory that is, made once per interpreter version. Nothing here runs
untrusted code.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

# Parts of the standard library a verified program has no use for; leaving them out keeps
# the copy small (the test suite alone is most of the size). Also skipped: config-* (the
# static library and build files).
_STDLIB_SKIP = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3"}

# System directories holding the dynamic loader and the shared libraries that the
# interpreter and its extension modules link against. Bound read-only.
SYSTEM_LIBRARY_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64")


@dataclass(frozen=True)
class Runtime:
    """Where the jailed interpreter lives; `mounts` are the paths to bind read-only."""

    python: str
    library_path: str
    mounts: tuple[str, ...]
    symlinks: tuple[tuple[str, str], ...] = ()  # (link, target): /lib -> usr/lib on merged-/usr


def world_traversable(path: Path) -> bool:
    """True if a user with no relation to the owner can reach and read `path`."""
    path = path.resolve()
    for parent in [*reversed(path.parents), path]:
        mode = parent.stat().st_mode
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return bool(path.stat().st_mode & stat.S_IROTH)


def default_runtime_dir() -> Path:
    env = os.environ.get("SANDBOX_RUNTIME_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/rlvr-sandbox")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rlvr-sandbox"


def prepare(runtime_dir: Path | None = None, *, copy: bool | None = None) -> Runtime:
    """Return a Runtime for this interpreter's version, copying it if the jail could not read it.

    `copy=None` copies only when needed: when the host interpreter is not world-readable
    (running as root with an unprivileged jail uid). A copy is made once and reused.
    """
    base = Path(sys.base_prefix).resolve()
    python = Path(
        sys.base_exec_prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}"
    ).resolve()
    if copy is None:
        copy = not (world_traversable(python) and world_traversable(base / "lib"))
    if not copy:
        return Runtime(
            str(python), str(base / "lib"), (str(base), *_library_dirs()), _library_links()
        )

    target = (runtime_dir or default_runtime_dir()) / f"python{sys.version.split()[0]}"
    if not target.exists():
        _copy_interpreter(base, python, target)
    return Runtime(
        str(target / "bin" / python.name),
        str(target / "lib"),
        (str(target), *_library_dirs()),
        _library_links(),
    )


def _library_dirs() -> tuple[str, ...]:
    # Each bind mount costs jail start-up time: symlinked directories become symlinks.
    return tuple(p for p in SYSTEM_LIBRARY_DIRS if os.path.isdir(p) and not os.path.islink(p))


def _library_links() -> tuple[tuple[str, str], ...]:
    return tuple(
        (p, os.readlink(p)) for p in SYSTEM_LIBRARY_DIRS if os.path.islink(p) and os.path.isdir(p)
    )


def _copy_interpreter(base: Path, python: Path, target: Path) -> None:
    staging = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    (staging / "bin").mkdir(parents=True)
    (staging / "lib").mkdir()
    shutil.copy2(python, staging / "bin" / python.name)
    libdir = Path(sysconfig.get_config_var("LIBDIR") or base / "lib")
    for shared in libdir.glob("libpython*.so*"):
        shutil.copy2(shared, staging / "lib" / shared.name)
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    shutil.copytree(
        stdlib,
        staging / "lib" / stdlib.name,
        ignore=lambda _d, names: [
            n
            for n in names
            if n in _STDLIB_SKIP
            or n.startswith("config-")
            or n.endswith((".opt-1.pyc", ".opt-2.pyc"))
        ],
        dirs_exist_ok=True,
    )
    for root, dirs, files in os.walk(staging):
        os.chmod(root, 0o755)
        for f in files:
            p = os.path.join(root, f)
            os.chmod(p, 0o755 if os.access(p, os.X_OK) else 0o644)
    os.chmod(target.parent, 0o755)
    try:
        staging.rename(target)  # atomic: the target exists only when complete
    except OSError:
        shutil.rmtree(staging)  # another process finished its copy first
        if not target.exists():
            raise
