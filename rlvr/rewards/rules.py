"""Rule rewards: functions of the completion and the problem's columns, run in-process.

Owns ``verdict`` (the task checker's grade as a number), matching against the answer
(``exact_match``, ``numeric_match``, ``f1``, ``classification``, ``regression``), the
completion's form (``format``, ``keyword_contains``, ``length_penalty``) and ``composite``
(a weighted sum of others). Each registers in ``rlvr.rewards.base.REWARDS`` on import.

A spec's own regexes (the ``pattern`` of ``exact_match``, ``numeric_match`` and ``format``)
run under RE2 (``user_pattern``), never Python's ``re``: RE2 matches in time linear in the
text, so a pattern like ``(a+)+$`` cannot backtrack for hours while holding the GIL (issue
14), at the cost of backreferences and lookaround, which RE2 refuses at compile time.
"""

import functools
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

import re2

from rlvr.rewards.base import RewardSpec, register_reward, score
from rlvr.text import last_boxed, last_number, normalize_number

PATTERN_REWARDS = ("exact_match", "numeric_match", "format")
"""The rewards whose ``pattern`` kwarg is a user's regex (checked at submit by the service)."""

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.dot_nl = True  # as re.DOTALL: a completion's answer may follow a newline
_RE2_OPTIONS.log_errors = False  # a bad pattern is the ValueError below, not a line on stderr


@functools.lru_cache(maxsize=256)
def user_pattern(pattern: str) -> "re2._Regexp":
    """``pattern`` compiled by RE2 (linear-time matching); ValueError when RE2 cannot take it.

    >>> user_pattern(r"(a+)+$").search("a" * 100_000 + "b") is None
    True
    >>> user_pattern(r"(a)\\1")
    Traceback (most recent call last):
    ...
    ValueError: not a pattern RE2 accepts (no backreferences or lookaround): invalid escape sequence: \\1
    """
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(
            f"not a pattern RE2 accepts (no backreferences or lookaround): {reason}"
        ) from None


def _extract(completion: str, pattern: str | None) -> str | None:
    if pattern is None:
        return completion
    found = user_pattern(pattern).search(completion)
    if not found:
        return None
    return found.group(1) if found.groups() else found.group(0)


@register_reward("verdict")  # the name specs have always used for it
def grade_reward(completions: list[str], grade: Sequence[str], **_columns) -> list[float | None]:
    """The task checker's grade: pass 1.0, fail 0.0, error None.

    >>> grade_reward(["a", "b", "c"], grade=["pass", "fail", "error"])
    [1.0, 0.0, None]
    """
    return [{"pass": 1.0, "fail": 0.0}.get(g) for g in grade]


@register_reward("exact_match", settings=("pattern", "case_sensitive"))
def exact_match(
    completions: list[str],
    answer: Sequence[str],
    pattern: str | None = None,
    case_sensitive: bool = False,
    **_columns,
) -> list[float | None]:
    """1.0 when the completion (or the regex ``pattern``'s first group in it) equals the answer.

    >>> exact_match([" Paris ", "paris.", "The answer: Rome"], answer=["paris"] * 2 + ["Rome"], pattern=None)
    [1.0, 0.0, 0.0]
    >>> exact_match(["The answer: Rome"], answer=["rome"], pattern=r"answer: (\\w+)")
    [1.0]
    """
    scores: list[float | None] = []
    for completion, reference in zip(completions, answer):
        found = _extract(completion, pattern)
        if found is None:
            scores.append(0.0)
            continue
        left, right = found.strip(), str(reference).strip()
        if not case_sensitive:
            left, right = left.lower(), right.lower()
        scores.append(1.0 if left == right else 0.0)
    return scores


def _against_numbers(
    completions: list[str], answer: Sequence[str], compare: Callable[[str, float], float]
) -> list[float | None]:
    """``compare(completion, reference)`` per sample; None where the reference is not a number."""
    scores: list[float | None] = []
    for completion, reference in zip(completions, answer):
        expected = normalize_number(str(reference))
        scores.append(None if expected is None else compare(completion, float(expected)))
    return scores


