"""llm_judge against a real local OpenAI-compatible server (rlvr.serve) serving the tiny model.

The fixture fine-tunes the tiny model for a few steps to answer every judge request with
"8", so the scores are known; the failure cases use a stalled socket, a closed port and a
model name the server does not serve. Specs name endpoints the test declares, as an operator would.
"""

import socket
import subprocess
import sys

import pytest
import torch

from rlvr.policy import load_tokenizer
from rlvr.rewards.base import score
from rlvr.rewards.llm import JudgeEndpoint, chat, llm_judge, rubric_messages, use_endpoints
from rlvr.serve import render
from rlvr.spec import RewardSpec

PROMPTS = ["Add 2 and 2.", "Name a prime.", "Reverse 'ab'."]
COMPLETIONS = ["4", "9", "ba"]
RUBRIC = "Correct answers score high."


@pytest.fixture(scope="module")
def judge_dir(tiny_dir, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    reply = tokenizer(" 8", add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    rows = [
        tokenizer(render(tokenizer, rubric_messages(p, c, RUBRIC, 10))).input_ids + reply
        for p in PROMPTS
        for c in COMPLETIONS
    ]
    width = max(map(len, rows))
    ids = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in rows])
    labels = torch.full_like(ids, -100)  # learn only the reply
    for i, row in enumerate(rows):
        labels[i, len(row) - len(reply) : len(row)] = torch.tensor(reply)
    mask = (labels != -100) | (
        torch.arange(width) < torch.tensor([len(r) for r in rows]).unsqueeze(1)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):
        loss = model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    out = tmp_path_factory.mktemp("judge")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def judge_url(judge_dir):
    server = subprocess.Popen(
        [sys.executable, "-m", "rlvr.serve", judge_dir, "--name", "tiny-judge"],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = server.stdout.readline()
    assert line.startswith("serving "), line
    yield line.split()[1]
    server.terminate()
    server.wait(10)


@pytest.fixture
def declare():
    """`declare(url)` makes `url` the endpoint named "judge" for the test."""
    yield lambda url: use_endpoints({"judge": JudgeEndpoint(url=url, model="tiny-judge")})
    use_endpoints(None)


def test_scores_come_from_the_served_model(judge_url, declare):
    direct = chat(
        judge_url, "tiny-judge", rubric_messages(PROMPTS[0], COMPLETIONS[0], RUBRIC, 10), 30, 8
    )
    assert direct.strip() == "8"
    declare(judge_url)
    assert llm_judge(COMPLETIONS, prompt=PROMPTS, endpoint="judge", rubric=RUBRIC) == [
        0.8,
        0.8,
        0.8,
    ]


def test_configured_from_a_spec_like_any_reward(judge_url, declare):
    declare(judge_url)
    spec = RewardSpec(name="llm_judge", weight=0.5, kwargs={"endpoint": "judge", "rubric": RUBRIC})
    totals, components = score([spec.model_dump()], COMPLETIONS[:2], {"prompt": PROMPTS[:2]})
    assert components["llm_judge"] == [0.8, 0.8] and totals == [0.4, 0.4]


def test_an_unknown_model_or_a_reply_out_of_range_gives_none(judge_url, declare):
    declare(judge_url)
    assert llm_judge(COMPLETIONS[:1], prompt=PROMPTS[:1], endpoint="judge", model="gpt-x") == [None]
    assert llm_judge(
        COMPLETIONS[:1], prompt=PROMPTS[:1], endpoint="judge", rubric=RUBRIC, max_score=5
    ) == [None]  # "8" is not a score out of 5


def test_a_stalled_or_absent_endpoint_gives_none(declare):
    with socket.socket() as stalled:  # accepts connections, never answers
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(8)
        declare(f"http://127.0.0.1:{stalled.getsockname()[1]}/v1")
        assert llm_judge(COMPLETIONS, prompt=PROMPTS, endpoint="judge", timeout=0.5) == [None] * 3
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    declare(f"http://127.0.0.1:{port}/v1")
    assert llm_judge(COMPLETIONS, prompt=PROMPTS, endpoint="judge", timeout=2) == [None] * 3


def test_endpoints_come_from_the_operator_by_name(monkeypatch, declare):
    monkeypatch.setenv(
        "RLVR_JUDGE_ENDPOINTS", '{"ops": {"url": "http://127.0.0.1:9/v1", "model": "m"}}'
    )
    use_endpoints(None)  # the CLI's way: the variable, read when a judge runs
    assert llm_judge(COMPLETIONS[:1], prompt=PROMPTS[:1], endpoint="ops", timeout=1) == [None]
    with pytest.raises(
        ValueError, match="no judge endpoint named 'elsewhere'; declared: \\['ops'\\]"
    ):
        llm_judge(COMPLETIONS[:1], prompt=PROMPTS[:1], endpoint="elsewhere")
