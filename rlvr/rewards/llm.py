"""The ``llm_judge`` reward: an OpenAI-compatible chat endpoint scores a completion by a rubric.

Owns the request (a system message with the rubric and the scale, a user message with the
prompt and the completion), reading the score out of the reply, and failure handling:
a timeout, a refused connection, an HTTP error or a reply without a score in range gives
None for that sample (excluded from the loss, never 0). Calls run a few at a time on
threads. Uses only the standard library and pydantic, so it pickles and runs anywhere.

A spec names an endpoint, never an address or a key: the operator declares the endpoints
(``JudgeEndpoint``: URL, model, key) by name, in ``RLVR_JUDGE_ENDPOINTS`` (JSON) or through
``use_endpoints``. A spec that could give a URL and the name of an environment variable
holding the key made every train worker's secrets (``DATABASE_URL``, ``SECRET_KEY``) a
request away for any tenant, and the worker a proxy into its network.
"""

import json
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter

from rlvr.rewards.base import register_reward

log = logging.getLogger(__name__)

SYSTEM = (
    "You are a strict grader. Score the response to the task by this rubric:\n{rubric}\n"
    "Reply with only an integer from 0 to {max_score}."
)
USER = "Task:\n{prompt}\n\nResponse:\n{completion}\n\nScore:"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class JudgeEndpoint(BaseModel):
    """An OpenAI-compatible chat endpoint the operator declared under a name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(
        pattern=r"^https?://", description="The `/v1` base: `{url}/chat/completions` is called."
    )
    model: str = Field(
        description="The model asked, unless a spec names another this endpoint serves."
    )
    api_key: SecretStr | None = Field(
        None, description="Sent as `Authorization: Bearer`; never in a spec."
    )


JudgeEndpoints = TypeAdapter(dict[str, JudgeEndpoint])
ENDPOINTS_VARIABLE = "RLVR_JUDGE_ENDPOINTS"
_endpoints: dict[str, JudgeEndpoint] | None = None


def use_endpoints(table: Mapping[str, JudgeEndpoint] | None) -> None:
    """Declares the endpoints specs may name (the service passes its settings' table);
    None goes back to reading ``RLVR_JUDGE_ENDPOINTS``."""
    global _endpoints
    _endpoints = None if table is None else dict(table)


def judge_endpoints() -> dict[str, JudgeEndpoint]:
    """The declared endpoints: ``use_endpoints``'s, else ``RLVR_JUDGE_ENDPOINTS`` (the CLI's way),
    a JSON object of endpoints by name:

    >>> JudgeEndpoints.validate_json('{"local": {"url": "http://127.0.0.1:8001/v1", "model": "tiny-judge"}}')
    {'local': JudgeEndpoint(url='http://127.0.0.1:8001/v1', model='tiny-judge', api_key=None)}
    """
    if _endpoints is not None:
        return _endpoints
    return JudgeEndpoints.validate_json(os.environ.get(ENDPOINTS_VARIABLE) or "{}")


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


def rubric_messages(
    prompt: str, completion: str, rubric: str, max_score: float
) -> list[dict[str, str]]:
    """The system and user messages the judging model is sent."""
    scale = int(max_score) if float(max_score).is_integer() else max_score
    return [
        {"role": "system", "content": SYSTEM.format(rubric=rubric, max_score=scale)},
        {"role": "user", "content": USER.format(prompt=prompt, completion=completion)},
    ]


def chat(
    url: str,
    model: str,
    messages: list[dict[str, str]],
    timeout: float,
    max_tokens: int,
    api_key: str | None = None,
) -> str:
    """One ``POST {url}/chat/completions``; returns the first choice's text. Raises on failure."""
    body = json.dumps(
        {"model": model, "messages": messages, "temperature": 0.0, "max_tokens": max_tokens}
    )
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(
        url.rstrip("/") + "/chat/completions", data=body.encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)["choices"][0]["message"]["content"]


@register_reward(
    "llm_judge",
    settings=("endpoint", "model", "rubric", "max_score", "timeout", "max_tokens", "concurrency"),
)
def llm_judge(
    completions: list[str],
    prompt: Sequence[str],
    endpoint: str,
    model: str | None = None,
    rubric: str = "Is the response correct, complete and concise?",
    max_score: float = 10.0,
    timeout: float = 30.0,
    max_tokens: int = 8,
    concurrency: int = 4,
    **_columns,
) -> list[float | None]:
    """The judge's score of each completion in [0, 1]; None where the judge gave none.
    ``endpoint`` names a declared endpoint; ``model`` defaults to the endpoint's.

    >>> use_endpoints({"closed": JudgeEndpoint(url="http://127.0.0.1:9/v1", model="m")})
    >>> llm_judge(["4"], prompt=["2+2?"], endpoint="closed", timeout=1.0)
    [None]
    >>> use_endpoints(None)
    """
    declared = judge_endpoints()
    if endpoint not in declared:
        # A spec with no such endpoint is a mistake to report, not a sample to skip.
        raise ValueError(
            f"llm_judge: no judge endpoint named {endpoint!r}; declared: {sorted(declared)}"
        )
    target = declared[endpoint]
    api_key = target.api_key.get_secret_value() if target.api_key else None

    def one(pair: tuple[str, str]) -> float | None:
        messages = rubric_messages(*pair, rubric, max_score)
        try:
            reply = chat(target.url, model or target.model, messages, timeout, max_tokens, api_key)
        except (
            OSError,
            urllib.error.URLError,
            ValueError,
            KeyError,
            IndexError,
            TypeError,
        ) as error:
            log.warning("llm_judge: no score from endpoint %r: %s", endpoint, error)
            return None
        return parse_score(reply, max_score)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(one, zip(prompt, completions)))
