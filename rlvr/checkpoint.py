"""Checkpoints that resume exactly: weights or adapters, optimizer, scheduler, RNG, data, step.

Owns the on-disk layout ``<run_dir>/checkpoints/step-000010/{model/, trainer_state.pt}``,
writing it atomically (a temporary directory renamed into place), finding the latest one
and pruning old ones. The trainer decides what goes into its own ``trainer`` state.
"""

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "trainer_state.pt"


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model,
    tokenizer,
    optimizer,
    scheduler,
    trainer: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint ``step`` and keep only the ``keep`` most recent; returns its path."""
    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:06d}"
    staging = root / f".staging-{step:06d}"
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging / "model"))
    tokenizer.save_pretrained(str(staging / "model"))
    torch.save(
        {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(),
            "trainer": trainer,
        },
        staging / STATE_FILE,
    )
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = sorted(p for p in checkpoints_dir(run_dir).glob("step-*") if (p / STATE_FILE).exists())
    return found[-1] if found else None


def load_state(checkpoint: Path) -> dict[str, Any]:
    return torch.load(checkpoint / STATE_FILE, weights_only=False)
