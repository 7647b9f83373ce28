"""Rollout: one batched generate, left padding, EOS masks, sampling log-probs, warper."""

import pytest
import torch

from rlvr.policy import load_policy
from rlvr.rollout import (
    encode_prompts,
    finish_rollout,
    generate,
    merge_rollouts,
    policy_logprobs,
    sample_temperatures,
    stop_token_ids,
    uses_chat_template,
)
from rlvr.spec import ModelSpec


@pytest.fixture(scope="module")
def policy(tiny_dir):
    model, tokenizer, _ = load_policy(ModelSpec(name=tiny_dir, lora=None))
    return model, tokenizer


PROMPTS = [
    "1+2",
    "Numbers: 30, 100, 93. Target: 23. Expression:",
]  # different lengths: padding matters


def test_shapes_left_padding_and_eos_masks(policy):
    model, tokenizer = policy
    torch.manual_seed(0)
    rollout = generate(model, tokenizer, PROMPTS, group_size=3, max_new_tokens=5)
    assert rollout.completion_ids.shape[0] == 6 and rollout.completion_ids.shape[1] <= 5
    assert (
        rollout.prompt_mask[0, 0] == 0 and rollout.prompt_mask[0, -1] == 1
    )  # short prompt padded on the left
    for row in range(6):
        ids, mask = rollout.completion_ids[row], rollout.completion_mask[row]
        eos = (ids == tokenizer.eos_token_id).nonzero()
        kept = int(eos[0]) + 1 if len(eos) else ids.shape[0]
        assert mask.tolist() == [1.0] * kept + [0.0] * (ids.shape[0] - kept)
        assert bool(rollout.truncated[row]) == (len(eos) == 0)
    assert (rollout.logprobs[rollout.completion_mask == 0] == 0).all()


def test_sampling_logprobs_equal_a_fresh_forward_pass(policy):
    model, tokenizer = policy
    torch.manual_seed(1)
    rollout = generate(
        model, tokenizer, PROMPTS, group_size=2, temperature=[0.7, 1.3], top_p=1.0, max_new_tokens=6
    )
    with torch.no_grad():
        fresh, _ = policy_logprobs(
            model,
            rollout.prompt_ids,
            rollout.prompt_mask,
            rollout.completion_ids,
            rollout.completion_mask,
            rollout.temperatures,
        )
    mask = rollout.completion_mask.bool()
    assert torch.allclose(fresh[mask], rollout.logprobs[mask], atol=1e-4)
    assert rollout.temperatures.tolist() == pytest.approx([0.7, 1.3, 0.7, 1.3])


def test_tiny_temperature_samples_what_greedy_picks(policy):
    model, tokenizer = policy
    greedy = generate(model, tokenizer, PROMPTS, greedy=True, max_new_tokens=5)
    torch.manual_seed(2)
    cold = generate(model, tokenizer, PROMPTS, group_size=1, temperature=1e-4, max_new_tokens=5)
    assert cold.completions == greedy.completions


def test_sample_temperatures_repeat_per_group():
    assert sample_temperatures([0.5, 1.0], prompts=2, group_size=2).tolist() == [0.5, 1.0, 0.5, 1.0]
    assert sample_temperatures(0.8, prompts=1, group_size=3).tolist() == pytest.approx([0.8] * 3)


def test_merge_rollouts_repads_and_keeps_the_chosen_rows(policy):
    model, tokenizer = policy
    torch.manual_seed(3)
    short = generate(model, tokenizer, ["1+2"], group_size=2, max_new_tokens=2)
    long = generate(model, tokenizer, [PROMPTS[1]], group_size=2, max_new_tokens=4)
    merged = merge_rollouts([short, long], [[1], [0, 1]], tokenizer.pad_token_id)
    assert merged.completions == [short.completions[1]] + long.completions
    assert merged.prompt_ids.shape[1] == long.prompt_ids.shape[1]
    width = short.prompt_ids.shape[1]
    assert torch.equal(merged.prompt_ids[0, -width:], short.prompt_ids[1])
    assert merged.completion_mask[0, short.completion_ids.shape[1] :].sum() == 0


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    """The tiny instruct-style Qwen2, its <|im_end|> made the greedy first token of PROMPTS[0]."""
    from transformers import AutoModelForCausalLM

    from rlvr.policy import load_tokenizer
    from rlvr.tiny import build_chat_model

    path = str(build_chat_model(tmp_path_factory.mktemp("chat")))
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), load_tokenizer(path)
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    first = generate(model, tokenizer, PROMPTS[:1], greedy=True, max_new_tokens=1)
    top = first.completion_ids[0, 0]
    with torch.no_grad():  # <|im_end|>'s logit = 1.5 x the top token's (positive) one
        head = model.get_output_embeddings().weight
        head[end_of_turn] = head[top] * 1.5
    return model, tokenizer, end_of_turn


