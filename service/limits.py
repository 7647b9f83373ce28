"""How much one spec may ask of a shared pool: the operator's ceilings, checked at the edge.

Owns: the bounds on every spec value that sizes a job's memory or time (steps, completions
per step, completion length, held-out problems, a jail's limits) against the ceilings in
`service.settings` (`RLVR_MAX_*`, `RLVR_SANDBOX_MAX_*`), and the regexes a spec gives its
rewards (RE2 must compile them: `rlvr.rewards.rules.user_pattern`). Before these, a spec with
`prompts_per_step: 1e9` or `memory_mb: 65536` was a 201 and a worker only SIGKILL stopped
(issue 14).

`refusals` lists what a validated spec asks beyond a ceiling, each as (location, message);
`check` raises them as pydantic's ValidationError, so the web app answers 400 naming each
field like any other bad field. The worker asks again before it runs a job (`worker.runners`),
so a spec stored before a ceiling existed, or before the operator lowered one, meets it too.

Does not own: a spec's shape and its own fixed bounds (`rlvr.spec`, `sandbox.models`), what a
user may name (`service.tenancy`), per-user quotas (`service.db.jobs`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticCustomError, ValidationError

from rlvr.rewards.python import jail_seconds
from rlvr.rewards.rules import PATTERN_REWARDS, user_pattern
from rlvr.spec import EvalSpec, SFTSpec, TrainSpec
from service.kinds import VerifyJobSpec
from service.settings import Settings
from service.tenancy import Location, Refusal

# A jail limit's field -> the setting that caps it. Seconds share one ceiling: wall, CPU and
# per-test time all bound how long one program holds a verify slot.
SANDBOX_CEILINGS = {
    "wall_seconds": "sandbox_max_seconds",
    "cpu_seconds": "sandbox_max_seconds",
    "test_seconds": "sandbox_max_seconds",
    "memory_mb": "sandbox_max_memory_mb",
    "output_bytes": "sandbox_max_output_bytes",
    "max_pids": "sandbox_max_pids",
    "tmpfs_mb": "sandbox_max_tmpfs_mb",
}


def check(spec: BaseModel, settings: Settings, title: str = "spec") -> None:
    """Raises pydantic's ValidationError with one error per value over its ceiling."""
    problems = refusals(spec, settings)
    if problems:
        raise ValidationError.from_exception_data(
            title,
            [
                {"type": PydanticCustomError("over_limit", message), "loc": loc, "input": None}
                for loc, message in problems
            ],
        )


def refusals(spec: BaseModel, settings: Settings) -> list[Refusal]:
    """What `spec` (a kind's validated spec model) asks beyond the operator's ceilings."""
    found: list[Refusal] = []
    if isinstance(spec, VerifyJobSpec):
        for index, request in enumerate(spec.requests):
            found += _sandbox(request.limits.model_dump(), settings, ("requests", index, "limits"))
        return found
    if isinstance(spec, TrainSpec):
        found += _at_most(("stopping", "max_steps"), spec.stopping.max_steps, settings, "max_steps")
        prompts, group = spec.optim.prompts_per_step, spec.algorithm.group_size
        # Each alone first, so a huge one is named; then their product, what a step generates.
        alone = _at_most(("optim", "prompts_per_step"), prompts, settings, "max_samples_per_step")
        alone += _at_most(("algorithm", "group_size"), group, settings, "max_samples_per_step")
        found += alone
        if not alone and prompts * group > settings.max_samples_per_step:
            found.append(
                (
                    ("optim", "prompts_per_step"),
                    f"{prompts} prompts x group_size {group} = {prompts * group} completions a step, "
                    f"at most {settings.max_samples_per_step} (RLVR_MAX_SAMPLES_PER_STEP)",
                )
            )
        found += _at_most(
            ("sampling", "max_new_tokens"), spec.sampling.max_new_tokens, settings, "max_new_tokens"
        )
        found += _at_most(("data", "eval_size"), spec.data.eval_size, settings, "max_eval_problems")
        passes = (("algorithm", "ppo_epochs"), spec.algorithm.ppo_epochs)
        refills = (("data", "max_refills"), spec.data.max_refills)
        for loc, value in (passes, refills):
            found += _at_most(loc, value, settings, "max_passes_per_step")
        if spec.algorithm.minibatches > prompts * group:
            found.append(
                (
                    ("algorithm", "minibatches"),
                    f"{spec.algorithm.minibatches} minibatches of {prompts * group} completions "
                    "a step: at most one minibatch per completion",
                )
            )
    elif isinstance(spec, SFTSpec):
        found += _at_most(("max_steps",), spec.max_steps, settings, "max_steps")
        found += _at_most(("batch_size",), spec.batch_size, settings, "max_samples_per_step")
        found += _at_most(("max_new_tokens",), spec.max_new_tokens, settings, "max_new_tokens")
        found += _at_most(("eval_size",), spec.eval_size, settings, "max_eval_problems")
    elif isinstance(spec, EvalSpec):
        found += _at_most(("num_samples",), spec.num_samples, settings, "max_samples_per_step")
        found += _at_most(("batch_size",), spec.batch_size, settings, "max_samples_per_step")
        found += _at_most(
            ("sampling", "max_new_tokens"), spec.sampling.max_new_tokens, settings, "max_new_tokens"
        )
        if spec.num_problems is not None:
            found += _at_most(("num_problems",), spec.num_problems, settings, "max_eval_problems")
    task_limits = getattr(spec.task, "limits", None)
    if isinstance(task_limits, dict):
        found += _sandbox(task_limits, settings, ("task", "limits"))
    rewards = [r.model_dump() for r in getattr(spec, "rewards", [])]
    found += _patterns(rewards, ("rewards",))
    found += _python_jails(rewards, settings, ("rewards",))
    return found


