"""The tiny local model loads through the Auto classes like a hub model."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlvr.policy import resolve_model_path
from rlvr.tiny import build_tiny_model


def test_auto_classes_load_it(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    assert model.config.model_type == "llama"
    assert tokenizer.eos_token == "<|eos|>" and tokenizer.pad_token == "<|pad|>"
    assert model.config.eos_token_id == tokenizer.eos_token_id


def test_digits_are_single_tokens_and_text_round_trips(tiny_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir)
    assert [t for t in tokenizer.tokenize("1234") if t.isdigit()] == ["1", "2", "3", "4"]
    text = "Question: é 12+34 = 46?\n#### 7"
    assert tokenizer.decode(tokenizer(text).input_ids) == text


def test_same_seed_same_weights(tmp_path):
    first = build_tiny_model(tmp_path / "a", hidden_size=16, layers=1, heads=2, seed=5)
    second = build_tiny_model(tmp_path / "b", hidden_size=16, layers=1, heads=2, seed=5)
    a, b = (AutoModelForCausalLM.from_pretrained(str(p)) for p in (first, second))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_tiny_name_resolves_to_a_built_local_model():
    path = resolve_model_path("tiny")
    assert AutoModelForCausalLM.from_pretrained(path).config.hidden_size == 128
    assert resolve_model_path("gpt2") == "gpt2"
