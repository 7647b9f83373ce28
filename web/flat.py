"""Specs as flat tables: `optim.learning_rate -> 1e-05`, for the job page's settings and the
compare page's "what differs" table. Pure functions over JSON values; no Flask, no database."""

from __future__ import annotations

import json
from typing import Any

LIST_SHOWN_CHARS = 200  # a list (operators, a verify job's programs) is one cell, cut to this


def flatten(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects become dotted keys; a list stays one value, shown as compact JSON.

    >>> flatten({"model": {"name": "tiny", "lora": None}, "task": {"operators": ["+", "-"]}})
    {'model.name': 'tiny', 'model.lora': None, 'task.operators': '["+", "-"]'}
    """
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        elif isinstance(value, list):
            text = json.dumps(value)
            flat[path] = text if len(text) <= LIST_SHOWN_CHARS else text[:LIST_SHOWN_CHARS] + "…"
        else:
            flat[path] = value
    return flat


MISSING = "—"


def differences(specs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The flattened settings whose values are not the same in every spec, each with its value
    per spec in order (`MISSING` where a spec has no such setting, e.g. an SFT beside a train job).

    >>> differences([{"optim": {"lr": 1e-5, "seed": 0}}, {"optim": {"lr": 3e-5, "seed": 0}}])
    {'optim.lr': [1e-05, 3e-05]}
    >>> differences([{"kind": "train", "stopping": {"max_steps": 5}}, {"kind": "sft", "max_steps": 9}])
    {'kind': ['train', 'sft'], 'stopping.max_steps': [5, '—'], 'max_steps': ['—', 9]}
    """
    flats = [flatten(spec) for spec in specs]
    keys = list(dict.fromkeys(key for flat in flats for key in flat))
    table = {key: [flat.get(key, MISSING) for flat in flats] for key in keys}
    return {key: values for key, values in table.items() if any(v != values[0] for v in values)}
