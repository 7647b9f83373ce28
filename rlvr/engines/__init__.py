"""Generation engines: who samples a train job's rollouts (``sampling.engine``).

``hf`` (the default) is transformers' ``generate`` on the trainer's model; ``vllm`` is a vLLM
engine colocated in the job's process, given the new weights after each update. The
protocol is ``rlvr.engines.base.Engine``; ``build_engine`` picks one from a spec. vllm is
imported only when a job asks for it.
"""

from rlvr.engines.base import Engine
from rlvr.engines.hf import HFEngine
from rlvr.policy import pick_dtype, resolve_model_path
from rlvr.spec import ModelSpec, SamplingSpec


def build_engine(
    sampling: SamplingSpec, model_spec: ModelSpec, model, tokenizer, seed: int
) -> Engine:
    """The spec's engine, sampling with ``model``'s current weights."""
    if sampling.engine == "hf":
        return HFEngine(model, tokenizer)
    from rlvr.engines.vllm_engine import VLLMEngine

    parameter = next(model.parameters())
    # vLLM builds its model from the base checkpoint's architecture; its weights are then
    # replaced by the trainer's (SFT start, adapters, a resumed checkpoint alike).
    engine = VLLMEngine(
        resolve_model_path(model_spec.name),
        tokenizer,
        device=parameter.device,
        dtype=pick_dtype(model_spec.dtype, parameter.device),  # compute dtype, not fp32 masters
        gpu_memory_utilization=sampling.vllm_gpu_memory_utilization,
        seed=seed,
    )
    engine.load_weights(model)
    return engine


__all__ = ["Engine", "build_engine"]
