"""`make demo`'s script end to end: honcho starts the Procfile, the demo plan's SFT, eval, train
and eval jobs go through the public HTTP API (code rewards through the verify pool), the table
is printed and the stack stops cleanly. The plan is deploy/demo's, cut to a few steps."""

import subprocess
import sys

import pytest
import yaml
from support import ROOT

DEMO = ROOT / "deploy" / "demo"
# The demo's specs, shrunk: every job still runs, loads its model from the job before it and
# stores its rows, in seconds instead of minutes.
SMALL = {
    "sft": {"max_steps": 2, "batch_size": 4, "eval_size": 2},
    "train": {
        "stopping": {"max_steps": 1},
        "optim": {"prompts_per_step": 2},
        "algorithm": {"group_size": 2},
        "data": {"dynamic_sampling": False, "eval_every": 0, "checkpoint_every": 0},
    },
    # 8 problems: the code task's first 8 held-out problems include both of its parts.
    "eval": {"num_problems": 8, "num_samples": 2, "k": [1]},
}


def small_plan(out):
    plan = yaml.safe_load((DEMO / "demo.yaml").read_text())
    for task in plan["tasks"]:
        for kind in ("sft", "train", "eval"):
            spec = yaml.safe_load((DEMO / task[kind]).read_text())
            for key, value in SMALL[kind].items():
                spec[key] = {**spec.get(key, {}), **value} if isinstance(value, dict) else value
            (out / task[kind]).write_text(yaml.safe_dump(spec))
    (out / "demo.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    return plan


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_demo_runs_its_plan_through_the_stack(stack_env, tmp_path):
    plan = small_plan(tmp_path)
    # Its own SQLite file, as `make demo` would make, which the script migrates itself.
    env = {
        **stack_env,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "RLVR_HOME": str(tmp_path / "home"),
    }
    done = subprocess.run(
        [sys.executable, "deploy/stack.py", "demo", "--plan", str(tmp_path / "demo.yaml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("Metric"))
    assert (
        "Baseline" in lines[header] and "RLVR" in lines[header] and "Improvement" in lines[header]
    )
    labels = [label for task in plan["tasks"] for label in task["metrics"]]
    assert [
        line.split("  ")[0].strip() for line in lines[header + 1 : header + 1 + len(labels)]
    ] == labels
    assert sum("/jobs/" in line for line in lines) >= 4 * len(plan["tasks"])
    assert "stopping the stack" in done.stdout
