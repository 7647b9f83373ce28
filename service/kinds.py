"""Job kinds: the spec each kind's jobs carry, validated once where a job enters.

Owns: the table from kind name to spec model and to the size shown as progress. The web
app validates submissions with it; the runners read specs back with it. `train`, `eval`
and `sft` jobs carry the specs `rlvr` defines (importing them does not import torch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from rlvr.spec import EvalSpec, SFTSpec, TrainSpec
from sandbox.models import VerifyRequest


class VerifyJobSpec(BaseModel):
    """A batch of programs, each with its tests, judged by the verify pool."""

    model_config = ConfigDict(extra="forbid")

    requests: list[VerifyRequest] = Field(
        min_length=1, max_length=20_000, description="Programs and their tests."
    )
    batch_size: int | None = Field(
        None, ge=1, le=512, description="Programs per verify task; default from settings."
    )

    def batches(self, default_size: int) -> list[range]:
        size = self.batch_size or default_size
        return [
            range(start, min(start + size, len(self.requests)))
            for start in range(0, len(self.requests), size)
        ]


@dataclass(frozen=True)
class JobKind:
    spec: type[BaseModel]
    total: Callable[[BaseModel], int]
    """How many units of progress a job of this spec has (programs, steps, ...)."""


KINDS: dict[str, JobKind] = {
    "verify": JobKind(spec=VerifyJobSpec, total=lambda spec: len(spec.requests)),
    "train": JobKind(spec=TrainSpec, total=lambda spec: spec.stopping.max_steps),
    "sft": JobKind(spec=SFTSpec, total=lambda spec: spec.max_steps),
    "eval": JobKind(spec=EvalSpec, total=lambda spec: 1),
}
