"""The dependency direction of ../shared/DESIGN.md, enforced: `web | worker -> service -> rlvr
-> sandbox` and no torch behind the web app or the shared core. The contracts themselves are
in pyproject.toml's `[tool.importlinter]`; import-linter builds the import graph (imports
inside functions included) with grimp and checks it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_contract_is_kept():
    run = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 kept, 0 broken" in run.stdout


def test_a_reverse_import_breaks_the_layers(tmp_path):
    """The contracts can fail: a copy of the tree in which sandbox imports service is refused."""
    for package in ("rlvr", "service", "web", "worker"):
        (tmp_path / package).symlink_to(ROOT / package)
    (tmp_path / "sandbox").mkdir()
    for source in (ROOT / "sandbox").glob("*.py"):
        (tmp_path / "sandbox" / source.name).write_text(source.read_text())
    (tmp_path / "sandbox" / "reverse.py").write_text("import service.settings\n")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    run = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "sandbox.reverse -> service.settings" in run.stdout