def _at_most(loc: Location, value: int, settings: Settings, ceiling: str) -> list[Refusal]:
    limit = getattr(settings, ceiling)
    if value <= limit:
        return []
    return [(loc, f"at most {limit} ({_variable(ceiling)}), got {value}")]


def _variable(ceiling: str) -> str:
    return Settings.model_fields[ceiling].validation_alias.choices[0]


def _sandbox(limits: dict[str, Any], settings: Settings, loc: Location) -> list[Refusal]:
    found: list[Refusal] = []
    for field, value in limits.items():
        if field not in SANDBOX_CEILINGS:
            found.append(
                ((*loc, field), f"not a sandbox limit (one of {', '.join(SANDBOX_CEILINGS)})")
            )
        elif isinstance(value, int | float):
            found += _at_most((*loc, field), value, settings, SANDBOX_CEILINGS[field])
    return found


def _patterns(rewards: list[Any], loc: Location) -> Iterator[Refusal]:
    """Each reward's regex that RE2 refuses, inside `composite` rewards too."""
    for index, reward in enumerate(rewards):
        if not isinstance(reward, dict):
            continue
        kwargs = reward.get("kwargs") or {}
        if reward.get("name") in PATTERN_REWARDS and isinstance(kwargs.get("pattern"), str):
            try:
                user_pattern(kwargs["pattern"])
            except ValueError as exc:
                yield (*loc, index, "kwargs", "pattern"), str(exc)
        elif reward.get("name") == "composite" and isinstance(kwargs.get("components"), list):
            yield from _patterns(kwargs["components"], (*loc, index, "kwargs", "components"))


def _python_jails(rewards: list[Any], settings: Settings, loc: Location) -> Iterator[Refusal]:
    """Each ``python`` reward whose jails would run longer than a jail may: its ``timeout``
    per row sizes them (`rlvr.rewards.python.jail_seconds`), inside `composite` rewards too."""
    for index, reward in enumerate(rewards):
        if not isinstance(reward, dict):
            continue
        kwargs = reward.get("kwargs") or {}
        if reward.get("name") == "python" and isinstance(kwargs.get("timeout", 1.0), int | float):
            timeout = kwargs.get("timeout", 1.0)
            if jail_seconds(timeout) > settings.sandbox_max_seconds:
                yield (
                    (*loc, index, "kwargs", "timeout"),
                    f"{timeout:g} s a call makes {jail_seconds(timeout):g} s jails, at most "
                    f"{settings.sandbox_max_seconds:g} (RLVR_SANDBOX_MAX_SECONDS)",
                )
        elif reward.get("name") == "composite" and isinstance(kwargs.get("components"), list):
            yield from _python_jails(
                kwargs["components"], settings, (*loc, index, "kwargs", "components")
            )
