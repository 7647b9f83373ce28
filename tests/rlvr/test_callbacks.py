"""The callback interface and its JSONL implementation."""

import json

from rlvr.callbacks import Callback, CallbackList, Experience, JsonlCallback


def _experience(step: int) -> Experience:
    return Experience(
        step=step,
        prompt_index=0,
        sample_index=1,
        problem_id="1+2",
        prompt="1+2",
        completion=" = 3",
        prompt_tokens=3,
        completion_tokens=4,
        truncated=False,
        reward=None,
        reward_components={"verdict": None},
        verdict="error",
        advantage=0.0,
        logprob_sum=-1.0,
        logprob_mean=-0.25,
        temperature=1.0,
    )


def test_jsonl_files_in_the_run_dir(tmp_path):
    callback = JsonlCallback(tmp_path / "run")
    callback.on_step(1, {"reward": 0.5})
    callback.on_step(2, {"reward": 0.75})
    callback.on_experiences(2, [_experience(2)])
    callback.on_checkpoint(2, "/x")
    metrics = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert metrics == [{"step": 1, "reward": 0.5}, {"step": 2, "reward": 0.75}]
    experience = json.loads((tmp_path / "run" / "experiences.jsonl").read_text())
    assert experience["reward"] is None and experience["verdict"] == "error"
    assert json.loads((tmp_path / "run" / "checkpoints.jsonl").read_text()) == {
        "step": 2,
        "path": "/x",
    }


def test_callback_list_fans_out_and_any_member_can_stop():
    class Stopper(Callback):
        def should_stop(self):
            return True

    seen = []

    class Seer(Callback):
        def on_step(self, step, metrics):
            seen.append(step)

    both = CallbackList([Seer(), Stopper()])
    both.on_step(7, {})
    assert seen == [7] and both.should_stop() and not CallbackList([Seer()]).should_stop()
