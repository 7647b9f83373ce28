"""The command line: jobs write JSONL into the run dir; bad specs name the field."""

import json
import subprocess
import sys

import yaml

from rlvr.cli import main


def test_train_writes_metrics_and_experiences(tiny_dir, tmp_path, capsys):
    spec = {
        "model": {"name": tiny_dir, "lora": {"r": 2, "alpha": 4}},
        "task": {"name": "arithmetic", "max_digits": 1, "train_size": 16, "test_size": 4},
        "algorithm": {"group_size": 2},
        "sampling": {"max_new_tokens": 3},
        "optim": {"prompts_per_step": 2},
        "stopping": {"max_steps": 2},
        "data": {"eval_every": 2, "eval_size": 4},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["train", str(path), "--run-dir", str(tmp_path / "run")]) == 0
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [row["step"] for row in rows] == [1, 2, 2]  # two steps, then the eval of step 2
    assert "eval/greedy/pass_rate" in rows[-1]
    assert len((tmp_path / "run" / "experiences.jsonl").read_text().splitlines()) == 2 * 2 * 2
    assert json.loads(capsys.readouterr().out)["stop_reason"] == "max_steps"


def test_an_invalid_spec_exits_2_and_names_the_field(tmp_path, capsys):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"algorithm": {"clip_hgh": 0.3}}))
    assert main(["train", str(path)]) == 2
    assert "algorithm.clip_hgh" in capsys.readouterr().err


def test_module_entry_point_prints_a_schema():
    out = subprocess.run(
        [sys.executable, "-m", "rlvr", "schema", "eval"], capture_output=True, text=True, check=True
    )
    assert "num_samples" in json.loads(out.stdout)["properties"]
