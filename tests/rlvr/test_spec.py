"""Specs: defaults, precise errors, YAML/JSON loading, presets, no torch on import."""

import json
import subprocess
import sys

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from rlvr.spec import ALGORITHM_PRESETS, AlgorithmSpec, EvalSpec, SFTSpec, TrainSpec, load_spec


@pytest.mark.parametrize("spec_type", [TrainSpec, EvalSpec, SFTSpec])
def test_an_empty_spec_is_valid(spec_type):
    assert spec_type.model_validate({}).kind == spec_type.model_fields["kind"].default


def _undocumented(model: type[BaseModel], prefix: str = "") -> list[str]:
    missing = []
    for name, field in model.model_fields.items():
        if name != "name" and not field.description and name != "task":
            missing.append(prefix + name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            missing += _undocumented(annotation, f"{prefix}{name}.")
    return missing


@pytest.mark.parametrize("spec_type", [TrainSpec, EvalSpec, SFTSpec])
def test_every_field_is_documented(spec_type):
    assert _undocumented(spec_type) == []


@pytest.mark.parametrize(
    "data, location",
    [
        ({"algorithm": {"clip_hgh": 0.3}}, ("algorithm", "clip_hgh")),
        ({"task": {"name": "arithmetic", "digitz": 3}}, ("task", "arithmetic", "digitz")),
        ({"task": {"name": "sudoku"}}, ("task",)),
        ({"rewards": [{"name": "verdict"}, {"name": "nope"}]}, ("rewards", 1, "name")),
        ({"algorithm": {"name": "trpo"}}, ("algorithm", "name")),
        ({"algorithm": {"group_size": 0}}, ("algorithm", "group_size")),
        ({"sampling": {"temperature": [1.0, -1.0]}}, ("sampling", "temperature")),
        ({"model": {"lora": {"r": 0}}}, ("model", "lora", "r")),
        ({"optim": {"learning_rate": "fast"}}, ("optim", "learning_rate")),
    ],
)
def test_errors_name_the_field(data, location):
    with pytest.raises(ValidationError) as error:
        TrainSpec.model_validate(data)
    assert error.value.errors()[0]["loc"] == location


def test_a_spec_stored_before_data_dir_was_removed_loads_but_a_path_is_refused():
    stored = TrainSpec.model_validate({"task": {"name": "gsm8k"}}).model_dump(mode="json")
    stored["task"]["data_dir"] = (
        None  # what every stored gsm8k, math500, mbpp or countdown spec holds
    )
    assert TrainSpec.model_validate(stored).task.source == "bundled"
    stored["task"]["data_dir"] = "/etc"
    with pytest.raises(
        ValidationError, match="data_dir was removed: a task reads no path a spec names"
    ) as error:
        TrainSpec.model_validate(stored)
    assert error.value.errors()[0]["loc"] == ("task", "gsm8k")


def test_per_sample_temperatures_must_match_the_group_size():
    TrainSpec.model_validate(
        {"algorithm": {"group_size": 2}, "sampling": {"temperature": [0.7, 1.2]}}
    )
    with pytest.raises(ValidationError, match="group_size is 8"):
        TrainSpec.model_validate({"sampling": {"temperature": [0.7, 1.2]}})


def test_eval_k_cannot_exceed_the_number_of_samples():
    with pytest.raises(ValidationError, match="num_samples=4"):
        EvalSpec.model_validate({"num_samples": 4, "k": [1, 8]})


@pytest.mark.parametrize("name", sorted(ALGORITHM_PRESETS))
def test_presets_fill_only_unset_fields(name):
    resolved = AlgorithmSpec(name=name).resolved()
    assert {key: getattr(resolved, key) for key in ALGORITHM_PRESETS[name]} == ALGORITHM_PRESETS[
        name
    ]
    other = "sequence" if ALGORITHM_PRESETS[name]["loss_aggregation"] != "sequence" else "token"
    assert AlgorithmSpec(name=name, loss_aggregation=other).resolved().loss_aggregation == other


def test_grpo_averages_the_loss_over_tokens():
    """Not per sequence, which weighs a long wrong program's tokens less (issue 17)."""
    assert AlgorithmSpec(name="grpo").resolved().loss_aggregation == "token"


def test_dr_grpo_means_no_std_and_a_constant_normaliser():
    resolved = AlgorithmSpec(name="dr_grpo").resolved()
    assert (resolved.scale_rewards, resolved.loss_aggregation) == (False, "constant")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_load_spec_from_yaml_or_json(tmp_path, suffix):
    data = {"task": {"name": "gsm8k", "limit": 5}, "algorithm": {"name": "rloo", "group_size": 4}}
    path = tmp_path / f"spec{suffix}"
    path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    spec = load_spec(path, TrainSpec)
    assert (spec.task.name, spec.task.limit, spec.algorithm.group_size) == ("gsm8k", 5, 4)


def test_importing_the_specs_does_not_import_torch():
    code = "import sys, rlvr.spec; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
