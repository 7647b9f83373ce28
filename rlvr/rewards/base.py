"""The reward registry, the reward entry of a spec, and the weighted sum the trainer optimises.

A reward is a module-level function ``reward(completions, **columns) -> list[float | None]``
(module-level so it pickles for Celery). ``columns`` are the problem fields aligned with the
completions (``prompt``, ``answer``, the task's ``grade``, task metadata) plus the spec's ``kwargs``
and context such as an injected ``verify`` callable. ``None`` means "could not be computed"
(for example the sandbox timed out): the sample is excluded from the loss, never scored 0.

A reward's settings, the ``kwargs`` a spec may give it, are the parameters that
``register_reward(name, settings=(...))`` names; ``SETTINGS[name]`` is a pydantic model built
from the function's own signature (annotations and defaults, so there is no second copy of
them). ``RewardSpec`` validates ``kwargs`` with it where a spec enters (the API's 400 names
``rewards[1].kwargs.partial_scale``), and ``score`` validates again with the same model before
calling the function on the worker, so a spec stored before a rule existed meets it too.

Owns ``REWARDS``, ``SETTINGS``, ``register_reward``, ``RewardSpec`` and ``score``; imports no
reward. The rewards live one family to a module in this package (``rules``, ``code``, ``llm``,
``python``), which ``rlvr.rewards`` imports so they register; a task-specific reward lives in
its task's file.
"""

import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

RewardFn = Callable[..., list[float | None]]
REWARDS: dict[str, RewardFn] = {}
"""Reward name, as specs write it -> function; filled by ``register_reward`` on import."""
SETTINGS: dict[str, type[BaseModel]] = {}
"""Reward name -> the model of its ``kwargs``; filled by ``register_reward`` on import."""


def register_reward(
    name: str, settings: Sequence[str] = (), check: Callable[[Any], None] | None = None
) -> Callable[[RewardFn], RewardFn]:
    """Registers ``fn`` as ``name``; ``settings`` are the parameters a spec's ``kwargs`` may set
    (the others are columns the caller supplies); ``check(settings)`` raises ValueError for a
    combination of them that is wrong though each alone is valid."""

    def add(fn: RewardFn) -> RewardFn:
        REWARDS[name] = fn
        SETTINGS[name] = settings_model(name, fn, settings, check)
        return fn

    return add


def settings_model(
    name: str, fn: RewardFn, settings: Sequence[str], check: Callable[[Any], None] | None = None
) -> type[BaseModel]:
    """A pydantic model of ``fn``'s parameters ``settings``: their annotations and defaults (a
    parameter without a default is required); any other key is refused.

    >>> def clip(completions, answer, low: float = 0.0, high: float = 1.0, **_): ...
    >>> settings_model("clip", clip, ["low", "high"]).model_validate({"high": "2"}).model_dump(by_alias=True)
    {'low': 0.0, 'high': 2.0}
    """
    hints = typing.get_type_hints(fn, include_extras=True)
    parameters = inspect.signature(fn).parameters
    fields: dict[str, Any] = {}
    for setting in settings:
        default = parameters[setting].default
        field = Field(... if default is inspect.Parameter.empty else default, alias=setting)
        # A setting named like a BaseModel attribute (`format`'s `schema`) is stored under
        # another name; specs and `score` still see it by its own (the alias).
        key = f"{setting}_" if hasattr(BaseModel, setting) else setting
        fields[key] = (hints.get(setting, Any), field)

    def checked(model: BaseModel) -> BaseModel:
        if check is not None:
            check(model)
        return model

    return create_model(
        f"{name}_settings",
        __config__=ConfigDict(extra="forbid"),
        __validators__={"_checked": model_validator(mode="after")(checked)},
        **fields,
    )


class RewardSpec(BaseModel):
    """One reward of a spec: a registered function, its weight, and its settings."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    name: str = Field("verdict", description="A registered reward function (see REWARDS).")
    weight: float = Field(1.0, description="Weight in the summed reward.")
    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="The reward's settings; each reward declares which it takes and their types.",
    )

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in REWARDS:
            raise ValueError(f"unknown reward {name!r}; known: {', '.join(sorted(REWARDS))}")
        return name

    @field_validator("kwargs")
    @classmethod
    def _settings(cls, kwargs: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # A ValidationError raised here keeps its own locations under this field's, so a bad
        # setting is reported as `rewards.1.kwargs.partial_scale`. The spec keeps the kwargs as
        # written (validated, not replaced by the model's dump): `score` validates them again.
        if (name := info.data.get("name")) in SETTINGS:
            SETTINGS[name].model_validate(kwargs)
        return kwargs


def score(
    specs: Sequence[dict[str, Any]], completions: list[str], columns: dict[str, Any]
) -> tuple[list[float | None], dict[str, list[float | None]]]:
    """Weighted sum of rewards ``[{name, weight, kwargs}]`` and each component by name.

    A total is None when any component is None for that sample.
    """
    components: dict[str, list[float | None]] = {}
    for index, spec in enumerate(specs):
        label = spec["name"] if spec["name"] not in components else f"{spec['name']}_{index}"
        settings = (
            SETTINGS[spec["name"]]
            .model_validate(spec.get("kwargs") or {})
            .model_dump(by_alias=True)
        )
        values = REWARDS[spec["name"]](completions, **{**columns, **settings})
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
