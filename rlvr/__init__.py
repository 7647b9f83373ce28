"""rlvr: reinforcement learning from verifiable rewards, as a library.

Owns the job specs, tasks, rewards, the policy-gradient math, rollout, the RL and SFT
loops, evaluation, checkpoints and the tiny local models. Does not own queues, databases
or sandboxes: the worker calls in here and persists what the callbacks report, and code
rewards reach a sandbox only through an injected ``verify`` function.

Importing this package (or ``rlvr.spec``, ``rlvr.rewards``, ``rlvr.tasks``) does not
import torch; the modules that need it import it themselves.
"""
