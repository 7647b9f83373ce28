"""SFT warm start: labels only on the completion, loss goes down, result loads as init_from."""

import torch

from rlvr.callbacks import Callback
from rlvr.policy import load_policy
from rlvr.sft import IGNORE, run_sft, sft_batch
from rlvr.spec import ModelSpec, SFTSpec
from rlvr.tasks.arithmetic import ArithmeticOptions
from rlvr.tasks.base import build_task


def test_labels_cover_the_reference_and_eos_only(tiny_dir):
    _, tokenizer, _ = load_policy(ModelSpec(name=tiny_dir, lora=None))
    task = build_task(ArithmeticOptions(max_digits=1))
    problem = task.problems("test")[0]
    batch = sft_batch(tokenizer, task, [problem], torch.device("cpu"))
    prompt_length = len(tokenizer(problem.prompt).input_ids)
    labels = batch["labels"][0]
    assert (labels[:prompt_length] == IGNORE).all()
    completion = labels[prompt_length:].tolist()
    assert completion[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(completion[:-1]) == task.reference(problem)


def test_given_completions_replace_the_references(tiny_dir):
    """Rejection-sampling fine-tuning trains on verified samples, not on the task's reference."""
    _, tokenizer, _ = load_policy(ModelSpec(name=tiny_dir, lora=None))
    task = build_task(ArithmeticOptions(max_digits=1))
    problems = task.problems("test")[:2]
    batch = sft_batch(tokenizer, task, problems, torch.device("cpu"), completions=["7", "12 3"])
    for labels, completion in zip(batch["labels"], ["7", "12 3"]):
        kept = [t for t in labels.tolist() if t != IGNORE]
        assert kept[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(kept[:-1]) == completion


def test_sft_lowers_the_loss_and_saves_a_loadable_model(tiny_dir, tmp_path):
    losses = []

    class Losses(Callback):
        def on_step(self, step, metrics):
            if "loss" in metrics:
                losses.append(metrics["loss"])

    spec = SFTSpec.model_validate(
        {
            "model": {"name": tiny_dir, "lora": None},
            "task": {"name": "arithmetic", "max_digits": 1, "train_size": 64, "test_size": 4},
            "max_steps": 30,
            "batch_size": 16,
            "learning_rate": 3e-3,
            "warmup_steps": 0,
            "max_new_tokens": 4,
        }
    )
    result = run_sft(spec, tmp_path, Losses())
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    model, _, _ = load_policy(ModelSpec(name=tiny_dir, init_from=str(result.final_dir), lora=None))
    trained, _, _ = load_policy(ModelSpec(name=str(result.final_dir), lora=None))
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), trained.state_dict().values())
    )
    assert "eval/greedy/pass_rate" in result.metrics


def test_prompts_are_rendered_as_rollouts_render_them(tmp_path):
    """A chat model's SFT prompt is the chat template's rendering, token for token the prompt a
    rollout samples from (`encode_prompts`), system turn included; `off` keeps the raw text."""
    from rlvr.rollout import encode_prompts
    from rlvr.tiny import build_chat_model

    _, tokenizer, _ = load_policy(ModelSpec(name=str(build_chat_model(tmp_path)), lora=None))
    task = build_task(ArithmeticOptions(max_digits=1))
    problem = task.problems("test")[0]
    for chat_template, system in (("auto", None), ("on", "Answer with a number."), ("off", None)):
        batch = sft_batch(tokenizer, task, [problem], torch.device("cpu"), chat_template, system)
        rollout = encode_prompts(tokenizer, [problem.prompt], chat_template, system)
        prompt = rollout["input_ids"][0].tolist()
        assert batch["input_ids"][0, : len(prompt)].tolist() == prompt
        assert (batch["labels"][0, : len(prompt)] == IGNORE).all()
        assert batch["labels"][0, len(prompt)] != IGNORE
        rendered = tokenizer.decode(prompt)
        assert ("<|im_start|>user" in rendered) == (chat_template != "off")
        assert (system is not None) == ("Answer with a number." in rendered)
