"""Refinement episodes on the program task, judged in the real sandbox: feedback, turns, rows."""

import pytest
import torch

from rlvr.policy import load_policy
from rlvr.refine import refine
from rlvr.rollout import Rollout, generate, policy_logprobs
from rlvr.scoring import score_batch
from rlvr.spec import ModelSpec
from rlvr.tasks.program_synthesis import ProgramSynthesis, ProgramSynthesisOptions
from rlvr.verifier import local_sandbox_verifier

REWARDS = [{"name": "code_tests", "weight": 1.0}]


@pytest.fixture(scope="module")
def setup(tiny_dir):
    torch.manual_seed(0)
    model, tokenizer, _ = load_policy(ModelSpec(name=tiny_dir, lora=None))
    task = ProgramSynthesis(ProgramSynthesisOptions(train_size=4, test_size=2))
    return model, tokenizer, task, task.problems("test"), local_sandbox_verifier(concurrency=2)


def scripted(model, tokenizer, prompts: list[str], completions: list[str]) -> Rollout:
    """A rollout whose completions are given (teacher-forced), with the model's log-probs."""
    prompt = tokenizer(prompts, return_tensors="pt", padding=True)
    ids = [
        tokenizer(c, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        for c in completions
    ]
    width = max(map(len, ids))
    completion_ids = torch.tensor(
        [row + [tokenizer.pad_token_id] * (width - len(row)) for row in ids]
    )
    mask = torch.tensor([[1.0] * len(row) + [0.0] * (width - len(row)) for row in ids])
    temperatures = torch.ones(len(prompts))
    with torch.no_grad():
        logprobs, _ = policy_logprobs(
            model, prompt.input_ids, prompt.attention_mask, completion_ids, mask, temperatures
        )
    return Rollout(
        prompt.input_ids,
        prompt.attention_mask,
        completion_ids,
        mask,
        logprobs * mask,
        temperatures,
        torch.zeros(len(prompts), dtype=torch.bool),
        completions,
    )


@pytest.mark.parametrize("loss", ["last", "all"])
def test_failed_rows_retry_with_feedback_and_passing_rows_stop(setup, loss):
    model, tokenizer, task, problems, verify = setup
    rows = [problems[0], problems[0], problems[1]]
    first = scripted(
        model, tokenizer, [p.prompt for p in rows], [task.reference(rows[0]), " xs[", " 0"]
    )
    scored = score_batch(task, rows, first.completions, REWARDS, verify)
    assert scored.grades == ["pass", "fail", "fail"]
    episodes = refine(
        model,
        tokenizer,
        task,
        rows,
        first,
        scored,
        REWARDS,
        verify,
        max_turns=3,
        max_new_tokens=6,
        loss=loss,
    )
    assert [len(turns) for turns in episodes.turns] == [1, 3, 3]  # the random model keeps failing
    assert episodes.turns[1][0]["feedback"].startswith("Test 1 failed: SyntaxError")
    retry_prompt = tokenizer.decode(
        episodes.rollout.prompt_ids[episodes.last_row[1]], skip_special_tokens=True
    )
    assert (
        retry_prompt.count(rows[1].prompt) == 3
        and "# Feedback: Test 1 failed: SyntaxError" in retry_prompt
    )
    assert (
        " xs[\n" in retry_prompt and "f(" not in episodes.turns[1][0]["feedback"]
    )  # hidden tests stay hidden
    assert episodes.rewards[0] == 1.0 and episodes.rewards[1] == episodes.turns[1][-1]["reward"]
    expected_rows = 3 if loss == "last" else 1 + 3 + 3
    assert len(episodes.rollout.completions) == expected_rows
    assert sorted(episodes.row_episode.tolist()) == sorted(
        [0, 1, 2] if loss == "last" else [0, 1, 1, 1, 2, 2, 2]
    )
    assert episodes.turn_metrics()["refine/mean_turns"] == pytest.approx(7 / 3)


def test_discounted_and_best_rewards(setup):
    model, tokenizer, task, problems, verify = setup
    first = generate(model, tokenizer, [problems[0].prompt], group_size=2, max_new_tokens=6)
    scored = score_batch(task, [problems[0]] * 2, first.completions, REWARDS, verify)
    for mode in ("discounted", "best"):
        episodes = refine(
            model,
            tokenizer,
            task,
            [problems[0]] * 2,
            first,
            scored,
            REWARDS,
            verify,
            max_turns=2,
            max_new_tokens=6,
            reward_mode=mode,
            discount=0.5,
            show_tests=True,
        )
        for turns, reward in zip(episodes.turns, episodes.rewards):
            values = [t["reward"] for t in turns]
            expected = (
                values[-1] * 0.5 ** (len(values) - 1) if mode == "discounted" else max(values)
            )
            assert reward == pytest.approx(expected)
