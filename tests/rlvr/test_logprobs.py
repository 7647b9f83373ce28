"""The warp: by hand; sampling draws from and records exactly the warped distribution."""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig

from rlvr.logprobs import Warp, completion_logprobs, warp_logits
from rlvr.policy import load_tokenizer
from rlvr.rollout import generate, policy_logprobs


def test_warp_by_hand_penalty_then_temperature_then_top_k_then_top_p():
    logits = torch.tensor([[2.0, 1.0, -1.0, 0.5]])
    seen = torch.tensor([[True, False, True, False]])
    penalised = warp_logits(logits, torch.ones(1), Warp(repetition_penalty=2.0), seen)
    assert penalised.tolist() == [[1.0, 1.0, -2.0, 0.5]]  # 2/2 and -1*2
    cooled = warp_logits(logits, torch.tensor([2.0]), Warp(top_k=2), None)
    assert cooled[0, :2].tolist() == [1.0, 0.5] and torch.isinf(cooled[0, 2:]).all()
    # probabilities 0.5, 0.3, 0.2: top-p 0.6 keeps two (mass before the third is 0.8)
    nucleus = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.2)]])
    kept = warp_logits(nucleus, torch.ones(1), Warp(top_p=0.6), None)
    assert torch.isinf(kept[0, 2]) and not torch.isinf(kept[0, :2]).any()
    only_top = warp_logits(nucleus, torch.ones(1), Warp(top_p=0.5), None)
    assert torch.isinf(only_top[0, 1:]).all() and not torch.isinf(only_top[0, 0])


def _reference_logp(logits: torch.Tensor, context: list[int], t: float, warp: Warp) -> torch.Tensor:
    """One position's warped log-probs, written plainly and apart from warp_logits.  (V,)"""
    logits = logits.clone()
    for token in set(context):
        value = logits[token]
        logits[token] = (
            value * warp.repetition_penalty if value < 0 else value / warp.repetition_penalty
        )
    logits = logits / t
    keep = torch.zeros_like(logits, dtype=torch.bool)
    order = logits.argsort(descending=True)
    mass = 0.0
    probs_k = torch.softmax(logits[order[: warp.top_k]], dim=0)  # top-k, renormalised
    for rank in range(warp.top_k):
        if mass >= warp.top_p:
            break
        keep[order[rank]] = True
        mass += probs_k[rank].item()
    return torch.log_softmax(logits.masked_fill(~keep, float("-inf")), dim=0)


@pytest.fixture(scope="module")
def opinionated_dir(tmp_path_factory, tiny_dir):
    """The tiny model with Qwen-Instruct-like generation_config defaults that must not apply."""
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    model.generation_config = GenerationConfig(
        do_sample=True, top_k=2, top_p=0.3, repetition_penalty=3.0, temperature=0.2,
        eos_token_id=model.config.eos_token_id, pad_token_id=model.config.pad_token_id,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("opinionated")
    model.save_pretrained(out)
    load_tokenizer(tiny_dir).save_pretrained(out)
    return str(out)


def test_sampled_tokens_and_recorded_logprobs_are_the_warped_distributions(opinionated_dir):
    model = AutoModelForCausalLM.from_pretrained(opinionated_dir).eval()
    tokenizer = load_tokenizer(opinionated_dir)
    warp = Warp(top_k=12, top_p=0.9, repetition_penalty=1.3)
    torch.manual_seed(0)
    rollout = generate(
        model, tokenizer, ["1+2", "Numbers: 30, 100. Target:"], group_size=24,
        temperature=1.5, top_k=12, top_p=0.9, repetition_penalty=1.3, max_new_tokens=10,
    )  # fmt: skip
    with torch.no_grad():
        ids = torch.cat([rollout.prompt_ids, rollout.completion_ids], dim=1)
        mask = torch.cat([rollout.prompt_mask, rollout.completion_mask.long()], dim=1)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    width = rollout.prompt_ids.shape[1]
    checked = outside_top2 = 0
    for row in range(ids.shape[0]):
        prompt = rollout.prompt_ids[row][rollout.prompt_mask[row].bool()].tolist()
        completion = rollout.completion_ids[row].tolist()
        for t in range(int(rollout.completion_mask[row].sum())):
            raw = logits[row, width + t - 1]
            expected = _reference_logp(raw, prompt + completion[:t], 1.5, warp)
            token = completion[t]
            assert math.isfinite(expected[token].item()), (row, t)  # inside the warped support
            assert rollout.logprobs[row, t].item() == pytest.approx(
                expected[token].item(), abs=1e-4
            )
            outside_top2 += token not in raw.topk(2).indices.tolist()
            checked += 1
    assert checked > 200
    assert outside_top2 > 20  # the generation_config's top_k 2 (and top_p 0.3) did not apply
    fresh, _ = policy_logprobs(
        model, rollout.prompt_ids, rollout.prompt_mask, rollout.completion_ids,
        rollout.completion_mask, rollout.temperatures, warp=warp, chunk_tokens=7,
    )  # fmt: skip
    masked = rollout.completion_mask.bool()
    assert torch.allclose(fresh[masked], rollout.logprobs[masked], atol=1e-4)


def test_chunked_logprobs_and_gradients_equal_the_whole_vocabulary_at_once(tiny_dir):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    head = model.get_output_embeddings()
    hidden = torch.randn(3, 9, model.config.hidden_size, requires_grad=True)
    tokens = torch.randint(0, model.config.vocab_size, (3, 9))
    prompt = torch.randint(0, model.config.vocab_size, (3, 4))
    prompt_mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]])
    temperatures = torch.tensor([0.7, 1.0, 1.3])
    warp = Warp(top_k=400, top_p=0.99, repetition_penalty=1.2)
    results = []
    for chunk in (10_000, 4):  # one chunk, then 3 rows x 1 position per chunk
        hidden.grad = None
        logp, ent = completion_logprobs(
            hidden, head, tokens, temperatures, warp, prompt, prompt_mask, True, chunk
        )
        (logp.sum() + ent.sum()).backward()
        results.append((logp.detach(), ent.detach(), hidden.grad.clone()))
    (logp1, ent1, grad1), (logp2, ent2, grad2) = results
    assert torch.allclose(logp1, logp2) and torch.allclose(ent1, ent2)
    assert torch.allclose(grad1, grad2, atol=1e-6) and grad1.abs().sum() > 0
    # and the whole-vocabulary logits of a plain forward, scored one position at a time
    with torch.no_grad():
        logits = head(hidden).float()
    for b in range(3):
        for t in range(9):
            context = prompt[b][prompt_mask[b].bool()].tolist() + tokens[b, :t].tolist()
            expected = _reference_logp(logits[b, t], context, temperatures[b].item(),
                                       warp)  # fmt: skip
            want = max(expected[tokens[b, t]].item(), -30.0)
            assert logp1[b, t].item() == pytest.approx(want, abs=1e-4)