def test_chat_template_and_system_prompt_render_the_prompt(chat):
    _, tokenizer, _ = chat
    encoded = encode_prompts(tokenizer, ["1+2"], "auto", "Be brief.")
    text = tokenizer.decode(encoded["input_ids"][0])
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n1+2<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    plain = encode_prompts(tokenizer, ["1+2"], "off", None)
    assert tokenizer.decode(plain["input_ids"][0]) == "1+2"


def test_chat_template_on_without_one_and_a_long_prompt_are_clear_errors(policy):
    _, tokenizer = policy
    with pytest.raises(ValueError, match="no chat template"):
        encode_prompts(tokenizer, ["1+2"], "on")
    assert not uses_chat_template(tokenizer, "auto")
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        encode_prompts(tokenizer, PROMPTS, "auto", max_prompt_tokens=3)


def test_an_end_of_turn_id_that_is_not_eos_ends_the_completion(chat):
    model, tokenizer, end_of_turn = chat
    assert end_of_turn != tokenizer.eos_token_id
    assert stop_token_ids(model.generation_config, tokenizer) == sorted(
        [end_of_turn, tokenizer.eos_token_id]
    )
    rollout = generate(model, tokenizer, PROMPTS, greedy=True, max_new_tokens=6)
    width = rollout.completion_ids.shape[1]
    assert rollout.completion_ids[0, 0] == end_of_turn
    assert rollout.completion_mask[0].tolist() == [1.0] + [0.0] * (width - 1)
    assert rollout.completions[0] == "" and not rollout.truncated[0]
    # What an engine returns past the end of a turn is neither decoded nor scored.
    a, b = tokenizer.convert_tokens_to_ids(["1", "2"])
    ids = torch.tensor([[a, end_of_turn, b, b], [a, b, tokenizer.eos_token_id, a], [a, b, a, b]])
    done = finish_rollout(
        tokenizer, {"input_ids": ids[:, :1], "attention_mask": torch.ones(3, 1)}, ids,
        torch.full((3, 4), -0.5), torch.ones(3), stop_token_ids(model.generation_config, tokenizer),
    )  # fmt: skip
    assert done.completion_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    assert done.completions == ["1", "12", "1212"]
    assert done.truncated.tolist() == [False, False, True]
    assert done.logprobs.sum(dim=1).tolist() == [-1.0, -1.5, -2.0]


def test_a_stop_string_ends_the_completion_at_the_token_that_completes_it(policy):
    model, tokenizer = policy
    full = generate(model, tokenizer, PROMPTS[1:], greedy=True, max_new_tokens=8)
    ids = full.completion_ids[0].tolist()
    assert full.truncated[0], "the test needs a completion that runs to max_new_tokens"
    stop = tokenizer.decode(ids[2:4], skip_special_tokens=True)  # text of tokens 2 and 3
    cut = generate(
        model, tokenizer, PROMPTS[1:], greedy=True, max_new_tokens=8, stop_strings=[stop]
    )
    kept = int(cut.completion_mask[0].sum())
    assert kept <= 4 and stop in cut.completions[0] and not cut.truncated[0]
    assert stop not in tokenizer.decode(ids[: kept - 1], skip_special_tokens=True)
    assert cut.completion_ids[0, :kept].tolist() == ids[:kept]
    assert full.completions[0].startswith(cut.completions[0])