@register_reward("numeric_match", settings=("pattern", "tolerance"))
def numeric_match(
    completions: list[str],
    answer: Sequence[str],
    pattern: str | None = None,
    tolerance: float = 1e-6,
    **_columns,
) -> list[float | None]:
    """1.0 when the last number of the completion (or of ``pattern``'s match) equals the answer.

    None when the reference itself is not a number.

    >>> numeric_match(["so 1,000 total", "#### 7", "none"], answer=["1000", "8", "x"])
    [1.0, 0.0, None]
    """

    def match(completion: str, expected: float) -> float:
        found = _extract(completion, pattern)
        got = last_number(found) if found is not None else None
        return 1.0 if got is not None and abs(float(got) - expected) <= tolerance else 0.0

    return _against_numbers(completions, answer, match)


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


@register_reward("f1")
def f1(completions: list[str], answer: Sequence[str], **_columns) -> list[float | None]:
    """Bag-of-words F1 between completion and answer (SQuAD style, lower-cased).

    >>> f1(["the cat sat", "dog"], answer=["cat sat down", "cat"])
    [0.6666666666666666, 0.0]
    """
    scores: list[float | None] = []
    for completion, reference in zip(completions, answer):
        got, expected = _tokens(completion), _tokens(str(reference))
        common = sum(min(got.count(word), expected.count(word)) for word in set(got))
        if common == 0:
            scores.append(0.0)
            continue
        precision, recall = common / len(got), common / len(expected)
        scores.append(2 * precision * recall / (precision + recall))
    return scores


@register_reward("classification", settings=("labels",))
def classification(
    completions: list[str], answer: Sequence[str], labels: Sequence[str], **_columns
) -> list[float | None]:
    """1.0 when the first of ``labels`` that the completion mentions is the answer.

    >>> classification(["I think negative", "positive!", "unsure"], answer=["negative"] * 3,
    ...                labels=["positive", "negative"])
    [1.0, 0.0, 0.0]
    """
    scores: list[float | None] = []
    for completion, reference in zip(completions, answer):
        text = completion.lower()
        positions = [(text.find(label.lower()), label) for label in labels if label.lower() in text]
        predicted = min(positions)[1] if positions else None
        scores.append(
            1.0 if predicted is not None and predicted.lower() == str(reference).lower() else 0.0
        )
    return scores


@register_reward("regression", settings=("scale", "max_error"))
def regression(
    completions: list[str],
    answer: Sequence[str],
    scale: float = 1.0,
    max_error: float = 1.0,
    **_columns,
) -> list[float | None]:
    """Negative absolute error of the last number, divided by ``scale``, floored at ``-max_error``.

    >>> regression(["about 9", "12", "no idea"], answer=["10", "10", "10"], scale=4.0)
    [-0.25, -0.5, -1.0]
    """

    def negative_error(completion: str, expected: float) -> float:
        got = last_number(completion)
        return -(max_error if got is None else min(abs(float(got) - expected) / scale, max_error))

    return _against_numbers(completions, answer, negative_error)


def _json_body(completion: str) -> Any:
    text = completion.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.DOTALL)
    return json.loads(fenced.group(1) if fenced else text)


