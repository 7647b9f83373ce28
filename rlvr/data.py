"""The order problems are drawn in, with a position that checkpoints save and restore.

Owns epoch shuffling (seeded per epoch, so it does not touch the global RNG) and the
curriculum (each epoch easier problems first, ties in shuffled order).
"""

import random
from dataclasses import dataclass

from rlvr.tasks.base import Problem


@dataclass
class StreamState:
    epoch: int = 0
    index: int = 0


class ProblemStream:
    def __init__(self, problems: list[Problem], seed: int, curriculum: bool = False):
        if not problems:
            raise ValueError("the task has no problems in this split")
        self.problems = problems
        self.seed = seed
        self.curriculum = curriculum
        self.state = StreamState()
        self._order = self._epoch_order(0)

    def _epoch_order(self, epoch: int) -> list[int]:
        order = list(range(len(self.problems)))
        random.Random(f"{self.seed}-{epoch}").shuffle(order)
        if self.curriculum:
            order.sort(key=lambda i: self.problems[i].difficulty)
        return order

    def take(self, count: int) -> list[Problem]:
        taken = []
        for _ in range(count):
            if self.state.index == len(self._order):
                self.state = StreamState(self.state.epoch + 1, 0)
                self._order = self._epoch_order(self.state.epoch)
            taken.append(self.problems[self._order[self.state.index]])
            self.state.index += 1
        return taken

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.state.epoch, "index": self.state.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.state = StreamState(**state)
        self._order = self._epoch_order(self.state.epoch)
