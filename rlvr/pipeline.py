"""Scoring a round of completions while the trainer gets on with the next one.

Owns ``Round`` (the problems of one batched generate and their rollout, with the policy
version that sampled them) and ``Scoring``, which scores a round (``rlvr.scoring``) either in
one background thread, started as soon as the round exists, or in the caller's thread when
it asks for the scores; and times both the scoring and how long the caller stood waiting for
it. Scoring is I/O-bound for the trainer (it waits on jails or on the verify queue), so one
thread is enough and the GIL is no obstacle. Torch-free: what overlaps what, and what a
stale sample means for the loss, is the trainer's business.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rlvr.scoring import ScoredBatch
from rlvr.tasks.base import Problem


@dataclass
class Round:
    """P problems and the P x G completions sampled for them, not necessarily scored yet."""

    problems: list[Problem]  # (P,)
    rollout: Any  # rlvr.rollout.Rollout, B = P x G rows, prompt-major
    generation_time: float
    policy_version: int  # optimizer steps taken when it was sampled
    scoring: Future | None = field(default=None, repr=False)  # set while scored in the background

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of a round that is sampled but not yet trained on; a resumed
        run scores it again (scores are a function of the completions)."""
        return {
            "problems": self.problems,
            "rollout": self.rollout,
            "generation_time": self.generation_time,
            "policy_version": self.policy_version,
        }


@dataclass
class Scored:
    batch: ScoredBatch
    verify_time: float  # seconds the scoring took
    wait_time: float  # seconds the caller stood still waiting for it


class Scoring:
    """Scores rounds with ``score``: in one background thread (``background``) once started,
    else in the caller's thread when it waits. Rounds started in the background are scored
    one at a time, in order."""

    def __init__(self, score: Callable[[Round], ScoredBatch], background: bool):
        self._score = score
        self._executor = (
            ThreadPoolExecutor(1, thread_name_prefix="rlvr-score") if background else None
        )

    def start(self, round: Round) -> None:
        """Begins scoring ``round`` in the background; without a background thread, or if it
        is already under way, does nothing."""
        if self._executor is not None and round.scoring is None:
            round.scoring = self._executor.submit(self._timed, round)

    def wait(self, round: Round) -> Scored:
        """The round's scores: waits for its background scoring, or scores it now."""
        if round.scoring is None:
            batch, seconds = self._timed(round)
            return Scored(batch, seconds, seconds)
        started = time.perf_counter()
        batch, seconds = round.scoring.result()
        return Scored(batch, seconds, time.perf_counter() - started)

    def close(self) -> None:
        """Waits for the scoring under way (its scores are dropped) and ends the thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def _timed(self, round: Round) -> tuple[ScoredBatch, float]:
        started = time.perf_counter()
        return self._score(round), time.perf_counter() - started
