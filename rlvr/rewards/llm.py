"""The ``llm_judge`` reward: an OpenAI-compatible chat endpoint scores a completion by a rubric.

Owns the request (a system message with the rubric and the scale, a user message with the
prompt and the completion), reading the score out of the reply, and failure handling:
a timeout, a refused connection, an HTTP error or a reply without a score in range gives
None for that sample (excluded from the loss, never 0). Calls run a few at a time on
threads. Uses only the standard library, so it pickles and runs anywhere. The endpoint
(``url``, the ``/v1`` base) and ``model`` come from the spec's reward kwargs; an API key, if
the endpoint needs one, is read from the environment variable the spec names.
"""

import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from rlvr.rewards.base import register_reward

log = logging.getLogger(__name__)

SYSTEM = ("You are a strict grader. Score the response to the task by this rubric:\n{rubric}\n"
          "Reply with only an integer from 0 to {max_score}.")
USER = "Task:\n{prompt}\n\nResponse:\n{completion}\n\nScore:"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def parse_score(reply: str, max_score: float) -> float | None:
    """The first number in the reply scaled to [0, 1], or None when there is none in range.

    >>> parse_score("Score: 7/10", 10), parse_score("twelve", 10), parse_score("11", 10)
    (0.7, None, None)
    """
    found = _NUMBER.search(reply)
    if not found:
        return None
    value = float(found.group(0))
    return value / max_score if 0 <= value <= max_score else None


def rubric_messages(prompt: str, completion: str, rubric: str, max_score: float) -> list[dict[str, str]]:
    """The system and user messages the judging model is sent."""
    scale = int(max_score) if float(max_score).is_integer() else max_score
    return [{"role": "system", "content": SYSTEM.format(rubric=rubric, max_score=scale)},
            {"role": "user", "content": USER.format(prompt=prompt, completion=completion)}]


def chat(url: str, model: str, messages: list[dict[str, str]], timeout: float, max_tokens: int,
         api_key: str | None = None) -> str:
    """One ``POST {url}/chat/completions``; returns the first choice's text. Raises on failure."""
    body = json.dumps({"model": model, "messages": messages, "temperature": 0.0, "max_tokens": max_tokens})
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url.rstrip("/") + "/chat/completions", data=body.encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)["choices"][0]["message"]["content"]


@register_reward("llm_judge")
def llm_judge(
    completions: list[str],
    prompt: Sequence[str],
    url: str,
    model: str,
    rubric: str = "Is the response correct, complete and concise?",
    max_score: float = 10.0,
    timeout: float = 30.0,
    max_tokens: int = 8,
    concurrency: int = 4,
    api_key_env: str | None = None,
    **_columns,
) -> list[float | None]:
    """The judge's score of each completion in [0, 1]; None where the judge gave none.

    >>> llm_judge(["4"], prompt=["2+2?"], url="http://127.0.0.1:9/v1", model="m", timeout=1.0)
    [None]
    """
    api_key = os.environ.get(api_key_env) if api_key_env else None

    def one(pair: tuple[str, str]) -> float | None:
        messages = rubric_messages(*pair, rubric, max_score)
        try:
            reply = chat(url, model, messages, timeout, max_tokens, api_key)
        except (OSError, urllib.error.URLError, ValueError, KeyError, IndexError, TypeError) as error:
            log.warning("llm_judge: no score from %s: %s", url, error)
            return None
        return parse_score(reply, max_score)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(one, zip(prompt, completions)))
