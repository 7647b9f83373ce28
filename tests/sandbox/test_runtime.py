import os
import sys

import pytest

from sandbox import runtime


def test_world_traversable(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "f").write_text("x")
    assert not runtime.world_traversable(private / "f")
    assert runtime.world_traversable(runtime.Path("/usr/lib/os-release"))


@pytest.mark.skipif(
    os.geteuid() != 0, reason="the copy is needed only when the jail uid differs from ours"
)
def test_copy_has_the_interpreter_and_stdlib_but_not_site_packages(tmp_path):
    rt = runtime.prepare(tmp_path, copy=True)
    assert rt.python.startswith(str(tmp_path)) and os.access(rt.python, os.X_OK)
    stdlib = (
        tmp_path
        / f"python{sys.version.split()[0]}"
        / "lib"
        / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    )
    assert (stdlib / "json" / "__init__.py").exists()
    assert not (stdlib / "site-packages").exists() and not (stdlib / "test").exists()
    assert os.stat(rt.python).st_mode & 0o005 == 0o005  # readable and executable by anyone
    assert os.stat(stdlib).st_mode & 0o005 == 0o005
    assert runtime.prepare(tmp_path, copy=True) == rt  # made once, then reused
