"""The reward registry, and the weighted sum of rewards the trainer optimises.

A reward is a module-level function ``reward(completions, **columns) -> list[float | None]``
(module-level so it pickles for Celery). ``columns`` are the problem fields aligned with the
completions (``prompt``, ``answer``, the task's ``grade``, task metadata) plus the spec's ``kwargs``
and context such as an injected ``verify`` callable. ``None`` means "could not be computed"
(for example the sandbox timed out): the sample is excluded from the loss, never scored 0.

Owns ``REWARDS``, ``register_reward`` and ``score``; imports no reward. The rewards live
one family to a module in this package (``rules``, ``code``, ``llm``), which ``rlvr.rewards``
imports so they register; a task-specific reward lives in its task's file.
"""

from collections.abc import Callable, Sequence
from typing import Any

RewardFn = Callable[..., list[float | None]]
REWARDS: dict[str, RewardFn] = {}
"""Reward name, as specs write it -> function; filled by ``register_reward`` on import."""


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    def add(fn: RewardFn) -> RewardFn:
        REWARDS[name] = fn
        return fn

    return add


def score(
    specs: Sequence[dict[str, Any]], completions: list[str], columns: dict[str, Any]
) -> tuple[list[float | None], dict[str, list[float | None]]]:
    """Weighted sum of rewards ``[{name, weight, kwargs}]`` and each component by name.

    A total is None when any component is None for that sample.
    """
    components: dict[str, list[float | None]] = {}
    for index, spec in enumerate(specs):
        label = spec["name"] if spec["name"] not in components else f"{spec['name']}_{index}"
        values = REWARDS[spec["name"]](completions, **{**columns, **spec.get("kwargs", {})})
        if len(values) != len(completions):
            raise ValueError(
                f"reward {spec['name']!r} returned {len(values)} values for {len(completions)}"
            )
        components[label] = values
    totals: list[float | None] = []
    for sample in range(len(completions)):
        parts = [
            (spec.get("weight", 1.0), values[sample])
            for spec, values in zip(specs, components.values())
        ]
        totals.append(None if any(v is None for _, v in parts) else sum(w * v for w, v in parts))
    return totals, components
