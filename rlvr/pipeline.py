"""Judging a round of completions while the trainer gets on with the next one.

Owns ``Round`` (the problems of one batched generate and their rollout, with the policy
version that sampled them) and ``Judging``, which judges a round either in one background
thread, started as soon as the round exists, or in the caller's thread when it asks for the
verdicts; and times both the judging and how long the caller stood waiting for it.
Judging is I/O-bound for the trainer (it waits on jails or on the verify queue), so one
thread is enough and the GIL is no obstacle. Torch-free: what overlaps what, and what a
stale sample means for the loss, is the trainer's business.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rlvr.judge import Judgement
from rlvr.tasks.base import Problem


@dataclass
class Round:
    """P problems and the P x G completions sampled for them, not necessarily judged yet."""

    problems: list[Problem]  # (P,)
    rollout: Any  # rlvr.rollout.Rollout, B = P x G rows, prompt-major
    generation_time: float
    policy_version: int  # optimizer steps taken when it was sampled
    verdicts: Future | None = field(default=None, repr=False)  # set while judged in the background

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps of a round that is sampled but not yet trained on; a resumed
        run judges it again (verdicts are a function of the completions)."""
        return {"problems": self.problems, "rollout": self.rollout, "generation_time": self.generation_time,
                "policy_version": self.policy_version}


@dataclass
class Judged:
    judgement: Judgement
    verify_time: float  # seconds the judging took
    wait_time: float  # seconds the caller stood still waiting for it


class Judging:
    """Judges rounds with ``judge``: in one background thread (``background``) once started,
    else in the caller's thread when it waits. Rounds started in the background are judged
    one at a time, in order."""

    def __init__(self, judge: Callable[[Round], Judgement], background: bool):
        self._judge = judge
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="rlvr-judge") if background else None

    def start(self, round: Round) -> None:
        """Begins judging ``round`` in the background; without a background thread, or if it
        is already under way, does nothing."""
        if self._executor is not None and round.verdicts is None:
            round.verdicts = self._executor.submit(self._timed, round)

    def wait(self, round: Round) -> Judged:
        """The round's verdicts: waits for its background judging, or judges it now."""
        if round.verdicts is None:
            judgement, seconds = self._timed(round)
            return Judged(judgement, seconds, seconds)
        started = time.perf_counter()
        judgement, seconds = round.verdicts.result()
        return Judged(judgement, seconds, time.perf_counter() - started)

    def close(self) -> None:
        """Waits for the judging under way (its verdicts are dropped) and ends the thread."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def _timed(self, round: Round) -> tuple[Judgement, float]:
        started = time.perf_counter()
        return self._judge(round), time.perf_counter() - started
