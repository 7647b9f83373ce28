"""Which GPUs a train worker owns, and which one each of its pool processes gives its jobs.

Owns: checking `RLVR_GPUS` against the pool's size at start-up, each pool process's choice
(by Celery's pool process index: process i takes the i-th GPU, and a process that replaces
a dead one takes over its index, so a GPU never has two pool processes), and saying so in
the log. `worker.runners` puts the choice into each job process's `CUDA_VISIBLE_DEVICES`
before the job runs; the pool process itself never touches CUDA (it forks the job
processes, and a CUDA context does not survive a fork).

Without `RLVR_GPUS` nothing is set: jobs see every GPU the worker sees, as before (one
worker per GPU started with its own `CUDA_VISIBLE_DEVICES` still works).
"""

from __future__ import annotations

import logging

from celery.utils.log import current_process_index

log = logging.getLogger(__name__)

_owned: list[int] | None = None  # set in the main process at start-up; pool processes fork with it
_plan: str | None = None  # the start-up line, logged once the worker's logging is set up
_assigned: int | None = None  # this pool process's GPU, chosen once at its start


class GpuPoolError(RuntimeError):
    """The pool has more processes than the worker owns GPUs."""


def take(gpus: list[int] | None, concurrency: int) -> str:
    """In a train worker's main process, before its pool starts: refuses a pool that would put
    two jobs on one GPU, remembers the GPUs, and returns the start-up line that says which
    GPUs the worker owns and which pool process takes which.

    >>> take([0, 3], 2)
    'owns GPUs 0,3: pool process 1 -> GPU 0, 2 -> GPU 3'
    """
    global _owned, _plan
    if gpus is None:
        _plan = "owns no GPU list (RLVR_GPUS unset): jobs see every GPU this worker sees"
        return _plan
    if concurrency > len(gpus):
        raise GpuPoolError(
            f"RLVR_GPUS names {len(gpus)} GPU(s) ({_names(gpus)}) but the pool has {concurrency} "
            f"processes: each needs a GPU of its own; start with -c {len(gpus)} or name more GPUs"
        )
    _owned = list(gpus)
    taken = ", ".join(f"{index + 1} -> GPU {gpus[index]}" for index in range(concurrency))
    _plan = f"owns GPUs {_names(gpus)}: pool process {taken}"
    return _plan


def plan() -> str | None:
    """What `take` decided, for the start-up log; None in a worker that took nothing (verify)."""
    return _plan


def assign() -> int | None:
    """Called once in each pool process as it starts: picks and remembers its GPU (none when
    the worker took no GPU list, e.g. a verify worker)."""
    global _assigned
    if _owned is None:
        return None
    index = current_process_index(base=0) or 0  # 0-based; a solo pool has none
    _assigned = _owned[index]
    log.info(
        "pool process %d takes GPU %d: its jobs run with CUDA_VISIBLE_DEVICES=%d",
        index + 1,
        _assigned,
        _assigned,
    )
    return _assigned


def owned() -> list[int] | None:
    """The GPUs this worker took at start-up (what /health shows), None for no list."""
    return _owned


def assigned() -> int | None:
    """This pool process's GPU, or None when the worker owns no GPU list."""
    return _assigned


def _names(gpus: list[int]) -> str:
    return ",".join(str(gpu) for gpu in gpus)
