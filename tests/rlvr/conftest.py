"""Fixtures for the rlvr tests: a very small local model, built once per session."""

import pytest
import torch

from rlvr.spec import TrainSpec

# One thread: on a small shared machine, several threads per process thrash instead of helping.
torch.set_num_threads(1)


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs CUDA; skipped without it")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from rlvr.tiny import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny"), hidden_size=32, layers=2, heads=2))


@pytest.fixture(autouse=True)
def _private_rlvr_home(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RLVR_HOME", str(tmp_path_factory.getbasetemp() / "rlvr_home"))


@pytest.fixture
def train_spec(tiny_dir):
    """A few-second RL job on 1-digit addition."""

    def make(**overrides) -> TrainSpec:
        data = {
            "model": {"name": tiny_dir, "lora": {"r": 4, "alpha": 8}},
            "task": {"name": "arithmetic", "max_digits": 1, "train_size": 64, "test_size": 8},
            "algorithm": {"group_size": 4},
            "sampling": {"max_new_tokens": 4},
            "optim": {"prompts_per_step": 2, "learning_rate": 1e-2, "seed": 3},
            "stopping": {"max_steps": 2},
        }
        for section, values in overrides.items():
            merge = isinstance(values, dict) and section != "task"  # a task is replaced whole
            data[section] = {**data.get(section, {}), **values} if merge else values
        return TrainSpec.model_validate(data)

    return make