@register_reward("format", settings=("kind", "pattern", "schema"))
def format_reward(
    completions: list[str],
    kind: Literal["regex", "boxed", "json", "json_schema"] = "regex",
    pattern: str | None = None,
    schema: dict | Sequence[dict] | None = None,
    **_columns,
) -> list[float | None]:
    """1.0 when the completion has the format: ``regex`` (fullmatch of ``pattern``), ``boxed``
    (a ``\\boxed{}`` answer), ``json`` (parses) or ``json_schema`` (parses and validates
    against ``schema``, one schema or a column of them).

    >>> format_reward(['{"a": 1}', "{'a': 1}"], kind="json")
    [1.0, 0.0]
    >>> format_reward(['{"a": 1}', '{"a": "x"}'], kind="json_schema",
    ...               schema={"type": "object", "properties": {"a": {"type": "integer"}}})
    [1.0, 0.0]
    >>> format_reward(["<a>1</a>", "1"], kind="regex", pattern=r"<a>\\d+</a>")
    [1.0, 0.0]
    """
    if kind not in _FORMAT_CHECKS:
        raise ValueError(f"format kind {kind!r} is not one of {sorted(_FORMAT_CHECKS)}")
    schemas = schema if isinstance(schema, Sequence) else [schema] * len(completions)
    return [
        1.0 if _FORMAT_CHECKS[kind](completion, pattern, one_schema) else 0.0
        for completion, one_schema in zip(completions, schemas)
    ]


def _regex_ok(completion: str, pattern: str | None, _schema: dict | None) -> bool:
    if pattern is None:
        raise ValueError("format kind 'regex' needs a pattern")
    return user_pattern(pattern).fullmatch(completion.strip()) is not None


def _json_ok(completion: str, _pattern: str | None, schema: dict | None) -> bool:
    try:
        body = _json_body(completion)
    except json.JSONDecodeError:
        return False
    if schema is None:
        return True
    import jsonschema

    return jsonschema.Draft202012Validator(schema).is_valid(body)


def _schema_ok(completion: str, pattern: str | None, schema: dict | None) -> bool:
    if schema is None:
        raise ValueError("format kind 'json_schema' needs a schema")
    return _json_ok(completion, pattern, schema)


_FORMAT_CHECKS: dict[str, Callable[[str, str | None, dict | None], bool]] = {
    "regex": _regex_ok,
    "boxed": lambda completion, _pattern, _schema: last_boxed(completion) is not None,
    "json": lambda completion, pattern, _schema: _json_ok(completion, pattern, None),
    "json_schema": _schema_ok,
}


@register_reward("keyword_contains", settings=("keywords", "mode", "case_sensitive"))
def keyword_contains(
    completions: list[str],
    keywords: Sequence[str],
    mode: Literal["any", "all"] = "any",
    case_sensitive: bool = False,
    **_columns,
) -> list[float | None]:
    """1.0 when the completion contains any (``mode="any"``) or all (``"all"``) keywords.

    >>> keyword_contains(["Hello World", "hello"], keywords=["world", "hello"], mode="all")
    [1.0, 0.0]
    """
    combine = {"any": any, "all": all}[mode]
    fold = (lambda text: text) if case_sensitive else str.lower
    return [
        1.0 if combine(fold(keyword) in fold(completion) for keyword in keywords) else 0.0
        for completion in completions
    ]


@register_reward("length_penalty", settings=("target_chars",))
def length_penalty(
    completions: list[str], target_chars: int = 200, **_columns
) -> list[float | None]:
    """0 up to ``target_chars``, then minus the overshoot as a fraction of it, floored at -1.

    >>> length_penalty(["x" * 10, "x" * 15, "x" * 40], target_chars=10)
    [0.0, -0.5, -1.0]
    """
    return [0.0 - min(max(len(c) - target_chars, 0) / target_chars, 1.0) for c in completions]


@register_reward("composite", settings=("components",))
def composite(
    completions: list[str], components: Sequence[RewardSpec], **columns
) -> list[float | None]:
    """Weighted sum of other rewards, given as ``components=[{name, weight, kwargs}]``.

    >>> composite(["= 4", "5"], components=[{"name": "exact_match", "weight": 0.5,
    ...           "kwargs": {"pattern": r"=\\s*(\\d+)"}}, {"name": "f1", "weight": 1.0}], answer=["4", "4"])
    [1.5, 0.0]
    """
    return score(components, completions, columns)[0]
