"""Fixtures of the task tests: an operator's folder of ``local:`` datasets, with the hub off."""

import pytest


@pytest.fixture
def datasets_root(tmp_path, monkeypatch):
    """An empty $RLVR_DATASETS_ROOT. The hub is off and the datasets cache is in tmp_path, so a
    test neither reaches the network nor writes to the user's cache."""
    import datasets

    root = tmp_path / "datasets"
    root.mkdir()
    monkeypatch.setenv("RLVR_DATASETS_ROOT", str(root))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return root
