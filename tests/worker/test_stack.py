"""`make demo`'s script end to end: honcho starts the Procfile, a job goes through the public
HTTP API, the stack stops cleanly."""

import subprocess
import sys

import pytest

from support import ROOT


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_demo_runs_a_verify_job_through_the_stack(stack_env, tmp_path):
    # Its own SQLite file, as `make demo` would make, which the script migrates itself.
    env = {**stack_env, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
    done = subprocess.run([sys.executable, "deploy/stack.py", "demo", "--limit", "12"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"status": "succeeded"' in done.stdout and '"programs": 12' in done.stdout
    assert "job page: http://127.0.0.1:" in done.stdout
